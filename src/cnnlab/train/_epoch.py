"""One training epoch on uint8 tensors resident in memory (validation: train.monitor)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnlab.data.prefetch import gather_batches, prefetch
from cnnlab.train._batches import Normalizer
from cnnlab.train.distributed import World, all_reduce_sum, reduce_device
from cnnlab.train.mix import dominant_label


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""

    def __init__(self, message: str, run_dir: Any = None) -> None:
        super().__init__(message)
        self.run_dir = run_dir


@dataclass
class EpochContext:
    """Everything an epoch needs, built once per run."""

    model: nn.Module  # the module to call (possibly DDP-wrapped and/or torch.compile'd)
    images: torch.Tensor  # (N, C, H, W) uint8 training images
    labels: torch.Tensor  # (N,) int64
    normalizer: Normalizer
    augment: nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    criterion: nn.Module
    generator: torch.Generator  # shuffling (and, in one process, augmentation) randomness
    batch_size: int  # global images per forward pass (all processes together)
    grad_clip: float | None
    autocast: Callable[[], Any] | None
    sync_every: int  # read the loss back every this many batches (1 on CPU: it is free there)
    max_steps: int | None = None  # stop the epoch once the run has made this many steps
    steps_done: int = 0  # optimizer steps of the run so far (counted across epochs)
    prefetch: int = 0  # optimizer steps' batches gathered ahead by a thread (0: in the loop)
    mix: Any = None  # train.mix.BatchMixer (mixup/CutMix -> soft targets, per micro-batch) or None
    ema: Any = None  # train.ema.WeightEMA, updated after every optimizer step, or None
    sampler: Any = None  # train.imbalance.BalancedSampler (the epoch's order) or None: shuffle
    accumulate: int = 1  # forward/backward passes per optimizer step
    world: World = field(default_factory=World)
    augment_generator: torch.Generator | None = None  # per-process augmentation (None: generator)
    no_sync: Callable[[], Any] | None = None  # DDP's no_sync (skip the all-reduce) or None
    scaler: Any = None  # torch.amp.GradScaler for fp16, or None


def num_train_steps(n: int, batch_size: int, accumulate: int = 1, world_size: int = 1) -> int:
    """Optimizer steps per epoch over ``n`` images (see :func:`step_batches`).

    Example:
        >>> num_train_steps(10, 4), num_train_steps(9, 4), num_train_steps(10, 2, accumulate=2)
        (3, 2, 3)
    """
    step = batch_size * accumulate
    full, rest = divmod(n, step)
    return full + (1 if _keep_last(rest, n, accumulate * world_size) else 0)


def _keep_last(rest: int, n: int, parts: int) -> bool:
    # A last, short step is kept when every process's every micro-batch gets an image, and it
    # is not a single image (batch norm cannot train on one) unless the split has one image.
    return rest > 0 and rest >= parts and (rest > 1 or n == 1)


def step_batches(
    n: int, step: int, parts: int, generator: torch.Generator, sampler: Any = None
) -> list[torch.Tensor]:
    """The epoch's index tensors, one per optimizer step of ``step`` images (global).

    The order is one seeded permutation of ``range(n)`` (or, with a
    :class:`~cnnlab.train.imbalance.BalancedSampler`, its seeded class-balanced epoch order),
    the same on every process; a process then trains on its slice of each step
    (:func:`torch.tensor_split` into world-size parts). With one process and ``parts == 1``
    these are exactly ``index_batches(n, step, shuffle=True)``'s (or ``sampler.batches``')
    batches.

    Example:
        >>> [len(b) for b in step_batches(9, 4, 1, torch.Generator().manual_seed(0))]
        [4, 4]
    """
    order = sampler.epoch_order(generator) if sampler is not None else torch.randperm(
        n, generator=generator)
    n = len(order)
    out = []
    for start in range(0, n, step):
        idx = order[start : start + step]
        if len(idx) < step and not _keep_last(len(idx), n, parts):
            break
        out.append(idx)
    return out


def train_epoch(
    ctx: EpochContext, on_step: Callable[[int, float, float, int], None], epoch: int
) -> dict[str, float]:
    """Run one epoch; returns train loss/accuracy, last lr, time and images/s.

    Each optimizer step takes ``batch_size * accumulate`` images of the seeded order; process
    ``r`` of ``W`` takes its slice of them and splits it into ``accumulate`` micro-batches.
    Every micro-batch's mean loss is weighted by ``mass(micro) * W / mass(step)``, so that after
    DDP averages the gradients over processes, the gradient is the mean over the step's images,
    as one process with the whole batch computes it (the weight is exactly 1 in one process
    without accumulation). A batch's mass is its image count, or with class weights
    (``--class-weights``) the sum of its images' weights, the denominator of the weighted
    cross-entropy's mean; it is known on every process from the labels of the step. Under
    mixup/CutMix the count is used (soft targets' mean divides by the count). Under fp16 a
    GradScaler scales the loss, and a step whose gradients hold inf/NaN is skipped (counted in
    ``skipped_steps``).

    Raises:
        TrainingDiverged: as soon as a step's loss is NaN or infinite (on every process at once:
            the loss checked is the sum over processes).
    """
    ctx.model.train()
    device = ctx.normalizer.device
    world, acc = ctx.world, ctx.accumulate
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = done = skipped = 0
    start, start_cpu = time.perf_counter(), time.process_time()
    steps = step_batches(len(ctx.labels), ctx.batch_size * acc, acc * world.world_size,
                         ctx.generator, ctx.sampler)
    if ctx.max_steps is not None:  # --max-steps (optimizer steps): the last epoch may stop early
        steps = steps[: max(0, ctx.max_steps - ctx.steps_done)]

    def split(step_idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # This process's slice of the step, cut into its micro-batches.
        mine = torch.tensor_split(step_idx, world.world_size)[world.rank]
        return torch.tensor_split(mine, acc) if acc > 1 else (mine,)

    def gather(step_idx: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # Only this process's rows are read.
        return list(gather_batches(ctx.images, ctx.labels, split(step_idx)))  # (b,C,H,W) u8, (b,)

    class_w = getattr(ctx.criterion, "weight", None) if ctx.mix is None else None
    image_w = (None if class_w is None
               else class_w.detach().double().cpu()[ctx.labels.cpu()])  # (N,) loss weights

    def mass(idx: torch.Tensor) -> float:
        return float(len(idx)) if image_w is None else image_w[idx].sum().item()

    gathered: Iterator[list[tuple[torch.Tensor, torch.Tensor]]] = map(gather, steps)
    if ctx.prefetch:
        gathered = prefetch(gathered, ctx.prefetch)
    aug_generator = ctx.augment_generator or ctx.generator
    lr = used_lr = ctx.optimizer.param_groups[0]["lr"]
    for i, (step_idx, micros) in enumerate(zip(steps, gathered)):
        ctx.optimizer.zero_grad(set_to_none=True)
        step_loss = torch.zeros((), dtype=torch.float64, device=device)
        step_mass = mass(step_idx)
        masses = [mass(m) for m in split(step_idx)]
        for j, (x_u8, y) in enumerate(micros):
            y = y.to(device, non_blocking=True)  # (b,)
            x = ctx.normalizer(x_u8, ctx.augment, aug_generator)  # (b, C, H, W) float
            if ctx.mix is not None:  # y: (b, K) soft targets when mixed; per micro-batch
                x, y = ctx.mix(x, y, aug_generator)
            skip_sync = ctx.no_sync is not None and j < len(micros) - 1
            with ctx.no_sync() if skip_sync else contextlib.nullcontext():
                if ctx.autocast is not None:
                    with ctx.autocast():
                        out = ctx.model(x)
                        loss = ctx.criterion(out.float(), y)
                else:
                    out = ctx.model(x)  # (b, num_classes)
                    loss = ctx.criterion(out, y)
                weight = masses[j] * world.world_size / step_mass
                scaled = loss if weight == 1.0 else loss * weight
                (ctx.scaler.scale(scaled) if ctx.scaler is not None else scaled).backward()
            step_loss += loss.detach().double() * (masses[j] * len(step_idx) / step_mass)
            correct += (out.detach().argmax(1) == dominant_label(y)).sum()  # mixed: top target
            seen += len(y)
        done += len(step_idx)
        if ctx.scaler is not None and ctx.grad_clip is not None:
            ctx.scaler.unscale_(ctx.optimizer)  # clip the true gradients, not the scaled ones
        if ctx.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), ctx.grad_clip)
        last = i == len(steps) - 1
        if i % ctx.sync_every == 0 or last:
            if world.distributed:
                total = _reduce(step_loss.clone())
                value = (total / len(step_idx)).item()
            elif acc == 1:
                value = loss.item()
            else:
                value = (step_loss / len(step_idx)).item()
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"the training loss became {value} at epoch {epoch}, batch {i + 1}/"
                    f"{len(steps)} (lr {lr:.3g}); the run stopped before updating the weights"
                )
            on_step(i + 1, value, lr, done)
        if ctx.scaler is not None:
            scale = ctx.scaler.get_scale()
            ctx.scaler.step(ctx.optimizer)  # skipped when the gradients hold inf/NaN
            ctx.scaler.update()
            skipped += int(ctx.scaler.get_scale() < scale)
        else:
            ctx.optimizer.step()
        if ctx.ema is not None:
            ctx.ema.update()  # the same on every process: DDP keeps the parameters in sync
        ctx.scheduler.step()
        used_lr, lr = lr, ctx.optimizer.param_groups[0]["lr"]
        loss_sum += step_loss
        ctx.steps_done += 1
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    if world.distributed:
        totals = _reduce(torch.stack([loss_sum, correct.double(),
                                      torch.tensor(float(seen), dtype=torch.float64,
                                                   device=device)]))
        loss_total, correct_n, seen = totals[0].item(), int(totals[1].item()), int(totals[2].item())
    else:
        loss_total, correct_n = loss_sum.item(), correct.item()
    train_loss = loss_total / max(1, seen)
    if not math.isfinite(train_loss):
        raise TrainingDiverged(f"the training loss became {train_loss} in epoch {epoch}")
    row = {
        "train_loss": train_loss,
        "train_acc": correct_n / max(1, seen),
        "lr": used_lr,  # the learning rate of the epoch's last batch
        "epoch_time_s": elapsed,
        "images_per_s": seen / max(elapsed, 1e-9),  # all processes together
        "epoch_cpu_s": cpu,  # process CPU seconds (all threads); robust to other processes
    }
    if ctx.scaler is not None:
        row["skipped_steps"] = skipped  # fp16 steps the GradScaler skipped (inf/NaN gradients)
    return row


def _reduce(t: torch.Tensor) -> torch.Tensor:
    """Sum over processes, on the device the backend needs."""
    target = reduce_device(t.device)
    return all_reduce_sum(t.to(target)).to(t.device)
