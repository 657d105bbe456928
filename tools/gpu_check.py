"""One-command check of pixelfolder on a CUDA GPU: device-vs-CPU equality, autocast error, compile, training, speed.

    python tools/gpu_check.py                          # every check on the first GPU (under 8 minutes on one GPU)
    python tools/gpu_check.py --json /tmp/gpu.json     # where the rows go (default ./gpu_check.json)
    python tools/gpu_check.py --all-official           # equality over every official preset, not one per architecture
    python tools/gpu_check.py --checks equal,compile   # only some checks (names as in the table's first column)
    python tools/gpu_check.py --device cpu --smoke --no-compile      # the seconds-long CPU run the tests use

Checks, one table row each (check, name, result, status, seconds); status is pass / fail / info / skip / error:

1. equal: each architecture's official preset nearest 256 px (`--all-official`: every official preset; `--smoke`:
   its tiny preset) built on the CPU from torch.manual_seed(0), run once on the CPU and once moved to the device,
   fp32 with TF32 off, const noise: max|device - cpu| / max|cpu| <= 1e-4. Generators: G.sample(seeds 0.., batch_size,
   device); discriminators: D(images); likelihood models: per-level NLL of uint8 images. Batch 2 (1 above 256 px).
2. autocast: relative L2 of bf16 (and on CUDA fp16) autocast output against fp32, each generator architecture (info).
3. compile: torch.compile(PixelFolder) against eager, within 1e-4 relative; the first call's seconds (`--no-compile`
   skips it).
4. train: one step of every trainable architecture's tiny preset through the training loop (batch 4, on a small
   generated image folder, `--device` passed through): the step ran and every parameter is finite.
5. torchrun: `python -m torch.distributed.run --nproc_per_node 1 -m pixelfolder train ...` exits 0, and a
   one-process all_reduce through init_process_group (nccl on CUDA, gloo on CPU) sums right (`--no-torchrun` skips).
6. speed: generator img/s at 256 px, batch 32, fp32 and bf16 autocast (eval, no_grad, warm-up, then timed repeats
   with device synchronisation), next to the PixelFolder paper's Table 1; `--smoke`: tiny presets, batch 4.
7. trainspd: kimg/s of pixelfolder-256 at batch 32 through the training loop (one whole lazy-regularisation period of
   steps after the first step, which is not timed), and
   the peak CUDA memory of one pixelfolder-1024 training step at batch 4; `--smoke`: the tiny preset at batch 4,
   and on the CPU the process's peak RSS instead.

The exit status is 1 when any row fails or errors (an error's first line is its result; the other checks still run).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pixelfolder import registry

REL_TOL = 1e-4
SPEED_PRESETS = ("pixelfolder-256", "stylegan2-256", "cips_skip-256", "inrgan-256", "creps-256")
PAPER_TABLE1 = {"pixelfolder": 77.7, "stylegan2": 44.1, "cips_skip": 11.0, "inrgan": 84.6}   # img/s
PAPER_LABEL = "PixelFolder paper Table 1 (V100?)"
INRGAN_README = "INR-GAN README V100: see universome/inr-gan README"


@dataclasses.dataclass
class Row:
    check: str
    name: str
    result: str
    status: str
    seconds: float
    value: float | None = None


class Checker:
    """Runs check items, one Row each; an exception becomes an 'error' row with its first line."""

    def __init__(self, device: torch.device):
        self.device, self.rows = device, []

    def run(self, check: str, name: str, fn) -> Row:
        start = time.perf_counter()
        try:
            sync(self.device)
            start = time.perf_counter()
            result, status, value = fn()
            sync(self.device)
        except Exception as e:   # noqa: BLE001 - one check's failure must not stop the others
            result, status, value = first_line(e), "error", None
        row = Row(check, name, result, status, time.perf_counter() - start, value)
        free(self.device)
        self.rows.append(row)
        print(f"[{row.status}] {row.check}: {row.name}: {row.result} ({row.seconds:.1f} s)", file=sys.stderr,
              flush=True)
        return row

    def skip(self, check: str, name: str, why: str) -> None:
        self.run(check, name, lambda: (why, "skip", None))


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:200]


def free(device: torch.device) -> None:
    """Drop the last check's models before the next one (and CUDA's cached blocks)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rel_max(out: torch.Tensor, ref: torch.Tensor) -> float:
    """max|out - ref| / max|ref| (shapes must agree)."""
    if out.shape != ref.shape:
        raise ValueError(f"shape {tuple(out.shape)} != {tuple(ref.shape)}")
    return ((out.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-30)).item()


