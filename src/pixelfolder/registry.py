"""The registry: the one place that knows an architecture.

Each architecture registers (in its model file) its model class, frozen config class, kind, training recipe and
the discriminator it trains with; its presets (official and tiny ones flagged); its sample options (read from the
class). Converters register themselves in their own files (`register_converter`). Everything else -- the CLI's
choices, `train --dry-run`'s sources, the generic tests -- reads from here.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
import types
import typing
from dataclasses import dataclass, field
from typing import Callable

from .errors import PixelfolderError

KINDS = ("generator", "discriminator", "likelihood")
CONVERTER_LAYOUTS = ("state_dict", "nvlabs", "pixelpyramids")


@dataclass(frozen=True)
class Recipe:
    """An official training recipe. Learning rates are the base ones; lazy regularisation rescales them."""
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
    lr_decay: float = 1.0       # learning rate multiplied by this every step (PixelPyramids: 0.999995)
    ema_rampup: float = 0.0     # G_ema half-life capped at this fraction of the images shown (0 = no ramp-up)
    resolutions: tuple = ()     # px the recipe was published for; GANs elsewhere follow the scaling rule
                                # (training/options.scaled_values); empty = every resolution
    source: str = ""            # where the values come from (official script, config file)

    def gamma_for(self, resolution: int) -> float:
        if not self.gamma_by_resolution:
            return self.gamma
        return min(self.gamma_by_resolution, key=lambda rg: abs(math.log2(rg[0] / resolution)))[1]


@dataclass(frozen=True)
class Architecture:
    name: str
    cls: type
    config_cls: type
    kind: str                       # generator | discriminator | likelihood (also chooses the training objective)
    description: str = ""
    recipe: Recipe | None = None    # None: not trainable on its own (discriminators)
    discriminator: str | None = None  # architecture of the D it trains with (its tiny preset for tiny G presets)

    @property
    def sample_options(self) -> tuple[str, ...]:
        """Keyword options of `model.sample(seeds, batch_size=, device=, **options)` beyond the common ones."""
        return tuple(getattr(self.cls, "SAMPLE_OPTIONS", ()))

    @property
    def presets(self) -> list[str]:
        return sorted(n for n, p in _PRESETS.items() if p.arch == self.name)

    @property
    def tiny_presets(self) -> list[str]:
        return sorted(n for n, p in _PRESETS.items() if p.arch == self.name and p.tiny)


@dataclass(frozen=True)
class Preset:
    name: str
    arch: str
    overrides: dict = field(default_factory=dict)
    description: str = ""
    official: bool = False          # the official configuration (widths, depth) at its official resolution
    tiny: bool = False              # a few-thousand-parameter version for tests and the CPU demo


@dataclass(frozen=True)
class Converter:
    """How official files of one architecture become our model.

    layout 'state_dict': a torch state_dict mapped by key rules; `detect(sd)`, `infer_config(sd) -> fields`,
    `rules(fields) -> [Rule]`. layout 'nvlabs': an NVlabs-module state_dict (network pickles); `detect(sd)`,
    `convert(sd, init_kwargs, attributes) -> model`. layout 'pixelpyramids': per-level state_dicts + params json.
    """
    name: str                       # `convert --arch` value
    arch: str                       # the architecture it produces
    layout: str
    detect: Callable | None = None
    infer_config: Callable | None = None
    rules: Callable | None = None
    convert: Callable | None = None
    cli: bool = True                # offered as a `convert --arch` choice


_ARCHS: dict[str, Architecture] = {}
_PRESETS: dict[str, Preset] = {}
_CONVERTERS: dict[tuple[str, str], Converter] = {}    # (layout, name) -> converter


def register_model(name: str, config_cls: type, kind: str = "generator", description: str = "", *,
                   recipe: Recipe | None = None, discriminator: str | None = None):
    """Class decorator: register an architecture under `name` with its frozen config dataclass and facts."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")

    def wrap(cls):
        _ARCHS[name] = Architecture(name, cls, config_cls, kind, description, recipe, discriminator)
        cls.arch = name
        cls.kind = kind
        return cls
    return wrap


def register_preset(name: str, arch: str, description: str = "", *, official: bool = False, tiny: bool = False,
                    **overrides) -> None:
    _PRESETS[name] = Preset(name, arch, dict(overrides), description, official, tiny)


RULE_RESOLUTIONS = (32, 64, 128, 256, 512, 1024)     # px a GAN architecture trains at from any dataset


