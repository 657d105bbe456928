"""Small helpers shared across the package: seeds, parameter counts, byte sizes and the cache directory.

This module sits at the bottom of the import graph: it imports only the standard library and
`pixelfolder.errors` (torch and numpy on first use), so any module, the command line's start-up included, may
import it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import PixelfolderError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["SEED_RNGS", "NUMPY_SEED_LIMIT", "seed_generator", "check_seed_rng", "seed_latent", "count_parameters",
           "format_bytes", "physical_memory_bytes", "cache_root"]

SEED_RNGS = ("torch", "numpy")
NUMPY_SEED_LIMIT = 2 ** 32    # numpy.random.RandomState takes seeds in [0, 2**32)


# ------------------------------------------------------------------------------------------------ seeds
def seed_generator(seed: int) -> torch.Generator:
    """A CPU torch.Generator seeded with `seed`."""
    import torch
    return torch.Generator(device="cpu").manual_seed(int(seed))


def check_seed_rng(seed_rng: str, seeds=()) -> None:
    """Refuse an unknown `seed_rng` (one of SEED_RNGS), and numpy seeds outside [0, 2**32)."""
    if seed_rng not in SEED_RNGS:
        raise PixelfolderError(f"seed_rng must be one of {', '.join(SEED_RNGS)}, got {seed_rng!r}")
    if seed_rng == "numpy" and any(not 0 <= int(s) < NUMPY_SEED_LIMIT for s in seeds):
        raise PixelfolderError("numpy seeds (NVlabs' convention) must lie in [0, 2**32): use smaller seeds or "
                               "--seed-rng torch")


def seed_latent(seed: int, z_dim: int, seed_rng: str) -> tuple[torch.Tensor, torch.Generator]:
    """(1, z_dim) float32 z for one seed, and the torch generator that then draws its noise.

    'numpy': NVlabs' gen_images.py convention, np.random.RandomState(seed).randn(1, z_dim), so seed N is the
    official seed-N image; 'torch': torch.Generator().manual_seed(seed) draws z (and then the noise).
    """
    import torch
    g = seed_generator(seed)
    if seed_rng == "numpy":
        import numpy as np
        z = torch.from_numpy(np.random.RandomState(int(seed)).randn(1, z_dim)).float()
    else:
        z = torch.randn(1, z_dim, generator=g)
    return z, g


# ------------------------------------------------------------------------------------------------ sizes
def count_parameters(model: nn.Module) -> int:
    """The number of parameter elements of `model` (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters())


def physical_memory_bytes() -> int:
    """This machine's physical memory, bytes (1 TiB where the OS does not tell)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX
        return 1 << 40


def format_bytes(n: float) -> str:
    """`n` bytes with one decimal in binary units: '512.0 B', '1.5 KiB', ... up to PiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


# ------------------------------------------------------------------------------------------------ the cache
def cache_root() -> Path:
    """The cache directory: $PIXELFOLDER_CACHE (~ expanded), else ~/.cache/pixelfolder."""
    env = os.environ.get("PIXELFOLDER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pixelfolder"
