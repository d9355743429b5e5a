"""A decoded image store on disk: fixed-size uint8 slots in one ``.npy`` file, read by mmap.

Made for image folders larger than the RAM (the FFCV / torchvision-reference situation): every
file is decoded once, in parallel worker processes, into its own slot of a preallocated file;
training then gathers batches from a read-only memory map, so the process's anonymous memory
holds one batch at a time and the page cache (not the process) holds the pictures.

Layout of ``NAME.store/`` (one owner for the format: this module):

* ``images.npy`` -- a NumPy ``.npy`` file (header + uint8 (N, C, H, W), C order); slot ``i``
  is source file ``i``, a file that failed to decode leaves its slot zero;
* ``sums.npy`` -- int64 (N, C, 2): per image and channel the sum and the sum of squares of the
  pixel values, so the mean/std of any subset is exact without reading the pixels again;
* ``arrays.npz`` -- the caller's per-image arrays (labels, parts, ...) and the ``ok`` mask;
* ``manifest.json`` -- format, key, shape, caller metadata, decode errors. Written last.

Building happens in ``NAME.store.partial/``, whose ``progress.jsonl`` gets one line per finished
chunk (written after the chunk's pixels are in the file, so a listed chunk is complete). A build
killed at any moment restarts only the chunks not listed; when all are done the manifest is
written and the directory renamed to ``NAME.store`` in one atomic step -- so a store without its
``.partial`` suffix is always complete, and a half-written one is never read as a store. A full
disk is detected up front (the file is preallocated with ``posix_fallocate``) and removes the
partial directory. A lock file serializes builders (several training processes on one machine
wait for the one that builds).
"""

from __future__ import annotations

import contextlib
import errno
import json
import multiprocessing as mp
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.data._decode import _cpus, _decode_chunk, _worker_init

STORE_FORMAT = "cnnlab-store-1"
CHUNK = 256  # files per worker task and per line of progress.jsonl


class StoreBuildInterrupted(RuntimeError):
    """Raised by the ``on_chunk`` test hook to simulate a build killed after some chunks."""


@dataclass
class StoreSpec:
    """What to decode: the files, their target format and the caller's per-file arrays."""

    paths: Sequence[str]
    size: tuple[int, int]  # (H, W) of every slot
    channels: int
    arrays: dict[str, np.ndarray]  # e.g. {"labels": int64 (N,), "parts": int8 (N,)}
    meta: dict[str, Any]
    fast_jpeg: bool = False