def register_rule_presets(arch: str, rule: Callable[[int], dict] | None = None, note: str = "") -> None:
    """<arch>-<res> for every RULE_RESOLUTIONS size that has no preset yet: the architecture's own width rule at
    that size (`rule(res)` gives the config fields; default just the resolution). Not official."""
    for res in RULE_RESOLUTIONS:
        name = f"{arch}-{res}"
        if name not in _PRESETS:
            fields = rule(res) if rule else {"resolution": res}
            register_preset(name, arch, f"{arch} at {res} px (not official: {note or 'its width rule at this size'})",
                            **fields)


def register_converter(name: str, arch: str, layout: str, **parts) -> None:
    if layout not in CONVERTER_LAYOUTS:
        raise ValueError(f"layout must be one of {CONVERTER_LAYOUTS}")
    _CONVERTERS[(layout, name)] = Converter(name, arch, layout, **parts)


def _import_all(package: str) -> None:
    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(module.__path__):
        importlib.import_module(f"{package}.{info.name}")


_loaded = False


def _ensure_loaded() -> None:
    """Import every model and converter module (each registers itself)."""
    global _loaded
    if not _loaded:
        _loaded = True
        _import_all(f"{__package__}.models")
        _import_all(f"{__package__}.convert")


def registered_classes() -> dict[str, type]:
    """{class name: class} of every model and config class registered so far (for `pixelfolder.models`)."""
    return {c.__name__: c for a in _ARCHS.values() for c in (a.cls, a.config_cls)}


def architecture(name: str) -> Architecture:
    _ensure_loaded()
    if name not in _ARCHS:
        raise PixelfolderError(f"unknown architecture {name!r}; known: {', '.join(sorted(_ARCHS))}")
    return _ARCHS[name]


def architectures(kind: str | None = None) -> list[Architecture]:
    _ensure_loaded()
    return [_ARCHS[n] for n in sorted(_ARCHS) if kind is None or _ARCHS[n].kind == kind]


def list_architectures(kind: str | None = None) -> list[str]:
    return [a.name for a in architectures(kind)]


def trainable_architectures() -> list[str]:
    """Architectures with a training recipe (the `train --model` choices)."""
    return [a.name for a in architectures() if a.recipe is not None]


def list_models(kind: str | None = None) -> list[str]:
    """Names of all presets (e.g. 'pixelfolder-256', 'pixelfolder-tiny'), optionally of one kind."""
    _ensure_loaded()
    return sorted(n for n, p in _PRESETS.items() if kind is None or _ARCHS[p.arch].kind == kind)


def preset(name: str) -> Preset:
    _ensure_loaded()
    if name not in _PRESETS:
        raise PixelfolderError(f"unknown preset {name!r}; known: {', '.join(sorted(_PRESETS))}")
    return _PRESETS[name]


def converters(layout: str | None = None) -> list[Converter]:
    _ensure_loaded()
    return [c for (lay, _), c in sorted(_CONVERTERS.items()) if layout is None or lay == layout]


def converter(layout: str, name: str) -> Converter | None:
    _ensure_loaded()
    return _CONVERTERS.get((layout, name))


def converter_choices() -> list[str]:
    """The `convert --arch` values: every converter offered on the command line."""
    return sorted({c.name for c in converters() if c.cli})


def resolve_config(name_or_preset: str, **overrides):
    """(Architecture, config) for an architecture or preset name with field overrides."""
    _ensure_loaded()
    if name_or_preset in _PRESETS:
        p = _PRESETS[name_or_preset]
        arch, fields = _ARCHS[p.arch], {**p.overrides, **overrides}
    elif name_or_preset in _ARCHS:
        arch, fields = _ARCHS[name_or_preset], dict(overrides)
    else:
        known = ", ".join(sorted(_ARCHS) + sorted(_PRESETS))
        raise PixelfolderError(f"unknown model or preset {name_or_preset!r}; known: {known}")
    return arch, config_from_dict(arch.config_cls, fields)


MAX_CONFIG_INT = 1 << 20      # magnitude of any int in a config (real ones: < 70,000)
MAX_CONFIG_ITEMS = 4096       # values in one tuple field, nested ones included
MAX_CONFIG_DEPTH = 3          # nesting of tuple fields (extra_convs: pairs in a tuple)


