"""cnnlab predict: run directory and exported ONNX give the same top-k; messy inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _utils import write_digit_pngs
from PIL import Image

from cnnlab.cli import main
from cnnlab.export import export
from cnnlab.prediction import collect_images, load_images, predict, softmax

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_run):
    root = tmp_path_factory.mktemp("predict")
    run = tiny_run
    onnx_path = export(run, "onnx", dynamic_batch=True, out=root / "model.onnx").path
    images = write_digit_pngs(root / "images")
    return run, onnx_path, images


def test_run_dir_and_onnx_give_the_same_top_k(trained):
    run, onnx_path, images = trained
    paths = [p for p, _ in images]
    by_torch = predict(run, paths, top_k=3, backend="torch")
    by_onnx = predict(onnx_path, paths, top_k=3)
    by_run_onnx = predict(run, paths, top_k=3, backend="onnx")
    assert len(by_torch) == len(paths)
    for a, b, c in zip(by_torch, by_onnx, by_run_onnx):
        assert a.source == b.source and a.classes == b.classes == c.classes
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)
        assert sorted(a.classes) == ["one", "two", "zero"]
        assert a.probs == sorted(a.probs, reverse=True) and sum(a.probs) == pytest.approx(1)
    # the images go through the saved normalization and size: a trained model is mostly right
    names = ["zero", "one", "two"]
    correct = sum(r.classes[0] == names[label] for r, (_, label) in zip(by_onnx, images))
    assert correct >= 0.75 * len(images)


def test_folders_skip_non_images_and_broken_files_with_warnings(trained, tmp_path):
    run, onnx_path, images = trained
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    Image.open(images[0][0]).convert("RGBA").save(folder / "sub" / "rgba.png")
    Image.open(images[1][0]).convert("P").save(folder / "palette.gif")
    Image.open(images[2][0]).convert("RGB").resize((30, 20)).save(folder / "big.jpg")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.warns(UserWarning) as record:
        results = predict(onnx_path, [folder], top_k=2)
    messages = " | ".join(str(w.message) for w in record)
    assert "skipped 1 non-image file(s)" in messages and "notes.txt" in messages
    assert "skipped 1 unreadable image(s)" in messages and "broken.png" in messages
    assert [r.source.split("/")[-1] for r in results] == ["big.jpg", "palette.gif", "rgba.png"]
    assert all(len(r.classes) == 2 for r in results)


def test_pil_images_and_top_k_capped_at_class_count(trained):
    run, _, images = trained
    pil = Image.open(images[0][0]).convert("RGB")  # converted to the model's 1 channel
    (result,) = predict(run, [pil], top_k=10, backend="torch")
    assert result.source == "<image 0>" and len(result.classes) == 3
    assert result.to_dict()["top_k"][0]["class"] == result.classes[0]
    import cnnlab

    assert cnnlab.predict(run, [pil], top_k=10, backend="torch") == [result]  # cnnlab.predict(...)


def test_bad_inputs(trained, tmp_path):
    run, _, _ = trained
    with pytest.raises(FileNotFoundError, match="nope.png' does not exist"):
        predict(run, [tmp_path / "nope.png"])
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        predict(run, [tmp_path], top_k=0)
    with pytest.raises(ValueError, match="backend must be one of"):
        predict(run, [tmp_path], backend="tensorrt")
    (tmp_path / "a.txt").write_text("x")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no readable image"):
        predict(run, [tmp_path])


def test_softmax_and_loader_helpers():
    p = softmax(np.array([[1000.0, 1000.0, -1000.0]]))  # no overflow
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]])
    x, names = load_images([Image.new("L", (3, 9), 255)], [3, 4, 4])
    assert x.shape == (1, 3, 4, 4) and int(x.min()) == 255 and names == ["<image 0>"]
    assert collect_images([]) == []


def test_cli_predict_json_and_table(trained, capsys):
    run, onnx_path, images = trained
    argv = ["predict", str(onnx_path), str(images[0][0]), "--top-k", "2", "--format", "json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["image"] == str(images[0][0]) and len(out[0]["top_k"]) == 2
    assert main(["predict", str(run), str(images[0][0]), "--backend", "torch"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0] == str(images[0][0]) and table.count("%") == 3
    assert main(["predict", str(run), "missing.png"]) == 2
    assert "missing.png' does not exist" in capsys.readouterr().err