def rel_l2(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30)).item()


def verdict(err: float, tol: float = REL_TOL) -> tuple[str, str, float]:
    return f"max rel diff {err:.2e} (tol {tol:g})", "pass" if err <= tol else "fail", err


# ------------------------------------------------------------------------------------------------ 1. equality
def resolution_of(preset: str) -> int:
    _, config = registry.resolve_config(preset)
    return int(getattr(config, "resolution", None) or config.height)


def nearest_official(arch: str) -> str:
    """The architecture's official preset nearest 256 px."""
    official = [p for p in registry.architecture(arch).presets if registry.preset(p).official]
    return min(official, key=lambda p: abs(math.log2(resolution_of(p) / 256)))


def tiny(arch: str) -> str:
    (name,) = registry.architecture(arch).tiny_presets
    return name


def equality_presets(smoke: bool, all_official: bool) -> list[str]:
    """Each architecture's tiny preset (smoke), every official preset, or its official preset nearest 256 px."""
    if smoke:
        return [tiny(a.name) for a in registry.architectures()]
    if all_official:
        return [p for a in registry.architectures() for p in a.presets if registry.preset(p).official]
    return [nearest_official(a.name) for a in registry.architectures()]


def model_inputs(model, batch: int):
    """Seeded inputs of one kind: seeds for generators, images for D, uint8 images for likelihood models."""
    if model.kind == "generator":
        return list(range(batch))
    g = torch.Generator().manual_seed(1)
    if model.kind == "likelihood":
        return torch.randint(0, 256, (batch, 3, model.config.height, model.config.width), dtype=torch.uint8,
                             generator=g)
    return torch.rand(batch, 3, model.resolution, model.resolution, generator=g) * 2 - 1


@torch.no_grad()
def forward(model, inputs, device: torch.device) -> torch.Tensor:
    """The model's output on `device`, back on the CPU in float32."""
    if model.kind == "generator":
        return model.sample(inputs, batch_size=len(inputs), device=device)
    return model(inputs.to(device)).float().cpu()


def device_vs_cpu(preset: str, device: torch.device, inject: bool):
    """Max relative difference of the preset's output on `device` against the CPU (same weights and inputs)."""
    batch = 2 if resolution_of(preset) <= 256 else 1
    torch.manual_seed(0)
    model = registry.create(preset).eval()
    inputs = model_inputs(model, batch)
    ref = forward(model, inputs, torch.device("cpu"))
    out = forward(model.to(device), inputs, device)
    del model
    if inject:                      # --inject-error: a wrong device result, to prove the comparison can fail
        out = out + 1e-3 * ref.abs().max()
    if not torch.isfinite(ref).all():
        return "the CPU reference is not finite", "fail", None
    text, status, err = verdict(rel_max(out, ref))
    return f"{text}, batch {batch}", status, err


def check_equality(c: Checker, args, tmp: Path) -> None:
    for preset in equality_presets(args.smoke, args.all_official):
        check = lambda p=preset: device_vs_cpu(p, c.device, args.inject_error)  # noqa: E731
        c.run("equal", f"{preset} {c.device.type} vs cpu", check)


# ------------------------------------------------------------------------------------------------ 2. autocast
def generator_preset(arch: str, smoke: bool) -> str:
    return tiny(arch) if smoke else nearest_official(arch)


def seeded_z(G, batch: int, device) -> torch.Tensor:
    return torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(2)).to(device)


def seeded_generator(preset: str, device) -> torch.nn.Module:
    """The preset built from torch.manual_seed(0), in eval mode, on `device`."""
    torch.manual_seed(0)
    return registry.create(preset, device=device).eval()


def autocast_error(preset: str, device, dtype) -> tuple[str, str, float]:
    G = seeded_generator(preset, device)
    z = seeded_z(G, 2, device)
    with torch.no_grad():
        ref = G(z)
        with torch.autocast(device.type, dtype=dtype):
            out = G(z)
    if not torch.isfinite(out).all():
        return "NaN/Inf in the autocast output", "info", None
    err = rel_l2(out, ref)
    return f"rel L2 vs fp32 {err:.2e}", "info", err


