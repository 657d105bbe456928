"""Gradient reduction across processes: one flattened all-reduce per phase (the training loop's) against torch DDP's
bucketed all-reduce overlapped with the backward pass. A benchmark, 2 gloo processes on this machine.

    python tools/bench_allreduce.py                       # stylegan2_d at 64 px, official widths, batch 2 per process
    python tools/bench_allreduce.py --resolution 32 --repeats 7

Each process runs the same D step (forward on its images, logistic-style loss, backward) and then:
`flat`: `distributed.reduce_grads_` (every gradient in one buffer, one all_reduce, copied back; NVlabs' way);
`ddp`: the D wrapped in DistributedDataParallel (25 MB buckets, all-reduce started as buckets fill during the
backward). Reported: median seconds per step (forward + backward + reduction) and of the reduction alone (flat), and
that both give the same summed gradients. One thread per process.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank: int, args, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from pixelfolder.registry import create
    from pixelfolder.training.distributed import reduce_grads_
    torch.manual_seed(0)
    D = create("stylegan2_d", resolution=args.resolution).train()
    images = torch.randn(args.batch, 3, args.resolution, args.resolution,
                         generator=torch.Generator().manual_seed(rank))
    ddp = torch.nn.parallel.DistributedDataParallel(D)
    params = list(D.parameters())

    def step(mode: str) -> tuple[float, float]:
        for p in params:
            p.grad = None
        dist.barrier()
        t0 = time.perf_counter()
        net = ddp if mode == "ddp" else D
        torch.nn.functional.softplus(net(images)).mean().backward()
        t1 = time.perf_counter()
        if mode == "flat":
            reduce_grads_(params)
        t2 = time.perf_counter()
        return t2 - t0, t2 - t1

    times = {"flat": [], "ddp": []}
    for i in range(args.repeats + 1):
        for mode in ("flat", "ddp"):
            t = step(mode)
            if i:
                times[mode].append(t)
    step("flat")
    flat_grads = torch.cat([p.grad.flatten() for p in params]).clone()
    step("ddp")
    ddp_grads = torch.cat([p.grad.flatten() for p in params])
    # DDP averages, the loop sums (its losses are already divided by the number of chunks)
    agree = ((ddp_grads * 2 - flat_grads).norm() / flat_grads.norm()).item()
    if rank == 0:
        results.update({m: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
                        for m, ts in times.items()}, agree=agree,
                       megabytes=sum(p.numel() for p in params) * 4 / 2 ** 20)
    dist.destroy_process_group()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch", type=int, default=2, help="images per process")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(args, port, results), nprocs=2, join=True)
        r = dict(results)
    print(f"stylegan2_d-{args.resolution}: {r['megabytes']:.0f} MB of gradients, batch {args.batch} per process, "
          f"2 gloo processes, 1 thread each, median of {args.repeats}")
    flat, ddp = r["flat"], r["ddp"]
    print(f"  flat (one all-reduce per phase): {flat[0]:.3f} s per step, of which the all-reduce {flat[1]:.3f} s")
    print(f"  DDP (bucketed, overlapped):      {ddp[0]:.3f} s per step")
    print(f"  DDP / flat: {ddp[0] / flat[0]:.2f}; summed gradients agree to {r['agree']:.1e} (relative L2)")


if __name__ == "__main__":
    main()
