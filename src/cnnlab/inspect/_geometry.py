"""The sliding-window geometry of a recorded conv/pool call: kernel, stride, padding, dilation.

Used by ``macs.py`` (MACs per output) and ``receptive.py`` (receptive-field arithmetic), so both
read the call's arguments in one way. Argument positions follow ``torch.nn.functional``:
``conv2d(input, weight, bias, stride, padding, dilation, groups)``,
``conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)``,
``max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)``,
``avg_pool2d(input, kernel_size, stride, padding, ceil_mode, ...)``,
``lp_pool2d(input, norm_type, kernel_size, stride, ceil_mode)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnnlab.inspect._ops import OpCall


@dataclass(frozen=True)
class Window:
    """Per spatial dimension: kernel ``k``, stride ``s``, left padding ``p``, dilation ``d``."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]

    @property
    def extent(self) -> tuple[int, ...]:
        """Dilated kernel extent ``d*(k - 1) + 1``: the input pixels one window spans."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))


def spatial_dims(name: str) -> int:
    """Number of spatial dimensions from an op name: ``"conv2d"`` -> 2, ``"max_pool3d"`` -> 3."""
    return int(name[-2])


def _tuple(value: Any, n: int, default: int) -> tuple[int, ...]:
    if value is None or (isinstance(value, Sequence) and len(value) == 0):
        return (default,) * n
    if isinstance(value, Sequence):
        return tuple(int(v) for v in value) if len(value) == n else (int(value[0]),) * n
    return (int(value),) * n


def window(call: OpCall) -> Window:
    """Geometry of a conv, transposed conv or pooling call.

    Example:
        >>> import torch
        >>> call = OpCall("conv2d", (torch.zeros(1, 1, 5, 5), torch.zeros(4, 1, 3, 1)), {}, None)
        >>> window(call).kernel
        (3, 1)
    """
    name, n = call.name, spatial_dims(call.name)
    if name.startswith("conv_transpose"):
        kernel = tuple(call.arg(1, "weight").shape[2:])
        stride = _tuple(call.arg(3, "stride", 1), n, 1)
        padding = _tuple(call.arg(4, "padding", 0), n, 0)
        return Window(kernel, stride, padding, _tuple(call.arg(7, "dilation", 1), n, 1))
    if name.startswith("conv"):
        kernel = tuple(call.arg(1, "weight").shape[2:])
        dilation = _tuple(call.arg(5, "dilation", 1), n, 1)
        padding = call.arg(4, "padding", 0)
        if padding == "valid":
            padding = (0,) * n
        elif padding == "same":
            # torch pads d*(k - 1) in total, the smaller half (total // 2) before
            padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
        stride = _tuple(call.arg(3, "stride", 1), n, 1)
        return Window(kernel, stride, _tuple(padding, n, 0), dilation)
    if name.startswith("lp_pool"):
        kernel = _tuple(call.arg(2, "kernel_size"), n, 1)
        stride = _tuple(call.arg(3, "stride"), n, 0)
        stride = tuple(s or k for s, k in zip(stride, kernel))
        return Window(kernel, stride, (0,) * n, (1,) * n)
    kernel = _tuple(call.arg(1, "kernel_size"), n, 1)
    stride = _tuple(call.arg(2, "stride"), n, 0)
    stride = tuple(s or k for s, k in zip(stride, kernel))  # stride defaults to the kernel
    padding = _tuple(call.arg(3, "padding", 0), n, 0)
    dilation = _tuple(call.arg(4, "dilation", 1), n, 1) if "max" in name else (1,) * n
    return Window(kernel, stride, padding, dilation)


def raw_output_size(size: int, k: int, s: int, p: int, d: int) -> int:
    """``floor((n + 2p - d*(k - 1) - 1) / s) + 1`` without clamping (may be <= 0).

    The dilated kernel spans ``d*(k - 1) + 1`` pixels and fits at offsets ``0, s, 2s, ...`` of
    the padded input of ``n + 2p`` pixels; see ``cnnlab.layers.shapes.conv_output_size`` for the
    checked, explained version. Here a value <= 0 tells the inspector that the input is too small.

    Example:
        >>> raw_output_size(2, 3, 1, 0, 1)
        0
    """
    return (size + 2 * p - d * (k - 1) - 1) // s + 1
