"""A local explorer page for one generator: seed, truncation, noise, style mixing, scale and per-stage images.

`build_server(G)` returns a `http.server.ThreadingHTTPServer` (127.0.0.1 unless another host is given; port 0 picks
a free one) that serves `static/index.html` at `/` and a small JSON/PNG API:

  GET /api/info                 the network (arch, resolution, n_latent, any-scale, stages) and the request limits
  GET /api/render?seed=S[&psi=P][&noise=const|random|none][&mix_seed=M[&crossover=K]][&scale=X]   -> image/png
  GET /api/stages?...           the same parameters -> JSON {"stages": [{"size": [h, w], "png": BASE64}, ...]}

The image for (seed, psi, noise[, scale]) is `G.sample([seed], truncation_psi=psi, noise_mode=noise, scale=scale)`
through `to_uint8`, i.e. `pixelfolder generate --seeds S --trunc P --noise-mode N`'s PNG. Renders run one at a time
(a lock: concurrent requests wait their turn); each response carries X-Render-Ms (model and PNG encoding) and
X-Queue-Ms (the wait for the lock). A bad request gets HTTP 400 and {"error": "one line"}; an unexpected exception
HTTP 500 with one line, the traceback only in the server's log (stderr).
"""
from __future__ import annotations

import base64
import contextlib
import errno
import http.server
import io
import ipaddress
import json
import math
import re
import socket
import sys
import threading
import time
import traceback
from urllib.parse import parse_qs, urlsplit

from ..errors import PixelfolderError, first_line
from . import need_generator

SEED_RANGE = (0, 2 ** 32 - 1)     # NVlabs' numpy convention draws z from a uint32 seed: the same range for every net
SCALE_RANGE = (0.25, 4.0)         # x native resolution, any-scale models only
RENDER_PARAMS = ("seed", "psi", "noise", "mix_seed", "crossover", "scale")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")
_INT = re.compile(r"[0-9]{1,20}")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


class RequestError(PixelfolderError):
    """A request the explorer refuses (HTTP 400, its message shown on the page)."""


