"""GAN losses of the official recipes (StyleGAN2 / PixelFolder / CIPS)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """mean softplus(-D(x)) + mean softplus(D(G(z)))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """mean softplus(-D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(penalty, gradient): mean over samples of sum ||dD(x)/dx||^2; `real_images` must require grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.square().flatten(1).sum(1).mean(), grad


def r1_loss_weight(gamma: float, interval: int) -> float:
    """Weight of the R1 penalty in a lazy-regularisation step: gamma / 2 * interval (official: 10/2*16 = 80)."""
    return gamma / 2 * interval