class Store:
    """A complete store opened read-only: a memory-mapped image tensor and its arrays.

    Attributes:
        path: the ``NAME.store`` directory.
        images: uint8 tensor (N, C, H, W) backed by the file (nothing is read until indexed).
        sums: int64 array (N, C, 2) of per-image channel sums and sums of squares.
        arrays: the per-image arrays given at build time, plus ``ok`` (bool, decoded fine).
        errors: ``{index: error}`` of the files that could not be decoded.
        meta: the caller's metadata.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("format") != STORE_FORMAT:
            raise ValueError(f"{path} is not a {STORE_FORMAT} store")
        self.key: str = manifest["key"]
        self.meta: dict[str, Any] = manifest["meta"]
        self.errors = {int(k): v for k, v in manifest["errors"].items()}
        mm = np.load(path / "images.npy", mmap_mode="r")
        if list(mm.shape) != manifest["shape"] or mm.dtype != np.uint8:
            raise ValueError(f"{path}/images.npy has shape {mm.shape}, not {manifest['shape']}")
        with warnings.catch_warnings():  # read-only map: torch warns that it is not writable
            warnings.simplefilter("ignore", UserWarning)
            self.images = torch.from_numpy(mm)
        self.sums = np.load(path / "sums.npy")
        with np.load(path / "arrays.npz") as z:
            self.arrays = {k: z[k] for k in z.files}

    def __len__(self) -> int:
        return int(self.images.shape[0])


def store_bytes(n: int, channels: int, size: tuple[int, int]) -> int:
    """Bytes of the image file of a store of ``n`` images (the space a build needs, roughly).

    Example:
        >>> store_bytes(1000, 3, (256, 256)) // 2**20
        187
    """
    return n * channels * size[0] * size[1] + n * channels * 16


# --- building ------------------------------------------------------------------------------------

_W: dict[str, Any] = {}  # per worker process: open file descriptors and the spec


def _init(images: str, sums: str, offset: int, spec: tuple) -> None:
    _worker_init()
    _W.update(img=os.open(images, os.O_WRONLY), sums=os.open(sums, os.O_WRONLY),
              offset=offset, spec=spec)  # fmt: skip


def _close_worker_files() -> None:
    for k in ("img", "sums"):
        if k in _W:
            os.close(_W.pop(k))


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


def _do_chunk(task: tuple[int, int, list[str]]) -> tuple[int, dict[int, str]]:
    """Decode one chunk and write its pixels and sums into their slots (in a worker)."""
    k, start, paths = task
    size, channels, fast_jpeg, sums_offset = _W["spec"]
    out, errs = _decode_chunk(paths, size, channels, fast_jpeg)  # (B, C, H, W) uint8
    slot = channels * size[0] * size[1]
    _pwrite_all(_W["img"], memoryview(out).cast("B"), _W["offset"] + start * slot)
    sums = np.zeros((len(out), channels, 2), dtype=np.int64)  # (B, C, [sum, sum of squares])
    for i, a in enumerate(out):  # one image at a time: a 32-bit copy of a chunk would be big
        v = a.reshape(channels, -1).astype(np.int32)
        sums[i, :, 0] = v.sum(-1, dtype=np.int64)
        sums[i, :, 1] = (v * v).sum(-1, dtype=np.int64)
    _pwrite_all(_W["sums"], memoryview(np.ascontiguousarray(sums)).cast("B"),
                sums_offset + start * channels * 16)  # fmt: skip
    return k, {start + i: e for i, e in enumerate(errs) if e is not None}


def _npy(path: Path, shape: tuple[int, ...], dtype: str) -> int:
    """Write a ``.npy`` header for ``shape``/``dtype`` and preallocate the data; returns offset."""
    header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        offset = f.tell()
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if hasattr(os, "posix_fallocate") and nbytes:
            # Reserve the blocks now: a full disk fails here with ENOSPC, not later as a SIGBUS
            # or a short write in the middle of the build.
            os.posix_fallocate(f.fileno(), offset, nbytes)
        else:
            f.truncate(offset + nbytes)
    return offset


def _done_chunks(progress: Path) -> dict[int, dict[int, str]]:
    done: dict[int, dict[int, str]] = {}
    if progress.is_file():
        for line in progress.read_text(encoding="utf-8").splitlines():
            try:  # a kill while appending leaves a partial last line: that chunk is redone
                rec = json.loads(line)
                done[int(rec["chunk"])] = {int(i): e for i, e in rec["errors"].items()}
            except (ValueError, KeyError, TypeError):
                continue
    return done


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: one builder at a time is then the user's business
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _space_error(where: Path, need: int) -> ValueError:
    try:
        free = f"{_size(shutil.disk_usage(where).free)} free"
    except OSError:
        free = "free space unknown"
    return ValueError(
        f"not enough disk space for the decoded image store in {where}: it needs "
        f"{_size(need)} ({free}); free some space, pass --cache-dir on a larger disk, "
        "or use --cache ram"
    )


def _progress_bar(total: int, done: int, quiet: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    bar = Progress(
        TextColumn("decoding into the store"), BarColumn(), MofNCompleteColumn(),
        TaskProgressColumn(), TextColumn("{task.fields[ips]:,.0f} img/s"), TextColumn("ETA"),
        TimeRemainingColumn(), console=console, disable=quiet or not console.is_terminal,
    )  # fmt: skip
    task = bar.add_task("decode", total=total, completed=done, ips=0.0)
    return bar, task


def build_store(
    path: Path,
    key: str,
    spec: StoreSpec,
    *,
    workers: int | None = None,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> Store:
    """Decode ``spec.paths`` into the store ``path`` (a ``NAME.store`` directory); resumable.

    An existing complete store with the same ``key`` is opened as is. A ``NAME.store.partial``
    left by an interrupted build with the same key is continued; one with another key (the
    source files changed) is discarded.

    Args:
        path: the store directory to create.
        key: identity of the source (file stats + decoding options); stored in the manifest.
        spec: files, size, channels, per-file arrays and metadata.
        workers: decoding processes (None: every CPU this process may use).
        quiet: no progress bar.
        log: where to send the one-line summary (None: nowhere).
        on_chunk: called with the number of chunks finished so far (tests interrupt with it).

    Returns:
        The opened :class:`Store`.

    Raises:
        ValueError: not enough disk space (the partial store is removed).

    Example:
        >>> import tempfile, pathlib, PIL.Image
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> PIL.Image.new("RGB", (40, 30), (255, 0, 0)).save(d / "a.png")
        >>> spec = StoreSpec([str(d / "a.png")], (16, 16), 3, {"labels": np.zeros(1)}, {})
        >>> s = build_store(d / "x.store", "k", spec, quiet=True)
        >>> s.images.shape, int(s.images[0, 0, 0, 0])
        (torch.Size([1, 3, 16, 16]), 255)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path.parent / f"{path.name}.lock"):
        existing = open_store(path, key)
        if existing is not None:
            return existing
        return _build(path, key, spec, workers, quiet, log, on_chunk)


