"""`pixelfolder bench`: parameters, GMACs, latency, throughput, achieved GFLOP/s and peak memory.

Each model is measured in a fresh subprocess, so its peak memory is its own and one model's allocator
state does not slow the next. This is a benchmark: it measures and prints, it asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from ..errors import PixelfolderError
from .common import NETWORK_HELP, add_params_option, positive_int, writable_dir

DTYPES = ("fp32", "bf16", "fp16")


def torch_dtype(name: str):
    import torch
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure parameters, GMACs, speed and memory of generators")
    p.add_argument("--models", default="pixelfolder,cips_skip,stylegan2",
                   help="comma-separated architectures (at --resolution) or networks: " + NETWORK_HELP)
    add_params_option(p)
    p.add_argument("--resolution", type=positive_int, default=256, help="resolution for architecture names (default 256)")
    p.add_argument("--batch", type=int, default=4, help="images per forward (default 4)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--dtype", choices=DTYPES, default="fp32", help="fp32, or autocast to bf16/fp16")
    p.add_argument("--compile", action="store_true", help="torch.compile the generator first (slow warm-up)")
    p.add_argument("--impl", choices=["auto", "fused", "nonfused"], default="auto",
                   help="modulated-conv form (fused = the official grouped conv)")
    p.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory layout")
    p.add_argument("--repeats", type=int, default=5, help="timed forwards per model (median reported)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--json", help="also write the results as JSON to this file")
    p.add_argument("--single", help=argparse.SUPPRESS)   # internal: measure one model in this process
    p.set_defaults(run=run)


def resolve_spec(spec: str, resolution: int) -> str:
    """A preset name, or the local path of a network (URLs and pretrained names are downloaded here, once)."""
    from .. import registry
    from ..networks import resolve
    if spec in registry.list_architectures() and spec not in registry.list_models():
        name = f"{spec}-{resolution}"
        if name in registry.list_models():
            return name
        presets = registry.architecture(spec).presets
        raise PixelfolderError(f"{spec} has no preset at {resolution} px; its presets: {', '.join(presets)}")
    return str(resolve(spec))


def measure_likelihood(model, spec: str, args) -> dict:
    """Likelihood evaluation (img/s, eval-mode BatchNorm) and exact sampling (s/img) of a likelihood model."""
    import torch
    from ..metrics.cost import median, peak_rss_mb, time_call
    from ..utils import count_parameters
    if args.dtype not in ("fp32", "bf16"):
        raise PixelfolderError(f"likelihood models evaluate in fp32 or bf16, not {args.dtype}")
    device = torch.device(args.device)
    x = torch.randint(0, 256, (args.batch, 3, model.config.height, model.config.width), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0)).to(device)
    net = model if args.no_channels_last else model.to(memory_format=torch.channels_last)

    def evaluate(precision=args.dtype):
        with torch.no_grad():
            return net.nll_bits(x, precision=precision)
    times = time_call(evaluate, repeats=args.repeats)
    sample_times = time_call(lambda: net.sample([0], batch_size=1, device=device), repeats=max(1, args.repeats // 2),
                             warmup=0)
    sec = median(times)
    bits = evaluate()
    bits_fp32 = bits if args.dtype == "fp32" else evaluate("fp32")
    return {"model": spec, "arch": model.arch, "kind": model.kind, "resolution": model.resolution,
            "batch": args.batch, "dtype": args.dtype, "threads": args.threads, "params": count_parameters(model),
            "ms_per_img": sec / args.batch * 1e3, "img_per_s": args.batch / sec, "times_s": times,
            "bpd_random_images": float(bits.sum() / x[0].numel() / args.batch),
            "bpd_rel_diff_vs_fp32": float((bits - bits_fp32).abs().max() / bits_fp32.abs().max()),
            "sample_s_per_img": median(sample_times), "sample_times_s": sample_times, "peak_rss_mb": peak_rss_mb()}


def measure(spec: str, args) -> dict:
    """Everything about one model, in this process."""
    import torch
    from ..layers import switch
    from .common import open_network
    device = torch.device(args.device)
    G = open_network(spec, kind=tuple(MEASURES), verbose=False, params=args.params).to(device).eval()
    with switch(G, impl=args.impl):         # the modulated-conv form of every StyledConv / ToRGB (if any)
        return MEASURES[G.kind](G, spec, args)


def measure_generator(G, spec: str, args) -> dict:
    import torch
    from ..metrics.cost import generator_macs, median, peak_rss_mb, time_call
    from ..utils import count_parameters
    device = torch.device(args.device)
    macs = generator_macs(G)
    official_macs = G.official_macs() if hasattr(G, "official_macs") else None
    z = torch.randn(args.batch, G.z_dim, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        reference = G(z).float()
    net = G if args.no_channels_last else G.to(memory_format=torch.channels_last)
    if args.compile:
        net = torch.compile(net)
    autocast = torch.autocast(device.type, dtype=torch_dtype(args.dtype), enabled=args.dtype != "fp32")

    def forward():
        with torch.no_grad(), autocast:
            out = net(z)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    rss_before = peak_rss_mb()
    times = time_call(forward, repeats=args.repeats, warmup=3 if args.compile else 1)
    out = forward().float()
    sec = median(times)
    err = ((out - reference).norm() / reference.norm()).item()
    return {
        "model": spec, "arch": G.arch, "kind": G.kind, "resolution": G.resolution, "batch": args.batch,
        "dtype": args.dtype, "threads": args.threads, "impl": args.impl, "compile": args.compile,
        "channels_last": not args.no_channels_last,
        "params": count_parameters(G), "gmacs": (official_macs or macs["total"]) / 1e9,
        "gmacs_executed": macs["total"] / 1e9,
        "gmacs_transposed_at_output": (macs["total"] + 3 * macs["transposed"]) / 1e9 if macs["transposed"] else None,
        "ms_per_img": sec / args.batch * 1e3, "img_per_s": args.batch / sec,
        "gflops_per_s": 2 * (official_macs or macs["total"]) * args.batch / sec / 1e9,
        "times_s": times, "rel_l2_vs_fp32": err,
        "max_abs_diff_vs_fp32": (out - reference).abs().max().item(), "max_abs_fp32": reference.abs().max().item(),
        "peak_rss_mb": peak_rss_mb(), "rss_before_timing_mb": rss_before,
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else None,
    }


def run_single_subprocess(spec: str, args) -> dict:
    cmd = [sys.executable, "-m", "pixelfolder.cli.main", "bench", "--single", spec,
           "--batch", str(args.batch), "--threads", str(args.threads), "--dtype", args.dtype,
           "--impl", args.impl, "--repeats", str(args.repeats), "--device", args.device]
    cmd += ["--compile"] if args.compile else []
    cmd += ["--params", args.params] if args.params else []
    cmd += ["--no-channels-last"] if args.no_channels_last else []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PixelfolderError(f"benchmark of {spec} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def likelihood_line(spec: str, r: dict, peak: float) -> str:
    return (f"{spec:<18} {r['params'] / 1e6:9.3f} likelihood {r['resolution']} px: {r['ms_per_img']:9.1f} ms/img "
            f"{r['img_per_s']:7.2f} img/s ({r['dtype']}, eval-mode BN, batch {r['batch']}; max bpd diff vs fp32 "
            f"{r['bpd_rel_diff_vs_fp32']:.1e} rel.); exact sampling "
            f"{r['sample_s_per_img']:.2f} s/img; peak {r['peak_rss_mb']:.0f} MB")


def generator_line(spec: str, r: dict, peak: float) -> str:
    paper = f"{r['gmacs_transposed_at_output']:8.2f}" if r["gmacs_transposed_at_output"] else f"{'':>8}"
    return (f"{spec:<18} {r['params'] / 1e6:9.3f} {r['gmacs']:8.2f} {paper} {r['ms_per_img']:9.1f} "
            f"{r['img_per_s']:7.2f} {r['gflops_per_s']:8.1f} {100 * r['gflops_per_s'] / peak:5.0f}% "
            f"{r['peak_rss_mb']:8.0f} {r['rel_l2_vs_fp32']:8.1e}")


# what is measured and printed per registry kind (a likelihood model is evaluated and sampled, not generated)
MEASURES = {"generator": measure_generator, "likelihood": measure_likelihood}
ROW_LINES = {"generator": generator_line, "likelihood": likelihood_line}


def run(args) -> int:
    import torch
    from .. import registry
    from ..metrics.cost import matmul_peak_gflops, num_threads
    if args.batch < 1 or args.threads < 1 or args.repeats < 1:
        raise PixelfolderError("--batch, --threads and --repeats must be >= 1")
    if args.single:
        with num_threads(args.threads):
            print(json.dumps(measure(args.single, args)))
        return 0
    if args.json:
        writable_dir(Path(args.json).parent if str(Path(args.json).parent) else ".")
    specs = [resolve_spec(s.strip(), args.resolution) for s in args.models.split(",") if s.strip()]
    if args.dtype == "fp16" and set(specs) & set(registry.list_models("likelihood")):
        raise PixelfolderError("likelihood models are benchmarked in fp32 or bf16, not fp16")
    with num_threads(args.threads):
        peak = matmul_peak_gflops(torch.float32 if args.dtype == "fp32" else torch_dtype(args.dtype))
    print(f"peak ({args.dtype}, {args.threads} thread(s), best of a matmul and a oneDNN conv): {peak:.0f} GFLOP/s; batch {args.batch}, "
          f"impl {args.impl}, {'NCHW' if args.no_channels_last else 'channels_last'}"
          f"{', torch.compile' if args.compile else ''}")
    header = (f"{'model':<18} {'params M':>9} {'GMACs':>8} {'GMACs*':>8} {'ms/img':>9} {'img/s':>7} "
              f"{'GFLOP/s':>8} {'%peak':>6} {'peak MB':>8} {'relL2':>8}")
    print(header)
    rows = []
    for spec in specs:
        r = run_single_subprocess(spec, args)
        r["matmul_peak_gflops"] = peak
        rows.append(r)
        print(ROW_LINES[r["kind"]](spec, r, peak))
    for r in rows:
        if r.get("gmacs_executed") and abs(r["gmacs_executed"] - r["gmacs"]) > 0.005 * r["gmacs"]:
            print(f"{r['model']}: our code executes {r['gmacs_executed']:.2f} GMACs per image "
                  f"(the official computation: {r['gmacs']:.2f})")
    print("GMACs = MACs of the official computation per image (INR-GAN/CREPS: counted as FlopCounterMode counts the "
          "official code; ours may do fewer); GMACs* = StyleGAN2's transposed convs counted at output resolution "
          "(the paper's convention); relL2 = relative L2 error against this model's own fp32 eager output")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0
