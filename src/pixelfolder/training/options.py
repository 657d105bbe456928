"""Training options: one frozen dataclass, with per-model defaults (the official recipes) filled in."""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from ..errors import PixelfolderError

DTYPES = ("fp32", "bf16", "fp16")
AUGMENTS = ("none", "diffaug")


@dataclass(frozen=True)
class Recipe:
    """An official recipe. Learning rates are the base ones; lazy regularisation rescales them (see lazy_adam)."""
    lr: float = 0.002           # base Adam learning rate for G and D
    gamma: float = 10.0         # R1 weight
    r1_every: int = 16          # D regularisation interval, steps
    pl_weight: float = 0.0      # path-length weight (0 = off)
    g_reg_every: int = 4        # G regularisation interval, steps (also sets G's lazy Adam rescaling)
    mixing: float = 0.0         # style-mixing probability per sample
    ema_kimg: float = 20.0      # G_ema half-life, kimg (official: 0.5 ** (32 / 10000) per step at batch 64)
    batch: int = 64             # global batch, images (official: 8 GPUs x 8)
    mirror: bool = True         # random x-flips of the real images
    gamma_by_resolution: tuple = ()  # ((px, gamma), ...): R1 weight by resolution (nearest entry), overrides gamma
    betas: tuple = ()           # Adam betas; empty = StyleGAN2's (0, 0.99) with lazy-regularisation rescaling
    lr_decay: float = 1.0       # learning rate multiplied by this every step (likelihood models: 0.999995)

    def gamma_for(self, resolution: int) -> float:
        if not self.gamma_by_resolution:
            return self.gamma
        return min(self.gamma_by_resolution, key=lambda rg: abs(math.log2(rg[0] / resolution)))[1]


RECIPES = {
    "pixelfolder": Recipe(),    # BlingHe/PixelFolder train.sh: no path length, no mixing
    "cips_skip": Recipe(),      # saic-mdal/CIPS: same loop
    "cips_res": Recipe(),
    "stylegan2": Recipe(pl_weight=2.0, mixing=0.9),   # rosinality stylegan2-pytorch defaults
    # universome/inr-gan (configs/inr-gan.yml, 4 GPUs x 16): lr 0.0025, R1 10, no PL, no mixing, ema batch*10/32 kimg
    "inrgan": Recipe(lr=0.0025, ema_kimg=20.0),
    "inrgan_bil": Recipe(lr=0.0025, ema_kimg=20.0),
    # VinAIResearch/CREPS --cfg=creps: batch 32, lr 0.002, PL 2; gamma from the docs by resolution; ema 10 kimg.
    # ADA is not implemented (use --augment diffaug or none); --mirror on as in the README examples.
    "creps": Recipe(pl_weight=2.0, ema_kimg=10.0, batch=32,
                    gamma_by_resolution=((256, 2.0), (512, 8.0), (1024, 32.0))),
    # visinf/pixelpyramids main.py/optim.py: one NLL phase, Adam 5e-4 (0.95, 0.9995), x0.999995 per step, batch 48,
    # no augmentation; no EMA (the official Polyak average is never used).
    "pixelpyramids": Recipe(lr=5e-4, gamma=0.0, ema_kimg=0.0, batch=48, mirror=False, betas=(0.95, 0.9995),
                            lr_decay=0.999995),
}


@dataclass(frozen=True)
class TrainOptions:
    model: str = "pixelfolder"     # architecture (pixelfolder, cips_skip, cips_res, stylegan2, inrgan, inrgan_bil,
                                   # creps, pixelpyramids)
    preset: str | None = None      # preset name; default: "<model>-tiny" for the emoji demo, else "<model>-<res>"
    resolution: int | None = None  # px; default: the preset's (emoji: 32)
    data: str = "emoji"            # dataset path or "emoji" (the embedded Twemoji set)
    outdir: str = "runs"           # parent directory; each run gets its own numbered subdirectory
    run_dir: str | None = None     # exact run directory (set when resuming), overrides outdir numbering
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


def default_preset(opts: TrainOptions) -> str:
    """<model>-tiny for the emoji demo at 32 px, else <model>-<resolution or 256>."""
    if opts.data == "emoji" and opts.resolution in (None, 32):
        return f"{opts.model}-tiny"
    return f"{opts.model}-{opts.resolution or 256}"


def preset_resolution(preset: str) -> int:
    """The resolution a preset builds (256 when the name is not a preset: the registry reports that later)."""
    from .. import registry
    try:
        _, config = registry.resolve_config(preset)
    except PixelfolderError:
        return 256
    return int(getattr(config, "resolution", getattr(config, "height", 256)))


def resolve(opts: TrainOptions) -> TrainOptions:
    """Fill every None with the model's recipe and check the combination."""
    if opts.model not in RECIPES:
        raise PixelfolderError(f"no training recipe for {opts.model!r}; known: {', '.join(RECIPES)}")
    if opts.dtype not in DTYPES:
        raise PixelfolderError(f"--dtype must be one of {DTYPES}")
    if opts.augment not in AUGMENTS:
        raise PixelfolderError(f"--augment must be one of {AUGMENTS}")
    check_values(opts)                         # the given values, before anything imports torch
    r = RECIPES[opts.model]
    preset = opts.preset or default_preset(opts)
    fill = {
        "batch": r.batch, "gamma": r.gamma_for(opts.resolution or preset_resolution(preset)),
        "r1_every": r.r1_every, "pl_weight": r.pl_weight, "pl_every": r.g_reg_every, "mixing": r.mixing,
        "ema_kimg": r.ema_kimg, "glr": r.lr, "dlr": r.lr, "mirror": r.mirror,
        "split": "train" if opts.model == "pixelpyramids" else "all", "preset": preset,
    }
    opts = dataclasses.replace(opts, **{k: v for k, v in fill.items() if getattr(opts, k) is None})
    check_values(opts)
    if opts.batch < 1 or (opts.batch_gpu is not None and opts.batch_gpu < 1):
        raise PixelfolderError("--batch and --batch-gpu must be >= 1")
    if opts.split not in ("all", "train"):
        raise PixelfolderError("--split must be all or train (the test split is held out for evaluation)")
    if opts.levels and opts.model != "pixelpyramids":
        raise PixelfolderError("--levels applies to likelihood models (pixelpyramids) only")
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
