"""MobileNet v1 (Howard et al. 2017) and v2 (Sandler et al. 2018).

v1 stacks depthwise separable convolutions; v2 stacks inverted residuals with linear
bottlenecks and is laid out like torchvision's ``mobilenet_v2`` (weight-compatible).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.layers.blocks import ConvNormAct, InvertedResidual
from cnnlab.models._base import ImageClassifier, init_weights
from cnnlab.models._registry import register_model


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, losing at most 10% (torchvision).

    Example:
        >>> make_divisible(32 * 0.75)
        24
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _check_width(width_mult: float) -> None:
    if not isinstance(width_mult, (int, float)) or width_mult <= 0:
        raise ValueError(f"width_mult must be a positive number, got {width_mult!r}")


# MobileNet v1 (paper Table 1): (output channels, stride) of each depthwise separable layer.
MOBILENET_V1_LAYERS: list[tuple[int, int]] = [
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
]  # fmt: skip


class MobileNetV1(ImageClassifier):
    """A 3x3/2 conv, 13 depthwise separable layers (3x3 depthwise + 1x1 pointwise), GAP, fc.

    A depthwise separable layer costs C*9 + C*C_out weights instead of C*C_out*9 (8-9x fewer).
    The five stride-2 layers (stem included) divide the size by 32, rounding up (all padded).
    Minimum input 1x1. At 224 with 1000 classes: 4.2 M parameters and 569 M multiply-adds
    (paper Table 8; checked by the tests).

    Args:
        num_classes: outputs.
        in_channels: image channels.
        width_mult: the paper's width multiplier alpha (channels * alpha, rounded to 8s).
        dropout: dropout before the fc (0 as in the paper).
        small_input: stride-1 stem for 28-32 px images.

    Example:
        >>> MobileNetV1(num_classes=10)(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    classifier_name = "classifier.1"

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,
        dropout: float = 0.0,
        small_input: bool = False,
    ) -> None:
        super().__init__(
            num_classes,
            in_channels,
            min_input_size=1,
            default_input_size=32 if small_input else 224,
        )
        _check_width(width_mult)
        self.small_input = small_input
        channels = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [
            ConvNormAct(in_channels, channels, 3, stride=1 if small_input else 2)
        ]
        for out, stride in MOBILENET_V1_LAYERS:
            out = make_divisible(out * width_mult)
            layers.append(
                nn.Sequential(
                    # depthwise 3x3: one filter per input channel (groups = channels)
                    ConvNormAct(channels, channels, 3, stride=stride, groups=channels),
                    # pointwise 1x1: mixes the channels
                    ConvNormAct(channels, out, 1),
                )
            )
            channels = out
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 1024 * alpha, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[0](torch.flatten(self.avgpool(x), 1))  # (B, 1024 * alpha)
        return x if pre_logits else self.classifier[1](x)


# MobileNet v2 (paper Table 2): expansion t, output channels c, repeats n, first stride s.
MOBILENET_V2_SETTING: list[tuple[int, int, int, int]] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class MobileNetV2(ImageClassifier):
    """A 3x3/2 conv, 17 inverted residuals, a 1x1 conv to 1280, GAP, dropout, fc.

    Shapes at 224: (B, C, 224, 224) -> stem (B, 32, 112, 112) -> ... -> (B, 320, 7, 7) -> 1x1
    (B, 1280, 7, 7) -> GAP -> fc. Minimum input 1x1 (torchvision's value: every stride-2 conv
    is padded).

    Args:
        num_classes: outputs.
        in_channels: image channels.
        width_mult: width multiplier (channels rounded to multiples of 8).
        dropout: dropout before the fc.
        small_input: stride-1 stem for 28-32 px images.

    Example:
        >>> MobileNetV2(num_classes=10)(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    classifier_name = "classifier.1"

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        small_input: bool = False,
    ) -> None:
        super().__init__(
            num_classes,
            in_channels,
            min_input_size=1,
            default_input_size=32 if small_input else 224,
        )
        _check_width(width_mult)
        self.small_input = small_input
        channels = make_divisible(32 * width_mult)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult))
        stem_stride = 1 if small_input else 2
        features: list[nn.Module] = [
            ConvNormAct(in_channels, channels, 3, stride=stem_stride, act_layer=nn.ReLU6)
        ]
        for t, c, n, s in MOBILENET_V2_SETTING:
            out = make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        features.append(ConvNormAct(channels, self.last_channel, 1, act_layer=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.num_features = self.last_channel
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes)
        )
        init_weights(self)  # torchvision: Kaiming fan_out convs, BN 1/0, N(0, 0.01) fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 1280, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[0](torch.flatten(self.avgpool(x), 1))  # (B, 1280)
        return x if pre_logits else self.classifier[1](x)


@register_model
def mobilenet_v1(
    num_classes: int = 10,
    in_channels: int = 3,
    width_mult: float = 1.0,
    dropout: float = 0.0,
    small_input: bool = False,
) -> MobileNetV1:
    """MobileNet v1 (Howard et al. 2017): depthwise separable convolutions.

    Example:
        >>> mobilenet_v1(small_input=True)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return MobileNetV1(num_classes, in_channels, width_mult, dropout, small_input)


@register_model
def mobilenet_v2(
    num_classes: int = 10,
    in_channels: int = 3,
    width_mult: float = 1.0,
    dropout: float = 0.2,
    small_input: bool = False,
) -> MobileNetV2:
    """MobileNet v2 (Sandler et al. 2018): inverted residuals and linear bottlenecks.

    Example:
        >>> mobilenet_v2(small_input=True)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return MobileNetV2(num_classes, in_channels, width_mult, dropout, small_input)
