"""Training curves: train/val loss and accuracy per epoch, and the learning rate."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cnnlab.viz._common import new_figure

METRICS_FILE = "metrics.csv"


def read_metrics(path: str | os.PathLike) -> dict[str, list[float]]:
    """Read a run's ``metrics.csv`` (or a run directory holding one) into columns of floats.

    Empty cells become NaN, so a run without validation still reads.

    Example:
        >>> cols = read_metrics("runs/digits-simple_cnn")  # doctest: +SKIP
        >>> cols["val_acc"][-1]  # doctest: +SKIP
        0.97
    """
    path = Path(path)
    file = path / METRICS_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"metrics file {str(file)!r} does not exist; pass a run directory made by "
            "'cnnlab train' or its metrics.csv"
        )
    with open(file, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"metrics file {str(file)!r} has no epochs yet")
    cols: dict[str, list[float]] = {k: [] for k in rows[0] if k}
    for row in rows:
        for key in cols:
            cell = (row.get(key) or "").strip()
            try:
                cols[key].append(float(cell) if cell else math.nan)
            except ValueError:
                raise ValueError(
                    f"metrics file {str(file)!r}: column {key!r} has non-numeric value {cell!r}"
                ) from None
    return cols


def _has_values(values: Sequence[float] | None) -> bool:
    return bool(values) and any(not math.isnan(v) for v in values)


def plot_curves(metrics: str | os.PathLike | Mapping[str, Sequence[float]]) -> Figure:
    """Loss, accuracy and learning rate per epoch, train vs validation, best epoch marked.

    Args:
        metrics: a run directory, a ``metrics.csv`` path or columns as from :func:`read_metrics`.

    Returns:
        A Figure with up to three panels (panels without data are left out).

    Example:
        >>> fig = plot_curves({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_acc": [0.6, 0.8]})
    """
    cols = dict(metrics) if isinstance(metrics, Mapping) else read_metrics(metrics)
    n = max((len(v) for v in cols.values()), default=0)
    if n == 0:
        raise ValueError("metrics hold no epochs to plot")
    epochs = list(cols.get("epoch") or range(1, n + 1))
    panels = [
        ("loss", [("train_loss", "train"), ("val_loss", "val")]),
        ("accuracy", [("train_acc", "train"), ("val_acc", "val")]),
        ("learning rate", [("lr", "lr")]),
    ]
    panels = [(t, [s for s in series if _has_values(cols.get(s[0]))]) for t, series in panels]
    panels = [(t, series) for t, series in panels if series]
    if not panels:
        raise ValueError(
            f"metrics have none of the columns train_loss, val_loss, train_acc, val_acc, lr "
            f"(got {sorted(cols)})"
        )
    fig = new_figure(4.0 * len(panels), 3.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    val_acc = cols.get("val_acc")
    best = None
    if _has_values(val_acc):
        best = max((v, i) for i, v in enumerate(val_acc) if not math.isnan(v))[1]
    for ax, (title, series) in zip(axes, panels):
        for key, label in series:
            ax.plot(epochs, cols[key], marker="o", markersize=3, label=label)
        if title == "learning rate" and all(v > 0 for v in cols["lr"] if not math.isnan(v)):
            ax.set_yscale("log")
        if best is not None and title != "learning rate":
            ax.axvline(
                epochs[best],
                color="gray",
                linestyle=":",
                linewidth=1,
                label=f"best val acc (epoch {epochs[best]:g})",
            )
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if title != "learning rate":
            ax.legend(fontsize=8)
    return fig
