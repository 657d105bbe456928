"""`generate` writes each batch as it is made, shows progress off a terminal when asked, keeps the grid apart."""
import numpy as np
import pytest
from PIL import Image

from pixelfolder.cli import generate
from tests.helpers import run_cli


def test_images_are_written_batch_by_batch(tmp_path, capsys, monkeypatch):
    seen = []
    real_sampler = generate.sampler

    def counting_sampler(args, G, device):
        draw = real_sampler(args, G, device)

        def wrapped(seeds):
            seen.append((list(seeds), len(list((tmp_path / "o").glob("*.png")))))
            return draw(seeds)
        return wrapped
    monkeypatch.setattr(generate, "sampler", counting_sampler)
    code, _, err = run_cli(capsys, "generate", "--network", "stylegan2-tiny", "--seeds", "0-4", "--batch", "2",
                           "--outdir", str(tmp_path / "o"), "--device", "cpu")
    assert code == 0, err
    # three forwards of at most 2 seeds; before each one, every earlier image is already on disk
    assert seen == [([0, 1], 0), ([2, 3], 2), ([4], 4)]


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PIXELFOLDER_PROGRESS_SECONDS", "0")
    code, _, err = run_cli(capsys, "generate", "--network", "stylegan2-tiny", "--seeds", "0-3", "--batch", "2",
                           "--outdir", str(tmp_path / "a"), "--progress")
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("generate:")]
    assert lines[0].startswith("generate: 2/4 img, 50%") and lines[-1].startswith("generate: 4/4 img, 100%")
    code, _, err = run_cli(capsys, "generate", "--network", "stylegan2-tiny", "--seeds", "0-3", "--outdir",
                           str(tmp_path / "b"), "--no-progress")
    assert code == 0 and "generate:" not in err
    code, _, err = run_cli(capsys, "generate", "--network", "stylegan2-tiny", "--seeds", "0-3", "--outdir",
                           str(tmp_path / "c"))                     # default: a bar only on a terminal
    assert code == 0 and "generate:" not in err


@pytest.mark.parametrize("given", [None, "custom/g.png"])
def test_grid_goes_outside_the_image_folder(tmp_path, capsys, monkeypatch, given):
    monkeypatch.chdir(tmp_path)
    extra = ["--grid"] + ([given] if given else [])
    code, out, _ = run_cli(capsys, "generate", "--network", "stylegan2-tiny", "--seeds", "0-69", "--batch", "16",
                           "--outdir", "imgs", *extra)
    assert code == 0
    grid = tmp_path / (given or "imgs-grid.png")
    assert grid.is_file() and str(grid.name) in out
    assert sorted(p.name for p in (tmp_path / "imgs").iterdir()) == [f"seed{s:04d}.png" for s in range(70)]
    assert np.asarray(Image.open(grid)).shape == (8 * 32, 8 * 32, 3)    # the first 64 seeds, 8 x 8
    first = np.asarray(Image.open(tmp_path / "imgs" / "seed0009.png"))
    assert np.array_equal(np.asarray(Image.open(grid))[32:64, 32:64], first)   # seed 9: row 1, column 1
