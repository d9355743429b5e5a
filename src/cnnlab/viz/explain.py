"""The convolution explained: the kernel sliding over the padded input, sum of products per output.

For a small integer input and kernel, :func:`explain_conv` draws the padded input (padding cells
gray), the kernel and the output, highlights the window of one output position and writes that
output as the sum of products. The same for max/average pooling (:func:`explain_pool`) and the
transposed convolution (:func:`explain_transposed_conv`), where each input value scatters a
scaled copy of the kernel onto the output. :func:`save_gif` animates every step into a GIF.
Course: docs/guide/01-convolution.md, 02-padding-and-stride.md, 04-pooling.md.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from cnnlab._validate import check_choice, check_int
from cnnlab.layers.shapes import conv_output_size, conv_transpose_output_size, pool_output_size
from cnnlab.viz._common import figure_to_rgb, new_figure

Cell = tuple[int, int]
Array = np.ndarray | Sequence[Sequence[float]]  # a small 2-D array of numbers
PAD = "#d9d9d9"  # padding cells (and cells a transposed conv crops away)
WINDOW = "#ffd966"  # the cells that take part in the current step
TARGET = "#9fc5e8"  # the output cell(s) being written
MAX_SIZE = 12


@dataclass
class Step:
    """One step of the explanation: which input cells make which output cells, and how."""

    inputs: list[Cell]  # cells of the (padded) input grid
    outputs: list[Cell]  # cells of the output grid
    kernel: list[Cell]  # cells of the kernel used
    text: str  # the arithmetic, e.g. "y[0,0] = 1·2 + 0·(-1) = 2"
    out_values: np.ndarray | None = None  # output as it stands after this step (transposed conv)


@dataclass
class Plan:
    """Everything a figure or a GIF frame of the explanation needs."""

    title: str
    inp: np.ndarray  # the input as drawn (padded for conv/pool)
    inp_pad: np.ndarray  # bool mask: padding cells
    kernel: np.ndarray | None
    out: np.ndarray  # the final output as drawn (uncropped for transposed conv)
    out_pad: np.ndarray  # bool mask: cells cropped away (transposed conv padding)
    result: np.ndarray  # the operation's real output (what torch returns)
    shape_text: str
    steps: list[Step] = field(default_factory=list)
    progressive: bool = True  # GIF: output cells appear step by step


def _fmt(v: float) -> str:
    if np.isnan(v):
        return ""
    if np.isneginf(v):
        return "−∞"
    if float(v).is_integer():
        return str(int(v))
    return f"{v:.2f}"


def _term(v: float) -> str:
    s = _fmt(v)
    return f"({s})" if v < 0 or np.isneginf(v) else s


def _sample(shape: tuple[int, int], low: int, high: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high + 1, size=shape).astype(float)


def _square(name: str, a: np.ndarray | None, default: np.ndarray) -> np.ndarray:
    if a is None:
        return default
    a = np.asarray(a, dtype=float)
    if a.ndim != 2 or not 1 <= min(a.shape) <= max(a.shape) <= MAX_SIZE:
        raise ValueError(f"{name} must be a 2-D array of side 1..{MAX_SIZE}, got shape {a.shape}")
    return a


def _check_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> None:
    check_int("size", size, min_value=1)
    check_int("kernel", kernel, min_value=1)
    check_int("stride", stride, min_value=1)
    check_int("padding", padding, min_value=0)
    check_int("dilation", dilation, min_value=1)
    if size > MAX_SIZE or kernel > MAX_SIZE:
        raise ValueError(
            f"size and kernel must be <= {MAX_SIZE} to stay readable, got {size}, {kernel}"
        )


def conv_plan(
    size: int = 5,
    kernel: int = 3,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    seed: int = 0,
    x: Array | None = None,
    weight: Array | None = None,
) -> Plan:
    """Steps of ``y[i, j] = sum_ab xpad[i*s + a*d, j*s + b*d] * w[a, b]`` (cross-correlation).

    ``x`` and ``weight`` default to random small integers (``seed``) of side ``size``/``kernel``.

    Example:
        >>> conv_plan(x=[[1, 2], [3, 4]], weight=[[1, 0], [0, 1]]).steps[0].text
        'y[0,0] = 1·1 + 2·0 + 3·0 + 4·1 = 5'
    """
    _check_size(size, kernel, stride, padding, dilation)
    x = _square("x", x, _sample((size, size), 0, 3, seed))
    w = _square("weight", weight, _sample((kernel, kernel), -1, 2, seed + 1))
    p, s, d = padding, stride, dilation
    shape = conv_output_size(x.shape, w.shape, s, p, d)  # validates that the kernel fits
    xpad = np.pad(x, p)
    mask = np.pad(np.zeros(x.shape, bool), p, constant_values=True)
    out = np.zeros(shape.size)
    steps = []
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            ks = [(a, b) for a in range(w.shape[0]) for b in range(w.shape[1])]
            cells = [(i * s + a * d, j * s + b * d) for a, b in ks]  # window of y[i, j]
            out[i, j] = sum(xpad[c] * w[k] for c, k in zip(cells, ks))
            terms = " + ".join(f"{_term(xpad[c])}·{_term(w[k])}" for c, k in zip(cells, ks))
            steps.append(Step(cells, [(i, j)], ks, f"y[{i},{j}] = {terms} = {_fmt(out[i, j])}"))
    title = f"convolution: kernel {w.shape[0]}x{w.shape[1]}, stride {s}, padding {p}, dilation {d}"
    return Plan(title, xpad, mask, w, out, np.zeros(out.shape, bool), out, shape.explain(), steps)


def pool_plan(
    size: int = 4,
    kernel: int = 2,
    stride: int | None = None,
    padding: int = 0,
    mode: str = "max",
    seed: int = 0,
    x: Array | None = None,
) -> Plan:
    """The steps of max or average pooling (average counts padding zeros, as PyTorch's default).

    Example:
        >>> pool_plan(x=[[1, 2], [3, 4]], kernel=2).steps[0].text
        'y[0,0] = max(1, 2, 3, 4) = 4'
    """
    check_choice("mode", mode, ("max", "avg"))
    stride = kernel if stride is None else stride
    _check_size(size, kernel, stride, padding, 1)
    if padding > kernel // 2:
        raise ValueError(
            f"padding must be at most kernel // 2 = {kernel // 2} for pooling, got {padding}"
        )
    x = _square("x", x, _sample((size, size), 0, 9, seed))
    k, s, p = kernel, stride, padding
    shape = pool_output_size(x.shape, k, s, p)
    fill = -np.inf if mode == "max" else 0.0  # max pooling pads with -inf: padding never wins
    xpad = np.pad(x, p, constant_values=fill)
    mask = np.pad(np.zeros(x.shape, bool), p, constant_values=True)
    out = np.zeros(shape.size)
    steps = []
    ks = [(a, b) for a in range(k) for b in range(k)]
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            cells = [(i * s + a, j * s + b) for a, b in ks]
            vals = [xpad[c] for c in cells]
            if mode == "max":
                out[i, j] = max(vals)
                text = f"y[{i},{j}] = max({', '.join(_fmt(v) for v in vals)}) = {_fmt(out[i, j])}"
            else:
                out[i, j] = sum(vals) / len(vals)
                text = (
                    f"y[{i},{j}] = ({' + '.join(_fmt(v) for v in vals)}) / {len(vals)} = "
                    f"{_fmt(out[i, j])}"
                )
            steps.append(Step(cells, [(i, j)], [], text))
    title = f"{mode} pooling: window {k}x{k}, stride {s}, padding {p}"
    return Plan(
        title, xpad, mask, None, out, np.zeros(out.shape, bool), out, shape.explain(), steps
    )


def transposed_conv_plan(
    size: int = 2,
    kernel: int = 2,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    seed: int = 0,
    x: Array | None = None,
    weight: Array | None = None,
) -> Plan:
    """The steps of a transposed convolution: ``x[i, j]`` adds ``x[i, j] * w`` at ``(i*s, j*s)``.

    The full output has ``(n - 1)*s + d*(k - 1) + 1`` cells per side; ``padding`` then crops ``p``
    from each side (shown gray), which gives PyTorch's ``conv_transpose2d`` output.

    Example:
        >>> transposed_conv_plan(x=[[1, 2]], weight=[[1, 1]]).result.tolist()
        [[1.0, 3.0, 2.0]]
    """
    _check_size(size, kernel, stride, padding, dilation)
    x = _square("x", x, _sample((size, size), 0, 3, seed))
    w = _square("weight", weight, _sample((kernel, kernel), -1, 2, seed + 1))
    s, p, d = stride, padding, dilation
    shape = conv_transpose_output_size(x.shape, w.shape, s, p, 0, d)
    full = [(n - 1) * s + d * (k - 1) + 1 for n, k in zip(x.shape, w.shape)]
    acc = np.zeros(full)
    steps = []
    ks = [(a, b) for a in range(w.shape[0]) for b in range(w.shape[1])]
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            cells = [(i * s + a * d, j * s + b * d) for a, b in ks]  # where x[i, j]·w lands
            for c, kk in zip(cells, ks):
                acc[c] += x[i, j] * w[kk]
            text = (
                f"x[{i},{j}] = {_fmt(x[i, j])} scatters {_fmt(x[i, j])}·w onto rows "
                f"{i * s}..{cells[-1][0]}, columns {j * s}..{cells[-1][1]}; overlaps add up"
            )
            steps.append(Step([(i, j)], cells, ks, text, acc.copy()))
    crop = np.ones(full, bool)
    crop[p : full[0] - p, p : full[1] - p] = False
    result = acc[p : full[0] - p, p : full[1] - p]
    title = f"transposed convolution: kernel {w.shape[0]}x{w.shape[1]}, stride {s}, padding {p}"
    if d > 1:
        title += f", dilation {d}"
    return Plan(title, x, np.zeros(x.shape, bool), w, acc, crop, result, shape.explain(), steps)


def _grid(ax, values, pad, highlight, color, title, shown=None, kernel_marks=None) -> None:
    """Draw ``values`` as a table of numbered cells (row 0 at the top)."""
    rows, cols = values.shape
    for r in range(rows):
        for c in range(cols):
            face = color if (r, c) in highlight else (PAD if pad[r, c] else "white")
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=face, edgecolor="black", lw=0.8))
            if pad[r, c] and (r, c) in highlight:  # padding under the window: light hatching
                ax.add_patch(Rectangle((c, r), 1, 1, fill=False, hatch="//", edgecolor="#a0a0a0",
                                       lw=0))
            if shown is None or shown[r, c]:
                ax.text(c + 0.5, r + 0.5, _fmt(values[r, c]), ha="center", va="center", fontsize=9)
            if kernel_marks and (r, c) in kernel_marks:
                ax.text(
                    c + 0.93,
                    r + 0.9,
                    kernel_marks[(r, c)],
                    ha="right",
                    va="bottom",
                    fontsize=6,
                    color="#a61c00",
                )
    ax.set_xlim(-0.05, cols + 0.05)
    ax.set_ylim(rows + 0.05, -0.05)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)


def render(plan: Plan, step: int = 0, progressive: bool = False) -> Figure:
    """Draw ``plan`` at ``step``: input, kernel and output grids and the step's arithmetic.

    With ``progressive`` (GIF frames) only the outputs computed so far are filled in.
    """
    n = len(plan.steps)
    if not -n <= step < n:
        raise ValueError(f"step must be in [0, {n - 1}] ({n} steps), got {step}")
    st = plan.steps[step % n]
    transposed = st.out_values is not None
    widths = [
        plan.inp.shape[1],
        *([plan.kernel.shape[1]] if plan.kernel is not None else []),
        plan.out.shape[1],
    ]
    fig = new_figure(
        max(6.5, 0.5 * sum(widths) + 2.5), 0.5 * max(plan.inp.shape[0], plan.out.shape[0]) + 2.6
    )
    fig.set_layout_engine(None)  # fixed margins: grids have no tick labels, and GIFs draw faster
    gs = fig.add_gridspec(
        2,
        len(widths),
        width_ratios=widths,
        height_ratios=[4, 1],
        left=0.02,
        right=0.98,
        top=0.88,
        bottom=0.02,
        wspace=0.12,
        hspace=0.15,
    )
    marks = None
    if plan.kernel is not None and not transposed:
        marks = {c: f"×{_fmt(plan.kernel[k])}" for c, k in zip(st.inputs, st.kernel)}
    in_title = "input" + (" (gray: padding)" if plan.inp_pad.any() else "")
    _grid(
        fig.add_subplot(gs[0, 0]),
        plan.inp,
        plan.inp_pad,
        set(st.inputs),
        WINDOW,
        in_title,
        kernel_marks=marks,
    )
    if plan.kernel is not None:
        _grid(
            fig.add_subplot(gs[0, 1]),
            plan.kernel,
            np.zeros(plan.kernel.shape, bool),
            set(st.kernel) if transposed else set(),
            WINDOW,
            "kernel w",
        )
    out = st.out_values if (transposed and progressive) else plan.out
    shown = None
    if progressive and not transposed:
        shown = np.zeros(plan.out.shape, bool)
        for done in plan.steps[: step % n + 1]:
            for c in done.outputs:
                shown[c] = True
    out_title = "output" + (" (gray: cropped by padding)" if plan.out_pad.any() else "")
    _grid(fig.add_subplot(gs[0, -1]), out, plan.out_pad, set(st.outputs), TARGET, out_title, shown)
    text_ax = fig.add_subplot(gs[1, :])
    text_ax.set_axis_off()
    wrapped = textwrap.fill(st.text, width=max(60, int(9 * sum(widths))))
    text_ax.text(
        0,
        1,
        f"step {step % n + 1}/{n}: {wrapped}\n{plan.shape_text}",
        va="top",
        fontsize=8,
        family="monospace",
        transform=text_ax.transAxes,
    )
    fig.suptitle(plan.title, fontsize=10)
    return fig


def explain_conv(
    size: int = 5,
    kernel: int = 3,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    step: int = 0,
    seed: int = 0,
    x: Array | None = None,
    weight: Array | None = None,
) -> Figure:
    """Figure of one step of a 2-D convolution on a small integer input.

    Args:
        size, kernel: side of the random integer input and kernel (or pass ``x``/``weight``).
        stride, padding, dilation: as in ``torch.nn.Conv2d``.
        step: which output position (row-major) to explain.

    Example:
        >>> fig = explain_conv(size=5, kernel=3, stride=2, padding=1)
    """
    return render(conv_plan(size, kernel, stride, padding, dilation, seed, x, weight), step)


def explain_pool(
    size: int = 4,
    kernel: int = 2,
    stride: int | None = None,
    padding: int = 0,
    mode: str = "max",
    step: int = 0,
    seed: int = 0,
    x: Array | None = None,
) -> Figure:
    """Figure of one step of max or average pooling.

    Example:
        >>> fig = explain_pool(size=4, kernel=2, mode="avg")
    """
    return render(pool_plan(size, kernel, stride, padding, mode, seed, x), step)


def explain_transposed_conv(
    size: int = 2,
    kernel: int = 2,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    step: int = 0,
    seed: int = 0,
    x: Array | None = None,
    weight: Array | None = None,
) -> Figure:
    """Figure of one step of a transposed convolution (one input value scattering the kernel).

    Example:
        >>> fig = explain_transposed_conv(size=2, kernel=2, stride=2)
    """
    return render(
        transposed_conv_plan(size, kernel, stride, padding, dilation, seed, x, weight), step
    )


def save_gif(plan: Plan, out: str | os.PathLike, ms_per_step: int = 800, dpi: int = 80) -> Path:
    """Animate every step of ``plan`` into a looping GIF at ``out``; returns the path.

    Example:
        >>> save_gif(conv_plan(5, 3, stride=2, padding=1), "/tmp/conv.gif")
        PosixPath('/tmp/conv.gif')
    """
    from PIL import Image

    out = Path(out)
    if out.suffix.lower() != ".gif":
        raise ValueError(f"out must end in .gif, got {str(out)!r}")
    frames = []
    for i in range(len(plan.steps)):
        fig = render(plan, i, progressive=True)
        frames.append(Image.fromarray(figure_to_rgb(fig, dpi)))
    size = (max(f.width for f in frames), max(f.height for f in frames))
    frames = [f if f.size == size else f.resize(size) for f in frames]
    out.parent.mkdir(parents=True, exist_ok=True)
    durations = [ms_per_step] * (len(frames) - 1) + [ms_per_step * 3]  # linger on the last
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return out
