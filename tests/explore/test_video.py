"""`pixelfolder video`: gen_video.py's keyframe layout, frame count and spline, zoom videos, the encoders, refusals."""
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pixelfolder.explore import video
from tests.helpers import run_cli

TINY = "pixelfolder-tiny"          # fixed-size, 32 px
ANY = "cips_skip-tiny"             # any-scale, 32 px


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def generated(capsys, tmp_path, network, seeds, *extra) -> dict:
    """seed -> `pixelfolder generate`'s image (int array) for these seeds and options."""
    out = tmp_path / f"gen-{network}-{'_'.join(map(str, extra))}"
    code, _, err = run_cli(capsys, "generate", "--network", network, "--seeds", seeds, "--outdir", out,
                           "--device", "cpu", *extra)
    assert code == 0, err
    return {int(p.stem[4:]): png(p) for p in out.glob("seed*.png")}


def cell(frame, row, col, size=32):
    return frame[row * size:(row + 1) * size, col * size:(col + 1) * size]


def luma(a):
    return a.astype(float) @ np.array([0.299, 0.587, 0.114])


# ------------------------------------------------------------------------------------------ interpolation
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_cubic_and_linear_match_scipy_interp1d_on_the_wrapped_keyframes(k):
    from scipy.interpolate import interp1d
    keys = torch.randn(k, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
    # gen_video: x = arange(-K*wraps, K*(wraps+1)), y = the keyframes tiled 2*wraps+1 times, wraps = 2
    x = np.arange(-k * 2, k * 3)
    y = np.tile(keys.numpy(), [5, 1, 1])
    ts = np.arange(k * 9) / 9
    for kind in ("cubic", "linear"):
        ref = interp1d(x, y, kind=kind, axis=0)
        ours = video.LoopInterpolator(keys, kind)
        err = max(float((ours(t) - torch.from_numpy(ref(t))).abs().max()) for t in ts)
        assert err < 1e-12, f"{kind}, K={k}: max diff to scipy {err:.3g}"
        for i in range(k):                                      # through the keyframes, exactly
            assert torch.equal(ours(i), keys[i])
        # it loops: just before t = K it is (nearly) back at the first keyframe
        assert float((ours(k - 1e-9) - keys[0]).abs().max()) < 1e-6


def test_the_spline_is_not_piecewise_linear():
    keys = torch.tensor([[0.0], [1.0], [0.0], [-1.0]], dtype=torch.float64)
    cubic, linear = video.LoopInterpolator(keys, "cubic"), video.LoopInterpolator(keys, "linear")
    assert abs(float(linear(0.5)) - 0.5) < 1e-12
    assert abs(float(cubic(0.5)) - 0.5) > 0.05


def test_keyframe_layout_follows_gen_video():
    # cell c of the grid gets seeds c*K .. c*K+K-1; --num-keyframes reuses the seeds cyclically
    assert video.keyframe_seeds(list(range(8)), (2, 2)) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert video.keyframe_seeds([5, 6, 7], (2, 1), num_keyframes=2) == [[5, 6], [7, 5]]
    shuffled = video.keyframe_seeds(list(range(8)), (2, 2), shuffle_seed=1)
    arr = np.arange(8)
    np.random.RandomState(seed=1).shuffle(arr)
    assert shuffled == arr.reshape(4, 2).tolist() and sorted(s for cell in shuffled for s in cell) == list(range(8))


# ------------------------------------------------------------------------------------------- the verb
def test_frames_count_size_and_keyframes_equal_generate(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)            # the feature does not need scipy
    monkeypatch.setitem(sys.modules, "scipy.interpolate", None)
    seeds, (gw, gh), w_frames = list(range(16)), (4, 2), 4
    code, out, err = run_cli(capsys, "video", "--network", TINY, "--seeds", "0-15", "--grid", "4x2", "--w-frames",
                             w_frames, "--output", f"{tmp_path / 'frames'}/", "--device", "cpu")
    assert code == 0, err
    frames = sorted((tmp_path / "frames").glob("frame*.png"))
    num_keyframes = len(seeds) // (gw * gh)
    assert len(frames) == num_keyframes * w_frames == 8          # gen_video: range(num_keyframes * w_frames)
    first = png(frames[0])
    assert first.shape == (gh * 32, gw * 32, 3)
    ref = generated(capsys, tmp_path, TINY, "0-15")
    # frame 0: every cell's first keyframe; frame w_frames: the second ones (cell c holds seeds 2c, 2c+1)
    for f, k in ((0, 0), (w_frames, 1)):
        frame = png(frames[f])
        for c in range(gw * gh):
            r, q = divmod(c, gw)
            diff = np.abs(cell(frame, r, q) - ref[c * num_keyframes + k]).max()
            assert diff <= 1, f"frame {f}, cell {c}: max diff {diff} to seed {c * num_keyframes + k}"
    # in between, the frames are neither keyframe
    mid = png(frames[w_frames // 2])
    assert np.abs(cell(mid, 0, 0) - ref[0]).mean() > 1 and np.abs(cell(mid, 0, 0) - ref[1]).mean() > 1
    assert "8 frame(s) of 128x64 px" in out


def test_mp4_decodes_with_the_frame_count_size_and_first_frame(tmp_path, capsys):
    pytest.importorskip("imageio_ffmpeg", reason="MP4 needs the `video` extra (installed by the test extra)")
    import imageio.v2 as imageio
    code, out, err = run_cli(capsys, "video", "--network", TINY, "--seeds", "0-15", "--grid", "4x2", "--w-frames",
                             "4", "--output", tmp_path / "lerp.mp4", "--device", "cpu")
    assert code == 0, err
    reader = imageio.get_reader(tmp_path / "lerp.mp4")
    frames = [f.astype(int) for f in reader]
    assert reader.get_meta_data()["fps"] == 60
    assert len(frames) == 8 and frames[0].shape == (64, 128, 3)
    ref = generated(capsys, tmp_path, TINY, "0-15")
    # H.264 yuv420p is lossy (chroma at half resolution; these random-weight images are pixel noise): compare the
    # luma, mean |dY| <= 8 of 255 (measured ~4), and frame 0 must be nearer to seed 0 than frame w_frames is
    near = np.abs(luma(cell(frames[0], 0, 0)) - luma(ref[0])).mean()
    far = np.abs(luma(cell(frames[4], 0, 0)) - luma(ref[0])).mean()
    assert near <= 8 and far > 2 * near, (near, far)


def test_gif_loops_and_falls_back_when_imageio_is_missing(tmp_path, capsys, monkeypatch):
    for name in ("imageio", "imageio.v2", "imageio_ffmpeg"):
        monkeypatch.setitem(sys.modules, name, None)
    code, out, err = run_cli(capsys, "video", "--network", TINY, "--seeds", "0-3", "--grid", "2x1", "--w-frames",
                             "3", "--fps", "25", "--output", tmp_path / "lerp.mp4", "--device", "cpu")
    assert code == 0, err
    assert not (tmp_path / "lerp.mp4").exists() and "writing the GIF" in out
    gif = Image.open(tmp_path / "lerp.gif")
    assert gif.n_frames == 6 and gif.size == (64, 32) and gif.info["loop"] == 0 and gif.info["duration"] == 40
    ref = generated(capsys, tmp_path, TINY, "0-3")
    first = np.asarray(gif.convert("RGB")).astype(int)
    gif.seek(3)
    middle = np.asarray(gif.convert("RGB")).astype(int)
    # 256 colours per frame: close to the image, not equal (measured mean ~6)
    assert np.abs(cell(first, 0, 1) - ref[2]).mean() < 12
    assert np.abs(cell(middle, 0, 1) - ref[3]).mean() < 12          # frame w_frames: the second keyframes


def test_frames_stream_a_batch_at_a_time(monkeypatch):
    import pixelfolder
    G = pixelfolder.create(TINY)
    calls = []
    real = G.synthesis.forward

    def counting(ws, *a, **k):
        calls.append(ws.shape[0])
        return real(ws, *a, **k)
    monkeypatch.setattr(G.synthesis, "forward", counting)
    total, frames = video.interpolation_frames(G, list(range(8)), grid=(2, 1), w_frames=50, batch=4)
    assert total == 200 and calls == []                 # nothing rendered before a frame is asked for
    next(frames)
    assert calls == [4]                                 # batch 4 over 2 cells: two frames per forward
    for _ in range(5):
        next(frames)
    assert calls == [4, 4, 4] and max(calls) <= 4


def test_random_noise_is_the_first_seeds_as_in_generate():
    import pixelfolder
    from pixelfolder.data.images import to_uint8
    G = pixelfolder.create("stylegan2-tiny")
    with torch.no_grad():                                   # random init has zero noise strengths: make noise count
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
    from pixelfolder.utils import seed_latent
    _, frames = video.interpolation_frames(G, [4, 9], w_frames=2, noise_mode="random")
    frames = [f.astype(int) for f in frames]                # t = 0, 0.5, 1, 1.5
    ref = to_uint8(G.sample([4], noise_mode="random"))[0].numpy().astype(int)
    const = to_uint8(G.sample([4]))[0].numpy().astype(int)
    assert np.abs(frames[0] - ref).max() <= 1 and np.abs(frames[0] - const).max() > 1
    # held for the whole video: at the second keyframe, seed 9's W with seed 4's noise (not seed 9's own draw)
    _, g4 = seed_latent(4, G.z_dim, G.seed_rng)
    noise4 = [torch.randn(1, 1, h, w, generator=g4) for h, w in G.synthesis.noise_shapes()]
    with torch.no_grad():
        ws9 = G.mapping(seed_latent(9, G.z_dim, G.seed_rng)[0])
        held = to_uint8(G.synthesis(ws9, noise_mode="random", noise=noise4))[0].numpy().astype(int)
    own = to_uint8(G.sample([9], noise_mode="random"))[0].numpy().astype(int)
    assert np.abs(frames[2] - held).max() <= 1 and np.abs(frames[2] - own).max() > 1


def test_truncation_and_scale_reach_the_frames(tmp_path, capsys):
    code, _, err = run_cli(capsys, "video", "--network", ANY, "--seeds", "0-1", "--w-frames", "2", "--trunc",
                           "0.5", "--scale", "1.5", "--output", f"{tmp_path / 'f'}/", "--device", "cpu")
    assert code == 0, err
    ref = generated(capsys, tmp_path, ANY, "0", "--trunc", "0.5", "--scale", "1.5")
    frame = png(tmp_path / "f" / "frame000000.png")
    assert frame.shape == (48, 48, 3) and np.abs(frame - ref[0]).max() <= 1


# ----------------------------------------------------------------------------------------------- zoom
def test_zoom_frames_have_one_size_and_go_from_scale_1_to_zoom_to(tmp_path, capsys):
    code, out, err = run_cli(capsys, "video", "--network", ANY, "--seeds", "3", "--zoom", "--w-frames", "5",
                             "--output", f"{tmp_path / 'z'}/", "--device", "cpu")
    assert code == 0, err
    frames = sorted((tmp_path / "z").glob("frame*.png"))
    assert len(frames) == 5 and all(png(f).shape == (32, 32, 3) for f in frames)
    first = generated(capsys, tmp_path, ANY, "3")[3]
    last = generated(capsys, tmp_path, ANY, "3", "--scale", "4")[3]     # 128 px; its centre 32 px
    assert np.abs(png(frames[0]) - first).max() <= 1
    assert np.abs(png(frames[-1]) - last[48:80, 48:80]).max() <= 1
    assert np.abs(png(frames[2]) - first).mean() > 1                  # the frames between zoom
    scales = video.zoom_scales(5, 4.0)
    assert scales[0] == 1 and abs(scales[-1] - 4) < 1e-12 and scales == sorted(set(scales))


def test_zoom_grid_has_one_seed_per_cell(tmp_path, capsys):
    code, out, err = run_cli(capsys, "video", "--network", ANY, "--seeds", "3,4", "--grid", "2x1", "--zoom",
                             "--zoom-to", "2", "--w-frames", "3", "--output", f"{tmp_path / 'z'}/", "--device", "cpu")
    assert code == 0, err
    frames = sorted((tmp_path / "z").glob("frame*.png"))
    assert len(frames) == 3 and png(frames[0]).shape == (32, 64, 3)


# ------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("argv, words", [
    (["--network", TINY, "--seeds", "0-14", "--grid", "4x2"], "multiple of 8"),
    (["--network", TINY, "--seeds", "0", "--zoom"], "any-scale model"),
    (["--network", "pixelpyramids-tiny", "--seeds", "0-1"], "likelihood"),
    (["--network", ANY, "--seeds", "0-1", "--zoom"], "one seed per grid cell"),
    (["--network", ANY, "--seeds", "0", "--zoom", "--kind", "linear"], "not to --zoom"),
    (["--network", ANY, "--seeds", "0", "--zoom", "--zoom-to", "0.5"], "--zoom-to must be"),
    (["--network", TINY, "--seeds", "0-1", "--scale", "2"], "any-scale model"),
    (["--network", TINY, "--seeds", "0-1", "--grid", "2y1"], "bad --grid"),
])
def test_refusals_are_one_line(tmp_path, capsys, argv, words):
    code, out, err = run_cli(capsys, "video", *argv, "--output", tmp_path / "v.gif", "--device", "cpu")
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "v.gif").exists()


def test_unknown_output_format_is_refused_before_loading(tmp_path, capsys):
    code, out, err = run_cli(capsys, "video", "--network", "no-such-network", "--seeds", "0", "--output",
                             tmp_path / "v.avi")
    assert code == 2 and ".gif" in err and "v.avi" in err
