"""ResNet's residual blocks (He et al. 2015): basic (two 3x3) and bottleneck (1x1-3x3-1x1)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from cnnlab._validate import check_int
from cnnlab.layers.blocks._common import LayerFactory, make_activation, resolve_norm


def _projection(
    in_channels: int,
    out_channels: int,
    stride: int,
    projection: bool | None,
    norm_layer: LayerFactory | None,
) -> nn.Module | None:
    """The 1x1 (strided) conv + norm on the shortcut; ``None`` where the identity fits."""
    needed = stride != 1 or in_channels != out_channels
    if projection is None:
        projection = needed
    if needed and not projection:
        raise ValueError(
            f"projection=False needs stride=1 and in_channels == out_channels, got "
            f"stride={stride}, in_channels={in_channels}, out_channels={out_channels}; "
            "use projection=True or None"
        )
    if not projection:
        return None
    conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=norm_layer is None)
    if norm_layer is None:
        return nn.Sequential(conv)
    return nn.Sequential(conv, norm_layer(out_channels))


class BasicBlock(nn.Module):
    """ResNet's basic residual block: two 3x3 convs plus a shortcut, ReLU after the sum.

    y = act(bn2(conv2(act(bn1(conv1(x))))) + shortcut(x)); the shortcut is the identity, or a
    1x1 projection (``downsample``) when the stride or the channel count changes.

    Args:
        in_channels: input channels.
        channels: output channels (``expansion`` is 1).
        stride: stride of the first conv (2 halves H and W).
        projection: 1x1 conv on the shortcut; ``None`` adds it only where shapes need it.
        norm_layer: normalization after each conv (``None``: convs get a bias instead).
        act_layer: activation class.

    Example:
        >>> BasicBlock(64, 128, stride=2)(torch.zeros(1, 64, 32, 32)).shape
        torch.Size([1, 128, 16, 16])
    """

    expansion: ClassVar[int] = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        projection: bool | None = None,
        norm_layer: LayerFactory | str | None = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        check_int("stride", stride, min_value=1)
        norm_layer = resolve_norm(norm_layer)
        bias = norm_layer is None
        norm = norm_layer or (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=bias)
        self.bn1 = norm(channels)
        self.relu = make_activation(act_layer)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.bn2 = norm(channels)
        self.downsample = _projection(in_channels, channels, stride, projection, norm_layer)
        self.out_channels = channels

    def zero_init_last(self) -> None:
        """Zero the last norm's weight so the block starts as the identity (Goyal et al. 2017)."""
        if isinstance(self.bn2, nn.BatchNorm2d):
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)  # (B, C, H/s, W/s)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, C, H/s, W/s)
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet's bottleneck block: 1x1 reduce, 3x3 (strided), 1x1 expand by 4, plus a shortcut.

    Like torchvision (ResNet v1.5) the stride sits on the 3x3 conv, not on the first 1x1.

    Args:
        in_channels: input channels.
        channels: bottleneck width; the block outputs ``channels * expansion`` channels.
        stride: stride of the 3x3 conv.
        projection: 1x1 conv on the shortcut; ``None`` adds it only where shapes need it.
        norm_layer: normalization after each conv (``None``: convs get a bias instead).
        act_layer: activation class.
        expansion: output channels per bottleneck channel (4 in ResNet-50/101).

    Example:
        >>> Bottleneck(256, 64)(torch.zeros(1, 256, 14, 14)).shape
        torch.Size([1, 256, 14, 14])
    """

    expansion: int = 4

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        projection: bool | None = None,
        norm_layer: LayerFactory | str | None = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
        expansion: int = 4,
    ) -> None:
        super().__init__()
        check_int("stride", stride, min_value=1)
        self.expansion = check_int("expansion", expansion, min_value=1)
        out_channels = channels * expansion
        norm_layer = resolve_norm(norm_layer)
        bias = norm_layer is None
        norm = norm_layer or (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=bias)
        self.bn1 = norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=bias)
        self.bn2 = norm(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=bias)
        self.bn3 = norm(out_channels)
        self.relu = make_activation(act_layer)
        self.downsample = _projection(in_channels, out_channels, stride, projection, norm_layer)
        self.out_channels = out_channels

    def zero_init_last(self) -> None:
        """Zero the last norm's weight so the block starts as the identity (Goyal et al. 2017)."""
        if isinstance(self.bn3, nn.BatchNorm2d):
            nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)  # (B, 4C, H/s, W/s)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, C, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (B, C, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (B, 4C, H/s, W/s)
        return self.relu(out + identity)
