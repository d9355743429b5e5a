"""Separable convolutions: spatially separable, depthwise separable and flattened.

All three replace one ``k×k`` convolution over all channels by cheaper pieces. Weights for
``C_in -> C_out`` channels without bias:

- standard ``k×k``: ``k²·C_in·C_out`` (8→8, 3×3: 576);
- spatially separable ``k×1`` then ``1×k`` (Szegedy et al. 2016, Inception v3):
  ``k·C_in·C_mid + k·C_mid·C_out`` (8→8→8: 384);
- depthwise separable (Chollet 2017; MobileNet, Howard et al. 2017): a ``k×k`` conv per input
  channel (``groups = C_in``, ``m`` filters each) then a ``1×1`` across channels:
  ``k²·m·C_in + m·C_in·C_out`` (8→8, m = 1: 72 + 64 = 136);
- flattened (Jin et al. 2014): ``1×1`` across channels, then ``k×1`` and ``1×k`` per channel:
  ``C_in·C_out + 2k·C_out`` (8→8: 64 + 24 + 24 = 112).

A ``k×k`` kernel equals a ``k×1`` column times a ``1×k`` row exactly when it has rank 1 (one
non-zero singular value); :func:`factorize_rank1` finds the two 1-D kernels by SVD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnlab._validate import check_input, check_int, check_tuple
from cnnlab.layers.conv import Conv2d, PaddingArg


@dataclass(frozen=True)
class Rank1Factors:
    """A kernel ``K ≈ outer(column, row)`` and the evidence: its singular values.

    Attributes:
        column: the vertical 1-D kernel (length ``kh``), for the ``k×1`` convolution.
        row: the horizontal 1-D kernel (length ``kw``), for the ``1×k`` convolution.
        singular_values: all singular values of ``K``, largest first.
        residual: ``max |K - outer(column, row)|``.
    """

    column: np.ndarray
    row: np.ndarray
    singular_values: np.ndarray
    residual: float


def factorize_rank1(kernel: np.ndarray | torch.Tensor, rtol: float = 1e-9) -> Rank1Factors:
    """Split a rank-1 ``kh×kw`` kernel into a column and a row kernel, by SVD.

    ``K = U·diag(σ)·Vᵀ``; if only ``σ₁`` is non-zero then ``K = σ₁·u₁·v₁ᵀ`` and we return
    ``column = √σ₁·u₁`` and ``row = √σ₁·v₁`` (signs chosen so the column's largest entry is
    positive). A kernel is taken as rank 1 when ``σ₂ <= rtol·σ₁``.

    Raises:
        ValueError: if the kernel is not 2-D, or not rank 1 (the message lists the singular
            values), or all zero.

    Example:
        >>> f = factorize_rank1([[1, 0, -1], [2, 0, -2], [1, 0, -1]])  # Sobel x
        >>> np.round(f.column / f.column[0], 6).tolist(), f.singular_values.round(3).tolist()
        ([1.0, 2.0, 1.0], [3.464, 0.0, 0.0])
    """
    K = kernel.detach().cpu().double().numpy() if isinstance(kernel, torch.Tensor) else kernel
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2:
        raise ValueError(f"kernel must be a 2-D (kh, kw) array, got shape {K.shape}; for a conv "
                         "weight (C_out, C_in, kh, kw) factorize each weight[o, c]")
    U, S, Vt = np.linalg.svd(K)  # K = U @ diag(S) @ Vt, S sorted descending
    if S[0] == 0:
        raise ValueError("kernel is all zeros; it has no rank-1 factors")
    if len(S) > 1 and S[1] > rtol * S[0]:
        raise ValueError(
            f"kernel is not rank 1: singular values {np.array2string(S, precision=4)} (a rank-1 "
            f"kernel has one non-zero value; the second is {S[1] / S[0]:.3g} of the first, more "
            f"than rtol={rtol:g}), so no k×1 then 1×k pair reproduces it exactly"
        )
    column, row = np.sqrt(S[0]) * U[:, 0], np.sqrt(S[0]) * Vt[0]
    if column[np.argmax(np.abs(column))] < 0:
        column, row = -column, -row
    residual = float(np.abs(K - np.outer(column, row)).max())
    return Rank1Factors(column=column, row=row, singular_values=S, residual=residual)


class SpatiallySeparableConv2d(nn.Module):
    """A ``k×1`` convolution then a ``1×k`` convolution: ``2k`` instead of ``k²`` taps per pair.

    The stride, padding and dilation of each spatial dimension go to the conv that slides along
    it. Only the second conv has a bias, so a rank-1 kernel's full convolution (zero padding) is
    reproduced exactly (see :meth:`from_kernel`).

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: ``k`` or ``(kh, kw)``: ``kh×1`` first, ``1×kw`` second.
        stride, padding, dilation: as for :class:`~cnnlab.layers.conv.Conv2d`.
        mid_channels: channels between the two convs (default ``out_channels``).
        bias: bias on the second conv.

    Example:
        >>> layer = SpatiallySeparableConv2d(8, 8, kernel_size=3, padding=1, bias=False)
        >>> layer(torch.zeros(1, 8, 5, 5)).shape, sum(p.numel() for p in layer.parameters())
        (torch.Size([1, 8, 5, 5]), 384)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: PaddingArg = 0,
        dilation: int | tuple[int, int] = 1,
        mid_channels: int | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        vertical, horizontal = _split_1d(kernel_size, stride, padding, dilation)
        mid = out_channels if mid_channels is None else check_int("mid_channels", mid_channels,
                                                                  min_value=1)
        self.vertical = Conv2d(in_channels, mid, *vertical, bias=False)
        self.horizontal = Conv2d(mid, out_channels, *horizontal, bias=bias)

    @classmethod
    def from_kernel(
        cls,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        stride: int | tuple[int, int] = 1,
        padding: PaddingArg = 0,
        dilation: int | tuple[int, int] = 1,
        rtol: float = 1e-9,
    ) -> SpatiallySeparableConv2d:
        """Build the separable layer that reproduces ``conv2d(x, weight, bias, ...)`` exactly.

        Every ``weight[o, c]`` must be rank 1 (:func:`factorize_rank1`). The first conv makes one
        column-filtered copy of input ``c`` for every output ``o`` (``C_in·C_out`` channels); the
        second combines them with the row kernels. For one input and output channel this is
        just the column then the row.

        Example:
            >>> sobel = torch.tensor([[[[1., 0., -1.], [2., 0., -2.], [1., 0., -1.]]]])
            >>> SpatiallySeparableConv2d.from_kernel(sobel, padding=1).vertical.weight.shape
            torch.Size([1, 1, 3, 1])
        """
        if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
            got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else repr(weight)
            raise ValueError(f"weight must be a (C_out, C_in, kh, kw) tensor, got {got}")
        c_out, c_in, kh, kw = weight.shape
        layer = cls(c_in, c_out, (kh, kw), stride, padding, dilation,
                    mid_channels=c_in * c_out, bias=bias is not None)
        layer = layer.to(dtype=weight.dtype, device=weight.device)  # copy without rounding
        vertical = torch.zeros_like(layer.vertical.weight)  # (C_in*C_out, C_in, kh, 1)
        horizontal = torch.zeros_like(layer.horizontal.weight)  # (C_out, C_in*C_out, 1, kw)
        for o in range(c_out):
            for c in range(c_in):
                try:
                    f = factorize_rank1(weight[o, c], rtol)
                except ValueError as exc:
                    if "all zeros" in str(exc):
                        continue  # a zero slice contributes nothing
                    raise ValueError(f"weight[{o}, {c}]: {exc}") from None
                mid = o * c_in + c  # the copy of input c for output o
                vertical[mid, c, :, 0] = torch.as_tensor(f.column, dtype=vertical.dtype)
                horizontal[o, mid, 0, :] = torch.as_tensor(f.row, dtype=horizontal.dtype)
        with torch.no_grad():
            layer.vertical.weight.copy_(vertical)
            layer.horizontal.weight.copy_(horizontal)
            if bias is not None:
                layer.horizontal.bias.copy_(bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.vertical(x)  # (N, C_mid, H', W): slides along H only
        return self.horizontal(x)  # (N, C_out, H', W'): slides along W only


class DepthwiseSeparableConv2d(nn.Module):
    """Depthwise ``k×k`` conv (``groups = in_channels``) then a pointwise ``1×1`` conv.

    The depthwise conv filters each channel on its own (spatial mixing); the pointwise conv
    mixes channels (no spatial extent). ``depth_multiplier`` ``m`` gives each input channel
    ``m`` depthwise filters, so ``m·C_in`` channels reach the pointwise conv.

    Example:
        >>> layer = DepthwiseSeparableConv2d(8, 8, kernel_size=3, padding=1, bias=False)
        >>> sum(p.numel() for p in layer.parameters())  # 72 depthwise + 64 pointwise
        136
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: PaddingArg = 0,
        dilation: int | tuple[int, int] = 1,
        depth_multiplier: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, min_value=1)
        m = check_int("depth_multiplier", depth_multiplier, min_value=1)
        self.depthwise = Conv2d(in_channels, m * in_channels, kernel_size, stride, padding,
                                dilation, groups=in_channels, bias=False)
        self.pointwise = Conv2d(m * in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise(x)  # (N, m*C_in, H', W'): each channel filtered alone
        return self.pointwise(x)  # (N, C_out, H', W'): channels mixed per pixel


class FlattenedConv2d(nn.Module):
    """Flattened convolution: ``1×1`` across channels, then ``k×1`` and ``1×k`` per channel.

    Jin, Dundar & Culurciello 2014 (https://arxiv.org/abs/1412.5474) replace each 3-D filter by
    three 1-D filters: lateral (over channels), vertical and horizontal. The two spatial ones
    are depthwise (``groups = out_channels``). The bias sits on the last conv.

    Example:
        >>> layer = FlattenedConv2d(8, 8, kernel_size=3, padding=1, bias=False)
        >>> sum(p.numel() for p in layer.parameters())  # 64 + 24 + 24
        112
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: PaddingArg = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        vertical, horizontal = _split_1d(kernel_size, stride, padding, dilation)
        c = check_int("out_channels", out_channels, min_value=1)
        self.lateral = Conv2d(in_channels, c, 1, bias=False)
        self.vertical = Conv2d(c, c, *vertical, groups=c, bias=False)
        self.horizontal = Conv2d(c, c, *horizontal, groups=c, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, ndim=4, channels=self.lateral.in_channels)
        x = self.lateral(x)  # (N, C_out, H, W): mix channels
        x = self.vertical(x)  # (N, C_out, H', W): per channel, along H
        return self.horizontal(x)  # (N, C_out, H', W'): per channel, along W


def _split_1d(kernel_size, stride, padding, dilation) -> tuple[tuple, tuple]:
    """Conv2d arguments ``(kernel_size, stride, padding, dilation)`` of the ``kh×1`` and ``1×kw``
    convs: each spatial dimension's settings go to the conv that slides along it.

    Zero padding is separable too: padding rows before the vertical conv and columns before the
    horizontal one gives the same values as padding both before one ``kh×kw`` conv.
    """
    kh, kw = check_tuple("kernel_size", kernel_size, 2, min_value=1)
    sh, sw = check_tuple("stride", stride, 2, min_value=1)
    dh, dw = check_tuple("dilation", dilation, 2, min_value=1)
    if isinstance(padding, str):
        pad_v = pad_h = padding  # "same"/"valid": Conv2d computes it per dimension
    else:
        ph, pw = check_tuple("padding", padding, 2, min_value=0)
        pad_v, pad_h = (ph, 0), (0, pw)
    return ((kh, 1), (sh, 1), pad_v, (dh, 1)), ((1, kw), (1, sw), pad_h, (1, dw))


__all__ = [
    "DepthwiseSeparableConv2d",
    "FlattenedConv2d",
    "Rank1Factors",
    "SpatiallySeparableConv2d",
    "factorize_rank1",
]
