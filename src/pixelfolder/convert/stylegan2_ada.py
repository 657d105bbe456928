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

The resnet Discriminator (same code in SG2-ADA `training/networks.py`, INR-GAN and the StyleGAN3 repo) maps onto
our `stylegan2_d` (rosinality layout): b{R}.fromrgb -> from_rgb; b{r}.conv0/conv1/skip -> blocks.{k}.conv1/conv2/
skip (k = log2(R / r)); b4.conv/fc/out -> final_conv/fc/out. The official block scales conv1 and skip by
sqrt(0.5) through the layer gain (and clamps conv1 at 256 * sqrt(0.5)); clamping conv2 at 256 and scaling the sum
by 1/sqrt(2), as we do, is the same. The skip convolution is never clamped (DiscriminatorConfig.conv_clamp).
"""
from __future__ import annotations

import math
import re

import torch

from ..errors import ConversionError
from ..layers import fir_kernel
from ..registry import config_from_dict, register_converter
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
        raise ConversionError(f"conditional generators (c_dim={init_kwargs['c_dim']}) are not supported yet; "
                              "supported: unconditional StyleGAN2 generators (c_dim=0)")
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
    model.seed_rng = "numpy"      # NVlabs' gen_images.py seeds, not rosinality's
    model.metadata = {"source": "official", "arch": ARCH, "layout": "nvlabs networks_stylegan2",
                      "w_avg": {"how": "official mapping.w_avg (moving average tracked during training)"}}
    return model.eval()


def from_record(record):
    """Our StyleGAN2 from a NetworkRecord (convert.nvlabs_pickle.extract_network) of a networks_stylegan2 G."""
    return from_official(record.state_dict, record.init_kwargs, record.attributes)


# ----------------------------------------------------------------------------------------------- Discriminator
def detect_d(sd: dict) -> bool:
    return {"b4.conv.weight", "b4.fc.weight", "b4.out.weight"} <= sd.keys()


def _d_resolutions(sd: dict) -> list[int]:
    return sorted({int(m.group(1)) for k in sd if (m := re.match(r"b(\d+)\.conv0\.weight$", k))})


def _d_conv_clamp(init_kwargs: dict, attributes: dict):
    """The single conv_clamp of fromrgb/conv0/conv1/b4.conv (the skips are never clamped officially)."""
    if not attributes:
        if "conv_clamp" not in init_kwargs:
            raise ConversionError("cannot tell the discriminator's conv_clamp (its default differs between the "
                                  "NVlabs repos): pass init_kwargs with conv_clamp, or convert the network pickle")
        return init_kwargs["conv_clamp"]
    if {a.get("conv_clamp") for p, a in attributes.items() if p.endswith(".skip")} - {None}:
        raise ConversionError("discriminators with clamped skip convolutions are not supported")
    clamps = {a["conv_clamp"] for p, a in attributes.items() if "conv_clamp" in a and not p.endswith(".skip")}
    if len(clamps) > 1:
        raise ConversionError(f"layers use different conv_clamp values {sorted(map(str, clamps))}; one is needed")
    return clamps.pop() if clamps else None


def _d_mbstd(init_kwargs: dict, attributes: dict, extra_channels: int) -> tuple[int, int]:
    """(group size, features) from the recorded MinibatchStdLayer, else epilogue_kwargs (official defaults 4, 1)."""
    epi = init_kwargs.get("epilogue_kwargs") or {}
    rec = attributes.get("b4.mbstd", {})
    group = rec.get("group_size", epi.get("mbstd_group_size", 4))
    feats = rec.get("num_channels", epi.get("mbstd_num_channels", 1))
    if feats != extra_channels:
        raise ConversionError(f"b4.conv reads {extra_channels} extra channel(s) but mbstd_num_channels={feats}")
    if group is None or int(group) < 1 or int(feats) < 1:
        raise ConversionError(f"minibatch-stddev with group_size={group}, num_channels={feats} is not supported "
                              "(need a fixed group size and >= 1 channel)")
    return int(group), int(feats)


def _refuse_unsupported_d(init_kwargs: dict, attributes: dict, sd: dict) -> None:
    if int(init_kwargs.get("c_dim", 0) or 0) > 0 or any(k.startswith("mapping.") for k in sd):
        raise ConversionError(f"conditional discriminators (c_dim={init_kwargs.get('c_dim', '?')}, a mapping "
                              "network) are not supported")
    archs = _attribute(attributes, "", "architecture") | {init_kwargs.get("architecture", "resnet")}
    if any(f"b{r}.skip.weight" not in sd for r in _d_resolutions(sd)) or "b4.fromrgb.weight" in sd:
        archs = (archs - {"resnet"}) or {"orig/skip (no resnet skip convolutions)"}
    if archs != {"resnet"}:
        raise ConversionError(f"only the 'resnet' discriminator architecture is supported, this one is {sorted(archs)}")
    if int(init_kwargs.get("img_channels", 3)) != 3:
        raise ConversionError(f"only RGB discriminators are supported, this one has {init_kwargs['img_channels']} "
                              "channels")
    acts = _attribute(attributes, "", "activation") | {
        (init_kwargs.get(kw) or {}).get("activation", "lrelu") for kw in ("block_kwargs", "epilogue_kwargs")}
    if acts - {"lrelu", "linear"}:
        raise ConversionError(f"activations {sorted(acts - {'lrelu', 'linear'})} are not supported (only lrelu)")
    if _attribute(attributes, "", "bias_gain") - {1, 1.0}:
        raise ConversionError("discriminator fully-connected layers with lr_multiplier != 1 are not supported")


def d_config_from_official(init_kwargs: dict | None, sd: dict, attributes: dict | None = None) -> dict:
    """Our DiscriminatorConfig fields from an official resnet Discriminator state_dict (+ kwargs / attributes)."""
    init_kwargs, attributes = init_kwargs or {}, attributes or {}
    _refuse_unsupported_d(init_kwargs, attributes, sd)
    resolutions = _d_resolutions(sd)
    if not resolutions or resolutions != [2 ** (i + 3) for i in range(len(resolutions))]:
        raise ConversionError(f"unexpected discriminator blocks {resolutions}")
    top = resolutions[-1]
    if f"b{top}.fromrgb.weight" not in sd or int(sd[f"b{top}.fromrgb.weight"].shape[1]) != 3:
        raise ConversionError(f"the discriminator's b{top}.fromrgb does not read 3 (RGB) channels")
    table = {int(math.log2(r)) - 2: int(sd[f"b{r}.conv0.weight"].shape[0]) for r in resolutions}
    table[0] = int(sd["b4.conv.weight"].shape[0])
    group, feats = _d_mbstd(init_kwargs, attributes, int(sd["b4.conv.weight"].shape[1]) - table[0])
    clamp = _d_conv_clamp(init_kwargs, attributes)
    return {"resolution": top, **channel_fields(table, lambda i: 2 ** (i + 2)), "mbstd_group": group,
            "mbstd_features": feats, "conv_clamp": None if clamp is None else float(clamp)}


def d_rules(fields: dict) -> list[Rule]:
    top = int(math.log2(fields["resolution"]))
    block = lambda g: f"blocks.{top - int(math.log2(int(g['r'])))}"  # noqa: E731
    layer = {"conv0": "conv1", "conv1": "conv2", "skip": "skip"}
    return [
        Rule(rf"b{fields['resolution']}\.fromrgb\.(?P<p>weight|bias)", "from_rgb.{p}"),
        Rule(r"b(?P<r>\d+)\.(?P<l>conv0|conv1|skip)\.(?P<p>weight|bias)",
             lambda g: f"{block(g)}.{layer[g['l']]}.{g['p']}"),
        Rule(r"b4\.conv\.(?P<p>weight|bias)", "final_conv.{p}"),
        Rule(r"b4\.(?P<l>fc|out)\.(?P<p>weight|bias)", "{l}.{p}"),
        Rule(r"b\d+\.((fromrgb|conv[01]|skip|conv)\.)?resample_filter", DROP, constant=fir_kernel()),
    ]


def d_from_official(sd: dict, init_kwargs: dict | None = None, attributes: dict | None = None):
    """Our stylegan2_d (eval mode) holding an official networks_stylegan2 resnet Discriminator state_dict."""
    from ..models.discriminator import Discriminator, DiscriminatorConfig

    if not detect_d(sd):
        raise ConversionError("not an NVlabs StyleGAN2 discriminator state_dict (no b4.conv / b4.fc / b4.out)")
    fields = d_config_from_official(init_kwargs, sd, attributes)
    ours = apply_rules(sd, d_rules(fields), "NVlabs StyleGAN2 discriminator")
    model = Discriminator(config_from_dict(DiscriminatorConfig, fields))
    load_mapped(model, ours, "NVlabs StyleGAN2 discriminator")
    model.metadata = {"source": "official", "arch": "stylegan2_d", "layout": "nvlabs networks_stylegan2"}
    return model.eval()


def d_from_record(record):
    """Our stylegan2_d from a NetworkRecord (convert.nvlabs_pickle.extract_network) of a networks_stylegan2 D."""
    return d_from_official(record.state_dict, record.init_kwargs, record.attributes)


# networks_stylegan2 (StyleGAN2-ADA, StyleGAN3 repo) G -> our stylegan2, and its resnet D -> our stylegan2_d
register_converter("stylegan2_ada", "stylegan2", "nvlabs", detect=detect, convert=from_official)
register_converter("stylegan2_d", "stylegan2_d", "nvlabs", convert=d_from_official, cli=False)


__all__ = ["detect", "config_from_official", "rules", "from_official", "from_record", "detect_d",
           "d_config_from_official", "d_rules", "d_from_official", "d_from_record"]
