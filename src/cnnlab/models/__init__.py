"""The model zoo: ``create(name, num_classes, in_channels, **options)`` and ``list_models()``.

Every model shares the API of :class:`ImageClassifier` (``num_classes``, ``in_channels``,
``min_input_size``, ``forward_features`` / ``forward_head`` / ``forward``, ``reset_classifier``).

Guide: docs/guide/08-classic-networks.md.

Example:
    >>> import torch
    >>> from cnnlab.models import create, list_models
    >>> net = create("simple_cnn", num_classes=10, in_channels=1)
    >>> net(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 10])
"""

# Importing a family module registers its models.
from cnnlab.models import (  # noqa: F401
    alexnet,
    googlenet,
    lenet,
    mobilenet,
    nin,
    resnet,
    shufflenet,
    simple_cnn,
    speednet,
    vgg,
)
from cnnlab.models._base import ImageClassifier
from cnnlab.models._registry import (
    create,
    get_model_factory,
    list_models,
    model_options,
    register_model,
)

__all__ = [
    "ImageClassifier",
    "create",
    "get_model_factory",
    "list_models",
    "model_options",
    "register_model",
]
