"""Where encoded images come from: a folder (recursive), a zip, or an LMDB (official or rosinality keys).

A source lists its images once, in a fixed order, and reads the encoded bytes of image i. File handles
(zip, LMDB environment) are opened lazily and reopened after a fork, so a source can be pickled into
DataLoader workers or a multiprocessing pool.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import zipfile
from pathlib import Path

from ..errors import PixelfolderError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_ROSINALITY_KEY = re.compile(rb"^(\d+)-(\d+)$")
MAX_IMAGE_BYTES = int(os.environ.get("PIXELFOLDER_MAX_IMAGE_BYTES", 256 << 20))   # one encoded image, file or member
_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def file_kind(mode: int) -> str:
    """'a FIFO', 'a character device', ... for a stat mode that is not a regular file's."""
    return next((what for test, what in _FILE_KINDS if test(mode)), "not a regular file")


def not_regular(path) -> str | None:
    """Why `path` (links followed) is no regular file, e.g. 'a FIFO'; None for a regular or unreadable one."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None                   # dangling links and the like fail (and are reported) when read
    return None if stat.S_ISREG(mode) else file_kind(mode)


def read_regular(path, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; OSError for anything else (never blocks on a FIFO)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{file_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise OSError(f"{st.st_size:,} bytes, over the limit of {limit:,} (PIXELFOLDER_MAX_IMAGE_BYTES)")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"grew past the limit of {limit:,} bytes while read (PIXELFOLDER_MAX_IMAGE_BYTES)")
    return data


class Source:
    """Base class: `len(source)`, `source.name(i)`, `source.read(i) -> bytes`."""
    kind = "source"

    def __init__(self, path):
        self.path = Path(path)
        self._handle = None
        self._pid = None

    def __len__(self) -> int:
        raise NotImplementedError

    def name(self, index: int) -> str:
        raise NotImplementedError

    def read(self, index: int) -> bytes:
        raise NotImplementedError

    def fingerprint(self) -> dict:
        """What changes when the images change: the data file's size and mtime (folders: every listed file's)."""
        target = self.path / "data.mdb" if self.path.is_dir() else self.path
        st = target.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def _open(self):
        raise NotImplementedError

    def handle(self):
        """The open zip/LMDB handle of this process (reopened in a forked child)."""
        if self._handle is None or self._pid != os.getpid():
            self._handle, self._pid = self._open(), os.getpid()
        return self._handle

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = self._pid = None

    def __getstate__(self):
        return {**self.__dict__, "_handle": None, "_pid": None}

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001  (interpreter shutdown)
            pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, {len(self)} images)"


class FolderSource(Source):
    """Every file with an image extension (any letter case) below `path`, sorted by relative path."""
    kind = "folder"

    def __init__(self, path):
        super().__init__(path)
        names, self.skipped, seen = [], [], set()          # skipped: (name, why) of FIFOs, devices, sockets
        for root, dirs, files in os.walk(self.path, followlinks=True):
            real = os.path.realpath(root)
            if real in seen:                  # a symlink loop
                dirs[:] = []
                continue
            seen.add(real)
            rel = Path(root).relative_to(self.path)
            for f in filter(is_image_name, files):
                why = not_regular(os.path.join(root, f))
                if why is None:
                    names.append((rel / f).as_posix())
                else:
                    self.skipped.append(((rel / f).as_posix(), f"{why}, not a regular file"))
        self.names = sorted(names)
        self.skipped.sort()

    def __len__(self) -> int:
        return len(self.names)

    def name(self, index: int) -> str:
        return self.names[index]

    def read(self, index: int) -> bytes:
        return read_regular(self.path / self.names[index])

    def fingerprint(self) -> dict:
        """A digest of every listed file's name, size and mtime (ns): replacing an image in place changes it."""
        h = hashlib.sha256()
        for name in self.names:
            try:
                st = os.stat(self.path / name)
                h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
            except OSError:
                h.update(f"{name}\0missing\n".encode("utf-8", "surrogateescape"))
        return {"files": len(self.names), "listing_sha256": h.hexdigest()}


