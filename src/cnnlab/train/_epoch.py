"""One training epoch on uint8 tensors resident in memory (validation: train.monitor)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnlab.data.prefetch import gather_batches, prefetch
from cnnlab.train._batches import Normalizer, index_batches
from cnnlab.train.mix import dominant_label


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""

    def __init__(self, message: str, run_dir: Any = None) -> None:
        super().__init__(message)
        self.run_dir = run_dir


@dataclass
class EpochContext:
    """Everything an epoch needs, built once per run."""

    model: nn.Module  # the module to call (possibly torch.compile'd)
    images: torch.Tensor  # (N, C, H, W) uint8 training images
    labels: torch.Tensor  # (N,) int64
    normalizer: Normalizer
    augment: nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    criterion: nn.Module
    generator: torch.Generator  # shuffling and augmentation randomness
    batch_size: int
    grad_clip: float | None
    autocast: Callable[[], Any] | None
    sync_every: int  # read the loss back every this many batches (1 on CPU: it is free there)
    max_steps: int | None = None  # stop the epoch once the run has made this many steps
    steps_done: int = 0  # optimizer steps of the run so far (counted across epochs)
    prefetch: int = 0  # batches gathered ahead by a thread (0: gather in the loop)
    mix: Any = None  # train.mix.BatchMixer (mixup/CutMix -> soft targets) or None
    ema: Any = None  # train.ema.WeightEMA, updated after every optimizer step, or None
    sampler: Any = None  # train.imbalance.BalancedSampler (the epoch's order) or None: shuffle


def train_epoch(
    ctx: EpochContext, on_step: Callable[[int, float, float, int], None], epoch: int
) -> dict[str, float]:
    """Run one epoch; returns train loss/accuracy, last lr, time and images/s.

    Raises:
        TrainingDiverged: as soon as a batch's loss is NaN or infinite.
    """
    ctx.model.train()
    device = ctx.normalizer.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    start, start_cpu = time.perf_counter(), time.process_time()
    if ctx.sampler is not None:
        batches = ctx.sampler.batches(ctx.batch_size, ctx.generator)
    else:
        batches = list(index_batches(len(ctx.labels), ctx.batch_size, shuffle=True,
                                     generator=ctx.generator))
    if ctx.max_steps is not None:  # --max-steps: the run's last epoch may stop part-way
        batches = batches[: max(0, ctx.max_steps - ctx.steps_done)]
    gathered = gather_batches(ctx.images, ctx.labels, batches)  # (B, C, H, W) uint8, (B,)
    if ctx.prefetch:
        gathered = prefetch(gathered, ctx.prefetch)
    lr = used_lr = ctx.optimizer.param_groups[0]["lr"]
    for i, (x_u8, y) in enumerate(gathered):
        y = y.to(device, non_blocking=True)  # (B,)
        x = ctx.normalizer(x_u8, ctx.augment, ctx.generator)  # (B, C, H, W) float
        if ctx.mix is not None:
            x, y = ctx.mix(x, y, ctx.generator)  # y: (B, K) soft targets when mixed
        if ctx.autocast is not None:
            with ctx.autocast():
                out = ctx.model(x)
                loss = ctx.criterion(out.float(), y)
        else:
            out = ctx.model(x)  # (B, num_classes)
            loss = ctx.criterion(out, y)
        ctx.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if ctx.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), ctx.grad_clip)
        last = i == len(batches) - 1
        if i % ctx.sync_every == 0 or last:
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"the training loss became {value} at epoch {epoch}, batch {i + 1}/"
                    f"{len(batches)} (lr {lr:.3g}); the run stopped before updating the weights"
                )
            on_step(i + 1, value, lr, seen + len(y))
        ctx.optimizer.step()
        if ctx.ema is not None:
            ctx.ema.update()
        ctx.scheduler.step()
        used_lr, lr = lr, ctx.optimizer.param_groups[0]["lr"]
        loss_sum += loss.detach().double() * len(y)
        correct += (out.detach().argmax(1) == dominant_label(y)).sum()  # mixed: top target
        seen += len(y)
        ctx.steps_done += 1
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    train_loss = loss_sum.item() / max(1, seen)
    if not math.isfinite(train_loss):
        raise TrainingDiverged(f"the training loss became {train_loss} in epoch {epoch}")
    return {
        "train_loss": train_loss,
        "train_acc": correct.item() / max(1, seen),
        "lr": used_lr,  # the learning rate of the epoch's last batch
        "epoch_time_s": elapsed,
        "images_per_s": seen / max(elapsed, 1e-9),
        "epoch_cpu_s": cpu,  # process CPU seconds (all threads); robust to other processes
    }

