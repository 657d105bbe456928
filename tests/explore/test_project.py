"""`pixelfolder project` (StyleGAN2-ADA's projector) and `generate --projected-w`, on tiny random-init presets.

The distance in these tests is the Inception one (`--distance inception`): the FID Inception-v3 of the `fid`
extra, which CI installs (.[test,fid]); everything runs offline in a temporary $PIXELFOLDER_CACHE.
"""
import contextlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

import pixelfolder
from pixelfolder.cli.main import main
from pixelfolder.errors import PixelfolderError
from tests.helpers import INSTALL, random_heads, random_vgg_trunk, run_cli

STEPS = 100                 # the shared projection (stylegan2-tiny, 32 px): ~5 CPU-s on one thread
TARGET_SEED = 5


@pytest.fixture(scope="module", autouse=True)
def offline_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("project-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIXELFOLDER_CACHE", str(cache))
        mp.setenv("PIXELFOLDER_OFFLINE", "1")
        mp.setenv("TORCH_HOME", str(cache / "torch"))          # no VGG16 from a developer's torch.hub folder
        threads = torch.get_num_threads()
        torch.set_num_threads(1)            # batch-1 tiny convolutions: a second thread only adds waiting
        try:
            yield cache
        finally:
            torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def inception():
    from pixelfolder.explore.project import open_distance
    from pixelfolder.metrics.weights import fid_helper_file
    assert fid_helper_file() is not None, INSTALL
    return open_distance("inception")[0]


def png(path, array):
    Image.fromarray(array).save(path)
    return path


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def psnr(a, b) -> float:
    return 10 * np.log10(255.0 ** 2 / ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())


@pytest.fixture(scope="module")
def projected(tmp_path_factory, inception):
    """stylegan2-tiny (fixed random weights) projecting its own seed-5 image (noise const) through the CLI."""
    from pixelfolder.data.images import to_uint8
    tmp = tmp_path_factory.mktemp("project")
    torch.manual_seed(0)
    G = pixelfolder.create("stylegan2-tiny").eval()
    pixelfolder.save(G, tmp / "G.pt")
    target = to_uint8(G.sample([TARGET_SEED], noise_mode="const"))[0].numpy()
    png(tmp / "target_in.png", target)
    out = io.StringIO()                                    # (capsys is per test: call main directly)
    with contextlib.redirect_stdout(out):
        code = main(["project", "--network", str(tmp / "G.pt"), "--target", str(tmp / "target_in.png"),
                     "--outdir", str(tmp / "out"), "--steps", str(STEPS), "--distance", "inception",
                     "--save-video", "--no-progress", "--device", "cpu"])
    return {"tmp": tmp, "code": code, "out": out.getvalue(), "target": target, "G": G}


def test_projection_writes_nvlabs_outputs(projected):
    assert projected["code"] == 0, projected["out"]
    out = projected["tmp"] / "out"
    assert "distance: Inception-v3 features" in projected["out"]
    assert (read(out / "target.png") == projected["target"]).all()          # same size: crop + resize is identity
    with np.load(out / "projected_w.npz") as npz:
        assert npz.files == ["w"]
        w = npz["w"]
    G = projected["G"]
    assert w.shape == (1, G.n_latent, G.config.w_dim) and w.dtype == np.float32
    assert np.allclose(w, w[:, :1])                                        # one w broadcast to every layer


def test_projection_recovers_the_generators_own_image(projected):
    from pixelfolder.data.images import to_uint8
    from pixelfolder.explore.project import render_w, w_stats
    G, target = projected["G"], projected["target"]
    proj = read(projected["tmp"] / "out" / "proj.png")
    w_avg, _ = w_stats(G)
    start = to_uint8(render_w(G, w_avg.view(1, 1, -1).repeat(1, G.n_latent, 1)))[0].numpy()
    # Measured (4 random stylegan2-tiny models x seeds 1 and 5, 100 steps, Inception + pixel distance): 14.2-18.9 dB
    # (this model and seed: 15.2 dB), from w_avg images at 5.1-11.2 dB, a gain of 5.2-11.9 dB. The bounds leave
    # >= 2 dB of margin on the worst measured case: above 12 dB and at least 3 dB better than the w_avg image.
    assert psnr(proj, target) > 12.0, psnr(proj, target)
    assert psnr(proj, target) > psnr(start, target) + 3.0, (psnr(proj, target), psnr(start, target))


def test_generate_projected_w_renders_proj_png(projected, capsys):
    tmp = projected["tmp"]
    code, _, err = run_cli(capsys, "generate", "--network", tmp / "G.pt", "--projected-w",
                             tmp / "out" / "projected_w.npz", "--outdir", tmp / "gen", "--device", "cpu")
    assert code == 0, err
    assert (read(tmp / "gen" / "proj00.png") == read(tmp / "out" / "proj.png")).all()


