"""Named training recipes (``--preset NAME``): settings applied under the explicit ones.

A preset fills in schedule, batch size, augmentation and model; anything set by YAML or a flag
wins over it. ``benchmarks/train_speed.py`` measures ``cifar10-fast`` against the course recipe.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # The course recipe (SimpleCNN, Adam 1e-3, batch 64, 10 epochs, no augmentation, constant lr),
    # run through cnnlab's fast data path: the baseline the other presets are measured against.
    "course": {
        "model": "simple_cnn",
        "optimizer": "adam",
        "lr": 1e-3,
        "weight_decay": 0.0,
        "batch_size": 64,
        "epochs": 10,
        "schedule": "none",
        "augment": "none",
    },
    # Reach 70% held-out CIFAR-10 accuracy fast on a CPU: batch 128, a one-cycle schedule
    # peaking at 3x the course's learning rate, AdamW, label smoothing, 3 epochs. Measured on
    # 45,000 training / 5,000 held-out JPEGs (threads 1), held-out accuracy after epochs 1-3:
    # seed 0 62.0/70.1/72.9%, seed 1 62.3/69.0/71.9%, seed 2 61.1/69.2/72.5%, ~100 CPU s for
    # 3 epochs; batch 256 / lr 4e-3 reached only 71.1% (seed 0) and 69.8% (seed 1) after 3
    # epochs, in ~135 CPU s.
    "cifar10-fast": {
        "model": "simple_cnn",
        "optimizer": "adamw",
        "lr": 3e-3,
        "weight_decay": 5e-4,
        "batch_size": 128,
        "epochs": 3,
        "schedule": "onecycle",
        "onecycle_pct": 0.25,
        "label_smoothing": 0.1,
        "augment": "none",
    },
}


def preset_values(name: str | None) -> dict[str, Any]:
    """The settings of preset ``name`` (an empty dict for ``None``).

    Example:
        >>> preset_values("course")["lr"]
        0.001
    """
    if name is None:
        return {}
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}; got {name!r}")
    return dict(PRESETS[name])
