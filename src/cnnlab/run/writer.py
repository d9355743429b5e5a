"""Writing a run directory: a unique name for a new run, and the per-epoch ``metrics.csv``.

Training (rank 0) is the only writer; everything else reads through :class:`cnnlab.run.Run`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnlab.checkpoint import atomic_write_text

METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "epoch_time_s",
    "images_per_s",
)
# Written after the columns above when some epoch has them (--monitor metrics, --ema validation).
OPTIONAL_COLUMNS = (
    "val_macro_f1",
    "val_balanced_acc",
    "ema_val_loss",
    "ema_val_acc",
    "ema_val_macro_f1",
    "ema_val_balanced_acc",
)


def dataset_label(dataset: str) -> str:
    """A short file-name-safe label for a dataset source (``folder:/x/flowers`` -> ``flowers``)."""
    if dataset.startswith("folder:"):
        dataset = Path(dataset[len("folder:") :].rstrip("/\\")).name or "folder"
    return re.sub(r"[^A-Za-z0-9_.]+", "_", dataset).strip("_") or "data"


def create_run_dir(out_dir: str | Path, dataset: str, model: str, name: str | None) -> Path:
    """Create and return ``out_dir/<name>``, or the first free ``<dataset>-<model>[-N]``.

    An explicit ``name`` that already exists is refused, so a run never overwrites another.

    Example:
        >>> create_run_dir("/tmp/cnnlab-runs", "digits", "simple_cnn", None)  # doctest: +SKIP
        PosixPath('/tmp/cnnlab-runs/digits-simple_cnn')
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(
            f"--out-dir {str(out)!r} is a file; pass a folder to hold run directories "
            "(it is created when missing)"
        )
    out.mkdir(parents=True, exist_ok=True)
    if name is not None:
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"name must be a plain folder name, got {name!r}")
        path = out / name
        try:
            path.mkdir()
        except FileExistsError:
            resumable = (path / "train_state.pt").is_file()
            hint = (f", or continue it with --resume {path}" if resumable else
                    " (it has no finished epoch to resume from)")
            raise ValueError(
                f"run directory {str(path)!r} already exists; choose another --name{hint}"
            ) from None
        return path
    base = f"{dataset_label(dataset)}-{re.sub(r'[^A-Za-z0-9_.]+', '_', model)}"
    for n in range(1, 100_000):
        path = out / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()  # atomic: two runs started together never share a folder
            return path
        except FileExistsError:
            continue
    raise ValueError(f"{str(out)!r} holds too many runs named {base}-N; pass --name")


def write_metrics(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write every epoch's metrics to ``metrics.csv`` (atomically, the whole file each time)."""
    buf = io.StringIO()
    columns = METRIC_COLUMNS + tuple(c for c in OPTIONAL_COLUMNS if any(c in r for r in rows))
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return value
