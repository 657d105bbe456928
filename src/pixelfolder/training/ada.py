"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data"), after StyleGAN2-ADA's `training/augment.py` and the ADA heuristic of `training_loop.py`.

Choices, and where they differ from the official code:
- Same parameterisation, defaults, order of composition and execution: blits and general geometric transforms
  build one inverse 3x3 matrix per sample (output pixel -> input pixel, centred coordinates), executed by
  reflect padding, 2x upsampling with the sym6 wavelet, bilinear `grid_sample` and 2x downsampling; colour
  transforms build one 4x4 matrix around the luma axis. Filtering, noise and cutout are not implemented.
- Randomness is an argument: one `Draws` gives a FIXED number of numbers per sample and call (21 uniforms,
  7 normals, whatever the spec and p), so a sample's augmentation does not depend on the batch split.
  `AugmentPipe.apply(x, p, u, z)` is the same pipeline on explicit random tensors (for tests, reproduction).
- No host synchronisation: the official pads by the batch's largest needed margin (a `.ceil().to(int)` of a
  device tensor); we always pad by the official's ceiling of that margin (size - 1 on every side), so shapes
  are static. Outputs match the official's to float rounding (the extra reflect padding lies outside what
  the official reads); the cost is a larger padded image (about 3x per side, before the 2x upsampling).
- As in the official, blits go through the same resampling chain; sym6 is not symmetric, so flips and quarter
  turns are torch.flip / torch.rot90 only up to a sub-pixel filtering error (integer translations are exact).
- Samples whose geometric (colour) matrix is exactly the identity get their input back bit for bit
  (`torch.where`), so p == 0 is an exact identity; the official resamples them (identity to ~1e-7).
- The ADA controller follows the official: r_t = mean sign(D(real)) over every real logit reported since
  the last adjustment (Dmain and R1 passes alike), every `interval` steps
  p <- max(p + sign(r_t - target) * batch * interval / (speed_kimg * 1000), 0); no upper clamp (p > 1 is
  allowed, as there). It lives on the device; only p_value()/rt_value() read it back.
- Square and non-square images work; 1- and 3-channel images (hue and saturation skip 1-channel ones).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import PixelfolderError

SYM6 = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148]

GEOM_KEYS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOR_KEYS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
BLIT = dict(xflip=1, rotate90=1, xint=1)
GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
SPECS: dict[str, dict] = {"blit": BLIT, "geom": GEOM, "color": COLOR, "bg": {**BLIT, **GEOM},
                          "bgc": {**BLIT, **GEOM, **COLOR}}
DEFAULTS = dict(xint_max=0.125, scale_std=0.2, rotate_max=1.0, aniso_std=0.2, xfrac_std=0.125,
                brightness_std=0.2, contrast_std=0.5, hue_max=1.0, saturation_std=1.0)

# Columns of the random tensors. u (N, 21): 13 gates, then 8 values; z (N, 7): normals.
GATES = ("xflip", "rotate90", "xint", "scale", "rotate_pre", "aniso", "rotate_post", "xfrac",
         "brightness", "contrast", "lumaflip", "hue", "saturation")
U_VALUES = ("xflip", "rotate90", "xint_x", "xint_y", "rotate_pre", "rotate_post", "lumaflip", "hue")
Z_VALUES = ("scale", "aniso", "xfrac_x", "xfrac_y", "brightness", "contrast", "saturation")
NUM_UNIFORM, NUM_NORMAL = len(GATES) + len(U_VALUES), len(Z_VALUES)
HZ_PAD = len(SYM6) // 4


# ------------------------------------------------------------------------------------------------ matrices
def stack_matrix(rows, like: torch.Tensor) -> torch.Tensor:
    """(N, R, C) from rows of (N,) tensors or numbers, in `like`'s dtype and device."""
    n = like.shape[0]
    elems = [e if isinstance(e, torch.Tensor) else like.new_full((n,), float(e)) for row in rows for e in row]
    return torch.stack(elems, dim=-1).view(n, len(rows), len(rows[0]))


def translate2d(tx, ty, like):
    """Homogeneous 2D translation."""
    return stack_matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], like)


def scale2d(sx, sy, like):
    """Homogeneous 2D scaling."""
    return stack_matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], like)


def rotate2d(theta, like):
    """Homogeneous 2D rotation by theta (radians)."""
    c, s = torch.cos(theta), torch.sin(theta)
    return stack_matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], like)


def rotate3d_luma(theta, like):
    """4x4 rotation by theta around the luma axis (1, 1, 1) / sqrt(3)."""
    v = 1 / math.sqrt(3)
    s, c = torch.sin(theta), torch.cos(theta)
    cc, a, b = 1 - c, v * v * (1 - c), v * s
    return stack_matrix([[v * v * cc + c, a - b, a + b, 0], [a + b, v * v * cc + c, a - b, 0],
                         [a - b, a + b, v * v * cc + c, 0], [0, 0, 0, 1]], like)


