"""CREPS (Nguyen et al., 2022): efficient spatial-free generation with bi-line representations.

The w-driven line part works on two lines of n points each (B, n * 2r, C): a Fourier input on the grid
linspace(0, 1, n), then blocks b4 ... bR of modulated FCs; every block from b8 on adds a 32-channel
bi-line (tores) to a running sum. Each accumulated bi-line becomes a per-pixel feature map
F[c, i, j] = sum_k A[c, i, k] B[c, j, k] / 2 (line A indexes rows, line B columns), merged by small
unmodulated MLPs; a modulated per-pixel head (block0, block1) adds to the RGB of `decoder_img`.

Any resolution: the grid is simply n = size points (`scale` s gives int(R * s), as gen_images.py --scale).
The per-pixel head runs one sample and a band of rows at a time (HEAD_CHUNK_BYTES), so 2048^2 or 4096^2
images never hold full-resolution activations of every channel.

Official quirks kept: b4's `tores` and `decoder_8` are built but never run (kept, unused, so the parameter
count and round trips match the official state_dict); the official runs block0/block1 in float16 unless
force_fp32=True: we always compute in float32 (= force_fp32=True).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...errors import PixelfolderError
from ...layers import EqualLinear
from ...registry import Recipe, register_model, register_preset, register_rule_presets
from ..base import Generator, GeneratorConfig, channels_for, check_noise_list, log2_resolution
from .lines import LineInput, ModulatedLinear, PixelMLP, addmm_rows, outer_rows, split_biline

HEAD_CHUNK_BYTES = 16 << 20   # working-set budget of one row band of the per-pixel head (fits in cache)
FLOAT_BYTES = 4


@dataclass(frozen=True)
class CREPSConfig(GeneratorConfig):
    channel_base: int = 65536          # line width at block r: min(channel_max, channel_base // r); --cfg=creps doubles
    channel_max: int = 1024            # line width cap, channels (doubled by --cfg=creps)
    biline_channels: int = 32          # channels of the bi-line and of the per-pixel features
    rank: int = 8                      # entries per line and position ("thickness" of each line)
    bandwidth: float = 10.0            # std of the random input frequencies (init only; they are loaded)
    fc_clamp: float = 256.0            # clamp of every modulated layer output, +-value (also in float32)
    decoder_hidden: tuple = (64, 128, 64)   # hidden widths of the per-pixel MLPs biline -> ... -> biline
    head_channels: tuple = (128, 64)   # widths of the modulated per-pixel blocks block0, block1
    # channel_table, when set, is indexed by line block (block i sits at nominal resolution 2**(i + 2))


class LineBlock(nn.Module):
    """fc0 (absent in the first block), fc1, tores (C -> biline); the first block's tores is never run."""

    def __init__(self, cin: int | None, cout: int, config: CREPSConfig):
        super().__init__()
        wd, clamp = config.w_dim, config.fc_clamp
        self.fc0 = ModulatedLinear(cin, cout, wd, clamp=clamp) if cin is not None else None
        self.fc1 = ModulatedLinear(cout, cout, wd, clamp=clamp)
        self.tores = ModulatedLinear(cout, config.biline_channels, wd, demodulate=False, clamp=clamp)


class HeadBlock(nn.Module):
    """Per-pixel modulated fc0, fc1 and torgb (official block0 / block1, all driven by the last w)."""

    def __init__(self, cin: int, cout: int, config: CREPSConfig):
        super().__init__()
        wd, clamp = config.w_dim, config.fc_clamp
        self.fc0 = ModulatedLinear(cin, cout, wd, clamp=clamp)
        self.fc1 = ModulatedLinear(cout, cout, wd, clamp=clamp)
        self.torgb = ModulatedLinear(cout, 3, wd, demodulate=False, clamp=clamp)

    def layers(self):
        return (self.fc0, self.fc1, self.torgb)


