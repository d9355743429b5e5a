"""evaluate/predict --tta on runs trained from the disk store (images stored larger) and csv:."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch.nn.functional as F
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import center_crop
from cnnlab.prediction import predict
from cnnlab.run import Run, model_logits
from cnnlab.train import evaluate, fit


def _folder(root, n=10, size=20):
    rng = np.random.default_rng(0)
    for ci, c in enumerate(("warm", "cold")):
        (root / c).mkdir(parents=True)
        for i in range(n):
            arr = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
            arr[..., 0 if ci == 0 else 2] += 60
            arr[:, : size // 3] = 0  # a dark left band: the mirror is a different image
            Image.fromarray(arr).save(root / c / f"{i}.png")  # lossless: mirrors decode exactly
    return root


def _fit(tmp_path, dataset, name, **kw):
    return fit(dataset=dataset, image_size=16, epochs=1, batch_size=8, quiet=True, threads=1,
               report=False, out_dir=str(tmp_path / "runs"), cache_dir=str(tmp_path / "c"),
               name=name, **kw)  # fmt: skip


def _hand_tta_loss(run_dir, split, mode):
    # the run's own split, centre-cropped to the input, views by hand, mean softmax, NLL
    run = Run(run_dir)
    model, meta = run.load_model("best")
    split_data = run.load_data(None).split(split)
    x = center_crop(split_data.images[:], (16, 16)).contiguous()  # a stored split slices whole
    norm = meta["normalization"]

    def probs(v):
        return model_logits(model, v, norm["mean"], norm["std"]).softmax(1)

    if mode == "flip":
        p = (probs(x) + probs(x.flip(3))) / 2
    else:  # centre + four corners of the image zero-padded by 16 / 8 = 2
        pad = F.pad(x, (2, 2, 2, 2))
        p = sum(probs(pad[..., y : y + 16, z : z + 16].contiguous())
                for y, z in ((2, 2), (0, 0), (0, 4), (4, 0), (4, 4))) / 5
    return F.nll_loss(p.log(), split_data.labels).item()


def test_evaluate_and_predict_tta_on_a_disk_store_run(tmp_path, capsys):
    root = _folder(tmp_path / "f")
    r = _fit(tmp_path, f"folder:{root}", "disk", storage_size=20, cache="disk")
    assert json.loads((r.run_dir / "data.json").read_text())["cache"] == "disk"
    capsys.readouterr()  # what training printed
    for mode in ("flip", "crops"):
        assert main(["evaluate", str(r.run_dir), "--tta", mode, "--json"]) == 0
        m = json.loads(capsys.readouterr().out)
        assert m["tta"] == mode and 0 <= m["ece"] <= 1
        assert math.isclose(m["loss"], _hand_tta_loss(r.run_dir, "test", mode), rel_tol=1e-5)
    plain = evaluate(r.run_dir, split="test", save=False)
    assert not math.isclose(plain.metrics["loss"], m["loss"], rel_tol=1e-6)  # the views count
    # predict --tta flip: the mean of the probabilities of the image and of its mirror file
    # (20x20 files decode at the stored 20 without resampling, then centre-crop to 16)
    image = root / "warm" / "0.png"
    mirror = tmp_path / "mirror.png"
    Image.open(image).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirror)
    both = {p.source: dict(zip(p.classes, p.probs))
            for p in predict(r.run_dir, [image, mirror], top_k=2, backend="torch")}
    tta = predict(r.run_dir, [image], top_k=2, backend="torch", tta="flip")[0]
    for cls, prob in zip(tta.classes, tta.probs):
        want = (both[str(image)][cls] + both[str(mirror)][cls]) / 2
        assert math.isclose(prob, want, rel_tol=1e-5, abs_tol=1e-7), (cls, prob, want)
    assert main(["predict", str(r.run_dir), str(image), "--tta", "crops", "--backend", "torch",
                 "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert math.isclose(sum(c["prob"] for c in out[0]["top_k"]), 1.0, abs_tol=1e-5)
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(r.run_dir), str(image), "--tta", "rotate"])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_evaluate_tta_on_a_csv_run(tmp_path, capsys):
    root = _folder(tmp_path / "f")
    rows = ["path,label"] + [f"{c}/{i}.png,{c}" for c in ("warm", "cold") for i in range(10)]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    r = _fit(tmp_path, f"csv:{root / 'labels.csv'}", "csv")
    capsys.readouterr()  # what training printed
    for mode in ("flip", "crops"):
        assert main(["evaluate", str(r.run_dir), "--tta", mode, "--json"]) == 0
        m = json.loads(capsys.readouterr().out)
        assert m["tta"] == mode
        assert math.isclose(m["loss"], _hand_tta_loss(r.run_dir, "test", mode), rel_tol=1e-5)
