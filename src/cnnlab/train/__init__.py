"""Training: ``fit(config)`` writes a resumable run directory; ``evaluate(run_dir)`` scores it.

Names are imported on first use, so that ``cnnlab --help`` does not pay for importing torch.

Example:
    >>> from cnnlab.train import fit
    >>> result = fit(epochs=2, out_dir="/tmp/runs", quiet=True)  # doctest: +SKIP
    >>> result.run_dir  # doctest: +SKIP
    PosixPath('/tmp/runs/digits-simple_cnn')
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PRESETS": "cnnlab.train.presets",
    "EvalResult": "cnnlab.evaluation",
    "TrainConfig": "cnnlab.train.config",
    "TrainResult": "cnnlab.train.loop",
    "TrainingDiverged": "cnnlab.train._epoch",
    "build_config": "cnnlab.train.config",
    "evaluate": "cnnlab.evaluation",
    "fit": "cnnlab.train.loop",
    "print_evaluation": "cnnlab.evaluation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnnlab.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
