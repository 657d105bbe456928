"""Bad input: every kind is skipped (and logged), converted, or refused with one line; never a partial output."""
import importlib
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from pixelfolder.cli.main import main
from pixelfolder.data import ImageDataset, PrepareConfig, prepare
from pixelfolder.errors import PixelfolderError

from .util import encoded, png16, read_official_lmdb, smooth_image, write_lmdb


def run(capsys, *argv):
    code = main(["prepare", *map(str, argv), "--workers", "1"])
    out, err = capsys.readouterr()
    return code, out, err


def one_pixel_value(path_or_dir, index=0):
    ds = ImageDataset(path_or_dir)
    value = ds[index][:, 0, 0].tolist()
    ds.source.close()
    return value


def leaves_nothing(tmp_path, dst_name):
    return not (tmp_path / dst_name).exists() and not [p for p in tmp_path.iterdir() if ".incomplete" in p.name]


@pytest.fixture
def broken_folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = encoded(smooth_image(20, 20, 0))
    jpeg = encoded(smooth_image(20, 20, 1), "JPEG", quality=90)
    (src / "good.png").write_bytes(good)
    (src / "good2.jpg").write_bytes(jpeg)
    (src / "truncated.png").write_bytes(good[: len(good) // 2])
    (src / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (src / "corrupt.jpg").write_bytes(jpeg[:200] + bytes(range(256)) * 4)
    (src / "text.png").write_text("this is not an image")
    (src / "empty.webp").write_bytes(b"")
    (src / "dangling.bmp").symlink_to(tmp_path / "nowhere.bmp")
    return src


def test_broken_files_are_skipped_counted_and_logged(broken_folder, tmp_path, capsys):
    code, out, err = run(capsys, broken_folder, "--out", tmp_path / "out", "--size", "16")
    assert code == 0
    assert out.strip().startswith("wrote 2 images (skipped 6, upscaled 0) to ")
    assert " img/s" in out and "Traceback" not in err
    log = (tmp_path / "out.log").read_text()
    skipped = {line.split("\t")[1]: line.split("\t")[2] for line in log.splitlines() if line.startswith("skipped")}
    assert set(skipped) == {"truncated.png", "truncated.jpg", "corrupt.jpg", "text.png", "empty.webp",
                            "dangling.bmp"}
    assert "truncated" in skipped["truncated.png"] and "cannot read" in skipped["dangling.bmp"]
    assert "not an image format" in skipped["text.png"]
    assert len(read_official_lmdb(tmp_path / "out")) == 2


def test_nothing_readable_is_an_error_and_leaves_nothing(broken_folder, tmp_path, capsys):
    for name in ("good.png", "good2.jpg"):
        (broken_folder / name).unlink()
    for dst in ("out", "out.zip"):
        code, out, err = run(capsys, broken_folder, "--out", tmp_path / dst)
        assert code == 2 and "no image could be written" in err and len(err.strip().splitlines()) == 1
        assert leaves_nothing(tmp_path, dst) and (tmp_path / f"{dst}.log").is_file()


def test_sixteen_bit_png_is_converted_not_skipped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    gray = np.array([[0, 257, 32896, 65535]] * 4, dtype=np.uint16)
    rgb = np.zeros((4, 4, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 65535, 128 * 257, 0
    rgba = np.dstack([rgb, np.full((4, 4), 65535, np.uint16)])
    (src / "a_gray16.png").write_bytes(png16(gray))
    (src / "b_rgb16.png").write_bytes(png16(rgb))
    (src / "c_rgba16.png").write_bytes(png16(rgba))
    result = prepare(src, tmp_path / "o.zip", PrepareConfig(size=4, workers=1))
    assert result.written == 3 and not result.skipped
    ds = ImageDataset(tmp_path / "o.zip")
    assert ds[0][0, 0].tolist() == [0, 1, 128, 255] and (ds[0][0] == ds[0][2]).all()
    assert ds[1][:, 0, 0].tolist() == [255, 128, 0]
    assert ds[2][:, 0, 0].tolist() == [255, 128, 0]


def test_modes_gray_palette_alpha_cmyk(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("L", (4, 4), 77).save(src / "a_gray.png")
    Image.new("1", (4, 4), 1).save(src / "b_bilevel.png")
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.save(src / "c_palette.png")
    pal.save(src / "d_palette_transparent.png", transparency=1)
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(src / "e_rgba_clear.png")
    Image.new("RGBA", (4, 4), (0, 0, 0, 128)).save(src / "f_rgba_half.png")
    Image.new("LA", (4, 4), (0, 0)).save(src / "g_la_clear.png")
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(src / "h_cmyk.jpg", quality=100)
    Image.new("RGBA", (4, 4), (200, 0, 0, 255)).save(src / "i_rgba.webp", lossless=True)
    result = prepare(src, tmp_path / "o.zip", PrepareConfig(size=4, workers=1))
    assert result.written == 9 and not result.skipped
    ds = ImageDataset(tmp_path / "o.zip")
    got = [ds[i][:, 1, 1].tolist() for i in range(9)]
    assert got[0] == [77, 77, 77] and got[1] == [255, 255, 255]
    assert got[2] == [10, 200, 30] and got[3] == [255, 255, 255]         # transparent palette entry -> white
    assert got[4] == [255, 255, 255] and got[6] == [255, 255, 255]
    assert all(abs(v - 127) <= 1 for v in got[5])                        # half-transparent black on white
    assert got[7][0] > 240 and got[7][1] < 15 and got[7][2] < 15         # CMYK red -> RGB red
    assert got[8] == [200, 0, 0]


def test_small_images_upscaled_with_warning_or_skipped_with_min_size(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for i, (w, h) in enumerate([(40, 40), (12, 30), (50, 20)]):
        (src / f"{i}.png").write_bytes(encoded(smooth_image(w, h, i)))
    code, out, err = run(capsys, src, "--out", tmp_path / "a", "--size", "32")
    assert code == 0 and "upscaled 2" in out and "2 image(s) smaller than 32 px were upscaled" in err
    assert "upscaled\t1.png\t12x30 -> 32" in (tmp_path / "a.log").read_text()
    code, out, err = run(capsys, src, "--out", tmp_path / "b", "--size", "32", "--min-size", "20")
    assert code == 0 and out.startswith("wrote 2 images (skipped 1, upscaled 1)")
    assert "smaller than --min-size 20" in (tmp_path / "b.log").read_text()


@pytest.mark.parametrize("kind", ["empty_folder", "missing", "text_file", "zip_without_images",
                                  "zip_of_non_images", "lmdb_without_images", "lmdb_bad_length",
                                  "lmdb_of_non_images", "corrupt_zip"])
def test_unusable_sources_give_one_line_errors(kind, tmp_path, capsys):
    src = tmp_path / kind
    expect = {"empty_folder": "no images in folder", "missing": "no such file or directory",
              "text_file": "not a folder of images, a zip or an LMDB", "zip_without_images": "no images in zip",
              "zip_of_non_images": "no image could be written", "lmdb_without_images": "not an image dataset",
              "lmdb_bad_length": "is damaged", "lmdb_of_non_images": "no image could be written",
              "corrupt_zip": "not a folder of images, a zip or an LMDB"}[kind]
    if kind == "empty_folder":
        (src / "sub").mkdir(parents=True)
        (src / "readme.txt").write_text("no images here")
    elif kind == "text_file":
        src.write_text("hello")
    elif kind.startswith("zip"):
        with zipfile.ZipFile(src, "w") as z:
            z.writestr("dataset.json", '{"labels": null}')
            if kind == "zip_of_non_images":
                z.writestr("00000/img00000000.png", b"not a png")
    elif kind == "corrupt_zip":
        good = io.BytesIO()
        with zipfile.ZipFile(good, "w") as z:
            z.writestr("a.png", encoded(smooth_image(8, 8, 0)))
        src.write_bytes(good.getvalue()[:-30])
    elif kind == "lmdb_without_images":
        write_lmdb(src, {b"foo": b"bar", b"length": b"1"})
    elif kind == "lmdb_bad_length":
        write_lmdb(src, {b"0000000": encoded(smooth_image(8, 8, 0)), b"length": b"0000005"})
    elif kind == "lmdb_of_non_images":
        write_lmdb(src, {b"0000000": b"nope", b"length": b"0000001"})
    code, out, err = run(capsys, src, "--out", tmp_path / "out.zip")
    assert code == 2 and expect in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert leaves_nothing(tmp_path, "out.zip")
    if kind not in ("zip_of_non_images", "lmdb_of_non_images"):
        with pytest.raises(PixelfolderError, match=expect.split(" (")[0]):
            ImageDataset(src)


def test_existing_output_is_kept_unless_overwrite(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(encoded(smooth_image(8, 8, 0)))
    (tmp_path / "out.zip").write_bytes(b"precious")
    code, _, err = run(capsys, src, "--out", tmp_path / "out.zip", "--size", "8")
    assert code == 2 and "already exists" in err and (tmp_path / "out.zip").read_bytes() == b"precious"
    code, _, _ = run(capsys, src, "--out", tmp_path / "out.zip", "--size", "8", "--overwrite")
    assert code == 0 and zipfile.is_zipfile(tmp_path / "out.zip")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("keep me")
    code, _, err = run(capsys, src, "--out", tmp_path / "notes", "--overwrite")
    assert code == 2 and "refusing to replace directory" in err and (tmp_path / "notes" / "thesis.tex").exists()
    assert run(capsys, src, "--out", tmp_path / "db", "--size", "8")[0] == 0
    assert run(capsys, src, "--out", tmp_path / "db", "--size", "4", "--overwrite")[0] == 0   # an LMDB: replaced
    assert read_official_lmdb(tmp_path / "db")[0].shape == (4, 4, 3)


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch, workers):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"{i}.png").write_bytes(encoded(smooth_image(8, 8, i)))
    prepare_module = importlib.import_module("pixelfolder.data.prepare")
    real_add = prepare_module.ZipWriter.add

    def add(self, index, payload):
        if index == 3:
            raise KeyboardInterrupt
        real_add(self, index, payload)
    monkeypatch.setattr(prepare_module.ZipWriter, "add", add)
    with pytest.raises(KeyboardInterrupt):
        prepare(src, tmp_path / "out.zip", PrepareConfig(size=8, workers=workers))
    assert leaves_nothing(tmp_path, "out.zip")
