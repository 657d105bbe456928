"""Training options: the preset is the one truth (--model is sugar for it), every default comes from the
registry's recipe, and --dry-run says where each value comes from."""
import json

import pytest

from pixelfolder import registry
from pixelfolder.errors import PixelfolderError
from pixelfolder.training.options import TrainOptions, resolve
from tests.helpers import run_cli


def test_model_is_sugar_for_its_default_preset():
    opts = resolve(TrainOptions(model="stylegan2", data="some/folder", resolution=64, augment="none"))
    assert opts.preset == "stylegan2-64" and opts.model == "stylegan2"
    opts = resolve(TrainOptions(preset="creps-tiny", data="some/folder", augment="none"))
    assert opts.model == "creps"                                         # derived from the preset
    recipe = registry.architecture("creps").recipe
    assert (opts.batch, opts.pl_weight, opts.ema_kimg) == (recipe.batch, recipe.pl_weight, recipe.ema_kimg)


def test_model_and_preset_that_disagree_are_refused():
    with pytest.raises(PixelfolderError, match="disagree"):
        resolve(TrainOptions(model="stylegan2", preset="pixelfolder-tiny"))
    with pytest.raises(PixelfolderError, match="no training recipe"):
        resolve(TrainOptions(model="stylegan2_d"))                       # a discriminator trains with a G only
    with pytest.raises(PixelfolderError, match="unknown preset"):
        resolve(TrainOptions(preset="pixelfolder-48"))


def test_dry_run_names_the_source_of_each_value(capsys):
    code, out, _ = run_cli(capsys, "train", "--model", "inrgan", "--gamma", "3", "--dry-run")   # the emoji demo
    assert code == 0
    printed = json.loads(out)
    recipe = registry.architecture("inrgan").recipe
    assert printed["preset"] == "inrgan-tiny" and printed["glr"] == recipe.lr and printed["gamma"] == 3.0
    sources = printed["sources"]
    assert sources["gamma"] == "given" and sources["batch"] == "demo" and sources["ema_kimg"] == "demo"
    assert sources["glr"].startswith("rule (") and sources["r1_every"] == f"official ({recipe.source})" and "inr-gan" in sources["r1_every"]
    assert set(sources) >= {"preset", "batch", "gamma", "r1_every", "pl_weight", "mixing", "glr", "dlr", "mirror"}
