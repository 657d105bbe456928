"""Layers of the CREPS bi-line generator: the Fourier line input, modulated FCs and per-pixel MLPs.

Line tensors are kept channels-last, (B, P, C) with P = n * 2r positions ordered (line position i,
line l in {A, B}, rank index k), so every modulated FC is one batched matmul `x @ W_b^T`. The per-pixel
head works on one sample at a time, channels-first (C, N), so each layer is one `addmm`.

Gains are folded into the weights: the lrelu gain sqrt(2) (lrelu is positively homogeneous) and the
demodulation coefficients go into the per-sample weight, the bias is scaled by the same gain, so a layer
is `matmul + bias` followed by an in-place leaky ReLU and clamp. This equals the official
`clamp(lrelu(x + b) * sqrt(2), -c, c)` up to float rounding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...layers.equalized import SQRT2, EqualLinear

LRELU_SLOPE = 0.2
DEMOD_EPS = 1e-8


def line_coords(n: int, device=None) -> torch.Tensor:
    """The official CREPS grid: linspace(0, 1, n) in float32, both end points included."""
    return torch.linspace(0, 1, n, dtype=torch.float32, device=device)


def activate(x: torch.Tensor, lrelu: bool, clamp: float | None) -> torch.Tensor:
    """leaky_relu(x, 0.2) (gain already folded in) then clamp to +-clamp; in place when no grad is needed."""
    inplace = not x.requires_grad
    if lrelu:
        x = F.leaky_relu_(x, LRELU_SLOPE) if inplace else F.leaky_relu(x, LRELU_SLOPE)
    if clamp is not None:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    return x


class LineInput(nn.Module):
    """Bi-line Fourier input (official SynthesisInput): sin/cos(2 pi t freqs) on both lines, modulated by w.

    out[b, (i, l, k), c] = sin(2 pi t_i f[c, k]) * weight[c, l r + k] * affine(w)[b, c, l r + k] / sqrt(C),
    channels C/2.. C-1 use the cosine (phase + pi/2) of the same frequencies.
    """

    def __init__(self, channels: int, w_dim: int, rank: int, bandwidth: float):
        super().__init__()
        self.channels, self.rank = channels, rank
        self.register_buffer("freqs", torch.randn(channels // 2, rank) * bandwidth)   # fixed random, load it
        self.weight = nn.Parameter(torch.randn(channels, 2 * rank))
        self.affine = EqualLinear(w_dim, channels * 2 * rank, bias_init=1.0)

    def sinusoids(self, n: int) -> torch.Tensor:
        """(n, r, C): the unmodulated features, computed in the official operation order."""
        t = line_coords(n, self.freqs.device).to(self.freqs.dtype)
        phase = (t[:, None] * self.freqs.reshape(1, -1)) * (math.pi * 2)
        phase = phase.view(n, self.channels // 2, self.rank)
        return torch.sin(torch.cat([phase, phase + math.pi / 2], dim=1)).transpose(1, 2)

    def forward(self, w: torch.Tensor, n: int) -> torch.Tensor:
        """(B, n * 2r, C) line features for an n-point grid."""
        b, r, c = w.shape[0], self.rank, self.channels
        mod = (self.weight * self.affine(w).view(b, c, 2 * r)) * (1 / math.sqrt(c))   # (B, C, 2r)
        mod = mod.view(b, c, 2, r).permute(0, 2, 3, 1)                                   # (B, 2, r, C)
        out = self.sinusoids(n).to(w.dtype)[None, :, None] * mod[:, None]                # (B, n, 2, r, C)
        return out.reshape(b, n * 2 * r, c)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, rank={self.rank}"


def to_official_lines(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n * 2r, C) -> the official layout (B, C, n, 2r)."""
    b, p, c = x.shape
    return x.view(b, n, p // n, c).permute(0, 3, 1, 2)


class ModulatedLinear(nn.Module):
    """Style-modulated FC (official SynthesisLayer with demodulate=True, ToResLayer without).

    demodulate: w[o, i] = W[o, i] s[b, i] / sqrt(sum_i (W s)^2 + 1e-8), then clamp(lrelu(x w^T + b) sqrt(2)).
    otherwise (ToRes): s = affine(w) / sqrt(in), clamp(x (W s)^T + b), linear.
    """

    def __init__(self, in_features: int, out_features: int, w_dim: int, *, demodulate: bool = True,
                 clamp: float | None = 256.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.affine = EqualLinear(w_dim, in_features, bias_init=1.0)
        self.demodulate = demodulate
        self.clamp = clamp

    def sample_weights(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample weights (B, out, in) and bias (out,), with demodulation and the activation gain folded in."""
        styles = self.affine(w)
        if not self.demodulate:
            styles = styles * (1 / math.sqrt(self.weight.shape[1]))
        wb = self.weight.to(styles.dtype)[None] * styles[:, None, :]
        if not self.demodulate:
            return wb, self.bias.to(wb.dtype)
        gain = torch.rsqrt(wb.square().sum(dim=2, keepdim=True) + DEMOD_EPS) * SQRT2
        return wb * gain, self.bias.to(wb.dtype) * SQRT2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Line layout: x (B, P, in) -> (B, P, out)."""
        wb, bias = self.sample_weights(w)
        y = torch.baddbmm(bias.view(1, 1, -1), x, wb.transpose(1, 2))
        return activate(y, self.demodulate, self.clamp)

    def apply_rows(self, x: torch.Tensor, wb: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Pixel layout for one sample: x (in, N) with that sample's weights wb (out, in) -> (out, N)."""
        return activate(addmm_rows(bias, wb, x), self.demodulate, self.clamp)

    def extra_repr(self) -> str:
        o, i = self.weight.shape
        return f"{i}, {o}, demodulate={self.demodulate}, clamp={self.clamp}"


class PixelMLP(nn.Module):
    """Unmodulated per-pixel MLP (official decoder_{res}: FC + lrelu * sqrt(2) on every layer)."""

    def __init__(self, widths):
        super().__init__()
        self.layers = nn.ModuleList(EqualLinear(a, b, activate=True) for a, b in zip(widths[:-1], widths[1:]))

    def folded(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(W * gain * sqrt(2), b * sqrt(2))] per layer, for `apply_rows`."""
        return [(layer.weight * (layer.weight_gain * SQRT2), layer.bias * (layer.lr_mul * SQRT2))
                for layer in self.layers]

    @staticmethod
    def apply_rows(x: torch.Tensor, folded) -> torch.Tensor:
        """x (in, N) -> (out, N)."""
        for weight, bias in folded:
            x = activate(addmm_rows(bias, weight, x), True, None)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rows layout (N, in) -> (N, out), as the official Sequential."""
        for layer in self.layers:
            x = layer(x)
        return x


def addmm_rows(bias: torch.Tensor, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """bias[:, None] + weight @ x: one sample x (in, N) as one addmm, or a batch x (B, in, N) (weight (out, in) or
    per-sample (B, out, in)) as one baddbmm: the export form of the head (CREPSSynthesis.batched_head)."""
    if x.ndim == 2:
        return torch.addmm(bias[:, None], weight, x)
    return torch.baddbmm(bias[:, None], weight.expand(x.shape[0], -1, -1), x)


def split_biline(line: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One sample's bi-line (C, n, 2r) -> (A (C, n, r), B^T (C, r, n)), each scaled by sqrt(1/2) as officially
    (a batch (B, C, n, 2r) alike, with a leading batch dimension)."""
    r = line.shape[-1] // 2
    line = line * math.sqrt(0.5)
    return line[..., :r].contiguous(), line[..., r:].transpose(-1, -2).contiguous()


def outer_rows(a: torch.Tensor, bt: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
    """F[c, i, j] = sum_k A[c, i, k] B[c, j, k] for rows i in [r0, r1): (C, rows * n). A indexes rows, B columns
    (a batch (B, C, n, r) alike: (B, C, rows * n))."""
    return torch.matmul(a[..., r0:r1, :], bt).flatten(-2)
