"""Two gloo processes under torchrun train exactly like one process with the same minibatch-stddev groups."""
import os
import subprocess
import sys

import torch

from pixelfolder.training.loop import make_objective, training_loop
from tests.helpers import make_folder, options


def test_two_processes_match_one_process(tmp_path):
    data = make_folder(tmp_path / "data")
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           os.path.join("tests", "training", "ddp_runner.py"), str(data), str(tmp_path / "ddp"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for net in ("G", "D", "G_ema"):
        for k in rank0[net]:
            assert torch.equal(rank0[net][k], rank1[net][k]), f"{net}.{k} differs across ranks"
    # one process, global batch 8 in two chunks of 4: the chunks are the two ranks' samples
    opts_single = options(data, tmp_path / "single", kimg=0.024, r1_every=2, pl_every=2, model="stylegan2",
                          preset="stylegan2-tiny", mixing=0.5, pl_weight=2.0, augment="diffaug", batch_gpu=4)
    single = training_loop(opts_single)
    # Float summation order differs between the two setups, and Adam with beta1 = 0 turns each gradient into
    # roughly lr * sign(g) in its first steps, so a near-zero gradient element whose rounding differs moves by
    # up to 2 * lr. Compare the whole parameter change of each tensor instead: relative L2 of the difference.
    initial, _ = make_objective(opts_single, torch.device("cpu"))
    init_G, init_D = initial.networks["G"], initial.networks["D"]
    inits = {"G": dict(init_G.named_parameters()), "D": dict(init_D.named_parameters()),
             "G_ema": dict(init_G.named_parameters())}
    worst = {}
    for net in ("G", "D", "G_ema"):
        ours = dict(getattr(single, net).named_parameters())
        for k, v in rank0[net].items():
            delta = ours[k].detach() - inits[net][k].detach()
            if delta.norm() > 0:
                worst[f"{net}.{k}"] = ((ours[k].detach() - v).norm() / delta.norm()).item()
    assert max(worst.values()) <= 0.02, sorted(worst.items(), key=lambda kv: -kv[1])[:3]
    assert sorted(worst.values())[len(worst) // 2] <= 1e-3
    assert (tmp_path / "ddp" / "training-state.pt").is_file()


def test_one_process_under_torchrun_makes_a_process_group(tmp_path):
    """`torchrun --nproc_per_node 1` runs the collective path it runs with more processes (gloo here, nccl on
    GPUs); outside torchrun there is no process group; `python -m pixelfolder` is the CLI."""
    code = ("import torch.distributed as dist; from pixelfolder.training import distributed as d; "
            "world, device = d.init('cpu'); print('group', dist.is_initialized(), world.world_size, device)")
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-c", code]
    launched = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if "-c" in launched.stderr and launched.returncode:      # older torchrun: no -c; run a file instead
        script = tmp_path / "init.py"
        script.write_text(code.replace("; ", "\n"))
        cmd[-2:] = [str(script)]
        launched = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert launched.returncode == 0, launched.stderr[-2000:]
    assert "group True 1 cpu" in launched.stdout
    alone = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "group False 1 cpu" in alone.stdout, alone.stderr[-2000:]
    cli = subprocess.run([sys.executable, "-m", "pixelfolder", "train", "--help"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 0 and "--preset" in cli.stdout, cli.stderr[-2000:]


def test_a_cuda_device_index_is_checked(monkeypatch):
    """--device cuda:N outside torchrun takes GPU N: one past the last is one line (faked device count)."""
    import pytest

    from pixelfolder.errors import PixelfolderError
    from pixelfolder.training import distributed as d
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(PixelfolderError, match=r"--device cuda:2: this machine has 2 CUDA device\(s\), 0\.\.1"):
        d.init("cuda:2")
