"""Replay a pickle's stack machine on sizes, not values, before any real unpickler runs it.

A few hundred bytes of pickle can describe a dict key whose hash visits 2**40 values (`x = (x, x)` through memo
references), many keys crafted to share one hash (ints, floats and tuples hash without a secret salt), or a memo
slot four billion entries away. `scan` walks the opcodes once with pickletools (nothing is built, imported or
called), keeping for each stack value only its hash cost, whether its hash is salted (str/bytes) and, for small
constants, the value itself (to read persistent ids and global names), and raises on the first thing out of
bounds. It is deliberately stricter than the real machines: whatever it cannot replay exactly is refused.
"""
from __future__ import annotations

import io
import pickletools
from dataclasses import dataclass, field

from .errors import CheckpointError

MAX_KEY_NODES = 10_000        # values inside one dict key or set item (hashing a tuple visits every one)
MAX_COLLIDABLE_KEYS = 10_000  # keys whose hash is unsalted and not a small int (colliding ones cost n**2 / 2 probes)
HASH_WORK_PER_BYTE = 16       # total hashing work allowed per byte of pickle, in values visited ...
HASH_WORK_FLOOR = 1 << 20     # ... and at least this much
MEMO_SLACK = 1024             # a memo index may run this far ahead of the entries stored so far (real ones: 0)
MAX_LINE = 1 << 16            # bytes of one text argument (GLOBAL names, protocol-0 numbers)
SMALL_INT_BITS = 60           # ints below 2**60 hash to themselves: distinct ones never collide
CONST_ITEMS = 8               # tuples up to this many constants are kept as constants (persistent ids)
_NO = object()                # "not a known constant"
_TUPLE_N = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_MEMO_PUT = ("PUT", "BINPUT", "LONG_BINPUT")
_MEMO_GET = ("GET", "BINGET", "LONG_BINGET")
_CALLS = ("REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "INST")
_CONSTANTS = {"NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT",
              "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
              "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"}


class Global(tuple):
    """(module, name) of a GLOBAL or STACK_GLOBAL, as a constant."""


class _V:
    """What the scan knows of one stack value: the values its hash visits, whether that hash is randomised per
    process (str/bytes, or tuples of them), and the value itself for small constants."""

    __slots__ = ("cost", "salted", "const")

    def __init__(self, cost: int = 1, salted: bool = False, const=_NO):
        self.cost, self.salted, self.const = cost, salted, const


_OPAQUE = _V()


@dataclass
class ScanResult:
    end: int                                       # offset just past STOP
    persistent_ids: list = field(default_factory=list)   # constant pids (None where not constant)
    value: object = _NO                            # the pickle's value when a small constant


class _Bounded:
    """A read-only view of a file that never reads past `limit` (huge declared lengths cannot allocate)."""

    def __init__(self, f, limit: int):
        self.f, self.limit = f, limit

    def read(self, n: int = -1) -> bytes:
        left = max(0, self.limit - self.f.tell())
        return self.f.read(left if n is None or n < 0 else min(n, left))

    def readline(self, limit: int = -1) -> bytes:
        left = max(0, min(self.limit - self.f.tell(), MAX_LINE))
        return self.f.readline(left)

    def tell(self) -> int:
        return self.f.tell()


class _Machine:
    """The stack, marks and memo of the replay, with the budgets."""

    def __init__(self, size: int, what: str, error: type):
        self.stack: list = []
        self.marks: list = []
        self.memo: dict = {}
        self.puts = 0
        self.hash_left = HASH_WORK_PER_BYTE * size + HASH_WORK_FLOOR
        self.collidable_left = MAX_COLLIDABLE_KEYS
        self.what, self.error = what, error
        self.pids: list = []

    def fail(self, problem: str):
        raise self.error(f"malformed {self.what}: {problem}")

    def fence(self) -> int:
        return self.marks[-1] if self.marks else 0

    def pop(self, n: int) -> list:
        if n > len(self.stack) - self.fence():
            raise IndexError("stack underflow")
        if not n:
            return []
        items = self.stack[-n:]
        del self.stack[-n:]
        return items

    def pop_to_mark(self) -> list:
        if not self.marks:
            raise IndexError("no mark")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def top(self) -> _V:
        if len(self.stack) <= self.fence():
            raise IndexError("stack empty")
        return self.stack[-1]

    def hashed(self, keys) -> None:
        """Charge the hashing of dict keys or set items."""
        for key in keys:
            if key.cost > MAX_KEY_NODES:
                self.fail(f"dict key or set item of more than {MAX_KEY_NODES} values (shared references?)")
            self.hash_left -= key.cost
            if not key.salted and not (type(key.const) is int and key.const.bit_length() < SMALL_INT_BITS) \
                    and key.const not in (None, True, False):
                self.collidable_left -= 1
        if self.hash_left < 0:
            self.fail("dict keys and set items cost too much to hash (shared references?)")
        if self.collidable_left < 0:
            self.fail(f"more than {MAX_COLLIDABLE_KEYS} dict keys or set items with unsalted hashes (numbers or "
                      "tuples), which can be crafted to collide")


def _const(name: str, arg) -> _V:
    """The value pushed by an opcode that pushes a constant."""
    if name in ("NONE", "NEWTRUE", "NEWFALSE"):
        return _V(const={"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
    if isinstance(arg, bool) or arg is None:
        return _V(const=arg)
    if isinstance(arg, int):
        return _V(cost=1 + arg.bit_length() // 64, const=arg if arg.bit_length() <= 128 else _NO)
    if isinstance(arg, float):
        return _V(const=arg)
    if isinstance(arg, (str, bytes)):
        return _V(salted=True, const=arg if len(arg) <= 256 else _NO)
    return _OPAQUE


def _tuple(items: list) -> _V:
    cost = min(1 + sum(v.cost for v in items), MAX_KEY_NODES + 1)
    const = tuple(v.const for v in items) if len(items) <= CONST_ITEMS and all(v.const is not _NO
                                                                               for v in items) else _NO
    return _V(cost, all(v.salted for v in items), const)


def _global(module: _V, name: _V) -> _V:
    ok = isinstance(module.const, str) and isinstance(name.const, str)
    return _V(const=Global((module.const, name.const)) if ok else _NO)


def _step(m: _Machine, op, arg) -> None:
    """One opcode on the replayed machine."""
    name = op.name
    if name == "MARK":
        m.marks.append(len(m.stack))
    elif name in _MEMO_PUT or name == "MEMOIZE":
        index = len(m.memo) if name == "MEMOIZE" else arg
        if index > m.puts + MEMO_SLACK:
            m.fail(f"memo index {index} far beyond the {m.puts} entries stored so far")
        m.memo[index] = m.top()
        m.puts += 1
    elif name in _MEMO_GET:
        m.stack.append(m.memo[arg])
    elif name == "DUP":
        m.stack.append(m.top())
    elif name == "POP":
        m.pop(1)
    elif name == "TUPLE" or name in _TUPLE_N:
        m.stack.append(_tuple(m.pop_to_mark() if name == "TUPLE" else m.pop(_TUPLE_N[name])))
    elif name == "EMPTY_TUPLE":
        m.stack.append(_tuple([]))
    elif name == "GLOBAL":
        module, _, attr = arg.partition(" ")
        m.stack.append(_V(const=Global((module, attr))))
    elif name == "STACK_GLOBAL":
        m.stack.append(_global(*m.pop(2)))
    elif name in ("BINPERSID", "PERSID"):
        pid = m.pop(1)[0].const if name == "BINPERSID" else arg
        m.pids.append(None if pid is _NO else pid)
        m.stack.append(_OPAQUE)
    elif name in _CALLS:
        _call(m, name)
    elif name == "SETITEM":
        m.hashed(m.pop(3)[1:2])
        m.stack.append(_OPAQUE)
    elif name in ("SETITEMS", "ADDITEMS"):
        items = m.pop_to_mark()
        m.pop(1)
        m.hashed(items[0::2] if name == "SETITEMS" else items)
        m.stack.append(_OPAQUE)
    elif name in ("DICT", "FROZENSET"):
        items = m.pop_to_mark()
        m.hashed(items[0::2] if name == "DICT" else items)
        m.stack.append(_V(cost=1 + len(items)) if name == "FROZENSET" else _OPAQUE)
    elif name in _CONSTANTS:
        m.stack.append(_const(name, arg))
    else:
        _generic(m, op)


def _call(m: _Machine, name: str) -> None:
    """REDUCE and friends: the result may hash like its arguments (a tuple subclass), and collide."""
    if name in ("OBJ", "INST"):
        args = m.pop_to_mark()
    else:
        args = m.pop({"REDUCE": 2, "NEWOBJ": 2, "NEWOBJ_EX": 3}[name])[1:]
    m.stack.append(_V(cost=min(1 + sum(v.cost for v in args), MAX_KEY_NODES + 1)))


def _generic(m: _Machine, op) -> None:
    below = len(op.stack_before)
    if pickletools.markobject in op.stack_before:
        m.pop_to_mark()
        below = op.stack_before.index(pickletools.markobject)
    m.pop(below)
    m.stack.extend([_OPAQUE] * len(op.stack_after))


def scan(source, *, start: int = 0, limit: int | None = None, what: str = "pickle",
         error: type = CheckpointError) -> ScanResult:
    """Replay one pickle of `source` (bytes or a binary file) from `start`; refuse what would blow up time or memory.

    Raises `error` with a one-line message ("malformed WHAT: ..." or "truncated or corrupt WHAT (...)").
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    size = source.seek(0, io.SEEK_END) if limit is None else limit
    source.seek(start)
    m = _Machine(size - start, what, error)
    value = _NO
    try:
        for op, arg, _ in pickletools.genops(_Bounded(source, size)):
            if op.name == "STOP":
                value = m.top().const
            _step(m, op, arg)
    except error:
        raise
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, EOFError) as e:
        text = str(e).strip().splitlines()
        raise error(f"truncated or corrupt {what} ({type(e).__name__}: {text[0][:120] if text else ''})") from None
    return ScanResult(source.tell(), m.pids, value)


__all__ = ["scan", "ScanResult", "Global", "MAX_KEY_NODES"]
