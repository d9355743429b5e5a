"""Composite blocks that the networks of a CNN course are built from.

Each block takes the layer types it uses (``norm_layer``, ``act_layer``: callables, or ``None`` to
drop the layer) and names its sub-modules like torchvision does, so that torchvision's weights load
into the models of :mod:`cnnlab.models` with ``strict=True``.

Guide: docs/guide/08-classic-networks.md. References: VGG (Simonyan & Zisserman 2014), NiN
(Lin et al. 2013), GoogLeNet (Szegedy et al. 2014), ResNet (He et al. 2015), MobileNetV2
(Sandler et al. 2018), ShuffleNet (Zhang et al. 2017).
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import ClassVar

import torch
from torch import nn

from cnnlab._validate import check_choice, check_divisible, check_int
from cnnlab.layers.shuffle import channel_shuffle

LayerFactory = Callable[..., nn.Module]

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ConvNormAct",
    "Inception",
    "InvertedResidual",
    "NiNBlock",
    "ShuffleNetUnit",
    "VGGBlock",
    "make_activation",
    "resolve_norm",
]


def resolve_norm(norm_layer: LayerFactory | str | None) -> LayerFactory | None:
    """Turn a norm name (``"batch"``, ``"group"``, ``"layer"``, ``"instance"``, ``"none"``; see
    :func:`cnnlab.layers.norm.norm_layer`) into a factory ``f(channels)``; pass others through.

    Example:
        >>> type(resolve_norm("group")(64)).__name__
        'GroupNorm'
    """
    if not isinstance(norm_layer, str):
        return norm_layer
    from cnnlab.layers.norm import norm_layer as build_norm

    if norm_layer.lower() == "none":
        return None
    build_norm(norm_layer, 1)  # fails now, with the valid names, if the name is unknown
    return partial(build_norm, norm_layer)


def make_activation(act_layer: LayerFactory, inplace: bool = True) -> nn.Module:
    """Build an activation, passing ``inplace`` only to the layers that accept it.

    Example:
        >>> make_activation(nn.ReLU)
        ReLU(inplace=True)
    """
    try:
        accepts_inplace = "inplace" in inspect.signature(act_layer).parameters
    except (TypeError, ValueError):  # builtins without a signature
        accepts_inplace = False
    return act_layer(inplace=inplace) if accepts_inplace else act_layer()


class ConvNormAct(nn.Sequential):
    """Convolution, then normalization, then activation (torchvision ``Conv2dNormActivation``).

    The children are numbered ``0, 1, 2`` like torchvision's (subclasses may name them through
    ``layer_names``). The convolution has a bias only when no normalization follows it: a
    normalization subtracts the per-channel mean, which would cancel any bias anyway.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (or ``(kh, kw)``).
        stride: convolution stride.
        padding: zero padding; ``None`` gives "same"-size output for odd kernels at stride 1,
            ``dilation * (k - 1) // 2``.
        dilation: spacing between kernel taps.
        groups: grouped convolution; must divide both channel counts.
        norm_layer: ``norm_layer(out_channels)`` builds the normalization, or a name of
            :func:`cnnlab.layers.norm.norm_layer` ("batch", "group", ...); ``None`` for none.
        act_layer: activation class (e.g. ``nn.ReLU``); ``None`` for none.
        bias: conv bias; ``None`` means "only if ``norm_layer`` is None".
        inplace: in-place activation where the activation supports it.

    Example:
        >>> block = ConvNormAct(3, 16, kernel_size=3, stride=2)
        >>> block(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 16, 16, 16])
    """

    # Names of the (conv, norm, act) children; None numbers them 0, 1, 2 like nn.Sequential.
    layer_names: ClassVar[tuple[str, str, str] | None] = None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | None = None,
        dilation: int = 1,
        groups: int = 1,
        norm_layer: LayerFactory | str | None = nn.BatchNorm2d,
        act_layer: LayerFactory | None = nn.ReLU,
        bias: bool | None = None,
        inplace: bool = True,
    ) -> None:
        check_int("in_channels", in_channels, min_value=1)
        check_int("out_channels", out_channels, min_value=1)
        check_int("groups", groups, min_value=1)
        check_int("dilation", dilation, min_value=1)
        check_divisible("in_channels", in_channels, "groups", groups)
        check_divisible("out_channels", out_channels, "groups", groups)
        if padding is None:
            # Output size (H + 2p - d(k-1) - 1)/s + 1 equals H at s=1 when 2p = d(k-1).
            if isinstance(kernel_size, int):
                padding = dilation * (kernel_size - 1) // 2
            else:
                padding = tuple(dilation * (k - 1) // 2 for k in kernel_size)
        norm_layer = resolve_norm(norm_layer)
        if bias is None:
            bias = norm_layer is None
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=bias,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if act_layer is not None:
            layers.append(make_activation(act_layer, inplace))
        if self.layer_names is None:
            super().__init__(*layers)
        else:
            names = [self.layer_names[0]]
            names += [self.layer_names[1]] if norm_layer is not None else []
            names += [self.layer_names[2]] if act_layer is not None else []
            super().__init__(OrderedDict(zip(names, layers)))
        self.out_channels = out_channels


class VGGBlock(nn.Sequential):
    """``num_convs`` 3x3 convolutions (padding 1) with activations, then a 2x2 max-pool.

    The layers are direct children (conv, [norm], act, ..., pool) like the flat ``features`` of
    torchvision's VGG, so a network can splice blocks into one ``nn.Sequential``. The 3x3 convs
    keep the size; the pool halves it: (B, C_in, H, W) -> (B, C_out, H/2, W/2).

    Args:
        num_convs: number of conv layers (>= 1).
        in_channels: input channels.
        out_channels: channels of every conv in the block.
        norm_layer: e.g. ``nn.BatchNorm2d`` after each conv; ``None`` for none.
        act_layer: activation class.
        bias: conv bias; ``None`` means "only without norm" (torchvision's VGG-BN keeps it: True).
        pool: end with the 2x2 max-pool.

    Example:
        >>> VGGBlock(2, 3, 64)(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 64, 16, 16])
    """

    def __init__(
        self,
        num_convs: int,
        in_channels: int,
        out_channels: int,
        norm_layer: LayerFactory | str | None = None,
        act_layer: LayerFactory = nn.ReLU,
        bias: bool | None = None,
        pool: bool = True,
    ) -> None:
        check_int("num_convs", num_convs, min_value=1)
        check_int("in_channels", in_channels, min_value=1)
        check_int("out_channels", out_channels, min_value=1)
        norm_layer = resolve_norm(norm_layer)
        if bias is None:
            bias = norm_layer is None
        layers: list[nn.Module] = []
        for _ in range(num_convs):
            layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias))
            if norm_layer is not None:
                layers.append(norm_layer(out_channels))
            layers.append(make_activation(act_layer))
            in_channels = out_channels
        if pool:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        super().__init__(*layers)
        self.out_channels = out_channels


class NiNBlock(nn.Sequential):
    """Network-in-Network block: a k x k conv, then two 1x1 convs, each followed by an activation.

    The 1x1 convs act as a small fully connected network applied at every pixel (Lin et al.
    2013, "mlpconv"), mixing channels without touching the spatial size.

    Args:
        in_channels: input channels.
        out_channels: channels of all three convs.
        kernel_size: size of the first conv.
        stride: stride of the first conv.
        padding: padding of the first conv.
        act_layer: activation class.

    Example:
        >>> NiNBlock(3, 96, kernel_size=11, stride=4, padding=0)(torch.zeros(1, 3, 224, 224)).shape
        torch.Size([1, 96, 54, 54])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        check_int("in_channels", in_channels, min_value=1)
        check_int("out_channels", out_channels, min_value=1)
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
            make_activation(act_layer),
            nn.Conv2d(out_channels, out_channels, kernel_size=1),
            make_activation(act_layer),
            nn.Conv2d(out_channels, out_channels, kernel_size=1),
            make_activation(act_layer),
        )
        self.out_channels = out_channels


