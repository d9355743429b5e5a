"""The model registry: ``@register_model``, ``create(name, ...)`` and ``list_models(pattern)``."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from cnnlab._validate import check_int

Factory = TypeVar("Factory", bound=Callable[..., nn.Module])

# name -> factory(num_classes=..., in_channels=..., **options) returning an nn.Module.
_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Factory | None = None, *, name: str | None = None) -> Any:
    """Register a model factory under its function name (or ``name``); duplicates are refused.

    Use as ``@register_model`` or ``@register_model(name="my_net")``. The factory must accept
    ``num_classes`` and ``in_channels`` keyword arguments.

    Example:
        >>> @register_model
        ... def tiny_net(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
        ...     return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
        >>> "tiny_net" in list_models()
        True
    """

    def decorate(factory: Factory) -> Factory:
        key = name or factory.__name__
        if key in _MODELS:
            raise ValueError(
                f"model name {key!r} is already registered (by {_MODELS[key].__module__}); "
                "choose another name"
            )
        params = inspect.signature(factory).parameters
        missing = [p for p in ("num_classes", "in_channels") if p not in params]
        if missing:
            raise ValueError(
                f"model factory {key!r} must accept the keyword arguments num_classes and "
                f"in_channels; it lacks {', '.join(missing)}"
            )
        _MODELS[key] = factory
        return factory

    return decorate(fn) if fn is not None else decorate


def _natural_key(name: str) -> list[Any]:
    """Sort key that orders digits as numbers: resnet18 < resnet34 < resnet101."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str | None = None) -> list[str]:
    """Names of the registered models in natural order, optionally filtered.

    Args:
        pattern: a shell-style pattern (``"resnet*"``, ``"vgg1?_bn"``); a pattern without
            wildcards matches as a substring (``"mobile"`` finds both MobileNets).

    Example:
        >>> list_models("resnet*")
        ['resnet18', 'resnet34', 'resnet50', 'resnet101']
    """
    names = sorted(_MODELS, key=_natural_key)
    if pattern is None:
        return names
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def get_model_factory(name: str) -> Callable[..., nn.Module]:
    """The factory registered as ``name``; unknown names raise ``ValueError`` with suggestions.

    Example:
        >>> get_model_factory("simple_cnn").__name__
        'simple_cnn'
    """
    if not isinstance(name, str) or name not in _MODELS:
        names = sorted(_MODELS)
        close = difflib.get_close_matches(str(name), names, n=5, cutoff=0.5)
        hint = f"closest names: {', '.join(close)}" if close else f"known: {', '.join(names)}"
        raise ValueError(f"unknown model name {name!r}; {hint} (see cnnlab.models.list_models())")
    return _MODELS[name]


def model_options(name: str) -> dict[str, Any]:
    """The extra keyword arguments a model accepts, with their defaults.

    Example:
        >>> model_options("simple_cnn")
        {}
    """
    params = inspect.signature(get_model_factory(name)).parameters
    return {
        p.name: p.default
        for p in params.values()
        if p.name not in ("num_classes", "in_channels")
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def create(name: str, num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``.

    Args:
        name: a name from :func:`list_models`, or another library's model as
            ``torchvision:NAME`` / ``timm:NAME`` (see :mod:`cnnlab.models.external`).
        num_classes: number of output logits (>= 1).
        in_channels: channels of the input images (1 for grayscale, 3 for RGB).
        **kwargs: model-specific options (see :func:`model_options`), e.g. ``small_input=True``.

    Raises:
        ValueError: unknown name (with the closest names), ``num_classes`` or ``in_channels`` < 1,
            or a keyword argument the model does not accept (with the ones it does).

    Example:
        >>> import torch
        >>> net = create("simple_cnn", num_classes=10, in_channels=1)
        >>> net(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 10])
    """
    if isinstance(name, str) and ":" in name:
        from cnnlab.models.external import create_external

        return create_external(name, num_classes=num_classes, in_channels=in_channels, **kwargs)
    factory = get_model_factory(name)
    check_int("num_classes", num_classes, min_value=1)
    check_int("in_channels", in_channels, min_value=1)
    options = model_options(name)
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "none"
        raise ValueError(
            f"model {name!r} got unknown keyword argument(s) {', '.join(unknown)}; "
            f"its options are: {valid}"
        )
    return factory(num_classes=num_classes, in_channels=in_channels, **kwargs)
