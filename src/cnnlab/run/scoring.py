"""One batched scoring path: uint8 images -> logits, used by validation, evaluate, predict, viz.

The whole split stays a uint8 tensor; each batch is prepared (moved, converted to float and
normalized with the run's mean/std, see :class:`cnnlab.data.Normalizer`), run through the model
in eval mode and its logits collected on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from cnnlab.data.normalize import Normalizer


@torch.no_grad()
def score_images(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 256,
    autocast: Callable[[], object] | None = None,
) -> torch.Tensor:
    """Logits (N, K) on the CPU for uint8 ``images`` (N, C, H, W), in batches of ``batch_size``.

    Args:
        model: an ``nn.Module`` (put in eval mode for the pass, then restored) or any callable
            from a prepared batch to logits (an exported model behind a tensor wrapper).
        images: uint8 images.
        prepare: uint8 batch -> model input, e.g. a :class:`cnnlab.data.Normalizer`.
        batch_size: images per forward pass.
        autocast: optional zero-argument callable returning an autocast context.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> score_images(net, torch.zeros(5, 1, 2, 2, dtype=torch.uint8),
        ...              Normalizer([0.5], [0.5], "cpu"), batch_size=2).shape
        torch.Size([5, 3])
    """
    was_training = model.training if isinstance(model, nn.Module) else None
    if was_training is not None:
        model.eval()
    outs = []
    try:
        for start in range(0, len(images), batch_size):
            x = prepare(images[start : start + batch_size])
            if autocast is not None:
                with autocast():
                    out = model(x)
            else:
                out = model(x)
            outs.append(out.float().cpu())
    finally:
        if was_training is not None:
            model.train(was_training)
    if not outs:
        return torch.zeros(0, 0)
    return torch.cat(outs)


def model_logits(
    model: nn.Module,
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 256,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """:func:`score_images` on the model's own device with the run's mean/std.

    ``size``: centre-crop each batch to (H, W) (a run trained from images stored larger).

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> model_logits(net, torch.zeros(2, 1, 2, 2, dtype=torch.uint8), [0.5], [0.5]).shape
        torch.Size([2, 3])
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    return score_images(model, images, Normalizer(mean, std, device, size=size), batch_size)
