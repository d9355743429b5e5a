"""Network in Network (Lin, Chen & Yan 2013), as in d2l section 8.3: NiN blocks, no fc layer."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab._validate import check_int
from cnnlab.layers.blocks import NiNBlock
from cnnlab.models._base import ImageClassifier, init_weights
from cnnlab.models._registry import register_model


class NiN(ImageClassifier):
    """Three NiN blocks with 3x3/2 max-pools, then a NiN block with ``num_classes`` channels.

    There is no fully connected layer: the last block outputs one channel per class and a global
    average pool turns each channel into a logit. Shapes at 224: (B, C, 224, 224) -> 11x11/4 block
    -> (B, 96, 54, 54) -> pool 26 -> 5x5 block (B, 256, 26, 26) -> pool 12 -> 3x3 block
    (B, 384, 12, 12) -> pool 5 -> dropout -> head block (B, classes, 5, 5) -> GAP -> (B, classes).
    Minimum input 67x67: the first block gives floor((H - 11)/4) + 1, which must be >= 15 for
    three 3x3/2 pools to leave 1 pixel (15 -> 7 -> 3 -> 1). ``small_input=True``: a 3x3 stride-1
    first block and no first pool, minimum 7x7.

    Example:
        >>> NiN(num_classes=10)(torch.zeros(1, 3, 224, 224)).shape
        torch.Size([1, 10])
    """

    classifier_name = "head"

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        dropout: float = 0.5,
        small_input: bool = False,
    ) -> None:
        super().__init__(
            num_classes,
            in_channels,
            min_input_size=7 if small_input else 67,
            default_input_size=32 if small_input else 224,
        )
        self.small_input = small_input
        if small_input:
            block1 = NiNBlock(in_channels, 96, kernel_size=3, stride=1, padding=1)
            pool1: nn.Module = nn.Identity()
        else:
            block1 = NiNBlock(in_channels, 96, kernel_size=11, stride=4, padding=0)
            pool1 = nn.MaxPool2d(3, stride=2)
        self.features = nn.Sequential(
            block1,
            pool1,
            NiNBlock(96, 256, kernel_size=5, stride=1, padding=2),
            nn.MaxPool2d(3, stride=2),
            NiNBlock(256, 384, kernel_size=3, stride=1, padding=1),
            nn.MaxPool2d(3, stride=2),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = NiNBlock(384, num_classes, kernel_size=3, stride=1, padding=1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 384, h, w)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(x)
        if pre_logits:
            return torch.flatten(self.global_pool(x), 1)  # (B, 384)
        x = self.head(x)  # (B, num_classes, h, w): one map per class
        return torch.flatten(self.global_pool(x), 1)  # (B, num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last NiN block by a fresh one with ``num_classes`` output channels.

        Example:
            >>> net = NiN(num_classes=10)
            >>> net.reset_classifier(3)
            >>> net(torch.zeros(1, 3, 96, 96)).shape
            torch.Size([1, 3])
        """
        check_int("num_classes", num_classes, min_value=1)
        device = self.head[0].weight.device
        self.head = NiNBlock(384, num_classes, kernel_size=3, stride=1, padding=1).to(device)
        self.num_classes = num_classes


@register_model
def nin(
    num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5, small_input: bool = False
) -> NiN:
    """Network in Network (Lin et al. 2013): mlpconv blocks and global average pooling.

    Example:
        >>> nin(in_channels=1, small_input=True)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    return NiN(num_classes, in_channels, dropout=dropout, small_input=small_input)
