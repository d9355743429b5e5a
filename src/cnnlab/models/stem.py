"""The stem of any CNN: find its first RGB convolution and adapt it to other channel counts.

Libraries name the stem differently (torchvision ResNet ``conv1``, EfficientNet
``features.0.0``, ViT ``conv_proj``, ConvNeXt ``features.0.0``; timm ``conv_stem``,
``stem.0``, ``patch_embed.proj``), so it is found by what it is: the first ``nn.Conv2d`` (in
module definition order) that takes 3 input channels.
"""

from __future__ import annotations

import torch
from torch import nn


def first_rgb_conv(model: nn.Module) -> str:
    """Dotted name of the first ``nn.Conv2d`` of ``model`` with ``in_channels == 3``.

    Raises:
        ValueError: when the model has no such convolution.

    Example:
        >>> import torchvision
        >>> first_rgb_conv(torchvision.models.efficientnet_b0())
        'features.0.0'
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            return name
    raise ValueError(
        f"{type(model).__name__} has no convolution with 3 input channels to adapt to other "
        "channel counts; build it for 3-channel images (--channels 3)"
    )


def adapt_conv_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt conv weights ``(O, 3, kh, kw)`` to ``in_channels`` input channels.

    For 1 channel the RGB filters are summed: a gray image g fed as R = G = B = g gives
    sum_c w_c * g = (sum_c w_c) * g, so the summed filter is the exact same computation.
    For C channels the RGB filters are repeated cyclically and scaled by 3 / C, which keeps
    the expected response the same when every channel has similar statistics (timm's
    ``adapt_input_conv`` does the same).

    Example:
        >>> adapt_conv_weight(torch.ones(2, 3, 1, 1), 1).flatten().tolist()
        [3.0, 3.0]
    """
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_channels // weight.shape[1])  # ceil(C / 3)
    return weight.repeat(1, reps, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)


@torch.no_grad()
def adapt_first_conv(model: nn.Module, in_channels: int) -> str | None:
    """Replace the first RGB convolution by one taking ``in_channels``; returns its name.

    The new layer keeps every hyper-parameter (kernel, stride, padding, groups, bias) and gets
    :func:`adapt_conv_weight` of the old weights, so an adapted randomly initialized model keeps
    its initialization's scale and pretrained weights loaded later are adapted the same way.
    Nothing changes (returns None) when ``in_channels`` is 3.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18()
        >>> adapt_first_conv(net, 1), net.conv1.in_channels
        ('conv1', 1)
    """
    if in_channels == 3:
        return None
    name = first_rgb_conv(model)
    old = model.get_submodule(name)
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        groups=old.groups,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
    ).to(device=old.weight.device, dtype=old.weight.dtype)
    if old.weight.device.type != "meta":
        new.weight.copy_(adapt_conv_weight(old.weight, in_channels))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return name
