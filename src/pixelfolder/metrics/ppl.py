"""Perceptual path length (Karras et al. 2019) as StyleGAN2/3's `ppl2_wend`: W space, end-point sampling, eps 1e-4.

For pair i: z0, z1 and per-layer noise are drawn from a generator seeded with `seed + i` (so a pair does not
depend on the batch size); w0, w1 = mapping(z0), mapping(z1) without truncation; the images of w0 and
w0 + eps (w1 - w0) are synthesised with the SAME noise, in float32 (never bf16: eps-sized differences would
vanish); images larger than 256 px are box-downsampled to 256 (NVlabs); no crop (NVlabs' ppl2_wend uses
crop=False; their face crop belonged to the older FFHQ-specific ppl_* variants). The distance is
LPIPS-VGG(img0, img1) / eps^2, and PPL is the mean of the distances between their 1st (lower) and 99th (higher)
percentiles.
"""
from __future__ import annotations

import numpy as np
import torch

from ..utils import seed_generator


def _pair_inputs(G, indices, seed: int):
    zs, noises = [], []
    shapes = G.synthesis.noise_shapes(None)
    for i in indices:
        g = seed_generator(seed + i)
        zs.append(torch.randn(2, G.z_dim, generator=g))
        noises.append([torch.randn(1, 1, h, w, generator=g) for h, w in shapes])
    z = torch.stack(zs)                                 # (B, 2, z_dim)
    noise = [torch.cat(layer) for layer in zip(*noises)] if shapes else None
    return z[:, 0], z[:, 1], noise


def _downsample_to_256(img: torch.Tensor) -> torch.Tensor:
    factor = img.shape[-1] // 256
    if factor > 1:
        n, c, h, w = img.shape
        img = img.reshape(n, c, h // factor, factor, w // factor, factor).mean(dim=(3, 5))
    return img


@torch.no_grad()
def pair_distances(G, lpips, indices, *, epsilon: float = 1e-4, seed: int = 0, device="cpu") -> torch.Tensor:
    """(len(indices),) LPIPS(img(w0), img(w0 + eps (w1 - w0))) / eps^2 for the pairs `indices`."""
    z0, z1, noise = _pair_inputs(G, indices, seed)
    ws = G.mapping(torch.cat([z0, z1]).to(device))
    w0, w1 = ws.chunk(2)
    wt = torch.cat([w0, w0.lerp(w1, epsilon)])
    noise = None if noise is None else [torch.cat([n, n]).to(device) for n in noise]
    img = _downsample_to_256(G.synthesis(wt, noise_mode="const", noise=noise).float())
    if img.shape[1] == 1:
        img = img.repeat(1, 3, 1, 1)
    a, b = img.chunk(2)
    return lpips(a, b).cpu().double() / epsilon ** 2


def ppl_from_distances(dist) -> float:
    dist = np.asarray(dist, dtype=np.float64)
    lo = np.percentile(dist, 1, method="lower")
    hi = np.percentile(dist, 99, method="higher")
    return float(dist[(dist >= lo) & (dist <= hi)].mean())
