"""Training options: one frozen dataclass; `resolve` fills the unset ones from the preset's recipe (registry)."""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from ..data.emoji import DEMO_DATASET, is_demo_dataset
from ..errors import PixelfolderError

DEFAULT_MODEL = "pixelfolder"      # the architecture `train` picks without --model or --preset

DTYPES = ("fp32", "bf16", "fp16")
AUGMENTS = ("none", "diffaug")


@dataclass(frozen=True)
class TrainOptions:
    preset: str | None = None      # what trains (the one truth); default: model's preset for the data (default_preset)
    model: str | None = None       # sugar for a preset: an architecture (`pixelfolder models`; default pixelfolder);
                                   # after resolve, always the preset's architecture
    resolution: int | None = None  # px; default: the preset's (the demo dataset: 32)
    data: str = DEMO_DATASET       # dataset path, or the embedded demo set (data/emoji.py)
    run_dir: str | None = None     # the run directory (`--outdir`)
    batch: int | None = None       # global batch, images; default: recipe
    batch_gpu: int | None = None   # images per process per forward (gradient accumulation below batch/world)
    kimg: float = 25_000.0         # training length, thousands of real images shown to D
    time_limit_min: float | None = None  # stop (with a final snapshot) after this many minutes
    gamma: float | None = None     # R1 weight; default: recipe
    r1_every: int | None = None    # steps between R1 steps; default: recipe
    pl_weight: float | None = None  # path-length weight; default: recipe
    pl_every: int | None = None    # steps between path-length steps; default: recipe
    mixing: float | None = None    # style-mixing probability; default: recipe
    ema_kimg: float | None = None  # G_ema half-life, kimg; default: recipe
    glr: float | None = None       # G learning rate before lazy rescaling; default: recipe
    dlr: float | None = None       # D learning rate before lazy rescaling; default: recipe
    mirror: bool | None = None     # x-flip augmentation of reals; default: recipe
    augment: str = "none"          # "none" or "diffaug" (colour, translation, cutout on reals and fakes)
    snap_kimg: float = 50.0        # kimg between snapshots (grid, network, training state)
    metrics: tuple = ()            # metric names computed at each snapshot (e.g. fid50k_full)
    metric_num_gen: int | None = None  # generated images per metric at snapshots (default: the metric's, 50k)
    resume: str | None = None      # None, "auto", a training state / run directory, or any network spec
    params: str | None = None      # PixelPyramids: the official params json of a --resume checkpoint
    seed: int = 0                  # master seed: every random draw is keyed by (seed, step, phase, sample)
    dtype: str = "fp32"            # fp32, bf16 (autocast) or fp16 (autocast + loss scaling, CUDA only)
    compile: bool = False          # torch.compile G and D for the main phases
    workers: int = 2               # data-loader worker processes
    grid_seeds: int = 16           # number of fixed seeds in the fakes grids
    device: str = "auto"           # cpu, cuda or auto
    tensorboard: bool = False      # also log the stats for TensorBoard (optional extra)
    levels: tuple = ()             # likelihood models: indices of the levels to train (empty = all, jointly)
    split: str | None = None       # training images: all or train (every 10th held out); default: likelihood
                                   # models train, GANs all. Snapshot bpd uses the held-out test split


def default_preset(model: str, data: str, resolution: int | None) -> str:
    """<model>-tiny for the demo dataset at 32 px, else <model>-<resolution or 256>."""
    if is_demo_dataset(data) and resolution in (None, 32):
        return f"{model}-tiny"
    return f"{model}-{resolution or 256}"


def training_preset(opts: TrainOptions) -> str:
    """The preset a run trains: --preset (checked against --model), else --model's default preset."""
    from .. import registry
    trainable = registry.trainable_architectures()
    if opts.model is not None and opts.model not in trainable:
        raise PixelfolderError(f"no training recipe for {opts.model!r}; known: {', '.join(trainable)}")
    if opts.preset is None:
        return default_preset(opts.model or DEFAULT_MODEL, opts.data, opts.resolution)
    arch = registry.preset(opts.preset).arch
    if arch not in trainable:
        raise PixelfolderError(f"no training recipe for {opts.preset!r} ({arch}); known: {', '.join(trainable)}")
    if opts.model is not None and opts.model != arch:
        raise PixelfolderError(f"--model {opts.model} and --preset {opts.preset} (a {arch} preset) disagree: "
                               "give one of them")
    return opts.preset


def preset_resolution(preset: str) -> int:
    """The resolution a (registered) preset builds: its config's resolution, or height for PixelPyramids'."""
    from .. import registry
    _, config = registry.resolve_config(preset)
    return int(getattr(config, "resolution", None) or config.height)


def recipe_values(opts: TrainOptions, preset: str) -> dict:
    """The values the preset's recipe (and its objective) give to every recipe-backed option."""
    from .. import registry
    from .objectives import objective_for_preset
    r = registry.architecture(registry.preset(preset).arch).recipe
    return {
        "batch": r.batch, "gamma": r.gamma_for(opts.resolution or preset_resolution(preset)),
        "r1_every": r.r1_every, "pl_weight": r.pl_weight, "pl_every": r.g_reg_every, "mixing": r.mixing,
        "ema_kimg": r.ema_kimg, "glr": r.lr, "dlr": r.lr, "mirror": r.mirror,
        "split": objective_for_preset(preset).train_split,
    }


