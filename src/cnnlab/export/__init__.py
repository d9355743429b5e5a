"""Export trained models (ONNX, TorchScript) and run them with interchangeable backends.

Example:
    >>> from cnnlab.export import export, load_predictor
    >>> result = export("runs/digits", format="onnx", dynamic_batch=True)  # doctest: +SKIP
    >>> load_predictor(result.path).backend  # doctest: +SKIP
    'onnx'
    >>> export("runs/digits", quantize="int8").quantization.agreement  # doctest: +SKIP
    0.9944
"""

from cnnlab.export.api import FORMATS, ExportResult, export
from cnnlab.export.backends import (
    BACKENDS,
    OnnxPredictor,
    Predictor,
    TorchPredictor,
    default_backend,
    load_predictor,
    onnxruntime_available,
    physical_cores,
)
from cnnlab.export.int8 import export_int8

__all__ = [
    "BACKENDS",
    "FORMATS",
    "ExportResult",
    "OnnxPredictor",
    "Predictor",
    "TorchPredictor",
    "default_backend",
    "export",
    "export_int8",
    "load_predictor",
    "onnxruntime_available",
    "physical_cores",
]
