"""Coordinate grids, learned Fourier features (LFF) and PixelFolder's Fold/Unfold."""
from __future__ import annotations

import math

import torch
from torch import nn


def coord_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(1, 2, H, W) grid: channel 0 = x = linspace(-1, 1, W) along width, channel 1 = y along height."""
    x = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype).view(1, width).expand(height, width)
    y = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype).view(height, 1).expand(height, width)
    return torch.stack([x, y]).unsqueeze(0)


class LFF(nn.Module):
    """Learned Fourier features: sin(W c + b) of a 2-D coordinate c, a plain 1x1 conv (no equalized lr)."""

    def __init__(self, channels: int):
        super().__init__()
        bound = math.sqrt(9.0 / 2.0)
        self.weight = nn.Parameter(torch.empty(channels, 2).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(channels).uniform_(-1.0 / math.sqrt(2.0), 1.0 / math.sqrt(2.0)))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """coords (B, 2, H, W) -> (B, C, H, W)."""
        out = torch.einsum("oc,bchw->bohw", self.weight.to(coords.dtype), coords)
        return torch.sin(out + self.bias.to(coords.dtype).view(1, -1, 1, 1))

    def grid(self, height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
        """self(coord_grid(height, width)) computed separably: sin(a + b) = sin a cos b + cos a sin b,
        with a = w_x x + bias along the width and b = w_y y along the height (no per-pixel sin)."""
        w, bias = self.weight.to(device=device, dtype=dtype), self.bias.to(device=device, dtype=dtype)
        xs = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype)
        ys = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype)
        a = w[:, :1] * xs + bias[:, None]          # (C, W)
        b = w[:, 1:] * ys                          # (C, H)
        out = torch.sin(a)[:, None, :] * torch.cos(b)[:, :, None] + torch.cos(a)[:, None, :] * torch.sin(b)[:, :, None]
        return out.unsqueeze(0)


def fold(x: torch.Tensor) -> torch.Tensor:
    """2x2 space-to-depth in the official (dy, dx, c) channel order: out[(dy*2+dx)*C + c, i, j] = x[c, 2i+dy, 2j+dx]."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(b, 4 * c, h // 2, w // 2)


def unfold(x: torch.Tensor) -> torch.Tensor:
    """Exact inverse of `fold`: depth-to-space 2x2 reading channels in (dy, dx, c) order."""
    b, c4, h, w = x.shape
    c = c4 // 4
    x = x.reshape(b, 2, 2, c, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(b, c, h * 2, w * 2)
