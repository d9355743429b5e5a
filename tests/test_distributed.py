"""torchrun training with 2 gloo processes on the CPU: same run as one process, one writer,
exact resume after a killed rank or a killed group, no hang when a rank fails; fp16 GradScaler
and gradient accumulation in one process."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.checkpoint import STATE_FILE, load_state, read_checkpoint
from cnnlab.train import fit

SCRIPT = Path(__file__).with_name("_torchrun_fit.py")
TIMEOUT = 300  # seconds; a hang fails the test instead of blocking the suite (2 loaded cores)

# Tiny digits runs: 8x8 images, 256 training images, no augmentation (the same batches on 1 or
# 2 processes) and simple_cnn (no batch norm, no dropout).
SAME = dict(image_size=8, max_train_images=256, batch_size=64, epochs=2, threads=1, quiet=True,
            report=False, augment="none", model="simple_cnn", lr=3e-3)
# Runs with per-process randomness (random crops, dropout) for the resume tests.
RANDOM = dict(image_size=8, max_train_images=256, batch_size=32, epochs=4, threads=1, quiet=True,
              report=False, eval_split=None, augment="crop", model="simple_cnn_dropout")


def _torchrun(tmp: Path, options: dict, mode: str = "none", *extra: str,
              module: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node=2", *extra]
    target = (["-m", "cnnlab", "train", *options["argv"]] if module
              else [str(SCRIPT), json.dumps(options), mode])
    return subprocess.run([*launcher, *target], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=tmp)


def _paths(tmp: Path) -> dict:
    return {"out_dir": str(tmp / "runs"), "cache_dir": str(tmp / "cache")}


def _rows(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open() as f:
        return [{k: v for k, v in r.items() if k not in ("epoch_time_s", "images_per_s")}
                for r in csv.DictReader(f)]


def _max_diff(a_dir: Path, b_dir: Path) -> float:
    a, _ = read_checkpoint(a_dir / "last.safetensors")
    b, _ = read_checkpoint(b_dir / "last.safetensors")
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("ddp")


@pytest.fixture(scope="module")
def one_process(tmp):
    """The reference: one process, global batch 64."""
    return fit(**SAME, **_paths(tmp), name="one")


@pytest.mark.slow
def test_two_ranks_equal_one_process_and_only_rank0_writes(tmp, one_process):
    # Every rank but 0 raises on any write under tmp: the run finishing proves the one writer.
    proc = _torchrun(tmp, {**SAME, **_paths(tmp), "name": "two"}, f"watch:{tmp}")
    _ok(proc)
    two = tmp / "runs" / "two"
    assert _max_diff(one_process.run_dir, two) <= 1e-5
    a, b = _rows(one_process.run_dir), _rows(two)
    assert [r["val_acc"] for r in a] == [r["val_acc"] for r in b]
    assert [r["train_acc"] for r in a] == [r["train_acc"] for r in b]
    m1 = json.loads((one_process.run_dir / "eval/test/metrics.json").read_text())
    m2 = json.loads((two / "eval/test/metrics.json").read_text())
    test_size = json.loads((two / "data.json").read_text())["split_sizes"]["test"]
    assert m2["num_images"] == m1["num_images"] == test_size  # each image counted once
    assert m2["accuracy"] == m1["accuracy"]
    launch = json.loads((two / "launch.json").read_text())
    assert launch["world_size"] == 2 and launch["per_process_batch"] == 32
    assert launch["effective_batch"] == 64 and launch["backend"] == "gloo"
    assert sorted(p.name for p in two.iterdir()) == sorted(
        p.name for p in one_process.run_dir.iterdir())
    assert sorted(p.name for p in (tmp / "runs").iterdir()) == ["one", "two"]


# The #16 options that keep a run exact on 1 or 2 processes: the EMA (of parameters DDP keeps
# in sync), the seeded class-balanced order split like the shuffled one, class weights from the
# whole split, and a monitor (macro F1) computed from the gathered validation logits.
RECIPE = dict(SAME, epochs=3, ema=0.9, sampler="balanced", class_weights="auto",
              monitor="val_macro_f1", patience=1)


@pytest.mark.slow
def test_two_ranks_equal_one_process_with_ema_balanced_sampler_and_monitor(tmp):
    one = fit(**RECIPE, **_paths(tmp), name="recipe1")
    _ok(_torchrun(tmp, {**RECIPE, **_paths(tmp), "name": "recipe2"}))
    two = tmp / "runs" / "recipe2"
    assert _max_diff(one.run_dir, two) <= 1e-5
    a, b = _rows(one.run_dir), _rows(two)
    assert len(a) == len(b)  # the same early-stopping decision
    for key in ("train_acc", "val_acc", "val_macro_f1", "val_balanced_acc", "ema_val_macro_f1"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    for r1, r2 in zip(a, b):
        assert float(r1["val_loss"]) == pytest.approx(float(r2["val_loss"]), abs=1e-5)
    e1, _ = read_checkpoint(one.run_dir / "ema.safetensors")
    e2, _ = read_checkpoint(two / "ema.safetensors")
    assert max((e1[k] - e2[k]).abs().max().item() for k in e1) <= 1e-5
    assert json.loads((one.run_dir / "best.json").read_text()) == json.loads(
        (two / "best.json").read_text())
    m1 = json.loads((one.run_dir / "eval/test/metrics.json").read_text())
    m2 = json.loads((two / "eval/test/metrics.json").read_text())
    assert (m2["accuracy"], m2["num_images"]) == (m1["accuracy"], m1["num_images"])
    assert (tmp / "runs" / "recipe2" / "eval/test/calibration.json").is_file()


def test_accumulate_2_at_batch_32_equals_batch_64(tmp, one_process):
    acc = fit(**{**SAME, "batch_size": 32, "accumulate": 2}, **_paths(tmp), name="acc",
              eval_split=None)
    assert _max_diff(one_process.run_dir, acc.run_dir) <= 1e-5
    s1, s2 = (load_state(r.run_dir / STATE_FILE) for r in (one_process, acc))
    assert s1["scheduler"]["last_epoch"] == s2["scheduler"]["last_epoch"] == 2 * 4
    _, meta = read_checkpoint(acc.run_dir / "last.safetensors")
    assert meta["training"] == {"precision": "fp32", "world_size": 1, "accumulate": 2,
                                "batch_size": 32, "per_process_batch": 32,
                                "effective_batch": 64}


def test_accumulate_with_class_weights_equals_the_larger_batch(tmp):
    # The weighted loss's mean divides by the batch's weight sum, not its count: each
    # micro-batch counts by its share of the step's weight.
    opts = {**SAME, **_paths(tmp), "class_weights": "auto", "eval_split": None, "epochs": 1}
    big = fit(**opts, name="cw64")
    acc = fit(**{**opts, "batch_size": 32, "accumulate": 2}, name="cw32x2")
    assert _max_diff(big.run_dir, acc.run_dir) <= 1e-5
    assert big.history[0]["train_loss"] == pytest.approx(acc.history[0]["train_loss"], abs=1e-6)


def test_max_steps_counts_optimizer_steps_when_accumulating(tmp):
    # 256 images at batch 32 x 2 micro-batches: 4 optimizer steps an epoch; 5 ends in epoch 2.
    run = fit(**{**SAME, "batch_size": 32, "accumulate": 2, "epochs": 3, "max_steps": 5},
              **_paths(tmp), name="acc-steps", eval_split=None)
    state = load_state(run.run_dir / STATE_FILE)
    assert state["scheduler"]["last_epoch"] == 5
    assert [r["steps"] for r in state["history"]] == [4, 1]


@pytest.mark.slow
def test_two_ranks_accumulating_equal_one_process(tmp, one_process):
    # DDP skips the all-reduce (no_sync) on the first of the two micro-batches.
    proc = _torchrun(tmp, {**SAME, **_paths(tmp), "batch_size": 32, "accumulate": 2,
                           "eval_split": None, "name": "two-acc"})
    _ok(proc)
    assert _max_diff(one_process.run_dir, tmp / "runs" / "two-acc") <= 1e-5


@pytest.fixture(scope="module")
def two_ranks_uninterrupted(tmp):
    _ok(_torchrun(tmp, {**RANDOM, **_paths(tmp), "name": "ref2"}))
    return tmp / "runs" / "ref2"


@pytest.mark.slow
def test_sigkilled_rank_is_restarted_and_resumes_exactly(tmp, two_ranks_uninterrupted):
    proc = _torchrun(tmp, {**RANDOM, **_paths(tmp), "name": "elastic"}, "kill-rank1:2",
                     "--max-restarts=1")
    _ok(proc)
    run = tmp / "runs" / "elastic"
    assert "resuming" in proc.stdout and "after epoch 2" in proc.stdout, proc.stdout
    assert json.loads((run / "launch.json").read_text())["torchrun_restart_count"] == 1
    assert _rows(run) == _rows(two_ranks_uninterrupted)
    assert _max_diff(run, two_ranks_uninterrupted) == 0.0


@pytest.mark.slow
def test_killed_group_resumes_exactly_under_torchrun(tmp, two_ranks_uninterrupted):
    killed = _torchrun(tmp, {**RANDOM, **_paths(tmp), "name": "killed"}, "kill-all:2")
    assert killed.returncode == -9, killed.stderr[-2000:]
    run = tmp / "runs" / "killed"
    assert load_state(run / STATE_FILE)["epoch"] == 2 and len(_rows(run)) == 2
    resumed = _torchrun(tmp, {"argv": ["--resume", str(run)]}, module=True)
    _ok(resumed)
    assert f"resuming {run} after epoch 2" in resumed.stdout
    assert _rows(run) == _rows(two_ranks_uninterrupted)
    assert _max_diff(run, two_ranks_uninterrupted) == 0.0
    # Another process count would not continue the same random streams: refused, clearly.
    with pytest.raises(ValueError, match="trained by 2.*--nproc-per-node=2"):
        fit(resume=run, epochs=5)


@pytest.mark.slow
def test_a_failing_rank_ends_the_run_instead_of_hanging(tmp):
    proc = _torchrun(tmp, {**RANDOM, **_paths(tmp), "name": "fails"}, "raise-rank1:1")
    assert proc.returncode != 0
    assert "injected failure on rank 1" in proc.stderr


def test_global_batch_must_divide_by_the_process_count():
    from cnnlab.train.config import TrainConfig
    from cnnlab.train.distributed import World
    from cnnlab.train.loop import _check_world

    with pytest.raises(ValueError, match=r"batch_size 63 is the global batch.*processes \(2\).*62"):
        _check_world(TrainConfig(batch_size=63), World(rank=0, world_size=2))
    _check_world(TrainConfig(batch_size=64), World(rank=1, world_size=2))


def test_shards_cover_every_image_once():
    from cnnlab.train.distributed import World, shard_bounds

    for n in (0, 1, 5, 179):
        for w in (1, 2, 3, 4):
            bounds = [shard_bounds(n, World(r, w)) for r in range(w)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
