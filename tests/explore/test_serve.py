"""`pixelfolder serve`: the explorer's HTTP API against servers on 127.0.0.1 (port 0, in a thread), the verb itself
(Ctrl-C, refusals) and the page in a real headless chromium."""
import base64
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import run_cli

CHROMIUM = Path("/usr/bin/chromium")
SRC = Path(__file__).resolve().parents[2] / "src"


def get(url: str, host: str | None = None):
    """(status, headers, body) of a GET, errors included."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def png(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def sampled(G, seed, **kw) -> np.ndarray:
    from pixelfolder.data.images import to_uint8
    return to_uint8(G.sample([seed], **kw))[0].numpy()


def generated(capsys, tmp_path, network, seed, *flags) -> np.ndarray:
    """`pixelfolder generate --seeds SEED FLAGS` -> the seed's PNG."""
    out = tmp_path / f"gen-{seed}-{'_'.join(map(str, flags))}"
    code, _, err = run_cli(capsys, "generate", "--network", network, "--seeds", seed, "--outdir", out,
                           "--no-progress", "--device", "cpu", *flags)
    assert code == 0, err
    return np.asarray(Image.open(out / f"seed{seed:04d}.png").convert("RGB"))


@pytest.fixture(scope="module")
def pf():
    import pixelfolder
    return pixelfolder.load("pixelfolder-tiny")


@pytest.fixture(scope="module")
def cips():
    import pixelfolder
    return pixelfolder.load("cips_skip-tiny")


@pytest.fixture(scope="module")
def pf_server(pf):
    from pixelfolder.explore.serve import build_server, serving
    with serving(build_server(pf, quiet=True)) as server:
        yield server


@pytest.fixture(scope="module")
def cips_server(cips):
    from pixelfolder.explore.serve import build_server, serving
    with serving(build_server(cips, quiet=True)) as server:
        yield server


# ---------------------------------------------------------------------------------------------- the images
@pytest.mark.parametrize("seed, psi, noise", [(5, 1.0, "const"), (11, 0.6, "random"), (2 ** 32 - 1, -0.5, "none")])
def test_the_image_is_generates(capsys, tmp_path, pf_server, seed, psi, noise):
    status, headers, body = get(f"{pf_server.url}api/render?seed={seed}&psi={psi}&noise={noise}")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert float(headers["X-Render-Ms"]) > 0 and float(headers["X-Queue-Ms"]) >= 0
    want = generated(capsys, tmp_path, "pixelfolder-tiny", seed, "--trunc", psi, "--noise-mode", noise)
    np.testing.assert_array_equal(png(body), want)


def test_seeds_and_settings_change_the_image(pf, pf_server):
    a = png(get(f"{pf_server.url}api/render?seed=1")[2])
    b = png(get(f"{pf_server.url}api/render?seed=2")[2])
    c = png(get(f"{pf_server.url}api/render?seed=1&psi=0")[2])
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    np.testing.assert_array_equal(a, sampled(pf, 1))
    np.testing.assert_array_equal(c, sampled(pf, 1, truncation_psi=0.0))


def test_style_mixing(pf, pf_server):
    from pixelfolder.data.images import to_uint8
    from pixelfolder.layers import mix_ws
    from pixelfolder.utils import seed_latent
    url = pf_server.url + "api/render?seed=3&psi=0.7"
    plain = png(get(url)[2])
    np.testing.assert_array_equal(png(get(url + "&mix_seed=3&crossover=2")[2]), plain)   # mixing with itself
    mixed = png(get(url + "&mix_seed=8&crossover=2")[2])
    other = png(get(pf_server.url + "api/render?seed=8&psi=0.7")[2])
    assert not np.array_equal(mixed, plain) and not np.array_equal(mixed, other)
    z3, z8 = (seed_latent(s, pf.z_dim, pf.seed_rng)[0] for s in (3, 8))
    with torch.no_grad():
        ws = mix_ws(pf.mapping(z3, truncation_psi=0.7), pf.mapping(z8, truncation_psi=0.7), 2)
        want = to_uint8(pf(ws=ws))[0].numpy()
    np.testing.assert_array_equal(mixed, want)
    default = png(get(url + "&mix_seed=8")[2])        # crossover defaults to n_latent // 2 (info's default)
    info = json.loads(get(pf_server.url + "api/info")[2])
    np.testing.assert_array_equal(default, png(get(url + f"&mix_seed=8&crossover={info['defaults']['crossover']}")[2]))


