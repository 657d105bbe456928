"""`pixelfolder generate`: PNG images for a list of seeds, written as they are made (and an optional grid)."""
from __future__ import annotations

from pathlib import Path

from ..errors import PixelfolderError
from .common import (add_network_options, add_progress_options, finite_float, nonnegative_int, open_network,
                     parse_device, parse_seeds, positive_int, writable_dir)

GRID_MAX = 64     # images in the grid: the first 64 seeds (memory stays flat for any number of seeds)


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="generate images from seeds")
    add_network_options(p, "the generator")
    p.add_argument("--seeds", default="0-7", help="e.g. 0-15 or 1,5,7 (default 0-7)")
    p.add_argument("--projected-w", default=None, metavar="FILE.npz",
                   help="render the w's in FILE.npz (key 'w', (N, n_latent, w_dim): `pixelfolder project`'s or "
                        "NVlabs' projector.py's projected_w.npz) instead of seeds: OUTDIR/projNN.png")
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
    p.add_argument("--outdir", default=None,
                   help="output directory (one seedNNNN.png per seed; with --sheet: where sheet-KIND.png goes); "
                        "required unless --sheet-path is given")
    p.add_argument("--grid", nargs="?", const="", default=None, metavar="PATH",
                   help=f"also write a grid of the first {GRID_MAX} images (default PATH: OUTDIR-grid.png beside "
                        "OUTDIR, so that `evaluate --fake OUTDIR` never counts it)")
    add_sheet_options(p)
    p.add_argument("--batch", type=positive_int, default=8, help="images per forward pass")
    add_progress_options(p)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.set_defaults(run=run)


def add_sheet_options(p) -> None:
    """--sheet and its sub-options: one labelled PNG instead of one file per seed (explore/sheets.py)."""
    p.add_argument("--sheet", choices=["truncation", "mixing", "scale"], default=None,
                   help="write one labelled sheet instead: truncation (rows = seeds, columns = --psis), mixing "
                        "(StyleGAN's style-mixing grid: rows = --seeds, columns = --col-seeds) or scale (any-scale "
                        "models; columns = --scales)")
    p.add_argument("--sheet-path", default=None, metavar="PATH",
                   help="the sheet's file (default OUTDIR/sheet-KIND.png)")
    p.add_argument("--psis", nargs="+", default=None, metavar="PSI",
                   help="--sheet truncation: psi values, e.g. --psis -1 -0.5 0 1 or --psis=-1,-0.5,0,1 (default "
                        "-1 -0.5 0 0.5 0.7 1 1.5)")
    p.add_argument("--scales", nargs="+", default=None, metavar="SCALE",
                   help="--sheet scale: render scales (default 0.5 1 1.5 2)")
    p.add_argument("--col-seeds", default=None,
                   help="--sheet mixing: the column seeds (default: as many seeds as --seeds, following them)")
    p.add_argument("--mix-layers", default=None,
                   help="--sheet mixing: the w indices taken from the column seed, e.g. 0-3 (default: the coarse "
                        "styles, w 0-3, at most half of the w's)")


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


def run(args) -> int:
    from ..atomic import atomic_write
    from ..data.images import check_finite, save_uint8, to_uint8, uint8_grid
    from ..progress import Progress
    from ..utils import check_seed_rng
    if getattr(args, "projected_w", None) is not None:
        return run_projected_w(args)
    if getattr(args, "sheet", None) is not None:
        return run_sheet(args)
    if args.outdir is None:
        raise PixelfolderError("--outdir is required (or --sheet ... --sheet-path PATH)")
    seeds = parse_seeds(args.seeds)
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
        for seed, img in zip(chunk, to_uint8(check_finite(draw(chunk), chunk)).numpy()):
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


SHEET_ONLY = {"--psis": ("psis", "truncation"), "--scales": ("scales", "scale"),
              "--col-seeds": ("col_seeds", "mixing"), "--mix-layers": ("mix_layers", "mixing")}


