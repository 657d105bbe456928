"""The training loop: one for every GAN, driven by phases (see phases.py). Runs unchanged as one CPU process,
on one GPU, or on N processes under torchrun (gradients summed explicitly; rank 0 alone writes)."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import signal
import time
from pathlib import Path

import torch

from .. import registry
from ..checkpoint import to_record
from ..data.images import image_grid
from ..errors import PixelfolderError
from ..metrics.cost import peak_rss_mb
from . import distributed as dist_utils
from .options import RECIPES, TrainOptions, ema_beta, lazy_adam
from .phases import Context, build_phases
from .randomness import chunk_indices, generators, rand
from .rundir import STATE, RunDir, model_from, read_state, snapshot_label


class TrainingDiverged(PixelfolderError):
    pass


@dataclasses.dataclass
class TrainingResult:
    run_dir: Path
    step: int
    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module


def build_networks(opts: TrainOptions, device):
    """G, D, G_ema, and what `opts.resume` brings (a training state dict or None)."""
    overrides = {"resolution": opts.resolution} if opts.resolution else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(opts.seed)          # initial weights depend on the seed only
        G = registry.create(opts.preset, **overrides)
        D = None if G.kind == "likelihood" else registry.create(
            "stylegan2_d-tiny" if opts.preset.endswith("-tiny") else "stylegan2_d", resolution=G.resolution)
    state, nets = resume_source(opts)
    if state is not None:
        fresh = G
        G, D = model_from(state["G"]), state["D"] and model_from(state["D"])
        G_ema = model_from(state["G_ema"]).eval()
        check_resumed(opts, fresh, G)
    else:
        fresh = G
        G_ema = copy.deepcopy(G).eval()
        if nets:
            G, D, G_ema = finetuning_networks(nets, G, D)
            check_resumed(opts, fresh, G)
    D = D and D.to(device).train()
    return G.to(device).train(), D, G_ema.to(device).requires_grad_(False), state


def freeze_unselected_levels(G, levels) -> None:
    """Likelihood models with --levels: only the selected levels train; the others get requires_grad False."""
    n = len(G.levels)
    bad = [i for i in levels if not -n <= i < n]
    if bad:
        raise PixelfolderError(f"--levels {bad} out of range: {G.arch} has levels 0..{n - 1} (0 = finest)")
    G.requires_grad_(False)
    for i in levels:
        G.levels[i].requires_grad_(True)


def make_optimizers(G, D, opts):
    """Adam for G (and D) with the recipe's betas, or StyleGAN2's lazily rescaled (0, 0.99).

    Likelihood models: Adam holds every level (frozen levels get no gradient, so Adam leaves them alone), so a run
    can resume with other --levels.
    """
    recipe = RECIPES[opts.model]
    if recipe.betas:
        return torch.optim.Adam(G.parameters(), lr=opts.glr, betas=recipe.betas, eps=1e-8), None
    g_lr, g_betas = lazy_adam(opts.glr, opts.pl_every)
    d_lr, d_betas = lazy_adam(opts.dlr, opts.r1_every)
    return (torch.optim.Adam(G.parameters(), lr=g_lr, betas=g_betas, eps=1e-8),
            torch.optim.Adam(D.parameters(), lr=d_lr, betas=d_betas, eps=1e-8))


def set_decayed_lr(opt, base_lr: float, decay: float, step: int) -> None:
    """Per-step exponential decay (PixelPyramids' ExponentialLR), a function of the step alone: resume-exact."""
    if decay != 1.0:
        for group in opt.param_groups:
            group["lr"] = base_lr * decay ** step


def resume_source(opts: TrainOptions):
    """(training state or None, {name: network} or None) for --resume: 'auto' (this run's state, if any), a
    training state or run directory (exact resume), or any network pixelfolder.load opens (fine-tuning)."""
    from ..networks import open_spec
    if not opts.resume:
        return None, None
    if opts.resume == "auto":
        return read_state(opts.run_dir), None
    spec = opts.resume
    if Path(spec).is_dir() and (Path(spec) / STATE).is_file():
        spec = str(Path(spec) / STATE)
    opened = open_spec(spec, params=opts.params)
    if opened.format == "training-state":
        return opened.record, None
    return None, opened.all()


def check_resumed(opts: TrainOptions, fresh, resumed) -> None:
    """Refuse to train a resumed network under another architecture's preset or at another resolution."""
    what = f"--resume {opts.resume if opts.resume != 'auto' else opts.run_dir}"
    if resumed.arch != fresh.arch:
        raise PixelfolderError(f"{what} holds a {resumed.arch} network, but this run trains {opts.preset} "
                               f"({fresh.arch}): pass --model/--preset for {resumed.arch}")
    if getattr(resumed, "resolution", None) != getattr(fresh, "resolution", None):
        raise PixelfolderError(f"{what} holds a {resumed.resolution} px {resumed.arch}, but this run trains at "
                               f"{fresh.resolution} px: pass --resolution {resumed.resolution}")


def finetuning_networks(nets: dict, G, D):
    """G, D, G_ema from a checkpoint's networks (g, d, g_ema as present; the others stay freshly built)."""
    G_new = nets.get("g", nets.get("g_ema", G))
    G_ema = nets.get("g_ema", G_new)
    if G_ema is G_new:
        G_ema = copy.deepcopy(G_new)
    D_new = nets.get("d", D)
    return G_new.train(), D_new and D_new.train(), G_ema.eval()


class BatchProblem(str):
    """What a data-loader worker hands back instead of a batch: the one-line reason training cannot go on."""


class CheckedImages(torch.utils.data.Dataset):
    """A training dataset whose unreadable images come back as a BatchProblem (one line also from a worker)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        try:
            return self.dataset[index]
        except PixelfolderError as e:
            return BatchProblem(str(e))


class SameSizeCollate:
    """Stack images of the expected (C, H, W) shape; a BatchProblem naming both sizes when one differs."""

    def __init__(self, shape: tuple, path):
        self.shape, self.path = tuple(shape), path

    def __call__(self, items):
        for item in items:
            if isinstance(item, BatchProblem):
                return item
            if tuple(item.shape) != self.shape:
                return BatchProblem(mixed_sizes(self.path, self.shape, tuple(item.shape)))
        return torch.stack(items)


def mixed_sizes(path, shape: tuple, other: tuple) -> str:
    return (f"{path} holds images of different sizes ({shape[2]}x{shape[1]} and {other[2]}x{other[1]} px): pass "
            f"--resolution {shape[1]} to crop and resize them on the fly, or prepare the data at one size "
            "(pixelfolder prepare)")


def next_batch(loader) -> torch.Tensor:
    batch = next(loader)
    if isinstance(batch, BatchProblem):
        raise PixelfolderError(str(batch))
    return batch


def make_loader(opts, world, local_batch, start_step, resolution: int):
    """(dataset, iterator of uint8 batches); the first image's size must be the network's `resolution`."""
    from torch.utils.data import DataLoader

    from ..data import InfiniteSampler, open_dataset
    dataset = open_dataset(opts.data, resolution=opts.resolution, split=opts.split)
    shape = dataset.image_shape
    if shape[1:] != (resolution, resolution):
        raise PixelfolderError(f"{dataset.path} holds {shape[2]}x{shape[1]} px images (image 0), but {opts.preset} "
                               f"trains at {resolution}x{resolution} px: pass --resolution {resolution} to resize "
                               f"them on the fly, or prepare the data at {resolution} px")
    sampler = InfiniteSampler(len(dataset), seed=opts.seed, rank=world.rank, world_size=world.world_size,
                              start=start_step * local_batch)
    loader = DataLoader(CheckedImages(dataset), batch_size=local_batch, sampler=sampler, num_workers=opts.workers,
                        collate_fn=SameSizeCollate(shape, dataset.path), pin_memory=torch.cuda.is_available(),
                        persistent_workers=opts.workers > 0)
    return dataset, iter(loader)


def real_batch(opts, world, step, uint8_images, device, as_uint8: bool = False) -> torch.Tensor:
    """Float reals in [-1, 1] (or uint8 for likelihood models) with keyed per-sample x-flips; local sample i is
    global index i*world + rank."""
    x = uint8_images.to(device) if as_uint8 else uint8_images.to(device).float() / 127.5 - 1
    if opts.mirror:
        idx = [i * world.world_size + world.rank for i in range(len(x))]
        flip = rand(generators(opts.seed, step, "flip", idx), 1).view(-1) < 0.5
        x = torch.where(flip.to(device).view(-1, 1, 1, 1), x.flip(3), x)
    return x


def run_phase(phase, ctx, nets, opt, scaler, reals, world, chunks_per_rank, total):
    """Accumulate the phase over this process's chunks, sum gradients over processes, step. Returns stats."""
    params = [p for p in nets[phase.net].parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    stats, samples = {}, 0
    for c in range(chunks_per_rank):
        q = c * world.world_size + world.rank          # this chunk's number among all processes' chunks
        indices = chunk_indices(ctx.opts.batch, q, total)
        local = list(range(c, len(reals), chunks_per_rank))
        keep = max(1, int(len(indices) * phase.batch_fraction))
        loss, chunk_stats = phase.loss(ctx, indices[:keep], reals[local[:keep]])
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"the {phase.name} loss became {loss.item()}")
        (scaler.scale(loss) if scaler else loss).mul(1.0 / total).backward()
        for k, v in chunk_stats.items():
            stats[k] = stats.get(k, 0.0) + v.float()
        samples += keep
    dist_utils.reduce_grads_(params)
    if scaler is None and not all(torch.isfinite(p.grad).all() for p in params):
        raise TrainingDiverged(f"a {phase.name} gradient became NaN or Inf")
    (scaler.step(opt), scaler.update()) if scaler else opt.step()
    values = [torch.as_tensor(v, device=ctx.device).reshape(1) for v in stats.values()]
    counts = torch.tensor([float(samples)], device=ctx.device)
    dist_utils.all_reduce_sum_(values + [counts])
    return {k: (v / counts).item() for k, v in zip(stats, values)}, counts.item()


@torch.no_grad()
def update_ema(G_ema, G, beta: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.lerp_(p.detach(), 1.0 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def snapshot(run, opts, G_ema, make_state, kimg_now):
    """Grid, network snapshot (G_ema with a fresh w_avg) and training state; rank 0 only."""
    if not run.active:
        return
    state = make_state()
    if hasattr(G_ema, "mapping"):
        G_ema.mapping.compute_w_avg()
    grid = image_grid(G_ema.sample(list(range(opts.grid_seeds)), batch_size=8))
    label = snapshot_label(state["nimg"])          # one name per snapshot, also for fractional --snap
    run.save_grid(grid, label)
    meta = {"kimg": kimg_now, "step": state["step"], "training_options": dataclasses.asdict(opts)}
    path = run.save_network(G_ema, label, meta)
    run.save_state(state)
    run.log(f"snapshot at kimg {kimg_now:.3f}: {path.name}, training-state.pt")
    if opts.metrics:
        from ..data import open_dataset
        from ..metrics import compute_records, write_jsonl
        held_out = "test" if G_ema.kind == "likelihood" else "all"
        dataset = open_dataset(opts.data, resolution=G_ema.resolution, split=held_out)
        for record in compute_records(opts.metrics, G=G_ema, dataset=dataset, num_gen=opts.metric_num_gen,
                                      seed=opts.seed, echo=run.log):
            write_jsonl(record, run.path, network=path.name, kimg=kimg_now)
            run.log("  " + "  ".join(f"{k}: {v:.4f}" for k, v in record.results.items()
                                     if isinstance(v, float)))


def training_loop(opts: TrainOptions) -> TrainingResult:
    world, device = dist_utils.init(opts.device)
    run = RunDir(opts.run_dir, active=world.is_main, tensorboard=opts.tensorboard)   # locks the directory
    try:
        return _train(opts, world, device, run)
    finally:
        run.close()


def _train(opts: TrainOptions, world, device, run: RunDir) -> TrainingResult:
    if opts.batch % world.world_size:
        raise PixelfolderError(f"--batch {opts.batch} is not divisible by the {world.world_size} processes")
    local_batch = opts.batch // world.world_size
    batch_gpu = opts.batch_gpu or local_batch
    if local_batch % batch_gpu:
        raise PixelfolderError(f"--batch {opts.batch} is not divisible by processes ({world.world_size}) x "
                               f"--batch-gpu ({batch_gpu})")
    chunks_per_rank = local_batch // batch_gpu
    total_chunks = chunks_per_rank * world.world_size
    if opts.dtype == "fp16" and device.type != "cuda":
        raise PixelfolderError("--dtype fp16 needs a CUDA device (use bf16 on CPUs)")
    G, D, G_ema, state = build_networks(opts, device)
    likelihood = G.kind == "likelihood"
    n_params = sum(p.numel() for m in (G, D) if m is not None for p in m.parameters())
    run.check_writable(need_bytes=n_params * 4 * 8 + (50 << 20))
    step = state["step"] if state else 0
    if state and step * opts.batch >= opts.kimg * 1000:
        run.log(f"already trained to kimg {step * opts.batch / 1000:.1f} >= --kimg {opts.kimg:g}: nothing to do")
        run.flush()
        return TrainingResult(run.path, step, G, D, G_ema)
    dataset, loader = make_loader(opts, world, local_batch, step, G.resolution)     # bad data fails early
    if opts.levels:
        freeze_unselected_levels(G, opts.levels)
    opt_G, opt_D = make_optimizers(G, D, opts)
    pl_mean = torch.zeros((), device=device)
    if state:
        opt_G.load_state_dict(state["opt_G"])
        if opt_D is not None:
            opt_D.load_state_dict(state["opt_D"])
        pl_mean.fill_(state["pl_mean"])
    scalers = ({n: torch.amp.GradScaler("cuda") for n in "GD"} if opts.dtype == "fp16"
               else {"G": None, "D": None})
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(opts.dtype)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    G_synthesis = getattr(G, "synthesis", G)
    G_synthesis = torch.compile(G_synthesis) if opts.compile else G_synthesis
    D_forward = torch.compile(D) if opts.compile and D is not None else D
    phases, beta = build_phases(opts, G.kind), ema_beta(opts.batch, opts.ema_kimg)
    lr_decay = RECIPES[opts.model].lr_decay
    run.write_options(opts)
    run.log(f"{'resuming' if state else 'starting'} {opts.preset} ({G.resolution} px) on {opts.data} "
            f"({len(dataset)} images), batch {opts.batch} = {world.world_size} process(es) x {chunks_per_rank} x "
            f"{batch_gpu}, {device}, {opts.dtype}; step {step}, kimg {step * opts.batch / 1000:.1f}")
    stop = {"signal": None}
    handlers = {s: signal.signal(s, lambda num, _: stop.update(signal=num)) for s in (signal.SIGINT, signal.SIGTERM)}

    def current_state():
        return {"options": dataclasses.asdict(opts), "step": step, "nimg": step * opts.batch,
                "G": to_record(G), "D": D and to_record(D), "G_ema": to_record(G_ema),
                "opt_G": opt_G.state_dict(), "opt_D": opt_D and opt_D.state_dict(), "pl_mean": float(pl_mean)}

    start_time = tick_time = time.time()
    tick_step, stats = step, {}
    if state is None:
        snapshot(run, opts, G_ema, current_state, 0.0)
    try:
        while True:
            reals = real_batch(opts, world, step, next_batch(loader), device, as_uint8=likelihood)
            ctx = Context(G, D, G_synthesis, D_forward, opts, step, device, autocast, pl_mean)
            nets, optims = {"G": G, "D": D}, {"G": opt_G, "D": opt_D}
            set_decayed_lr(opt_G, opts.glr, lr_decay, step)
            for phase in phases:
                if step % phase.interval:
                    continue
                if not likelihood:
                    D.requires_grad_(phase.net == "D")
                    G.requires_grad_(phase.net == "G")
                try:
                    phase_stats, _ = run_phase(phase, ctx, nets, optims[phase.net], scalers[phase.net], reals,
                                               world, chunks_per_rank, total_chunks)
                except TrainingDiverged as e:
                    raise TrainingDiverged(f"{e} at kimg {step * opts.batch / 1000:.3f} (step {step}); the last "
                                           "good state is the training-state.pt of the last snapshot") from None
                stats.update(phase_stats)
                if phase.name == "Greg":
                    pl_mean.lerp_(torch.tensor(phase_stats["pl_length"], device=device), 0.01)
            update_ema(G_ema, G, beta)
            step += 1
            kimg = step * opts.batch / 1000
            done = kimg >= opts.kimg
            timed_out = opts.time_limit_min is not None and time.time() - start_time >= opts.time_limit_min * 60
            stopping = dist_utils.any_flag(stop["signal"] is not None or timed_out, device)
            if time.time() - tick_time >= 20 or done or stopping or step == 1:
                now = time.time()
                sec_per_kimg = (now - tick_time) / max((step - tick_step) * opts.batch / 1000, 1e-9)
                record = {"step": step, "kimg": kimg, "sec_per_kimg": sec_per_kimg,
                          "img_per_s": 1000 / sec_per_kimg, "time_s": now - start_time, "peak_rss_mb": peak_rss_mb(),
                          **{k: round(v, 6) for k, v in stats.items()}}
                if device.type == "cuda":
                    record["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
                eta = (opts.kimg - kimg) * sec_per_kimg
                run.log(f"kimg {kimg:9.3f}/{opts.kimg:g}  {record['img_per_s']:7.1f} img/s  "
                        f"{sec_per_kimg:7.2f} s/kimg  " + "  ".join(f"{k} {v:.4f}" for k, v in stats.items())
                        + f"  ETA {eta / 60:.1f} min")
                run.add_stats(record)
                run.flush()
                tick_time, tick_step = now, step
            snap_now = int(kimg / opts.snap_kimg) > int((step - 1) * opts.batch / 1000 / opts.snap_kimg)
            if snap_now or done or stopping:
                snapshot(run, opts, G_ema, current_state, kimg)
                run.flush()
            if done or stopping:
                why = "reached --kimg" if done else ("time limit" if timed_out else "signal")
                run.log(f"stopped ({why}) at kimg {kimg:.3f}, step {step}")
                run.flush()
                return TrainingResult(run.path, step, G, D, G_ema)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        run.flush()
