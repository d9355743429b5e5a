"""``cnnlab shape conv|pool|deconv --size 28 --kernel 3 ...``: an output-size formula, worked out.

Sizes and per-dimension settings are ``28`` or ``HxW`` (e.g. ``28x32``); ``conv`` also takes
``--padding same|valid``. The formulas live in ``cnnlab.layers.shapes``.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

_OPS = ("conv", "pool", "deconv")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cnnlab shape``."""
    parser = subparsers.add_parser(
        "shape",
        help="output size of a conv, pooling or transposed conv, with the formula worked out",
        description=(
            "Print the output-size formula of a convolution, pooling or transposed convolution "
            "(deconv) with the numbers filled in, and the result. Sizes and settings are N or "
            "HxW, e.g. --size 28x32 --kernel 3x5."
        ),
    )
    parser.add_argument("op", choices=_OPS, help="which layer")
    parser.add_argument("--size", required=True, help="input size: N or HxW")
    parser.add_argument("--kernel", required=True, help="kernel size: K or KHxKW")
    parser.add_argument("--stride", default=None,
                        help="stride (default: 1; for pool: the kernel size)")
    parser.add_argument("--padding", default="0",
                        help="padding per side (default 0); conv also takes 'same' or 'valid'")
    parser.add_argument("--dilation", default="1", help="dilation (default 1)")
    parser.add_argument("--ceil", action="store_true", help="pool: round up (ceil_mode)")
    parser.add_argument("--output-padding", default=None,
                        help="deconv: extra size at the end (< stride or dilation; default 0)")
    parser.set_defaults(func=run)
    return parser


def parse_dims(name: str, text: str) -> int | tuple[int, ...]:
    """Parse ``"28"`` to ``28`` and ``"28x32"`` to ``(28, 32)``, naming the flag on error.

    Example:
        >>> parse_dims("--size", "28x32")
        (28, 32)
    """
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"{name} must be an integer or HxW integers like 28 or 28x32, "
                         f"got {text!r}") from None
    return values[0] if len(values) == 1 else values


def run(args: argparse.Namespace) -> int:
    """Run ``cnnlab shape``."""
    from cnnlab.layers import shapes

    if args.ceil and args.op != "pool":
        raise ValueError(f"--ceil applies to pool only, not to {args.op}")
    if args.output_padding is not None and args.op != "deconv":
        raise ValueError(f"--output-padding applies to deconv only, not to {args.op}")
    size = parse_dims("--size", args.size)
    kernel = parse_dims("--kernel", args.kernel)
    dilation = parse_dims("--dilation", args.dilation)
    if args.op == "conv" and args.padding.lower() in ("same", "valid"):
        padding: Any = args.padding.lower()
    else:
        padding = parse_dims("--padding", args.padding)
    stride = None if args.stride is None else parse_dims("--stride", args.stride)
    try:
        if args.op == "conv":
            result = shapes.conv_output_size(size, kernel, 1 if stride is None else stride,
                                             padding, dilation)
        elif args.op == "pool":
            result = shapes.pool_output_size(size, kernel, stride, padding, dilation, args.ceil)
        else:
            op = 0 if args.output_padding is None else parse_dims("--output-padding",
                                                                   args.output_padding)
            result = shapes.conv_transpose_output_size(size, kernel, 1 if stride is None
                                                       else stride, padding, op, dilation)
    except ValueError as exc:
        # the formulas name their arguments in Python style; say the flag the user typed
        message = str(exc)
        for arg in ("kernel_size", "output_padding", "size", "stride", "padding", "dilation"):
            flag = "--kernel" if arg == "kernel_size" else "--" + arg.replace("_", "-")
            message = re.sub(rf"(?<![\w-]){arg}(=| must)", rf"{flag}\1", message)
        raise ValueError(message) from None
    print(result.explain())
    out = result.size
    print(f"result: {out if isinstance(out, int) else 'x'.join(str(v) for v in out)}")
    return 0
