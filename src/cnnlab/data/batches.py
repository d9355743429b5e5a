"""Mini-batches drawn straight from the resident uint8 tensors: one index_select per batch."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from cnnlab._validate import check_int
from cnnlab.data.bundle import Split


def num_batches(n: int, batch_size: int, *, drop_last: bool = False) -> int:
    """How many batches ``batches`` yields for ``n`` samples.

    Example:
        >>> num_batches(10, 4), num_batches(10, 4, drop_last=True)
        (3, 2)
    """
    return n // batch_size if drop_last else -(-n // batch_size)


def batches(
    split: Split,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` batches: uint8 (B, C, H, W) and int64 (B,) on ``device``.

    Each batch is one ``index_select`` on the resident tensors (no per-sample Python). The
    shuffling permutation comes from ``generator`` (a CPU ``torch.Generator``), so the same
    generator state gives the same batches. When the split lives on the CPU and ``device`` is
    CUDA, the batch is gathered into pinned memory and copied with ``non_blocking=True``; keeping
    the split resident on the GPU (``split.to("cuda")``) avoids the copy altogether.

    Args:
        split: the split to iterate.
        batch_size: samples per batch (>= 1).
        shuffle: draw a fresh random permutation (else keep the order).
        generator: source of the permutation; None uses torch's global RNG.
        device: where the batches go; None keeps the split's device.
        drop_last: drop the final incomplete batch.

    Example:
        >>> s = Split(torch.zeros(10, 1, 4, 4, dtype=torch.uint8), torch.arange(10))
        >>> [len(y) for _, y in batches(s, 4, shuffle=False)]
        [4, 4, 2]
    """
    check_int("batch_size", batch_size, min_value=1)
    n = len(split)
    src = split.images.device
    device = src if device is None else torch.device(device)
    if shuffle:
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    order = order.to(src)
    pin = src.type == "cpu" and device.type == "cuda"
    for b in range(num_batches(n, batch_size, drop_last=drop_last)):
        index = order[b * batch_size : (b + 1) * batch_size]
        if pin:
            x = torch.empty(
                (len(index), *split.images.shape[1:]), dtype=torch.uint8, pin_memory=True
            )
            torch.index_select(split.images, 0, index, out=x)
            y = split.labels.index_select(0, index).pin_memory()
        else:
            x = split.images.index_select(0, index)  # (B, C, H, W) uint8
            y = split.labels.index_select(0, index)  # (B,) int64
        if device != src:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
        yield x, y
