"""Official INR-GAN / INR-GAN-bil generators (universome/inr-gan, StyleGAN2-ADA layout) -> our models.

Input: the G (or G_ema) state_dict and, when known, the official Generator kwargs (`init_kwargs`, with `cfg`
the generator section of the yml and its OmegaConf `${...}` interpolations unresolved). A bare state_dict
cannot tell INR-GAN from INR-GAN-bil (same keys, the difference is upsampling mode and a parameter-free
instance norm): pass arch='inrgan_bil' then. The official `mapping.w_avg` is kept as is.
"""
from __future__ import annotations

import math
import re


from ..errors import ConversionError
from ..layers import fir_kernel
from ..registry import architecture, config_from_dict, register_converter
from .archs import channel_fields
from .official import DROP, Rule, apply_rules, load_mapped

ARCHS = ("inrgan", "inrgan_bil")
_BLOCK = re.compile(r"synthesis\.b(\d+)\.")
_INTERP = re.compile(r"\$\{([^}]+)\}")


def detect(sd: dict) -> bool:
    """True for an official INR-GAN generator state_dict (either variant)."""
    return any(k.startswith("synthesis.b4.input.input.coord_fuser.") for k in sd)


# --------------------------------------------------------------------------------------- cfg resolution
def _lookup(root: dict, path: str):
    node = root
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConversionError(f"cfg interpolation ${{{path}}} points nowhere")
        node = node[part]
    return node


def resolve(node, root: dict | None = None, depth: int = 0):
    """The cfg with every `${a.b}` interpolation (relative to the cfg root) replaced by its value."""
    root = node if root is None else root
    if depth > 32:
        raise ConversionError("cfg interpolations nest too deeply (a cycle?)")
    if isinstance(node, dict):
        return {k: resolve(v, root, depth) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, root, depth) for v in node]
    if isinstance(node, str) and "${" in node:
        whole = _INTERP.fullmatch(node)
        if whole:
            return resolve(_lookup(root, whole.group(1)), root, depth + 1)
        return _INTERP.sub(lambda m: str(resolve(_lookup(root, m.group(1)), root, depth + 1)), node)
    return node


# ------------------------------------------------------------------------------------------ config
def _block_resolutions(sd: dict) -> list[int]:
    return sorted({int(m.group(1)) for k in sd if (m := _BLOCK.match(k))})


def _fuser_prefix(res: int, input_res: int) -> str:
    return "synthesis.b4.input.input.coord_fuser" if res == input_res else f"synthesis.b{res}.coord_fuser"


def _settings_from_sd(sd: dict, prefix: str, res: int) -> tuple[int, int, bool]:
    const = sd.get(f"{prefix}.const_embs")
    rand = sd.get(f"{prefix}.random_basis")
    k = int(sd[f"{prefix}.log_basis"].shape[0])
    return (0 if const is None else int(const.shape[1]), 0 if rand is None else int(rand.shape[0]),
            k == 4 * math.ceil(math.log2(res)))


def _settings_from_cfg(res_cfg: dict, res: int) -> tuple[int, int, bool]:
    for key in ("shared_emb_size", "predictable_emb_size"):
        if res_cfg.get(key, 0):
            raise ConversionError(f"coordinate {key} (res {res}) is not supported")
    if res_cfg.get("use_raw_coords", False) or not res_cfg.get("use_cosine", False):
        raise ConversionError(f"coordinate features at res {res} need use_cosine and no use_raw_coords")
    if not res_cfg.get("log_emb_size", 0):
        raise ConversionError(f"coordinate features at res {res} without the log basis are not supported")
    return int(res_cfg.get("const_emb_size", 0)), int(res_cfg.get("random_emb_size", 0)), \
        bool(res_cfg.get("use_diagonal", False))


def _coord_fields(settings: dict[int, tuple], input_res: int, resolution: int) -> dict:
    """low/medium fields from per-grid (const, random, diagonal) settings; refuses other patterns."""
    low = settings[input_res]
    grids = sorted(settings)
    medium_from = next((g for g in grids if settings[g] != low), 2 * resolution)
    medium = settings.get(medium_from, low)
    bad = [g for g in grids if settings[g] != (low if g < medium_from else medium)]
    if bad:
        raise ConversionError(f"coordinate settings per resolution {settings} are not a low/medium split")
    return {"medium_from": medium_from, "low_const": low[0], "low_random": low[1], "low_diagonal": low[2],
            "medium_const": medium[0], "medium_random": medium[1], "medium_diagonal": medium[2]}


