"""PixelFolder (He et al., ECCV 2022): progressive pixel regression with 2x2 folding.

Each stage embeds a coordinate grid (LFF), projects and folds it twice to the stage's input resolution,
merges it with the previous stage's features, then twice runs 3x3 StyledConv -> Unfold -> 3x3 StyledConv
-> ToRGB on an x2 skip chain. Layout, w indices and the Fold channel order follow the official code
(BlingHe/PixelFolder @ a6c3aec), so converted official weights reproduce its images.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import LFF, ConvLayer, DerivedCache, StyledConv, ToRGB, bias_lrelu, caching_allowed, fold, unfold
from ..layers.equalized import at_least_fp32, conv1x1, full_precision
from ..registry import Recipe, register_model, register_preset
from .base import Generator, GeneratorConfig, channels_for, check_noise_list, log2_resolution

FOLDS_PER_STAGE = 2


@dataclass(frozen=True)
class PixelFolderConfig(GeneratorConfig):
    keep_unused_merge: bool = True   # keep stage 0's never-used merge conv (official: counted in the 20.84 M)
    # channel_table, when set, is indexed by log2(resolution) - 2 (entry 0 = 4 px ... entry 8 = 1024 px)


def _merge(layer: ConvLayer, embedding: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """layer(cat[embedding, features]) with the batch-independent embedding half computed once (batch 1)."""
    w = layer.weight * layer.weight_gain
    c = embedding.shape[1]
    out = conv1x1(features, w[:, c:]) + conv1x1(embedding, w[:, :c])
    return bias_lrelu(out, layer.bias)


class PixelFolderSynthesis(nn.Module):
    def __init__(self, config: PixelFolderConfig):
        super().__init__()
        log = log2_resolution(config.resolution, 32)
        self.num_stages = log // FOLDS_PER_STAGE - 1
        ch = lambda r: channels_for(config, int(r).bit_length() - 3, r)  # noqa: E731
        self.unfolded = [2 ** (log - FOLDS_PER_STAGE * (self.num_stages - 1 - i)) for i in range(self.num_stages)]
        u0 = self.unfolded[0]
        self.const = nn.Parameter(torch.randn(1, ch(u0), u0, u0))
        self.embed_const = ConvLayer(2 * ch(u0), ch(u0), 1)
        self.lffs, self.projs, self.merges = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.convs, self.torgbs = nn.ModuleList(), nn.ModuleList()
        for i, u in enumerate(self.unfolded):
            f = u // 4
            folded_channels = ch(f) * f * f // u // u * 16
            self.lffs.append(LFF(ch(u)))
            self.projs.append(ConvLayer(ch(u), folded_channels // 16, 1))
            keep = i > 0 or config.keep_unused_merge
            self.merges.append(ConvLayer(2 * folded_channels, folded_channels, 1) if keep else nn.Identity())
            cin = ch(f)
            for j in range(FOLDS_PER_STAGE):
                res = f * 2 ** j
                cout = ch(2 * res)
                self.convs.append(StyledConv(cin, cout, 3, config.w_dim, resolution=res,
                                             noise_seed=len(self.convs)))
                self.convs.append(StyledConv(cout // 4, cout, 3, config.w_dim, resolution=2 * res,
                                             noise_seed=len(self.convs)))
                self.torgbs.append(ToRGB(cout, config.w_dim))
                cin = cout
        self.num_ws = 2 * len(self.torgbs) + 1
        self._cache = DerivedCache()   # stage -> embedding per dtype, while its parameters and device are unchanged

    def noise_shapes(self, size=None) -> list[tuple[int, int]]:
        return [(c.resolution, c.resolution) for c in self.convs]

    def embedding(self, i: int, device, dtype) -> torch.Tensor:
        """Stage i's folded coordinate embedding at batch 1: it does not depend on z.

        Without grad (and outside torch.compile) it is cached and reused while the parameters it reads are
        unchanged (compared bit for bit, so EMA updates through .data or dtype round trips are seen).
        """
        params = [self.const, *self.embed_const.parameters()] if i == 0 else []
        params += [*self.lffs[i].parameters(), *self.projs[i].parameters()]

        def build():
            u = self.unfolded[i]
            wide = at_least_fp32(dtype)
            with full_precision(self.const):   # batch 1, cheap: keep the sin arguments exact under autocast
                emb = self.lffs[i].grid(u, u, device=device, dtype=wide)
                if i == 0:
                    emb = self.embed_const(torch.cat([emb, self.const.to(wide)], dim=1))
                return fold(fold(self.projs[i](emb))).to(dtype)
        return self._cache.get(params, build, dtype, tag=i, key=str(device), enabled=caching_allowed())

    def stage_input(self, i: int, batch: int, x: torch.Tensor | None, device, dtype) -> torch.Tensor:
        emb = self.embedding(i, device, dtype)
        if i == 0:
            return emb.expand(batch, -1, -1, -1)
        return _merge(self.merges[i], emb, x)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", noise=None, size=None,
                return_stages: bool = False):
        check_noise_list(noise, self.convs)
        x, skip, stages = None, None, []
        for i in range(self.num_stages):
            x = self.stage_input(i, ws.shape[0], x, ws.device, ws.dtype)
            for j in range(FOLDS_PER_STAGE):
                t = FOLDS_PER_STAGE * i + j
                k = 2 * t
                x = self.convs[k](x, ws[:, k], noise_mode, None if noise is None else noise[k])
                x = unfold(x)
                x = self.convs[k + 1](x, ws[:, k + 1], noise_mode, None if noise is None else noise[k + 1])
                skip = self.torgbs[t](x, ws[:, 2 * t + 2], skip)
            stages.append(skip)
        return (skip, stages) if return_stages else skip


@register_model("pixelfolder", PixelFolderConfig, description="PixelFolder (ECCV 2022), 32-1024 px",
                recipe=Recipe(resolutions=(256,), source="BlingHe/PixelFolder train.sh: no path length, no mixing"),
                discriminator="stylegan2_d")
class PixelFolder(Generator):
    def __init__(self, config: PixelFolderConfig = PixelFolderConfig()):
        synthesis = PixelFolderSynthesis(config)
        super().__init__(config, num_ws=synthesis.num_ws)
        self.synthesis = synthesis

    @property
    def stage_resolutions(self) -> list[int]:
        return list(self.synthesis.unfolded)


for _res in (32, 64, 128, 256, 512, 1024):
    register_preset(f"pixelfolder-{_res}", "pixelfolder", f"official PixelFolder at {_res} px", official=True,
                    resolution=_res)
register_preset("pixelfolder-tiny", "pixelfolder", "tiny PixelFolder for tests and the CPU demo (32 px)", tiny=True,
                resolution=32, z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=64,
                keep_unused_merge=False)
