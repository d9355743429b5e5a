"""Grouped convolution (AlexNet, ResNeXt) and the shuffled grouped convolution (ShuffleNet).

With ``groups = g`` the channels split into ``g`` groups and each group of outputs sees only its
own group of inputs: ``g`` independent convolutions side by side, ``g`` times fewer weights
(``k²·C_in·C_out / g``; 8→8, 3×3, g = 2: 288 instead of 576). Stacked grouped convs never let
information cross groups; a channel shuffle after each one fixes that (Zhang et al. 2018,
https://arxiv.org/abs/1707.01083).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.layers.conv import Conv2d, PaddingArg
from cnnlab.layers.shuffle import ChannelShuffle


class GroupedConv2d(Conv2d):
    """A :class:`~cnnlab.layers.conv.Conv2d` whose ``groups`` is a required argument.

    Example:
        >>> layer = GroupedConv2d(8, 8, kernel_size=3, groups=2, padding=1, bias=False)
        >>> layer.weight.shape, layer.weight.numel()  # each filter sees 8 / 2 input channels
        (torch.Size([8, 4, 3, 3]), 288)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        groups: int,
        stride: int | tuple[int, int] = 1,
        padding: PaddingArg = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode)


class ShuffledGroupedConv2d(nn.Module):
    """Grouped convolution followed by a channel shuffle with the same number of groups.

    After the shuffle, each group of the next grouped conv receives channels from every group
    of this one.

    Example:
        >>> layer = ShuffledGroupedConv2d(8, 8, kernel_size=1, groups=4)
        >>> layer(torch.zeros(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        groups: int,
        stride: int | tuple[int, int] = 1,
        padding: PaddingArg = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.conv = GroupedConv2d(in_channels, out_channels, kernel_size, groups, stride,
                                  padding, dilation, bias)
        self.shuffle = ChannelShuffle(groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # (N, C_out, H', W'), output group j saw only input group j
        return self.shuffle(x)  # (N, C_out, H', W'), groups interleaved


__all__ = ["GroupedConv2d", "ShuffledGroupedConv2d"]
