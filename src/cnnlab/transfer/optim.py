"""Optimizer parameter groups for fine-tuning: head and backbone at their own learning rates.

A new head starts from random weights and needs a normal learning rate; pretrained backbone
filters need only small corrections, so they usually get a 10-100x smaller one. Frozen
parameters are left out entirely, so the optimizer never holds (or decays) what does not train.
Weight decay is not applied to 1-D parameters (biases and normalization scales/shifts): decay
pulls them towards 0, which for a norm's scale only fights the normalization (as timm's
``param_groups_weight_decay``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from cnnlab.transfer._head import head_prefix, is_head_param

# Per-group keys that hold a learning rate; schedulers add some of these (OneCycleLR: max_lr,
# min_lr, initial_lr). A group added later copies them scaled by its lr ratio.
_LR_KEYS = ("initial_lr", "max_lr", "min_lr")


def _named_groups(
    part: str, named: list[tuple[str, nn.Parameter]], weight_decay: float, lr: float
) -> list[dict[str, Any]]:
    """Split into ``part`` (weights, decayed) and ``part_no_decay`` (1-D: biases, norms)."""
    decay = [p for _, p in named if p.ndim > 1]
    no_decay = [p for _, p in named if p.ndim <= 1]
    groups = [
        {"name": part, "params": decay, "lr": lr, "weight_decay": weight_decay},
        {"name": part + "_no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def _check_rate(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def param_groups(
    model: nn.Module,
    head_lr: float,
    backbone_lr: float | None = None,
    weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """Build optimizer parameter groups holding only trainable parameters.

    Up to four groups, each named: ``head``, ``head_no_decay``, ``backbone``,
    ``backbone_no_decay``; empty groups are left out.

    Args:
        model: the model; its head is found by :func:`cnnlab.transfer.head_prefix`.
        head_lr: learning rate of the classifier head.
        backbone_lr: learning rate of everything else (default: ``head_lr``).
        weight_decay: decay for weights with 2+ dims; biases and norm parameters get 0.

    Raises:
        ValueError: negative rates, or nothing trainable (everything frozen).

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18(num_classes=5)
        >>> groups = param_groups(net, head_lr=1e-3, backbone_lr=1e-4, weight_decay=0.05)
        >>> [(g["name"], g["lr"], g["weight_decay"]) for g in groups][:2]
        [('head', 0.001, 0.05), ('head_no_decay', 0.001, 0.0)]
        >>> opt = torch.optim.AdamW(groups)
    """
    _check_rate("head_lr", head_lr)
    if backbone_lr is not None:
        _check_rate("backbone_lr", backbone_lr)
    _check_rate("weight_decay", weight_decay)
    backbone_lr = head_lr if backbone_lr is None else backbone_lr
    prefix = head_prefix(model)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    head = [(n, p) for n, p in trainable if is_head_param(n, prefix)]
    body = [(n, p) for n, p in trainable if not is_head_param(n, prefix)]
    groups = _named_groups("head", head, weight_decay, head_lr)
    groups += _named_groups("backbone", body, weight_decay, backbone_lr)
    if not groups:
        raise ValueError(
            "param_groups: the model has no trainable parameters (everything is frozen); "
            "use freeze 'none' or 'backbone'"
        )
    return groups


def add_param_groups(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    names: Iterable[str],
    lr: float,
    weight_decay: float = 0.0,
    scheduler: Any = None,
) -> list[dict[str, Any]]:
    """Add newly unfrozen parameters to a running optimizer (gradual unfreezing).

    ``lr`` is the new groups' peak learning rate. When a scheduler already scaled the first
    group's rate (its ``initial_lr`` differs from its ``lr``), the new groups start at the same
    point of the schedule: their ``lr`` is ``lr * first_lr / first_initial_lr``, and
    scheduler-managed keys (``initial_lr``, ``max_lr``, ``min_lr``) are copied scaled by
    ``lr / first_initial_lr``; ``scheduler`` (when given, also inside ``SequentialLR``) gets a
    matching ``base_lrs`` entry. Parameters the optimizer already holds are skipped.

    Example:
        >>> import torchvision
        >>> from cnnlab.transfer import freeze, unfreeze
        >>> net = torchvision.models.resnet18(num_classes=5)
        >>> _ = freeze(net, "backbone")
        >>> opt = torch.optim.SGD(param_groups(net, head_lr=0.1), lr=0.1)
        >>> new = add_param_groups(opt, net, unfreeze(net), lr=0.01)
        >>> [g["name"] for g in opt.param_groups]
        ['head', 'head_no_decay', 'backbone', 'backbone_no_decay']
    """
    _check_rate("lr", lr)
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    wanted = set(names)
    named = [(n, p) for n, p in model.named_parameters() if n in wanted and id(p) not in held]
    ref = optimizer.param_groups[0]
    peak = ref.get("initial_lr", ref["lr"])
    scale = lr / peak if peak else 1.0
    added = _named_groups("backbone", named, weight_decay, ref["lr"] * scale if peak else lr)
    for group in added:
        for key in _LR_KEYS:
            if key in ref:
                group[key] = ref[key] * scale
        optimizer.add_param_group(group)
        _extend_scheduler(scheduler, group)
    return added


def _extend_scheduler(scheduler: Any, group: dict[str, Any]) -> None:
    """Give ``scheduler`` (and chained/sequential children) one more per-group entry."""
    if scheduler is None:
        return
    for child in getattr(scheduler, "_schedulers", []):
        _extend_scheduler(child, group)
    if isinstance(getattr(scheduler, "base_lrs", None), list):
        scheduler.base_lrs.append(group.get("initial_lr", group["lr"]))
    if isinstance(getattr(scheduler, "_last_lr", None), list):
        scheduler._last_lr.append(group["lr"])
    fns = getattr(scheduler, "lr_lambdas", None)  # LambdaLR: one function per group
    if isinstance(fns, list) and fns:
        fns.append(fns[0])
