"""Optimizers and learning-rate schedules.

Parameter groups come from :func:`cnnlab.transfer.param_groups`: trainable parameters only,
head and backbone at their own learning rates, and no weight decay on 1-D parameters (biases
and normalization scales/shifts, where decay only fights the normalization).

Every schedule is a multiplier of the peak ``lr`` computed from the global batch step, and the
scheduler is stepped after every batch, so a schedule is smooth within an epoch and resumes
exactly from the step count stored in its ``state_dict``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from cnnlab._validate import check_choice, check_int
from cnnlab.train.config import OPTIMIZERS, SCHEDULES


def build_optimizer(
    groups: Sequence[dict[str, Any]],
    name: str,
    lr: float,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """Create ``adam``, ``adamw`` or ``sgd`` over parameter ``groups`` (dicts with ``params``).

    Adam's decay is L2 added to the gradient; AdamW's is decoupled (Loshchilov & Hutter, 2019);
    SGD's is L2. ``momentum`` is SGD's momentum and Adam's beta1.

    Example:
        >>> params = list(torch.nn.Linear(3, 2).parameters())
        >>> opt = build_optimizer([{"params": params}], "sgd", 0.1)
    """
    check_choice("optimizer", name, OPTIMIZERS)
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(groups, lr=lr, betas=(momentum, 0.999))


def lr_factor(
    step: int,
    *,
    schedule: str,
    total_steps: int,
    steps_per_epoch: int,
    warmup_steps: int = 0,
    onecycle_pct: float = 0.25,
    step_size: int = 10,
    gamma: float = 0.1,
) -> float:
    """Multiplier of the peak learning rate before optimizer step ``step`` (0-based).

    - ``none``: 1.
    - ``step``: ``gamma ** (epoch // step_size)``, with ``epoch = step // steps_per_epoch``.
    - ``cosine``: linear warm-up from ~0 to 1 over ``warmup_steps``, then half a cosine to 0:
      ``0.5 * (1 + cos(pi * t))`` with ``t`` the fraction of the remaining steps done.
    - ``onecycle`` (Smith & Topin, 2019, as ``torch.optim.lr_scheduler.OneCycleLR``): cosine rise
      from ``1/25`` to 1 over ``onecycle_pct`` of the steps, then cosine fall to ``1/25e4``.

    Example:
        >>> lr_factor(0, schedule="cosine", total_steps=10, steps_per_epoch=5)
        1.0
    """
    check_choice("schedule", schedule, SCHEDULES)
    check_int("total_steps", total_steps, min_value=1)
    if schedule == "none":
        return 1.0
    if schedule == "step":
        return gamma ** ((step // max(1, steps_per_epoch)) // step_size)
    if schedule == "cosine":
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    # onecycle, exactly as OneCycleLR (div_factor=25, final_div_factor=1e4, cosine): phase 1
    # ends at step pct*total - 1, phase 2 at total - 1, each a cosine between its end points.
    start, end = 1.0 / 25.0, 1.0 / 25.0 / 1e4
    rise_end, fall_end = onecycle_pct * total_steps - 1.0, total_steps - 1.0
    if step <= rise_end:
        return _cos_anneal(start, 1.0, step / rise_end if rise_end > 0 else 1.0)
    t = (step - rise_end) / max(fall_end - rise_end, 1e-12)
    return _cos_anneal(1.0, end, min(1.0, t))


def _cos_anneal(a: float, b: float, t: float) -> float:
    # Moves from a (t=0) to b (t=1) along half a cosine: b + (a - b) * (1 + cos(pi t)) / 2.
    return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    schedule: str,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float = 0.0,
    onecycle_pct: float = 0.25,
    step_size: int = 10,
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-batch ``LambdaLR`` following :func:`lr_factor`; call ``.step()`` after every batch.

    Example:
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
        >>> sched = build_scheduler(opt, schedule="cosine", epochs=2, steps_per_epoch=3)
    """
    check_int("steps_per_epoch", steps_per_epoch, min_value=1)
    total = epochs * steps_per_epoch
    warmup = min(total, round(warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        return lr_factor(
            step,
            schedule=schedule,
            total_steps=total,
            steps_per_epoch=steps_per_epoch,
            warmup_steps=warmup,
            onecycle_pct=onecycle_pct,
            step_size=step_size,
            gamma=gamma,
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
