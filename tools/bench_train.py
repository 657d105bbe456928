"""One full GAN training step, ours against the official code, on CPU: equality of losses and gradients, then speed.

    python tools/bench_train.py --official-pixelfolder DIR --official-stylegan2 DIR
    python tools/bench_train.py --official-pixelfolder DIR --models pixelfolder --repeats 5
    python tools/bench_train.py --official-stylegan2 DIR --official-blur native      # rosinality's own CPU blur
    python tools/bench_train.py --models pixelfolder --profile                         # ours only: where time goes
    python tools/bench_train.py --official-pixelfolder DIR --official-stylegan2 DIR --equality-only
    python tools/bench_train.py --models pixelfolder --bf16                            # ours: fp32 vs bf16 autocast
    python tools/bench_train.py --models pixelfolder --scaling 4,8,16                  # step time, peak RSS per batch

DIR: an exported tree (`git archive HEAD | tar -x -C DIR`) of BlingHe/PixelFolder and of rosinality/stylegan2-pytorch.
No file is edited. Before importing, the tool stubs `torch.utils.cpp_extension.load` (both repositories compile
CUDA ops at import) and `ipdb`, and uses rosinality's `op` package for both (PixelFolder's own `op` has no CPU
path); the official modules then run their own CPU code, except the FIR blur: `--official-blur depthwise`
(default) replaces `upfirdn2d` by a depthwise-convolution equivalent (one grouped conv, like NVlabs'
`upfirdn2d_ref`), the fastest pure-PyTorch form we know; `native` keeps rosinality's `upfirdn2d_native` (one
single-channel conv over B*C images), which is what the official code runs on a CPU and is 3x slower in D.

The step (batch `--batch`, fp32, one thread, train mode, official widths at 64 px): D main (G forward without
grad, D on fakes and reals, logistic loss, backward, Adam), R1 every 16 steps (D on reals with the input
gradient, double backward, Adam), G main (G forward, D forward, non-saturating loss, backward, Adam), for
StyleGAN2 path length every 4 steps on half the batch and style mixing 0.9, then the G_ema update. The
official side is the loop body of each repository's train.py written out with its modules and formulas
(PixelFolder: BlingHe train.py with --img2dis, no path length, no mixing; StyleGAN2: rosinality train.py
defaults); ours is `pixelfolder.training.loop.train_step`, the function the training loop runs, with its
keyed per-sample randomness. Mean step time = (T(step 0) + 3 T(step 4) + 12 T(step 1)) / 16 (StyleGAN2) or
(T(step 0) + 15 T(step 1)) / 16 (PixelFolder): step 0 runs every phase, step 4 the path length and no R1,
step 1 the main phases only. Rounds are interleaved official, ours, official, ours; medians.

Equality (before timing), twice: with both sides in float64 (torch.set_default_dtype; the pass criterion: the
same formulas agree to ~1e-13 there, a different formula shows at once) and in float32 (for information: the two
codes sum in different orders, which gives up to ~1e-4 relative L2 in the gradients). Each time from the same
weights (ours converted from the official state_dicts with our converters, re-synchronised before each phase so
that one phase's Adam step cannot carry a difference into the next), the same reals and the same z, noise and
path-length noise (ours drawn by our keyed randomness and handed to the official modules), mixing 0: every
phase's loss and every parameter's gradient: the relative L2 difference over all of a network's gradients (passes
at <= 1e-5, as does the loss) and, for information, the worst tensor's max |ours - official| / max |official|.

`--bf16`: our step also under bf16 autocast (`train --dtype bf16`), timed in the same rounds. `--scaling B,B,..`:
ours only, one fresh process per batch, a markdown table of mean step time and the process's peak RSS.

`--profile`: ours only, one step of each kind, wall time of each phase's forward (its loss, randomness
included), backward and optimizer step, and the rest of the step (reals, EMA), through thin timing wrappers.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import time
import types

import torch
import torch.nn.functional as F

from pixelfolder import registry
from pixelfolder.convert import convert_state_dict
from pixelfolder.convert.official import apply_rules
from pixelfolder.registry import converter
from pixelfolder.training import loop
from pixelfolder.training.distributed import Dist
from pixelfolder.training.objectives import objective_for_preset
from pixelfolder.training.options import TrainOptions, resolve
from pixelfolder.training.randomness import Draws

RESOLUTION = 64
MODELS = ("pixelfolder", "stylegan2")
OFFICIAL_PACKAGES = ("op", "model", "tensor_transforms")
REL_TOL = 1e-5


# ------------------------------------------------------------------------------------------------ official
def upfirdn2d_depthwise(x, kernel, up=1, down=1, pad=(0, 0)):
    """upfirdn2d as zero insertion, padding (negative = crop), one depthwise conv and decimation."""
    up = (up, up) if isinstance(up, int) else tuple(up)
    down = (down, down) if isinstance(down, int) else tuple(down)
    px0, px1, py0, py1 = (pad[0], pad[1], pad[0], pad[1]) if len(pad) == 2 else tuple(pad)
    b, c, h, w = x.shape
    if up != (1, 1):
        x = F.pad(x.reshape(b, c, h, 1, w, 1), [0, up[0] - 1, 0, 0, 0, up[1] - 1])
        x = x.reshape(b, c, h * up[1], w * up[0])
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0):x.shape[2] - max(-py1, 0), max(-px0, 0):x.shape[3] - max(-px1, 0)]
    weight = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None].expand(c, 1, *kernel.shape)
    return F.conv2d(x, weight, groups=c)[:, :, ::down[1], ::down[0]]


@contextlib.contextmanager
def official_code(root: str, ops_root: str, blur: str):
    """sys.path with one official tree and rosinality's CPU-capable `op`; modules dropped again on exit."""
    import torch.utils.cpp_extension as cpp
    saved_load = cpp.load
    cpp.load = lambda *args, **kwargs: types.SimpleNamespace()       # no CUDA compilation at import
    sys.modules.setdefault("ipdb", types.SimpleNamespace(set_trace=lambda: None))
    sys.path[:0] = [ops_root]
    import op  # noqa: F401  rosinality's, first on the path
    sys.path.remove(ops_root)
    sys.path[:0] = [root]
    try:
        yield lambda module: setattr(module, "upfirdn2d", upfirdn2d_depthwise) if blur == "depthwise" else None
    finally:
        cpp.load = saved_load
        sys.path.remove(root)
        for name in list(sys.modules):
            if name.split(".")[0] in OFFICIAL_PACKAGES:
                del sys.modules[name]