def test_progress_video_shows_target_and_projection(projected):
    import imageio.v2 as imageio
    out = projected["tmp"] / "out"
    frames = [f for f in imageio.get_reader(out / "proj.mp4").iter_data()]
    assert len(frames) == STEPS
    last = frames[-1].astype(np.float64)
    assert last.shape == (32, 64, 3)
    target, proj = projected["target"], read(out / "proj.png")
    # libx264 at 16 Mbit/s: a few levels of error; the halves are target | projection
    assert np.abs(last[:, :32] - target).mean() < 12
    assert np.abs(last[:, 32:] - proj).mean() < 12
    assert np.abs(last[:, 32:] - proj).mean() < np.abs(last[:, 32:] - np.roll(proj, 16, axis=1)).mean()


# ----------------------------------------------------------------------------------------------- the library

def test_distance_decreases_pixelfolder_with_noise_inputs(inception):
    from pixelfolder.data.images import to_uint8
    from pixelfolder.explore.project import project
    torch.manual_seed(1)
    G = pixelfolder.create("pixelfolder-tiny").eval()
    assert G.synthesis.noise_shapes()                                   # noise maps are optimised and regularised
    target = to_uint8(G.sample([3]))[0].numpy()
    seen, flags = [], [p.requires_grad for p in G.parameters()]
    r = project(G, target, inception, num_steps=40, on_step=lambda step, dist, loss: seen.append(step))
    assert seen == list(range(40)) and len(r.distances) == 40
    assert np.mean(r.distances[-5:]) < 0.7 * np.mean(r.distances[:5]), r.distances
    assert all(loss >= dist for dist, loss in zip(r.distances, r.losses))
    assert [p.requires_grad for p in G.parameters()] == flags          # the model's own flags are restored


def test_models_without_noise_inputs_and_seeded_runs(inception):
    from pixelfolder.data.images import to_uint8
    from pixelfolder.explore.project import project
    torch.manual_seed(2)
    G = pixelfolder.create("creps-tiny").eval()
    assert G.synthesis.noise_shapes() == []
    target = to_uint8(G.sample([0]))[0].numpy()
    a = project(G, target, inception, num_steps=4, seed=7)
    b = project(G, target, inception, num_steps=4, seed=7)
    c = project(G, target, inception, num_steps=4, seed=8)
    assert a.w.shape == (1, G.n_latent, G.config.w_dim)
    assert torch.equal(a.w, b.w) and not torch.equal(a.w, c.w)           # randomness is the seed argument


def test_lr_schedule_and_noise_regulariser_follow_nvlabs():
    from pixelfolder.explore.project import learning_rate, noise_regularization
    assert learning_rate(0, 1000) == 0                                   # ramp-up from 0 over 5 %
    assert learning_rate(25, 1000) == pytest.approx(0.05)
    assert learning_rate(500, 1000) == pytest.approx(0.1)
    assert learning_rate(875, 1000) == pytest.approx(0.05)              # cosine ramp-down over the last 25 %
    flat = torch.ones(1, 1, 16, 16)
    # a constant map: (mean of 1*1)^2 = 1 per direction and scale (16 px, then 8 px): 4
    assert float(noise_regularization([flat])) == pytest.approx(4.0)
    g = torch.Generator().manual_seed(0)
    assert float(noise_regularization([torch.randn(1, 1, 64, 64, generator=g)])) < 0.01


def test_inception_taps_end_in_pool3(inception):
    from pixelfolder.explore.project import inception_taps
    x = torch.rand(1, 3, 96, 96) * 2 - 1
    taps = inception_taps(inception.net, x.contiguous(memory_format=torch.channels_last))
    assert len(taps) == 5
    torch.testing.assert_close(taps[-1].mean(dim=(2, 3)), inception.net.pool3(x))


def test_auto_distance_prefers_lpips_when_its_weights_are_found(monkeypatch, tmp_path, capsys):
    from pixelfolder.metrics import weights as W
    vgg = random_vgg_trunk()
    trunk = {f"features.{k}": v for k, v in vgg.features.state_dict().items()}
    heads = W.canonical_lpips(random_heads(), "random")
    monkeypatch.setattr(W, "vgg16_weights", lambda path=None: W.Weights("vgg16", trunk, "random trunk", "0" * 64))
    monkeypatch.setattr(W, "lpips_weights", lambda path=None: W.Weights("lpips", heads, "random heads", "1" * 64))
    torch.manual_seed(0)
    pixelfolder.save(pixelfolder.create("stylegan2-tiny").eval(), tmp_path / "G.pt")
    png(tmp_path / "t.png", np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8))
    code, out, err = run_cli(capsys, "project", "--network", tmp_path / "G.pt", "--target", tmp_path / "t.png",
                             "--outdir", tmp_path / "o", "--steps", 3, "--no-progress", "--device", "cpu")
    assert code == 0, err
    assert "distance: LPIPS-VGG" in out
    assert read(tmp_path / "o" / "target.png").shape == (32, 32, 3)   # centre crop 40x40 -> 32x32


def test_auto_distance_falls_back_to_inception_with_a_note(tmp_path, inception):
    from pixelfolder.explore.project import open_distance
    d, note = open_distance("auto")                      # offline, empty cache: no VGG16 weights
    assert d.name == "Inception-v3" and "instead of LPIPS-VGG (no VGG16 weights: give --vgg and --lpips)" in note
    assert "\n" not in note


