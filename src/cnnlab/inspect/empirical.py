"""Empirical receptive field: the input pixels on which one central output unit depends.

The analytic numbers of ``receptive.py`` are checked against autograd: the receptive field of a
unit is the support of the gradient of that unit with respect to the input. To make the support
exact (no zero gradient by accident), the model runs on a stand-in of itself:

* every weight is replaced by a positive value near ``1 / fan_in``, every bias by 0, batch norm
  by the identity (running mean 0, variance 1, scale 1): all activations stay positive and
  small, so ReLU passes everything and no sum of contributions cancels;
* max pooling is replaced by average pooling of the same geometry: a max sends gradient only to
  the winner of each window, an average to the whole window, which is the window's field;
* the input is a tiny constant in float64, so activations stay below the caps of ReLU6-like
  functions and gradients of units at the far edge of the field (a product of ``1/9`` per 3x3
  layer along the longest path) stay far above underflow.

Parameters are swapped with ``torch.func.functional_call``: the user's model is not modified and
may even live on the ``meta`` device. The input must be large enough for the field of the central
unit to fit; :class:`ReceptiveField` reports when the analytic field is clipped by the border.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

from cnnlab.inspect._geometry import spatial_dims, window
from cnnlab.inspect._ops import OpCall, iter_tensors, op_name
from cnnlab.inspect.summary import Row, summary


@dataclass(frozen=True)
class ReceptiveField:
    """Empirical and analytic receptive field of one central output unit.

    Attributes:
        layer: module path whose output unit was measured (``""``: the model output).
        unit: index of the unit along each spatial dimension of that output.
        input_size: spatial size of the input used.
        box: first and last input pixel of the gradient support, per spatial dimension.
        analytic_box: the analytic interval of the same unit (may extend past the border).
        exact: False if the analytic numbers are a largest-over-positions bound (after a
            broadcast gate, upsampling, non-dividing adaptive pooling): then only the size is
            a bound and the box is approximate.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3))
        >>> rf = receptive_field(net, (1, 1, 16, 16))
        >>> rf.size, rf.analytic_size, rf.agrees
        ((8, 8), (8, 8), True)
    """

    layer: str
    unit: tuple[int, ...]
    input_size: tuple[int, ...]
    box: tuple[tuple[int, int], ...]
    analytic_box: tuple[tuple[float, float], ...]
    exact: bool = True

    @property
    def size(self) -> tuple[int, ...]:
        """Empirical receptive field per dimension: ``last - first + 1`` pixels."""
        return tuple(hi - lo + 1 for lo, hi in self.box)

    @property
    def analytic_size(self) -> tuple[float, ...]:
        """Analytic receptive field per dimension (unclipped)."""
        return tuple(_int(hi - lo + 1) for lo, hi in self.analytic_box)

    @property
    def clipped_dims(self) -> tuple[bool, ...]:
        """Per dimension: does the analytic field reach past the input border?"""
        pairs = zip(self.analytic_box, self.input_size)
        return tuple(lo < 0 or hi > n - 1 for (lo, hi), n in pairs)

    @property
    def clipped(self) -> bool:
        """True if the analytic field reaches past the input border in some dimension."""
        return any(self.clipped_dims)

    @property
    def agrees(self) -> bool:
        """Analytic and empirical agree: equal intervals in every unclipped dimension, and in a
        clipped one the support lies inside the analytic interval (pixels past the last window of
        an unpadded layer may be unused, so a clipped support can be smaller). For inexact
        numbers, the analytic size must bound the support's size.
        """
        if not self.exact:
            return all(e <= a for e, a in zip(self.size, self.analytic_size))
        for (lo, hi), (a_lo, a_hi), clip in zip(self.box, self.analytic_box, self.clipped_dims):
            if (not clip and (lo, hi) != (a_lo, a_hi)) or (clip and not a_lo <= lo <= hi <= a_hi):
                return False
        return True


def _int(v: float) -> float:
    return int(v) if float(v).is_integer() else v


class _Stop(Exception):
    """Raised by the capture hook once the measured layer has run: the rest is not needed."""


class _MaxToAvg(TorchFunctionMode):
    """Runs max pooling as average pooling of the same geometry (see module docstring)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = op_name(func)
        if name.startswith("adaptive_max_pool"):
            out = getattr(F, name.replace("max", "avg"))(args[0], *args[1:2], **{
                k: v for k, v in kwargs.items() if k == "output_size"})  # fmt: skip
            return (out, func(*args, **kwargs)[1]) if _wants_indices(args, kwargs, 2) else out
        if name.startswith("max_pool"):
            call = OpCall(name, args, kwargs, None)
            out = _avg_like_max(call, func(*args, **kwargs))
            return out
        return func(*args, **kwargs)


