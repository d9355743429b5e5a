"""Analytic receptive field, effective stride (jump) and start offset, propagated along tensors.

Every tensor on a spatial path carries, per spatial dimension, four numbers (:class:`DimRF`):

* ``size``  its length in that dimension,
* ``rf``    the receptive field: how many input pixels one of its units sees,
* ``jump``  the effective stride: the distance, in input pixels, between neighbouring units,
* ``start`` the input coordinate of the centre of unit 0's receptive field (pixel centres are at
  integer coordinates ``0, 1, ...``), so unit ``i`` sees ``start + i*jump +- (rf - 1)/2``.

The model's inputs start with ``rf = 1, jump = 1, start = 0``. A sliding window with kernel ``k``,
stride ``s``, padding ``p`` and dilation ``d`` spans ``k_eff = d*(k - 1) + 1`` units of its input,
which are ``jump_in`` pixels apart, hence (Dumoulin & Visin 2016; Araujo et al. 2019)::

    rf_out    = rf_in + (k_eff - 1) * jump_in
    jump_out  = jump_in * s
    start_out = start_in + ((k_eff - 1)/2 - p) * jump_in

Because the numbers travel with the tensors (not along the module list), branches and skips are
handled by the **merge rule**: where paths meet (``x + identity``, ``torch.cat``, any op with
several spatial inputs), each input's unit-0 interval ``[start - (rf-1)/2, start + (rf-1)/2]`` is
merged into the smallest interval containing them all, so the receptive field is the largest over
the paths (an Inception output sees as far as its widest branch; a residual output as far as its
deeper path). This bounding box is exactly what the gradient support of
:func:`cnnlab.inspect.receptive_field` measures. Rules that take a maximum over output positions
(transposed convolution, non-divisible adaptive pooling, linear interpolation) say so below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from cnnlab.inspect._geometry import spatial_dims, window
from cnnlab.inspect._ops import OpCall


@dataclass(frozen=True)
class DimRF:
    """Receptive-field arithmetic of one spatial dimension of one tensor (see module docstring).

    ``exact`` is False once the units stop lying on a uniform grid (upsampling, adaptive pooling
    whose sizes do not divide, strided transposed convolution): then ``rf`` is the largest over
    positions and ``start + i*jump`` only approximates where unit ``i`` looks.
    """

    size: int
    rf: float
    jump: float
    start: float
    exact: bool = True

    @property
    def lo(self) -> float:
        """First input pixel seen by unit 0 (may be negative: it lies in the padding)."""
        return self.start - (self.rf - 1) / 2

    @property
    def hi(self) -> float:
        """Last input pixel seen by unit 0."""
        return self.start + (self.rf - 1) / 2


# Negative dimension index (-2 = H, -1 = W for NCHW) -> that dimension's numbers.
TensorRF = dict[int, DimRF]
RFRule = Callable[[OpCall, TensorRF], "TensorRF | None"]


def input_rf(x: torch.Tensor) -> TensorRF | None:
    """Numbers of a model input ``(N, C, *spatial)``: every unit sees itself.

    Example:
        >>> input_rf(torch.zeros(1, 3, 4, 5))[-1]
        DimRF(size=5, rf=1, jump=1, start=0, exact=True)
    """
    if x.ndim < 3 or not x.is_floating_point():
        return None
    return {d: DimRF(x.shape[d], 1, 1, 0) for d in range(-(x.ndim - 2), 0)}


def merge(parts: list[DimRF], size: int) -> DimRF:
    """The merge rule: the smallest interval containing every path's unit-0 interval.

    Example:
        >>> merge([DimRF(4, 3, 1, 1.0), DimRF(4, 1, 2, 0.0)], 4)
        DimRF(size=4, rf=3, jump=2, start=1.0, exact=False)
    """
    lo, hi = min(p.lo for p in parts), max(p.hi for p in parts)
    # units are spaced like the full-size inputs; a broadcast (N, C, 1, 1) gate, e.g. squeeze-
    # and-excitation, widens every unit's field to the gate's (the whole map) but has no spacing
    full = [p for p in parts if p.size == size] or parts
    exact = all(p.exact for p in parts) and len(full) == len(parts)
    exact = exact and len({p.jump for p in full}) == 1
    return DimRF(size, _exact(hi - lo + 1), max(p.jump for p in full), (lo + hi) / 2, exact)


def _exact(value: float) -> float:
    """Integral floats back to int, so pixel counts print as ``435``, not ``435.0``."""
    return int(value) if float(value).is_integer() else value


def _spatial(rf: TensorRF, n: int) -> list[DimRF] | None:
    """The trailing ``n`` dimensions' numbers, or None if they are not tracked."""
    dims = [rf.get(d) for d in range(-n, 0)]
    return None if any(v is None for v in dims) else dims  # type: ignore[return-value]


def _windowed(call: OpCall, rf: TensorRF) -> tuple[int, list[DimRF], torch.Tensor, Any] | None:
    """Spatial dims, their numbers, the output and the window of a conv/pool call (or None)."""
    n = spatial_dims(call.name)
    dims = _spatial(rf, n)
    return None if dims is None else (n, dims, call.output, window(call))


