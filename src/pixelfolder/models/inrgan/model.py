"""INR-GAN (Skorokhodov et al., CVPR 2021): multi-scale INR generator with FMM hypernetwork layers.

Structure (universome/inr-gan, StyleGAN2-ADA based): blocks b4 ... bR; every block up to `input_resolution`
(32) works on the 32x32 grid without upsampling. b4 = coordinate features of the 32 grid -> FMM conv1 -> ToRGB;
b8 ... b32 = conv0, conv1 (no coordinates). Every higher block upsamples features and skip image x2
(nearest, or bilinear align_corners=True for INR-GAN-bil), concatenates its own coordinate features, then
conv0, conv1, extra convs and ToRGB. All layers are 1x1 FMM layers (fmm.py); ToRGB is a
non-demodulated 1x1 modulated conv. ToRGB k shares its w with block k+1's conv0 (ws advance by num_conv).

Two code paths compute the same function:
- the reference path (`with layers.reference(G):`, which sets `synthesis.reference` and makes ToRGB use the
  official fused modulated conv): the official structure (upsample, cat, FMM, bias-act, ToRGB), kept for tests;
- the default fast path: conv0's feature part runs *before* the upsampling (a 1x1 layer commutes with
  nearest and bilinear resampling, so this is exact up to rounding) and only the coordinate part runs at
  the new grid; the Fourier features are cached per grid size (no-grad only, checked against the basis
  values, so weight edits through .data cannot leave stale features) and const_embs are read in place, each
  through its own baddbmm (no concatenation); bias and the sqrt(2) gain are folded into the baddbmm,
  the instance norm into the weight columns.

Any resolution (our design; the official code has none). `G(z, size=n)` or `G(z, scale=s)`, n = int(R*s):
- the base (blocks up to input_resolution) runs as is on its 32x32 grid;
- a higher block of nominal resolution r runs on a grid of round(r*n/R) px (the last one on n);
- coordinates use the official formula on the new grid: x = arange(g)/g*2-1, y the same flipped;
- const_embs are linearly resampled with the same corner-aligned convention (grid point j at j/g,
  held past the last stored point; fmm.resample_weights); identity at the native grid;
- features and skip image are resampled to the new grid: nearest takes source index (j*g_in)//g_out,
  bilinear is F.interpolate(align_corners=True). At n = R this is exactly the official computation.
Memory: with nearest upsampling every output row depends only on the matching rows of the lower blocks,
so the fast path renders without autograd in row bands (`band_bytes` budget); render_bytes() estimates
that peak (a 2048 px image of the 256 model: 353 MiB measured peak RSS growth, estimate 688 MiB).
INR-GAN-bil (bilinear + per-image instance-norm statistics) is rendered in one piece, never chunked.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import PixelfolderError
from ...layers import DerivedCache, ToRGB
from ...layers.equalized import SQRT2
from ...registry import Recipe, register_model, register_preset, register_rule_presets
from ..base import Generator, GeneratorConfig, channels_for, log2_resolution
from .fmm import NORM_EPS, CoordEmbedding, FMMLayer

UPSAMPLING = ("nearest", "bilinear")
CACHE_MAX_ELEMENTS = 1 << 24     # Fourier features of a grid are cached (no-grad) up to this many values
BAND_BYTES = 512 << 20           # activation budget of one row band of the chunked renderer, bytes


@dataclass(frozen=True)
class INRGANConfig(GeneratorConfig):
    mapping_layers: int = 2                      # depth of the mapping MLP (cfg=auto: map=2)
    input_resolution: int = 32                   # grid side of every block up to this resolution, px
    upsampling: str = "nearest"                  # 'nearest' or 'bilinear' (align_corners=True)
    instance_norm: bool = False                  # x / (unbiased std + 1e-8) before conv1 (b8 on) and extra convs
    fmm_rank: int = 10                           # rank r of the FMM modulation
    extra_convs: tuple = ((128, 1), (256, 1))    # (working resolution px, number of extra FMM layers) pairs
    medium_from: int = 128                       # coordinate embeddings use the medium settings from here on, px
    low_const: int = 128                         # const_embs channels below medium_from
    low_random: int = 0                          # random Fourier directions below medium_from (x2 for sin/cos)
    low_diagonal: bool = True                    # diagonal log-basis directions below medium_from
    medium_const: int = 64                       # const_embs channels from medium_from on
    medium_random: int = 32                      # random Fourier directions from medium_from on (x2 for sin/cos)
    medium_diagonal: bool = False                # diagonal log-basis directions from medium_from on
    # channel_table, when set, is indexed by block (block i has nominal resolution 2**(i + 2))


@dataclass(frozen=True)
class INRGANBilConfig(INRGANConfig):
    upsampling: str = "bilinear"                 # INR-GAN-bil: bilinear, align_corners=True
    instance_norm: bool = True                   # INR-GAN-bil: instance norm without mean subtraction


def _check(config: INRGANConfig) -> None:
    log2_resolution(config.resolution, 8)
    log2_resolution(config.input_resolution, 4)
    if config.upsampling not in UPSAMPLING:
        raise PixelfolderError(f"upsampling must be one of {UPSAMPLING}, got {config.upsampling!r}")
    if config.resolution <= config.input_resolution:
        raise PixelfolderError(f"resolution ({config.resolution}) must exceed input_resolution "
                               f"({config.input_resolution})")
    if config.fmm_rank < 1:
        raise PixelfolderError(f"fmm_rank must be >= 1, got {config.fmm_rank}")


def _embedding(config: INRGANConfig, grid: int) -> CoordEmbedding:
    if grid >= config.medium_from:
        return CoordEmbedding(grid, config.medium_const, config.medium_random, config.medium_diagonal)
    return CoordEmbedding(grid, config.low_const, config.low_random, config.low_diagonal)


def scaled_grid(res: int, size: int, resolution: int) -> int:
    """round(res * size / resolution) (halves up), at least 1."""
    return max(1, (2 * res * size + resolution) // (2 * resolution))


def nearest_index(src: int, dst: int, start: int = 0, stop: int | None = None, device=None) -> torch.Tensor:
    """Source pixel (j*src)//dst of dst pixels start..stop (x2: j//2, as F.interpolate 'nearest')."""
    stop = dst if stop is None else stop
    return torch.arange(start, stop, device=device) * src // dst


