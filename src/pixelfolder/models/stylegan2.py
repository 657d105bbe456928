"""StyleGAN2 generator (Karras et al., CVPR 2020) in the layout of rosinality's stylegan2-pytorch.

4x4 learned constant, then per resolution an upsampling 3x3 StyledConv (transposed conv + FIR blur) and a
3x3 StyledConv, with ToRGB outputs summed on an x2-upsampled skip chain. The per-layer noise buffers of the
official checkpoints are kept (noise_mode='const').
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import StyledConv, ToRGB
from ..registry import Recipe, register_model, register_preset, register_rule_presets
from .base import Generator, GeneratorConfig, channels_for, check_noise_list, log2_resolution


@dataclass(frozen=True)
class StyleGAN2Config(GeneratorConfig):
    # channel_table, when set, is indexed by log2(resolution) - 2 (entry 0 = 4 px ... entry 8 = 1024 px)
    conv_clamp: float | None = None  # clamp conv/ToRGB outputs to +-this (NVlabs StyleGAN2-ADA: 256); None = off


class StyleGAN2Synthesis(nn.Module):
    def __init__(self, config: StyleGAN2Config):
        super().__init__()
        log = log2_resolution(config.resolution, 8)
        ch = lambda r: channels_for(config, int(r).bit_length() - 3, r)  # noqa: E731
        conv = lambda cin, cout, r, up=False: StyledConv(  # noqa: E731
            cin, cout, 3, config.w_dim, resolution=r, up=up, noise_seed=len(self.convs), store_noise=True,
            conv_clamp=config.conv_clamp)
        rgb = lambda cin, skip=True: ToRGB(  # noqa: E731
            cin, config.w_dim, upsample_skip=skip, conv_clamp=config.conv_clamp)
        self.const = nn.Parameter(torch.randn(1, ch(4), 4, 4))
        self.convs = nn.ModuleList()
        self.convs.append(conv(ch(4), ch(4), 4))
        self.torgbs = nn.ModuleList([rgb(ch(4), skip=False)])
        cin = ch(4)
        for k in range(3, log + 1):
            r = 2 ** k
            self.convs.append(conv(cin, ch(r), r, up=True))
            self.convs.append(conv(ch(r), ch(r), r))
            self.torgbs.append(rgb(ch(r)))
            cin = ch(r)
        self.num_ws = 2 * log - 2

    def noise_shapes(self, size=None) -> list[tuple[int, int]]:
        return [(c.resolution, c.resolution) for c in self.convs]

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", noise=None, size=None,
                return_stages: bool = False):
        check_noise_list(noise, self.convs)
        noise = noise or [None] * len(self.convs)
        x = self.const.to(ws.dtype).repeat(ws.shape[0], 1, 1, 1)
        x = self.convs[0](x, ws[:, 0], noise_mode, noise[0])
        img = self.torgbs[0](x, ws[:, 1])
        stages = [img]
        for k in range(1, len(self.torgbs)):
            i = 2 * k - 1
            x = self.convs[i](x, ws[:, i], noise_mode, noise[i])
            x = self.convs[i + 1](x, ws[:, i + 1], noise_mode, noise[i + 1])
            img = self.torgbs[k](x, ws[:, i + 2], img)
            stages.append(img)
        return (img, stages) if return_stages else img


@register_model("stylegan2", StyleGAN2Config, description="StyleGAN2 generator (rosinality layout)",
                recipe=Recipe(pl_weight=2.0, mixing=0.9, resolutions=(256,),
                              source="rosinality/stylegan2-pytorch train.py defaults (--size 256)"),
                discriminator="stylegan2_d")
class StyleGAN2(Generator):
    def __init__(self, config: StyleGAN2Config = StyleGAN2Config()):
        synthesis = StyleGAN2Synthesis(config)
        super().__init__(config, num_ws=synthesis.num_ws)
        self.synthesis = synthesis


for _res in (64, 128, 256, 512, 1024):
    register_preset(f"stylegan2-{_res}", "stylegan2", f"official StyleGAN2 (config-f widths) at {_res} px",
                    official=True,
                    resolution=_res)
register_rule_presets("stylegan2")
register_preset("stylegan2-tiny", "stylegan2", "tiny StyleGAN2 for tests (32 px)", tiny=True,
                resolution=32, z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=64)
