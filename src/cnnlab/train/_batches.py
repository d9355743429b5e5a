"""Batches from uint8 tensors: float conversion, batched augmentation, normalization.

The whole split stays a uint8 tensor (N, C, H, W); a batch is gathered by index, converted to
float on the training device, augmented there as one tensor, and normalized with the training
split's per-channel mean/std. No PIL, no per-sample Python in the epoch loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn


class Normalizer:
    """uint8 batch -> augmented (optional) -> ``(x / 255 - mean) / std`` on ``device``.

    Augmentation that only moves pixels (crop, flip, cutout) runs on the uint8 batch (4x less
    memory traffic); the rest runs on [0, 1] floats. Normalization is cnnlab.data's fused
    multiply-add, optionally writing NHWC (channels_last) memory.

    Example:
        >>> norm = Normalizer([0.5], [0.25], "cpu")
        >>> round(norm(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8))[0, 0, 0, 0].item(), 4)
        2.0
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str,
        channels_last: bool = False,
    ) -> None:
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.device = torch.device(device)
        self.channels_last = channels_last

    def __call__(
        self,
        x: torch.Tensor,
        augment: nn.Module | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        from cnnlab.data import to_float, to_float_normalized

        x = x.to(self.device, non_blocking=True)  # (B, C, H, W) uint8
        if augment is not None:
            if getattr(augment, "uint8_ok", False):
                x = augment(x, generator)  # uint8 in, uint8 out
            else:
                x = augment(to_float(x), generator)  # [0, 1] floats
        return to_float_normalized(x, self.mean, self.std, channels_last=self.channels_last)


def index_batches(
    n: int, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None
) -> Iterator[torch.Tensor]:
    """Index tensors of consecutive batches over ``range(n)``, reshuffled when ``shuffle``.

    A last batch of a single image is dropped when shuffling (batch norm cannot train on it).

    Example:
        >>> [b.tolist() for b in index_batches(5, 2, shuffle=False)]
        [[0, 1], [2, 3], [4]]
    """
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if shuffle and len(idx) == 1 and n > 1:
            return
        yield idx


def num_train_batches(n: int, batch_size: int) -> int:
    """How many batches :func:`index_batches` yields with ``shuffle=True``."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest > 1 or (rest == 1 and n == 1) else 0)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    normalizer: Normalizer,
    batch_size: int = 256,
    autocast: Callable[[], object] | None = None,
) -> torch.Tensor:
    """Logits (N, num_classes) on the CPU for uint8 ``images`` (N, C, H, W), model in eval mode."""
    was_training = model.training
    model.eval()
    outs = []
    try:
        for idx in index_batches(len(images), batch_size, shuffle=False):
            x = normalizer(images[idx])
            if autocast is not None:
                with autocast():
                    out = model(x)
            else:
                out = model(x)
            outs.append(out.float().cpu())
    finally:
        model.train(was_training)
    if not outs:
        return torch.zeros(0, 0)
    return torch.cat(outs)
