"""Import official checkpoints into self-describing models.

- PixelFolder / CIPS / rosinality-StyleGAN2: torch.save dicts or bare state_dicts (rules in archs.py);
- INR-GAN / CREPS / StyleGAN2-ADA / StyleGAN3-repo StyleGAN2: NVlabs `network-snapshot-*.pkl` files, read as data by
  nvlabs_pickle.py (nothing in them is executed), or their bare state_dicts;
- PixelPyramids: per-level state_dicts plus the official params json (the checkpoints store no configuration).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ConversionError, PixelfolderError
from .. import registry
from ..registry import architecture, config_from_dict
from .archs import detect_arch
from .official import apply_rules, load_mapped

TRAIN_KEYS = ("g_ema", "g", "d")
W_AVG_SEED = 0
W_AVG_SAMPLES = 10_000


NVLABS_WHICH = {"g_ema": "G_ema", "g": "G", "d": "D"}


def detect_module_arch(sd: dict) -> str | None:
    """The registered NVlabs-layout converter whose detector accepts this generator state_dict, else None."""
    found = [c.name for c in registry.converters("nvlabs") if c.detect is not None and c.detect(sd)]
    return found[0] if found else None


def convert_module_arch(sd: dict, arch: str, init_kwargs: dict | None = None, attributes: dict | None = None):
    """An NVlabs-layout state_dict (INR-GAN, CREPS, StyleGAN2-ADA G or D) through its registered converter."""
    return registry.converter("nvlabs", arch).convert(sd, init_kwargs, attributes).eval()


def load_network_pickle(path, which: str = "g_ema", snapshot: dict | None = None):
    """One network of an NVlabs network pickle, read without executing anything, as our model.

    `snapshot`: the file's dict from nvlabs_pickle.read_network_pickle when already read.
    """
    from .nvlabs_pickle import detect_pickle_arch, extract_network
    try:
        record = extract_network(path if snapshot is None else snapshot, NVLABS_WHICH.get(which.lower(), which))
        arch = detect_pickle_arch(record)
        arch = "stylegan2_ada" if arch == "stylegan2" else arch    # the NVlabs layout of our stylegan2
        model = convert_module_arch(record.state_dict, arch, record.init_kwargs, record.attributes)
    except PixelfolderError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RuntimeError, OverflowError) as e:
        # crafted init_kwargs or tensors reaching the converters; torch reports bad shapes as RuntimeError
        msg = str(e).strip().splitlines()
        raise ConversionError(f"malformed network pickle {path}: {type(e).__name__}: {msg[0] if msg else ''}"
                              ) from None
    model.metadata.update(converted_from=Path(path).name, network=record.which, official_class=record.class_name,
                          module_src_sha256=dict(record.module_src_sha256))
    return model


def load_pixelpyramids(checkpoint_obj, params, *, label: str = "checkpoint"):
    """An official PixelPyramids checkpoint (the object torch.load returned) with its params json (path or dict)."""
    from ..networks import read_params
    from .pixelpyramids import NO_PARAMS, config_from_params, from_official
    if params is None:
        raise ConversionError(NO_PARAMS)
    params = read_params(params)
    config_from_params(params)          # a bad params file is reported before the checkpoint is mapped
    model = from_official(checkpoint_obj, params)
    model.metadata.update(converted_from=Path(label).name)
    return model.eval()


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def split_official(obj) -> dict[str, dict]:
    """{'g_ema': sd, 'g': sd, 'd': sd} from a train.py dict, or {'g_ema' or 'd': sd} from a bare state_dict."""
    if _is_state_dict(obj):
        if detect_module_arch(obj):
            return {"g_ema": obj}
        return {"d" if detect_arch(obj) == "stylegan2_d" else "g_ema": obj}
    if isinstance(obj, dict) and any(_is_state_dict(obj.get(k)) for k in TRAIN_KEYS):
        return {k: obj[k] for k in TRAIN_KEYS if _is_state_dict(obj.get(k))}
    if isinstance(obj, dict) and obj.get("format") == "pixelfolder-checkpoint":
        raise ConversionError("this is already a pixelfolder checkpoint: use pixelfolder.load")
    raise ConversionError("not an official checkpoint: expected a state_dict or a train.py dict with g_ema/g/d")


def convert_state_dict(state_dict: dict, arch: str | None = None, size: int | None = None, *,
                       w_avg_samples: int = W_AVG_SAMPLES, w_avg_seed: int = W_AVG_SEED):
    """Our model (eval mode) holding an official state_dict's weights; refuses anything it cannot map."""
    module_arch = detect_module_arch(state_dict) if arch is None else None
    if module_arch == "inrgan":
        raise ConversionError("INR-GAN and INR-GAN-bil state_dicts have identical keys: pass --arch inrgan or "
                              "inrgan_bil (a network pickle records which one it is)")
    nvlabs_only = arch is not None and registry.converter("state_dict", arch) is None \
        and registry.converter("nvlabs", arch) is not None
    if module_arch or nvlabs_only:
        return convert_module_arch(state_dict, arch or module_arch)
    arch = arch or detect_arch(state_dict)
    found = registry.converter("state_dict", arch)
    if found is None:
        known = ", ".join(c.name for c in registry.converters("state_dict"))
        raise ConversionError(f"no converter for architecture {arch!r}; known: {known}")
    infer_config, rules = found.infer_config, found.rules
    try:
        fields = infer_config(state_dict)
    except KeyError as e:
        raise ConversionError(f"state_dict does not look like an official {arch}: missing key {e}") from None
    if size is not None and fields["resolution"] != size:
        raise ConversionError(f"the checkpoint is a {fields['resolution']} px {arch}, not {size} px")
    ours = apply_rules(state_dict, rules(fields), f"official {arch}")
    spec = architecture(arch)
    model = spec.cls(config_from_dict(spec.config_cls, fields))
    load_mapped(model, ours, arch, optional=("mapping.w_avg",))
    model.metadata = {"source": "official", "arch": arch}
    if hasattr(model, "mapping"):
        model.mapping.compute_w_avg(w_avg_samples, w_avg_seed)
        model.metadata["w_avg"] = {"seed": w_avg_seed, "num_samples": w_avg_samples,
                                   "how": "mean of mapping(z), z ~ N(0, I) from torch.Generator(seed)"}
    return model.eval()


def convert_all(path, arch: str | None = None, size: int | None = None, params=None) -> dict:
    """Every network in an official file: {'g_ema': G, 'g': G, 'd': D} as present (see pixelfolder.networks)."""
    from ..networks import load_all
    return load_all(path, arch=arch, size=size, params=params)


def load_official(path, arch: str | None = None, size: int | None = None, which: str = "g_ema",
                  channels_last: bool = True, params=None):
    """One network of an official checkpoint as our model in eval mode (`which`: g_ema, g or d).

    `params`: the official params json (path or dict), needed for PixelPyramids checkpoints. The same as
    pixelfolder.load, which opens every kind of network.
    """
    from ..networks import load
    return load(path, which=which, arch=arch, size=size, params=params, channels_last=channels_last)


__all__ = ["convert_state_dict", "convert_all", "load_official", "split_official", "detect_arch",
           "load_network_pickle", "load_pixelpyramids"]
