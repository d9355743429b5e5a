"""Evaluate a trained run on a split: accuracy, top-5, per-class precision/recall/F1, confusion.

Definitions, with ``C[i, j]`` = number of images of true class i predicted as class j:

- accuracy = trace(C) / sum(C); top-5 accuracy = share of images whose true class is among the
  5 highest logits (reported when there are more than 5 classes);
- precision_k = C[k, k] / sum_i C[i, k] (of the images predicted k, how many are k);
- recall_k = C[k, k] / sum_j C[k, j] (of the images of class k, how many were found);
- F1_k = 2 precision_k recall_k / (precision_k + recall_k), their harmonic mean;
  a 0/0 is reported as 0, as scikit-learn's ``zero_division=0`` does.

Results go to ``runs/X/eval/<split>/``: ``metrics.json``, ``per_class.csv``, ``confusion.csv``,
``confusion.json`` and ``predictions.csv`` (see docs/run-directory.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cnnlab.checkpoint import atomic_write_text
from cnnlab.data import to_model_classes
from cnnlab.run import EVAL_SPLITS, Run, model_logits, write_eval

__all__ = ["EVAL_SPLITS", "EvalResult", "evaluate", "print_evaluation"]


@dataclass
class EvalResult:
    """What :func:`evaluate` measured.

    Attributes:
        metrics: the contents of ``metrics.json`` (accuracy, top5_accuracy, loss, macro F1 ...).
        per_class: one dict per class: ``class``, ``precision``, ``recall``, ``f1``, ``support``.
        confusion: (K, K) int64 tensor, rows = true class, columns = predicted class.
        class_names: the K class names.
        out_dir: where the files were written (None when ``save=False``).
    """

    metrics: dict[str, Any]
    per_class: list[dict[str, Any]]
    confusion: torch.Tensor
    class_names: list[str]
    out_dir: Path | None
    calibration: dict[str, Any] | None = None  # cnnlab.calibration.reliability: ECE and bins

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy in [0, 1]."""
        return float(self.metrics["accuracy"])


def evaluate(
    run_dir: str | os.PathLike,
    split: str = "test",
    data: Any = None,
    *,
    which: str = "best",
    device: str = "cpu",
    batch_size: int = 256,
    save: bool = True,
    tta: str = "none",
    logits: torch.Tensor | None = None,
) -> EvalResult:
    """Evaluate the run's ``best`` (else ``last``) checkpoint on ``split`` of its data.

    Args:
        run_dir: a run directory made by ``cnnlab train``.
        split: ``train``, ``val``, ``test`` or ``all`` (every split together).
        data: None for the run's own dataset (from its config.yaml); a source string such as
            ``"folder:PATH"`` or ``"cifar10"``; or a loaded ``cnnlab.data.DataBundle``.
        which: ``best`` or ``last`` checkpoint.
        device: where the model runs (``cpu``, ``cuda``, ``mps``).
        batch_size: images per forward pass.
        save: write the result files under ``run_dir/eval/<split>/``.
        tta: test-time augmentation, ``none``, ``flip`` or ``crops`` (:mod:`cnnlab.tta`).
        logits: the split's logits (N, K) in image order, already computed (a torchrun run
            gathers them from its processes; ``tta`` must then be ``none``); None runs the
            model here.

    Returns:
        An :class:`EvalResult`.

    Example:
        >>> import cnnlab
        >>> cnnlab.evaluate("runs/digits-simple_cnn").accuracy  # doctest: +SKIP
        0.9833
    """
    if split not in EVAL_SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, EVAL_SPLITS))}; got {split!r}")
    run = Run(run_dir) if Path(run_dir).is_dir() else None
    if run is None:  # a clear error naming the folder
        raise FileNotFoundError(
            f"run directory {str(run_dir)!r} does not exist; pass a folder made by 'cnnlab train'"
        )
    checkpoint = run.checkpoint(which)
    model, meta = run.load_model(which, device=device)
    class_names = [str(c) for c in meta.get("class_names") or []]
    bundle = data if data is not None and not isinstance(data, (str, os.PathLike)) else (
        run.load_data(data))
    images, labels = _split_tensors(bundle, split)
    labels = to_model_classes(labels, list(bundle.class_names), class_names)
    crop = getattr(bundle, "crop_size", None)  # stored larger: evaluated on centre crops
    _check_shape([images.shape[1], *crop] if crop else list(images.shape[1:]), meta, checkpoint)

    norm = meta["normalization"]
    from cnnlab.calibration import reliability
    from cnnlab.tta import tta_logits

    if logits is None:
        logits = tta_logits(  # batch by batch (a disk store is read as it goes), centre crops
            lambda x: model_logits(model, x, norm["mean"], norm["std"], batch_size),
            images, tta, batch_size=batch_size, size=tuple(crop) if crop else None,
        )  # (N, K); with TTA: log of the views' mean probabilities
    elif tta != "none":
        raise ValueError(f"tta={tta!r} needs the model to run here; pass logits=None")
    elif len(logits) != len(labels):
        raise ValueError(f"logits has {len(logits)} rows for {len(labels)} {split} images")
    result = _metrics(logits, labels, class_names)
    calibration = reliability(logits.softmax(1), labels)
    result.metrics.update(
        split=split, checkpoint=str(checkpoint), epoch=meta.get("epoch"),
        data=getattr(bundle, "name", str(data)), tta=tta, ece=calibration["ece"],
        balanced_accuracy=_balanced_accuracy(logits, labels),
        weights=meta.get("weights", "raw"),
    )
    result.calibration = calibration
    if save:
        result.out_dir = _save(run.eval_dir(split), result, logits, labels)
        atomic_write_text(result.out_dir / "calibration.json", json.dumps(calibration, indent=1))
    return result


