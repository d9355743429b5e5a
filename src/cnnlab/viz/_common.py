"""Shared figure helpers: headless Figures, saving, tensors as displayable images, mosaics."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
WRONG = "#d62728"  # red: wrong predictions
RIGHT = "#2ca02c"  # green: right predictions


def new_figure(width: float, height: float) -> Figure:
    """A Figure with an Agg canvas that is not registered with pyplot (so it never opens a window).

    Example:
        >>> fig = new_figure(4, 3)
    """
    fig = Figure(figsize=(max(width, 1.0), max(height, 1.0)), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` to ``out`` (``.png``, ``.svg`` or ``.pdf``), creating parent folders.

    Example:
        >>> save_figure(new_figure(2, 2), "/tmp/empty.png")
        PosixPath('/tmp/empty.png')
    """
    out = Path(out)
    if out.suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"out must end in one of {', '.join(FIGURE_SUFFIXES)}, got {str(out)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out


def figure_to_rgb(fig: Figure, dpi: int = 90) -> np.ndarray:
    """Render ``fig`` with Agg and return its pixels as a (H, W, 3) uint8 array."""
    fig.set_dpi(dpi)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def to_display(
    image: torch.Tensor | np.ndarray,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> np.ndarray:
    """Turn one image into a float array in [0, 1] that ``imshow`` draws: (H, W) or (H, W, 3).

    Accepts a (C, H, W) tensor (uint8 0..255 or float; normalized floats are undone with
    ``mean``/``std``), or an (H, W[, C]) NumPy array.

    Example:
        >>> to_display(torch.zeros(3, 4, 4)).shape
        (4, 4, 3)
    """
    if isinstance(image, np.ndarray):
        arr = image.astype(np.float32)
        if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):  # (H, W, C) -> (C, H, W)
            arr = arr.transpose(2, 0, 1)
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if image.dtype == np.uint8:
            t = t / 255.0
    elif isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    else:
        raise ValueError(f"image must be a torch.Tensor or numpy array, got {type(image).__name__}")
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise ValueError(f"image must have shape (C, H, W) or (H, W), got {tuple(t.shape)}")
    if std is not None and mean is not None:
        m = torch.as_tensor(list(mean), dtype=torch.float32).view(-1, 1, 1)
        s = torch.as_tensor(list(std), dtype=torch.float32).view(-1, 1, 1)
        t = t * s + m  # undo (x - mean) / std
    elif t.min() < 0 or t.max() > 1:  # unknown scale: stretch to [0, 1] for display
        t = (t - t.min()) / (t.max() - t.min()).clamp_min(1e-12)
    t = t.clamp(0, 1)
    if t.shape[0] == 1:
        return t[0].numpy()
    if t.shape[0] >= 3:
        return t[:3].permute(1, 2, 0).numpy()
    return t.mean(0).numpy()


def show_image(ax: Axes, image: np.ndarray, title: str | None = None, color: str | None = None):
    """Draw a display image (from :func:`to_display`) on ``ax`` without ticks."""
    ax.imshow(
        image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest"
    )
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=8, color=color or "black")
    if color is not None:
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(2.5)


def grid_shape(n: int, ncols: int | None = None) -> tuple[int, int]:
    """Rows and columns of a near-square grid for ``n`` panels (``ncols`` fixes the columns)."""
    if n < 1:
        raise ValueError(f"need at least one image to draw, got {n}")
    cols = ncols or int(np.ceil(np.sqrt(n)))
    cols = max(1, min(cols, n))
    return int(np.ceil(n / cols)), cols


def mosaic(
    images: Sequence[np.ndarray | None],
    titles: Sequence[str] | None = None,
    colors: Sequence[str | None] | None = None,
    ncols: int | None = None,
    cell: float = 1.3,
    row_labels: Sequence[str] | None = None,
    cmap: str = "gray",
    suptitle: str | None = None,
) -> Figure:
    """Draw display images (values in [0, 1]) in a grid on ONE axes, titled and framed.

    One axes with many ``imshow`` extents renders several times faster than a grid of subplots.
    ``None`` entries leave their cell empty; 2-D images use ``cmap``.

    Example:
        >>> fig = mosaic([np.zeros((8, 8))] * 4, titles=["a", "b", "c", "d"], ncols=2)
    """
    n = len(images)
    rows, cols = grid_shape(n, ncols)
    lines = max((t.count("\n") + 1 for t in titles or [] if t), default=0)
    title_h = 0.17 * lines + (0.06 if lines else 0)  # in cell units (a cell is 1 x 1)
    gap = 0.08
    left = 0.9 if row_labels else 0.0
    width, height = left + cols * (1 + gap), rows * (1 + title_h + gap) + gap
    head = 0.35 if suptitle else 0.0  # inches
    fig = new_figure(width * cell, height * cell + head)
    fig.set_layout_engine(None)
    fig_h = height * cell + head
    ax = fig.add_axes((0, 0, 1, 1 - head / fig_h))
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        x0, y0 = left + c * (1 + gap), r * (1 + title_h + gap) + title_h + gap
        if img is not None:
            h, w = img.shape[:2]
            s = 1.0 / max(h, w)  # keep the aspect ratio inside the unit cell
            ex, ey = x0 + (1 - w * s) / 2, y0 + (1 - h * s) / 2
            ax.imshow(
                img,
                cmap=cmap if img.ndim == 2 else None,
                vmin=0,
                vmax=1,
                interpolation="nearest",
                extent=(ex, ex + w * s, ey + h * s, ey),
            )
        color = colors[i] if colors is not None else None
        if color:
            ax.add_patch(Rectangle((x0, y0), 1, 1, fill=False, edgecolor=color, linewidth=2.5))
        if titles is not None and titles[i]:
            ax.text(
                x0 + 0.5,
                y0 - 0.03,
                titles[i],
                ha="center",
                va="bottom",
                fontsize=7 * cell / 1.3,
                color=color or "black",
            )
    for r, label in enumerate(row_labels or []):
        ax.text(
            left - 0.1,
            r * (1 + title_h + gap) + title_h + gap + 0.5,
            label,
            ha="right",
            va="center",
            fontsize=8,
        )
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle, fontsize=9, y=1 - 0.08 / fig_h)
    return fig


def image_axes(n: int, ncols: int | None = None, cell: float = 1.6, extra_h: float = 0.35):
    """A Figure with ``n`` image axes in a grid; returns ``(fig, axes)`` (unused axes hidden)."""
    rows, cols = grid_shape(n, ncols)
    fig = new_figure(cols * cell, rows * (cell + extra_h))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def get_layer(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """The sub-module of ``model`` called ``name`` (as in ``model.named_modules()``).

    Example:
        >>> get_layer(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), "0")
        Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))
    """
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        names = [n for n in modules if n]
        shown = ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
        raise ValueError(f"layer {name!r} is not a layer of this model; valid names: {shown}")
    return modules[name]


def default_conv_layer(model: torch.nn.Module, last: bool = True) -> str:
    """Name of the last (or first) ``Conv2d`` in ``model``; raises if it has none."""
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if not names:
        raise ValueError("the model has no Conv2d layer; pass layer=NAME of a 4-D feature layer")
    return names[-1] if last else names[0]
