"""Likelihood-evaluation speed of PixelPyramids, ours against the official code (CPU, fp32 / bf16). A benchmark.

    python tools/bench_pixelpyramids.py --official /tmp/pp_official        # 64 and 256 px, both protocols
    python tools/bench_pixelpyramids.py --sizes 64 --repeats 7              # ours only (no --official)
    python tools/bench_pixelpyramids.py --official /tmp/pp_official --sample   # also ours' exact sampler
    python tools/bench_pixelpyramids.py --official /tmp/pp_official --precision bf16 [--trained emoji32.pt]

Configs: '256' is celeba_256.json (L=13); '64' is celeba_256 restricted to 64x64 px, i.e. its levels 4-12
(U-Net depths and n_squeeze of those levels, the same PixelCNN++). Batch `--batch` images (default 2), one
thread, torch.no_grad(). Runs are interleaved (official, ours eval, ours official, official, ...) so load from
other processes hits all of them alike; medians and ratios are printed, in ms per image.

Official side (reference pixelpyramids.md §6): `--official` is an exported tree of visinf/pixelpyramids
(`git archive HEAD | tar -x -C DIR`). The likelihood path needs no file edits: this tool aliases
`collections.Iterable` and installs minimal `torchvision` / `sklearn` stand-ins when they are not importable.
Its modules are built as main.py builds them (without the DataParallel wrapper, a no-op on a CPU), given random
weights (seed 0) and random BatchNorm running statistics, and evaluated as main.py evaluates: BatchNorm in train
mode (batch statistics), `unets[l](x_l, d_l, train=True)` + `discretized_mix_logistic_loss`, on the pyramid of
the official loader (`data/celeba.py`, excluded from the timing). Ours gets the same weights through
`pixelfolder.convert.pixelpyramids.from_official` and is timed end to end on the uint8 images (`level_nll`,
pyramid included), with eval-mode BatchNorm (our default) and with the 'official' protocol.
Agreement: max |NLL difference| per level, official train mode vs ours 'official', official eval() vs ours 'eval'.
GFLOP/s: ours' FLOPs per image (torch.utils.flop_counter, 95% of them 3x3 convolutions) over each median time,
for comparison with the machine's single-core convolution throughput.

--precision bf16 also times ours with precision='bf16' (U-Net / ConvLSTM convolutions in bfloat16) in the same
interleaved rounds, and reports its accuracy cost: bits/dim of bf16 minus fp32, absolute and relative, per image
and per level (max over the batch), for both protocols on the synthetic images and on held-out emoji images
upscaled (bicubic) to the benchmark size. These random-weight models predict nearly flat mixtures, which hide
rounding, so `--trained FILE` (a pixelfolder.save'd PixelPyramids, e.g. a briefly trained pixelpyramids-emoji32)
adds the same comparison on `--trained-images` held-out emoji images at its resolution, plus its timing.
"""
from __future__ import annotations

import argparse
import collections
import collections.abc
import importlib.machinery
import statistics
import sys
import time
import types

import numpy as np
import torch

from torch.utils.flop_counter import FlopCounterMode

import pixelfolder
from pixelfolder.convert.pixelpyramids import from_official
from pixelfolder.data import open_dataset
from pixelfolder.models.pixelpyramids import PixelPyramids, PixelPyramidsConfig

CELEBA_256 = {"dataset_name": "celeba_256", "L": 13, "C": 64, "n_bits": 5, "n_classes": [100] * 13,
              "n_squeeze": [2, 2, 2, 2] + [1] * 8, "n_channels": 32, "n_res_layers": 2}
FIRST_LEVEL = {256: 0, 64: 4}       # 64 px = celeba_256's levels 4..12


