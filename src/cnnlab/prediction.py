"""``predict``: top-k classes for image files with a trained run or an exported ONNX model.

Images are decoded exactly like the training cache decodes an image folder
(:func:`cnnlab.data.decode_image`: converted to the model's channel count, transparent images on
white, EXIF orientation applied, shorter side resized to the input size and centre-cropped),
then normalized with the run's saved mean/std and scored in batches by the run layer's one
scoring path (:func:`cnnlab.run.score_images`), so a prediction sees what training saw.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from cnnlab._validate import check_int

ImageLike = str | os.PathLike | Image.Image


@dataclass(frozen=True)
class Prediction:
    """Top-k classes of one image.

    Attributes:
        source: the image file (or ``<image N>`` for an in-memory PIL image).
        classes: class names, most probable first.
        probs: their softmax probabilities.
        indices: their class indices.
    """

    source: str
    classes: list[str]
    probs: list[float]
    indices: list[int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"image": ..., "top_k": [{"class", "index", "prob"}, ...]}``."""
        top = [
            {"class": c, "index": i, "prob": round(p, 6)}
            for c, i, p in zip(self.classes, self.indices, self.probs)
        ]
        return {"image": self.source, "top_k": top}


def collect_images(items: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    """Expand files and folders (recursively, sorted) into image files; warn about the rest.

    Files whose extension is not an image type are skipped with one ``UserWarning`` that counts
    them and names the first few. A path that does not exist raises ``FileNotFoundError``.

    Example:
        >>> collect_images([])
        []
    """
    from cnnlab.data import IMAGE_EXTENSIONS

    if isinstance(items, (str, os.PathLike, Image.Image)):
        items = [items]
    found: list[ImageLike] = []
    skipped: list[str] = []
    for item in items:
        if isinstance(item, Image.Image):
            found.append(item)
            continue
        if isinstance(item, str) and item.lower().startswith(("http://", "https://", "ftp://")):
            raise ValueError(f"{item!r}: URLs are not supported, download it first")
        path = Path(item)
        if not path.exists():
            raise FileNotFoundError(f"image or folder {str(path)!r} does not exist")
        files = (sorted(p for p in path.rglob("*") if not p.is_dir()) if path.is_dir()
                 else [path])  # special files (FIFOs) are kept: the decoder says why not
        for f in files:
            (found if f.suffix.lower() in IMAGE_EXTENSIONS else skipped).append(f)
    if skipped:
        names = ", ".join(str(s) for s in skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        warnings.warn(f"skipped {len(skipped)} non-image file(s): {names}", stacklevel=2)
    return found


def load_images(
    items: Iterable[ImageLike], input_size: Sequence[int], resize_size: int | None = None
) -> tuple[torch.Tensor, list[str]]:
    """Decode images to uint8 ``(N, C, H, W)`` at ``input_size`` = [C, H, W].

    ``resize_size`` (a run trained from images stored larger, checkpoint metadata
    ``resize_size``) decodes at that square size first and centre-crops to (H, W), the way
    the run was evaluated.

    Files that cannot be decoded are skipped with one ``UserWarning``. Returns the images and
    their names.

    Example:
        >>> x, names = load_images([Image.new("RGB", (40, 30))], [1, 8, 8])
        >>> x.shape, names
        (torch.Size([1, 1, 8, 8]), ['<image 0>'])
    """
    out, names, failed = _decode_items(items, input_size, resize_size)
    if failed:
        warnings.warn(f"skipped {len(failed)} unreadable image(s): {_shown(failed)}", stacklevel=2)
    return out, names


def _shown(failed: list[str]) -> str:
    return "; ".join(failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")


def _decode_items(
    items: Iterable[ImageLike], input_size: Sequence[int], resize_size: int | None = None
) -> tuple[torch.Tensor, list[str], list[str]]:
    """Decoded images, their names, and ``name (why)`` for each file that failed."""
    from cnnlab.data import decode_image

    c, h, w = (int(v) for v in input_size)
    crop = (h, w)
    if resize_size is not None:
        h = w = int(resize_size)
    items = list(items)
    out = torch.empty((len(items), c, h, w), dtype=torch.uint8)
    keep, names, failed = [], [], []
    for i, item in enumerate(items):
        name = f"<image {i}>" if isinstance(item, Image.Image) else str(item)
        try:
            out[i] = decode_image(item, (c, h, w))
        except (ValueError, OSError) as exc:
            failed.append(f"{name} ({str(exc).split(chr(39) + ': ', 1)[-1]})")  # after the name
            continue
        keep.append(i)
        names.append(name)
    if resize_size is not None:
        from cnnlab.data import center_crop

        return center_crop(out[keep], crop).contiguous(), names, failed
    return out[keep], names, failed


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax; subtracting the row max first keeps exp() from overflowing.

    Example:
        >>> softmax(np.array([[0.0, 0.0]])).tolist()
        [[0.5, 0.5]]
    """
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict(
    model: str | os.PathLike | Any,
    images: ImageLike | Sequence[ImageLike],
    top_k: int = 5,
    backend: str = "auto",
    batch_size: int = 64,
    tta: str = "none",
) -> list[Prediction]:
    """Classify images with a run directory, a checkpoint, an ``.onnx`` file or a Predictor.

    Args:
        model: ``runs/NAME``, a ``.safetensors`` checkpoint, an exported ``.onnx`` file, or a
            :class:`cnnlab.export.Predictor` (reused across calls).
        images: image files, folders (searched recursively) and/or PIL images.
        top_k: how many classes to report per image (capped at the class count).
        backend: ``"auto"`` (ONNX Runtime when installed, else channels_last), ``"torch"``,
            ``"channels_last"`` or ``"onnx"``.
        batch_size: images per forward pass.
        tta: test-time augmentation, ``none``, ``flip`` or ``crops``: the probabilities are
            averaged over the views, as ``cnnlab evaluate --tta`` does (:mod:`cnnlab.tta`).

    Returns:
        One :class:`Prediction` per readable image, in input order.

    Raises:
        ValueError: no readable image, or bad arguments.

    Example:
        >>> results = predict("runs/digits", "my_digits/", top_k=3)  # doctest: +SKIP
        >>> results[0].classes, results[0].probs  # doctest: +SKIP
        (['7', '1', '9'], [0.97, 0.02, 0.01])
    """
    from cnnlab.export.backends import Predictor, load_predictor

    check_int("top_k", top_k, min_value=1)
    check_int("batch_size", batch_size, min_value=1)
    from cnnlab._validate import check_choice
    from cnnlab.tta import TTA_MODES

    check_choice("tta", tta, TTA_MODES)
    predictor = model if isinstance(model, Predictor) else load_predictor(model, backend)
    meta = predictor.meta
    files = collect_images(images)
    x, names, failed = _decode_items(files, meta["input_size"], meta.get("resize_size"))
    if not names:
        given = [str(i) for i in ([images] if isinstance(images, (str, os.PathLike)) else images)
                 if not isinstance(i, Image.Image)]
        why = (f": {_shown(failed)}" if failed else
               f" ({', '.join(given[:3]) or 'none'}: no file with an image extension)")
        raise ValueError(f"no readable image among {len(files)} input(s){why}")
    if failed:
        warnings.warn(f"skipped {len(failed)} unreadable image(s): {_shown(failed)}", stacklevel=2)
    from cnnlab.data import Normalizer
    from cnnlab.run import score_images

    norm = Normalizer(meta["normalization"]["mean"], meta["normalization"]["std"], "cpu")
    class_names = list(meta["class_names"])
    k = min(top_k, len(class_names))

    def forward(xb: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(predictor(xb.numpy())))

    from cnnlab.tta import tta_logits

    # with TTA: log of the views' mean probabilities, whose softmax is those probabilities
    logits = tta_logits(lambda v: score_images(forward, v, norm, batch_size), x, tta,
                        batch_size=batch_size).numpy().astype(np.float64)
    probs = softmax(logits)  # (N, K)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # ties: lower index first
    return [
        Prediction(
            source=names[row],
            classes=[class_names[i] for i in idx],
            probs=[float(probs[row, i]) for i in idx],
            indices=[int(i) for i in idx],
        )
        for row, idx in enumerate(order)
    ]
