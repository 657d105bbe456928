"""CIPS (Anokhin et al., CVPR 2021): conditionally-independent pixel synthesis, skip and residual forms.

Every pixel is generated from its coordinate alone: LFF(coords) concatenated with a learned per-pixel
embedding, then 1x1 StyledConvs driven by one w. The grid can be rendered at any size (`size=`).

Two official behaviours that change outputs are options (defaults for converted official checkpoints):
- embedding_mode='official': in eval mode, or at a size other than the native one, the learned embedding
  is read with grid_sample(align_corners=False), which samples between pixels even at the native size.
  'aligned' uses the stored embedding as is at the native size (train and eval alike) and
  grid_sample(align_corners=True) elsewhere.
- truncation_space='z': the official code interpolates the input z toward w_avg before the mapping.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PixelfolderError
from ..layers import LFF, ConvLayer, StyledConv, ToRGB, coord_grid
from ..registry import Recipe, register_model, register_preset, register_rule_presets
from .base import Generator, GeneratorConfig, channels_for, check_noise_list, log2_resolution

EMBEDDING_MODES = ("aligned", "official")


@dataclass(frozen=True)
class CIPSConfig(GeneratorConfig):
    hidden: int = 512                  # LFF and learned-embedding channels (the official hidden_size)
    embedding_mode: str = "aligned"    # 'official' (eval-mode grid_sample, align_corners=False) or 'aligned'
    truncation_space: str = "w"        # 'w', or 'z' as the official CIPS code does
    # channel_table, when set, is indexed by block (block i sits at nominal resolution 2**(i + 2))


def _check(config: CIPSConfig) -> None:
    if config.embedding_mode not in EMBEDDING_MODES:
        raise PixelfolderError(f"embedding_mode must be one of {EMBEDDING_MODES}, got {config.embedding_mode!r}")


class CIPSInput(nn.Module):
    """cat[LFF(coords), learned embedding] on a size x size grid, (1, 2*hidden, size, size)."""

    def __init__(self, config: CIPSConfig):
        super().__init__()
        r = config.resolution
        self.lff = LFF(config.hidden)
        self.embedding = nn.Parameter(torch.randn(1, config.hidden, r, r))
        self.mode = config.embedding_mode

    def forward(self, size: int, dtype) -> torch.Tensor:
        coords = coord_grid(size, size, device=self.embedding.device, dtype=dtype)
        native = size == self.embedding.shape[-1]
        emb = self.embedding.to(dtype)
        if self.mode == "official" and not (self.training and native):
            emb = F.grid_sample(emb, coords.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                                align_corners=False)
        elif not native:
            emb = F.grid_sample(emb, coords.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                                align_corners=True)
        return torch.cat([self.lff.grid(size, size, device=coords.device, dtype=dtype), emb], dim=1)


class CIPSSynthesis(nn.Module):
    def __init__(self, config: CIPSConfig, residual: bool):
        super().__init__()
        _check(config)
        log = log2_resolution(config.resolution, 8)
        self.residual = residual
        self.input = CIPSInput(config)
        ch = lambda i: channels_for(config, i, 2 ** (i + 2))  # noqa: E731
        conv = lambda cin, cout, k: StyledConv(cin, cout, 1, config.w_dim, resolution=config.resolution,  # noqa: E731
                                               noise_seed=k)
        self.convs = nn.ModuleList([conv(2 * config.hidden, ch(0), 0)])
        cin = ch(0)
        if residual:
            self.blocks = nn.ModuleList()
            for i in range(log - 1):
                self.blocks.append(CIPSResBlock(cin, ch(i), conv, seed=1 + 2 * i))
                cin = ch(i)
            self.torgb = ToRGB(cin, config.w_dim, upsample_skip=False)
            self.noise_layers = [self.convs[0]] + [c for b in self.blocks for c in (b.conv1, b.conv2)]
        else:
            self.torgbs = nn.ModuleList()
            for i in range(log - 1):
                self.convs.append(conv(cin, ch(i), len(self.convs)))
                self.convs.append(conv(ch(i), ch(i), len(self.convs)))
                self.torgbs.append(ToRGB(ch(i), config.w_dim, upsample_skip=False))
                cin = ch(i)
            self.noise_layers = list(self.convs)
        self.resolution = config.resolution

    def noise_shapes(self, size=None) -> list[tuple[int, int]]:
        s = size or self.resolution
        return [(s, s)] * len(self.noise_layers)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", noise=None, size=None,
                return_stages: bool = False):
        check_noise_list(noise, self.noise_layers)
        noise = noise or [None] * len(self.noise_layers)
        w = ws[:, 0]
        x = self.input(size or self.resolution, ws.dtype).expand(ws.shape[0], -1, -1, -1)
        x = self.convs[0](x, w, noise_mode, noise[0])
        if self.residual:
            for b, block in enumerate(self.blocks):
                x = block(x, w, noise_mode, noise[1 + 2 * b:3 + 2 * b])
            img = self.torgb(x, w)
        else:
            img = None
            for i, torgb in enumerate(self.torgbs):
                x = self.convs[1 + 2 * i](x, w, noise_mode, noise[1 + 2 * i])
                x = self.convs[2 + 2 * i](x, w, noise_mode, noise[2 + 2 * i])
                img = torgb(x, w, img)
        return (img, [img]) if return_stages else img


class CIPSResBlock(nn.Module):
    """(conv2(conv1(x)) + skip(x)) / sqrt(2); skip is a 1x1 conv only where the width changes."""

    def __init__(self, cin: int, cout: int, make_conv, seed: int):
        super().__init__()
        self.conv1 = make_conv(cin, cout, seed)
        self.conv2 = make_conv(cout, cout, seed + 1)
        self.skip = ConvLayer(cin, cout, 1, bias=False, activate=False) if cin != cout else None

    def forward(self, x, w, noise_mode, noise):
        out = self.conv2(self.conv1(x, w, noise_mode, noise[0]), w, noise_mode, noise[1])
        skip = x if self.skip is None else self.skip(x)
        return (out + skip) * (1 / math.sqrt(2))


class _CIPS(Generator):
    native_size_only = False
    residual = False

    def __init__(self, config: CIPSConfig = CIPSConfig()):
        super().__init__(config, num_ws=1, truncation_space=config.truncation_space)
        self.synthesis = CIPSSynthesis(config, residual=self.residual)


# saic-mdal/CIPS train.py: the StyleGAN2 loop without path length or mixing
CIPS_RECIPE = Recipe(resolutions=(256,), source="saic-mdal/CIPS train.py defaults")


@register_model("cips_skip", CIPSConfig, description="CIPS with skip ToRGBs (CVPR 2021), any render size",
                recipe=CIPS_RECIPE, discriminator="stylegan2_d")
class CIPSSkip(_CIPS):
    residual = False


# The official CIPSres table ({6: 128, 7: 128, 8: 64}) is not a base/max rule.
CIPS_RES_CHANNELS = (512, 512, 512, 512, 512, 256, 128, 128, 64)


@register_model("cips_res", CIPSConfig, description="CIPS with residual blocks (landscapes variant)",
                recipe=CIPS_RECIPE, discriminator="stylegan2_d")
class CIPSRes(_CIPS):
    residual = True


for _res in (64, 128, 256, 512, 1024):
    register_preset(f"cips_skip-{_res}", "cips_skip", f"official CIPSskip at {_res} px", official=True,
                    resolution=_res)
    register_preset(f"cips_res-{_res}", "cips_res", f"official CIPSres at {_res} px", official=True,
                    resolution=_res,
                    channel_table=CIPS_RES_CHANNELS)
register_rule_presets("cips_skip")
register_rule_presets("cips_res", lambda res: {"resolution": res, "channel_table": CIPS_RES_CHANNELS})
_TINY = dict(resolution=32, z_dim=64, w_dim=64, mapping_layers=2, hidden=32, channel_base=1024, channel_max=64)
register_preset("cips_skip-tiny", "cips_skip", "tiny CIPSskip for tests (32 px)", tiny=True, **_TINY)
register_preset("cips_res-tiny", "cips_res", "tiny CIPSres for tests (32 px)", tiny=True, **_TINY)
