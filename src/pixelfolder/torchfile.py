"""What a torch.save file must pass before `torch.load(weights_only=True)` reads it, and what it loaded.

torch.load trusts a file's layout: a DEFLATE member inflates inside it (a zip bomb), a member declared larger
than the file or a storage declared larger than its record is allocated before anything is read, a bit flip is
loaded silently (its zip reader skips the CRCs), and the pickle inside is unpickled without limits on hashing.
So, before it runs:

- zip files (what torch.save writes since 1.6): at most MAX_MEMBERS members, every one STORED (torch never
  compresses), unencrypted, not larger than the file, all of them together not larger than the file (no
  overlapping members), every CRC-32 checked (streamed in 1 MiB chunks), `data.pkl` replayed by
  pickle_scan.scan, and every storage it declares no larger than its record;
- legacy files (torch.save before 1.6, or `_use_new_zipfile_serialization=False`): the five pickles replayed by
  pickle_scan.scan, and the storages the main pickle declares (allocated by torch.load before a byte of them is
  read) together no larger than what follows the pickles in the file. Legacy files have no checksums, so a bit
  flip in their tensor data is not caught.

After loading, `check_tensors` refuses tensors that view far more elements than their storage holds (stride-0
views: a few bytes that any later `.float()` or `.contiguous()` would make gigabytes).
"""
from __future__ import annotations

import io
import os
import stat
import zipfile

import torch

from .errors import CheckpointError, first_line
from .pickle_scan import Global, scan

ZIP_MAGIC = b"PK\x03\x04"
MAX_MEMBERS = 100_000           # zip members (torch writes one per storage plus 5; big training states: ~10,000)
MAX_DATA_PKL = 256 << 20        # bytes of the pickle inside a torch zip (real ones: well under 1 MiB per 1,000 tensors)
CHUNK = 1 << 20                 # bytes read at a time when checking CRCs
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
MAX_BROADCAST_BYTES = 64 << 20  # bytes a tensor may view beyond its storage's (stride-0 expanded views)
MAX_WALK = 1_000_000            # containers and tensors visited by check_tensors
ELEMENT_SIZES = {"DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
                 "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
                 "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8, "QInt8Storage": 1, "QUInt8Storage": 1,
                 "QInt32Storage": 4, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1, "UntypedStorage": 1}


def _refuse(label, problem: str):
    raise CheckpointError(f"{label} {problem}".strip())


def check_torch_file(path, label=None) -> None:
    """Refuse (one-line CheckpointError) a file whose layout torch.load would trust too far; see the module doc."""
    label = path if label is None else label
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))   # a FIFO must not block the open
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                _refuse(label, "is not a regular file")
            if f.read(4) == ZIP_MAGIC:
                _check_zip(f, st.st_size, label)
            else:
                _check_legacy(f, st.st_size, label)
    except OSError as e:
        raise CheckpointError(f"cannot read {label or path}: {e.strerror or e}") from None


# ---------------------------------------------------------------------------------------------------- zip files
def _check_zip(f, size: int, label) -> None:
    try:
        end = zipfile._EndRecData(f)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        end = None
    if end is None:
        _refuse(label, "is a damaged zip (no end of central directory: truncated?): re-copy or re-download it")
    if end[zipfile._ECD_ENTRIES_TOTAL] > MAX_MEMBERS:
        _refuse(label, f"is a zip of {end[zipfile._ECD_ENTRIES_TOTAL]:,} members, more than a torch file has "
                       f"({MAX_MEMBERS:,} at most)")
    try:
        z = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, IndexError, NotImplementedError) as e:
        _refuse(label, f"is a damaged zip ({first_line(e, typed=True, limit=160)}): re-copy or re-download it")
    infos = z.infolist()
    prefix = infos[0].filename.split("/", 1)[0] if infos else ""
    if f"{prefix}/data.pkl" not in {i.filename for i in infos}:
        _refuse(label, "is a zip without a torch checkpoint inside (no data.pkl: a dataset zip?); pass a network file")
    _check_members(infos, size, label)
    data_pkl = _read_members(z, infos, f"{prefix}/data.pkl", label)
    if data_pkl is not None:
        sizes = {i.filename: i.file_size for i in infos}
        _check_storages(scan(data_pkl, what=f"torch file {label}".strip(),
                             error=CheckpointError).persistent_ids,
                        lambda key: sizes.get(f"{prefix}/data/{key}"), label)


def _check_members(infos, size: int, label) -> None:
    """STORED, unencrypted, each and all together no larger than the file, no duplicate names."""
    if len(infos) > MAX_MEMBERS:
        _refuse(label, f"is a zip of {len(infos):,} members, more than a torch file has ({MAX_MEMBERS:,} at most)")
    names, total = set(), 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED:
            _refuse(label, f"has a compressed zip member ({info.filename[:80]!r}, method {info.compress_type}); "
                           "torch.save never compresses, so this is no torch file (a zip bomb?)")
        if info.flag_bits & 0x1:
            _refuse(label, f"has an encrypted zip member ({info.filename[:80]!r}); torch files are never encrypted")
        if info.file_size != info.compress_size or info.file_size > size:
            _refuse(label, f"has a zip member ({info.filename[:80]!r}) declared larger than the file itself "
                           f"({info.file_size:,} > {size:,} bytes): damaged or crafted")
        if info.filename in names:
            _refuse(label, f"has two zip members named {info.filename[:80]!r}: damaged or crafted")
        names.add(info.filename)
        total += info.file_size
    if total > size:
        _refuse(label, f"has zip members that overlap ({total:,} bytes declared in a {size:,}-byte file): "
                       "damaged or crafted")