def test_stages_of_pixelfolder():
    """A 128 px PixelFolder has two stages (32 and 128 px); the last one is the image."""
    import pixelfolder
    from pixelfolder.data.images import to_uint8
    from pixelfolder.explore.serve import build_server, serving
    from pixelfolder.utils import seed_latent
    torch.manual_seed(0)
    G = pixelfolder.create("pixelfolder-tiny", resolution=128).eval()
    with serving(build_server(G, quiet=True)) as server:
        info = json.loads(get(server.url + "api/info")[2])
        assert info["arch"] == "pixelfolder" and info["stages"] == 2 and info["any_scale"] is False
        status, headers, body = get(server.url + "api/stages?seed=4&psi=0.8")
        assert status == 200 and headers["Content-Type"] == "application/json"
        stages = [png(base64.b64decode(s["png"])) for s in json.loads(body)["stages"]]
        assert [s["size"] for s in json.loads(body)["stages"]] == [[32, 32], [128, 128]]
        image = png(get(server.url + "api/render?seed=4&psi=0.8")[2])
    np.testing.assert_array_equal(stages[-1], image)
    np.testing.assert_array_equal(image, sampled(G, 4, truncation_psi=0.8))
    with torch.no_grad():
        _, want = G(seed_latent(4, G.z_dim, G.seed_rng)[0], truncation_psi=0.8, return_stages=True)
    np.testing.assert_array_equal(stages[0], to_uint8(want[0])[0].numpy())
    assert stages[0].shape == (32, 32, 3) and not np.array_equal(stages[0], image[::4, ::4])


def test_scale_for_cips(capsys, tmp_path, cips, cips_server):
    info = json.loads(get(cips_server.url + "api/info")[2])
    assert info["any_scale"] is True and info["limits"]["scale"] == [0.25, 4.0] and info["n_latent"] == 1
    assert info["limits"]["crossover"] is None                  # a single w: no style mixing
    for scale, px in ((2, 64), (0.5, 16), (1, 32)):
        status, _, body = get(f"{cips_server.url}api/render?seed=6&scale={scale}")
        assert status == 200
        img = png(body)
        assert img.shape == (px, px, 3)
        np.testing.assert_array_equal(img, sampled(cips, 6, scale=scale))
    np.testing.assert_array_equal(png(get(f"{cips_server.url}api/render?seed=6&scale=2")[2]),
                                  generated(capsys, tmp_path, "cips_skip-tiny", 6, "--scale", 2))
    status, _, body = get(f"{cips_server.url}api/render?seed=6&mix_seed=2")
    assert status == 400 and "no layers to mix" in json.loads(body)["error"]


# ----------------------------------------------------------------------------------------------- refusals
BAD = [("seed=-1", "seed must be a whole number"), ("seed=1.5", "seed must be a whole number"),
       ("seed=abc", "seed must be a whole number"), ("seed=", "seed must be a whole number"),
       ("seed=4294967296", "seed must be in [0, 2**32-1]"), ("psi=1", "seed is missing"),
       ("seed=1&psi=nan", "psi must be a finite number"), ("seed=1&psi=inf", "psi must be a finite number"),
       ("seed=1&psi=2.5", "psi must be in [-1, 2]"), ("seed=1&psi=-1.01", "psi must be in [-1, 2]"),
       ("seed=1&psi=x", "psi must be a finite number"), ("seed=1&truncation=0.5", "unknown parameter 'truncation'"),
       ("seed=1&noise=loud", "noise must be one of const, random, none"), ("seed=1&seed=2", "given 2 times"),
       ("seed=1&scale=2", "renders only its native 32 px grid"), ("seed=1&crossover=2", "crossover needs mix_seed"),
       ("seed=1&mix_seed=2&crossover=5", "crossover must be a whole number in [1, 4]"),
       ("seed=1&mix_seed=2&crossover=0", "crossover must be a whole number in [1, 4]"),
       ("seed=1&mix_seed=-3", "mix_seed must be a whole number"),
       ("seed=1" + "&a=1" * 20, "too many parameters")]


