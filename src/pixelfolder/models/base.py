"""What every generator shares: config fields, the mapping network, the call interface and sampling."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import PixelfolderError
from ..layers import NOISE_MODES, MappingNetwork, truncate
from ..utils import check_seed_rng, format_bytes, physical_memory_bytes, seed_latent
from ..utils import seed_generator  # noqa: F401  (re-exported: models/pixelpyramids/model.py imports it from here)

PSI_RANGE = (-1.0, 2.0)
MAX_RENDER_FRACTION = 0.8   # refuse renders whose estimated peak memory exceeds this share of physical memory


@dataclass(frozen=True)
class GeneratorConfig:
    resolution: int = 256          # output side length, px (a power of two)
    z_dim: int = 512               # latent z dimension
    w_dim: int = 512               # intermediate latent w dimension
    mapping_layers: int = 8        # depth of the mapping MLP
    mapping_lr_mul: float = 0.01   # learning-rate multiplier of the mapping MLP
    channel_base: int = 32768      # width at resolution r is min(channel_max, channel_base // r), channels
    channel_max: int = 512         # width cap, channels
    channel_table: tuple = ()      # explicit widths replacing the base/max rule (index per architecture)


def channels_for(config, index: int, resolution: int) -> int:
    """Width from the explicit table (at `index`) when set, else min(channel_max, channel_base // resolution)."""
    if config.channel_table:
        return int(config.channel_table[index])
    return int(min(config.channel_max, config.channel_base // resolution))


def log2_resolution(resolution: int, minimum: int) -> int:
    log = int(round(math.log2(resolution))) if resolution > 0 else -1
    if resolution < minimum or 2 ** log != resolution:
        raise PixelfolderError(f"resolution must be a power of two >= {minimum}, got {resolution}")
    return log


class Generator(nn.Module):
    """Base class: subclasses build `self.synthesis` (with noise_shapes(size) and forward(ws, ...))."""

    arch = "generator"
    kind = "generator"
    native_size_only = True     # False for coordinate-based models that render any grid
    unused_parameters: tuple = ()   # name prefixes of official parameters the forward never reads (kept for fidelity)
    seed_rng = "torch"          # how sample(seeds) draws z: 'torch' (per-seed torch.Generator) or 'numpy' (NVlabs)
    # options of sample(seeds, batch_size=, device=, ...) beyond the common ones (the registry reports them)
    SAMPLE_OPTIONS = ("truncation_psi", "truncation_cutoff", "noise_mode", "size", "scale", "seed_rng")

    def __init__(self, config, num_ws: int, truncation_space: str = "w"):
        super().__init__()
        self.config = config
        self.mapping = MappingNetwork(config.z_dim, config.w_dim, config.mapping_layers, config.mapping_lr_mul,
                                      num_ws=num_ws, truncation_space=truncation_space)

    @property
    def resolution(self) -> int:
        return self.config.resolution

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def n_latent(self) -> int:
        return self.mapping.num_ws

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def mean_latent(self, num_samples: int = 10_000, seed: int = 0) -> torch.Tensor:
        """Recompute w_avg from `num_samples` seeded z and return it (1, w_dim)."""
        return self.mapping.compute_w_avg(num_samples, seed).unsqueeze(0)

    def _check_args(self, z, c, truncation_psi, noise_mode, ws, size, truncation_cutoff=None) -> None:
        if c is not None:
            raise PixelfolderError(f"{self.arch} is unconditional: pass c=None")
        if noise_mode not in NOISE_MODES:
            raise PixelfolderError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if truncation_cutoff is not None and (isinstance(truncation_cutoff, bool) or int(truncation_cutoff) !=
                                              truncation_cutoff or truncation_cutoff < 0):
            raise PixelfolderError(f"truncation_cutoff must be a whole number >= 0, got {truncation_cutoff!r}")
        if not (math.isfinite(truncation_psi) and PSI_RANGE[0] <= truncation_psi <= PSI_RANGE[1]):
            raise PixelfolderError(f"truncation_psi must be in [{PSI_RANGE[0]}, {PSI_RANGE[1]}], got {truncation_psi}")
        if ws is None:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                got = None if z is None else tuple(z.shape)
                raise PixelfolderError(f"z must have shape (batch, {self.z_dim}), got {got}")
        elif ws.ndim not in (2, 3) or ws.shape[-1] != self.config.w_dim or (
                ws.ndim == 3 and ws.shape[1] != self.n_latent):
            raise PixelfolderError(
                f"ws must have shape (batch, {self.n_latent}, {self.config.w_dim}) or (batch, {self.config.w_dim}),"
                f" got {tuple(ws.shape)}")
        if size is not None and size != self.resolution and self.native_size_only:
            raise PixelfolderError(f"{self.arch} renders only its native {self.resolution}px grid, not {size}px")

    def output_size(self, size: int | None = None, scale: float | None = None) -> int | None:
        """The render grid side for an explicit `size` or a `scale` (int(resolution * scale), as CREPS's gen_images)."""
        if scale is None:
            if size is not None and (isinstance(size, bool) or int(size) != size or size < 1):
                raise PixelfolderError(f"size must be a positive integer, got {size!r}")
            return None if size is None else int(size)
        if size is not None:
            raise PixelfolderError("give either size or scale, not both")
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise PixelfolderError(f"scale must be a finite number > 0, got {scale!r}")
        out = int(self.resolution * scale)
        if out < 1:
            raise PixelfolderError(f"scale {scale} gives an empty image ({self.resolution} px x {scale} < 1 px)")
        return out

    def render_bytes(self, batch: int, size: int) -> int:
        """Estimated peak bytes of one forward at this size (models with a chunked renderer override it)."""
        return 4 * batch * 3 * size * size

    def check_render_memory(self, batch: int, size: int | None) -> None:
        """Refuse a render whose estimated peak memory exceeds MAX_RENDER_FRACTION of physical memory."""
        if size is None or size == self.resolution:
            return
        need, have = self.render_bytes(batch, size), physical_memory_bytes()
        if need > MAX_RENDER_FRACTION * have:
            raise PixelfolderError(
                f"a {size}x{size} render of {batch} image(s) would need about {format_bytes(need)}; "
                f"this machine has {format_bytes(have)}")

    def forward(self, z: torch.Tensor | None = None, c=None, *, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const", noise=None,
                ws: torch.Tensor | None = None, size: int | None = None, scale: float | None = None,
                return_stages: bool = False):
        """Images (B, 3, H, W), nominally in [-1, 1] and not clamped.

        ws (W+ input, (B, n_latent, w_dim) or (B, w_dim)) replaces z; truncation then applies in W.
        `noise`: explicit per-layer noise tensors (see synthesis.noise_shapes).
        `size` (px) or `scale` (x native): render grid of any-resolution models (CIPS, INR-GAN, CREPS).
        `return_stages`: also return the list of per-stage images (PixelFolder).
        """
        size = self.output_size(size, scale)
        self._check_args(z, c, truncation_psi, noise_mode, ws, size, truncation_cutoff)
        self.check_render_memory(z.shape[0] if ws is None else ws.shape[0], size)
        if ws is None:
            ws = self.mapping(z, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        else:
            if ws.ndim == 2:
                ws = ws.unsqueeze(1).repeat(1, self.n_latent, 1)
            ws = truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, noise=noise, size=size, return_stages=return_stages)

    @torch.no_grad()
    def sample(self, seeds, *, batch_size: int = 8, truncation_psi: float = 1.0,
               truncation_cutoff: int | None = None, noise_mode: str = "const", size: int | None = None,
               scale: float | None = None, device=None, seed_rng: str | None = None) -> torch.Tensor:
        """Images for `seeds` (N, 3, H, W) on the CPU; the image of a seed does not depend on batch_size.

        seed_rng: how z is drawn from a seed (default: the network's own `seed_rng`, recorded in its checkpoint;
        NVlabs-family networks use 'numpy', so seed N is gen_images.py's seed-N image).
        With noise_mode='random' the noise of each image is drawn from its seed's torch generator.
        """
        device = device or next(self.parameters()).device
        size = self.output_size(size, scale)
        seed_rng = seed_rng or self.seed_rng
        check_seed_rng(seed_rng, seeds)
        out = []
        for start in range(0, len(seeds), batch_size):
            chunk = list(seeds)[start:start + batch_size]
            zs, noises = [], []
            for s in chunk:
                z, g = seed_latent(s, self.z_dim, seed_rng)
                zs.append(z)
                if noise_mode == "random":
                    noises.append([torch.randn(1, 1, h, w, generator=g)
                                   for h, w in self.synthesis.noise_shapes(size)])
            noise = None
            if noises:
                noise = [torch.cat(layer).to(device) for layer in zip(*noises)]
            img = self(torch.cat(zs).to(device), truncation_psi=truncation_psi,
                       truncation_cutoff=truncation_cutoff, noise_mode=noise_mode, noise=noise, size=size)
            out.append(img.float().cpu())
        return torch.cat(out)


def check_noise_list(noise, shapes) -> None:
    if noise is not None and len(noise) != len(shapes):
        raise PixelfolderError(f"noise must be a list of {len(shapes)} tensors, got {len(noise)}")
