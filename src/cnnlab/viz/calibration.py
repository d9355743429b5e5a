"""The reliability diagram: accuracy against confidence per bin, with the ECE in the title."""

from __future__ import annotations

import os
from typing import Any

from matplotlib.figure import Figure

from cnnlab.viz._common import new_figure


def plot_reliability(calibration: dict[str, Any], title: str | None = None) -> Figure:
    """Bars of each confidence bin's accuracy over the diagonal of perfect calibration.

    Args:
        calibration: :func:`cnnlab.calibration.reliability`'s result (``calibration.json``).
        title: figure title (default: the ECE).

    Example:
        >>> import torch
        >>> from cnnlab.calibration import reliability
        >>> fig = plot_reliability(reliability(torch.tensor([[0.8, 0.2]]), torch.tensor([0])))
    """
    fig = new_figure(4.6, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    bins = [b for b in calibration["bins"] if b["count"]]
    width = 1.0 / max(1, calibration["n_bins"])
    ax.bar([b["lo"] for b in bins], [b["accuracy"] for b in bins], width=width, align="edge",
           edgecolor="#235", color="#4a7fb5", label="accuracy")
    gap = [b["confidence"] - b["accuracy"] for b in bins]
    ax.bar([b["lo"] for b in bins], gap, bottom=[b["accuracy"] for b in bins], width=width,
           align="edge", color="#e06c5a", alpha=0.45, label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top softmax probability)")
    ax.set_ylabel("accuracy")
    ece = calibration.get("ece")
    ax.set_title(title or f"reliability, ECE {ece:.4f} ({calibration['num_images']} images)")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def save_reliability(calibration: dict[str, Any], path: str | os.PathLike) -> None:
    """Write :func:`plot_reliability` as a PNG (atomically)."""
    import io

    from cnnlab.checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    plot_reliability(calibration).savefig(buf, format="png", dpi=90)
    atomic_write_bytes(path, buf.getvalue())
