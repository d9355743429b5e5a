"""Blocks of the efficient nets: MobileNetV2's inverted residual (Sandler et al. 2018) and the
ShuffleNet v1 unit (Zhang et al. 2017)."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab._validate import check_choice, check_divisible, check_int
from cnnlab.layers.blocks._common import LayerFactory, make_activation, resolve_norm
from cnnlab.layers.blocks.conv_norm_act import ConvNormAct
from cnnlab.layers.shuffle import channel_shuffle


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual: 1x1 expand, 3x3 depthwise, linear 1x1 project.

    Narrow -> wide (``expand_ratio`` times) -> narrow, the reverse of a ResNet bottleneck; the
    last 1x1 has no activation ("linear bottleneck", since ReLU on few channels loses
    information). The input is added back when stride is 1 and the channel count is unchanged.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: 1 or 2 (on the depthwise conv).
        expand_ratio: hidden width = ``round(in_channels * expand_ratio)``; 1 skips the expansion.
        norm_layer: normalization class or name (``None``/"none": no normalization).
        act_layer: activation class (ReLU6 in the paper).

    Example:
        >>> InvertedResidual(24, 24, stride=1, expand_ratio=6)(torch.zeros(1, 24, 8, 8)).shape
        torch.Size([1, 24, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        expand_ratio: float = 6,
        norm_layer: LayerFactory | str = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU6,
    ) -> None:
        super().__init__()
        check_choice("stride", stride, (1, 2))
        if expand_ratio < 1:
            raise ValueError(f"expand_ratio must be >= 1, got {expand_ratio!r}")
        hidden = int(round(in_channels * expand_ratio))
        norm_layer = resolve_norm(norm_layer) or (lambda c: nn.Identity())
        layers: list[nn.Module] = []
        if expand_ratio != 1:  # pointwise expansion
            layers.append(
                ConvNormAct(in_channels, hidden, 1, norm_layer=norm_layer, act_layer=act_layer)
            )
        layers += [
            # depthwise 3x3: one filter per channel (groups = channels)
            ConvNormAct(
                hidden, hidden, 3, stride, groups=hidden, norm_layer=norm_layer, act_layer=act_layer
            ),
            # pointwise linear projection: no activation
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            norm_layer(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.stride = stride
        self.use_res_connect = stride == 1 and in_channels == out_channels
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)  # (B, C, H, W)
        return self.conv(x)  # (B, C_out, H/s, W/s)


class ShuffleNetUnit(nn.Module):
    """ShuffleNet v1 unit: grouped 1x1, channel shuffle, depthwise 3x3, grouped 1x1, merge.

    Stride 1: the branch output is added to the input (``in_channels == out_channels``).
    Stride 2: the input, average-pooled 3x3/2, is concatenated with a branch of
    ``out_channels - in_channels`` channels, so channels grow at no extra cost. The bottleneck
    width is ``out_channels // 4`` as in the paper; ReLU follows the merge.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: 1 (add) or 2 (concat).
        groups: groups of the 1x1 convs (1, 2, 3, 4 or 8 in the paper).
        first_groups: groups of the first 1x1 conv; ``None`` means ``groups`` (the paper uses 1
            for the very first unit, whose 24 input channels are too few to split).
        norm_layer: normalization class or name.
        act_layer: activation class.

    Example:
        >>> ShuffleNetUnit(240, 240, stride=1, groups=3)(torch.zeros(1, 240, 28, 28)).shape
        torch.Size([1, 240, 28, 28])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        groups: int = 3,
        first_groups: int | None = None,
        norm_layer: LayerFactory | str = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        check_choice("stride", stride, (1, 2))
        check_int("groups", groups, min_value=1)
        if stride == 1 and in_channels != out_channels:
            raise ValueError(
                f"a stride-1 ShuffleNetUnit adds its input, so out_channels must equal "
                f"in_channels={in_channels}; got out_channels={out_channels}"
            )
        branch_channels = out_channels - in_channels if stride == 2 else out_channels
        if branch_channels < 1:
            raise ValueError(
                f"a stride-2 ShuffleNetUnit concatenates its input, so out_channels must exceed "
                f"in_channels={in_channels}; got out_channels={out_channels}"
            )
        mid = out_channels // 4
        first_groups = groups if first_groups is None else first_groups
        check_divisible("bottleneck channels (out_channels // 4)", mid, "groups", groups)
        self.groups = groups
        self.stride = stride
        self.conv1 = ConvNormAct(
            in_channels, mid, 1, groups=first_groups, norm_layer=norm_layer, act_layer=act_layer
        )
        self.conv2 = ConvNormAct(
            mid, mid, 3, stride, groups=mid, norm_layer=norm_layer, act_layer=None
        )
        self.conv3 = ConvNormAct(
            mid, branch_channels, 1, groups=groups, norm_layer=norm_layer, act_layer=None
        )
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()
        self.relu = make_activation(act_layer)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)  # grouped 1x1: (B, mid, H, W)
        out = channel_shuffle(out, self.groups)  # let the next grouped conv see every group
        out = self.conv2(out)  # depthwise 3x3: (B, mid, H/s, W/s)
        out = self.conv3(out)  # grouped 1x1: (B, branch, H/s, W/s)
        if self.stride == 1:
            return self.relu(out + x)  # (B, C, H, W)
        return self.relu(torch.cat([self.shortcut(x), out], dim=1))  # (B, C_out, H/2, W/2)
