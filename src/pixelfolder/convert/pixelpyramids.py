"""Import official PixelPyramids checkpoints (visinf/pixelpyramids main.py) into our PixelPyramids model.

An official checkpoint is {0: level-0 state_dict, ..., L-1: PixelCNN++ state_dict, 'optim': ..., 'sched': ...}
(or a list of the per-level state_dicts); it stores no configuration, so the params/<name>.json the model was
trained with is required. Key names: `module.` prefixes (DataParallel) are stripped; PixelCNN++ weight norm is
accepted in the old (weight_g / weight_v) and the parametrizations (original0 / original1) spellings; the
never-used `Down.conv` blocks are dropped unless keep_dead_down_convs=True.
"""
from __future__ import annotations

import re


from ..errors import ConversionError, PixelfolderError
from ..models.pixelpyramids import PixelPyramids, PixelPyramidsConfig, official_unet_depths
from ..registry import config_from_dict, register_converter
from .official import load_mapped

NO_PARAMS = ("official PixelPyramids checkpoints store no configuration: pass --params params/<name>.json")
DATASET_SIZES = {"celeba_256": (256, 256), "celeba_1024": (1024, 1024)}   # lsun_*: 128 x 128
OFFSET_LOADERS = ("celeba_256",)    # data/celeba.py adds 128 (mod 2**n_bits) to every residual

_DOUBLE = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2"}
_PCNN_GROUPS = {"u_input": "u_input", "ul_input_d": "ul_input_d", "ul_input_dr": "ul_input_dr",
                "up_u_modules": "up_u", "up_ul_modules": "up_ul", "down_u_modules": "down_u",
                "down_ul_modules": "down_ul", "output_conv": "output"}
_WN = {"weight_g": "weight_g", "weight_v": "weight_v", "parametrizations.weight.original0": "weight_g",
       "parametrizations.weight.original1": "weight_v", "bias": "bias"}

_FINE_RULES = [
    (r"inc\.double_conv\.(\d)\.(\w+)", lambda m: f"unet.inc.{_DOUBLE[m[1]]}.{m[2]}"),
    (r"downs\.(\d+)\.maxpool_conv\.0\.double_conv\.(\d)\.(\w+)",
     lambda m: f"unet.downs.{m[1]}.pre.{_DOUBLE[m[2]]}.{m[3]}"),
    (r"downs\.(\d+)\.maxpool_conv\.2\.double_conv\.(\d)\.(\w+)",
     lambda m: f"unet.downs.{m[1]}.post.{_DOUBLE[m[2]]}.{m[3]}"),
    (r"downs\.(\d+)\.conv\.double_conv\.(\d)\.(\w+)", lambda m: f"unet.downs.{m[1]}.unused.{_DOUBLE[m[2]]}.{m[3]}"),
    (r"ups\.(\d+)\.conv1\.double_conv\.(\d)\.(\w+)", lambda m: f"unet.ups.{m[1]}.deep.{_DOUBLE[m[2]]}.{m[3]}"),
    (r"ups\.(\d+)\.conv\.double_conv\.(\d)\.(\w+)", lambda m: f"unet.ups.{m[1]}.merge.{_DOUBLE[m[2]]}.{m[3]}"),
    (r"outc\.conv\.(weight|bias)", lambda m: f"unet.out.{m[1]}"),
    (r"conv_lstm_enc\.prior_lstm\.conv_embed\.(weight|bias)", lambda m: f"lstm.embed.{m[1]}"),
    (r"conv_lstm_enc\.prior_lstm\.lstm\.(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)",
     lambda m: f"lstm.cells.{m[2]}.{m[1]}"),
    (r"conv_lstm_enc\.prior_lstm\.conv_out1\.(weight|bias)", lambda m: f"lstm.out.{m[1]}"),
]
_PCNN_RULE = re.compile(r"(u_input|ul_input_d|ul_input_dr|output_conv|(?:up|down)_ul?_modules)"
                        r"((?:\.\d+)?(?:\.c1c|\.c1|\.c2)?)"
                        r"\.(weight_g|weight_v|bias|parametrizations\.weight\.original[01])")


