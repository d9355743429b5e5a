"""Training: ``fit(config)`` writes a resumable run directory; ``evaluate(run_dir)`` scores it.

Example:
    >>> from cnnlab.train import fit
    >>> result = fit(epochs=2, out_dir="/tmp/runs", quiet=True)  # doctest: +SKIP
    >>> result.run_dir  # doctest: +SKIP
    PosixPath('/tmp/runs/digits-simple_cnn')
"""

from cnnlab.train._epoch import TrainingDiverged
from cnnlab.train.config import TrainConfig, build_config
from cnnlab.train.evaluate import EvalResult, evaluate, print_evaluation
from cnnlab.train.loop import TrainResult, fit
from cnnlab.train.presets import PRESETS

__all__ = [
    "PRESETS",
    "EvalResult",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "build_config",
    "evaluate",
    "fit",
    "print_evaluation",
]
