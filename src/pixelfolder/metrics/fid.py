"""Fréchet Inception Distance (Heusel et al. 2017) from features, in float64.

FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), with unbiased covariances (np.cov, ddof=1, as
TTUR, pytorch-fid and torch-fidelity; NVlabs divide by N, a relative difference of 1/N in the covariances).

The trace term is computed without a general matrix square root: S1 S2 is similar to the symmetric positive
semi-definite M = S1^(1/2) S2 S1^(1/2) (same eigenvalues), so tr((S1 S2)^(1/2)) = sum sqrt(eig(M)). Both steps are
symmetric eigendecompositions (numpy.linalg.eigh), which are backward stable; tiny negative eigenvalues from
rounding are clamped to 0. scipy.linalg.sqrtm (the reference implementations' choice) agrees to ~1e-8 on
well-conditioned covariances (tests/metrics/test_formulas.py) and needs no `eps` retry on singular ones.
"""
from __future__ import annotations

import numpy as np


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of (N, D) features, float64; N >= 2."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 images in each set (features of shape {x.shape})")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clamped at 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((S1 S2)^(1/2)) = sum of sqrt(eigenvalues of S1^(1/2) S2 S1^(1/2))."""
    root = sqrt_psd(np.asarray(sigma1, dtype=np.float64))
    m = root @ np.asarray(sigma2, dtype=np.float64) @ root
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    if mu1.shape != mu2.shape or np.shape(sigma1) != np.shape(sigma2):
        raise ValueError(f"feature dimensions differ: {mu1.shape} vs {mu2.shape}")
    mean_term = float(np.square(mu1 - mu2).sum())
    return mean_term + float(np.trace(sigma1) + np.trace(sigma2)) - 2 * trace_sqrt_product(sigma1, sigma2)


def fid_from_stats_and_features(mu1, sigma1, features) -> float:
    """FID of (mu1, sigma1) against raw (N, D) features. With N - 1 < D the trace term uses the N x N route:
    sigma2 = B^T B for the centred features B / sqrt(N - 1), and S1 S2 shares its nonzero eigenvalues with the
    symmetric PSD B S1 B^T, so tr((S1 S2)^(1/2)) = sum sqrt(eig(B S1 B^T)) — the same quantity, a smaller matrix."""
    x = np.asarray(features, dtype=np.float64)
    mu2, sigma2 = feature_stats(x)
    if x.shape[0] - 1 >= x.shape[1]:
        return frechet_distance(mu1, sigma1, mu2, sigma2)
    b = (x - mu2) / np.sqrt(x.shape[0] - 1)
    m = b @ np.asarray(sigma1, dtype=np.float64) @ b.T
    trace_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())
    mean_term = float(np.square(np.asarray(mu1, dtype=np.float64) - mu2).sum())
    return mean_term + float(np.trace(sigma1) + np.trace(sigma2)) - 2 * trace_sqrt


def fid_from_features(real, fake) -> float:
    return frechet_distance(*feature_stats(real), *feature_stats(fake))
