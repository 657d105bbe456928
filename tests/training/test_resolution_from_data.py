"""`train` reads the resolution from the data and picks the model's preset at that size; off the recipe's
published resolution the NVlabs cfg=auto rule scales the recipe. Every GAN architecture trains a step at 32 and
64 px from a zip, an LMDB and a folder."""
import json
import os

import pytest
import torch

from pixelfolder import registry
from pixelfolder.data.prepare import PrepareConfig, prepare
from pixelfolder.errors import PixelfolderError
from pixelfolder.training.loop import training_loop
from pixelfolder.training.options import TrainOptions, ema_beta, resolve, scaled_values
from tests.helpers import make_folder, run_cli

GANS = [a.name for a in registry.architectures("generator") if a.recipe is not None]
FORMATS = ("folder", "zip", "lmdb")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """{(resolution, format): path}: the same 4 images as a folder, a zip and an LMDB at 32 and 64 px."""
    root = tmp_path_factory.mktemp("formats")
    out = {}
    for res in (32, 64):
        folder = make_folder(root / f"folder{res}", n=4, size=res)
        out[res, "folder"] = folder
        for fmt, name in (("zip", f"data{res}.zip"), ("lmdb", f"data{res}.lmdb")):
            prepare(folder, root / name, PrepareConfig(size=res, workers=1), progress=False)
            out[res, fmt] = root / name
    return out


def test_every_gan_is_built_for_the_data_resolution(datasets):
    """--model alone: the preset at the data's resolution, official widths, the scaling rule's recipe."""
    for (res, fmt), path in datasets.items():
        for arch in GANS:
            opts = resolve(TrainOptions(model=arch, data=str(path)))
            assert (opts.preset, opts.resolution) == (f"{arch}-{res}", res), (arch, fmt)
            assert opts.gamma == pytest.approx(0.0002 * res ** 2 / opts.batch) and opts.mapping_layers == 2
            with torch.device("meta"):
                G = registry.create(opts.preset, resolution=opts.resolution, mapping_layers=opts.mapping_layers,
                                    compute_w_avg=False)
            assert G.resolution == res and len(G.mapping.layers) >= 2


@pytest.mark.parametrize("res", (32, 64))
@pytest.mark.parametrize("arch", GANS)
def test_every_gan_trains_a_step_from_every_format(arch, res, datasets, tmp_path):
    """Tiny widths at the data's size (the official widths take seconds per step: PIXELFOLDER_FULL_WIDTH=1)."""
    for fmt in FORMATS:
        opts = resolve(TrainOptions(preset=f"{arch}-tiny", resolution=res, data=str(datasets[res, fmt]),
                                    run_dir=str(tmp_path / fmt), batch=2, kimg=0.002, snap_kimg=1.0, device="cpu",
                                    workers=0, grid_seeds=2))
        result = training_loop(opts)
        assert result.step == 1 and result.G.resolution == res, fmt
        assert all(torch.isfinite(p).all() for p in result.G.parameters())
        assert "resized" not in (tmp_path / fmt / "log.txt").read_text()       # stored at the size it trains


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("PIXELFOLDER_FULL_WIDTH"),
                    reason="official widths: about 10 s per architecture; set PIXELFOLDER_FULL_WIDTH=1")
@pytest.mark.parametrize("res", (32, 64))
def test_every_gan_trains_a_step_at_official_width_from_the_data(res, datasets, tmp_path):
    for arch in GANS:
        opts = resolve(TrainOptions(model=arch, data=str(datasets[res, "folder"]), run_dir=str(tmp_path / arch),
                                    batch=2, kimg=0.002, snap_kimg=1.0, device="cpu", workers=0, grid_seeds=2))
        assert training_loop(opts).step == 1, arch


def test_a_resolution_that_disagrees_with_the_data_resizes_with_a_note(datasets, tmp_path):
    opts = resolve(TrainOptions(model="pixelfolder", preset=None, resolution=32, data=str(datasets[64, "zip"]),
                                run_dir=str(tmp_path / "r"), batch=2, kimg=0.002, snap_kimg=1.0, device="cpu",
                                workers=0, grid_seeds=2, mapping_layers=1))
    assert opts.preset == "pixelfolder-32"
    opts = resolve(TrainOptions(preset="pixelfolder-tiny", resolution=32, data=str(datasets[64, "zip"]),
                                run_dir=str(tmp_path / "r"), batch=2, kimg=0.002, snap_kimg=1.0, device="cpu",
                                workers=0, grid_seeds=2))
    assert training_loop(opts).step == 1
    log = (tmp_path / "r" / "log.txt").read_text()
    assert "holds 64x64 px images (image 0): they are center-cropped and resized to 32 px" in log


