"""A tiny trained run directory shared by the export and predict tests (no tests here)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnlab.checkpoint import save_checkpoint

CLASSES = (0, 1, 2)
SIZE = 32  # simple_cnn's own size (its adaptive pool is then the identity)


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread: these models are tiny, and on a shared CPU extra threads only
    wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def digits_images(classes=CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits of ``classes`` as uint8 (N, 8, 8) arrays scaled to 0..255."""
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = np.isin(d.target, classes)
    return (d.images[keep] * (255 / 16)).round().astype(np.uint8), d.target[keep]


def make_run(run_dir: Path, steps: int = 20) -> Path:
    """Train simple_cnn (1 channel, 32x32) on digits 0-2 for a few steps; save a run directory."""
    from cnnlab.data import to_float_normalized
    from cnnlab.data._convert import resize_uint8
    from cnnlab.models import create

    images, labels = digits_images()
    x8 = torch.from_numpy(images[:, None])  # (N, 1, 8, 8) uint8
    x = resize_uint8(x8, (SIZE, SIZE))
    mean, std = [x.float().div(255).mean().item()], [x.float().div(255).std().item()]
    xn, y = to_float_normalized(x, mean, std), torch.from_numpy(labels).long()
    torch.manual_seed(0)
    model = create("simple_cnn", num_classes=len(CLASSES), in_channels=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randperm(len(xn), generator=g)[:32]
        loss = torch.nn.functional.cross_entropy(model(xn[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    meta = {
        "model": {"name": "simple_cnn", "kwargs": {"num_classes": 3, "in_channels": 1}},
        "class_names": ["zero", "one", "two"],
        "normalization": {"mean": mean, "std": std},
        "input_size": [1, SIZE, SIZE],
        "epoch": 1,
    }
    save_checkpoint(run_dir / "best.safetensors", model.eval(), meta)
    return run_dir


_SHARED: dict[str, Path] = {}


def shared_run() -> Path:
    """One trained run for the whole test session (export and predict tests share it)."""
    if "run" not in _SHARED:
        import atexit
        import shutil
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="cnnlab-test-run-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        with one_thread():
            _SHARED["run"] = make_run(root / "run")
    return _SHARED["run"]


def write_digit_pngs(folder: Path, n: int = 12) -> list[tuple[Path, int]]:
    """Write ``n`` digit images (0-2) as 8x8 grayscale PNGs; returns (path, label) pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = digits_images()
    out = []
    for i in range(n):
        j = i * 37 % len(images)
        path = folder / f"digit_{i:02d}.png"
        Image.fromarray(images[j], "L").save(path)
        out.append((path, int(labels[j])))
    return out
