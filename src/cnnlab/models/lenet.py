"""LeNet-5 (LeCun et al. 1998, "Gradient-based learning applied to document recognition").

The d2l course version (section 7.6): sigmoid activations and 2x2 average pooling, with the first
convolution padded by 2 so that 28x28 images see the paper's 32x32 field.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnlab.layers.blocks import LayerFactory, make_activation
from cnnlab.models._base import ImageClassifier
from cnnlab.models._registry import register_model


class LeNet5(ImageClassifier):
    """conv 5x5 (6) -> avg-pool -> conv 5x5 (16) -> avg-pool -> fc 120 -> fc 84 -> fc classes.

    Shapes at 28x28: (B, C, 28, 28) -> conv (pad 2) -> (B, 6, 28, 28) -> pool -> (B, 6, 14, 14)
    -> conv -> (B, 16, 10, 10) -> pool -> (B, 16, 5, 5) -> flatten 400 -> 120 -> 84 -> classes.
    Other sizes are average-pooled to 5x5 before the flatten. Minimum input 12x12: the second
    conv needs H/2 >= 5 plus one more row for its 2x2 pool, i.e. floor(H/2) - 4 >= 2.

    Example:
        >>> LeNet5(num_classes=10, in_channels=1)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    classifier_name = "classifier.fc3"

    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, act_layer: LayerFactory = nn.Sigmoid
    ) -> None:
        super().__init__(num_classes, in_channels, min_input_size=12, default_input_size=28)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            make_activation(act_layer),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            make_activation(act_layer),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )
        self.pool = nn.AdaptiveAvgPool2d(5)
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                fc1=nn.Linear(16 * 5 * 5, 120),
                act1=make_activation(act_layer),
                fc2=nn.Linear(120, 84),
                act2=make_activation(act_layer),
                fc3=nn.Linear(84, num_classes),
            )
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 16, h, w)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x)  # (B, 16, 5, 5)
        x = self.classifier[:-1](x)  # (B, 84)
        return x if pre_logits else self.classifier.fc3(x)


@register_model
def lenet5(
    num_classes: int = 10, in_channels: int = 3, act_layer: LayerFactory = nn.Sigmoid
) -> LeNet5:
    """LeNet-5 (LeCun et al. 1998) as taught in d2l: sigmoid, average pooling, padded first conv.

    Example:
        >>> lenet5(in_channels=1)(torch.zeros(1, 1, 28, 28)).shape
        torch.Size([1, 10])
    """
    return LeNet5(num_classes, in_channels, act_layer=act_layer)