def _wants_indices(args: tuple, kwargs: dict, index: int) -> bool:
    return bool(args[index] if len(args) > index else kwargs.get("return_indices", False))


def _avg_like_max(call: OpCall, real: Any) -> Any:
    """Average pooling over exactly the windows of a max-pooling call (any dilation/ceil mode)."""
    real_out = real[0] if isinstance(real, tuple) else real
    x, n, win = call.input, spatial_dims(call.name), window(call)
    channels = x.shape[-n - 1]
    # an all-(1/taps) depthwise kernel with the pooling's dilation is an average over the window
    kernel = torch.full((channels, 1, *win.kernel), 1.0 / max(1, torch.Size(win.kernel).numel()),
                        dtype=x.dtype, device=x.device)  # fmt: skip
    pads: list[int] = []
    for i in reversed(range(n)):  # F.pad lists the last dimension first
        size, out = x.shape[i - n], real_out.shape[i - n]
        # ceil_mode may need extra pixels on the right: the last window ends at
        # (out - 1)*s + d*(k - 1) + 1 of the left-padded input
        right = max(0, (out - 1) * win.stride[i] + win.extent[i] - (size + win.padding[i]))
        pads += [win.padding[i], right]
    xp = F.pad(x, pads)
    conv = getattr(F, f"conv{n}d")
    batched = xp if xp.ndim == n + 2 else xp.unsqueeze(0)
    out = conv(batched, kernel, stride=win.stride, dilation=win.dilation, groups=channels)
    out = out if xp.ndim == n + 2 else out.squeeze(0)
    out = out[tuple(slice(0, s) for s in real_out.shape)]
    return (out, real[1]) if isinstance(real, tuple) else out


def _stand_in(
    model: nn.Module, device: torch.device, dtype: torch.dtype, used: set[str]
) -> dict[str, Any]:
    """Positive parameters and identity batch-norm statistics (module docstring).

    Weights are drawn from ``[0.5, 1.5) / fan_in`` (seeded): positive, so no contribution cancels
    another, and not all equal, so a normalization over channels followed by a channel sum does
    not cancel exactly either. Tied tensors appear once (``functional_call`` keeps them tied).
    Only modules in ``used`` (those that run before the measured layer returns) get stand-ins:
    the forward pass stops there, so a classifier head's weights are never needed.
    """
    gen = torch.Generator().manual_seed(0)
    values: dict[str, Any] = {}
    for name, p in model.named_parameters():
        if name.rpartition(".")[0] not in used:
            continue
        if name.endswith("bias"):
            values[name] = torch.zeros(p.shape, dtype=dtype, device=device)
        elif p.ndim >= 2:
            fan_in = max(1, p[0].numel())  # a weighted average over the window
            noise = torch.rand(p.shape, generator=gen, dtype=dtype) + 0.5
            values[name] = (noise / fan_in).to(device)
        else:
            values[name] = torch.ones(p.shape, dtype=dtype, device=device)  # norm scales, PReLU
    for name, b in model.named_buffers():
        if name.endswith("running_mean"):
            values[name] = torch.zeros(b.shape, dtype=dtype, device=device)
        elif name.endswith("running_var"):
            values[name] = torch.ones(b.shape, dtype=dtype, device=device)
        elif b.is_floating_point():
            values[name] = (torch.zeros(b.shape) if b.is_meta else b).to(device, dtype)
        else:
            values[name] = torch.zeros(b.shape, dtype=b.dtype) if b.is_meta else b.to(device)
    return values


def _pick(calls: list[Row], layer: str | None, chosen: Row | None) -> Row:
    if layer is None:
        if chosen is None:
            raise ValueError(
                "the model has no spatial feature map larger than 1 unit for this input size; "
                "pass layer=... or a larger input_size"
            )
        return chosen
    for row in calls:
        if row.name == layer:
            if row.rf is None:
                raise ValueError(
                    f"layer={layer!r} is not on a spatial path (output {row.output_shapes}); "
                    "valid: a layer with a spatial output"
                )
            return row
    names = [r.name for r in calls if r.rf is not None and r.name]
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.4)
    raise ValueError(
        f"layer={layer!r} is not a module with a spatial output called in forward; closest "
        f"valid names: {', '.join(close) or ', '.join(names[:5])} (of {len(names)})"
    )


