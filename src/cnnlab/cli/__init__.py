"""The ``cnnlab`` command line: one sub-command per module in this package.

Each sub-command lives in its own module ``cnnlab.cli.<name>`` that defines
``add_parser(subparsers) -> argparse.ArgumentParser`` (which sets ``func`` as a default) and keeps
its heavy imports inside the function it runs, so ``cnnlab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from cnnlab import __version__
from cnnlab._deps import MissingDependencyError

# Sub-command modules, in the order ``cnnlab --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "train", "lr-find", "evaluate", "predict", "export", "serve", "shape", "summary", "models",
    "viz", "report",
)

# Mistakes a user can make (bad flag values, missing files, an optional package not installed):
# printed as one clear line, exit 2.
USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    MissingDependencyError,
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="cnnlab",
        description="Build, inspect, train and explain convolutional neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    parser.add_argument(
        "--traceback", action="store_true", help="show the full Python traceback on errors"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"cnnlab.cli.{name.replace('-', '_')}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cnnlab`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        result = args.func(args)
    except USER_ERRORS as exc:
        if args.traceback:
            raise
        print(f"cnnlab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`cnnlab models | head`): not an error; silence the final flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"cnnlab {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
