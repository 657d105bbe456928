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
from .errors import CheckpointError, PixelfolderError
from .registry import architecture, config_from_dict

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
    st = _safetensors()
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        state_dict = st.load_file(str(path))
    except Exception as e:  # noqa: BLE001  (safetensors raises its own kinds for damaged files)
        raise CheckpointError(f"{path} is not a readable safetensors file ({_first_line(e)})") from None
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


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def read_record(path) -> dict:
    """torch.load(weights_only=True) of one of our files, with one-line errors (never torch's own advice)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint file: {path}")
    if is_safetensors_path(path):
        return read_safetensors(path)
    from .networks import torch_load
    return torch_load(path)


def is_record(obj) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def from_record(record: dict, *, source: str = "checkpoint"):
    if not is_record(record):
        raise CheckpointError(f"{source} is not a pixelfolder checkpoint (for official files use "
                              "`pixelfolder convert` or pixelfolder.load)")
    if not isinstance(record.get("version", 0), int) or record.get("version", 0) > VERSION:
        raise CheckpointError(f"{source} has format version {record['version']}; this pixelfolder reads <= {VERSION}")
    missing = [k for k in ("arch", "config", "state_dict") if k not in record]
    if missing:
        raise CheckpointError(f"{source} is damaged: no {', '.join(missing)}")
    arch = architecture(record["arch"])
    model = arch.cls(config_from_dict(arch.config_cls, record["config"]))
    try:
        model.load_state_dict(record["state_dict"], strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:300]
        raise CheckpointError(f"{source} does not fit its own config ({detail})") from None
    model.metadata = dict(record.get("metadata") or {})
    restore_seed_rng(model, record.get("seed_rng"))
    return model.eval()


def restore_seed_rng(model, recorded) -> None:
    """The recorded seed convention; records written before it was recorded: numpy for converted NVlabs pickles."""
    if not hasattr(model, "seed_rng"):
        return
    if recorded is None and "official_class" in model.metadata:
        recorded = "numpy"
    if recorded is not None:
        from .models.base import check_seed_rng
        try:
            check_seed_rng(recorded)
        except PixelfolderError:
            raise CheckpointError(f"the checkpoint's seed_rng {recorded!r} is neither numpy nor torch") from None
        model.seed_rng = recorded


def load_checkpoint(path, device=None, channels_last: bool = True):
    """Read a file written by `save` (.pt or .safetensors); the model in eval mode (with `.metadata`).

    channels_last (default) stores conv weights NHWC, the faster layout for our convolutions on CPUs and GPUs.
    For any other network (official files, URLs, presets, run directories) use `pixelfolder.load`.
    """
    model = from_record(read_record(path), source=str(path))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.to(device) if device is not None else model
