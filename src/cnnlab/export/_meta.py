"""The metadata an exported model carries: class names, normalization, input size, model."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Keys copied from a checkpoint's metadata into every exported model (``quantization``: how an
# int8 export was quantized and how it compared with fp32).
META_KEYS = (
    "model", "class_names", "normalization", "input_size", "sha256", "cnnlab_version",
    "quantization",
)  # fmt: skip


def export_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of checkpoint metadata that inference needs, checked for completeness.

    Example:
        >>> export_meta({"class_names": ["a"], "normalization": {"mean": [0.5], "std": [0.5]},
        ...              "input_size": [1, 8, 8], "epoch": 3})["input_size"]
        [1, 8, 8]
    """
    missing = [k for k in ("class_names", "normalization", "input_size") if not meta.get(k)]
    if missing:
        raise ValueError(
            f"the checkpoint metadata lacks {', '.join(missing)}, which inference needs; "
            "export a run directory written by 'cnnlab train'"
        )
    return {k: meta[k] for k in META_KEYS if k in meta}


def to_props(meta: Mapping[str, Any]) -> dict[str, str]:
    """ONNX ``metadata_props`` (str -> str): each key as JSON, and all of it under ``cnnlab``."""
    props = {k: json.dumps(v) for k, v in meta.items()}
    props["cnnlab"] = json.dumps(dict(meta))
    return props


def from_props(props: Mapping[str, str], source: str) -> dict[str, Any]:
    """Inverse of :func:`to_props`; a clear error for an ONNX file not exported by cnnlab."""
    if "cnnlab" not in props:
        raise ValueError(
            f"{source!r} has no cnnlab metadata (class names, normalization, input size); "
            "export it with 'cnnlab export RUN --format onnx'"
        )
    try:
        meta = export_meta(json.loads(props["cnnlab"]))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source!r} has corrupt cnnlab metadata: {exc}") from None
    from cnnlab.integrity import check_input_size

    meta["input_size"] = check_input_size(meta["input_size"], source)
    return meta


def verify_onnx_file(model: str | bytes, source: str) -> None:
    """Check an ONNX file's ``cnnlab_digest`` over its metadata and graph (needs ``onnx``)."""
    from cnnlab.integrity import trust_unsigned, verify_onnx

    if trust_unsigned():
        return
    from cnnlab._deps import require

    require("checking an ONNX model's metadata digest", ["onnx"], "export")
    import onnx

    try:
        proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(
            model, load_external_data=False
        )
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ValueError(f"{source!r} is not a loadable ONNX model: {exc}") from None
    props = {p.key: p.value for p in proto.metadata_props}
    verify_onnx(props, proto.graph.SerializeToString(), source)
