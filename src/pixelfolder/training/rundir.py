"""The run directory: options, stats, log, grids, network snapshots and the training state.

Every file is written under a temporary name and renamed, so a kill at any moment leaves the previous
version intact; the temporaries of a killed run are removed at the next start. Only rank 0 writes, and only
one process at a time: rank 0 holds an exclusive flock on `.train.lock` (released when it exits, however).
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import torch

from ..atomic import atomic_torch_save, atomic_write, atomic_write_text
from ..checkpoint import from_record, to_record
from ..errors import PixelfolderError
from ..fsutil import disk_full_error, is_disk_full, lock_exclusive, lock_holder, remove_stale, unlock, write_pid

STATE = "training-state.pt"
STATE_FORMAT = "pixelfolder-training-state"
LOCK = ".train.lock"
PROBE = ".write-probe"
# what a killed run leaves: atomic_write's temporaries (.NAME.XXXXXXXX.SUFFIX), the write probe, partial files
_STALE = re.compile(rf"^(?:{re.escape(PROBE)}|\..+\.[a-z0-9_]{{8}}\.(?:tmp|png|pt|safetensors|incomplete)|"
                    r".+\.incomplete|.+\.part)$")


def snapshot_label(nimg: int) -> str:
    """NVlabs' 6-digit kimg, plus the images past it when not a whole kimg: 000012, 000000.004 (4 images)."""
    kimg, rest = divmod(int(nimg), 1000)
    return f"{kimg:06d}" if rest == 0 else f"{kimg:06d}.{rest:03d}"


def read_stats(path: Path) -> list[dict]:
    """The records of stats.jsonl; lines a kill left half-written (or damaged) are skipped with a warning."""
    records, bad = [], 0
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except ValueError:                      # JSONDecodeError and UnicodeDecodeError
            record = None
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
        else:
            bad += 1
    if bad:
        print(f"warning: {path}: skipped {bad} unreadable line(s) (a run killed while writing it?)", file=sys.stderr)
    return records


class RunDir:
    def __init__(self, path, active: bool = True, tensorboard: bool = False):
        self.path = Path(path)
        self.active = active
        self.tb = None
        self._lock = None
        if active:
            self.acquire()
        if active and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.close()
                raise PixelfolderError("--tensorboard needs the tensorboard package: pip install tensorboard "
                                       "(or pixelfolder[tensorboard])") from None
            self.tb = SummaryWriter(str(self.path / "tensorboard"))
        self.log_lines: list[str] = []
        self.stats: list[dict] = []
        if active and (self.path / "log.txt").is_file():
            self.log_lines = (self.path / "log.txt").read_text(errors="replace").splitlines()
        if active and (self.path / "stats.jsonl").is_file():
            self.stats = read_stats(self.path / "stats.jsonl")

    def acquire(self) -> None:
        """Lock the directory for this process (one line naming the holder's pid if another has it), then remove
        the temporaries a killed run left."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = lock_exclusive(self.path / LOCK, children=False)     # not kept alive by DataLoader workers
        except OSError as e:
            raise PixelfolderError(f"cannot write to the run directory {self.path}: {e.strerror}") from None
        if fd is None:
            raise PixelfolderError(f"{self.path} is in use by another `pixelfolder train` (pid "
                                   f"{lock_holder(self.path / LOCK)}): wait for it to end or choose another --outdir")
        self._lock = fd
        try:
            write_pid(fd)
        except OSError:
            pass                                # a full disk: the lock holds all the same
        remove_stale(self.path, pattern=_STALE)

    def close(self) -> None:
        """Release the lock (it is released anyway when the process ends)."""
        if self._lock is not None:
            unlock(self._lock)
            self._lock = None
        if self.tb is not None:
            self.tb.close()
            self.tb = None

    def check_writable(self, need_bytes: int) -> None:
        """Fail before training when the directory cannot be written or the disk is too full."""
        if not self.active:
            return
        probe = self.path / PROBE
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"x")
        except OSError as e:
            if is_disk_full(e):
                raise disk_full_error(self.path, e) from None
            raise PixelfolderError(f"cannot write to the run directory {self.path}: {e.strerror}") from None
        finally:
            probe.unlink(missing_ok=True)
        free = shutil.disk_usage(self.path).free
        if free < need_bytes:
            raise PixelfolderError(f"no space left in {self.path}: {free / 2**20:.0f} MB free, a snapshot and state "
                                   f"need about {need_bytes / 2**20:.0f} MB ({os.strerror(errno.ENOSPC)})")

    def log(self, line: str, echo: bool = True) -> None:
        """Append a line to log.txt (written at the next flush), and print it unless `echo` is False."""
        if self.active:
            if echo:
                print(line, flush=True)
            self.log_lines.append(line)

    def add_stats(self, record: dict) -> None:
        if self.active:
            self.stats = [s for s in self.stats if s.get("step", -1) < record["step"]] + [record]
            if self.tb is not None:
                for key, value in record.items():
                    if key not in ("step", "kimg") and isinstance(value, (int, float)):
                        self.tb.add_scalar(key, value, global_step=int(record["kimg"] * 1000))
                self.tb.flush()

    def flush(self) -> None:
        if self.active:
            atomic_write_text(self.path / "log.txt", "\n".join(self.log_lines) + "\n")
            atomic_write_text(self.path / "stats.jsonl", "".join(json.dumps(s) + "\n" for s in self.stats))

    def write_options(self, opts) -> None:
        if self.active:
            atomic_write_text(self.path / "training_options.json", json.dumps(dataclasses.asdict(opts), indent=2))

    def save_grid(self, image: torch.Tensor, label: str) -> None:
        """fakes{label}.png, label from snapshot_label."""
        if self.active:
            from ..data.images import save_image
            atomic_write(self.path / f"fakes{label}.png", lambda tmp: save_image(image, tmp), suffix=".png")

    def save_network(self, G, label: str, metadata: dict) -> Path:
        """network-snapshot-{label}.pt, label from snapshot_label."""
        path = self.path / f"network-snapshot-{label}.pt"
        if self.active:
            atomic_torch_save(to_record(G, metadata), path)
        return path

    def save_state(self, state: dict) -> None:
        if self.active:
            atomic_torch_save({"format": STATE_FORMAT, "version": 1, "saved_at": time.time(), **state},
                              self.path / STATE)


def read_state(path) -> dict | None:
    """The training state at `path` (a file or a run directory), or None when there is none."""
    path = Path(path)
    if path.is_dir():
        path = path / STATE
    if not path.is_file():
        return None
    from ..networks import torch_load
    state = torch_load(path)        # checked first (zip layout, CRCs, pickle costs): one-line CheckpointErrors
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        return None
    return state


def model_from(record: dict):
    return from_record(record, source="training state").train()
