"""Decoded-image cache: uint8 tensors in a safetensors file, keyed on the source files' stats.

The key hashes every source file's relative path, size and modification time (ns) together
with the decoding options (image size, channels, format version), so touching, adding or removing
a file makes a new key; the stale file of the same source is deleted when the new one is
written. Files are written to a temporary name, fsynced and renamed, so a killed process never
leaves a half-written cache behind. No pickle is involved anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

CACHE_FORMAT = "cnnlab-data-cache-1"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cnnlab`` (``~/.cache/cnnlab``): where image-folder caches go."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnnlab"


def file_stats(paths: Iterable[Path], root: Path) -> list[tuple[str, int, int]]:
    """``(relative path, size, mtime_ns)`` of each file, the raw material of a cache key."""
    out = []
    for p in paths:
        st = p.stat()
        out.append((p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return out


def cache_key(stats: list[tuple[str, int, int]], options: dict[str, Any]) -> str:
    """SHA-256 over the file stats and the decoding options."""
    h = hashlib.sha256(CACHE_FORMAT.encode())
    h.update(json.dumps(options, sort_keys=True).encode())
    for rel, size, mtime in stats:
        h.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


def _stem(kind: str, root: Path, options: dict[str, Any]) -> str:
    # One entry per (source folder, decoding options): files changing replaces that entry.
    ident = f"{root.resolve()}|{json.dumps(options, sort_keys=True)}"
    return f"{kind}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"


def load_cache(
    cache_dir: Path, kind: str, root: Path, options: dict[str, Any], key: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Return ``(tensors, meta)`` cached for ``key``, or None when absent or unreadable."""
    from safetensors import safe_open

    path = cache_dir / f"{_stem(kind, root, options)}-{key[:24]}.safetensors"
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            if header.get("format") != CACHE_FORMAT or header.get("key") != key:
                return None
            tensors = {name: f.get_tensor(name) for name in f.keys()}
        return tensors, json.loads(header.get("meta", "{}"))
    except Exception as e:  # a damaged cache is rebuilt, never fatal
        warnings.warn(f"ignoring unreadable data cache {path}: {e}", stacklevel=3)
        return None


def save_cache(
    cache_dir: Path,
    kind: str,
    root: Path,
    options: dict[str, Any],
    key: str,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> Path | None:
    """Write the cache atomically and delete stale caches of the same source; None on failure."""
    from safetensors.torch import save_file

    stem = _stem(kind, root, options)
    path = cache_dir / f"{stem}-{key[:24]}.safetensors"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-", suffix=".safetensors")
        os.close(fd)
        try:
            header = {"format": CACHE_FORMAT, "key": key, "meta": json.dumps(meta)}
            save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=header)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except OSError as e:  # a read-only or full disk only costs speed next time
        warnings.warn(f"could not write the data cache in {cache_dir}: {e}", stacklevel=3)
        return None
    for old in cache_dir.glob(f"{stem}-*.safetensors"):
        if old != path:
            old.unlink(missing_ok=True)
    return path
