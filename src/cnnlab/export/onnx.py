"""Export to ONNX and check the result against PyTorch with ONNX Runtime.

torch >= 2.5 offers two exporters: the TorchScript-based one (``dynamo=False``, ~2 s for a
ResNet-18 here) and the ``torch.export``-based one (``dynamo=True``, the default since 2.9,
~10 s and needs onnxscript). The TorchScript one is used when present; the dynamo one is the
fallback (e.g. for an adaptive pooling that upsamples, which the TorchScript-based one cannot
translate). Either way the graph is run in ONNX Runtime on a random batch and compared with the
PyTorch model (max abs diff <= ``atol``) before anything is written.
"""

from __future__ import annotations

import inspect
import io
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab._deps import require
from cnnlab.export._meta import to_props

OPSET = 17  # supported by onnxruntime >= 1.14 and by both exporters
INPUT_NAME, OUTPUT_NAME = "input", "logits"
ATOL = 1e-4


def _export_bytes(model: nn.Module, example: torch.Tensor, dynamic_batch: bool) -> bytes:
    params = inspect.signature(torch.onnx.export).parameters
    names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": OPSET}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices of the exporters
        try:
            legacy = {"dynamo": False} if "dynamo" in params else {}
            axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(
                model, (example,), buf, dynamic_axes=axes, verbose=False, **names, **legacy
            )
            return buf.getvalue()
        except Exception as legacy_error:  # legacy exporter removed or failing: try dynamo
            if "dynamo" not in params:
                raise
            try:
                shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None
                names["opset_version"] = max(OPSET, 18)  # the dynamo exporter's lowest
                program = torch.onnx.export(
                    model, (example,), dynamo=True, dynamic_shapes=shapes, verbose=False, **names
                )
            except Exception as exc:
                raise RuntimeError(
                    f"ONNX export failed with both exporters: TorchScript-based: {legacy_error}; "
                    f"dynamo: {exc}"
                ) from exc
            return program.model_proto.SerializeToString()


def _with_metadata(data: bytes, meta: Mapping[str, Any]) -> bytes:
    import onnx

    from cnnlab.integrity import ONNX_DIGEST_KEY, onnx_digest

    proto = onnx.load_from_string(data)
    del proto.metadata_props[:]
    props = to_props(meta)
    props[ONNX_DIGEST_KEY] = onnx_digest(props, proto.graph.SerializeToString())
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def max_abs_diff_vs_torch(data: bytes, model: nn.Module, x: torch.Tensor) -> float:
    """Run the ONNX model in ONNX Runtime on ``x`` and return max |onnx - torch| of the logits.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()).eval()
        >>> x = torch.randn(1, 1, 8, 8)
        >>> buf = io.BytesIO()
        >>> torch.onnx.export(net, (x,), buf, dynamo=False)  # doctest: +SKIP
        >>> max_abs_diff_vs_torch(buf.getvalue(), net, x) < 1e-5  # doctest: +SKIP
        True
    """
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = model(x).numpy()
    if got.shape != want.shape:
        raise RuntimeError(f"ONNX output shape {got.shape} differs from PyTorch's {want.shape}")
    return float(np.abs(got - want).max())


def export_onnx(
    model: nn.Module,
    meta: Mapping[str, Any],
    *,
    dynamic_batch: bool = False,
    atol: float = ATOL,
) -> tuple[bytes, float]:
    """Export ``model`` (eval mode, CPU) to ONNX bytes with ``meta`` in ``metadata_props``.

    The graph takes ``input`` of shape ``(B, C, H, W)`` (``meta["input_size"]`` = [C, H, W];
    B = 1 unless ``dynamic_batch``) as normalized float32 and returns ``logits``.

    Returns:
        ``(onnx_bytes, max_abs_diff)`` - the difference to PyTorch measured with ONNX Runtime.

    Raises:
        RuntimeError: when ONNX Runtime's output differs from PyTorch's by more than ``atol``.
        MissingDependencyError: without the ``onnx`` and ``onnxruntime`` packages.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(2))
        >>> _ = net(torch.zeros(1, 1, 8, 8))
        >>> meta = {"class_names": ["a", "b"], "input_size": [1, 8, 8],
        ...         "normalization": {"mean": [0.5], "std": [0.5]}}
        >>> data, diff = export_onnx(net.eval(), meta)
        >>> diff <= 1e-4
        True
    """
    require("ONNX export", ["onnx", "onnxruntime"], "export")
    model = model.cpu().eval()
    c, h, w = meta["input_size"]
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(1, c, h, w, generator=gen)
    data = _with_metadata(_export_bytes(model, example, dynamic_batch), meta)
    check = torch.randn(3 if dynamic_batch else 1, c, h, w, generator=gen)
    diff = max_abs_diff_vs_torch(data, model, check)
    if not diff <= atol:  # also catches NaN
        raise RuntimeError(
            f"the exported ONNX model disagrees with PyTorch: max abs difference of the logits "
            f"{diff:.3g} > {atol:g} (ONNX Runtime vs torch on the same random batch); "
            "the model uses an operation the exporter translates differently"
        )
    return data, diff
