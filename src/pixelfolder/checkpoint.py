"""Self-describing checkpoints: plain data (arch name, config dict, state_dict, metadata), never pickled classes.

Two containers hold the same record: a torch zip (`.pt`, readable with torch.load(weights_only=True)) and a
safetensors file (`.safetensors`: the tensors, with format/version/arch/kind/config/metadata as JSON strings in
its header metadata). The suffix of the path decides; a `.safetensors` name is never written as a torch zip.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from .atomic import atomic_torch_save, atomic_write
from .errors import CheckpointError, PixelfolderError, first_line
from .registry import architecture, config_from_dict
from .utils import check_seed_rng

FORMAT = "pixelfolder-checkpoint"
VERSION = 1
SAFETENSORS_SUFFIX = ".safetensors"
RECORD_FIELDS = ("format", "version", "arch", "kind", "config", "metadata", "seed_rng")  # safetensors header fields


def to_record(model, metadata: dict | None = None) -> dict:
    """The plain-data dict `save` writes (`seed_rng`: how a generator's seeds draw z; None for other kinds)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "arch": model.arch,
        "kind": model.kind,
        "config": dataclasses.asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": dict(metadata or {}),
        "seed_rng": getattr(model, "seed_rng", None),
    }


def is_safetensors_path(path) -> bool:
    return Path(path).suffix.lower() == SAFETENSORS_SUFFIX


def _safetensors():
    try:
        import safetensors.torch
    except ImportError:
        raise PixelfolderError("safetensors files need the safetensors package: pip install safetensors") from None
    return safetensors.torch


def save_safetensors(record: dict, path) -> None:
    """The record as a safetensors file: tensors as tensors, every other field JSON in the header."""
    st = _safetensors()
    tensors = {k: v.clone(memory_format=torch.contiguous_format) for k, v in record["state_dict"].items()}
    header = {k: json.dumps(record.get(k), default=str) for k in RECORD_FIELDS}
    atomic_write(path, lambda tmp: st.save_file(tensors, tmp, metadata=header), suffix=SAFETENSORS_SUFFIX)


def read_safetensors(path) -> dict:
    """The record of a safetensors file written by `save` (tensors on the CPU)."""
    _safetensors()
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:       # one read: header and tensors
            header = f.metadata() or {}
            state_dict = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001  (safetensors raises its own kinds for damaged files)
        raise CheckpointError(f"{path} is not a readable safetensors file ({first_line(e)})") from None
    if header.get("format") != json.dumps(FORMAT):
        raise CheckpointError(f"{path} is a safetensors file without a pixelfolder record (arch and config) in its "
                              "metadata: only files written by pixelfolder.save can be opened")
    try:
        record = {k: json.loads(header[k]) for k in RECORD_FIELDS if k in header}
    except ValueError:
        raise CheckpointError(f"{path} has a damaged pixelfolder record in its safetensors metadata") from None
    record["state_dict"] = state_dict
    return record


def save(model, path, metadata: dict | None = None) -> None:
    """Write `model` as a self-describing file: safetensors for a `.safetensors` path, else a torch zip
    (readable with torch.load(weights_only=True))."""
    record = to_record(model, metadata if metadata is not None else getattr(model, "metadata", None))
    if is_safetensors_path(path):
        save_safetensors(record, path)
    else:
        atomic_torch_save(record, path)


def is_record(obj) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def from_record(record: dict, *, source: str = "checkpoint"):
    """The model a record describes: its fields checked, the model built on the meta device and compared with the
    state_dict key by key, and only then built for real and loaded (a crafted config allocates nothing). A preset's
    own config (at most at the presets' largest resolution) skips the meta build: it is known to be of sane size,
    and the meta device's first use costs about a second (torch imports torch._dynamo for it)."""
    if not is_record(record):
        raise CheckpointError(f"{source} is not a pixelfolder checkpoint (for official files use "
                              "`pixelfolder convert` or pixelfolder.load)")
    version = record.get("version", 0)
    if type(version) is not int or version > VERSION:
        raise CheckpointError(f"{source} has format version {_short(version)}; this pixelfolder reads <= {VERSION}")
    missing = [k for k in ("arch", "config", "state_dict") if k not in record]
    if missing:
        raise CheckpointError(f"{source} is damaged: no {', '.join(missing)}")
    arch, config = _record_config(record, source)
    state_dict = _record_state_dict(record["state_dict"], source)
    metadata = record.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise CheckpointError(f"{source} is damaged: its metadata is a {type(metadata).__name__}, not a dict")
    if not is_preset_config(arch, config):
        check_fits(arch, config, state_dict, source)      # only then may the config allocate anything
    model = arch.cls(config)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:300]
        raise CheckpointError(f"{source} does not fit its own config ({detail})") from None
    model.metadata = dict(metadata or {})
    restore_seed_rng(model, record.get("seed_rng"))
    return model.eval()


