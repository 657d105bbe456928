"""Read NVlabs-style network pickles (StyleGAN2-ADA / StyleGAN3 / INR-GAN / CREPS snapshots) as data.

A plain `pickle.load` of such a file execs the Python source embedded in it. Here every global goes through
an allow-list: tensor globals are rebuilt by our own checked functions (storages by
`torch.load(weights_only=True)`), persistent objects become inert `PersistentRecord`s whose `module_src` is
hashed and dropped (never compiled), a few known classes become inert stubs that only keep their state, and
anything else is refused before it can run. The module tree is then walked like `nn.Module.state_dict()`.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConversionError

NETWORKS = ("G", "D", "G_ema")
MAX_DEPTH = 64        # module nesting depth accepted when walking the tree (real networks use < 10)
MAX_MODULES = 100_000  # module visits accepted (shared children are visited once per path, as state_dict does)
MAX_DIMS = 16         # tensor dimensions accepted
SCALAR_KINDS = "biufc"  # numpy scalar kinds accepted (no objects, strings or structured dtypes)
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # start of a legacy torch.save file

# sha256 of module_src -> the official file it is (found in the reference snapshots).
KNOWN_SOURCES = {
    "5dfa28972905bf92a1b8ff51465adbafea2d27947efba59f3fc81da24c5f3a95": "universome/inr-gan:src/training/networks.py",
    "1210c8134c59a3acec9b2a369beb15b2ed8d368607b1b99a557b109212a7306e": "universome/inr-gan:src/training/layers.py",
    "1c2cea645d61c4b59e12d5a6333c43b0c4ac84a81ce232626e17189d5f69a5c1":
        "VinAIResearch/CREPS:training/networks_creps.py",
    "f6bfb33266b77d5dc53fb0f6c73c724787ac256e9e5115895f21678b3a060a3c":
        "VinAIResearch/CREPS:training/networks_stylegan2.py",
}

# Classes that are pickled by reference and only need to keep their state (module -> names).
STUB_CLASSES = {
    "builtins": ("dict",),
    "collections": ("defaultdict",),
    "omegaconf.base": ("ContainerMetadata", "Metadata"),
    "omegaconf.dictconfig": ("DictConfig",),
    "omegaconf.nodes": ("AnyNode",),
    "typing": ("Any",),
    "torch.nn.modules.container": ("Sequential",),
    "training.networks_creps": ("SynthesisInput",),
}


class PersistentRecord:
    """What `torch_utils.persistence._reconstruct_persistent_obj(meta)` would have built, as inert data."""

    __slots__ = ("class_name", "version", "module_src_sha256", "defines", "state")

    def __init__(self, class_name: str, version: int, module_src_sha256: str, defines: tuple, state: dict):
        self.class_name = class_name
        self.version = version
        self.module_src_sha256 = module_src_sha256
        self.defines = defines    # class names defined at top level of module_src (found by a regex)
        self.state = state        # the module's __dict__

    @property
    def source(self) -> str | None:
        return KNOWN_SOURCES.get(self.module_src_sha256)

    def __repr__(self) -> str:
        return f"PersistentRecord({self.class_name}, sha256={self.module_src_sha256[:12]})"


class _Stub:
    """Base of the inert stand-ins: accepts any constructor arguments and keeps its BUILD state."""

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.__dict__["args"] = args
        obj.__dict__["state"] = None
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__["state"] = state

    def __repr__(self) -> str:
        return f"<stub {self.qualname}>"


def _stub_class(module: str, name: str) -> type:
    """A fresh stub class per unpickler, so a crafted pickle cannot alter the class other loads see."""
    return type(name, (_Stub,), {"qualname": f"{module}.{name}", "__module__": __name__})


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict: a plain dict subclass."""


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _int_tuple(x, what: str) -> tuple:
    if not isinstance(x, (tuple, list)) or len(x) > MAX_DIMS or not all(_is_int(v) and v >= 0 for v in x):
        raise ConversionError(f"malformed network pickle: bad tensor {what} {x!r:.60}")
    return tuple(x)


