"""Inception Score (Salimans et al. 2016) from the 1008 unbiased Inception logits, 10 consecutive splits.

p(y|x) = softmax(logits); per split s: exp(mean_x KL(p(y|x) || p_s(y))) with p_s(y) the split's mean of p(y|x);
IS = mean over splits (and std), in float64 — as the original code, StyleGAN3 and torch-fidelity (which first
shuffles; generated samples are i.i.d., so we do not).
"""
from __future__ import annotations

import numpy as np
import torch


def inception_score(logits, splits: int = 10) -> tuple[float, float]:
    x = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    n = x.shape[0]
    if n < splits:
        raise ValueError(f"the Inception Score with {splits} splits needs at least {splits} images")
    p, log_p = x.softmax(dim=1), x.log_softmax(dim=1)
    scores = []
    for s in range(splits):
        part, log_part = p[s * n // splits:(s + 1) * n // splits], log_p[s * n // splits:(s + 1) * n // splits]
        log_mean = part.mean(dim=0, keepdim=True).log()
        scores.append(float((part * (log_part - log_mean)).sum(dim=1).mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))
