"""VGG (Simonyan & Zisserman 2014, "Very Deep Convolutional Networks"), built from VGG blocks.

An architecture is a list of ``(num_convs, out_channels)`` stages (d2l's ``conv_arch``); each
stage is one :class:`~cnnlab.layers.blocks.VGGBlock` (3x3 convs, then a 2x2 max-pool). The blocks
are spliced into one flat ``features`` Sequential, exactly torchvision's layout, so torchvision's
weights load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cnnlab._validate import check_int
from cnnlab.layers.blocks import VGGBlock
from cnnlab.models._base import ImageClassifier, init_weights
from cnnlab.models._registry import register_model

# Configurations A, B, D, E of the paper's Table 1: (num_convs, out_channels) per stage.
VGG_ARCHS: dict[str, list[tuple[int, int]]] = {
    "vgg11": [(1, 64), (1, 128), (2, 256), (2, 512), (2, 512)],
    "vgg13": [(2, 64), (2, 128), (2, 256), (2, 512), (2, 512)],
    "vgg16": [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)],
    "vgg19": [(2, 64), (2, 128), (4, 256), (4, 512), (4, 512)],
}


def make_layers(
    conv_arch: list[tuple[int, int]],
    in_channels: int = 3,
    batch_norm: bool = False,
    width_divisor: int = 1,
    small_input: bool = False,
) -> nn.Sequential:
    """One flat Sequential of VGG blocks: conv, [bn], ReLU, ..., max-pool, per stage.

    Args:
        conv_arch: ``(num_convs, out_channels)`` per stage.
        in_channels: image channels.
        batch_norm: batch norm after every conv.
        width_divisor: divide every stage's channels (the course's small VGG uses 4).
        small_input: replace the first stage's max-pool by an identity (indices stay the same).

    Example:
        >>> make_layers([(1, 64), (1, 128)])(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 128, 8, 8])
    """
    layers: list[nn.Module] = []
    for i, (num_convs, channels) in enumerate(conv_arch):
        out_channels = max(1, channels // width_divisor)
        block = VGGBlock(
            num_convs,
            in_channels,
            out_channels,
            norm_layer=nn.BatchNorm2d if batch_norm else None,
            bias=True,  # torchvision's VGG-BN keeps the conv biases; needed for its weights
        )
        block_layers = list(block)
        if small_input and i == 0:
            block_layers[-1] = nn.Identity()
        layers += block_layers
        in_channels = out_channels
    return nn.Sequential(*layers)


class VGG(ImageClassifier):
    """VGG: stages of 3x3 convs with max-pools, then fc 4096 -> fc 4096 -> fc classes.

    Five 2x2 pools divide the size by 32; the features are average-pooled to 7x7 (the identity
    at 224) before ``hidden_features * 2`` fully connected layers with dropout. Minimum input
    32x32 (five halvings leave 1 pixel); ``small_input=True`` drops the first pool: minimum 16.

    Args:
        conv_arch: ``(num_convs, out_channels)`` per stage.
        num_classes: outputs.
        in_channels: image channels.
        batch_norm: batch norm after every conv (the ``_bn`` variants).
        width_divisor: divide the conv channels (d2l's small VGG: ``ratio = 4``).
        hidden_features: width of the two hidden fully connected layers.
        dropout: dropout before each hidden fully connected layer's successor.
        small_input: no first max-pool, for 28-32 px images.

    Example:
        >>> net = VGG(VGG_ARCHS["vgg11"], num_classes=10, width_divisor=8)
        >>> net(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """

    classifier_name = "classifier.6"

    def __init__(
        self,
        conv_arch: list[tuple[int, int]],
        num_classes: int = 1000,
        in_channels: int = 3,
        batch_norm: bool = False,
        width_divisor: int = 1,
        hidden_features: int = 4096,
        dropout: float = 0.5,
        small_input: bool = False,
    ) -> None:
        pools = len(conv_arch) - int(small_input)
        super().__init__(
            num_classes,
            in_channels,
            min_input_size=2**pools,
            default_input_size=32 if small_input else 224,
        )
        check_int("width_divisor", width_divisor, min_value=1)
        check_int("hidden_features", hidden_features, min_value=1)
        self.small_input = small_input
        self.features = make_layers(conv_arch, in_channels, batch_norm, width_divisor, small_input)
        out_channels = max(1, conv_arch[-1][1] // width_divisor)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(out_channels * 7 * 7, hidden_features),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden_features, hidden_features),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden_features, num_classes),
        )
        init_weights(self)  # Kaiming-normal convs, BN 1/0, N(0, 0.01) linears (torchvision)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 512 / width_divisor, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (B, C * 49)
        x = self.classifier[:-1](x)  # (B, hidden_features)
        return x if pre_logits else self.classifier[-1](x)


def _vgg_builder(arch: str, batch_norm: bool) -> Callable[..., VGG]:
    """Register and return the builder of one VGG configuration (``vgg16``, ``vgg16_bn``, ...)."""

    def builder(
        num_classes: int = 10,
        in_channels: int = 3,
        width_divisor: int = 1,
        hidden_features: int = 4096,
        dropout: float = 0.5,
        small_input: bool = False,
    ) -> VGG:
        return VGG(
            VGG_ARCHS[arch],
            num_classes,
            in_channels,
            batch_norm=batch_norm,
            width_divisor=width_divisor,
            hidden_features=hidden_features,
            dropout=dropout,
            small_input=small_input,
        )

    name = f"{arch}_bn" if batch_norm else arch
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (
        f"VGG-{arch[3:]} (configuration {_CONFIG_LETTER[arch]} of the paper's Table 1)"
        + (" with batch norm after every conv" if batch_norm else "")
        + ". ``width_divisor=4`` gives the course's small VGG; ``small_input=True`` suits"
        " 28-32 px images."
    )
    return register_model(builder)


_CONFIG_LETTER = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}

vgg11 = _vgg_builder("vgg11", batch_norm=False)
vgg11_bn = _vgg_builder("vgg11", batch_norm=True)
vgg13 = _vgg_builder("vgg13", batch_norm=False)
vgg13_bn = _vgg_builder("vgg13", batch_norm=True)
vgg16 = _vgg_builder("vgg16", batch_norm=False)
vgg16_bn = _vgg_builder("vgg16", batch_norm=True)
vgg19 = _vgg_builder("vgg19", batch_norm=False)
vgg19_bn = _vgg_builder("vgg19", batch_norm=True)