def luma_outer(like) -> torch.Tensor:
    """v v^T for the homogeneous luma axis v = (1, 1, 1, 0) / sqrt(3), as a (4, 4) tensor."""
    v = like.new_tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)
    return torch.outer(v, v)


# ------------------------------------------------------------------------------------------------ parameters
def resolve(spec: str, overrides: dict) -> dict:
    """Multipliers and ranges of a named spec with keyword overrides; PixelfolderError on unknown names."""
    if spec not in SPECS:
        raise PixelfolderError(f"unknown ADA augmentation spec {spec!r}: use one of {', '.join(SPECS)}")
    cfg = {k: 0.0 for k in GEOM_KEYS + COLOR_KEYS} | DEFAULTS | {k: float(v) for k, v in SPECS[spec].items()}
    bad = sorted(set(overrides) - set(cfg))
    if bad:
        raise PixelfolderError(f"unknown ADA augmentation option(s) {', '.join(bad)}: use {', '.join(cfg)}")
    return cfg | {k: float(v) for k, v in overrides.items()}


def parameters(cfg: dict, p: torch.Tensor, u: torch.Tensor, z: torch.Tensor) -> dict:
    """Per-sample transform parameters (identity values where a gate is off) from uniforms u and normals z."""
    g = {k: u[:, i] for i, k in enumerate(GATES)}
    v = {k: u[:, len(GATES) + i] for i, k in enumerate(U_VALUES)}
    n = {k: z[:, i] for i, k in enumerate(Z_VALUES)}
    p_rot = 1 - torch.sqrt((1 - cfg["rotate"] * p).clamp(0, 1))          # P(pre or post) = rotate * p

    def gated(key, value, off, prob=None):
        return torch.where(g[key] < (cfg[key] * p if prob is None else prob), value, torch.full_like(value, off))
    xint = torch.stack([v["xint_x"], v["xint_y"]], 1) * 2 - 1
    xfrac = torch.stack([n["xfrac_x"], n["xfrac_y"]], 1)
    return dict(
        xflip=gated("xflip", torch.floor(v["xflip"] * 2), 0.0),
        rotate90=gated("rotate90", torch.floor(v["rotate90"] * 4), 0.0),
        xint=torch.where((g["xint"] < cfg["xint"] * p)[:, None], xint * cfg["xint_max"], torch.zeros_like(xint)),
        scale=gated("scale", torch.exp2(n["scale"] * cfg["scale_std"]), 1.0),
        rotate_pre=gated("rotate_pre", (v["rotate_pre"] * 2 - 1) * math.pi * cfg["rotate_max"], 0.0, p_rot),
        aniso=gated("aniso", torch.exp2(n["aniso"] * cfg["aniso_std"]), 1.0),
        rotate_post=gated("rotate_post", (v["rotate_post"] * 2 - 1) * math.pi * cfg["rotate_max"], 0.0, p_rot),
        xfrac=torch.where((g["xfrac"] < cfg["xfrac"] * p)[:, None], xfrac * cfg["xfrac_std"],
                          torch.zeros_like(xfrac)),
        brightness=gated("brightness", n["brightness"] * cfg["brightness_std"], 0.0),
        contrast=gated("contrast", torch.exp2(n["contrast"] * cfg["contrast_std"]), 1.0),
        lumaflip=gated("lumaflip", torch.floor(v["lumaflip"] * 2), 0.0),
        hue=gated("hue", (v["hue"] * 2 - 1) * math.pi * cfg["hue_max"], 0.0),
        saturation=gated("saturation", torch.exp2(n["saturation"] * cfg["saturation_std"]), 1.0),
    )


def geometric_matrix(prm: dict, width: int, height: int) -> torch.Tensor:
    """(N, 3, 3) inverse transform, output pixel -> input pixel (centred), composed in the official order."""
    like = prm["scale"]
    inv_flip = 1 / (1 - 2 * prm["xflip"])
    tx_int, ty_int = torch.round(prm["xint"][:, 0] * width), torch.round(prm["xint"][:, 1] * height)
    steps = [scale2d(inv_flip, 1, like), rotate2d(math.pi / 2 * prm["rotate90"], like),
             translate2d(-tx_int, -ty_int, like), scale2d(1 / prm["scale"], 1 / prm["scale"], like),
             rotate2d(prm["rotate_pre"], like), scale2d(1 / prm["aniso"], prm["aniso"], like),
             rotate2d(prm["rotate_post"], like),
             translate2d(-prm["xfrac"][:, 0] * width, -prm["xfrac"][:, 1] * height, like)]
    g = steps[0]
    for m in steps[1:]:
        g = g @ m
    return g


