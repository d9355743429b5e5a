"""Which inference backends can run a given model here (``cnnlab predict MODEL --backend list``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BackendInfo:
    """One way to run a model.

    Attributes:
        backend: the ``--backend`` value (``torch``, ``channels_last``, ``onnx``).
        available: whether it can run this model on this machine.
        description: engine and precision, or why it is unavailable.
    """

    backend: str
    available: bool
    description: str


def _onnx_precision(path: Path) -> str:
    """``"int8 (...)"`` with the export's check figures, or ``"fp32"``."""
    from cnnlab.export.backends import OnnxPredictor

    q = OnnxPredictor(path, threads=1).meta.get("quantization")
    if not q:
        return "fp32"
    c = q.get("check") or {}
    figures = (
        f"; top-1 agreement with fp32 {c['agreement']:.4f} on {c['images']} {c['split']} images"
        if {"agreement", "images", "split"} <= set(c)
        else ""
    )
    return f"int8 ({q.get('format', 'QDQ')}: {q.get('weights')} weights{figures})"


def available_backends(source: str | os.PathLike) -> list[BackendInfo]:
    """The backends that can run ``source`` (a run directory, checkpoint or ``.onnx`` file).

    For a run, int8 files already exported into ``RUN/export/`` are listed too (run them by
    passing the file as the model).

    Example:
        >>> [b.backend for b in available_backends("runs/digits")]  # doctest: +SKIP
        ['torch', 'channels_last', 'onnx']
    """
    from cnnlab.export.backends import default_backend, onnxruntime_available

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"model {str(path)!r} does not exist")
    ort = onnxruntime_available()
    no_ort = "needs onnxruntime: pip install 'cnnlab[export]'"
    if path.suffix == ".onnx":
        onnx = BackendInfo("onnx", ort, f"ONNX Runtime, {_onnx_precision(path)}" if ort else no_ort)
        torch_note = "needs the run directory (an .onnx file runs in ONNX Runtime only)"
        return [
            onnx,
            BackendInfo("torch", False, torch_note),
            BackendInfo("channels_last", False, torch_note),
        ]
    auto = default_backend()
    rows = [
        BackendInfo("torch", True, "PyTorch eager, fp32"),
        BackendInfo("channels_last", True, "PyTorch eager, fp32, NHWC memory layout"),
        BackendInfo(
            "onnx",
            ort,
            "ONNX Runtime, fp32 (exported from the run and checked on first use)"
            if ort
            else no_ort,
        ),
    ]
    rows = [
        BackendInfo(
            r.backend, r.available, r.description + (" [auto]" if r.backend == auto else "")
        )
        for r in rows
    ]
    export_dir = (path if path.is_dir() else path.parent) / "export"
    if ort and export_dir.is_dir():
        for f in sorted(export_dir.glob("*.onnx")):
            if f.name.startswith("predict-"):  # predict's own fp32 cache
                continue
            try:
                precision = _onnx_precision(f)
            except ValueError:  # not a cnnlab export
                continue
            if precision.startswith("int8"):
                rows.append(BackendInfo("onnx", True, f"{f}: ONNX Runtime, {precision}"))
    return rows
