"""A training step never waits for the device: no .item(), .cpu(), .tolist(), bool(tensor), ... in our code
inside `train_step`, for every trainable tiny preset (counted through patched tensor methods on CPU; under
torch.cuda.set_sync_debug_mode("error") where CUDA is present). Divergence is still caught, one check later."""
import contextlib
import os

import pytest
import torch

import pixelfolder
from pixelfolder import registry
from pixelfolder.training.distributed import Dist
from pixelfolder.training.loop import DivergenceWatch, TrainingDiverged, compiled_forwards, train_step
from pixelfolder.training.objectives import objective_for_preset
from tests.helpers import make_folder, options

SYNCING = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")
PACKAGE = os.path.dirname(pixelfolder.__file__)
TRAINABLE = [a.tiny_presets[0] for a in registry.architectures() if a.recipe is not None and a.tiny_presets]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data") / "imgs", n=4)


@contextlib.contextmanager
def counting_host_syncs():
    """Count calls of host-synchronising tensor methods made directly from pixelfolder's own code."""
    import sys
    calls = []
    originals = {name: getattr(torch.Tensor, name) for name in SYNCING}

    def wrap(name, original):
        def counted(self, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(PACKAGE):
                calls.append(f"{name} at {os.path.relpath(caller, PACKAGE)}:{sys._getframe(1).f_lineno}")
            return original(self, *args, **kwargs)
        return counted
    for name, original in originals.items():
        setattr(torch.Tensor, name, wrap(name, original))
    try:
        yield calls
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def objective_and_batch(preset, data, tmp_path, device="cpu", **kw):
    opts = options(data, tmp_path / "run", preset=preset, batch=4, r1_every=2, pl_every=2, device=device, **kw)
    objective = objective_for_preset(opts.preset)(opts, torch.device(device))
    r = objective.G.resolution
    batch = torch.randint(0, 256, (4, 3, r, r), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return objective, batch


def every_path(preset) -> dict:
    """GANs: mirror, DiffAugment and style mixing on, so that every random draw of a step is made."""
    is_gan = registry.architecture(registry.preset(preset).arch).kind == "generator"
    return dict(mirror=True, augment="diffaug", mixing=0.9) if is_gan else {}


def one_step(objective, batch, step=0, watch=None):
    forwards = compiled_forwards(objective, objective.opts)
    return train_step(objective, step, batch, Dist(), 2, 2, contextlib.nullcontext, forwards, {}, watch)


@pytest.mark.parametrize("preset", TRAINABLE)
def test_a_training_step_makes_no_host_sync(preset, data, tmp_path):
    objective, batch = objective_and_batch(preset, data, tmp_path, **every_path(preset))
    watch = DivergenceWatch(torch.device("cpu"))
    one_step(objective, batch, step=0, watch=watch)         # warm-up (lazy buffers, optimizer state)
    with counting_host_syncs() as calls:
        stats = one_step(objective, batch, step=2, watch=watch)     # step 2: every phase (intervals of 2)
    assert calls == [], f"{preset}: host synchronisations inside a training step: {calls}"
    assert stats and all(isinstance(v, torch.Tensor) for v in stats.values())
    watch.check(batch=4)                                    # finite: no error


@pytest.mark.parametrize("preset", ["pixelfolder-tiny", "stylegan2-tiny"])
def test_an_ada_step_makes_no_host_sync(preset, data, tmp_path):
    """ADA: the pipeline on reals and fakes, the signs of D(real) in D main and R1, p's adjustment (step 3)."""
    objective, batch = objective_and_batch(preset, data, tmp_path, mirror=True, augment="ada", mixing=0.9)
    watch = DivergenceWatch(torch.device("cpu"))
    one_step(objective, batch, step=0, watch=watch)
    with counting_host_syncs() as calls:
        one_step(objective, batch, step=2, watch=watch)         # every phase
        stats = one_step(objective, batch, step=3, watch=watch)     # then p is adjusted (every 4 steps)
    assert calls == [], f"{preset}: host synchronisations inside an ADA step: {calls}"
    assert isinstance(stats["augment_p"], torch.Tensor)


def test_the_counter_sees_syncs_made_from_the_package():
    """The check can fail: code compiled as a package file that reads a value or tests a tensor is counted
    (the old finite check, `if not torch.isfinite(loss)`, among them); code elsewhere (torch, tests) is not."""
    code = "x.item()\nif not torch.isfinite(x):\n    pass\nfloat(x)\n"
    scope = {"x": torch.ones(()), "torch": torch}
    with counting_host_syncs() as calls:
        exec(compile(code, os.path.join(PACKAGE, "training", "loop.py"), "exec"), scope)
        exec(compile(code, __file__, "exec"), scope)
    assert calls == ["item at training/loop.py:1", "__bool__ at training/loop.py:2", "__float__ at training/loop.py:4"]


def test_divergence_is_caught_at_the_next_check_naming_phase_and_step(data, tmp_path, monkeypatch):
    monkeypatch.setattr("pixelfolder.training.phases.d_logistic_loss", lambda r, f: r.sum() * float("inf"))
    objective, batch = objective_and_batch("stylegan2-tiny", data, tmp_path)
    watch = DivergenceWatch(torch.device("cpu"))
    one_step(objective, batch, step=3, watch=watch)
    one_step(objective, batch, step=4, watch=watch)
    with pytest.raises(TrainingDiverged, match=r"a Dmain loss or gradient became NaN or Inf at kimg 0\.012 \(step 3\)"):
        watch.check(batch=4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.set_sync_debug_mode)")
def test_no_sync_under_cuda_sync_debug_mode(data, tmp_path):
    for preset in TRAINABLE:
        cuda_step_without_sync(preset, data, tmp_path)


def cuda_step_without_sync(preset, data, tmp_path):
    objective, batch = objective_and_batch(preset, data, tmp_path, device="cuda", **every_path(preset))
    batch = batch.pin_memory()
    watch = DivergenceWatch(torch.device("cuda"))
    one_step(objective, batch, step=0, watch=watch)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        one_step(objective, batch, step=2, watch=watch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    watch.check(batch=4)
