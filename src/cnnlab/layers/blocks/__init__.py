"""Composite blocks that the networks of a CNN course are built from.

Each block takes the layer types it uses (``norm_layer``, ``act_layer``: callables, or ``None`` to
drop the layer) and names its sub-modules like torchvision does, so that torchvision's weights load
into the models of :mod:`cnnlab.models` with ``strict=True``.

Guide: docs/guide/08-classic-networks.md. References: VGG (Simonyan & Zisserman 2014), NiN
(Lin et al. 2013), GoogLeNet (Szegedy et al. 2014), ResNet (He et al. 2015), MobileNetV2
(Sandler et al. 2018), ShuffleNet (Zhang et al. 2017).
"""

from __future__ import annotations

from cnnlab.layers.blocks._common import LayerFactory, make_activation, resolve_norm
from cnnlab.layers.blocks.classic import Inception, NiNBlock, VGGBlock
from cnnlab.layers.blocks.conv_norm_act import ConvNormAct
from cnnlab.layers.blocks.mobile import InvertedResidual, ShuffleNetUnit
from cnnlab.layers.blocks.residual import BasicBlock, Bottleneck

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ConvNormAct",
    "Inception",
    "InvertedResidual",
    "LayerFactory",
    "NiNBlock",
    "ShuffleNetUnit",
    "VGGBlock",
    "make_activation",
    "resolve_norm",
]
