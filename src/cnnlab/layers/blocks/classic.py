"""The blocks of VGG (Simonyan & Zisserman 2014), NiN (Lin et al. 2013) and GoogLeNet's Inception
(Szegedy et al. 2014)."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab._validate import check_choice, check_int
from cnnlab.layers.blocks._common import LayerFactory, make_activation, resolve_norm
from cnnlab.layers.blocks.conv_norm_act import ConvNormAct


class VGGBlock(nn.Sequential):
    """``num_convs`` 3x3 convolutions (padding 1) with activations, then a 2x2 max-pool.

    The layers are direct children (conv, [norm], act, ..., pool) like the flat ``features`` of
    torchvision's VGG, so a network can splice blocks into one ``nn.Sequential``. The 3x3 convs
    keep the size; the pool halves it: (B, C_in, H, W) -> (B, C_out, H/2, W/2).

    Args:
        num_convs: number of conv layers (>= 1).
        in_channels: input channels.
        out_channels: channels of every conv in the block.
        norm_layer: e.g. ``nn.BatchNorm2d`` after each conv; ``None`` for none.
        act_layer: activation class.
        bias: conv bias; ``None`` means "only without norm" (torchvision's VGG-BN keeps it: True).
        pool: end with the 2x2 max-pool.

    Example:
        >>> VGGBlock(2, 3, 64)(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 64, 16, 16])
    """

    def __init__(
        self,
        num_convs: int,
        in_channels: int,
        out_channels: int,
        norm_layer: LayerFactory | str | None = None,
        act_layer: LayerFactory = nn.ReLU,
        bias: bool | None = None,
        pool: bool = True,
    ) -> None:
        check_int("num_convs", num_convs, min_value=1)
        check_int("in_channels", in_channels, min_value=1)
        check_int("out_channels", out_channels, min_value=1)
        norm_layer = resolve_norm(norm_layer)
        if bias is None:
            bias = norm_layer is None
        layers: list[nn.Module] = []
        for _ in range(num_convs):
            layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias))
            if norm_layer is not None:
                layers.append(norm_layer(out_channels))
            layers.append(make_activation(act_layer))
            in_channels = out_channels
        if pool:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        super().__init__(*layers)
        self.out_channels = out_channels


class NiNBlock(nn.Sequential):
    """Network-in-Network block: a k x k conv, then two 1x1 convs, each followed by an activation.

    The 1x1 convs act as a small fully connected network applied at every pixel (Lin et al.
    2013, "mlpconv"), mixing channels without touching the spatial size.

    Args:
        in_channels: input channels.
        out_channels: channels of all three convs.
        kernel_size: size of the first conv.
        stride: stride of the first conv.
        padding: padding of the first conv.
        act_layer: activation class.

    Example:
        >>> NiNBlock(3, 96, kernel_size=11, stride=4, padding=0)(torch.zeros(1, 3, 224, 224)).shape
        torch.Size([1, 96, 54, 54])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        check_int("in_channels", in_channels, min_value=1)
        check_int("out_channels", out_channels, min_value=1)
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
            make_activation(act_layer),
            nn.Conv2d(out_channels, out_channels, kernel_size=1),
            make_activation(act_layer),
            nn.Conv2d(out_channels, out_channels, kernel_size=1),
            make_activation(act_layer),
        )
        self.out_channels = out_channels


class Inception(nn.Module):
    """GoogLeNet's Inception block (v1): four parallel branches concatenated along channels.

    Branch 1: 1x1 conv. Branch 2: 1x1 reduction, then 3x3. Branch 3: 1x1 reduction, then 5x5.
    Branch 4: 3x3 max-pool (stride 1), then 1x1 projection. Every branch keeps H x W, so the
    output has ``ch1x1 + ch3x3 + ch5x5 + pool_proj`` channels.

    Args:
        in_channels: input channels.
        ch1x1: output channels of branch 1.
        ch3x3red: 1x1 reduction before the 3x3 conv of branch 2.
        ch3x3: output channels of branch 2.
        ch5x5red: 1x1 reduction before the "5x5" conv of branch 3.
        ch5x5: output channels of branch 3.
        pool_proj: output channels of branch 4.
        conv_block: builds ``conv_block(in, out, kernel_size=k, padding=p)`` (default
            :class:`ConvNormAct`: conv + batch norm + ReLU).
        branch3_kernel_size: 5 as in the paper; torchvision's GoogLeNet (and its ImageNet
            weights) uses 3 here (torchvision issue 906), so ``cnnlab`` GoogLeNet passes 3.

    Example:
        >>> block = Inception(192, 64, 96, 128, 16, 32, 32)
        >>> block(torch.zeros(1, 192, 28, 28)).shape
        torch.Size([1, 256, 28, 28])
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        conv_block: LayerFactory = ConvNormAct,
        branch3_kernel_size: int = 5,
    ) -> None:
        super().__init__()
        check_choice("branch3_kernel_size", branch3_kernel_size, (3, 5))
        k = branch3_kernel_size
        # Branch 1: 1x1 conv.
        self.branch1 = conv_block(in_channels, ch1x1, kernel_size=1, padding=0)
        # Branch 2: 1x1 conv to reduce the channels, then a 3x3 conv.
        self.branch2 = nn.Sequential(
            conv_block(in_channels, ch3x3red, kernel_size=1, padding=0),
            conv_block(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        # Branch 3: 1x1 conv to reduce the channels, then a 5x5 conv (padding 2 keeps H x W).
        self.branch3 = nn.Sequential(
            conv_block(in_channels, ch5x5red, kernel_size=1, padding=0),
            conv_block(ch5x5red, ch5x5, kernel_size=k, padding=k // 2),
        )
        # Branch 4: 3x3 max-pool with stride 1, then a 1x1 projection.
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            conv_block(in_channels, pool_proj, kernel_size=1, padding=0),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1(x)  # (B, ch1x1, H, W)
        b2 = self.branch2(x)  # (B, ch3x3, H, W)
        b3 = self.branch3(x)  # (B, ch5x5, H, W)
        b4 = self.branch4(x)  # (B, pool_proj, H, W)
        return torch.cat([b1, b2, b3, b4], dim=1)  # (B, out_channels, H, W)
