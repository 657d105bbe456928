"""Read NVlabs-style network pickles (StyleGAN2-ADA / StyleGAN3 / INR-GAN / CREPS snapshots) as data.

A plain `pickle.load` of such a file execs the Python source embedded in it. Here every global goes through
an allow-list: tensor globals are rebuilt by our own checked functions (storages by
`torch.load(weights_only=True)`), persistent objects become inert `PersistentRecord`s whose `module_src` is
hashed and dropped (never compiled), a few known classes become inert stubs that only keep their state, and
anything else is refused before it can run. The module tree is then walked like `nn.Module.state_dict()`.

Memory and time stay proportional to the file: before unpickling, pickle_scan.scan replays the opcodes and refuses
costly dict keys (hash bombs, unsalted keys crafted to collide) and memo indices far beyond the entries stored;
the unpickler itself is the pure-Python one (its memo is a dict), whose BUILD only reaches our stand-ins (never a
tensor: Tensor.__setstate__ would call an unchecked `set_`), whose REDUCE/NEWOBJ take tuples only, whose
SETITEM(S)/APPEND(S)/ADDITEMS only fill real dicts, lists and sets, whose dict stand-ins (OrderedDict, EasyDict)
take no constructor arguments (real pickles fill them by SETITEMS), and whose module sources and storages together
may not decode to more than twice the file (shared references cannot make one payload decode many times).
"""
from __future__ import annotations

import hashlib
import io
import math
import pickle
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, ConversionError, first_line
from ..pickle_scan import scan
from ..torchfile import check_legacy_bytes

NETWORKS = ("G", "D", "G_ema")
MAX_DEPTH = 64        # module nesting depth accepted when walking the tree (real networks use < 10)
MAX_WALK_ITEMS = 500_000  # modules + state entries walked, shared ones once per path (1024 px networks: < 30,000)
MAX_TENSORS = 100_000  # state_dict entries accepted per network (real networks have < 2,000)
MAX_KEY_CHARS = 1024  # length of a dotted state_dict key (real keys have < 100 characters)
MAX_PLAIN_NODES = 20_000  # values in one network's _init_kwargs (real ones have < 200)
MAX_PLAIN_DEPTH = 32  # nesting of _init_kwargs (real ones nest < 5 deep)
MAX_DIMS = 16         # tensor dimensions accepted
MAX_BROADCAST_NUMEL = 1 << 24  # elements a tensor may have beyond its storage's (stride-0 views), 64 MiB of fp32
SCALAR_KINDS = "biufc"  # numpy scalar kinds accepted (no objects, strings or structured dtypes)
MAX_DECODED_FACTOR = 2  # module sources and storages decoded, in bytes per byte of pickle (each once: 1)
MAX_DECODED_FLOOR = 1 << 20
DTYPE_SPEC = re.compile(r"[<>|=]?[biufc]\d{1,2}")  # numpy.dtype(spec) strings accepted, e.g. 'f8', '<i4', '|b1'

# sha256 of module_src -> the official file it is (found in the reference snapshots).
KNOWN_SOURCES = {
    "5dfa28972905bf92a1b8ff51465adbafea2d27947efba59f3fc81da24c5f3a95": "universome/inr-gan:src/training/networks.py",
    "1210c8134c59a3acec9b2a369beb15b2ed8d368607b1b99a557b109212a7306e": "universome/inr-gan:src/training/layers.py",
    "1c2cea645d61c4b59e12d5a6333c43b0c4ac84a81ce232626e17189d5f69a5c1":
        "VinAIResearch/CREPS:training/networks_creps.py",
    "f6bfb33266b77d5dc53fb0f6c73c724787ac256e9e5115895f21678b3a060a3c":
        "VinAIResearch/CREPS:training/networks_stylegan2.py",
    "53b4e1ec457171d4e2c1454d48013765ab626141c35cdd383b020950effe11a5":
        "NVlabs/stylegan2-ada-pytorch:training/networks.py",
}