def _config_from_sd(sd: dict) -> dict:
    resolutions = _block_resolutions(sd)
    fused = [r for r in resolutions if f"synthesis.b{r}.coord_fuser.log_basis" in sd]
    if not fused:
        raise ConversionError("INR-GAN without upsampling blocks (resolution <= input resolution) is not supported")
    input_res = min(fused) // 2
    settings = {input_res: _settings_from_sd(sd, _fuser_prefix(input_res, input_res), input_res)}
    settings.update({r: _settings_from_sd(sd, _fuser_prefix(r, input_res), r) for r in fused})
    conv = sd["synthesis.b8.conv1.affine.weight"] if "synthesis.b8.conv1.affine.weight" in sd else \
        sd["synthesis.b4.conv1.affine.weight"]
    o, i = sd["synthesis.b8.conv1.weight"].shape[:2] if "synthesis.b8.conv1.weight" in sd else \
        sd["synthesis.b4.conv1.weight"].shape[:2]
    extra = {}
    for r in resolutions:
        count = len({k for k in sd if k.startswith(f"synthesis.b{r}.extra_convs.") and k.endswith(".bias")
                     and ".affine." not in k})
        if count:
            extra[max(r, input_res)] = count
    mapping = sorted({int(m.group(1)) for k in sd if (m := re.match(r"mapping\.fc(\d+)\.weight", k))})
    w = sd["mapping.fc0.weight"]
    return {"resolution": max(resolutions), "z_dim": int(w.shape[1]), "w_dim": int(w.shape[0]),
            "mapping_layers": len(mapping), "input_resolution": input_res,
            "fmm_rank": int(conv.shape[0]) // int(o + i), "extra_convs": tuple(sorted(extra.items())),
            **_channels(sd, resolutions), **_coord_fields(settings, input_res, max(resolutions))}


