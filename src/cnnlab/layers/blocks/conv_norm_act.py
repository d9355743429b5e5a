"""Conv -> norm -> activation, the unit most CNN blocks are made of."""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar

from torch import nn

from cnnlab._validate import check_divisible, check_int
from cnnlab.layers.blocks._common import LayerFactory, make_activation, resolve_norm


class ConvNormAct(nn.Sequential):
    """Convolution, then normalization, then activation (torchvision ``Conv2dNormActivation``).

    The children are numbered ``0, 1, 2`` like torchvision's (subclasses may name them through
    ``layer_names``). The convolution has a bias only when no normalization follows it: a
    normalization subtracts the per-channel mean, which would cancel any bias anyway.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (or ``(kh, kw)``).
        stride: convolution stride.
        padding: zero padding; ``None`` gives "same"-size output for odd kernels at stride 1,
            ``dilation * (k - 1) // 2``.
        dilation: spacing between kernel taps.
        groups: grouped convolution; must divide both channel counts.
        norm_layer: ``norm_layer(out_channels)`` builds the normalization, or a name of
            :func:`cnnlab.layers.norm.norm_layer` ("batch", "group", ...); ``None`` for none.
        act_layer: activation class (e.g. ``nn.ReLU``); ``None`` for none.
        bias: conv bias; ``None`` means "only if ``norm_layer`` is None".
        inplace: in-place activation where the activation supports it.

    Example:
        >>> import torch
        >>> block = ConvNormAct(3, 16, kernel_size=3, stride=2)
        >>> block(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 16, 16, 16])
    """

    # Names of the (conv, norm, act) children; None numbers them 0, 1, 2 like nn.Sequential.
    layer_names: ClassVar[tuple[str, str, str] | None] = None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | None = None,
        dilation: int = 1,
        groups: int = 1,
        norm_layer: LayerFactory | str | None = nn.BatchNorm2d,
        act_layer: LayerFactory | None = nn.ReLU,
        bias: bool | None = None,
        inplace: bool = True,
    ) -> None:
        check_int("in_channels", in_channels, min_value=1)
        check_int("out_channels", out_channels, min_value=1)
        check_int("groups", groups, min_value=1)
        check_int("dilation", dilation, min_value=1)
        check_divisible("in_channels", in_channels, "groups", groups)
        check_divisible("out_channels", out_channels, "groups", groups)
        if padding is None:
            # Output size (H + 2p - d(k-1) - 1)/s + 1 equals H at s=1 when 2p = d(k-1).
            if isinstance(kernel_size, int):
                padding = dilation * (kernel_size - 1) // 2
            else:
                padding = tuple(dilation * (k - 1) // 2 for k in kernel_size)
        norm_layer = resolve_norm(norm_layer)
        if bias is None:
            bias = norm_layer is None
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=bias,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if act_layer is not None:
            layers.append(make_activation(act_layer, inplace))
        if self.layer_names is None:
            super().__init__(*layers)
        else:
            names = [self.layer_names[0]]
            names += [self.layer_names[1]] if norm_layer is not None else []
            names += [self.layer_names[2]] if act_layer is not None else []
            super().__init__(OrderedDict(zip(names, layers)))
        self.out_channels = out_channels