def official_networks(arch: str, root: str, ops_root: str, blur: str, seed: int):
    """(G, D) of the official code at 64 px, official widths, random weights from `seed`, train mode."""
    with official_code(root, ops_root, blur) as use_blur:
        torch.manual_seed(seed)
        if arch == "pixelfolder":
            import model
            import model.blocks
            use_blur(model.blocks)
            G = model.PixelFolder(size=RESOLUTION, hidden_size=512, style_dim=512, n_mlp=8, channel_multiplier=2)
            D = model.Discriminator(size=RESOLUTION, channel_multiplier=2, input_size=3)
            noise_cls = model.blocks.NoiseInjection
        else:
            import model
            use_blur(model)
            G = model.Generator(RESOLUTION, 512, 8, channel_multiplier=2)
            D = model.Discriminator(RESOLUTION, channel_multiplier=2)
            noise_cls = model.NoiseInjection
    randomize(G, D, seed)
    return G.train(), D.train(), noise_cls


def randomize(G, D, seed: int) -> None:
    """Non-zero noise strengths and biases, so that no gradient is trivially zero."""
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for net in (G, D):
            for name, p in net.named_parameters():
                if name.endswith("bias") or name.endswith("noise.weight") or "noise" in name and p.numel() == 1:
                    p.add_(torch.randn(p.shape, generator=gen) * 0.1)


class FeedNoise:
    """Official NoiseInjection draws its noise inside forward; for the equality check it takes ours in order."""

    def __init__(self, noise_cls):
        self.noise_cls, self.queue = noise_cls, None
        self.original = noise_cls.forward

    @contextlib.contextmanager
    def feeding(self, noise_list):
        self.queue = list(noise_list)
        feed = self

        def forward(module, image, noise=None):
            return feed.original(module, image, feed.queue.pop(0) if noise is None else noise)
        self.noise_cls.forward = forward
        try:
            yield
        finally:
            self.noise_cls.forward = self.original
            assert not self.queue, "official G used fewer noise inputs than ours"


