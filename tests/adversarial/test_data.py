"""Hostile datasets through the CLI: FIFOs and devices as sources or inside folders, zip bombs, CRC-bad and
encrypted zip members, pixel bombs, extreme aspect ratios and mixed sizes. Each run has a memory cap and a time
limit: nothing may hang, allocate GBs or end in a traceback."""
import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.adversarial.harness import assert_ok, assert_one_line_error, run_cli_capped
from tests.helpers import make_folder

HANG_S = 20                  # a FIFO read blocks forever: a short limit makes a hang fail quickly
PREPARE_MEMORY = 3 << 29     # 1.5 GiB: prepare imports no torch; a 2 GiB inflation or a 4 GB resize cannot fit
TRAIN = ("--model", "stylegan2", "--preset", "stylegan2-tiny", "--kimg", "0.008", "--batch", "4", "--snap", "1",
         "--device", "cpu", "--workers", "0", "--threads", "1")


def env(tmp):
    return {"PIXELFOLDER_CACHE": str(tmp / "cache"), "PIXELFOLDER_OFFLINE": "1"}


# ------------------------------------------------------------------------------------------------ generators

def png_bytes(w, h, seed=0) -> bytes:
    """A w x h RGB PNG of noise."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def deflate_zeros(n: int) -> bytes:
    """Raw DEFLATE of n zero bytes without compressing n bytes: the sync-flushed 1 MiB blocks of a stream of zeros
    are identical once the window is full, so the middle block is repeated."""
    mib = 1 << 20
    blocks, rest = divmod(n, mib)
    assert blocks >= 2
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(bytes(mib)) + c.flush(zlib.Z_SYNC_FLUSH)
    middle = c.compress(bytes(mib)) + c.flush(zlib.Z_SYNC_FLUSH)
    return first + middle * (blocks - 1) + c.compress(bytes(rest)) + c.flush()


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def pixel_bomb_png(w=9500, h=9500) -> bytes:
    """A ~90 kB grayscale PNG of w x h black pixels (90 megapixels, past PIL's MAX_IMAGE_PIXELS warning)."""
    n = h * (w + 1)                                        # a filter byte per row
    idat = b"\x78\xda" + deflate_zeros(n) + struct.pack(">I", ((n % 65521) << 16) | 1)    # adler32 of n zeros
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def raw_zip(members) -> bytes:
    """A zip from (name, payload, method, crc, file_size, flags, compress_size) records, written by hand so that
    the headers can lie."""
    body, central = b"", b""
    for name, payload, method, crc, size, flags, csize in members:
        name_b = name.encode()
        header = struct.pack("<HHHHHIIIHH", 20, flags, method, 0, 0x21, crc, csize, size, len(name_b), 0)
        tail = struct.pack("<HHHII", 0, 0, 0, 0, len(body))          # comment, disk, attributes, offset
        central += b"PK\x01\x02" + struct.pack("<H", 20) + header + tail + name_b
        body += b"PK\x03\x04" + header + name_b + payload
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, len(members), len(members), len(central), len(body), 0)
    return body + central + end


def stored(name, data, flags=0, crc=None):
    return (name, data, 0, zlib.crc32(data) if crc is None else crc, len(data), flags, len(data))


def zip_bomb_member(name, size=2 << 30):
    """A ~2 MB DEFLATE member that inflates to `size` bytes (2 GiB), with honest sizes (its CRC is not computed)."""
    data = deflate_zeros(size)
    return (name, data, 8, 0, size, 0, len(data))


def crc_bad(name, data):
    return stored(name, data, crc=zlib.crc32(data) ^ 0x5A5A5A5A)


def encrypted(name, data):
    return stored(name, data, flags=0x1)


# ------------------------------------------------------------------------------------------------ the source itself

@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "images.png"
    os.mkfifo(path)
    return path


@pytest.fixture
def fifo_link(tmp_path, fifo):
    path = tmp_path / "dataset"
    path.symlink_to(fifo)
    return path


