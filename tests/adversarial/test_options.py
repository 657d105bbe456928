"""Nonsense option values, impossible devices, huge seed ranges, damaged weights and Ctrl-C at start-up: every verb
answers with exit 2 (130 for Ctrl-C) and one line, in a fresh process under a memory cap and a time limit.

The cases run concurrently in a module fixture (each is its own subprocess), then each is checked on its own.
"""
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import pixelfolder
from tests.adversarial.harness import SRC, assert_ok, assert_one_line_error, run_cli_capped

HUGE = str(2 ** 64)
G = ["generate", "--network", "stylegan2-tiny", "--seeds", "0", "--outdir", "{tmp}/g"]
T = ["train", "--outdir", "{tmp}/run", "--kimg", "0.004", "--batch", "4", "--device", "cpu", "--workers", "0"]
E = ["evaluate", "--network", "stylegan2-tiny", "--metrics", "params", "--outdir", "{tmp}/e"]

# id -> (argv, substrings of the one error line)
CASES = {
    # generate
    "seeds-too-many": (G[:4] + ["0-99999999999999"] + G[5:], ["at most 10,000,000"]),
    "seeds-negative": (G[:4] + ["-5"] + G[5:], ["[0, 2**63)"]),
    "seeds-beyond-2**63": (G[:4] + [HUGE] + G[5:], ["[0, 2**63)"]),
    "trunc-cutoff-negative": (G + ["--trunc-cutoff", "-3"], ["--trunc-cutoff", "must be >= 0"]),
    "trunc-nan": (G + ["--trunc", "nan"], ["--trunc", "finite"]),
    "size-zero": (G + ["--size", "0"], ["--size", "must be >= 1"]),
    "generate-device-meta": (G + ["--device", "meta"], ["not a device to compute on"]),
    "generate-device-mps": (G + ["--device", "mps"], ["no mps device is available"]),
    "generate-device-xpu": (G + ["--device", "xpu"], ["no xpu device is available"]),
    "generate-device-gpu": (G + ["--device", "gpu"], ["unknown device 'gpu'"]),
    "generate-device-cuda": (G + ["--device", "cuda:3"], ["no cuda device is available"]),
    "nan-weights": (["generate", "--network", "{tmp}/nan.pt", "--seeds", "0-1", "--outdir", "{tmp}/n"],
                    ["NaN or infinite", "damaged"]),
    # evaluate
    "evaluate-seed-2**64": (E + ["--seed", HUGE], ["--seed", "below 2**63"]),
    "evaluate-threads-negative": (E + ["--threads", "-1"], ["--threads must be >= 1"]),
    "evaluate-trunc-inf": (E + ["--trunc", "inf"], ["--trunc", "finite"]),
    "evaluate-device-gpu": (E + ["--device", "gpu"], ["unknown device"]),
    # bench
    "bench-json-under-a-file": (["bench", "--models", "stylegan2-tiny", "--repeats", "1", "--json",
                                 "{tmp}/file.txt/sub/out.json"], ["cannot create output directory"]),
    "bench-resolution-zero": (["bench", "--resolution", "0"], ["--resolution", "must be >= 1"]),
    "bench-repeats-zero": (["bench", "--models", "stylegan2-tiny", "--repeats", "0"], ["must be >= 1"]),
    # train
    "kimg-nan": (T + ["--kimg", "nan"], ["--kimg must be a finite number > 0"]),
    "kimg-negative": (T + ["--kimg", "-1"], ["--kimg must be a finite number > 0"]),
    "gamma-nan": (T + ["--gamma", "nan"], ["--gamma must be a finite number >= 0"]),
    "gamma-negative": (T + ["--gamma", "-1"], ["--gamma must be a finite number >= 0"]),
    "glr-nan": (T + ["--glr", "nan"], ["--glr must be a finite number > 0"]),
    "glr-negative": (T + ["--glr", "-0.1"], ["--glr must be a finite number > 0"]),
    "dlr-zero": (T + ["--dlr", "0"], ["--dlr must be a finite number > 0"]),
    "dlr-inf": (T + ["--dlr", "inf"], ["--dlr must be a finite number > 0"]),
    "r1-every-zero": (T + ["--r1-every", "0"], ["--r1-every must be a finite number >= 1"]),
    "r1-every-negative": (T + ["--r1-every", "-1"], ["--r1-every must be a finite number >= 1"]),
    "pl-every-zero": (T + ["--pl-every", "0"], ["--pl-every must be a finite number >= 1"]),
    "pl-weight-nan": (T + ["--pl-weight", "nan"], ["--pl-weight must be a finite number >= 0"]),
    "workers-negative": (T[:-2] + ["--workers", "-1"], ["--workers must be a finite number >= 0"]),
    "threads-negative": (T + ["--threads", "-1"], ["--threads", "must be >= 1"]),
    "seed-2**64": (T + ["--seed", HUGE], ["--seed must be below 2**63"]),
    "seed-negative": (T + ["--seed", "-1"], ["--seed must be a finite number >= 0"]),
    "train-device-gpu": (T[:-4] + ["--device", "gpu", "--workers", "0"], ["--device must be auto, cpu, cuda"]),
    "train-device-cuda": (T[:-4] + ["--device", "cuda", "--workers", "0"], ["no cuda device is available"]),
    "resolution-zero": (T + ["--resolution", "0"], ["--resolution must be a finite number >= 1"]),
    "ema-kimg-negative": (T + ["--ema-kimg", "-2"], ["--ema-kimg must be a finite number >= 0"]),
    "time-limit-nan": (T + ["--time-limit", "nan"], ["--time-limit must be a finite number > 0"]),
    "snap-zero": (T + ["--snap", "0"], ["--snap must be a finite number > 0"]),
    "mixing-nan": (T + ["--mixing", "nan"], ["--mixing must be a finite number >= 0"]),
    "batch-zero": (T[:-6] + ["--batch", "0", "--device", "cpu", "--workers", "0"], ["--batch must be a finite"]),
    "metric-num-gen-zero": (T + ["--metric-num-gen", "0"], ["--metric-num-gen must be a finite number >= 1"]),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("opts")
    (tmp / "file.txt").write_text("a regular file")
    G = pixelfolder.create("stylegan2-tiny").eval()
    with torch.no_grad():
        for p in G.parameters():
            p.fill_(float("nan"))
    pixelfolder.save(G, tmp / "nan.pt")

    def run(item):
        name, (argv, _) = item
        return name, run_cli_capped(*[a.replace("{tmp}", str(tmp)) for a in argv], cwd=tmp)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(run, CASES.items())), tmp


