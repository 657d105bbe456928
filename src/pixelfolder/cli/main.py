"""Entry point: `pixelfolder VERB ...`. User errors print one line and exit 2; tracebacks are for bugs."""
from __future__ import annotations

import argparse
import sys

from ..errors import PixelfolderError
from . import bench, convert, evaluate, generate, models, prepare, train

VERBS = [models, generate, convert, bench, prepare, train, evaluate]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    parser = argparse.ArgumentParser(prog="pixelfolder", description="Efficient pixel-synthesis image generation.")
    parser.add_argument("--version", action="version", version=f"pixelfolder {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 0
    try:
        return args.run(args) or 0
    except PixelfolderError as e:
        print(f"pixelfolder {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pixelfolder {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
