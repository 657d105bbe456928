"""Projecting an image into W: StyleGAN2-ADA's projector (NVlabs' projector.py) for every generator with a mapping.

One w (w_dim), broadcast to all n_latent layers, is optimised with Adam from the W midpoint: w_avg and w_std come
from 10,000 mapping samples (z from numpy's RandomState(123), as NVlabs); the learning rate ramps up over the first
5 % of the steps and down (cosine) over the last 25 %; Gaussian noise of w_std * 0.05 * max(0, 1 - t / 0.75)^2 is
added to w at each step. Models with noise inputs (`G.synthesis.noise_shapes()`) also optimise one noise map per
layer (started from N(0, 1), renormalised after each step) under NVlabs' regulariser: the squared mean of each map
times its 1-pixel shifts, at every 2x-average-pooled scale down to 8 px, weighted 1e5. As NVlabs' script writes it,
the result is w alone: proj.png is synthesis(w) with the network's constant noise (the optimised noise is dropped),
so `projected_w.npz` by itself reproduces it.

Distances: LPIPS-VGG (the VGG16 trunk with the LPIPS v0.1 heads, metrics/lpips.py; NVlabs' vgg16.pt computes the
same) on images area-downsampled to 256 px when larger; or, when those weights are missing, an LPIPS-style
distance on our FID Inception-v3 (metrics/inception.py): five taps (Conv2d_2b, Conv2d_4a, Mixed_5d, Mixed_6e,
Mixed_7c) unit-normalised over channels, squared differences summed over channels, averaged over positions and
summed over taps (unit heads), on images area-downsampled to 256 px when larger and bilinearly upsampled to 75 px
(Inception's smallest input) when smaller, plus the mean squared pixel difference ([-1, 1] images, weight 1: the
perceptual + MSE loss of Image2StyleGAN; without learned heads the taps alone are nearly blind to colour).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PixelfolderError, first_line
from . import need_generator

DISTANCES = ("auto", "lpips", "inception")
W_AVG_SAMPLES = 10_000
W_AVG_SEED = 123             # NVlabs: np.random.RandomState(123)
DEFAULT_SEED = 303           # NVlabs projector.py --seed
MAX_DISTANCE_SIZE = 256      # NVlabs: images larger than 256 px are area-downsampled for the VGG
INCEPTION_MIN_SIZE = 75      # the smallest input for which Inception-v3's last block has a position
PIXEL_WEIGHT = 1.0           # the Inception distance's pixel term: mean squared difference of [-1, 1] images
INCEPTION_TAPS = ("Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e", "Mixed_7c")
_INCEPTION_MIXED = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                    "Mixed_7a", "Mixed_7b", "Mixed_7c")
VIDEO_FPS = 10               # NVlabs' proj.mp4


# ------------------------------------------------------------------------------------------------------ distances

def _area_to(images: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(images, size=(size, size), mode="area") if images.shape[-1] > size else images


class LpipsDistance(nn.Module):
    """LPIPS-VGG between images in [-1, 1] (NVlabs' projector: vgg16.pt with return_lpips=True)."""

    name = "LPIPS-VGG"

    def __init__(self, lpips, source: str = ""):
        super().__init__()
        self.lpips = lpips
        self.source = source

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.lpips.features(_area_to(images, MAX_DISTANCE_SIZE))

    def forward(self, target: list[torch.Tensor], synth: list[torch.Tensor]) -> torch.Tensor:
        return self.lpips.distance_from_features(target, synth).sum()


def inception_taps(net, x: torch.Tensor) -> list[torch.Tensor]:
    """The INCEPTION_TAPS activations of the FID Inception `net` for input already scaled as its preprocess does
    (the same layer order as InceptionV3FID.pool3: the last tap averaged over positions is pool3)."""
    out = []
    x = net.Conv2d_2b_3x3(net.Conv2d_2a_3x3(net.Conv2d_1a_3x3(x)))
    out.append(x)
    x = net.Conv2d_4a_3x3(net.Conv2d_3b_1x1(F.max_pool2d(x, kernel_size=3, stride=2)))
    out.append(x)
    x = F.max_pool2d(x, kernel_size=3, stride=2)
    for name in _INCEPTION_MIXED:
        x = getattr(net, name)(x)
        if name in INCEPTION_TAPS:
            out.append(x)
    return out


class InceptionDistance(nn.Module):
    """LPIPS-style distance on FID Inception-v3 taps with unit heads, plus `pixel_weight` times the mean squared
    pixel difference (Image2StyleGAN's perceptual + MSE), between images in [-1, 1]."""

    name = "Inception-v3"

    def __init__(self, net, source: str = "", pixel_weight: float = PIXEL_WEIGHT):
        super().__init__()
        self.net = net
        self.source = source
        self.pixel_weight = pixel_weight

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """[the image at <= 256 px, then the five unit-normalised taps]."""
        pixels = _area_to(images.float(), MAX_DISTANCE_SIZE)
        x = pixels
        if x.shape[-1] < INCEPTION_MIN_SIZE:
            x = F.interpolate(x, size=(INCEPTION_MIN_SIZE, INCEPTION_MIN_SIZE), mode="bilinear", align_corners=False)
        x = (x * (127.5 / 128)).contiguous(memory_format=torch.channels_last)     # uint8 (x*127.5+128) -> (u-128)/128
        taps = inception_taps(self.net, x)
        return [pixels] + [f / (f.square().sum(dim=1, keepdim=True).sqrt() + 1e-10) for f in taps]

    def forward(self, target: list[torch.Tensor], synth: list[torch.Tensor]) -> torch.Tensor:
        d = sum((a - b).square().sum(dim=1).mean() for a, b in zip(target[1:], synth[1:]))
        return d + self.pixel_weight * (target[0] - synth[0]).square().mean()


def _lpips_distance(vgg_path, lpips_path, device) -> LpipsDistance:
    from ..metrics.lpips import LPIPS
    from ..metrics.vgg import VGG16
    from ..metrics.weights import lpips_weights, vgg16_weights
    weights = vgg16_weights(vgg_path)
    heads = lpips_weights(lpips_path)
    with torch.device("meta"):
        vgg = VGG16()
    vgg.features.to_empty(device="cpu")           # the trunk only: LPIPS never reads the 400 MB classifier
    vgg.features.load_state_dict({k.removeprefix("features."): v for k, v in weights.state_dict.items()
                                  if k.startswith("features.")})
    vgg.features.to(device).requires_grad_(False)
    source = f"heads {heads.describe()}; backbone {weights.describe()}"
    return LpipsDistance(LPIPS(vgg, heads.state_dict).eval(), source)


def _inception_distance(detector_path, device) -> InceptionDistance:
    from ..metrics.features import load_inception
    det = load_inception(detector_path, device=device)
    return InceptionDistance(det.net.requires_grad_(False), det.weights.describe())


def open_distance(kind: str = "auto", *, vgg=None, lpips=None, detector=None, device="cpu"):
    """(distance module, one-line note naming it). 'auto': LPIPS-VGG when its weights are found (--vgg/--lpips,
    the cache, torch.hub's folder, the lpips package, or a download unless PIXELFOLDER_OFFLINE=1), else Inception.
    Weights named by a path are never skipped: a missing or bad file is an error."""
    from ..metrics.weights import MissingWeights
    if kind not in DISTANCES:
        raise PixelfolderError(f"distance must be one of {', '.join(DISTANCES)}, got {kind!r}")
    if kind == "inception" and (vgg or lpips):
        raise PixelfolderError("--vgg/--lpips are LPIPS-VGG weights: drop them or use --distance lpips/auto")
    if kind == "lpips" and detector:
        raise PixelfolderError("--detector is the Inception distance's weights: drop it or use --distance "
                               "inception/auto")
    reason = None
    if kind in ("auto", "lpips"):
        try:
            d = _lpips_distance(vgg, lpips, device)
            return d, f"distance: LPIPS-VGG ({d.source})"
        except MissingWeights as e:
            if kind == "lpips" or vgg or lpips:
                raise
            reason = first_line(e, limit=None).split(":")[0]      # 'no VGG16 weights' / 'no LPIPS-VGG heads'
    d = _inception_distance(detector, device)
    why = f" instead of LPIPS-VGG ({reason}: give --vgg and --lpips)" if reason else ""
    return d, f"distance: Inception-v3 features + pixel MSE ({d.source}){why}"


# ------------------------------------------------------------------------------------------------------- targets

def read_target(path):
    """The image at `path` as 8-bit RGB PIL (data.decode's checked decoding); unreadable files are one-line errors."""
    from ..data.decode import decode_rgb
    path = Path(path)
    if not path.is_file():
        raise PixelfolderError(f"--target {path}: no such image file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PixelfolderError(f"--target {path} cannot be read ({e.strerror or first_line(e)})") from None
    try:
        return decode_rgb(data)
    except PixelfolderError as e:
        raise PixelfolderError(f"--target {path} is not a readable image ({e})") from None


def fit_target(img, resolution: int) -> np.ndarray:
    """(resolution, resolution, 3) uint8: `img` centre-cropped to a square and resized with LANCZOS (NVlabs)."""
    from PIL import Image
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    img = img.resize((resolution, resolution), Image.LANCZOS)
    return np.asarray(img, dtype=np.uint8).copy()


def load_target(path, resolution: int) -> np.ndarray:
    """read_target then fit_target: the target as the projector uses it."""
    return fit_target(read_target(path), resolution)


# ------------------------------------------------------------------------------------------------------ projection

def check_generator(G) -> None:
    """Projection needs a generator with a mapping network (not a likelihood model)."""
    need_generator(G, "projection", "give a generator (e.g. a PixelFolder, CIPS or StyleGAN2 checkpoint)")


@torch.no_grad()
def w_stats(G, num_samples: int = W_AVG_SAMPLES, *, seed: int = W_AVG_SEED, batch: int = 1_000):
    """(w_avg (1, w_dim) float32, w_std float): the mean of mapping(z) over `num_samples` z from numpy's
    RandomState(seed) and the root mean squared distance to it (NVlabs' projector)."""
    device = next(G.parameters()).device
    z = np.random.RandomState(seed).randn(num_samples, G.z_dim)
    ws = torch.cat([G.mapping(torch.from_numpy(z[i:i + batch]).float().to(device))[:, 0].double().cpu()
                    for i in range(0, num_samples, batch)])
    w_avg = ws.mean(0, keepdim=True)
    w_std = float(((ws - w_avg).square().sum() / num_samples).sqrt())
    return w_avg.float(), w_std


def noise_regularization(noise: list[torch.Tensor]) -> torch.Tensor | float:
    """NVlabs' noise regulariser: squared means of each map times its 1-px rolls, at each 2x-pooled scale to 8 px."""
    reg = 0.0
    for v in noise:
        n = v.reshape(1, 1, *v.shape[-2:])
        while True:
            reg = reg + (n * torch.roll(n, shifts=1, dims=3)).mean() ** 2
            reg = reg + (n * torch.roll(n, shifts=1, dims=2)).mean() ** 2
            if n.shape[2] <= 8:
                break
            n = F.avg_pool2d(n, kernel_size=2)
    return reg


def learning_rate(step: int, num_steps: int, initial: float = 0.1, rampdown: float = 0.25,
                  rampup: float = 0.05) -> float:
    """NVlabs' schedule: linear ramp-up over `rampup` of the steps, cosine ramp-down over the last `rampdown`."""
    t = step / num_steps
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return initial * ramp * min(1.0, t / rampup)


@dataclass
class Projection:
    w: torch.Tensor                      # (1, n_latent, w_dim): the last step's w, broadcast (NVlabs' projected_w)
    w_steps: torch.Tensor                # (num_steps, w_dim): w after each step (the progress video)
    distances: list = field(default_factory=list)    # distance before each step's update
    losses: list = field(default_factory=list)       # distance + noise regularisation
    distance: str = ""


@contextlib.contextmanager
def _frozen(module: nn.Module):
    """Eval mode and no parameter gradients for the duration, restored afterwards."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    training = module.training
    module.eval().requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        module.train(training)


def project(G, target: np.ndarray, distance: nn.Module, *, num_steps: int = 1000, seed: int = DEFAULT_SEED,
            w_avg_samples: int = W_AVG_SAMPLES, initial_learning_rate: float = 0.1,
            initial_noise_factor: float = 0.05, lr_rampdown_length: float = 0.25, lr_rampup_length: float = 0.05,
            noise_ramp_length: float = 0.75, regularize_noise_weight: float = 1e5,
            on_step: Callable[[int, float, float], None] | None = None) -> Projection:
    """Optimise one w so that synthesis(w broadcast) matches `target` ((R, R, 3) uint8 at G's resolution) under
    `distance` (see open_distance). The per-step w noise and the starting noise maps are drawn from a torch
    generator seeded `seed`; `on_step(step, distance, loss)` is called after each step."""
    from ..data.images import from_uint8
    check_generator(G)
    if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
        raise PixelfolderError(f"--steps must be a whole number >= 1, got {num_steps!r}")
    res = G.resolution
    if target.shape != (res, res, 3) or target.dtype != np.uint8:
        raise PixelfolderError(f"the target must be a ({res}, {res}, 3) uint8 image, got {target.dtype} "
                               f"{target.shape}")
    device = next(G.parameters()).device
    g = torch.Generator().manual_seed(int(seed))
    with _frozen(G), _frozen(distance):
        w_avg, w_std = w_stats(G, w_avg_samples)
        noise = [torch.randn(1, 1, h, w, generator=g).to(device).requires_grad_(True)
                 for h, w in G.synthesis.noise_shapes(None)]
        target_images = from_uint8(torch.from_numpy(target).permute(2, 0, 1).unsqueeze(0)).to(device)
        with torch.no_grad():
            target_features = [f.detach() for f in distance.features(target_images)]
        w_opt = w_avg.clone().unsqueeze(0).to(device).requires_grad_(True)             # (1, 1, w_dim)
        optimizer = torch.optim.Adam([w_opt] + noise, betas=(0.9, 0.999), lr=initial_learning_rate)
        w_steps = torch.zeros(num_steps, w_opt.shape[-1])
        result = Projection(w=w_opt.detach(), w_steps=w_steps, distance=getattr(distance, "name", ""))
        for step in range(num_steps):
            t = step / num_steps
            w_noise_scale = w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2
            lr = learning_rate(step, num_steps, initial_learning_rate, lr_rampdown_length, lr_rampup_length)
            for group in optimizer.param_groups:
                group["lr"] = lr
            w_noise = torch.randn(w_opt.shape, generator=g).to(device) * w_noise_scale
            ws = (w_opt + w_noise).repeat(1, G.n_latent, 1)
            synth = G.synthesis(ws, noise_mode="const", noise=noise or None)
            dist = distance(target_features, distance.features(synth))
            reg = noise_regularization(noise)
            loss = dist + reg * regularize_noise_weight
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            w_steps[step] = w_opt.detach()[0, 0].cpu()
            with torch.no_grad():
                for n in noise:
                    n -= n.mean()
                    n *= n.square().mean().rsqrt()
            result.distances.append(float(dist.detach()))
            result.losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(step, result.distances[-1], result.losses[-1])
        result.w = w_steps[-1].view(1, 1, -1).repeat(1, G.n_latent, 1)
    return result


# ------------------------------------------------------------------------------------------------ w files, renders

@torch.no_grad()
def render_w(G, ws: torch.Tensor, *, noise_mode: str = "const", truncation_psi: float = 1.0,
             truncation_cutoff: int | None = None, size: int | None = None, scale: float | None = None,
             batch: int = 8) -> torch.Tensor:
    """Images (N, 3, H, W) on the CPU of ws (N, n_latent, w_dim) (W+, as projected_w.npz); psi 1 = synthesis(ws)."""
    device = next(G.parameters()).device
    out = []
    for i in range(0, ws.shape[0], batch):
        out.append(G(ws=ws[i:i + batch].to(device), truncation_psi=truncation_psi,
                     truncation_cutoff=truncation_cutoff, noise_mode=noise_mode, size=size, scale=scale).float().cpu())
    return torch.cat(out)


def save_projected_w(path, w: torch.Tensor) -> None:
    """projected_w.npz with key 'w' (N, n_latent, w_dim) float32, as NVlabs' projector writes it."""
    from ..atomic import atomic_write
    array = w.detach().cpu().float().numpy()

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, w=array)
    atomic_write(path, write, suffix=".npz")


def load_projected_w(path, G) -> torch.Tensor:
    """ws (N, n_latent, w_dim) float32 from an .npz with key 'w' (ours or NVlabs' projector), checked against G."""
    path = Path(path)
    if not path.is_file():
        raise PixelfolderError(f"--projected-w {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "w" not in npz.files:
                raise PixelfolderError(f"--projected-w {path} has no array 'w' (it has: "
                                       f"{', '.join(npz.files[:5]) or 'none'}): give a projected_w.npz")
            w = npz["w"]
    except PixelfolderError:
        raise
    except Exception as e:  # noqa: BLE001  (zipfile, pickle refusal, OSError, ValueError ...)
        raise PixelfolderError(f"--projected-w {path} is not a readable .npz file ({first_line(e)})") from None
    want = (G.n_latent, G.config.w_dim)
    if w.ndim != 3 or tuple(w.shape[1:]) != want or w.shape[0] < 1 or not np.issubdtype(w.dtype, np.floating):
        raise PixelfolderError(f"--projected-w {path} holds w of shape {tuple(w.shape)} ({w.dtype}); this network "
                               f"({G.arch}) takes (N, {want[0]}, {want[1]}) floats: was it projected with another "
                               "network?")
    if not np.isfinite(w).all():
        raise PixelfolderError(f"--projected-w {path} holds NaN or infinite values")
    return torch.from_numpy(w.astype(np.float32))


# ------------------------------------------------------------------------------------------------------- video

def _frames(G, target: np.ndarray, w_steps: torch.Tensor, indices):
    """target | synthesis(w of step i) side by side, (R, 2R, 3) uint8, one step at a time."""
    from ..data.images import to_uint8
    for i in indices:
        ws = w_steps[i].view(1, 1, -1).repeat(1, G.n_latent, 1)
        yield np.concatenate([target, to_uint8(render_w(G, ws))[0].numpy()], axis=1)


def write_video(outdir, G, target: np.ndarray, w_steps: torch.Tensor, note=print) -> Path:
    """proj.mp4: target | synthesis(w of step i) for every step, 10 fps, H.264 (NVlabs' layout), streamed through
    explore/video.py's writer; without imageio-ffmpeg it becomes proj.gif (with a note). Returns the path written."""
    from .video import write_frames
    written = write_frames(Path(outdir) / "proj.mp4", _frames(G, target, w_steps, range(w_steps.shape[0])),
                           fps=VIDEO_FPS, note=note)
    return written.path
