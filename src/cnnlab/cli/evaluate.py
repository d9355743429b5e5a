"""``cnnlab evaluate runs/X [--split test] [--data SOURCE]``: metrics, per-class, confusion."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cnnlab evaluate``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained run: accuracy, top-5, per-class P/R/F1, confusion matrix",
        description=(
            "Evaluate a run's best checkpoint on a split of its dataset (or of --data). "
            "Results are printed and saved under RUN_DIR/eval/<split>/."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by cnnlab train")
    parser.add_argument(
        "--split", default="test", choices=("train", "val", "test", "all"),
        help="which split to evaluate (default: test)",
    )
    parser.add_argument(
        "--data", default=None, metavar="SOURCE",
        help="evaluate on another source, e.g. folder:PATH (default: the run's own dataset)",
    )
    parser.add_argument("--checkpoint", default="best", choices=("best", "last", "ema"),
                        help="which checkpoint (default: best; with --ema, the better of the "
                        "raw and EMA weights, as best.json names it)")
    parser.add_argument("--tta", default="none", choices=("none", "flip", "crops"),
                        help="test-time augmentation: average the softmax over a left-right "
                        "flip, or over 5 shifted crops (default: none)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    parser.add_argument("--json", action="store_true", help="print metrics.json instead of tables")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``cnnlab evaluate``."""
    from cnnlab._validate import check_int
    from cnnlab.evaluation import evaluate, print_evaluation

    check_int("batch_size", args.batch_size, min_value=1)
    result = evaluate(
        args.run_dir, split=args.split, data=args.data, which=args.checkpoint,
        device=args.device, batch_size=args.batch_size, tta=args.tta,
    )
    if result.out_dir is not None and result.calibration is not None:
        from cnnlab.viz.calibration import save_reliability

        save_reliability(result.calibration, result.out_dir / "reliability.png")
    if args.json:
        print(json.dumps(result.metrics, indent=2))
    else:
        print_evaluation(result)
    return 0
