"""PixelPyramids (Mahajan & Roth, ICCV 2021): an exact-likelihood model over a lossless integer image pyramid.

The n_bits-bit image is split num_levels-1 times (rows, columns, ... down to 4x4; pyramid.py) into
residuals d_0 (finest) .. d_{L-2} and the 4x4 image x_{L-2}. Fine level l models p(d_l | x_l) with a U-Net on
x_l and a ConvLSTM over f*f slots of d_l (unet_lstm.py); the last level is a PixelCNN++ on the 4x4 image
(pixelcnnpp.py). Every conditional is a 3-colour discretised logistic mixture (dmol.py), so

    -log p(image) = sum over the L levels of the per-level NLL (nats), and
    bits/dim = that sum / (ln 2 * 3*H*W): bits per n_bits-bit subpixel (no dequantisation term).

BatchNorm protocols: 'eval' uses the running statistics (a proper per-image density, the default);
'official' normalises with the statistics of the evaluated batch as the official evaluation does (main.py never
calls .eval()), without updating the running statistics. The numbers then depend on the batch composition.

Precision (evaluation only): 'fp32' (default, the reference) or 'bf16': the U-Net and ConvLSTM convolutions
in bfloat16 (folded weights, channels_last activations) with the first U-Net conv, the LSTM cell update, the
mixture head, the PixelCNN++ and the loss in float32. On a CPU with AVX-512-BF16 ~1.6-1.8x faster than fp32;
bits/dim off by ~1e-5 relative on random-weight models, and on a briefly trained emoji32 model by +5e-5 on
average and at most ~1e-3 relative per image (tools/bench_pixelpyramids.py --precision bf16 measures both).
Without native bfloat16 support it is slower than fp32.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from ...errors import PixelfolderError
from ...registry import Recipe, register_model, register_preset
from ..base import seed_generator
from .dmol import dmol_nll, dmol_num_mix, dmol_sample, dmol_sample_official
from .pixelcnnpp import PixelCNNpp
from .pyramid import (decompose, pyramid_shapes, quantize, reconstruct, squeeze_slots, to_model_space,
                       unsqueeze_slots)
from .unet_lstm import BatchNorm, FineLevel

BN_PROTOCOLS = ("eval", "official")
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}   # compute dtype of the fine levels' convolutions
SAMPLE_MODES = ("exact", "official")
OFFICIAL_TEMPERATURE = 0.1      # the logistic-scale factor hidden in the official sampler
OFFICIAL_OFFSET = 128           # the official sampler always subtracts 128 from the residual codes (mod n)


@dataclass(frozen=True)
class PixelPyramidsConfig:
    """The official params/*.json fields plus the values main.py hard-codes; presets fill them per dataset."""

    height: int = 256                 # image height, px (square SxS or S x 2S; see pyramid_shapes)
    width: int = 256                  # image width, px
    num_levels: int = 13              # L: L-1 U-Net+ConvLSTM levels plus the 4x4 PixelCNN++ (official "L")
    unet_width: int = 64              # U-Net base width, channels (official "C")
    n_bits: int = 5                   # bits per subpixel of the modelled image, 1..8 (official "n_bits")
    n_classes: tuple = (100,) * 13    # mixture-head channels per level, 10 per logistic component
    n_squeeze: tuple = (2, 2, 2, 2) + (1,) * 8   # per fine level: slots T = 4**n_squeeze (official "n_squeeze")
    n_channels: int = 32              # PixelCNN++ width, channels (official "n_channels")
    n_res_layers: int = 2             # PixelCNN++ gated residual layers per stage (official "n_res_layers")
    unet_n_layers: tuple = ()         # U-Net depth per fine level; () = main.py's rule from num_levels
    nc_cond_embd: int = 100           # U-Net conditioning channels fed to the ConvLSTM (hard-coded 100)
    lstm_hidden: int = 128            # ConvLSTM hidden channels (hard-coded 128)
    lstm_num_layers: int = 2          # stacked ConvLSTM layers (hard-coded 2)
    residual_offset: int = 0          # s in d = (p1 - p2 + s) mod 2**n_bits: the official loader's offset
    bn_protocol: str = "eval"         # default BatchNorm protocol outside training: 'eval' or 'official'
    keep_dead_down_convs: bool = False  # also build the official, never-used Down.conv blocks (weights only)


def official_unet_depths(num_levels: int) -> tuple:
    """main.py: min(max(L-i-7, 1), 4) for fine level i, or min(max(L-i//2-6, 1), 4) when L == 11."""
    if num_levels == 11:
        return tuple(min(max(num_levels - i // 2 - 6, 1), 4) for i in range(num_levels - 1))
    return tuple(min(max(num_levels - i - 7, 1), 4) for i in range(num_levels - 1))


def unet_depths(config: PixelPyramidsConfig) -> tuple:
    return tuple(config.unet_n_layers) or official_unet_depths(config.num_levels)


def check_config(config: PixelPyramidsConfig) -> list[tuple[int, int]]:
    """Validate a config; returns the (h_l, w_l) of the fine levels (finest first)."""
    nb = config.n_bits
    if isinstance(nb, bool) or not isinstance(nb, int) or not 1 <= nb <= 8:
        raise PixelfolderError(f"n_bits must be an integer in 1..8; got {nb!r}")
    shapes = pyramid_shapes(config.height, config.width, config.num_levels)
    fine = config.num_levels - 1
    depths = unet_depths(config)
    for name, values, need in (("n_classes", config.n_classes, config.num_levels),
                               ("n_squeeze", config.n_squeeze, fine), ("unet_n_layers", depths, fine)):
        if len(values) != need:
            raise PixelfolderError(f"{name} needs {need} entries for num_levels={config.num_levels}; "
                                   f"got {len(values)}")
    for n_classes in config.n_classes:
        dmol_num_mix(n_classes)
    for level, ((h, w), s, depth) in enumerate(zip(shapes, config.n_squeeze, depths)):
        f = 2 ** s
        if s < 1 or h % f or w % f:
            raise PixelfolderError(f"level {level} ({h}x{w}): n_squeeze={s} must be >= 1 with 2**n_squeeze "
                                   "dividing both sides")
        if depth < 1 or min(h, w) < 2 ** depth:
            raise PixelfolderError(f"level {level} ({h}x{w}): a U-Net of depth {depth} needs both sides >= "
                                   f"{2 ** depth}")
    if config.bn_protocol not in BN_PROTOCOLS:
        raise PixelfolderError(f"bn_protocol must be one of {BN_PROTOCOLS}; got {config.bn_protocol!r}")
    if not 0 <= config.residual_offset < 2 ** nb:
        raise PixelfolderError(f"residual_offset must be in 0..{2 ** nb - 1} for n_bits={nb}; "
                               f"got {config.residual_offset}")
    return shapes


# visinf/pixelpyramids main.py/optim.py: one NLL phase, Adam 5e-4 (0.95, 0.9995), x0.999995 per step, batch 48,
# no augmentation; no EMA (the official Polyak average is never used).
PIXELPYRAMIDS_RECIPE = Recipe(lr=5e-4, gamma=0.0, ema_kimg=0.0, batch=48, mirror=False, betas=(0.95, 0.9995),
                              lr_decay=0.999995, source="visinf/pixelpyramids main.py and optim.py")


@register_model("pixelpyramids", PixelPyramidsConfig, kind="likelihood",
                description="PixelPyramids (ICCV 2021): exact likelihood over a lossless integer pyramid",
                recipe=PIXELPYRAMIDS_RECIPE)
class PixelPyramids(nn.Module):
    """`levels[l]` for l < L-1 models d_l given x_l (finest first); `levels[-1]` is the 4x4 PixelCNN++."""

    SAMPLE_OPTIONS = ("mode",)      # sample(seeds, batch_size=, device=, mode=): exact or official sampler

    @property
    def unused_parameters(self) -> tuple[str, ...]:
        """Name prefixes of the official dead weights (the PixelCNN++'s unused 'ul' layers): kept, never trained."""
        last = len(self.levels) - 1
        return tuple(f"levels.{last}.{p}" for p in self.levels[last].dead_parameters)

    def __init__(self, config: PixelPyramidsConfig = PixelPyramidsConfig()):
        super().__init__()
        self.config = config
        self.shapes = check_config(config)
        depths = unet_depths(config)
        levels = [FineLevel(width=config.unet_width, depth=depths[i], n_squeeze=config.n_squeeze[i],
                            n_classes=config.n_classes[i], cond_channels=config.nc_cond_embd,
                            lstm_hidden=config.lstm_hidden, lstm_layers=config.lstm_num_layers,
                            keep_unused=config.keep_dead_down_convs) for i in range(config.num_levels - 1)]
        levels.append(PixelCNNpp(config.n_channels, config.n_res_layers, config.n_classes[-1]))
        self.levels = nn.ModuleList(levels)
        self.metadata = {}

    @property
    def num_levels(self) -> int:
        return self.config.num_levels

    @property
    def resolution(self) -> int:
        """Image height, px (the data loader's size; the width is the same or twice it)."""
        return self.config.height

    @property
    def dims(self) -> int:
        """Modelled subpixels per image, 3*H*W."""
        return 3 * self.config.height * self.config.width

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    # --------------------------------------------------------------------------------------------- inputs
    def codes_of(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """Checked 8-bit images (B, 3, H, W) -> int64 n_bits codes (floor quantisation, as the official loaders)."""
        h, w = self.config.height, self.config.width
        if not isinstance(x_uint8, torch.Tensor) or x_uint8.dtype != torch.uint8:
            kind = x_uint8.dtype if isinstance(x_uint8, torch.Tensor) else type(x_uint8).__name__
            raise PixelfolderError(f"PixelPyramids takes 8-bit images: a uint8 tensor (B, 3, {h}, {w}); got {kind}")
        if x_uint8.dim() != 4 or x_uint8.shape[1] != 3 or tuple(x_uint8.shape[2:]) != (h, w):
            raise PixelfolderError(f"this PixelPyramids model takes uint8 images (B, 3, {h}, {w}) ({h}x{w} px, "
                                   f"its only size); got shape {tuple(x_uint8.shape)}")
        return quantize(x_uint8.to(self._device()), self.config.n_bits)

    def model_inputs(self, codes: torch.Tensor, *, in_range: bool = False):
        """Codes -> (x_l list, d_l list) in model space, finest first; x_{L-2} is the 4x4 image. in_range: the
        codes come from `codes_of` (no range check, which would wait for the device)."""
        c = self.config
        pyr = decompose(codes, c.n_bits, c.num_levels, c.residual_offset, in_range=in_range)
        return ([to_model_space(k, c.n_bits) for k in pyr.kept],
                [to_model_space(d, c.n_bits) for d in pyr.residuals])

    @contextlib.contextmanager
    def bn_protocol(self, protocol: str | None):
        """BatchNorm behaviour for one call. None: ordinary BatchNorm in training mode, else config.bn_protocol."""
        if protocol is None and self.training:
            yield
            return
        protocol = protocol or self.config.bn_protocol
        if protocol not in BN_PROTOCOLS:
            raise PixelfolderError(f"protocol must be one of {BN_PROTOCOLS}; got {protocol!r}")
        bns = [m for m in self.modules() if isinstance(m, BatchNorm)]
        saved = [(m.training, m.batch_stats) for m in bns]
        for m in bns:
            m.train(False)
            m.batch_stats = protocol == "official"
        try:
            yield
        finally:
            for m, (training, batch_stats) in zip(bns, saved):
                m.train(training)
                m.batch_stats = batch_stats

    # ----------------------------------------------------------------------------------------- likelihood
    def _selected(self, levels) -> list[int]:
        if levels is None:
            return list(range(self.num_levels))
        n = self.num_levels
        chosen = sorted({int(i) % n if -n <= int(i) < 0 else int(i) for i in levels})   # -1 = the coarsest level
        if not chosen or chosen[0] < 0 or chosen[-1] >= n:
            raise PixelfolderError(f"levels must be indices in 0..{self.num_levels - 1}; got {list(levels)}")
        return chosen

    def mixture_params(self, codes: torch.Tensor, *, protocol: str | None = None, levels=None,
                       precision: str = "fp32") -> dict:
        """{level: float32 mixture parameters (B, n_classes, h_l, w_l)} for integer codes (B, 3, H, W)."""
        dtype = self._compute_dtype(precision, protocol)
        return self._level_params(*self.model_inputs(codes.to(self._device())), protocol, levels, dtype)

    def _compute_dtype(self, precision: str, protocol: str | None) -> torch.dtype:
        if precision not in PRECISIONS:
            raise PixelfolderError(f"precision must be one of {tuple(PRECISIONS)}; got {precision!r}")
        if precision != "fp32" and (torch.is_grad_enabled() or (protocol is None and self.training)):
            raise PixelfolderError(f"precision={precision!r} is for evaluation: call it under torch.no_grad() "
                                   "with the model in eval mode or a BatchNorm protocol")
        return PRECISIONS[precision]

    def _level_params(self, xs, ds, protocol, levels, dtype: torch.dtype = torch.float32) -> dict:
        out, last = {}, self.num_levels - 1
        with self.bn_protocol(protocol):
            for i in self._selected(levels):
                out[i] = self.levels[i](xs[-1]) if i == last else self.levels[i](xs[i], ds[i], dtype)
        return out

    def level_nll(self, x_uint8: torch.Tensor, *, protocol: str | None = None, levels=None,
                  precision: str = "fp32") -> torch.Tensor:
        """(L, B) nats: row l < L-1 is -log p(d_l | x_l), row L-1 is -log p(4x4 image).

        protocol: 'eval' | 'official' | None (module's training BatchNorm while training, else config.bn_protocol).
        levels: optional subset of level indices to compute (training a subset); the other rows are 0.
        precision: 'fp32' (default) or 'bf16' (evaluation under no_grad only; see the module docstring).
        """
        dtype = self._compute_dtype(precision, protocol)
        codes = self.codes_of(x_uint8)
        xs, ds = self.model_inputs(codes, in_range=True)
        params = self._level_params(xs, ds, protocol, levels, dtype)
        targets = ds + [xs[-1]]
        rows = [dmol_nll(params[i], targets[i], self.config.n_bits) if i in params
                else targets[i].new_zeros(codes.shape[0]) for i in range(self.num_levels)]
        return torch.stack(rows)

    def forward(self, x_uint8: torch.Tensor, *, protocol: str | None = None, levels=None) -> torch.Tensor:
        """= level_nll: (L, B) nats (training minimises the batch mean of the column sums)."""
        return self.level_nll(x_uint8, protocol=protocol, levels=levels)

    def nll_bits(self, x_uint8: torch.Tensor, *, precision: str = "fp32") -> torch.Tensor:
        """(B,) -log2 p(image) in bits, of the n_bits-bit image (metrics interface; config.bn_protocol).

        precision='bf16' evaluates without autograd (see the module docstring).
        """
        with torch.no_grad() if precision != "fp32" else contextlib.nullcontext():
            nll = self.level_nll(x_uint8, protocol=self.config.bn_protocol, precision=precision)
        return nll.sum(0) / math.log(2)

    @torch.no_grad()
    def bits_per_dim(self, x_uint8: torch.Tensor, *, protocol: str | None = None, precision: str = "fp32") -> dict:
        """Bits per n_bits-bit subpixel (3*H*W dims per image, no dequantisation term), per image and per level.

        Keys: 'bpd' (B,) per image; 'per_level' (L, B), the bits/dim each level contributes (sums to bpd);
        'nll_nats' (L, B); 'batch_bpd' float, the official formula for this batch (total / (ln2 * dims * B));
        'protocol'; 'precision'; 'units'.
        """
        protocol = protocol or self.config.bn_protocol
        nll = self.level_nll(x_uint8, protocol=protocol, precision=precision)
        per_level = nll / (math.log(2) * self.dims)
        return {"bpd": per_level.sum(0), "per_level": per_level, "nll_nats": nll,
                "batch_bpd": float(nll.sum()) / (math.log(2) * self.dims * nll.shape[1]), "protocol": protocol,
                "precision": precision,
                "units": f"bits per {self.config.n_bits}-bit subpixel (3*H*W dims per image)"}

    # ------------------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample_codes(self, seeds, *, batch_size: int = 8, mode: str = "exact", device=None,
                     trace: list | None = None) -> torch.Tensor:
        """int64 codes (N, 3, H, W) on the CPU, one image per seed, independent of batch_size.

        mode='exact' (default): ancestral sampling of the model with eval-mode BatchNorm: 16 PixelCNN++ passes
        in raster order, then per fine level (coarse to fine) the U-Net and T ConvLSTM steps, each drawing one
        slot exactly (dmol.dmol_sample) and feeding its grid values back; the integer pyramid inverse.
        mode='official': the official approximate sampler (misc.generate_samples) without its post-hoc filters:
        logistic scale x0.1, values clamped but not snapped, codes by truncation (astype uint8), 128 always
        subtracted from the residual (mod n), BatchNorm with the statistics of the sampling batch (so images
        depend on their batch). The median / IsolationForest clean-up is omitted (it needs scikit-learn);
        returned codes are trunc((v+1)/2*(n-1)) of the continuous result.
        Each image's randomness comes from torch.Generator(seed). trace (tests): receives (level, step, params)
        of every exact draw.
        """
        if mode not in SAMPLE_MODES:
            raise PixelfolderError(f"mode must be one of {SAMPLE_MODES}; got {mode!r}")
        values = self._sample(seeds, batch_size, mode, device, trace)
        if mode == "exact":
            return values
        n = 2 ** self.config.n_bits
        return ((values.double() + 1) / 2 * (n - 1)).trunc().long().clamp(0, n - 1)

    @torch.no_grad()
    def sample(self, seeds, *, batch_size: int = 8, mode: str = "exact", device=None) -> torch.Tensor:
        """Float images (N, 3, H, W) in [-1, 1] (code k -> 2k/(n-1) - 1; mode='official': its continuous values)."""
        if mode not in SAMPLE_MODES:
            raise PixelfolderError(f"mode must be one of {SAMPLE_MODES}; got {mode!r}")
        values = self._sample(seeds, batch_size, mode, device, None)
        return to_model_space(values, self.config.n_bits) if mode == "exact" else values

    def _sample(self, seeds, batch_size: int, mode: str, device, trace) -> torch.Tensor:
        """Chunks of batch_size seeds, each image drawing from its own torch.Generator(seed)."""
        seeds = [int(s) for s in seeds]
        if not seeds or batch_size < 1:
            raise PixelfolderError("sampling needs at least one seed and batch_size >= 1")
        if device is not None and torch.device(device).type != self._device().type:
            raise PixelfolderError(f"the model is on {self._device()}; move it to {device} before sampling")
        out = []
        for start in range(0, len(seeds), batch_size):
            gens = [seed_generator(s) for s in seeds[start:start + batch_size]]
            if mode == "exact":
                with self.bn_protocol("eval"):
                    out.append(self._sample_exact(gens, trace).cpu())
            else:
                with self.bn_protocol("official"):
                    out.append(self._sample_official(gens).float().cpu())
        return torch.cat(out)

    def _draw(self, params: torch.Tensor, gens, official: bool = False) -> torch.Tensor:
        """Per-image draws, each from its own generator (the CPU generators need CPU parameters)."""
        nb = self.config.n_bits
        if official:
            draws = [dmol_sample_official(params[b:b + 1].cpu(), nb, generator=g, temperature=OFFICIAL_TEMPERATURE)
                     for b, g in enumerate(gens)]
        else:
            draws = [dmol_sample(params[b:b + 1].cpu(), nb, generator=g) for b, g in enumerate(gens)]
        return torch.cat(draws).to(params.device)

    def _sample_exact(self, gens, trace) -> torch.Tensor:
        nb, last = self.config.n_bits, self.num_levels - 1
        h4, w4 = self.shapes[-1]
        codes = torch.zeros(len(gens), 3, h4, w4, dtype=torch.int64, device=self._device())
        for i in range(h4):
            for j in range(w4):
                params = self.levels[last](to_model_space(codes, nb))[:, :, i:i + 1, j:j + 1]
                codes[:, :, i:i + 1, j:j + 1] = self._draw(params, gens)
                if trace is not None:
                    trace.append((last, i * w4 + j, params))
        for level in range(last - 1, -1, -1):
            net = self.levels[level]
            cond = squeeze_slots(net.unet(to_model_space(codes, nb)), net.factor)
            prev, states, slots = cond.new_zeros(cond.shape[0], 3, *cond.shape[3:]), None, []
            for t in range(net.slots):
                params, states = net.lstm.step(torch.cat([cond[:, t], prev], dim=1), states, check=t == 0)
                slots.append(self._draw(params, gens))
                prev = to_model_space(slots[-1], nb)
                if trace is not None:
                    trace.append((level, t, params))
            d = unsqueeze_slots(torch.stack(slots, dim=1), net.factor)
            codes = reconstruct(codes, [d], nb, self.config.residual_offset)
        return codes

    def _sample_official(self, gens) -> torch.Tensor:
        """Model-space float64 images of the official sampler (no post-hoc filters)."""
        nb, last = self.config.n_bits, self.num_levels - 1
        h4, w4 = self.shapes[-1]
        canvas = torch.zeros(len(gens), 3, h4, w4, device=self._device())
        for i in range(h4):
            for j in range(w4):
                params = self.levels[last](canvas)[:, :, i:i + 1, j:j + 1]
                canvas[:, :, i:i + 1, j:j + 1] = self._draw(params, gens, official=True)
        up = canvas.double()
        for level in range(last - 1, -1, -1):
            net = self.levels[level]
            cond = squeeze_slots(net.unet(up.float()), net.factor)
            prev, states, slots = cond.new_zeros(cond.shape[0], 3, *cond.shape[3:]), None, []
            for t in range(net.slots):
                params, states = net.lstm.step(torch.cat([cond[:, t], prev], dim=1), states, check=t == 0)
                slots.append(self._draw(params, gens, official=True))
                prev = slots[-1]
            up = official_merge(up, unsqueeze_slots(torch.stack(slots, dim=1), net.factor), nb)
        return up


def official_merge(up: torch.Tensor, diff: torch.Tensor, n_bits: int) -> torch.Tensor:
    """misc.get_next_image without its median filters: truncated codes, 128 subtracted, kept rows/cols copied."""
    n = 2 ** n_bits
    kept = (up + 1) / 2 * (n - 1)
    d = ((diff.double() + 1) / 2 * (n - 1)).trunc().long()
    d = torch.remainder(d - OFFICIAL_OFFSET, n)
    even = torch.remainder(kept.trunc().long() + d, n).double()
    b, c, h, w = up.shape
    if h < w:
        merged = torch.stack([even, kept], dim=3).reshape(b, c, 2 * h, w)
    else:
        merged = torch.stack([even, kept], dim=4).reshape(b, c, h, 2 * w)
    return merged / (n - 1) * 2 - 1


# ----------------------------------------------------------------------------------------------- presets
register_preset("pixelpyramids-celeba256", "pixelpyramids",
                "official celeba_256.json: CelebA-HQ 256 px, 5 bit, L=13 (Down.conv left out)", official=True)
register_preset("pixelpyramids-lsun128", "pixelpyramids",
                "official lsun_bedroom.json: LSUN bedroom 128 px, 5 bit, L=11 (Down.conv left out)", official=True,
                height=128, width=128, num_levels=11, n_classes=(100,) * 11, n_squeeze=(2, 2, 2, 2) + (1,) * 6,
                n_channels=96, n_res_layers=5)
register_preset("pixelpyramids-celeba1024", "pixelpyramids",
                "official celeba_1024.json: CelebA-HQ 1024 px, 8 bit, L=17 (Down.conv left out)", official=True,
                height=1024, width=1024, num_levels=17, n_bits=8, n_classes=(100,) * 17, n_squeeze=(1,) * 16,
                n_channels=96, n_res_layers=5)
register_preset("pixelpyramids-tiny", "pixelpyramids", tiny=True,
                description="tiny 32 px, 5 bit, L=7 model for tests (fixture-like)",
                height=32, width=32, num_levels=7, unet_width=4, n_classes=(30,) * 7, n_squeeze=(2, 2, 1, 1, 1, 1),
                n_channels=8, n_res_layers=1, unet_n_layers=(4, 3, 2, 2, 1, 1), nc_cond_embd=8, lstm_hidden=8)
register_preset("pixelpyramids-emoji32", "pixelpyramids",
                "small 32 px, 5 bit, L=7 model that trains on a CPU in minutes (README demo)",
                height=32, width=32, num_levels=7, unet_width=16, n_classes=(50,) * 7, n_squeeze=(1,) * 6,
                n_channels=32, n_res_layers=1, unet_n_layers=(2, 2, 2, 2, 1, 1), nc_cond_embd=32, lstm_hidden=32)
register_preset("pixelpyramids-64", "pixelpyramids",
                "celeba_256's settings on a 64 px image, i.e. its coarsest 9 levels (4-12): for benchmarks",
                height=64, width=64, num_levels=9, n_classes=(100,) * 9, n_squeeze=(1,) * 8,
                unet_n_layers=(2,) + (1,) * 7)
