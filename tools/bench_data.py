"""Throughput of `prepare` and of the DataLoader over ImageDataset. A benchmark: it measures and prints.

    python tools/bench_data.py                      # about 20 s on 2 idle cores
    python tools/bench_data.py --sizes 64 --prepare-workers 1 --loader-workers 0,2 --batches 32

prepare: one run per (source, size, workers): the Twemoji set (4,009 72x72 PNGs) and a synthetic folder of
`--images` 300x400 JPEGs, to a PNG LMDB. Loader: batches of 32 drawn through InfiniteSampler (random order,
as in training) from the synthetic set prepared as LMDB and as zip, after `--warmup` batches (worker start).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixelfolder.data import ImageDataset, InfiniteSampler, PrepareConfig, prepare


def ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def synthetic_folder(root: Path, count: int) -> Path:
    """`count` photo-like 400x300 JPEGs (q90): smooth colour fields plus grain, so they compress like photos."""
    folder = root / f"jpegs-{count}"
    if folder.is_dir() and len(list(folder.iterdir())) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = Image.fromarray((rng.random((30, 40, 3)) * 255).astype(np.uint8)).resize((400, 300), Image.BICUBIC)
        pixels = np.clip(np.asarray(coarse) + rng.normal(0, 6, (300, 400, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)
    return folder


def bench_prepare(name: str, src, out: Path, size: int, workers: int, fmt: str = "lmdb") -> dict:
    result = prepare(src, out, PrepareConfig(size=size, workers=workers, format=fmt, overwrite=True), progress=False)
    rate = result.written / result.seconds
    print(f"prepare {name:>9} {size:4d} px  workers {workers}  {result.written:5d} img  {result.seconds:6.1f} s  "
          f"{rate:7.0f} img/s", flush=True)
    return {"what": "prepare", "source": name, "size": size, "workers": workers, "img_s": rate}


def bench_loader(path: Path, fmt: str, size: int, workers: int, batches: int, warmup: int) -> dict:
    ds = ImageDataset(path)
    loader = torch.utils.data.DataLoader(ds, batch_size=32, sampler=InfiniteSampler(len(ds), seed=0),
                                         num_workers=workers, prefetch_factor=4 if workers else None)
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    rate = batches * 32 / (time.perf_counter() - start)
    del it
    print(f"loader  {fmt:>9} {size:4d} px  workers {workers}  {rate:7.0f} img/s", flush=True)
    return {"what": "loader", "format": fmt, "size": size, "workers": workers, "img_s": rate}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", help="where to write the data (default: a temporary directory)")
    p.add_argument("--images", type=int, default=500, help="synthetic JPEGs (default 500)")
    p.add_argument("--sizes", type=ints, default=[64, 256])
    p.add_argument("--prepare-workers", type=ints, default=[1, 2])
    p.add_argument("--loader-workers", type=ints, default=[0, 1, 2])
    p.add_argument("--batches", type=int, default=48, help="timed batches of 32 per loader run")
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--no-emoji", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        folder = synthetic_folder(root, args.images)
        print(f"{os.cpu_count()} CPUs; synthetic set: {args.images} JPEGs 400x300 in {folder}", flush=True)
        for size in args.sizes:
            for workers in args.prepare_workers:
                if not args.no_emoji:
                    bench_prepare("emoji", "emoji", root / f"emoji-{size}", size, workers)
                bench_prepare("jpeg", folder, root / f"jpeg-{size}", size, workers)
        for size in args.sizes:
            lmdb_path = root / f"jpeg-{size}"
            if not lmdb_path.exists():
                prepare(folder, lmdb_path, PrepareConfig(size=size, overwrite=True), progress=False)
            zip_path = root / f"jpeg-{size}.zip"
            prepare(lmdb_path, zip_path, PrepareConfig(size=size, overwrite=True), progress=False)
            for fmt, path in (("lmdb", lmdb_path), ("zip", zip_path)):
                for workers in args.loader_workers:
                    bench_loader(path, fmt, size, workers, args.batches, args.warmup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