# Classes that are pickled by reference and only need to keep their state (module -> names). Each becomes a
# `_Stub`: NEWOBJ/REDUCE arguments are ignored and BUILD only stores the state; nothing of the class is called.
# The torch.nn containers are the plain torch modules official networks hold (INR-GAN's `extra_convs` ModuleList at
# 128/256 px, CREPS's decoder Sequentials); `_walk` reads their state as nn.Module.state_dict() does (ParameterList
# and ParameterDict keep their parameters in `_parameters`, under "0", "1", ... or the dict keys).
STUB_CLASSES = {
    "builtins": ("dict",),
    "collections": ("defaultdict",),
    "omegaconf.base": ("ContainerMetadata", "Metadata"),
    "omegaconf.dictconfig": ("DictConfig",),
    "omegaconf.nodes": ("AnyNode",),
    "typing": ("Any",),
    "torch.nn.modules.container": ("Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"),
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

    def __setstate__(self, state):
        raise ConversionError("malformed network pickle: BUILD on a persistent object (NVlabs pickles never do this)")

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


class _FilledBySetitems:
    """Dict stand-ins that refuse constructor arguments: pickles fill them by SETITEMS, which the scan checked;
    `OrderedDict(crafted pairs)` would hash keys nothing checked."""

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise ConversionError(f"malformed network pickle: {type(self).__name__} called with arguments (pickles "
                                  "fill dicts by SETITEMS)")
        super().__init__()


class EasyDict(_FilledBySetitems, dict):
    """Stand-in for dnnlib.util.EasyDict: a plain dict subclass."""


class _OrderedDict(_FilledBySetitems, OrderedDict):
    """Stand-in for collections.OrderedDict."""


class DTypeSpec:
    """Inert stand-in for `numpy.dtype(spec)`: only a checked spec string, so BUILD cannot reshape a real dtype."""

    __slots__ = ("spec",)

    def __init__(self, spec: str):
        self.spec = spec

    def __setstate__(self, state):
        """numpy's dtype state for a plain number type: (3, byteorder, None, None, None, -1, -1, flags)."""
        ok = (isinstance(state, tuple) and len(state) == 8 and _is_int(state[0]) and state[0] == 3
              and isinstance(state[1], str) and state[1] in ("<", ">", "|", "=")
              and all(v is None for v in state[2:5]) and all(_is_int(v) and v == -1 for v in state[5:7])
              and _is_int(state[7]))
        if not ok:
            raise ConversionError(f"refusing numpy dtype state ({_brief(state)}): only plain number types are accepted")
        self.spec = state[1] + self.spec.lstrip("<>|=")

    def dtype(self) -> np.dtype:
        """A fresh numpy dtype built from the checked spec, checked again to be a plain scalar number type."""
        dt = np.dtype(self.spec)
        if dt.kind not in SCALAR_KINDS or dt.hasobject or dt.shape != () or dt.names is not None or dt.subdtype:
            raise ConversionError(f"refusing numpy dtype {self.spec!r}: only plain number types are accepted")
        return dt

    def __repr__(self) -> str:
        return f"DTypeSpec({self.spec!r})"


class _Budget:
    """Counts work on crafted data: shared references let a few bytes of pickle describe an exponential tree."""

    def __init__(self, limit: int, what: str):
        self.left, self.what = limit, what

    def spend(self, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            raise ConversionError(f"malformed network pickle: {self.what} too large (shared or cyclic references?)")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _int_tuple(x, what: str) -> tuple:
    if not isinstance(x, (tuple, list)) or len(x) > MAX_DIMS or not all(_is_int(v) and 0 <= v < 1 << 62 for v in x):
        raise ConversionError(f"malformed network pickle: bad tensor {what} ({_brief(x)})")
    return tuple(x)


def _stack_target(u) -> object:
    """The object below the topmost mark (what SETITEMS, APPENDS and ADDITEMS fill)."""
    return u.metastack[-1][-1]


def _require(what: str, obj, kinds: tuple, opcode: str) -> None:
    if not isinstance(obj, kinds):
        raise ConversionError(f"malformed network pickle: {opcode} on {what} {type(obj).__name__} "
                              f"(only {'/'.join(k.__name__ for k in kinds)})")


BUILD_TYPES = (_Stub, DTypeSpec, PersistentRecord)   # PersistentRecord's refuses; tensors are never among them


def _check_build(u) -> None:
    inst = u.stack[-2]
    if not isinstance(inst, BUILD_TYPES):
        raise ConversionError(f"malformed network pickle: BUILD on a {type(inst).__name__} (only module stand-ins "
                              "and numpy dtypes take a state)")


def _check_newobj(u, kwargs: bool = False) -> None:
    if kwargs:
        k = u.stack[-1]
        if type(k) is not dict or not all(isinstance(n, str) for n in k):
            raise ConversionError("malformed network pickle: NEWOBJ_EX keyword arguments are not a dict of names")
    args, cls = u.stack[-1 - kwargs], u.stack[-2 - kwargs]
    if type(args) is not tuple or not isinstance(cls, type):
        raise ConversionError("malformed network pickle: NEWOBJ of a non-class or with non-tuple arguments")


_GUARDS = {
    pickle.BUILD: _check_build,
    pickle.REDUCE: lambda u: type(u.stack[-1]) is tuple or _fail("REDUCE arguments are not a tuple"),
    pickle.NEWOBJ: _check_newobj,
    pickle.NEWOBJ_EX: lambda u: _check_newobj(u, kwargs=True),
    pickle.SETITEM: lambda u: _require("a", u.stack[-3], (dict,), "SETITEM"),
    pickle.SETITEMS: lambda u: _require("a", _stack_target(u), (dict,), "SETITEMS"),
    pickle.APPEND: lambda u: _require("a", u.stack[-2], (list,), "APPEND"),
    pickle.APPENDS: lambda u: _require("a", _stack_target(u), (list,), "APPENDS"),
    pickle.ADDITEMS: lambda u: _require("a", _stack_target(u), (set,), "ADDITEMS"),
}


def _fail(problem: str):
    raise ConversionError(f"malformed network pickle: {problem}")


def _guarded(opcode: bytes, check):
    base = pickle._Unpickler.dispatch[opcode[0]]

    def load(self):
        check(self)
        base(self)
    return load


class NetworkUnpickler(pickle._Unpickler):
    """Unpickler whose only reachable globals are the checked stand-ins below; everything else is refused.

    The pure-Python unpickler (memo in a dict, not an array sized by the largest index), with guarded opcodes.
    """

    dispatch = {**pickle._Unpickler.dispatch, **{op[0]: _guarded(op, check) for op, check in _GUARDS.items()}}

    def __init__(self, file, size: int | None = None):
        super().__init__(file)
        if size is None:
            here = file.tell()
            size = file.seek(0, io.SEEK_END) - here
            file.seek(here)
        self._decoded = _Budget(MAX_DECODED_FACTOR * size + MAX_DECODED_FLOOR, "data decoded from shared payloads")
        self._sources: dict = {}       # id(module_src) -> (module_src, sha256, defines)
        easydict = type("EasyDict", (EasyDict,), {"__module__": __name__})
        self._globals = {
            ("torch_utils.persistence", "_reconstruct_persistent_obj"): self._persistent_obj,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("torch.storage", "_load_from_bytes"): self._load_storage,
            ("numpy._core.multiarray", "scalar"): self._numpy_scalar,
            ("numpy.core.multiarray", "scalar"): self._numpy_scalar,
            ("numpy", "dtype"): self._numpy_dtype,
            ("collections", "OrderedDict"): _OrderedDict,
            ("dnnlib.util", "EasyDict"): easydict,
        }
        for module, names in STUB_CLASSES.items():
            self._globals.update({(module, n): _stub_class(module, n) for n in names})

    def find_class(self, module: str, name: str):
        found = self._globals.get((module, name))
        if found is None:
            raise ConversionError(f"refusing to unpickle {_printable(f'{module}.{name}')}: not a known NVlabs "
                                  "network-pickle global")
        return found

    def persistent_load(self, pid):
        raise ConversionError("refusing to unpickle a persistent id: NVlabs network pickles have none")

    # --------------------------------------------------------------------------------------- stand-ins
    def _persistent_obj(self, meta):
        ok = (isinstance(meta, dict) and meta.get("type") == "class" and isinstance(meta.get("module_src"), str)
              and isinstance(meta.get("class_name"), str) and isinstance(meta.get("state"), dict))
        if not ok:
            raise ConversionError("malformed network pickle: persistent object without class_name/module_src/state")
        sha, defines = self._source_digest(meta["module_src"])
        return PersistentRecord(meta["class_name"], meta.get("version"), sha, defines, meta["state"])

    def _source_digest(self, src: str) -> tuple:
        """(sha256, classes defined) of a module_src, once per string object (modules share it by memo)."""
        known = self._sources.get(id(src))
        if known is None:
            self._decoded.spend(len(src))      # hashed and scanned as text only; never compiled
            defines = tuple(re.findall(r"^class\s+(\w+)", src, flags=re.M))
            known = self._sources[id(src)] = (src, hashlib.sha256(src.encode("utf-8", "surrogatepass")).hexdigest(),
                                              defines)
        return known[1], known[2]

    def _load_storage(self, b):
        if not isinstance(b, (bytes, bytearray)):
            raise ConversionError("malformed network pickle: storage payload is not bytes")
        self._decoded.spend(len(b))
        try:
            check_legacy_bytes(b, "")
        except CheckpointError as e:
            raise ConversionError(f"unreadable tensor storage in network pickle: {e}") from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")          # crafted payloads must not print torch's warnings
                storage = torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001  (weights_only refusals and corrupt data alike)
            raise ConversionError("unreadable tensor storage in network pickle: "
                                  f"{first_line(e, typed=True, limit=None)}") from None
        if not isinstance(storage, torch.storage.TypedStorage):
            raise ConversionError("malformed network pickle: storage payload holds no tensor storage")
        return storage

    def _rebuild_tensor(self, storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
        """Checked equivalent of torch._utils._rebuild_tensor_v2 (no hooks, no metadata, in bounds)."""
        if not isinstance(storage, torch.storage.TypedStorage) or not _is_int(offset) or not 0 <= offset < 1 << 62:
            raise ConversionError("malformed network pickle: bad tensor storage or offset")
        size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
        if len(size) != len(stride) or hooks or metadata:
            raise ConversionError("malformed network pickle: tensor with hooks, metadata or mismatched stride")
        t = torch.empty(0, dtype=storage.dtype)
        end = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if all(size) else 0
        nbytes = storage._untyped_storage.nbytes()
        if end * t.element_size() > nbytes:
            raise ConversionError(f"malformed network pickle: tensor of size {_shape(size)} overruns its storage")
        if math.prod(size) > max(nbytes // t.element_size(), MAX_BROADCAST_NUMEL):
            raise ConversionError(f"malformed network pickle: tensor of size {_shape(size)} has far more elements "
                                  "than its storage (stride-0 view)")
        return t.set_(storage._untyped_storage, offset, size, stride)

    def _rebuild_parameter(self, data, requires_grad=False, hooks=None):
        if type(data) is not torch.Tensor or hooks:
            raise ConversionError("malformed network pickle: parameter is not a plain tensor")
        return data

    def _numpy_dtype(self, spec, align=False, copy=False):
        if type(align) is not bool or type(copy) is not bool:
            raise ConversionError("malformed network pickle: numpy dtype with non-bool align/copy")
        if not isinstance(spec, str) or align or not DTYPE_SPEC.fullmatch(spec):
            raise ConversionError(f"refusing numpy dtype {_brief(spec)}: only plain number types are accepted")
        return DTypeSpec(spec)

    def _numpy_scalar(self, dtype, b=None):
        if type(dtype) is not DTypeSpec:
            raise ConversionError(f"refusing numpy scalar of dtype {_brief(dtype)}: only numbers are accepted")
        dt = dtype.dtype()
        if type(b) is not bytes or len(b) != dt.itemsize:
            raise ConversionError("malformed network pickle: numpy scalar bytes do not fit its dtype")
        return np.frombuffer(b, dt)[0]




def _printable(text: str) -> str:
    """Untrusted text for a one-line message: as it is when short and printable, else its repr (cut)."""
    return text if len(text) <= 120 and text.isprintable() else repr(text[:80])


def _shape(size: tuple) -> str:
    return str(size) if all(n < 1 << 63 for n in size) else f"({len(size)} dims, some huge)"


def _brief(x) -> str:
    """A short description of untrusted data for messages (repr of a shared structure can take forever)."""
    if isinstance(x, str):
        return repr(x[:40])
    if isinstance(x, (bool, float, type(None))) or (isinstance(x, int) and x.bit_length() < 64):
        return repr(x)
    return f"a {type(x).__name__}"


def _check_costs(data: bytes) -> None:
    """Refuse costly dict keys, colliding keys and far memo indices before the real unpickler runs (pickle_scan)."""
    scan(data, what="network pickle", error=ConversionError)


# --------------------------------------------------------------------------------------------------- reading
def looks_like_network_pickle(path) -> bool:
    """A raw pickle (protocol >= 2) that is neither a zip nor a legacy torch.save file (pixelfolder.networks.sniff)."""
    from ..networks import sniff
    return sniff(Path(path)) == "pickle"


def loads_network_pickle(data: bytes) -> object:
    """Unpickle bytes with `NetworkUnpickler`; every failure is a one-line ConversionError."""
    _check_costs(data)
    try:
        return NetworkUnpickler(io.BytesIO(data), len(data)).load()
    except ConversionError:
        raise
    except RecursionError:
        raise ConversionError("malformed network pickle: nested too deeply") from None
    except (EOFError, pickle.UnpicklingError) as e:
        raise ConversionError(f"truncated or corrupt network pickle ({first_line(e, typed=True, limit=None)})"
                              ) from None
    except Exception as e:  # noqa: BLE001  (crafted opcodes fail in arbitrary ways; none of them run code)
        raise ConversionError(f"malformed network pickle ({first_line(e, typed=True, limit=None)})") from None


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
    if not isinstance(obj, (PersistentRecord, _Stub)):
        raise ConversionError(f"malformed network pickle: module {prefix or '<root>'} is a {type(obj).__name__}")
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2:   # (dict state, slot state)
        state = state[0]
    if not isinstance(state, dict):
        raise ConversionError(f"malformed network pickle: module {prefix or '<root>'} has no state dict")
    return state


def _entries(state: dict, key: str, prefix: str, budget: _Budget) -> dict:
    value = state.get(key, {})
    if not isinstance(value, dict):
        raise ConversionError(f"malformed network pickle: {prefix}{key} is not a dict of names")
    budget.spend(len(value))
    for name in value:
        if not isinstance(name, str) or len(prefix) + len(name) > MAX_KEY_CHARS or not name.isprintable():
            raise ConversionError(f"malformed network pickle: {prefix}{key} holds a bad name {_brief(name)}")
    return value


SCALARS = (bool, int, float, str, type(None), np.generic)


@dataclass
class _Walk:
    """What one walk collects, and its limits."""
    out: OrderedDict = field(default_factory=OrderedDict)
    shas: dict = field(default_factory=dict)
    stubs: list = field(default_factory=list)
    attrs: dict = field(default_factory=dict)
    budget: _Budget = field(default_factory=lambda: _Budget(MAX_WALK_ITEMS, "module tree"))
    path: set = field(default_factory=set)   # id() of the modules being walked (cycle guard)


def _walk(obj, prefix: str, w: _Walk, depth: int = 0) -> None:
    """Emit parameters, then persistent buffers, then recurse into children (as nn.Module.state_dict)."""
    if depth > MAX_DEPTH or id(obj) in w.path:
        raise ConversionError("malformed network pickle: module tree too deep or cyclic")
    state = _module_state(obj, prefix)
    w.budget.spend(1 + len(state))
    if isinstance(obj, PersistentRecord):
        w.shas.setdefault(obj.class_name, obj.module_src_sha256)
    elif obj.qualname not in w.stubs:
        w.stubs.append(obj.qualname)
    w.attrs[prefix[:-1]] = {k: v.item() if isinstance(v, np.generic) else v for k, v in state.items()
                            if isinstance(k, str) and not k.startswith("_") and isinstance(v, SCALARS)}
    skip = state.get("_non_persistent_buffers_set", set())
    if not isinstance(skip, (set, frozenset)) or not all(isinstance(n, str) for n in skip):
        raise ConversionError(f"malformed network pickle: {prefix}_non_persistent_buffers_set is not a set of names")
    w.budget.spend(len(skip))
    for key in ("_parameters", "_buffers"):
        for name, t in _entries(state, key, prefix, w.budget).items():
            if t is None or (key == "_buffers" and name in skip):
                continue
            if type(t) is not torch.Tensor:
                raise ConversionError(f"malformed network pickle: {prefix}{name} is not a tensor")
            if len(w.out) >= MAX_TENSORS:
                raise ConversionError(f"malformed network pickle: more than {MAX_TENSORS} tensors in one network")
            w.out[prefix + name] = t.detach()
    w.path.add(id(obj))
    for name, child in _entries(state, "_modules", prefix, w.budget).items():
        if child is not None:
            _walk(child, f"{prefix}{name}.", w, depth + 1)
    w.path.discard(id(obj))


def plain(value, budget: _Budget | None = None, depth: int = 0, active: set | None = None):
    """EasyDicts/OrderedDicts -> dict, tuples/lists kept, numpy scalars -> Python numbers (recursively).

    Only str-keyed dicts, lists, tuples and SCALARS are accepted (no tensors or stubs), within size limits.
    """
    budget = budget if budget is not None else _Budget(MAX_PLAIN_NODES, "_init_kwargs")
    budget.spend()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, SCALARS):
        return value
    if not isinstance(value, (dict, tuple, list)):
        raise ConversionError(f"malformed network pickle: a {type(value).__name__} among plain settings")
    active = active if active is not None else set()
    if depth >= MAX_PLAIN_DEPTH or id(value) in active:
        raise ConversionError("malformed network pickle: settings nested too deeply or cyclic")
    active.add(id(value))
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ConversionError("malformed network pickle: settings dict with non-string keys")
        out = {k: plain(v, budget, depth + 1, active) for k, v in dict.items(value)}
    else:
        items = [plain(v, budget, depth + 1, active) for v in value]
        out = tuple(items) if isinstance(value, tuple) else items
    active.discard(id(value))
    return out


def extract_network(path_or_obj, which: str = "G_ema") -> NetworkRecord:
    """One network of a snapshot (a path or the dict from read_network_pickle) as a NetworkRecord."""
    if which not in NETWORKS:
        raise ConversionError(f"which must be one of {', '.join(NETWORKS)}, got {which!r}")
    snapshot = path_or_obj if isinstance(path_or_obj, dict) else read_network_pickle(path_or_obj)
    net = snapshot.get(which)
    if not isinstance(net, PersistentRecord):
        has = [k for k, v in snapshot.items() if isinstance(v, PersistentRecord)]
        has = ", ".join(k if isinstance(k, str) else _brief(k) for k in has) or "none"
        raise ConversionError(f"the network pickle has no {which!r} network; it has: {has}")
    w = _Walk()
    _walk(net, "", w)
    kwargs = net.state.get("_init_kwargs", {})
    if not isinstance(kwargs, dict):
        raise ConversionError(f"malformed network pickle: {which} _init_kwargs is not a dict")
    kwargs = plain(kwargs)
    return NetworkRecord(which, net.class_name, w.shas, kwargs, w.out, net.source, w.stubs, net.defines, w.attrs)


# ------------------------------------------------------------------------------------------------ detection
def _inrgan_variant(record: NetworkRecord) -> str:
    cfg = record.init_kwargs.get("cfg") or {}
    mode = cfg.get("upsampling_mode", "nearest")
    inorm = bool((cfg.get("fmm") or {}).get("instance_norm", False))
    if (mode, inorm) == ("nearest", False):
        return "inrgan"
    if (mode, inorm) == ("bilinear", True):
        return "inrgan_bil"
    raise ConversionError(f"INR-GAN variant with upsampling_mode={_brief(mode)}, fmm.instance_norm={inorm} "
                          "is neither inrgan (nearest, no norm) nor inrgan_bil (bilinear + instance norm)")


SUPPORTED = ("INR-GAN, INR-GAN-bil, CREPS and unconditional StyleGAN2 generators (StyleGAN2-ADA / StyleGAN3-repo "
             "networks_stylegan2) with their resnet discriminators")
STYLEGAN3_LAYER = re.compile(r"synthesis\.L\d+_\d+_\d+\.")   # StyleGAN3's layer names, e.g. synthesis.L0_36_512.


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
    if record.class_name == "Generator" and any(STYLEGAN3_LAYER.match(k) for k in sd):
        raise ConversionError(f"{record.which} is a StyleGAN3 generator (networks_stylegan3), not supported yet; "
                              f"supported: {SUPPORTED}")
    sha = record.module_src_sha256.get(record.class_name, "?")
    where = record.source or (f"module_src sha256 {sha[:12]}, "
                              f"defining {', '.join(record.defines[:8]) or 'no classes'}")
    raise ConversionError(f"{record.which} is an unknown network class {_brief(record.class_name)} ({where}); "
                          f"supported: {SUPPORTED}")


__all__ = ["NetworkUnpickler", "NetworkRecord", "PersistentRecord", "read_network_pickle", "loads_network_pickle",
           "extract_network", "detect_pickle_arch", "looks_like_network_pickle", "KNOWN_SOURCES"]