@pytest.fixture
def dev_zero_link(tmp_path):
    path = tmp_path / "images.zip"
    path.symlink_to("/dev/zero")
    return path


SOURCE_CASES = {
    "prepare-fifo": ("fifo", ["prepare", "{src}", "--out", "{tmp}/out.zip"], "a FIFO"),
    "prepare-dev-zero-link": ("dev_zero_link", ["prepare", "{src}", "--out", "{tmp}/out.zip"], "a character device"),
    "evaluate-fake-fifo": ("fifo", ["evaluate", "--fake", "{src}", "--metrics", "fid"], "a FIFO"),
    "prepare-link-to-fifo": ("fifo_link", ["prepare", "{src}", "--out", "{tmp}/out.zip"], "a FIFO"),
}


@pytest.mark.parametrize("case", SOURCE_CASES)
def test_a_non_regular_source_is_refused_in_one_line(case, request, tmp_path):
    fixture, argv, expected = SOURCE_CASES[case]
    src = request.getfixturevalue(fixture)
    argv = [a.format(src=src, tmp=tmp_path) for a in argv]
    result = run_cli_capped(*argv, timeout=HANG_S, env=env(tmp_path))
    assert_one_line_error(result, str(src), expected)
    assert not (tmp_path / "out.zip").exists()


# ------------------------------------------------------------------------------------------------ inside a folder

HOSTILE_FOLDER = {                       # file name -> what the log's reason must say
    "a_fifo.png": "a FIFO",
    "b_dev_zero.png": "a character device",
    "c_link_to_fifo.png": "a FIFO",
    "d_pixel_bomb.png": "pixels, over the limit",
    "e_tall_1x20000.png": "aspect ratio 1x20000",
    "f_wide_20000x1.png": "aspect ratio 20000x1",
}


@pytest.fixture(scope="module")
def hostile_folder_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile-folder")
    src = make_folder(tmp / "src", n=2, size=32)
    os.mkfifo(src / "a_fifo.png")
    (src / "b_dev_zero.png").symlink_to("/dev/zero")
    os.mkfifo(tmp / "elsewhere")
    (src / "c_link_to_fifo.png").symlink_to(tmp / "elsewhere")
    (src / "d_pixel_bomb.png").write_bytes(pixel_bomb_png())
    (src / "e_tall_1x20000.png").write_bytes(png_bytes(1, 20000))
    (src / "f_wide_20000x1.png").write_bytes(png_bytes(20000, 1))
    result = run_cli_capped("prepare", src, "--out", tmp / "out.zip", "--size", "256", "--transform",
                            "resize-short", "--workers", "1", memory=PREPARE_MEMORY, timeout=HANG_S, env=env(tmp))
    return tmp, result


def skipped_reasons(log: Path) -> dict:
    return {line.split("\t")[1]: line.split("\t")[2] for line in log.read_text().splitlines()
            if line.startswith("skipped\t")}


@pytest.mark.parametrize("name", HOSTILE_FOLDER)
def test_hostile_files_in_a_folder_are_skipped_and_counted(hostile_folder_run, name):
    tmp, result = hostile_folder_run
    assert_ok(result)
    assert f"wrote 2 images (skipped {len(HOSTILE_FOLDER)}," in result.stdout, result.describe()
    reasons = skipped_reasons(tmp / "out.zip.log")
    assert HOSTILE_FOLDER[name] in reasons.get(name, ""), reasons
    with zipfile.ZipFile(tmp / "out.zip") as z:
        assert len([n for n in z.namelist() if n.endswith(".png")]) == 2


def test_evaluate_skips_a_fifo_inside_the_fake_folder(tmp_path):
    fake = make_folder(tmp_path / "fake", n=2, size=32)
    os.mkfifo(fake / "0000_fifo.png")                   # sorted first: image 0, read for the image size
    result = run_cli_capped("evaluate", "--fake", fake, "--metrics", "fid", timeout=HANG_S, env=env(tmp_path))
    assert not result.timed_out and "Traceback" not in result.stderr, result.describe()
    assert "skipped 1 file(s) that are not regular files (e.g. 0000_fifo.png: a FIFO" in result.stderr
    assert result.code == 2 and "fid needs real images" in result.stderr     # got past the folder


