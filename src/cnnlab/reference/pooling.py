"""Pooling from scratch in NumPy: max and average pooling with stride, padding and ceil_mode.

Pooling slides a window like a convolution but has no weights: it takes the maximum or the mean
of each window, per channel (d2l.ai 7.5). The window positions follow the same size formula as
convolution, with PyTorch's ``ceil_mode`` rule (see ``cnnlab.layers.shapes.pool_output_size``).
"""

from __future__ import annotations

import numpy as np

from cnnlab._validate import check_choice, check_tuple


def pool2d(X: np.ndarray, pool_size: tuple[int, int], mode: str = "max") -> np.ndarray:
    """The simplest pooling: stride 1, no padding, over one 2-D array ``X (H, W)``.

    Example:
        >>> pool2d(np.arange(9.).reshape(3, 3), (2, 2), "avg")
        array([[2., 3.],
               [5., 6.]])
    """
    check_choice("mode", mode, ("max", "avg"))
    X = np.asarray(X, dtype=float)
    ph, pw = check_tuple("pool_size", pool_size, 2, min_value=1)
    Y = np.zeros((X.shape[0] - ph + 1, X.shape[1] - pw + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            window = X[i : i + ph, j : j + pw]
            Y[i, j] = window.max() if mode == "max" else window.mean()
    return Y


def max_pool2d(
    X: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Max pooling of ``X (C, H, W)`` or ``(N, C, H, W)``, PyTorch semantics.

    Padding counts as ``-inf`` (it never wins). The indices, as in PyTorch, are flat positions
    ``h * W + w`` in each unpadded input channel, so that max-unpooling can scatter back.

    Example:
        >>> max_pool2d(np.arange(16.).reshape(1, 4, 4), 2)[0]
        array([[ 5.,  7.],
               [13., 15.]])
    """
    X = np.asarray(X, dtype=float)
    if X.ndim == 4:
        results = [max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, True)
                   for x in X]
        Y, idx = np.stack([r[0] for r in results]), np.stack([r[1] for r in results])
        return (Y, idx) if return_indices else Y
    kh, kw, sh, sw, ph, pw, out_h, out_w = _windows(X, kernel_size, stride, padding, ceil_mode,
                                                   dilation)
    dh, dw = check_tuple("dilation", dilation, 2, min_value=1)
    C, H, W = X.shape
    Y = np.full((C, out_h, out_w), -np.inf)
    idx = np.zeros((C, out_h, out_w), dtype=np.int64)
    for c in range(C):
        for i in range(out_h):
            for j in range(out_w):
                for a in range(kh):
                    for b in range(kw):
                        h, w = i * sh - ph + a * dh, j * sw - pw + b * dw  # unpadded coordinates
                        if 0 <= h < H and 0 <= w < W and X[c, h, w] > Y[c, i, j]:
                            Y[c, i, j], idx[c, i, j] = X[c, h, w], h * W + w
    return (Y, idx) if return_indices else Y


def avg_pool2d(
    X: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Average pooling of ``X (C, H, W)`` or ``(N, C, H, W)``, PyTorch semantics.

    The divisor: with ``count_include_pad`` it is the window clipped to the padded input (zero
    padding counts, the part that ``ceil_mode`` lets hang past the padding does not); without it,
    only the real input pixels in the window are counted.

    Example:
        >>> avg_pool2d(np.ones((1, 2, 2)), 2, stride=1, padding=1, count_include_pad=True)[0]
        array([[0.25, 0.5 , 0.25],
               [0.5 , 1.  , 0.5 ],
               [0.25, 0.5 , 0.25]])
    """
    X = np.asarray(X, dtype=float)
    if X.ndim == 4:
        return np.stack([avg_pool2d(x, kernel_size, stride, padding, ceil_mode,
                                    count_include_pad) for x in X])
    kh, kw, sh, sw, ph, pw, out_h, out_w = _windows(X, kernel_size, stride, padding, ceil_mode)
    C, H, W = X.shape
    Y = np.zeros((C, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            h0, w0 = i * sh - ph, j * sw - pw  # window start, unpadded coordinates
            h1, w1 = min(h0 + kh, H + ph), min(w0 + kw, W + pw)  # clipped to the padded input
            padded_count = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)  # real pixels only
            total = X[:, h0:h1, w0:w1].sum(axis=(1, 2))  # (C,)
            Y[:, i, j] = total / (padded_count if count_include_pad else (h1 - h0) * (w1 - w0))
    return Y


def max_unpool2d(Y: np.ndarray, indices: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Inverse of max pooling up to the lost values: put each max back where it came from.

    Example:
        >>> Y, idx = max_pool2d(np.arange(4.).reshape(1, 2, 2), 2, return_indices=True)
        >>> max_unpool2d(Y, idx, (2, 2))[0]
        array([[0., 0.],
               [0., 3.]])
    """
    Y, indices = np.asarray(Y, dtype=float), np.asarray(indices)
    H, W = check_tuple("output_size", output_size, 2, min_value=1)
    X = np.zeros(Y.shape[:-2] + (H * W,))
    flat_y, flat_i = Y.reshape(Y.shape[:-2] + (-1,)), indices.reshape(Y.shape[:-2] + (-1,))
    for lead in np.ndindex(*Y.shape[:-2]):  # every (channel) or (sample, channel)
        X[lead][flat_i[lead]] = flat_y[lead]
    return X.reshape(Y.shape[:-2] + (H, W))


def global_avg_pool2d(X: np.ndarray) -> np.ndarray:
    """Mean over the spatial dimensions: ``(..., H, W) -> (..., 1, 1)`` (NiN, ResNet heads).

    Example:
        >>> global_avg_pool2d(np.arange(4.).reshape(1, 2, 2)).tolist()
        [[[1.5]]]
    """
    return np.asarray(X, dtype=float).mean(axis=(-2, -1), keepdims=True)


def _windows(X, kernel_size, stride, padding, ceil_mode, dilation=1):
    """Check the arguments and return ``kh, kw, sh, sw, ph, pw, out_h, out_w``."""
    if X.ndim != 3:
        raise ValueError(f"X must be a (C, H, W) or (N, C, H, W) array, got shape {X.shape}")
    kh, kw = check_tuple("kernel_size", kernel_size, 2, min_value=1)
    sh, sw = (kh, kw) if stride is None else check_tuple("stride", stride, 2, min_value=1)
    ph, pw = check_tuple("padding", padding, 2, min_value=0)
    dh, dw = check_tuple("dilation", dilation, 2, min_value=1)
    out_h = _pool_size(X.shape[1], kh, sh, ph, dh, ceil_mode)
    out_w = _pool_size(X.shape[2], kw, sw, pw, dw, ceil_mode)
    return kh, kw, sh, sw, ph, pw, out_h, out_w


def _pool_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Number of window positions (written out again here so the oracle stays independent)."""
    if p > k // 2:
        raise ValueError(f"padding={p} must be at most half of kernel_size={k}; valid: 0..{k // 2}")
    room = n + 2 * p - (d * (k - 1) + 1)  # how far the window can slide
    if room < 0:
        raise ValueError(f"kernel_size={k} (dilation {d}) is larger than the padded input "
                         f"{n + 2 * p}; valid: a smaller kernel or a larger input")
    out = (-(-room // s) if ceil_mode else room // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:  # last window would start in the right padding
        out -= 1
    return out
