"""Output-size formulas for convolution, transposed convolution and pooling, as pure functions.

Every function takes a spatial size (an int for one dimension, or a tuple for several) plus the
layer's hyper-parameters (an int applies to every dimension, a tuple gives one per dimension) and
returns a small result object whose ``.size`` has the same form as the input size and whose
``.explain()`` prints the formula with the numbers filled in. Layers and ``cnnlab.inspect`` reuse
these functions, so the arithmetic lives in exactly one place.

Notation used in the derivations: ``n`` input size, ``k`` kernel size, ``s`` stride, ``p`` padding
on each side, ``d`` dilation, ``op`` output padding.

Example:
    >>> conv_output_size(28, kernel_size=3, stride=2, padding=1).size
    14
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cnnlab._validate import check_choice, check_int, check_tuple

Size = int | tuple[int, ...]


@dataclass(frozen=True)
class ShapeResult:
    """The result of an output-size formula.

    Attributes:
        kind: what was computed, e.g. ``"conv"``, ``"pool"``.
        size: the output size, an int or a tuple like the input size.
        formula: the formula in symbols.
        steps: one line per spatial dimension with the numbers filled in.

    Example:
        >>> print(conv_output_size(5, 3).explain())  # doctest: +NORMALIZE_WHITESPACE
        conv output size: out = floor((n + 2*p - d*(k - 1) - 1) / s) + 1
          = floor((5 + 2*0 - 1*(3 - 1) - 1) / 1) + 1 = floor(2 / 1) + 1 = 3
    """

    kind: str
    size: Size
    formula: str
    steps: tuple[str, ...]

    def explain(self) -> str:
        """Return the formula and its evaluation, one line per spatial dimension."""
        return "\n".join([f"{self.kind} output size: {self.formula}", *self.steps])


@dataclass(frozen=True)
class SamePadding:
    """Padding that makes a convolution's output size ``ceil(n / s)`` ("same", as in TensorFlow).

    Attributes:
        padding: ``(before, after)`` per dimension; a single pair for a 1-D (int) input size.
        total: total padding per dimension (int for an int input size).
        size: the output size ``ceil(n / s)`` (None when no input size was given).
        steps: the derivation with the numbers filled in, one line per dimension.

    Example:
        >>> same_padding(kernel_size=4).padding
        (1, 2)
    """

    padding: tuple[int, int] | tuple[tuple[int, int], ...]
    total: Size
    size: Size | None
    steps: tuple[str, ...]

    @property
    def f_pad(self) -> tuple[int, ...]:
        """The padding in ``torch.nn.functional.pad`` order: last dimension first."""
        pairs = (self.padding,) if isinstance(self.padding[0], int) else self.padding
        return tuple(v for pair in reversed(pairs) for v in pair)  # type: ignore[union-attr]

    def explain(self) -> str:
        """Return the formula and its evaluation, one line per spatial dimension."""
        head = (
            "same padding: out = ceil(n / s); total = max((out - 1)*s + d*(k - 1) + 1 - n, 0); "
            "before = total // 2; after = total - before"
        )
        return "\n".join([head, *self.steps])


def _dims(size: Size | Sequence[int], name: str = "size") -> tuple[tuple[int, ...], bool]:
    """Return the size as a tuple of ints >= 1 and whether it was given as a plain int."""
    if isinstance(size, Sequence) and not isinstance(size, str):
        if len(size) == 0:
            raise ValueError(f"{name} must be an int or a non-empty tuple of ints, got {size!r}")
        return tuple(check_int(name, v, min_value=1) for v in size), False
    return (check_int(name, size, min_value=1),), True


def _pack(values: Sequence[int], scalar: bool) -> Size:
    return values[0] if scalar else tuple(values)


def _label(i: int, n_dims: int) -> str:
    return "  " if n_dims == 1 else f"  dim {i}: "


def _window_room(dim: int, n: int, k: int, p: int, d: int) -> int:
    """Room left for the window to slide: padded size minus the dilated kernel's extent.

    The dilated kernel covers ``d*(k - 1) + 1`` pixels; it fits on ``n + 2p`` pixels only if the
    room ``n + 2p - d*(k - 1) - 1`` is >= 0, otherwise the output would be empty.
    """
    eff = d * (k - 1) + 1  # effective (dilated) kernel extent
    padded = n + 2 * p
    if eff > padded:
        raise ValueError(
            f"kernel_size={k} (effective {eff} with dilation={d}) is larger than the padded input "
            f"{padded} (size {n} + 2*padding {p}) in spatial dimension {dim}; valid: an "
            f"effective kernel <= {padded}, or more padding, or a larger input"
        )
    return padded - eff


def check_fits(
    sizes: Sequence[int], kernel_size: Sequence[int], padding: Sequence[int],
    dilation: Sequence[int],
) -> None:
    """Raise the explained ``ValueError`` of :func:`conv_output_size` if a (dilated) kernel does
    not fit the padded input; cheap enough for every forward pass.

    Symbolic sizes (``torch.export`` with dynamic shapes) are skipped: they cannot be checked
    before the graph runs.

    Example:
        >>> check_fits((8, 8), (3, 3), (0, 0), (1, 1))
    """
    for i, (n, k, p, d) in enumerate(zip(sizes, kernel_size, padding, dilation)):
        if isinstance(n, int) and d * (k - 1) + 1 > n + 2 * p:
            _window_room(i, n, k, p, d)  # raises, naming the dimension and what is valid


def get_padding(kernel_size: int, stride: int = 1, dilation: int = 1) -> int:
    """Symmetric padding that keeps the size for odd effective kernels at stride 1.

    The effective kernel spans ``d*(k - 1) + 1`` pixels, so padding ``d*(k - 1) // 2`` on each side
    keeps ``n`` unchanged at stride 1 (exactly when ``d*(k - 1)`` is even). With a stride ``s``
    we add ``(s - 1) // 2`` (as timm does) so the output is ``ceil(n / s)`` for odd kernels.

    Example:
        >>> get_padding(3), get_padding(5, dilation=2), get_padding(3, stride=2)
        (1, 4, 1)
    """
    k = check_int("kernel_size", kernel_size, min_value=1)
    s = check_int("stride", stride, min_value=1)
    d = check_int("dilation", dilation, min_value=1)
    return ((s - 1) + d * (k - 1)) // 2


def conv_output_size(
    size: Size,
    kernel_size: Size,
    stride: Size = 1,
    padding: Size | str = 0,
    dilation: Size = 1,
) -> ShapeResult:
    """Output size of a convolution (cross-correlation), per spatial dimension.

    Derivation: the dilated kernel covers ``d*(k - 1) + 1`` input pixels. On the padded input of
    ``n + 2p`` pixels it fits at offsets ``0, s, 2s, ...`` as long as the offset is at most
    ``n + 2p - (d*(k - 1) + 1)``; counting those offsets gives
    ``out = floor((n + 2p - d*(k - 1) - 1) / s) + 1``.
    ``padding="same"`` gives ``ceil(n / s)`` (see :func:`same_padding`); ``"valid"`` is ``p = 0``.

    Raises:
        ValueError: if any argument is out of range, or if the dilated kernel is larger than the
            padded input (the output would be empty).

    Example:
        >>> conv_output_size((28, 28), kernel_size=5).size
        (24, 24)
    """
    sizes, scalar = _dims(size)
    n_dims = len(sizes)
    k = check_tuple("kernel_size", kernel_size, n_dims, min_value=1)
    s = check_tuple("stride", stride, n_dims, min_value=1)
    d = check_tuple("dilation", dilation, n_dims, min_value=1)
    if isinstance(padding, str):
        check_choice("padding", padding, ("same", "valid"))
        if padding == "same":
            same = same_padding(size, kernel_size, stride, dilation)
            formula = "same padding: out = ceil(n / s)"
            return ShapeResult("conv", same.size, formula, same.steps)  # type: ignore[arg-type]
        padding = 0
    p = check_tuple("padding", padding, n_dims, min_value=0)
    out, steps = [], []
    for i in range(n_dims):
        num = _window_room(i, sizes[i], k[i], p[i], d[i])
        o = num // s[i] + 1
        out.append(o)
        steps.append(
            f"{_label(i, n_dims)}= floor(({sizes[i]} + 2*{p[i]} - {d[i]}*({k[i]} - 1) - 1) "
            f"/ {s[i]}) + 1 = floor({num} / {s[i]}) + 1 = {o}"
        )
    return ShapeResult(
        "conv", _pack(out, scalar), "out = floor((n + 2*p - d*(k - 1) - 1) / s) + 1", tuple(steps)
    )


def conv_transpose_output_size(
    size: Size,
    kernel_size: Size,
    stride: Size = 1,
    padding: Size = 0,
    output_padding: Size = 0,
    dilation: Size = 1,
) -> ShapeResult:
    """Output size of a transposed convolution (the shape-inverse of :func:`conv_output_size`).

    Derivation: each of the ``n`` input pixels scatters a dilated kernel of extent
    ``d*(k - 1) + 1`` at offsets ``0, s, ..., (n - 1)s``, so the full output spans
    ``(n - 1)s + d*(k - 1) + 1`` pixels; the padding ``p`` crops ``p`` from each side and the output
    padding ``op`` adds ``op`` at the end (it picks one of the ``s`` input sizes that a strided
    conv maps to the same output size): ``out = (n - 1)*s - 2p + d*(k - 1) + op + 1``.

    Raises:
        ValueError: if an argument is out of range, ``output_padding`` is not smaller than the
            stride or the dilation, or the output would be empty.

    Example:
        >>> conv_transpose_output_size(14, 3, stride=2, padding=1, output_padding=1).size
        28
    """
    sizes, scalar = _dims(size)
    n_dims = len(sizes)
    k = check_tuple("kernel_size", kernel_size, n_dims, min_value=1)
    s = check_tuple("stride", stride, n_dims, min_value=1)
    p = check_tuple("padding", padding, n_dims, min_value=0)
    op = check_tuple("output_padding", output_padding, n_dims, min_value=0)
    d = check_tuple("dilation", dilation, n_dims, min_value=1)
    out, steps = [], []
    for i in range(n_dims):
        if op[i] >= max(s[i], d[i]):
            raise ValueError(
                f"output_padding={op[i]} must be smaller than stride={s[i]} or dilation={d[i]} "
                f"in spatial dimension {i}; valid: 0..{max(s[i], d[i]) - 1}"
            )
        o = (sizes[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1
        if o < 1:
            raise ValueError(
                f"padding={p[i]} crops the whole output of the transposed convolution in spatial "
                f"dimension {i} (output size would be {o}); valid: a padding <= "
                f"{((sizes[i] - 1) * s[i] + d[i] * (k[i] - 1) + op[i]) // 2}"
            )
        out.append(o)
        steps.append(
            f"{_label(i, n_dims)}= ({sizes[i]} - 1)*{s[i]} - 2*{p[i]} + {d[i]}*({k[i]} - 1) "
            f"+ {op[i]} + 1 = {o}"
        )
    return ShapeResult(
        "deconv",
        _pack(out, scalar),
        "out = (n - 1)*s - 2*p + d*(k - 1) + op + 1",
        tuple(steps),
    )


def pool_output_size(
    size: Size,
    kernel_size: Size,
    stride: Size | None = None,
    padding: Size = 0,
    dilation: Size = 1,
    ceil_mode: bool = False,
) -> ShapeResult:
    """Output size of max/average pooling, with PyTorch's ``ceil_mode`` rule.

    Derivation: as for a convolution, ``out = floor((n + 2p - d*(k - 1) - 1) / s) + 1``
    (``stride`` defaults to ``kernel_size``). With ``ceil_mode`` the division rounds up, so a last,
    partial window is kept; but a window must start inside the input or the left padding, so if
    ``(out - 1)*s >= n + p`` the last window would start in the right padding only and is dropped.
    PyTorch also requires ``p <= k // 2``.

    Example:
        >>> pool_output_size(5, kernel_size=2, ceil_mode=True).size
        3
    """
    sizes, scalar = _dims(size)
    n_dims = len(sizes)
    k = check_tuple("kernel_size", kernel_size, n_dims, min_value=1)
    s = k if stride is None else check_tuple("stride", stride, n_dims, min_value=1)
    p = check_tuple("padding", padding, n_dims, min_value=0)
    d = check_tuple("dilation", dilation, n_dims, min_value=1)
    if not isinstance(ceil_mode, bool):
        raise ValueError(f"ceil_mode must be True or False, got {ceil_mode!r}")
    out, steps = [], []
    rounding = "ceil" if ceil_mode else "floor"
    for i in range(n_dims):
        if p[i] > k[i] // 2:
            raise ValueError(
                f"padding={p[i]} must be at most half of kernel_size={k[i]} for pooling "
                f"(spatial dimension {i}); valid: 0..{k[i] // 2}"
            )
        num = _window_room(i, sizes[i], k[i], p[i], d[i])
        o = (-(-num // s[i]) if ceil_mode else num // s[i]) + 1
        line = (
            f"{_label(i, n_dims)}= {rounding}(({sizes[i]} + 2*{p[i]} - {d[i]}*({k[i]} - 1) - 1) "
            f"/ {s[i]}) + 1 = {rounding}({num} / {s[i]}) + 1 = {o}"
        )
        if ceil_mode and (o - 1) * s[i] >= sizes[i] + p[i]:
            # the last window would start in the right padding: PyTorch drops it
            o -= 1
            line += f"; last window starts at {(o) * s[i]} >= n + p = {sizes[i] + p[i]}, so {o}"
        out.append(o)
        steps.append(line)
    return ShapeResult(
        "pool",
        _pack(out, scalar),
        f"out = {rounding}((n + 2*p - d*(k - 1) - 1) / s) + 1",
        tuple(steps),
    )


def _same_total(n, k, s, d):
    """``(out, total)`` of "same" padding: ``out = ceil(n / s)``, total padding (derivation in
    :func:`same_padding`). Plain arithmetic, so it also works on symbolic sizes (torch.export)."""
    out = (n + s - 1) // s  # ceil(n / s) in integers
    total = (out - 1) * s + d * (k - 1) + 1 - n  # negative when s > d*(k - 1) + 1: no padding
    return out, (max(total, 0) if isinstance(total, int) else torch.sym_max(total, 0))


def same_pad_f(
    sizes: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
    dilation: Sequence[int],
) -> list[int]:
    """"Same" padding in ``torch.nn.functional.pad`` order (last dimension first), unchecked.

    The per-forward fast path of :class:`~cnnlab.layers.conv.Conv2d`: no argument checks and no
    explanation text; use :func:`same_padding` to check and explain.

    Example:
        >>> same_pad_f((8, 7), (3, 3), (2, 2), (1, 1))
        [1, 1, 0, 1]
    """
    pads = []
    for n, k, s, d in zip(sizes, kernel_size, stride, dilation):
        total = _same_total(n, k, s, d)[1]
        pads.append((total // 2, total - total // 2))  # odd total: the extra pixel after
    return [v for pair in reversed(pads) for v in pair]


def same_padding(
    size: Size | None = None,
    kernel_size: Size = 3,
    stride: Size = 1,
    dilation: Size = 1,
) -> SamePadding:
    """TensorFlow-style "same" padding for any kernel, stride and dilation.

    Derivation: "same" asks for ``out = ceil(n / s)``. The last window starts at ``(out - 1)*s``
    and ends at ``(out - 1)*s + d*(k - 1) + 1``, so the input needs
    ``total = max((out - 1)*s + d*(k - 1) + 1 - n, 0)`` extra pixels. They are split
    ``before = total // 2`` and ``after = total - before``: an odd total (even kernels) puts the
    extra pixel after (right/bottom), as TensorFlow does. At stride 1 the total is ``d*(k - 1)``
    whatever ``n`` is, so ``size`` may be left out; at stride > 1 it depends on ``n``.

    Example:
        >>> same_padding(7, kernel_size=3, stride=2).padding, same_padding(7, 3, 2).size
        ((1, 1), 4)
    """
    if size is None:
        n_dims = len(kernel_size) if isinstance(kernel_size, Sequence) else 1
        strides = check_tuple("stride", stride, n_dims, min_value=1)
        if any(v != 1 for v in strides):
            raise ValueError(
                f"same_padding needs the input size when stride={stride!r} > 1 "
                "(the padding depends on it); valid: pass size=..., or stride=1"
            )
        sizes, scalar = None, not isinstance(kernel_size, Sequence)
    else:
        sizes_t, scalar = _dims(size)
        sizes, n_dims = sizes_t, len(sizes_t)
    k = check_tuple("kernel_size", kernel_size, n_dims, min_value=1)
    s = check_tuple("stride", stride, n_dims, min_value=1)
    d = check_tuple("dilation", dilation, n_dims, min_value=1)
    pads, totals, outs, steps = [], [], [], []
    for i in range(n_dims):
        eff = d[i] * (k[i] - 1) + 1
        if sizes is None:
            total = eff - 1  # stride 1: (n - 1) + eff - n
            steps.append(f"{_label(i, n_dims)}stride 1: total = {d[i]}*({k[i]} - 1) = {total}")
        else:
            n = sizes[i]
            o, total = _same_total(n, k[i], s[i], d[i])
            outs.append(o)
            steps.append(
                f"{_label(i, n_dims)}out = ceil({n} / {s[i]}) = {o}; total = max(({o} - 1)*{s[i]}"
                f" + {d[i]}*({k[i]} - 1) + 1 - {n}, 0) = {total}"
                f" -> ({total // 2}, {total - total // 2})"
            )
        pads.append((total // 2, total - total // 2))
        totals.append(total)
    return SamePadding(
        padding=pads[0] if scalar else tuple(pads),
        total=_pack(totals, scalar),
        size=None if sizes is None else _pack(outs, scalar),
        steps=tuple(steps),
    )
