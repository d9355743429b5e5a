"""Pooling and upsampling layers with checked arguments and inputs.

Thin subclasses of torch's ``MaxPool2d``, ``MaxUnpool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d``
and ``Upsample``: same parameters and behaviour, plus up-front ``ValueError`` messages and a
:meth:`MaxPool2d.unpool` that builds the matching max-unpooling layer. Output sizes follow
``cnnlab.layers.shapes.pool_output_size`` (kernel, padding and dilation are checked against the
input in every forward pass).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab._validate import check_choice, check_input, check_tuple
from cnnlab.layers.shapes import check_fits


def _check_pool_args(kernel_size, stride, padding, dilation=1) -> None:
    k = check_tuple("kernel_size", kernel_size, 2, min_value=1)
    if stride is not None:
        check_tuple("stride", stride, 2, min_value=1)
    p = check_tuple("padding", padding, 2, min_value=0)
    check_tuple("dilation", dilation, 2, min_value=1)
    for ki, pi in zip(k, p):
        if pi > ki // 2:
            raise ValueError(f"padding={padding!r} must be at most half of kernel_size="
                             f"{kernel_size!r}; valid: 0..{ki // 2}")


def _pairs(*values: int | tuple[int, int]) -> list[tuple[int, int]]:
    """Each int as ``(v, v)``; pairs unchanged."""
    return [v if isinstance(v, tuple) else (v, v) for v in values]


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


class MaxPool2d(nn.MaxPool2d):
    """Max pooling; ``return_indices=True`` also returns where each maximum came from.

    Example:
        >>> pool = MaxPool2d(2, return_indices=True)
        >>> y, idx = pool(torch.rand(1, 3, 6, 6)); pool.unpool()(y, idx).shape
        torch.Size([1, 3, 6, 6])
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        _check_pool_args(kernel_size, stride, padding, dilation)
        _check_bool("return_indices", return_indices)
        _check_bool("ceil_mode", ceil_mode)
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode)

    def forward(self, x: torch.Tensor):  # -> Tensor | (Tensor, Tensor)
        check_input(x, ndim=4)
        check_fits(tuple(x.shape[2:]), *_pairs(self.kernel_size, self.padding, self.dilation))
        return super().forward(x)  # (N, C, H', W') [, indices of the same shape]

    def unpool(self) -> MaxUnpool2d:
        """The :class:`MaxUnpool2d` with this layer's kernel, stride and padding."""
        if self.dilation not in (1, (1, 1)):
            raise ValueError(f"max-unpooling has no dilation; this layer has dilation="
                             f"{self.dilation!r} (valid: 1)")
        return MaxUnpool2d(self.kernel_size, self.stride, self.padding)


