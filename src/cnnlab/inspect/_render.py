"""Render a summary (:mod:`cnnlab.inspect.result`) as a rich table plus a totals block."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from cnnlab.inspect.memory import human_bytes
from cnnlab.inspect.receptive import fmt

if TYPE_CHECKING:
    from cnnlab.inspect.result import Row
    from cnnlab.inspect.result import SummaryData as Summary


def human_count(n: float) -> str:
    """``1_814_083_944`` -> ``"1.81 G"``.

    Example:
        >>> human_count(1_814_083_944), human_count(512)
        ('1.81 G', '512')
    """
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def _pair(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "×".join(str(v) for v in value) if len(set(value)) > 1 else str(value[0])
    return str(value)


def geometry_text(geometry: dict[str, Any]) -> str:
    """Compact kernel/stride/padding/dilation/groups: ``"k3 s2 p1"``, ``"k3 s1 p1 d2 g32"``."""
    if not geometry:
        return ""
    parts = [f"k{_pair(geometry['kernel_size'])}"]
    for key, short in (("stride", "s"), ("padding", "p")):
        if key in geometry:
            parts.append(f"{short}{_pair(geometry[key])}")
    dil = geometry.get("dilation", 1)
    if dil not in (1, (1,), (1, 1), (1, 1, 1)):
        parts.append(f"d{_pair(dil)}")
    if geometry.get("groups", 1) != 1:
        parts.append(f"g{geometry['groups']}")
    return " ".join(parts)


def _shape(shapes: list[tuple[int, ...]]) -> str:
    return ", ".join("[" + ", ".join(str(v) for v in s) + "]" for s in shapes[:3]) + (
        ", ..." if len(shapes) > 3 else ""
    )


def _dims(values: tuple[float, ...] | None) -> str:
    return "" if values is None else "×".join(fmt(v) for v in values)


def build_table(s: Summary) -> Table:
    """The rows as a rich table; the title states the FLOPs convention."""
    table = Table(
        title=f"{s.model_name} — input {', '.join(str(list(x)) for x in s.input_shapes)}"
        " — FLOPs = 2 × MACs",
        title_justify="left",
        show_lines=False,
    )
    frozen = s.totals.frozen > 0
    columns = ["Layer (path)", "k/s/p/d/g", "Output shape", "Params"]
    columns += ["Frozen"] if frozen else []
    columns += ["MACs", "FLOPs", "Other ops", "Act. mem", "RF", "Jump", "Start"]
    for col in columns:
        table.add_column(col, justify="left" if col in columns[:3] else "right", no_wrap=True)
    for row in s.rows:
        table.add_row(*_cells(row, frozen))
    return table


def _cells(row: Row, frozen: bool) -> list[str]:
    label = "  " * row.depth + row.type + (f"  {row.name}" if row.name else "")
    params = f"{row.params:,}" if row.params else ("(shared)" if row.shared else "—")
    cells = [label, geometry_text(row.geometry), _shape(row.output_shapes), params]
    if frozen:
        cells.append(f"{row.frozen:,}" if row.frozen else "—")
    cells += [
        human_count(row.macs) if row.macs else "—",
        human_count(row.flops) if row.macs else "—",
        human_count(row.ops) if row.ops else "—",
        human_bytes(row.activation_bytes) if row.activation_bytes else "—",
        ("" if row.rf_exact or row.rf is None else "≤") + _dims(row.rf),
        _dims(row.jump), _dims(row.start),
    ]  # fmt: skip
    return cells


def footer_lines(s: Summary) -> list[str]:
    """The totals block printed under the table."""
    t = s.totals
    lines = [
        f"Params: {t.params:,} (trainable {t.trainable:,}, frozen {t.frozen:,}); "
        "shared tensors counted once",
        f"MACs: {human_count(t.macs)} ({t.macs:,})   FLOPs = 2 × MACs: {human_count(t.flops)}   "
        f"other ops (comparisons, additions, activations, norms; one each): {human_count(t.ops)}",
        f"Memory: input {human_bytes(t.input_bytes)}, activations "
        f"{human_bytes(t.activation_bytes)}, params {human_bytes(t.param_bytes)}, buffers "
        f"{human_bytes(t.buffer_bytes)}; total {human_bytes(t.total_bytes)}",
    ]
    rf = s.receptive_field
    if rf is not None:
        lines.append(
            f"Receptive field of the last spatial map ({rf.name or 'model output'}): "
            f"{_dims(rf.rf)} px, jump {_dims(rf.jump)}, start {_dims(rf.start)}"
        )
    if s.not_counted:
        listed = ", ".join(f"{k} ({v}×)" for k, v in sorted(s.not_counted.items()))
        lines.append(f"not counted: {listed}")
    else:
        lines.append("not counted: none (every op is counted or is a view/metadata op)")
    if any(r.rf is not None and not r.rf_exact for r in s.calls):
        lines.append(
            "≤: after upsampling, non-dividing adaptive pooling or strided transposed conv the "
            "RF is the largest over output positions"
        )
    lines += s.notes
    return lines


def render_table(s: Summary) -> Group:
    """Table and totals as one rich renderable."""
    return Group(build_table(s), *(Text(line) for line in footer_lines(s)))


def render_text(s: Summary, width: int = 200) -> str:
    """Plain text of :func:`render_table` (no colours), ``width`` characters wide at most."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, no_color=True, highlight=False, soft_wrap=False)
    console.print(render_table(s))
    return buf.getvalue()
