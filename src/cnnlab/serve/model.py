"""The served model: the predictor ``cnnlab predict`` would use, its model card and Grad-CAM.

Scoring is :func:`cnnlab.prediction.predict`'s, step for step: the run's mean/std normalization,
the backend's logits, a float64 softmax and a stable sort (ties: lower class index first), so the
server's top-k equals the command's for the same image. Grad-CAM needs gradients, so it runs on a
separate PyTorch copy of the model (never the inference backend's), one image at a time.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.data import Normalizer
from cnnlab.prediction import Prediction, softmax


def model_card(source: str | os.PathLike, meta: dict[str, Any], backend: str) -> dict[str, Any]:
    """What the page shows about the model: name, classes, input size, accuracy, date, backend.

    The test accuracy is ``eval/test/metrics.json`` of the run (written by ``cnnlab train`` and
    ``cnnlab evaluate``); without it, the checkpoint's validation accuracy, labelled as such.
    The date is the checkpoint's (or ONNX file's) modification time, UTC.

    Example:
        >>> meta = {"class_names": ["a", "b"], "input_size": [1, 8, 8]}
        >>> model_card("m.onnx", meta, "onnx")["classes"]
        ['a', 'b']
    """
    from cnnlab.checkpoint import resolve_checkpoint
    from cnnlab.run import read_json

    path = Path(source)
    try:
        file = path if path.suffix == ".onnx" else resolve_checkpoint(path)
        stamp = dt.datetime.fromtimestamp(file.stat().st_mtime, dt.timezone.utc)
        date = stamp.strftime("%Y-%m-%d %H:%M UTC")
    except OSError:
        file, date = path, None
    run_dir = path if path.is_dir() else file.parent
    spec = meta.get("model") or {}
    accuracy, accuracy_split = None, None
    for split in ("test", "val"):
        doc = read_json(run_dir / "eval" / split / "metrics.json")
        if isinstance(doc, dict) and isinstance(doc.get("accuracy"), (int, float)):
            accuracy, accuracy_split = float(doc["accuracy"]), split
            break
    if accuracy is None:
        val = (meta.get("metrics") or {}).get("val_acc")
        if isinstance(val, (int, float)):
            accuracy, accuracy_split = float(val), "val (at the checkpoint)"
    return {
        "name": run_dir.name if path.suffix != ".onnx" else path.name,
        "model": spec.get("name"),
        "classes": [str(c) for c in meta["class_names"]],
        "input_size": [int(v) for v in meta["input_size"]],
        "accuracy": accuracy,
        "accuracy_split": accuracy_split,
        "date": date,
        "epoch": meta.get("epoch"),
        "backend": backend,
    }


class ServedModel:
    """A model ready to serve: uint8 batches in, probabilities and top-k out.

    Args:
        source: ``runs/NAME``, a ``.safetensors`` checkpoint or an exported ``.onnx`` file.
        backend: as ``cnnlab predict --backend`` (``auto``: ONNX Runtime when installed, else
            PyTorch channels_last).
        top_k: classes reported per image (capped at the class count).
        gradcam: keep a PyTorch copy for Grad-CAM (not possible for an ``.onnx`` file).

    Example:
        >>> m = ServedModel("runs/digits-simple_cnn")  # doctest: +SKIP
        >>> probs = m.probs(np.zeros((1, 1, 32, 32), np.uint8))  # doctest: +SKIP
        >>> m.top_k(probs[0], "x")["top_k"][0]  # doctest: +SKIP
        {'class': '1', 'index': 1, 'prob': 0.31}
    """

    def __init__(
        self,
        source: str | os.PathLike,
        backend: str = "auto",
        top_k: int = 5,
        gradcam: bool = True,
    ) -> None:
        from cnnlab._validate import check_int
        from cnnlab.export.backends import load_predictor

        check_int("top_k", top_k, min_value=1)
        # ONNX Runtime's threads sleep between batches: the event loop needs the cores then
        # (benchmarks/serve_load.py, 32 clients, 2 cores, one 10 s trial each: 477 images/s
        # with sleeping threads, 419 with spinning ones).
        self.predictor = load_predictor(source, backend, spin_wait=False)
        meta = self.predictor.meta
        self.class_names = [str(c) for c in meta["class_names"]]
        self.input_size = [int(v) for v in meta["input_size"]]
        self.mean = [float(v) for v in meta["normalization"]["mean"]]
        self.std = [float(v) for v in meta["normalization"]["std"]]
        self.k = min(top_k, len(self.class_names))
        self._norm = Normalizer(self.mean, self.std, "cpu")  # predict's normalization
        self.card = model_card(source, meta, self.predictor.backend)
        self._cam_model: torch.nn.Module | None = None
        self._cam_lock = threading.Lock()
        if gradcam and Path(source).suffix != ".onnx":
            from cnnlab.checkpoint import load_model

            self._cam_model, _ = load_model(source)
        self.card["gradcam"] = self._cam_model is not None

    @property
    def has_gradcam(self) -> bool:
        """True when Grad-CAM can be computed (a run or checkpoint, not an ``.onnx`` file)."""
        return self._cam_model is not None

    def _normalized(self, x: np.ndarray) -> torch.Tensor:
        return self._norm(torch.from_numpy(x))  # (B, C, H, W) float32

    def probs(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(B, K)`` (float64) of uint8 images ``(B, C, H, W)``."""
        logits = self.predictor(self._normalized(x).numpy())
        return softmax(logits.astype(np.float64))

    def top_k(self, probs: np.ndarray, source: str) -> dict[str, Any]:
        """``cnnlab predict --format json``'s entry for one image's probabilities ``(K,)``."""
        idx = np.argsort(-probs[None], axis=1, kind="stable")[0, : self.k]
        return Prediction(
            source=source,
            classes=[self.class_names[i] for i in idx],
            probs=[float(probs[i]) for i in idx],
            indices=[int(i) for i in idx],
        ).to_dict()

    def gradcam_png(self, x: np.ndarray, display: int = 224) -> dict[str, Any]:
        """Grad-CAM of the top class over one uint8 image ``(C, H, W)``, as a PNG data URL.

        Returns ``{"class", "index", "prob", "layer", "overlay"}``; the overlay is the decoded
        model input with the heatmap blended on it, enlarged to ``display`` pixels wide.

        Raises:
            ValueError: the model is an ``.onnx`` file (no gradients to follow).
        """
        from PIL import Image

        from cnnlab.viz.gradcam import grad_cam, heatmap_overlay

        if self._cam_model is None:
            raise ValueError("Grad-CAM needs the PyTorch model: serve the run directory")
        image = self._normalized(x[None])[0]
        with self._cam_lock, torch.enable_grad():
            cam = grad_cam(self._cam_model, image)
        shown = x.transpose(1, 2, 0).astype(np.float64) / 255  # (H, W, C) in [0, 1]
        shown = shown[..., 0] if shown.shape[2] == 1 else shown
        rgb = heatmap_overlay(shown, cam.heatmap.numpy())  # (H, W, 3)
        im = Image.fromarray(np.clip(rgb * 255, 0, 255).round().astype(np.uint8), "RGB")
        h, w = rgb.shape[:2]
        im = im.resize((display, max(1, round(display * h / w))), Image.BILINEAR)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return {
            "class": self.class_names[cam.class_index],
            "index": cam.class_index,
            "prob": round(cam.probability, 6),
            "layer": cam.layer,
            "overlay": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"),
        }
