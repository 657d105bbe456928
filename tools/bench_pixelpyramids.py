"""Likelihood-evaluation speed of PixelPyramids, ours against the official code (CPU, fp32). A benchmark.

    python tools/bench_pixelpyramids.py --official /tmp/pp_official        # 64 and 256 px, both protocols
    python tools/bench_pixelpyramids.py --sizes 64 --repeats 7              # ours only (no --official)
    python tools/bench_pixelpyramids.py --official /tmp/pp_official --sample   # also ours' exact sampler

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

from pixelfolder.convert.pixelpyramids import from_official
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


def report(r: dict) -> None:
    ms = r["ms_per_image"]
    print(f"--- {r['size']} px (celeba_256 levels {FIRST_LEVEL[r['size']]}-12), median of {r['runs']} runs, "
          "ms per image", flush=True)
    for name, value in ms.items():
        print(f"  {name:<14} {value:10.1f}   ({r['gflop_per_image'] / value * 1000:.0f} GFLOP/s of ours' "
              f"{r['gflop_per_image']:.1f} GFLOP per image)")
    if "official" in ms:
        print(f"  speed-up  ours(eval) {ms['official'] / ms['ours_eval']:.2f}x   ours(official protocol) "
              f"{ms['official'] / ms['ours_official']:.2f}x")
        print(f"  max |NLL diff| per level: official protocol {r['max_diff_official']:.2e} nats "
              f"(rel {r['max_rel_official']:.1e}), eval {r['max_diff_eval']:.2e} nats; within the fixture "
              f"tolerance 0.001 + 2e-5*|nll|: {r['within_tolerance']}")
        print(f"  total NLL per image (official protocol): {[round(v, 2) for v in r['nll_total']]} nats")
    if "sample_s_per_image" in r:
        print(f"  ours exact sampler: {r['sample_s_per_image']:.2f} s per image (batch_size=1)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--official", help="exported visinf/pixelpyramids tree (omit to time ours only)")
    p.add_argument("--sizes", default="64,256", help="comma-separated: 64 and/or 256 (default both)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=0, help="timed rounds (default 5 at 64 px, 3 at 256 px)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sample", action="store_true", help="also time ours' exact sampler, one image")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    bad = [s for s in sizes if s not in FIRST_LEVEL]
    if bad:
        p.error(f"sizes must be among {sorted(FIRST_LEVEL)}; got {bad}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, fp32, no_grad",
          flush=True)
    for size in sizes:
        report(bench_size(size, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