@pytest.mark.parametrize("name", list(CASES))
def test_bad_option_is_one_line(results, name):
    got, tmp = results
    assert_one_line_error(got[name], *CASES[name][1])
    assert not (tmp / "run" / "training-state.pt").exists()      # nothing trained on a bad option


def test_bench_json_into_a_missing_directory_is_created_up_front(tmp_path):
    out = tmp_path / "new" / "dir" / "b.json"
    assert_ok(run_cli_capped("bench", "--models", "stylegan2-tiny", "--repeats", "1", "--batch", "1", "--json", out))
    assert out.is_file()


def test_ctrl_c_during_start_up_is_one_line_and_130(tmp_path):
    """SIGINT while the process is still importing torch (well before any work)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    cmd = [sys.executable, "-m", "pixelfolder.cli.main", "generate", "--network", "stylegan2-tiny", "--seeds",
           "0-1000", "--outdir", str(tmp_path / "o")]
    for delay in (0.3, 0.8):
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err and err.strip().splitlines() == [err.strip()]
        assert err.strip().endswith("interrupted")


def test_a_closed_pipe_ends_quietly():
    """`pixelfolder models --pretrained | head -1`: the reader leaves before the output is written; no traceback,
    SIGPIPE's status (the read end is closed at once, while the process is still starting)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-m", "pixelfolder.cli.main", "models", "--pretrained"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and "Traceback" not in err, err
