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
AUGMENTS = ("auto", "none", "diffaug", "ada")
ADA_BELOW_IMAGES = 30_000   # --augment auto: ADA for datasets smaller than this (StyleGAN2-ADA's limited-data regime)
ADA_TARGET = 0.6            # ADA's r_t target (StyleGAN2-ADA --target)


@dataclass(frozen=True)
class TrainOptions:
    preset: str | None = None      # what trains (the one truth); default: model's preset for the data (default_preset)
    model: str | None = None       # sugar for a preset: an architecture (`pixelfolder models`; default pixelfolder);
                                   # after resolve, always the preset's architecture
    resolution: int | None = None  # px the network trains at; default: the data's (image 0) with --model, the
                                   # preset's with --preset; data of another size is resized on the fly
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
    ema_rampup: float | None = None  # G_ema half-life capped at this fraction of the images shown (0: none)
    mapping_layers: int | None = None  # GANs: depth of G's mapping MLP; default: the preset's (rule: 2)
    glr: float | None = None       # G learning rate before lazy rescaling; default: recipe
    dlr: float | None = None       # D learning rate before lazy rescaling; default: recipe
    mirror: bool | None = None     # x-flip augmentation of reals; default: recipe
    augment: str = "auto"          # "ada" (adaptive, StyleGAN2-ADA), "diffaug" (DiffAugment), "none"; "auto": ada
                                   # for datasets of fewer than ADA_BELOW_IMAGES images, else none
    ada_target: float | None = None  # ADA: target of r_t = E[sign(D(real))], in (0, 1); default 0.6
    ada_kimg: float = 500.0        # ADA: kimg for p to move by 1 (its speed)
    augpipe: str = "bgc"           # ADA: transform set (blit, geom, color, bg, bgc)
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
    progress: bool | None = None   # progress lines on stdout (None/True; False: log.txt only) and metric bars
                                   # (None: on a terminal, True: always, False: never)
    levels: tuple = ()             # likelihood models: indices of the levels to train (empty = all, jointly)
    split: str | None = None       # training images: all or train (every 10th held out); default: likelihood
                                   # models train, GANs all. Snapshot bpd uses the held-out test split


def data_resolution(data: str) -> int:
    """The side of the dataset's first image, px (the demo set: 32)."""
    if is_demo_dataset(data):
        return 32
    from ..data import open_dataset
    return open_dataset(data).resolution


def presets_by_resolution(arch: str) -> dict[int, str]:
    """{px: the preset an architecture trains at that size}: <arch>-<px> where registered, else an official
    preset of that resolution, else any (tiny ones aside), e.g. pixelpyramids-emoji32 at 32 px."""
    from .. import registry
    ranked = sorted((n for n in registry.architecture(arch).presets if not registry.preset(n).tiny),
                    key=lambda n: (n != f"{arch}-{preset_resolution(n)}", not registry.preset(n).official, n))
    out: dict[int, str] = {}
    for name in ranked:
        out.setdefault(preset_resolution(name), name)
    return out


def default_preset(model: str, data: str, resolution: int | None, from_data: bool = False) -> str:
    """<model>-tiny for the demo dataset at 32 px, else <model>-<resolution, default the data's>; `from_data`:
    the resolution was read from the data (for the error's wording)."""
    if is_demo_dataset(data) and resolution in (None, 32):
        return f"{model}-tiny"
    size = resolution or data_resolution(data)
    by_size = presets_by_resolution(model)
    if size in by_size:
        return by_size[size]
    sizes = sorted(by_size)
    near = min(sizes, key=lambda r: (abs(math.log2(r / size)), r))
    what = f"{data} holds {size} px images" if from_data or not resolution else f"--resolution {size}"
    raise PixelfolderError(f"{what}, a size {model} does not train at ({', '.join(map(str, sizes))} px): pass "
                           f"--resolution {near} to resize the data on the fly")


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


RULE = "NVlabs cfg=auto"


