"""The training loop: one for every model, driven by its objective (objectives.py) and the objective's phases
(phases.py). Runs unchanged as one CPU process, on one GPU, or on N processes under torchrun (gradients summed
explicitly; rank 0 alone writes)."""
from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import time
from pathlib import Path

import torch

from ..data.images import image_grid
from ..layers.equalized import fp32
from ..errors import PixelfolderError
from ..metrics.cost import peak_rss_mb
from . import distributed as dist_utils
from .objectives import Objective, objective_for_preset
from .options import TrainOptions
from .randomness import chunk_indices
from .rundir import STATE, RunDir, read_state, snapshot_label


STOP_CHECK_EVERY = 8        # steps between the processes' agreement on a signal or time limit (a host sync)


class TrainingDiverged(PixelfolderError):
    pass


@dataclasses.dataclass
class TrainingResult:
    run_dir: Path
    step: int
    G: torch.nn.Module
    D: torch.nn.Module | None
    G_ema: torch.nn.Module


def make_objective(opts: TrainOptions, device) -> tuple[Objective, dict | None]:
    """The objective of the preset's kind with its networks built (fresh, resumed or fine-tuned), and the
    training state `--resume` brings (or None)."""
    state, nets = resume_source(opts)
    return objective_for_preset(opts.preset)(opts, device, resumed=state, finetune=nets), state


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


class BatchProblem(str):
    """What a data-loader worker hands back instead of a batch: the one-line reason training cannot go on."""


class CheckedImages(torch.utils.data.Dataset):
    """A training dataset that does not stop at an unreadable image: items are (image, reasons for the images
    skipped to reach it). An unreadable image is replaced by the next readable one (as `prepare` skips it), and
    a dataset that is gone, or a long run of unreadable images, comes back as a BatchProblem (one line, also
    from a worker process)."""

    MAX_SKIPPED_IN_A_ROW = 64

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        skipped = []
        for k in range(min(len(self), self.MAX_SKIPPED_IN_A_ROW)):
            try:
                return self.dataset[(index + k) % len(self)], tuple(skipped)
            except PixelfolderError as e:
                if not Path(self.dataset.path).exists():
                    return BatchProblem(f"the dataset {self.dataset.path} disappeared during training (moved, "
                                        "deleted or unmounted?)")
                skipped.append(str(e))
        return BatchProblem(f"{self.dataset.path}: {len(skipped)} images in a row are unreadable, from image "
                            f"{index} on (e.g. {skipped[0]})")


class SameSizeCollate:
    """Stack images of the expected (C, H, W) shape; a BatchProblem naming both sizes when one differs."""

    def __init__(self, shape: tuple, path):
        self.shape, self.path = tuple(shape), path

    def __call__(self, items):
        """(batch, reasons for the images skipped), or the BatchProblem that stops training."""
        for item in items:
            if isinstance(item, BatchProblem):
                return item
            if tuple(item[0].shape) != self.shape:
                return BatchProblem(mixed_sizes(self.path, self.shape, tuple(item[0].shape)))
        return torch.stack([image for image, _ in items]), tuple(r for _, skipped in items for r in skipped)


def mixed_sizes(path, shape: tuple, other: tuple) -> str:
    return (f"{path} holds images of different sizes ({shape[2]}x{shape[1]} and {other[2]}x{other[1]} px): pass "
            f"--resolution {shape[1]} to crop and resize them on the fly, or prepare the data at one size "
            "(pixelfolder prepare)")


class SkippedImages:
    """The unreadable images training skipped: each listed once in the run's log, one warning on stderr."""

    def __init__(self, run: RunDir):
        self.run, self.seen = run, set()

    def add(self, reasons) -> None:
        for reason in reasons:
            if reason not in self.seen:
                if not self.seen and self.run.active:
                    print(f"warning: skipping unreadable images (as prepare does); each is listed in "
                          f"{self.run.path / 'log.txt'}", file=sys.stderr)
                self.seen.add(reason)
                self.run.log(f"skipped: {reason}")

    def __len__(self) -> int:
        return len(self.seen)


def next_batch(loader, skipped: SkippedImages | None = None) -> torch.Tensor:
    """The next uint8 batch; a BatchProblem stops training in one line."""
    batch = next(loader)
    if isinstance(batch, BatchProblem):
        raise PixelfolderError(str(batch))
    images, reasons = batch
    if skipped is not None:
        skipped.add(reasons)
    return images


