"""``trace``: the course habit "for layer in net: X = layer(X); print(name, X.shape)" as a function.

Unlike the loop, it works for any model (not only ``nn.Sequential``): the forward pass runs once
with hooks and every module call, at the requested depth, is printed in call order.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from torch import nn

from cnnlab.inspect._hooks import record_forward
from cnnlab.inspect._inputs import _as_inputs, _module_device_dtype


def trace(
    model: nn.Module,
    x: Any,
    *,
    depth: int = 1,
    file: TextIO | None = None,
) -> list[tuple[str, str, list[tuple[int, ...]]]]:
    """Print each layer's name, type and output shape as ``x`` flows through ``model``.

    Args:
        model: any module.
        x: an input tensor (or tuple/dict of them), or an input shape with the batch dimension.
        depth: nesting depth of the printed calls (1: the model's direct children).
        file: where to print (default: standard output).

    Returns:
        ``(name, type, output shapes)`` per printed call, in call order.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2))
        >>> _ = trace(net, (1, 1, 28, 28))
        0  Conv2d     output shape: (1, 6, 28, 28)
        1  Sigmoid    output shape: (1, 6, 28, 28)
        2  AvgPool2d  output shape: (1, 6, 14, 14)
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an int >= 0, got {depth!r}")
    device, dtype = _module_device_dtype(model)
    args, kwargs = _as_inputs(x, device, dtype)
    recording = record_forward(model, args, kwargs)
    rows = [
        (r.name or "(model)", type(r.module).__name__, r.output_shapes)
        for r in recording.records
        if r.depth == depth or (r.depth < depth and not _has_children(r.module))
    ]
    file = sys.stdout if file is None else file
    if rows:
        w_name = max(len(r[0]) for r in rows)
        w_type = max(len(r[1]) for r in rows)
        for name, kind, shapes in rows:
            shown = ", ".join(str(s) for s in shapes) if shapes else "(no tensor)"
            print(f"{name:<{w_name}}  {kind:<{w_type}}  output shape: {shown}", file=file)
    return rows


def _has_children(module: nn.Module) -> bool:
    return next(module.children(), None) is not None