def config_from_dict(config_cls: type, fields: dict):
    """Build a config dataclass from plain data: lists become tuples, and every field is checked against its
    declared type (bool, int, float, str, tuple, `X | None`) and range (finite, >= 0, sizes and `X | None = None`
    numbers positive); one-line PixelfolderErrors name the field."""
    if not isinstance(fields, dict) or not all(isinstance(k, str) for k in fields):
        raise PixelfolderError(f"a {config_cls.__name__} needs a dict of field names, got {type(fields).__name__}")
    declared = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(fields) - set(declared))
    if unknown:
        raise PixelfolderError(f"{config_cls.__name__} has no field(s) {', '.join(_brief(k) for k in unknown[:8])}")
    hints = typing.get_type_hints(config_cls)
    clean = {}
    for name, f in declared.items():
        if name in fields:
            clean[name] = _field_value(f"{config_cls.__name__}.{name}", hints[name], _default(f), fields[name])
        elif _default(f) is dataclasses.MISSING:
            raise PixelfolderError(f"{config_cls.__name__} needs the field {name}")
    return config_cls(**clean)


def _default(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def _field_value(where: str, hint, default, value):
    """`value` checked against the field's type hint (and coerced: int -> float, list -> tuple)."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    kind = next(t for t in options if t is not type(None))
    kind = typing.get_origin(kind) or kind          # tuple[int, ...] -> tuple
    if kind is tuple and isinstance(value, (tuple, list)):
        return _plain_tuple(where, value, [MAX_CONFIG_ITEMS], 1)
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind or (kind is str and len(value) > 256):
        raise PixelfolderError(f"{where} must be {_kind_name(options)}, got {_brief(value)}")
    if kind in (int, float):
        _check_number(where, value, default)
    return value


def _check_number(where: str, value, default) -> None:
    if not math.isfinite(value) or abs(value) > MAX_CONFIG_INT:
        raise PixelfolderError(f"{where} = {_brief(value)} is out of range (finite, at most {MAX_CONFIG_INT:,})")
    if (default is None or where.rsplit(".", 1)[1] in POSITIVE_FIELDS) and value <= 0:
        raise PixelfolderError(f"{where} must be positive, got {_brief(value)}")
    if value < 0 and where not in SIGNED_FIELDS:
        raise PixelfolderError(f"{where} must be >= 0, got {_brief(value)}")


POSITIVE_FIELDS = {"resolution", "height", "width", "z_dim", "w_dim", "channel_base", "channel_max", "n_bits",
                   "num_levels", "hidden", "mbstd_group"}   # sizes (and `X | None = None` fields such as clamps)
SIGNED_FIELDS = {"PixelPyramidsConfig.residual_offset"}   # numbers that may be negative (taken mod 2**n_bits)


def _plain_tuple(where: str, value, budget: list, depth: int) -> tuple:
    """Tuples (from lists) of ints >= 0, finite floats, bools and short strings, nested at most MAX_CONFIG_DEPTH."""
    budget[0] -= len(value)
    if budget[0] < 0 or depth > MAX_CONFIG_DEPTH:
        raise PixelfolderError(f"{where} is too long or nested too deeply for a config tuple")
    out = []
    for v in value:
        if isinstance(v, (tuple, list)):
            out.append(_plain_tuple(where, v, budget, depth + 1))
            continue
        ok = (type(v) is bool or (type(v) is int and 0 <= v <= MAX_CONFIG_INT)
              or (type(v) is float and math.isfinite(v)) or (type(v) is str and len(v) <= 256))
        if not ok:
            raise PixelfolderError(f"{where} holds {_brief(v)}: config tuples hold ints >= 0, numbers and names")
        out.append(v)
    return tuple(out)


def _kind_name(options) -> str:
    names = {bool: "true or false", int: "an int", float: "a number", str: "a string", tuple: "a list"}
    return " or ".join(names.get(t, "null" if t is type(None) else getattr(t, "__name__", str(t))) for t in options)


def _brief(x) -> str:
    text = repr(x) if isinstance(x, (bool, int, float, str, type(None))) else f"a {type(x).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def create(name_or_preset: str, *, device=None, compute_w_avg: bool = True, **overrides):
    """A freshly initialised model from an architecture or preset name (eval mode off: a trainable module)."""
    arch, config = resolve_config(name_or_preset, **overrides)
    model = arch.cls(config)
    if device is not None:
        model = model.to(device)
    if compute_w_avg and hasattr(model, "mapping") and str(device) != "meta":
        model.mapping.compute_w_avg()
    return model
