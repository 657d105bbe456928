"""INR-GAN building blocks: the FMM hypernetwork layer and the coordinate embedding (CoordFuser).

FMM (factorized multiplicative modulation): a shared 1x1 weight W0 (c_out, c_in) is modulated per sample by
a rank-r matrix predicted from w: s = affine(w), A = s[:, :c_out*r] (B, c_out, r), Bm = s[:, c_out*r:]
(B, r, c_in), W = W0 * (1 + A @ Bm / sqrt(r)), then each output row is divided by (its L2 norm + 1e-8).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...layers.equalized import SQRT2, EqualLinear

NORM_EPS = 1e-8       # demodulation and instance-norm epsilon (added to the norm / std, not inside a root)


class FMMLayer(nn.Module):
    """1x1 INR layer: FMM-modulated weight -> bias -> leaky-ReLU(0.2) * sqrt(2); optional instance norm before.

    The instance norm is INR-GAN-bil's: x / (unbiased std over H, W + 1e-8), without mean subtraction.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, rank: int = 10,
                 instance_norm: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.affine = EqualLinear(w_dim, (in_channels + out_channels) * rank)
        self.rank = rank
        self.instance_norm = instance_norm

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def modulated_weight(self, w: torch.Tensor) -> torch.Tensor:
        """Per-sample demodulated weight (B, c_out, c_in) for w (B, w_dim)."""
        cout, cin = self.weight.shape
        s = self.affine(w)
        left = s[:, :cout * self.rank].reshape(-1, cout, self.rank)
        right = s[:, cout * self.rank:].reshape(-1, self.rank, cin)
        mod = torch.bmm(left, right) / math.sqrt(self.rank)
        weight = self.weight.unsqueeze(0) * (mod + 1.0)
        return weight / (weight.norm(dim=2, keepdim=True) + NORM_EPS)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Reference form: x (B, c_in, H, W) -> (B, c_out, H, W), as the official layer computes it."""
        b, c, h, wd = x.shape
        if self.instance_norm:
            x = x / (x.std(dim=[2, 3], keepdim=True) + NORM_EPS)
        out = torch.bmm(self.modulated_weight(w).to(x.dtype), x.reshape(b, c, h * wd))
        out = out + self.bias.to(x.dtype).view(1, -1, 1)
        return (F.leaky_relu(out, 0.2) * SQRT2).view(b, -1, h, wd)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, rank={self.rank}, instance_norm={self.instance_norm}"


def inrgan_coords(n: int, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The official INR-GAN grid axes for an n x n image: (x per column, y per row), both (n,).

    x = arange(n)/n*2-1 (corner-aligned, -1 ... 1-2/n); y is the same values flipped: the top row has
    y = 1-2/n, the bottom row y = -1.
    """
    row = torch.arange(n, device=device, dtype=torch.float32) / n * 2 - 1
    return row.to(dtype), row.flip(0).to(dtype)


def log_basis(resolution: int, diagonal: bool) -> torch.Tensor:
    """The fixed logarithmic Fourier basis (K, 2): ceil(log2 res) octaves per direction.

    Directions in order: (0, 1) (acts on y), (1, 0), and with `diagonal` (-1, 1)/sqrt2 and (1, 1)/sqrt2;
    row k of a direction = direction * 2**k * 2pi / P, P = 4 for the axes and 4 sqrt2 for the diagonals.
    """
    octaves = math.ceil(math.log2(resolution))
    r2 = 1.0 / math.sqrt(2.0)
    dirs = [((0.0, 1.0), 4.0), ((1.0, 0.0), 4.0)]
    if diagonal:
        dirs += [((-r2, r2), 4.0 * math.sqrt(2.0)), ((r2, r2), 4.0 * math.sqrt(2.0))]
    rows = [[d * 2.0 ** k * 2.0 * math.pi / period for d in direction]
            for direction, period in dirs for k in range(octaves)]
    return torch.tensor(rows, dtype=torch.float64).float()


