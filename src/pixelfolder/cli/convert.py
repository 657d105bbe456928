"""`pixelfolder convert SRC DST`: an official checkpoint to a self-describing pixelfolder checkpoint."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert an official PixelFolder/CIPS/StyleGAN2 checkpoint")
    p.add_argument("src", help="official checkpoint (train.py dict or bare g_ema state_dict)")
    p.add_argument("dst", help="output .pt file")
    p.add_argument("--arch", choices=["pixelfolder", "cips_skip", "cips_res", "stylegan2"],
                   help="generator architecture (default: inferred from the keys)")
    p.add_argument("--size", type=int, help="expected resolution (checked)")
    p.add_argument("--which", default="g_ema", choices=["g_ema", "g", "d", "all"],
                   help="network to convert; 'all' writes DST stem + _g_ema/_g/_d for each one present")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..checkpoint import save
    from ..convert import convert_all, load_official
    from ..models import count_parameters
    from .common import writable_dir
    dst = Path(args.dst)
    writable_dir(dst.parent if str(dst.parent) else ".")
    if args.which == "all":
        nets = convert_all(args.src, args.arch, args.size)
        targets = {name: dst.with_name(f"{dst.stem}_{name}{dst.suffix or '.pt'}") for name in nets}
    else:
        nets = {args.which: load_official(args.src, args.arch, args.size, which=args.which)}
        targets = {args.which: dst}
    for name, model in nets.items():
        save(model, targets[name], model.metadata)
        print(f"{name}: {model.arch} {model.resolution}px, {count_parameters(model):,} parameters -> {targets[name]}")
    return 0