class Explorer:
    """One generator on one device, rendered one request at a time."""

    def __init__(self, G, device=None, label: str | None = None, notes=()):
        import torch
        from ..layers import NOISE_MODES
        from ..registry import architecture
        need_generator(G, "the explorer", "serve a generator (PixelFolder, CIPS, StyleGAN2, INR-GAN, CREPS)")
        self.device = torch.device(device) if device is not None else next(G.parameters()).device
        self.G = G.eval().to(self.device)
        meta = getattr(G, "metadata", None) or {}
        self.label = label or meta.get("preset") or G.arch
        self.notes = list(notes)
        if meta.get("source") == "preset" and not self.notes:
            self.notes.append(f"{meta.get('preset', 'a preset')} is randomly initialised (seed "
                              f"{meta.get('init_seed', '?')}), not trained")
        options = architecture(G.arch).sample_options
        self.noise_modes = tuple(NOISE_MODES) if "noise_mode" in options else ("const",)
        self.any_scale = not G.native_size_only and "scale" in options
        self.lock = threading.Lock()
        with self.lock:                               # one warm-up render, which also counts the stages
            self.stages = len(self._forward(0, 1.0, "const", None, None, None, stages=True)[1])

    # ------------------------------------------------------------------------------------------------ requests
    def info(self) -> dict:
        G, n = self.G, self.G.n_latent
        return {"network": self.label, "arch": G.arch, "kind": G.kind, "resolution": G.resolution,
                "n_latent": n, "z_dim": G.z_dim, "seed_rng": G.seed_rng, "any_scale": self.any_scale,
                "stages": self.stages, "device": str(self.device), "noise_modes": list(self.noise_modes),
                "notes": self.notes,
                "defaults": {"seed": 0, "psi": 1.0, "noise": "const", "crossover": max(1, n // 2) if n > 1 else None,
                             "scale": 1.0 if self.any_scale else None},
                "limits": {"seed": list(SEED_RANGE), "psi": list(psi_range()),
                           "crossover": [1, n - 1] if n > 1 else None,
                           "scale": list(SCALE_RANGE) if self.any_scale else None}}

    def parse(self, query: str) -> dict:
        """The render parameters of a query string, checked; RequestError names the first problem."""
        try:
            fields = parse_qs(query, keep_blank_values=True, max_num_fields=2 * len(RENDER_PARAMS))
        except ValueError:
            raise RequestError(f"too many parameters: the parameters are {', '.join(RENDER_PARAMS)}") from None
        unknown = sorted(set(fields) - set(RENDER_PARAMS))
        if unknown:
            raise RequestError(f"unknown parameter {unknown[0]!r}: the parameters are {', '.join(RENDER_PARAMS)}")
        repeated = [k for k, v in fields.items() if len(v) > 1]
        if repeated:
            raise RequestError(f"parameter {repeated[0]!r} is given {len(fields[repeated[0]])} times: give it once")
        get = {k: v[0] for k, v in fields.items()}
        if "seed" not in get:
            raise RequestError("seed is missing: give seed=N with N in [0, 2**32-1]")
        params = {"seed": _seed(get["seed"], "seed"), "psi": 1.0, "noise": "const", "mix_seed": None,
                  "crossover": None, "scale": None}
        if "psi" in get:
            params["psi"] = _psi(get["psi"])
        if "noise" in get:
            if get["noise"] not in self.noise_modes:
                raise RequestError(f"noise must be one of {', '.join(self.noise_modes)}, got {get['noise']!r}")
            params["noise"] = get["noise"]
        n = self.G.n_latent
        if "crossover" in get and "mix_seed" not in get:
            raise RequestError("crossover needs mix_seed (the seed whose styles replace layers >= crossover)")
        if "mix_seed" in get:
            if n < 2:
                raise RequestError(f"{self.G.arch} has a single w (n_latent 1): there are no layers to mix")
            params["mix_seed"] = _seed(get["mix_seed"], "mix_seed")
            params["crossover"] = max(1, n // 2)
            if "crossover" in get:
                text = get["crossover"]
                if not _INT.fullmatch(text) or not 1 <= int(text) <= n - 1:
                    raise RequestError(f"crossover must be a whole number in [1, {n - 1}] (this network has "
                                       f"{n} w's), got {text!r}")
                params["crossover"] = int(text)
        if "scale" in get:
            if not self.any_scale:
                raise RequestError(f"{self.G.arch} renders only its native {self.G.resolution} px grid: scale is "
                                   "for any-scale models (CIPS, INR-GAN, CREPS)")
            scale = _number(get["scale"], "scale")
            if not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]:
                raise RequestError(f"scale must be in [{SCALE_RANGE[0]}, {SCALE_RANGE[1]}], got {get['scale']}")
            params["scale"] = scale
        return params

    def render(self, params: dict, *, stages: bool = False):
        """(uint8 images (H, W, 3) -- the image, or one per stage --, render ms, queue ms) for checked params."""
        from ..data.images import check_finite, to_uint8
        asked = time.perf_counter()
        with self.lock:
            start = time.perf_counter()
            if stages or params["mix_seed"] is not None:
                img, parts = self._forward(params["seed"], params["psi"], params["noise"], params["mix_seed"],
                                           params["crossover"], params["scale"], stages=True)
                images = parts if stages else [img]
            else:
                images = [self.G.sample([params["seed"]], batch_size=1, truncation_psi=params["psi"],
                                        noise_mode=params["noise"], scale=params["scale"], device=self.device)]
            out = []
            for x in images:
                x = check_finite(x.float().cpu(), [params["seed"]], error=NetworkError)
                out.append(to_uint8(x)[0].numpy())
            done = time.perf_counter()
        return out, 1000 * (done - start), 1000 * (start - asked)

    def _forward(self, seed, psi, noise_mode, mix_seed, crossover, scale, *, stages: bool):
        """G's forward for one seed with z and noise drawn as G.sample draws them; (image, stage images)."""
        import torch
        from ..layers import mix_ws
        from ..utils import seed_latent
        G, device = self.G, self.device
        size = G.output_size(None, scale)
        with torch.no_grad():
            z, g = seed_latent(seed, G.z_dim, G.seed_rng)
            noise = None
            if noise_mode == "random":
                noise = [torch.randn(1, 1, h, w, generator=g).to(device) for h, w in G.synthesis.noise_shapes(size)]
            z = z.to(device)
            if mix_seed is None:
                return G(z, truncation_psi=psi, noise_mode=noise_mode, noise=noise, size=size, return_stages=stages)
            z2 = seed_latent(mix_seed, G.z_dim, G.seed_rng)[0].to(device)
            ws = mix_ws(G.mapping(z, truncation_psi=psi), G.mapping(z2, truncation_psi=psi), crossover)
            return G(ws=ws, noise_mode=noise_mode, noise=noise, size=size, return_stages=stages)


class NetworkError(PixelfolderError):
    """The network itself failed (non-finite output): HTTP 500 with its one line."""


def psi_range() -> tuple:
    from ..models.base import PSI_RANGE
    return PSI_RANGE


def _seed(text: str, name: str) -> int:
    if not _INT.fullmatch(text):
        raise RequestError(f"{name} must be a whole number in [0, 2**32-1], got {text!r}")
    value = int(text)
    if not SEED_RANGE[0] <= value <= SEED_RANGE[1]:
        raise RequestError(f"{name} must be in [0, 2**32-1] (= {SEED_RANGE[1]}), got {value}")
    return value


def _number(text: str, name: str) -> float:
    if not _NUMBER.fullmatch(text) or not math.isfinite(float(text)):
        raise RequestError(f"{name} must be a finite number, got {text!r}")
    return float(text)


def _psi(text: str) -> float:
    low, high = psi_range()
    value = _number(text, "psi")
    if not low <= value <= high:
        raise RequestError(f"psi must be in [{low:g}, {high:g}], got {text}")
    return value


def png_bytes(array) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def page_html() -> bytes:
    from importlib.resources import files
    return files("pixelfolder.explore").joinpath("static", "index.html").read_bytes()


# ------------------------------------------------------------------------------------------------------- HTTP
class Handler(http.server.BaseHTTPRequestHandler):
    server: ExplorerServer
    server_version = "pixelfolder-serve"

    def do_GET(self):
        try:
            url = urlsplit(self.path)
            if not self.server.host_allowed(self.headers.get("Host", "")):
                return self._json(403, {"error": "this explorer answers only requests addressed to "
                                                 f"{self.server.url} (the Host header names another server)"})
            if url.path in ("/", "/index.html"):
                return self._send(200, "text/html; charset=utf-8", self.server.page)
            if url.path == "/api/info":
                return self._json(200, self.server.explorer.info())
            if url.path in ("/api/render", "/api/stages"):
                return self._render(url.query, stages=url.path == "/api/stages")
            if url.path == "/favicon.ico":
                return self._send(204, "image/x-icon", b"")
            return self._json(404, {"error": f"no such page {url.path!r}: the page is /, the API /api/info, "
                                             "/api/render and /api/stages"})
        except (NetworkError, RequestError, PixelfolderError) as e:
            status = 500 if isinstance(e, NetworkError) else 400
            return self._json(status, {"error": first_line(e, limit=300)})
        except (BrokenPipeError, ConnectionResetError):
            return None                                  # the browser went away mid-answer
        except Exception as e:  # noqa: BLE001  (a bug: one line to the page, the traceback to the log)
            self.log_error("error answering %s:\n%s", self.path, traceback.format_exc().rstrip())
            return self._json(500, {"error": f"internal error ({first_line(e, typed=True)}); the traceback is in "
                                             "the server's log"})

    def _render(self, query: str, *, stages: bool):
        explorer = self.server.explorer
        params = explorer.parse(query)
        images, render_ms, queue_ms = explorer.render(params, stages=stages)
        start = time.perf_counter()
        if stages:
            body = json.dumps({"stages": [{"size": list(a.shape[:2]),
                                           "png": base64.b64encode(png_bytes(a)).decode("ascii")} for a in images]})
            body, ctype = body.encode(), "application/json"
        else:
            body, ctype = png_bytes(images[0]), "image/png"
        render_ms += 1000 * (time.perf_counter() - start)
        self._send(200, ctype, body, {"X-Render-Ms": f"{render_ms:.1f}", "X-Queue-Ms": f"{queue_ms:.1f}"})

    def _json(self, status: int, obj: dict):
        self._send(status, "application/json", json.dumps(obj).encode())

    def _send(self, status: int, ctype: str, body: bytes, headers: dict | None = None):
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for key, val in (headers or {}).items():
                self.send_header(key, val)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format, *args):
        if not self.server.quiet:
            sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")

    def log_error(self, format, *args):
        sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")


