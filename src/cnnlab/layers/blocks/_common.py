"""What every block shares: the layer-factory type, norms by name, activations."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

from torch import nn

# A callable that builds a layer: a class like nn.BatchNorm2d, or a functools.partial.
LayerFactory = Callable[..., nn.Module]


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
    try:
        build_norm(norm_layer, 1)  # fail now, not when the first layer is built
    except ValueError as exc:
        raise ValueError(f"norm_layer={norm_layer!r} is not a normalization name: {exc}") from None
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
