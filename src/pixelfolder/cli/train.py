"""`pixelfolder train`: every default from the model's official recipe; with no arguments, the CPU demo
(a tiny PixelFolder on the embedded emoji set at 32x32 for about 10 minutes).

Runs as one process, or under `torchrun --nproc_per_node N -m pixelfolder.cli.main train ...`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from ..errors import PixelfolderError
from .common import NETWORK_HELP, parse_device, positive_int

DEMO = {"kimg": 150.0, "time_limit_min": 10.0, "snap_kimg": 10.0, "batch": 32, "ema_kimg": 2.0}


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a GAN (no arguments: the 10-minute CPU demo on emoji)")
    p.add_argument("--model", default="pixelfolder",
                   help="pixelfolder, cips_skip, cips_res, stylegan2, inrgan, inrgan_bil, creps or pixelpyramids")
    p.add_argument("--preset", help="preset name (default: <model>-tiny on emoji, else <model>-<resolution>)")
    p.add_argument("--data", default="emoji", help="dataset (folder, zip, LMDB) or 'emoji' (default)")
    p.add_argument("--outdir", default="runs/demo", help="run directory (default runs/demo)")
    p.add_argument("--resolution", type=int, help="px (default: the preset's; emoji: 32)")
    p.add_argument("--batch", type=int, help="global batch, images (default: recipe, 64; demo 32)")
    p.add_argument("--batch-gpu", type=int, help="images per process per forward (gradient accumulation)")
    p.add_argument("--kimg", type=float, help="training length in thousands of images (default 25000; demo 150)")
    p.add_argument("--time-limit", type=float, dest="time_limit_min",
                   help="stop with a final snapshot after this many minutes (demo default 10)")
    p.add_argument("--gamma", type=float, help="R1 weight (default 10)")
    p.add_argument("--r1-every", type=int, help="steps between R1 steps (default 16)")
    p.add_argument("--pl-weight", type=float, help="path-length weight (default 0; StyleGAN2: 2)")
    p.add_argument("--pl-every", type=int, help="steps between path-length steps (default 4)")
    p.add_argument("--mixing", type=float, help="style-mixing probability (default 0; StyleGAN2: 0.9)")
    p.add_argument("--ema-kimg", type=float, help="G_ema half-life in kimg (default 20 = official 0.5^(32/10000) "
                                                  "per step at batch 64)")
    p.add_argument("--glr", type=float, help="G learning rate before lazy rescaling (default 0.002)")
    p.add_argument("--dlr", type=float, help="D learning rate before lazy rescaling (default 0.002)")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None, help="random x-flips of reals (default on)")
    p.add_argument("--augment", choices=["none", "diffaug"], default="none", help="DiffAugment on reals and fakes")
    p.add_argument("--snap", type=float, dest="snap_kimg", help="kimg between snapshots (default 50; demo 10)")
    p.add_argument("--metrics", default="", help="comma-separated metrics at each snapshot (e.g. fid50k_full)")
    p.add_argument("--metric-num-gen", type=int, help="generated images per metric at snapshots (default 50k)")
    p.add_argument("--resume", help="'auto' (latest state in --outdir, else start fresh), a training-state.pt or run directory "
                        "(exact resume), or any network to fine-tune: " + NETWORK_HELP)
    p.add_argument("--params", help="PixelPyramids: the official params/<name>.json of a --resume checkpoint")
    p.add_argument("--seed", type=int, default=0, help="master seed")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--compile", action="store_true", help="torch.compile G and D for the main phases")
    p.add_argument("--workers", type=int, help="data-loader processes (default: 2 on GPU, 0 on CPU)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--threads", type=positive_int, help="CPU threads per process (default: cores / processes)")
    p.add_argument("--tensorboard", action="store_true", default=None, help="also log stats for TensorBoard")
    p.add_argument("--levels", help="likelihood models: comma-separated level indices to train (default: all; "
                                    "0 = finest). Levels are independent, so they can be trained separately")
    p.add_argument("--split", choices=["all", "train"],
                   help="training images (default: train = 9 of every 10 for likelihood models, all for GANs)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved options and exit")
    p.set_defaults(run=run)


def options_from_args(args):
    from ..training.options import TrainOptions, resolve
    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    given["metrics"] = tuple(m for m in args.metrics.split(",") if m)
    if args.levels:
        try:
            given["levels"] = tuple(int(v) for v in args.levels.split(",") if v.strip())
        except ValueError:
            raise PixelfolderError(f"bad --levels {args.levels!r}: use e.g. 0,1") from None
    is_demo = args.data == "emoji" and args.preset is None and args.resolution in (None, 32)
    for key, value in DEMO.items():
        if is_demo and getattr(args, key, None) is None:
            given[key] = value
    if args.workers is None:
        import torch
        given["workers"] = 2 if torch.cuda.is_available() and args.device != "cpu" else 0
    given["run_dir"] = args.outdir
    return resolve(TrainOptions(**given))


def run(args) -> int:
    opts = options_from_args(args)
    parse_device(opts.device)                  # a device that does not exist here fails before anything is written
    if args.dry_run:
        print(json.dumps(dataclasses.asdict(opts), indent=2))
        return 0
    if opts.metrics:
        from ..metrics.metric_main import parse_metric_names
        parse_metric_names(opts.metrics)       # unknown names fail before training starts
    from ..training.rundir import STATE
    if opts.resume is None and (Path(opts.run_dir) / STATE).is_file():
        raise PixelfolderError(f"{opts.run_dir} already holds a training state: pass --resume auto to continue "
                               "or choose another --outdir")
    import torch
    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // world))
    from ..training.loop import training_loop
    try:
        training_loop(opts)
    finally:
        from ..training.distributed import shutdown
        shutdown()
    return 0
