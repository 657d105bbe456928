"""Open any network: the one place that turns what a user names into models.

A spec is one of: a pixelfolder checkpoint (`.pt` or `.safetensors`), an official PyTorch checkpoint (a train.py dict
with g_ema/g/d or a bare state_dict), an NVlabs network pickle (read as data, never executed), a PixelPyramids
checkpoint (with its params json), a preset name (randomly initialised), a run directory (its latest network
snapshot), a pretrained short name from the zoo, or an http(s) URL (downloaded once into the cache;
`URL#sha256=HEX` checks the file). Each file is read once and its format decided once, here.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import registry
from .errors import CheckpointError, ConversionError, PixelfolderError, first_line
from .torchfile import ZIP_MAGIC, check_tensors, check_torch_file
from .utils import cache_root

NETWORK_NAMES = ("g_ema", "g", "d")
FORMATS_TRIED = ("a pixelfolder checkpoint (.pt or .safetensors), an official PyTorch checkpoint (train.py dict or "
                 "state_dict), an NVlabs network pickle, a PixelPyramids checkpoint (with --params)")
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"    # the start of a legacy torch.save file
MAX_SAFETENSORS_HEADER = 100 << 20      # safetensors' own limit on its JSON header, bytes
SNAPSHOT = re.compile(r"network-snapshot-(\d+(?:\.\d+)?)\.(pt|pkl|safetensors)$")
MAX_DOWNLOAD_BYTES = int(os.environ.get("PIXELFOLDER_MAX_DOWNLOAD_BYTES", 16 << 30))
DOWNLOAD_TIMEOUT_S = 60
PRESET_SEED = 0                         # a preset opened by name is initialised from this seed


# ------------------------------------------------------------------------------------------------ the cache
def _safe_part(part: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", part)[:120]
    return cleaned if cleaned.strip(".") else "_"


def cache_path(url: str) -> Path:
    """Where a URL's file lives in the cache: networks/<host>/<path> (so equal file names of two hosts differ)."""
    parsed = urllib.parse.urlsplit(url)
    parts = [p for p in parsed.path.split("/") if p]
    if parsed.query:
        parts[-1:] = [f"{parts[-1] if parts else 'file'}_{hashlib.sha256(parsed.query.encode()).hexdigest()[:8]}"]
    return cache_root().joinpath("networks", _safe_part(parsed.netloc), *(_safe_part(p) for p in parts or ["file"]))


def split_sha256(spec: str) -> tuple[str, str | None]:
    """'URL#sha256=HEX' -> (URL, hex)."""
    if "#sha256=" in spec:
        url, digest = spec.split("#sha256=", 1)
        if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise PixelfolderError(f"bad sha256 in {spec!r}: expected 64 hex digits after #sha256=")
        return url, digest.lower()
    return spec, None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_digest(path: Path, want: str | None, url: str) -> None:
    if want is None:
        return
    got = sha256_of(path)
    if got != want:
        raise PixelfolderError(f"{path} (from {url}) has sha256 {got}, not {want}: delete it to download again")


def download(url: str, sha256: str | None = None, progress: bool | None = None) -> Path:
    """The cached copy of `url`, downloaded once (atomically: under a temporary name, renamed when complete)."""
    target = cache_path(url)
    if target.is_file():
        _check_digest(target, sha256, url)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        _fetch(url, tmp, sha256, progress)
        os.replace(tmp, target)
    except PixelfolderError:
        raise
    except urllib.error.HTTPError as e:
        raise PixelfolderError(f"cannot download {url} (HTTP {e.code} {e.reason}); put the file at {target}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        raise PixelfolderError(f"cannot download {url} ({reason}); offline? put the file at {target}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _fetch(url: str, tmp: Path, sha256: str | None, progress: bool | None) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "pixelfolder"})
    h = hashlib.sha256()
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as f:
        total = int(response.headers.get("Content-Length") or 0)
        if total > MAX_DOWNLOAD_BYTES:
            raise PixelfolderError(f"{url} is {total:,} bytes, more than PIXELFOLDER_MAX_DOWNLOAD_BYTES")
        from .progress import Progress
        bar = Progress(total or None, f"download {Path(urllib.parse.urlsplit(url).path).name}", unit="B",
                       enabled=progress)
        done = 0
        for block in iter(lambda: response.read(1 << 20), b""):
            done += len(block)
            if done > MAX_DOWNLOAD_BYTES:
                raise PixelfolderError(f"{url} is larger than PIXELFOLDER_MAX_DOWNLOAD_BYTES ({MAX_DOWNLOAD_BYTES:,})")
            f.write(block)
            h.update(block)
            bar.update(len(block))
        bar.close()
        if total and done != total:
            raise PixelfolderError(f"download of {url} stopped after {done:,} of {total:,} bytes: try again")
    if sha256 is not None and h.hexdigest() != sha256:
        raise PixelfolderError(f"{url} has sha256 {h.hexdigest()}, not {sha256}; nothing was cached")