def run_sheet(args) -> int:
    """`generate --sheet KIND`: one labelled PNG (explore/sheets.py)."""
    from ..atomic import atomic_write
    from ..data.images import save_uint8
    from ..explore import sheets
    from ..explore import need_generator
    from ..progress import Progress
    from ..utils import check_seed_rng
    kind = args.sheet
    misplaced = [flag for flag, (attr, owner) in SHEET_ONLY.items()
                 if getattr(args, attr) is not None and owner != kind]
    if misplaced:
        raise PixelfolderError(f"{'/'.join(misplaced)} do(es) not apply to --sheet {kind}")
    if args.grid is not None:
        raise PixelfolderError("--grid does not apply to --sheet (the sheet is the grid)")
    if args.outdir is None and args.sheet_path is None:
        raise PixelfolderError("--sheet needs --outdir (for OUTDIR/sheet-KIND.png) or --sheet-path PATH")
    if kind == "truncation" and args.trunc != 1.0:
        raise PixelfolderError("--sheet truncation sweeps psi itself: give the values with --psis, not --trunc")
    seeds = parse_seeds(args.seeds)
    cols = None
    if kind == "truncation":
        cols = sheets.parse_floats(",".join(args.psis), "--psis") if args.psis else list(sheets.PSIS)
    elif kind == "scale":
        cols = sheets.parse_floats(",".join(args.scales), "--scales") if args.scales else list(sheets.SCALES)
    else:
        if args.col_seeds:
            cols = parse_seeds(args.col_seeds)
        else:
            cols = list(range(max(seeds) + 1, max(seeds) + 1 + len(seeds)))
    if len(seeds) > sheets.MAX_ROWS or len(cols) > sheets.MAX_ROWS:
        raise PixelfolderError(f"a sheet has at most {sheets.MAX_ROWS} rows and columns, got {len(seeds)} seeds and "
                               f"{len(cols)} columns")
    path = Path(args.sheet_path) if args.sheet_path else writable_dir(args.outdir) / f"sheet-{kind}.png"
    writable_dir(path.parent)
    device = parse_device(args.device)
    G = open_network(args.network, kind=("generator", "likelihood"), params=args.params)
    need_generator(G, f"--sheet {kind}", "sample it without --sheet")
    G = G.to(device).eval()
    options = sample_options(args, G)
    check_seed_rng(options["seed_rng"] or G.seed_rng, list(seeds) + (cols if kind == "mixing" else []))
    bar = Progress(sheets.cell_count(kind, len(seeds), len(cols)), f"sheet {kind}", enabled=args.progress)
    if kind == "truncation":
        options.pop("truncation_psi")
        sheet = sheets.truncation_sheet(G, seeds, cols, batch=args.batch, progress=bar, device=device, **options)
    elif kind == "scale":
        sheet = sheets.scale_sheet(G, seeds, cols, batch=args.batch, progress=bar, device=device, **options)
    else:
        layers = sheets.parse_layers(args.mix_layers, G.n_latent)
        sheet = sheets.mixing_sheet(G, seeds, cols, layers, batch=args.batch, progress=bar, device=device, **options)
    bar.close()
    atomic_write(path, lambda tmp: save_uint8(sheet.image, tmp), suffix=path.suffix or ".png")
    h, w = sheet.image.shape[:2]
    print(f"wrote the {kind} sheet ({len(sheet.boxes)} image(s), {w}x{h} px) to {path}")
    return 0


def run_projected_w(args) -> int:
    """`generate --projected-w FILE.npz`: OUTDIR/projNN.png, one per stored w (NVlabs' gen_images.py)."""
    from ..atomic import atomic_write
    from ..data.images import check_finite, save_uint8, to_uint8
    from ..explore import project as P
    clash = [flag for flag, given in (("--sheet", getattr(args, "sheet", None) is not None),
                                      ("--grid", args.grid is not None), ("--seeds", args.seeds != "0-7"),
                                      ("--seed-rng", args.seed_rng is not None),
                                      ("--sampler", args.sampler != "exact")) if given]
    if clash:
        raise PixelfolderError(f"{'/'.join(clash)} do(es) not apply to --projected-w (it renders the stored w's)")
    if args.outdir is None:
        raise PixelfolderError("--projected-w needs --outdir (for OUTDIR/projNN.png)")
    if args.noise_mode == "random":
        raise PixelfolderError("--projected-w renders with --noise-mode const (default, as `project` wrote proj.png) "
                               "or none")
    outdir = writable_dir(args.outdir)
    device = parse_device(args.device)
    G = open_network(args.network, kind=("generator", "likelihood"), params=args.params)
    P.check_generator(G)
    G = G.to(device).eval()
    ws = P.load_projected_w(args.projected_w, G)
    shape = None
    for start in range(0, ws.shape[0], args.batch):
        images = P.render_w(G, ws[start:start + args.batch], noise_mode=args.noise_mode, truncation_psi=args.trunc,
                            truncation_cutoff=args.trunc_cutoff, size=args.size, scale=args.scale, batch=args.batch)
        for i, img in enumerate(to_uint8(check_finite(images)).numpy(), start=start):
            atomic_write(outdir / f"proj{i:02d}.png", lambda tmp, img=img: save_uint8(img, tmp), suffix=".png")
            shape = img.shape
    print(f"wrote {ws.shape[0]} image(s) of {shape[1]}x{shape[0]} px from {args.projected_w} to {outdir}")
    return 0
