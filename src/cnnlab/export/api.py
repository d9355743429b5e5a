"""``export(run_dir, format)``: write a run's model as ONNX or TorchScript, with its metadata."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab._validate import check_choice

# TorchScript only while torch ships it (deprecated as of torch 2.14, torch.jit.load warns).
FORMATS = ("onnx", "pt2", "torchscript")
QUANTIZE = ("int8",)
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt"}


@dataclass(frozen=True)
class ExportResult:
    """Where :func:`export` wrote the model, and how closely it matches PyTorch.

    Attributes:
        path: the exported model file.
        format: ``"onnx"``, ``"pt2"`` or ``"torchscript"``.
        max_abs_diff: max |exported - eager| of the logits on a random batch (for ONNX measured
            with ONNX Runtime).
        meta_path: the JSON beside a pt2/TorchScript file (None for ONNX: its metadata is
            inside).
        dynamic_batch: whether the exported model accepts any batch size.
        quantization: for an int8 export, its check against fp32 (a
            :class:`cnnlab.export.quantize.QuantCheck`); None otherwise.
        float_ops: for an int8 export written with ``force``, the compute ops left in fp32.
    """

    path: Path
    format: str
    max_abs_diff: float
    meta_path: Path | None = None
    dynamic_batch: bool = False
    quantization: Any = None
    float_ops: tuple = ()


def export(
    run_dir: str | os.PathLike,
    format: str = "onnx",
    dynamic_batch: bool = False,
    out: str | os.PathLike | None = None,
    quantize: str | None = None,
    **int8_options: Any,
) -> ExportResult:
    """Export the best (else last) checkpoint of a run as ONNX, pt2 or TorchScript.

    The file carries the class names, normalization and input size: as ONNX ``metadata_props``
    (``class_names``, ``normalization``, ``input_size``, ``model``, each JSON, and all of them
    under ``cnnlab``), or for pt2 (a ``torch.export`` ExportedProgram) and TorchScript inside
    the archive and in a JSON file beside it (``model.pt2`` -> ``model.json``). An ONNX export
    is run in ONNX Runtime, a pt2/TorchScript one reloaded, and compared with PyTorch before it
    is written; a difference above 1e-4 (pt2, TorchScript: 1e-5) raises ``RuntimeError``.

    Args:
        run_dir: a run directory (``runs/NAME``) or a ``.safetensors`` checkpoint.
        format: ``"onnx"`` (default), ``"pt2"`` or ``"torchscript"`` (while torch has it).
        dynamic_batch: ONNX only: accept any batch size (else the batch is fixed at 1;
            TorchScript traces and pt2 programs accept any batch size when the model allows).
        out: the output file (default: ``RUN/export/model.onnx``, ``.pt2`` or ``.pt``).
        quantize: ``"int8"`` for a statically quantized ONNX model, calibrated and checked on
            the run's own data (``format`` must be ``"onnx"``); see
            :func:`cnnlab.export.int8.export_int8`, which takes ``int8_options``.

    Example:
        >>> result = export("runs/digits", format="onnx", dynamic_batch=True)  # doctest: +SKIP
        >>> result.path, result.max_abs_diff < 1e-4  # doctest: +SKIP
        (PosixPath('runs/digits/export/model.onnx'), True)
    """
    from cnnlab.checkpoint import atomic_write_bytes, atomic_write_text, load_model
    from cnnlab.export._meta import export_meta

    check_choice("format", format, FORMATS)
    if quantize is not None:
        check_choice("quantize", quantize, QUANTIZE)
        if format != "onnx":
            raise ValueError(f"quantize={quantize!r} needs format 'onnx', got {format!r}")
        from cnnlab.export.int8 import export_int8

        return export_int8(run_dir, out=out, dynamic_batch=dynamic_batch, **int8_options)
    if int8_options:
        raise ValueError(f"{', '.join(sorted(int8_options))} only apply with quantize='int8'")
    if format == "torchscript":
        import torch

        if not hasattr(torch.jit, "trace"):
            raise ValueError(
                f"format 'torchscript': torch {torch.__version__} no longer ships TorchScript; "
                "use --format pt2 (torch.export) or onnx"
            )
    model, meta = load_model(run_dir)
    meta = export_meta(meta)
    run_path = Path(run_dir)
    base = run_path if run_path.is_dir() else run_path.parent
    path = Path(out) if out is not None else base / "export" / f"model{SUFFIX[format]}"
    if path.is_dir():
        path = path / f"model{SUFFIX[format]}"
    if format == "onnx":
        from cnnlab.export.onnx import export_onnx

        data, diff = export_onnx(model, meta, dynamic_batch=dynamic_batch)
        atomic_write_bytes(path, data)
        return ExportResult(path, format, diff, None, dynamic_batch)
    if format == "pt2":
        from cnnlab.export.pt2 import export_pt2

        data, diff, dynamic_batch = export_pt2(model, meta)
    else:
        from cnnlab.export.torchscript import export_torchscript

        data, diff = export_torchscript(model, meta)
        dynamic_batch = True
    atomic_write_bytes(path, data)
    meta_path = path.with_suffix(".json")
    atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    return ExportResult(path, format, diff, meta_path, dynamic_batch)
