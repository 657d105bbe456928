"""Official CREPS generators (VinAIResearch/CREPS training/networks_creps.py:Generator) -> our `creps` model.

Every official key is renamed (input weight/freqs reshaped), except `synthesis.b4.input.coords`: that grid
is regenerated for every render size, so it is only checked to be the official linspace(0, 1, R). The
official `mapping.w_avg` is kept as is.
"""
from __future__ import annotations

import re

import torch

from ..errors import ConversionError
from ..models.creps import CREPS, CREPSConfig
from ..registry import config_from_dict, register_converter
from .archs import channel_fields
from .official import Rule, apply_rules, load_mapped

COORDS_KEY = "synthesis.b4.input.coords"
LAYER = r"(?P<layer>fc0|fc1|tores)"
PARAM = r"(?P<p>weight|bias|affine\.weight|affine\.bias)"
KNOWN_KWARGS = {"z_dim", "w_dim", "c_dim", "img_resolution", "img_channels", "mapping_kwargs", "channel_base",
                "channel_max", "biline_channels", "num_fp16_res", "class_name"}
KNOWN_MAPPING = {"num_layers", "lr_multiplier", "w_avg_beta"}


def detect(sd: dict) -> bool:
    return "synthesis.b4.input.freqs" in sd


def _block(res: str) -> int:
    return int(res).bit_length() - 3     # b4 -> 0, b8 -> 1, ...


def _rules() -> list[Rule]:
    head_layer = {"fc0": "fc0", "fc1": "fc1", "tores": "torgb"}
    return [
        Rule(r"mapping\.fc(?P<i>\d+)\.(?P<p>weight|bias)", "mapping.layers.{i}.{p}"),
        Rule(r"mapping\.w_avg", "mapping.w_avg"),
        Rule(r"synthesis\.b4\.input\.weight", "synthesis.input.weight", lambda t: t.reshape(t.shape[1], -1)),
        Rule(r"synthesis\.b4\.input\.freqs", "synthesis.input.freqs", None),   # reshaped in from_official
        Rule(r"synthesis\.b4\.input\.affine\.(?P<p>weight|bias)", "synthesis.input.affine.{p}"),
        Rule(rf"synthesis\.b(?P<r>\d+)\.{LAYER}\.{PARAM}",
             lambda g: f"synthesis.lines.{_block(g['r'])}.{g['layer']}.{g['p']}"),
        Rule(r"synthesis\.decoder_(?P<r>\d+)\.(?P<j>\d+)\.(?P<p>weight|bias)",
             lambda g: f"synthesis.decoders.{_block(g['r']) - 1}.layers.{g['j']}.{g['p']}"),
        Rule(r"synthesis\.decoder_last\.(?P<j>\d+)\.(?P<p>weight|bias)", "synthesis.decoder_last.layers.{j}.{p}"),
        Rule(r"synthesis\.decoder_img\.(?P<p>weight|bias)", "synthesis.decoder_img.{p}"),
        Rule(rf"synthesis\.block(?P<i>[01])\.{LAYER}\.{PARAM}",
             lambda g: f"synthesis.head.{g['i']}.{head_layer[g['layer']]}.{g['p']}"),
    ]


def _shape_fields(sd: dict) -> dict:
    """Fields only the shapes tell (the official constructor does not expose them)."""
    c4 = int(sd["synthesis.b4.input.weight"].shape[1])
    last = [sd[f"synthesis.decoder_last.{j}.weight"] for j in range(4)]
    return {"rank": int(sd["synthesis.b4.input.weight"].shape[-1]) // 2,
            "biline_channels": int(last[0].shape[1]),
            "decoder_hidden": tuple(int(t.shape[0]) for t in last[:-1]),
            "head_channels": (int(sd["synthesis.block0.fc0.weight"].shape[0]),
                              int(sd["synthesis.block1.fc0.weight"].shape[0])),
            "_c4": c4}


def _inferred(sd: dict) -> dict:
    res = sorted({int(m.group(1)) for k in sd if (m := re.match(r"synthesis\.b(\d+)\.fc1\.weight\Z", k))})
    table = {_block(r): int(sd[f"synthesis.b{r}.fc1.weight"].shape[0]) for r in res}
    n_mapping = len({k for k in sd if re.match(r"mapping\.fc\d+\.weight\Z", k)})
    fc0 = sd["mapping.fc0.weight"]
    return {"resolution": res[-1], "z_dim": int(fc0.shape[1]), "w_dim": int(fc0.shape[0]),
            "mapping_layers": n_mapping, **channel_fields(table, lambda i: 2 ** (i + 2))}


