"""Models of other libraries by name: ``torchvision:NAME`` and ``timm:NAME``.

``cnnlab.models.create("torchvision:efficientnet_b0", num_classes=5, in_channels=1)`` builds
torchvision's classifier (random weights) with a 5-way head and its first RGB convolution
adapted to one channel (:mod:`cnnlab.models.stem`); ``"timm:convnext_tiny"`` goes through
``timm.create_model(..., pretrained=False, num_classes=..., in_chans=...)``. timm is optional
(``pip install 'cnnlab[timm]'``). Because the name carries the source and the builder, a run's
checkpoint metadata (``{"name": "timm:resnet10t", "kwargs": {...}}``) rebuilds the model the
same way everywhere (evaluate, predict, export, ``--resume``).

Pretrained weights are not loaded here: ``cnnlab.transfer.load_pretrained`` does that through
each library's own download and cache.
"""

from __future__ import annotations

import difflib
import fnmatch
from typing import Any

from torch import nn

from cnnlab._deps import require
from cnnlab._validate import check_int

SOURCES = ("torchvision", "timm")

# torchvision builders whose positional embedding fixes the input size (``image_size=``).
_TV_FIXED_SIZE = ("vit_", "maxvit_")
# torchvision builders with auxiliary classifiers, whose training-mode output is a tuple: built
# without them (``aux_logits=False``) so that every model returns plain logits.
_TV_AUX = ("googlenet", "inception_v3")


def split_name(name: str) -> tuple[str | None, str]:
    """``"timm:resnet10t"`` -> ``("timm", "resnet10t")``; a zoo name -> ``(None, name)``.

    Example:
        >>> split_name("torchvision:efficientnet_b0")
        ('torchvision', 'efficientnet_b0')
    """
    source, sep, builder = str(name).partition(":")
    if sep and source in SOURCES:
        return source, builder
    return None, str(name)


def is_external(name: Any) -> bool:
    """True for ``torchvision:NAME`` / ``timm:NAME`` (and other ``SOURCE:NAME``) names."""
    return isinstance(name, str) and ":" in name


def require_timm() -> Any:
    """Import timm, or raise the one-line error naming the ``timm`` extra."""
    require("timm models (--model timm:NAME)", ["timm"], "timm")
    import timm

    return timm


def torchvision_names(pattern: str | None = None) -> list[str]:
    """torchvision's classification builders (``list_models(module=torchvision.models)``).

    ``pattern`` filters like :func:`cnnlab.models.list_models` (shell pattern, else substring).

    Example:
        >>> torchvision_names("resnet1*")
        ['resnet18', 'resnet101', 'resnet152']
    """
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    return _filter(names, pattern)


def timm_names(pattern: str | None = None, pretrained: bool = False) -> list[str]:
    """timm's model names (``timm.list_models``), optionally only those with weights.

    Example:
        >>> timm_names("resnet10t")
        ['resnet10t']
    """
    timm = require_timm()
    return _filter(timm.list_models(pretrained=pretrained), pattern)


def _filter(names: list[str], pattern: str | None) -> list[str]:
    """Names matching ``pattern`` (as :func:`cnnlab.models.list_models`), in natural order."""
    from cnnlab.models._registry import _natural_key

    names = sorted(names, key=_natural_key)
    if pattern is None:
        return names
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def check_name(name: str) -> tuple[str, str]:
    """Split and validate ``SOURCE:NAME``; unknown sources or names list the closest ones.

    Example:
        >>> check_name("timm:resnet10t")
        ('timm', 'resnet10t')
    """
    source, builder = split_name(name)
    if source is None:
        prefix = str(name).partition(":")[0]
        close = difflib.get_close_matches(prefix, SOURCES, n=2, cutoff=0.3)
        raise ValueError(
            f"unknown model source {prefix!r} in {name!r}; use torchvision:NAME or timm:NAME"
            + (f" (closest: {', '.join(close)})" if close else "")
        )
    if source == "torchvision":
        known = torchvision_names()
        ok = builder in known
    else:
        timm = require_timm()
        ok = bool(builder) and timm.is_model(builder)
        known = timm.list_models() if not ok else []
    if not ok:
        arch = builder.partition(".")[0]
        close = difflib.get_close_matches(arch, known, n=5, cutoff=0.5)
        raise ValueError(
            f"unknown model {name!r}: {source} has no model {builder!r}; closest names: "
            f"{', '.join(f'{source}:{c}' for c in close) or 'none'} (see cnnlab models "
            f"--source {source})"
        )
    return source, builder


def size_kwargs(name: str, image_size: int) -> dict[str, Any]:
    """Constructor arguments a model needs for square inputs of ``image_size`` pixels.

    Vision transformers with a fixed positional embedding take the size at construction:
    torchvision's ``image_size=``, timm's ``img_size=`` (models whose ``pretrained_cfg`` says
    ``fixed_input_size``); every other model takes any size and gets ``{}``.

    Example:
        >>> size_kwargs("torchvision:vit_b_16", 32)
        {'image_size': 32}
        >>> size_kwargs("torchvision:resnet18", 32)
        {}
    """
    source, builder = check_name(name)
    if source == "torchvision":
        return {"image_size": image_size} if builder.startswith(_TV_FIXED_SIZE) else {}
    cfg = require_timm().get_pretrained_cfg(builder)
    return {"img_size": image_size} if cfg is not None and cfg.fixed_input_size else {}


