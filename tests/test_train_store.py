"""Training from the disk store: same run as from RAM, full-resolution crops, --max-steps."""

from __future__ import annotations

import json

import numpy as np
import torch
import yaml
from PIL import Image

from cnnlab.checkpoint import read_checkpoint
from cnnlab.cli import main
from cnnlab.train import evaluate, fit


def _folder(root, n=24):
    rng = np.random.default_rng(0)
    for ci, c in enumerate(("warm", "cold")):
        (root / c).mkdir(parents=True)
        for i in range(n):
            arr = rng.integers(0, 120, (30, 26, 3), dtype=np.uint8)
            arr[..., 0 if ci == 0 else 2] += 25  # a faint colour cast: learnable, not at once
            Image.fromarray(arr).save(root / c / f"{i}.jpg", quality=90)
    return root


def _fit(tmp_path, name, **kw):
    opts = dict(dataset=f"folder:{tmp_path / 'f'}", image_size=16, storage_size=20, epochs=2,
                batch_size=8, quiet=True, threads=1, report=False, out_dir=str(tmp_path / "runs"),
                cache_dir=str(tmp_path / f"cache-{name}"), name=name)  # fmt: skip
    return fit(**{**opts, **kw})


def test_disk_store_trains_exactly_like_the_resident_one(tmp_path):
    _folder(tmp_path / "f")
    ram = _fit(tmp_path, "ram", cache="ram")
    disk = _fit(tmp_path, "disk", cache="disk")
    data = json.loads((disk.run_dir / "data.json").read_text())
    assert data["cache"] == "disk" and data["crop_size"] == [16, 16]
    keys = ("train_loss", "train_acc", "val_loss", "val_acc")
    assert [[r[k] for k in keys] for r in ram.history] == [[r[k] for k in keys]
                                                           for r in disk.history]  # fmt: skip
    (a, _), (b, meta) = (read_checkpoint(r.run_dir / "last.safetensors") for r in (ram, disk))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert meta["input_size"] == [3, 16, 16] and meta["resize_size"] == 20
    assert disk.eval["accuracy"] == ram.eval["accuracy"]
    again = evaluate(disk.run_dir, split="val", save=False)  # reloads the store: centre crops
    assert again.metrics["num_images"] == 4
    assert again.accuracy == max(r["val_acc"] for r in disk.history)  # same crops as in training


def test_max_steps_stops_the_run_and_is_recorded(tmp_path):
    _folder(tmp_path / "f")
    r = _fit(tmp_path, "steps", epochs=5, max_steps=7, cache="disk")  # 5 steps per epoch
    assert r.stopped == "max_steps" and len(r.history) == 2
    assert [row["steps"] for row in r.history] == [5, 2]
    assert yaml.safe_load((r.run_dir / "config.yaml").read_text())["max_steps"] == 7
    again = fit(resume=str(r.run_dir))  # every step was made: nothing more to train
    assert again.stopped == "already_complete" and len(again.history) == 2


def test_cli_flags(tmp_path, capsys):
    _folder(tmp_path / "f", n=8)
    code = main(["train", "--dataset", f"folder:{tmp_path / 'f'}", "--image-size", "16",
                 "--storage-size", "24", "--cache", "disk", "--max-steps", "1", "--quiet",
                 "--no-report", "--out-dir", str(tmp_path / "runs"),
                 "--cache-dir", str(tmp_path / "c")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "memory-mapped disk store (--cache disk)" in out and "16x16 crops" in out
    assert "stopped after --max-steps 1" in out
    assert main(["train", "--dataset", f"folder:{tmp_path / 'f'}", "--cache", "tape"]) == 2
    assert "cache must be one of" in capsys.readouterr().err
    assert main(["train", "--dataset", f"folder:{tmp_path / 'f'}", "--image-size", "16",
                 "--storage-size", "8", "--cache-dir", str(tmp_path / "c")]) == 2
    assert "storage_size (8) must be at least image_size (16)" in capsys.readouterr().err
