"""`pixelfolder prepare SRC --out DST`: a folder, zip, LMDB or 'emoji' to a training LMDB or zip."""
from __future__ import annotations

import signal
import sys
import threading

from .common import add_progress_options


def add_parser(sub) -> None:
    from ..data.prepare import FORMATS, default_workers
    from ..data.transforms import TRANSFORMS
    p = sub.add_parser("prepare", help="prepare a dataset (LMDB or zip) from images, a zip or an LMDB")
    p.add_argument("src", help="folder of images (recursive), zip, LMDB, or 'emoji' (the Twemoji set)")
    p.add_argument("--out", required=True, help="output LMDB directory or .zip file")
    p.add_argument("--size", type=int, default=256, help="output resolution (default 256)")
    p.add_argument("--format", choices=FORMATS, help="default: zip if --out ends in .zip, else lmdb")
    p.add_argument("--transform", choices=TRANSFORMS, default="center-crop", help="default center-crop")
    p.add_argument("--max-images", type=int, help="stop after writing this many images")
    p.add_argument("--min-size", type=int, default=0, help="skip images whose short side is below this")
    p.add_argument("--workers", type=int, default=default_workers(),
                   help=f"decoding processes (default min(4, CPUs) = {default_workers()})")
    p.add_argument("--jpeg-quality", type=int, help="store JPEG of this quality (official: 85) instead of PNG")
    p.add_argument("--png-level", type=int, default=0,
                   help="PNG compression 0-9: 0 (default) uncompressed, fastest to write and read; 1-9 zlib "
                        "levels through PIL (6: ~40%% smaller photos, ~45x slower to write, ~14x slower to read)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_progress_options(p)
    p.set_defaults(run=run)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)        # unwinds like Ctrl-C: the temporary output is removed


def run(args) -> int:
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if main_thread else None
    try:
        return _prepare(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _prepare(args) -> int:
    from ..data.prepare import PrepareConfig, prepare
    cfg = PrepareConfig(size=args.size, format=args.format, transform=args.transform,
                        jpeg_quality=args.jpeg_quality, min_size=args.min_size, max_images=args.max_images,
                        workers=args.workers, overwrite=args.overwrite,
                        png_level=args.png_level)
    result = prepare(args.src, args.out, cfg, progress=args.progress)
    if result.upscaled:
        print(f"warning: {len(result.upscaled)} image(s) smaller than {cfg.size} px were upscaled "
              f"(listed in {result.log})", file=sys.stderr)
    if result.skipped:
        print(f"warning: {len(result.skipped)} image(s) skipped (reasons in {result.log})", file=sys.stderr)
    print(result.summary())
    return 0