def requires_grad(net, flag: bool) -> None:
    for p in net.parameters():
        p.requires_grad = flag


class OfficialStep:
    """The loop body of the official train.py (BlingHe/PixelFolder or rosinality/stylegan2-pytorch)."""

    def __init__(self, arch, G, D, batch, noise_cls):
        self.arch, self.G, self.D, self.batch = arch, G, D, batch
        self.G_ema = copy.deepcopy(G).eval()
        self.pl = arch == "stylegan2"
        self.mixing = 0.9 if self.pl else 0.0
        g_ratio, d_ratio = 4 / 5, 16 / 17
        self.g_opt = torch.optim.Adam(G.parameters(), lr=0.002 * g_ratio, betas=(0.0, 0.99 ** g_ratio))
        self.d_opt = torch.optim.Adam(D.parameters(), lr=0.002 * d_ratio, betas=(0.0, 0.99 ** d_ratio))
        self.mean_path_length = 0.0
        self.feed = FeedNoise(noise_cls)
        self.inputs = None          # equality check: {phase: (z, noise list)} drawn by our keyed randomness
        self.record = None          # equality check: {phase: (loss, {param name: grad})}
        self.before_phase = None    # equality check: called with the phase name before it runs

    def styles(self, batch):
        """z as the official mixing_noise makes it (one or two latents)."""
        if self.mixing > 0 and random.random() < self.mixing:
            return list(torch.randn(2, batch, 512).unbind(0))
        return [torch.randn(batch, 512)]

    def generate(self, phase, batch, return_latents=False):
        if self.inputs is None:
            styles, noise_ctx = self.styles(batch), contextlib.nullcontext()
            kwargs = {}
        else:
            z, noise = self.inputs[phase]
            styles = [z]
            if self.arch == "pixelfolder":
                noise_ctx, kwargs = self.feed.feeding(noise), {}
            else:
                noise_ctx, kwargs = contextlib.nullcontext(), {"noise": noise, "randomize_noise": False}
        with noise_ctx:
            if self.arch == "pixelfolder":
                img, latent = self.G(None, styles, return_latents=return_latents, **kwargs)
            else:
                img, latent = self.G(styles, return_latents=return_latents, **kwargs)
        return (img, latent) if return_latents else img

    def finish(self, phase, net, opt, loss):
        """Backward is done: record (equality check), step."""
        if self.record is not None:
            self.record[phase] = (loss.detach().clone(), {n: p.grad.detach().clone()
                                                          for n, p in net.named_parameters() if p.grad is not None})
        opt.step()

    def phase_start(self, name):
        if self.before_phase is not None:
            self.before_phase(name)

    def __call__(self, i, real):
        G, D = self.G, self.D
        losses = {}
        # D main
        self.phase_start("Dmain")
        requires_grad(G, False)
        requires_grad(D, True)
        fake_pred = D(self.generate("Dmain", self.batch))
        real_pred = D(real)
        d_loss = F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()
        D.zero_grad()
        d_loss.backward()
        self.finish("Dmain", D, self.d_opt, d_loss)
        losses.update(d=d_loss, real_score=real_pred.mean(), fake_score=fake_pred.mean())
        # D reg (R1)
        if i % 16 == 0:
            self.phase_start("Dreg")
            real = real.detach().requires_grad_(True)
            real_pred = D(real)
            (grad,) = torch.autograd.grad(real_pred.sum(), real, create_graph=True)
            r1 = grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()
            D.zero_grad()
            (10 / 2 * r1 * 16 + 0 * real_pred[0]).backward()
            self.finish("Dreg", D, self.d_opt, r1)
            losses["r1"] = r1
        # G main
        self.phase_start("Gmain")
        requires_grad(G, True)
        requires_grad(D, False)
        g_loss = F.softplus(-D(self.generate("Gmain", self.batch))).mean()
        G.zero_grad()
        g_loss.backward()
        self.finish("Gmain", G, self.g_opt, g_loss)
        losses["g"] = g_loss
        # G reg (path length, StyleGAN2)
        if self.pl and i % 4 == 0:
            self.phase_start("Greg")
            img, latents = self.generate("Greg", max(1, self.batch // 2), return_latents=True)
            noise = self.pl_noise if self.inputs is not None else torch.randn_like(img)
            noise = noise / math.sqrt(img.shape[2] * img.shape[3])
            (grad,) = torch.autograd.grad((img * noise).sum(), latents, create_graph=True)
            lengths = torch.sqrt(grad.pow(2).sum(2).mean(1))
            path_mean = self.mean_path_length + 0.01 * (lengths.mean() - self.mean_path_length)
            path_loss = (lengths - path_mean).pow(2).mean()
            G.zero_grad()
            (2 * 4 * path_loss + 0 * img[0, 0, 0, 0]).backward()
            self.finish("Greg", G, self.g_opt, path_loss)
            self.mean_path_length = path_mean.detach()
            losses["path"] = path_loss
        # EMA and the logged values
        with torch.no_grad():
            decay = 0.5 ** (32 / (10 * 1000))
            for p_ema, p in zip(self.G_ema.parameters(), G.parameters()):
                p_ema.mul_(decay).add_(p, alpha=1 - decay)
        return {k: v.mean().item() for k, v in losses.items()}


# ------------------------------------------------------------------------------------------------------ ours
def our_objective(arch: str, batch: int, *, mixing: float | None = None, mirror: bool = False):
    preset = f"{arch}-{RESOLUTION}"                 # as the official scripts run at 64 px: no scaling rule
    recipe, config = registry.architecture(arch).recipe, registry.resolve_config(preset)[1]
    opts = resolve(TrainOptions(preset=preset, batch=batch, mixing=mixing, mirror=mirror, device="cpu", workers=0,
                                augment="none", gamma=recipe.gamma, glr=recipe.lr, dlr=recipe.lr,
                                ema_kimg=recipe.ema_kimg, ema_rampup=0.0, mapping_layers=config.mapping_layers))
    return objective_for_preset(opts.preset)(opts, torch.device("cpu"))


def load_official_weights(objective, G_off, D_off) -> None:
    """Our G, G_ema and D hold the official G's and D's current weights (through our converters)."""
    G = convert_state_dict({k: v.detach() for k, v in G_off.state_dict().items()}, objective.arch.name)
    D = convert_state_dict({k: v.detach() for k, v in D_off.state_dict().items()}, "stylegan2_d")
    with torch.no_grad():
        for ours, theirs in ((objective.G, G), (objective.G_ema, G), (objective.networks["D"], D)):
            sd = theirs.state_dict()
            for name, t in ours.state_dict().items():
                if name in sd and name != "mapping.w_avg":
                    t.copy_(sd[name])


def our_step(objective, dtype: str = "fp32"):
    world, forwards = Dist(), loop.compiled_forwards(objective, objective.opts)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if dtype == "bf16" else contextlib.nullcontext

    def step(i, uint8_batch):
        return loop.train_step(objective, i, uint8_batch, world, 1, 1, autocast, forwards, {})
    return step


def grads_in_our_names(arch: str, net, grads: dict) -> dict:
    """Official gradients keyed by our parameter names (the converter's rules, applied to grads in place of
    weights)."""
    found = converter("state_dict", arch)
    params = dict(net.named_parameters())
    sd = {k: grads.get(k, torch.zeros_like(v)) if k in params else v for k, v in net.state_dict().items()}
    return apply_rules(sd, found.rules(found.infer_config(sd)), f"official {arch} gradients")


# ----------------------------------------------------------------------------------------------- equality
def our_draws(objective, step: int, tag: str, batch: int):
    """(z, noise list) exactly as phases.make_fakes draws them (mixing 0)."""
    draws = Draws(objective.opts.seed, step, tag, range(batch))
    z = draws.normal(objective.G.z_dim)
    return z, [draws.normal(1, h, w) for h, w in objective.G.synthesis.noise_shapes()]


@contextlib.contextmanager
def default_dtype(dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def check_equality(arch, G_off, D_off, noise_cls, batch, seed, dtype=torch.float32) -> float:
    """Worst relative difference of losses and gradients over the phases of step 0 (all phases run), with both
    sides in `dtype` (float64: the same formulas agree to ~1e-13; float32: rounding, amplified by leaky-ReLU
    kinks, gives ~1e-5)."""
    with default_dtype(dtype):
        return _check_equality(arch, copy.deepcopy(G_off).to(dtype), copy.deepcopy(D_off).to(dtype), noise_cls,
                               batch, seed, dtype)


def _check_equality(arch, G_off, D_off, noise_cls, batch, seed, dtype) -> float:
    official = OfficialStep(arch, G_off, D_off, batch, noise_cls)
    official.mixing = 0.0
    objective = our_objective(arch, batch, mixing=0.0)
    half = max(1, batch // 2)
    official.inputs = {"Dmain": our_draws(objective, 0, "Dmain", batch), "Gmain": our_draws(objective, 0, "Gmain",
                                                                                             batch),
                       "Greg": our_draws(objective, 0, "Greg", half)}
    official.pl_noise = Draws(objective.opts.seed, 0, "pl-noise", range(half)).normal(3, RESOLUTION, RESOLUTION)
    uint8_batch = torch.randint(0, 256, (batch, 3, RESOLUTION, RESOLUTION), dtype=torch.uint8,
                                generator=torch.Generator().manual_seed(seed + 7))
    real = (uint8_batch.float() / 127.5 - 1).to(dtype)
    weights = {}
    official.record = {}
    official.before_phase = lambda name: weights.__setitem__(name, (copy.deepcopy(G_off.state_dict()),
                                                                   copy.deepcopy(D_off.state_dict())))
    official(0, real)
    ours = {}
    net_of = {p.name: p.net for p in objective.phases}
    for phase in objective.phases:
        if phase.name not in official.record:
            continue
        G_w, D_w = weights[phase.name]
        G_off.load_state_dict(G_w)
        D_off.load_state_dict(D_w)
        load_official_weights(objective, G_off, D_off)
        net = objective.networks[phase.net]
        objective.before_phase(phase)
        ctx = objective.context(0, contextlib.nullcontext, loop.compiled_forwards(objective, objective.opts))
        reals = objective.prepare_reals(uint8_batch, 0, Dist()).to(dtype)
        stats, _ = loop.run_phase(phase, ctx, objective.networks, _Recorder(ours, phase.name, net), None, reals,
                                  Dist(), 1, 1)
        ours[phase.name] = (stats, ours[phase.name])
    worst = 0.0
    loss_key = {"Dmain": "loss_D", "Dreg": "r1", "Gmain": "loss_G", "Greg": "pl_penalty"}
    for name, (loss, grads) in official.record.items():
        stats, our_grads = ours[name]
        off_net = G_off if net_of[name] == "G" else D_off
        theirs = grads_in_our_names(arch if net_of[name] == "G" else "stylegan2_d", off_net, grads)
        rel_loss = abs(float(stats[loss_key[name]]) - loss.item()) / max(abs(loss.item()), 1e-30)
        rels = {k: ((g - theirs[k]).abs().max() / theirs[k].abs().max().clamp_min(1e-30)).item()
                for k, g in our_grads.items()}
        k_worst = max(rels, key=rels.get)
        diff = torch.cat([(g - theirs[k]).flatten() for k, g in our_grads.items()]).norm()
        rel_l2 = (diff / torch.cat([theirs[k].flatten() for k in our_grads]).norm()).item()
        missing = sorted(set(theirs) & set(dict(objective.networks[net_of[name]].named_parameters())) - set(rels))
        verdict = "ok" if max(rel_loss, rel_l2) <= REL_TOL and not missing else "FAIL"
        if dtype != torch.float64 and not missing:
            verdict = "(info)"
        print(f"  equality {name:<5}: loss {loss.item():.6g} (rel diff {rel_loss:.1e}); {len(rels)} gradients: "
              f"rel L2 {rel_l2:.1e}, worst tensor max|diff|/max {rels[k_worst]:.1e} ({k_worst})"
              f"{'; missing ' + ', '.join(missing) if missing else ''} {verdict}", flush=True)
        worst = max(worst, rel_loss, rel_l2, float("inf") if missing else 0.0)
    return worst


class _Recorder:
    """An optimizer stand-in for the equality check: records the gradients instead of stepping."""

    def __init__(self, out, name, net):
        self.out, self.name, self.net = out, name, net

    def step(self):
        self.out[self.name] = {n: p.grad.detach().clone() for n, p in self.net.named_parameters()
                               if p.requires_grad and p.grad is not None}


# ------------------------------------------------------------------------------------------------- timing
def step_kinds(arch: str) -> list[tuple[int, int]]:
    """(step number, weight in a 16-step cycle): 0 = every phase, 4 = path length without R1, 1 = main only."""
    return [(0, 1), (4, 3), (1, 12)] if arch == "stylegan2" else [(0, 1), (1, 15)]


def time_steps(runs: dict, batches: dict, kinds, repeats: int) -> dict:
    """{name: {step: [seconds]}}: one warm-up of each kind, then rounds interleaving the runs."""
    times = {name: {s: [] for s, _ in kinds} for name in runs}
    for name, fn in runs.items():
        fn(1, batches[name])
    for _ in range(repeats):
        for s, _ in kinds:
            for name, fn in runs.items():
                t0 = time.perf_counter()
                fn(s, batches[name])
                times[name][s].append(time.perf_counter() - t0)
    return times


def mean_step(times: dict, kinds) -> float:
    return sum(statistics.median(times[s]) * w for s, w in kinds) / sum(w for _, w in kinds)


def report(arch: str, times: dict, kinds, batch: int) -> dict:
    out = {}
    for name, t in times.items():
        m = mean_step(t, kinds)
        parts = ", ".join(f"step {s}: {statistics.median(t[s]):.2f} s" for s, _ in kinds)
        print(f"  {name:<9} mean step {m:6.2f} s = {1 / m:.3f} steps/s = {batch / m:5.2f} img/s  ({parts})",
              flush=True)
        out[name] = m
    if "official" in out:
        print(f"  speed-up ours vs official: {out['official'] / out['ours']:.2f}x", flush=True)
    if "ours-bf16" in out:
        print(f"  speed-up ours bf16 autocast vs ours fp32: {out['ours'] / out['ours-bf16']:.2f}x", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this process: {peak:.0f} MB", flush=True)
    print("RESULT " + json.dumps({"arch": arch, "batch": batch, "mean_step_s": out, "peak_rss_mb": peak}), flush=True)
    return out


def bench(arch: str, args) -> None:
    root = args.official_pixelfolder if arch == "pixelfolder" else args.official_stylegan2
    print(f"{arch}-{RESOLUTION}, batch {args.batch}, fp32, 1 thread", flush=True)
    objective = our_objective(arch, args.batch)
    runs, batches = {}, {}
    uint8_batch = torch.randint(0, 256, (args.batch, 3, RESOLUTION, RESOLUTION), dtype=torch.uint8,
                                generator=torch.Generator().manual_seed(args.seed))
    if root:
        G_off, D_off, noise_cls = official_networks(arch, root, args.official_stylegan2 or root, args.official_blur,
                                                    args.seed)
        for dtype in (torch.float64, torch.float32):
            worst = check_equality(arch, G_off, D_off, noise_cls, args.batch, args.seed, dtype)
            verdict = ("ok" if worst <= REL_TOL else "FAIL") if dtype == torch.float64 else "(rounding: information)"
            print(f"  equality in {str(dtype)[6:]}: worst {worst:.1e} {verdict}", flush=True)
        load_official_weights(objective, G_off, D_off)
        runs["official"] = OfficialStep(arch, G_off, D_off, args.batch, noise_cls)
        batches["official"] = uint8_batch.float() / 127.5 - 1
    if args.equality_only:
        return
    runs["ours"] = our_step(objective)
    batches["ours"] = uint8_batch
    if args.bf16:
        runs["ours-bf16"] = our_step(objective, "bf16")
        batches["ours-bf16"] = uint8_batch
    kinds = step_kinds(arch)
    report(arch, time_steps(runs, batches, kinds, args.repeats), kinds, args.batch)
    if args.profile:
        profile(objective, uint8_batch, kinds)


# ------------------------------------------------------------------------------------------------ profile
def profile(objective, uint8_batch, kinds) -> None:
    """Ours: wall time of each phase and of the rest of the step, per step kind (no profiler overhead)."""
    step = our_step(objective)
    for s, _ in kinds:
        with PhaseTimer(objective) as timer:
            t0 = time.perf_counter()
            step(s, uint8_batch)
            total = time.perf_counter() - t0
        parts = ", ".join(f"{k} {v:.3f} s" for k, v in timer.times.items())
        rest = total - sum(v for k, v in timer.times.items() if "(in " not in k)
        print(f"  profile step {s}: {total:.2f} s: {parts}, rest {rest:.3f} s",
              flush=True)


class PhaseTimer:
    """Times each phase's loss (forward), backward and optimizer step through thin wrappers."""

    def __init__(self, objective):
        self.objective, self.times = objective, {}

    def add(self, key, seconds):
        self.times[key] = self.times.get(key, 0.0) + seconds

    def __enter__(self):
        self.saved = [(p, p.loss) for p in self.objective.phases]
        for phase, loss in self.saved:
            phase.loss = self.timed_loss(phase.name, loss)
        self.saved_opts = dict(self.objective.optimizers)
        for name, opt in self.saved_opts.items():
            self.objective.optimizers[name] = _TimedOptimizer(opt, self, f"Adam {name}")
        self.saved_backward = torch.Tensor.backward
        timer = self

        def backward(tensor, *a, **k):
            t0 = time.perf_counter()
            timer.saved_backward(tensor, *a, **k)
            timer.add(f"backward {timer.current}", time.perf_counter() - t0)
        torch.Tensor.backward = backward
        self.saved_words, self.saved_ema = Draws.words, loop.update_ema
        self.saved_reals = self.objective.prepare_reals
        Draws.words = self.timed("randomness (in forward)", Draws.words)
        loop.update_ema = self.timed("EMA", loop.update_ema)
        self.objective.prepare_reals = self.timed("reals", self.saved_reals)
        return self

    def timed(self, key, fn):
        def run(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            self.add(key, time.perf_counter() - t0)
            return out
        return run

    def timed_loss(self, name, loss):
        def run(ctx, indices, reals):
            self.current = name
            t0 = time.perf_counter()
            out = loss(ctx, indices, reals)
            self.add(f"forward {name}", time.perf_counter() - t0)
            return out
        return run

    def __exit__(self, *exc):
        for phase, loss in self.saved:
            phase.loss = loss
        self.objective.optimizers.update(self.saved_opts)
        torch.Tensor.backward = self.saved_backward
        Draws.words, loop.update_ema = self.saved_words, self.saved_ema
        self.objective.prepare_reals = self.saved_reals


class _TimedOptimizer:
    def __init__(self, opt, timer, key):
        self.opt, self.timer, self.key = opt, timer, key

    def step(self):
        t0 = time.perf_counter()
        self.opt.step()
        self.timer.add(self.key, time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------------- main
def scaling(args) -> None:
    """One subprocess per batch (ours only), then the table."""
    rows = []
    for batch in (int(b) for b in args.scaling.split(",")):
        cmd = [sys.executable, __file__, "--models", *args.models, "--batch", str(batch), "--repeats",
               str(args.repeats)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        print(out, end="", flush=True)
        rows += [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
    print("| model | batch | mean step (s) | ms per image | peak RSS (MB) |\n|---|---|---|---|---|")
    for r in rows:
        m = r["mean_step_s"]["ours"]
        print(f"| {r['arch']}-{RESOLUTION} | {r['batch']} | {m:.2f} | {1000 * m / r['batch']:.0f} | "
              f"{r['peak_rss_mb']:.0f} |")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official-pixelfolder", help="exported BlingHe/PixelFolder tree")
    p.add_argument("--official-stylegan2", help="exported rosinality/stylegan2-pytorch tree (also gives `op`)")
    p.add_argument("--official-blur", choices=("depthwise", "native"), default="depthwise",
                   help="the official upfirdn2d on CPU: a depthwise conv (default) or rosinality's native form")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per step kind after one warm-up")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="also time the parts of our step")
    p.add_argument("--equality-only", action="store_true", help="check losses and gradients, time nothing")
    p.add_argument("--bf16", action="store_true", help="also time our step under bf16 autocast (--dtype bf16)")
    p.add_argument("--scaling", help="comma-separated batches: ours only, one fresh process per batch (peak RSS "
                                     "is its own); a table of step time and peak memory")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.official_pixelfolder and not args.official_stylegan2:
        raise SystemExit("--official-pixelfolder needs --official-stylegan2 too (its `op` package runs on CPU)")
    if args.scaling:
        return scaling(args)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, official blur {args.official_blur}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    for arch in args.models:
        bench(arch, args)
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
