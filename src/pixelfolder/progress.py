"""Progress bars that also work when stderr is not a terminal (logs, CI, nohup).

enabled=None: a bar only on a terminal; True: on a terminal a tqdm bar, elsewhere one plain line every
PIXELFOLDER_PROGRESS_SECONDS (default 10) and one at the end; False: nothing.
"""
from __future__ import annotations

import os
import sys
import time


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("PIXELFOLDER_PROGRESS_SECONDS", 10)))
    except ValueError:
        return 10.0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total: int | None, desc: str, unit: str = "img", enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = tty if enabled is None else bool(enabled)
        self.total, self.desc, self.unit = total, desc, unit
        self.done, self.start, self.last = 0, time.monotonic(), time.monotonic()
        self.interval = _interval()
        self.bar = None
        if self.enabled and tty:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", file=self.stream)
            except ImportError:
                pass

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and time.monotonic() - self.last >= self.interval:
            self._line()

    def _line(self) -> None:
        self.last = time.monotonic()
        elapsed = max(self.last - self.start, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.desc}: {self.done:,}" + (f"/{self.total:,}" if self.total else "") + f" {self.unit}"]
        if self.total:
            parts.append(f"{100 * self.done / self.total:.0f}%")
        parts.append(f"{rate:.3g} {self.unit}/s")
        if self.total and rate > 0:
            parts.append(f"eta {_duration((self.total - self.done) / rate)}")
        print(", ".join(parts), file=self.stream, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            self._line()