class NetworkUnpickler(pickle.Unpickler):
    """Unpickler whose only reachable globals are the checked stand-ins below; everything else is refused."""

    def __init__(self, file):
        super().__init__(file)
        easydict = type("EasyDict", (EasyDict,), {"__module__": __name__})
        self._globals = {
            ("torch_utils.persistence", "_reconstruct_persistent_obj"): self._persistent_obj,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("torch.storage", "_load_from_bytes"): self._load_storage,
            ("numpy._core.multiarray", "scalar"): self._numpy_scalar,
            ("numpy.core.multiarray", "scalar"): self._numpy_scalar,
            ("numpy", "dtype"): self._numpy_dtype,
            ("collections", "OrderedDict"): OrderedDict,
            ("dnnlib.util", "EasyDict"): easydict,
        }
        for module, names in STUB_CLASSES.items():
            self._globals.update({(module, n): _stub_class(module, n) for n in names})

    def find_class(self, module: str, name: str):
        found = self._globals.get((module, name))
        if found is None:
            raise ConversionError(f"refusing to unpickle {module}.{name}: not a known NVlabs network-pickle global")
        return found

    def persistent_load(self, pid):
        raise ConversionError("refusing to unpickle a persistent id: NVlabs network pickles have none")

    # --------------------------------------------------------------------------------------- stand-ins
    def _persistent_obj(self, meta):
        ok = (isinstance(meta, dict) and meta.get("type") == "class" and isinstance(meta.get("module_src"), str)
              and isinstance(meta.get("class_name"), str) and isinstance(meta.get("state"), dict))
        if not ok:
            raise ConversionError("malformed network pickle: persistent object without class_name/module_src/state")
        src = meta["module_src"]   # hashed and scanned as text only; never compiled
        defines = tuple(re.findall(r"^class\s+(\w+)", src, flags=re.M))
        sha = hashlib.sha256(src.encode("utf-8")).hexdigest()
        return PersistentRecord(meta["class_name"], meta.get("version"), sha, defines, meta["state"])

    def _load_storage(self, b):
        if not isinstance(b, (bytes, bytearray)):
            raise ConversionError("malformed network pickle: storage payload is not bytes")
        try:
            storage = torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001  (weights_only refusals and corrupt data alike)
            raise ConversionError(f"unreadable tensor storage in network pickle: {_first_line(e)}") from None
        if not isinstance(storage, torch.storage.TypedStorage):
            raise ConversionError("malformed network pickle: storage payload holds no tensor storage")
        return storage

    def _rebuild_tensor(self, storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
        """Checked equivalent of torch._utils._rebuild_tensor_v2 (no hooks, no metadata, in bounds)."""
        if not isinstance(storage, torch.storage.TypedStorage) or not _is_int(offset) or offset < 0:
            raise ConversionError("malformed network pickle: bad tensor storage or offset")
        size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
        if len(size) != len(stride) or hooks or metadata:
            raise ConversionError("malformed network pickle: tensor with hooks, metadata or mismatched stride")
        t = torch.empty(0, dtype=storage.dtype)
        end = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if all(size) else 0
        if end * t.element_size() > storage._untyped_storage.nbytes():
            raise ConversionError(f"malformed network pickle: tensor of size {size} overruns its storage")
        return t.set_(storage._untyped_storage, offset, size, stride)

    def _rebuild_parameter(self, data, requires_grad=False, hooks=None):
        if type(data) is not torch.Tensor or hooks:
            raise ConversionError("malformed network pickle: parameter is not a plain tensor")
        return data

    def _numpy_dtype(self, spec, align=False, copy=False):
        if not isinstance(spec, str) or not isinstance(align, bool) or not isinstance(copy, bool):
            raise ConversionError("malformed network pickle: numpy dtype from a non-string")
        return np.dtype(spec, align, copy)

    def _numpy_scalar(self, dtype, b=None):
        if not isinstance(dtype, np.dtype) or dtype.kind not in SCALAR_KINDS or dtype.hasobject:
            raise ConversionError(f"refusing numpy scalar of dtype {dtype!r:.40}: only numbers are accepted")
        if not isinstance(b, bytes) or len(b) != dtype.itemsize:
            raise ConversionError("malformed network pickle: numpy scalar bytes do not fit its dtype")
        return np.frombuffer(b, dtype)[0]


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


# --------------------------------------------------------------------------------------------------- reading
def looks_like_network_pickle(path) -> bool:
    """A raw pickle (protocol >= 2) that is neither a zip nor a legacy torch.save file."""
    with open(path, "rb") as f:
        head = f.read(len(LEGACY_TORCH_MAGIC))
    return head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and head != LEGACY_TORCH_MAGIC


def loads_network_pickle(data: bytes) -> object:
    """Unpickle bytes with `NetworkUnpickler`; every failure is a one-line ConversionError."""
    try:
        return NetworkUnpickler(io.BytesIO(data)).load()
    except ConversionError:
        raise
    except RecursionError:
        raise ConversionError("malformed network pickle: nested too deeply") from None
    except (EOFError, pickle.UnpicklingError) as e:
        raise ConversionError(f"truncated or corrupt network pickle ({_first_line(e)})") from None
    except Exception as e:  # noqa: BLE001  (crafted opcodes fail in arbitrary ways; none of them run code)
        raise ConversionError(f"malformed network pickle ({_first_line(e)})") from None


def read_network_pickle(path) -> dict:
    """The snapshot's top-level dict ({'G', 'D', 'G_ema', ...}) with PersistentRecords and stubs as values."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConversionError(f"cannot read {path}: {e.strerror or e}") from None
    obj = loads_network_pickle(data)
    if not isinstance(obj, dict):
        raise ConversionError(f"{Path(path).name} is a pickle of {type(obj).__name__}, not an NVlabs snapshot dict")
    return obj


# --------------------------------------------------------------------------------------------------- the walk
@dataclass
class NetworkRecord:
    which: str                      # 'G_ema', 'G' or 'D'
    class_name: str                 # official class of the top module, e.g. 'Generator'
    module_src_sha256: dict         # {class name: sha256 of its embedded module_src} over the whole tree
    init_kwargs: dict               # constructor kwargs as plain dicts
    state_dict: OrderedDict         # exactly what the official module's state_dict() returns
    source: str | None = None       # 'repo:path' of the top class when its module_src is a known file
    non_persistent: list = field(default_factory=list)  # classes pickled by reference (stubs) in the tree
    defines: tuple = ()             # classes defined in the top class's module_src
    attributes: dict = field(default_factory=dict)  # {module path: {attr: scalar}}, e.g. conv_clamp, architecture


def _module_state(obj, prefix: str) -> dict:
    state = obj.state if isinstance(obj, (PersistentRecord, _Stub)) else None
    if isinstance(state, tuple) and len(state) == 2:   # (dict state, slot state)
        state = state[0]
    if not isinstance(state, dict):
        raise ConversionError(f"malformed network pickle: module {prefix or '<root>'} has no state dict")
    return state


def _entries(state: dict, key: str, prefix: str) -> dict:
    value = state.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConversionError(f"malformed network pickle: {prefix}{key} is not a dict of names")
    return value


SCALARS = (bool, int, float, str, type(None), np.generic)


def _walk(obj, prefix: str, out: OrderedDict, shas: dict, stubs: list, depth: int = 0, visits: list = None,
          attrs: dict | None = None) -> None:
    """Emit parameters, then persistent buffers, then recurse into children (as nn.Module.state_dict)."""
    visits = visits if visits is not None else [0]
    visits[0] += 1
    if depth > MAX_DEPTH or visits[0] > MAX_MODULES:
        raise ConversionError("malformed network pickle: module tree too deep or too large (cyclic?)")
    state = _module_state(obj, prefix)
    if isinstance(obj, PersistentRecord):
        shas.setdefault(obj.class_name, obj.module_src_sha256)
    elif obj.qualname not in stubs:
        stubs.append(obj.qualname)
    if attrs is not None:
        attrs[prefix[:-1]] = {k: plain(v) for k, v in state.items()
                              if isinstance(k, str) and not k.startswith("_") and isinstance(v, SCALARS)}
    skip = state.get("_non_persistent_buffers_set", set())
    if not isinstance(skip, (set, frozenset)):
        raise ConversionError(f"malformed network pickle: {prefix}_non_persistent_buffers_set is not a set")
    for key in ("_parameters", "_buffers"):
        for name, t in _entries(state, key, prefix).items():
            if t is None or (key == "_buffers" and name in skip):
                continue
            if type(t) is not torch.Tensor:
                raise ConversionError(f"malformed network pickle: {prefix}{name} is not a tensor")
            out[prefix + name] = t.detach()
    for name, child in _entries(state, "_modules", prefix).items():
        if child is not None:
            _walk(child, f"{prefix}{name}.", out, shas, stubs, depth + 1, visits, attrs)


def plain(value):
    """EasyDicts/OrderedDicts -> dict, tuples/lists kept, numpy scalars -> Python numbers (recursively)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in dict.items(value)}
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def extract_network(path_or_obj, which: str = "G_ema") -> NetworkRecord:
    """One network of a snapshot (a path or the dict from read_network_pickle) as a NetworkRecord."""
    if which not in NETWORKS:
        raise ConversionError(f"which must be one of {', '.join(NETWORKS)}, got {which!r}")
    snapshot = path_or_obj if isinstance(path_or_obj, dict) else read_network_pickle(path_or_obj)
    net = snapshot.get(which)
    if not isinstance(net, PersistentRecord):
        has = [k for k, v in snapshot.items() if isinstance(v, PersistentRecord)]
        has = ", ".join(map(str, has)) or "none"
        raise ConversionError(f"the network pickle has no {which!r} network; it has: {has}")
    out, shas, stubs, attrs = OrderedDict(), {}, [], {}
    _walk(net, "", out, shas, stubs, attrs=attrs)
    kwargs = net.state.get("_init_kwargs", {})
    if not isinstance(kwargs, dict):
        raise ConversionError(f"malformed network pickle: {which} _init_kwargs is not a dict")
    try:
        kwargs = plain(kwargs)
    except RecursionError:
        raise ConversionError(f"malformed network pickle: {which} _init_kwargs nested too deeply") from None
    return NetworkRecord(which, net.class_name, shas, kwargs, out, net.source, stubs, net.defines, attrs)


