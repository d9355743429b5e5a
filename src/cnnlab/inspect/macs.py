"""Arithmetic of each torch op: MACs (multiply-accumulates) and other element-wise operations.

One MAC is ``acc += w * x``: the dot products of convolutions, linear layers, matrix products,
attention and interpolation weights. FLOPs are reported as ``2 * MACs`` (a multiply and an add),
the convention behind torchvision's published "GFLOPS", which count exactly these multiply-adds.

Everything else a CNN computes is counted too, but separately, as **other ops**: one per
elementary operation (a comparison in max pooling or ReLU, an addition in a residual sum or an
average, the scale and the shift of batch norm). Keeping them apart keeps MACs comparable with
published figures while nothing is silently zero. Conventions (each function derives its formula):

* bias additions are folded into the accumulator's initial value: 0 extra MACs (as fvcore and
  torchvision's figures do);
* pure data movement (concatenation, padding, channel/pixel shuffle, nearest upsampling) costs 0
  but is listed in :data:`OPS`, so it is *counted as zero on purpose*;
* an op that is in neither table nor a free metadata/view op (``_ops.FREE_OPS``) is reported by
  name as "not counted" instead of silently adding zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from cnnlab.inspect._geometry import spatial_dims, window
from cnnlab.inspect._ops import OpCall

CostFn = Callable[[OpCall], int]


def _numel(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.numel()


def conv_macs(call: OpCall) -> int:
    """Convolution, any groups/dilation/dims: ``out.numel() * (C_in / groups) * prod(k)``.

    Each output element (N, C_out, *spatial) is a dot product of its window: ``C_in / groups``
    input channels (grouped conv sees only its group) times ``prod(k)`` kernel taps. That is one
    weight filter, ``weight[0]`` of shape ``(C_in / groups, *k)``. Dilation spreads the taps but
    does not add any.

    Example:
        >>> x, w = torch.zeros(1, 4, 8, 8), torch.zeros(6, 2, 3, 3)   # groups=2
        >>> conv_macs(OpCall("conv2d", (x, w), {"groups": 2}, torch.zeros(1, 6, 6, 6)))
        3888
    """
    return call.output.numel() * call.arg(1, "weight")[0].numel()


def conv_transpose_macs(call: OpCall) -> int:
    """Transposed convolution: ``in.numel() * (C_out / groups) * prod(k)``.

    A transposed conv scatters: every input element (N, C_in, *spatial) is multiplied by its
    filter of ``C_out / groups`` output channels x ``prod(k)`` taps and added into the output, i.e.
    one MAC per (input element, weight of its filter). The filter is ``weight[0]``, the weight
    having shape ``(C_in, C_out / groups, *k)``. Stride, padding and dilation only move the
    destinations (padding crops some of them; we count the work of the full scatter).

    Example:
        >>> x, w = torch.zeros(1, 2, 3, 3), torch.zeros(2, 5, 2, 2)
        >>> conv_transpose_macs(OpCall("conv_transpose2d", (x, w), {}, None))
        360
    """
    return call.input.numel() * call.arg(1, "weight")[0].numel()


def linear_macs(call: OpCall) -> int:
    """Linear: ``out.numel() * in_features`` (each output is a dot product of ``in_features``).

    Example:
        >>> x, w = torch.zeros(2, 3), torch.zeros(4, 3)
        >>> linear_macs(OpCall("linear", (x, w), {}, torch.zeros(2, 4)))
        24
    """
    return call.output.numel() * call.arg(1, "weight").shape[-1]


def matmul_macs(call: OpCall) -> int:
    """``a @ b`` (matmul/mm/bmm, and addmm/baddbmm whose first argument is the added term).

    Each output element is a dot product over the inner dimension ``a.shape[-1]``.
    """
    a = call.inputs[1] if call.name in ("addmm", "baddbmm", "addbmm") else call.inputs[0]
    inner = a.shape[-1] if a.ndim > 0 else 1
    return _numel(call.output) * inner


def attention_macs(call: OpCall) -> int:
    """``scaled_dot_product_attention(q, k, v)``: ``q k^T`` then ``softmax(.) v``.

    With ``q (..., L, E)``, ``k (..., S, E)``, ``v (..., S, Ev)``: the scores are ``L*S`` dot
    products of length ``E``, the output ``L*Ev`` dot products of length ``S``, so
    ``batch * L * S * (E + Ev)`` MACs (its softmax: :func:`attention_ops`).
    """
    q, k, v = call.inputs[:3]
    batch = math.prod(q.shape[:-2])
    scores = batch * q.shape[-2] * k.shape[-2]
    return scores * (q.shape[-1] + v.shape[-1])


def interpolate_macs(call: OpCall) -> int:
    """Resampling: a weighted sum of the neighbours of each output element.

    ``nearest``: a copy, 0. ``linear``/``bilinear``/``trilinear``: ``2**dims`` neighbours, one MAC
    each. ``bicubic``: 4 x 4 = 16. ``area`` is adaptive average pooling (see :data:`OPS`).
    """
    mode = call.arg(3, "mode", "nearest")
    out = call.output
    if mode.startswith("nearest") or mode == "area":
        return 0
    return (16 if mode == "bicubic" else 2 ** (out.ndim - 2)) * out.numel()


def mha_macs(call: OpCall) -> int:
    """``F.multi_head_attention_forward(query (L, N, E), key (S, N, E), value, ...)``.

    Projections: queries ``L*N*E*E``, keys and values ``2*S*N*E*E``, output ``L*N*E*E``; the
    heads together compute ``N*L*S*E`` MACs of scores and ``N*L*S*E`` of weighted values.
    """
    q, k = call.inputs[:2]
    length, batch, embed = q.shape[0], math.prod(q.shape[1:-1]), q.shape[-1]
    source = k.shape[0]
    projections = (2 * length + 2 * source) * batch * embed * embed
    return projections + 2 * batch * length * source * embed


def mha_ops(call: OpCall) -> int:
    """The softmax over ``N * heads * L * S`` attention scores: 3 per score."""
    q, k = call.inputs[:2]
    heads = int(call.arg(4, "num_heads", 1))
    return 3 * math.prod(q.shape[1:-1]) * heads * q.shape[0] * k.shape[0]


def per_output(call: OpCall) -> int:
    """One operation per output element: activations, element-wise arithmetic, residual adds.

    ``x + y`` on tensors of N elements (after broadcasting) is N additions, ``relu(x)`` N
    comparisons, ``sigmoid(x)`` N evaluations.
    """
    return _numel(call.output)


def per_input(call: OpCall) -> int:
    """One operation per input element: reductions (``mean``, ``sum``, ``amax``, ``norm``).

    Reducing N elements takes N - 1 additions (or comparisons) plus a final scale: N.
    """
    return _numel(call.input)


def softmax_ops(call: OpCall) -> int:
    """Softmax: an exponential, an addition into the sum and a division per element: 3 each."""
    return 3 * _numel(call.output)


def attention_ops(call: OpCall) -> int:
    """The softmax over the ``batch * L * S`` attention scores: 3 per score."""
    q, k = call.inputs[:2]
    return 3 * math.prod(q.shape[:-2]) * q.shape[-2] * k.shape[-2]


def batch_norm_ops(call: OpCall) -> int:
    """Batch norm: 2 per element in eval mode, 4 when it computes batch statistics.

    Eval: ``(x - mean) / sqrt(var + eps) * gamma + beta`` folds into ``x * a + b`` with
    per-channel constants ``a, b``: a multiply and an add per element. Training first computes
    the batch mean (an add per element) and variance (an accumulate of squares per element).
    """
    training = bool(call.arg(5, "training", False))
    return (4 if training else 2) * _numel(call.output)


def norm_stats_ops(call: OpCall) -> int:
    """Layer/group/instance norm: statistics at run time, 4 per element (mean, variance,
    then the folded scale and shift)."""
    return 4 * _numel(call.output)


def lrn_ops(call: OpCall) -> int:
    """Local response norm: a sum of ``size`` squares (``2 * size``: square, add), then scale,
    power and division: ``(2 * size + 3) * numel``."""
    return (2 * int(call.arg(1, "size", 1)) + 3) * _numel(call.output)


def pool_ops(call: OpCall) -> int:
    """Pooling, per output: max takes ``prod(k) - 1`` comparisons; average ``prod(k) - 1``
    additions and a division, ``prod(k)``; LP pooling also a power per tap, ``2 * prod(k)``.

    Example:
        >>> x = torch.zeros(1, 1, 4, 4)
        >>> pool_ops(OpCall("max_pool2d", (x, 2), {}, torch.zeros(1, 1, 2, 2)))
        12
    """
    taps = math.prod(window(call).kernel)
    per = taps - 1 if "max" in call.name else 2 * taps if "lp" in call.name else taps
    return call.output.numel() * per


def _adaptive_taps(size_in: int, size_out: int) -> int:
    """Sum of the window lengths of adaptive pooling along one dimension.

    PyTorch's output ``i`` pools input indices ``floor(i*n/m) .. ceil((i+1)*n/m) - 1``; summing
    the window lengths over ``i`` gives the taps per (N, C) slice in that dimension.
    """
    return sum(
        -(-((i + 1) * size_in) // size_out) - (i * size_in) // size_out for i in range(size_out)
    )


def adaptive_pool_ops(call: OpCall) -> int:
    """Adaptive pooling, exact: windows of different dimensions combine as a product, so
    ``N * C * prod_d(sum of window lengths in d)`` taps; average: one operation per tap, max: one
    comparison per tap but the first of each window.

    Example:
        >>> x = torch.zeros(1, 2, 7, 7)
        >>> adaptive_pool_ops(OpCall("adaptive_avg_pool2d", (x, 1), {}, torch.zeros(1, 2, 1, 1)))
        98
    """
    x, out = call.input, call.output
    n = out.ndim - 2 if call.name == "interpolate" else spatial_dims(call.name)
    taps = math.prod(_adaptive_taps(a, b) for a, b in zip(x.shape[-n:], out.shape[-n:]))
    total = math.prod(out.shape[:-n]) * taps
    return total - out.numel() if "max" in call.name else total


def interpolate_ops(call: OpCall) -> int:
    """``mode="area"`` is adaptive average pooling; other modes are MACs (or copies)."""
    return adaptive_pool_ops(call) if call.arg(3, "mode", "nearest") == "area" else 0


def dropout_ops(call: OpCall) -> int:
    """Dropout: identity in eval mode (0); in training one mask multiply per element."""
    return _numel(call.output) if bool(call.arg(2, "training", True)) else 0


def data_movement(call: OpCall) -> int:
    """Concatenation, stacking, padding, shuffles: memory copies with no arithmetic, 0.

    They are listed here (not treated as unknown) so that an Inception ``torch.cat`` is
    *counted* as zero arithmetic on purpose; their output still counts as activation memory.
    """
    return 0


def _names(names: str, fn: CostFn) -> dict[str, CostFn]:
    return dict.fromkeys(names.split(), fn)


# {op name: MACs}. Names are normalized by ``_ops.op_name`` (``x @ w`` -> "matmul").
MACS: dict[str, CostFn] = {
    **_names("conv1d conv2d conv3d", conv_macs),
    **_names("conv_transpose1d conv_transpose2d conv_transpose3d", conv_transpose_macs),
    "linear": linear_macs,
    "bilinear": lambda c: _numel(c.output) * c.inputs[0].shape[-1] * c.inputs[1].shape[-1],
    **_names("matmul mm bmm addmm baddbmm addbmm", matmul_macs),
    "scaled_dot_product_attention": attention_macs,
    "multi_head_attention_forward": mha_macs,
    **_names("interpolate upsample", interpolate_macs),
}

# {op name: other (element-wise) operations}. ``x += y`` is "add".
OPS: dict[str, CostFn] = {
    "scaled_dot_product_attention": attention_ops,
    "multi_head_attention_forward": mha_ops,
    "batch_norm": batch_norm_ops,
    **_names("layer_norm group_norm instance_norm rms_norm", norm_stats_ops),
    "local_response_norm": lrn_ops,
    **_names(
        "max_pool1d max_pool2d max_pool3d avg_pool1d avg_pool2d avg_pool3d "
        "lp_pool1d lp_pool2d lp_pool3d",
        pool_ops,
    ),
    **_names(
        "adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d "
        "adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d",
        adaptive_pool_ops,
    ),
    **_names("interpolate upsample", interpolate_ops),
    **_names(
        "relu relu6 leaky_relu elu selu celu gelu silu mish sigmoid tanh hardtanh hardswish "
        "hardsigmoid softplus softsign prelu rrelu threshold clamp clip clamp_min clamp_max "
        "logsigmoid tanhshrink hardshrink softshrink glu "
        "add sub mul div neg pow sqrt rsqrt exp log abs square reciprocal maximum minimum where "
        "addcmul addcdiv lerp erf sign floor ceil round",
        per_output,
    ),
    **_names("mean sum amax amin max min norm std var logsumexp prod", per_input),
    **_names("softmax log_softmax softmin", softmax_ops),
    **_names(
        "dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout", dropout_ops
    ),
    **_names(
        "cat concat concatenate stack pad channel_shuffle native_channel_shuffle "
        "pixel_shuffle pixel_unshuffle",
        data_movement,
    ),
}


def cost(call: OpCall) -> tuple[int, int] | None:
    """``(MACs, other ops)`` of a call, or None if the op is in neither table.

    Example:
        >>> x, w = torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3)
        >>> cost(OpCall("conv2d", (x, w), {}, torch.zeros(1, 1, 1, 1)))
        (9, 0)
    """
    macs_fn, ops_fn = MACS.get(call.name), OPS.get(call.name)
    if macs_fn is None and ops_fn is None:
        return None
    return (macs_fn(call) if macs_fn else 0, ops_fn(call) if ops_fn else 0)