class INRGANBlock(nn.Module):
    """One resolution: [coords], conv0 (not in b4), conv1, extra convs, ToRGB."""

    def __init__(self, config: INRGANConfig, index: int, cin: int, cout: int):
        super().__init__()
        self.res = 2 ** (index + 2)
        self.grid = max(self.res, config.input_resolution)
        self.up = self.res > config.input_resolution
        self.first = index == 0
        rank, w_dim, norm = config.fmm_rank, config.w_dim, config.instance_norm
        self.coords = _embedding(config, self.grid) if (self.first or self.up) else None
        ce = self.coords.channels if self.coords is not None else 0
        self.conv0 = None if self.first else FMMLayer(cin + ce, cout, w_dim, rank)
        self.conv1 = FMMLayer(ce if self.first else cout, cout, w_dim, rank, instance_norm=norm and not self.first)
        n_extra = dict((int(r), int(k)) for r, k in config.extra_convs).get(self.grid, 0)
        self.extra_convs = nn.ModuleList(FMMLayer(cout, cout, w_dim, rank, instance_norm=norm)
                                         for _ in range(n_extra))
        self.torgb = ToRGB(cout, w_dim, upsample_skip=False)
        self.num_conv = (1 if self.first else 2) + n_extra

    def layers(self) -> list[FMMLayer]:
        return ([] if self.conv0 is None else [self.conv0]) + [self.conv1, *self.extra_convs]


