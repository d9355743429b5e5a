"""Load pretrained weights into a model whose head (and input channels) may differ.

``load_pretrained(model, "torchvision")`` takes torchvision's ImageNet weights for the same
architecture; ``load_pretrained(model, "runs/digits")`` or ``"resnet18.pth"`` takes local ones.
Everything whose shape fits is copied; the classifier head is kept freshly initialized when the
class count differs, and the first convolution is adapted when the input channels differ. The
returned :class:`PretrainedReport` says exactly what happened, and which input normalization and
size the weights expect.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from cnnlab.models.stem import adapt_conv_weight
from cnnlab.transfer._head import head_prefix, is_head_param
from cnnlab.transfer._libraries import library_builder, load_timm_state
from cnnlab.transfer._sources import (
    PretrainedInfo,
    is_torchvision,
    load_local_state,
    load_torchvision_state,
    pretrained_info,
    torchvision_weights,
)
from cnnlab.transfer.adapt import classifier_layer

# Wrappers add these to every key: DataParallel/DDP ("module.") and torch.compile ("_orig_mod.").
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class PretrainedReport:
    """What :func:`load_pretrained` did.

    Attributes:
        source: the source as given (``"torchvision"`` or a path).
        loaded: model keys copied from the source.
        adapted: model keys copied after adapting (first conv for other input channels).
        skipped: ``(model key, reason)`` for source tensors that did not fit (e.g. the head).
        missing: model keys the source has no tensor for (left as initialized).
        unused: source keys nothing in the model took.
        matched_by: ``"name"`` or ``"position"`` (same architecture, other parameter names).
        normalization: ``{"mean": [...], "std": [...]}`` the weights expect, or None if unknown.
        input_size: ``[C, H, W]`` the weights were trained at, or None if unknown.
        imagenet: True when the weights are ImageNet weights.
        class_names: the source's class names (cnnlab checkpoint, or ImageNet categories).
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    matched_by: str = "name"
    normalization: dict[str, list[float]] | None = None
    input_size: list[int] | None = None
    imagenet: bool = False
    class_names: list[str] | None = None

    def summary(self) -> str:
        """Human-readable lines for the training log."""
        lines = [
            f"pretrained {self.source}: loaded {len(self.loaded)} tensors"
            + (f" (matched by {self.matched_by})" if self.matched_by != "name" else "")
        ]
        lines += [f"  adapted {k} to the model's input channels" for k in self.adapted]
        lines += [f"  skipped {k}: {why}" for k, why in self.skipped]
        if self.missing:
            lines.append(f"  kept initialized (not in source): {', '.join(self.missing)}")
        if self.unused:
            lines.append(f"  unused source tensors: {', '.join(self.unused)}")
        return "\n".join(lines)