@pytest.mark.parametrize("query, message", BAD)
def test_bad_requests_are_400_with_one_line(pf_server, query, message):
    for endpoint in ("render", "stages"):
        status, headers, body = get(f"{pf_server.url}api/{endpoint}?{query}")
        assert status == 400 and headers["Content-Type"] == "application/json", (query, status)
        error = json.loads(body)["error"]
        assert message in error and "\n" not in error and "Traceback" not in error, error


@pytest.mark.parametrize("query, message", [("seed=1&scale=0.2", "scale must be in [0.25, 4.0]"),
                                            ("seed=1&scale=8", "scale must be in [0.25, 4.0]"),
                                            ("seed=1&scale=nan", "scale must be a finite number")])
def test_bad_scale_is_400(cips_server, query, message):
    status, _, body = get(f"{cips_server.url}api/render?{query}")
    assert status == 400 and message in json.loads(body)["error"]


def test_an_unexpected_exception_is_500_with_one_line(pf, pf_server, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom in the model\nsecond line")
    monkeypatch.setattr(pf_server.explorer.G, "sample", broken)
    status, headers, body = get(pf_server.url + "api/render?seed=1")
    assert status == 500 and headers["Content-Type"] == "application/json"
    error = json.loads(body)["error"]
    assert "RuntimeError: boom in the model" in error and "\n" not in error and "second line" not in error
    assert "Traceback" in capsys.readouterr().err            # the traceback goes to the server's log only
    monkeypatch.undo()
    assert get(pf_server.url + "api/render?seed=1")[0] == 200   # and the server goes on


def test_the_page_and_other_paths(pf_server):
    status, headers, body = get(pf_server.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"pixelfolder explorer" in body
    status, _, body = get(pf_server.url + "etc/passwd")
    assert status == 404 and "no such page" in json.loads(body)["error"]
    status, _, body = get(pf_server.url + "api/info", host="attacker.example:80")   # DNS rebinding
    assert status == 403 and "Host header" in json.loads(body)["error"]
    info = json.loads(get(pf_server.url + "api/info", host=f"localhost:{pf_server.port}")[2])
    assert (info["arch"], info["resolution"], info["n_latent"], info["stages"]) == ("pixelfolder", 32, 5, 1)
    assert info["limits"] == {"seed": [0, 2 ** 32 - 1], "psi": [-1.0, 2.0], "crossover": [1, 4], "scale": None}
    assert "randomly initialised" in info["notes"][0]


def test_refuses_non_generators():
    import pixelfolder
    from pixelfolder.errors import PixelfolderError
    from pixelfolder.explore.serve import build_server
    with pytest.raises(PixelfolderError, match="needs a generator"):
        build_server(pixelfolder.load("pixelpyramids-tiny"))


# ----------------------------------------------------------------------------------------- the server itself
def test_binds_to_loopback_by_default(pf):
    from pixelfolder.cli.main import build_parser
    from pixelfolder.explore.serve import build_server
    server = build_server(pf, quiet=True)
    try:
        assert server.server_address[0] == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
    finally:
        server.server_close()
    args = build_parser().parse_args(["serve", "--network", "pixelfolder-tiny"])
    assert (args.host, args.port) == ("127.0.0.1", 7860)


def test_one_request_at_a_time(pf, pf_server, monkeypatch):
    """The second request arrives while the first renders: it waits, then both images are right."""
    want = {s: sampled(pf, s) for s in (20, 21)}
    inside, most, real = [0], [0], pf.sample
    guard, entered = threading.Lock(), threading.Event()

    def slow(*args, **kwargs):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        entered.set()
        time.sleep(0.5)
        try:
            return real(*args, **kwargs)
        finally:
            with guard:
                inside[0] -= 1
    monkeypatch.setattr(pf_server.explorer.G, "sample", slow)
    results = {}

    def fetch(seed):
        results[seed] = get(f"{pf_server.url}api/render?seed={seed}")
    first, second = (threading.Thread(target=fetch, args=(s,)) for s in want)
    start = time.perf_counter()
    first.start()
    assert entered.wait(30)
    second.start()
    first.join(30)
    second.join(30)
    elapsed = time.perf_counter() - start
    assert most[0] == 1 and elapsed >= 1.0                # both renders ran, one after the other
    for seed, (status, headers, body) in results.items():
        assert status == 200
        np.testing.assert_array_equal(png(body), want[seed])
    assert float(results[21][1]["X-Queue-Ms"]) >= 200     # the second one waited for the first


def test_cli_refusals(capsys):
    code, _, err = run_cli(capsys, "serve", "--network", "pixelpyramids-tiny", "--port", "0")
    assert code == 2 and "not a generator" in err and len(err.strip().splitlines()) == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, _, err = run_cli(capsys, "serve", "--network", "pixelfolder-tiny", "--port", taken.getsockname()[1],
                               "--device", "cpu")
    assert code == 2 and "cannot listen on 127.0.0.1" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "serve", "--network", "pixelfolder-tiny", "--port", "70000")
    assert code == 2 and "--port must be in [0, 65535]" in err


def test_ctrl_c_stops_cleanly():
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pixelfolder.cli.main", "serve", "--network", "pixelfolder-tiny",
                             "--port", "0", "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
    try:
        seen, deadline = b"", time.monotonic() + 60
        while b"Ctrl-C stops" not in seen:
            assert time.monotonic() < deadline and proc.poll() is None, seen + proc.stderr.read()
            if select.select([proc.stdout], [], [], 1)[0]:
                seen += os.read(proc.stdout.fileno(), 4096)
        url = seen.decode().split(" at ")[-1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert get(url + "api/render?seed=1")[0] == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert b"stopped" in out and b"Traceback" not in err
    assert b'"GET /api/render?seed=1 HTTP/1.1" 200' in err          # the access log


# ------------------------------------------------------------------------------------------------ the browser
SHOWN = """async () => {
  const r = await fetch(document.getElementById('image').src);
  const bytes = new Uint8Array(await r.arrayBuffer());
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}"""


def shown(page) -> np.ndarray:
    return png(base64.b64decode(page.evaluate(SHOWN)))


def wait_shown(page, query: str) -> None:
    page.wait_for_function("q => document.getElementById('image').dataset.query === q", arg=query, timeout=15000)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not at /usr/bin/chromium (CI installs it: "
                                                  ".ci/debian-packages)")
def test_the_page_in_a_browser(capsys, tmp_path, pf, pf_server, cips, cips_server):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(pf_server.url)
            wait_shown(page, "seed=0&psi=1&noise=const")
            first = shown(page)
            np.testing.assert_array_equal(first, sampled(pf, 0))
            assert page.is_hidden("#scaling") and page.is_visible("#mixing")   # fixed-size: no scale control
            assert "ms" in page.inner_text("#latency") and "pixelfolder-tiny" in page.inner_text("#meta")

            page.fill("#seed", "7")                                          # as a user: type, then Render
            page.click("#render")
            wait_shown(page, "seed=7&psi=1&noise=const")
            second = shown(page)
            assert not np.array_equal(first, second)
            np.testing.assert_array_equal(second, generated(capsys, tmp_path, "pixelfolder-tiny", 7))
            assert "seed7" in page.get_attribute("#download", "download")
            assert page.get_attribute("#download", "href") == page.get_attribute("#image", "src")

            page.fill("#psi", "5")
            page.click("#render")
            page.wait_for_function("() => document.getElementById('error').textContent.includes('psi must be')",
                                   timeout=15000)
            assert "psi must be in [-1, 2], got 5" in page.inner_text("#error")

            page.fill("#psi", "0.5")                                         # recovers: the error goes away
            page.click("#render")
            wait_shown(page, "seed=7&psi=0.5&noise=const")
            assert page.inner_text("#error") == ""
            np.testing.assert_array_equal(shown(page), sampled(pf, 7, truncation_psi=0.5))

            page.goto(cips_server.url)                                       # an any-scale model
            wait_shown(page, "seed=0&psi=1&noise=const&scale=1")
            assert page.is_visible("#scaling") and page.is_hidden("#mixing")  # n_latent 1: nothing to mix
            page.fill("#scale", "2")
            page.click("#render")
            wait_shown(page, "seed=0&psi=1&noise=const&scale=2")
            np.testing.assert_array_equal(shown(page), sampled(cips, 0, scale=2))
        finally:
            browser.close()
