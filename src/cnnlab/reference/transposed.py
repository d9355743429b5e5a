"""Transposed convolution from scratch in NumPy, two ways that give the same numbers.

1. **Scattering** (d2l.ai 14.10): every input pixel stamps a copy of the kernel, scaled by the
   pixel's value, onto the output at stride ``s``; overlapping stamps add up.
2. **The transpose of the convolution's matrix**: a convolution is linear, so for a fixed input
   size it is a (sparse) matrix ``M`` with ``conv(X).ravel() == M @ X.ravel()``. The transposed
   convolution is multiplication by ``M.T``: it maps the conv's output shape back to its input
   shape (not its values: ``M.T`` is not ``M``'s inverse). This is also why it is the gradient of
   the convolution with respect to its input.
"""

from __future__ import annotations

import numpy as np

from cnnlab._validate import check_divisible, check_tuple


def conv_transpose2d(
    X: np.ndarray,
    K: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    output_padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> np.ndarray:
    """Transposed convolution by scattering kernel stamps, PyTorch semantics.

    The stamps cover ``(n - 1)*s + d*(k - 1) + 1`` pixels (plus ``output_padding`` at the end);
    ``padding`` then crops ``p`` pixels from each side, giving
    ``out = (n - 1)*s - 2p + d*(k - 1) + output_padding + 1``.

    Args:
        X: ``(C_in, H, W)`` or ``(N, C_in, H, W)``.
        K: ``(C_in, C_out / groups, kh, kw)`` (PyTorch's ConvTranspose2d weight layout).
        bias: ``(C_out,)`` or None.

    Example:
        >>> X = np.array([[[0., 1.], [2., 3.]]])  # (1, 2, 2)
        >>> conv_transpose2d(X, X[None])[0]  # kernel (1, 1, 2, 2)
        array([[ 0.,  0.,  1.],
               [ 0.,  4.,  6.],
               [ 4., 12.,  9.]])
    """
    X, K = np.asarray(X, dtype=float), np.asarray(K, dtype=float)
    if X.ndim == 4:
        return np.stack([conv_transpose2d(x, K, bias, stride, padding, output_padding,
                                          dilation, groups) for x in X])
    if X.ndim != 3 or K.ndim != 4:
        raise ValueError(f"X must be (C_in, H, W) and K (C_in, C_out / groups, kh, kw); got "
                         f"shapes {X.shape} and {K.shape}")
    sh, sw = check_tuple("stride", stride, 2, min_value=1)
    ph, pw = check_tuple("padding", padding, 2, min_value=0)
    oph, opw = check_tuple("output_padding", output_padding, 2, min_value=0)
    dh, dw = check_tuple("dilation", dilation, 2, min_value=1)
    c_in, H, W = X.shape
    if K.shape[0] != c_in:
        raise ValueError(f"K has {K.shape[0]} input channels but X has {c_in}; valid: {c_in}")
    check_divisible("in_channels", c_in, "groups", groups)
    c_in_g, c_out_g = c_in // groups, K.shape[1]
    kh, kw = K.shape[2:]
    eff_h, eff_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1  # dilated kernel extent
    full = np.zeros((groups * c_out_g, (H - 1) * sh + eff_h + oph, (W - 1) * sw + eff_w + opw))
    for c in range(c_in):
        g = c // c_in_g  # this input channel writes to the output channels of its group
        for i in range(H):
            for j in range(W):
                # stamp K[c] (C_out / groups, kh, kw), scaled by the pixel, at (i*s, j*s)
                full[g * c_out_g : (g + 1) * c_out_g,
                     i * sh : i * sh + eff_h : dh,
                     j * sw : j * sw + eff_w : dw] += X[c, i, j] * K[c]
    out_h, out_w = full.shape[1] - 2 * ph, full.shape[2] - 2 * pw
    if out_h < 1 or out_w < 1:
        raise ValueError(f"padding={padding!r} crops the whole output {full.shape[1:]}")
    Y = full[:, ph : ph + out_h, pw : pw + out_w]  # crop the padding
    return Y if bias is None else Y + np.asarray(bias, dtype=float)[:, None, None]


def conv_matrix(
    K: np.ndarray,
    input_size: tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> np.ndarray:
    """The matrix ``M`` of a convolution (groups = 1) on inputs of size ``input_size``.

    Row ``(o, i, j)`` of ``M`` holds, at column ``(c, h, w)``, the kernel weight
    ``K[o, c, a, b]`` that multiplies input pixel ``(h, w) = (i*s - p + a*d, j*s - p + b*d)``;
    every other entry is zero, so ``M`` is sparse (stored dense here, for small teaching sizes).

    Args:
        K: ``(C_out, C_in, kh, kw)``.
        input_size: ``(H, W)``.

    Returns:
        ``M`` of shape ``(C_out * H_out * W_out, C_in * H * W)``.

    Example:
        >>> conv_matrix(np.ones((1, 1, 2, 2)), (3, 3)).astype(int)[0]
        array([1, 1, 0, 1, 1, 0, 0, 0, 0])
    """
    K = np.asarray(K, dtype=float)
    if K.ndim != 4:
        raise ValueError(f"K must be (C_out, C_in, kh, kw), got shape {K.shape}")
    H, W = check_tuple("input_size", input_size, 2, min_value=1)
    sh, sw = check_tuple("stride", stride, 2, min_value=1)
    ph, pw = check_tuple("padding", padding, 2, min_value=0)
    dh, dw = check_tuple("dilation", dilation, 2, min_value=1)
    c_out, c_in, kh, kw = K.shape
    out_h = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"the kernel {K.shape[2:]} does not fit the padded input size {(H, W)}")
    M = np.zeros((c_out, out_h, out_w, c_in, H, W))
    for o, i, j, c, a, b in np.ndindex(c_out, out_h, out_w, c_in, kh, kw):
        h, w = i * sh - ph + a * dh, j * sw - pw + b * dw
        if 0 <= h < H and 0 <= w < W:  # taps on the zero padding contribute nothing
            M[o, i, j, c, h, w] = K[o, c, a, b]
    return M.reshape(c_out * out_h * out_w, c_in * H * W)


def conv_transpose2d_matrix(
    X: np.ndarray,
    K: np.ndarray,
    output_size: tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> np.ndarray:
    """Transposed convolution as ``M.T @ x``, where ``M`` is the matching convolution's matrix.

    The transposed convolution with weight ``K (C_in, C_out, kh, kw)`` is the transpose of the
    convolution with the same weight read as ``(C_out_conv, C_in_conv) = (C_in, C_out)``, acting
    on inputs of size ``output_size``; ``output_size`` picks among the sizes a strided
    convolution maps onto the same size (what ``output_padding`` does in the scatter version).

    Args:
        X: ``(C_in, H, W)``.
        K: ``(C_in, C_out, kh, kw)`` (ConvTranspose2d layout, groups = 1).
        output_size: ``(H_out, W_out)``.

    Example:
        >>> X, K = np.random.rand(2, 3, 3), np.random.rand(2, 4, 3, 3)
        >>> np.allclose(conv_transpose2d_matrix(X, K, (5, 5)), conv_transpose2d(X, K))
        True
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 3:
        raise ValueError(f"X must be (C_in, H, W), got shape {X.shape}")
    M = conv_matrix(K, output_size, stride, padding, dilation)  # (C_in*H*W, C_out*H_out*W_out)
    if M.shape[0] != X.size:
        raise ValueError(f"output_size={tuple(output_size)!r} does not match the input "
                         f"{X.shape}: a convolution of that size gives {M.shape[0]} values, "
                         f"not {X.size}")
    H_out, W_out = output_size
    return (M.T @ X.ravel()).reshape(np.shape(K)[1], H_out, W_out)  # (C_out, H_out, W_out)