def _read_members(z, infos, data_name: str, label) -> bytes | None:
    """Stream every member through its CRC check; return the bytes of `data_name` (torch's pickle), if present."""
    data = None
    for info in infos:
        keep = info.filename == data_name
        if keep and info.file_size > MAX_DATA_PKL:
            _refuse(label, f"holds a {info.file_size:,}-byte pickle, more than {MAX_DATA_PKL:,} bytes")
        parts = []
        try:
            with z.open(info) as member:
                while chunk := member.read(CHUNK):
                    if keep:
                        parts.append(chunk)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as e:
            _refuse(label, f"is damaged ({first_line(e, typed=True, limit=160)}; a bit flip or a truncated copy?): "
                           "re-copy or re-download it")
        if keep:
            data = b"".join(parts)
    return data


def _check_storages(pids, record_size, label) -> None:
    """Every storage a torch pickle declares fits its record (torch allocates the declared size)."""
    for pid in pids:
        if not (isinstance(pid, tuple) and pid[:1] == ("storage",)):
            continue            # torch.load refuses other persistent ids itself
        if len(pid) < 5 or not isinstance(pid[1], Global) or not _is_count(pid[4]):
            _refuse(label, f"declares a tensor storage oddly ({_brief(pid)}): damaged or crafted")
        have = record_size(pid[2])
        need = pid[4] * ELEMENT_SIZES.get(pid[1][1], 1)
        if have is not None and need > have:
            _refuse(label, f"declares a tensor storage of {need:,} bytes whose record holds {have:,}: damaged or "
                           "crafted")


# ------------------------------------------------------------------------------------------------- legacy files
def _check_legacy(f, size: int, label) -> None:
    what = f"torch file {label}".strip()
    pos, results = 0, []
    for _ in range(5):          # magic number, protocol, sys_info, the object, the storage keys
        results.append(scan(f, start=pos, limit=size, what=what, error=CheckpointError))
        pos = results[-1].end
        if len(results) == 2 and (results[0].value, results[1].value) != (LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL):
            _refuse(label, "is not a torch.save file (no torch magic number): neither a torch zip nor a legacy "
                           "torch file")
    declared: dict = {}
    for pid in results[3].persistent_ids:
        if isinstance(pid, tuple) and pid[:1] == ("storage",):
            if len(pid) < 5 or not isinstance(pid[1], Global) or not _is_count(pid[4]):
                _refuse(label, f"declares a tensor storage oddly ({_brief(pid)}): damaged or crafted")
            nbytes = pid[4] * ELEMENT_SIZES.get(pid[1][1], 1)
            declared[pid[2]] = max(declared.get(pid[2], 0), nbytes)
        elif pid is None:
            _refuse(label, "declares a tensor storage with non-constant fields: damaged or crafted")
    need = sum(declared.values()) + 8 * len(declared)
    if need > size - pos:
        _refuse(label, f"declares {need:,} bytes of tensor data but holds {max(size - pos, 0):,} after its pickles: "
                       "truncated or crafted")


def check_legacy_bytes(data: bytes, label) -> None:
    """`check_torch_file` for an in-memory legacy torch.save blob (NVlabs pickles hold storages so)."""
    if bytes(data[:4]) == ZIP_MAGIC:
        _refuse(label, "is a zip, where a legacy torch storage was expected")
    _check_legacy(io.BytesIO(data), len(data), label)


# ----------------------------------------------------------------------------------------------- after loading
def check_tensors(obj, label) -> None:
    """Refuse tensors viewing far more bytes than their storage holds (stride-0 views), anywhere in `obj`."""
    seen, todo, left = set(), [obj], MAX_WALK
    while todo:
        x = todo.pop()
        left -= 1
        if left < 0:
            _refuse(label, f"holds more than {MAX_WALK:,} values (shared references?)")
        if isinstance(x, torch.Tensor):
            _check_view(x, label)
        elif isinstance(x, (dict, list, tuple, set, frozenset)) and id(x) not in seen:
            seen.add(id(x))
            todo.extend(x.values() if isinstance(x, dict) else x)


def _check_view(t: torch.Tensor, label) -> None:
    if t.layout != torch.strided or t.device.type == "meta":
        return
    viewed = t.numel() * t.element_size()
    if viewed > t.untyped_storage().nbytes() + MAX_BROADCAST_BYTES:
        _refuse(label, f"holds a tensor of shape {tuple(t.shape)[:8]} viewing {viewed:,} bytes of a "
                       f"{t.untyped_storage().nbytes():,}-byte storage (a stride-0 view): damaged or crafted")


def _is_count(x) -> bool:
    return type(x) is int and 0 <= x < 1 << 62


def _brief(x) -> str:
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."




__all__ = ["check_torch_file", "check_legacy_bytes", "check_tensors", "MAX_MEMBERS"]
