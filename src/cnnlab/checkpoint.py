"""Checkpoints: safetensors weights with JSON metadata, written atomically, loaded safely.

A checkpoint is one ``.safetensors`` file. Its header's metadata holds one key, ``"cnnlab"``, a
JSON document with everything needed to rebuild and use the model::

    {"format": "cnnlab-checkpoint", "version": 1,
     "model": {"name": "simple_cnn", "kwargs": {"num_classes": 10, "in_channels": 1}},
     "class_names": ["0", "1", ...], "normalization": {"mean": [...], "std": [...]},
     "input_size": [1, 32, 32], "epoch": 7, "metrics": {"val_acc": 0.98, ...},
     "sha256": "<digest of every tensor's bytes>", "cnnlab_version": ..., "torch_version": ...,
     "digest": "<sha256 of all the other metadata, sha256 included>"}

Version 2 added ``digest`` (see :mod:`cnnlab.integrity`): metadata and weights are checked
together, and a file without it is refused unless the user passes ``--trust-unsigned``.

Writes go to a temporary file in the same folder, are fsync'ed and then renamed over the target,
so a crash never leaves a half-written checkpoint behind. Loading never unpickles anything:
safetensors holds raw tensors only, and training state (optimizer, scheduler, RNG) is read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.integrity import check_input_size, sign, verify_metadata

FORMAT = "cnnlab-checkpoint"
VERSION = 2  # 2: "digest" over the metadata (version 1 files load with --trust-unsigned)
CHECKPOINT_SUFFIX = ".safetensors"
STATE_FILE = "train_state.pt"
# Which file "best" means in a run that trained an EMA of its weights (cnnlab.train.ema):
# {"checkpoint": "ema.safetensors" | "best.safetensors", "weights": "ema" | "raw",
#  "monitor": "val_acc", "raw": {"epoch": 7, "value": 0.81}, "ema": {"epoch": 9, "value": 0.83}}
BEST_FILE = "best.json"
CHECKPOINT_NAMES = ("best", "last", "ema")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    Example:
        >>> atomic_write_bytes("/tmp/cnnlab-example.txt", b"hello")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file 0600; give it the permissions a plain open() would.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete the ``.NAME.*.tmp`` files that :func:`atomic_write_bytes` leaves after a kill -9.

    Only call it on a folder no other process is writing to (a run being started or resumed).
    Returns how many files were removed.

    Example:
        >>> remove_stale_temporaries("/tmp/no-such-run")
        0
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    n = 0
    for p in folder.glob(".*.tmp"):
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of ``tensors`` in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share memory; clone keeps tied weights loadable.
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: Mapping[str, Any]) -> Path:
    """Save ``model``'s state dict and ``meta`` to ``path`` (a ``.safetensors`` file), atomically.

    Example:
        >>> save_checkpoint("/tmp/m.safetensors", nn.Linear(2, 2), {"model": {"name": "x"}})
        PosixPath('/tmp/m.safetensors')
    """
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != CHECKPOINT_SUFFIX:
        raise ValueError(f"checkpoint path must end in {CHECKPOINT_SUFFIX}, got {str(path)!r}")
    tensors = _plain_state_dict(model)
    full_meta = {
        "format": FORMAT,
        "version": VERSION,
        **dict(meta),
        "sha256": tensors_digest(tensors),
        "torch_version": torch.__version__,
    }
    from cnnlab import __version__

    full_meta.setdefault("cnnlab_version", __version__)
    data = save(tensors, metadata={"cnnlab": json.dumps(sign(full_meta))})
    atomic_write_bytes(path, data)
    return path


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint file; returns ``(state_dict, meta)``.

    Raises ``ValueError`` naming the file when it is truncated, not a cnnlab checkpoint, or
    its tensors do not match the digest recorded when it was written (tampered or corrupt).

    Example:
        >>> state, meta = read_checkpoint("/tmp/m.safetensors")
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise ValueError(
            f"checkpoint {str(path)!r} is truncated or not a safetensors file ({exc}); "
            "re-create it or point at another checkpoint"
        ) from None
    if "cnnlab" not in header:
        raise ValueError(
            f"{str(path)!r} is a safetensors file but not a cnnlab checkpoint "
            "(no 'cnnlab' metadata); load plain state dicts with --pretrained instead"
        )
    try:
        meta = json.loads(header["cnnlab"])
    except json.JSONDecodeError as exc:
        raise ValueError(f"checkpoint {str(path)!r} has corrupt metadata: {exc}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"checkpoint {str(path)!r} has format {meta.get('format')!r}, expected {FORMAT!r}"
        )
    verify_metadata(meta, str(path))
    if meta.get("sha256") and tensors_digest(tensors) != meta["sha256"]:
        raise ValueError(
            f"checkpoint {str(path)!r} failed its integrity check: the weights do not match "
            "the digest recorded when it was saved (the file was modified or corrupted)"
        )
    _check_fields(meta, str(path))
    return tensors, meta


def _check_fields(meta: dict[str, Any], source: str) -> None:
    """Refuse metadata fields whose values would mislead or exhaust memory downstream."""
    if "input_size" in meta:
        check_input_size(meta["input_size"], source)
    names = meta.get("class_names")
    if names is not None and (
        not isinstance(names, list) or not all(isinstance(n, str) for n in names)
    ):
        raise ValueError(f"checkpoint {source!r} has class_names that are not a list of strings")


def read_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``cnnlab`` metadata of a ``.safetensors`` file from its header only (no tensors read).

    Returns None for a plain safetensors file without cnnlab metadata. Raises ``ValueError``
    naming the file when it is not a safetensors file or its metadata is not JSON.

    Example:
        >>> read_metadata("runs/digits-simple_cnn/best.safetensors")["input_size"]  # doctest: +SKIP
        [1, 32, 32]
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            text = (f.metadata() or {}).get("cnnlab")
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise ValueError(
            f"checkpoint {str(path)!r} is truncated or not a safetensors file ({exc})"
        ) from None
    if text is None:
        return None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"checkpoint {str(path)!r} has corrupt metadata: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"checkpoint {str(path)!r} has metadata that is not a JSON object")
    verify_metadata(meta, str(path))
    _check_fields(meta, str(path))
    return meta


def resolve_checkpoint(path: str | os.PathLike, which: str = "best") -> Path:
    """Turn a run directory or a checkpoint file into the checkpoint file to read.

    A run directory ``runs/X`` resolves to ``runs/X/{which}.safetensors`` (``best``, ``last`` or
    ``ema``), ``best`` and ``last`` falling back to ``last`` when no ``best`` exists. When the run
    holds ``best.json`` (it trained an EMA of its weights), ``best`` is the checkpoint that file
    names: the better of the raw best (``best.safetensors``) and the EMA (``ema.safetensors``) on
    the run's monitored metric. Pass a file path to read one of them regardless.
    """
    path = Path(path)
    if str(path).startswith(("http://", "https://", "ftp://")):
        raise ValueError(f"{str(path)!r}: URLs are not supported, download it first")
    if which not in CHECKPOINT_NAMES:
        raise ValueError(
            f"checkpoint must be one of {', '.join(map(repr, CHECKPOINT_NAMES))}; got {which!r}"
        )
    if path.is_dir():
        if which == "best":
            chosen = read_best_choice(path)
            if chosen is not None:
                return chosen
        for name in (which,) if which == "ema" else (which, "last"):
            candidate = path / f"{name}{CHECKPOINT_SUFFIX}"
            if candidate.is_file():
                return candidate
        found = sorted(p.name for p in path.glob(f"*{CHECKPOINT_SUFFIX}"))
        if which == "ema":
            raise FileNotFoundError(
                f"run directory {str(path)!r} holds no ema{CHECKPOINT_SUFFIX} (found: "
                f"{found or 'none'}); it is written by 'cnnlab train --ema DECAY'"
            )
        raise FileNotFoundError(
            f"run directory {str(path)!r} holds no {which}{CHECKPOINT_SUFFIX} or "
            f"last{CHECKPOINT_SUFFIX} (found: {found or 'none'}); pass a run directory made by "
            "'cnnlab train' or a .safetensors checkpoint"
        )
    if not path.exists():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist; pass a run directory (runs/NAME) or a "
            f"{CHECKPOINT_SUFFIX} checkpoint"
        )
    return path


def read_best_choice(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint ``run_dir/best.json`` names as the run's best, or None (no file, or the
    file it names is missing).

    Example:
        >>> read_best_choice("runs/digits-simple_cnn")  # doctest: +SKIP
        PosixPath('runs/digits-simple_cnn/ema.safetensors')
    """
    file = Path(run_dir) / BEST_FILE
    if not file.is_file():
        return None
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{str(file)!r} is not valid JSON ({exc}); delete it to use "
                         "best.safetensors") from None
    name = doc.get("checkpoint") if isinstance(doc, dict) else None
    if name not in (f"{n}{CHECKPOINT_SUFFIX}" for n in CHECKPOINT_NAMES):
        raise ValueError(f"{str(file)!r} names checkpoint {name!r}; expected one of "
                         f"{', '.join(n + CHECKPOINT_SUFFIX for n in CHECKPOINT_NAMES)}")
    chosen = Path(run_dir) / name
    return chosen if chosen.is_file() else None


