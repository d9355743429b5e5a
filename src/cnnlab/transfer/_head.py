"""Find a model's classifier head, so the rest of the network can be called its backbone.

cnnlab models follow the uniform API (``forward_features`` / ``forward_head`` and a ``head``
module, like timm). Plain torchvision models are supported too: their classifier is ``fc``
(ResNet, GoogLeNet, ShuffleNet, RegNet) or ``classifier`` (VGG, AlexNet, MobileNet,
EfficientNet, ConvNeXt) or ``heads`` (ViT); timm models name theirs through ``get_classifier``.
"""

from __future__ import annotations

from torch import nn

# Attribute names a classifier head goes by, most specific first.
HEAD_ATTRIBUTES: tuple[str, ...] = ("head", "fc", "classifier", "heads")


def head_prefix(model: nn.Module) -> str:
    """Return the attribute name of ``model``'s classifier head (e.g. ``"head"`` or ``"fc"``).

    Raises:
        ValueError: if the model has none of the known head attributes.

    Example:
        >>> import torchvision
        >>> head_prefix(torchvision.models.resnet18())
        'fc'
    """
    getter = getattr(model, "get_classifier", None)
    if callable(getter):
        head = getter()
        for name, module in model.named_modules():
            if module is head and name:
                return name
    for name in HEAD_ATTRIBUTES:
        if isinstance(getattr(model, name, None), nn.Module):
            return name
    raise ValueError(
        f"cannot find the classifier head of {type(model).__name__}: it has none of the "
        f"attributes {', '.join(HEAD_ATTRIBUTES)}; cnnlab models expose it as 'head'"
    )


def is_head_param(name: str, prefix: str) -> bool:
    """True when the parameter/buffer called ``name`` belongs to the head module ``prefix``."""
    return name == prefix or name.startswith(prefix + ".")


def head_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters that belong to the classifier head.

    Example:
        >>> import torchvision
        >>> head_parameter_names(torchvision.models.resnet18())
        ['fc.weight', 'fc.bias']
    """
    prefix = head_prefix(model)
    return [n for n, _ in model.named_parameters() if is_head_param(n, prefix)]