def uses_scaling_rule(preset: str, resolution: int) -> bool:
    """GANs off their recipe's published resolutions (or on a preset that is not official) follow the rule."""
    from .. import registry
    p = registry.preset(preset)
    arch = registry.architecture(p.arch)
    published = not arch.recipe.resolutions or resolution in arch.recipe.resolutions
    return arch.kind == "generator" and not (p.official and published)


def scaled_values(resolution: int, batch: int) -> dict:
    """StyleGAN2-ADA's cfg=auto: R1 gamma = 0.0002 res^2 / batch, EMA half-life batch * 10/32 kimg with a 0.05
    ramp-up, learning rate 0.0025 (0.002 from 1024 px), a mapping MLP of 2 layers."""
    lr = 0.002 if resolution >= 1024 else 0.0025
    return {"gamma": 0.0002 * resolution ** 2 / batch, "ema_kimg": batch * 10 / 32, "ema_rampup": 0.05,
            "glr": lr, "dlr": lr, "mapping_layers": 2}


RULE_FORMULAS = {"gamma": "0.0002 res^2/batch", "ema_kimg": "batch*10/32", "ema_rampup": "0.05",
                 "glr": "0.0025, 0.002 from 1024 px", "dlr": "0.0025, 0.002 from 1024 px", "mapping_layers": "2"}


def recipe_values(opts: TrainOptions, preset: str) -> dict:
    """The values the preset's recipe (and its objective) give to every recipe-backed option; off the recipe's
    published resolution, the scaling rule's for gamma, EMA, learning rates and mapping depth."""
    from .. import registry
    from .objectives import objective_for_preset
    r = registry.architecture(registry.preset(preset).arch).recipe
    resolution = opts.resolution or preset_resolution(preset)
    values = {
        "batch": r.batch, "gamma": r.gamma_for(resolution), "r1_every": r.r1_every, "pl_weight": r.pl_weight,
        "pl_every": r.g_reg_every, "mixing": r.mixing, "ema_kimg": r.ema_kimg, "ema_rampup": r.ema_rampup,
        "glr": r.lr, "dlr": r.lr, "mapping_layers": None, "mirror": r.mirror,
        "split": objective_for_preset(preset).train_split,
    }
    if uses_scaling_rule(preset, resolution):
        values.update(scaled_values(resolution, opts.batch or r.batch))
    return values


def augment_for(opts: TrainOptions) -> tuple[str, str]:
    """(augmentation, why) for --augment auto: ADA below ADA_BELOW_IMAGES images (counted in the data), else none."""
    if opts.augment != "auto":
        return opts.augment, "given"
    from .. import registry
    if registry.architecture(registry.preset(opts.preset).arch).kind != "generator":
        return "none", "rule (a likelihood model has no discriminator to augment for)"
    from ..data import open_dataset
    count = open_dataset(opts.data).num_images
    choice = "ada" if count < ADA_BELOW_IMAGES else "none"
    return choice, f"rule ({count:,} images {'<' if choice == 'ada' else '>='} {ADA_BELOW_IMAGES:,}: {choice})"


def resolve_augment(opts: TrainOptions) -> TrainOptions:
    """--augment auto made concrete; ADA's settings checked (one line each)."""
    from .ada import SPECS
    augment, _ = augment_for(opts)
    if opts.ada_target is not None and augment != "ada":
        raise PixelfolderError(f"--target sets ADA's target and applies with --augment ada only (here: {augment})")
    target = ADA_TARGET if opts.ada_target is None else opts.ada_target
    if not (isinstance(target, (int, float)) and 0 < target < 1):
        raise PixelfolderError(f"--target must be in (0, 1) (the wanted share of positive D outputs on reals, "
                               f"StyleGAN2-ADA: 0.6), got {target}")
    if opts.augpipe not in SPECS:
        raise PixelfolderError(f"--augpipe must be one of {', '.join(SPECS)}, got {opts.augpipe!r}")
    return dataclasses.replace(opts, augment=augment, ada_target=target if augment == "ada" else None)


