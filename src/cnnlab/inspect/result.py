"""The result types of ``summary`` (rows, totals, the summary) and their dict/JSON/CSV export.

Rendering them as a table is ``_render.py``'s job; measuring them, ``summary.py``'s.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn  # noqa: F401  (used by the docstring example)

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
class SummaryData:
    """What :func:`cnnlab.inspect.summary` measured: every call (all depths), the shown depth,
    totals and notes, with its export to dict, JSON and CSV. :class:`cnnlab.inspect.Summary`
    adds the rendering (``str()`` and rich) on top.

    Example:
        >>> from cnnlab.inspect import summary
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