class CREPSSynthesis(nn.Module):
    """ws -> image: the line blocks build the bi-line, the per-pixel head renders it in row bands."""

    batched_head = False     # True (export): the head on every sample and row at once, no Python loop over the batch

    def __init__(self, config: CREPSConfig):
        super().__init__()
        log = log2_resolution(config.resolution, 8)
        if config.biline_channels <= 3 or config.rank < 1:
            raise PixelfolderError("CREPS needs biline_channels > 3 and rank >= 1")
        self.resolution = config.resolution
        widths = [channels_for(config, i, 2 ** (i + 2)) for i in range(log - 1)]
        if widths[0] % 2:
            raise PixelfolderError(f"CREPS's input width must be even, got {widths[0]}")
        self.input = LineInput(widths[0], config.w_dim, config.rank, config.bandwidth)
        self.lines = nn.ModuleList(LineBlock(widths[i - 1] if i else None, widths[i], config)
                                   for i in range(log - 1))
        cb = config.biline_channels
        mlp = (cb, *config.decoder_hidden, cb)
        self.decoders = nn.ModuleList(PixelMLP(mlp) for _ in range(log - 2))   # b8 ... bR; [0] (b8) unused
        self.decoder_last = PixelMLP(mlp)
        self.decoder_img = EqualLinear(cb, 3)
        heads = (cb, *config.head_channels)
        self.head = nn.ModuleList(HeadBlock(a, b, config) for a, b in zip(heads[:-1], heads[1:]))
        self.num_ws = 2 * len(self.lines) + 1
        self.chunk_bytes = HEAD_CHUNK_BYTES
        self.config = config

    def noise_shapes(self, size=None) -> list:
        return []   # CREPS has no noise inputs

    # ------------------------------------------------------------------------------------------ line part
    def run_lines(self, ws: torch.Tensor, n: int) -> list[torch.Tensor]:
        """The accumulated bi-line after each block from b8 on, official layout (B, biline, n, 2r)."""
        x = self.input(ws[:, 0], n)
        x = self.lines[0].fc1(x, ws[:, 1])
        biline, out = None, []
        for i, block in enumerate(self.lines[1:], start=1):
            x = block.fc0(x, ws[:, 2 * i - 1])
            x = block.fc1(x, ws[:, 2 * i])
            y = block.tores(x, ws[:, 2 * i + 1])
            biline = y if biline is None else biline + y
            out.append(biline)
        b, cb = ws.shape[0], out[0].shape[-1]
        return [t.transpose(1, 2).reshape(b, cb, n, -1) for t in out]

    # ------------------------------------------------------------------------------------------ pixel head
    def head_weights(self, w: torch.Tensor) -> dict:
        """Everything the head needs that does not depend on the pixels (computed once per forward)."""
        img = self.decoder_img
        return {"decoders": [d.folded() for d in self.decoders], "last": self.decoder_last.folded(),
                "img": (img.weight * img.weight_gain, img.bias * img.lr_mul),
                "blocks": [[layer.sample_weights(w) for layer in blk.layers()] for blk in self.head]}

    def features(self, lines: list[torch.Tensor], hw: dict, r0: int, r1: int) -> torch.Tensor:
        """Per-pixel features after decoder_last (biline, rows * n) of one sample; lines from split_biline."""
        feature = None
        for k, (a, bt) in enumerate(lines):
            f = outer_rows(a, bt, r0, r1)
            if feature is not None:
                f = f + PixelMLP.apply_rows(feature, hw["decoders"][k])
            feature = f
        return PixelMLP.apply_rows(feature, hw["last"])

    def head_rows(self, lines: list[torch.Tensor], hw: dict, b: int, r0: int, r1: int) -> torch.Tensor:
        """RGB rows [r0, r1) of sample b, (3, rows * n)."""
        x = self.features(lines, hw, r0, r1)
        img_weight, img_bias = hw["img"]
        img = addmm_rows(img_bias, img_weight, x)
        for blk, params in zip(self.head, hw["blocks"]):
            (w0, b0), (w1, b1), (wr, br) = [(weights[b], bias) for weights, bias in params]
            x = blk.fc1.apply_rows(blk.fc0.apply_rows(x, w0, b0), w1, b1)
            img = img + blk.torgb.apply_rows(x, wr, br)
        return img

    def rows_per_chunk(self, n: int) -> int:
        return max(1, min(n, self.chunk_bytes // (self.head_bytes_per_pixel() * n)))

    def head_bytes_per_pixel(self) -> int:
        """Peak live floats per pixel in the head: feature + F + a layer's input and output + RGB."""
        c = self.config
        widest = max((c.biline_channels, *c.decoder_hidden, *c.head_channels))
        return FLOAT_BYTES * (2 * c.biline_channels + 2 * widest + 3)

    def render_head(self, bilines: list[torch.Tensor], w: torch.Tensor, chunk_rows: int | None = None):
        """(B, 3, n, n) from the accumulated bi-lines, one sample and one band of rows at a time.

        Bands are written into one preallocated image: keeping many small band outputs alive between the
        band temporaries fragmented glibc's heap (an extra 1 GiB peak RSS in some 2048 px renders).
        """
        n = bilines[0].shape[2]
        step = chunk_rows or self.rows_per_chunk(n)
        hw = self.head_weights(w)
        if self.batched_head:     # the same sums, batched (baddbmm): a graph that takes any batch size
            lines = [split_biline(t) for t in bilines]
            return self.head_rows(lines, hw, slice(None), 0, n).view(w.shape[0], 3, n, n)
        out = w.new_empty(w.shape[0], 3, n, n)
        for b in range(w.shape[0]):
            lines = [split_biline(t[b]) for t in bilines]
            for r0 in range(0, n, step):
                r1 = min(r0 + step, n)
                out[b, :, r0:r1] = self.head_rows(lines, hw, b, r0, r1).view(3, r1 - r0, n)
        return out

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", noise=None, size=None,
                return_stages: bool = False, chunk_rows: int | None = None):
        check_noise_list(noise, [])
        n = size or self.resolution
        img = self.render_head(self.run_lines(ws, n), ws[:, -1], chunk_rows)
        return (img, [img]) if return_stages else img


# VinAIResearch/CREPS --cfg=creps: batch 32, lr 0.002, PL 2; gamma from its docs by resolution; ema 10 kimg.
# ADA (CREPS's default) is `--augment ada`, which `auto` picks below 30k images; --mirror on as in its README.
CREPS_RECIPE = Recipe(pl_weight=2.0, ema_kimg=10.0, ema_rampup=0.05, batch=32, resolutions=(256, 512, 1024),
                      gamma_by_resolution=((256, 2.0), (512, 8.0), (1024, 32.0)),
                      source="VinAIResearch/CREPS train.py --cfg=creps and its README")


@register_model("creps", CREPSConfig, description="CREPS bi-line generator (any render size, row-chunked head)",
                recipe=CREPS_RECIPE, discriminator="stylegan2_d")
class CREPS(Generator):
    native_size_only = False
    seed_rng = "numpy"          # NVlabs family: seed N draws z as gen_images.py does
    unused_parameters = ("synthesis.lines.0.tores.", "synthesis.decoders.0.")   # official b4.tores, decoder_8

    def __init__(self, config: CREPSConfig = CREPSConfig()):
        synthesis = CREPSSynthesis(config)
        super().__init__(config, num_ws=synthesis.num_ws)
        self.synthesis = synthesis

    def render_bytes(self, batch: int, size: int) -> int:
        """Peak of the line part (input, output and product of the widest FC), the bi-lines, the image and
        one head band; the per-sample weights are counted too."""
        s, c = self.synthesis, self.config
        positions = size * 2 * c.rank
        widest = max(block.fc1.weight.shape[0] for block in s.lines)
        lines = 3 * batch * positions * widest
        bilines = len(s.lines) * batch * positions * c.biline_channels * 2
        weights = batch * sum(block.fc1.weight.numel() * 2 for block in s.lines)
        head = max(s.chunk_bytes // FLOAT_BYTES, s.head_bytes_per_pixel() // FLOAT_BYTES * size)
        return FLOAT_BYTES * (lines + bilines + weights + head + 2 * batch * 3 * size * size)

    def official_macs(self, size: int | None = None) -> int:
        """Multiply-accumulates per image that FlopCounterMode counts in the official code (mm/addmm/bmm)."""
        c, s = self.config, self.synthesis
        n = size or self.resolution
        pixels, positions = n * n, n * 2 * c.rank
        total = sum(layer.weight.numel() for layer in self.mapping.layers)           # mapping (mm)
        total += s.input.affine.weight.numel() + 2 * n * s.input.freqs.numel()    # affine, coords @ freqs
        line_layers = [s.lines[0].fc1] + [m for blk in s.lines[1:] for m in (blk.fc0, blk.fc1, blk.tores)]
        total += sum(m.affine.weight.numel() + m.weight.numel() * positions for m in line_layers)
        total += (len(s.lines) - 1) * c.biline_channels * pixels * c.rank          # outer products
        mlp = sum(layer.weight.numel() for layer in s.decoder_last.layers)
        total += len(s.decoders) * mlp * pixels     # decoders b16..bR (decoder_8 never runs) + decoder_last
        total += s.decoder_img.weight.numel() * pixels
        total += sum(m.affine.weight.numel() + m.weight.numel() * pixels for blk in s.head for m in blk.layers())
        return int(total)


# Official parameter count at 256: the sum of the 184 shapes in ../shared/reference/inrgan_creps_keys.txt
# ("creps 256 G", 30,535,945 values) minus the three buffers freqs (4096), coords (512) and w_avg (512).
OFFICIAL_PARAMS_256 = 30_530_825

for _res in (256, 512, 1024):
    register_preset(f"creps-{_res}", "creps", f"official CREPS (--cfg=creps) at {_res} px", official=True,
                    resolution=_res)
register_rule_presets("creps")
register_preset("creps-tiny", "creps", "tiny CREPS for tests (32 px)", tiny=True, resolution=32, z_dim=64, w_dim=64,
                mapping_layers=2, channel_base=512, channel_max=64, biline_channels=16, rank=4,
                decoder_hidden=(16, 32, 16), head_channels=(32, 16))
