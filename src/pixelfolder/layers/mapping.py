"""Mapping network z -> w (PixelNorm + equalized-lr MLP), with the W average and truncation."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import PixelfolderError
from .equalized import EqualLinear

TRUNCATION_SPACES = ("w", "z")


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
    """w_avg + psi * (ws - w_avg) on layers [0, cutoff) of ws (B, n, w_dim); all layers when cutoff is None."""
    if psi == 1.0:
        return ws
    out = w_avg.to(ws.dtype) + psi * (ws - w_avg.to(ws.dtype))
    if cutoff is None or cutoff >= ws.shape[1]:
        return out
    return torch.cat([out[:, :cutoff], ws[:, cutoff:]], dim=1)


def mix_ws(ws_a: torch.Tensor, ws_b: torch.Tensor, crossover: int) -> torch.Tensor:
    """Style mixing: layers < crossover from ws_a, the rest from ws_b (both (B, n, w_dim))."""
    n = ws_a.shape[1]
    if not 0 < crossover < n:
        raise ValueError(f"style-mixing crossover must be in [1, {n - 1}], got {crossover}")
    return torch.cat([ws_a[:, :crossover], ws_b[:, crossover:]], dim=1)


class MappingNetwork(nn.Module):
    """z (B, z_dim) -> ws (B, num_ws, w_dim). Keeps `w_avg`, the mean w used for truncation.

    truncation_space 'w' (default, StyleGAN-style) truncates w; 'z' reproduces the official CIPS code,
    which interpolates the *input z* toward w_avg before the MLP.
    """

    def __init__(self, z_dim: int = 512, w_dim: int = 512, num_layers: int = 8, lr_mul: float = 0.01,
                 num_ws: int = 1, truncation_space: str = "w"):
        super().__init__()
        if truncation_space not in TRUNCATION_SPACES:
            raise PixelfolderError(f"truncation_space must be one of {TRUNCATION_SPACES}, got {truncation_space!r}")
        if truncation_space == "z" and z_dim != w_dim:
            raise PixelfolderError("truncation_space='z' (official CIPS) needs z_dim == w_dim")
        dims = [z_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            EqualLinear(dims[i], dims[i + 1], lr_mul=lr_mul, activate=True) for i in range(num_layers))
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.z_dim, self.w_dim, self.num_ws = z_dim, w_dim, num_ws
        self.truncation_space = truncation_space

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        """The plain MLP: z (B, z_dim) -> w (B, w_dim)."""
        x = pixel_norm(z)
        for layer in self.layers:
            x = layer(x)
        return x

    def forward(self, z: torch.Tensor, c=None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        if self.truncation_space == "z" and truncation_psi != 1.0:
            if truncation_cutoff is not None:
                raise PixelfolderError("truncation_cutoff needs W-space truncation; this model truncates in Z")
            z = self.w_avg.to(z.dtype) + truncation_psi * (z - self.w_avg.to(z.dtype))
            return self.embed(z).unsqueeze(1).repeat(1, self.num_ws, 1)
        ws = self.embed(z).unsqueeze(1).repeat(1, self.num_ws, 1)
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)

    @torch.no_grad()
    def compute_w_avg(self, num_samples: int = 10_000, seed: int = 0, batch: int = 2_000) -> torch.Tensor:
        """Set and return w_avg = mean of embed(z) over `num_samples` z drawn from a generator seeded `seed`."""
        g = torch.Generator(device="cpu").manual_seed(seed)
        total = torch.zeros(self.w_dim, dtype=torch.float64)
        device = self.w_avg.device
        for start in range(0, num_samples, batch):
            n = min(batch, num_samples - start)
            z = torch.randn(n, self.z_dim, generator=g).to(device)
            total += self.embed(z).double().sum(0).cpu()
        self.w_avg.copy_((total / num_samples).to(self.w_avg.dtype))
        return self.w_avg.clone()