def _strip(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module."):]
    return key


def _fine_key(key: str, compiled) -> str | None:
    for regex, target in compiled:
        m = regex.match(key)
        if m is not None:
            try:
                return target(m)
            except KeyError:     # a DoubleConv index that is not a conv or a BatchNorm
                return None
    return None


def map_fine_level(sd: dict, keep_dead: bool) -> dict:
    """Official UNet(+ConvLSTMEnc) keys -> ours; raises ConversionError naming unmapped keys."""
    out, unmapped = {}, []
    compiled = [(re.compile(p + r"\Z"), f) for p, f in _FINE_RULES]
    for key, value in sd.items():
        key = _strip(key)
        new = _fine_key(key, compiled)
        if new is None:
            unmapped.append(key)
        elif ".unused." not in new or keep_dead:
            out[new] = value
    _refuse(unmapped, "U-Net level")
    return out


def map_pixelcnn(sd: dict) -> dict:
    out, unmapped = {}, []
    for key, value in sd.items():
        key = _strip(key)
        m = _PCNN_RULE.fullmatch(key)
        if m is None:
            unmapped.append(key)
            continue
        out[f"{_PCNN_GROUPS[m[1]]}{m[2]}.{_WN[m[3]]}"] = value
    _refuse(unmapped, "PixelCNN++ level")
    return out


def _refuse(unmapped: list, what: str) -> None:
    if unmapped:
        shown = ", ".join(unmapped[:8]) + (f" (+{len(unmapped) - 8} more)" if len(unmapped) > 8 else "")
        raise ConversionError(f"cannot map {len(unmapped)} key(s) of the official {what}: {shown}")


def _level_dicts(obj, num_levels: int) -> list[dict]:
    if isinstance(obj, (list, tuple)):
        levels = list(obj)
    elif isinstance(obj, dict):
        lookup = {str(k): v for k, v in obj.items()}
        missing = [i for i in range(num_levels) if str(i) not in lookup]
        if missing:
            raise ConversionError(f"the checkpoint has no state_dict for level(s) {missing} (expected keys 0.."
                                  f"{num_levels - 1} as main.py saves them)")
        levels = [lookup[str(i)] for i in range(num_levels)]
    else:
        raise ConversionError("not an official PixelPyramids checkpoint: expected {level: state_dict} or a list")
    if len(levels) != num_levels or not all(isinstance(sd, dict) for sd in levels):
        raise ConversionError(f"expected {num_levels} per-level state_dicts (L from the params), got {len(levels)}")
    return levels


MAX_LEVELS = 21   # L = 21 is a 4096 px image; larger values are typos, refused before anything is built


def config_from_params(params: dict | None, **overrides) -> dict:
    """Our config fields from an official params/*.json content (its "params" dict, or the whole json)."""
    if not params:
        raise ConversionError(NO_PARAMS)
    try:
        return _config_from_params(params, overrides)
    except (TypeError, ValueError, IndexError, AttributeError) as e:
        if isinstance(e, PixelfolderError):
            raise
        raise ConversionError(f"the params json is not an official PixelPyramids params file: "
                              f"{type(e).__name__}: {e}") from None


def _config_from_params(params: dict, overrides: dict) -> dict:
    if not isinstance(params, dict):
        raise ConversionError(f"the params json must be an object, not a {type(params).__name__}")
    params = params.get("params", params)
    if not isinstance(params, dict):
        raise ConversionError("the params json's \"params\" entry must be an object")
    if not 1 <= int(params.get("L", 0)) <= MAX_LEVELS:
        raise ConversionError(f"the params json's L must be 1..{MAX_LEVELS}, got {params.get('L')!r}")
    try:
        num_levels, n_bits, name = int(params["L"]), int(params["n_bits"]), str(params.get("dataset_name", ""))
        height, width = _image_size(params, name, num_levels)
        fields = dict(height=height, width=width, num_levels=num_levels, unet_width=int(params["C"]),
                      n_bits=n_bits, n_classes=tuple(int(c) for c in params["n_classes"][:num_levels]),
                      n_squeeze=tuple(int(s) for s in params["n_squeeze"][:num_levels - 1]),
                      n_channels=int(params["n_channels"]), n_res_layers=int(params["n_res_layers"]))
    except KeyError as e:
        raise ConversionError(f"the params json has no {e} (need L, C, n_bits, n_classes, n_squeeze, n_channels, "
                              "n_res_layers)") from None
    depths = params.get("unet_n_layers") or official_unet_depths(num_levels)
    fields.update(unet_n_layers=tuple(int(d) for d in depths), nc_cond_embd=int(params.get("nc_cond_embd", 100)),
                  lstm_hidden=int(params.get("lstm_hidden", 128)),
                  lstm_num_layers=int(params.get("lstm_num_layers", 2)))
    if int(params.get("lstm_kernel_size", 3)) != 3 or list(params.get("pixelcnn_image_dims", [3, 4, 4])) != [3, 4, 4]:
        raise ConversionError("only lstm_kernel_size 3 and pixelcnn_image_dims [3, 4, 4] (the official values) "
                              "are supported")
    offset = params.get("residual_offset")
    fields["residual_offset"] = int(offset) if offset is not None else \
        (128 % 2 ** n_bits if name in OFFSET_LOADERS else 0)
    fields.update(overrides)
    return fields


def _image_size(params: dict, name: str, num_levels: int) -> tuple[int, int]:
    if "image_shape" in params:
        return int(params["image_shape"][1]), int(params["image_shape"][2])
    if name in DATASET_SIZES:
        return DATASET_SIZES[name]
    if name.startswith("lsun_"):
        return 128, 128
    splits = num_levels - 1
    side = 4 << (splits // 2)
    return side, side * (2 if splits % 2 else 1)


def from_official(checkpoint_obj, params: dict | None = None, *, keep_dead_down_convs: bool = False):
    """Our PixelPyramids (eval mode) from an official checkpoint object and its params json content."""
    fields = config_from_params(params, keep_dead_down_convs=keep_dead_down_convs)
    try:
        model = PixelPyramids(config_from_dict(PixelPyramidsConfig, fields))
    except PixelfolderError as e:
        raise ConversionError(f"the params do not describe a valid PixelPyramids model: {e}") from None
    L = fields["num_levels"]
    levels = _level_dicts(checkpoint_obj, L)
    ours = {}
    for i, sd in enumerate(levels):
        mapped = map_pixelcnn(sd) if i == L - 1 else map_fine_level(sd, keep_dead_down_convs)
        ours.update({f"levels.{i}.{k}": v for k, v in mapped.items()})
    load_mapped(model, ours, "pixelpyramids (does the checkpoint fit its params?)")
    name = str((params.get("params", params)).get("dataset_name", ""))
    model.metadata = {"source": "official", "arch": "pixelpyramids", "dataset_name": name,
                      "residual_offset": fields["residual_offset"],
                      "residual_offset_rule": "data/celeba.py (celeba_256) adds 128 mod 2**n_bits; celeba_1024.py "
                                              "and lsun.py add nothing",
                      "dead_down_convs": "kept" if keep_dead_down_convs else "dropped"}
    return model.eval()


register_converter("pixelpyramids", "pixelpyramids", "pixelpyramids", convert=from_official)


__all__ = ["from_official", "config_from_params", "NO_PARAMS"]
