"""AlexNet (Krizhevsky et al. 2012), in torchvision's single-GPU layout (weight-compatible)."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab._validate import check_int
from cnnlab.models._base import ImageClassifier
from cnnlab.models._registry import register_model


class AlexNet(ImageClassifier):
    """Five convs (11x11/4, 5x5, three 3x3) with three max-pools, then three fully connected layers.

    Shapes at 224: (B, 3, 224, 224) -> conv 11x11/4 -> (B, 64, 55, 55) -> pool -> 27 -> conv 5x5
    -> (B, 192, 27, 27) -> pool -> 13 -> three 3x3 convs -> (B, 256, 13, 13) -> pool -> 6 ->
    flatten 9216 -> 4096 -> 4096 -> classes. Minimum input 63x63 (torchvision's value): conv1
    gives floor((H + 4 - 11)/4) + 1 which must be >= 15 for the three 3x3/2 pools to leave 1 pixel
    (15 -> 7 -> 3 -> 1). ``small_input=True`` uses a 3x3 stride-1 first conv and no first pool:
    minimum 7x7 (7 -> 3 -> 1 through the two remaining pools). ``hidden_features`` sets the
    width of the two hidden fully connected layers (4096 in the paper).

    Example:
        >>> AlexNet(num_classes=10)(torch.zeros(1, 3, 224, 224)).shape
        torch.Size([1, 10])
    """

    classifier_name = "classifier.6"

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.5,
        small_input: bool = False,
        hidden_features: int = 4096,
    ) -> None:
        super().__init__(
            num_classes,
            in_channels,
            min_input_size=7 if small_input else 63,
            default_input_size=32 if small_input else 224,
        )
        check_int("hidden_features", hidden_features, min_value=1)
        self.small_input = small_input
        if small_input:  # 28-32 px images: keep the resolution in the first stage
            conv1: nn.Module = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1)
            pool1: nn.Module = nn.Identity()  # keeps the indices of the later layers
        else:
            conv1 = nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2)
            pool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.features = nn.Sequential(
            conv1,
            nn.ReLU(inplace=True),
            pool1,
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, hidden_features),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden_features, hidden_features),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_features, num_classes),
        )
        # Initialization: PyTorch's defaults, as torchvision's AlexNet.

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 256, h, w)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (B, 9216)
        x = self.classifier[:-1](x)  # (B, 4096)
        return x if pre_logits else self.classifier[-1](x)


@register_model
def alexnet(
    num_classes: int = 10,
    in_channels: int = 3,
    dropout: float = 0.5,
    small_input: bool = False,
    hidden_features: int = 4096,
) -> AlexNet:
    """AlexNet (Krizhevsky et al. 2012, "ImageNet Classification with Deep CNNs").

    Example:
        >>> alexnet(small_input=True)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return AlexNet(num_classes, in_channels, dropout, small_input, hidden_features)
