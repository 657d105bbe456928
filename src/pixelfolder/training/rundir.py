"""The run directory: options, stats, log, grids, network snapshots and the training state.

Every file is written under a temporary name and renamed, so a kill at any moment leaves the previous
version intact. Only rank 0 writes.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch

from ..atomic import atomic_torch_save, atomic_write, atomic_write_text
from ..checkpoint import from_record, to_record
from ..errors import PixelfolderError

STATE = "training-state.pt"
STATE_FORMAT = "pixelfolder-training-state"


class RunDir:
    def __init__(self, path, active: bool = True, tensorboard: bool = False):
        self.path = Path(path)
        self.active = active
        self.tb = None
        if active and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise PixelfolderError("--tensorboard needs the tensorboard package: pip install tensorboard "
                                       "(or pixelfolder[tensorboard])") from None
            self.tb = SummaryWriter(str(self.path / "tensorboard"))
        self.log_lines: list[str] = []
        self.stats: list[dict] = []
        if active and (self.path / "log.txt").is_file():
            self.log_lines = (self.path / "log.txt").read_text().splitlines()
        if active and (self.path / "stats.jsonl").is_file():
            self.stats = [json.loads(line) for line in (self.path / "stats.jsonl").read_text().splitlines() if line]

    def check_writable(self, need_bytes: int) -> None:
        """Fail before training when the directory cannot be written or the disk is too full."""
        if not self.active:
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-probe"
            probe.write_bytes(b"x")
            probe.unlink()
        except OSError as e:
            raise PixelfolderError(f"cannot write to the run directory {self.path}: {e.strerror}") from None
        free = shutil.disk_usage(self.path).free
        if free < need_bytes:
            raise PixelfolderError(f"only {free / 2**20:.0f} MB free in {self.path}; a snapshot and state need "
                                   f"about {need_bytes / 2**20:.0f} MB")

    def log(self, line: str) -> None:
        if self.active:
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

    def save_grid(self, image: torch.Tensor, kimg: int) -> None:
        if self.active:
            from ..data.images import save_image
            atomic_write(self.path / f"fakes{kimg:06d}.png", lambda tmp: save_image(image, tmp), suffix=".png")

    def save_network(self, G, kimg: int, metadata: dict) -> Path:
        path = self.path / f"network-snapshot-{kimg:06d}.pt"
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
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        return None
    return state


def model_from(record: dict):
    return from_record(record, source="training state").train()
