"""Freezing for transfer learning: which parameters train, and batch-norm statistics.

``freeze(model, "backbone")`` is the classic recipe (train only the new head);
``"until:layer2"`` freezes everything up to and including ``layer2`` (the early, generic
features) and trains the rest; :func:`unfreeze` lifts it later (gradual unfreezing, the
``--unfreeze-at EPOCH`` flag). :func:`freeze_bn_stats` keeps BatchNorm running statistics as
they were pretrained: with small target batches the batch statistics are noisy, and updating
the running mean/var drifts them away from what the pretrained filters expect.
"""

from __future__ import annotations

from torch import nn

from cnnlab.transfer._head import head_prefix, is_head_param

FREEZE_CHOICES = ("backbone", "none", "until:LAYER")


def freeze(model: nn.Module, spec: str = "backbone") -> list[str]:
    """Freeze part of ``model`` (``requires_grad=False``); returns the frozen parameter names.

    Args:
        model: a cnnlab model (or a torchvision classifier) with a recognisable head.
        spec: ``"backbone"`` freezes everything but the head; ``"none"`` makes every parameter
            trainable; ``"until:LAYER"`` freezes every parameter defined before and inside the
            module named ``LAYER`` (a name from ``model.named_modules()``, e.g. ``layer2``).

    Returns:
        The names of the parameters that are frozen afterwards, in definition order.

    Raises:
        ValueError: for an unknown spec or a LAYER the model does not have.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18(num_classes=5)
        >>> len(freeze(net, "backbone")), [n for n, p in net.named_parameters() if p.requires_grad]
        (60, ['fc.weight', 'fc.bias'])
    """
    if not isinstance(spec, str):
        raise ValueError(f"freeze must be one of {', '.join(FREEZE_CHOICES)}; got {spec!r}")
    names = [n for n, _ in model.named_parameters()]
    if spec == "none":
        frozen: set[str] = set()
    elif spec == "backbone":
        prefix = head_prefix(model)
        frozen = {n for n in names if not is_head_param(n, prefix)}
    elif spec.startswith("until:"):
        frozen = set(names[: _last_index_of_layer(model, spec[len("until:") :], names) + 1])
    else:
        raise ValueError(f"freeze must be one of {', '.join(FREEZE_CHOICES)}; got {spec!r}")
    for n, p in model.named_parameters():
        p.requires_grad_(n not in frozen)
    return [n for n in names if n in frozen]


def _last_index_of_layer(model: nn.Module, layer: str, names: list[str]) -> int:
    modules = dict(model.named_modules())
    owned = [i for i, n in enumerate(names) if n.startswith(layer + ".")]
    if not layer or layer not in modules or not owned:
        valid = [n for n, m in model.named_children() if any(True for _ in m.parameters())]
        raise ValueError(
            f"freeze 'until:{layer}': the model has no module {layer!r} with parameters; "
            f"valid top-level layers are {', '.join(valid)} (nested names like "
            f"'{valid[-2] if len(valid) > 1 else valid[0]}.0' work too)"
        )
    prefix = head_prefix(model)
    if is_head_param(layer, prefix) or owned[-1] == len(names) - 1:
        raise ValueError(
            f"freeze 'until:{layer}' would freeze the whole model including its head "
            f"{prefix!r}; name an earlier layer, or use 'backbone'"
        )
    return owned[-1]


def unfreeze(model: nn.Module) -> list[str]:
    """Make every parameter trainable again; returns the names that were frozen before.

    For gradual unfreezing, hand the returned names to
    :func:`cnnlab.transfer.add_param_groups` so the optimizer starts updating them.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18(num_classes=5)
        >>> _ = freeze(net, "backbone")
        >>> len(unfreeze(net))
        60
    """
    newly = [n for n, p in model.named_parameters() if not p.requires_grad]
    for p in model.parameters():
        p.requires_grad_(True)
    return newly


def trainable_summary(model: nn.Module) -> str:
    """One line: how many parameters train and how many are frozen.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18(num_classes=5)
        >>> _ = freeze(net, "backbone")
        >>> trainable_summary(net)
        'trainable parameters: 2,565 of 11,179,077 (11,176,512 frozen)'
    """
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"trainable parameters: {train:,} of {total:,} ({total - train:,} frozen)"


class _FrozenStatsMixin:
    """BatchNorm that stays in eval mode: ``model.train()`` does not touch its statistics."""

    def train(self, mode: bool = True):
        return nn.Module.train(self, False)


class FrozenStatsBatchNorm1d(_FrozenStatsMixin, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` whose running statistics are frozen (always normalizes with them)."""


class FrozenStatsBatchNorm2d(_FrozenStatsMixin, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose running statistics are frozen (always normalizes with them)."""


class FrozenStatsBatchNorm3d(_FrozenStatsMixin, nn.BatchNorm3d):
    """``nn.BatchNorm3d`` whose running statistics are frozen (always normalizes with them)."""


_FROZEN = {
    nn.BatchNorm1d: FrozenStatsBatchNorm1d,
    nn.BatchNorm2d: FrozenStatsBatchNorm2d,
    nn.BatchNorm3d: FrozenStatsBatchNorm3d,
}


def freeze_bn_stats(model: nn.Module) -> int:
    """Keep every BatchNorm layer in eval mode during training; returns how many were frozen.

    The layers keep their class hierarchy (they are still ``nn.BatchNorm2d``), state-dict keys
    and trainable affine parameters; only ``train()`` no longer switches them to batch
    statistics, so their running mean/var stay exactly as loaded.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18()
        >>> freeze_bn_stats(net)
        20
        >>> net.train().bn1.training
        False
    """
    count = 0
    for module in model.modules():
        frozen_cls = _FROZEN.get(type(module))
        if frozen_cls is not None:
            module.__class__ = frozen_cls
            module.train(False)
            count += 1
    return count
