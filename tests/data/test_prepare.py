"""prepare(): round trips between every format, exact pixels, the official and dataset_tool layouts."""
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from pixelfolder.data import ImageDataset, PrepareConfig, prepare
from pixelfolder.data.transforms import center_crop_wide, resize_short
from pixelfolder.errors import PixelfolderError

from .util import (LANCZOS, encoded, expected_center_crop, lmdb_keys, read_official_lmdb, smooth_image,
                   write_images, write_lmdb)

SPECS = [("b/2.JPG", 40, 30), ("a.png", 37, 52), ("c.Webp", 24, 24), ("b/1.jpeg", 50, 33), ("d.BMP", 33, 41),
         ("e.PNG", 64, 40)]
SORTED = sorted(name for name, _, _ in SPECS)


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "src"
    write_images(src, SPECS)
    (src / "notes.txt").write_text("not an image")
    return src


def cfg(**kw):
    return PrepareConfig(**{"workers": 1, **kw})


def zip_images(path):
    with zipfile.ZipFile(path) as z:
        names = sorted(n for n in z.namelist() if n != "dataset.json")
        return names, [np.asarray(Image.open(io.BytesIO(z.read(n)))) for n in names], json.loads(z.read("dataset.json"))


def test_folder_to_lmdb_is_pixel_exact_and_official_readable(folder, tmp_path):
    dst = tmp_path / "out"
    result = prepare(folder, dst, cfg(size=24))
    assert result.written == len(SPECS) and result.skipped == () and result.source_count == len(SPECS)
    images = read_official_lmdb(dst)          # txn.get(f"{i:07d}"), int(txn.get(b"length"))
    assert len(images) == len(SPECS)
    for name, img in zip(SORTED, images):     # sorted relative paths, recursive, any extension case
        np.testing.assert_array_equal(img, expected_center_crop(folder / name, 24))
    keys = lmdb_keys(dst)
    assert keys == [f"{i:07d}".encode() for i in range(len(SPECS))] + [b"length"]
    env = __import__("lmdb").open(str(dst), readonly=True, lock=False)
    assert env.begin().get(b"length") == b"0000006"
    env.close()
    assert (tmp_path / "out.log").is_file() and sorted(p.name for p in dst.iterdir()) == ["data.mdb"]


def test_folder_to_zip_is_dataset_tool_layout(folder, tmp_path):
    dst = tmp_path / "out.zip"
    prepare(folder, dst, cfg(size=20, format="zip"))
    names, images, meta = zip_images(dst)
    assert names == [f"00000/img{i:08d}.png" for i in range(len(SPECS))]
    assert meta == {"labels": None}
    with zipfile.ZipFile(dst) as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    for name, img in zip(SORTED, images):
        np.testing.assert_array_equal(img, expected_center_crop(folder / name, 20))


def test_zip_names_roll_over_every_1000_images(tmp_path):
    from pixelfolder.data.prepare import ZipWriter
    w = ZipWriter(tmp_path / "x.zip", cfg(format="zip"))
    for i in (0, 999, 1000, 12345):
        w.add(i, b"x")
    w.finish(4)
    with zipfile.ZipFile(w.tmp) as z:
        assert z.namelist() == ["00000/img00000000.png", "00000/img00000999.png", "00001/img00001000.png",
                                "00012/img00012345.png", "dataset.json"]


def test_zip_to_lmdb_and_lmdb_to_zip_round_trip(folder, tmp_path):
    prepare(folder, tmp_path / "a.zip", cfg(size=16))
    _, first, _ = zip_images(tmp_path / "a.zip")
    prepare(tmp_path / "a.zip", tmp_path / "b", cfg(size=16))            # zip -> lmdb: same size, unchanged
    second = read_official_lmdb(tmp_path / "b")
    prepare(tmp_path / "b", tmp_path / "c.zip", cfg(size=16, format="zip"))   # lmdb -> zip
    _, third, _ = zip_images(tmp_path / "c.zip")
    for a, b, c in zip(first, second, third):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    prepare(tmp_path / "b", tmp_path / "d.zip", cfg(size=8))                  # and resized on the way
    _, fourth, _ = zip_images(tmp_path / "d.zip")
    for a, d in zip(first, fourth):
        np.testing.assert_array_equal(d, np.asarray(Image.fromarray(a).resize((8, 8), LANCZOS)))


def test_jpeg_quality_85_is_close_and_is_jpeg(folder, tmp_path):
    prepare(folder, tmp_path / "j", cfg(size=24, jpeg_quality=85))
    import lmdb
    env = lmdb.open(str(tmp_path / "j"), readonly=True, lock=False)
    with env.begin() as txn:
        assert txn.get(b"0000000")[:3] == b"\xff\xd8\xff"
    env.close()
    for name, img in zip(SORTED, read_official_lmdb(tmp_path / "j")):
        want = expected_center_crop(folder / name, 24)
        diff = np.abs(img.astype(int) - want.astype(int))
        assert diff.mean() < 12               # lossy (these tiny noisy images are hard for JPEG)
        same_codec = np.asarray(Image.open(io.BytesIO(encoded(want, "JPEG", quality=85))))
        np.testing.assert_array_equal(img, same_codec)      # exactly PIL's JPEG q85 of the exact crop
    prepare(folder, tmp_path / "j.zip", cfg(size=24, jpeg_quality=85))
    names, _, _ = zip_images(tmp_path / "j.zip")
    assert names[0] == "00000/img00000000.jpg"


