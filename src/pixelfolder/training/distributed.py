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


def launched_by_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "MASTER_ADDR" in os.environ


def init(device_pref: str = "auto") -> tuple[Dist, torch.device]:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); one process when absent. Under torchrun a
    process group is made even for one process (so `--nproc_per_node 1` runs the nccl/gloo path it will run
    with more); each process takes GPU LOCAL_RANK. Outside torchrun `--device cuda:N` takes GPU N."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device_pref == "auto" else device_pref.startswith("cuda")
    from ..errors import PixelfolderError
    if use_cuda and not torch.cuda.is_available():
        raise PixelfolderError(f"--device {device_pref}: no CUDA device is available (use --device cpu or auto)")
    index = local
    if use_cuda and ":" in device_pref and not launched_by_torchrun():
        index = torch.device(device_pref).index
        if index >= torch.cuda.device_count():
            raise PixelfolderError(f"--device {device_pref}: this machine has {torch.cuda.device_count()} CUDA "
                                   f"device(s), 0..{torch.cuda.device_count() - 1}")
    device = torch.device("cuda", index) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if (world > 1 or launched_by_torchrun()) and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank, world, local), device


def is_distributed() -> bool:
    """More than one process in a process group (one process under torchrun has a group but nothing to sum)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum_(tensors: list[torch.Tensor]) -> None:
    """In-place sum over processes of a list of tensors (one flat buffer, one collective)."""
    if not is_distributed() or not tensors:
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
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
