"""Resume: a run SIGKILLed mid-training and resumed ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from cnnlab.checkpoint import STATE_FILE, load_state, read_checkpoint
from cnnlab.cli import main
from cnnlab.train import fit

EPOCHS = 5
KILL_AFTER = 2  # epochs finished when the kill lands


def _flags(tmp_path):
    return ["--image-size", "8", "--max-train-images", "256", "--batch-size", "32",
            "--epochs", str(EPOCHS), "--threads", "1", "--quiet", "--no-report",
            "--eval-split", "none", "--augment", "crop", "--model", "simple_cnn_dropout",
            "--out-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")]


def _rows(run_dir):
    with (run_dir / "metrics.csv").open() as f:
        return [{k: v for k, v in r.items() if k not in ("epoch_time_s", "images_per_s")}
                for r in csv.DictReader(f)]


def _finished_epochs(run_dir):
    try:
        return len(_rows(run_dir))
    except (FileNotFoundError, ValueError):
        return 0


@pytest.mark.slow
def test_sigkilled_run_resumes_to_identical_result(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run_dir = tmp_path / "runs" / "killed"
    cmd = [sys.executable, "-m", "cnnlab", "train", *_flags(tmp_path), "--name", "killed"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while _finished_epochs(run_dir) < KILL_AFTER and proc.poll() is None:
        assert time.monotonic() < deadline, "training never finished its first epochs"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode()
    finished = load_state(run_dir / STATE_FILE)["epoch"]  # what --resume continues from
    assert KILL_AFTER <= finished < EPOCHS  # the kill really landed mid-training

    resumed = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "--resume", str(run_dir)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run_dir} after epoch {finished}" in resumed.stdout

    # The same run, never interrupted (in this process, same settings and seed).
    reference = fit(image_size=8, max_train_images=256, batch_size=32, epochs=EPOCHS,
                    threads=1, quiet=True, report=False, eval_split=None, augment="crop",
                    model="simple_cnn_dropout", out_dir=str(tmp_path / "runs"),
                    cache_dir=str(tmp_path / "cache"), name="reference")
    assert _rows(run_dir) == _rows(reference.run_dir)
    assert len(_rows(run_dir)) == EPOCHS
    for name in ("last.safetensors", "best.safetensors"):
        a, meta_a = read_checkpoint(run_dir / name)
        b, meta_b = read_checkpoint(reference.run_dir / name)
        assert meta_a["epoch"] == meta_b["epoch"]
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    return fit(image_size=8, max_train_images=128, batch_size=32, epochs=2, threads=1,
               quiet=True, report=False, eval_split=None, out_dir=str(tmp / "runs"),
               cache_dir=str(tmp / "cache"))


def test_resume_extends_epochs_and_refuses_other_changes(finished_run, tmp_path):
    run_dir = finished_run.run_dir
    with pytest.raises(ValueError, match="cannot change: lr"):
        fit(resume=run_dir, lr=0.5)
    again = fit(resume=run_dir)
    assert again.stopped == "already_complete" and len(again.history) == 2
    more = fit(resume=run_dir, epochs=3)
    assert [r["epoch"] for r in more.history] == [1, 2, 3]
    _, meta = read_checkpoint(run_dir / "last.safetensors")
    assert meta["epoch"] == 3


def test_resume_needs_a_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.yaml"):
        fit(resume=tmp_path)


def test_truncated_and_tampered_checkpoints_are_clear_errors(finished_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(finished_run.run_dir, run_dir)
    last = run_dir / "last.safetensors"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # truncated
    assert main(["evaluate", str(run_dir), "--checkpoint", "last"]) == 2
    assert "truncated" in capsys.readouterr().err

    tampered = bytearray(data)
    tampered[-10] ^= 0xFF  # one flipped bit pattern inside the last tensor's bytes
    last.write_bytes(bytes(tampered))
    with pytest.raises(ValueError, match="integrity check"):
        read_checkpoint(last)

    state = run_dir / STATE_FILE
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt"):
        fit(resume=run_dir)
