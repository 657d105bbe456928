"""File-system safety: full-disk errors as one line, exclusive locks (flock), and stale temporaries of killed runs.

A flock belongs to an open file and dies with the process that holds it (kill -9 included), so a lock file left
behind never blocks anyone; only a live holder does.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
from pathlib import Path

from .errors import PixelfolderError

DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_DISK_FULL_TEXT = ("no space left", "file too large", "disk quota", "os error 28", "os error 27", "os error 122")
# what tempfile.mkstemp/mkdtemp make for NAME: .NAME.<8 random characters><suffix>
STALE = re.compile(r"^\..+\.[a-z0-9_]{8}(\.tmp|\.png|\.incomplete|\.part|\.safetensors|\.pt)$")


def is_disk_full(e: BaseException) -> bool:
    """An error from writing to a full disk (or past RLIMIT_FSIZE): by errno, or by the message of torch, LMDB or
    safetensors, which raise their own kinds."""
    if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
        return True
    if not isinstance(e, Exception):
        return False
    text = str(e).lower()
    if isinstance(e, RuntimeError) and ("file write failed" in text or "unexpected pos" in text):
        return True                       # torch's PytorchStreamWriter: a short write, or one that failed
    return any(t in text for t in _DISK_FULL_TEXT)


def disk_full_error(path, e: BaseException) -> PixelfolderError:
    """The one-line error for a write to `path` that ran out of space."""
    reason = getattr(e, "strerror", None) or " ".join(str(e).split())[-80:]
    return PixelfolderError(f"cannot write {path}: no space left on the device ({reason}); free some space or "
                            "write elsewhere")


_NOT_IN_CHILDREN: set[int] = set()      # lock descriptors that forked children (DataLoader workers) close


def _close_in_child() -> None:
    for fd in _NOT_IN_CHILDREN:
        try:
            os.close(fd)
        except OSError:
            pass
    _NOT_IN_CHILDREN.clear()


os.register_at_fork(after_in_child=_close_in_child)


def lock_exclusive(path, *, children: bool = True) -> int | None:
    """An open descriptor holding flock(LOCK_EX) on `path` (created if needed), or None when another holds it.
    With children=False, forked children drop their copy, so the lock dies with this process alone."""
    flags = os.O_NONBLOCK | (os.O_RDONLY if Path(path).is_dir() else os.O_RDWR | os.O_CREAT)
    fd = os.open(path, flags, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    if not children:
        _NOT_IN_CHILDREN.add(fd)
    return fd


def unlock(fd: int) -> None:
    _NOT_IN_CHILDREN.discard(fd)
    os.close(fd)


def write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def lock_holder(path) -> str:
    """The pid written into a lock file by its holder ('unknown' when unreadable)."""
    try:
        text = Path(path).read_text(errors="replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def remove_stale(directory, keep=lambda name: False, pattern=STALE) -> list[str]:
    """Remove the temporaries that killed writers left in `directory` (names matching `pattern`) unless a live
    writer holds a flock on them; returns the names removed."""
    removed = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return removed
    for name in names:
        if not pattern.match(name) or keep(name):
            continue
        path = Path(directory) / name
        if _remove_unlocked(path):
            removed.append(name)
    return removed


def _remove_unlocked(path: Path) -> bool:
    try:
        fd = lock_exclusive(path) if not path.is_symlink() else None
    except OSError:
        return False
    if fd is None and not path.is_symlink():
        return False                      # a live writer's temporary
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    finally:
        if fd is not None:
            os.close(fd)
    return True
