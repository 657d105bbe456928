"""docs/video-strip.png: 8 frames of the `pixelfolder video --seeds 0-31 --grid 4x2` interpolation video, one labelled
row.

    python tools/video_strip.py                                   # stylegan2-tiny, random weights (a preset), ~2 s
    python tools/video_strip.py --network NET --output strip.png  # any generator

The video (default --w-frames 120, 4 keyframes per cell) has 480 frames; the strip shows frames 0, 60, ..., 420:
every keyframe and the point halfway to the next. Those are exactly the frames of the same video rendered with
--w-frames 2, so only 8 frames are rendered.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pixelfolder
from pixelfolder import registry
from pixelfolder.atomic import atomic_write
from pixelfolder.data.images import save_uint8
from pixelfolder.explore.sheets import layout
from pixelfolder.explore.video import W_FRAMES, interpolation_frames, parse_grid

STRIP = 8


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", default="stylegan2-tiny",
                   help="generator (default stylegan2-tiny: a preset, random weights)")
    p.add_argument("--seeds", type=int, default=32, help="seeds 0..N-1 (default 32)")
    p.add_argument("--grid", default="4x2")
    p.add_argument("--output", default=str(Path(__file__).resolve().parent.parent / "docs" / "video-strip.png"))
    args = p.parse_args(argv)
    G = pixelfolder.load(args.network).eval()
    grid = parse_grid(args.grid)
    keyframes = args.seeds // (grid[0] * grid[1])
    if keyframes < 1 or STRIP % keyframes or W_FRAMES % (STRIP // keyframes):
        raise SystemExit(f"{keyframes} keyframes per cell do not split into {STRIP} evenly spaced frames")
    w_frames = STRIP // keyframes
    total, frames = interpolation_frames(G, list(range(args.seeds)), grid=grid, w_frames=w_frames)
    step = W_FRAMES // w_frames                     # frame k here is frame k * step of the --w-frames 120 video
    cells = {(0, k): frame for k, frame in enumerate(frames)}
    sheet = layout(cells, [""], [f"frame {k * step}" for k in range(total)],
                   f"pixelfolder video --network {args.network} --seeds 0-{args.seeds - 1} --grid {args.grid}  "
                   f"({total * step} frames{'; random weights' if args.network in registry.list_models() else ''})")
    atomic_write(args.output, lambda tmp: save_uint8(sheet.image, tmp), suffix=".png")
    h, w = sheet.image.shape[:2]
    print(f"wrote {args.output} ({w}x{h} px, {total} frames)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