# ------------------------------------------------------------------------------------------------ resolving
def is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def latest_snapshot(run_dir: Path) -> Path:
    """The network snapshot with the most images seen in a run directory."""
    found = []
    for p in run_dir.iterdir():
        m = SNAPSHOT.fullmatch(p.name)
        if m and p.is_file():
            found.append((float(m.group(1)), p.name, p))
    if not found:
        raise PixelfolderError(f"{run_dir} is a directory without network-snapshot-*.pt files (is it a run "
                               "directory?)")
    return max(found)[2]


def _zoo_path(name: str, sha256: str | None, progress: bool | None) -> Path:
    from .zoo import BY_NAME
    entry = BY_NAME[name]
    if not entry.supported:
        raise PixelfolderError(f"{name} ({entry.model}, {entry.url}): {entry.note}")
    if entry.direct:
        return download(entry.url, sha256, progress)
    dropped = cache_root() / "networks" / "pretrained" / entry.filename
    if dropped.is_file():
        return dropped
    raise PixelfolderError(f"{name}: {entry.note} ({entry.url}, file {entry.filename}); or put it at {dropped}")


def resolve(spec, *, progress: bool | None = None) -> Path | str:
    """A regular file's path for a file, URL, zoo name or run directory; a preset's name stays a name."""
    from .zoo import BY_NAME
    text, digest = split_sha256(str(spec))
    if is_url(text):
        return download(text, digest, progress)
    path = Path(text).expanduser()
    if path.is_dir():
        return latest_snapshot(path)
    if path.exists():
        if not stat.S_ISREG(path.stat().st_mode):
            raise PixelfolderError(f"{path} is not a regular file")
        return path
    if text in BY_NAME:
        return _zoo_path(text, digest, progress)
    if text in registry.list_models() or text in registry.list_architectures():
        return text
    raise PixelfolderError(f"{text!r} is neither a file nor a directory, an http(s) URL, a pretrained name "
                           "(`pixelfolder models --pretrained`) or a preset (`pixelfolder models`)")


# ------------------------------------------------------------------------------------------------ reading
def sniff(path: Path) -> str:
    """'torch' (zip or legacy torch.save), 'pickle' (a raw pickle: NVlabs), 'safetensors' or 'unknown'."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(ZIP_MAGIC) or head.startswith(LEGACY_TORCH_MAGIC):
        return "torch"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if len(head) >= 9 and 2 <= int.from_bytes(head[:8], "little") <= MAX_SAFETENSORS_HEADER and head[8:9] == b"{":
        return "safetensors"
    return "unknown"


def _weights_only_refusal(message: str) -> str | None:
    """The global torch's weights_only unpickler refused, if that was the failure."""
    m = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"Unsupported global: ([\w.]+)", message)
    if m:
        return m.group(1)
    return "a Python object" if "weights_only" in message.lower() else None


def torch_load(path: Path):
    """torch.load(weights_only=True) with one-line errors, never torch's advice to drop weights_only.

    The file is checked first (torchfile.check_torch_file: STORED zip members no larger than the file, CRCs,
    declared storage sizes, the pickle's hashing costs) and the loaded tensors after (no huge stride-0 views)."""
    check_torch_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # a crafted file must not make torch print warnings
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (torch raises many kinds for bad files)
        message = str(e)
        refused = _weights_only_refusal(message)
        if refused:
            raise CheckpointError(f"{path} holds pickled Python classes ({refused}); pixelfolder never unpickles "
                                  "code: re-save its tensors as plain dicts (state_dicts), or use a safetensors "
                                  "file") from None
        raise CheckpointError(f"{path} is not a readable checkpoint ({first_line(e)})") from None
    check_tensors(obj, path)
    return obj


