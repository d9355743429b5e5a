"""``cnnlab models [--source zoo|torchvision|timm] [PATTERN]``: models with params and MACs.

Each model is counted at its default input size (the zoo's own; for torchvision and timm
models the size their default weights were trained at).

Models are built on the ``meta`` device (no memory, no weights), and ``cnnlab.inspect.summary``
counts the MACs of one shape-only forward pass, so listing the whole zoo takes seconds.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cnnlab models``."""
    parser = subparsers.add_parser(
        "models",
        help="list the model zoo with parameters and MACs",
        description=(
            "List the registered models (optionally those matching PATTERN: a shell pattern "
            "like 'resnet*', or a substring) with their parameter count and multiply-accumulate "
            "operations (MACs) for one image at the model's default input size."
        ),
    )
    parser.add_argument("pattern", nargs="?", default=None, help="filter, e.g. 'vgg*' or 'mobile'")
    parser.add_argument(
        "--num-classes",
        type=int,
        default=1000,
        help="classes of the head counted (default 1000, as in the papers)",
    )
    parser.add_argument("--in-channels", type=int, default=3, help="image channels (default 3)")
    parser.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="square input size for every model (default: each model's own)",
    )
    parser.add_argument(
        "--source", choices=("zoo", "torchvision", "timm"), default="zoo",
        help="which models: cnnlab's zoo (default), torchvision's classifiers or timm's "
        "(needs the timm extra; give a PATTERN, timm has over a thousand)",
    )  # fmt: skip
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(func=run)
    return parser


def model_rows(
    names: list[str], num_classes: int = 1000, in_channels: int = 3, input_size: int | None = None
) -> list[dict[str, Any]]:
    """Parameters and MACs of each named model, built on the ``meta`` device.

    Example:
        >>> model_rows(["lenet5"], num_classes=10, in_channels=1)[0]["params"]
        61706
    """
    import torch

    from cnnlab.inspect import summary
    from cnnlab.models import create

    rows = []
    for name in names:
        try:
            with torch.device("meta"):
                model = create(name, num_classes=num_classes, in_channels=in_channels)
        except NotImplementedError:  # a builder that computes with tensors (torchvision RegNet)
            model = create(name, num_classes=num_classes, in_channels=in_channels)
        size = input_size or model.default_input_size
        min_size = getattr(model, "min_input_size", None)  # unknown for other libraries' models
        if min_size is not None and size < min_size:
            raise ValueError(
                f"--input-size {size} is below the minimum {model.min_input_size} of {name}; "
                f"use --input-size >= {model.min_input_size} or a pattern without {name}"
            )
        totals = summary(model, (1, in_channels, size, size)).totals
        rows.append(
            {
                "name": name,
                "params": totals.params,
                "macs": totals.macs,
                "input": [in_channels, size, size],
                "min_input_size": min_size,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    """Run ``cnnlab models``."""
    from cnnlab._validate import check_int
    from cnnlab.models import list_models

    check_int("--num-classes", args.num_classes, min_value=1)
    check_int("--in-channels", args.in_channels, min_value=1)
    if args.input_size is not None:
        check_int("--input-size", args.input_size, min_value=1)
    source = getattr(args, "source", "zoo")
    if source == "zoo":
        names = list_models(args.pattern)
        if not names:
            raise ValueError(
                f"no model matches {args.pattern!r}; known models: {', '.join(list_models())}"
            )
    else:
        from cnnlab.models import external

        found = (external.torchvision_names if source == "torchvision" else external.timm_names)(
            args.pattern
        )
        if not found:
            raise ValueError(
                f"no {source} model matches {args.pattern!r}; PATTERN is a shell pattern "
                "('efficientnet_b*') or a substring ('convnext')"
            )
        names = [f"{source}:{n}" for n in found]
    rows = model_rows(names, args.num_classes, args.in_channels, args.input_size)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    from cnnlab.inspect import human_count

    header = ("model", "params", "MACs", "input", "min size")
    lines = [
        (r["name"], human_count(r["params"]), human_count(r["macs"]),
         "x".join(map(str, r["input"])), str(r["min_input_size"] or "-"))
        for r in rows
    ]  # fmt: skip
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    print(fmt.format(*header))
    for line in lines:
        print(fmt.format(*line))
    print(
        f"{len(rows)} models, {args.num_classes} classes; MACs: multiply-accumulates for one "
        "image, counted by cnnlab.inspect.summary"
    )
    return 0
