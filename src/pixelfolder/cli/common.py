"""Helpers shared by the verbs: seeds, devices, opening networks, writable directories."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import PixelfolderError


def parse_seeds(text: str) -> list[int]:
    """'0-3,10' -> [0, 1, 2, 3, 10]."""
    seeds = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
                lo, hi = int(lo), int(hi)
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise PixelfolderError(f"bad --seeds {text!r}: use e.g. 0-15 or 1,5,7") from None
    if any(s < 0 or s >= 2 ** 63 for s in seeds):
        raise PixelfolderError("seeds must be non-negative integers")
    return seeds


def parse_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PixelfolderError(f"unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PixelfolderError("--device cuda requested but no CUDA device is available")
    return device


def open_network(spec: str, *, kind: str | tuple | None = None, verbose: bool = True):
    """A model from a pixelfolder checkpoint, an official checkpoint (converted on the fly) or a preset name."""
    from .. import checkpoint, registry
    from ..convert import load_official
    path = Path(spec)
    if path.exists():
        record = checkpoint.read_record(path)
        if isinstance(record, dict) and record.get("format") == checkpoint.FORMAT:
            model = checkpoint.from_record(record, source=str(path))
        else:
            model = load_official(path)
            if verbose:
                print(f"note: {path.name} is an official {model.arch} checkpoint; converted on the fly "
                      f"(save time with `pixelfolder convert`)")
    elif spec in registry.list_models() or spec in registry.list_architectures():
        model = registry.create(spec).eval()
        if verbose:
            print(f"note: {spec!r} is a preset: the network is randomly initialised, not trained")
    else:
        raise PixelfolderError(f"{spec!r} is neither a file nor a known preset (see `pixelfolder models`)")
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and model.kind not in kinds:
        raise PixelfolderError(f"{spec} holds a {model.kind} ({model.arch}), not a {' or '.join(kinds)}")
    return model


def writable_dir(path) -> Path:
    """Create `path` if needed and check it can be written; one-line error otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PixelfolderError(f"cannot create output directory {path}: {e.strerror}") from None
    if not os.access(path, os.W_OK):
        raise PixelfolderError(f"output directory {path} is not writable")
    return path
