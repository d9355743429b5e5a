"""``summary``: shapes, parameters, MACs/FLOPs, memory and receptive field of any model.

One forward pass under ``torch.no_grad`` (``_hooks.py``) records every module call and every torch
op; this module (the measuring pass) turns the records into the rows and totals of
``result.py``, whose :class:`Summary` renders as a table (``_render.py``) and exports to dict,
JSON and CSV. Input handling is ``_inputs.py``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cnnlab.inspect._hooks import CallRecord, ForwardError, record_forward
from cnnlab.inspect._inputs import (
    _as_inputs,
    _has_lazy,
    _meta_state,
    _module_device_dtype,
    _to_meta,
)
from cnnlab.inspect._render import render_table, render_text
from cnnlab.inspect.memory import tensor_bytes
from cnnlab.inspect.params import count_params
from cnnlab.inspect.receptive import TensorRF
from cnnlab.inspect.result import _GEOMETRY, Row, SummaryData, Totals

__all__ = ["Row", "Summary", "Totals", "summary"]


class Summary(SummaryData):
    """The result of :func:`summary`: :class:`~cnnlab.inspect.result.SummaryData` that prints.

    ``str(s)`` is the plain-text table; rich renders it as a rich table.

    Example:
        >>> s = summary(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), (1, 1, 5, 5))
        >>> [r.name for r in s.rows], s.totals.macs
        (['', '0', '1'], 162)
    """

    def __str__(self) -> str:
        return render_text(self)

    def __rich__(self):  # pragma: no cover - exercised through rich printing
        return render_table(self)


def _geometry(module: nn.Module) -> dict[str, Any]:
    if not hasattr(module, "kernel_size"):
        return {}
    out = {}
    for key in _GEOMETRY:
        value = getattr(module, key, None)
        if value is not None:
            out[key] = value if not isinstance(value, list) else tuple(value)
    return out


def _rf_tuple(rf: TensorRF | None) -> tuple[tuple, ...] | None:
    if not rf:
        return None
    dims = [rf[d] for d in sorted(rf)]
    return (
        tuple(d.rf for d in dims), tuple(d.jump for d in dims),
        tuple(d.start for d in dims), tuple(d.size for d in dims), all(d.exact for d in dims),
    )  # fmt: skip


def _to_row(call: CallRecord, owned: dict, shared: dict, first: set[int]) -> Row:
    trainable, frozen = owned.get(call.name, (0, 0))
    n_shared = shared.get(call.name, 0)
    if id(call.module) in first:  # called again: its parameters belong to its first call
        trainable, frozen, n_shared = 0, 0, trainable + frozen + n_shared
    first.add(id(call.module))
    rf = _rf_tuple(call.rf)
    row = Row(
        index=call.index, parent=call.parent, name=call.name,
        type=type(call.module).__name__, depth=call.depth, geometry=_geometry(call.module),
        output_shapes=call.output_shapes, trainable=trainable, frozen=frozen, shared=n_shared,
        macs=call.macs, ops=call.ops, activation_bytes=call.activation_bytes,
        rf=rf[0] if rf else None, jump=rf[1] if rf else None, start=rf[2] if rf else None,
        sizes=rf[3] if rf else None, rf_exact=rf[4] if rf else True, order=call.finished,
    )  # fmt: skip
    return row


def summary(
    model: nn.Module,
    input_size: Any,
    *,
    depth: int = 3,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    train: bool = False,
    compute: bool = False,
    **forward_kwargs: Any,
) -> Summary:
    """Summarize a model: per-layer shapes, parameters, MACs/FLOPs, memory and receptive field.

    One forward pass under ``torch.no_grad`` in eval mode (``train=True`` for training mode);
    every module's mode is restored afterwards and the hooks removed, also on failure. By default
    the pass is shape-only: parameters, buffers and inputs are swapped for ``meta`` tensors
    (``torch.func.functional_call``; the model itself is untouched), which gives the same shapes,
    counts and receptive fields without any arithmetic. A model whose forward needs real values
    (data-dependent branches, ``.item()``) falls back to a real pass automatically.

    Args:
        model: any ``nn.Module``.
        input_size: an input shape *including the batch dimension* (as torchinfo), e.g.
            ``(1, 3, 224, 224)``; a list of shapes for several inputs; or example input(s): a
            tensor, a tuple of tensors, a dict of keyword inputs.
        depth: deepest nesting level shown as rows (the model is depth 0); deeper calls are
            folded into their shown ancestor, so totals never change with ``depth``.
        device: where the zero inputs are created (default: where the model's parameters are;
            a model built on the ``meta`` device is summarized without any compute).
        dtype: dtype of created inputs (default: the model's floating dtype).
        train: run in training mode.
        compute: always run the real arithmetic on ``device`` (no shape-only pass).
        **forward_kwargs: extra keyword arguments for ``model.forward``.

    Returns:
        A :class:`Summary`; ``print(s)`` shows the table, ``s.to_json()`` exports.

    Raises:
        ValueError: bad ``input_size``/``depth``, or an input too small for the model (names the
            first layer where the spatial size reaches zero and that size).
        ForwardError: the forward pass failed (a ``ValueError`` naming the failing layer).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        >>> s = summary(net, (1, 3, 32, 32))
        >>> s.totals.params, s.totals.macs, s.rows[-1].rf
        (224, 221184, (4, 4))
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an int >= 0, got {depth!r}")
    model_device, model_dtype = _module_device_dtype(model)
    device = torch.device(device) if device is not None else model_device
    args, kwargs = _as_inputs(input_size, device, dtype or model_dtype)
    kwargs.update(forward_kwargs)
    recording, how = None, "real forward pass"
    if not compute and device.type != "meta" and not _has_lazy(model):
        meta_args, meta_kwargs = _to_meta((args, kwargs))
        try:
            recording = record_forward(
                model, meta_args, meta_kwargs, train=train, state=_meta_state(model)
            )
            how = "shape-only pass on meta tensors (no arithmetic; compute=True runs a real one)"
        except ForwardError:
            recording = None  # needs real values: run for real below
    if recording is None:
        recording = record_forward(model, args, kwargs, train=train)
        how = "real forward pass" if device.type != "meta" else "pass on the meta device"

    counts = count_params(model)
    first: set[int] = set()
    calls = [_to_row(c, counts.owned, counts.shared, first) for c in recording.records]
    inputs = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
    notes = [f"computed with one {how}, eval mode" if not train else f"computed with one {how}"]
    called = {c.name for c in recording.records}
    unused = {n: tf for n, tf in counts.owned.items() if n not in called and sum(tf)}
    if unused:
        n_unused = sum(sum(tf) for tf in unused.values())
        notes.append(
            f"{n_unused:,} parameters belong to modules not called in forward "
            f"({', '.join(sorted(unused))}); they are in the totals but in no row"
        )
    if counts.shared:
        notes.append(
            "shared parameters counted once, at their first owner: "
            + ", ".join(f"{n} reuses {v:,}" for n, v in counts.shared.items())
        )
    totals = Totals(
        params=counts.total, trainable=counts.trainable, frozen=counts.frozen,
        macs=sum(c.macs for c in calls), ops=sum(c.ops for c in calls),
        input_bytes=sum(tensor_bytes(t) for t in inputs),
        activation_bytes=sum(c.activation_bytes for c in calls),
        param_bytes=counts.param_bytes, buffer_bytes=counts.buffer_bytes,
    )  # fmt: skip
    return Summary(
        model_name=type(model).__name__,
        input_shapes=[tuple(t.shape) for t in inputs],
        calls=calls,
        depth=depth,
        totals=totals,
        not_counted=dict(recording.not_counted),
        notes=notes,
    )
