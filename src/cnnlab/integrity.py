"""Digests that tie a file's metadata to its contents: checkpoints and exported ONNX models.

A cnnlab checkpoint's metadata carries ``sha256`` (the weights, see
:func:`cnnlab.checkpoint.tensors_digest`) and ``digest``: SHA-256 over the canonical JSON of every
other metadata key *including* ``sha256``. So editing a class name, the normalization, the model
or the input size, or deleting either entry, is detected; a file without ``digest`` (written by
cnnlab before it existed, or stripped) is refused unless the user passes ``--trust-unsigned``
(:func:`trusting_unsigned`). An ONNX file carries ``cnnlab_digest`` in ``metadata_props``: SHA-256
over the other props and the serialized graph.

These are integrity checks against corruption and casual edits (the way pip's ``--hash`` is),
not signatures: anyone who can rewrite the file can recompute a digest. Trust no file you
did not make; the loaders never unpickle anything whatever the digest says.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

DIGEST_KEY = "digest"  # in checkpoint metadata
ONNX_DIGEST_KEY = "cnnlab_digest"  # in ONNX metadata_props
TRUST_ENV = "CNNLAB_TRUST_UNSIGNED"  # "1": what --trust-unsigned sets for this process
MAX_INPUT_SIDE = 4096  # largest H or W a model's metadata may declare
TRUST_HINT = (
    "pass --trust-unsigned (or set CNNLAB_TRUST_UNSIGNED=1) to load it anyway, only if you "
    "trust where the file came from"
)

_trust = {"on": False}


def trust_unsigned() -> bool:
    """True inside :func:`trusting_unsigned` or when ``CNNLAB_TRUST_UNSIGNED=1``."""
    return _trust["on"] or os.environ.get(TRUST_ENV) == "1"


@contextlib.contextmanager
def trusting_unsigned(on: bool = True) -> Iterator[None]:
    """Accept files whose digest is missing or does not match (``--trust-unsigned``).

    Example:
        >>> with trusting_unsigned():
        ...     trust_unsigned()
        True
    """
    old = _trust["on"]
    _trust["on"] = on
    try:
        yield
    finally:
        _trust["on"] = old


def metadata_digest(meta: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical JSON of ``meta`` without its ``digest`` entry.

    Example:
        >>> metadata_digest({"a": 1, "digest": "x"}) == metadata_digest({"a": 1})
        True
    """
    body = {k: v for k, v in meta.items() if k != DIGEST_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(b"cnnlab-metadata-v2\n" + text.encode()).hexdigest()


def sign(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` with its ``digest`` entry set (``sha256`` of the weights must be in it)."""
    out = {k: v for k, v in meta.items() if k != DIGEST_KEY}
    out[DIGEST_KEY] = metadata_digest(out)
    return out


def verify_metadata(meta: Mapping[str, Any], source: str) -> None:
    """Raise ``ValueError`` naming ``source`` when the metadata digest is missing or wrong.

    Both are accepted (no error) inside :func:`trusting_unsigned`.
    """
    if trust_unsigned():
        return
    if DIGEST_KEY not in meta or "sha256" not in meta:
        raise ValueError(
            f"checkpoint {source!r} has no metadata digest (it was written by a cnnlab older "
            "than version 2 of the format, or the digest was removed), so its class names, "
            f"normalization and model cannot be checked; {TRUST_HINT}"
        )
    if meta[DIGEST_KEY] != metadata_digest(meta):
        raise ValueError(
            f"checkpoint {source!r} failed its integrity check: its metadata (class names, "
            "normalization, model, input size ...) does not match the digest recorded when it "
            f"was saved, so it was edited or corrupted; {TRUST_HINT}"
        )


def check_input_size(value: Any, source: str) -> list[int]:
    """A metadata ``input_size`` as ``[C, H, W]``: C 1 or 3, 1 <= H, W <= ``MAX_INPUT_SIDE``.

    Example:
        >>> check_input_size([1, 32, 32], "m.safetensors")
        [1, 32, 32]
    """
    ok = (isinstance(value, (list, tuple)) and len(value) == 3
          and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
          and value[0] in (1, 3) and all(1 <= v <= MAX_INPUT_SIDE for v in value[1:]))  # fmt: skip
    if not ok:
        raise ValueError(
            f"{source!r} declares input_size {value!r}; expected [C, H, W] with C 1 or 3 and "
            f"H, W between 1 and {MAX_INPUT_SIDE}"
        )
    return [int(v) for v in value]


def onnx_digest(props: Mapping[str, str], graph: bytes) -> str:
    """SHA-256 over the ONNX ``metadata_props`` (without the digest) and the graph bytes."""
    body = {k: v for k, v in props.items() if k != ONNX_DIGEST_KEY}
    h = hashlib.sha256(b"cnnlab-onnx-v1\n")
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    h.update(b"\n")
    h.update(graph)
    return h.hexdigest()


def verify_onnx(props: Mapping[str, str], graph: bytes | None, source: str) -> None:
    """Raise ``ValueError`` naming ``source`` when the ONNX digest is missing or wrong."""
    if trust_unsigned():
        return
    if ONNX_DIGEST_KEY not in props:
        raise ValueError(
            f"ONNX model {source!r} has no {ONNX_DIGEST_KEY} in its metadata (exported by an "
            f"older cnnlab, or removed), so its class names cannot be checked; {TRUST_HINT}"
        )
    if graph is None or props[ONNX_DIGEST_KEY] != onnx_digest(props, graph):
        raise ValueError(
            f"ONNX model {source!r} failed its integrity check: its metadata or graph does not "
            f"match the digest written at export (edited or corrupted); {TRUST_HINT}"
        )
