"""Int8 ONNX models: static post-training quantization, checked against fp32 before it is kept.

The quantizer is ONNX Runtime's ``quantize_static`` in the QDQ format (QuantizeLinear /
DequantizeLinear pairs around each op, which ONNX Runtime fuses into QLinearConv, QGemm, ...
when it loads the model), as its documentation recommends for CNNs on CPU:

- the graph is first run through ``quant_pre_process`` (symbolic shape inference and the
  basic graph optimizations, e.g. batch norm folded into the convolutions);
- weights int8, symmetric, **per output channel**; activations uint8, asymmetric, per tensor
  ("U8S8"), with MinMax calibration on images of the run's own training split (a seeded
  random subset of ``calibration_size`` images, normalized as training normalized them).
- the outputs of ``Gemm`` (the classifier head: the logits) stay fp32 (ONNX Runtime still runs
  the Gemm itself as an int8 QGemm). Rounding the logits to 256 levels flips near-ties: on a
  1-epoch digits run this raised top-1 agreement with fp32 from 98.88% to 99.44% of 179
  validation images and halved the mean logit difference (0.0171 -> 0.0082).

Why this quantizer and this data-type pair, measured on this project's AMD EPYC (Zen 4, AVX2 +
AVX-512 VNNI, 2 cores; ``benchmarks/inference_speed.py --int8``): resnet18 at 224x224, batch
64, ran at ~204 images/s with U8S8 QDQ, ~56 with S8S8 QDQ (ONNX Runtime has no fast signed x
signed kernel path here) and ~52 in fp32 ONNX Runtime. PyTorch's PT2E quantization with the
x86 inductor quantizer was not measured: on torch 2.14 it lives in the separate ``torchao``
package, and its result is a torch.compile'd Python object, not a file that ``cnnlab predict``
or a server could load like any ONNX export.

Before anything is written, the int8 model is compared with the fp32 one on the run's
validation split (top-1 of both, their top-1 agreement, max/mean |logit difference|), and the
int8 graph as ONNX Runtime optimizes it is searched for compute ops left in fp32 (the quantizer
has no int8 form for them, e.g. ``ConvTranspose`` or ``LSTM``): either refuses the export
unless ``force``.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab._deps import require
from cnnlab._validate import check_int

# Ops that carry a layer's multiply-accumulates; in an int8 model none of them may run in fp32.
# (FusedConv/FusedGemm/FusedMatMul are ONNX Runtime's fp32 fusions of them.)
COMPUTE_OPS = (
    "Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "LSTM", "GRU", "RNN",
    "FusedConv", "FusedGemm", "FusedMatMul",
)  # fmt: skip
SCHEME = {
    "quantizer": "onnxruntime.quantization.quantize_static",
    "format": "QDQ",
    "weights": "int8 symmetric per-channel",
    "activations": "uint8 asymmetric per-tensor",
    "calibration_method": "MinMax",
    "fp32_outputs": "Gemm",
}
CALIBRATION_BATCH = 32


class QuantizationRefused(ValueError):
    """The int8 model disagrees with fp32 more than allowed, or runs compute ops in fp32.

    Attributes:
        check: the comparison with fp32 (None when the refusal came before it).
    """

    def __init__(self, message: str, check: QuantCheck | None = None) -> None:
        super().__init__(message)
        self.check = check


@dataclass(frozen=True)
class QuantCheck:
    """The int8 model beside the fp32 model on the same images.

    Attributes:
        split: which split of the run the images are (``"val"``).
        images: how many images.
        top1_fp32: top-1 accuracy of the fp32 model on them.
        top1_int8: top-1 accuracy of the int8 model.
        agreement: share of images on which both predict the same class.
        max_logit_diff: max |int8 - fp32| over all logits.
        mean_logit_diff: mean |int8 - fp32| over all logits.
    """

    split: str
    images: int
    top1_fp32: float
    top1_int8: float
    agreement: float
    max_logit_diff: float
    mean_logit_diff: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``check`` entry of the model's ``quantization`` metadata)."""
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable summary, one figure per line."""
        return [
            f"checked on {self.images} {self.split} images:",
            f"  top-1 fp32 {self.top1_fp32:.4f}, int8 {self.top1_int8:.4f}",
            f"  top-1 agreement int8 vs fp32 {self.agreement:.4f}",
            f"  logit difference max {self.max_logit_diff:.4g}, mean {self.mean_logit_diff:.4g}",
        ]


@dataclass(frozen=True)
class QuantizedModel:
    """An int8 ONNX model with how it was made and checked (see :func:`quantize_model`).

    Attributes:
        data: the int8 ONNX bytes, with ``meta`` in ``metadata_props``.
        fp32: the fp32 ONNX bytes it was quantized from.
        fp32_max_abs_diff: max |fp32 ONNX - PyTorch| of the logits (the fp32 export's check).
        check: the comparison with fp32.
        float_ops: ``(op_type, node name)`` of compute ops left in fp32 (empty when all are
            int8; only non-empty with ``force``).
        meta: the metadata written into the model (with a ``quantization`` entry).
    """

    data: bytes
    fp32: bytes
    fp32_max_abs_diff: float
    check: QuantCheck
    float_ops: list[tuple[str, str]]
    meta: dict[str, Any]


def sample_calibration(images: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """A seeded random subset of ``size`` images (all of them when there are fewer).

    Example:
        >>> x = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
        >>> sample_calibration(x, 3, seed=0).flatten().tolist()
        [1, 4, 7]
    """
    check_int("calibration_size", size, min_value=1)
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(images), generator=g)[: min(size, len(images))]
    return images[keep.sort().values]


def _reader(x: np.ndarray, batch: int, input_name: str) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        """Feeds the calibration images in batches (of 1 for a fixed-batch graph)."""

        def __init__(self) -> None:
            self._batches: Iterator[np.ndarray] = iter(
                [x[i : i + batch] for i in range(0, len(x), batch)]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            b = next(self._batches, None)
            return None if b is None else {input_name: b}

    return Reader()


def quantize_onnx(fp32: bytes, calibration: np.ndarray, *, batch: int | None = None) -> bytes:
    """Quantize fp32 ONNX bytes to int8 QDQ bytes, calibrated on ``calibration`` (normalized).

    Args:
        fp32: an ONNX model with one float32 image input.
        calibration: normalized float32 ``(N, C, H, W)`` images.
        batch: images per calibration call (default: the graph's fixed batch, else 32).

    Example:
        >>> int8 = quantize_onnx(fp32_bytes, x_train[:64])  # doctest: +SKIP
    """
    require("int8 quantization", ["onnx", "onnxruntime"], "export")
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    proto = onnx.load_from_string(fp32)
    inp = proto.graph.input[0]
    fixed = inp.type.tensor_type.shape.dim[0].dim_value or None
    batch = fixed or batch or CALIBRATION_BATCH
    with tempfile.TemporaryDirectory(prefix="cnnlab-int8-") as tmp:
        src, pre, out = (os.path.join(tmp, f) for f in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        Path(src).write_bytes(fp32)
        try:
            quant_pre_process(src, pre)
        except Exception as exc:  # shape inference fails on ops it does not know: go without
            warnings.warn(
                f"ONNX Runtime's quantization pre-processing failed ({type(exc).__name__}: "
                f"{exc}); quantizing the graph as exported",
                stacklevel=2,
            )
            pre = src
        quantize_static(
            pre,
            out,
            _reader(np.ascontiguousarray(calibration, dtype=np.float32), batch, inp.name),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"OpTypesToExcludeOutputQuantization": ["Gemm"]},
        )
        return Path(out).read_bytes()


def float_compute_ops(data: bytes) -> list[tuple[str, str]]:
    """Compute ops that still run in fp32 once ONNX Runtime has optimized an int8 model.

    ONNX Runtime fuses each DequantizeLinear -> op -> QuantizeLinear group it has an int8 kernel
    for into one integer op (QLinearConv, QGemm, ...); what is left of :data:`COMPUTE_OPS` in the
    optimized graph runs in fp32 between a dequantize and a quantize.

    Returns:
        ``(op_type, node_name)`` pairs, in graph order.

    Example:
        >>> float_compute_ops(quantize_onnx(fp32_bytes, x))  # doctest: +SKIP
        [('ConvTranspose', '/up/ConvTranspose')]
    """
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="cnnlab-int8-") as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        opts.log_severity_level = 3  # no warning about hardware-specific layouts in that file
        ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        graph = onnx.load(opts.optimized_model_filepath).graph
    return [(n.op_type, n.name) for n in graph.node if n.op_type in COMPUTE_OPS]


def compare_logits(
    fp32: np.ndarray, int8: np.ndarray, labels: np.ndarray, split: str = "val"
) -> QuantCheck:
    """Top-1 of both models, their top-1 agreement and the logit differences.

    Example:
        >>> a = np.array([[2.0, 1.0], [0.0, 1.0]])
        >>> c = compare_logits(a, a + [[0, 2], [0, 0]], np.array([0, 1]))
        >>> c.top1_fp32, c.top1_int8, c.agreement, c.max_logit_diff
        (1.0, 0.5, 0.5, 2.0)
    """
    if fp32.shape != int8.shape or len(fp32) != len(labels) or not len(labels):
        raise ValueError(
            f"need logits of equal shape for the same non-empty set of images; got "
            f"{fp32.shape}, {int8.shape} and {len(labels)} labels"
        )
    p32, p8 = fp32.argmax(1), int8.argmax(1)
    diff = np.abs(int8.astype(np.float64) - fp32.astype(np.float64))
    return QuantCheck(
        split=split,
        images=len(labels),
        top1_fp32=float((p32 == labels).mean()),
        top1_int8=float((p8 == labels).mean()),
        agreement=float((p32 == p8).mean()),
        max_logit_diff=float(diff.max()),
        mean_logit_diff=float(diff.mean()),
    )


def check_min_agreement(value: Any) -> float:
    """``value`` if it is a number in [0, 1], else a ``ValueError`` that names it.

    Example:
        >>> check_min_agreement(0.99)
        0.99
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"min_agreement must be a number in [0, 1], got {value!r}")
    return float(value)


def _logits(predictor: Any, x: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([predictor(x[i : i + batch]) for i in range(0, len(x), batch)])


def quantize_model(
    model: nn.Module,
    meta: Mapping[str, Any],
    calibration: np.ndarray,
    check_images: np.ndarray,
    check_labels: np.ndarray,
    *,
    dynamic_batch: bool = False,
    min_agreement: float = 0.99,
    force: bool = False,
    split: str = "val",
    calibration_info: Mapping[str, Any] | None = None,
) -> QuantizedModel:
    """Export ``model`` to ONNX, quantize it to int8 and check it against fp32.

    Args:
        model: the trained model (eval mode, CPU).
        meta: its export metadata (``class_names``, ``normalization``, ``input_size`` ...).
        calibration: normalized float32 ``(N, C, H, W)`` calibration images.
        check_images: normalized float32 images to compare int8 with fp32 on.
        check_labels: their true classes (for the top-1 of each model).
        dynamic_batch: the int8 graph accepts any batch size (else batches of 1).
        min_agreement: the least top-1 agreement with fp32 accepted, in [0, 1].
        force: keep the model even below ``min_agreement`` or with compute ops in fp32.
        split: the name of the checked images' split, for the report and the metadata.
        calibration_info: recorded in the metadata (e.g. the calibration split, size, seed).

    Raises:
        QuantizationRefused: agreement below ``min_agreement``, or compute ops left in fp32
            (named), and ``force`` not set.

    Example:
        >>> q = quantize_model(net, meta, x_train[:256], x_val, y_val)  # doctest: +SKIP
        >>> q.check.agreement >= 0.99  # doctest: +SKIP
        True
    """
    require("int8 quantization", ["onnx", "onnxruntime"], "export")
    import onnxruntime as ort

    from cnnlab.export.backends import OnnxPredictor
    from cnnlab.export.onnx import _with_metadata, export_onnx

    check_min_agreement(min_agreement)
    fp32, fp32_diff = export_onnx(model, meta, dynamic_batch=dynamic_batch)
    int8 = quantize_onnx(fp32, calibration)
    float_ops = float_compute_ops(int8)
    if float_ops and not force:
        kinds = sorted({op for op, _ in float_ops})
        names = ", ".join(f"{op} {name!r}" for op, name in float_ops[:5])
        raise QuantizationRefused(
            f"ONNX Runtime has no int8 kernel for op {', '.join(kinds)} (here: {names}"
            f"{' ...' if len(float_ops) > 5 else ''}), so the quantized model would run it in "
            "fp32; nothing written. Use a model without it, or --force to write it anyway"
        )
    fp32_logits = _logits(OnnxPredictor(fp32, meta), check_images)
    int8_logits = _logits(OnnxPredictor(int8, meta), check_images)
    check = compare_logits(fp32_logits, int8_logits, np.asarray(check_labels), split)
    if check.agreement < min_agreement and not force:
        raise QuantizationRefused(
            f"the int8 model agrees with fp32 on the top-1 class of {check.agreement:.2%} of "
            f"{check.images} {split} images, below --min-agreement {min_agreement:g} (top-1 "
            f"fp32 {check.top1_fp32:.4f}, int8 {check.top1_int8:.4f}); nothing written. "
            "Calibrate on more images (--calibration-size) or use --force to write it anyway",
            check,
        )
    quantization = {
        **SCHEME,
        "onnxruntime": ort.__version__,
        "calibration": dict(calibration_info or {"images": len(calibration)}),
        "check": check.to_dict(),
        "min_agreement": min_agreement,
        "forced": bool(force and (float_ops or check.agreement < min_agreement)),
        "float_ops": [op for op, _ in float_ops],
    }
    full_meta = {**meta, "quantization": quantization}
    data = _with_metadata(int8, full_meta)
    return QuantizedModel(data, fp32, fp32_diff, check, float_ops, full_meta)
