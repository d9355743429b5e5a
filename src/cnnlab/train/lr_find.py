"""The learning-rate range test (Smith 2017; fastai's ``lr_find``): ``cnnlab lr-find``.

A copy of the model trains for ``num_steps`` batches while the learning rate grows exponentially
from ``start_lr`` to ``end_lr`` (``torch.optim.lr_scheduler.ExponentialLR``, stepped per batch);
the loss of each batch is recorded against the rate it was trained with, smoothed with a
debiased exponential moving average (``beta`` 0.98, as fastai), and the test stops early once the
smoothed loss exceeds ``diverge`` times its minimum. The suggestion is fastai's classic rule:
a tenth of the rate at the smoothed loss's minimum (the minimum itself is already too fast to be
stable), also reported is the rate of steepest descent of the smoothed curve before its minimum.
The model and optimizer passed in are left untouched.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class LRFindResult:
    """The range test's curve and suggestions.

    Attributes:
        lrs: learning rate of each recorded batch.
        losses: the smoothed loss at each of them.
        raw_losses: the batch losses as measured.
        lr_at_min: the rate where the smoothed loss is lowest.
        steepest: the rate of steepest descent of the smoothed loss (per log10 of the rate).
        suggestion: ``lr_at_min / 10``.
        stopped: ``"diverged"`` or ``"completed"``.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float] = field(default_factory=list)
    lr_at_min: float = math.nan
    steepest: float = math.nan
    suggestion: float = math.nan
    stopped: str = "completed"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    beta: float = 0.98,
    diverge: float = 4.0,
) -> LRFindResult:
    """Run the range test on a copy of ``model`` with a copy of ``optimizer``'s settings.

    Args:
        model: the model (not modified).
        optimizer: an optimizer over ``model``'s parameters; its class and param-group settings
            (weight decay, momentum) are given to a fresh optimizer over the copy.
        batches: (x, y) pairs; cycled when shorter than ``num_steps``.
        loss_fn: (outputs, targets) -> scalar loss.
        start_lr, end_lr: the first and last learning rate.
        num_steps: batches over which the rate grows from ``start_lr`` to ``end_lr``.
        beta: smoothing of the recorded loss (0: none).
        diverge: stop once the smoothed loss exceeds this many times its minimum.

    Example:
        >>> net = nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> data = [(torch.randn(8, 2), torch.randn(8, 1))]
        >>> r = lr_range_test(net, opt, data, nn.functional.mse_loss, num_steps=20)
        >>> len(r.lrs) <= 20
        True
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}")
    net = copy.deepcopy(model)
    net.train()
    index = {id(p): i for i, p in enumerate(model.parameters())}
    params = list(net.parameters())
    groups = []
    for g in optimizer.param_groups:
        settings = {k: v for k, v in g.items() if k != "params"}
        settings["lr"] = start_lr
        settings.pop("initial_lr", None)
        groups.append({**settings, "params": [params[index[id(p)]] for p in g["params"]]})
    opt = type(optimizer)(groups)  # each group carries its own settings
    gamma = (end_lr / start_lr) ** (1.0 / (num_steps - 1))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
    result = LRFindResult([], [])
    avg, best = 0.0, math.inf
    for step, (x, y) in enumerate(_cycle(batches, num_steps)):
        lr = opt.param_groups[0]["lr"]
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        scheduler.step()
        value = loss.item()
        if not math.isfinite(value):
            result.stopped = "diverged"
            break
        avg = beta * avg + (1 - beta) * value
        smoothed = avg / (1 - beta ** (step + 1))
        result.lrs.append(lr)
        result.raw_losses.append(value)
        result.losses.append(smoothed)
        best = min(best, smoothed)
        if step > 0 and smoothed > diverge * best:
            result.stopped = "diverged"
            break
    _suggest(result)
    return result


def _cycle(batches: Iterable[Any], n: int) -> Iterator[Any]:
    done = 0
    while done < n:
        empty = True
        for b in batches:
            empty = False
            yield b
            done += 1
            if done == n:
                return
        if empty:
            raise ValueError("lr_range_test needs at least one batch")


def _suggest(result: LRFindResult) -> None:
    if not result.losses:
        return
    i_min = min(range(len(result.losses)), key=result.losses.__getitem__)
    result.lr_at_min = result.lrs[i_min]
    result.suggestion = result.lr_at_min / 10
    if i_min >= 1:
        logs = [math.log10(v) for v in result.lrs[: i_min + 1]]
        slopes = [(result.losses[i + 1] - result.losses[i]) / (logs[i + 1] - logs[i])
                  for i in range(i_min)]
        j = min(range(len(slopes)), key=slopes.__getitem__)
        result.steepest = result.lrs[j]


def lr_find(
    cfg: Any,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    data: Any = None,
) -> LRFindResult:
    """The range test with a training config's data, model, augmentation, loss and optimizer.

    Args:
        cfg: a :class:`cnnlab.train.TrainConfig` (its ``lr`` is ignored).
        start_lr, end_lr, num_steps: as :func:`lr_range_test`.
        data: a loaded ``DataBundle`` instead of ``cfg.dataset``.

    Example:
        >>> from cnnlab.train import TrainConfig
        >>> lr_find(TrainConfig(), num_steps=50).suggestion  # doctest: +SKIP
        0.0031
    """
    from cnnlab.train import _setup
    from cnnlab.train._batches import Normalizer, index_batches
    from cnnlab.train._rng import seed_everything
    from cnnlab.train.recipe import build_recipe

    generator = seed_everything(cfg.seed)
    device = _setup.resolve_device(cfg.device)
    bundle = data if data is not None else _setup.load_bundle(cfg)
    setup = _setup.build_model(cfg, bundle)
    model = setup.model.to(device)
    optimizer, _ = _setup.build_optimization(cfg, model, steps_per_epoch=1)
    recipe = build_recipe(cfg, model, bundle.train.labels, bundle.num_classes, device, "")
    normalizer = Normalizer(setup.mean, setup.std, device)
    from cnnlab.data import build_augment

    augment = build_augment(cfg.augment, bundle.image_size, source=cfg.dataset).to(device).train()
    images, labels = bundle.train.images, bundle.train.labels

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in index_batches(len(labels), cfg.batch_size, shuffle=True, generator=generator):
            x = normalizer(images[idx], augment, generator)
            y = labels[idx].to(device)
            if recipe.mixer is not None:
                x, y = recipe.mixer(x, y, generator)
            yield x, y

    class _Epochs:  # a fresh shuffled epoch each time the range test cycles
        def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            return batches()

    return lr_range_test(model, optimizer, _Epochs(), recipe.criterion, start_lr=start_lr,
                         end_lr=end_lr, num_steps=num_steps)