@dataclass
class Opened:
    """A read file (or a preset), its format, and a way to build each network it holds."""
    label: str                      # for messages: the file name or preset
    format: str                     # checkpoint | safetensors | training-state | official | nvlabs-pickle |
    #                                 pixelpyramids | preset
    names: tuple                    # networks present, of NETWORK_NAMES
    build: Callable[[str], torch.nn.Module]
    record: object = None           # what torch.load returned, for torch files (the training state, say)
    notes: list = field(default_factory=list)

    def network(self, which: str = "g_ema"):
        which = which.lower()
        if which not in self.names:
            raise PixelfolderError(f"{self.label} has no {which!r} network; it has {', '.join(self.names)}")
        return self.build(which)

    def all(self) -> dict:
        return {name: self.build(name) for name in self.names}


def _looks_like_pixelpyramids(obj) -> bool:
    """Per-level state_dicts, as the official main.py saves them: {0: sd, 1: sd, ...} or [sd, sd, ...]."""
    if isinstance(obj, (list, tuple)):
        return bool(obj) and all(isinstance(v, dict) for v in obj)
    return (isinstance(obj, dict) and bool(obj) and all(str(k).isdigit() for k in obj)
            and all(isinstance(v, dict) for v in obj.values()))


def _open_torch_object(obj, label: str, *, arch, size, params) -> Opened:
    from . import convert
    from .checkpoint import from_record, is_record
    from .training.rundir import STATE_FORMAT, model_from
    if is_record(obj):
        return Opened(label, "checkpoint", ("g_ema",), lambda _: from_record(obj, source=label), obj)
    if isinstance(obj, dict) and obj.get("format") == STATE_FORMAT:
        present = {"g_ema": "G_ema", "g": "G", "d": "D"}
        names = tuple(n for n, k in present.items() if isinstance(obj.get(k), dict))
        return Opened(label, "training-state", names, lambda n: model_from(obj[present[n]]).eval(), obj)
    if params is not None or (arch is not None and registry.converter("pixelpyramids", arch) is not None):
        return Opened(label, "pixelpyramids", ("g_ema",),
                      lambda _: convert.load_pixelpyramids(obj, params, label=label), obj)
    if _looks_like_pixelpyramids(obj):
        from .convert.pixelpyramids import NO_PARAMS
        raise ConversionError(f"{label} looks like a PixelPyramids checkpoint: {NO_PARAMS}")
    try:
        parts = convert.split_official(obj)
    except ConversionError as e:
        raise ConversionError(f"{label}: {e}; tried {FORMATS_TRIED}") from None

    def build(name: str):
        model = convert.convert_state_dict(parts[name], None if name == "d" else arch, size)
        model.metadata.update(converted_from=label, network=name)
        return model
    return Opened(label, "official", tuple(parts), build, obj)


def converted_arch(name: str) -> str:
    """The architecture a `--arch` converter name produces (stylegan2_ada -> stylegan2; others: themselves)."""
    found = [c.arch for c in registry.converters() if c.name == name]
    return found[0] if found else name


def _open_pickle(path: Path, label: str, *, arch, size) -> Opened:
    from . import convert
    from .convert.nvlabs_pickle import PersistentRecord, read_network_pickle
    snapshot = read_network_pickle(path)
    names = tuple(n for n in NETWORK_NAMES if isinstance(snapshot.get(convert.NVLABS_WHICH[n]), PersistentRecord))
    if not names:
        raise ConversionError(f"{label} is a pickle without G, G_ema or D networks (not an NVlabs snapshot)")

    def build(name: str):
        model = convert.load_network_pickle(path, name, snapshot)
        if arch is not None and name != "d" and converted_arch(arch) != model.arch:
            raise ConversionError(f"the pickle holds {model.arch} ({model.metadata.get('official_class')}), "
                                  f"not {arch}")
        if size is not None and getattr(model, "resolution", size) != size:
            raise ConversionError(f"the pickle holds a {model.resolution} px {model.arch}, not {size} px")
        return model
    return Opened(label, "nvlabs-pickle", names, build, snapshot)


