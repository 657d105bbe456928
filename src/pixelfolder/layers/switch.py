"""One switch for every model's code paths: the reference path (the official computation) or the fast one.

A module has a switch when its class declares it with a default value:

- `reference = False`: True runs the official-structured reference path instead of the fast one (INR-GAN's
  synthesis; PixelPyramids' U-Net and ConvLSTM, whose fast inference path otherwise runs under no_grad;
  StyledConv and ToRGB, whose reference form is the fused modulated conv, used unless `impl` says otherwise);
- `impl = "auto"` (StyledConv, ToRGB): the modulated-conv form, 'fused' (the official grouped conv),
  'nonfused', or 'auto' ('fused' at batch 1, 'nonfused' otherwise, unless `reference` is on).

`switch(*modules, **settings)` sets each setting on every submodule that has that switch and restores the
previous values on exit (no module globals: two models, or two threads with two models, never interfere);
`reference(*modules)` is `switch(*modules, reference=True)`.

    with reference(G):                 # official paths everywhere in G
        ref = G(z)
    with switch(G, impl="nonfused"):   # one modulated-conv form
        out = G(z)
"""
from __future__ import annotations

import contextlib

from torch import nn

from .modconv import IMPLS

SWITCHES = {"reference": (False, True), "impl": IMPLS}   # switch name -> allowed values
_UNSET = object()


def has_switch(module: nn.Module, name: str) -> bool:
    """True when module's class declares the switch `name` (a class attribute holding an allowed value)."""
    default = getattr(type(module), name, _UNSET)
    return any(default is v or (type(default) is type(v) and default == v) for v in SWITCHES[name])


def _check(settings: dict) -> None:
    for name, value in settings.items():
        if name not in SWITCHES:
            raise ValueError(f"unknown switch {name!r}; switches: {', '.join(SWITCHES)}")
        if not any(value is v or (type(value) is type(v) and value == v) for v in SWITCHES[name]):
            raise ValueError(f"switch {name} must be one of {SWITCHES[name]}, got {value!r}")


@contextlib.contextmanager
def switch(*modules: nn.Module, **settings):
    """Set the given switches on every submodule of `modules` that has them; restore them on exit."""
    _check(settings)
    saved = []
    try:
        for module in modules:
            for m in module.modules():
                for name, value in settings.items():
                    if has_switch(m, name):
                        saved.append((m, name, m.__dict__.get(name, _UNSET)))
                        setattr(m, name, value)
        yield modules[0] if len(modules) == 1 else modules
    finally:
        for m, name, previous in reversed(saved):
            if previous is _UNSET:
                m.__dict__.pop(name, None)      # back to the class default
            else:
                setattr(m, name, previous)


def reference(*modules: nn.Module, on: bool = True):
    """Run `modules` on their reference paths (on=False: their fast paths) inside the `with` block."""
    return switch(*modules, reference=on)
