"""``cnnlab summary MODEL --input 3x224x224``: the layer table of a zoo model or any importable one.

``MODEL`` is a name of the cnnlab model zoo (``cnnlab models`` lists them), an import path
``package.module:callable`` (e.g. ``torchvision.models:resnet18``; the callable is called without
arguments, or with ``num_classes`` when ``--num-classes`` is given; a module instance is used as
is), ``torchvision:NAME`` / ``timm:NAME`` for any torchvision classifier or timm model by name
(built without weights, see :mod:`cnnlab.models.external`), or a run directory / checkpoint
(its trained model, rebuilt from the run's metadata).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from pathlib import Path
from typing import Any

_FORMATS = ("table", "json", "csv")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cnnlab summary``."""
    parser = subparsers.add_parser(
        "summary",
        help="per-layer shapes, parameters, MACs/FLOPs, memory and receptive field of a model",
        description=(
            "One hooked forward pass (shape-only, on meta tensors: no arithmetic, same numbers); "
            "prints every layer's output shape, parameters, MACs and FLOPs (= 2 x MACs), other "
            "ops, activation memory and receptive field (RF, jump, start)."
        ),
    )
    parser.add_argument(
        "model",
        help="zoo name (e.g. resnet18), package.module:callable, torchvision:NAME, timm:NAME, "
        "or a run directory",
    )
    parser.add_argument(
        "--input", required=True, metavar="CxHxW",
        help="input shape without the batch dimension, e.g. 3x224x224; several inputs: "
        "3x224x224,1x224x224",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=1, help="batch dimension (default 1)")
    parser.add_argument("--depth", type=int, default=3, help="deepest level shown (default 3)")
    parser.add_argument("--format", default="table", choices=_FORMATS, help="output format")
    parser.add_argument(
        "--num-classes", type=int, default=None,
        help="classes of the model's head (default: the model's own default)",
    )  # fmt: skip
    parser.set_defaults(func=run)
    return parser


def parse_input(text: str, batch_size: int = 1) -> list[tuple[int, ...]]:
    """Parse ``"3x224x224"`` (or ``"3x224x224,1x64x64"``) to shapes with a batch dimension.

    Example:
        >>> parse_input("3x224x224")
        [(1, 3, 224, 224)]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"--batch-size must be an integer >= 1, got {batch_size!r}")
    shapes = []
    for part in str(text).split(","):
        dims = part.strip().lower().replace("×", "x").split("x")
        try:
            values = tuple(int(d) for d in dims)
        except ValueError:
            values = ()
        if len(values) < 2 or any(v < 1 for v in values):
            raise ValueError(
                f"--input must be channels x spatial sizes of positive integers like 3x224x224 "
                f"(or 1x28x28, or 3x224x224,1x224x224 for two inputs), got {text!r}"
            )
        shapes.append((batch_size, *values))
    return shapes


def load_model(
    spec: str, *, in_channels: int | None = None, num_classes: int | None = None
) -> Any:
    """Build ``spec``: a zoo name, ``package.module:callable``, ``torchvision:NAME``,
    ``timm:NAME``, or a run directory / ``.safetensors`` checkpoint (the trained model).

    Example:
        >>> type(load_model("torchvision.models:resnet18")).__name__
        'ResNet'
    """
    from torch import nn

    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if spec.endswith(".safetensors") or Path(spec).is_dir():  # a run: its own trained model
        from cnnlab.checkpoint import load_model as load_run

        return load_run(spec)[0]
    if ":" not in spec:
        from cnnlab import models

        options = {**kwargs}
        if in_channels is not None:
            options["in_channels"] = in_channels
        return models.create(spec, **options)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"MODEL {spec!r} must look like package.module:callable")
    if module_name in ("torchvision", "timm"):
        from cnnlab.models import create

        # The libraries' own default head is ImageNet's 1000 classes.
        options = {"num_classes": 1000, **kwargs, "in_channels": in_channels or 3}
        return create(spec, **options)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"MODEL {spec!r}: cannot import module {module_name!r} ({exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, public, n=5, cutoff=0.5)
            hint = f"; closest names: {', '.join(close)}" if close else ""
            raise ValueError(f"MODEL {spec!r}: {module_name} has no attribute {attr!r}{hint}")
        obj = getattr(obj, part)
    if not isinstance(obj, nn.Module):
        if not callable(obj):
            raise ValueError(f"MODEL {spec!r} is neither an nn.Module nor a callable")
        try:
            obj = obj(**kwargs)
        except TypeError as exc:
            raise ValueError(f"MODEL {spec!r}: calling {attr}({', '.join(kwargs)}) failed: {exc}; "
                             "valid: a callable that builds the model without arguments") from None
    if not isinstance(obj, nn.Module):
        raise ValueError(f"MODEL {spec!r} returned {type(obj).__name__}, not a torch.nn.Module")
    return obj


def run(args: argparse.Namespace) -> int:
    """Run ``cnnlab summary``."""
    from rich.console import Console

    from cnnlab.inspect import summary

    shapes = parse_input(args.input, args.batch_size)
    if args.depth < 0:
        raise ValueError(f"--depth must be >= 0, got {args.depth}")
    model = load_model(args.model, in_channels=shapes[0][1], num_classes=args.num_classes)
    result = summary(model, shapes[0] if len(shapes) == 1 else shapes, depth=args.depth)
    if args.format == "json":
        print(result.to_json())
    elif args.format == "csv":
        sys.stdout.write(result.to_csv())
    else:
        width = None if sys.stdout.isatty() else 200
        Console(width=width, highlight=False).print(result)
    return 0
