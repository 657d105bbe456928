"""Atomic file writes: write a temporary file in the target's directory, then rename it over the target.

A kill at any moment leaves either the previous file or the new one, never half of one. The result gets the
usual permissions (0o666 minus the umask), not mkstemp's private 0o600.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable



def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, write: Callable[[str], None], suffix: str = ".tmp") -> None:
    """Call write(temporary_path), then rename the temporary file to `path`; remove it on any failure (a full disk:
    one-line PixelfolderError)."""
    from .fsutil import disk_full_error, is_disk_full
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as e:
        if is_disk_full(e):
            raise disk_full_error(path, e) from None
        raise
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(e):
            raise disk_full_error(path, e) from None
        raise


def atomic_write_text(path, text: str, suffix: str = ".tmp") -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), suffix)


def atomic_torch_save(obj, path) -> None:
    """torch.save through a temporary file: never a half-written checkpoint."""
    import torch
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
