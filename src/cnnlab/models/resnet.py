"""ResNet (He et al. 2015, "Deep Residual Learning for Image Recognition").

Laid out like torchvision's ResNet (``conv1``, ``bn1``, ``layer1``..``layer4``, ``fc``; stride on
the bottleneck's 3x3, "v1.5"), so its weights load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cnnlab._validate import check_int
from cnnlab.layers.blocks import BasicBlock, Bottleneck
from cnnlab.models._base import ImageClassifier, init_weights
from cnnlab.models._registry import register_model


class ResNet(ImageClassifier):
    """A 7x7/2 stem and a 3x3/2 max-pool, four stages of residual blocks, global pool, fc.

    Stage ``i`` has ``layers[i]`` blocks of width 64 * 2**i; stages 2-4 halve the size in their
    first block, so the network divides H and W by 32 (rounding up: every stride-2 layer is
    padded). Shapes at 224 for ResNet-18: (B, C, 224, 224) -> stem (B, 64, 56, 56) -> layer1
    (B, 64, 56, 56) -> layer2 (B, 128, 28, 28) -> layer3 (B, 256, 14, 14) -> layer4
    (B, 512, 7, 7) -> GAP -> fc. Minimum input 1x1 (torchvision's value; batch norm in training
    mode still needs more than one value per channel, i.e. a batch of at least 2 there).

    Args:
        block: :class:`BasicBlock` (ResNet-18/34) or :class:`Bottleneck` (ResNet-50/101).
        layers: blocks per stage, e.g. ``(2, 2, 2, 2)``.
        num_classes: outputs.
        in_channels: image channels.
        small_input: 3x3 stride-1 stem and no max-pool, for 28-32 px images (CIFAR ResNets).
        zero_init_residual: zero the last BN weight of every block so each starts as the
            identity (Goyal et al. 2017), which helps large-batch training.
        base_channels: channels of the stem and the first stage (64); stage i has
            ``base_channels * 2**i`` (times the block expansion). Smaller values give thin
            ResNets for small data sets.

    Example:
        >>> ResNet(BasicBlock, (1, 1, 1, 1), num_classes=10)(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        in_channels: int = 3,
        small_input: bool = False,
        zero_init_residual: bool = False,
        base_channels: int = 64,
    ) -> None:
        super().__init__(
            num_classes,
            in_channels,
            min_input_size=1,
            default_input_size=32 if small_input else 224,
        )
        width = check_int("base_channels", base_channels, min_value=1)
        self.small_input = small_input
        if small_input:
            self.conv1 = nn.Conv2d(
                in_channels, width, kernel_size=3, stride=1, padding=1, bias=False
            )
        else:
            self.conv1 = nn.Conv2d(
                in_channels, width, kernel_size=7, stride=2, padding=3, bias=False
            )
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        self._channels = width
        self.layer1 = self._make_stage(block, width, layers[0], stride=1)
        self.layer2 = self._make_stage(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_stage(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_stage(block, width * 8, layers[3], stride=2)
        self.num_features = self._channels
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.num_features, num_classes)
        init_weights(self, linear_std=None)  # torchvision keeps PyTorch's default fc init
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    m.zero_init_last()

    def _make_stage(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        channels: int,
        num_blocks: int,
        stride: int,
    ) -> nn.Sequential:
        blocks = []
        for i in range(num_blocks):
            blocks.append(block(self._channels, channels, stride=stride if i == 0 else 1))
            self._channels = blocks[-1].out_channels
        return nn.Sequential(*blocks)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        x = self.layer1(x)  # (B, 64 * e, H/4, W/4)  e = block expansion
        x = self.layer2(x)  # (B, 128 * e, H/8, W/8)
        x = self.layer3(x)  # (B, 256 * e, H/16, W/16)
        return self.layer4(x)  # (B, 512 * e, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (B, 512 * e)
        return x if pre_logits else self.fc(x)


def _resnet_builder(
    name: str, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int]
) -> Callable[..., ResNet]:
    """Register and return the builder of one ResNet depth."""

    def builder(
        num_classes: int = 10,
        in_channels: int = 3,
        small_input: bool = False,
        zero_init_residual: bool = False,
        base_channels: int = 64,
    ) -> ResNet:
        return ResNet(
            block, layers, num_classes, in_channels, small_input, zero_init_residual, base_channels
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (
        f"{name.replace('resnet', 'ResNet-')}: {block.__name__} blocks {layers} "
        "(He et al. 2015); ``small_input=True`` for 28-32 px images."
    )
    return register_model(builder)


resnet18 = _resnet_builder("resnet18", BasicBlock, (2, 2, 2, 2))
resnet34 = _resnet_builder("resnet34", BasicBlock, (3, 4, 6, 3))
resnet50 = _resnet_builder("resnet50", Bottleneck, (3, 4, 6, 3))
resnet101 = _resnet_builder("resnet101", Bottleneck, (3, 4, 23, 3))
