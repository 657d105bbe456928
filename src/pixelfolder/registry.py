"""Registry of architectures (name -> class + config dataclass) and of named presets."""
from __future__ import annotations

import dataclasses
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


def config_from_dict(config_cls: type, fields: dict):
    """Build a config dataclass, turning lists back into tuples and rejecting unknown fields clearly."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise PixelfolderError(f"{config_cls.__name__} has no field(s) {', '.join(unknown)}")
    clean = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return config_cls(**clean)


def create(name_or_preset: str, *, device=None, compute_w_avg: bool = True, **overrides):
    """A freshly initialised model from an architecture or preset name (eval mode off: a trainable module)."""
    arch, config = resolve_config(name_or_preset, **overrides)
    model = arch.cls(config)
    if device is not None:
        model = model.to(device)
    if compute_w_avg and hasattr(model, "mapping") and str(device) != "meta":
        model.mapping.compute_w_avg()
    return model
