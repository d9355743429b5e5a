"""The metric that picks the best checkpoint and drives early stopping (``--monitor``).

Validation metrics of an epoch, from one pass of logits over the validation split:

- ``val_loss``: mean cross-entropy (lower is better);
- ``val_acc``: accuracy;
- ``val_macro_f1``: scikit-learn's ``f1_score(average="macro")``, the unweighted mean of the
  per-class F1 scores (a class that is never predicted counts as 0);
- ``val_balanced_acc``: scikit-learn's ``balanced_accuracy_score``, the mean of the per-class
  recalls, which equals accuracy on balanced data and does not reward ignoring small classes.

An epoch improves on the best when its monitored value is better by more than ``min_delta``
(Keras' and Lightning's ``min_delta``); with ``val_acc`` a tie within ``min_delta`` goes to the
lower validation loss (the rule cnnlab always had).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.train._batches import Normalizer, predict_logits

LOWER_IS_BETTER = ("val_loss",)


def split_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Loss, accuracy, macro F1 and balanced accuracy of logits (N, K) against labels (N,).

    Example:
        >>> m = split_metrics(torch.tensor([[2.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 1]))
        >>> m["val_acc"], m["val_balanced_acc"]
        (0.5, 0.5)
    """
    from sklearn.metrics import balanced_accuracy_score, f1_score

    nan = math.nan
    if len(labels) == 0:
        return {"val_loss": nan, "val_acc": nan, "val_macro_f1": nan, "val_balanced_acc": nan}
    y = labels.cpu()
    pred = logits.argmax(1)
    yn, pn = y.numpy(), pred.numpy()
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": expected early
        warnings.simplefilter("ignore", UserWarning)
        f1 = float(f1_score(yn, pn, average="macro", zero_division=0))
        balanced = float(balanced_accuracy_score(yn, pn))
    return {
        "val_loss": F.cross_entropy(logits, y).item(),
        "val_acc": (pred == y).double().mean().item(),
        "val_macro_f1": f1,
        "val_balanced_acc": balanced,
    }


def score_split(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalizer: Normalizer,
    autocast: Callable[[], Any] | None = None,
    batch_size: int = 256,
) -> dict[str, float]:
    """:func:`split_metrics` of ``model`` on a uint8 split (NaN everywhere for an empty split)."""
    if len(labels) == 0:
        return split_metrics(torch.zeros(0, 0), labels)
    return split_metrics(predict_logits(model, images, normalizer, batch_size, autocast), labels)


def is_better(
    row: dict[str, Any], best: dict[str, Any], monitor: str = "val_acc", min_delta: float = 0.0
) -> bool:
    """Whether ``row``'s metrics beat ``best`` (a dict of the same keys, or empty).

    Without a validation split (NaN metrics) every epoch is the newest best.

    Example:
        >>> is_better({"val_acc": 0.9, "val_loss": 0.3}, {"val_acc": 0.8, "val_loss": 0.2})
        True
        >>> is_better({"val_loss": 0.30}, {"val_loss": 0.31}, "val_loss", min_delta=0.05)
        False
    """
    value = row[monitor]
    if math.isnan(value):
        return True
    old = best.get(monitor)
    if old is None or (isinstance(old, float) and math.isnan(old)):
        return True
    if monitor in LOWER_IS_BETTER:
        return value < old - min_delta
    if value > old + min_delta:
        return True
    if monitor == "val_acc" and min_delta == 0.0 and value == old:
        return row["val_loss"] < best.get("val_loss", math.inf)
    return False


def worst(monitor: str) -> float:
    """The value every real epoch beats: +inf for a loss, -inf otherwise."""
    return math.inf if monitor in LOWER_IS_BETTER else -math.inf


def monitored(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The validation metrics of ``row`` (those named ``prefix + val_*``), without the prefix.

    Example:
        >>> monitored({"ema_val_acc": 0.5, "val_acc": 0.4}, "ema_")
        {'val_acc': 0.5}
    """
    return {k[len(prefix):]: v for k, v in row.items()
            if k.startswith(prefix + "val_")}


def best_choice(raw: dict[str, Any], ema: dict[str, Any], monitor: str) -> dict[str, Any]:
    """``best.json``'s document: which of the raw and the EMA best checkpoints is better.

    The EMA wins only when it strictly beats the raw best on ``monitor``.

    Example:
        >>> best_choice({"epoch": 3, "val_acc": 0.8}, {"epoch": 4, "val_acc": 0.9}, "val_acc")
        ... # doctest: +NORMALIZE_WHITESPACE
        {'checkpoint': 'ema.safetensors', 'weights': 'ema', 'monitor': 'val_acc',
         'raw': {'epoch': 3, 'value': 0.8}, 'ema': {'epoch': 4, 'value': 0.9}}
    """
    doc_raw = {"epoch": raw.get("epoch"), "value": raw.get(monitor)}
    doc_ema = {"epoch": ema.get("epoch"), "value": ema.get(monitor)}
    use_ema = doc_ema["epoch"] is not None and (
        doc_raw["epoch"] is None or is_better(
            {**ema, "val_loss": ema.get("val_loss", math.inf)},
            {**raw, "val_loss": raw.get("val_loss", math.inf)}, monitor)
    )
    return {
        "checkpoint": "ema.safetensors" if use_ema else "best.safetensors",
        "weights": "ema" if use_ema else "raw",
        "monitor": monitor,
        "raw": doc_raw,
        "ema": doc_ema,
    }
