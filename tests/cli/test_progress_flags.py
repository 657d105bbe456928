"""--progress / --no-progress force the progress display of prepare, evaluate, generate and train on or off when
stderr is not a terminal (as under pytest): on gives plain lines, off gives none."""
import pytest

from tests.helpers import make_folder, run_cli


@pytest.fixture(autouse=True)
def every_update_prints(monkeypatch):
    monkeypatch.setenv("PIXELFOLDER_PROGRESS_SECONDS", "0")


def progress_lines(text: str, desc: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"{desc}: ")]


@pytest.mark.parametrize("flag, shown", [("--progress", True), ("--no-progress", False), (None, False)])
def test_prepare(flag, shown, tmp_path, capsys):
    data = make_folder(tmp_path / "d", n=3, size=32)
    code, _, err = run_cli(capsys, "prepare", str(data), "--out", str(tmp_path / "d.zip"), "--size", "32",
                           "--workers", "1", *([flag] if flag else []))
    assert code == 0
    lines = progress_lines(err, "prepare")
    assert bool(lines) == shown and (not shown or "3/3 img" in lines[-1])


@pytest.mark.parametrize("flag, shown", [("--progress", True), ("--no-progress", False), (None, False)])
def test_evaluate(flag, shown, tmp_path, capsys):
    real, fake = make_folder(tmp_path / "r", n=4, size=32), make_folder(tmp_path / "f", n=4, size=32, seed=1)
    code, _, err = run_cli(capsys, "evaluate", "--real", str(real), "--fake", str(fake), "--metrics", "fid",
                           "--outdir", str(tmp_path), "--no-cache", *([flag] if flag else []))
    assert code == 0, err
    assert bool(progress_lines(err, "real images")) == shown


@pytest.mark.parametrize("flag, shown", [("--progress", True), ("--no-progress", False)])
def test_generate(flag, shown, tmp_path, capsys):
    code, _, err = run_cli(capsys, "generate", "--network", "pixelfolder-tiny", "--seeds", "0-1", "--outdir",
                           str(tmp_path), flag)
    assert code == 0, err
    assert bool(progress_lines(err, "generate")) == shown


@pytest.mark.parametrize("flag, shown", [("--no-progress", False), (None, True)])
def test_train(flag, shown, tmp_path, capsys):
    data = make_folder(tmp_path / "d", n=4, size=32)
    code, out, err = run_cli(capsys, "train", "--preset", "pixelfolder-tiny", "--data", str(data), "--outdir",
                             str(tmp_path / "run"), "--batch", "4", "--kimg", "0.004", "--device", "cpu",
                             *([flag] if flag else []))
    assert code == 0, err
    assert any(line.startswith("kimg ") for line in out.splitlines()) == shown
    assert any(line.startswith("kimg ") for line in (tmp_path / "run" / "log.txt").read_text().splitlines())
