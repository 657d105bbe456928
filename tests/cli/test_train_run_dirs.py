"""`train`'s run directory and progress: the default --outdir names model, data and resolution; an existing run
is refused with the exact command that continues it; the ETA is the smaller of the --kimg and --time-limit ones."""
import shlex

from pixelfolder.cli.main import main
from pixelfolder.training.loop import progress_line
from pixelfolder.training.options import TrainOptions
from tests.helpers import make_folder, options


def dry_run(capsys, *argv):
    import json
    assert main(["train", "--dry-run", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_default_outdir_from_model_data_and_resolution(capsys, tmp_path):
    assert dry_run(capsys)["run_dir"] == "runs/pixelfolder-emoji-32"                       # the demo
    data = make_folder(tmp_path / "my data64.d", n=2, size=64)
    got = dry_run(capsys, "--model", "stylegan2", "--data", str(data), "--resolution", "64")
    assert got["run_dir"] == "runs/stylegan2-my_data64-64"
    assert dry_run(capsys, "--outdir", str(tmp_path / "x"))["run_dir"] == str(tmp_path / "x")


def test_an_existing_run_is_refused_with_the_command_that_continues_it(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "training-state.pt").write_bytes(b"x")
    argv = ["train", "--kimg", "1", "--outdir", str(run)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already holds a training state" in err
    command = err.split("`")[1]
    assert shlex.split(command) == ["pixelfolder", *argv, "--resume", "auto"]


def test_eta_is_the_smaller_of_kimg_and_time_limit(tmp_path):
    data = make_folder(tmp_path / "d", n=2)
    by_kimg = options(data, tmp_path / "r", kimg=10.0)
    assert progress_line(by_kimg, {}, 4.0, 60.0, elapsed_s=100).endswith("ETA 6.0 min")      # 6 kimg x 60 s
    limited = options(data, tmp_path / "r", kimg=10.0, time_limit_min=3.0)
    assert progress_line(limited, {}, 4.0, 60.0, elapsed_s=60).endswith("ETA 2.0 min")        # 3 min - 60 s
    assert progress_line(limited, {}, 4.0, 60.0, elapsed_s=900).endswith("ETA 0.0 min")
    assert isinstance(limited, TrainOptions)
