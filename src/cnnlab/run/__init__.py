"""The run directory, read and written in one place (see docs/run-directory.md).

Example:
    >>> from cnnlab.run import Run, model_logits
    >>> run = Run("runs/digits-simple_cnn")  # doctest: +SKIP
    >>> model, meta = run.load_model()  # doctest: +SKIP
    >>> test = run.load_data().test  # doctest: +SKIP
    >>> logits = model_logits(model, test.images, **run.normalization)  # doctest: +SKIP
"""

from cnnlab.run.directory import CHECKPOINTS, Run
from cnnlab.run.eval_files import (
    EVAL_ORDER,
    EVAL_SPLITS,
    read_confusion,
    read_csv,
    read_json,
    read_per_class,
    write_eval,
)
from cnnlab.run.scoring import model_logits, score_images
from cnnlab.run.writer import METRIC_COLUMNS, create_run_dir, write_metrics

__all__ = [
    "CHECKPOINTS",
    "EVAL_ORDER",
    "EVAL_SPLITS",
    "METRIC_COLUMNS",
    "Run",
    "create_run_dir",
    "model_logits",
    "read_confusion",
    "read_csv",
    "read_json",
    "read_per_class",
    "score_images",
    "write_eval",
    "write_metrics",
]
