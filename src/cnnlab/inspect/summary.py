"""``summary``: shapes, parameters, MACs/FLOPs, memory and receptive field of any model.

One forward pass under ``torch.no_grad`` (``_hooks.py``) records every module call and every torch
op; this module turns the records into rows and totals that render as a table (``_render.py``)
and export to dict, JSON and CSV.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from cnnlab.inspect._hooks import CallRecord, ForwardError, record_forward
from cnnlab.inspect.memory import tensor_bytes
from cnnlab.inspect.params import count_params
from cnnlab.inspect.receptive import TensorRF

_GEOMETRY = ("kernel_size", "stride", "padding", "dilation", "groups")


@dataclass
class Row:
    """One module call as shown in the summary.

    Values of a row cover the ops the module runs itself plus those of its descendants that are
    not shown (below the summary's depth), so every column sums to its total.

    Attributes:
        index: position of the call in call order.
        parent: index of the calling row (None for the model itself).
        name: module path (``"layer1.0.conv1"``; ``""`` for the model).
        type: module class name.
        depth: nesting depth (model = 0).
        geometry: ``kernel_size``/``stride``/``padding``/``dilation``/``groups`` where they apply.
        output_shapes: shapes of the returned tensors.
        trainable: trainable parameters (each shared tensor counted once, at its first owner).
        frozen: frozen parameters.
        shared: parameters this module uses that an earlier module owns (not counted again).
        macs: multiply-accumulates (FLOPs = 2 x MACs).
        ops: other operations: comparisons, additions, activations, normalization (one each).
        activation_bytes: bytes of the tensors allocated by its ops.
        rf: receptive field per spatial dimension (input pixels), None off the spatial path.
        jump: effective stride per spatial dimension.
        start: input coordinate of the centre of unit 0's receptive field, per dimension.
        sizes: spatial sizes of the output (None off the spatial path).
        rf_exact: False if ``rf`` is a largest-over-positions bound (after upsampling,
            non-dividing adaptive pooling or strided transposed convolution).
        order: position in the order in which calls returned.
    """

    index: int
    parent: int | None
    name: str
    type: str
    depth: int
    geometry: dict[str, Any] = field(default_factory=dict)
    output_shapes: list[tuple[int, ...]] = field(default_factory=list)
    trainable: int = 0
    frozen: int = 0
    shared: int = 0
    macs: int = 0
    ops: int = 0
    activation_bytes: int = 0
    rf: tuple[float, ...] | None = None
    jump: tuple[float, ...] | None = None
    start: tuple[float, ...] | None = None
    sizes: tuple[int, ...] | None = None
    rf_exact: bool = True
    order: int = -1

    @property
    def params(self) -> int:
        """Trainable + frozen parameters."""
        return self.trainable + self.frozen

    @property
    def flops(self) -> int:
        """FLOPs = 2 x MACs (a multiply and an add)."""
        return 2 * self.macs


@dataclass
class Totals:
    """Whole-model totals (parameters from the root, so shared tensors count once)."""

    params: int
    trainable: int
    frozen: int
    macs: int
    ops: int
    input_bytes: int
    activation_bytes: int
    param_bytes: int
    buffer_bytes: int

    @property
    def flops(self) -> int:
        """FLOPs = 2 x MACs."""
        return 2 * self.macs

    @property
    def total_bytes(self) -> int:
        """Input + activations + parameters + buffers: a forward pass's memory estimate."""
        return self.input_bytes + self.activation_bytes + self.param_bytes + self.buffer_bytes


@dataclass
class Summary:
    """The result of :func:`summary`: every call (all depths), the shown depth, totals, notes.

    Example:
        >>> s = summary(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), (1, 1, 5, 5))
        >>> [r.name for r in s.rows], s.totals.macs
        (['', '0', '1'], 162)
    """

    model_name: str
    input_shapes: list[tuple[int, ...]]
    calls: list[Row]
    depth: int
    totals: Totals
    not_counted: dict[str, int]
    notes: list[str]

    @property
    def rows(self) -> list[Row]:
        """Rows down to ``depth``; hidden descendants' values folded into their shown ancestor."""
        return self.rows_at(self.depth)

    def rows_at(self, depth: int) -> list[Row]:
        """Rows down to ``depth`` (see :attr:`rows`)."""
        shown: dict[int, Row] = {}
        for call in self.calls:
            if call.depth <= depth:
                shown[call.index] = Row(**{**call.__dict__})
        by_index = {c.index: c for c in self.calls}
        for call in self.calls:
            if call.depth <= depth:
                continue
            target = call
            while target.depth > depth:
                target = by_index[target.parent]  # type: ignore[index]
            row = shown[target.index]
            row.trainable += call.trainable
            row.frozen += call.frozen
            row.shared += call.shared
            row.macs += call.macs
            row.ops += call.ops
            row.activation_bytes += call.activation_bytes
        return list(shown.values())

    @property
    def receptive_field(self) -> Row | None:
        """The row of the model's last spatial feature map (some spatial size > 1).

        "Last" is the last call to return, so a fully convolutional model's own output wins and a
        classifier's global pooling (spatial size 1) and head are skipped: for ResNet this is
        ``layer4``, for VGG the output of ``avgpool`` (7 x 7 at 224 x 224 input). If its numbers
        are a bound (``rf_exact`` False, e.g. after a squeeze-and-excitation gate or resampling),
        the table marks them with "≤".
        """
        candidates = [c for c in self.calls if c.rf is not None and c.sizes and max(c.sizes) > 1]
        return max(candidates, key=lambda c: c.order, default=None)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view (JSON-ready) of the shown rows, totals and notes."""
        rf_row = self.receptive_field
        return {
            "model": self.model_name,
            "input_shapes": [list(s) for s in self.input_shapes],
            "depth": self.depth,
            "flops_convention": "FLOPs = 2 x MACs; other_ops are element-wise operations "
                                "(comparisons, additions, activations, normalization), one each",
            "rows": [_row_dict(r) for r in self.rows],
            "totals": {**asdict(self.totals), "flops": self.totals.flops,
                       "total_bytes": self.totals.total_bytes},
            "receptive_field": None if rf_row is None else {
                "layer": rf_row.name, "rf": list(rf_row.rf), "jump": list(rf_row.jump),
                "start": list(rf_row.start)},
            "not_counted": dict(self.not_counted),
            "notes": list(self.notes),
        }  # fmt: skip

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self) -> str:
        """CSV text, one line per shown row (spatial values joined by ``x``)."""
        buf = io.StringIO()
        rows = [_row_dict(r) for r in self.rows]
        fields = list(rows[0]) if rows else []
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(v) for k, v in row.items()})
        return buf.getvalue()

    def __str__(self) -> str:
        from cnnlab.inspect._render import render_text

        return render_text(self)

    def __rich__(self):  # pragma: no cover - exercised through rich printing
        from cnnlab.inspect._render import render_table

        return render_table(self)


def _row_dict(row: Row) -> dict[str, Any]:
    return {
        "name": row.name, "type": row.type, "depth": row.depth,
        **{k: _plain(row.geometry.get(k)) for k in _GEOMETRY},
        "output_shape": [list(s) for s in row.output_shapes],
        "params": row.params, "trainable": row.trainable, "frozen": row.frozen,
        "shared": row.shared, "macs": row.macs, "flops": row.flops, "other_ops": row.ops,
        "activation_bytes": row.activation_bytes,
        "rf": _plain(row.rf), "jump": _plain(row.jump), "start": _plain(row.start),
        "rf_exact": row.rf_exact if row.rf else None,
    }  # fmt: skip


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _csv_value(value: Any) -> Any:
    if isinstance(value, list):
        if value and isinstance(value[0], list):
            return ";".join("x".join(str(v) for v in shape) for shape in value)
        return "x".join(str(v) for v in value)
    return "" if value is None else value


def _as_inputs(
    inputs: Any, device: torch.device, dtype: torch.dtype
) -> tuple[tuple, dict]:
    """Positional and keyword inputs from a size, several sizes, a tensor or tensors."""

    def is_size(v: Any) -> bool:
        return isinstance(v, (tuple, list, torch.Size)) and len(v) > 0 and all(
            isinstance(n, int) and not isinstance(n, bool) for n in v
        )

    def make(size: Sequence[int]) -> torch.Tensor:
        if any(n < 1 for n in size):
            raise ValueError(
                f"input_size must contain positive ints (batch, channels, *spatial), "
                f"got {tuple(size)}"
            )
        return torch.zeros(tuple(size), device=device, dtype=dtype)

    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if is_size(inputs):
        return (make(inputs),), {}
    if isinstance(inputs, Mapping) and all(
        is_size(v) or isinstance(v, torch.Tensor) for v in inputs.values()
    ):
        return (), {k: make(v) if is_size(v) else v for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)) and inputs:
        if all(is_size(v) or isinstance(v, torch.Tensor) for v in inputs):
            return tuple(make(v) if is_size(v) else v for v in inputs), {}
    raise ValueError(
        "input_size must be a shape including the batch dimension like (1, 3, 224, 224), a list "
        "of shapes (several inputs), a tensor, a tuple of tensors or a dict of them; "
        f"got {inputs!r}"
    )


def _module_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


def _has_lazy(model: nn.Module) -> bool:
    return any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters())


def _meta_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Shape-only copies of the parameters and buffers (tied tensors once: they stay tied)."""
    named = [*model.named_parameters(), *model.named_buffers()]
    return {name: torch.empty_like(t, device="meta") for name, t in named}


def _to_meta(obj: Any) -> Any:
    """The same nesting of tuples/lists/dicts with every tensor replaced by a meta tensor."""
    if isinstance(obj, torch.Tensor):
        return torch.empty_like(obj, device="meta")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_meta(v) for v in obj)
    if isinstance(obj, dict):
        return {k: _to_meta(v) for k, v in obj.items()}
    return obj


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