def check_autocast(c: Checker, args, tmp: Path) -> None:
    dtypes = {"bf16": torch.bfloat16, **({"fp16": torch.float16} if c.device.type == "cuda" else {})}
    for arch in registry.list_architectures("generator"):
        preset = generator_preset(arch, args.smoke)
        for name, dtype in dtypes.items():
            c.run("autocast", f"{preset} {name}", lambda p=preset, d=dtype: autocast_error(p, c.device, d))


# ------------------------------------------------------------------------------------------------- 3. compile
def compiled_vs_eager(preset: str, device: torch.device):
    G = seeded_generator(preset, device)
    z = seeded_z(G, 2, device)
    with torch.no_grad():
        eager = G(z)
        compiled = torch.compile(G)
        start = time.perf_counter()
        out = compiled(z)
        sync(device)
        seconds = time.perf_counter() - start
    text, status, err = verdict(rel_max(out, eager))
    return f"{text}, compile + first call {seconds:.1f} s", status, err


def check_compile(c: Checker, args, tmp: Path) -> None:
    preset = "pixelfolder-tiny" if args.smoke else "pixelfolder-256"
    if args.no_compile:
        c.skip("compile", preset, "skipped: --no-compile")
        return
    c.run("compile", f"{preset} compiled vs eager", lambda: compiled_vs_eager(preset, c.device))


# ------------------------------------------------------------------------------------------------ 4. training
def image_folder(path: Path, size: int, n: int = 16, seed: int = 0) -> Path:
    """n smooth random RGB PNGs of size x size px in `path`."""
    from pixelfolder.data.images import write_smooth_folder
    return write_smooth_folder(path, n=n, size=size, seed=seed)


def train(preset: str, data: Path, run_dir: Path, device, *, batch: int, steps: int, workers: int = 0):
    """(TrainingResult, stats records) of `steps` steps of the real training loop."""
    from pixelfolder.training.loop import training_loop
    from pixelfolder.training.options import TrainOptions, resolve
    opts = resolve(TrainOptions(preset=preset, data=str(data), run_dir=str(run_dir), batch=batch,
                                kimg=batch * steps / 1000, snap_kimg=1e6, device=str(device), workers=workers,
                                grid_seeds=4))
    with contextlib.redirect_stdout(sys.stderr):     # the loop's progress lines: stdout keeps the one table
        result = training_loop(opts)
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    return result, stats


def train_one_step(preset: str, data: Path, tmp: Path, device):
    result, stats = train(preset, data, tmp / preset, device, batch=4, steps=1)
    nets = [n for n in (result.G, result.D, result.G_ema) if n is not None]
    finite = all(torch.isfinite(p).all() for n in nets for p in n.parameters())
    losses = ", ".join(f"{k} {v:.3g}" for k, v in stats[-1].items() if k.startswith(("loss", "nll")))
    ok = result.step == 1 and finite
    return f"step {result.step}, {losses}" + ("" if finite else ", NON-FINITE parameters"), \
        "pass" if ok else "fail", float(result.step)


def check_training(c: Checker, args, tmp: Path) -> None:
    data = image_folder(tmp / "data32", 32)
    for arch in registry.trainable_architectures():
        (preset,) = registry.architecture(arch).tiny_presets
        c.run("train", f"{preset} 1 step", lambda p=preset: train_one_step(p, data, tmp / "train", c.device))


# ------------------------------------------------------------------------------------------------ 5. torchrun
ALL_REDUCE = """\
import torch, torch.distributed as dist
from pixelfolder.training.distributed import all_reduce_sum_
cuda = {cuda}
if cuda:
    torch.cuda.set_device({index})
dist.init_process_group("nccl" if cuda else "gloo")
t = torch.arange(4.0, device="cuda" if cuda else "cpu")
all_reduce_sum_([t])
assert t.tolist() == [0.0, 1.0, 2.0, 3.0], t
print("all_reduce ok on", dist.get_backend())
dist.destroy_process_group()
"""


