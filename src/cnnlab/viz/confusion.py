"""Confusion matrix heatmaps (counts and row-normalized) and the most-confused class pairs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from cnnlab.viz._common import new_figure


def confusion_matrix(
    y_true: Sequence[int] | torch.Tensor | np.ndarray,
    y_pred: Sequence[int] | torch.Tensor | np.ndarray,
    num_classes: int | None = None,
) -> np.ndarray:
    """Counts ``cm[t, p]`` of samples of true class ``t`` predicted as ``p``.

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 1, 0], 2).tolist()
        [[1, 0], [1, 1]]
    """
    t = np.asarray(torch.as_tensor(y_true).cpu(), dtype=np.int64).ravel()
    p = np.asarray(torch.as_tensor(y_pred).cpu(), dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.size} and {p.size}")
    k = int(
        num_classes if num_classes is not None else max(t.max(initial=-1), p.max(initial=-1)) + 1
    )
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= k):
        raise ValueError(f"labels must lie in [0, {k - 1}] for num_classes={k}")
    # bincount over the flattened (true, pred) index t*k + p gives every cell at once
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _check_cm(cm) -> np.ndarray:
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"confusion matrix must be square (K, K), got shape {cm.shape}")
    return cm


def _names(class_names: Sequence[str] | None, k: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(k)]
    if len(class_names) != k:
        raise ValueError(f"class_names has {len(class_names)} names for a {k}x{k} matrix")
    return [str(c) for c in class_names]


def row_normalize(cm) -> np.ndarray:
    """Each row divided by its total (recall on the diagonal); empty rows stay zero."""
    cm = _check_cm(cm).astype(np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def most_confused(
    cm, class_names: Sequence[str] | None = None, k: int = 10, min_count: int = 1
) -> list[tuple[str, str, int]]:
    """The ``k`` largest off-diagonal cells as ``(true, predicted, count)``, largest first.

    Example:
        >>> most_confused([[5, 2], [0, 4]], ["cat", "dog"])
        [('cat', 'dog', 2)]
    """
    cm = _check_cm(cm)
    names = _names(class_names, cm.shape[0])
    off = [
        (int(cm[i, j]), i, j)
        for i in range(cm.shape[0])
        for j in range(cm.shape[1])
        if i != j and cm[i, j] >= min_count
    ]
    off.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [(names[i], names[j], n) for n, i, j in off[:k]]


def _heatmap(ax, values: np.ndarray, names: list[str], title: str, fmt: str, vmax: float) -> None:
    k = len(names)
    im = ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax if vmax > 0 else 1)
    ticks = range(k)
    fontsize = 8 if k <= 12 else 6
    ax.set_xticks(ticks, names if k <= 40 else [""] * k, rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, names if k <= 40 else [""] * k, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if k <= 20:  # numbers only where they still fit in a cell
        for i in range(k):
            for j in range(k):
                v = values[i, j]
                color = "white" if v > 0.6 * vmax else "black"
                ax.text(
                    j, i, format(v, fmt), ha="center", va="center", fontsize=fontsize, color=color
                )
    ax.figure.colorbar(im, ax=ax, shrink=0.8)


def plot_confusion(cm, class_names: Sequence[str] | None = None, normalize: str = "both") -> Figure:
    """Confusion-matrix heatmap: raw counts, row-normalized rates, or both side by side.

    Args:
        cm: (K, K) counts, rows = true class, columns = predicted class.
        class_names: K names for the axes.
        normalize: ``"none"`` (counts), ``"true"`` (rows sum to 1) or ``"both"``.

    Example:
        >>> fig = plot_confusion([[5, 1], [2, 7]], ["cat", "dog"])
    """
    cm = _check_cm(cm)
    if normalize not in ("none", "true", "both"):
        raise ValueError(f"normalize must be one of 'none', 'true', 'both'; got {normalize!r}")
    names = _names(class_names, cm.shape[0])
    k = cm.shape[0]
    cell = 0.45 if k <= 20 else 0.2
    side = max(3.5, k * cell + 1.8)
    panels = ["none", "true"] if normalize == "both" else [normalize]
    fig = new_figure(side * len(panels), side)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, mode in zip(axes, panels):
        if mode == "none":
            _heatmap(ax, cm, names, f"counts (n={int(cm.sum())})", "d", float(cm.max()))
        else:
            _heatmap(ax, row_normalize(cm), names, "row-normalized (recall)", ".2f", 1.0)
    return fig


def plot_most_confused(cm, class_names: Sequence[str] | None = None, k: int = 10) -> Figure:
    """Horizontal bars of the ``k`` most frequent (true -> predicted) confusions.

    Example:
        >>> fig = plot_most_confused([[5, 1], [2, 7]], ["cat", "dog"])
    """
    pairs = most_confused(cm, class_names, k)
    fig = new_figure(5.5, 0.8 + 0.3 * max(len(pairs), 1))
    ax = fig.subplots()
    if not pairs:
        ax.text(
            0.5,
            0.5,
            "no confusions: every sample is on the diagonal",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return fig
    labels = [f"{t} → {p}" for t, p, _ in pairs][::-1]
    ax.barh(labels, [n for _, _, n in pairs][::-1], color="#d62728")
    ax.set_xlabel("count (true → predicted)")
    ax.set_title("most confused pairs")
    return fig
