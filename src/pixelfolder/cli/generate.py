"""`pixelfolder generate`: PNG images (and an optional grid) for a list of seeds."""
from __future__ import annotations


from ..errors import PixelfolderError
from .common import open_network, parse_device, parse_seeds, writable_dir


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="generate images from seeds")
    p.add_argument("--network", required=True, help="checkpoint (ours or official) or preset name")
    p.add_argument("--seeds", default="0-7", help="e.g. 0-15 or 1,5,7 (default 0-7)")
    p.add_argument("--trunc", type=float, default=1.0, help="truncation psi (default 1 = none)")
    p.add_argument("--trunc-cutoff", type=int, default=None, help="truncate only the first N w's")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    p.add_argument("--size", type=int, default=None,
                   help="render size in px for any-resolution models (CIPS, INR-GAN, CREPS)")
    p.add_argument("--scale", type=float, default=None,
                   help="render at int(resolution x SCALE) px (any-resolution models; CREPS's gen_images --scale)")
    p.add_argument("--sampler", choices=["exact", "official"], default="exact",
                   help="likelihood models (PixelPyramids): exact ancestral sampling (default) or the official "
                        "approximate sampler (temperature 0.1, truncation), to reproduce its pictures")
    p.add_argument("--outdir", required=True, help="output directory")
    p.add_argument("--grid", action="store_true", help="also write grid.png with all images")
    p.add_argument("--batch", type=int, default=8, help="images per forward pass")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..data.images import image_grid, save_image
    seeds = parse_seeds(args.seeds)
    if args.batch < 1:
        raise PixelfolderError("--batch must be >= 1")
    outdir = writable_dir(args.outdir)
    device = parse_device(args.device)
    G = open_network(args.network, kind=("generator", "likelihood")).to(device)
    if G.kind == "likelihood":
        if (args.size is not None or args.scale is not None or args.trunc != 1.0 or args.trunc_cutoff is not None
                or args.noise_mode != "const"):
            raise PixelfolderError(f"{G.arch} samples at its own size, without truncation or noise inputs: drop "
                                   "--size/--scale/--trunc/--trunc-cutoff/--noise-mode")
        images = G.sample(seeds, batch_size=args.batch, mode=args.sampler, device=device)
    else:
        if args.sampler != "exact":
            raise PixelfolderError("--sampler applies to likelihood models (PixelPyramids) only")
        images = G.sample(seeds, batch_size=args.batch, truncation_psi=args.trunc,
                          truncation_cutoff=args.trunc_cutoff, noise_mode=args.noise_mode, size=args.size,
                          scale=args.scale)
    for seed, img in zip(seeds, images):
        save_image(img, outdir / f"seed{seed:04d}.png")
    if args.grid:
        save_image(image_grid(images), outdir / "grid.png")
    print(f"wrote {len(seeds)} image(s) of {images.shape[-1]}x{images.shape[-2]} px to {outdir}"
          + (" and grid.png" if args.grid else ""))
    return 0
