"""GoogLeNet / Inception v1 (Szegedy et al. 2014, "Going Deeper with Convolutions").

Laid out like torchvision's ``googlenet`` (batch norm in every conv, names ``conv1`` ...
``inception5b``, ``fc``), so its weights load with ``strict=True``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.layers.blocks import ConvNormAct, Inception
from cnnlab.models._base import ImageClassifier
from cnnlab.models._registry import register_model


class BasicConv2d(ConvNormAct):
    """Conv (no bias) + batch norm (eps 0.001) + ReLU, children named ``conv``, ``bn``, ``relu``.

    Example:
        >>> BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 64, 16, 16])
    """

    layer_names = ("conv", "bn", "relu")

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        norm = partial(nn.BatchNorm2d, eps=0.001)
        super().__init__(in_channels, out_channels, norm_layer=norm, **kwargs)


class InceptionAux(nn.Module):
    """Auxiliary classifier on an intermediate map: pool to 4x4, 1x1 conv, fc 1024, fc classes.

    Example:
        >>> InceptionAux(512, 10)(torch.zeros(2, 512, 14, 14)).shape
        torch.Size([2, 10])
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, (4, 4))  # (B, C, 4, 4)
        x = torch.flatten(self.conv(x), 1)  # (B, 2048)
        x = self.dropout(F.relu(self.fc1(x), inplace=True))  # (B, 1024)
        return self.fc2(x)  # (B, num_classes)


class GoogLeNetOutputs(NamedTuple):
    """What ``forward`` returns in training mode when the auxiliary heads are on."""

    logits: torch.Tensor
    aux_logits2: torch.Tensor
    aux_logits1: torch.Tensor


class GoogLeNet(ImageClassifier):
    """Stem convs, nine Inception blocks in three stages, global average pool, dropout, fc.

    Shapes at 224: (B, C, 224, 224) -> stem -> (B, 192, 28, 28) -> 3a, 3b -> (B, 480, 28, 28)
    -> pool -> 4a..4e -> (B, 832, 14, 14) -> pool -> 5a, 5b -> (B, 1024, 7, 7) -> GAP -> fc.
    Its pools use ``ceil_mode`` (an output pixel for any partial window), so every stride halves
    the size rounding up. Minimum input 15x15 (torchvision's value): the 7x7/2 stem conv gives
    floor((H - 1)/2) + 1 >= 8, and the 3x3/2 pool needs a window start inside the input.

    With ``aux_logits=True`` two auxiliary classifiers (after 4a and 4d) are built; in training
    mode ``forward`` then returns :class:`GoogLeNetOutputs` (the paper adds their losses with
    weight 0.3), in eval mode just the logits.

    Args:
        num_classes: outputs.
        in_channels: image channels.
        aux_logits: build the auxiliary heads.
        dropout: dropout before the final fc (torchvision: 0.2; the paper: 0.4).
        dropout_aux: dropout in the auxiliary heads.
        branch3_kernel_size: 3 as torchvision (and its weights), 5 as in the paper.

    Example:
        >>> GoogLeNet(num_classes=10).eval()(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
        branch3_kernel_size: int = 3,
    ) -> None:
        super().__init__(num_classes, in_channels, min_input_size=15, default_input_size=224)
        self.aux_logits = aux_logits
        inception = partial(
            Inception, conv_block=BasicConv2d, branch3_kernel_size=branch3_kernel_size
        )
        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        # Inception(in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj): the paper's Table 1.
        self.inception3a = inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = inception(832, 384, 192, 384, 48, 128, 128)
        if aux_logits:
            self.aux1: InceptionAux | None = InceptionAux(512, num_classes, dropout_aux)
            self.aux2: InceptionAux | None = InceptionAux(528, num_classes, dropout_aux)
        else:
            self.aux1 = self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        # torchvision's init: truncated normal (std 0.01, cut at +-2) for convs and fcs, BN 1/0.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stages(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        aux: list[torch.Tensor] = []
        x = self.maxpool1(self.conv1(x))  # (B, 64, H/4, W/4)
        x = self.maxpool2(self.conv3(self.conv2(x)))  # (B, 192, H/8, W/8)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))  # (B, 480, H/16, W/16)
        x = self.inception4a(x)  # (B, 512, H/16, W/16)
        if self.aux1 is not None and self.training:
            aux.append(self.aux1(x))
        x = self.inception4d(self.inception4c(self.inception4b(x)))  # (B, 528, H/16, W/16)
        if self.aux2 is not None and self.training:
            aux.append(self.aux2(x))
        x = self.maxpool4(self.inception4e(x))  # (B, 832, H/32, W/32)
        x = self.inception5b(self.inception5a(x))  # (B, 1024, H/32, W/32)
        return x, aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._stages(x)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))  # (B, 1024)
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final fc (and the auxiliary heads' last fc) for ``num_classes`` outputs.

        Example:
            >>> net = GoogLeNet(num_classes=10, aux_logits=True)
            >>> net.reset_classifier(3)
            >>> net.aux1.fc2.out_features
            3
        """
        super().reset_classifier(num_classes)
        for aux in (self.aux1, self.aux2):
            if aux is not None:
                aux.fc2 = nn.Linear(aux.fc2.in_features, num_classes).to(aux.fc2.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:  # type: ignore[override]
        """Logits; in training mode with ``aux_logits`` a :class:`GoogLeNetOutputs` triple."""
        self.check_input(x)
        features, aux = self._stages(x)
        logits = self.forward_head(features)
        if aux:
            return GoogLeNetOutputs(logits, aux[1], aux[0])
        return logits


@register_model
def googlenet(
    num_classes: int = 10,
    in_channels: int = 3,
    aux_logits: bool = False,
    dropout: float = 0.2,
    branch3_kernel_size: int = 3,
) -> GoogLeNet:
    """GoogLeNet (Inception v1, Szegedy et al. 2014) with batch norm, as torchvision builds it.

    Example:
        >>> googlenet(in_channels=1).eval()(torch.zeros(1, 1, 28, 28)).shape
        torch.Size([1, 10])
    """
    return GoogLeNet(
        num_classes,
        in_channels,
        aux_logits=aux_logits,
        dropout=dropout,
        branch3_kernel_size=branch3_kernel_size,
    )
