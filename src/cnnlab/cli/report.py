"""``cnnlab report RUN``: write RUN/report.html, one self-contained page about the run."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cnnlab report``."""
    parser = subparsers.add_parser(
        "report", help="write RUN/report.html: config, summary, metrics, curves, confusion ...",
        description="Write one self-contained HTML page (figures embedded, works offline) with "
        "the run's config, model summary, final metrics, per-class table, curves, confusion "
        "matrix, prediction grid and augmentation preview. Parts that cannot be made are "
        "replaced by a note saying why.",
    )
    parser.add_argument("run_dir", metavar="RUN", help="a run directory made by cnnlab train")
    parser.add_argument("--split", default=None, choices=("train", "val", "test"),
                        help="evaluation split to report (default: the saved one, else test)")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="where to write (default: RUN/report.html)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``cnnlab report``."""
    from cnnlab.viz import write_report

    print(f"wrote {write_report(args.run_dir, split=args.split, out=args.out)}")
    return 0