def main_py_depth(num_levels: int, i: int) -> int:
    """main.py's U-Net depth of fine level i."""
    if num_levels == 11:
        return min(max(num_levels - i // 2 - 6, 1), 4)
    return min(max(num_levels - i - 7, 1), 4)


def bench_params(size: int) -> dict:
    """Official-style params for the benchmark config (celeba_256 levels FIRST_LEVEL[size]..12)."""
    p, first = dict(CELEBA_256), FIRST_LEVEL[size]
    L = p["L"]
    p["unet_n_layers"] = [main_py_depth(L, i) for i in range(first, L - 1)]
    p["n_squeeze"] = p["n_squeeze"][first:]
    p["n_classes"] = p["n_classes"][first:]
    p["L"] = L - first
    p["image_shape"] = [3, size, size]
    return p


def synthetic_images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth colour fields plus grain, uint8 (B, 3, S, S)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, 8, 8, generator=gen) * 255
    x = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    x = x + torch.randn(x.shape, generator=gen) * 6
    return x.clamp(0, 255).to(torch.uint8)


def emoji_images(count: int, size: int) -> torch.Tensor:
    """The first `count` held-out emoji (32 px), bicubic-upscaled to size x size, uint8 (B, 3, S, S)."""
    ds = open_dataset("emoji", 32, split="test")
    x = torch.stack([ds[i] for i in range(min(count, len(ds)))]).float()
    if size != 32:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


# ------------------------------------------------------------------------------------------------ official
def _module(name: str) -> types.ModuleType:
    """An empty stand-in module with a spec (torch._dynamo's import scan asks for one)."""
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    return mod


def _stand_ins() -> None:
    """Run-time compatibility for the 2022 code: collections.Iterable, torchvision and sklearn stand-ins."""
    if not hasattr(collections, "Iterable"):
        collections.Iterable = collections.abc.Iterable
    try:
        import torchvision  # noqa: F401
    except ImportError:
        tv = _module("torchvision")
        subs = {name: _module(f"torchvision.{name}") for name in ("utils", "datasets", "transforms")}
        subs["datasets"].VisionDataset = type("VisionDataset", (torch.utils.data.Dataset,), {
            "__init__": lambda self, root, transform=None, **kw: setattr(self, "root", root)})
        subs["transforms"].Compose = lambda ts: ts
        dutils = _module("torchvision.datasets.utils")
        dutils.verify_str_arg = lambda value, *a, **k: value
        dutils.iterable_to_str = lambda it: ", ".join(map(str, it))
        subs["datasets"].utils = dutils
        for name, mod in subs.items():
            setattr(tv, name, mod)
            sys.modules[f"torchvision.{name}"] = mod
        sys.modules["torchvision"], sys.modules["torchvision.datasets.utils"] = tv, dutils
    try:
        import sklearn.ensemble  # noqa: F401
    except ImportError:
        sk, ens = _module("sklearn"), _module("sklearn.ensemble")

        class IsolationForest:
            def __init__(self, *a, **k):
                raise RuntimeError("scikit-learn is not installed (only the official sampler's clean-up needs it)")

        ens.IsolationForest, sk.ensemble = IsolationForest, ens
        sys.modules["sklearn"], sys.modules["sklearn.ensemble"] = sk, ens


class Official:
    """The official level modules of a benchmark config, evaluated the way main.py evaluates."""

    def __init__(self, path: str, params: dict, seed: int = 0):
        sys.path.insert(0, path)
        _stand_ins()
        from data.celeba import CelebA
        from misc import discretized_mix_logistic_loss
        from unet.pixelcnnpp import PixelCNNpp
        from unet.unet_lstm import UNet as UNetLSTM
        self.loss, self.params = discretized_mix_logistic_loss, params
        L = params["L"]
        torch.manual_seed(seed)
        self.levels = [UNetLSTM(nc_input=3, nc_cond_embd=100, n_classes=params["n_classes"][i],
                                n_layers=params["unet_n_layers"][i], n_squeeze=params["n_squeeze"][i],
                                out_channels=params["C"]) for i in range(L - 1)]
        self.levels.append(PixelCNNpp(image_dims=(3, 4, 4), n_channels=params["n_channels"],
                                      n_res_layers=params["n_res_layers"], n_classes=params["n_classes"][-1]))
        gen = torch.Generator().manual_seed(seed + 1)
        for level in self.levels:
            for m in level.modules():
                if isinstance(m, torch.nn.BatchNorm2d):     # non-trivial eval-mode statistics
                    m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
                    m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 1.5 + 0.5)
        self.loader = CelebA.__new__(CelebA)
        self.loader.num_levels, self.loader._mod = L, params["dataset_name"] == "celeba_256"

    def state_dicts(self) -> dict:
        return {i: {k: v.clone() for k, v in level.state_dict().items()} for i, level in enumerate(self.levels)}

    def pyramid(self, images: torch.Tensor, n_bits: int):
        """data/celeba.py's __getitem__ per image, collated: (downsmp_im list, diff_im list)."""
        items = []
        for img in images.permute(0, 2, 3, 1).numpy():
            x = np.floor(img / 2 ** (8 - n_bits)) if n_bits < 8 else img
            items.append(self.loader.get_image_pyramid(x, 2.0 ** n_bits))
        return ([torch.stack([it[0][l] for it in items]) for l in range(len(items[0][0]))],
                [torch.stack([it[1][l] for it in items]) for l in range(len(items[0][1]))])

    def train(self, mode: bool) -> None:
        for level in self.levels:
            level.train(mode)

    def level_nll(self, downs, diffs, n_bits: int) -> torch.Tensor:
        """main.py's evaluation loop body: (L, B) per-level NLL in nats."""
        L = len(self.levels)
        rows = [self.loss(self.levels[l](downs[l], diffs[l], train=True), diffs[l], n_bits) for l in range(L - 1)]
        rows.append(self.loss(self.levels[L - 1](downs[-1]), downs[-1], n_bits))
        return torch.stack(rows)


