"""torchrun-aware process group helpers: gloo on CPU, nccl on GPU, and plain single-process fallbacks."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device_pref: str = "auto") -> tuple[Dist, torch.device]:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); one process when absent."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device_pref == "auto" else device_pref.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        from ..errors import PixelfolderError
        raise PixelfolderError(f"--device {device_pref}: no CUDA device is available (use --device cpu or auto)")
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank, world, local), device


def all_reduce_sum_(tensors: list[torch.Tensor]) -> None:
    """In-place sum over processes of a list of tensors (one flat buffer, one collective)."""
    if not (dist.is_available() and dist.is_initialized()) or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def reduce_grads_(params: list[torch.nn.Parameter]) -> None:
    """Sum gradients over processes; parameters without a gradient count as zero (and get one)."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    all_reduce_sum_([p.grad for p in params])


def any_flag(flag: bool, device) -> bool:
    """True when any process raised the flag (e.g. SIGTERM seen on one rank)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