def with_data_resolution(opts: TrainOptions) -> TrainOptions:
    """--model (or none) without --resolution: the data's resolution, read from its first image, and the
    model's preset at that size (a size no preset has: one line)."""
    if opts.preset is not None or opts.resolution is not None or is_demo_dataset(opts.data):
        return opts
    size = data_resolution(opts.data)
    preset = default_preset(opts.model or DEFAULT_MODEL, opts.data, size, from_data=True)
    return dataclasses.replace(opts, resolution=size, preset=preset)


def option_sources(original: TrainOptions, resolved: TrainOptions, demo: tuple = ()) -> dict:
    """Where each recipe-backed option of `resolved` (= resolve(original)) comes from: given, the demo's, the
    official recipe's, the scaling rule's, or (preset, resolution, split) the data, the preset and the objective."""
    from .. import registry
    from .objectives import objective_for_preset
    preset = resolved.preset
    recipe = registry.architecture(registry.preset(preset).arch).recipe
    resolution = resolved.resolution or preset_resolution(preset)
    derived = {"preset": f"default (--model {original.model or DEFAULT_MODEL} on this data: {preset})",
               "split": f"objective ({objective_for_preset(preset).__name__})",
               "resolution": f"data ({original.data}: image 0 is {resolution} px)" if resolved.resolution
               else f"preset ({preset})", "mapping_layers": f"preset ({preset})"}
    if uses_scaling_rule(preset, resolution):
        why = (f"{resolution} px is not in the recipe's {recipe.resolutions}" if registry.preset(preset).official
               else f"{preset} is not an official preset")
        derived.update({k: f"rule ({RULE}: {f}; {why})" for k, f in RULE_FORMULAS.items()})
    if original.augment == "auto":
        derived["augment"] = augment_for(dataclasses.replace(original, preset=preset))[1]
    names = ("preset", "resolution", *recipe_values(resolved, preset), "augment")
    return {name: "demo" if name in demo else "given" if getattr(original, name) not in (None, "auto")
            else derived.get(name, f"official ({recipe.source or preset})") for name in names}


def resolve(opts: TrainOptions) -> TrainOptions:
    """Fill every None with the preset's recipe and check the combination."""
    if opts.dtype not in DTYPES:
        raise PixelfolderError(f"--dtype must be one of {DTYPES}")
    if opts.augment not in AUGMENTS:
        raise PixelfolderError(f"--augment must be one of {AUGMENTS}")
    check_values(opts)                         # the given values, before anything imports torch
    from .. import registry
    from .objectives import objective_for_preset
    opts = with_data_resolution(opts)
    preset = training_preset(opts)
    fill = recipe_values(opts, preset)
    opts = dataclasses.replace(opts, **{k: v for k, v in fill.items() if getattr(opts, k) is None},
                               preset=preset, model=registry.preset(preset).arch)
    opts = resolve_augment(opts)
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
          "ada_kimg": (0, True), "pl_weight": (0, False), "ema_kimg": (0, False), "ema_rampup": (0, False),
          "glr": (0, True), "dlr": (0, True), "mixing": (0, False), "mapping_layers": (1, False),
          "r1_every": (1, False), "pl_every": (1, False), "workers": (0, False),
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
    for name in ("r1_every", "pl_every", "mapping_layers", "workers", "batch", "batch_gpu", "metric_num_gen",
                 "resolution", "seed"):
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


def ema_beta(batch: int, ema_kimg: float, rampup: float = 0.0, nimg: int = 0) -> float:
    """Per-step EMA decay for a half-life of ema_kimg thousand images at this global batch (0: no averaging);
    with a ramp-up, the half-life is at most rampup * nimg (the images shown so far), as NVlabs does."""
    half_life = ema_kimg * 1000.0
    if rampup > 0:
        half_life = min(half_life, nimg * rampup)
    return 0.5 ** (batch / max(half_life, 1e-8)) if ema_kimg > 0 else 0.0