def color_matrix(prm: dict, channels: int) -> torch.Tensor:
    """(N, 4, 4) colour transform (colour_out = C @ colour_in), composed in the official order."""
    like = prm["brightness"]
    b, c = prm["brightness"], prm["contrast"]
    eye, vv = torch.eye(4, dtype=like.dtype, device=like.device), luma_outer(like)
    m = scale3d(c, like) @ translate3d(b, like)                             # brightness, then contrast
    m = (eye - 2 * vv * prm["lumaflip"].view(-1, 1, 1)) @ m
    if channels > 1:
        m = rotate3d_luma(prm["hue"], like) @ m
        m = (vv + (eye - vv) * prm["saturation"].view(-1, 1, 1)) @ m
    return m


def translate3d(t, like):
    """4x4 translation by t along every colour axis."""
    return stack_matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], like)


def scale3d(s, like):
    """4x4 scaling by s of every colour axis."""
    return stack_matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], like)


# ------------------------------------------------------------------------------------------------ execution
def separable(x: torch.Tensor, taps: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Correlate every channel with `taps` along x then y (no padding), with the given stride."""
    c = x.shape[1]
    k = taps.to(x.dtype)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), stride=(1, stride), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), stride=(stride, 1), groups=c)


def upsample2x(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Official upsample2d(up=2): zero insertion, zero padding (6, 5), convolution (flipped taps), gain 4."""
    n, c, h, w = x.shape
    x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, 1, 0, 0, 0, 1]).reshape(n, c, 2 * h, 2 * w)
    half = len(taps) // 2
    x = F.pad(x, [half, half - 1, half, half - 1])
    return separable(x, taps.flip(0) * 2)


def downsample2x(x: torch.Tensor, taps: torch.Tensor, crop: int) -> torch.Tensor:
    """Official downsample2d(down=2, padding=-crop, flip_filter=True): crop, correlation, every 2nd pixel."""
    edge = crop - (len(taps) - 1) // 2                                   # = 1 for sym6 and crop 6
    x = x[:, :, edge:x.shape[2] - edge, edge:x.shape[3] - edge]
    return separable(x, taps, stride=2)