def _split_tensors(bundle: Any, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split == "all":
        parts = list(bundle.splits().values())
        if any(getattr(p.images, "is_stored", False) for p in parts):  # one view, nothing read
            from cnnlab.data import StoredImages

            labels = torch.cat([p.labels for p in parts])
            return StoredImages.concat([p.images for p in parts]), labels
        return torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts])
    s = bundle.split(split)
    if len(s) == 0:
        raise ValueError(f"split {split!r} of {getattr(bundle, 'name', 'the data')!r} is empty")
    return s.images, s.labels


def _check_shape(got: list[int], meta: dict[str, Any], checkpoint: Path) -> None:
    expected = list(meta.get("input_size") or [])
    if expected and got != expected:
        raise ValueError(
            f"the data's images are {got} (C, H, W) but {str(checkpoint)!r} was trained on "
            f"{expected}; load the data with the run's image size and channels"
        )


def _metrics(logits: torch.Tensor, y: torch.Tensor, class_names: list[str]) -> EvalResult:
    k = logits.shape[1]
    pred = logits.argmax(1)  # (N,)
    conf = torch.bincount(y * k + pred, minlength=k * k).view(k, k)  # rows true, cols predicted
    tp = conf.diag().double()
    predicted, actual = conf.sum(0).double(), conf.sum(1).double()
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp_min(1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-12),
                     torch.zeros_like(tp))
    n = len(y)
    metrics: dict[str, Any] = {
        "num_images": n,
        "num_classes": k,
        "accuracy": tp.sum().item() / max(1, n),
        "top5_accuracy": None,
        "loss": F.cross_entropy(logits, y).item() if n else float("nan"),
        "macro_precision": precision.mean().item(),
        "macro_recall": recall.mean().item(),
        "macro_f1": f1.mean().item(),
        "weighted_f1": (f1 * actual).sum().item() / max(1, n),
    }
    if k > 5:
        top5 = logits.topk(5, dim=1).indices  # (N, 5)
        metrics["top5_accuracy"] = (top5 == y[:, None]).any(1).double().mean().item()
    names = class_names if len(class_names) == k else [str(i) for i in range(k)]
    per_class = [
        {"class": names[i], "precision": precision[i].item(), "recall": recall[i].item(),
         "f1": f1[i].item(), "support": int(actual[i].item())}
        for i in range(k)
    ]
    return EvalResult(metrics, per_class, conf, names, None)


def _balanced_accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """scikit-learn's mean recall over the classes present in ``y``."""
    from sklearn.metrics import balanced_accuracy_score

    if len(y) == 0:
        return float("nan")
    return float(balanced_accuracy_score(y.numpy(), logits.argmax(1).numpy()))


def _save(out: Path, result: EvalResult, logits: torch.Tensor, y: torch.Tensor) -> Path:
    confidence, pred = logits.softmax(1).max(1)
    return write_eval(
        out, result.metrics, result.per_class, result.class_names, result.confusion.tolist(),
        list(zip(y.tolist(), pred.tolist(), confidence.tolist())),
    )


def print_evaluation(result: EvalResult, console: Any = None) -> None:
    """Print an evaluation as rich tables: headline metrics, per-class table, confusion matrix.

    Example:
        >>> print_evaluation(evaluate("runs/digits-simple_cnn"))  # doctest: +SKIP
    """
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    m = result.metrics
    head = Table(title=f"{m.get('split', '')} split: {m['num_images']} images", show_header=False)
    head.add_row("accuracy", f"{m['accuracy']:.4f}")
    if m.get("top5_accuracy") is not None:
        head.add_row("top-5 accuracy", f"{m['top5_accuracy']:.4f}")
    head.add_row("loss", f"{m['loss']:.4f}")
    head.add_row("macro F1", f"{m['macro_f1']:.4f}")
    if m.get("ece") is not None:
        head.add_row("ECE (15 bins)", f"{m['ece']:.4f}")
    if m.get("tta", "none") != "none":
        head.add_row("test-time augmentation", str(m["tta"]))
    if m.get("weights") == "ema":
        head.add_row("weights", "EMA (ema.safetensors)")
    console.print(head)
    per = Table(title="per class")
    for col in ("class", "precision", "recall", "F1", "support"):
        per.add_column(col, justify="left" if col == "class" else "right")
    for r in result.per_class:
        per.add_row(r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}",
                    f"{r['f1']:.3f}", str(r["support"]))
    console.print(per)
    if len(result.class_names) <= 20:
        conf = Table(title="confusion matrix (rows: true, columns: predicted)")
        conf.add_column("")
        for name in result.class_names:
            conf.add_column(name[:8], justify="right")
        for name, row in zip(result.class_names, result.confusion.tolist()):
            conf.add_row(name[:12], *[str(v) if v else "." for v in row])
        console.print(conf)
    else:
        console.print(f"confusion matrix: {len(result.class_names)} classes, see confusion.csv")
    if result.out_dir is not None:
        console.print(f"saved to {result.out_dir}")
