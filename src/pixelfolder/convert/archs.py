"""Per-architecture knowledge for official checkpoints: detection, config inference and key rules."""
from __future__ import annotations

import math
import re


from .. import registry
from ..errors import ConversionError
from .official import MAPPING, Rule, conv_layer, lff, shifted, styled_conv, to_rgb


def _count(sd: dict, pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := regex.match(k))})


def _mapping_fields(sd: dict) -> dict:
    w = sd["style.1.weight"]
    return {"z_dim": int(w.shape[1]), "w_dim": int(w.shape[0]), "mapping_layers": _count(sd, r"style\.(\d+)\.weight")}


def _out(sd: dict, key: str) -> int:
    t = sd[key]
    return int(t.shape[1] if t.ndim == 5 else t.shape[0])


def channel_fields(table: dict[int, int], rule_key) -> dict:
    """channel_base/channel_max when the used widths follow min(max, base // r), else an explicit table.

    `table` maps table index -> width; `rule_key(index)` is the nominal resolution of that index.
    """
    cmax = max(table.values())
    below = [(i, c) for i, c in table.items() if c < cmax]
    base = below[0][1] * rule_key(below[0][0]) if below else cmax * rule_key(max(table))
    if all(min(cmax, base // rule_key(i)) == c for i, c in table.items()):
        return {"channel_base": base, "channel_max": cmax}
    size = max(table) + 1
    return {"channel_table": tuple(table.get(i, cmax) for i in range(size))}


def _res_index(r: int) -> int:
    return int(r).bit_length() - 3


# ----------------------------------------------------------------------------------------------- PixelFolder
def pixelfolder_config(sd: dict) -> dict:
    num_stages = _count(sd, r"lffs\.(\d+)\.")
    u0 = int(sd["input.input"].shape[-1])
    f = u0 // 4
    table = {_res_index(f): int(sd["convs.0.conv.weight"].shape[2])}
    for i in range(num_stages):
        for j in range(2):
            table[_res_index(2 * f * 2 ** j)] = _out(sd, f"convs.{4 * i + 2 * j}.conv.weight")
        f *= 4
    return {"resolution": u0 * 4 ** (num_stages - 1), **_mapping_fields(sd),
            **channel_fields(table, lambda i: 2 ** (i + 2)),
            "keep_unused_merge": "posfolders.0.conv_merge.0.weight" in sd}


def pixelfolder_rules(config: dict) -> list[Rule]:
    return [*MAPPING, Rule(r"input\.input", "synthesis.const"),
            *lff(r"lffs\.(?P<i>\d+)", "synthesis.lffs.{i}"),
            *conv_layer(r"posfolders\.0\.conv0", "synthesis.embed_const"),
            *conv_layer(r"posfolders\.(?P<i>\d+)\.conv1", "synthesis.projs.{i}"),
            *conv_layer(r"posfolders\.(?P<i>\d+)\.conv_merge", "synthesis.merges.{i}"),
            *styled_conv(r"convs\.(?P<i>\d+)", "synthesis.convs.{i}"),
            *to_rgb(r"to_rgbs\.(?P<i>\d+)", "synthesis.torgbs.{i}")]


# ------------------------------------------------------------------------------------------------------ CIPS
def cips_config(sd: dict, residual: bool) -> dict:
    resolution = int(sd["emb.input"].shape[-1])
    hidden = int(sd["emb.input"].shape[1])
    log = int(math.log2(resolution))
    if residual:
        table = {i: _out(sd, f"linears.{i + 1}.conv1.conv.weight") for i in range(log - 1)}
    else:
        table = {i: _out(sd, f"linears.{2 * i}.conv.weight") for i in range(log - 1)}
    return {"resolution": resolution, "hidden": hidden, **_mapping_fields(sd),
            **channel_fields(table, lambda i: 2 ** (i + 2)), "embedding_mode": "official", "truncation_space": "z"}


def cips_skip_rules(config: dict) -> list[Rule]:
    return [*MAPPING, *lff(r"lff", "synthesis.input.lff"), Rule(r"emb\.input", "synthesis.input.embedding"),
            *styled_conv(r"conv1", "synthesis.convs.0"),
            *styled_conv(r"linears\.(?P<i>\d+)", shifted("synthesis.convs.{i}", 1)),
            *to_rgb(r"to_rgbs\.(?P<i>\d+)", "synthesis.torgbs.{i}")]


def cips_res_rules(config: dict) -> list[Rule]:
    return [*MAPPING, *lff(r"lff", "synthesis.input.lff"), Rule(r"emb\.input", "synthesis.input.embedding"),
            *styled_conv(r"linears\.0", "synthesis.convs.0"),
            *styled_conv(r"linears\.(?P<i>\d+)\.conv1", shifted("synthesis.blocks.{i}.conv1", -1)),
            *styled_conv(r"linears\.(?P<i>\d+)\.conv2", shifted("synthesis.blocks.{i}.conv2", -1)),
            *conv_layer(r"linears\.(?P<i>\d+)\.skip", shifted("synthesis.blocks.{i}.skip", -1), bias=False),
            *to_rgb(r"to_rgb_last", "synthesis.torgb")]


# ------------------------------------------------------------------------------------------------- StyleGAN2
def stylegan2_config(sd: dict) -> dict:
    n = _count(sd, r"to_rgbs\.(\d+)\.")
    resolution = 2 ** (n + 2)
    table = {0: _out(sd, "conv1.conv.weight")}
    for k in range(n):
        table[k + 1] = _out(sd, f"convs.{2 * k}.conv.weight")
    return {"resolution": resolution, **_mapping_fields(sd), **channel_fields(table, lambda i: 2 ** (i + 2))}


def stylegan2_rules(config: dict) -> list[Rule]:
    return [*MAPPING, Rule(r"input\.input", "synthesis.const"),
            *styled_conv(r"conv1", "synthesis.convs.0"), *to_rgb(r"to_rgb1", "synthesis.torgbs.0"),
            *styled_conv(r"convs\.(?P<i>\d+)", shifted("synthesis.convs.{i}", 1)),
            *to_rgb(r"to_rgbs\.(?P<i>\d+)", shifted("synthesis.torgbs.{i}", 1)),
            Rule(r"noises\.noise_(?P<i>\d+)", "synthesis.convs.{i}.noise_const")]


# --------------------------------------------------------------------------------------------- Discriminator
def discriminator_config(sd: dict) -> dict:
    n_blocks = _count(sd, r"convs\.(\d+)\.conv1\.")
    if any(re.match(r"convs\.\d+\.0\.weight", k) and not k.startswith("convs.0.") for k in sd):
        raise ConversionError("discriminators with n_first_layers > 0 are not supported")
    resolution = 2 ** (n_blocks + 2)
    table = {_res_index(resolution): int(sd["convs.0.0.weight"].shape[0])}
    for b in range(n_blocks):
        table[_res_index(resolution >> (b + 1))] = int(sd[f"convs.{b + 1}.conv2.1.weight"].shape[0])
    in_ch = int(sd["convs.0.0.weight"].shape[1])
    if in_ch not in (3, 5):
        raise ConversionError(f"discriminator input has {in_ch} channels; only 3 (RGB) or 5 (RGB + coords) exist")
    return {"resolution": resolution, "coord_input": in_ch == 5, **channel_fields(table, lambda i: 2 ** (i + 2))}


def discriminator_rules(config: dict) -> list[Rule]:
    return [*conv_layer(r"convs\.0", "from_rgb"), *conv_layer(r"final_conv", "final_conv"),
            *conv_layer(r"convs\.(?P<i>\d+)\.conv1", shifted("blocks.{i}.conv1", -1)),
            *conv_layer(r"convs\.(?P<i>\d+)\.conv2", shifted("blocks.{i}.conv2", -1), down=True),
            *conv_layer(r"convs\.(?P<i>\d+)\.skip", shifted("blocks.{i}.skip", -1), down=True, bias=False),
            Rule(r"final_linear\.0\.(?P<p>weight|bias)", "fc.{p}"),
            Rule(r"final_linear\.1\.(?P<p>weight|bias)", "out.{p}")]


# ------------------------------------------------------------------------------------------------ registered
def _state_dict_converter(name: str, detect, infer_config, rules, cli: bool = True) -> None:
    registry.register_converter(name, name, "state_dict", detect=detect, infer_config=infer_config, rules=rules,
                                cli=cli)


_state_dict_converter("pixelfolder", lambda sd: "posfolders.0.conv1.0.weight" in sd, pixelfolder_config,
                      pixelfolder_rules)
_state_dict_converter("cips_skip", lambda sd: "emb.input" in sd and "to_rgbs.0.bias" in sd,
                      lambda sd: cips_config(sd, False), cips_skip_rules)
_state_dict_converter("cips_res", lambda sd: "emb.input" in sd and "to_rgb_last.bias" in sd,
                      lambda sd: cips_config(sd, True), cips_res_rules)
_state_dict_converter("stylegan2", lambda sd: "to_rgb1.bias" in sd and "input.input" in sd, stylegan2_config,
                      stylegan2_rules)
_state_dict_converter("stylegan2_d", lambda sd: "final_linear.0.weight" in sd, discriminator_config,
                      discriminator_rules, cli=False)       # detected from its keys; --which d picks it


def detect_arch(sd: dict) -> str:
    """The architecture of an official (rosinality-layout) state_dict, told from its keys."""
    found = [c.name for c in registry.converters("state_dict") if c.detect(sd)]
    if len(found) != 1:
        raise ConversionError("cannot tell the architecture from the keys (pass --arch): "
                              + (", ".join(found) if found else "no known layout matches"))
    return found[0]
