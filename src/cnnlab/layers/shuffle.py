"""Channel shuffle (ShuffleNet, Zhang et al. 2018, https://arxiv.org/abs/1707.01083).

A grouped convolution lets each output group see only its own input group. Shuffling the
channels between two grouped convolutions lets information cross groups: with ``groups=g`` and
``C = g * n`` channels, view them as a ``(g, n)`` grid, transpose to ``(n, g)`` and flatten.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab._validate import check_divisible, check_input, check_int


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``x`` across ``groups`` groups.

    Example:
        >>> channel_shuffle(torch.arange(6.).view(1, 6, 1, 1), 2).flatten().tolist()
        [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    """
    check_int("groups", groups, min_value=1)
    check_input(x, ndim=4)
    batch, channels, height, width = x.shape
    check_divisible("channels", channels, "groups", groups)
    x = x.view(batch, groups, channels // groups, height, width)  # (B, g, C/g, H, W)
    x = x.transpose(1, 2).contiguous()  # (B, C/g, g, H, W)
    return x.view(batch, channels, height, width)  # (B, C, H, W)


class ChannelShuffle(nn.Module):
    """Module form of :func:`channel_shuffle`.

    Example:
        >>> ChannelShuffle(groups=2)(torch.zeros(1, 4, 8, 8)).shape
        torch.Size([1, 4, 8, 8])
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = check_int("groups", groups, min_value=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
