"""`pixelfolder convert SRC DST`: any network (official checkpoints above all) to a self-describing pixelfolder
checkpoint, as a torch zip (.pt) or a safetensors file (.safetensors), chosen by DST's suffix."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import PixelfolderError


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert an official checkpoint (PixelFolder, CIPS, StyleGAN2, INR-GAN, "
                                       "CREPS, StyleGAN2-ADA pickles, PixelPyramids)")
    p.add_argument("src", help="official checkpoint: train.py dict, bare state_dict, NVlabs network-snapshot .pkl "
                               "(read as data, never executed) or PixelPyramids checkpoint (with --params); also any "
                               "other network spec (URL, pretrained name, run directory, our .pt/.safetensors)")
    p.add_argument("dst", help="output file: .safetensors writes safetensors, any other name a torch zip")
    p.add_argument("--arch", help="the converter to use (default: inferred from the keys or the pickle's recorded "
                                  "class); `pixelfolder models --converters` lists them")
    p.add_argument("--size", type=int, help="expected resolution (checked)")
    p.add_argument("--which", default="g_ema", type=str.lower, choices=["g_ema", "g", "d", "all"],
                   help="network to convert (G_ema, G or D of a pickle); 'all' writes DST stem + _g_ema/_g/_d "
                        "for each one present")
    p.add_argument("--params", help="PixelPyramids: the official params/<name>.json the checkpoint was trained with")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DST (never SRC itself)")
    p.set_defaults(run=run)


def local_source(spec: str) -> Path | None:
    """The file SRC names on this machine (a run directory's latest snapshot), or None (URL, preset, zoo name)."""
    path = Path(spec.split("#sha256=", 1)[0]).expanduser()
    if path.is_dir():
        from ..networks import latest_snapshot
        try:
            return latest_snapshot(path)
        except PixelfolderError:
            return None
    return path if path.exists() else None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_target(src: Path | None, dst: Path, overwrite: bool) -> None:
    """Refuse DST when it is SRC (also through links), a directory, or an existing file without --overwrite."""
    if not (dst.exists() or dst.is_symlink()):
        return
    if src is not None and dst.exists() and _same_file(src, dst):
        raise PixelfolderError(f"{dst} is the source {src} itself (the same file): write the conversion elsewhere")
    if dst.is_dir():
        raise PixelfolderError(f"{dst} is a directory: give DST as a file name (e.g. {dst / 'network.pt'})")
    if not overwrite:
        raise PixelfolderError(f"{dst} already exists: pass --overwrite to replace it, or choose another DST")


def run(args) -> int:
    dst = Path(args.dst)
    src = local_source(args.src)
    if args.which != "all":
        check_target(src, dst, args.overwrite)           # before torch is imported and SRC read
    from ..checkpoint import save
    from ..registry import converter_choices
    if args.arch is not None and args.arch not in converter_choices():
        raise PixelfolderError(f"unknown --arch {args.arch!r}; choose from {', '.join(converter_choices())}")
    from ..networks import open_spec
    from ..utils import count_parameters
    from .common import writable_dir
    writable_dir(dst.parent if str(dst.parent) else ".")
    opened = open_spec(args.src, arch=args.arch, size=args.size, params=args.params)
    if args.which == "all":
        nets = opened.all()
        targets = {name: dst.with_name(f"{dst.stem}_{name}{dst.suffix or '.pt'}") for name in nets}
    else:
        nets = {args.which: opened.network(args.which)}
        targets = {args.which: dst}
    for target in targets.values():
        check_target(src, target, args.overwrite)
    for name, model in nets.items():
        save(model, targets[name], model.metadata)
        size = getattr(model, "resolution", None)
        print(f"{name}: {model.arch} {size}px, {count_parameters(model):,} parameters -> {targets[name]}")
    return 0
