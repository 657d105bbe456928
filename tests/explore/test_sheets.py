"""`pixelfolder generate --sheet truncation|mixing|scale`: sizes, cells equal to `generate`'s images, refusals."""
import numpy as np
import pytest
import torch
from PIL import Image

from pixelfolder.explore import sheets
from tests.helpers import run_cli

TINY = "pixelfolder-tiny"          # fixed-size, 32 px, 5 w's
ANY = "cips_skip-tiny"             # any-scale, 32 px, 1 w


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def generated(capsys, tmp_path, network, seed, *extra) -> np.ndarray:
    out = tmp_path / f"gen-{seed}-{'_'.join(extra)}"
    code, _, err = run_cli(capsys, "generate", "--network", network, "--seeds", seed, "--outdir", out, *extra)
    assert code == 0, err
    return png(out / f"seed{int(seed):04d}.png")


def crop(image, box):
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def check_layout(sheet, rows, cols, sizes):
    """Every cell is there at its size, in row/column order, inside the image, and not overlapping others."""
    h, w = sheet.image.shape[:2]
    assert set(sheet.boxes) == {(r, c) for r in range(rows) for c in range(cols)} - {(0, 0)} or \
        set(sheet.boxes) == {(r, c) for r in range(rows) for c in range(cols)}
    for (r, c), (x0, y0, x1, y1) in sheet.boxes.items():
        assert (x1 - x0, y1 - y0) == (sizes[c], sizes[c]) and 0 <= x0 and 0 <= y0 and x1 <= w and y1 <= h
        if (r, c + 1) in sheet.boxes:
            assert sheet.boxes[r, c + 1][0] >= x1
        if (r + 1, c) in sheet.boxes:
            assert sheet.boxes[r + 1, c][1] >= y1
    # margins for the labels only: the sheet is the cells plus a little
    assert w <= sum(sizes) + 2 * len(sizes) + 120 and h <= rows * (max(sizes) + 2) + 60


def test_truncation_sheet_cells_are_generate_images(tmp_path, capsys):
    code, out, err = run_cli(capsys, "generate", "--network", TINY, "--seeds", "0-2", "--sheet", "truncation",
                             "--psis", "-0.5", "0.7,1", "--outdir", tmp_path)
    assert code == 0, err
    written = png(tmp_path / "sheet-truncation.png")
    assert not list(tmp_path.glob("seed*.png"))               # a sheet instead of one file per seed
    import pixelfolder
    sheet = sheets.truncation_sheet(pixelfolder.load(TINY), [0, 1, 2], [-0.5, 0.7, 1.0])
    assert np.array_equal(sheet.image, written)
    check_layout(sheet, 3, 3, [32, 32, 32])
    for (r, c), psi in (((1, 1), "0.7"), ((2, 0), "-0.5"), ((0, 2), "1")):
        ref = generated(capsys, tmp_path, TINY, str(r), "--trunc", psi)
        assert np.abs(crop(written, sheet.boxes[r, c]) - ref).max() <= 1, (r, c)
    # the labels are drawn: dark pixels above the first row and left of the first column
    top = written[:sheet.boxes[0, 0][1]]
    left = written[:, :sheet.boxes[0, 0][0]]
    assert (top.sum(-1) < 200).sum() > 20 and (left.sum(-1) < 200).sum() > 20


def test_default_psis_and_sheet_path(tmp_path, capsys):
    path = tmp_path / "deep" / "t.png"
    code, out, err = run_cli(capsys, "generate", "--network", TINY, "--seeds", "5", "--sheet", "truncation",
                             "--sheet-path", path)
    assert code == 0, err
    assert "7 image(s)" in out and path.is_file()
    assert png(path).shape[1] >= 7 * 32


