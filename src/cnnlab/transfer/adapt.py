"""Replace the classifier of any model: the zoo's, torchvision's or timm's, for any class count.

timm models and cnnlab's zoo have ``reset_classifier(num_classes)``; torchvision's do not, and
keep the classifier under ``fc`` (ResNet, RegNet), ``classifier`` (EfficientNet, MobileNet,
ConvNeXt, VGG, DenseNet, SqueezeNet) or ``heads`` (ViT), often as a ``Sequential`` whose last
``Linear`` (SqueezeNet: 1x1 ``Conv2d``) maps to the classes. That last layer is what is replaced.
"""

from __future__ import annotations

from torch import nn

from cnnlab._validate import check_int
from cnnlab.transfer._head import head_prefix


def classifier_layer(model: nn.Module) -> str:
    """Dotted name of the layer that outputs the logits (the last Linear/Conv2d of the head).

    Example:
        >>> import torchvision
        >>> classifier_layer(torchvision.models.mobilenet_v3_small())
        'classifier.3'
    """
    prefix = head_prefix(model)
    head = model.get_submodule(prefix)
    last = None
    for name, module in head.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            last = name
    if last is None:
        raise ValueError(
            f"the classifier head {prefix!r} of {type(model).__name__} holds no Linear or "
            "Conv2d layer to replace"
        )
    return f"{prefix}.{last}" if last else prefix


def replace_head(model: nn.Module, num_classes: int) -> str:
    """Give ``model`` a freshly initialized classifier for ``num_classes``; returns its name.

    timm and cnnlab models use their own ``reset_classifier``; for other models the layer of
    :func:`classifier_layer` is replaced by a new one of the same kind, device and dtype.

    Example:
        >>> import torch, torchvision
        >>> net = torchvision.models.efficientnet_b0()
        >>> replace_head(net, 3)
        'classifier.1'
        >>> net.eval()(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 3])
    """
    check_int("num_classes", num_classes, min_value=1)
    reset = getattr(model, "reset_classifier", None)
    if callable(reset):
        reset(num_classes)
        return head_prefix(model)
    name = classifier_layer(model)
    old = model.get_submodule(name)
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    else:
        new = nn.Conv2d(
            old.in_channels, num_classes, old.kernel_size, stride=old.stride,
            padding=old.padding, bias=old.bias is not None,
        )  # fmt: skip
    new = new.to(device=old.weight.device, dtype=old.weight.dtype)
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return name