def warp(x: torch.Tensor, g_inv: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Apply inverse transforms g_inv (N, 3, 3) to x as the official does, with static (maximal) padding."""
    n, c, h, w = x.shape
    px, py = w - 1, h - 1                                                 # the official margin's ceiling
    x = F.pad(x, [px, px, py, py], mode="reflect")                        # symmetric: origin unchanged
    x = upsample2x(x, taps)
    like = g_inv[:, 0, 0]
    up, down = scale2d(2, 2, like), scale2d(0.5, 0.5, like)
    g = up @ g_inv @ down
    g = translate2d(-0.5, -0.5, like) @ g @ translate2d(0.5, 0.5, like)
    out_h, out_w = (h + HZ_PAD * 2) * 2, (w + HZ_PAD * 2) * 2
    g = scale2d(2 / x.shape[3], 2 / x.shape[2], like) @ g @ scale2d(out_w / 2, out_h / 2, like)
    grid = F.affine_grid(g[:, :2, :], [n, c, out_h, out_w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return downsample2x(x, taps, HZ_PAD * 2)


def recolor(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Apply colour matrices m (N, 4, 4) to RGB or L images (L: the mean of the RGB rows, as official)."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    if c == 3:
        return (m[:, :3, :3] @ flat + m[:, :3, 3:]).view(n, c, h, w)
    row = m[:, :3, :].mean(dim=1, keepdim=True)
    return (flat * row[:, :, :3].sum(dim=2, keepdim=True) + row[:, :, 3:]).view(n, c, h, w)


def keep_identity(x: torch.Tensor, moved: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """`moved`, except the input itself for samples whose matrix m is exactly the identity."""
    eye = torch.eye(m.shape[1], dtype=m.dtype, device=m.device)
    same = (m == eye).flatten(1).all(dim=1).view(-1, 1, 1, 1)
    return torch.where(same, x, moved)


class AugmentPipe(torch.nn.Module):
    """The ADA pipeline of a named spec ('blit', 'geom', 'color', 'bg', 'bgc'); overrides as in the official."""

    def __init__(self, spec: str = "bgc", **overrides):
        super().__init__()
        self.spec = spec
        self.cfg = resolve(spec, overrides)
        self.geometric = any(self.cfg[k] > 0 for k in GEOM_KEYS)
        self.colour = any(self.cfg[k] > 0 for k in COLOR_KEYS)
        taps = torch.tensor(SYM6, dtype=torch.float64)
        self.register_buffer("taps", (taps / taps.sum()).float(), persistent=False)

    def forward(self, x: torch.Tensor, p, draws) -> torch.Tensor:
        """Augment x (N, C, H, W) with probability multiplier p, random numbers from `draws` (a Draws)."""
        if len(draws) != x.shape[0]:
            raise PixelfolderError(f"ADA draws cover {len(draws)} samples but the batch has {x.shape[0]}: "
                                   "make the Draws over this batch's global indices")
        u = draws.uniform(NUM_UNIFORM).to(x.device, x.dtype)
        z = draws.normal(NUM_NORMAL).to(x.device, x.dtype)
        if not isinstance(p, torch.Tensor) and p == 0:
            return x
        return self.apply(x, p, u, z)

    def apply(self, x: torch.Tensor, p, u: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The pipeline on explicit randomness: u (N, 21) uniforms in [0, 1), z (N, 7) normals."""
        check_images(x)
        p = torch.as_tensor(p, device=x.device).to(x.dtype)
        prm = parameters(self.cfg, p, u.to(x.dtype), z.to(x.dtype))
        if self.geometric:
            g_inv = geometric_matrix(prm, x.shape[3], x.shape[2])
            x = keep_identity(x, warp(x, g_inv, self.taps), g_inv)
        if self.colour:
            m = color_matrix(prm, x.shape[1])
            x = keep_identity(x, recolor(x, m), m)
        return x


def check_images(x: torch.Tensor) -> None:
    """PixelfolderError unless x is a float NCHW batch of 1- or 3-channel images at least 2 pixels a side."""
    if x.ndim != 4 or x.shape[1] not in (1, 3) or not x.is_floating_point() or min(x.shape[2:]) < 2:
        raise PixelfolderError(f"ADA needs float (N, 1 or 3, H, W) images with H, W >= 2, got "
                               f"{x.dtype} {tuple(x.shape)}: convert the batch before augmenting")


# ------------------------------------------------------------------------------------------------ controller
class AdaController:
    """The ADA heuristic: p follows sign(D(real)) towards `target`, on the device, every `interval` steps."""

    def __init__(self, target: float = 0.6, speed_kimg: float = 500, interval: int = 4, batch: int = 64,
                 device="cpu", p: float = 0.0):
        if not 0 <= target <= 1 or speed_kimg <= 0 or interval < 1 or batch < 1:
            raise PixelfolderError(f"bad ADA settings target={target}, speed_kimg={speed_kimg}, interval={interval},"
                                   f" batch={batch}: use 0 <= target <= 1, speed_kimg > 0, interval, batch >= 1")
        self.target, self.interval = float(target), int(interval)
        self.step = batch * interval / (speed_kimg * 1000)
        self.p = torch.full((), float(p), dtype=torch.float32, device=device)
        self.signs = torch.zeros(2, dtype=torch.float32, device=device)       # sum of signs, count
        self.rt = torch.zeros((), dtype=torch.float32, device=device)

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add sign(real logits) of one D pass (every Dmain and R1 pass on reals, as the official)."""
        s = real_logits.detach().to(torch.float32).sign()
        self.signs[0] += s.sum()
        self.signs[1] += s.numel()

    def update(self, steps_done: int, reduce=None) -> bool:
        """After step `steps_done`: adjust p when it is a multiple of `interval` (True then); reduce sums
        the (2,) statistics over processes in place (default: all_reduce when distributed)."""
        if steps_done % self.interval:
            return False
        if reduce is None:
            from .distributed import all_reduce_sum_
            reduce = lambda t: all_reduce_sum_([t])                     # noqa: E731
        reduce(self.signs)
        seen = self.signs[1] > 0
        rt = self.signs[0] / self.signs[1].clamp(min=1)
        stepped = (self.p + torch.sign(rt - self.target) * self.step).clamp(min=0)
        self.p.copy_(torch.where(seen, stepped, self.p))
        self.rt.copy_(torch.where(seen, rt, self.rt))
        self.signs.zero_()
        return True

    def p_value(self) -> float:
        """p as a Python float (a host sync: for logging at progress ticks)."""
        return self.p.item()

    def rt_value(self) -> float:
        """The last adjustment's r_t as a Python float (a host sync)."""
        return self.rt.item()

    def state_dict(self) -> dict:
        """p, the pending sign statistics and the last r_t, as tensors (exact resume)."""
        return {"p": self.p.detach().clone(), "signs": self.signs.detach().clone(), "rt": self.rt.detach().clone()}

    def load_state_dict(self, state: dict) -> None:
        """Resume from state_dict() (tensors or floats), onto this controller's device."""
        self.p.copy_(torch.as_tensor(state["p"]))
        self.signs.copy_(torch.as_tensor(state["signs"]))
        self.rt.copy_(torch.as_tensor(state["rt"]))
