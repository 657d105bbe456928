"""Model cost: parameters, forward MACs (torch.utils.flop_counter), latency, throughput and peak memory."""
from __future__ import annotations

import contextlib
import resource
import statistics
import sys
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from ..utils import count_parameters

__all__ = ["count_parameters", "count_macs", "generator_macs", "generator_ms_per_image", "time_call",
           "matmul_peak_gflops", "peak_rss_mb"]


class _TransposedConvFlops(TorchDispatchMode):
    """Sums the FLOPs of transposed convolutions (counted at input resolution by FlopCounterMode)."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten.convolution.default and args[6]:
            self.flops += conv_flop_count(args[0].shape, args[1].shape, out.shape, transposed=True)
        return out


def count_macs(fn, *args, **kwargs) -> dict:
    """{'total': MACs, 'transposed': MACs of transposed convs} of one call (MACs = FLOPs / 2).

    Elementwise ops (modulation, noise, activations, sin), reshapes and grid_sample are not counted,
    as in the reference tables. Works on the meta device.
    """
    transposed = _TransposedConvFlops()
    with FlopCounterMode(display=False) as counter, transposed:
        fn(*args, **kwargs)
    return {"total": counter.get_total_flops() / 2, "transposed": transposed.flops / 2}


def generator_macs(G) -> dict:
    """count_macs of one single-image forward of G, on a meta-device copy (no memory, no arithmetic)."""
    with torch.device("meta"):
        meta = type(G)(G.config).to("meta").eval()
    with torch.no_grad():
        return count_macs(meta, torch.zeros(1, G.z_dim, device="meta"))


def generator_ms_per_image(G, *, batch: int = 4, repeats: int = 3, dtype=None) -> float:
    """Median wall-clock ms per image of G(z) at `batch` (one warm-up call), optionally under autocast(dtype)."""
    device = next(G.parameters()).device
    z = torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(0)).to(device)
    autocast = torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def forward():
        with torch.no_grad(), autocast:
            G(z)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return median(time_call(forward, repeats=repeats)) / batch * 1e3


def time_call(fn, *, repeats: int = 5, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def matmul_peak_gflops(dtype=torch.float32, n: int = 2048, repeats: int = 5) -> float:
    """Best achieved GFLOP/s of a dense n x n matmul and of a 3x3 channels_last convolution (oneDNN), on the CPU
    with the current thread count. The larger of the two is the practical ceiling (BLAS libraries differ by vendor).
    """
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    mm = 2 * n ** 3 / min(time_call(lambda: a @ b, repeats=repeats))
    x = torch.randn(4, 256, 64, 64, dtype=dtype).to(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3, dtype=dtype).to(memory_format=torch.channels_last)
    conv = 2 * 4 * 256 * 256 * 9 * 64 * 64 / min(time_call(lambda: torch.nn.functional.conv2d(x, w, padding=1),
                                                               repeats=repeats))
    return max(mm, conv) / 1e9


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, MB."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2 ** 20 if sys.platform == "darwin" else r / 1024


def median(values) -> float:
    return float(statistics.median(values))


@contextlib.contextmanager
def num_threads(n: int | None):
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
