"""The training loop: every GAN trains, resumes exactly, guards against NaN and writes atomically."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from pixelfolder.errors import PixelfolderError
from pixelfolder.training.loop import TrainingDiverged, training_loop
from pixelfolder.training.options import ema_beta, lazy_adam
from pixelfolder.training.rundir import read_state
from tests.helpers import make_folder, options

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data") / "imgs")


def params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_recipe_arithmetic():
    lr, betas = lazy_adam(0.002, 4)
    assert abs(lr - 0.0016) < 1e-12 and abs(betas[1] - 0.99 ** 0.8) < 1e-12
    lr, betas = lazy_adam(0.002, 16)
    assert abs(lr - 0.002 * 16 / 17) < 1e-12 and abs(betas[1] - 0.99 ** (16 / 17)) < 1e-12
    assert abs(ema_beta(64, 20.0) - 0.5 ** (32 / 10000)) < 1e-12     # the official per-step decay at batch 64


def test_resume_after_sigkill_is_bit_identical(tmp_path, data):
    """A run killed between snapshots and resumed with --resume auto ends with the same parameters."""
    kw = dict(kimg=0.048, snap_kimg=0.024, r1_every=2)
    reference = training_loop(options(data, tmp_path / "ref", **kw))
    assert reference.step == 6
    script = textwrap.dedent(f"""
        import os, signal, torch
        torch.set_num_threads({torch.get_num_threads()})   # bit-identity needs the same thread count
        from pixelfolder.training import loop
        from tests.helpers import options
        calls = {{"n": 0}}
        original = loop.update_ema
        def killing_update_ema(*a):
            original(*a)
            calls["n"] += 1
            if calls["n"] == 5:           # after the snapshot at step 3, before the one at step 6
                os.kill(os.getpid(), signal.SIGKILL)
        loop.update_ema = killing_update_ema
        loop.training_loop(options({str(data)!r}, {str(tmp_path / 'killed')!r}, kimg=0.048, snap_kimg=0.024, r1_every=2))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert read_state(tmp_path / "killed")["step"] == 3
    resumed = training_loop(options(data, tmp_path / "killed", resume="auto", **kw))
    assert resumed.step == 6
    for name in ("G", "D", "G_ema"):
        a, b = params(getattr(reference, name)), params(getattr(resumed, name))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_resume_auto_when_already_done_and_when_fresh(tmp_path, data):
    first = training_loop(options(data, tmp_path / "run", resume="auto", kimg=0.008))
    assert first.step == 1
    again = training_loop(options(data, tmp_path / "run", resume="auto", kimg=0.008))
    assert again.step == 1
    assert "nothing to do" in (tmp_path / "run" / "log.txt").read_text()


def test_nan_guard_names_the_phase_and_keeps_the_last_state(tmp_path, data, monkeypatch):
    def nan_loss(logits):
        return logits.sum() * float("nan")
    monkeypatch.setattr("pixelfolder.training.phases.g_nonsaturating_loss", nan_loss)
    with pytest.raises(TrainingDiverged, match=r"Gmain.*kimg 0\.000"):
        training_loop(options(data, tmp_path / "run"))
    state = read_state(tmp_path / "run")
    assert state["step"] == 0     # the initial snapshot's state is intact and loadable


def test_a_kill_during_save_leaves_the_previous_state(tmp_path, data, monkeypatch):
    training_loop(options(data, tmp_path / "run", kimg=0.008))
    before = read_state(tmp_path / "run")

    def dying_save(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"half a file")
        raise KeyboardInterrupt("killed while saving")
    monkeypatch.setattr("pixelfolder.checkpoint.torch.save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        training_loop(options(data, tmp_path / "run", kimg=0.016, resume="auto"))
    after = read_state(tmp_path / "run")
    assert after["step"] == before["step"] == 1
    assert not [p for p in os.listdir(tmp_path / "run") if p.endswith(".tmp")]


def test_bad_options_are_one_line_errors(tmp_path, data):
    with pytest.raises(PixelfolderError, match="not divisible"):
        training_loop(options(data, tmp_path / "a", batch=8, batch_gpu=3))
    (tmp_path / "file").write_text("x")
    with pytest.raises(PixelfolderError, match="cannot write"):
        training_loop(options(data, tmp_path / "file" / "run"))
    with pytest.raises(PixelfolderError, match="fp16 needs a CUDA"):
        training_loop(options(data, tmp_path / "b", dtype="fp16"))
