"""What figures and the report need from a run directory, read through :class:`cnnlab.run.Run`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cnnlab.run import Run, model_logits, read_json, read_per_class
from cnnlab.run import read_confusion as _read_confusion

MAX_SCORED_IMAGES = 2000  # images scored for grids when no saved predictions can be used

__all__ = ["MissingPart", "RunView", "load_image_file", "normalize", "read_json", "run_path"]


def run_path(run_dir: str | os.PathLike) -> Path:
    """``run_dir`` as a Path, or a clear error when it is not a directory."""
    return Run(run_dir).path


def normalize(images: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
    """uint8 (N, C, H, W) images -> float model input, with the checkpoint's mean/std."""
    from cnnlab.data import to_float, to_float_normalized

    norm = meta.get("normalization") or {}
    if norm.get("mean") and norm.get("std"):
        return to_float_normalized(images, norm["mean"], norm["std"])
    return to_float(images)


def load_image_file(path: str | os.PathLike, meta: dict[str, Any]) -> torch.Tensor:
    """An image file as the model's uint8 (C, H, W) input, decoded exactly as ``predict`` does.

    EXIF orientation, transparency on white, shorter side resized and centre-cropped
    (:func:`cnnlab.data.decode_image`), so a Grad-CAM explains the picture predict classified.
    """
    from cnnlab.data import decode_image

    return decode_image(path, meta.get("input_size") or [3, 224, 224])


class MissingPart(ValueError):
    """A part of a run (model, data, evaluation) could not be loaded; the message says why."""


class RunView:
    """What figures and the report need from one run; model, data, scores are loaded lazily, once.

    Anything that fails to load raises :class:`MissingPart` naming the cause (every time it is asked
    for), so each caller can turn it into a note.
    """

    def __init__(self, run_dir: Path, split: str | None):
        self.run = Run(run_dir)
        self.dir = self.run.path
        self.split_arg = split
        try:
            self.config = self.run.config
        except ValueError:  # a broken config.yaml: the report says it is missing
            self.config = {}
        self.data_json = self.run.data_info
        self.eval_dir = self.run.find_eval(split)
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            try:
                self._cache[key] = (make(), None)
            except Exception as exc:
                self._cache[key] = (None, f"{type(exc).__name__}: {exc}")
        value, error = self._cache[key]
        if error:
            raise MissingPart(error)
        return value

    def model(self):
        return self._once("model", lambda: self.run.load_model())

    def bundle(self):
        return self._once("bundle", lambda: self.run.load_data())

    def split(self) -> str:
        if self.eval_dir is not None:
            return self.eval_dir.name
        if self.split_arg:
            return self.split_arg
        return "test" if self.bundle().test is not None and len(self.bundle().test) else "val"

    def scored(self):
        """(images uint8, labels, logits) of up to MAX_SCORED_IMAGES images of the split."""

        def make():
            model, meta = self.model()
            s = self.bundle().split(self.split())
            images, labels = s.images[:MAX_SCORED_IMAGES], s.labels[:MAX_SCORED_IMAGES]
            norm = meta.get("normalization") or {}
            return images, labels, model_logits(model, images, norm["mean"], norm["std"])

        return self._once("scored", make)

    def evaluation(self) -> tuple[dict[str, Any], list[list[Any]], list[str], Any, str]:
        """(metrics, per-class rows, class names, confusion, where it came from)."""

        def make():
            if self.eval_dir is not None:
                metrics = read_json(self.eval_dir / "metrics.json") or {}
                conf = _read_confusion(self.eval_dir)
                names, cm = conf if conf else ([], None)
                return (metrics, read_per_class(self.eval_dir), names, cm,
                        f"from {self.eval_dir.relative_to(self.dir)}/")
            from cnnlab.evaluation import evaluate

            res = evaluate(self.dir, self.split(), data=self.bundle(), save=False)
            rows = [
                [r["class"], r["precision"], r["recall"], r["f1"], r["support"]]
                for r in res.per_class
            ]
            return (
                res.metrics,
                rows,
                res.class_names,
                res.confusion.tolist(),
                f"computed now on the {self.split()} split (no saved evaluation; run "
                f"'cnnlab evaluate {self.dir}' to keep one)",
            )

        return self._once("evaluation", make)
