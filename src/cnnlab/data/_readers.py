"""Readers for the standard datasets' on-disk formats: MNIST idx files and CIFAR python batches.

MNIST idx (LeCun's format): a 4-byte magic ``0x00 0x00 <dtype code> <ndim>``, then ``ndim``
big-endian uint32 dimensions, then the data; parsed here with NumPy, gzipped or not.

CIFAR python batches are pickles (dicts of a uint8 array and label lists). torchvision loads
them with plain ``pickle.load`` after an md5 check; we instead use an unpickler restricted to the
handful of globals a CIFAR batch needs (NumPy array reconstruction), so even a file that is not
the official one cannot run code: anything else is refused with ``UnpicklingError``.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Parse an idx file (optionally ``.gz``) into a NumPy array.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
        >>> _ = p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 3]))
        >>> read_idx(p).tolist()
        [7, 3]
    """
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an idx file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = offset + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path} is truncated or damaged: header says {tuple(dims.tolist())} "
            f"({expected} bytes) but the file has {len(raw)} bytes"
        )
    data = np.frombuffer(bytearray(raw[offset:]), dtype=dtype)  # bytearray: writable array
    return data.reshape(dims.tolist())


def _numpy_reconstruct():
    try:  # NumPy 2 moved numpy.core to numpy._core (the old name warns)
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray
    return multiarray


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only builds NumPy arrays/dtypes (and the bytes codec py2 pickles use)."""

    def find_class(self, module: str, name: str) -> Any:
        multiarray = _numpy_reconstruct()
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
            ("numpy.core.multiarray", "scalar"): multiarray.scalar,
            ("numpy._core.multiarray", "scalar"): multiarray.scalar,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): _codecs_encode,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR batch holds only NumPy arrays, "
                "lists, strings and numbers"
            )
        return allowed[(module, name)]


def _codecs_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    import codecs

    return codecs.encode(obj, encoding, errors)


def read_cifar_batch(path: Path) -> dict[str, Any]:
    """Load one CIFAR python batch (a dict) with the restricted unpickler.

    Example:
        >>> import tempfile, pathlib, pickle
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "test_batch"
        >>> _ = p.write_bytes(pickle.dumps({"labels": [1]}, protocol=2))
        >>> read_cifar_batch(p)["labels"]
        [1]
    """
    with open(path, "rb") as f:
        try:
            obj = _ArrayUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise ValueError(f"{path} is not a readable CIFAR python batch: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is not a CIFAR python batch (found {type(obj).__name__})")
    return obj


def md5(path: Path) -> str:
    """Hex md5 of a file (the checksums torchvision lists for the official files)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