def receptive_field(
    model: nn.Module,
    input_size: Sequence[int],
    *,
    layer: str | None = None,
    dtype: torch.dtype = torch.float64,
) -> ReceptiveField:
    """Measure the receptive field of the central unit of a layer's output by autograd.

    Args:
        model: any module taking one image-like input ``(N, C, *spatial)``.
        input_size: input shape including the batch dimension, e.g. ``(1, 3, 448, 448)``; it
            must exceed the receptive field or the result is clipped (see ``.clipped``).
        layer: module path whose output is measured; default: the last spatial feature map
            (the same layer as :attr:`Summary.receptive_field`, e.g. ``layer4`` of a ResNet).
        dtype: computation dtype; float64 keeps far-edge gradients of deep nets above underflow.

    Returns:
        A :class:`ReceptiveField` with the gradient support and the analytic interval.

    Example:
        >>> rf = receptive_field(nn.Conv2d(1, 1, 5, dilation=2), (1, 1, 20, 20))
        >>> rf.size, rf.agrees
        ((9, 9), True)
    """
    size = tuple(input_size) if isinstance(input_size, (tuple, list, torch.Size)) else None
    if not size or len(size) < 3 or any(not isinstance(v, int) or v < 1 for v in size):
        raise ValueError(
            f"input_size must be a shape (batch, channels, *spatial) of positive ints like "
            f"(1, 3, 448, 448), got {input_size!r}"
        )
    first = next(iter([*model.parameters(), *model.buffers()]), None)
    device = torch.device("cpu") if first is None or first.is_meta else first.device
    # the analytic pass: free for a model on the meta device, one no_grad forward otherwise
    where = "meta" if first is not None and first.is_meta else device
    analytic = summary(model, torch.zeros(size, device=where), depth=10**6)
    row = _pick(analytic.calls, layer, analytic.receptive_field)
    target = model.get_submodule(row.name) if row.name else model
    occurrence = sum(1 for r in analytic.calls if r.index < row.index and r.name == row.name)
    # calls are in pre-order: the measured call's subtree ends before the next call at its depth
    later = [r.index for r in analytic.calls if r.index > row.index and r.depth <= row.depth]
    end = min(later, default=len(analytic.calls))
    used = {r.name for r in analytic.calls if r.index < end}

    captured: list[torch.Tensor] = []

    def capture(module: nn.Module, args: Any, output: Any) -> None:
        if len(captured) == occurrence:
            captured.append(next(iter_tensors(output)))
            raise _Stop
        captured.append(None)  # an earlier call of a shared module

    # a tiny constant input: the stand-in is positively homogeneous, so gradients do not depend
    # on the scale, while activations stay far below the caps of ReLU6/hardtanh even after
    # residual sums double them block after block
    x = torch.full(size, 2.0**-20, dtype=dtype, device=device, requires_grad=True)
    handle = target.register_forward_hook(capture)
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with _MaxToAvg():
            functional_call(model, _stand_in(model, device, dtype, used), (x,), strict=False)
    except _Stop:
        pass
    finally:
        handle.remove()
        for module, mode in modes:
            module.training = mode
    out = captured[occurrence]
    n = len(row.rf)
    unit = tuple(s // 2 for s in out.shape[-n:])
    # all channels of the unit (concatenated branches differ), weighted by fixed positive weights
    # in [0.5, 1.5): a plain sum could cancel exactly after a normalization over channels
    # (each row of its Jacobian sums to zero), a generic weighting does not
    value = out[0][(..., *unit)]  # (C,) or ()
    gen = torch.Generator().manual_seed(0)
    weights = torch.rand(value.shape, generator=gen, dtype=torch.float64) + 0.5
    (grad,) = torch.autograd.grad((value * weights.to(value)).sum(), x)
    support = grad[0].abs().reshape(-1, *grad.shape[-n:]).sum(0) > 0  # (*spatial)
    box = []
    for d in range(n):
        hits = support.flatten(0, d - 1).any(0) if d else support
        hits = hits.flatten(1).any(1) if hits.ndim > 1 else hits
        idx = hits.nonzero().flatten()
        box.append((int(idx.min()), int(idx.max())))
    analytic_box = tuple(
        (start + u * jump - (rf - 1) / 2, start + u * jump + (rf - 1) / 2)
        for rf, jump, start, u in zip(row.rf, row.jump, row.start, unit)
    )
    return ReceptiveField(
        row.name, unit, tuple(size[-n:]), tuple(box), analytic_box, exact=row.rf_exact
    )
