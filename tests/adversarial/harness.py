"""Run the CLI as a hostile input would meet it: a fresh process with a memory cap and a time limit.

Every adversarial test goes through `run_cli_capped` and asserts with `assert_one_line_error` (or `assert_ok`):
exit status 2, exactly one `pixelfolder VERB: error: ...` line on stderr, no traceback, within the caps.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MEMORY_CAP_BYTES = 3 << 30      # RLIMIT_AS of each run: torch alone maps about 0.8 GiB of address space
TIMEOUT_S = 60                  # wall-clock limit of each run (a hang is a failure, not a slow pass)
SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class Result:
    argv: list
    code: int | None          # None: killed at the time limit
    stdout: str
    stderr: str

    @property
    def timed_out(self) -> bool:
        return self.code is None

    def describe(self) -> str:
        tail = "\n".join(self.stderr.strip().splitlines()[-5:])
        return f"pixelfolder {' '.join(map(str, self.argv))} -> {self.code}\n{tail}"


def _limits(memory: int | None, fsize: int | None):
    def apply():
        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return apply


def run_cli_capped(*argv, memory: int | None = MEMORY_CAP_BYTES, timeout: float = TIMEOUT_S, cwd=None,
                   env: dict | None = None, fsize: int | None = None, stdin=subprocess.DEVNULL) -> Result:
    """`python -m pixelfolder.cli.main ARGV` in a subprocess under RLIMIT_AS (and RLIMIT_FSIZE when given)."""
    environ = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", **(env or {})}
    cmd = [sys.executable, "-m", "pixelfolder.cli.main", *map(str, argv)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=environ,
                              preexec_fn=_limits(memory, fsize), stdin=stdin)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        return Result(list(argv), None, out, err)
    return Result(list(argv), proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: Result, *contains: str, code: int = 2) -> str:
    """Exit `code`, one stderr line `pixelfolder VERB: error: ...` holding every `contains`, no traceback."""
    assert not result.timed_out, f"timed out: {result.describe()}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.describe()
    assert result.code == code, result.describe()
    errors = [line for line in lines if line.startswith("pixelfolder ") and ": error: " in line]
    assert len(errors) == 1 and len(lines) == 1, result.describe()
    for text in contains:
        assert text in errors[0], f"{text!r} not in: {errors[0]}"
    return errors[0]


def assert_ok(result: Result) -> None:
    assert not result.timed_out, f"timed out: {result.describe()}"
    assert result.code == 0 and "Traceback" not in result.stderr, result.describe()
