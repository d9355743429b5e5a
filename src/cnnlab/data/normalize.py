"""uint8 -> float conversion and per-channel normalization, fused into one multiply-add."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _scale_bias(
    mean: Sequence[float], std: Sequence[float], from_uint8: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    # (x / 255 - mean) / std  ==  x * (1 / (255 std)) + (-mean / std): one fused multiply-add.
    if len(mean) != len(std) or any(s <= 0 for s in std):
        raise ValueError(
            f"mean and std must have one value per channel and std > 0, got mean={tuple(mean)}, "
            f"std={tuple(std)}"
        )
    m = torch.tensor(list(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    scale = 1.0 / (s * 255.0) if from_uint8 else 1.0 / s
    return scale, -m / s


def _check_channels(x: torch.Tensor, n: int) -> None:
    if x.ndim != 4 or x.shape[1] != n:
        raise ValueError(
            f"images must have shape (B, {n}, H, W) to match the {n}-channel mean/std, got "
            f"{tuple(x.shape)}"
        )


def to_float(x: torch.Tensor, *, channels_last: bool = False) -> torch.Tensor:
    """Convert uint8 images to float32 in [0, 1] (the input ``Augment`` expects).

    Example:
        >>> to_float(torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2)).tolist()
        [[[[0.0, 1.0]]]]
    """
    y = x.to(torch.float32).mul_(1.0 / 255.0) if x.dtype == torch.uint8 else x.float()
    return y.contiguous(memory_format=torch.channels_last) if channels_last else y


def to_float_normalized(
    x: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    channels_last: bool = False,
) -> torch.Tensor:
    """Turn uint8 images (B, C, H, W) into normalized float32: ``(x / 255 - mean) / std``.

    Float input is taken to be in [0, 1] already. ``channels_last`` returns NHWC memory layout,
    which is faster for convolutions on CPU and on recent GPUs.

    Example:
        >>> x = torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)
        >>> round(to_float_normalized(x, (0.5,), (0.5,))[0, 0, 0, 0].item(), 4)
        1.0
    """
    _check_channels(x, len(mean))
    scale, bias = _scale_bias(mean, std, x.dtype == torch.uint8, x.device)
    # Two in-place passes over a fresh contiguous float copy measured fastest on CPU (a fused
    # addcmul with broadcast (1, C, 1, 1) operands was ~2.5x slower); NHWC conversion comes last.
    y = x.to(torch.float32).mul_(scale) if x.dtype == torch.uint8 else x.float().mul(scale)
    y.add_(bias)  # (B, C, H, W) float32
    return y.contiguous(memory_format=torch.channels_last) if channels_last else y


class Normalizer:
    """uint8 batch -> augmented (optional) -> ``(x / 255 - mean) / std`` on ``device``.

    Augmentation that only moves pixels (crop, flip, cutout) runs on the uint8 batch (4x less
    memory traffic); the rest runs on [0, 1] floats. Normalization is cnnlab.data's fused
    multiply-add, optionally writing NHWC (channels_last) memory. With ``size`` (images stored
    larger than the model sees), a batch not already cropped by the augmentation is
    centre-cropped to it: evaluation's resize + centre crop, batched.

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
        size: tuple[int, int] | None = None,
    ) -> None:
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.device = torch.device(device)
        self.channels_last = channels_last

    def __call__(
        self,
        x: torch.Tensor,
        augment: torch.nn.Module | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)  # (B, C, H, W) uint8
        if augment is not None:
            if getattr(augment, "uint8_ok", False):
                x = augment(x, generator)  # uint8 in, uint8 out
            else:
                x = augment(to_float(x), generator)  # [0, 1] floats
        if self.size is not None:
            from cnnlab.data.augment import center_crop

            x = center_crop(x, self.size)  # (B, C, *size); a no-op after a sized augment
        return to_float_normalized(x, self.mean, self.std, channels_last=self.channels_last)
