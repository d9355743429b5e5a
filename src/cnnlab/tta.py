"""Test-time augmentation (``cnnlab evaluate --tta flip|crops``): average over views of a batch.

- ``flip``: the image and its left-right mirror (2 views);
- ``crops``: the image padded by size/8 pixels with zeros (as training's random crop pads) and
  cropped back at its centre and its four corners (5 views: shifts of 0 and +-size/8).

The model's softmax probabilities are averaged over the views (as torchvision's ``FiveCrop``
recipe and timm's TTA do), and their logarithm is returned in place of logits, so that argmax,
cross-entropy (``log_softmax(log p) = log p``) and calibration read it as they read logits.

Images are taken a batch at a time (a split in the disk store, #13, is read batch by batch,
never whole) and, for a run trained from images stored larger than its input, centre-cropped to
the input size first, so the views are those of the image the model sees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

TTA_MODES = ("none", "flip", "crops")


def tta_views(images: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """The views (each (N, C, H, W), same dtype) that ``mode`` averages over.

    Example:
        >>> len(tta_views(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), "crops"))
        5
    """
    from cnnlab._validate import check_choice

    check_choice("tta", mode, TTA_MODES)
    if mode == "none":
        return [images]
    if mode == "flip":
        return [images, images.flip(3)]
    h, w = images.shape[-2:]
    p = max(1, round(min(h, w) / 8))
    padded = F.pad(images, (p, p, p, p))  # (N, C, H+2p, W+2p), zeros
    offsets = [(p, p), (0, 0), (0, 2 * p), (2 * p, 0), (2 * p, 2 * p)]  # centre, 4 corners
    return [padded[..., y : y + h, x : x + w].contiguous() for y, x in offsets]


def tta_logits(
    predict: Callable[[torch.Tensor], torch.Tensor],
    images: Any,
    mode: str,
    *,
    batch_size: int | None = None,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """log of the softmax probabilities averaged over :func:`tta_views` (N, K); ``none``: logits.

    Args:
        predict: uint8 images (B, C, H, W) -> logits (B, K), e.g. a batched forward pass.
        images: the uint8 images to classify (N, C, H, W): a tensor, or anything that slices
            into uint8 tensors (``cnnlab.data.StoredImages``, a disk store's split).
        mode: ``none``, ``flip`` or ``crops``.
        batch_size: images per slice (default: all at once).
        size: centre-crop each slice to (H, W) before the views (images stored larger).

    Example:
        >>> net = lambda x: x.float().flatten(1)[:, :3]
        >>> tta_logits(net, torch.ones(1, 1, 4, 4), "flip").shape
        torch.Size([1, 3])
    """
    from cnnlab._validate import check_choice

    check_choice("tta", mode, TTA_MODES)
    step = max(1, len(images)) if batch_size is None else int(batch_size)
    out = []
    for start in range(0, len(images), step):
        x = images[start : start + step]  # (B, C, H, W) uint8, read now if stored on disk
        if size is not None:
            from cnnlab.data import center_crop

            x = center_crop(x, size).contiguous()
        if mode == "none":
            out.append(predict(x))
            continue
        probs = torch.stack([predict(v).float().softmax(1) for v in tta_views(x, mode)]).mean(0)
        out.append(probs.clamp_min(1e-12).log())  # (B, K)
    return torch.cat(out) if out else predict(images[:0])
