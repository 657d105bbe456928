"""Helpers for the data tests: small synthetic images and files written on the fly (nothing binary committed)."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image

LANCZOS = Image.Resampling.LANCZOS
FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP"}


def smooth_image(w: int, h: int, seed: int) -> np.ndarray:
    """A (h, w, 3) uint8 image with structure at several scales (compresses like a photo, unlike noise)."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((max(2, h // 8), max(2, w // 8), 3)) * 255).astype(np.uint8))
    base = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC)).astype(float)
    return np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def write_images(folder: Path, specs) -> list[Path]:
    """specs: (relative name, w, h); the format follows the extension. Returns the paths in creation order."""
    paths = []
    for k, (name, w, h) in enumerate(specs):
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = FORMATS[name.rsplit(".", 1)[1].lower()]
        extra = {"quality": 95} if fmt == "JPEG" else ({"lossless": True} if fmt == "WEBP" else {})
        Image.fromarray(smooth_image(w, h, k)).save(path, format=fmt, **extra)
        paths.append(path)
    return paths


def expected_center_crop(path_or_image, size: int) -> np.ndarray:
    """PIL's own result for the center-crop transform: central square, then LANCZOS (dataset_tool.py)."""
    img = path_or_image if isinstance(path_or_image, Image.Image) else Image.open(path_or_image).convert("RGB")
    w, h = img.size
    s = min(w, h)
    crop = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return np.asarray(crop.resize((size, size), LANCZOS))


def read_official_lmdb(path) -> list[np.ndarray]:
    """Read an LMDB exactly as PixelFolder/CIPS's MultiScaleDataset does."""
    env = lmdb.open(str(path), max_readers=32, readonly=True, lock=False, readahead=False, meminit=False)
    with env.begin(write=False) as txn:
        length = int(txn.get("length".encode("utf-8")).decode("utf-8"))
        images = [np.asarray(Image.open(io.BytesIO(txn.get(f"{str(i).zfill(7)}".encode("utf-8")))).convert("RGB"))
                  for i in range(length)]
    env.close()
    return images


def lmdb_keys(path) -> list[bytes]:
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        keys = [k for k, _ in txn.cursor()]
    env.close()
    return keys


def write_lmdb(path, items: dict) -> None:
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for k, v in items.items():
            txn.put(k, v)
    env.close()


def encoded(arr: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG (gray, gray+alpha, RGB or RGBA by the channel count), written by hand: PIL cannot."""
    h, w = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
