"""Inference backends with one interface: normalized float32 (B, C, H, W) in, logits out.

- ``torch``: the PyTorch model in eval mode under ``torch.inference_mode``;
- ``channels_last``: the same with NHWC memory layout (faster convolutions on CPU);
- ``onnx``: ONNX Runtime with all graph optimizations (constant folding, conv+BN+ReLU fusion)
  and one intra-op thread per physical core (hyper-threads share a core's vector units, so
  more threads than cores only adds contention).

``auto`` picks the fastest one installed, as ``benchmarks/inference_speed.py`` measures them on
CPU: ONNX Runtime, else PyTorch with channels_last.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab._deps import require
from cnnlab._validate import check_choice

BACKENDS = ("auto", "torch", "channels_last", "onnx")


def physical_cores() -> int:
    """Physical CPU cores this process may use (logical CPUs / threads per core).

    Example:
        >>> physical_cores() >= 1
        True
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topo / "physical_package_id").read_text().strip()
            core = (topo / "core_id").read_text().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores))


def onnxruntime_available() -> bool:
    """True when the ``onnxruntime`` package can be imported."""
    return importlib.util.find_spec("onnxruntime") is not None


def default_backend() -> str:
    """The backend that ``"auto"`` stands for, the fastest one installed.

    ``"onnx"`` when onnxruntime is installed, else ``"channels_last"``.

    Example:
        >>> default_backend() in ("onnx", "channels_last")
        True
    """
    return "onnx" if onnxruntime_available() else "channels_last"


class Predictor:
    """Common interface: ``predictor(x)`` maps normalized float32 ``(B, C, H, W)`` to logits.

    Attributes:
        backend: ``"torch"``, ``"channels_last"`` or ``"onnx"``.
        meta: ``class_names``, ``normalization``, ``input_size`` (and ``model`` when known).
    """

    backend = ""

    def __init__(self, meta: Mapping[str, Any]) -> None:
        self.meta = dict(meta)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        size = self.meta.get("input_size")
        return f"{type(self).__name__}(backend={self.backend!r}, input_size={size})"


class TorchPredictor(Predictor):
    """A PyTorch model run eagerly (optionally channels_last) on CPU.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 3))
        >>> p = TorchPredictor(net, {"input_size": [1, 8, 8]})
        >>> p(np.zeros((2, 1, 8, 8), np.float32)).shape
        (2, 3)
    """

    def __init__(
        self, model: nn.Module, meta: Mapping[str, Any], *, channels_last: bool = False
    ) -> None:
        super().__init__(meta)
        self.channels_last = channels_last
        self.backend = "channels_last" if channels_last else "torch"
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.cpu().eval().to(memory_format=fmt)
        self._fmt = fmt

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        with torch.inference_mode():
            return self.model(t.contiguous(memory_format=self._fmt)).numpy()