def _channels(sd: dict, resolutions: list[int]) -> dict:
    table = {int(r).bit_length() - 3: int(sd[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in resolutions}
    return channel_fields(table, lambda i: 2 ** (i + 2))


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise ConversionError(f"unsupported INR-GAN configuration: {what}")


def _config_from_kwargs(kw: dict, sd: dict) -> dict:
    cfg = resolve(kw.get("cfg") or {})
    syn, mapping = dict(kw.get("synthesis_kwargs") or {}), dict(kw.get("mapping_kwargs") or {})
    _require(kw.get("c_dim", 0) == 0, "conditional (c_dim > 0)")
    _require(kw.get("img_channels", 3) == 3, "img_channels != 3")
    _require(syn.get("conv_clamp") is None, "conv_clamp is set")
    _require(syn.get("architecture", "skip") == "skip", "synthesis architecture other than 'skip'")
    _require(set(mapping) <= {"num_layers", "lr_multiplier", "w_avg_beta"}, f"mapping_kwargs {sorted(mapping)}")
    _require(cfg.get("upsampling_mode") in ("nearest", "bilinear"), f"upsampling_mode {cfg.get('upsampling_mode')!r}")
    _require(not cfg.get("use_noise", False), "use_noise")
    inp, coords, fmm = cfg.get("input", {}), cfg.get("coords", {}), cfg.get("fmm", {})
    _require(inp.get("type") == "coords", f"input type {inp.get('type')!r}")
    _require(coords.get("enabled", False) and coords.get("per_resolution", False)
             and not coords.get("fallback", False) and coords.get("kernel_size", 1) == 1,
             "coords must be enabled, per_resolution, without fallback, kernel_size 1")
    _require(fmm.get("enabled", False) and fmm.get("activation", "demod") == "demod", "fmm must be on with 'demod'")
    resolution, input_res = int(kw["img_resolution"]), int(inp["resolution"])
    _require(resolution > input_res, "img_resolution <= input resolution")
    res_cfgs = inp.get("coord_fuser_cfg", coords).get("res_configs", {})
    grids = [input_res] + [2 ** k for k in range(int(math.log2(input_res)) + 1, int(math.log2(resolution)) + 1)]
    missing = [g for g in grids if str(g) not in res_cfgs]
    _require(not missing, f"no coords.res_configs for {missing}")
    settings = {g: _settings_from_cfg(res_cfgs[str(g)], g) for g in grids}
    extra = {max(int(r), input_res): int(n) for r, n in (cfg.get("num_extra_convs") or {}).items()
             if int(n) > 0 and int(r) <= resolution}
    return {"resolution": resolution, "z_dim": int(kw["z_dim"]), "w_dim": int(kw["w_dim"]),
            "mapping_layers": int(mapping.get("num_layers", 8)),
            "mapping_lr_mul": float(mapping.get("lr_multiplier", 0.01)),
            "channel_base": int(syn.get("channel_base", 32768)), "channel_max": int(syn.get("channel_max", 512)),
            "input_resolution": input_res, "upsampling": cfg["upsampling_mode"],
            "instance_norm": bool(fmm.get("instance_norm", False)), "fmm_rank": int(fmm.get("rank", 10)),
            "extra_convs": tuple(sorted(extra.items())), **_coord_fields(settings, input_res, resolution)}


def config_from_official(init_kwargs: dict | None, sd: dict) -> dict:
    """Our config fields from the official kwargs, or from the state_dict shapes alone.

    Without kwargs, `upsampling` and `instance_norm` are left out (the arch's defaults apply).
    """
    try:
        if init_kwargs is None:
            return _config_from_sd(sd)
        return _config_from_kwargs(init_kwargs, sd)
    except KeyError as e:
        raise ConversionError(f"not an official INR-GAN generator: missing {e}") from None


def arch_of(fields: dict) -> str:
    """'inrgan_bil' for bilinear upsampling, else 'inrgan' (the other fields are shared)."""
    return "inrgan_bil" if fields.get("upsampling") == "bilinear" else "inrgan"


# --------------------------------------------------------------------------------------------- keys
def rules(config: dict) -> list[Rule]:
    index = lambda g: int(g["r"]).bit_length() - 3  # noqa: E731
    layer = r"(?P<layer>conv0|conv1|extra_convs\.\d+)"
    return [
        Rule(r"mapping\.fc(?P<i>\d+)\.(?P<p>weight|bias)", "mapping.layers.{i}.{p}"),
        Rule(r"mapping\.w_avg", "mapping.w_avg"),
        Rule(r"synthesis\.b4\.input\.input\.coord_fuser\.(?P<p>const_embs|log_basis|random_basis)",
             "synthesis.blocks.0.coords.{p}"),
        Rule(r"synthesis\.b(?P<r>\d+)\.coord_fuser\.(?P<p>const_embs|log_basis|random_basis)",
             lambda g: f"synthesis.blocks.{index(g)}.coords.{g['p']}"),
        Rule(rf"synthesis\.b(?P<r>\d+)\.{layer}\.weight", lambda g: f"synthesis.blocks.{index(g)}.{g['layer']}.weight",
             lambda t: t.reshape(t.shape[0], t.shape[1])),
        Rule(rf"synthesis\.b(?P<r>\d+)\.{layer}\.(?P<p>bias|affine\.weight|affine\.bias)",
             lambda g: f"synthesis.blocks.{index(g)}.{g['layer']}.{g['p']}"),
        Rule(r"synthesis\.b(?P<r>\d+)\.torgb\.(?P<p>weight|bias|affine\.weight|affine\.bias)",
             lambda g: f"synthesis.blocks.{index(g)}.torgb.{g['p']}"),
        Rule(r"synthesis\.b\d+\.(?:(?:conv0|conv1|extra_convs\.\d+)\.)?resample_filter", DROP, constant=fir_kernel()),
    ]


def from_official(sd: dict, init_kwargs: dict | None = None, arch: str | None = None):
    """Our model (eval mode) with the official weights; every key is mapped, dropped as a checked constant,
    or reported. `arch` ('inrgan' / 'inrgan_bil') is needed only for a bare state_dict of INR-GAN-bil."""
    fields = config_from_official(init_kwargs, sd)
    found = arch_of(fields)
    if arch is not None and arch not in ARCHS:
        raise ConversionError(f"arch must be one of {ARCHS}, got {arch!r}")
    if arch is not None and init_kwargs is not None and arch != found:
        raise ConversionError(f"the checkpoint's cfg describes {found}, not {arch}")
    arch = arch or found
    spec = architecture(arch)
    ours = apply_rules(sd, rules(fields), f"official {arch}")
    model = spec.cls(config_from_dict(spec.config_cls, fields))
    load_mapped(model, ours, arch)
    model.metadata = {"source": "official", "arch": arch, "w_avg": "official mapping.w_avg (tracked in training)"}
    if init_kwargs is not None:
        fp16 = (init_kwargs.get("synthesis_kwargs") or {}).get("num_fp16_res", 0)
        if fp16:
            model.metadata["note"] = f"official num_fp16_res={fp16}; this model runs in float32"
    return model.eval()


# the two variants have identical keys: detection names "inrgan" and the pickle's init kwargs (or --arch) decide
register_converter("inrgan", "inrgan", "nvlabs", detect=detect,
                   convert=lambda sd, init_kwargs, attributes: from_official(sd, init_kwargs, arch="inrgan"))
register_converter("inrgan_bil", "inrgan_bil", "nvlabs",
                   convert=lambda sd, init_kwargs, attributes: from_official(sd, init_kwargs, arch="inrgan_bil"))


__all__ = ["ARCHS", "detect", "resolve", "config_from_official", "arch_of", "from_official", "rules"]
