"""An infinite, deterministic, rank-partitioned and resumable stream of dataset indices."""
from __future__ import annotations

import torch

from ..errors import PixelfolderError

EPOCH_SEED_STRIDE = 1_000_003


class InfiniteSampler(torch.utils.data.Sampler):
    """Epoch e is torch.randperm(size) from a generator seeded with seed * 1_000_003 + e; the global stream is
    the concatenation of the epochs. Rank r gets global samples r, r + world_size, r + 2 * world_size, ...
    (global sample k goes to rank k % world_size), and `start` skips that many of this rank's samples, so a
    run resumed with start = samples already drawn by this rank continues exactly where it stopped.
    """

    def __init__(self, size: int, seed: int = 0, rank: int = 0, world_size: int = 1, start: int = 0):
        if size < 1:
            raise PixelfolderError(f"InfiniteSampler needs a non-empty dataset (size {size})")
        if world_size < 1 or not 0 <= rank < world_size:
            raise PixelfolderError(f"need 0 <= rank < world_size (rank {rank}, world_size {world_size})")
        if seed < 0 or start < 0:
            raise PixelfolderError("seed and start must be >= 0")
        self.size, self.seed, self.rank, self.world_size, self.start = size, seed, rank, world_size, start

    def epoch_permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * EPOCH_SEED_STRIDE + epoch)
        return torch.randperm(self.size, generator=g)

    def __iter__(self):
        k = self.start * self.world_size + self.rank
        epoch, perm = -1, None
        while True:
            e, j = divmod(k, self.size)
            if e != epoch:
                epoch, perm = e, self.epoch_permutation(e).tolist()
            yield perm[j]
            k += self.world_size
