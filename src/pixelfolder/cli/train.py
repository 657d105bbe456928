"""`pixelfolder train`: every default from the model's official recipe; with no arguments, the CPU demo
(a tiny PixelFolder on the embedded emoji set at 32x32 for about 10 minutes).

Runs as one process, or under `torchrun --nproc_per_node N -m pixelfolder.cli.main train ...`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
from pathlib import Path

from ..data.emoji import DEMO_DATASET
from ..errors import PixelfolderError
from .common import NETWORK_HELP, parse_device, positive_int

DEMO = {"kimg": 150.0, "time_limit_min": 10.0, "snap_kimg": 10.0, "batch": 32, "ema_kimg": 2.0, "augment": "none"}


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a GAN (no arguments: the 10-minute CPU demo on emoji)")
    p.add_argument("--model", help="architecture to train (`pixelfolder models`; default pixelfolder): picks its "
                                   "preset for the data (<model>-tiny on the demo set, else <model>-<resolution>)")
    p.add_argument("--preset", help="the exact preset to train (instead of --model)")
    p.add_argument("--data", default=DEMO_DATASET, help=f"dataset (folder, zip, LMDB) or '{DEMO_DATASET}' (the "
                                                        "embedded demo set, default)")
    p.add_argument("--outdir", help="run directory (default runs/<model>-<data>-<resolution>, e.g. "
                                    "runs/pixelfolder-emoji-32 for the demo)")
    p.add_argument("--resolution", type=int, help="px the network trains at (default: the data's with --model, "
                                                  "the preset's with --preset); data of another size is resized on "
                                                  "the fly")
    p.add_argument("--batch", type=int, help="global batch, images (default: the recipe's; demo 32)")
    p.add_argument("--batch-gpu", type=int, help="images per process per forward (gradient accumulation)")
    p.add_argument("--kimg", type=float, help="training length in thousands of images (default 25000; demo 150)")
    p.add_argument("--time-limit", type=float, dest="time_limit_min",
                   help="stop with a final snapshot after this many minutes (demo default 10)")
    # every default below is the model's official recipe at the resolutions it was published for, elsewhere the
    # NVlabs cfg=auto scaling rule: `--dry-run` prints the values and where each comes from (official/rule/given)
    p.add_argument("--gamma", type=float, help="R1 weight (default: recipe)")
    p.add_argument("--r1-every", type=int, help="steps between R1 steps (default: recipe)")
    p.add_argument("--pl-weight", type=float, help="path-length weight, 0 = off (default: recipe)")
    p.add_argument("--pl-every", type=int, help="steps between path-length steps (default: recipe)")
    p.add_argument("--mixing", type=float, help="style-mixing probability (default: recipe)")
    p.add_argument("--ema-kimg", type=float, help="G_ema half-life in kimg (default: recipe; demo 2)")
    p.add_argument("--ema-rampup", type=float, help="G_ema half-life at most this fraction of the images shown, "
                                                    "0 = off (default: recipe; rule 0.05)")
    p.add_argument("--mapping-layers", type=int, help="GANs: depth of G's mapping MLP (default: the preset's; "
                                                      "rule 2)")
    p.add_argument("--glr", type=float, help="G learning rate before lazy rescaling (default: recipe)")
    p.add_argument("--dlr", type=float, help="D learning rate before lazy rescaling (default: recipe)")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None,
                   help="random x-flips of reals (default: recipe)")
    p.add_argument("--augment", choices=["auto", "ada", "diffaug", "none"],
                   help="augmentation of what D sees: ada (StyleGAN2-ADA, adaptive p), diffaug (DiffAugment), none; "
                        "default auto = ada for datasets under 30,000 images, else none (the demo: none)")
    p.add_argument("--target", type=float, dest="ada_target", help="ADA: target share of positive D outputs on "
                                                                    "reals, in (0, 1) (default 0.6)")
    p.add_argument("--augpipe", choices=["blit", "geom", "color", "bg", "bgc"],
                   help="ADA: transforms (default bgc: blits, geometry, colour)")
    p.add_argument("--ada-kimg", type=float, help="ADA: kimg for p to move by 1 (default 500)")
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
    p.add_argument("--progress", action="store_true", default=None,
                   help="progress lines on stdout and bars of snapshot metrics also when not on a terminal")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress lines on stdout (log.txt keeps them) and no metric bars")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved options (JSON) with where each recipe value comes from, and exit")
    p.set_defaults(run=run)


def given_options(args):
    """(TrainOptions as given, before the recipe fills it, names of the demo's defaults used)."""
    from ..data.emoji import is_demo_dataset
    from ..training.options import TrainOptions
    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    given["metrics"] = tuple(m for m in args.metrics.split(",") if m)
    if args.levels:
        try:
            given["levels"] = tuple(int(v) for v in args.levels.split(",") if v.strip())
        except ValueError:
            raise PixelfolderError(f"bad --levels {args.levels!r}: use e.g. 0,1") from None
    is_demo = is_demo_dataset(args.data) and args.preset is None and args.resolution in (None, 32)
    demo = tuple(key for key in DEMO if is_demo and getattr(args, key, None) is None)
    given.update({key: DEMO[key] for key in demo})
    if args.workers is None:
        import torch
        given["workers"] = 2 if torch.cuda.is_available() and args.device != "cpu" else 0
    given["run_dir"] = args.outdir or ""          # "" = derived once the preset is known (default_run_dir)
    return TrainOptions(**given), demo


def default_run_dir(opts) -> str:
    """runs/<architecture>-<data name>-<resolution>, e.g. runs/pixelfolder-emoji-32."""
    from .. import registry
    from ..training.options import preset_resolution
    arch = registry.preset(opts.preset).arch
    data = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(str(opts.data).rstrip("/")).name.split(".")[0]) or "data"
    resolution = opts.resolution or preset_resolution(opts.preset)
    return str(Path("runs") / f"{arch}-{data}-{resolution}")


def continue_command(args, run_dir: str) -> str:
    """The command that continues the run: the one typed, with --outdir and --resume auto."""
    argv = list(getattr(args, "argv", []))
    if "--outdir" not in argv and not any(a.startswith("--outdir=") for a in argv):
        argv += ["--outdir", run_dir]
    if argv[:1] != ["train"]:
        argv = ["train", *argv]
    return shlex.join(["pixelfolder", *argv, "--resume", "auto"])


def run(args) -> int:
    from ..training.options import option_sources, resolve
    given, demo = given_options(args)
    opts = resolve(given)
    if not opts.run_dir:
        opts = dataclasses.replace(opts, run_dir=default_run_dir(opts))
    parse_device(opts.device)                  # a device that does not exist here fails before anything is written
    if args.dry_run:
        print(json.dumps({**dataclasses.asdict(opts), "sources": option_sources(given, opts, demo)}, indent=2))
        return 0
    if opts.metrics:
        from ..metrics.metric_main import parse_metric_names
        parse_metric_names(opts.metrics)       # unknown names fail before training starts
    from ..training.rundir import STATE
    if opts.resume is None and (Path(opts.run_dir) / STATE).is_file():
        raise PixelfolderError(f"{opts.run_dir} already holds a training state: continue it with "
                               f"`{continue_command(args, opts.run_dir)}`, or choose another --outdir")
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