def _strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in _WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _pair_keys(
    src: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> tuple[dict[str, str], str]:
    """Map target key -> source key: by name, else by position when the counts agree."""
    by_name = {k: k for k in target if k in src}
    if len(by_name) * 2 >= len(target) or len(src) != len(target):
        return by_name, "name"
    # Same architecture under other names (e.g. a torchvision ResNet into a model whose blocks
    # use other attribute names): state dicts list tensors in module definition order.
    return dict(zip(target, src)), "position"


def _norm_for_channels(mean, std, channels: int) -> dict[str, list[float]]:
    mean, std = list(mean), list(std)
    if channels == len(mean):
        return {"mean": mean, "std": std}
    # One channel: the average of the RGB statistics, matching the summed first conv above.
    return {"mean": [sum(mean) / len(mean)] * channels, "std": [sum(std) / len(std)] * channels}


def _model_arch(model: nn.Module, arch: str | None) -> str:
    if arch:
        return arch
    for attr in ("cnnlab_name", "model_name", "arch", "name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    found = _zoo_name_of(model)
    if found:
        return found
    raise ValueError(
        f"pretrained 'torchvision' needs the architecture name of {type(model).__name__}; "
        "pass arch='resnet18' (the cnnlab/torchvision model name)"
    )


def _zoo_name_of(model: nn.Module) -> str | None:
    """The cnnlab zoo name (also a torchvision name) whose model has ``model``'s exact layout."""
    from torchvision.models import list_models as tv_models

    from cnnlab.models import create, list_models

    signature = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    kwargs = {k: getattr(model, k) for k in ("num_classes", "in_channels") if hasattr(model, k)}
    for name in sorted(set(list_models()) & set(tv_models())):
        try:
            with torch.device("meta"):  # no memory, no init cost
                candidate = create(name, **kwargs)
        except Exception:  # a family that cannot take these arguments
            continue
        if type(candidate) is type(model) and signature == [
            (k, tuple(v.shape)) for k, v in candidate.state_dict().items()
        ]:
            return name
    return None


def _in_channels(target: dict[str, torch.Tensor]) -> tuple[str | None, int | None]:
    for k, v in target.items():
        if v.ndim == 4 and k.endswith("weight"):
            return k, v.shape[1]
    return None, None


def load_pretrained(
    model: nn.Module,
    source: str | os.PathLike,
    *,
    arch: str | None = None,
    class_names: Sequence[str] | None = None,
    new_head: bool | None = None,
    info: PretrainedInfo | None = None,
) -> PretrainedReport:
    """Copy pretrained weights into ``model`` in place, replacing what does not fit.

    Args:
        model: the freshly built model (any class count / input channels).
        source: ``"torchvision"`` (or ``"torchvision:VARIANT"``, e.g. ``IMAGENET1K_V2``) for
            torchvision's ImageNet weights of the same architecture, through torchvision's own
            download and cache; ``"timm"`` for a ``timm:NAME`` model's weights through timm's
            download and cache (the name's tag, e.g. ``resnet10t.c3_in1k``, picks them); or a
            path: a run directory, a ``.safetensors`` checkpoint, or a
            ``.pth`` state dict (read with ``weights_only=True``).
        arch: the architecture name for ``"torchvision"`` (default: ``model.model_name``).
        class_names: the target task's classes. When the source's classes are known (a cnnlab
            checkpoint, or torchvision's ImageNet categories) and differ, the head is not
            loaded even if its shape fits (e.g. digits 0-4 -> digits 5-9).
        new_head: True: never load the head; False: load it whenever its shape fits;
            None (default): decide from shapes and ``class_names`` as above.
        info: what the source expects, when already read with
            :func:`cnnlab.transfer.pretrained_info` (read here otherwise).

    Returns:
        A :class:`PretrainedReport`; ``report.normalization`` / ``report.input_size`` are what
        the weights expect (ImageNet mean/std and 224 for ImageNet weights).

    Raises:
        FileNotFoundError: a missing path, or offline without torchvision's file in the cache
            (the message names the exact file and folder).
        ValueError: a file that is not a state dict, or weights that fit nothing in the model.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18(num_classes=5)
        >>> torch.save(torchvision.models.resnet18().state_dict(), "/tmp/r18.pth")
        >>> report = load_pretrained(net, "/tmp/r18.pth")
        >>> report.skipped
        [('fc.weight', 'shape (1000, 512) in source, (5, 512) in model: new head'), \
('fc.bias', 'shape (1000,) in source, (5,) in model: new head')]
    """
    source_str = os.fspath(source)
    report = PretrainedReport(source=source_str)
    if is_torchvision(source_str):
        model_arch = _model_arch(model, arch)
        builder = library_builder(model_arch, "torchvision")
        weights = torchvision_weights(builder, source_str.partition(":")[2] or None)
        info = info or pretrained_info(source_str, model_arch)
        src = load_torchvision_state(weights)
    elif source_str == "timm":
        model_arch = _model_arch(model, arch)
        builder = library_builder(model_arch, "timm")
        info = info or pretrained_info(source_str, model_arch)
        src, _ = load_timm_state(builder)
    else:  # torchvision:/timm: models read a bare state dict's metadata from their library
        info = info or pretrained_info(source_str, arch or getattr(model, "cnnlab_name", None))
        src, _ = load_local_state(source_str)
    mean, std = info.mean, info.std
    report.imagenet = info.imagenet
    report.input_size = list(info.input_size) if info.input_size else None
    report.class_names = list(info.class_names) if info.class_names else None
    src = _strip_wrappers(src)
    target = model.state_dict()
    prefix = head_prefix(model)
    # For other classes only the logits layer is new: a head's hidden layers (MobileNetV3's
    # 960->1280 Linear, ConvNeXt's LayerNorm, VGG's FC layers) keep their pretrained weights.
    try:
        logits_layer = classifier_layer(model)
    except ValueError:  # a head without Linear/Conv2d: all of it is new
        logits_layer = prefix
    pairs, report.matched_by = _pair_keys(src, target)
    first_conv, channels = _in_channels(target)
    if new_head is None:
        new_head = bool(
            class_names is not None
            and report.class_names is not None
            and list(class_names) != list(report.class_names)
        )
    new_state = dict(target)
    for key, t in target.items():
        if key not in pairs:
            report.missing.append(key)
            continue
        s = src[pairs[key]]
        if new_head and is_head_param(key, logits_layer):
            report.skipped.append((key, "new head for other classes than the source's"))
        elif s.shape == t.shape:
            new_state[key] = s.to(t.dtype)
            report.loaded.append(key)
        elif (
            key == first_conv
            and s.ndim == 4
            and s.shape[0] == t.shape[0]
            and (s.shape[2:] == t.shape[2:])
        ):
            new_state[key] = adapt_conv_weight(s, t.shape[1]).to(t.dtype)
            report.adapted.append(key)
        else:
            why = "new head" if is_head_param(key, prefix) else "shape mismatch"
            shapes = f"shape {tuple(s.shape)} in source, {tuple(t.shape)} in model"
            report.skipped.append((key, f"{shapes}: {why}"))
    used = set(pairs.values())
    report.unused = [k for k in src if k not in used]
    body = [k for k in report.loaded + report.adapted if not is_head_param(k, prefix)]
    if not body:
        raise ValueError(
            f"pretrained {source_str!r} does not fit {type(model).__name__}: no backbone tensor "
            f"matched by name or shape (source keys start {list(src)[:3]}, model keys "
            f"{list(target)[:3]}); is it the same architecture?"
        )
    model.load_state_dict(new_state, strict=True)
    if mean is not None and std is not None and channels is not None:
        report.normalization = _norm_for_channels(mean, std, channels)
    if report.imagenet and channels is not None and info.input_size is not None:
        report.input_size = [channels, *info.input_size[1:]]  # first conv adapted to channels
    return report
