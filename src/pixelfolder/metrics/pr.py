"""Improved precision and recall (Kynkäänniemi et al. 2019) with k-nearest-neighbour balls, k = 3.

Each set's manifold is the union of balls around its feature vectors, of radius the distance to the k-th nearest
other vector of the same set. precision = fraction of generated vectors inside the real manifold; recall =
fraction of real vectors inside the generated manifold ("inside" includes the boundary: distance <= radius).
Euclidean distances in float32 (torch.cdist), in row blocks, as StyleGAN3 and torch-fidelity.
"""
from __future__ import annotations

import numpy as np
import torch

BLOCK = 4096


def _distances(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    return torch.cdist(rows, cols)


def knn_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each vector to its k-th nearest neighbour in the same set (itself excluded)."""
    return torch.cat([_distances(block, features).kthvalue(k + 1, dim=1).values for block in features.split(BLOCK)])


def coverage(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor) -> float:
    """Fraction of `probes` within radii[j] of some manifold[j]."""
    inside = [(_distances(block, manifold) <= radii.unsqueeze(0)).any(dim=1) for block in probes.split(BLOCK)]
    return torch.cat(inside).float().mean().item()


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    real = torch.as_tensor(np.asarray(real), dtype=torch.float32)
    fake = torch.as_tensor(np.asarray(fake), dtype=torch.float32)
    if min(len(real), len(fake)) < k + 1:
        raise ValueError(f"precision/recall with k={k} needs at least {k + 1} images in each set")
    precision = coverage(fake, real, knn_radii(real, k))
    recall = coverage(real, fake, knn_radii(fake, k))
    return precision, recall