def torchrun(argv: list[str], timeout: int = 300) -> tuple[str, str, float]:
    """Run `python -m torch.distributed.run --nproc_per_node 1 ARGV` (rc 0 = pass)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", free_port(),
           *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode == 0:
        return "exit 0", "pass", 0.0
    tail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
    return f"exit {proc.returncode}: {tail[:160]}", "fail", float(proc.returncode)


def free_port() -> str:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def check_torchrun(c: Checker, args, tmp: Path) -> None:
    backend = "nccl" if c.device.type == "cuda" else "gloo"
    if args.no_torchrun:
        c.skip("torchrun", "train pixelfolder-tiny", "skipped: --no-torchrun")
        c.skip("torchrun", f"{backend} all_reduce", "skipped: --no-torchrun")
        return
    data = image_folder(tmp / "data32", 32)
    train_argv = ["-m", "pixelfolder", "train", "--preset", "pixelfolder-tiny", "--data", str(data),
                  "--outdir", str(tmp / "torchrun"), "--batch", "4", "--kimg", "0.008", "--device", str(c.device),
                  "--workers", "0", "--threads", str(torch.get_num_threads())]
    c.run("torchrun", "train pixelfolder-tiny 2 steps", lambda: torchrun(train_argv))
    script = tmp / "all_reduce.py"
    script.write_text(ALL_REDUCE.format(cuda=c.device.type == "cuda", index=c.device.index or 0))
    c.run("torchrun", f"{backend} all_reduce", lambda: torchrun([str(script)]))


# ---------------------------------------------------------------------------------------------------- 6. speed
def images_per_second(G, batch: int, repeats: int, dtype) -> float:
    """img/s of G(z) at `batch`: two warm-up calls, then `repeats` timed calls (eval, no_grad, synchronised)."""
    device = next(G.parameters()).device
    z = seeded_z(G, batch, device)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    with torch.no_grad(), autocast:
        for _ in range(2):
            G(z)
        sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            G(z)
        sync(device)
    return batch * repeats / (time.perf_counter() - start)


def speed_row(preset: str, device, batch: int, repeats: int, dtype):
    ips = images_per_second(seeded_generator(preset, device), batch, repeats, dtype)
    ref = PAPER_TABLE1.get(registry.preset(preset).arch) if preset in SPEED_PRESETS else None
    note = f"  ({PAPER_LABEL}: {ref} img/s)" if ref is not None else ""
    return f"{ips:,.1f} img/s at batch {batch}{note}", "info" if ips > 0 else "fail", ips


def check_speed(c: Checker, args, tmp: Path) -> None:
    presets = [tiny(registry.preset(p).arch) for p in SPEED_PRESETS] if args.smoke else list(SPEED_PRESETS)
    batch, repeats = (4, 2) if args.smoke else (32, 5)
    for preset in presets:
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            c.run("speed", f"{preset} {name}", lambda p=preset, d=dtype: speed_row(p, c.device, batch, repeats, d))
    paper = ", ".join(f"{arch} {ips}" for arch, ips in PAPER_TABLE1.items())
    c.run("speed", "reference", lambda: (f"{PAPER_LABEL}, img/s at 256 px: {paper}", "info", None))
    c.run("speed", "reference", lambda: (INRGAN_README, "info", None))


# ------------------------------------------------------------------------------------------- 7. training speed
def training_speed(preset: str, data: Path, tmp: Path, device, batch: int, steps: int):
    """kimg/s of the steps after the first (between the loop's first and last stats records), through the loop."""
    _, stats = train(preset, data, tmp / f"speed-{preset}", device, batch=batch, steps=steps,
                     workers=2 if device.type == "cuda" else 0)
    first, last = stats[0], stats[-1]
    if first["step"] != 1 or last["step"] <= 1:
        raise RuntimeError(f"the loop's stats records are at steps {first['step']} and {last['step']}, not 1 and more")
    kimg_s = (last["step"] - 1) * batch / 1000 / (last["time_s"] - first["time_s"])
    return f"{kimg_s:.3f} kimg/s ({kimg_s * 1000:.1f} img/s) at batch {batch}, steps 2-{last['step']}", "info", kimg_s


def training_memory(preset: str, data: Path, tmp: Path, device, batch: int):
    """Peak memory of one training step (CUDA: max_memory_allocated after a reset; CPU: the process's peak RSS)."""
    from pixelfolder.metrics.cost import peak_rss_mb
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train(preset, data, tmp / f"memory-{preset}", device, batch=batch, steps=1)
    if device.type == "cuda":
        mb = torch.cuda.max_memory_allocated(device) / 2 ** 20
        return f"peak CUDA memory {mb:,.0f} MB (max_memory_allocated), batch {batch}", "info", mb
    mb = peak_rss_mb()
    return f"peak RSS {mb:,.0f} MB (whole process so far), batch {batch}", "info", mb


def regularisation_period(arch: str) -> int:
    """Steps after which the recipe's lazy R1 and path-length steps repeat."""
    recipe = registry.architecture(arch).recipe
    return math.lcm(recipe.r1_every, recipe.g_reg_every)


def check_training_speed(c: Checker, args, tmp: Path) -> None:
    steps = 1 + regularisation_period("pixelfolder")      # the first step, then one whole R1 / PL period timed
    if args.smoke:
        data = image_folder(tmp / "data32", 32)
        speed, memory, batch, mem_data = "pixelfolder-tiny", "pixelfolder-tiny", 4, data
    else:
        data = image_folder(tmp / "data256", 256, n=64)
        speed, memory, batch = "pixelfolder-256", "pixelfolder-1024", 32
        mem_data = image_folder(tmp / "data1024", 1024, n=8)
    c.run("trainspd", f"{speed} batch {batch}", lambda: training_speed(speed, data, tmp, c.device, batch, steps))
    c.run("trainspd", f"{memory} 1 step, peak memory", lambda: training_memory(memory, mem_data, tmp, c.device, 4))


# ------------------------------------------------------------------------------------------------------ output
def header(device: torch.device) -> dict:
    cuda = device.type == "cuda"
    return {"device": torch.cuda.get_device_name(device) if cuda else "cpu", "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
            "threads": torch.get_num_threads(), "python": sys.version.split()[0], "tf32": False}


def table(rows: list[Row]) -> str:
    """One plain-text table of every row."""
    cols = ("check", "name", "result", "status", "seconds")
    cells = [[r.check, r.name, r.result, r.status, f"{r.seconds:.2f}"] for r in rows]
    widths = [max(len(col), *(len(row[i]) for row in cells)) for i, col in enumerate(cols)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths]), *map(line, cells)])


