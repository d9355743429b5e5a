"""Batches from uint8 tensors: index batches, and scoring through the run layer.

The whole split stays a uint8 tensor (N, C, H, W); a batch is gathered by index, converted to
float on the training device, augmented there as one tensor, and normalized with the training
split's per-channel mean/std. No PIL, no per-sample Python in the epoch loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from cnnlab.data.normalize import Normalizer
from cnnlab.run.scoring import score_images

__all__ = ["Normalizer", "index_batches", "predict_logits"]


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


def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    normalizer: Normalizer,
    batch_size: int = 256,
    autocast: Callable[[], object] | None = None,
) -> torch.Tensor:
    """Logits (N, num_classes) on the CPU for uint8 ``images`` (N, C, H, W), model in eval mode.

    The run layer's one scoring path (:func:`cnnlab.run.score_images`), kept under this name.
    """
    return score_images(model, images, normalizer, batch_size, autocast)
