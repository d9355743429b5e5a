"""Every convolution, pooling and normalization variant of a CNN course, as checked nn.Modules.

One concept per file: ``conv`` (standard, dilated, transposed), ``separable`` (spatially and
depthwise separable, flattened), ``grouped`` (grouped and shuffled grouped), ``shuffle``,
``pooling``, ``norm`` and ``shapes`` (output-size formulas shared with ``cnnlab.inspect``).

Example:
    >>> import torch
    >>> from cnnlab.layers import Conv2d
    >>> Conv2d(3, 8, kernel_size=3, padding="same")(torch.zeros(1, 3, 5, 5)).shape
    torch.Size([1, 8, 5, 5])
"""

from cnnlab.layers.blocks import (
    BasicBlock,
    Bottleneck,
    ConvNormAct,
    Inception,
    InvertedResidual,
    NiNBlock,
    ShuffleNetUnit,
    VGGBlock,
)
from cnnlab.layers.conv import Conv2d, Conv3d, ConvTranspose2d, DilatedConv2d
from cnnlab.layers.grouped import GroupedConv2d, ShuffledGroupedConv2d
from cnnlab.layers.norm import (
    NORM_NAMES,
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    Denormalize,
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    Normalize,
    norm_factory,
    norm_layer,
)
from cnnlab.layers.pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d, MaxUnpool2d, Upsample
from cnnlab.layers.separable import (
    DepthwiseSeparableConv2d,
    FlattenedConv2d,
    Rank1Factors,
    SpatiallySeparableConv2d,
    factorize_rank1,
)
from cnnlab.layers.shapes import (
    SamePadding,
    ShapeResult,
    conv_output_size,
    conv_transpose_output_size,
    get_padding,
    pool_output_size,
    same_padding,
)
from cnnlab.layers.shuffle import ChannelShuffle, channel_shuffle

__all__ = [
    # blocks.py
    "BasicBlock", "Bottleneck", "ConvNormAct", "Inception", "InvertedResidual", "NiNBlock",
    "ShuffleNetUnit", "VGGBlock",
    # conv.py
    "Conv2d", "Conv3d", "ConvTranspose2d", "DilatedConv2d",
    # grouped.py
    "GroupedConv2d", "ShuffledGroupedConv2d",
    # norm.py
    "NORM_NAMES", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Denormalize", "GroupNorm",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "Normalize", "norm_factory", "norm_layer",
    # pooling.py
    "AvgPool2d", "GlobalAvgPool2d", "MaxPool2d", "MaxUnpool2d", "Upsample",
    # separable.py
    "DepthwiseSeparableConv2d", "FlattenedConv2d", "Rank1Factors", "SpatiallySeparableConv2d",
    "factorize_rank1",
    # shapes.py
    "SamePadding", "ShapeResult", "conv_output_size", "conv_transpose_output_size", "get_padding",
    "pool_output_size", "same_padding",
    # shuffle.py
    "ChannelShuffle", "channel_shuffle",
]
