"""Key maps from the official PixelFolder / CIPS / rosinality StyleGAN2 state_dicts to ours.

Every official key is either renamed (with a shape fix: modulated weights lose their leading 1,
ToRGB biases become (3,), LFF weights (C, 2)) or is a known constant FIR kernel that we regenerate
(it is checked, not trusted). Anything else is reported, never silently dropped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import ConversionError
from ..layers import fir_kernel

DROP = "<constant>"


@dataclass(frozen=True)
class Rule:
    pattern: str                     # regex over the official key, with named groups
    target: str | Callable           # our key: a str.format template over the groups, or a function of them
    reshape: Callable | None = None  # value transform
    constant: torch.Tensor | None = None  # for DROP rules: the value the official buffer must hold


def _squeeze0(t):
    return t.reshape(t.shape[1:])


def _flat(t):
    return t.reshape(-1)


def _lff_weight(t):
    return t.reshape(t.shape[0], t.shape[1])


def shifted(template: str, offset: int, group: str = "i") -> Callable:
    """Our key prefix from `template` with the numbered group shifted by `offset` (official index -> ours)."""
    return lambda g: template.format(**{**g, group: int(g[group]) + offset})


def _join(ours, suffix: str) -> Callable:
    """Target = our prefix (template or function of the groups) + a suffix template."""
    prefix = ours if callable(ours) else ours.format
    return lambda g: (prefix(g) if callable(ours) else prefix(**g)) + suffix.format(**g)


def styled_conv(official: str, ours) -> list[Rule]:
    """StyledConv: conv.weight, conv.modulation.*, noise.weight, activate.bias (+ conv.blur.kernel)."""
    return [
        Rule(rf"{official}\.conv\.weight", _join(ours, ".weight"), _squeeze0),
        Rule(rf"{official}\.conv\.modulation\.(?P<p>weight|bias)", _join(ours, ".affine.{p}")),
        Rule(rf"{official}\.noise\.weight", _join(ours, ".noise_strength")),
        Rule(rf"{official}\.activate\.bias", _join(ours, ".bias")),
        Rule(rf"{official}\.conv\.blur\.kernel", DROP, constant=fir_kernel(gain=4.0)),
    ]


def to_rgb(official: str, ours) -> list[Rule]:
    return [
        Rule(rf"{official}\.conv\.weight", _join(ours, ".weight"), _squeeze0),
        Rule(rf"{official}\.conv\.modulation\.(?P<p>weight|bias)", _join(ours, ".affine.{p}")),
        Rule(rf"{official}\.bias", _join(ours, ".bias"), _flat),
        Rule(rf"{official}\.upsample\.kernel", DROP, constant=fir_kernel(gain=4.0)),
    ]


def conv_layer(official: str, ours, *, down: bool = False, bias: bool = True) -> list[Rule]:
    """ConvLayer (nn.Sequential): [Blur,] EqualConv2d, FusedLeakyReLU."""
    i = 1 if down else 0
    rules = [Rule(rf"{official}\.{i}\.weight", _join(ours, ".weight"))]
    if bias:
        rules.append(Rule(rf"{official}\.{i + 1}\.bias", _join(ours, ".bias")))
    if down:
        rules.append(Rule(rf"{official}\.0\.kernel", DROP, constant=fir_kernel()))
    return rules


def lff(official: str, ours) -> list[Rule]:
    return [Rule(rf"{official}\.ffm\.conv\.weight", _join(ours, ".weight"), _lff_weight),
            Rule(rf"{official}\.ffm\.conv\.bias", _join(ours, ".bias"))]


MAPPING = [Rule(r"style\.(?P<i>\d+)\.(?P<p>weight|bias)", lambda g: f"mapping.layers.{int(g['i']) - 1}.{g['p']}")]


def _target(rule: Rule, groups: dict) -> str:
    return rule.target(groups) if callable(rule.target) else rule.target.format(**groups)


def apply_rules(state_dict: dict, rules: list[Rule], what: str) -> dict:
    """Map every key through the first matching rule; raise listing every key no rule explains."""
    compiled = [(re.compile(r.pattern + r"\Z"), r) for r in rules]
    out, unmapped, bad_constants = {}, [], []
    for key, value in state_dict.items():
        for regex, rule in compiled:
            m = regex.match(key)
            if m is None:
                continue
            if rule.target == DROP:
                if value.shape != rule.constant.shape or not torch.allclose(value.float(), rule.constant, atol=1e-6):
                    bad_constants.append(key)
            else:
                out[_target(rule, m.groupdict())] = rule.reshape(value) if rule.reshape else value
            break
        else:
            unmapped.append(key)
    if unmapped:
        shown = ", ".join(unmapped[:12]) + (f" (+{len(unmapped) - 12} more)" if len(unmapped) > 12 else "")
        raise ConversionError(f"cannot map {len(unmapped)} key(s) of the {what} state_dict: {shown}")
    if bad_constants:
        raise ConversionError(f"{what}: FIR kernels differ from the standard [1,3,3,1] filter: "
                              + ", ".join(bad_constants[:6]))
    return out


def load_mapped(model: torch.nn.Module, ours: dict, what: str, optional: tuple = ()) -> torch.nn.Module:
    """Load mapped official tensors into `model`; one ConversionError listing missing, unexpected or misshapen keys.

    `optional`: our keys the official file may lack (left as initialised, e.g. a recomputed w_avg).
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in ours and k not in optional]
    unexpected = [k for k in ours if k not in expected]
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in ours.items()
             if k in expected and v.shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ConversionError(f"{what}: missing {missing[:4]} unexpected {unexpected[:4]} shapes {wrong[:4]}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in ours.items()}, strict=False)
    return model
