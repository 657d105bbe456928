"""Helpers shared by the verbs: seeds, devices, opening networks, writable directories."""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from ..errors import PixelfolderError


MAX_SEEDS = 10_000_000     # seeds in one --seeds list (a list of 10 M ints is ~0.4 GB; a range beyond is a typo)


def _seed_ranges(text: str) -> list[range]:
    ranges = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part[1:]:
            lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
            lo, hi = int(lo), int(hi)
            if hi < lo:
                raise ValueError
            ranges.append(range(lo, hi + 1))
        else:
            ranges.append(range(int(part), int(part) + 1))
    return ranges


def parse_seeds(text: str) -> list[int]:
    """'0-3,10' -> [0, 1, 2, 3, 10]; the count is checked before the list is made."""
    try:
        ranges = _seed_ranges(text)
    except ValueError:
        raise PixelfolderError(f"bad --seeds {text!r}: use e.g. 0-15 or 1,5,7") from None
    if any(r.start < 0 or r.stop > 2 ** 63 for r in ranges):
        raise PixelfolderError("seeds must be integers in [0, 2**63)")
    count = sum(len(r) for r in ranges)
    if count > MAX_SEEDS:
        raise PixelfolderError(f"--seeds {text} names {count:,} seeds; at most {MAX_SEEDS:,} per run (split it)")
    return [s for r in ranges for s in r]


def positive_int(text: str) -> int:
    return _bounded_int(text, 1)


def nonnegative_int(text: str) -> int:
    return _bounded_int(text, 0)


def _bounded_int(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def seed_int(text: str) -> int:
    value = _bounded_int(text, 0)
    if value >= 2 ** 63:
        raise argparse.ArgumentTypeError(f"must be below 2**63, got {value}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def parse_device(name: str | None):
    """auto, cpu, cuda, cuda:N (and mps/xpu where torch has them), checked to exist on this machine."""
    import torch
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise PixelfolderError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    backend = {"cuda": torch.cuda, "mps": getattr(torch.backends, "mps", None), "xpu": getattr(torch, "xpu", None)}
    if device.type not in backend:
        raise PixelfolderError(f"--device {name}: not a device to compute on; use auto, cpu, cuda or cuda:N")
    module = backend[device.type]
    if module is None or not module.is_available():
        raise PixelfolderError(f"--device {name}: no {device.type} device is available on this machine")
    count = module.device_count() if hasattr(module, "device_count") else 1
    if device.index is not None and device.index >= count:
        raise PixelfolderError(f"--device {name}: this machine has {count} {device.type} device(s)")
    return device


def add_network_options(p, help_text: str = "network") -> None:
    """--network and --params, the same in every verb."""
    p.add_argument("--network", required=True, help=f"{help_text}: {NETWORK_HELP}")
    add_params_option(p)


NETWORK_HELP = ("a checkpoint (ours .pt/.safetensors, official .pt/.pth, NVlabs .pkl), a run directory, an http(s) "
                "URL (cached; URL#sha256=HEX checks it), a pretrained name (`pixelfolder models --pretrained`) or a "
                "preset")


def add_progress_options(p) -> None:
    """--progress / --no-progress: force the progress display on or off when stderr is not a terminal."""
    p.add_argument("--progress", action="store_true", default=None,
                   help="show progress also when stderr is not a terminal (a line every 10 s)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress")


def add_params_option(p) -> None:
    p.add_argument("--params", help="PixelPyramids checkpoints: the official params/<name>.json they were trained "
                                    "with")


def open_network(spec: str, *, kind: str | tuple | None = None, verbose: bool = True, params=None):
    """pixelfolder.load with the CLI's notes (on stdout): every verb opens networks through it."""
    from ..networks import finish, open_spec
    opened = open_spec(spec, params=params)
    model = finish(opened.network("g_ema"), None, True, kind, opened.label)
    if verbose:
        for note in opened.notes:
            print(note)
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
