"""Tensor-level image conversions used while building the cache: resize and channel count."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_CHUNK = 2048  # images resized per call, bounds the float32 temporaries


def resize_uint8(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize uint8 images (N, C, H, W) to ``size`` with bilinear interpolation + antialiasing.

    Example:
        >>> resize_uint8(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), (32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """
    if tuple(images.shape[2:]) == tuple(size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], *size), dtype=torch.uint8)
    for start in range(0, len(images), _CHUNK):
        x = images[start : start + _CHUNK].float()
        y = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        out[start : start + _CHUNK] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert uint8 images between 1 (grayscale) and 3 (RGB) channels.

    RGB -> gray uses ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B (what PIL's ``convert("L")``
    computes); gray -> RGB repeats the channel.

    Example:
        >>> convert_channels(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), 3).shape
        torch.Size([2, 3, 4, 4])
    """
    c = images.shape[1]
    if c == channels:
        return images
    if c == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        out = torch.empty((images.shape[0], 1, *images.shape[2:]), dtype=torch.uint8)
        for start in range(0, len(images), _CHUNK):
            y = (images[start : start + _CHUNK].float() * w).sum(1, keepdim=True)
            out[start : start + _CHUNK] = y.round_().clamp_(0, 255).to(torch.uint8)
        return out
    raise ValueError(f"channels must be 1 or 3, got {channels} (images have {c} channels)")


def convert(
    images: torch.Tensor, size: tuple[int, int] | None, channels: int | None
) -> torch.Tensor:
    """Convert channels (when ``channels`` is given), then resize (when ``size`` is given).

    Example:
        >>> convert(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), (4, 4), 1).shape
        torch.Size([1, 1, 4, 4])
    """
    if channels is not None:
        images = convert_channels(images, channels)
    if size is not None:
        images = resize_uint8(images, size)
    return images.contiguous()
