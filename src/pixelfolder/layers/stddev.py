"""Minibatch standard deviation (StyleGAN2 discriminator)."""
from __future__ import annotations

import torch


def minibatch_stddev(x: torch.Tensor, group_size: int = 4, num_features: int = 1) -> torch.Tensor:
    """Append `num_features` channels of per-group feature std, averaged over C/F, H, W.

    The batch is viewed as (group, B/group): sample b is grouped with b + k*B/group, as in the official code.
    """
    b, c, h, w = x.shape
    group = min(b, group_size)
    if b % group:
        raise ValueError(f"minibatch-stddev: batch {b} is not divisible by the group size {group}")
    y = x.reshape(group, -1, num_features, c // num_features, h, w)
    y = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8)
    y = y.mean(dim=[2, 3, 4]).reshape(-1, num_features, 1, 1)
    y = y.repeat(group, 1, h, w)
    return torch.cat([x, y], dim=1)