# -------------------------------------------------------------------------------------------------- timing
def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(runners: dict, repeats: int) -> dict:
    """One warm-up call each, then `repeats` rounds of every runner in turn; {name: [seconds]}."""
    for fn in runners.values():
        fn()
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            times[name].append(timed(fn))
    return times


def precision_errors(model, images: torch.Tensor, protocol: str, precision: str) -> dict:
    """bits/dim at `precision` minus fp32: max |diff| and max |diff| / |fp32|, per image (bpd) and per level."""
    with torch.no_grad():
        ref = model.bits_per_dim(images, protocol=protocol)
        low = model.bits_per_dim(images, protocol=protocol, precision=precision)
    d_img, d_lvl = low["bpd"] - ref["bpd"], low["per_level"] - ref["per_level"]
    return {"count": len(images), "bpd": ref["bpd"].mean().item(), "mean_diff": d_img.mean().item(),
            "image_abs": d_img.abs().max().item(), "image_rel": (d_img.abs() / ref["bpd"].abs()).max().item(),
            "level_abs": d_lvl.abs().max().item(),
            "level_rel": (d_lvl.abs() / ref["per_level"].abs().clamp(min=1e-12)).max().item()}


def bench_size(size: int, args) -> dict:
    params = bench_params(size)
    images = synthetic_images(args.batch, size)
    n_bits, batch = params["n_bits"], args.batch
    runners, result = {}, {"size": size}
    if args.official:
        official = Official(args.official, params)
        ours = from_official(official.state_dicts(), params)
        downs, diffs = official.pyramid(images, n_bits)
        with torch.no_grad():
            official.train(False)
            ref_eval = official.level_nll(downs, diffs, n_bits)
            official.train(True)        # main.py never calls .eval(): batch statistics
            ref_off = official.level_nll(downs, diffs, n_bits)
            ours_eval = ours.level_nll(images, protocol="eval")
            ours_off = ours.level_nll(images, protocol="official")
        result["max_diff_official"] = (ours_off - ref_off).abs().max().item()
        result["max_diff_eval"] = (ours_eval - ref_eval).abs().max().item()
        result["max_rel_official"] = ((ours_off - ref_off).abs() / ref_off.abs()).max().item()
        result["nll_total"] = ref_off.sum(0).tolist()
        result["within_tolerance"] = all(bool(((a - b).abs() <= 0.001 + 2e-5 * b.abs()).all())
                                         for a, b in ((ours_off, ref_off), (ours_eval, ref_eval)))
        runners["official"] = lambda: official.level_nll(downs, diffs, n_bits)
    else:
        cfg = PixelPyramidsConfig(height=size, width=size, num_levels=params["L"], n_squeeze=tuple(params["n_squeeze"]),
                                  n_classes=tuple(params["n_classes"]), unet_n_layers=tuple(params["unet_n_layers"]))
        torch.manual_seed(0)
        ours = PixelPyramids(cfg).eval()
    runners["ours_eval"] = lambda: ours.level_nll(images, protocol="eval")
    runners["ours_official"] = lambda: ours.level_nll(images, protocol="official")
    low = args.precision
    if low != "fp32":
        runners[f"ours_eval_{low}"] = lambda: ours.level_nll(images, protocol="eval", precision=low)
        runners[f"ours_official_{low}"] = lambda: ours.level_nll(images, protocol="official", precision=low)
        emoji = emoji_images(args.batch, size)
        result["precision"], result["batch"] = low, batch
        result["errors"] = {(name, protocol): precision_errors(ours, x, protocol, low)
                            for name, x in (("synthetic", images), ("emoji", emoji))
                            for protocol in ("eval", "official")}
    repeats = args.repeats or (5 if size <= 64 else 3)
    with torch.no_grad():
        times = interleave(runners, repeats)
    result["ms_per_image"] = {name: 1000 * statistics.median(t) / batch for name, t in times.items()}
    result["runs"] = repeats
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        ours.level_nll(images[:1], protocol="eval")
    result["gflop_per_image"] = counter.get_total_flops() / 1e9
    if args.sample:
        result["sample_s_per_image"] = timed(lambda: ours.sample([0], batch_size=1))
    return result


