"""Every cnnlab.viz figure function returns a Figure, writes a non-empty file, opens no window."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

import cnnlab.viz as viz


def tiny_cnn(in_channels: int = 3, num_classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes),
    )


IMAGES = torch.randint(0, 256, (6, 3, 12, 12), dtype=torch.uint8)
LABELS = torch.tensor([0, 1, 2, 0, 1, 2])
LOGITS = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
METRICS = {
    "epoch": [1, 2, 3], "train_loss": [1.2, 0.8, 0.5], "train_acc": [0.5, 0.7, 0.8],
    "val_loss": [1.0, 0.9, 0.7], "val_acc": [0.55, 0.72, 0.7], "lr": [1e-3, 5e-4, 1e-4],
}

FIGURES = {
    "curves": lambda: viz.plot_curves(METRICS),
    "confusion": lambda: viz.plot_confusion([[5, 1, 0], [2, 7, 1], [0, 0, 9]], ["a", "b", "c"]),
    "confusion_counts": lambda: viz.plot_confusion(np.eye(25, dtype=int) * 3, normalize="none"),
    "most_confused": lambda: viz.plot_most_confused([[5, 1], [2, 7]], ["cat", "dog"]),
    "predictions": lambda: viz.plot_predictions(IMAGES, LABELS, LOGITS.argmax(1), ["a", "b", "c"],
                                                LOGITS.softmax(1).max(1).values),
    "top_losses": lambda: viz.plot_top_losses(IMAGES, LABELS, LOGITS, ["a", "b", "c"], k=4),
    "dataset": lambda: viz.plot_dataset_preview(IMAGES, LABELS, ["a", "b", "c"], per_class=2),
    "augmentation": lambda: viz.plot_augmentation_preview(IMAGES[:2], lambda x: x.flip(-1), n_views=2),
    "filters": lambda: viz.plot_filters(tiny_cnn()),
    "filters_gray": lambda: viz.plot_filters(tiny_cnn(1)),
    "features": lambda: viz.plot_feature_maps(tiny_cnn(), torch.rand(3, 12, 12), "1", top_n=4),
    "gradcam": lambda: viz.plot_grad_cam(tiny_cnn(), torch.rand(3, 12, 12), class_names=["a", "b", "c"]),
    "gradcam_chosen": lambda: viz.plot_grad_cam(tiny_cnn(), torch.rand(3, 12, 12), class_index=2),
    "receptive": lambda: viz.plot_receptive_field(tiny_cnn(), torch.rand(3, 12, 12), layer="3"),
    "conv": lambda: viz.explain_conv(5, 3, stride=2, padding=1, step=4),
    "conv_dilated": lambda: viz.explain_conv(7, 3, dilation=2),
    "max_pool": lambda: viz.explain_pool(4, 2, mode="max", padding=1),
    "avg_pool": lambda: viz.explain_pool(4, 2, mode="avg"),
    "transposed": lambda: viz.explain_transposed_conv(2, 3, stride=2, padding=1, step=3),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_returns_figure_and_writes_a_png(name, tmp_path):
    fig = FIGURES[name]()
    assert isinstance(fig, Figure)
    png = viz.save_figure(fig, tmp_path / f"{name}.png", dpi=50)
    assert png.stat().st_size > 1000
    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pixels.std() > 5, "the PNG is blank"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["curves", "predictions", "conv"])
def test_figures_write_svg(name, tmp_path):
    svg = viz.save_figure(FIGURES[name](), tmp_path / f"{name}.svg")
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and len(text) > 5000


def test_save_figure_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"out must end in one of .png"):
        viz.save_figure(viz.plot_curves(METRICS), tmp_path / "curves.jpeg")


def test_gif_animates_every_step(tmp_path):
    plan = viz.pool_plan(4, 2, mode="max")  # 2x2 outputs -> 4 frames
    gif = viz.save_gif(plan, tmp_path / "pool.gif", dpi=40)
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == len(plan.steps) == 4
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("L"), dtype=float))
    assert all(np.abs(frames[i] - frames[i + 1]).sum() > 0 for i in range(3)), "frames must differ"
    with pytest.raises(ValueError, match=r"must end in \.gif"):
        viz.save_gif(plan, tmp_path / "pool.png")


@pytest.mark.slow
def test_no_window_backend_is_agg_and_pyplot_unused():
    code = textwrap.dedent("""
        import os, sys, torch
        os.environ.pop("MPLBACKEND", None)
        import cnnlab.viz as viz
        import matplotlib
        fig = viz.plot_filters(torch.nn.Conv2d(3, 4, 3).weight)
        viz.explain_conv(4, 2)
        print(matplotlib.get_backend().lower(), "matplotlib.pyplot" in sys.modules)
    """)
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("MPLBACKEND", "DISPLAY")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert out == ["agg", "False"]


def test_backend_choice_only_when_none_was_made(monkeypatch):
    import importlib

    import matplotlib

    from cnnlab.viz import _backend

    calls = []
    monkeypatch.setattr(matplotlib, "use", lambda name, **kw: calls.append(name))
    monkeypatch.delitem(sys.modules, "matplotlib.pyplot", raising=False)
    monkeypatch.setenv("MPLBACKEND", "svg")  # the user chose: leave it
    importlib.reload(_backend)
    assert calls == []
    monkeypatch.delenv("MPLBACKEND")
    importlib.reload(_backend)
    assert calls == ["Agg"]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: viz.plot_predictions(IMAGES, LABELS[:3], LABELS, None), "same length"),
        (lambda: viz.plot_predictions(torch.rand(3, 8, 8), [0], [0]), r"\(N, C, H, W\)"),
        (lambda: viz.plot_confusion([[1, 2, 3]]), "must be square"),
        (lambda: viz.plot_confusion([[1, 0], [0, 1]], ["a"]), "class_names has 1 names"),
        (lambda: viz.plot_confusion([[1]], normalize="rows"), "normalize must be one of"),
        (lambda: viz.plot_feature_maps(tiny_cnn(), torch.rand(3, 12, 12), "nope"), "layer 'nope'"),
        (lambda: viz.plot_feature_maps(tiny_cnn(), torch.rand(3, 12, 12), "7"), "not a \\(1, C, H, W\\)"),
        (lambda: viz.grad_cam(tiny_cnn(), torch.rand(3, 12, 12), class_index=3), r"class_index must be in \[0, 2\]"),
        (lambda: viz.receptive_field(tiny_cnn(), torch.rand(3, 12, 12), "3", (9, 0)), "unit must be"),
        (lambda: viz.explain_conv(3, 5), "kernel"),
        (lambda: viz.explain_conv(5, 3, stride=0), "stride must be >= 1"),
        (lambda: viz.explain_pool(4, 2, padding=2), "padding must be at most"),
        (lambda: viz.explain_pool(4, 2, mode="min"), "mode must be one of"),
        (lambda: viz.explain_conv(5, 3, step=9), r"step must be in \[0, 8\]"),
        (lambda: viz.plot_curves({"epoch": [1], "foo": [2]}), "none of the columns"),
        (lambda: viz.plot_augmentation_preview(IMAGES), "exactly one of augment"),
    ],
)
def test_bad_input_raises_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_read_metrics_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.csv"):
        viz.read_metrics(tmp_path)
