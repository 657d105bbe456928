"""`pixelfolder video`: latent interpolation videos (NVlabs gen_video.py) and zoom videos of any-scale models."""
from __future__ import annotations

from ..errors import PixelfolderError
from .common import (add_network_options, add_progress_options, finite_float, nonnegative_int, open_network,
                     parse_device, parse_seeds, positive_int, seed_int)

EPILOG = """examples:
  pixelfolder video --network NET --seeds 0-31 --grid 4x2 --output lerp.mp4     # 4 keyframes per cell, 480 frames
  pixelfolder video --network cips_skip-256 --seeds 7 --zoom --output zoom.mp4  # zoom x1 -> x4 into the centre
  pixelfolder video --network NET --seeds 0-3 --w-frames 30 --output lerp.gif   # GIF through Pillow
  pixelfolder video --network NET --seeds 0-3 --output frames/                  # one lossless PNG per frame"""


def add_parser(sub) -> None:
    import argparse
    p = sub.add_parser("video", help="render a latent interpolation video (gen_video.py) or a zoom video",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_network_options(p, "the generator")
    p.add_argument("--seeds", required=True,
                   help="keyframe seeds, e.g. 0-31: split over the grid cells, len(seeds) // (W*H) keyframes per cell "
                        "(with --zoom: one seed per cell)")
    p.add_argument("--grid", default="1x1", help="cells COLUMNSxROWS, e.g. 4x2 (default 1x1)")
    p.add_argument("--num-keyframes", type=positive_int, default=None,
                   help="keyframes per cell (seeds are then reused cyclically, as gen_video's option; default: "
                        "len(seeds) // (W*H))")
    p.add_argument("--shuffle-seed", type=seed_int, default=None, help="shuffle the keyframe seeds with this seed")
    p.add_argument("--w-frames", type=positive_int, default=120,
                   help="frames between two keyframes (default 120); with --zoom: the frames of the zoom")
    p.add_argument("--kind", choices=["cubic", "linear"], default=None,
                   help="interpolation in W: cubic (default; scipy interp1d's spline, as gen_video) or linear")
    p.add_argument("--seed-rng", choices=["numpy", "torch"], default=None,
                   help="how a seed draws z (default: the network's convention, as `generate`)")
    p.add_argument("--trunc", type=finite_float, default=1.0, help="truncation psi (default 1 = none)")
    p.add_argument("--trunc-cutoff", type=nonnegative_int, default=None, help="truncate only the first N w's")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const",
                   help="const (default, as gen_video), none, or random: one draw per cell from its first seed "
                        "(as `generate`), held for the whole video")
    p.add_argument("--size", type=positive_int, default=None, help="render size in px (any-scale models)")
    p.add_argument("--scale", type=finite_float, default=None,
                   help="render at int(resolution x SCALE) px (any-scale models: CIPS, INR-GAN, CREPS)")
    p.add_argument("--zoom", action="store_true",
                   help="any-scale models: zoom into the centre, scale 1 -> --zoom-to, frames cropped to one size")
    p.add_argument("--zoom-to", type=finite_float, default=4.0, help="the final scale of --zoom (default 4)")
    p.add_argument("--fps", type=finite_float, default=60.0, help="frames per second (default 60, as gen_video)")
    p.add_argument("--output", required=True,
                   help="FILE.mp4 (.mkv/.mov; needs the `video` extra, else a GIF is written beside it), FILE.gif, "
                        "or DIR/ (one PNG per frame)")
    p.add_argument("--batch", type=positive_int, default=8, help="images per forward pass (default 8)")
    add_progress_options(p)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..explore import video
    from ..progress import Progress
    seeds = parse_seeds(args.seeds)
    grid = video.parse_grid(args.grid)
    video.output_format(args.output)          # a bad output name fails before the network loads
    if not args.fps > 0:
        raise PixelfolderError(f"--fps must be > 0, got {args.fps}")
    if args.zoom:
        given = [flag for flag, value in (("--kind", args.kind), ("--num-keyframes", args.num_keyframes),
                                          ("--shuffle-seed", args.shuffle_seed)) if value is not None]
        if given:
            raise PixelfolderError(f"{'/'.join(given)} apply to interpolation videos, not to --zoom")
        if len(seeds) != grid[0] * grid[1]:
            raise PixelfolderError(f"--zoom renders one seed per grid cell: give {grid[0] * grid[1]} seed(s) for "
                                   f"--grid {grid[0]}x{grid[1]}, got {len(seeds)}")
    else:
        if args.zoom_to != 4.0:
            raise PixelfolderError("--zoom-to needs --zoom")
        video.keyframe_seeds(seeds, grid, args.num_keyframes)      # seeds that do not split fail before loading
    device = parse_device(args.device)
    G = open_network(args.network, kind=("generator", "likelihood"), params=args.params)
    video.need_generator(G, "pixelfolder video")
    G = G.to(device).eval()
    common = {"grid": grid, "truncation_psi": args.trunc, "truncation_cutoff": args.trunc_cutoff,
              "noise_mode": args.noise_mode, "size": args.size, "scale": args.scale, "seed_rng": args.seed_rng,
              "batch": args.batch, "device": device,
              "progress": lambda total: Progress(total, "video", unit="frame", enabled=args.progress)}
    if args.zoom:
        total, frames = video.zoom_frames(G, seeds, frames=args.w_frames, zoom_to=args.zoom_to, **common)
    else:
        total, frames = video.interpolation_frames(G, seeds, num_keyframes=args.num_keyframes,
                                                   shuffle_seed=args.shuffle_seed, w_frames=args.w_frames,
                                                   kind=args.kind or "cubic", **common)
    out = video.write_frames(args.output, frames, fps=args.fps)
    what = {"frames": "PNG frames", "gif": "GIF", "ffmpeg": "video"}[out.format]
    h, w = out.shape[:2]
    print(f"wrote {what}: {out.frames} frame(s) of {w}x{h} px ({out.frames / out.fps:.1f} s at {out.fps:g} fps) "
          f"to {out.path}")
    return 0
