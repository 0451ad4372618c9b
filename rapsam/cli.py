"""The ``rapsam`` command line: ``rapsam <command> --help`` for each command.

Every command module exposes ``register(subparsers)``; a command's ``func(args)`` returns the exit code.
Errors meant for users (bad input, missing files) are printed as one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (module, attribute) pairs providing register(subparsers); order = help order.
_COMMANDS = [
    ("rapsam.commands.predict", "register"),
    ("rapsam.commands.track", "register"),
    ("rapsam.commands.demo", "register"),
    ("rapsam.commands.serve", "register"),
    ("rapsam.commands.train", "register"),
    ("rapsam.commands.evaluate", "register"),
    ("rapsam.data.synth", "register"),
    ("rapsam.vocab.cli", "register"),
    ("rapsam.commands.model_tools", "register"),
    ("rapsam.commands.export", "register"),
    ("rapsam.commands.benchmark", "register"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rapsam",
        description="RAP-SAM: real-time interactive, panoptic and video segmentation with one model.",
    )
    parser.add_argument("--version", action="version", version=f"rapsam {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod, attr in _COMMANDS:
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod:  # command not part of this installation
                continue
            raise
        getattr(module, attr)(sub)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, FileNotFoundError, OSError) as e:
        # User-facing errors: one clear line, no traceback (set RAPSAM_DEBUG=1 for it).
        import os

        if os.environ.get("RAPSAM_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
