"""Import official PixelFolder / CIPS / rosinality-StyleGAN2 checkpoints into self-describing models."""
from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import read_record
from ..errors import ConversionError
from ..registry import architecture, config_from_dict
from .archs import ARCHS, detect_arch
from .official import apply_rules

TRAIN_KEYS = ("g_ema", "g", "d")
W_AVG_SEED = 0
W_AVG_SAMPLES = 10_000


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def split_official(obj) -> dict[str, dict]:
    """{'g_ema': sd, 'g': sd, 'd': sd} from a train.py dict, or {'g_ema' or 'd': sd} from a bare state_dict."""
    if _is_state_dict(obj):
        return {"d" if detect_arch(obj) == "stylegan2_d" else "g_ema": obj}
    if isinstance(obj, dict) and any(_is_state_dict(obj.get(k)) for k in TRAIN_KEYS):
        return {k: obj[k] for k in TRAIN_KEYS if _is_state_dict(obj.get(k))}
    if isinstance(obj, dict) and obj.get("format") == "pixelfolder-checkpoint":
        raise ConversionError("this is already a pixelfolder checkpoint: use pixelfolder.load")
    raise ConversionError("not an official checkpoint: expected a state_dict or a train.py dict with g_ema/g/d")


def convert_state_dict(state_dict: dict, arch: str | None = None, size: int | None = None, *,
                       w_avg_samples: int = W_AVG_SAMPLES, w_avg_seed: int = W_AVG_SEED):
    """Our model (eval mode) holding an official state_dict's weights; refuses anything it cannot map."""
    arch = arch or detect_arch(state_dict)
    if arch not in ARCHS:
        raise ConversionError(f"no converter for architecture {arch!r}; known: {', '.join(ARCHS)}")
    _, infer_config, rules = ARCHS[arch]
    try:
        fields = infer_config(state_dict)
    except KeyError as e:
        raise ConversionError(f"state_dict does not look like an official {arch}: missing key {e}") from None
    if size is not None and fields["resolution"] != size:
        raise ConversionError(f"the checkpoint is a {fields['resolution']} px {arch}, not {size} px")
    ours = apply_rules(state_dict, rules(fields), f"official {arch}")
    spec = architecture(arch)
    model = spec.cls(config_from_dict(spec.config_cls, fields))
    try:
        missing, unexpected = model.load_state_dict(ours, strict=False)
    except RuntimeError as e:
        raise ConversionError(f"shapes do not fit {arch}: {str(e).splitlines()[1].strip()}") from None
    missing = [k for k in missing if k != "mapping.w_avg"]
    if missing or unexpected:
        raise ConversionError(f"{arch}: missing {missing[:6]} unexpected {unexpected[:6]}")
    model.metadata = {"source": "official", "arch": arch}
    if hasattr(model, "mapping"):
        model.mapping.compute_w_avg(w_avg_samples, w_avg_seed)
        model.metadata["w_avg"] = {"seed": w_avg_seed, "num_samples": w_avg_samples,
                                   "how": "mean of mapping(z), z ~ N(0, I) from torch.Generator(seed)"}
    return model.eval()


def read_official(path) -> object:
    try:
        return read_record(path)
    except Exception as e:  # noqa: BLE001
        raise ConversionError(f"{e} (official files are read with weights_only=True; pickled classes are refused)"
                              ) from None


def convert_all(path, arch: str | None = None, size: int | None = None) -> dict:
    """Every network in an official file: {'g_ema': G, 'g': G, 'd': D} as present."""
    parts = split_official(read_official(path))
    out = {}
    for name, sd in parts.items():
        model = convert_state_dict(sd, None if name == "d" else arch, size)
        model.metadata["converted_from"] = Path(path).name
        model.metadata["network"] = name
        out[name] = model
    return out


def load_official(path, arch: str | None = None, size: int | None = None, which: str = "g_ema",
                  channels_last: bool = True):
    """One network of an official checkpoint as our model in eval mode (`which`: g_ema, g or d)."""
    parts = split_official(read_official(path))
    if which not in parts:
        raise ConversionError(f"{path} has no {which!r}; it has {', '.join(parts)}")
    model = convert_state_dict(parts[which], None if which == "d" else arch, size)
    model.metadata.update(converted_from=Path(path).name, network=which)
    return model.to(memory_format=torch.channels_last) if channels_last else model


__all__ = ["convert_state_dict", "convert_all", "load_official", "split_official", "detect_arch"]