class ZipSource(Source):
    """Members of a zip with image extensions, sorted by name (StyleGAN2-ADA's dataset_tool layout and others)."""
    kind = "zip"

    def __init__(self, path):
        super().__init__(path)
        try:
            self.archive_size = os.stat(self.path).st_size
            with zipfile.ZipFile(self.path) as z:
                self.names = sorted(i.filename for i in z.infolist() if not i.is_dir() and is_image_name(i.filename))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise PixelfolderError(f"{self.path} is not a readable zip ({e})") from None

    def _open(self):
        return zipfile.ZipFile(self.path)

    def __len__(self) -> int:
        return len(self.names)

    def name(self, index: int) -> str:
        return self.names[index]

    def read(self, index: int) -> bytes:
        """The member's bytes, refused (OSError) before inflating when encrypted or too large, CRC-checked."""
        info = self.handle().getinfo(self.names[index])
        check_member(info, self.archive_size)
        try:
            with self.handle().open(info) as f:
                data = f.read(MAX_IMAGE_BYTES + 1)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, ValueError) as e:
            raise OSError(_member_error(e)) from None
        except Exception as e:  # noqa: BLE001  (zlib.error, lzma/bz2 errors of damaged data)
            raise OSError(f"damaged zip member ({type(e).__name__}: {e})") from None
        if len(data) > MAX_IMAGE_BYTES:
            raise OSError(f"inflates past the limit of {MAX_IMAGE_BYTES:,} bytes (PIXELFOLDER_MAX_IMAGE_BYTES)")
        return data


def check_member(info: zipfile.ZipInfo, archive_size: int) -> None:
    """OSError for an encrypted member or one whose declared sizes exceed the cap or the archive."""
    if info.flag_bits & 0x1:
        raise OSError("an encrypted (password-protected) zip member")
    if info.file_size > MAX_IMAGE_BYTES:
        raise OSError(f"the zip member declares {info.file_size:,} bytes, over the limit of {MAX_IMAGE_BYTES:,} "
                      "(PIXELFOLDER_MAX_IMAGE_BYTES; a zip bomb?)")
    if info.compress_size > archive_size:
        raise OSError(f"the zip member declares {info.compress_size:,} compressed bytes in a "
                      f"{archive_size:,}-byte zip")


def _member_error(e: Exception) -> str:
    text = " ".join(str(e).split())[:160]
    if "CRC" in text:
        return f"damaged zip member (CRC mismatch: {text})"
    if "encrypted" in text or "password" in text:
        return "an encrypted (password-protected) zip member"
    return f"unreadable zip member ({type(e).__name__}: {text})"


def _lmdb():
    try:
        import lmdb
    except ImportError:
        raise PixelfolderError("reading or writing LMDB needs the lmdb package: pip install lmdb") from None
    return lmdb


def open_lmdb(path, *, subdir: bool | None = None):
    """Read-only environment opened the way the official loader does (no lock, no readahead)."""
    lmdb = _lmdb()
    path = Path(path)
    subdir = path.is_dir() if subdir is None else subdir
    try:
        return lmdb.open(str(path), subdir=subdir, readonly=True, lock=False, readahead=False, meminit=False,
                         max_readers=64)
    except lmdb.Error as e:
        raise PixelfolderError(f"{path} is not a readable LMDB ({str(e).splitlines()[0][:150]})") from None


# py-lmdb refuses to open the same environment twice in one process (also in a forked child whose parent
# had it open), so read-only environments are shared per data file and reference-counted.
_ENVS: dict[tuple, list] = {}       # (st_dev, st_ino) -> [env, users, pid that opened it]


def _identity(path: Path, subdir: bool) -> tuple:
    try:
        st = os.stat(path / "data.mdb" if subdir else path)
    except OSError as e:
        raise PixelfolderError(f"cannot read LMDB {path}: {e.strerror}") from None
    return (st.st_dev, st.st_ino) if st.st_ino else (str(path.resolve()),)


def acquire_lmdb(path: Path, subdir: bool):
    """(key, env): this process's shared read-only environment for `path` (opened on first use)."""
    key = _identity(path, subdir)
    entry = _ENVS.get(key)
    if entry is None:
        entry = _ENVS[key] = [open_lmdb(path, subdir=subdir), 0, os.getpid()]
    entry[1] += 1
    return key, entry[0]


def release_lmdb(key) -> None:
    entry = _ENVS.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0 and entry[2] == os.getpid():      # a forked child never closes its parent's environment
        del _ENVS[key]
        entry[0].close()