def resample_weights(src: int, dst: int, start: int = 0, stop: int | None = None, device=None):
    """(lo, hi, frac) of dst points start..stop linearly interpolated from a corner-aligned src grid.

    Point j of the dst grid sits at j/dst, i.e. at j*src/dst in source pixels; values between source pixels
    are linear, past the last one they are held. At dst == src this is the identity.
    """
    stop = dst if stop is None else stop
    pos = torch.arange(start, stop, dtype=torch.float64) * src / dst
    lo = pos.floor().clamp(max=src - 1)
    frac = (pos - lo).clamp(max=1.0)
    hi = (lo + 1).clamp(max=src - 1)
    return lo.long().to(device), hi.long().to(device), frac.float().to(device)


def resample_linear(x: torch.Tensor, dim: int, src: int, dst: int, start: int = 0, stop: int | None = None):
    """x resampled along `dim` (size src) onto points start..stop of a dst grid (resample_weights)."""
    lo, hi, frac = resample_weights(src, dst, start, stop, x.device)
    shape = [1] * x.ndim
    shape[dim] = -1
    frac = frac.to(x.dtype).view(shape)
    return torch.lerp(x.index_select(dim, lo), x.index_select(dim, hi), frac)


class CoordEmbedding(nn.Module):
    """INR-GAN's CoordFuser features on a grid: [sin(basis . (x, y)), cos(same), const_embs], z-independent.

    basis = cat[log_basis, random_basis] (both buffers; random_basis is N(0, 10) at init and must be loaded).
    `const_embs` are learned per-pixel codes at the block's native resolution.
    """

    def __init__(self, resolution: int, const_channels: int, random_channels: int = 0, diagonal: bool = False):
        super().__init__()
        self.resolution = resolution
        self.const_embs = nn.Parameter(torch.randn(1, const_channels, resolution, resolution))
        self.register_buffer("log_basis", log_basis(resolution, diagonal))
        if random_channels:
            self.register_buffer("random_basis", torch.randn(random_channels, 2) * math.sqrt(10.0))
        else:
            self.random_basis = None

    @property
    def fourier_channels(self) -> int:
        n = self.log_basis.shape[0] + (0 if self.random_basis is None else self.random_basis.shape[0])
        return 2 * n

    @property
    def channels(self) -> int:
        return self.fourier_channels + self.const_embs.shape[1]

    def basis(self) -> torch.Tensor:
        if self.random_basis is None:
            return self.log_basis
        return torch.cat([self.log_basis, self.random_basis])

    def fourier(self, n: int, start: int = 0, stop: int | None = None, dtype=torch.float32) -> torch.Tensor:
        """(2K, rows, n): sin then cos of the basis projections, for grid rows start..stop of an n x n grid."""
        stop = n if stop is None else stop
        basis = self.basis().float()
        x, y = inrgan_coords(n, device=basis.device)
        y = y[start:stop]
        raw = basis[:, 0, None, None] * x[None, None, :] + basis[:, 1, None, None] * y[None, :, None]
        return torch.cat([raw.sin(), raw.cos()]).to(dtype)

    def const(self, n: int, start: int = 0, stop: int | None = None, dtype=torch.float32) -> torch.Tensor:
        """(C_const, rows, n): the learned codes, linearly resampled (resample_weights) when n != native."""
        emb = self.const_embs[0].to(dtype)
        if n == self.resolution:
            return emb[:, start:stop]
        m = self.resolution
        return resample_linear(resample_linear(emb, 1, m, n, start, stop), 2, m, n)

    def forward(self, n: int, start: int = 0, stop: int | None = None, dtype=torch.float32) -> torch.Tensor:
        """(channels, rows, n): every feature of grid rows start..stop, in the official channel order."""
        return torch.cat([self.fourier(n, start, stop, dtype), self.const(n, start, stop, dtype)])
