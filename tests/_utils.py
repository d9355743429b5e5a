"""Helpers the test modules share: tiny runs written by hand, digit images, HTML checks.

Fixtures built from these live in conftest.py; no test module imports another.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnlab.checkpoint import save_checkpoint

CLASSES = (0, 1, 2)
SIZE = 32  # simple_cnn's own size (its adaptive pool is then the identity)


# Headless Chromium with nothing that reaches the network (this machine has none): both browser
# test modules start it with these, plus their own profile folder and window size.
HEADLESS_CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
    "--disable-extensions",
)

@contextlib.contextmanager
def single_thread():
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


IMG_TAG = re.compile(r"<img [^>]*src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"")
NETWORK_REF = re.compile(r"(?:src|href|url)\s*[=(]\s*[\"']?\s*(?:https?:)?//", re.I)


def make_run_dir(
    root: Path,
    *,
    dataset: str = "folder:/nonexistent/cnnlab-data",
    checkpoint: bool = True,
    metrics: bool = True,
) -> Path:
    """A run directory written by hand from docs/run-directory.md (no training needed)."""
    from cnnlab.models import create

    run = root / "handmade"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        f"dataset: {dataset}\nmodel: simple_cnn\nepochs: 3\naugment: crop-flip\nlr: 0.003\n"
    )
    (run / "data.json").write_text(
        json.dumps(
            {
                "source": dataset,
                "class_names": ["cat", "dog", "eel"],
                "num_classes": 3,
                "split_sizes": {"train": 30, "val": 6, "test": 6},
                "in_channels": 1,
                "image_size": [16, 16],
                "mean": [0.4],
                "std": [0.2],
            }
        )
    )
    if metrics:
        (run / "metrics.csv").write_text(
            "epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_time_s,images_per_s\n"
            "1,1.05,0.40,1.00,0.50,0.003,0.5,60\n2,0.80,0.62,0.90,0.67,0.002,0.5,60\n"
            "3,0.60,0.75,0.95,0.60,0.0005,0.5,60\n"
        )
    if checkpoint:
        torch.manual_seed(0)
        model = create("simple_cnn", num_classes=3, in_channels=1)
        meta = {
            "model": {"name": "simple_cnn", "kwargs": {"num_classes": 3, "in_channels": 1}},
            "class_names": ["cat", "dog", "eel"],
            "normalization": {"mean": [0.4], "std": [0.2]},
            "input_size": [1, 16, 16],
            "epoch": 2,
            "metrics": {"val_acc": 0.67, "val_loss": 0.9},
        }
        save_checkpoint(run / "best.safetensors", model, meta)
    return run


def embedded_pngs(html: str) -> list[np.ndarray]:
    return [
        np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("L"), dtype=float)
        for b in IMG_TAG.findall(html)
    ]


def assert_self_contained(html: str) -> None:
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert not NETWORK_REF.search(html), NETWORK_REF.search(html).group(0)
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