class LmdbSource(Source):
    """An LMDB of encoded images.

    Keys: the official PixelFolder/CIPS `f"{i:07d}"` with `b"length"`, or rosinality's `f"{size}-{i:05d}"`
    (several sizes in one database: `prefer_size` picks the smallest stored size >= it, else the largest).
    """
    kind = "lmdb"

    def __init__(self, path, prefer_size: int | None = None):
        super().__init__(path)
        self.subdir = self.path.is_dir()
        key, env = acquire_lmdb(self.path, self.subdir)
        try:
            with env.begin() as txn:
                self.prefix, self.digits, self.sizes = self._scheme(txn, prefer_size)
                self.count = self._length(txn)
        finally:
            release_lmdb(key)

    def _scheme(self, txn, prefer_size):
        if txn.get(b"0000000") is not None:
            return "", 7, ()
        sizes = _rosinality_sizes(txn)
        if not sizes:
            raise PixelfolderError(f"{self.path} is an LMDB but not an image dataset (no b'0000000' key as written "
                                   "by PixelFolder/CIPS prepare_data.py, no rosinality '256-00000' keys)")
        larger = [s for s in sizes if prefer_size is not None and s >= prefer_size]
        return f"{min(larger) if larger else max(sizes)}-", 5, tuple(sizes)

    def _length(self, txn) -> int:
        raw = txn.get(b"length")
        if raw is None:
            n = self._count_keys(txn)
        else:
            try:
                n = int(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise PixelfolderError(f"{self.path}: the b'length' entry is not a number ({raw[:20]!r})") from None
        if n < 1 or txn.get(self.key(n - 1)) is None:
            raise PixelfolderError(f"{self.path} is damaged: length says {n} but key {self.key(max(n - 1, 0))!r} "
                                   "is missing")
        return n

    def _count_keys(self, txn) -> int:
        n = 0
        while txn.get(self.key(n)) is not None:
            n += 1
        return n

    def key(self, index: int) -> bytes:
        return f"{self.prefix}{index:0{self.digits}d}".encode("utf-8")

    def handle(self):
        if self._handle is None or self._pid != os.getpid():
            self._key, self._handle = acquire_lmdb(self.path, self.subdir)
            self._pid = os.getpid()
        return self._handle

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            release_lmdb(self._key)
        self._handle = self._pid = None

    def __len__(self) -> int:
        return self.count

    def name(self, index: int) -> str:
        return self.key(index).decode("utf-8")

    def read(self, index: int) -> bytes:
        with self.handle().begin() as txn:
            value = txn.get(self.key(index))
        if value is None:
            raise OSError(f"key {self.key(index)!r} is missing")
        return value


def _rosinality_sizes(txn) -> list[int]:
    """The sizes present as `{size}-{i:05d}` keys, jumping over each size's block of keys."""
    sizes, cursor = [], txn.cursor()
    found = cursor.first()
    while found:
        key = cursor.key()
        m = _ROSINALITY_KEY.match(key)
        if m:
            sizes.append(int(m.group(1)))
            found = cursor.set_range(m.group(1) + b"-\xff")
        else:
            found = cursor.next()
    return sorted(sizes)


def open_source(path, prefer_size: int | None = None) -> Source:
    """Detect the format of `path` (folder of images, zip, LMDB directory or file) and list its images."""
    path = Path(path)
    if not path.exists():
        raise PixelfolderError(f"no such file or directory: {path}")
    why = not_regular(path)
    if why is not None and why != "a directory":
        raise PixelfolderError(f"{path} is {why}, not a folder, zip or LMDB: give a dataset path")
    if path.is_dir():
        if (path / "data.mdb").is_file():
            return LmdbSource(path, prefer_size)
        if not os.access(path, os.R_OK | os.X_OK):
            raise PixelfolderError(f"cannot read directory {path}")
        return FolderSource(path)
    if not os.access(path, os.R_OK):
        raise PixelfolderError(f"cannot read {path}")
    if zipfile.is_zipfile(path):
        return ZipSource(path)
    try:
        return LmdbSource(path, prefer_size)
    except PixelfolderError as e:
        if "not a readable LMDB" in str(e):
            raise PixelfolderError(f"{path} is not a folder of images, a zip or an LMDB") from None
        raise


def require_images(source: Source) -> Source:
    if len(source) == 0:
        what = "zip" if source.kind == "zip" else "folder"
        skipped = len(getattr(source, "skipped", ()))
        also = f"; skipped {skipped} that are not regular files" if skipped else ""
        raise PixelfolderError(f"no images in {what} {source.path} (looked for "
                               f"{', '.join(e[1:] for e in IMAGE_EXTENSIONS)} files, any letter case{also})")
    return source