class INRGANSynthesis(nn.Module):
    """ws -> image: the 32 px coordinate base, then upsampling blocks with FMM layers and summed ToRGB outputs."""

    reference = False        # True: run the official-structured path instead of the fast one (layers.reference)
    band_rows = None         # force the row-band height of the chunked renderer (tests); None = by band_bytes
    band_bytes = BAND_BYTES

    def __init__(self, config: INRGANConfig):
        super().__init__()
        _check(config)
        log = log2_resolution(config.resolution, 8)
        self.config = config
        self.resolution = config.resolution
        self.input_resolution = config.input_resolution
        self.mode = config.upsampling
        self.blocks = nn.ModuleList()
        cin = 0
        for i in range(log - 1):
            cout = channels_for(config, i, 2 ** (i + 2))
            self.blocks.append(INRGANBlock(config, i, cin, cout))
            cin = cout
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1
        self._cache = DerivedCache()   # per block: Fourier features of its grid (one grid size at a time)

    def noise_shapes(self, size=None) -> list:
        return []

    def grids(self, size: int | None) -> list[int]:
        """Grid side of every block for an output of `size` px."""
        n = size or self.resolution
        return [b.grid if not b.up else scaled_grid(b.res, n, self.resolution) for b in self.blocks]

    def block_ws(self, ws: torch.Tensor) -> list[torch.Tensor]:
        out, idx = [], 0
        for b in self.blocks:
            out.append(ws[:, idx:idx + b.num_conv + 1])
            idx += b.num_conv
        return out

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", noise=None, size=None,
                return_stages: bool = False):
        """Image (B, 3, n, n) for ws (B, num_ws, w_dim); noise is unused (the official configs have none)."""
        if noise:
            raise PixelfolderError("INR-GAN has no noise inputs (use_noise is false in every official config)")
        if ws.ndim != 3 or ws.shape[1] != self.num_ws:
            raise PixelfolderError(f"ws must have shape (batch, {self.num_ws}, w_dim), got {tuple(ws.shape)}")
        ws = ws.float()
        run = self._forward_reference if self.reference else self._forward_fast
        img, stages = run(ws, self.grids(size), return_stages)
        return (img, stages) if return_stages else img

    # ------------------------------------------------------------------------------------------ helpers
    def resize(self, x: torch.Tensor, src: int, dst: int, start: int = 0, stop: int | None = None,
               offset: int = 0) -> torch.Tensor:
        """Rows start..stop (all columns) of x resampled from a src to a dst grid; x holds source rows offset..."""
        if self.mode == "bilinear":
            return x if src == dst else F.interpolate(x, size=(dst, dst), mode="bilinear", align_corners=True)
        stop = dst if stop is None else stop
        if src == dst and start == offset and x.shape[2] == stop - start:
            return x
        if dst % src == 0:   # integer factor f: out[j] = in[j // f], a broadcast copy instead of a gather
            f, a = dst // src, start // (dst // src)
            b, c, h, w = x[:, :, a - offset:(stop - 1) // f + 1 - offset].shape
            y = x[:, :, a - offset:a - offset + h].unsqueeze(3).unsqueeze(5).expand(b, c, h, f, w, f)
            return y.reshape(b, c, h * f, w * f)[:, :, start - a * f:stop - a * f]
        rows = nearest_index(src, dst, start, stop, x.device) - offset
        cols = nearest_index(src, dst, device=x.device)
        return x[:, :, rows[:, None], cols[None, :]]

    def features(self, coords: CoordEmbedding, n: int, start: int, stop: int):
        """(Fourier (2K, rows*n), const (C, rows*n)) features of grid rows start..stop.

        The Fourier part is cached per grid without autograd; a hit needs the very same basis values.
        """
        const = coords.const(n, start, stop).flatten(1)
        fourier_size = coords.fourier_channels * n * n
        if torch.is_grad_enabled() or fourier_size > CACHE_MAX_ELEMENTS or coords.const_embs.is_meta:
            return coords.fourier(n, start, stop).flatten(1), const
        # one entry per block (tag), replaced by another grid size (key): rendering many sizes does not accumulate
        fourier = self._cache.get([coords.basis().detach()], lambda: coords.fourier(n).flatten(1), tag=id(coords),
                                  key=n)
        return fourier[:, start * n:stop * n], const

    @staticmethod
    def _add_features(y, weight, cin, feats):
        """y + W[:, :, cin:] @ [fourier; const] as two baddbmm (in place without autograd)."""
        fourier, const = feats
        batch, k = y.shape[0], fourier.shape[0]
        parts = ((weight[:, :, cin:cin + k], fourier), (weight[:, :, cin + k:], const))
        for w_part, feat in parts:
            if feat.shape[0] == 0:
                continue
            feat, w_part = feat.to(y.dtype).expand(batch, -1, -1), w_part.to(y.dtype)   # autocast: y may be bf16
            y = torch.baddbmm(y, w_part, feat) if torch.is_grad_enabled() else y.baddbmm_(w_part, feat)
        return y

    # ------------------------------------------------------------------------------------ reference path
    def _forward_reference(self, ws, grids, return_stages):
        x = img = None
        stages, prev = [], None
        for block, grid, wb in zip(self.blocks, grids, self.block_ws(ws)):
            w = iter(wb.unbind(1))
            if block.first:
                x = block.coords(grid).unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            elif block.coords is not None:
                x = self.resize(x, prev, grid)
                emb = block.coords(grid).unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
                x = torch.cat([x, emb], dim=1)
            for layer in block.layers():
                x = layer(x, next(w))
            rgb = block.torgb(x, next(w))
            img = rgb if img is None else self.resize(img, prev, grid) + rgb
            stages.append(img)
            prev = grid
        return img, stages

    # ----------------------------------------------------------------------------------------- fast path
    @staticmethod
    def _fused(layer: FMMLayer, w: torch.Tensor):
        """(sqrt2 * W (B, o, i), sqrt2 * bias (1, o, 1)): lrelu(z) * sqrt2 == lrelu(sqrt2 * z)."""
        return layer.modulated_weight(w) * SQRT2, (layer.bias * SQRT2).view(1, -1, 1)

    @staticmethod
    def _act(x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2) if torch.is_grad_enabled() else F.leaky_relu_(x, 0.2)

    def _dense(self, layer: FMMLayer, wb, x: torch.Tensor) -> torch.Tensor:
        """One FMM layer on x (B, C, P) with its fused weights; the instance norm scales the weight columns."""
        weight, bias = wb
        if layer.instance_norm:
            weight = weight / (x.std(dim=2) + NORM_EPS).unsqueeze(1)
        return self._act(torch.baddbmm(bias, weight, x))

    @staticmethod
    def _rgb(torgb: ToRGB, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        weight = torgb.weight.flatten(1) * torgb.weight_gain * torgb.affine(w).unsqueeze(1)
        return torch.baddbmm(torgb.bias.view(1, -1, 1), weight, x)

    def _weights(self, ws):
        """Per block: fused weights of every FMM layer (in order) and the ToRGB w."""
        out = []
        for block, wb in zip(self.blocks, self.block_ws(ws)):
            w = wb.unbind(1)
            out.append(([self._fused(layer, w[i]) for i, layer in enumerate(block.layers())], w[-1]))
        return out

    def _run_base(self, weights, batch):
        """Blocks up to input_resolution on the full base grid: features (B, C, g, g), image, stages."""
        x = img = None
        stages = []
        for block, (fused, w_rgb) in zip(self.blocks, weights):
            if block.up:
                break
            g = block.grid
            layers = block.layers()
            if block.first:
                weight, bias = fused[0]
                y = bias.expand(batch, -1, g * g).contiguous()
                x = self._act(self._add_features(y, weight, 0, self.features(block.coords, g, 0, g)))
                layers, fused = layers[1:], fused[1:]
            for layer, wb in zip(layers, fused):
                x = self._dense(layer, wb, x)
            rgb = self._rgb(block.torgb, w_rgb, x).view(batch, 3, g, g)
            img = rgb if img is None else img + rgb
            stages.append(img)
        return x.view(batch, -1, g, g), img, stages

    def _run_upper(self, block, fused, w_rgb, x, img, src, grid, start, stop, offset):
        """Rows start..stop of an upsampling block from source rows offset... of the previous grid."""
        batch, cin = x.shape[:2]
        rows = stop - start
        (weight, bias), rest = fused[0], fused[1:]
        y = torch.baddbmm(bias, weight[:, :, :cin], x.flatten(2)).view(batch, -1, *x.shape[2:])
        y = self.resize(y, src, grid, start, stop, offset).reshape(batch, -1, rows * grid).contiguous()
        y = self._act(self._add_features(y, weight, cin, self.features(block.coords, grid, start, stop)))
        for layer, wb in zip(block.layers()[1:], rest):
            y = self._dense(layer, wb, y)
        rgb = self._rgb(block.torgb, w_rgb, y).view(batch, 3, rows, grid)
        img = self.resize(img, src, grid, start, stop, offset) + rgb
        return y.view(batch, -1, rows, grid), img

    def _forward_fast(self, ws, grids, return_stages):
        batch = ws.shape[0]
        weights = self._weights(ws)
        x, img, stages = self._run_base(weights, batch)
        upper = [(b, g, wt) for b, g, wt in zip(self.blocks, grids, weights) if b.up]
        n = grids[-1]
        # bands save memory only without autograd (a backward pass keeps every band's activations anyway)
        whole = return_stages or self.mode == "bilinear" or torch.is_grad_enabled()
        band = n if whole else self._band_rows(batch, grids)
        out = None if band >= n else img.new_empty(batch, 3, n, n)
        for start in range(0, n, band):
            stop = min(n, start + band)
            (a0, b0), ranges = self._source_ranges(grids, len(upper), start, stop)
            xb, ib, src, offset = x[:, :, a0:b0], img[:, :, a0:b0], grids[len(grids) - len(upper) - 1], a0
            for (block, grid, (fused, w_rgb)), (a, b) in zip(upper, ranges):
                xb, ib = self._run_upper(block, fused, w_rgb, xb, ib, src, grid, a, b, offset)
                src, offset = grid, a
                if return_stages:
                    stages.append(ib)
            if out is None:
                return ib, stages
            out[:, :, start:stop] = ib
        return out, stages

    @staticmethod
    def _source_ranges(grids, n_upper, start, stop):
        """(base row range, [row range of every upsampling block]) needed for output rows start..stop.

        Nearest resampling maps rows monotonically, so every range is contiguous; a full band (always
        for bilinear) uses the full grids.
        """
        if start == 0 and stop == grids[-1]:
            return (0, grids[-1 - n_upper]), [(0, g) for g in grids[len(grids) - n_upper:]]
        ranges = [(start, stop)]
        for k in range(len(grids) - 1, len(grids) - 1 - n_upper, -1):
            a, b = ranges[0]
            ranges.insert(0, ((a * grids[k - 1]) // grids[k], ((b - 1) * grids[k - 1]) // grids[k] + 1))
        return ranges[0], ranges[1:]

    # ------------------------------------------------------------------------------------- memory model
    def _band_bytes(self, batch, grids, rows) -> int:
        """Peak activation bytes of one band of `rows` output rows (fast path), summed over the upper blocks."""
        n, total = grids[-1], 0
        for block, g in zip(self.blocks, grids):
            if not block.up:
                continue
            r = min(g, rows * g // n + 2)
            emb = block.coords.channels if block.coords.fourier_channels * g * g > CACHE_MAX_ELEMENTS else \
                block.coords.const_embs.shape[1]
            total += 4 * r * g * (batch * (3 * block.conv1.out_channels + 6) + emb)
        return total

    def _band_rows(self, batch, grids) -> int:
        if self.band_rows:
            return int(self.band_rows)
        n = grids[-1]
        if self._band_bytes(batch, grids, n) <= self.band_bytes:
            return n
        lo, hi = 1, n
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if self._band_bytes(batch, grids, mid) <= self.band_bytes else (lo, mid - 1)
        return lo

    def render_bytes(self, batch: int, size: int) -> int:
        grids = self.grids(size)
        n = grids[-1]
        rows = n if self.mode == "bilinear" else self._band_rows(batch, grids)
        fixed = 4 * batch * 3 * n * n * 2
        for block, g in zip(self.blocks, grids):
            fixed += 4 * batch * sum(layer.weight.numel() for layer in block.layers())
            if not block.up:
                fixed += 4 * batch * 3 * block.conv1.out_channels * g * g
            elif block.coords.fourier_channels * g * g <= CACHE_MAX_ELEMENTS:
                fixed += 4 * block.coords.fourier_channels * g * g
        return fixed + self._band_bytes(batch, grids, rows)

    # ------------------------------------------------------------------------------------------- MACs
    def official_block_macs(self, size: int | None = None) -> list[int]:
        """Matmul MACs per image of every block of the official computation (FlopCounterMode: mm/addmm/bmm/conv).

        Per FMM layer: affine w_dim*(i+o)*r + A@B o*r*i + bmm o*i*HW; per ToRGB: affine w_dim*C + conv 3*C*HW.
        The Fourier features are counted as cached (the official CoordFuser caches them after the first call).
        """
        w_dim, out = self.config.w_dim, []
        for block, g in zip(self.blocks, self.grids(size)):
            total = 0
            for layer in block.layers():
                o, i = layer.weight.shape
                total += w_dim * (i + o) * layer.rank + o * layer.rank * i + o * i * g * g
            c = block.torgb.weight.shape[1]
            out.append(total + w_dim * c + 3 * c * g * g)
        return out


class _INRGAN(Generator):
    native_size_only = False
    seed_rng = "numpy"          # NVlabs family: seed N draws z as gen_images.py does

    def __init__(self, config: INRGANConfig):
        synthesis = INRGANSynthesis(config)
        super().__init__(config, num_ws=synthesis.num_ws)
        self.synthesis = synthesis

    def render_bytes(self, batch: int, size: int) -> int:
        return self.synthesis.render_bytes(batch, size)

    def official_macs(self, size: int | None = None) -> int:
        """MACs per image as FlopCounterMode counts the official code (mapping included)."""
        dims = [self.config.z_dim] + [self.config.w_dim] * self.config.mapping_layers
        return sum(a * b for a, b in zip(dims, dims[1:])) + sum(self.synthesis.official_block_macs(size))


# universome/inr-gan configs/inr-gan.yml (4 GPUs x 16): lr 0.0025, R1 10, no PL, no mixing, ema batch*10/32 kimg
INRGAN_RECIPE = Recipe(lr=0.0025, ema_kimg=20.0, ema_rampup=0.05, resolutions=(256,),
                       source="universome/inr-gan configs/inr-gan.yml")


@register_model("inrgan", INRGANConfig, description="INR-GAN (CVPR 2021), FMM INR generator, any render size",
                recipe=INRGAN_RECIPE, discriminator="stylegan2_d")
class INRGAN(_INRGAN):
    def __init__(self, config: INRGANConfig = INRGANConfig()):
        super().__init__(config)


@register_model("inrgan_bil", INRGANBilConfig,
                 description="INR-GAN-bil: bilinear upsampling + instance norm, any render size",
                 recipe=INRGAN_RECIPE, discriminator="stylegan2_d")
class INRGANBil(_INRGAN):
    def __init__(self, config: INRGANConfig = INRGANBilConfig()):
        super().__init__(config)


def _extended(res: int) -> dict:
    """Hypothetical 512/1024 configs: medium_res_cfg at every res >= 128, one extra conv per block >= 128."""
    return dict(resolution=res, extra_convs=tuple((2 ** k, 1) for k in range(7, int(math.log2(res)) + 1)))


def _scaled_down(res: int) -> dict:
    """Below 256 px: the official 256 px layout scaled by res/256 (input grid 32 -> res/8, extra convs at res/2
    and res, medium coordinate settings from res/2)."""
    return dict(resolution=res, input_resolution=max(4, res // 8), extra_convs=((res // 2, 1), (res, 1)),
                medium_from=res // 2)


_TINY = dict(resolution=32, z_dim=64, w_dim=64, mapping_layers=2, channel_base=256, channel_max=32,
             input_resolution=8, fmm_rank=4, extra_convs=((32, 1),), medium_from=32, low_const=4,
             medium_const=4, medium_random=4)
for _arch, _what in (("inrgan", "INR-GAN"), ("inrgan_bil", "INR-GAN-bil")):
    register_preset(f"{_arch}-256", _arch, f"official {_what} at 256 px (configs/inr-gan*.yml)", official=True,
                    resolution=256)
    for _res in (512, 1024):
        register_preset(f"{_arch}-{_res}", _arch, f"{_what} at {_res} px (extended, not official: medium "
                        "coordinate settings and one extra conv at every res >= 128)", **_extended(_res))
    register_rule_presets(_arch, _scaled_down, "the 256 px layout scaled: input grid res/8, extra convs and "
                                               "medium coordinates at res/2 and res")
    register_preset(f"{_arch}-tiny", _arch, f"tiny {_what} for tests (32 px)", tiny=True, **_TINY)
