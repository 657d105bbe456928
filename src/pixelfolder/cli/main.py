"""Entry point: `pixelfolder VERB ...`. User errors print one line and exit 2; tracebacks are for bugs.

Nothing heavy is imported before `main` runs, so Ctrl-C at any moment (torch's import included) exits 130 with
one line.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import PixelfolderError

VERB_MODULES = ("models", "generate", "video", "serve", "project", "export", "convert", "bench", "prepare", "train",
                "evaluate")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `pixelfolder VERB: error: ...` (no usage block), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    from .. import __version__
    parser = Parser(prog="pixelfolder", description="Efficient pixel-synthesis image generation.")
    parser.add_argument("--version", action="version", version=f"pixelfolder {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERB_MODULES:
        importlib.import_module(f".{name}", __package__).add_parser(sub)
    return parser


def _forget_interrupt() -> None:
    """Let the exit status be ours (130). A Ctrl-C that lands inside code an extension runs through PyRun_String
    (torch's import does) leaves CPython's "unhandled KeyboardInterrupt" flag set although we handled it, and the
    interpreter would then end by re-raising SIGINT (status -2). The next PyRun_* evaluation resets that flag."""
    try:
        import ctypes
        ctypes.pythonapi.PyRun_SimpleString(b"pass")
    except (ImportError, AttributeError, OSError):
        pass


def main(argv=None) -> int:
    verb = "pixelfolder"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)    # as typed: for messages that repeat it
        if args.verb is None:
            parser.print_help()
            return 0
        verb = f"pixelfolder {args.verb}"
        return args.run(args) or 0
    except PixelfolderError as e:
        print(f"{verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{verb}: interrupted", file=sys.stderr)
        _forget_interrupt()
        return 130
    except BrokenPipeError:            # the reader went away (`pixelfolder models | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())    # so the exit flush cannot fail again
        return 141


if __name__ == "__main__":
    sys.exit(main())