class OnnxPredictor(Predictor):
    """An ONNX model (file or bytes) run by ONNX Runtime on CPU.

    Metadata comes from the model's ``metadata_props`` unless ``meta`` is given. A graph
    exported with a fixed batch size is fed in chunks of that size.

    Example:
        >>> p = OnnxPredictor("runs/digits/export/model.onnx")  # doctest: +SKIP
        >>> p.meta["class_names"][:2]  # doctest: +SKIP
        ['0', '1']
    """

    backend = "onnx"

    def __init__(
        self,
        model: str | os.PathLike | bytes,
        meta: Mapping[str, Any] | None = None,
        *,
        threads: int | None = None,
        spin_wait: bool = True,
    ) -> None:
        require("running an ONNX model", ["onnxruntime"], "export")
        import onnxruntime as ort

        from cnnlab.export._meta import from_props

        source = "<bytes>" if isinstance(model, bytes) else os.fspath(model)
        if not isinstance(model, bytes) and not Path(model).is_file():
            raise FileNotFoundError(f"ONNX model {source!r} does not exist")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or physical_cores()
        opts.inter_op_num_threads = 1
        if not spin_wait:  # idle threads sleep instead of spinning, leaving the cores free
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(
                model if isinstance(model, bytes) else source,
                sess_options=opts,
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ValueError(f"{source!r} is not a loadable ONNX model: {exc}") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if meta is None:
            from cnnlab.export._meta import verify_onnx_file

            if "cnnlab" in props:
                verify_onnx_file(model, source)
            meta = from_props(props, source)
        super().__init__(meta)
        inp = self.session.get_inputs()[0]
        self._input = inp.name
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        graph_size = [d if isinstance(d, int) else None for d in inp.shape[1:]]
        declared = list(self.meta["input_size"])
        if len(graph_size) != 3 or any(g is not None and g != d
                                       for g, d in zip(graph_size, declared)):
            raise ValueError(
                f"ONNX model {source!r}: its metadata says input_size {declared} but its graph "
                f"takes {list(inp.shape)}; re-export it with 'cnnlab export'"
            )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        b = self.fixed_batch
        if b is None or len(x) == b:
            return self.session.run(None, {self._input: x})[0]
        if len(x) % b:
            raise ValueError(
                f"this ONNX model was exported for batches of {b}; got {len(x)} images "
                "(re-export with --dynamic-batch)"
            )
        return np.concatenate(
            [self.session.run(None, {self._input: x[i : i + b]})[0] for i in range(0, len(x), b)]
        )


def _onnx_for_run(model: nn.Module, meta: dict[str, Any], checkpoint: Path) -> bytes:
    """ONNX bytes for a run's checkpoint, cached beside it keyed by the weights' digest."""
    from cnnlab.checkpoint import atomic_write_bytes
    from cnnlab.export._meta import export_meta
    from cnnlab.export.onnx import export_onnx

    digest = str(meta.get("sha256") or "")[:16]
    cache = checkpoint.parent / "export" / f"predict-{checkpoint.stem}-{digest}.onnx"
    if digest and cache.is_file():
        return cache.read_bytes()
    data, _ = export_onnx(model, export_meta(meta), dynamic_batch=True)
    if digest:
        try:
            atomic_write_bytes(cache, data)
        except OSError:  # a read-only run directory: keep it in memory only
            pass
    return data


def load_predictor(
    source: str | os.PathLike, backend: str = "auto", *, spin_wait: bool = True
) -> Predictor:
    """Open a run directory, checkpoint or ``.onnx`` file with the chosen inference backend.

    Args:
        source: ``runs/NAME``, a ``.safetensors`` checkpoint, or an exported ``.onnx`` file.
        backend: ``"auto"`` (ONNX Runtime when installed, else channels_last), ``"torch"``,
            ``"channels_last"`` or ``"onnx"``. For a run, ``onnx`` exports it (verified
            against PyTorch, cached in ``RUN/export/``) the first time.
        spin_wait: ONNX Runtime's worker threads spin between calls (fastest for back-to-back
            batches); False lets them sleep, for a server whose other threads need the cores.

    Example:
        >>> p = load_predictor("runs/digits")  # doctest: +SKIP
        >>> p.backend  # doctest: +SKIP
        'onnx'
    """
    check_choice("backend", backend, BACKENDS)
    path = Path(source)
    if backend == "auto":  # an .onnx file has one engine; a run runs on the fastest installed
        backend = "onnx" if path.suffix == ".onnx" else default_backend()
    if path.suffix == ".onnx":
        if backend != "onnx":
            raise ValueError(
                f"backend {backend!r} cannot run the ONNX file {str(path)!r}; use backend "
                "'onnx' or 'auto', or pass the run directory"
            )
        return OnnxPredictor(path, spin_wait=spin_wait)
    from cnnlab.checkpoint import load_model, resolve_checkpoint

    model, meta = load_model(path)
    if backend == "onnx":
        from cnnlab.export._meta import export_meta

        data = _onnx_for_run(model, meta, resolve_checkpoint(path))
        return OnnxPredictor(data, export_meta(meta), spin_wait=spin_wait)
    return TorchPredictor(model, meta, channels_last=backend == "channels_last")