def trained_report(path: str, args) -> None:
    """bf16 against fp32 on a trained model: bits/dim differences on held-out emoji and interleaved timing."""
    model = pixelfolder.load(path)
    if not isinstance(model, PixelPyramids):
        raise SystemExit(f"--trained needs a PixelPyramids checkpoint; {path} holds {type(model).__name__}")
    if model.config.width != model.resolution:
        raise SystemExit("--trained needs a square PixelPyramids model")
    images, low = emoji_images(args.trained_images, model.resolution), args.precision
    print(f"--- trained {path} ({model.resolution} px), {len(images)} held-out emoji, {low} - fp32 bits/dim",
          flush=True)
    for protocol in ("eval", "official"):
        errs = [precision_errors(model, images[i:i + 16], protocol, low) for i in range(0, len(images), 16)]
        print_errors(f"emoji ({protocol})", merge_errors(errs))
    batch = images[:args.batch]
    with torch.no_grad():
        times = interleave({"fp32": lambda: model.level_nll(batch, protocol="eval"),
                            low: lambda: model.level_nll(batch, protocol="eval", precision=low)}, args.repeats or 7)
    ms = {k: 1000 * statistics.median(v) / len(batch) for k, v in times.items()}
    print(f"  eval protocol, batch {len(batch)}: fp32 {ms['fp32']:.1f} ms/image, {low} {ms[low]:.1f} ms/image "
          f"({ms['fp32'] / ms[low]:.2f}x)")


