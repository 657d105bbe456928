"""Self-describing checkpoints: plain data (arch name, config dict, state_dict, metadata), never pickled classes."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from .atomic import atomic_torch_save
from .errors import CheckpointError
from .registry import architecture, config_from_dict

FORMAT = "pixelfolder-checkpoint"
VERSION = 1


def to_record(model, metadata: dict | None = None) -> dict:
    """The plain-data dict `save` writes."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "arch": model.arch,
        "kind": model.kind,
        "config": dataclasses.asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": dict(metadata or {}),
    }


def save(model, path, metadata: dict | None = None) -> None:
    """Write `model` as a self-describing file readable with torch.load(weights_only=True)."""
    atomic_torch_save(to_record(model, metadata), path)


def read_record(path) -> dict:
    """torch.load(weights_only=True) with one-line errors for missing, corrupted or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint file: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (torch raises many kinds for bad files)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint ({first[:200]})") from None


def from_record(record: dict, *, source: str = "checkpoint"):
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not a pixelfolder checkpoint (for official files use "
                              "`pixelfolder convert` or pixelfolder.convert.load_official)")
    if record.get("version", 0) > VERSION:
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
    model.metadata = record.get("metadata", {})
    return model.eval()


def load(path, device=None, channels_last: bool = True):
    """Read a file written by `save`; returns the model in eval mode (with `.metadata`).

    channels_last (default) stores conv weights NHWC, the faster layout for our convolutions on CPUs and GPUs.
    """
    model = from_record(read_record(path), source=str(path))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.to(device) if device is not None else model
