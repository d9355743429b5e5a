"""The ``cnnlab`` command line: one sub-command per module in this package.

Each sub-command lives in its own module ``cnnlab.cli.<name>`` that defines
``add_parser(subparsers) -> argparse.ArgumentParser`` (which sets ``func`` as a default) and keeps
its heavy imports inside the function it runs, so ``cnnlab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import errno
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
    PermissionError,
    FileExistsError,
    MissingDependencyError,
)

# Errors of the machine rather than of cnnlab (a full disk, a read-only folder): one line too.
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG,
     errno.ELOOP, errno.EMFILE, errno.EIO}
)  # fmt: skip
TRUST_FLAG = "--trust-unsigned"


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
    parser.add_argument(
        TRUST_FLAG, action="store_true", default=argparse.SUPPRESS,
        help="load checkpoints and ONNX files whose metadata digest is missing or does not "
        "match (files of older cnnlab versions); accepted anywhere on the command line",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"cnnlab.cli.{name.replace('-', '_')}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cnnlab`` console script; returns the process exit code."""
    from cnnlab.integrity import trusting_unsigned

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    trust = TRUST_FLAG in argv  # a global switch, also after the sub-command and its arguments
    args = parser.parse_args([a for a in argv if a != TRUST_FLAG])
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        with trusting_unsigned(trust):
            result = args.func(args)
    except USER_ERRORS as exc:
        if args.traceback:
            raise
        print(f"cnnlab {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if args.traceback or exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        hint = ("; free some space and run it again (files already written are complete: "
                "every write is atomic)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "")
        print(f"cnnlab {args.command}: error: {_one_line(exc)}{hint}", file=sys.stderr)
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


def _one_line(exc: BaseException) -> str:
    """The error message on one line (YAML and other parsers write several)."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