def option_sources(given: TrainOptions, demo: tuple = ()) -> dict:
    """Where each recipe-backed option of `given` (unresolved) comes from: given, the demo's, the recipe's, or
    (preset, split) the default rule and the training objective."""
    from .. import registry
    from .objectives import objective_for_preset
    preset = training_preset(given)
    recipe = registry.architecture(registry.preset(preset).arch).recipe
    derived = {"preset": f"default (--model {given.model or DEFAULT_MODEL} on this data: {preset})",
               "split": f"objective ({objective_for_preset(preset).__name__})"}
    return {name: "demo" if name in demo else "given" if getattr(given, name) is not None
            else derived.get(name, f"recipe ({recipe.source or preset})")
            for name in ("preset", *recipe_values(given, preset))}


def resolve(opts: TrainOptions) -> TrainOptions:
    """Fill every None with the preset's recipe and check the combination."""
    if opts.dtype not in DTYPES:
        raise PixelfolderError(f"--dtype must be one of {DTYPES}")
    if opts.augment not in AUGMENTS:
        raise PixelfolderError(f"--augment must be one of {AUGMENTS}")
    check_values(opts)                         # the given values, before anything imports torch
    from .. import registry
    from .objectives import objective_for_preset
    preset = training_preset(opts)
    fill = recipe_values(opts, preset)
    opts = dataclasses.replace(opts, **{k: v for k, v in fill.items() if getattr(opts, k) is None},
                               preset=preset, model=registry.preset(preset).arch)
    check_values(opts)
    if opts.batch < 1 or (opts.batch_gpu is not None and opts.batch_gpu < 1):
        raise PixelfolderError("--batch and --batch-gpu must be >= 1")
    if opts.split not in ("all", "train"):
        raise PixelfolderError("--split must be all or train (the test split is held out for evaluation)")
    objective_for_preset(preset).check_options(opts)
    if opts.kimg <= 0 or opts.snap_kimg <= 0:
        raise PixelfolderError("--kimg and --snap must be > 0")
    if not 0.0 <= opts.mixing <= 1.0:
        raise PixelfolderError("--mixing must be a probability in [0, 1]")
    return opts


SEED_LIMIT = 2 ** 63
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
# option -> (smallest allowed, whether the smallest is excluded); every float must also be finite
RANGES = {"kimg": (0, True), "snap_kimg": (0, True), "time_limit_min": (0, True), "gamma": (0, False),
          "pl_weight": (0, False), "ema_kimg": (0, False), "glr": (0, True), "dlr": (0, True),
          "mixing": (0, False), "r1_every": (1, False), "pl_every": (1, False), "workers": (0, False),
          "batch": (1, False), "batch_gpu": (1, False), "metric_num_gen": (1, False), "resolution": (1, False),
          "grid_seeds": (1, False), "seed": (0, False)}


def _flag(name: str) -> str:
    return "--" + {"snap_kimg": "snap", "time_limit_min": "time-limit"}.get(name, name).replace("_", "-")


def check_values(opts: TrainOptions) -> None:
    """Every numeric option finite, of the right type and in range; the device one that exists in torch's naming."""
    for name, (low, exclusive) in RANGES.items():
        value = getattr(opts, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PixelfolderError(f"{_flag(name)} must be a number, got {value!r}")
        if not math.isfinite(value) or value < low or (exclusive and value == low):
            raise PixelfolderError(f"{_flag(name)} must be a finite number {'>' if exclusive else '>='} {low}, "
                                   f"got {value}")
    for name in ("r1_every", "pl_every", "workers", "batch", "batch_gpu", "metric_num_gen", "resolution", "seed"):
        value = getattr(opts, name)
        if value is not None and int(value) != value:
            raise PixelfolderError(f"{_flag(name)} must be a whole number, got {value}")
    if opts.seed >= SEED_LIMIT:
        raise PixelfolderError(f"--seed must be below 2**63, got {opts.seed}")
    if not DEVICE.fullmatch(str(opts.device)):
        raise PixelfolderError(f"--device must be auto, cpu, cuda or cuda:N, got {opts.device!r}")


def lazy_adam(lr: float, interval: int) -> tuple[float, tuple[float, float]]:
    """Lazy-regularisation rescaling of Adam (StyleGAN2): lr * c and beta2 = 0.99 ** c, c = k / (k + 1)."""
    c = interval / (interval + 1)
    return lr * c, (0.0, 0.99 ** c)


def ema_beta(batch: int, ema_kimg: float) -> float:
    """Per-step EMA decay for a half-life of ema_kimg thousand images at this global batch (0: no averaging)."""
    return 0.5 ** (batch / (ema_kimg * 1000.0)) if ema_kimg > 0 else 0.0
