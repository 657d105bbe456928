"""Interpolation videos (NVlabs gen_video.py semantics) and zoom videos of any-scale models, streamed to an encoder.

Interpolation: the seeds are split into keyframes per grid cell (cell c of a WxH grid, row-major, gets seeds
c*K .. c*K+K-1, K = len(seeds) // (W*H) keyframes); each keyframe is mapped to W (truncation applied there, as
gen_video does), and W is interpolated over t = frame / w_frames in [0, K) by a spline through the keyframes tiled
2*WRAPS+1 times (x = -K*WRAPS .. K*(WRAPS+1)-1), which is scipy.interpolate.interp1d(kind='cubic') of gen_video,
computed here without scipy (a not-a-knot cubic spline on unit knots), or by linear interpolation. The video has
K * w_frames frames and loops: the frame after the last is the first keyframe again.

Zoom (any-scale models: CIPS, INR-GAN, CREPS): one seed per cell rendered at a scale growing geometrically from 1 to
`zoom_to`, each frame the centre crop of the native size, so every frame has the same size.

Frames are rendered a few at a time, encoded and dropped: memory does not grow with the number of frames. Outputs:
.mp4/.mkv/.mov through imageio + imageio-ffmpeg (the `video` extra; libx264, 12 Mbit/s as gen_video), .gif through
Pillow (one palette per frame), or a directory (a path ending in '/', or an existing directory): one PNG per frame,
lossless.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import NamedTuple

from ..errors import PixelfolderError
from . import need_generator

WRAPS = 2                 # gen_video's `wraps`: keyframe copies on each side of the looped period
W_FRAMES = 120            # gen_video's --w-frames default: frames between two keyframes
FPS = 60                  # gen_video's frame rate
BITRATE = "12M"           # gen_video's libx264 bitrate
ZOOM_TO = 4.0
KINDS = ("cubic", "linear")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov")
MAX_FRAMES = 1_000_000    # about 4.6 hours at 60 fps: beyond it the arguments are a typo


# ------------------------------------------------------------------------------------------------ arguments
def parse_grid(text: str) -> tuple[int, int]:
    """'4x2' or '4,2' -> (4, 2): columns x rows, as gen_video's --grid."""
    m = re.fullmatch(r"\s*(\d+)\s*[x,]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise PixelfolderError(f"bad --grid {text!r}: use COLUMNSxROWS, e.g. 4x2")
    w, h = int(m.group(1)), int(m.group(2))
    if w * h > 1024:
        raise PixelfolderError(f"--grid {w}x{h} has {w * h} cells; at most 1024")
    return w, h


def keyframe_seeds(seeds, grid: tuple[int, int], num_keyframes: int | None = None,
                   shuffle_seed: int | None = None) -> list[list[int]]:
    """The keyframe seeds of each grid cell, row-major: gen_video's layout (cell c gets seeds c*K .. c*K+K-1)."""
    import numpy as np
    cells = grid[0] * grid[1]
    if not seeds:
        raise PixelfolderError("no seeds given: use e.g. --seeds 0-31")
    if num_keyframes is None:
        if len(seeds) % cells:
            raise PixelfolderError(f"{len(seeds)} seeds do not split over the {grid[0]}x{grid[1]} grid: give a "
                                   f"multiple of {cells} seeds (each cell gets len(seeds) // {cells} keyframes), "
                                   "or --num-keyframes")
        num_keyframes = len(seeds) // cells
    if num_keyframes < 1:
        raise PixelfolderError("--num-keyframes must be >= 1")
    all_seeds = [seeds[i % len(seeds)] for i in range(num_keyframes * cells)]
    if shuffle_seed is not None:
        arr = np.array(all_seeds, dtype=np.int64)
        np.random.RandomState(seed=shuffle_seed).shuffle(arr)
        all_seeds = [int(s) for s in arr]
    return [all_seeds[c * num_keyframes:(c + 1) * num_keyframes] for c in range(cells)]


def render_size(G, size: int | None, scale: float | None) -> int:
    """The render side in px: native, or --size/--scale on any-scale models (refused on fixed-size ones)."""
    out = G.output_size(size, scale)
    if out is None or out == G.resolution:
        return G.resolution
    if G.native_size_only:
        raise PixelfolderError(f"{G.arch} renders only its native {G.resolution}px grid: --size/--scale need an "
                               "any-scale model (CIPS, INR-GAN, CREPS)")
    return out


# ------------------------------------------------------------------------------------------- interpolation
def not_a_knot_second_derivatives(y):
    """Second derivatives M (N, ...) of the not-a-knot cubic spline through y (N, ...) at knots 0, 1, ..., N-1.

    That spline is scipy's interp1d(kind='cubic') (make_interp_spline, k=3, default boundary). With unit spacing the
    interior conditions are M[i-1] + 4 M[i] + M[i+1] = d[i] = 6 (y[i+1] - 2 y[i] + y[i-1]); not-a-knot (a continuous
    third derivative at knots 1 and N-2) gives M[0] = 2 M[1] - M[2], hence 6 M[1] = d[1] (and the same at the other
    end), and the rest is tridiagonal (Thomas algorithm). N >= 5.
    """
    n = y.shape[0]
    if n < 5:
        raise ValueError(f"the not-a-knot system here needs >= 5 knots, got {n}")
    d = 6 * (y[2:] - 2 * y[1:-1] + y[:-2])           # d[i-1] for knots i = 1 .. N-2
    m = y.new_zeros(y.shape)
    m[1], m[n - 2] = d[0] / 6, d[n - 3] / 6
    rhs = d[1:n - 3].clone()                           # knots 2 .. N-3
    rhs[0] -= m[1]
    rhs[-1] -= m[n - 2]
    k = rhs.shape[0]
    cp = [0.25]
    dp = [rhs[0] / 4]
    for j in range(1, k):
        denom = 4 - cp[j - 1]
        cp.append(1 / denom)
        dp.append((rhs[j] - dp[j - 1]) / denom)
    m[1 + k] = dp[k - 1]
    for j in range(k - 2, -1, -1):
        m[2 + j] = dp[j] - cp[j] * m[3 + j]
    m[0] = 2 * m[1] - m[2]
    m[n - 1] = 2 * m[n - 2] - m[n - 3]
    return m


class LoopInterpolator:
    """W at time t of one cell: keys (K, ...) at t = 0 .. K-1, looping with period K (gen_video's interpolation).

    cubic: the spline scipy's interp1d(kind='cubic') fits through the keys tiled 2*WRAPS+1 times; linear: straight
    lines between successive keys (and from the last back to the first). Computed in float64; at an integer t it
    returns that key exactly.
    """

    def __init__(self, keys, kind: str = "cubic", wraps: int = WRAPS):
        import torch
        if kind not in KINDS:
            raise PixelfolderError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind, self.dtype = kind, keys.dtype
        y = keys.detach().to("cpu", torch.float64)
        self.k = y.shape[0]
        if kind == "cubic":
            tiled = y.repeat(2 * wraps + 1, *[1] * (y.ndim - 1))          # x = -K*wraps .. K*(wraps+1)-1
            m = not_a_knot_second_derivatives(tiled)
            start = self.k * wraps                                        # the knot at x = 0
            self.y, self.m = tiled[start:start + self.k + 1], m[start:start + self.k + 1]
        else:
            self.y = torch.cat([y, y[:1]])

    def __call__(self, t: float):
        i = math.floor(t)
        if not 0 <= i < self.k:
            raise ValueError(f"t must lie in [0, {self.k}), got {t}")
        u = float(t) - i
        y0, y1 = self.y[i], self.y[i + 1]
        if self.kind == "linear":
            out = y0 + u * (y1 - y0)
        else:
            m0, m1 = self.m[i], self.m[i + 1]
            out = y0 + u * ((y1 - y0) - (2 * m0 + m1) / 6) + (u * u) * (m0 / 2) + (u * u * u) * ((m1 - m0) / 6)
        return out.to(self.dtype)


# ----------------------------------------------------------------------------------------------- writers
def output_format(path) -> str:
    """'frames' (a directory of PNGs), 'gif' or 'ffmpeg', from the output path."""
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return "frames"
    suffix = Path(text).suffix.lower()
    if suffix == ".gif":
        return "gif"
    if suffix in VIDEO_SUFFIXES:
        return "ffmpeg"
    raise PixelfolderError(f"--output {text}: use a {'/'.join(VIDEO_SUFFIXES)} or .gif file, or a directory "
                           "ending in / for one PNG per frame")


def ffmpeg_missing() -> str | None:
    """Why MP4 cannot be written here (None when imageio and its ffmpeg are there)."""
    try:
        import imageio.v2  # noqa: F401  (only: is it there)
        import imageio_ffmpeg
    except ImportError:
        return "imageio / imageio-ffmpeg are not installed (pip install 'pixelfolder[video]')"
    try:
        imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:
        return f"imageio-ffmpeg finds no ffmpeg binary ({e})"
    return None


class FramesWriter:
    """One PNG per frame, frame000000.png ..., each written atomically."""

    def __init__(self, directory, fps: float):
        from ..cli.common import writable_dir
        self.dir, self.count = writable_dir(directory), 0

    def append(self, frame) -> None:
        from ..atomic import atomic_write
        from ..data.images import save_uint8
        atomic_write(self.dir / f"frame{self.count:06d}.png", lambda tmp: save_uint8(frame, tmp), suffix=".png")
        self.count += 1

    def close(self) -> None:
        pass


class GifWriter:
    """An animated, looping GIF written frame by frame (Pillow quantizes each frame to its own 256-colour palette,
    fast octree, and LZW-encodes it; nothing is kept between frames). GIF delays are whole centiseconds, at least 2
    (viewers slow shorter ones)."""

    def __init__(self, path, fps: float):
        self.file = open(path, "wb")     # noqa: SIM115  (kept open across append(), closed by close())
        self.delay_ms = 10 * max(2, round(100 / fps))
        self.started = False

    def append(self, frame) -> None:
        import struct

        from PIL import GifImagePlugin, Image
        im = Image.fromarray(frame[..., :3] if frame.shape[-1] >= 3 else frame[..., 0]).convert("RGB").quantize(
            256, method=Image.Quantize.FASTOCTREE)          # ~100x faster than median cut, nearly as close
        if not self.started:
            h, w = frame.shape[:2]
            self.file.write(b"GIF89a" + struct.pack("<HHBBB", w, h, 0, 0, 0)          # no global colour table
                            + b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")               # loop forever
            self.started = True
        for chunk in GifImagePlugin.getdata(im, duration=self.delay_ms, include_color_table=True):
            self.file.write(chunk)

    def close(self) -> None:
        if not self.file.closed:
            self.file.write(b";")
            self.file.close()


class FfmpegWriter:
    """H.264 through imageio-ffmpeg (gen_video's codec and bitrate), yuv420p."""

    def __init__(self, path, fps: float):
        import imageio.v2 as imageio
        self.writer = imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                         bitrate=BITRATE, macro_block_size=2, ffmpeg_log_level="error")

    def append(self, frame) -> None:
        self.writer.append_data(frame)

    def close(self) -> None:
        self.writer.close()


WRITERS = {"frames": FramesWriter, "gif": GifWriter, "ffmpeg": FfmpegWriter}


class Written(NamedTuple):
    path: Path
    format: str          # 'ffmpeg', 'gif' or 'frames'
    frames: int
    shape: tuple         # (H, W, C) of a frame
    fps: float           # as played (GIF delays are whole centiseconds)


def write_frames(output, frames, fps: float = FPS, note=print) -> Written:
    """Encode an iterable of (H, W, 3) uint8 frames to `output` (files atomically, frame by frame).

    An MP4 asked for where imageio-ffmpeg is missing becomes a GIF beside it (with a note)."""
    from ..atomic import atomic_write
    from ..cli.common import writable_dir
    fmt, path = output_format(output), Path(output)
    if fmt == "ffmpeg":
        why = ffmpeg_missing()
        if why:
            path, fmt = path.with_suffix(".gif"), "gif"
            note(f"{why}: writing the GIF {path} instead")
    count, shape, played = 0, None, fps

    def encode(target) -> None:
        nonlocal count, shape, played
        writer = WRITERS[fmt](target, fps)
        played = 1000 / writer.delay_ms if fmt == "gif" else fps
        try:
            for frame in frames:
                writer.append(frame)
                count, shape = count + 1, frame.shape
        finally:
            writer.close()

    if fmt == "frames":
        encode(path)
    else:
        writable_dir(path.parent)
        atomic_write(path, encode, suffix=path.suffix)
    return Written(path, fmt, count, shape, played)


# ----------------------------------------------------------------------------------------------- rendering
def _cell_latents(G, cell_seeds, seed_rng: str, psi: float, cutoff, device):
    """ws (cells, K, n_latent, w_dim) of the keyframes and each cell's torch generator (after its first z)."""
    import torch
    zs, gens = [], []
    from ..utils import seed_latent
    for seeds in cell_seeds:
        for k, seed in enumerate(seeds):
            z, g = seed_latent(seed, G.z_dim, seed_rng)
            zs.append(z)
            if k == 0:
                gens.append(g)
    with torch.no_grad():
        ws = G.mapping(torch.cat(zs).to(device), truncation_psi=psi, truncation_cutoff=cutoff)
    return ws.reshape(len(cell_seeds), len(cell_seeds[0]), *ws.shape[1:]), gens


def _noise_for(G, g, size):
    """Per-layer (1, 1, h, w) noise drawn from generator g, as Generator.sample draws it."""
    import torch
    return [torch.randn(1, 1, h, w, generator=g) for h, w in G.synthesis.noise_shapes(size)]


def _synthesize(G, ws, noises, noise_mode: str, size, batch: int, device):
    """Images (N, 3, H, W) float on the CPU for ws (N, n_latent, w_dim), `batch` at a time."""
    import torch

    from ..data.images import check_finite
    out = []
    arg_size = None if size == G.resolution else size
    for s in range(0, ws.shape[0], batch):
        noise = None
        if noises is not None:
            noise = [torch.cat(layer).to(device) for layer in zip(*noises[s:s + batch])]
        with torch.no_grad():
            img = G.synthesis(ws[s:s + batch].to(device), noise_mode=noise_mode, noise=noise, size=arg_size)
        out.append(img.float().cpu())
    return check_finite(torch.cat(out))       # damaged weights: one line, never a video of NaN


def _frame(images, grid_w: int):
    """(cells, 3, H, W) float -> one (rows*H, cols*W, 3) uint8 frame, row-major as gen_video's layout_grid."""
    from ..data.images import to_uint8, uint8_grid
    return uint8_grid(list(to_uint8(images).numpy()), cols=grid_w)


def _check_count(frames: int) -> None:
    if frames > MAX_FRAMES:
        raise PixelfolderError(f"{frames:,} frames; at most {MAX_FRAMES:,} per video (fewer seeds or --w-frames)")


def interpolation_frames(G, seeds, *, grid=(1, 1), num_keyframes=None, shuffle_seed=None, w_frames: int = W_FRAMES,
                         kind: str = "cubic", truncation_psi: float = 1.0, truncation_cutoff=None,
                         noise_mode: str = "const", size=None, scale=None, seed_rng=None, batch: int = 8,
                         device=None, progress=None):
    """(frame count, frame iterator) of gen_video's interpolation video: K * w_frames frames of
    (grid_h * S, grid_w * S, 3) uint8, S the render size. noise_mode 'random': one noise draw per cell (from its
    first keyframe's seed, as Generator.sample), held for the whole video."""
    from ..utils import check_seed_rng
    need_generator(G)
    if w_frames < 1:
        raise PixelfolderError("--w-frames must be >= 1")
    device = device or next(G.parameters()).device
    seed_rng = seed_rng or G.seed_rng
    check_seed_rng(seed_rng, seeds)
    S = render_size(G, size, scale)
    cell_seeds = keyframe_seeds(list(seeds), grid, num_keyframes, shuffle_seed)
    K, cells = len(cell_seeds[0]), len(cell_seeds)
    total = K * w_frames
    _check_count(total)
    G.check_render_memory(min(batch, cells), S)
    G._check_args(None, None, truncation_psi, noise_mode, G.w_avg.new_zeros(1, G.config.w_dim), None,
                  truncation_cutoff)
    ws, gens = _cell_latents(G, cell_seeds, seed_rng, truncation_psi, truncation_cutoff, device)
    interps = [LoopInterpolator(ws[c], kind) for c in range(cells)]
    noises = [_noise_for(G, g, S) for g in gens] if noise_mode == "random" else None
    per_step = max(1, batch // cells)

    def frames():
        import torch
        bar = progress(total) if progress else None
        for start in range(0, total, per_step):
            idx = range(start, min(total, start + per_step))
            step_ws = torch.stack([interps[c](f / w_frames) for f in idx for c in range(cells)])
            step_noise = None if noises is None else [noises[c] for _ in idx for c in range(cells)]
            images = _synthesize(G, step_ws, step_noise, noise_mode, S, batch, device)
            for j in range(len(idx)):
                yield _frame(images[j * cells:(j + 1) * cells], grid[0])
            if bar:
                bar.update(len(idx))
        if bar:
            bar.close()

    return total, frames()


def zoom_scales(frames: int, zoom_to: float = ZOOM_TO) -> list[float]:
    """Scales growing geometrically (a steady zoom speed) from 1 to zoom_to over `frames` frames."""
    if frames == 1:
        return [1.0]
    return [zoom_to ** (f / (frames - 1)) for f in range(frames)]


def zoom_frames(G, seeds, *, grid=(1, 1), frames: int = W_FRAMES, zoom_to: float = ZOOM_TO,
                truncation_psi: float = 1.0, truncation_cutoff=None, noise_mode: str = "const", size=None,
                scale=None, seed_rng=None, batch: int = 8, device=None, progress=None):
    """(frame count, frame iterator) of a zoom into the centre: one seed per cell rendered at int(B * s) px for the
    scales s of zoom_scales, cropped to the centre B px (B the native size, or --size/--scale's)."""
    from ..utils import check_seed_rng, seed_latent
    need_generator(G, "--zoom")
    if G.native_size_only:
        raise PixelfolderError(f"--zoom needs an any-scale model (CIPS, INR-GAN, CREPS); {G.arch} renders only its "
                               f"native {G.resolution}px grid")
    if frames < 1:
        raise PixelfolderError("--w-frames must be >= 1")
    if not (math.isfinite(zoom_to) and zoom_to >= 1):
        raise PixelfolderError(f"--zoom-to must be a number >= 1 (the final scale), got {zoom_to}")
    _check_count(frames)
    cells = grid[0] * grid[1]
    seeds = list(seeds)
    if len(seeds) != cells:
        raise PixelfolderError(f"--zoom renders one seed per grid cell: give {cells} seed(s) for the "
                               f"{grid[0]}x{grid[1]} grid, got {len(seeds)}")
    device = device or next(G.parameters()).device
    seed_rng = seed_rng or G.seed_rng
    check_seed_rng(seed_rng, seeds)
    B = render_size(G, size, scale)
    sizes = [max(B, int(B * s)) for s in zoom_scales(frames, zoom_to)]
    G.check_render_memory(min(batch, cells), sizes[-1])
    G._check_args(None, None, truncation_psi, noise_mode, G.w_avg.new_zeros(1, G.config.w_dim), None,
                  truncation_cutoff)
    ws, _ = _cell_latents(G, [[s] for s in seeds], seed_rng, truncation_psi, truncation_cutoff, device)
    ws = ws[:, 0]

    def frame_iter():
        bar = progress(frames) if progress else None
        for S in sizes:
            noises = None
            if noise_mode == "random":       # each frame's noise is its seed's, at that size (as generate --size)
                noises = [_noise_for(G, seed_latent(seed, G.z_dim, seed_rng)[1], S) for seed in seeds]
            images = _synthesize(G, ws, noises, noise_mode, S, batch, device)
            o = (S - B) // 2
            yield _frame(images[:, :, o:o + B, o:o + B], grid[0])
            if bar:
                bar.update(1)
        if bar:
            bar.close()

    return frames, frame_iter()
