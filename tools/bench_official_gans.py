"""INR-GAN / INR-GAN-bil / CREPS generators at 256 px: ours against the official code (CPU, fp32). A benchmark.

    python tools/bench_official_gans.py --official-inrgan /tmp/inr-gan --official-creps /tmp/creps
    python tools/bench_official_gans.py                          # ours only (no official code imported)
    python tools/bench_official_gans.py --models creps --repeats 7
    python tools/bench_official_gans.py --memory                 # also peak RSS of big renders (ours)

Official side (reference inrgan_creps.md §5): `--official-inrgan` is an exported tree of universome/inr-gan
(repository root or its src/), `--official-creps` one of VinAIResearch/CREPS (`git archive HEAD | tar -x -C DIR`).
No file edits are needed: before importing, this tool installs the run-time compatibility shims the old code
needs (a `requests` stand-in when it is missing, numpy's removed `np.float` alias, `pkg_resources.parse_version`
from `packaging`). INR-GAN also needs omegaconf and PyYAML: `--offdeps DIR` (default /tmp/offdeps, filled by
`pip install --target /tmp/offdeps omegaconf pyyaml`) is put on sys.path only when an official dir is given.
Both repositories name their packages `training`, `torch_utils`, `dnnlib`: they are imported one after the other.

Models: the official 256 px generators as the official train.py builds them (INR-GAN: configs/inr-gan{,-bil}.yml,
cfg=auto, fp32; CREPS: --cfg=creps, channel_base/channel_max doubled), random weights from `--seed` plus random
bias offsets and a w_avg from the mapping (so no term is trivially zero), converted with our
`pixelfolder.convert.{inrgan,creps}.from_official(state_dict, init_kwargs)`. Agreement: max |ours - official| /
max |official| on one batch, psi 1 and 0.7. CREPS runs with force_fp32=True (block0/1 would be fp16 otherwise).

Timing: G(z) forward, eval, torch.no_grad(), fp32, one thread, batch `--batch` (CREPS also batch 1), one
warm-up call each (it fills the official INR-GAN Fourier cache as in normal use, and ours), then `--repeats`
timed rounds interleaved official, ours, official, ours, ...; medians and ratios in ms per image.
Without official dirs only ours is timed, from the registry presets (random weights).

Memory (`--memory`): peak RSS growth (ru_maxrss after - before, in a fresh subprocess per measurement) of
rendering ONE image of a 256 px model at 1024^2 and 2048^2 (CREPS, INR-GAN) and 1024^2 (INR-GAN-bil, not chunked),
fp32, no_grad; our `render_bytes` estimate is printed next to it. Columns: maxrss growth = ru_maxrss after -
before (a lower bound if building the model peaked higher than the render); peak - RSS before = ru_maxrss after -
the resident size just before the render (the render's own peak when it is the process's peak).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import types

import numpy as np
import torch

from pixelfolder.convert import creps as creps_convert
from pixelfolder.convert import inrgan as inrgan_convert
from pixelfolder.registry import create

RESOLUTION = 256
MODELS = ("inrgan", "inrgan_bil", "creps")
YML = {"inrgan": "inr-gan.yml", "inrgan_bil": "inr-gan-bil.yml"}
OFFICIAL_PACKAGES = ("training", "torch_utils", "dnnlib", "metrics", "legacy")
MEMORY_CASES = (("creps", 1024), ("creps", 2048), ("inrgan", 1024), ("inrgan", 2048), ("inrgan_bil", 1024))
REL_TOL = 1e-5


# ------------------------------------------------------------------------------------------------ official
def _shims() -> None:
    """Run-time compatibility of the 2021/2022 code with current Python, numpy and setuptools."""
    try:
        import requests  # noqa: F401
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")
    if "float" not in np.__dict__:
        np.float = float                     # removed alias, used as a default argument in inr-gan layers.py
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        from packaging.version import parse
        stub = types.ModuleType("pkg_resources")
        stub.parse_version = parse
        sys.modules["pkg_resources"] = stub


@contextlib.contextmanager
def official_code(path: str, offdeps: str | None):
    """sys.path with one official tree (and the scratch deps); its packages are dropped again on exit."""
    _shims()
    added = [p for p in (path, offdeps) if p and os.path.isdir(p)]
    sys.path[:0] = added
    try:
        yield
    finally:
        for p in added:
            sys.path.remove(p)
        for name in list(sys.modules):
            if name.split(".")[0] in OFFICIAL_PACKAGES:
                del sys.modules[name]


def _randomize(G: torch.nn.Module, seed: int) -> None:
    """Bias offsets (N(0, 0.1^2); N(0, 0.2^2) around 1 for modulation heads) and w_avg = mean mapping output."""
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("bias"):
                p.add_(torch.randn(p.shape, generator=gen) * (0.2 if ".affine." in name else 0.1))
        z = torch.randn(512, G.z_dim, generator=gen)
        G.mapping.w_avg.copy_(G.mapping(z, None)[:, 0].mean(0))


def official_inrgan(root: str, arch: str, seed: int):
    """(official G, init_kwargs) of configs/inr-gan{,-bil}.yml at 256 px, as train.py --cfg=auto builds it."""
    from omegaconf import OmegaConf
    from training.networks import Generator
    yml = os.path.join(root, "configs", YML[arch])
    if not os.path.isfile(yml):
        yml = os.path.join(root, "..", "configs", YML[arch])
    cfg = OmegaConf.to_container(OmegaConf.load(yml).generator)   # interpolations left unresolved, as train.py
    kwargs = {"z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": RESOLUTION, "img_channels": 3,
              "mapping_kwargs": {"num_layers": cfg.get("mapping_net_n_layers", 2)},
              "synthesis_kwargs": {"channel_base": int(cfg.get("fmaps", 0.5) * 32768), "channel_max": 512,
                                   "num_fp16_res": 0, "conv_clamp": None},
              "cfg": cfg}
    torch.manual_seed(seed)
    G = Generator(**kwargs).eval().requires_grad_(False)
    _randomize(G, seed)
    return G, kwargs


def official_creps(seed: int):
    """(official G, init_kwargs) of train.py --cfg=creps at 256 px (cbase 32768 and cmax 512, doubled)."""
    from training.networks_creps import Generator
    kwargs = {"z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": RESOLUTION, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 8}, "channel_base": 2 * 32768, "channel_max": 2 * 512}
    torch.manual_seed(seed)
    G = Generator(**kwargs).eval().requires_grad_(False)
    _randomize(G, seed)
    return G, kwargs


def inrgan_root(path: str) -> str:
    """The directory holding inr-gan's `training` package (the repository's src/ or the path itself)."""
    src = os.path.join(path, "src")
    return src if os.path.isdir(os.path.join(src, "training")) else path


# ------------------------------------------------------------------------------------------------- runners
def runner(G, official: bool, arch: str):
    """A no-argument-besides-z callable: G(z) with psi 1 the way each code base is called."""
    if not official:
        return lambda z, psi=1.0: G(z, truncation_psi=psi)
    extra = {"force_fp32": True} if arch == "creps" else {}
    return lambda z, psi=1.0: G(z, None, truncation_psi=psi, noise_mode="const", **extra)


def agreement(run_off, run_ours, z) -> dict:
    """max |ours - official| / max |official| for psi 1 and 0.7."""
    out = {}
    with torch.no_grad():
        for psi in (1.0, 0.7):
            ref, ours = run_off(z, psi), run_ours(z, psi)
            if ref.shape != ours.shape:
                raise SystemExit(f"shape mismatch: official {tuple(ref.shape)}, ours {tuple(ours.shape)}")
            out[psi] = ((ours - ref).abs().max() / ref.abs().max()).item(), ref.abs().max().item()
    return out


def time_interleaved(runs: dict, z: torch.Tensor, repeats: int) -> dict:
    """{name: [ms per image]}: one warm-up call each, then `repeats` rounds calling every entry in turn."""
    times = {name: [] for name in runs}
    with torch.no_grad():
        for fn in runs.values():
            fn(z)
        for _ in range(repeats):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                fn(z)
                times[name].append((time.perf_counter() - t0) * 1000 / z.shape[0])
    return times


def report_times(label: str, times: dict) -> None:
    med = {name: statistics.median(ts) for name, ts in times.items()}
    parts = [f"{name} {m:8.1f} ms/img (min {min(times[name]):.1f}, max {max(times[name]):.1f})"
             for name, m in med.items()]
    line = f"  {label:<18}" + " | ".join(parts)
    if "official" in med:
        line += f" | official/ours = {med['official'] / med['ours']:.2f}x"
    print(line, flush=True)


def latents(batch: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, 512, generator=torch.Generator().manual_seed(seed + 100))


def bench_model(arch: str, args) -> None:
    official_dir = args.official_creps if arch == "creps" else args.official_inrgan
    batches = (args.batch, 1) if arch == "creps" and args.batch != 1 else (args.batch,)
    print(f"{arch} @ {RESOLUTION} px", flush=True)
    if official_dir is None:
        G = create(f"{arch}-{RESOLUTION}", compute_w_avg=False).eval().requires_grad_(False)
        for b in batches:
            report_times(f"batch {b}", time_interleaved({"ours": runner(G, False, arch)}, latents(b, args.seed),
                                                         args.repeats))
        return
    root = inrgan_root(official_dir) if arch != "creps" else official_dir
    with official_code(root, args.offdeps):
        G_off, kwargs = official_creps(args.seed) if arch == "creps" else official_inrgan(root, arch, args.seed)
        sd = {k: v.detach().clone() for k, v in G_off.state_dict().items()}
        convert = creps_convert if arch == "creps" else inrgan_convert
        G = convert.from_official(sd, kwargs).requires_grad_(False)
        run_off, run_ours = runner(G_off, True, arch), runner(G, False, arch)
        for psi, (rel, scale) in agreement(run_off, run_ours, latents(args.batch, args.seed)).items():
            verdict = "ok" if rel <= REL_TOL else f"FAIL (> {REL_TOL:g})"
            print(f"  equality psi={psi}: max|ours-official|/max|official| = {rel:.2e} "
                  f"(max|official| {scale:.3g}) {verdict}", flush=True)
        for b in batches:
            times = time_interleaved({"official": run_off, "ours": run_ours}, latents(b, args.seed), args.repeats)
            report_times(f"batch {b}", times)


# --------------------------------------------------------------------------------------------------- memory
def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024     # Linux reports KiB


def rss_bytes() -> int:
    """Current resident set size (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(arch: str, size: int, seed: int) -> dict:
    """Peak RSS growth of one G(z, size=size) render (run in a fresh process)."""
    torch.set_num_threads(1)
    G = create(f"{arch}-{RESOLUTION}", compute_w_avg=False).eval().requires_grad_(False)
    z = latents(1, seed)
    gc.collect()
    before, current = max_rss_bytes(), rss_bytes()
    with torch.no_grad():
        t0 = time.perf_counter()
        img = G(z, size=size)
        seconds = time.perf_counter() - t0
    after = max_rss_bytes()
    assert img.shape == (1, 3, size, size)
    return {"arch": arch, "size": size, "before": before, "current": current, "peak_growth": after - before,
            "above_current": after - current, "seconds": seconds,
            "estimate": G.render_bytes(1, size)}


def memory_run(arch: str, size: int, seed: int) -> dict | str:
    """memory_child's record from a fresh interpreter, or the error line."""
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", f"{arch}:{size}", "--seed", str(seed)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode:
        return (out.stderr.strip().splitlines() or ["no output"])[-1]
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_memory(args) -> None:
    mib = 1 << 20
    print(f"memory: one image from the {RESOLUTION} px models (fp32, no_grad, fresh process each, "
          f"{args.memory_repeats} run(s); growth shown as max [min])", flush=True)
    print(f"  {'model':<11}{'size':>6}{'maxrss growth':>20}{'peak - RSS before':>22}{'render_bytes est.':>19}"
          f"{'RSS before':>12}{'time':>8}", flush=True)
    for arch, size in MEMORY_CASES:
        runs = [memory_run(arch, size, args.seed) for _ in range(args.memory_repeats)]
        bad = [r for r in runs if isinstance(r, str)]
        if bad:
            print(f"  {arch:<11}{size:>6}  failed: {bad[0]}", flush=True)
            continue
        grow = sorted(r["peak_growth"] / mib for r in runs)
        above = sorted(r["above_current"] / mib for r in runs)
        r = runs[0]
        print(f"  {arch:<11}{size:>6}{grow[-1]:>10.0f} [{grow[0]:>4.0f}] MiB{above[-1]:>12.0f} [{above[0]:>4.0f}] MiB"
              f"{r['estimate'] / mib:>15.0f} MiB{r['current'] / mib:>8.0f} MiB"
              f"{statistics.median(x['seconds'] for x in runs):>7.1f}s", flush=True)


# ----------------------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official-inrgan", help="exported universome/inr-gan tree (root or src/)")
    p.add_argument("--official-creps", help="exported VinAIResearch/CREPS tree")
    p.add_argument("--offdeps", default="/tmp/offdeps", help="scratch site dir with omegaconf + PyYAML")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--batch", type=int, default=4, help="timing batch (CREPS is also timed at batch 1)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds after one warm-up")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory", action="store_true", help="also measure big-render peak RSS (subprocesses)")
    p.add_argument("--memory-repeats", type=int, default=1, help="fresh processes per memory case")
    p.add_argument("--skip-speed", action="store_true", help="only the --memory table")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.memory_child:
        arch, size = args.memory_child.split(":")
        print(json.dumps(memory_child(arch, int(size), args.seed)))
        return
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if not args.skip_speed:
        for arch in args.models:
            bench_model(arch, args)
    if args.memory:
        bench_memory(args)
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
