"""Training on imperfect data: unreadable images are skipped as `prepare` skips them (counted, listed in the
run's log, one warning), and a dataset that disappears mid-run stops training in one line with the last state
intact."""
import json
import shutil

import pytest

from pixelfolder.errors import PixelfolderError
from pixelfolder.training import loop
from pixelfolder.training.loop import training_loop
from pixelfolder.training.rundir import read_state
from tests.helpers import make_folder, options


def folder_with_bad_files(path, names=("000bad.png", "zz-truncated.png")):
    """8 good PNGs plus undecodable ones: garbage, and a PNG cut in half (sorted first and last)."""
    make_folder(path, n=8, size=32)
    good = sorted(path.glob("*.png"))[0].read_bytes()
    (path / names[0]).write_bytes(b"not an image at all")
    (path / names[1]).write_bytes(good[: len(good) // 2])
    return path


def test_unreadable_images_are_skipped_counted_and_listed(tmp_path, capsys):
    data = folder_with_bad_files(tmp_path / "data")
    result = training_loop(options(data, tmp_path / "run", batch=8, kimg=0.032, snap_kimg=1.0))
    assert result.step == 4                                        # 32 draws of the 10 images
    log = (tmp_path / "run" / "log.txt").read_text()
    skipped = [line for line in log.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 2 and any("000bad.png" in s for s in skipped) and any("zz-truncated" in s for s in skipped)
    assert "skipped 2 unreadable image(s)" in log.splitlines()[-1]
    stats = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["skipped_images"] == 2
    assert capsys.readouterr().err.count("warning: skipping unreadable images") == 1


def test_a_run_of_unreadable_images_is_one_line(tmp_path, monkeypatch):
    data = folder_with_bad_files(tmp_path / "data")
    monkeypatch.setattr(loop.CheckedImages, "MAX_SKIPPED_IN_A_ROW", 1)
    with pytest.raises(PixelfolderError, match=r"1 images in a row are unreadable.*training stopped at kimg"):
        training_loop(options(data, tmp_path / "run", batch=8, kimg=0.08, snap_kimg=1.0))


def test_a_dataset_that_disappears_mid_run_is_one_line_and_keeps_the_state(tmp_path, monkeypatch, capsys):
    data = make_folder(tmp_path / "data", n=8, size=32)
    original = loop.train_step

    def deleting_train_step(*args, **kwargs):
        out = original(*args, **kwargs)
        shutil.rmtree(data, ignore_errors=True)                # the disk goes away after the first step
        return out

    monkeypatch.setattr(loop, "train_step", deleting_train_step)
    from pixelfolder.cli.main import main
    code = main(["train", "--preset", "pixelfolder-tiny", "--data", str(data), "--outdir", str(tmp_path / "run"),
                 "--batch", "8", "--kimg", "1", "--device", "cpu", "--workers", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert f"the dataset {data} disappeared during training" in err[0] and "--resume auto" in err[0]
    assert read_state(tmp_path / "run")["step"] == 0           # the initial snapshot's state, loadable


def test_an_unreadable_first_image_does_not_stop_the_start(tmp_path, capsys):
    data = folder_with_bad_files(tmp_path / "data")
    from pixelfolder.cli.main import main
    assert main(["train", "--model", "pixelfolder", "--data", str(data), "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["preset"] == "pixelfolder-32"        # read from image 1


def test_a_dataset_of_one_image_is_one_line(tmp_path, capsys):
    data = make_folder(tmp_path / "one", n=1, size=32)
    from pixelfolder.cli.main import main
    code = main(["train", "--preset", "pixelfolder-tiny", "--data", str(data), "--outdir", str(tmp_path / "run"),
                 "--batch", "4", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "holds 1 image(s)" in err and "at least 2" in err


@pytest.mark.parametrize("batch, batch_gpu", [(6, None), (8, 6), (10, None)])
def test_a_batch_the_minibatch_stddev_cannot_group_is_one_line(batch, batch_gpu):
    from pixelfolder.training.options import TrainOptions, resolve
    with pytest.raises(PixelfolderError, match="groups of 4 images"):
        resolve(TrainOptions(preset="pixelfolder-tiny", batch=batch, batch_gpu=batch_gpu))
    assert resolve(TrainOptions(preset="pixelfolder-tiny", batch=3)).batch == 3      # one group below 4
