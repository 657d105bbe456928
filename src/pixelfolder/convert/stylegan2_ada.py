"""NVlabs StyleGAN2-ADA / StyleGAN3-repo `networks_stylegan2.Generator` weights -> our `stylegan2` arch.

Key map (official -> ours): mapping.fc{i} -> mapping.layers.{i}; mapping.w_avg kept (the tracked average the
official truncation uses); synthesis.b4.const -> synthesis.const; b4.conv1 -> convs.0, b{r}.conv0/conv1 ->
convs.{2k-1}/{2k} (r = 4 * 2^k); b{r}.torgb -> torgbs.{k}; noise_const [H, W] -> [1, 1, H, W],
noise_strength [] -> [1]. The up-convs need no flip: the official code runs conv0 as a transposed convolution
with the weight as stored (flip_weight=False there means "do not flip again"), exactly as we do. The official
SynthesisLayer leaves its weight unscaled before demodulation and ToRGB scales the styles instead of the
weight; both equal ours up to float rounding. resample_filter buffers must be the standard [1,3,3,1] kernel.

fp16 settings (num_fp16_res, conv_clamp's purpose) do not matter here: we compute in float32, as the official
code does on CPU or with force_fp32=True. conv_clamp itself is reproduced (StyleGAN2Config.conv_clamp).
"""
from __future__ import annotations

import math
import re

import torch

from ..errors import ConversionError
from ..layers import fir_kernel
from ..registry import config_from_dict
from .archs import channel_fields
from .official import DROP, Rule, apply_rules, load_mapped

ARCH = "stylegan2"


def detect(sd: dict) -> bool:
    return {"synthesis.b4.const", "synthesis.b4.conv1.affine.weight", "mapping.fc0.weight"} <= sd.keys()


def _resolutions(sd: dict) -> list[int]:
    return sorted({int(m.group(1)) for k in sd if (m := re.match(r"synthesis\.b(\d+)\.conv1\.weight$", k))})


def _conv_index(res: int, j: int) -> int:
    """Our convs index of official b{res}.conv{j}."""
    return 0 if res == 4 else 2 * (int(math.log2(res)) - 2) - 1 + j


def _synthesis_kwargs(init_kwargs: dict) -> dict:
    """SG2-ADA nests them in synthesis_kwargs; the StyleGAN3 repo passes them as top-level kwargs."""
    return {**init_kwargs, **(init_kwargs.get("synthesis_kwargs") or {})}


def _attribute(attributes: dict, suffix: str, name: str) -> set:
    return {a[name] for path, a in attributes.items() if path.endswith(suffix) and name in a}


def _conv_clamp(init_kwargs: dict | None, attributes: dict | None):
    if attributes:
        clamps = _attribute(attributes, "", "conv_clamp")
        if len(clamps) > 1:
            raise ConversionError(f"layers use different conv_clamp values {sorted(map(str, clamps))}; one is needed")
        return clamps.pop() if clamps else None
    syn = _synthesis_kwargs(init_kwargs or {})
    if "conv_clamp" not in syn:
        raise ConversionError("cannot tell conv_clamp (its default differs between the NVlabs repos): "
                              "pass init_kwargs with conv_clamp, or convert the network pickle itself")
    return syn["conv_clamp"]


def _refuse_unsupported(init_kwargs: dict, attributes: dict) -> None:
    syn = _synthesis_kwargs(init_kwargs)
    archs = _attribute(attributes, "", "architecture") | {syn.get("architecture", "skip")}
    if archs != {"skip"}:
        raise ConversionError(f"only the 'skip' generator architecture is supported, this one is {sorted(archs)}")
    if int(init_kwargs.get("c_dim", 0) or 0) > 0:
        raise ConversionError(f"conditional generators (c_dim={init_kwargs['c_dim']}) are not supported")
    if int(init_kwargs.get("img_channels", 3)) != 3:
        raise ConversionError(f"only RGB generators are supported, this one has {init_kwargs['img_channels']} channels")
    acts = _attribute(attributes, "", "activation") | {(init_kwargs.get("mapping_kwargs") or {}).get("activation",
                                                                                                      "lrelu")}
    if acts - {"lrelu", "linear"}:
        raise ConversionError(f"activations {sorted(acts - {'lrelu', 'linear'})} are not supported (only lrelu)")