def merge_errors(errs: list) -> dict:
    """Chunk results combined: max of the maxima, image-weighted means."""
    out = {k: max(e[k] for e in errs) for k in ("image_abs", "image_rel", "level_abs", "level_rel")}
    weights = [e["count"] for e in errs]
    out.update({k: statistics.fmean([e[k] for e in errs], weights) for k in ("bpd", "mean_diff")})
    return out


def print_errors(label: str, e: dict) -> None:
    print(f"  {label:<22} bpd {e['bpd']:.4f}; per image max |d| {e['image_abs']:.2e} (rel {e['image_rel']:.1e}), "
          f"mean d {e['mean_diff']:+.1e}; per level max |d| {e['level_abs']:.2e} (rel {e['level_rel']:.1e})")


def report(r: dict) -> None:
    ms = r["ms_per_image"]
    print(f"--- {r['size']} px (celeba_256 levels {FIRST_LEVEL[r['size']]}-12), median of {r['runs']} runs, "
          "ms per image", flush=True)
    for name, value in ms.items():
        print(f"  {name:<18} {value:10.1f}   ({r['gflop_per_image'] / value * 1000:.0f} GFLOP/s of ours' "
              f"{r['gflop_per_image']:.1f} GFLOP per image)")
    if "official" in ms:
        print(f"  speed-up  ours(eval) {ms['official'] / ms['ours_eval']:.2f}x   ours(official protocol) "
              f"{ms['official'] / ms['ours_official']:.2f}x")
        print(f"  max |NLL diff| per level: official protocol {r['max_diff_official']:.2e} nats "
              f"(rel {r['max_rel_official']:.1e}), eval {r['max_diff_eval']:.2e} nats; within the fixture "
              f"tolerance 0.001 + 2e-5*|nll|: {r['within_tolerance']}")
        print(f"  total NLL per image (official protocol): {[round(v, 2) for v in r['nll_total']]} nats")
    if "errors" in r:
        report_low_precision(r)
    if "sample_s_per_image" in r:
        print(f"  ours exact sampler: {r['sample_s_per_image']:.2f} s per image (batch_size=1)")


def report_low_precision(r: dict) -> None:
    """Speed-ups of the low-precision runs (vs official and vs ours fp32) and their bits/dim differences."""
    ms, low = r["ms_per_image"], r["precision"]
    for protocol in ("eval", "official"):
        t = ms[f"ours_{protocol}_{low}"]
        vs = f"official {ms['official'] / t:.2f}x, " if "official" in ms else ""
        print(f"  {low} speed-up, {protocol} protocol: {vs}ours fp32 {ms[f'ours_{protocol}'] / t:.2f}x")
    print(f"  {low} - fp32 bits/dim, batch {r['batch']} (max over images / image-levels):")
    for (name, protocol), e in r["errors"].items():
        print_errors(f"{name} ({protocol})", e)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--official", help="exported visinf/pixelpyramids tree (omit to time ours only)")
    p.add_argument("--sizes", default="64,256", help="comma-separated: 64 and/or 256 (default both)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=0, help="timed rounds (default 5 at 64 px, 3 at 256 px)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sample", action="store_true", help="also time ours' exact sampler, one image")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="bf16: also time ours in bfloat16 and report its bits/dim difference from fp32")
    p.add_argument("--trained", help="a saved PixelPyramids checkpoint for the bf16 accuracy check")
    p.add_argument("--trained-images", type=int, default=64, help="held-out emoji images for --trained")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    bad = [s for s in sizes if s not in FIRST_LEVEL]
    if bad:
        p.error(f"sizes must be among {sorted(FIRST_LEVEL)}; got {bad}")
    if args.trained and args.precision == "fp32":
        p.error("--trained compares --precision bf16 with fp32; add --precision bf16")
    precisions = "fp32" if args.precision == "fp32" else f"fp32 and {args.precision}"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, {precisions}, "
          "no_grad", flush=True)
    for size in sizes:
        report(bench_size(size, args))
    if args.trained:
        trained_report(args.trained, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
