"""The command line: outputs of each verb and one-line errors for bad input."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import pixelfolder
from tests.helpers import FIXTURES, run_cli


def test_models_lists_presets_with_counts(capsys):
    code, out, _ = run_cli(capsys, "models", "--kind", "generator")
    assert code == 0
    line = next(l for l in out.splitlines() if l.startswith("pixelfolder-256 "))
    params_m, gmacs = map(float, line.split()[-2:])
    assert params_m == 20.844
    # the official execution counts 23.75 GMACs; ours skips a few elementwise-replaced FIR/LFF products
    assert abs(gmacs - 23.75) / 23.75 < 0.005


def test_generate_from_preset_writes_pngs_and_grid(tmp_path, capsys):
    out_dir = tmp_path / "imgs"
    code, out, _ = run_cli(capsys, "generate", "--network", "pixelfolder-tiny", "--seeds", "0-2,7",
                             "--outdir", str(out_dir), "--grid", "--trunc", "0.7", "--device", "cpu")
    assert code == 0 and "randomly initialised" in out
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0007.png"]   # the grid is not among them
    img = np.asarray(Image.open(out_dir / "seed0001.png"))
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and img.std() > 0
    grid = np.asarray(Image.open(tmp_path / "imgs-grid.png"))
    assert grid.shape == (64, 64, 3)
    assert (grid[:32, 32:] == img).all()          # row-major 2 x 2 of seeds 0, 1, 2, 7: seed 1 is top right


def test_generate_is_reproducible_per_seed(tmp_path, capsys):
    G = pixelfolder.create("stylegan2-tiny")
    pixelfolder.save(G, tmp_path / "g.pt")
    run_cli(capsys, "generate", "--network", str(tmp_path / "g.pt"), "--seeds", "3-4", "--outdir",
            str(tmp_path / "a"), "--batch", "2")
    run_cli(capsys, "generate", "--network", str(tmp_path / "g.pt"), "--seeds", "4", "--outdir",
            str(tmp_path / "b"), "--batch", "1")
    a = np.asarray(Image.open(tmp_path / "a" / "seed0004.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "b" / "seed0004.png")).astype(int)
    assert np.abs(a - b).max() <= 1


def test_convert_then_generate(tmp_path, capsys):
    src = FIXTURES / "pixelfolder_64.pt"
    fx = torch.load(src, weights_only=True)
    torch.save({"g_ema": fx["state_dict"], "g": fx["state_dict"]}, tmp_path / "official.pt")
    code, out, _ = run_cli(capsys, "convert", str(tmp_path / "official.pt"), str(tmp_path / "ours.pt"))
    assert code == 0 and "pixelfolder 64px" in out
    record = torch.load(tmp_path / "ours.pt", weights_only=True)
    assert record["arch"] == "pixelfolder" and record["metadata"]["network"] == "g_ema"
    code, _, _ = run_cli(capsys, "generate", "--network", str(tmp_path / "ours.pt"), "--seeds", "0",
                         "--outdir", str(tmp_path / "img"))
    assert code == 0 and (tmp_path / "img" / "seed0000.png").is_file()


@pytest.mark.parametrize("argv, message", [
    (["generate", "--network", "no-such-model", "--seeds", "0", "--outdir", "{tmp}"], "neither a file nor"),
    (["generate", "--network", "pixelfolder-tiny", "--seeds", "0", "--trunc", "7", "--outdir", "{tmp}"],
     "truncation_psi"),
    (["generate", "--network", "pixelfolder-tiny", "--seeds", "x-y", "--outdir", "{tmp}"], "bad --seeds"),
    (["generate", "--network", "{tmp}/corrupt.pt", "--seeds", "0", "--outdir", "{tmp}"], "not a readable"),
    (["generate", "--network", "{tmp}/disc.pt", "--seeds", "0", "--outdir", "{tmp}"], "not a generator"),
    (["generate", "--network", "pixelfolder-tiny", "--seeds", "0", "--outdir", "{tmp}/file.txt/sub"],
     "cannot create output directory"),
    (["convert", "{tmp}/corrupt.pt", "{tmp}/out.pt"], "not a readable"),
    (["bench", "--models", "nope"], "neither a file nor"),
])
def test_bad_input_gives_one_line_error(tmp_path, capsys, argv, message):
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage")
    (tmp_path / "file.txt").write_text("x")
    pixelfolder.save(pixelfolder.create("stylegan2_d-tiny"), tmp_path / "disc.pt")
    code, _, err = run_cli(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_bench_single_measures_a_tiny_model(capsys):
    code, out, _ = run_cli(capsys, "bench", "--single", "pixelfolder-tiny", "--batch", "2", "--repeats", "1")
    assert code == 0
    row = json.loads(out.strip().splitlines()[-1])
    assert row["params"] == pixelfolder.models.count_parameters(pixelfolder.create("pixelfolder-tiny"))
    assert row["gmacs"] > 0 and row["ms_per_img"] > 0 and row["rel_l2_vs_fp32"] < 1e-5
