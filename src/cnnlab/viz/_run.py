"""Read what a run directory holds (see docs/run-directory.md) for figures and the report."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

EVAL_ORDER = ("test", "val", "train", "all")
MAX_SCORED_IMAGES = 2000  # images scored for grids when no saved predictions can be used


def run_path(run_dir: str | os.PathLike) -> Path:
    """``run_dir`` as a Path, or a clear error when it is not a directory."""
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(
            f"run directory {str(path)!r} does not exist; pass a folder made by 'cnnlab train' "
            "(e.g. runs/digits-simple_cnn)"
        )
    return path


def read_json(path: Path) -> Any | None:
    """The JSON document at ``path``, or None when the file is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_config(run_dir: Path) -> dict[str, Any]:
    """``config.yaml`` as a dict ({} when absent or not a mapping)."""
    import yaml

    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def read_csv(path: Path) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of a CSV file, or None when it is missing or empty."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError:
        return None
    return (rows[0], rows[1:]) if rows else None


def eval_dir(run_dir: Path, split: str | None = None) -> Path | None:
    """``eval/<split>/`` written by ``cnnlab evaluate`` (default: test, else val, ...), or None."""
    names = (
        [split] if split else [*EVAL_ORDER, *sorted(p.name for p in (run_dir / "eval").glob("*"))]
    )
    for name in names:
        folder = run_dir / "eval" / name
        if (folder / "metrics.json").is_file():
            return folder
    return None


def read_confusion(folder: Path) -> tuple[list[str], list[list[int]]] | None:
    """Class names and matrix from ``confusion.json`` (else ``confusion.csv``), or None."""
    doc = read_json(folder / "confusion.json")
    if isinstance(doc, dict) and isinstance(doc.get("matrix"), list):
        return [str(c) for c in doc.get("class_names", [])], doc["matrix"]
    table = read_csv(folder / "confusion.csv")
    if table:
        header, rows = table
        try:
            return header[1:], [[int(v) for v in r[1:]] for r in rows]
        except ValueError:
            return None
    return None


def load_run_data(run_dir: Path, meta: dict[str, Any]):
    """The run's dataset (a ``cnnlab.data.DataBundle``) as its ``config.yaml`` describes it.

    Image size and channels come from the checkpoint, so the images fit the model.
    """
    from cnnlab.data import load_data

    cfg = read_config(run_dir)
    data_json = read_json(run_dir / "data.json") or {}
    source = cfg.get("dataset") or data_json.get("source")
    if not source:
        raise ValueError(f"{str(run_dir)!r} names no dataset (config.yaml has no 'dataset')")
    kwargs: dict[str, Any] = {k: cfg[k] for k in ("val_split", "test_split", "seed") if k in cfg}
    for key in ("data_dir", "cache_dir"):
        if cfg.get(key) is not None:
            kwargs[key] = cfg[key]
    size = list(meta.get("input_size") or [])
    if len(size) == 3:
        kwargs["channels"], kwargs["image_size"] = size[0], size[1]
    return load_data(source, **kwargs)


def normalize(images: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
    """uint8 (N, C, H, W) images -> float model input, with the checkpoint's mean/std."""
    from cnnlab.data import to_float, to_float_normalized

    norm = meta.get("normalization") or {}
    if norm.get("mean") and norm.get("std"):
        return to_float_normalized(images, norm["mean"], norm["std"])
    return to_float(images)


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, images: torch.Tensor, meta: dict[str, Any], batch_size: int = 256
) -> torch.Tensor:
    """Logits (N, K) of uint8 images, in batches, on the model's device."""
    device = next(model.parameters()).device
    model.eval()
    outs = [
        model(normalize(images[i : i + batch_size], meta).to(device)).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(outs)


def load_image_file(path: str | os.PathLike, meta: dict[str, Any]) -> torch.Tensor:
    """Read an image file as a uint8 (C, H, W) tensor with the model's channels and size."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    c, h, w = (list(meta.get("input_size") or []) + [3, 224, 224])[:3]
    try:
        with Image.open(path) as im:
            im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read image {str(path)!r}: {exc}") from None
    t = torch.from_numpy(arr.copy())
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def _num(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


class MissingPart(ValueError):
    """A part of a run (model, data, evaluation) could not be loaded; the message says why."""


class RunView:
    """What figures and the report need from one run; model, data, scores are loaded lazily, once.

    Anything that fails to load raises :class:`MissingPart` naming the cause (every time it is asked
    for), so each caller can turn it into a note.
    """

    def __init__(self, run_dir: Path, split: str | None):
        self.dir = run_dir
        self.split_arg = split
        self.config = read_config(run_dir)
        self.data_json = read_json(run_dir / "data.json") or {}
        self.eval_dir = eval_dir(run_dir, split)
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
        from cnnlab.checkpoint import load_model

        return self._once("model", lambda: load_model(self.dir))

    def bundle(self):
        return self._once("bundle", lambda: load_run_data(self.dir, self.model()[1]))

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
            return images, labels, predict_logits(model, images, meta)

        return self._once("scored", make)

    def evaluation(self) -> tuple[dict[str, Any], list[list[Any]], list[str], Any, str]:
        """(metrics, per-class rows, class names, confusion, where it came from)."""

        def make():
            if self.eval_dir is not None:
                metrics = read_json(self.eval_dir / "metrics.json") or {}
                per_class = read_csv(self.eval_dir / "per_class.csv")
                # the class name stays text; the numbers become numbers
                rows = [[r[0], *map(_num, r[1:])] for r in per_class[1]] if per_class else []
                conf = read_confusion(self.eval_dir)
                names, cm = conf if conf else ([], None)
                return metrics, rows, names, cm, f"from {self.eval_dir.relative_to(self.dir)}/"
            from cnnlab.train import evaluate

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