MAX_EXTRA_BYTES = 256 << 20     # non-persistent buffers a config may add beyond the checkpoint's own tensors


def _short(x) -> str:
    text = repr(x) if isinstance(x, (bool, int, float, str, type(None))) else f"a {type(x).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def _record_config(record: dict, source: str):
    """(Architecture, config) of a record, with one-line errors naming the bad field."""
    name = record["arch"]
    if not isinstance(name, str):
        raise CheckpointError(f"{source} is damaged: its arch is {_short(name)}, not an architecture name")
    try:
        arch = architecture(name)
        return arch, config_from_dict(arch.config_cls, record["config"])
    except PixelfolderError as e:
        raise CheckpointError(f"{source} has a bad config: {e}") from None


def _record_state_dict(state_dict, source: str) -> dict:
    """A dict of names to tensors (none of them a huge stride-0 view), else a one-line CheckpointError."""
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{source} is damaged: its state_dict is a {type(state_dict).__name__}, not a dict")
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source} is damaged: its state_dict maps {_short(key)} to {_short(value)}, "
                                  "not a name to a tensor")
    from .torchfile import check_tensors
    check_tensors(state_dict, source)
    return state_dict


def is_preset_config(arch, config) -> bool:
    """`config` is a registered preset's, up to the resolution, which is at most the presets' largest."""
    from .registry import resolve_config
    known = [resolve_config(n)[1] for n in arch.presets]
    if not hasattr(config, "resolution"):
        return config in known
    top = max((k.resolution for k in known), default=0)
    return config.resolution <= top and any(dataclasses.replace(k, resolution=config.resolution) == config
                                            for k in known)


def check_fits(arch, config, state_dict: dict, source: str) -> None:
    """Build `arch(config)` on the meta device (no memory) and compare every key's shape with `state_dict`."""
    meta = _meta_model(arch, config, len(state_dict), source)
    expected = meta.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        detail = "; ".join(part for part in (
            f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}" if missing else "",
            f"unexpected {', '.join(_short(k) for k in unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}"
            if unexpected else "") if part)
        raise CheckpointError(f"{source} does not fit its own config ({detail})")
    for key, want in expected.items():
        if tuple(state_dict[key].shape) != tuple(want.shape):
            raise CheckpointError(f"{source} does not fit its own config ({key} has shape "
                                  f"{tuple(state_dict[key].shape)[:8]}, its {arch.name} config needs "
                                  f"{tuple(want.shape)})")
    have = sum(t.numel() * t.element_size() for t in state_dict.values())
    need = sum(t.numel() * t.element_size() for t in [*meta.parameters(), *meta.buffers()])
    if need > 2 * have + MAX_EXTRA_BYTES:
        raise CheckpointError(f"{source}: its config builds {need:,} bytes of tensors from {have:,} in the file "
                              "(crafted config?)")


def _meta_model(arch, config, keys: int, source: str):
    """arch.cls(config) on the meta device, refused once it registers far more modules than the file has keys."""
    budget = [3 * keys + 256]      # real models register fewer than 2 modules and parameters per tensor

    def count(*_):
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooManyModules

    hooks = [torch.nn.modules.module.register_module_module_registration_hook(count),
             torch.nn.modules.module.register_module_parameter_registration_hook(count)]
    try:
        with torch.device("meta"):
            return arch.cls(config)
    except _TooManyModules:
        raise CheckpointError(f"{source}: its config builds far more layers than its {keys} tensors (crafted "
                              "config?)") from None
    except PixelfolderError as e:
        raise CheckpointError(f"{source} has a bad config: {e}") from None
    except (TypeError, ValueError, ArithmeticError, RuntimeError, IndexError, KeyError, AttributeError) as e:
        text = str(e).strip().splitlines()
        raise CheckpointError(f"{source} has a config that builds no {arch.name} ({type(e).__name__}: "
                              f"{text[0][:160] if text else ''})") from None
    finally:
        for hook in hooks:
            hook.remove()


class _TooManyModules(Exception):
    """Raised inside a model's constructor by the registration hooks of `_meta_model`."""


def restore_seed_rng(model, recorded) -> None:
    """The recorded seed convention; records written before it was recorded: numpy for converted NVlabs pickles."""
    if not hasattr(model, "seed_rng"):
        return
    if recorded is None and "official_class" in model.metadata:
        recorded = "numpy"
    if recorded is not None:
        try:
            check_seed_rng(recorded)
        except PixelfolderError:
            raise CheckpointError(f"the checkpoint's seed_rng {recorded!r} is neither numpy nor torch") from None
        model.seed_rng = recorded