class MaxUnpool2d(nn.MaxUnpool2d):
    """Partial inverse of :class:`MaxPool2d`: each maximum goes back to its place, zeros elsewhere.

    Pooling maps several input sizes to the same output size; pass ``output_size`` to choose.

    Example:
        >>> y, idx = MaxPool2d(2, return_indices=True)(torch.rand(1, 1, 5, 5))
        >>> MaxUnpool2d(2)(y, idx, output_size=(5, 5)).shape
        torch.Size([1, 1, 5, 5])
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        _check_pool_args(kernel_size, stride, padding)
        super().__init__(kernel_size, stride, padding)

    def forward(
        self, x: torch.Tensor, indices: torch.Tensor, output_size: list[int] | None = None
    ) -> torch.Tensor:
        check_input(x, ndim=4)
        if not isinstance(indices, torch.Tensor) or indices.shape != x.shape:
            got = tuple(indices.shape) if isinstance(indices, torch.Tensor) else type(indices)
            raise ValueError(f"indices must be the tensor MaxPool2d(return_indices=True) "
                             f"returned, of the input's shape {tuple(x.shape)}; got {got}")
        if output_size is not None:
            target = tuple(output_size)[-2:]
            # the default size inverts the pooling formula: (n - 1)*s + k - 2p; like torch,
            # accept anything less than one stride away (ceil_mode pools make it larger)
            k, s, p = (check_tuple(name, v, 2) for name, v in
                       (("kernel_size", self.kernel_size), ("stride", self.stride),
                        ("padding", self.padding)))
            for i, t in enumerate(target):
                default = (x.shape[2 + i] - 1) * s[i] + k[i] - 2 * p[i]
                lo, hi = max(default - s[i] + 1, 1), default + s[i] - 1
                if not lo <= t <= hi:
                    raise ValueError(f"output_size={tuple(output_size)!r} is not reachable in "
                                     f"spatial dimension {i}; valid: {lo}..{hi}")
            if indices.numel() and int(indices.max()) >= target[0] * target[1]:
                raise ValueError(f"indices point past output_size={target!r}: max index "
                                 f"{int(indices.max())} >= {target[0] * target[1]}")
            output_size = list(target)
        return super().forward(x, indices, output_size)  # (N, C, H_out, W_out)


class AvgPool2d(nn.AvgPool2d):
    """Average pooling with ``ceil_mode`` and ``count_include_pad`` (divide by padded zeros too).

    Example:
        >>> AvgPool2d(3, stride=2, padding=1, ceil_mode=True)(torch.ones(1, 1, 6, 6)).shape
        torch.Size([1, 1, 4, 4])
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        _check_pool_args(kernel_size, stride, padding)
        _check_bool("ceil_mode", ceil_mode)
        _check_bool("count_include_pad", count_include_pad)
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, ndim=4)
        check_fits(tuple(x.shape[2:]), *_pairs(self.kernel_size, self.padding, 1))
        return super().forward(x)  # (N, C, H', W')


class GlobalAvgPool2d(nn.AdaptiveAvgPool2d):
    """Average each channel over all positions (NiN, GoogLeNet, ResNet heads).

    Args:
        flatten: return ``(N, C)`` instead of ``(N, C, 1, 1)``.

    Example:
        >>> GlobalAvgPool2d(flatten=True)(torch.ones(2, 5, 7, 7)).shape
        torch.Size([2, 5])
    """

    def __init__(self, flatten: bool = False) -> None:
        _check_bool("flatten", flatten)
        super().__init__(1)
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, ndim=4)
        x = super().forward(x)  # (N, C, 1, 1)
        return x.flatten(1) if self.flatten else x  # (N, C) or (N, C, 1, 1)

    def extra_repr(self) -> str:
        return f"flatten={self.flatten}"


class Upsample(nn.Upsample):
    """Nearest or bilinear upsampling by ``scale_factor`` or to a fixed ``size``.

    Example:
        >>> Upsample(scale_factor=2, mode="bilinear")(torch.rand(1, 3, 4, 4)).shape
        torch.Size([1, 3, 8, 8])
    """

    def __init__(
        self,
        size: int | tuple[int, int] | None = None,
        scale_factor: float | tuple[float, float] | None = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
    ) -> None:
        check_choice("mode", mode, ("nearest", "bilinear"))
        if (size is None) == (scale_factor is None):
            raise ValueError(f"give exactly one of size and scale_factor; got size={size!r}, "
                             f"scale_factor={scale_factor!r}")
        if size is not None:
            size = check_tuple("size", size, 2, min_value=1)
        if scale_factor is not None:
            factors = scale_factor if isinstance(scale_factor, tuple) else (scale_factor,)
            if not all(isinstance(f, int | float) and f > 0 for f in factors):
                raise ValueError(f"scale_factor must be a positive number or a pair of them, "
                                 f"got {scale_factor!r}")
        if mode == "nearest" and align_corners is not None:
            raise ValueError(f"align_corners={align_corners!r} only applies to mode='bilinear'; "
                             "valid for 'nearest': None")
        if mode == "bilinear" and align_corners is None:
            align_corners = False  # torch's default, said explicitly to avoid its warning
        super().__init__(size, scale_factor, mode, align_corners)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, ndim=4)
        return super().forward(x)  # (N, C, H*scale, W*scale) or (N, C, *size)


__all__ = ["AvgPool2d", "GlobalAvgPool2d", "MaxPool2d", "MaxUnpool2d", "Upsample"]
