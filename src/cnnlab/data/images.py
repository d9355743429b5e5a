"""Decode one image file the way training decoded its image folder: the public decoder.

``predict``, ``evaluate``, ``viz`` and the image-folder source all go through the same code
(:func:`decode_image` here, the batched folder decoder in training): the image is converted to
the model's channel count (transparency composited onto white), EXIF orientation applied, the
shorter side resized to the input size and the rest centre-cropped (aspect ratio kept). So a
Grad-CAM explains the very picture that ``predict`` classified.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from cnnlab.data._decode import IMAGE_EXTENSIONS, decode_all, decode_one

__all__ = ["IMAGE_EXTENSIONS", "decode_image", "decode_images"]

ImageSource = str | os.PathLike | Image.Image | bytes


def decode_image(image: ImageSource, input_size: Sequence[int]) -> torch.Tensor:
    """Decode an image file (or an in-memory PIL image) to a uint8 ``(C, H, W)`` tensor.

    Args:
        image: a file path, a PIL image (encoded losslessly, then decoded by the same code), or
            the bytes of an image file (an upload).
        input_size: ``[C, H, W]``, the model's input (a run's ``input_size``).

    Returns:
        The uint8 image, resized on its shorter side and centre-cropped to ``H x W``.

    Raises:
        FileNotFoundError: ``image`` is a path that does not exist.
        ValueError: the file cannot be decoded as an image, or ``input_size`` is not [C, H, W].

    Example:
        >>> decode_image(Image.new("RGB", (40, 30), (255, 0, 0)), [1, 8, 8]).shape
        torch.Size([1, 8, 8])
    """
    size = [int(v) for v in input_size]
    if len(size) != 3 or size[0] not in (1, 3) or min(size) < 1:
        raise ValueError(f"input_size must be [C, H, W] with C 1 or 3, got {list(input_size)}")
    from cnnlab.integrity import MAX_INPUT_SIDE

    if max(size[1:]) > MAX_INPUT_SIDE:
        raise ValueError(f"input_size {size} is larger than {MAX_INPUT_SIDE} on a side")
    c, h, w = size
    out = torch.empty((c, h, w), dtype=torch.uint8)
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, format="PNG")  # lossless
        buf.seek(0)
        error = decode_one(buf, (h, w), c, out)
        name = "<PIL image>"
    elif isinstance(image, bytes):
        error = decode_one(io.BytesIO(image), (h, w), c, out)
        name = "<bytes>"
    else:
        path = Path(image)
        if not path.exists():
            raise FileNotFoundError(f"image file {str(path)!r} does not exist")
        error = decode_one(path, (h, w), c, out)
        name = str(path)
    if error is not None:
        raise ValueError(f"cannot read image {name!r}: {error}")
    return out


def decode_images(
    paths: Sequence[str | os.PathLike], input_size: Sequence[int]
) -> tuple[torch.Tensor, list[str | None]]:
    """Decode many image files into one uint8 tensor (N, C, H, W), as image folders are cached.

    The image-folder source's own batched decoder: worker processes, and libjpeg-turbo
    (torchvision.io) for JPEGs already of the target size (CIFAR's), PIL for everything else.

    Args:
        paths: image files.
        input_size: ``[C, H, W]`` of the output.

    Returns:
        The images, and per file its error message or None (failed rows are left zero).

    Example:
        >>> x, errors = decode_images([], [3, 8, 8])
        >>> x.shape, errors
        (torch.Size([0, 3, 8, 8]), [])
    """
    c, h, w = (int(v) for v in input_size)
    return decode_all([Path(p) for p in paths], (h, w), c, fast_jpeg=True)
