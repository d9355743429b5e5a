"""The learning-rate range test's plot: smoothed loss against the learning rate (log scale)."""

from __future__ import annotations

import os
from typing import Any

from matplotlib.figure import Figure

from cnnlab.viz._common import new_figure


def plot_lr_find(result: Any) -> Figure:
    """Loss (raw, faint; smoothed, bold) against lr, the suggestion and the minimum marked.

    Args:
        result: a :class:`cnnlab.train.lr_find.LRFindResult`.

    Example:
        >>> from cnnlab.train.lr_find import LRFindResult
        >>> fig = plot_lr_find(LRFindResult([1e-3, 1e-2, 1e-1], [1.0, 0.5, 2.0]))
    """
    fig = new_figure(6.0, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    if result.raw_losses:
        ax.plot(result.lrs, result.raw_losses, color="#999", linewidth=0.8, label="batch loss")
    ax.plot(result.lrs, result.losses, color="#1f5fa0", linewidth=2, label="smoothed loss")
    for lr, style, text in ((result.lr_at_min, ":", "minimum"),
                            (result.suggestion, "--", "suggested (min / 10)")):
        if lr == lr:  # not NaN
            ax.axvline(lr, linestyle=style, color="#c0392b", label=f"{text}: {lr:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    top = min(max(result.losses), 4 * min(result.losses)) if result.losses else 1
    ax.set_ylim(top=top * 1.05)
    ax.set_title("learning-rate range test")
    ax.legend(fontsize=8)
    return fig


def save_lr_plot(result: Any, path: str | os.PathLike) -> None:
    """Write :func:`plot_lr_find` as a PNG (atomically)."""
    import io

    from cnnlab.checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    plot_lr_find(result).savefig(buf, format="png", dpi=90)
    atomic_write_bytes(path, buf.getvalue())
