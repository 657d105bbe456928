"""Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD^2 estimator with the polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets, as StyleGAN3 and torch-fidelity compute it.

Subsets: `num_subsets` (100) draws of m = min(max_subset_size (1000), n_real, n_fake) rows without replacement from
each set, from np.random.RandomState(seed): per subset first the generated rows, then the real rows.
Per subset: [sum_{i != j} k(x_i, x_j) + sum_{i != j} k(y_i, y_j)] / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2.
"""
from __future__ import annotations

import numpy as np


def subset_indices(n_fake: int, n_real: int, m: int, num_subsets: int, seed: int):
    rng = np.random.RandomState(seed)
    for _ in range(num_subsets):
        yield rng.choice(n_fake, m, replace=False), rng.choice(n_real, m, replace=False)


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m, d = x.shape
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    same = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(same - 2 * kxy.sum() / (m * m))


def kid_subset_size(n_real: int, n_fake: int, max_subset_size: int = 1000) -> int:
    return min(max_subset_size, n_real, n_fake)


def kid_from_features(real, fake, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0) -> float:
    """Mean unbiased MMD^2 over the subsets (float64)."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    m = kid_subset_size(len(real), len(fake), max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 images in each set")
    values = [mmd2_unbiased(fake[i], real[j]) for i, j in subset_indices(len(fake), len(real), m, num_subsets, seed)]
    return float(np.mean(values))