@pytest.mark.parametrize("size, model, near", [(16, "pixelfolder", 32), (48, "stylegan2", 64), (8, "inrgan", 32)])
def test_a_data_size_the_model_does_not_train_at_is_one_line(size, model, near, tmp_path, capsys):
    data = make_folder(tmp_path / f"d{size}", n=2, size=size)
    code, _, err = run_cli(capsys, "train", "--model", model, "--data", str(data), "--dry-run")
    assert code == 2 and err.strip().count("\n") == 0
    assert f"holds {size} px images, a size {model} does not train at" in err and f"--resolution {near}" in err
    code, _, err = run_cli(capsys, "train", "--model", model, "--data", str(data), "--resolution", str(size))
    assert code == 2 and f"--resolution {size}, a size {model} does not train at" in err


def test_official_recipe_at_its_resolution_and_the_rule_elsewhere(datasets):
    recipe = registry.architecture("pixelfolder").recipe
    official = resolve(TrainOptions(preset="pixelfolder-256", data="any", augment="none"))
    assert (official.gamma, official.ema_kimg, official.glr, official.mapping_layers, official.ema_rampup) == \
        (recipe.gamma, recipe.ema_kimg, recipe.lr, None, recipe.ema_rampup)
    scaled = resolve(TrainOptions(model="pixelfolder", data=str(datasets[64, "zip"]), batch=16))
    rule = scaled_values(64, 16)
    assert rule == {"gamma": 0.0002 * 64 ** 2 / 16, "ema_kimg": 16 * 10 / 32, "ema_rampup": 0.05, "glr": 0.0025,
                    "dlr": 0.0025, "mapping_layers": 2}
    assert {k: getattr(scaled, k) for k in rule} == rule
    assert scaled_values(1024, 32)["glr"] == 0.002
    given = resolve(TrainOptions(model="pixelfolder", data=str(datasets[64, "zip"]), gamma=1.5, glr=0.001))
    assert (given.gamma, given.glr, given.dlr) == (1.5, 0.001, 0.0025)


def test_dry_run_says_official_rule_or_given(datasets, capsys):
    code, out, _ = run_cli(capsys, "train", "--model", "stylegan2", "--data", str(datasets[64, "lmdb"]),
                           "--ema-kimg", "3", "--dry-run")
    assert code == 0
    sources = json.loads(out)["sources"]
    assert sources["resolution"].startswith("data (") and "64 px" in sources["resolution"]
    assert sources["gamma"].startswith("rule (NVlabs cfg=auto: 0.0002 res^2/batch; 64 px is not in the recipe")
    assert sources["mapping_layers"].startswith("rule (") and sources["ema_kimg"] == "given"
    assert sources["pl_weight"].startswith("official (rosinality")
    code, out, _ = run_cli(capsys, "train", "--preset", "stylegan2-256", "--data", str(datasets[64, "zip"]), "--dry-run")
    sources = json.loads(out)["sources"]
    assert sources["gamma"].startswith("official (") and sources["mapping_layers"] == "preset (stylegan2-256)"


def test_ema_rampup_caps_the_half_life_by_the_images_shown():
    assert ema_beta(32, 10.0, 0.05, 0) == 0.0                           # G_ema starts as a copy of G
    assert ema_beta(32, 10.0, 0.05, 1000) == pytest.approx(0.5 ** (32 / 50))
    assert ema_beta(32, 10.0, 0.05, 10 ** 7) == pytest.approx(0.5 ** (32 / 10000))
    assert ema_beta(32, 10.0, 0.0, 0) == pytest.approx(0.5 ** (32 / 10000))


def test_mapping_layers_apply_to_gans_only():
    with pytest.raises(PixelfolderError, match="applies to GANs"):
        resolve(TrainOptions(model="pixelpyramids", mapping_layers=2))
    with pytest.raises(PixelfolderError, match="likelihood model with none"):
        resolve(TrainOptions(model="pixelpyramids", augment="diffaug"))