def sliding_window(call: OpCall, rf: TensorRF) -> TensorRF | None:
    """Convolution and pooling: the three formulas of the module docstring, per dimension.

    Example:
        >>> x, w = torch.zeros(1, 1, 9, 9), torch.zeros(1, 1, 3, 3)
        >>> call = OpCall("conv2d", (x, w), {"stride": 2, "padding": 1}, torch.zeros(1, 1, 5, 5))
        >>> sliding_window(call, input_rf(x))[-1]
        DimRF(size=5, rf=3, jump=2, start=0.0, exact=True)
    """
    found = _windowed(call, rf)
    if found is None:
        return None
    n, dims, out, win = found
    result = {}
    for i, (src, k_eff, s, p) in enumerate(zip(dims, win.extent, win.stride, win.padding)):
        result[i - n] = DimRF(
            out.shape[i - n],
            src.rf + (k_eff - 1) * src.jump,
            src.jump * s,
            src.start + ((k_eff - 1) / 2 - p) * src.jump,
            src.exact,
        )
    return result


def transposed(call: OpCall, rf: TensorRF) -> TensorRF | None:
    """Transposed convolution, taking the largest receptive field over output positions.

    Output ``o`` receives input ``i`` through tap ``t`` when ``o = i*s - p + d*t``. Which taps
    reach ``o`` depends on ``o mod s`` only, so over the ``s`` phases we take the widest span
    ``m`` (in input units) of contributing inputs: ``rf_out = rf_in + m * jump_in``. Output units
    are ``jump_in / s`` apart, and unit 0 is centred where ``i = (p - d*(k - 1)/2) / s``.
    """
    found = _windowed(call, rf)
    if found is None:
        return None
    n, dims, out, win = found
    result = {}
    for i, (src, k, s, p, d) in enumerate(
        zip(dims, win.kernel, win.stride, win.padding, win.dilation)
    ):
        span = 0
        for phase in range(s):
            sources = [(phase + p - d * t) // s for t in range(k) if (phase + p - d * t) % s == 0]
            if sources:
                span = max(span, max(sources) - min(sources))
        result[i - n] = DimRF(
            out.shape[i - n],
            src.rf + span * src.jump,
            src.jump / s,
            src.start + (p - d * (k - 1) / 2) / s * src.jump,
            src.exact and s == 1,
        )
    return result


def adaptive(call: OpCall, rf: TensorRF) -> TensorRF | None:
    """Adaptive pooling from ``n`` to ``m`` units: output ``i`` pools
    ``floor(i*n/m) .. ceil((i+1)*n/m) - 1``.

    If ``m`` divides ``n`` this is pooling with ``k = s = n/m`` (exact). Otherwise windows differ
    in length: we take the longest ``k_max`` (largest over positions), jump ``jump_in * n/m``, and
    centre unit 0 on its window of ``ceil(n/m)`` units.
    """
    n = spatial_dims(call.name)
    dims, out = _spatial(rf, n), call.output
    if dims is None:
        return None
    result = {}
    for i, src in enumerate(dims):
        size_in, size_out = src.size, out.shape[i - n]
        k_max = max(
            -(-((j + 1) * size_in) // size_out) - (j * size_in) // size_out
            for j in range(size_out)
        )
        first = -(-size_in // size_out)
        result[i - n] = DimRF(
            size_out,
            src.rf + (k_max - 1) * src.jump,
            src.jump * size_in / size_out,
            src.start + (first - 1) / 2 * src.jump,
            src.exact and size_in % size_out == 0,
        )
    return result


def resample(call: OpCall, rf: TensorRF) -> TensorRF | None:
    """Interpolation by a factor ``f = out/in``: ``nearest`` reads one input unit (rf unchanged),
    ``linear`` modes 2 neighbours, ``bicubic`` 4 (``rf_in + (taps - 1) * jump_in``, the largest over
    positions); units are ``jump_in / f`` apart; unit 0 is centred on input unit 0."""
    out = call.output
    n = out.ndim - 2
    dims = _spatial(rf, n)
    if dims is None:
        return None
    mode = call.arg(3, "mode", "nearest")
    taps = 1 if mode.startswith("nearest") else 4 if mode == "bicubic" else 2
    if mode == "area":
        return adaptive(OpCall(f"adaptive_avg_pool{n}d", call.args, {}, out), rf)
    return {
        i - n: DimRF(
            out.shape[i - n],
            src.rf + (taps - 1) * src.jump,
            src.jump * src.size / out.shape[i - n],
            src.start,
            src.exact and out.shape[i - n] == src.size,
        )
        for i, src in enumerate(dims)
    }


def pad(call: OpCall, rf: TensorRF) -> TensorRF | None:
    """``F.pad``: units keep their field; the ``before`` pad shifts unit 0 by ``-before * jump``.

    ``pad`` lists ``(before, after)`` pairs starting from the last dimension.
    """
    widths, out = call.arg(1, "pad"), call.output
    result = {}
    for d, src in rf.items():
        pair = -d - 1  # dimension -1 uses widths[0:2], -2 widths[2:4], ...
        before = widths[2 * pair] if 2 * pair < len(widths) else 0
        result[d] = replace(src, size=out.shape[d], start=src.start - before * src.jump)
    return result


def _permutation(call: OpCall, ndim: int) -> list[int] | None:
    if call.name in ("transpose", "swapaxes", "swapdims"):
        a, b = (int(call.arg(1, "dim0")) % ndim, int(call.arg(2, "dim1")) % ndim)
        perm = list(range(ndim))
        perm[a], perm[b] = perm[b], perm[a]
        return perm
    dims = call.args[1:] if len(call.args) > 2 else call.arg(1, "dims")
    return [int(v) % ndim for v in dims] if dims is not None else None


def permute(call: OpCall, rf: TensorRF) -> TensorRF | None:
    """``permute``/``transpose``: the numbers move with their dimension (channels-last blocks)."""
    x, out = call.input, call.output
    perm = _permutation(call, x.ndim)
    if perm is None:
        return None
    return {perm.index(d + x.ndim) - out.ndim: src for d, src in rf.items()}


def reduce(call: OpCall, rf: TensorRF) -> TensorRF | None:
    """``mean``/``sum``/``amax`` over spatial dims with ``keepdim=True``: one unit sees all.

    The kept unit's interval runs from unit 0's first pixel to unit ``size - 1``'s last:
    ``rf = rf_in + (size - 1) * jump_in`` (global pooling). Without ``keepdim`` the dimensions are
    gone and so is the spatial path.
    """
    dims, out = call.arg(1, "dim"), call.output
    if not call.kwargs.get("keepdim", len(call.args) > 2 and call.args[2] is True):
        return None
    x = call.input
    dims = range(x.ndim) if dims is None else [dims] if isinstance(dims, int) else dims
    reduced = {int(d) % x.ndim - x.ndim for d in dims}
    result = {}
    for d, src in rf.items():
        if d in reduced:
            extra = (src.size - 1) * src.jump
            src = DimRF(1, src.rf + extra, src.jump * src.size, src.start + extra / 2, src.exact)
        result[d] = replace(src, size=out.shape[d])
    return result


def _names(names: str, fn: RFRule) -> dict[str, RFRule]:
    return dict.fromkeys(names.split(), fn)


# {op name: rule}. Ops not listed follow the generic rule of :func:`propagate`.
RF_RULES: dict[str, RFRule] = {
    **_names(
        "conv1d conv2d conv3d max_pool1d max_pool2d max_pool3d avg_pool1d avg_pool2d avg_pool3d "
        "lp_pool1d lp_pool2d lp_pool3d",
        sliding_window,
    ),
    **_names("conv_transpose1d conv_transpose2d conv_transpose3d", transposed),
    **_names(
        "adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d "
        "adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d",
        adaptive,
    ),
    **_names("interpolate upsample", resample),
    "pad": pad,
    **_names("permute transpose swapaxes swapdims", permute),
    **_names("mean sum amax amin", reduce),
}

# Element-wise ops whose inputs may broadcast (a (N, C, 1, 1) gate times a feature map).
_BROADCASTING = frozenset(
    "add sub mul div maximum minimum where addcmul addcdiv lerp pow".split()
)


def _generic(call: OpCall, parts: list[TensorRF], out: torch.Tensor) -> TensorRF | None:
    """Shape-preserving ops and merges: keep each tracked dimension whose length survives.

    A dimension survives if the output has the same length at the same (negative) index; for
    broadcasting element-wise ops a length-1 input dimension (a global gate) also merges in.
    Then the merge rule combines all inputs (a residual add, a concatenation along channels).
    """
    broadcast = call.name in _BROADCASTING
    per_dim: dict[int, list[DimRF]] = {}
    for rf in parts:
        ok = all(
            out.ndim >= -d and (out.shape[d] == src.size or (broadcast and src.size == 1))
            for d, src in rf.items()
        )
        if ok:
            for d, src in rf.items():
                per_dim.setdefault(d, []).append(src)
    if not per_dim:
        return None
    return {d: merge(srcs, out.shape[d]) for d, srcs in per_dim.items()}


def propagate(call: OpCall, rf_of: Callable[[torch.Tensor], TensorRF | None]) -> TensorRF | None:
    """Numbers for the output of ``call``, given ``rf_of(tensor)`` for its inputs.

    Listed ops (:data:`RF_RULES`) use their rule on the first spatial input; every other op
    keeps the dimensions whose length it preserves and merges its inputs (module docstring).
    """
    out = call.output
    if out is None or out.ndim == 0:
        return None
    parts = [rf for rf in (rf_of(t) for t in call.inputs) if rf]
    if not parts:
        return None
    rule = RF_RULES.get(call.name)
    if rule is not None:
        return rule(call, parts[0])
    return _generic(call, parts, out)


def fmt(value: float) -> str:
    """Format a pixel count: integers without decimals, others with up to 2."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0")


