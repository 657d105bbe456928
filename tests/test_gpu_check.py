"""tools/gpu_check.py in its CPU smoke form (what it can check without a GPU), and that a failed equality check
makes its exit status non-zero."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pixelfolder import registry

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "gpu_check.py"


def run_tool(tmp_path, *argv, timeout=240):
    """(completed process, JSON record) of `python tools/gpu_check.py --device cpu --smoke ARGV --json TMP`."""
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PIXELFOLDER_CACHE": str(tmp_path / "cache"),
           "PIXELFOLDER_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(TOOL), "--device", "cpu", "--smoke", *argv, "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    record = json.loads(out.read_text()) if out.is_file() else None
    return proc, record


def rows_of(record, check):
    return {r["name"]: r for r in record["rows"] if r["check"] == check}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return run_tool(tmp_path_factory.mktemp("gpu_check"), "--no-compile")


def test_smoke_run_passes_and_reports_every_row(smoke):
    proc, record = smoke
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert record["failed"] == 0 and record["header"]["device"] == "cpu"
    assert proc.stdout.count("check  ") == 1, "one table on stdout"
    equal = rows_of(record, "equal")
    for arch in registry.architectures():
        (tiny,) = arch.tiny_presets
        row = equal[f"{tiny} cpu vs cpu"]
        assert row["status"] == "pass" and row["value"] is not None and 0 <= row["value"] <= 1e-4, row
    train = rows_of(record, "train")
    for arch in registry.trainable_architectures():
        (tiny,) = registry.architecture(arch).tiny_presets
        row = train[f"{tiny} 1 step"]
        assert row["status"] == "pass" and row["value"] == 1.0, row
    speed = [r for r in record["rows"] if r["check"] == "speed" and r["value"] is not None]
    assert len(speed) == 10 and all(r["value"] > 0 for r in speed), speed
    assert rows_of(record, "compile")["pixelfolder-tiny"]["result"] == "skipped: --no-compile"
    assert all(r["status"] == "pass" for r in rows_of(record, "torchrun").values())
    assert {r["status"] for r in rows_of(record, "autocast").values()} == {"info"}
    assert all(r["value"] > 0 for r in rows_of(record, "trainspd").values())


def test_a_failed_equality_check_fails_the_run(tmp_path):
    proc, record = run_tool(tmp_path, "--checks", "equal", "--inject-error")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = rows_of(record, "equal")
    assert rows and all(r["status"] == "fail" and r["value"] > 1e-4 for r in rows.values()), rows
    assert record["failed"] == len(rows)
