"""The course's first CNN for 32x32 RGB images, and its dropout and batch-norm variants.

conv 3x3 (3->32), ReLU, max-pool 2 -> conv 3x3 (32->64), ReLU, max-pool 2 -> flatten 64*8*8
-> fc 128, ReLU -> fc num_classes.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnlab.layers.blocks import ConvNormAct
from cnnlab.models._base import ImageClassifier
from cnnlab.models._registry import register_model


class SimpleCNN(ImageClassifier):
    """Two conv-pool stages and two fully connected layers.

    Shapes at a 32x32 input: (B, 3, 32, 32) -> conv -> (B, 32, 32, 32) -> pool -> (B, 32, 16, 16)
    -> conv -> (B, 64, 16, 16) -> pool -> (B, 64, 8, 8) -> flatten (B, 4096) -> (B, 128) -> logits.
    Other sizes go through an adaptive average pool to 8x8 before the flatten (the identity at
    32x32), so the head keeps its 64*8*8 inputs. Minimum input: 4x4 (two 2x2 poolings leave 1x1).

    Args:
        num_classes: outputs of the last layer.
        in_channels: image channels (3 for RGB, 1 for grayscale).
        batch_norm: batch norm after each conv (then the convs have no bias).
        dropout: dropout probability before the last layer (0 disables it).

    Example:
        >>> SimpleCNN(num_classes=10)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    classifier_name = "classifier.fc2"

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(num_classes, in_channels, min_input_size=4, default_input_size=32)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        norm = nn.BatchNorm2d if batch_norm else None
        self.features = nn.Sequential(
            ConvNormAct(in_channels, 32, kernel_size=3, padding=1, norm_layer=norm),
            nn.MaxPool2d(2),
            ConvNormAct(32, 64, kernel_size=3, padding=1, norm_layer=norm),
            nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(8)
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                fc1=nn.Linear(64 * 8 * 8, 128),
                relu=nn.ReLU(inplace=True),
                dropout=nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
                fc2=nn.Linear(128, num_classes),
            )
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 64, H/4, W/4)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x)  # (B, 64, 8, 8)
        for name, layer in self.classifier.named_children():
            if pre_logits and name == "fc2":
                return x  # (B, 128)
            x = layer(x)
        return x  # (B, num_classes)


@register_model
def simple_cnn(num_classes: int = 10, in_channels: int = 3) -> SimpleCNN:
    """The course's first CNN (two conv-pool stages, fc 128, fc classes) for 32x32 images.

    Example:
        >>> simple_cnn(num_classes=10, in_channels=1)(torch.zeros(1, 1, 32, 32)).shape
        torch.Size([1, 10])
    """
    return SimpleCNN(num_classes, in_channels)


@register_model
def simple_cnn_dropout(
    num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5
) -> SimpleCNN:
    """:func:`simple_cnn` with dropout (p=0.5, Srivastava et al. 2014) before the last layer.

    Example:
        >>> simple_cnn_dropout()(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """
    return SimpleCNN(num_classes, in_channels, dropout=dropout)


@register_model
def simple_cnn_bn(num_classes: int = 10, in_channels: int = 3) -> SimpleCNN:
    """:func:`simple_cnn` with batch norm (Ioffe & Szegedy 2015) after each convolution.

    Example:
        >>> simple_cnn_bn()(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return SimpleCNN(num_classes, in_channels, batch_norm=True)
