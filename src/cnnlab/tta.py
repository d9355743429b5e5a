"""Test-time augmentation (``cnnlab evaluate --tta flip|crops``): average over views of a batch.

- ``flip``: the image and its left-right mirror (2 views);
- ``crops``: the image padded by size/8 pixels with zeros (as training's random crop pads) and
  cropped back at its centre and its four corners (5 views: shifts of 0 and +-size/8).

The model's softmax probabilities are averaged over the views (as torchvision's ``FiveCrop``
recipe and timm's TTA do), and their logarithm is returned in place of logits, so that argmax,
cross-entropy (``log_softmax(log p) = log p``) and calibration read it as they read logits.
"""

from __future__ import annotations

from collections.abc import Callable

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
    predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, mode: str
) -> torch.Tensor:
    """log of the softmax probabilities averaged over :func:`tta_views` (N, K); ``none``: logits.

    Args:
        predict: images (N, C, H, W) -> logits (N, K), e.g. a batched forward pass.
        images: the images to classify.
        mode: ``none``, ``flip`` or ``crops``.

    Example:
        >>> net = lambda x: x.float().flatten(1)[:, :3]
        >>> tta_logits(net, torch.ones(1, 1, 4, 4), "flip").shape
        torch.Size([1, 3])
    """
    views = tta_views(images, mode)
    if mode == "none":
        return predict(images)
    probs = torch.stack([predict(v).float().softmax(1) for v in views]).mean(0)  # (N, K)
    return probs.clamp_min(1e-12).log()
