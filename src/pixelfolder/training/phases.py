"""Training phases: G main, D main, D reg (R1), G reg (path length) for GANs; NLL for likelihood models. Each
computes the loss of one chunk of samples; the loop accumulates chunks, reduces gradients across processes and
steps the optimizer. The objectives (objectives.py) choose which phases run and how often.

No phase knows which architecture it trains: generators only need mapping / synthesis / noise_shapes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..layers.equalized import fp32
from .augment import diffaugment
from .losses import d_logistic_loss, g_nonsaturating_loss, r1_penalty
from .randomness import Draws


PL_DECAY = 0.01          # path-length mean: exponential moving average rate (rosinality and NVlabs)


@dataclass
class Phase:
    name: str                 # "Gmain", "Dmain", "Dreg", "Greg"
    net: str                  # "G" or "D": whose optimizer steps
    interval: int             # run on steps where step % interval == 0
    loss: Callable            # loss(ctx, indices, reals) -> (loss, {stat: sum over samples})
    batch_fraction: float = 1.0   # fraction of each chunk used (path length uses half, as rosinality)
    after: Callable | None = None  # after(ctx, stats): the phase's own state update once its step is taken


@dataclass
class Context:
    """What the phases read: networks (and their compiled forwards), options and the step."""
    G: torch.nn.Module
    D: torch.nn.Module
    G_synthesis: Callable     # possibly compiled
    D_forward: Callable       # possibly compiled
    opts: object
    step: int
    device: torch.device
    autocast: Callable        # () -> context manager
    pl_mean: torch.Tensor | None  # GANs: the running mean path length (updated in place by G reg)
    augment_pipe: Callable | None = None  # ADA: the AugmentPipe (None without --augment ada)
    ada: object = None        # ADA: the AdaController (its p, and the signs of D's real outputs)


def make_fakes(ctx: Context, tag: str, indices, *, synthesis=None, need_ws: bool = False):
    """Images for global sample indices, with keyed z, style mixing and per-layer noise."""
    G, opts = ctx.G, ctx.opts
    draws = Draws(opts.seed, ctx.step, tag, indices, ctx.device)
    z = draws.normal(G.z_dim)
    ws = G.mapping(z)
    n = ws.shape[1]
    if opts.mixing > 0 and n > 1:
        z2 = draws.normal(G.z_dim)
        mix = (draws.uniform(1) < opts.mixing).view(-1, 1, 1)
        cross = draws.integers(1, n).view(-1, 1, 1)
        later = torch.arange(n, device=ctx.device).view(1, n, 1) >= cross
        ws = torch.where(mix & later, G.mapping(z2), ws)
    noise = [draws.normal(1, h, w) for h, w in G.synthesis.noise_shapes()]
    with ctx.autocast():
        img = fp32((synthesis or ctx.G_synthesis)(ws, noise_mode="random", noise=noise))
    return (img, ws) if need_ws else img


def augment(ctx: Context, x: torch.Tensor, tag: str, indices) -> torch.Tensor:
    """What D sees: x augmented alike for reals and fakes (DiffAugment, or ADA at its current p), keyed draws."""
    if ctx.opts.augment == "diffaug":
        return diffaugment(x, Draws(ctx.opts.seed, ctx.step, tag, indices, x.device))
    if ctx.opts.augment == "ada":
        return ctx.augment_pipe(x, ctx.ada.p, Draws(ctx.opts.seed, ctx.step, tag, indices, x.device))
    return x


def report_real_signs(ctx: Context, real_logits: torch.Tensor) -> None:
    """ADA's statistic: the signs of D's outputs on reals, from every D main and R1 pass (as StyleGAN2-ADA)."""
    if ctx.ada is not None:
        ctx.ada.accumulate(real_logits.detach())


def d_logits(ctx: Context, x: torch.Tensor, forward=None) -> torch.Tensor:
    with ctx.autocast():
        return fp32((forward or ctx.D_forward)(x))


def g_main(ctx: Context, indices, reals):
    fake = augment(ctx, make_fakes(ctx, "Gmain", indices), "aug-Gmain", indices)
    loss = g_nonsaturating_loss(d_logits(ctx, fake))
    return loss, {"loss_G": loss.detach() * len(indices)}


def d_main(ctx: Context, indices, reals):
    with torch.no_grad():
        fake = make_fakes(ctx, "Dmain", indices)
    fake_logits = d_logits(ctx, augment(ctx, fake, "aug-fake", indices))
    real_logits = d_logits(ctx, augment(ctx, reals, "aug-real", indices))
    report_real_signs(ctx, real_logits)
    loss = d_logistic_loss(real_logits, fake_logits)
    b = len(indices)
    return loss, {"loss_D": loss.detach() * b, "score_real": real_logits.detach().sum(),
                  "score_fake": fake_logits.detach().sum()}


def d_reg(ctx: Context, indices, reals):
    if ctx.opts.augment == "ada":              # as StyleGAN2-ADA: the gradient with respect to the reals
        x = reals.detach().requires_grad_(True)
        logits = d_logits(ctx, augment(ctx, x, "aug-real", indices), forward=ctx.D)   # eager: double backward
        report_real_signs(ctx, logits)
    else:                                      # DiffAugment: with respect to the augmented reals
        x = augment(ctx, reals, "aug-real", indices).detach().requires_grad_(True)
        logits = d_logits(ctx, x, forward=ctx.D)
    penalty, _ = r1_penalty(logits, x)
    weight = ctx.opts.gamma / 2 * ctx.opts.r1_every
    return penalty * weight, {"r1": penalty.detach() * len(indices)}


def g_reg(ctx: Context, indices, reals):
    img, ws = make_fakes(ctx, "Greg", indices, synthesis=ctx.G.synthesis, need_ws=True)
    h, w = img.shape[2:]
    y = Draws(ctx.opts.seed, ctx.step, "pl-noise", indices, ctx.device).normal(*img.shape[1:]) / math.sqrt(h * w)
    (grad,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
    lengths = grad.square().sum(2).mean(1).sqrt()
    target = ctx.pl_mean.lerp(lengths.mean(), PL_DECAY)   # as both official codes: the updated mean, with gradient
    penalty = (lengths - target).square().mean()
    loss = penalty * ctx.opts.pl_weight * ctx.opts.pl_every + 0 * img.flatten()[0]
    b = len(indices)
    return loss, {"pl_penalty": penalty.detach() * b, "pl_length": lengths.detach().sum()}


def update_pl_mean(ctx: Context, stats: dict) -> None:
    """The path-length target: an exponential moving average (PL_DECAY) of the mean lengths of each G reg step
    (over all processes' chunks; within a chunk the penalty's target already includes that chunk's mean)."""
    ctx.pl_mean.lerp_(stats["pl_length"].to(ctx.pl_mean), PL_DECAY)


def nll(ctx: Context, indices, reals):
    """Likelihood models: mean negative log-likelihood (nats per image) of the selected levels on uint8 reals."""
    with ctx.autocast():
        per_level = ctx.G(reals, levels=ctx.opts.levels or None).float()     # (levels, batch), nats
    per_image = per_level.sum(0)
    dims = reals[0].numel() * math.log(2)
    return per_image.mean(), {"nll_bpd": per_image.detach().sum() / dims}