def make_loader(opts, world, local_batch, start_step, resolution: int):
    """(dataset, iterator of uint8 batches); the first image's size must be the network's `resolution`."""
    from torch.utils.data import DataLoader

    from ..data import InfiniteSampler, open_dataset
    # resized on the fly only when --resolution asks for it; otherwise the data must be at the model's size
    dataset = open_dataset(opts.data, resolution=resolution if opts.resolution else None, split=opts.split)
    if dataset.num_images < 2:
        raise PixelfolderError(f"{dataset.path} holds {dataset.num_images} image(s) in the {opts.split!r} split: "
                               "training needs at least 2 (a few thousand to learn from)")
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


class DivergenceWatch:
    """Non-finite losses and gradients, recorded on the device without a host synchronisation (a step never
    waits for the device); `check` (one synchronisation) raises at the first step and phase that went bad."""

    def __init__(self, device):
        self.first_step = torch.full((), -1, dtype=torch.int64, device=device)
        self.first_phase = torch.full((), -1, dtype=torch.int64, device=device)
        self.phase_names: list[str] = []

    def record(self, step: int, phase_name: str, finite: torch.Tensor) -> None:
        if phase_name not in self.phase_names:
            self.phase_names.append(phase_name)
        first = (self.first_step < 0) & ~finite
        self.first_step = torch.where(first, step, self.first_step)
        self.first_phase = torch.where(first, self.phase_names.index(phase_name), self.first_phase)

    def check(self, batch: int) -> None:
        step = int(self.first_step)
        if step >= 0:
            name = self.phase_names[int(self.first_phase)]
            raise TrainingDiverged(f"a {name} loss or gradient became NaN or Inf at kimg {step * batch / 1000:.3f} "
                                   f"(step {step}); the last good state is the training-state.pt of the last "
                                   "snapshot")


def all_finite(tensors: list[torch.Tensor]) -> torch.Tensor:
    """One device boolean: every element of every tensor is finite (max-abs norms propagate NaN and Inf)."""
    if not tensors:
        return torch.ones((), dtype=torch.bool)
    return torch.isfinite(torch.stack(torch._foreach_norm(tensors, float("inf")))).all()