class Inception(nn.Module):
    """GoogLeNet's Inception block (v1): four parallel branches concatenated along channels.

    Branch 1: 1x1 conv. Branch 2: 1x1 reduction, then 3x3. Branch 3: 1x1 reduction, then 5x5.
    Branch 4: 3x3 max-pool (stride 1), then 1x1 projection. Every branch keeps H x W, so the
    output has ``ch1x1 + ch3x3 + ch5x5 + pool_proj`` channels.

    Args:
        in_channels: input channels.
        ch1x1: output channels of branch 1.
        ch3x3red: 1x1 reduction before the 3x3 conv of branch 2.
        ch3x3: output channels of branch 2.
        ch5x5red: 1x1 reduction before the "5x5" conv of branch 3.
        ch5x5: output channels of branch 3.
        pool_proj: output channels of branch 4.
        conv_block: builds ``conv_block(in, out, kernel_size=k, padding=p)`` (default
            :class:`ConvNormAct`: conv + batch norm + ReLU).
        branch3_kernel_size: 5 as in the paper; torchvision's GoogLeNet (and its ImageNet
            weights) uses 3 here (torchvision issue 906), so ``cnnlab`` GoogLeNet passes 3.

    Example:
        >>> block = Inception(192, 64, 96, 128, 16, 32, 32)
        >>> block(torch.zeros(1, 192, 28, 28)).shape
        torch.Size([1, 256, 28, 28])
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        conv_block: LayerFactory = ConvNormAct,
        branch3_kernel_size: int = 5,
    ) -> None:
        super().__init__()
        check_choice("branch3_kernel_size", branch3_kernel_size, (3, 5))
        k = branch3_kernel_size
        # Branch 1: 1x1 conv.
        self.branch1 = conv_block(in_channels, ch1x1, kernel_size=1, padding=0)
        # Branch 2: 1x1 conv to reduce the channels, then a 3x3 conv.
        self.branch2 = nn.Sequential(
            conv_block(in_channels, ch3x3red, kernel_size=1, padding=0),
            conv_block(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        # Branch 3: 1x1 conv to reduce the channels, then a 5x5 conv (padding 2 keeps H x W).
        self.branch3 = nn.Sequential(
            conv_block(in_channels, ch5x5red, kernel_size=1, padding=0),
            conv_block(ch5x5red, ch5x5, kernel_size=k, padding=k // 2),
        )
        # Branch 4: 3x3 max-pool with stride 1, then a 1x1 projection.
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            conv_block(in_channels, pool_proj, kernel_size=1, padding=0),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1(x)  # (B, ch1x1, H, W)
        b2 = self.branch2(x)  # (B, ch3x3, H, W)
        b3 = self.branch3(x)  # (B, ch5x5, H, W)
        b4 = self.branch4(x)  # (B, pool_proj, H, W)
        return torch.cat([b1, b2, b3, b4], dim=1)  # (B, out_channels, H, W)


def _projection(
    in_channels: int,
    out_channels: int,
    stride: int,
    projection: bool | None,
    norm_layer: LayerFactory | None,
) -> nn.Module | None:
    """The 1x1 (strided) conv + norm on the shortcut; ``None`` where the identity fits."""
    needed = stride != 1 or in_channels != out_channels
    if projection is None:
        projection = needed
    if needed and not projection:
        raise ValueError(
            f"projection=False needs stride=1 and in_channels == out_channels, got "
            f"stride={stride}, in_channels={in_channels}, out_channels={out_channels}; "
            "use projection=True or None"
        )
    if not projection:
        return None
    conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=norm_layer is None)
    if norm_layer is None:
        return nn.Sequential(conv)
    return nn.Sequential(conv, norm_layer(out_channels))


class BasicBlock(nn.Module):
    """ResNet's basic residual block: two 3x3 convs plus a shortcut, ReLU after the sum.

    y = act(bn2(conv2(act(bn1(conv1(x))))) + shortcut(x)); the shortcut is the identity, or a
    1x1 projection (``downsample``) when the stride or the channel count changes.

    Args:
        in_channels: input channels.
        channels: output channels (``expansion`` is 1).
        stride: stride of the first conv (2 halves H and W).
        projection: 1x1 conv on the shortcut; ``None`` adds it only where shapes need it.
        norm_layer: normalization after each conv (``None``: convs get a bias instead).
        act_layer: activation class.

    Example:
        >>> BasicBlock(64, 128, stride=2)(torch.zeros(1, 64, 32, 32)).shape
        torch.Size([1, 128, 16, 16])
    """

    expansion: ClassVar[int] = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        projection: bool | None = None,
        norm_layer: LayerFactory | str | None = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        check_int("stride", stride, min_value=1)
        norm_layer = resolve_norm(norm_layer)
        bias = norm_layer is None
        norm = norm_layer or (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=bias)
        self.bn1 = norm(channels)
        self.relu = make_activation(act_layer)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.bn2 = norm(channels)
        self.downsample = _projection(in_channels, channels, stride, projection, norm_layer)
        self.out_channels = channels

    def zero_init_last(self) -> None:
        """Zero the last norm's weight so the block starts as the identity (Goyal et al. 2017)."""
        if isinstance(self.bn2, nn.BatchNorm2d):
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)  # (B, C, H/s, W/s)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, C, H/s, W/s)
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet's bottleneck block: 1x1 reduce, 3x3 (strided), 1x1 expand by 4, plus a shortcut.

    Like torchvision (ResNet v1.5) the stride sits on the 3x3 conv, not on the first 1x1.

    Args:
        in_channels: input channels.
        channels: bottleneck width; the block outputs ``channels * expansion`` channels.
        stride: stride of the 3x3 conv.
        projection: 1x1 conv on the shortcut; ``None`` adds it only where shapes need it.
        norm_layer: normalization after each conv (``None``: convs get a bias instead).
        act_layer: activation class.
        expansion: output channels per bottleneck channel (4 in ResNet-50/101).

    Example:
        >>> Bottleneck(256, 64)(torch.zeros(1, 256, 14, 14)).shape
        torch.Size([1, 256, 14, 14])
    """

    expansion: int = 4

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        projection: bool | None = None,
        norm_layer: LayerFactory | str | None = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
        expansion: int = 4,
    ) -> None:
        super().__init__()
        check_int("stride", stride, min_value=1)
        self.expansion = check_int("expansion", expansion, min_value=1)
        out_channels = channels * expansion
        norm_layer = resolve_norm(norm_layer)
        bias = norm_layer is None
        norm = norm_layer or (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=bias)
        self.bn1 = norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=bias)
        self.bn2 = norm(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=bias)
        self.bn3 = norm(out_channels)
        self.relu = make_activation(act_layer)
        self.downsample = _projection(in_channels, out_channels, stride, projection, norm_layer)
        self.out_channels = out_channels

    def zero_init_last(self) -> None:
        """Zero the last norm's weight so the block starts as the identity (Goyal et al. 2017)."""
        if isinstance(self.bn3, nn.BatchNorm2d):
            nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)  # (B, 4C, H/s, W/s)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, C, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (B, C, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (B, 4C, H/s, W/s)
        return self.relu(out + identity)


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual: 1x1 expand, 3x3 depthwise, linear 1x1 project.

    Narrow -> wide (``expand_ratio`` times) -> narrow, the reverse of a ResNet bottleneck; the
    last 1x1 has no activation ("linear bottleneck", since ReLU on few channels loses
    information). The input is added back when stride is 1 and the channel count is unchanged.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: 1 or 2 (on the depthwise conv).
        expand_ratio: hidden width = ``round(in_channels * expand_ratio)``; 1 skips the expansion.
        norm_layer: normalization class or name (``None``/"none": no normalization).
        act_layer: activation class (ReLU6 in the paper).

    Example:
        >>> InvertedResidual(24, 24, stride=1, expand_ratio=6)(torch.zeros(1, 24, 8, 8)).shape
        torch.Size([1, 24, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        expand_ratio: float = 6,
        norm_layer: LayerFactory | str = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU6,
    ) -> None:
        super().__init__()
        check_choice("stride", stride, (1, 2))
        if expand_ratio < 1:
            raise ValueError(f"expand_ratio must be >= 1, got {expand_ratio!r}")
        hidden = int(round(in_channels * expand_ratio))
        norm_layer = resolve_norm(norm_layer) or (lambda c: nn.Identity())
        layers: list[nn.Module] = []
        if expand_ratio != 1:  # pointwise expansion
            layers.append(
                ConvNormAct(in_channels, hidden, 1, norm_layer=norm_layer, act_layer=act_layer)
            )
        layers += [
            # depthwise 3x3: one filter per channel (groups = channels)
            ConvNormAct(
                hidden, hidden, 3, stride, groups=hidden, norm_layer=norm_layer, act_layer=act_layer
            ),
            # pointwise linear projection: no activation
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            norm_layer(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.stride = stride
        self.use_res_connect = stride == 1 and in_channels == out_channels
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)  # (B, C, H, W)
        return self.conv(x)  # (B, C_out, H/s, W/s)


class ShuffleNetUnit(nn.Module):
    """ShuffleNet v1 unit: grouped 1x1, channel shuffle, depthwise 3x3, grouped 1x1, merge.

    Stride 1: the branch output is added to the input (``in_channels == out_channels``).
    Stride 2: the input, average-pooled 3x3/2, is concatenated with a branch of
    ``out_channels - in_channels`` channels, so channels grow at no extra cost. The bottleneck
    width is ``out_channels // 4`` as in the paper; ReLU follows the merge.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: 1 (add) or 2 (concat).
        groups: groups of the 1x1 convs (1, 2, 3, 4 or 8 in the paper).
        first_groups: groups of the first 1x1 conv; ``None`` means ``groups`` (the paper uses 1
            for the very first unit, whose 24 input channels are too few to split).
        norm_layer: normalization class or name.
        act_layer: activation class.

    Example:
        >>> ShuffleNetUnit(240, 240, stride=1, groups=3)(torch.zeros(1, 240, 28, 28)).shape
        torch.Size([1, 240, 28, 28])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        groups: int = 3,
        first_groups: int | None = None,
        norm_layer: LayerFactory | str = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        check_choice("stride", stride, (1, 2))
        check_int("groups", groups, min_value=1)
        if stride == 1 and in_channels != out_channels:
            raise ValueError(
                f"a stride-1 ShuffleNetUnit adds its input, so out_channels must equal "
                f"in_channels={in_channels}; got out_channels={out_channels}"
            )
        branch_channels = out_channels - in_channels if stride == 2 else out_channels
        if branch_channels < 1:
            raise ValueError(
                f"a stride-2 ShuffleNetUnit concatenates its input, so out_channels must exceed "
                f"in_channels={in_channels}; got out_channels={out_channels}"
            )
        mid = out_channels // 4
        first_groups = groups if first_groups is None else first_groups
        check_divisible("bottleneck channels (out_channels // 4)", mid, "groups", groups)
        self.groups = groups
        self.stride = stride
        self.conv1 = ConvNormAct(
            in_channels, mid, 1, groups=first_groups, norm_layer=norm_layer, act_layer=act_layer
        )
        self.conv2 = ConvNormAct(
            mid, mid, 3, stride, groups=mid, norm_layer=norm_layer, act_layer=None
        )
        self.conv3 = ConvNormAct(
            mid, branch_channels, 1, groups=groups, norm_layer=norm_layer, act_layer=None
        )
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()
        self.relu = make_activation(act_layer)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)  # grouped 1x1: (B, mid, H, W)
        out = channel_shuffle(out, self.groups)  # let the next grouped conv see every group
        out = self.conv2(out)  # depthwise 3x3: (B, mid, H/s, W/s)
        out = self.conv3(out)  # grouped 1x1: (B, branch, H/s, W/s)
        if self.stride == 1:
            return self.relu(out + x)  # (B, C, H, W)
        return self.relu(torch.cat([self.shortcut(x), out], dim=1))  # (B, C_out, H/2, W/2)