def default_input_size(name: str) -> int:
    """The input side the model's default weights were trained at (224 when unknown).

    From torchvision's ``Weights.transforms().crop_size`` or timm's ``pretrained_cfg``.

    Example:
        >>> default_input_size("torchvision:efficientnet_b1")
        240
    """
    source, builder = check_name(name)
    if source == "torchvision":
        from torchvision.models import get_model_weights

        try:
            return int(get_model_weights(builder).DEFAULT.transforms().crop_size[0])
        except (ValueError, KeyError, AttributeError):
            return 224
    cfg = require_timm().get_pretrained_cfg(builder)
    size = getattr(cfg, "input_size", None) if cfg is not None else None
    return int(size[-1]) if size else 224


def library_version(source: str) -> str:
    """Version of the library that builds ``source`` models, for the run's metadata."""
    if source == "timm":
        return str(require_timm().__version__)
    import torchvision

    return str(torchvision.__version__)


def external_spec(
    name: str, kwargs: dict[str, Any], image_size: tuple[int, int] | None = None
) -> dict[str, Any]:
    """The checkpoint's ``model`` entry for ``name``: what rebuilds it without the user.

    ``{"name": "timm:resnet10t", "kwargs": {...}, "source": "timm", "builder": "resnet10t",
    "library_version": "1.0.x"}``; only ``name`` and ``kwargs`` are needed to rebuild (through
    :func:`cnnlab.models.create`), the rest says which library built it. Fixed-size vision
    transformers get the square ``image_size`` as a constructor argument (:func:`size_kwargs`)
    unless ``kwargs`` names it.

    Example:
        >>> external_spec("torchvision:vit_b_16", {"num_classes": 3}, (32, 32))["kwargs"]
        {'image_size': 32, 'num_classes': 3}
    """
    source, builder = check_name(name)
    extra: dict[str, Any] = {}
    if image_size is not None and image_size[0] == image_size[1]:
        extra = size_kwargs(name, int(image_size[0]))
        extra = {k: v for k, v in extra.items() if k not in kwargs}
    return {
        "name": f"{source}:{builder}",
        "kwargs": {**extra, **kwargs},
        "source": source,
        "builder": builder,
        "library_version": library_version(source),
    }


def create_external(
    name: str, num_classes: int = 1000, in_channels: int = 3, **kwargs: Any
) -> nn.Module:
    """Build ``torchvision:NAME`` or ``timm:NAME`` with random weights.

    Args:
        name: ``torchvision:`` + a name of ``torchvision.models.list_models(module=
            torchvision.models)``, or ``timm:`` + a ``timm.list_models()`` name (a pretrained
            tag such as ``resnet10t.c3_in1k`` is allowed; it chooses the weights' metadata).
        num_classes: outputs of the classifier.
        in_channels: image channels; torchvision models get their first RGB convolution
            adapted (:func:`cnnlab.models.stem.adapt_first_conv`), timm models ``in_chans``.
        **kwargs: passed to the builder (e.g. ``dropout=0.3``, ``image_size=32`` for a
            torchvision ViT, ``drop_path_rate=0.1`` for timm).

    The model gets the attributes ``cnnlab_name``, ``num_classes``, ``in_channels`` and
    ``default_input_size``.

    Example:
        >>> import torch
        >>> net = create_external("torchvision:mobilenet_v3_small", num_classes=3, in_channels=1)
        >>> net(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 3])
    """
    source, builder = check_name(name)
    check_int("num_classes", num_classes, min_value=1)
    check_int("in_channels", in_channels, min_value=1)
    try:
        if source == "torchvision":
            import torchvision

            if builder in _TV_AUX:
                kwargs = {"aux_logits": False, "init_weights": True, **kwargs}
            model = torchvision.models.get_model(
                builder, weights=None, num_classes=num_classes, **kwargs
            )
        else:
            timm = require_timm()
            model = timm.create_model(
                builder, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs
            )
    except TypeError as exc:
        raise ValueError(
            f"model {name!r} does not accept the argument(s) {', '.join(sorted(kwargs))} "
            f"({str(exc).splitlines()[0]}); pass only the builder's own keyword arguments"
        ) from None
    if source == "torchvision":
        from cnnlab.models.stem import adapt_first_conv

        adapt_first_conv(model, in_channels)
    size = kwargs.get("image_size", kwargs.get("img_size"))
    model.cnnlab_name = f"{source}:{builder}"
    model.num_classes = num_classes
    model.in_channels = in_channels
    model.default_input_size = int(size) if size else default_input_size(name)
    return model
