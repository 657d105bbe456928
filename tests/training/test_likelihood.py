"""Likelihood models (PixelPyramids) in the training loop: one NLL phase, --levels, the recipe's optimiser."""
import json

import pytest
import torch

import pixelfolder
from pixelfolder.errors import PixelfolderError
from pixelfolder.training.loop import training_loop
from pixelfolder.registry import architecture
from pixelfolder.training.rundir import read_state
from tests.helpers import make_folder, options


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data") / "imgs", n=20)


def pp_options(data, run_dir, **kw):
    return options(data, run_dir, **{"model": "pixelpyramids", "preset": "pixelpyramids-tiny", "kimg": 0.016, **kw})


def test_two_nll_steps_train_every_level_with_the_official_optimiser(tmp_path, data):
    torch.manual_seed(0)                      # the loop initialises G from the master seed (0) the same way
    before = pixelfolder.create("pixelpyramids-tiny").state_dict()
    opts = pp_options(data, tmp_path / "run")
    assert opts.split == "train" and opts.mirror is False and opts.glr == 5e-4
    result = training_loop(opts)
    assert result.step == 2 and result.D is None
    after = result.G.state_dict()
    for level in range(len(result.G.levels)):
        keys = [k for k in after if k.startswith(f"levels.{level}.") and after[k].is_floating_point()]
        assert any(not torch.equal(after[k], before[k]) for k in keys), f"level {level} did not change"
    stats = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert 0 < stats[-1]["nll_bpd"] < 5 + 1e-6        # 5-bit images: a uniform model scores exactly 5
    state = read_state(tmp_path / "run")
    group = state["opt_G"]["param_groups"][0]
    recipe = architecture("pixelpyramids").recipe
    assert tuple(group["betas"]) == recipe.betas
    assert group["lr"] == pytest.approx(recipe.lr * recipe.lr_decay ** 1, rel=1e-12)   # set before step index 1
    G = pixelfolder.load(tmp_path / "run" / "network-snapshot-000000.pt")
    assert G.arch == "pixelpyramids" and G.kind == "likelihood"


def test_levels_option_trains_only_the_chosen_levels(tmp_path, data):
    torch.manual_seed(0)                      # the loop initialises G from the master seed (0) the same way
    before = pixelfolder.create("pixelpyramids-tiny").state_dict()
    result = training_loop(pp_options(data, tmp_path / "run", levels=(0, -1)))
    after = result.G.state_dict()
    n = len(result.G.levels)
    for level in range(n):
        keys = [k for k in after if k.startswith(f"levels.{level}.") and after[k].is_floating_point()]
        changed = any(not torch.equal(after[k], before[k]) for k in keys)
        assert changed == (level in (0, n - 1)), level


def test_levels_out_of_range_and_on_a_gan_are_refused(tmp_path, data):
    with pytest.raises(PixelfolderError, match="out of range"):
        training_loop(pp_options(data, tmp_path / "a", levels=(99,)))
    with pytest.raises(PixelfolderError, match="likelihood models"):
        options(data, tmp_path / "b", levels=(0,))


def test_resume_with_other_levels(tmp_path, data):
    """Levels trained in separate runs of one run directory: the optimiser holds every level."""
    first = training_loop(pp_options(data, tmp_path / "run", levels=(0,)))
    after_first = {k: v.clone() for k, v in first.G.state_dict().items()}
    second = training_loop(pp_options(data, tmp_path / "run", levels=(1,), resume="auto", kimg=0.032))
    assert second.step == 4
    after = second.G.state_dict()
    level = lambda i: [k for k in after if k.startswith(f"levels.{i}.") and after[k].is_floating_point()]  # noqa: E731
    assert all(torch.equal(after[k], after_first[k]) for k in level(0))
    assert any(not torch.equal(after[k], after_first[k]) for k in level(1))