# ------------------------------------------------------------------------------------------------ detection
def _inrgan_variant(record: NetworkRecord) -> str:
    cfg = record.init_kwargs.get("cfg") or {}
    mode = cfg.get("upsampling_mode", "nearest")
    inorm = bool((cfg.get("fmm") or {}).get("instance_norm", False))
    if (mode, inorm) == ("nearest", False):
        return "inrgan"
    if (mode, inorm) == ("bilinear", True):
        return "inrgan_bil"
    raise ConversionError(f"INR-GAN variant with upsampling_mode={mode!r}, fmm.instance_norm={inorm} "
                          "is neither inrgan (nearest, no norm) nor inrgan_bil (bilinear + instance norm)")


def detect_pickle_arch(record: NetworkRecord) -> str:
    """'inrgan' | 'inrgan_bil' | 'creps' | 'stylegan2' | 'stylegan2_d' from the keys and init_kwargs."""
    sd = record.state_dict
    if record.class_name == "Generator":
        if "synthesis.b4.input.freqs" in sd:
            return "creps"
        if "synthesis.b4.input.input.coord_fuser.log_basis" in sd:
            return _inrgan_variant(record)
        if {"synthesis.b4.const", "synthesis.b4.conv1.affine.weight", "mapping.fc0.weight"} <= sd.keys():
            return "stylegan2"
    if record.class_name == "Discriminator" and {"b4.fc.weight", "b4.out.weight", "b4.conv.weight"} <= sd.keys():
        return "stylegan2_d"
    sha = record.module_src_sha256.get(record.class_name, "?")
    where = record.source or (f"module_src sha256 {sha[:12]}, "
                              f"defining {', '.join(record.defines[:8]) or 'no classes'}")
    raise ConversionError(f"{record.which} is an unknown network class {record.class_name!r} ({where}); "
                          "known: INR-GAN, CREPS, StyleGAN2-ADA/StyleGAN3-repo networks_stylegan2")


__all__ = ["NetworkUnpickler", "NetworkRecord", "PersistentRecord", "read_network_pickle", "loads_network_pickle",
           "extract_network", "detect_pickle_arch", "looks_like_network_pickle", "KNOWN_SOURCES"]
