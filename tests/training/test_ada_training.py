"""ADA in training: --augment auto picks it for small datasets, p follows D's real outputs, is logged in
stats.jsonl and resumes exactly; bad ADA input is one line."""
import json

import pytest
import torch

from pixelfolder.errors import PixelfolderError
from pixelfolder.training.loop import training_loop
from pixelfolder.training.options import TrainOptions, resolve
from pixelfolder.training.rundir import read_state
from tests.helpers import make_folder, options, run_cli


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data") / "imgs", n=16, size=32)


def stats(run) -> list[dict]:
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def test_auto_is_ada_below_30k_images_and_the_dry_run_says_why(data, capsys, monkeypatch):
    assert resolve(TrainOptions(preset="pixelfolder-tiny", data=str(data))).augment == "ada"
    assert resolve(TrainOptions(preset="pixelfolder-tiny", data=str(data))).ada_target == 0.6
    monkeypatch.setattr("pixelfolder.training.options.ADA_BELOW_IMAGES", 16)
    assert resolve(TrainOptions(preset="pixelfolder-tiny", data=str(data))).augment == "none"
    monkeypatch.undo()
    code, out, _ = run_cli(capsys, "train", "--model", "stylegan2", "--data", str(data), "--dry-run")
    printed = json.loads(out)
    assert code == 0 and printed["augment"] == "ada"
    assert printed["sources"]["augment"] == "rule (16 images < 30,000: ada)"
    code, out, _ = run_cli(capsys, "train", "--dry-run")                    # the demo pins its own
    assert json.loads(out)["sources"]["augment"] == "demo"


def test_p_rises_while_d_is_sure_of_the_reals_and_is_logged(data, tmp_path):
    # target 0.01: r_t above it raises p by batch * 4 / (ada_kimg * 1000) = 8 * 4 / 64 = 0.5 every 4 steps
    run = tmp_path / "run"
    result = training_loop(options(data, run, augment="ada", ada_target=0.01, ada_kimg=0.064, batch=8, kimg=0.064,
                                   snap_kimg=1.0))
    assert result.step == 8
    p = [s["augment_p"] for s in stats(run)]
    assert p[-1] == pytest.approx(1.0) and all(v in (0.0, 0.5, 1.0) for v in p)


def test_ada_resumes_exactly(data, tmp_path):
    kw = dict(augment="ada", ada_target=0.01, ada_kimg=0.2, batch=8, snap_kimg=1.0, r1_every=2)
    reference = training_loop(options(data, tmp_path / "ref", kimg=0.096, **kw))
    training_loop(options(data, tmp_path / "split", kimg=0.08, **kw))               # stops at step 10 (mid-interval)
    middle = read_state(tmp_path / "split")["ada"]
    assert middle["signs"][1] > 0 and 0 < float(middle["p"]) < 1         # pending signs are part of the state
    resumed = training_loop(options(data, tmp_path / "split", kimg=0.096, resume="auto", **kw))
    assert resumed.step == reference.step == 12
    assert stats(tmp_path / "split")[-1]["augment_p"] == stats(tmp_path / "ref")[-1]["augment_p"] > 0
    for name in ("G", "D", "G_ema"):
        a, b = getattr(reference, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.parametrize("kw, message", [
    (dict(augment="ada", ada_target=1.0), r"--target must be in \(0, 1\)"),
    (dict(augment="ada", ada_target=0.0), r"--target must be in \(0, 1\)"),
    (dict(augment="none", ada_target=0.5), "applies with --augment ada only"),
    (dict(augment="ada", augpipe="bgcfnc"), "--augpipe must be one of"),
    (dict(augment="ada", ada_kimg=0.0), "--ada-kimg must be a finite number > 0"),
    (dict(model="pixelpyramids", augment="ada"), "likelihood model with none"),
])
def test_bad_ada_input_is_one_line(kw, message, data):
    with pytest.raises(PixelfolderError, match=message):
        resolve(TrainOptions(**{"preset": "pixelfolder-tiny", "data": str(data), **kw}) if "model" not in kw
                else TrainOptions(data=str(data), **kw))


def test_target_on_the_command_line(data, capsys):
    code, _, err = run_cli(capsys, "train", "--data", str(data), "--augment", "ada", "--target", "1.5", "--dry-run")
    assert code == 2 and err.strip().count("\n") == 0 and "--target must be in (0, 1)" in err