def run_phase(phase, ctx, nets, opt, scaler, reals, world, chunks_per_rank, total, watch=None):
    """Accumulate the phase over this process's chunks, sum gradients over processes, step. Returns (stats,
    sample count) as device tensors; nothing here waits for the device (non-finite values go to `watch`)."""
    params = [p for p in nets[phase.net].parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    stats, samples, losses = {}, 0, []
    for c in range(chunks_per_rank):
        q = c * world.world_size + world.rank          # this chunk's number among all processes' chunks
        indices = chunk_indices(ctx.opts.batch, q, total)
        keep = max(1, int(len(indices) * phase.batch_fraction))
        loss, chunk_stats = phase.loss(ctx, indices[:keep], reals[c::chunks_per_rank][:keep])
        losses.append(loss.detach())
        (scaler.scale(loss) if scaler else loss).mul(1.0 / total).backward()
        for k, v in chunk_stats.items():
            stats[k] = stats.get(k, 0.0) + fp32(v)
        samples += keep
    dist_utils.reduce_grads_(params)
    if watch is not None:
        finite = all_finite(losses + ([] if scaler else [p.grad for p in params]))
        watch.record(ctx.step, phase.name, finite.to(ctx.device))
    (scaler.step(opt), scaler.update()) if scaler else opt.step()
    values = [torch.as_tensor(v, device=ctx.device).reshape(1) for v in stats.values()]
    counts = torch.full((1,), float(samples), device=ctx.device)
    dist_utils.all_reduce_sum_(values + [counts])
    stats = {k: (v / counts)[0] for k, v in zip(stats, values)}
    if phase.after is not None:
        phase.after(ctx, stats)
    return stats, counts[0]


@torch.no_grad()
def update_ema(G_ema, G, beta: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.lerp_(p.detach(), 1.0 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def train_step(objective: Objective, step: int, uint8_batch: torch.Tensor, world, chunks_per_rank: int,
               total_chunks: int, autocast, forwards: dict, scalers: dict,
               watch: DivergenceWatch | None = None) -> dict:
    """One training step: every phase due at `step` (in the objective's order), then the G_ema update.
    Returns the phases' stats (device tensors; no host synchronisation). The loop and tools/bench_train.py both
    run exactly this."""
    reals = objective.prepare_reals(uint8_batch, step, world)
    ctx = objective.context(step, autocast, forwards)
    objective.begin_step(step)
    stats = {}
    for phase in objective.phases:
        if step % phase.interval:
            continue
        objective.before_phase(phase)
        phase_stats, _ = run_phase(phase, ctx, objective.networks, objective.optimizers[phase.net],
                                   scalers.get(phase.net), reals, world, chunks_per_rank, total_chunks, watch)
        stats.update(phase_stats)
    update_ema(objective.G_ema, objective.G, objective.ema_beta(step))
    stats.update(objective.end_step(step))
    return stats


def snapshot(run, opts, objective: Objective, make_state, kimg_now):
    """Grid, network snapshot (G_ema with a fresh w_avg), training state and metrics; rank 0 only."""
    if not run.active:
        return
    G_ema = objective.G_ema
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
        dataset = open_dataset(opts.data, resolution=G_ema.resolution, split=objective.held_out_split)
        for record in compute_records(opts.metrics, G=G_ema, dataset=dataset, num_gen=opts.metric_num_gen,
                                      seed=opts.seed, echo=run.log, progress=opts.progress):
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


def batch_split(opts: TrainOptions, world) -> tuple[int, int, int]:
    """(local batch, chunks per process, chunk size): --batch is global, --batch-gpu accumulates gradients."""
    if opts.batch % world.world_size:
        raise PixelfolderError(f"--batch {opts.batch} is not divisible by the {world.world_size} processes")
    local_batch = opts.batch // world.world_size
    batch_gpu = opts.batch_gpu or local_batch
    if local_batch % batch_gpu:
        raise PixelfolderError(f"--batch {opts.batch} is not divisible by processes ({world.world_size}) x "
                               f"--batch-gpu ({batch_gpu})")
    return local_batch, local_batch // batch_gpu, batch_gpu


def precision(opts: TrainOptions, device):
    """(autocast context factory, {net name: GradScaler or None}) for --dtype."""
    if opts.dtype == "fp16" and device.type != "cuda":
        raise PixelfolderError("--dtype fp16 needs a CUDA device (use bf16 on CPUs)")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(opts.dtype)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    scalers = {n: torch.amp.GradScaler("cuda") for n in "GD"} if opts.dtype == "fp16" else {}
    return autocast, scalers


def compiled_forwards(objective: Objective, opts: TrainOptions) -> dict:
    """What the main phases call: G's synthesis and D, through torch.compile under --compile."""
    G, D = objective.G, objective.networks.get("D")
    forwards = {"G": getattr(G, "synthesis", G)}
    if D is not None:
        forwards["D"] = D
    return {k: torch.compile(f) for k, f in forwards.items()} if opts.compile else forwards


def eta_seconds(opts, kimg: float, sec_per_kimg: float, elapsed_s: float) -> float:
    """The smaller of the --kimg estimate and what is left of --time-limit."""
    eta = max(0.0, (opts.kimg - kimg) * sec_per_kimg)
    if opts.time_limit_min is not None:
        eta = min(eta, max(0.0, opts.time_limit_min * 60 - elapsed_s))
    return eta


def progress_line(opts, stats: dict, kimg: float, sec_per_kimg: float, elapsed_s: float = 0.0) -> str:
    eta = eta_seconds(opts, kimg, sec_per_kimg, elapsed_s)
    return (f"kimg {kimg:9.3f}/{opts.kimg:g}  {1000 / sec_per_kimg:7.1f} img/s  {sec_per_kimg:7.2f} s/kimg  "
            + "  ".join(f"{k} {v:.4f}" for k, v in stats.items()) + f"  ETA {eta / 60:.1f} min")


def _train(opts: TrainOptions, world, device, run: RunDir) -> TrainingResult:
    # ---------------------------------------------------------------- batch split, precision, networks
    local_batch, chunks_per_rank, batch_gpu = batch_split(opts, world)
    total_chunks = chunks_per_rank * world.world_size
    autocast, scalers = precision(opts, device)
    objective, state = make_objective(opts, device)
    G, G_ema = objective.G, objective.G_ema
    nets = objective.networks
    n_params = sum(p.numel() for m in nets.values() if m is not None for p in m.parameters())
    run.check_writable(need_bytes=n_params * 4 * 8 + (50 << 20))
    step = state["step"] if state else 0

    def result() -> TrainingResult:
        return TrainingResult(run.path, step, G, nets.get("D"), G_ema)

    if state and step * opts.batch >= opts.kimg * 1000:
        run.log(f"already trained to kimg {step * opts.batch / 1000:.1f} >= --kimg {opts.kimg:g}: nothing to do")
        run.flush()
        return result()

    # ---------------------------------------------------------------- data, optimizer state, phases
    dataset, loader = make_loader(opts, world, local_batch, step, G.resolution)     # bad data fails early
    if state:
        objective.load_state_dict(state)
    forwards = compiled_forwards(objective, opts)
    run.write_options(opts)
    run.log(f"{'resuming' if state else 'starting'} {opts.preset} ({G.resolution} px) on {opts.data} "
            f"({len(dataset)} images), batch {opts.batch} = {world.world_size} process(es) x {chunks_per_rank} x "
            f"{batch_gpu}, {device}, {opts.dtype}; step {step}, kimg {step * opts.batch / 1000:.1f}")
    if opts.resolution and dataset.stored_size != (G.resolution, G.resolution):
        w, h = dataset.stored_size
        run.log(f"note: {dataset.path} holds {w}x{h} px images (image 0): they are center-cropped and resized to "
                f"{G.resolution} px on the fly (prepare the data at {G.resolution} px to save the time)")
    stop = {"signal": None}
    handlers = {s: signal.signal(s, lambda num, _: stop.update(signal=num)) for s in (signal.SIGINT, signal.SIGTERM)}

    def current_state():
        return {"options": dataclasses.asdict(opts), "step": step, "nimg": step * opts.batch,
                **objective.state_dict()}

    start_time = tick_time = time.time()
    tick_step, stats = step, {}
    watch = DivergenceWatch(device)
    skipped = SkippedImages(run)
    if state is None:
        snapshot(run, opts, objective, current_state, 0.0)
    try:
        while True:
            # ------------------------------------------------------------ one step: every phase, then EMA
            try:
                reals = next_batch(loader, skipped)
            except PixelfolderError as e:
                raise PixelfolderError(f"{e}: training stopped at kimg {step * opts.batch / 1000:.3f}; the last "
                                       f"snapshot and state in {opts.run_dir} are intact: restore the data, then "
                                       "continue with --resume auto") from None
            stats.update(train_step(objective, step, reals, world, chunks_per_rank, total_chunks,
                                    autocast, forwards, scalers, watch))

            # ------------------------------------------------------------ end of step: counters
            step += 1
            kimg = step * opts.batch / 1000
            done = kimg >= opts.kimg
            timed_out = opts.time_limit_min is not None and time.time() - start_time >= opts.time_limit_min * 60
            # every process must agree to stop: one tiny all-reduce, every STOP_CHECK_EVERY steps when distributed
            check_stop = done or step % STOP_CHECK_EVERY == 0 or not dist_utils.is_distributed()
            stopping = check_stop and dist_utils.any_flag(stop["signal"] is not None or timed_out, device)

            # ------------------------------------------------------------ progress and stats
            snap_now = int(kimg / opts.snap_kimg) > int((step - 1) * opts.batch / 1000 / opts.snap_kimg)
            tick = time.time() - tick_time >= 20 or done or stopping or step == 1
            if tick or snap_now:
                watch.check(opts.batch)        # the one wait for the device: before anything is logged or saved
            if tick:
                stats = {k: float(v) for k, v in stats.items()}
                now = time.time()
                sec_per_kimg = (now - tick_time) / max((step - tick_step) * opts.batch / 1000, 1e-9)
                record = {"step": step, "kimg": kimg, "sec_per_kimg": sec_per_kimg,
                          "img_per_s": 1000 / sec_per_kimg, "time_s": now - start_time, "peak_rss_mb": peak_rss_mb(),
                          "skipped_images": len(skipped),
                          **{k: round(v, 6) for k, v in stats.items()}}
                if device.type == "cuda":
                    record["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
                run.log(progress_line(opts, stats, kimg, sec_per_kimg, now - start_time),
                        echo=opts.progress is not False)
                run.add_stats(record)
                run.flush()
                tick_time, tick_step = now, step

            # ------------------------------------------------------------ snapshots and stopping
            if snap_now or done or stopping:
                snapshot(run, opts, objective, current_state, kimg)
                run.flush()
            if done or stopping:
                why = "reached --kimg" if done else ("time limit" if timed_out else "signal")
                run.log(f"stopped ({why}) at kimg {kimg:.3f}, step {step}"
                        + (f"; skipped {len(skipped)} unreadable image(s), listed above" if len(skipped) else ""))
                run.flush()
                return result()
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        run.flush()