def test_gif_fallback_without_imageio_ffmpeg(tmp_path, monkeypatch):
    from pixelfolder.data.images import to_uint8
    from pixelfolder.explore import project as P
    from pixelfolder.explore import video
    monkeypatch.setattr(video, "ffmpeg_missing", lambda: "imageio-ffmpeg is not installed")
    torch.manual_seed(0)
    G = pixelfolder.create("creps-tiny").eval()
    target = np.zeros((32, 32, 3), np.uint8)
    w_steps = torch.randn(12, G.config.w_dim)
    notes = []
    path = P.write_video(tmp_path, G, target, w_steps, note=notes.append)
    assert path == tmp_path / "proj.gif" and not (tmp_path / "proj.mp4").exists()
    assert len(notes) == 1 and "proj.gif" in notes[0]
    gif = Image.open(path)
    assert gif.n_frames == 12 and gif.size == (64, 32)
    gif.seek(gif.n_frames - 1)
    last = np.asarray(gif.convert("RGB")).astype(int)
    want = to_uint8(P.render_w(G, w_steps[-1].view(1, 1, -1).repeat(1, G.n_latent, 1)))[0].numpy()
    assert (last[:, :32] <= 8).all()                                          # the (black) target, palette error
    assert np.abs(last[:, 32:] - want).mean() < 16


def test_target_is_centre_cropped_and_lanczos_resized(tmp_path):
    from pixelfolder.explore.project import load_target
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (60, 100, 3), dtype=np.uint8)
    png(tmp_path / "wide.png", img)
    want = np.asarray(Image.fromarray(img[:, 20:80]).resize((32, 32), Image.LANCZOS))
    assert (load_target(tmp_path / "wide.png", 32) == want).all()


# ------------------------------------------------------------------------------------------------- refusals

def one_line_error(code, err, *words):
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words), err


def test_refuses_a_likelihood_model(tmp_path, capsys):
    png(tmp_path / "t.png", np.zeros((8, 8, 3), np.uint8))
    code, _, err = run_cli(capsys, "project", "--network", "pixelpyramids-tiny", "--target", tmp_path / "t.png",
                             "--outdir", tmp_path / "o", "--device", "cpu")
    one_line_error(code, err, "pixelfolder project: error:", "likelihood", "mapping network")


def test_refuses_a_target_that_is_not_an_image(tmp_path, capsys):
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, _, err = run_cli(capsys, "project", "--network", "stylegan2-tiny", "--target", tmp_path / "photo.png",
                             "--outdir", tmp_path / "o", "--device", "cpu")
    one_line_error(code, err, "photo.png is not a readable image")
    code, _, err = run_cli(capsys, "project", "--network", "stylegan2-tiny", "--target", tmp_path / "none.png",
                             "--outdir", tmp_path / "o", "--device", "cpu")
    one_line_error(code, err, "none.png: no such image file")


@pytest.mark.parametrize("steps", ["0", "-3", "ten"])
def test_refuses_steps_below_one(tmp_path, capsys, steps):
    png(tmp_path / "t.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit) as exit_info:          # argparse's own one-line refusal
        run_cli(capsys, "project", "--network", "stylegan2-tiny", "--target", tmp_path / "t.png",
                "--outdir", tmp_path / "o", "--steps", steps)
    one_line_error(exit_info.value.code, capsys.readouterr().err, "pixelfolder project: error:", "--steps")


def test_library_refuses_bad_steps_and_targets(inception):
    from pixelfolder.explore.project import project
    G = pixelfolder.create("stylegan2-tiny")
    with pytest.raises(PixelfolderError, match="steps"):
        project(G, np.zeros((32, 32, 3), np.uint8), inception, num_steps=0)
    with pytest.raises(PixelfolderError, match="uint8 image"):
        project(G, np.zeros((16, 16, 3), np.uint8), inception, num_steps=1)


def test_refuses_projected_w_that_does_not_fit(tmp_path, capsys):
    torch.manual_seed(0)
    pixelfolder.save(pixelfolder.create("stylegan2-tiny").eval(), tmp_path / "G.pt")     # n_latent 8, w_dim 64
    cases = {"short.npz": {"w": np.zeros((1, 5, 64), np.float32)},
             "flat.npz": {"w": np.zeros((1, 64), np.float32)},
             "nokey.npz": {"ws": np.zeros((1, 8, 64), np.float32)}}
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    expect = {"short.npz": "(1, 5, 64)", "flat.npz": "(1, 64)", "nokey.npz": "no array 'w'",
              "junk.npz": "not a readable .npz"}
    for name, words in expect.items():
        code, _, err = run_cli(capsys, "generate", "--network", tmp_path / "G.pt", "--projected-w",
                                 tmp_path / name, "--outdir", tmp_path / "g", "--device", "cpu")
        one_line_error(code, err, "pixelfolder generate: error:", words)
    code, _, err = run_cli(capsys, "generate", "--network", tmp_path / "G.pt", "--projected-w",
                             tmp_path / "short.npz", "--outdir", tmp_path / "g", "--sheet", "truncation")
    one_line_error(code, err, "--sheet", "--projected-w")
