"""Convolution from scratch in NumPy: ``corr2d`` up to padding, stride, dilation and groups.

Deep-learning "convolution" is cross-correlation: the kernel slides over the input without being
flipped, and each output is the sum of the element-wise product of the kernel and the window
under it. These loops are written to be read, not to be fast; they are the oracle the tests
compare ``torch`` and ``cnnlab.layers`` against. Section by section this follows the course
(d2l.ai chapter 7, "Convolutional Neural Networks"): 7.2 ``corr2d``, 7.3 padding and stride,
7.4 channels and 1×1 convolution.
"""

from __future__ import annotations

import numpy as np

from cnnlab._validate import check_divisible, check_tuple


def corr2d(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """2-D cross-correlation of one input ``X (H, W)`` with one kernel ``K (kh, kw)``.

    The output has size ``(H - kh + 1, W - kw + 1)``: the kernel fits at that many offsets.

    Example:
        >>> corr2d(np.arange(9.).reshape(3, 3), np.array([[0., 1.], [2., 3.]]))
        array([[19., 25.],
               [37., 43.]])
    """
    X, K = np.asarray(X, dtype=float), np.asarray(K, dtype=float)
    _check_ndim("X", X, 2, "(H, W)")
    _check_ndim("K", K, 2, "(kh, kw)")
    kh, kw = K.shape
    _check_fits(X.shape, K.shape)
    Y = np.zeros((X.shape[0] - kh + 1, X.shape[1] - kw + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i : i + kh, j : j + kw] * K).sum()  # window times kernel, summed
    return Y


def corr2d_multi_in(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Several input channels: cross-correlate channel by channel, then add the results.

    Args:
        X: input of shape ``(C, H, W)``.
        K: one kernel per input channel, ``(C, kh, kw)``.

    Example:
        >>> corr2d_multi_in(np.ones((2, 3, 3)), np.ones((2, 2, 2)))
        array([[8., 8.],
               [8., 8.]])
    """
    X, K = np.asarray(X, dtype=float), np.asarray(K, dtype=float)
    _check_ndim("X", X, 3, "(C, H, W)")
    _check_ndim("K", K, 3, "(C, kh, kw)")
    _check_channels(X.shape[0], K.shape[0])
    return sum(corr2d(x, k) for x, k in zip(X, K))  # (H - kh + 1, W - kw + 1)


def corr2d_multi_in_out(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Several input and output channels: one multi-input kernel per output channel.

    Args:
        X: input of shape ``(C_in, H, W)``.
        K: kernels of shape ``(C_out, C_in, kh, kw)`` (PyTorch's weight layout).

    Returns:
        ``(C_out, H - kh + 1, W - kw + 1)``.

    Example:
        >>> corr2d_multi_in_out(np.ones((2, 3, 3)), np.ones((4, 2, 2, 2))).shape
        (4, 2, 2)
    """
    K = np.asarray(K, dtype=float)
    _check_ndim("K", K, 4, "(C_out, C_in, kh, kw)")
    return np.stack([corr2d_multi_in(X, k) for k in K])  # (C_out, H', W')


def corr2d_1x1(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """A 1×1 convolution is a matrix product over channels at every pixel.

    With ``X`` viewed as ``(C_in, H*W)`` (one column per pixel) and the weight as
    ``(C_out, C_in)``, the output is ``W @ X``: a fully connected layer applied per pixel.

    Args:
        X: ``(C_in, H, W)``.
        K: ``(C_out, C_in, 1, 1)`` or ``(C_out, C_in)``.

    Example:
        >>> corr2d_1x1(np.ones((2, 2, 2)), np.array([[1., 2.]])).tolist()
        [[[3.0, 3.0], [3.0, 3.0]]]
    """
    X, K = np.asarray(X, dtype=float), np.asarray(K, dtype=float)
    _check_ndim("X", X, 3, "(C, H, W)")
    c_in, h, w = X.shape
    if K.ndim == 4:
        if K.shape[2:] != (1, 1):
            raise ValueError(f"K must be a 1x1 kernel, got kernel size {K.shape[2:]}")
        K = K[:, :, 0, 0]
    _check_ndim("K", K, 2, "(C_out, C_in) or (C_out, C_in, 1, 1)")
    _check_channels(c_in, K.shape[1])
    Y = K @ X.reshape(c_in, h * w)  # (C_out, C_in) @ (C_in, H*W) -> (C_out, H*W)
    return Y.reshape(K.shape[0], h, w)


def pad2d(X: np.ndarray, padding: int | tuple[int, int], value: float = 0.0) -> np.ndarray:
    """Add ``padding`` rows/columns of ``value`` on each side of the last two dimensions.

    Example:
        >>> pad2d(np.ones((1, 1)), 1).astype(int).tolist()
        [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    """
    ph, pw = check_tuple("padding", padding, 2, min_value=0)
    X = np.asarray(X, dtype=float)
    widths = [(0, 0)] * (X.ndim - 2) + [(ph, ph), (pw, pw)]
    return np.pad(X, widths, constant_values=value)


def conv2d(
    X: np.ndarray,
    K: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> np.ndarray:
    """The full convolution layer: padding, stride, dilation, groups and bias, with loops.

    Output size per dimension: ``floor((n + 2p - d*(k - 1) - 1) / s) + 1`` (see
    ``cnnlab.layers.shapes.conv_output_size`` for the derivation). Output channel ``o`` belongs to
    group ``g = o // (C_out / groups)`` and sees only input channels
    ``g*C_in/groups ... (g+1)*C_in/groups - 1``.

    Args:
        X: ``(C_in, H, W)`` or a batch ``(N, C_in, H, W)``.
        K: ``(C_out, C_in / groups, kh, kw)`` (PyTorch's layout).
        bias: ``(C_out,)`` or None.
        stride, padding, dilation: ints or ``(h, w)`` pairs.
        groups: number of channel groups.

    Example:
        >>> conv2d(np.ones((1, 5, 5)), np.ones((1, 1, 3, 3)), stride=2, padding=1)[0]
        array([[4., 6., 4.],
               [6., 9., 6.],
               [4., 6., 4.]])
    """
    X, K = np.asarray(X, dtype=float), np.asarray(K, dtype=float)
    if X.ndim == 4:
        return np.stack([conv2d(x, K, bias, stride, padding, dilation, groups) for x in X])
    _check_ndim("X", X, 3, "(C, H, W) or (N, C, H, W)")
    _check_ndim("K", K, 4, "(C_out, C_in / groups, kh, kw)")
    sh, sw = check_tuple("stride", stride, 2, min_value=1)
    dh, dw = check_tuple("dilation", dilation, 2, min_value=1)
    c_in, c_out, (kh, kw) = X.shape[0], K.shape[0], K.shape[2:]
    check_divisible("in_channels", c_in, "groups", groups)
    check_divisible("out_channels", c_out, "groups", groups)
    _check_channels(c_in // groups, K.shape[1])
    Xp = pad2d(X, padding)  # (C_in, H + 2ph, W + 2pw)
    eff_h, eff_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1  # dilated kernel extent
    _check_fits(Xp.shape[1:], (eff_h, eff_w))
    out_h = (Xp.shape[1] - eff_h) // sh + 1
    out_w = (Xp.shape[2] - eff_w) // sw + 1
    c_in_g, c_out_g = c_in // groups, c_out // groups
    Y = np.zeros((c_out, out_h, out_w))
    for o in range(c_out):
        g = o // c_out_g  # the group this output channel belongs to
        x_g = Xp[g * c_in_g : (g + 1) * c_in_g]  # (C_in / groups, H_p, W_p)
        for i in range(out_h):
            for j in range(out_w):
                # the window starts at (i*s, j*s) and takes every d-th pixel
                window = x_g[:, i * sh : i * sh + eff_h : dh, j * sw : j * sw + eff_w : dw]
                Y[o, i, j] = (window * K[o]).sum()
        if bias is not None:
            Y[o] += bias[o]
    return Y


def _check_ndim(name: str, A: np.ndarray, ndim: int, layout: str) -> None:
    if A.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array {layout}, got shape {A.shape}")


def _check_channels(c_input: int, c_kernel: int) -> None:
    if c_input != c_kernel:
        raise ValueError(f"the kernel has {c_kernel} input channels but the input has "
                         f"{c_input} (per group); valid: a kernel with {c_input} input channels")


def _check_fits(size: tuple[int, ...], kernel: tuple[int, ...]) -> None:
    if any(k > n for k, n in zip(kernel, size)):
        raise ValueError(f"kernel of (effective) size {tuple(kernel)} is larger than the (padded) "
                         f"input {tuple(size)}; valid: a kernel no larger than the input")