def build_model(meta: Mapping[str, Any]) -> nn.Module:
    """Rebuild the (untrained) model a checkpoint's metadata describes, via the model registry."""
    from cnnlab.models import create

    spec = meta.get("model") or {}
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError("checkpoint metadata has no model name; cannot rebuild the model")
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ValueError(f"checkpoint metadata model kwargs must be a mapping, got {kwargs!r}")
    try:
        return create(spec["name"], **kwargs)
    except TypeError as exc:
        raise ValueError(f"checkpoint metadata model {spec['name']!r}: {exc}") from None


def load_model(
    path: str | os.PathLike, which: str = "best", device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a trained model (eval mode) and its metadata from a run directory or checkpoint.

    Example:
        >>> model, meta = load_model("runs/digits-simple_cnn")
        >>> meta["class_names"][:3]
        ['0', '1', '2']
    """
    file = resolve_checkpoint(path, which)
    state, meta = read_checkpoint(file)
    try:
        model = build_model(meta)
        model.load_state_dict(state, strict=True)
    except (ValueError, RuntimeError) as exc:  # load_state_dict raises RuntimeError on mismatch
        first = str(exc).strip().splitlines()[0][:300]
        raise ValueError(
            f"checkpoint {str(file)!r}: its weights do not fit the model its metadata names "
            f"({(meta.get('model') or {}).get('name')!r}): {first}"
        ) from None
    return model.to(device).eval(), meta


def save_state(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Save training state (optimizer, scheduler, RNG, epoch) atomically with ``torch.save``.

    Only tensors, numbers, strings, lists and dicts may be inside, so that :func:`load_state`
    can read it back with ``weights_only=True``.
    """
    import io

    buf = io.BytesIO()
    torch.save(dict(state), buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Load training state saved by :func:`save_state` without unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training state {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"training state {str(path)!r} is corrupt or holds objects that are not allowed "
            f"to be unpickled ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None
