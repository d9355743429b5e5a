"""Calibration: expected calibration error (ECE) and the reliability diagram's bins.

A classifier is calibrated when, of the images it predicts with confidence ~p (its top softmax
probability), a share ~p is right. With the confidences cut into ``n_bins`` equal-width bins
(bin b holds the images whose confidence falls in ``((b-1)/n, b/n]``, the first bin including 0),
``acc_b`` the accuracy and ``conf_b`` the mean confidence of bin b's ``n_b`` images (N in all):

    ECE = sum_b (n_b / N) * |acc_b - conf_b|

(Naeini et al. 2015; Guo et al. 2017, who use 15 bins; torchmetrics' ``MulticlassCalibrationError``
with ``norm="l1"`` computes the same number). The per-bin accuracy and confidence come from
scikit-learn's ``calibration_curve`` on (correct, confidence) with ``strategy="uniform"``; the
bin counts, which it does not return, are taken with the same binning rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def reliability(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict[str, Any]:
    """ECE and reliability-diagram bins of class probabilities (N, K) against labels (N,).

    Returns ``{"ece", "n_bins", "num_images", "bins": [{"lo", "hi", "count", "accuracy",
    "confidence"}, ...]}`` with every bin listed (empty ones with count 0 and None values).

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
        >>> round(reliability(p, torch.tensor([0, 1, 0, 0]), n_bins=10)["ece"], 4)
        0.4
    """
    from sklearn.calibration import calibration_curve

    from cnnlab._validate import check_int

    check_int("n_bins", n_bins, min_value=1)
    confidence, pred = probs.max(1)
    conf = confidence.double().clamp(0, 1).numpy()
    correct = (pred == labels.cpu()).numpy().astype(np.int64)
    n = len(conf)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    if n == 0:
        return {"ece": float("nan"), "n_bins": n_bins, "num_images": 0, "bins": []}
    # calibration_curve's rule: bin id = searchsorted(inner edges, confidence), side "left".
    counts = np.bincount(np.searchsorted(edges[1:-1], conf), minlength=n_bins)
    acc, mean_conf = calibration_curve(correct, conf, n_bins=n_bins, strategy="uniform",
                                       pos_label=1)
    nonempty = np.flatnonzero(counts)
    ece = float(np.sum(counts[nonempty] / n * np.abs(acc - mean_conf)))
    bins = [{"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(counts[b]),
             "accuracy": None, "confidence": None} for b in range(n_bins)]
    for b, a, c in zip(nonempty, acc, mean_conf):
        bins[b]["accuracy"], bins[b]["confidence"] = float(a), float(c)
    return {"ece": ece, "n_bins": n_bins, "num_images": n, "bins": bins}