def open_file(path, *, arch: str | None = None, size: int | None = None, params=None) -> Opened:
    """Read one file (once) and decide what it is."""
    from .checkpoint import from_record, read_safetensors
    path = Path(path)
    label = str(path)
    kind = sniff(path)
    if kind == "safetensors":
        record = read_safetensors(path)
        return Opened(label, "safetensors", ("g_ema",), lambda _: from_record(record, source=label), record)
    if kind == "pickle":
        return _open_pickle(path, label, arch=arch, size=size)
    if kind == "torch":
        return _open_torch_object(torch_load(path), label, arch=arch, size=size, params=params)
    raise CheckpointError(f"{label} is not a readable network file: none of the formats tried ({FORMATS_TRIED})")


def _open_preset(name: str, arch, size) -> Opened:

    def build(_):
        overrides = {"resolution": size} if size else {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(PRESET_SEED)          # the same random network every time it is opened
            model = registry.create(name, **overrides).eval()
        model.metadata = {"source": "preset", "preset": name, "init_seed": PRESET_SEED}
        return model
    if arch is not None and registry.resolve_config(name)[0].name != arch:
        raise PixelfolderError(f"{name} is a {registry.resolve_config(name)[0].name} preset, not {arch}")
    return Opened(name, "preset", ("g_ema",), build,
                  notes=[f"note: {name!r} is a preset: the network is randomly initialised (seed {PRESET_SEED}), not "
                         "trained"])


def open_spec(spec, *, arch: str | None = None, size: int | None = None, params=None,
              progress: bool | None = None) -> Opened:
    """Resolve a spec (file, URL, zoo name, run directory or preset) and read it."""
    resolved = resolve(spec, progress=progress)
    if isinstance(resolved, str):
        return _open_preset(resolved, arch, size)
    opened = open_file(resolved, arch=arch, size=size, params=params)
    if opened.format in ("official", "nvlabs-pickle", "pixelpyramids"):
        opened.notes.append(f"note: {resolved.name} is an official checkpoint ({opened.format}); converted on the "
                            "fly (save time with `pixelfolder convert`)")
    return opened


def finish(model, device, channels_last: bool, kind, label: str = "the network"):
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and model.kind not in kinds:
        raise PixelfolderError(f"{label} holds a {model.kind} ({model.arch}), not a {' or '.join(kinds)}")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.to(device) if device is not None else model


def load(spec, device=None, channels_last: bool = True, *, which: str = "g_ema", arch: str | None = None,
         size: int | None = None, params=None, kind=None, verbose: bool = False, progress: bool | None = None):
    """Any network as our model in eval mode (with `.metadata`): see the module docstring for what `spec` can be.

    which: g_ema (default), g or d of files holding several; arch/size: checked (or needed: a bare INR-GAN
    state_dict, a PixelPyramids checkpoint with arch='pixelpyramids'); params: PixelPyramids' params json (path or
    dict); kind: refuse other kinds ('generator', 'likelihood', ...); verbose: print notes (on stderr).
    """
    opened = open_spec(spec, arch=arch, size=size, params=params, progress=progress)
    if verbose:
        for note in opened.notes:
            print(note, file=sys.stderr)
    return finish(opened.network(which), device, channels_last, kind, opened.label)


def load_all(spec, *, arch: str | None = None, size: int | None = None, params=None, channels_last: bool = False,
             progress: bool | None = None) -> dict:
    """Every network a spec holds: {'g_ema': G, 'g': G, 'd': D} as present (for convert --which all, resuming)."""
    opened = open_spec(spec, arch=arch, size=size, params=params, progress=progress)
    return {name: finish(model, None, channels_last, None) for name, model in opened.all().items()}


def read_params(params):
    """A PixelPyramids params json: a dict as it is, or a path read with one-line errors."""
    if params is None or isinstance(params, dict):
        return params
    try:
        return json.loads(Path(params).read_text())
    except (OSError, ValueError) as e:
        raise ConversionError(f"cannot read the params file {params}: {e}") from None


__all__ = ["load", "load_all", "open_spec", "open_file", "resolve", "download", "cache_root", "cache_path",
           "latest_snapshot", "Opened", "FORMATS_TRIED"]