def _from_kwargs(kw: dict) -> dict:
    unknown = sorted(set(kw) - KNOWN_KWARGS)
    mapping = dict(kw.get("mapping_kwargs") or {})
    unknown += sorted(f"mapping_kwargs.{k}" for k in set(mapping) - KNOWN_MAPPING)
    if unknown:
        raise ConversionError(f"official CREPS init_kwargs we cannot reproduce: {', '.join(unknown)}")
    if kw.get("c_dim", 0) or kw.get("img_channels", 3) != 3:
        raise ConversionError("only unconditional RGB CREPS generators (c_dim 0, img_channels 3) are supported")
    fields = {"resolution": int(kw["img_resolution"]), "z_dim": int(kw["z_dim"]), "w_dim": int(kw["w_dim"]),
              "channel_base": int(kw.get("channel_base", 32768)), "channel_max": int(kw.get("channel_max", 512)),
              "mapping_layers": int(mapping.get("num_layers", 8)),
              "mapping_lr_mul": float(mapping.get("lr_multiplier", 0.01))}
    if "biline_channels" in kw:
        fields["biline_channels"] = int(kw["biline_channels"])
    return fields


def config_from_official(init_kwargs: dict | None, sd: dict) -> dict:
    """Our CREPSConfig fields from the official Generator kwargs (or from the shapes when None)."""
    try:
        shapes = _shape_fields(sd)
        fields = _from_kwargs(init_kwargs) if init_kwargs is not None else _inferred(sd)
    except KeyError as e:
        raise ConversionError(f"state_dict does not look like an official CREPS generator: missing {e}") from None
    c4 = shapes.pop("_c4")
    if fields.get("biline_channels", shapes["biline_channels"]) != shapes["biline_channels"]:
        raise ConversionError("init_kwargs biline_channels does not match the state_dict")
    fields.update(shapes)
    if "synthesis.b4.input.freqs" in sd and sd["synthesis.b4.input.freqs"].numel() != c4 // 2 * fields["rank"]:
        raise ConversionError("synthesis.b4.input.freqs does not have (channels / 2) * rank entries")
    return fields


def _check_coords(sd: dict, resolution: int) -> None:
    coords = sd.get(COORDS_KEY)
    if coords is None:
        return
    want = torch.linspace(0, 1, resolution).reshape(1, -1, 1, 1).repeat(1, 1, 2, 1)
    if coords.shape != want.shape or not torch.allclose(coords.float(), want, atol=1e-6):
        raise ConversionError(f"{COORDS_KEY} is not the official linspace(0, 1, {resolution}) grid (edited grids"
                              " are not supported; pass size= or scale= to render other grids)")


def from_official(sd: dict, init_kwargs: dict | None = None) -> CREPS:
    """Our CREPS (eval mode) holding an official state_dict; every key mapped or a one-line ConversionError."""
    fields = config_from_official(init_kwargs, sd)
    _check_coords(sd, fields["resolution"])
    ours = apply_rules({k: v for k, v in sd.items() if k != COORDS_KEY}, _rules(), "official creps")
    if "synthesis.input.freqs" in ours:
        ours["synthesis.input.freqs"] = ours["synthesis.input.freqs"].reshape(-1, fields["rank"])
    try:
        model = CREPS(config_from_dict(CREPSConfig, fields))
    except ValueError as e:
        raise ConversionError(f"cannot build CREPS from the official config: {e}") from None
    load_mapped(model, ours, "creps")
    model.metadata = {"source": "official", "arch": "creps",
                      "w_avg": {"how": "official mapping.w_avg buffer, kept as stored"},
                      "coords": "regenerated as linspace(0, 1, n) for every render size"}
    return model.eval()


register_converter("creps", "creps", "nvlabs", detect=detect,
                   convert=lambda sd, init_kwargs, attributes: from_official(sd, init_kwargs))


__all__ = ["detect", "config_from_official", "from_official"]
