"""`pixelfolder prepare`: summary line, format from the name, the emoji source, one-line errors."""
import re
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests.helpers import run_cli


@pytest.fixture
def images(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray((rng.random((30, 40, 3)) * 255).astype(np.uint8)).save(src / f"{i}.jpg")
    return src


def test_prepare_prints_one_summary_line_and_no_progress_bar_when_not_a_tty(images, tmp_path, capsys):
    code, out, err = run_cli(capsys, "prepare", images, "--out", tmp_path / "ds", "--size", "16", "--workers", "2")
    assert code == 0 and err == ""
    assert re.fullmatch(r"wrote 5 images \(skipped 0, upscaled 0\) to \S+ds in \d+\.\d s, \d+ img/s\n", out)
    assert (tmp_path / "ds" / "data.mdb").is_file() and (tmp_path / "ds.log").is_file()


def test_format_follows_the_name_unless_given(images, tmp_path, capsys):
    assert run_cli(capsys, "prepare", images, "--out", tmp_path / "a.zip", "--size", "8")[0] == 0
    assert zipfile.is_zipfile(tmp_path / "a.zip")
    assert run_cli(capsys, "prepare", images, "--out", tmp_path / "b", "--format", "zip", "--size", "8",
                   "--transform", "resize-short", "--jpeg-quality", "85")[0] == 0
    with zipfile.ZipFile(tmp_path / "b") as z:
        assert z.namelist()[0] == "00000/img00000000.jpg"


def test_prepare_emoji(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PIXELFOLDER_CACHE", str(tmp_path / "cache"))
    code, out, _ = run_cli(capsys, "prepare", "emoji", "--out", tmp_path / "e.zip", "--size", "64",
                           "--max-images", "12", "--workers", "2")
    assert code == 0 and out.startswith("wrote 12 images (skipped 0, upscaled 0)")
    with zipfile.ZipFile(tmp_path / "e.zip") as z:
        img = Image.open(z.open("00000/img00000011.png"))
        assert img.size == (64, 64) and img.mode == "RGB"
    assert not (tmp_path / "cache").exists()                 # preparing does not touch the cache


@pytest.mark.parametrize("argv, message", [
    (["--size", "1"], "size must be >= 2"),
    (["--workers", "0"], "workers must be >= 1"),
    (["--jpeg-quality", "101"], "JPEG quality"),
    (["--max-images", "0"], "max images"),
])
def test_bad_options_give_one_line_errors(images, tmp_path, capsys, argv, message):
    code, _, err = run_cli(capsys, "prepare", images, "--out", tmp_path / "x", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_output_equal_to_input_is_refused(images, tmp_path, capsys):
    run_cli(capsys, "prepare", images, "--out", tmp_path / "a.zip", "--size", "8")
    code, _, err = run_cli(capsys, "prepare", tmp_path / "a.zip", "--out", tmp_path / "a.zip", "--overwrite")
    assert code == 2 and "is the input" in err and zipfile.is_zipfile(tmp_path / "a.zip")