def _build(
    path: Path, key: str, spec: StoreSpec, workers: int | None, quiet: bool,
    log: Callable[[str], None] | None, on_chunk: Callable[[int], None] | None,
) -> Store:
    n, c, (h, w) = len(spec.paths), spec.channels, spec.size
    partial = path.with_name(path.name + ".partial")
    build = {"format": STORE_FORMAT, "key": key, "shape": [n, c, h, w], "chunk": CHUNK}
    images, sums = partial / "images.npy", partial / "sums.npy"
    progress = partial / "progress.jsonl"
    resumed = False
    try:
        old = json.loads((partial / "build.json").read_text(encoding="utf-8"))
        resumed = old == build and images.is_file() and sums.is_file()
    except (OSError, ValueError):
        pass
    if path.exists():
        shutil.rmtree(path)  # an unreadable or stale complete store
    need = store_bytes(n, c, (h, w))
    try:
        if not resumed:
            shutil.rmtree(partial, ignore_errors=True)
            free = shutil.disk_usage(path.parent).free
            if free < need:
                raise _space_error(path.parent, need)
            partial.mkdir()
            _npy(images, (n, c, h, w), "|u1")
            _npy(sums, (n, c, 2), "<i8")
            (partial / "build.json").write_text(json.dumps(build), encoding="utf-8")
        done = _done_chunks(progress)
        return _decode_into(path, partial, key, spec, done, workers, quiet, log, on_chunk,
                            resumed)  # fmt: skip
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            shutil.rmtree(partial, ignore_errors=True)
            raise _space_error(path.parent, need) from None
        raise
    except ValueError:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _decode_into(
    path: Path, partial: Path, key: str, spec: StoreSpec, done: dict[int, dict[int, str]],
    workers: int | None, quiet: bool, log: Callable[[str], None] | None,
    on_chunk: Callable[[int], None] | None, resumed: bool,
) -> Store:
    n, c = len(spec.paths), spec.channels
    images, sums = partial / "images.npy", partial / "sums.npy"
    offsets = (_npy_offset(images), _npy_offset(sums))
    chunks = -(-n // CHUNK)
    todo = [(k, k * CHUNK, list(spec.paths[k * CHUNK : (k + 1) * CHUNK]))
            for k in range(chunks) if k not in done]  # fmt: skip
    workers = min(workers or _cpus(), max(1, len(todo)))
    fork = "fork" in mp.get_all_start_methods()
    init_args = (str(images), str(sums), offsets[0], (spec.size, c, spec.fast_jpeg, offsets[1]))
    bar, task = _progress_bar(n, min(n, len(done) * CHUNK), quiet)
    t0, decoded = time.perf_counter(), 0
    if log and resumed:
        log(f"resuming the store build in {partial}: {len(done)} of {chunks} chunks were done")
    with open(partial / "progress.jsonl", "a", encoding="utf-8") as prog, bar:
        def finished(k: int, errors: dict[int, str]) -> None:
            nonlocal decoded
            prog.write(json.dumps({"chunk": k, "errors": {str(i): e for i, e in errors.items()}})
                       + "\n")  # fmt: skip
            prog.flush()
            done[k] = errors
            size = min(CHUNK, n - k * CHUNK)
            decoded += size
            bar.update(task, advance=size, ips=decoded / max(time.perf_counter() - t0, 1e-9))
            if on_chunk is not None:
                on_chunk(len(done))

        if workers < 2 or not fork or len(todo) < 2:
            _init(*init_args)
            try:
                for t in todo:
                    finished(*_do_chunk(t))
            finally:
                _close_worker_files()
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded, fork()"
                ctx = mp.get_context("fork")
                with ctx.Pool(workers, initializer=_init, initargs=init_args) as pool:
                    for k, errors in pool.imap_unordered(_do_chunk, todo):
                        finished(k, errors)
    elapsed = time.perf_counter() - t0
    if log:
        log(f"decoded {decoded:,} images into {path} in {elapsed:.1f} s "
            f"({decoded / max(elapsed, 1e-9):,.0f} img/s, {workers} process(es))")  # fmt: skip
    return _finish(path, partial, key, spec, done)


def _npy_offset(path: Path) -> int:
    """Byte offset of the data in a ``.npy`` file (after its header)."""
    return int(np.load(path, mmap_mode="r").offset)


def _finish(path: Path, partial: Path, key: str, spec: StoreSpec,
            done: dict[int, dict[int, str]]) -> Store:
    n, c, (h, w) = len(spec.paths), spec.channels, spec.size
    errors = {i: e for errs in done.values() for i, e in errs.items()}
    ok = np.ones(n, dtype=bool)
    ok[list(errors)] = False
    np.savez(partial / "arrays.npz", ok=ok, **spec.arrays)
    for name in ("images.npy", "sums.npy"):
        with open(partial / name, "rb+") as f:
            os.fsync(f.fileno())
    manifest = {"format": STORE_FORMAT, "key": key, "shape": [n, c, h, w], "meta": spec.meta,
                "errors": {str(i): e for i, e in sorted(errors.items())}}  # fmt: skip
    tmp = partial / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest), encoding="utf-8")
    os.replace(tmp, partial / "manifest.json")
    (partial / "progress.jsonl").unlink(missing_ok=True)
    os.replace(partial, path)  # the one atomic step that makes the store complete
    return Store(path)


def open_store(path: Path, key: str | None = None) -> Store | None:
    """The complete store at ``path`` (with ``key`` when given), or None when absent/unreadable.

    Example:
        >>> open_store(Path("/nonexistent.store")) is None
        True
    """
    path = Path(path)
    if not (path / "manifest.json").is_file():
        return None
    try:
        store = Store(path)
    except Exception as e:  # a damaged store is rebuilt, never fatal
        warnings.warn(f"ignoring unreadable image store {path}: {e}", stacklevel=3)
        return None
    return store if key is None or store.key == key else None


def remove_stale(cache_dir: Path, stem: str, keep: Path) -> None:
    """Delete the other stores (complete or partial) of the same source and options."""
    for old in cache_dir.glob(f"{stem}-*.store*"):
        if old.name.endswith(".lock") or old == keep or old.name == keep.name + ".partial":
            continue
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
