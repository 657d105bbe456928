"""Registry of architectures (name -> class + config dataclass) and of named presets."""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field

from .errors import PixelfolderError

KINDS = ("generator", "discriminator", "likelihood")


@dataclass(frozen=True)
class Architecture:
    name: str
    cls: type
    config_cls: type
    kind: str
    description: str = ""


@dataclass(frozen=True)
class Preset:
    name: str
    arch: str
    overrides: dict = field(default_factory=dict)
    description: str = ""


_ARCHS: dict[str, Architecture] = {}
_PRESETS: dict[str, Preset] = {}


def register_model(name: str, config_cls: type, kind: str = "generator", description: str = ""):
    """Class decorator: register an architecture under `name` with its frozen config dataclass."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")

    def wrap(cls):
        _ARCHS[name] = Architecture(name, cls, config_cls, kind, description)
        cls.arch = name
        cls.kind = kind
        return cls
    return wrap


def register_preset(name: str, arch: str, description: str = "", **overrides) -> None:
    _PRESETS[name] = Preset(name, arch, dict(overrides), description)


def _ensure_loaded() -> None:
    from . import models  # noqa: F401  (importing registers every architecture)


def architecture(name: str) -> Architecture:
    _ensure_loaded()
    if name not in _ARCHS:
        raise PixelfolderError(f"unknown architecture {name!r}; known: {', '.join(sorted(_ARCHS))}")
    return _ARCHS[name]


def list_architectures(kind: str | None = None) -> list[str]:
    _ensure_loaded()
    return sorted(n for n, a in _ARCHS.items() if kind is None or a.kind == kind)


def list_models(kind: str | None = None) -> list[str]:
    """Names of all presets (e.g. 'pixelfolder-256', 'pixelfolder-tiny'), optionally of one kind."""
    _ensure_loaded()
    return sorted(n for n, p in _PRESETS.items() if kind is None or _ARCHS[p.arch].kind == kind)


def preset(name: str) -> Preset:
    _ensure_loaded()
    return _PRESETS[name]


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
