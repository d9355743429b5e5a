"""``cnnlab train``: one flag per TrainConfig field, ``--config run.yaml``, ``--resume runs/X``.

The flags are generated from :class:`cnnlab.train.TrainConfig`, so every YAML key is a flag and
every flag a YAML key; each flag's help is its field's ``metadata["help"]``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

_NONE = ("none", "null")
_TORCHRUN = """\
many processes (torch.distributed, DDP; --batch-size is the global batch, split evenly):
  one machine, N processes (GPUs, or gloo on CPUs):
    torchrun --standalone --nproc-per-node=N -m cnnlab train ARGS
  M machines (run on each, R = 0..M-1):
    torchrun --nnodes=M --node-rank=R --nproc-per-node=N --rdzv-backend=c10d \\
             --rdzv-endpoint=HOST:PORT -m cnnlab train ARGS
  add --max-restarts=K to resume from the last checkpoint after a failed process;
  one process on a chosen GPU: cnnlab train --device cuda:1 ARGS
"""


def _converter(kind: type, optional: bool, name: str) -> Any:
    def convert(text: str) -> Any:
        if optional and text.lower() in _NONE:
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {kind.__name__}{' or none' if optional else ''}, got {text!r}"
            ) from None

    convert.__name__ = name
    return convert


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cnnlab train``."""
    parser = subparsers.add_parser(
        "train",
        help="train an image classifier into a run directory",
        description=(
            "Train a CNN. With no arguments: simple_cnn on the bundled digits dataset. "
            "Precedence: defaults < --preset < --config YAML < flags."
        ),
        argument_default=argparse.SUPPRESS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_TORCHRUN,
    )
    parser.add_argument("--config", metavar="YAML", help="read settings from a YAML file")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last epoch")
    parser.add_argument(
        "--print-config", action="store_true", help="print the effective config as YAML and exit"
    )
    add_config_flags(parser)
    parser.set_defaults(func=run)
    return parser


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per TrainConfig field (``cnnlab train``, ``cnnlab lr-find``)."""
    import dataclasses

    from cnnlab.train.config import TrainConfig, field_help
    from cnnlab.train.presets import PRESETS

    helps = field_help()
    hints = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        # Read defaults off the fields: building a TrainConfig would import torch (slow --help).
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = f"{helps.get(f.name, '')} (default: {default})"
        hint = hints[f.name]
        optional = "None" in hint
        if f.name == "model_args":
            parser.add_argument(
                "--model-arg", dest="model_args", action="append", metavar="KEY=VALUE",
                help="extra model constructor argument, repeatable (e.g. dropout=0.3)",
            )
        elif hint.startswith("bool"):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                help=text)
        elif f.name == "preset":
            parser.add_argument(flag, dest=f.name, choices=sorted(PRESETS), help=text)
        else:
            kind = int if hint.startswith("int") else float if hint.startswith("float") else str
            parser.add_argument(flag, dest=f.name, type=_converter(kind, optional, kind.__name__),
                                metavar=f.name.upper(), help=text)


def config_options(args: argparse.Namespace, skip: tuple[str, ...]) -> dict[str, Any]:
    """The TrainConfig fields given on the command line (``--model-arg`` parsed)."""
    options = {k: v for k, v in vars(args).items()
               if k not in ("func", "command", "traceback", *skip)}
    if "model_args" in options:
        options["model_args"] = _model_args(options["model_args"])
    return options


def _model_args(items: list[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--model-arg must be KEY=VALUE, got {item!r}")
        out[key.replace("-", "_")] = yaml.safe_load(value)
    return out


def run(args: argparse.Namespace) -> int:
    """Run ``cnnlab train``."""
    from cnnlab.train import TrainingDiverged, build_config, fit

    options = config_options(args, ("config", "resume", "print_config"))
    resume = getattr(args, "resume", None)
    if getattr(args, "print_config", False):
        if resume:
            raise ValueError("--print-config cannot be combined with --resume")
        print(build_config(options, getattr(args, "config", None)).to_yaml(), end="")
        return 0
    try:
        if resume:
            if getattr(args, "config", None):
                raise ValueError("--resume uses the run's saved config; leave out --config")
            fit(resume=resume, **options)
        else:
            fit(config_file=getattr(args, "config", None), **options)
    except TrainingDiverged as exc:
        print(f"cnnlab train: stopped: {exc}", file=sys.stderr)
        return 1
    return 0
