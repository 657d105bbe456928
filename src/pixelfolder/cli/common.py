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


def add_network_options(p, help_text: str = "network") -> None:
    """--network and --params, the same in every verb."""
    p.add_argument("--network", required=True, help=f"{help_text}: {NETWORK_HELP}")
    add_params_option(p)


NETWORK_HELP = ("a checkpoint (ours .pt/.safetensors, official .pt/.pth, NVlabs .pkl), a run directory, an http(s) "
                "URL (cached; URL#sha256=HEX checks it), a pretrained name (`pixelfolder models --pretrained`) or a "
                "preset")


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
