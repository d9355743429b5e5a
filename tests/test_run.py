"""The run directory's owner (cnnlab.run.Run) and what reads a run through it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from _utils import make_run_dir
from PIL import Image

from cnnlab.data import PRESETS, decode_image
from cnnlab.run import Run, model_logits, score_images

pytestmark = pytest.mark.usefixtures("one_thread")


def test_paths_meta_and_one_input_size(trained_run):
    run = Run(trained_run)
    assert run.checkpoint("best").name == "best.safetensors"
    assert run.checkpoint("last").name == "last.safetensors"
    assert run.input_size == [1, 16, 16] == run.meta()["input_size"]
    assert run.class_names == [str(i) for i in range(10)]
    assert run.dataset == "digits" and run.config["augment"] == "auto"
    assert run.find_eval() == run.eval_dir("test")
    with pytest.raises(ValueError, match="which must be one of 'best', 'last', 'ema'; got 'x'"):
        run.checkpoint("x")
    with pytest.raises(FileNotFoundError, match="holds no ema.safetensors"):
        run.checkpoint("ema")  # a run trained without --ema
    with pytest.raises(FileNotFoundError, match="run directory"):
        Run(trained_run / "no-such-run")


def test_load_model_and_data_as_trained_score_like_the_evaluation(trained_run):
    import json

    run = Run(trained_run)
    model, meta = run.load_model("best")
    bundle = run.load_data()
    assert bundle.image_size == (16, 16) and bundle.in_channels == 1
    assert len(bundle.train) > 300  # the whole training split, not max_train_images
    logits = model_logits(model, bundle.test.images, **run.normalization)
    saved = json.loads((run.eval_dir("test") / "metrics.json").read_text())
    acc = (logits.argmax(1) == bundle.test.labels).double().mean().item()
    assert acc == pytest.approx(saved["accuracy"], abs=1e-12)


def test_score_images_batches_agree_and_restore_training_mode():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Dropout(0.5))
    net.train()
    x = torch.randint(0, 256, (7, 1, 2, 2), dtype=torch.uint8)
    from cnnlab.data import Normalizer

    norm = Normalizer([0.5], [0.25], "cpu")
    a = score_images(net, x, norm, batch_size=3)
    b = score_images(net, x, norm, batch_size=7)
    assert net.training and torch.allclose(a, b) and a.shape == (7, 3)  # eval: no dropout


def test_config_errors_name_the_file_and_key(tmp_path):
    run_dir = make_run_dir(tmp_path)
    (run_dir / "config.yaml").write_text("dataset: digits\nseed: 1.5\n")
    with pytest.raises(ValueError, match=r"config.yaml'?: seed must be int, got 1.5"):
        _ = Run(run_dir).config
    (run_dir / "config.yaml").write_text("- a list\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        _ = Run(run_dir).config


def _photo(path, size=(48, 24), exif_orientation=None):
    """A non-square picture: a left-to-right ramp with a transparent bar (top) and a block."""
    w, h = size
    a = np.zeros((h, w, 4), dtype=np.uint8)
    a[..., 0] = np.linspace(0, 255, w)[None]
    a[..., 1] = np.linspace(255, 0, h)[:, None]
    a[..., 3] = 255
    a[: h // 4, :, 3] = 0  # transparent: must become white, as predict does
    a[h // 2 :, w // 3 : w // 2, :3] = 255
    im = Image.fromarray(a, "RGBA")
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        im.convert("RGB").save(path, exif=exif, quality=95)
    else:
        im.save(path)
    return path


@pytest.mark.parametrize("kind", ["png-rgba", "jpeg-exif-rotated"])
def test_gradcam_explains_the_tensor_predict_classifies(kind, tiny_run, tmp_path, monkeypatch):
    """viz gradcam RUN photo used to squash a photo to a square; it decodes as predict does."""
    import cnnlab.viz.gradcam as gradcam
    from cnnlab.prediction import load_images
    from cnnlab.viz.runs import run_figure

    photo = _photo(tmp_path / "photo.png") if kind == "png-rgba" else _photo(
        tmp_path / "photo.jpg", exif_orientation=6)
    meta = Run(tiny_run).meta()
    seen = {}
    real = gradcam.plot_grad_cam

    def spy(model, x, *args, **kwargs):
        seen["x"] = x.clone()
        return real(model, x, *args, **kwargs)

    monkeypatch.setattr(gradcam, "plot_grad_cam", spy)
    run_figure("gradcam", tiny_run, photo)
    images, _ = load_images([photo], meta["input_size"])  # what predict feeds the model
    from cnnlab.data import to_float_normalized

    expected = to_float_normalized(images, **meta["normalization"])[0]
    assert torch.equal(seen["x"], expected)
    squashed = Image.open(photo).convert("L").resize((32, 32), Image.BILINEAR)
    assert not torch.equal(images[0, 0], torch.from_numpy(np.array(squashed)))  # can fail


def test_decode_image_keeps_the_aspect_ratio_and_reports_bad_files(tmp_path):
    photo = _photo(tmp_path / "p.png", size=(40, 20))
    x = decode_image(photo, [3, 10, 10])  # shorter side 20 -> 10, width 20 -> centre 10
    ref = np.asarray(Image.open(photo).convert("RGBA").resize((20, 10), Image.BILINEAR))
    assert x.shape == (3, 10, 10) and x.dtype == torch.uint8
    assert abs(int(x[0, 5, 0]) - int(ref[5, 5, 0])) <= 2  # the crop starts 5 px in
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image .*bad.png"):
        decode_image(tmp_path / "bad.png", [3, 10, 10])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        decode_image(tmp_path / "missing.png", [3, 10, 10])


@pytest.mark.parametrize("augment", ["auto", *PRESETS, "crop=2,flip,rotate=5"])
def test_augmentation_preview_for_every_augment_value(augment, trained_run, tmp_path):
    from cnnlab.viz._run import RunView
    from cnnlab.viz.runs import augmentation_figure

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    config = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text(config.replace("augment: auto", f"augment: {augment}"))
    fig, text = augmentation_figure(RunView(run_dir, None))
    assert text.startswith(f"augmentation {augment!r}")
    if augment == "auto":
        assert "'crop' for digits" in text  # the preset training used for digits


def test_default_report_has_its_augmentation_preview(trained_run):
    html = (trained_run / "report.html").read_text()
    assert ">Augmentation preview<" in html
    assert "could not be made" not in html
