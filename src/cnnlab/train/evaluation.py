"""Moved to :mod:`cnnlab.evaluation` (next to :mod:`cnnlab.prediction`); this name stays."""

from cnnlab.evaluation import EVAL_SPLITS, EvalResult, evaluate, print_evaluation

__all__ = ["EVAL_SPLITS", "EvalResult", "evaluate", "print_evaluation"]