# ------------------------------------------------------------------------------------------------ zip members

HOSTILE_ZIP = {                          # member -> what the log's reason must say
    "a_bomb.png": "declares 2,147,483,648 bytes, over the limit",
    "b_lying_header.png": "compressed bytes in a",
    "c_crc_bad.png": "CRC mismatch",
    "d_encrypted.png": "an encrypted (password-protected) zip member",
}


@pytest.fixture(scope="module")
def hostile_zip_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile-zip")
    good, other = png_bytes(32, 32, 1), png_bytes(32, 32, 2)
    lying = list(stored("b_lying_header.png", other))
    lying[6] = 1 << 30                                  # compress_size: 1 GiB in a 2 MB file
    members = [zip_bomb_member("a_bomb.png"), tuple(lying), crc_bad("c_crc_bad.png", other),
               encrypted("d_encrypted.png", other), stored("e_good.png", good), stored("f_good.png", other)]
    (tmp / "hostile.zip").write_bytes(raw_zip(members))
    result = run_cli_capped("prepare", tmp / "hostile.zip", "--out", tmp / "out.zip", "--size", "16", "--workers",
                            "1", memory=PREPARE_MEMORY, timeout=HANG_S, env=env(tmp))
    return tmp, result


@pytest.mark.parametrize("member", HOSTILE_ZIP)
def test_hostile_zip_members_are_refused_before_inflating_and_counted(hostile_zip_run, member):
    tmp, result = hostile_zip_run
    assert_ok(result)
    assert f"wrote 2 images (skipped {len(HOSTILE_ZIP)}," in result.stdout, result.describe()
    reasons = skipped_reasons(tmp / "out.zip.log")
    assert HOSTILE_ZIP[member] in reasons.get(member, ""), reasons


@pytest.mark.parametrize("kind, expected", [("crc", "CRC mismatch"), ("bomb", "over the limit")])
def test_training_skips_a_bad_zip_member_with_one_warning(kind, expected, tmp_path):
    """As `prepare` does: the member is never inflated past its limit, training goes on, one warning, and the
    run's log names the member and why."""
    bad = {"crc": lambda: crc_bad("img000.png", png_bytes(32, 32)),
           "bomb": lambda: zip_bomb_member("img000.png")}[kind]()
    members = [bad] + [stored(f"img{i:03d}.png", png_bytes(32, 32, i)) for i in range(1, 4)]
    (tmp_path / "data.zip").write_bytes(raw_zip(members))
    result = run_cli_capped("train", "--data", tmp_path / "data.zip", "--outdir", tmp_path / "run", *TRAIN,
                            env=env(tmp_path))
    assert_ok(result)
    assert result.stderr.count("warning: skipping unreadable images") == 1, result.describe()
    skipped = [line for line in (tmp_path / "run" / "log.txt").read_text().splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and "img000.png" in skipped[0] and expected in skipped[0], skipped


# ------------------------------------------------------------------------------------------------ sizes

def mixed_folder(path):
    make_folder(path, n=4, size=32)
    for i in range(4):
        Image.open(path / f"img{i:03d}.png").resize((48, 48)).save(path / f"img{i:03d}b.png")
    return path


SIZE_CASES = {
    "folder-32-and-48": (mixed_folder, "data", ("different sizes (32x32 and 48x48 px)", "--resolution 32")),
    "folder-16-for-32px-preset": (lambda p: make_folder(p, n=8, size=16), "data",
                                  ("16x16 px images", "trains at 32x32 px")),
}


@pytest.mark.parametrize("case", SIZE_CASES)
def test_training_data_of_other_or_mixed_sizes_ends_in_one_line(case, tmp_path):
    make, name, expected = SIZE_CASES[case]
    data = make(tmp_path / name)
    result = run_cli_capped("train", "--data", data, "--outdir", tmp_path / "run", *TRAIN, env=env(tmp_path))
    assert_one_line_error(result, *expected)
