"""``export_int8(run_dir)``: a run's model as int8 ONNX, calibrated and checked on its own data.

Calibration images come from the run's training split, the check from its validation split
(the test split when the run has no validation images), both reloaded by
:meth:`cnnlab.run.Run.load_data` the way ``cnnlab train`` split them; see
:mod:`cnnlab.export.quantize` for the quantizer and the check.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cnnlab._validate import check_int
from cnnlab.export.api import ExportResult

DEFAULT_NAME = "model-int8.onnx"


def _run_data(run_dir: Path, data: Any) -> Any:
    """The run's DataBundle as training split it (``data``: another source, or a bundle)."""
    if data is not None and not isinstance(data, (str, os.PathLike)):
        return data
    from cnnlab.run import Run

    run = Run(run_dir)
    if data is None and not run.config_file.is_file() and not run.data_file.is_file():
        raise FileNotFoundError(
            f"{str(run.config_file)!r} does not exist, so the run's training and validation "
            "images are unknown; pass a run directory written by 'cnnlab train', or name the "
            "data with --data (e.g. --data digits or --data folder:PATH)"
        )
    return run.load_data(data)


def export_int8(
    run_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    dynamic_batch: bool = False,
    calibration_size: int = 256,
    seed: int = 0,
    min_agreement: float = 0.99,
    force: bool = False,
    data: Any = None,
) -> ExportResult:
    """Quantize the best (else last) checkpoint of a run to int8 ONNX; write it if it passes.

    Args:
        run_dir: a run directory written by ``cnnlab train`` (or a ``.safetensors`` checkpoint
            inside one).
        out: the output file (default ``RUN/export/model-int8.onnx``; a folder gets that name).
        dynamic_batch: accept any batch size (else the batch is fixed at 1).
        calibration_size: training images to calibrate on (a seeded random subset).
        seed: seed of the calibration subset.
        min_agreement: the least top-1 agreement with fp32 on the validation split, in [0, 1].
        force: write the model even below ``min_agreement`` or with compute ops left in fp32.
        data: None for the run's own dataset; a source string or ``DataBundle`` instead.

    Returns:
        An :class:`ExportResult` whose ``quantization`` holds the check against fp32.

    Raises:
        cnnlab.export.quantize.QuantizationRefused: the check failed (nothing is written).

    Example:
        >>> r = export_int8("runs/digits-simple_cnn", dynamic_batch=True)  # doctest: +SKIP
        >>> r.path.name, r.quantization.agreement >= 0.99  # doctest: +SKIP
        ('model-int8.onnx', True)
    """
    from cnnlab.checkpoint import atomic_write_bytes, load_model
    from cnnlab.data import to_float_normalized
    from cnnlab.export._meta import export_meta
    from cnnlab.export.quantize import check_min_agreement, quantize_model, sample_calibration

    check_min_agreement(min_agreement)
    check_int("calibration_size", calibration_size, min_value=1)
    check_int("seed", seed, min_value=0)
    model, raw_meta = load_model(run_dir)
    meta = export_meta(raw_meta)
    run_path = Path(run_dir)
    base = run_path if run_path.is_dir() else run_path.parent
    bundle = _run_data(base, data)
    split, part = ("val", bundle.val) if len(bundle.val) else ("test", bundle.test)
    if not len(bundle.train) or not len(part):
        raise ValueError(
            f"the data of {str(run_dir)!r} ({getattr(bundle, 'name', data)!r}) has "
            f"{len(bundle.train)} training and {len(part)} validation/test images; int8 export "
            "needs both (training images to calibrate, held-out ones to check)"
        )
    if list(part.images.shape[1:]) != list(meta["input_size"]):
        raise ValueError(
            f"the data's images are {list(part.images.shape[1:])} (C, H, W) but the model "
            f"takes {meta['input_size']}; give data with the run's image size and channels"
        )
    mean, std = meta["normalization"]["mean"], meta["normalization"]["std"]
    calibration = sample_calibration(bundle.train.images, calibration_size, seed)
    from cnnlab.data import to_model_classes  # the model's class order decides the label index

    labels = to_model_classes(part.labels, list(bundle.class_names), list(meta["class_names"]))
    result = quantize_model(
        model,
        meta,
        to_float_normalized(calibration, mean, std).numpy(),
        to_float_normalized(part.images, mean, std).numpy(),
        labels.numpy(),
        dynamic_batch=dynamic_batch,
        min_agreement=min_agreement,
        force=force,
        split=split,
        calibration_info={"split": "train", "images": len(calibration), "seed": seed},
    )
    path = Path(out) if out is not None else base / "export" / DEFAULT_NAME
    if path.is_dir():
        path = path / DEFAULT_NAME
    atomic_write_bytes(path, result.data)
    return ExportResult(
        path, "onnx", result.fp32_max_abs_diff, None, dynamic_batch, result.check,
        tuple(result.float_ops),
    )  # fmt: skip
