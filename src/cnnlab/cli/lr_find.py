"""``cnnlab lr-find [train flags]``: the learning-rate range test, a plot and the --lr to use."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cnnlab lr-find``."""
    from cnnlab.cli.train import add_config_flags

    parser = subparsers.add_parser(
        "lr-find",
        help="learning-rate range test: plot loss against lr and suggest --lr",
        description=(
            "Train a copy of the model for --steps batches while the learning rate grows "
            "exponentially from --start-lr to --end-lr, with the training config of "
            "'cnnlab train' (the same flags, --config YAML, or --run RUN_DIR's config.yaml); "
            "writes a plot and prints the suggested --lr. Nothing is saved as a run."
        ),
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--config", metavar="YAML", help="read settings from a YAML file")
    parser.add_argument("--run", metavar="RUN_DIR", help="use this run's config.yaml")
    parser.add_argument("--start-lr", type=float, default=1e-7, help="first lr (default: 1e-7)")
    parser.add_argument("--end-lr", type=float, default=10.0, help="last lr (default: 10)")
    parser.add_argument("--steps", type=int, default=100, help="batches (default: 100)")
    parser.add_argument("--plot", metavar="PNG", default="lr_find.png",
                        help="where to write the plot (default: lr_find.png)")
    add_config_flags(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``cnnlab lr-find``."""
    from cnnlab._validate import check_int
    from cnnlab.cli.train import config_options
    from cnnlab.train import build_config
    from cnnlab.train.lr_find import lr_find
    from cnnlab.viz.lr_find import save_lr_plot

    own = ("config", "run", "start_lr", "end_lr", "steps", "plot")
    options = config_options(args, own)
    config_file = getattr(args, "config", None)
    if getattr(args, "run", None):
        if config_file:
            raise ValueError("give --config or --run, not both")
        config_file = Path(args.run) / "config.yaml"
        if not config_file.is_file():
            raise FileNotFoundError(f"--run {args.run!r} holds no config.yaml; pass a run "
                                    "directory made by 'cnnlab train'")
    check_int("steps", args.steps, min_value=2)
    cfg = build_config(options, config_file)
    result = lr_find(cfg, start_lr=args.start_lr, end_lr=args.end_lr, num_steps=args.steps)
    if not result.losses:
        raise ValueError("the range test recorded no finite loss; lower --start-lr")
    save_lr_plot(result, args.plot)
    Path(args.plot).with_suffix(".json").write_text(json.dumps(result.to_dict(), indent=1))
    print(f"range test: {len(result.lrs)} batches, lr {result.lrs[0]:.2g} .. "
          f"{result.lrs[-1]:.2g} ({result.stopped}); lowest smoothed loss "
          f"{min(result.losses):.4f} at lr {result.lr_at_min:.3g}; steepest descent at "
          f"lr {result.steepest:.3g}")
    print(f"plot: {args.plot}")
    print(f"suggested: --lr {result.suggestion:.2g}")
    return 0
