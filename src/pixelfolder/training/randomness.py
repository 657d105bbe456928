"""Training randomness keyed by (seed, step, tag, global sample index): the same sample gets the same z, noise,
mixing, flip and augmentation whatever the batch split or number of processes, and a whole batch's draw is
made on the training device in one call, without a host round trip.

The generator is counter-based: Philox4x32-10 (Salmon et al., SC 2011, the generator behind cuRAND's and
torch's CUDA randomness) written with int64 tensor arithmetic, so it runs alike on any device. Its key is a
hash of (seed, step, tag); its counter is (block, global sample index, draw number, 0), where `draw number`
counts the draws made from one `Draws` and `block` numbers the groups of four 32-bit words within a sample's
draw. Normals come from the words by Box-Muller.
"""
from __future__ import annotations

import hashlib
import math

import torch

from ..layers.equalized import at_least_fp32

MASK32 = 0xFFFFFFFF
PHILOX_M = (0xD2511F53, 0xCD9E8D57)      # round multipliers
PHILOX_W = (0x9E3779B9, 0xBB67AE85)      # key schedule (Weyl) increments
PHILOX_ROUNDS = 10


def sample_key(seed: int, step: int, tag: str) -> int:
    """The 64-bit Philox key of one (seed, step, tag)."""
    digest = hashlib.blake2b(f"{seed}:{step}:{tag}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def philox4x32(counter: tuple, key: tuple, rounds: int = PHILOX_ROUNDS) -> tuple:
    """Philox4x32 on int64 tensors holding uint32 values (broadcasting); key: two uint32 Python ints."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(rounds):
        p0, p1 = c0 * PHILOX_M[0], c2 * PHILOX_M[1]      # exact 64-bit products, wrapped into int64
        c0, c1, c2, c3 = ((p1 >> 32) & MASK32) ^ c1 ^ k0, p1 & MASK32, ((p0 >> 32) & MASK32) ^ c3 ^ k1, p0 & MASK32
        k0, k1 = (k0 + PHILOX_W[0]) & MASK32, (k1 + PHILOX_W[1]) & MASK32
    return c0, c1, c2, c3


def index_tensor(indices, device) -> torch.Tensor:
    """Global sample indices as an int64 tensor on `device`; a range is made there (no host-to-device copy)."""
    if isinstance(indices, torch.Tensor):
        return indices.to(device=device, dtype=torch.int64)
    if isinstance(indices, range):
        return torch.arange(indices.start, indices.stop, indices.step, device=device, dtype=torch.int64)
    return torch.tensor(list(indices), device=device, dtype=torch.int64)


class Draws:
    """Random numbers of one (seed, step, tag) for a set of global sample indices; row k of every draw depends
    only on (seed, step, tag, index k, how many draws came before), never on the other rows."""

    def __init__(self, seed: int, step: int, tag: str, indices, device="cpu"):
        key = sample_key(seed, step, tag)
        self.key = (key & MASK32, key >> 32)
        self.index = index_tensor(indices, device)
        self.device = self.index.device
        self.draws = 0

    def __len__(self) -> int:
        return len(self.index)

    def words(self, count: int) -> torch.Tensor:
        """(samples, count) uint32 words (as int64) of the next draw."""
        blocks = -(-count // 4)
        block = torch.arange(blocks, device=self.device, dtype=torch.int64).view(1, blocks)
        c0, c1 = torch.broadcast_tensors(block, self.index.view(-1, 1) & MASK32)
        counter = (c0, c1, torch.full_like(c0, self.draws & MASK32), torch.zeros_like(c0))
        self.draws += 1
        out = torch.stack(philox4x32(counter, self.key), dim=2)           # (samples, blocks, 4)
        return out.reshape(len(self), blocks * 4)[:, :count]

    def uniform(self, *shape) -> torch.Tensor:
        """(samples, *shape) uniforms in [0, 1), 24-bit resolution, in float32 (or a wider default dtype)."""
        n = math.prod(shape)
        u = (self.words(n) >> 8).to(torch.float32) * 2.0 ** -24
        return u.view(len(self), *shape).to(wide_default())

    def normal(self, *shape) -> torch.Tensor:
        """(samples, *shape) standard normals (Box-Muller on pairs of words), float32 (or a wider default)."""
        n = math.prod(shape)
        pairs = -(-n // 2)
        w = self.words(2 * pairs).view(len(self), pairs, 2).to(torch.float32)
        u1 = (w[..., 0] + 0.5) * 2.0 ** -32              # in (0, 1]
        angle = w[..., 1] * (2 * math.pi * 2.0 ** -32)
        radius = torch.sqrt(-2.0 * torch.log(u1))
        z = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=2).reshape(len(self), -1)
        return z[:, :n].view(len(self), *shape).to(wide_default())

    def integers(self, low: int, high: int) -> torch.Tensor:
        """(samples,) int64 uniform in [low, high)."""
        u = self.uniform(1).view(-1)
        return (low + torch.floor(u * (high - low)).to(torch.int64)).clamp_(max=high - 1)


def wide_default() -> torch.dtype:
    """float32, or float64 under torch.set_default_dtype(torch.float64) (tools/bench_train.py's fp64 check)."""
    return at_least_fp32(torch.get_default_dtype())


def chunk_indices(step_batch: int, chunk: int, num_chunks: int) -> range:
    """Global sample indices (within a step) handled by chunk `chunk` of `num_chunks`: a strided split,
    so that rank r's k-th local chunk is the same set of samples as chunk k * world + r of one process."""
    return range(chunk, step_batch, num_chunks)