def test_mixing_sheet_follows_stylegan_figure(tmp_path, capsys):
    import pixelfolder
    from pixelfolder.data.images import to_uint8
    from pixelfolder.layers.mapping import mix_ws
    from pixelfolder.utils import seed_latent
    code, out, err = run_cli(capsys, "generate", "--network", TINY, "--seeds", "0-1", "--sheet", "mixing",
                             "--col-seeds", "5,6", "--outdir", tmp_path)
    assert code == 0, err
    written = png(tmp_path / "sheet-mixing.png")
    G = pixelfolder.load(TINY)
    assert sheets.default_mix_layers(G.n_latent) == [0, 1]      # 5 w's: the coarse styles, at most half of them
    sheet = sheets.mixing_sheet(G, [0, 1], [5, 6])
    assert np.array_equal(sheet.image, written)
    check_layout(sheet, 3, 3, [32, 32, 32])
    assert (0, 0) not in sheet.boxes
    # the first row shows the column seeds, the first column the row seeds
    for key, seed in (((0, 1), 5), ((0, 2), 6), ((1, 0), 0), ((2, 0), 1)):
        assert np.abs(crop(written, sheet.boxes[key]) - generated(capsys, tmp_path, TINY, str(seed))).max() <= 1
    # cell (row seed 1, column seed 6): seed 6's w 0-1, then seed 1's
    with torch.no_grad():
        ws = {s: G.mapping(seed_latent(s, G.z_dim, G.seed_rng)[0]) for s in (1, 6)}
        mixed = to_uint8(G.synthesis(mix_ws(ws[6], ws[1], 2)))[0].numpy().astype(int)
    cell = crop(written, sheet.boxes[2, 2])
    assert np.abs(cell - mixed).max() <= 1
    assert np.abs(cell - crop(written, sheet.boxes[2, 0])).mean() > 1      # neither source
    assert np.abs(cell - crop(written, sheet.boxes[0, 2])).mean() > 1
    # --mix-layers picks other w's
    other = sheets.mixing_sheet(G, [1], [6], sheets.parse_layers("3-4", G.n_latent))
    with torch.no_grad():
        late = to_uint8(G.synthesis(mix_ws(ws[1], ws[6], 3)))[0].numpy().astype(int)
    assert np.abs(crop(other.image, other.boxes[1, 1]).astype(int) - late).max() <= 1


def test_scale_sheet_renders_each_scale(tmp_path, capsys):
    code, out, err = run_cli(capsys, "generate", "--network", ANY, "--seeds", "0-1", "--sheet", "scale",
                             "--scales", "0.5,2", "--outdir", tmp_path)
    assert code == 0, err
    written = png(tmp_path / "sheet-scale.png")
    import pixelfolder
    sheet = sheets.scale_sheet(pixelfolder.load(ANY), [0, 1], [0.5, 2.0])
    assert np.array_equal(sheet.image, written)
    check_layout(sheet, 2, 2, [16, 64])
    assert np.abs(crop(written, sheet.boxes[1, 1]) - generated(capsys, tmp_path, ANY, "1", "--scale", "2")).max() <= 1
    assert np.abs(crop(written, sheet.boxes[0, 0]) - generated(capsys, tmp_path, ANY, "0", "--size", "16")).max() <= 1


@pytest.mark.parametrize("argv, words", [
    (["--network", TINY, "--sheet", "scale"], "any-scale model"),
    (["--network", ANY, "--sheet", "mixing"], "several w's"),
    (["--network", "pixelpyramids-tiny", "--sheet", "truncation"], "likelihood"),
    (["--network", TINY, "--sheet", "mixing", "--psis", "0,1"], "--psis"),
    (["--network", TINY, "--sheet", "truncation", "--trunc", "0.5"], "--psis"),
    (["--network", TINY, "--sheet", "mixing", "--mix-layers", "3-9"], "w's 0-4"),
    (["--network", TINY, "--sheet", "truncation", "--psis", "0,x"], "bad --psis"),
    (["--network", TINY, "--sheet", "truncation", "--psis", "3"], "truncation_psi must be in"),
    (["--network", TINY, "--sheet", "truncation", "--seeds", "0-99"], "at most 64"),
])
def test_refusals_are_one_line(tmp_path, capsys, argv, words):
    code, out, err = run_cli(capsys, "generate", *argv, "--outdir", tmp_path)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.glob("sheet-*.png"))


def test_outdir_or_sheet_path_is_required(tmp_path, capsys):
    code, out, err = run_cli(capsys, "generate", "--network", TINY, "--seeds", "0")
    assert code == 2 and "--outdir" in err
    code, out, err = run_cli(capsys, "generate", "--network", TINY, "--seeds", "0", "--sheet", "truncation")
    assert code == 2 and "--sheet-path" in err
