"""`pixelfolder generate`: PNG images for a list of seeds, written as they are made (and an optional grid)."""
from __future__ import annotations

from pathlib import Path

from ..errors import PixelfolderError
from .common import (add_network_options, finite_float, nonnegative_int, open_network, parse_device, parse_seeds,
                     positive_int, writable_dir)

GRID_MAX = 64     # images in the grid: the first 64 seeds (memory stays flat for any number of seeds)


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="generate images from seeds")
    add_network_options(p, "the generator")
    p.add_argument("--seeds", default="0-7", help="e.g. 0-15 or 1,5,7 (default 0-7)")
    p.add_argument("--seed-rng", choices=["numpy", "torch"], default=None,
                   help="how a seed draws z: numpy = NVlabs' gen_images.py (seed N is the official seed-N image), "
                        "torch = a per-seed torch.Generator (default: the network's recorded convention: numpy for "
                        "NVlabs-family networks, torch for the others)")
    p.add_argument("--trunc", type=finite_float, default=1.0, help="truncation psi (default 1 = none)")
    p.add_argument("--trunc-cutoff", type=nonnegative_int, default=None, help="truncate only the first N w's")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    p.add_argument("--size", type=positive_int, default=None,
                   help="render size in px for any-resolution models (CIPS, INR-GAN, CREPS)")
    p.add_argument("--scale", type=finite_float, default=None,
                   help="render at int(resolution x SCALE) px (any-resolution models; CREPS's gen_images --scale)")
    p.add_argument("--sampler", choices=["exact", "official"], default="exact",
                   help="likelihood models (PixelPyramids): exact ancestral sampling (default) or the official "
                        "approximate sampler (temperature 0.1, truncation), to reproduce its pictures")
    p.add_argument("--outdir", required=True, help="output directory (one seedNNNN.png per seed)")
    p.add_argument("--grid", nargs="?", const="", default=None, metavar="PATH",
                   help=f"also write a grid of the first {GRID_MAX} images (default PATH: OUTDIR-grid.png beside "
                        "OUTDIR, so that `evaluate --fake OUTDIR` never counts it)")
    p.add_argument("--batch", type=int, default=8, help="images per forward pass")
    p.add_argument("--progress", action="store_true", default=None,
                   help="show progress also when stderr is not a terminal (a line every 10 s)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.set_defaults(run=run)


def grid_path(args, outdir: Path) -> Path | None:
    if args.grid is None:
        return None
    if args.grid:
        return Path(args.grid)
    outdir = outdir.resolve()
    return outdir.parent / f"{outdir.name}-grid.png"


# sample() option -> (flag, attribute of args, its default): which flags apply is read from the registry
SAMPLE_FLAGS = {"truncation_psi": ("--trunc", "trunc", 1.0),
                "truncation_cutoff": ("--trunc-cutoff", "trunc_cutoff", None),
                "noise_mode": ("--noise-mode", "noise_mode", "const"), "size": ("--size", "size", None),
                "scale": ("--scale", "scale", None), "seed_rng": ("--seed-rng", "seed_rng", None),
                "mode": ("--sampler", "sampler", "exact")}


def sample_options(args, G) -> dict:
    """The network's sample() options from the flags; a flag its architecture does not take is refused."""
    from ..registry import architecture
    own = architecture(G.arch).sample_options
    foreign = [flag for option, (flag, attr, default) in SAMPLE_FLAGS.items()
               if option not in own and getattr(args, attr) != default]
    if foreign:
        takes = "/".join(SAMPLE_FLAGS[o][0] for o in own if o in SAMPLE_FLAGS) or "none"
        raise PixelfolderError(f"{G.arch} ({G.kind}) does not take {'/'.join(foreign)}: its sampling options are "
                               f"{takes}")
    return {option: getattr(args, SAMPLE_FLAGS[option][1]) for option in own if option in SAMPLE_FLAGS}


def sampler(G, options: dict, device):
    """seeds -> (N, 3, H, W) float images, batch-size independent."""
    return lambda seeds: G.sample(seeds, batch_size=len(seeds), device=device, **options)


def finite(images, seeds):
    """The images, unless the network produced NaN or infinite values (damaged weights)."""
    import torch
    bad = [s for s, ok in zip(seeds, torch.isfinite(images).flatten(1).all(1).tolist()) if not ok]
    if bad:
        raise PixelfolderError(f"the network produced NaN or infinite values for seed(s) {bad[:5]}: its weights are "
                               "damaged (check the checkpoint)")
    return images


def run(args) -> int:
    from ..atomic import atomic_write
    from ..data.images import save_uint8, to_uint8, uint8_grid
    from ..utils import check_seed_rng
    from ..progress import Progress
    seeds = parse_seeds(args.seeds)
    if args.batch < 1:
        raise PixelfolderError("--batch must be >= 1")
    outdir = writable_dir(args.outdir)
    grid = grid_path(args, outdir)
    if grid is not None:
        writable_dir(grid.parent)
    device = parse_device(args.device)
    G = open_network(args.network, kind=("generator", "likelihood"), params=args.params).to(device)
    options = sample_options(args, G)
    if "seed_rng" in options:
        check_seed_rng(options["seed_rng"] or G.seed_rng, seeds)
    draw = sampler(G, options, device)
    bar = Progress(len(seeds), "generate", enabled=args.progress)
    thumbs, shape = [], None
    for start in range(0, len(seeds), args.batch):
        chunk = seeds[start:start + args.batch]
        for seed, img in zip(chunk, to_uint8(finite(draw(chunk), chunk)).numpy()):
            atomic_write(outdir / f"seed{seed:04d}.png", lambda tmp, img=img: save_uint8(img, tmp), suffix=".png")
            if grid is not None and len(thumbs) < GRID_MAX:
                thumbs.append(img)
            shape = img.shape
        bar.update(len(chunk))
    bar.close()
    if grid is not None:
        atomic_write(grid, lambda tmp: save_uint8(uint8_grid(thumbs), tmp), suffix=grid.suffix or ".png")
    print(f"wrote {len(seeds)} image(s) of {shape[1]}x{shape[0]} px to {outdir}"
          + (f" and the grid {grid}" if grid is not None else ""))
    return 0
