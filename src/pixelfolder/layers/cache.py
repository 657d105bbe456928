"""One cache for tensors derived from other tensors (folded / channels_last weights, coordinate embeddings).

A `DerivedCache` holds, per `tag`, a snapshot of the source tensors the entry was built from and the derived
values, one per compute dtype. A lookup rebuilds the entry when any source's shape, dtype, device or bits differ
from the snapshot (version counters miss edits through `.data`, BatchNorm running-statistic updates and
load_state_dict; values miss nothing), or when the lookup's `key` differs from the entry's (one entry per tag:
e.g. another grid size replaces it, so rendering many sizes does not accumulate). The check reads every source
and its copy once per lookup and the copies double the sources' memory; `check=False` skips it for a second
lookup in the same forward. Meta-device sources are never cached.

When to bypass the cache is the caller's choice (`enabled=`): typically `caching_allowed()`, i.e. no autograd
(a cached value would carry no graph) and not while torch.compile traces. `release_cached(module)` frees every
cache in a module tree (rebuilt on the next lookup).
"""
from __future__ import annotations

import torch
from torch import nn


def caching_allowed() -> bool:
    """True outside autograd and torch.compile tracing: where derived tensors may be reused."""
    return not torch.is_grad_enabled() and not torch.compiler.is_compiling()


def cast(value, dtype: torch.dtype | None):
    """A (nested) tuple / list of tensors in `dtype` (memory format kept); None keeps the dtype."""
    if dtype is None:
        return value
    if isinstance(value, torch.Tensor):
        return value.to(dtype)
    return type(value)(cast(t, dtype) for t in value)


def words(t: torch.Tensor) -> torch.Tensor:
    """t's bytes as a flat integer tensor (int64 when aligned): a bitwise comparison, ~2x faster than float equality."""
    flat = t.detach().reshape(-1).view(torch.uint8)
    return flat.view(torch.int64) if flat.numel() % 8 == 0 and flat.storage_offset() % 8 == 0 else flat


def snapshot(t: torch.Tensor) -> tuple:
    return t.shape, t.dtype, t.device, words(t).clone()


def same_values(snapshots, sources) -> bool:
    """True when every source has its snapshot's shape, dtype, device and bits."""
    return len(snapshots) == len(sources) and all(
        shape == t.shape and dtype == t.dtype and device == t.device and torch.equal(bits, words(t))
        for (shape, dtype, device, bits), t in zip(snapshots, sources))


class DerivedCache:
    """Tensors derived from source tensors, keyed by tag and dtype, rebuilt when any source changes (module doc)."""

    def __init__(self):
        self.entries = {}       # tag -> (key, snapshot of the sources, {dtype: derived value})

    def get(self, sources, build, dtype: torch.dtype | None = None, *, tag=None, key=None, check: bool = True,
            enabled: bool = True):
        """build() (cast to `dtype` unless None), reused while `sources` and `key` are unchanged.

        build() is called once per entry and dtype (its value is then cast), so alternating dtypes or tags do not
        rebuild. enabled=False (or a meta-device source) builds without caching.
        """
        sources = list(sources)
        if not enabled or any(t.is_meta for t in sources):
            return cast(build(), dtype)
        entry = self.entries.get(tag)
        if entry is None or entry[0] != key or (check and not same_values(entry[1], sources)):
            entry = self.entries[tag] = (key, [snapshot(t) for t in sources], {})
        values = entry[2]
        if dtype not in values:
            values[dtype] = cast(build(), dtype)
        return values[dtype]

    def clear(self) -> None:
        self.entries = {}


def release_cached(module: nn.Module) -> None:
    """Free every DerivedCache held by `module` and its submodules (rebuilt on the next lookup)."""
    for m in module.modules():
        for value in vars(m).values():
            if isinstance(value, DerivedCache):
                value.clear()
