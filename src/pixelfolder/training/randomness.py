"""Randomness keyed by (seed, step, phase, global sample index): the same sample gets the same z, noise,
mixing, flip and augmentation whatever the batch split or number of processes."""
from __future__ import annotations

import hashlib

import torch


def sample_key(seed: int, step: int, tag: str, index: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{step}:{tag}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generators(seed: int, step: int, tag: str, indices) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(sample_key(seed, step, tag, int(k))) for k in indices]


def randn(gens, *shape) -> torch.Tensor:
    """(len(gens), *shape) standard normals, row k from gens[k]."""
    return torch.stack([torch.randn(*shape, generator=g) for g in gens])


def rand(gens, *shape) -> torch.Tensor:
    return torch.stack([torch.rand(*shape, generator=g) for g in gens])


def chunk_indices(step_batch: int, chunk: int, num_chunks: int) -> list[int]:
    """Global sample indices (within a step) handled by chunk `chunk` of `num_chunks`: a strided split,
    so that rank r's k-th local chunk is the same set of samples as chunk k * world + r of one process."""
    return list(range(chunk, step_batch, num_chunks))
