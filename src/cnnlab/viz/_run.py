"""Read what a run directory holds (see docs/run-directory.md) for figures and the report."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import torch

EVAL_ORDER = ("test", "val", "train", "all")


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
