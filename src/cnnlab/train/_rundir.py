"""Moved to :mod:`cnnlab.run.writer` (the run layer writes the run directory); kept as a name."""

from cnnlab.run.writer import METRIC_COLUMNS, create_run_dir, dataset_label, write_metrics

__all__ = ["METRIC_COLUMNS", "create_run_dir", "dataset_label", "write_metrics"]
