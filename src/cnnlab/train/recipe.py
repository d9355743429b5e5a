"""The training recipe's optional parts, built from the config in one place for the loop.

Loss (label smoothing, class weights), batch mixing (mixup/CutMix), the weight EMA and the
class-balanced sampler; :meth:`Recipe.describe` is what the training log prints and what the
checkpoints' metadata record as ``"recipe"``, so a run says which options were on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnlab.train.config import TrainConfig
from cnnlab.train.ema import WeightEMA
from cnnlab.train.imbalance import BalancedSampler, class_weights
from cnnlab.train.mix import BatchMixer


@dataclass
class Recipe:
    """The built pieces; ``None`` where an option is off."""

    criterion: nn.Module
    mixer: BatchMixer | None
    ema: WeightEMA | None
    sampler: BalancedSampler | None
    weights: torch.Tensor | None
    info: dict[str, Any]

    def describe(self) -> str:
        """One log line naming every option and whether it is on."""
        i = self.info
        parts = [f"augment {i['augment']}"]
        parts.append(f"mixing {i['mixing']}" if i["mixing"] else "mixup/cutmix off")
        parts.append(f"label smoothing {i['label_smoothing']:g}")
        parts.append(f"EMA decay {i['ema']:g}" if i["ema"] else "EMA off")
        parts.append(f"class weights {i['class_weights']}")
        parts.append(f"sampler {i['sampler']}")
        delta = f" (min delta {i['min_delta']:g})" if i["min_delta"] else ""
        parts.append(f"monitor {i['monitor']}{delta}")
        return "recipe: " + "; ".join(parts)


def build_recipe(
    cfg: TrainConfig,
    model: nn.Module,
    train_labels: torch.Tensor,
    num_classes: int,
    device: torch.device,
    augment: str,
) -> Recipe:
    """Build the recipe's pieces for a run.

    Args:
        cfg: the run's config.
        model: the raw model (the EMA follows it).
        train_labels: (N,) labels of the training split (class weights, sampler).
        num_classes: K.
        device: the training device.
        augment: a description of the augmentation in use (for the log).

    Example:
        >>> r = build_recipe(TrainConfig(), nn.Linear(2, 2), torch.tensor([0, 1]), 2,
        ...                  torch.device("cpu"), "none")
        >>> r.mixer is None and r.ema is None
        True
    """
    weights = None
    if cfg.class_weights == "auto":
        weights = class_weights(train_labels, num_classes)
    criterion = nn.CrossEntropyLoss(
        weight=None if weights is None else weights.to(device),
        label_smoothing=cfg.label_smoothing,
    )
    mixer = None
    if cfg.mixup > 0 or cfg.cutmix > 0:
        mixer = BatchMixer(num_classes, mixup=cfg.mixup, cutmix=cfg.cutmix, prob=cfg.mix_prob)
    ema = WeightEMA(model, cfg.ema) if cfg.ema is not None else None
    sampler = BalancedSampler(train_labels, num_classes) if cfg.sampler == "balanced" else None
    info = {
        "augment": augment,
        "mixing": mixer.describe() if mixer is not None else None,
        "label_smoothing": cfg.label_smoothing,
        "ema": cfg.ema,
        "class_weights": (
            "auto (" + ", ".join(f"{w:.3g}" for w in weights.tolist()) + ")"
            if weights is not None else "none"
        ),
        "sampler": cfg.sampler,
        "monitor": cfg.monitor,
        "min_delta": cfg.min_delta,
    }
    return Recipe(criterion, mixer, ema, sampler, weights, info)