def write_json(path: Path, head: dict, rows: list[Row], failed: int, args) -> None:
    plain = [{**dataclasses.asdict(r), "value": r.value if r.value is None or math.isfinite(r.value) else None}
             for r in rows]      # NaN / Inf are not JSON
    record = {"header": head, "smoke": args.smoke, "checks": args.checks, "rows": plain, "failed": failed}
    path.write_text(json.dumps(record, indent=2) + "\n")


CHECKS = {"equal": check_equality, "autocast": check_autocast, "compile": check_compile, "train": check_training,
          "torchrun": check_torchrun, "speed": check_speed, "trainspd": check_training_speed}


def parse_args(argv=None):
    doc = __doc__.split("\n", 1)
    p = argparse.ArgumentParser(description=doc[0], epilog=doc[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto (default: cuda when available)")
    p.add_argument("--smoke", action="store_true", help="tiny presets and small batches only (seconds on a CPU)")
    p.add_argument("--json", default="gpu_check.json", help="where the rows go (default ./gpu_check.json)")
    p.add_argument("--all-official", action="store_true", help="equality over every official preset")
    p.add_argument("--checks", default=",".join(CHECKS),
                   help=f"comma-separated checks to run (default all: {','.join(CHECKS)})")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile check")
    p.add_argument("--no-torchrun", action="store_true", help="skip the torchrun checks")
    p.add_argument("--inject-error", action="store_true", help=argparse.SUPPRESS)   # tests: a failing equality
    args = p.parse_args(argv)
    args.checks = [name.strip() for name in args.checks.split(",") if name.strip()]
    unknown = sorted(set(args.checks) - set(CHECKS))
    if unknown:
        p.error(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    return args


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: error: no CUDA device is available (use --device cpu --smoke)")
    return device


def main(argv=None) -> int:
    args = parse_args(argv)
    device = pick_device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False       # fp32 means fp32: equality at 1e-4 needs TF32 off
    torch.backends.cudnn.allow_tf32 = False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    head = header(device)
    print(f"pixelfolder gpu_check on {head['device']}: torch {head['torch']}, CUDA {head['cuda']}, cuDNN "
          f"{head['cudnn']}, {head['threads']} CPU threads, TF32 off{', smoke' if args.smoke else ''}", flush=True)
    if device.type != "cuda" and not args.smoke:
        print("gpu_check: note: full-size presets on a CPU take long; --smoke runs the tiny ones", file=sys.stderr)
    c = Checker(device)
    total = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        for name in args.checks:
            CHECKS[name](c, args, Path(tmp))
    failed = sum(r.status in ("fail", "error") for r in c.rows)
    print()
    print(table(c.rows))
    print(f"\n{len(c.rows)} rows, {failed} failed or errored, {time.perf_counter() - total:.1f} s; JSON: {args.json}")
    write_json(Path(args.json), head, c.rows, failed, args)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