def test_workers_give_the_same_bytes_in_input_order(folder, tmp_path):
    prepare(folder, tmp_path / "one.zip", cfg(size=16))
    prepare(folder, tmp_path / "two.zip", cfg(size=16, workers=2))
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()   # also: deterministic


def test_png_levels_are_lossless(folder, tmp_path):
    prepare(folder, tmp_path / "l0.zip", cfg(size=24))                   # our uncompressed PNG writer
    prepare(folder, tmp_path / "l6.zip", cfg(size=24, png_level=6))      # PIL's encoder
    _, a, _ = zip_images(tmp_path / "l0.zip")
    _, b, _ = zip_images(tmp_path / "l6.zip")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert (tmp_path / "l6.zip").stat().st_size < (tmp_path / "l0.zip").stat().st_size
    odd = smooth_image(7, 3, 0)
    from pixelfolder.data.decode import png_uncompressed
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png_uncompressed(Image.fromarray(odd))))), odd)


def test_max_images_counts_written_images(folder, tmp_path):
    (folder / "0bad.png").write_bytes(b"garbage")           # sorts first, skipped, not counted
    result = prepare(folder, tmp_path / "m", cfg(size=8, max_images=3, workers=2))
    assert result.written == 3 and len(result.skipped) == 1
    assert len(read_official_lmdb(tmp_path / "m")) == 3


def test_rosinality_lmdb_keys_are_read(tmp_path):
    imgs = {s: [smooth_image(s, s, i) for i in range(3)] for s in (8, 16, 32)}
    items = {f"{s}-{i:05d}".encode(): encoded(a) for s, arr in imgs.items() for i, a in enumerate(arr)}
    write_lmdb(tmp_path / "ros", {**items, b"length": b"3"})
    prepare(tmp_path / "ros", tmp_path / "o16", cfg(size=16))       # picks the stored 16 px images
    for got, want in zip(read_official_lmdb(tmp_path / "o16"), imgs[16]):
        np.testing.assert_array_equal(got, want)
    prepare(tmp_path / "ros", tmp_path / "o12", cfg(size=12))       # smallest stored size >= 12
    for got, want in zip(read_official_lmdb(tmp_path / "o12"), imgs[16]):
        np.testing.assert_array_equal(got, np.asarray(Image.fromarray(want).resize((12, 12), LANCZOS)))
    ds = ImageDataset(tmp_path / "ros")                              # largest by default
    assert len(ds) == 3 and ds[0].shape == (3, 32, 32)


def test_lmdb_file_and_missing_length_key(tmp_path):
    import lmdb
    env = lmdb.open(str(tmp_path / "single.lmdb"), subdir=False, map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(2):
            txn.put(f"{i:07d}".encode(), encoded(smooth_image(8, 8, i)))
    env.close()
    ds = ImageDataset(tmp_path / "single.lmdb")
    assert len(ds) == 2 and ds[1].shape == (3, 8, 8)


def test_resize_short_and_center_crop_wide():
    img = Image.fromarray(smooth_image(60, 30, 1))
    out, up = resize_short(img, 20)
    want = np.asarray(img.resize((40, 20), LANCZOS).crop((10, 0, 30, 20)))
    np.testing.assert_array_equal(np.asarray(out), want)
    assert not up
    out, up = center_crop_wide(Image.fromarray(smooth_image(90, 30, 2)), 40)
    band = np.asarray(Image.fromarray(smooth_image(90, 30, 2)).crop((15, 0, 75, 30)).resize((40, 20), LANCZOS))
    arr = np.asarray(out)
    assert arr.shape == (40, 40, 3) and not up
    np.testing.assert_array_equal(arr[10:30], band)
    assert arr[:10].max() == 0 and arr[30:].max() == 0
    out, up = center_crop_wide(Image.fromarray(smooth_image(30, 30, 3)), 40)   # 30x15 band -> upscaled
    assert up and np.asarray(out).shape == (40, 40, 3)


def test_transform_choice_reaches_the_output(folder, tmp_path):
    prepare(folder, tmp_path / "w.zip", cfg(size=16, transform="center-crop-wide"))
    _, images, _ = zip_images(tmp_path / "w.zip")
    assert all(img[:4].max() == 0 and img[12:].max() == 0 for img in images)


def test_bad_config_is_a_user_error():
    for bad in ({"size": 1}, {"format": "tar"}, {"transform": "stretch"}, {"jpeg_quality": 0}, {"workers": 0},
                {"max_images": 0}, {"min_size": -1}):
        with pytest.raises(PixelfolderError):
            PrepareConfig(**bad)