class ExplorerServer(http.server.ThreadingHTTPServer):
    """The explorer's HTTP server: `serve_forever()` in a thread or the main thread, `shutdown()` from another."""
    daemon_threads = True          # Ctrl-C does not wait for a browser's open connection

    def __init__(self, address, explorer: Explorer, *, quiet: bool = False):
        self.explorer, self.quiet, self.page = explorer, quiet, page_html()
        super().__init__(address, Handler)

    @property
    def host(self) -> str:
        return self.server_address[0]

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def host_allowed(self, header: str) -> bool:
        """On a loopback address only requests naming a loopback host (no DNS rebinding from a web page)."""
        if not is_loopback(self.host):
            return True
        name = header.rsplit(":", 1)[0] if not header.endswith("]") else header
        return name.lower() in (*LOOPBACK_NAMES, self.host, f"[{self.host}]")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def build_server(G, *, host: str = "127.0.0.1", port: int = 0, device=None, label: str | None = None,
                 notes=(), quiet: bool = False) -> ExplorerServer:
    """An explorer server for generator G, bound (not yet serving): call serve_forever(), later shutdown()."""
    if not 0 <= int(port) <= 65535:
        raise PixelfolderError(f"port must be in [0, 65535], got {port}")
    explorer = Explorer(G, device=device, label=label, notes=notes)
    cls = ExplorerServer
    if ":" in host:
        cls = type("ExplorerServer6", (ExplorerServer,), {"address_family": socket.AF_INET6})
    try:
        return cls((host, int(port)), explorer, quiet=quiet)
    except socket.gaierror:
        raise PixelfolderError(f"cannot listen on {host!r}: not an address of this machine (use 127.0.0.1)") from None
    except OSError as e:
        way = {errno.EADDRINUSE: "choose another --port, or 0 for any free one",
               errno.EACCES: "ports below 1024 need privileges: choose another --port"}.get(
            e.errno, "is --host an address of this machine? 127.0.0.1 is")
        raise PixelfolderError(f"cannot listen on {host}:{port}: {e.strerror or e} ({way})") from None


@contextlib.contextmanager
def serving(server: ExplorerServer):
    """Serve in a background thread; on exit shut it down and close it (tests, tools/explorer_screenshot.py)."""
    thread = threading.Thread(target=server.serve_forever, name="pixelfolder-serve", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