def config_from_official(init_kwargs: dict | None, sd: dict, attributes: dict | None = None) -> dict:
    """Our StyleGAN2Config fields from the official state_dict (+ init_kwargs / module attributes when known)."""
    init_kwargs, attributes = init_kwargs or {}, attributes or {}
    _refuse_unsupported(init_kwargs, attributes)
    if "mapping.embed.weight" in sd:
        raise ConversionError("conditional generators (mapping.embed) are not supported")
    n_map = len({k for k in sd if re.match(r"mapping\.fc\d+\.weight$", k)})
    widths = {tuple(sd[f"mapping.fc{i}.weight"].shape) for i in range(1, n_map)}
    w_dim, z_dim = int(sd[f"mapping.fc{n_map - 1}.weight"].shape[0]), int(sd["mapping.fc0.weight"].shape[1])
    if widths - {(w_dim, w_dim)} or sd["mapping.fc0.weight"].shape[0] != w_dim:
        raise ConversionError("mapping layers narrower or wider than w_dim (layer_features) are not supported")
    lr_mul = _attribute(attributes, "mapping.fc0", "bias_gain") or {
        (init_kwargs.get("mapping_kwargs") or {}).get("lr_multiplier", 0.01)}
    resolutions = _resolutions(sd)
    table = {int(math.log2(r)) - 2: int(sd[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in resolutions}
    if resolutions != [2 ** (i + 2) for i in range(len(resolutions))]:
        raise ConversionError(f"unexpected synthesis blocks {resolutions}")
    return {"resolution": resolutions[-1], "z_dim": z_dim, "w_dim": w_dim, "mapping_layers": n_map,
            "mapping_lr_mul": float(lr_mul.pop()), **channel_fields(table, lambda i: 2 ** (i + 2)),
            "conv_clamp": _conv_clamp(init_kwargs or None, attributes)}


def _conv_target(suffix: str):
    return lambda g: f"synthesis.convs.{_conv_index(int(g['r']), int(g['j']))}.{suffix.format(**g)}"


def rules(fields: dict) -> list[Rule]:
    conv = r"synthesis\.b(?P<r>\d+)\.conv(?P<j>[01])"
    rgb = lambda g: f"synthesis.torgbs.{int(math.log2(int(g['r']))) - 2}.{g['p']}"  # noqa: E731
    return [
        Rule(r"mapping\.fc(?P<i>\d+)\.(?P<p>weight|bias)", "mapping.layers.{i}.{p}"),
        Rule(r"mapping\.w_avg", "mapping.w_avg"),
        Rule(r"synthesis\.b4\.const", "synthesis.const", lambda t: t.unsqueeze(0)),
        Rule(rf"{conv}\.(?P<p>weight|bias|affine\.weight|affine\.bias)", _conv_target("{p}")),
        Rule(rf"{conv}\.noise_strength", _conv_target("noise_strength"), lambda t: t.reshape(1)),
        Rule(rf"{conv}\.noise_const", _conv_target("noise_const"), lambda t: t.reshape(1, 1, *t.shape)),
        Rule(r"synthesis\.b(?P<r>\d+)\.torgb\.(?P<p>weight|bias|affine\.weight|affine\.bias)", rgb),
        Rule(r"synthesis\.b\d+\.(conv[01]\.)?resample_filter", DROP, constant=fir_kernel()),
    ]


def from_official(sd: dict, init_kwargs: dict | None = None, attributes: dict | None = None):
    """Our StyleGAN2 (eval mode) holding an official networks_stylegan2 Generator state_dict."""
    from ..models.stylegan2 import StyleGAN2, StyleGAN2Config

    if not detect(sd):
        raise ConversionError("not an NVlabs StyleGAN2 generator state_dict (no synthesis.b4.const / mapping.fc0)")
    fields = config_from_official(init_kwargs, sd, attributes)
    ours = apply_rules(sd, rules(fields), "NVlabs StyleGAN2")
    model = StyleGAN2(config_from_dict(StyleGAN2Config, fields))
    for i, conv in enumerate(model.synthesis.convs):   # use_noise=False: no noise at all, as officially
        if f"synthesis.convs.{i}.noise_strength" not in ours:
            ours[f"synthesis.convs.{i}.noise_strength"] = torch.zeros(1)
            ours[f"synthesis.convs.{i}.noise_const"] = conv.noise_const
    load_mapped(model, ours, "NVlabs StyleGAN2")
    model.metadata = {"source": "official", "arch": ARCH, "layout": "nvlabs networks_stylegan2",
                      "w_avg": {"how": "official mapping.w_avg (moving average tracked during training)"}}
    return model.eval()


def from_record(record):
    """Our StyleGAN2 from a NetworkRecord (convert.nvlabs_pickle.extract_network) of a networks_stylegan2 G."""
    return from_official(record.state_dict, record.init_kwargs, record.attributes)


__all__ = ["detect", "config_from_official", "rules", "from_official", "from_record"]
