"""Data-parallel scaling on the CPU: 1 process x 2 threads against torchrun 2 processes x 1 thread.

    python benchmarks/ddp_scaling.py                    # digits at 32 px, simple_cnn, batch 256
    python benchmarks/ddp_scaling.py --steps 60 --batch-size 512 --repeats 5

Method: the same ``cnnlab train`` run twice in this invocation, on the same data, model, seed
and global batch, for the same number of optimizer steps (``--max-steps``):

1. baseline: one process, ``--threads 2`` (intra-op parallelism over both cores);
2. ours: ``torchrun --standalone --nproc-per-node=2 -m cnnlab train ... --threads 1``
   (DistributedDataParallel over gloo, each process half of every global batch).

Throughput is read from each run's ``metrics.csv``: training images (``images_per_s`` x
``epoch_time_s``, all processes together) over the summed training time of the epochs
(``epoch_time_s``: forward, backward, all-reduce and optimizer step; not the validation pass,
not start-up), the first epoch left out as warm-up. Scaling efficiency is
``(ddp images/s) / (baseline images/s)``: both use the same two cores, so 1.0 means DDP is as
fast as threading the single process, above 1.0 that it is faster.

On a shared 2-core machine one pair of runs swings by tens of percent (two single pairs gave
1.52 and 0.99), so the pair is repeated ``--repeats`` times, alternating baseline and DDP so
that a slow spell hits both, and the efficiency is the ratio of the two medians; every run's
figure is printed too.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _machine import cpu_description


def _train(out: Path, name: str, args: argparse.Namespace, processes: int) -> float:
    threads = 2 // processes
    common = ["train", "--dataset", "digits", "--model", "simple_cnn",
              "--image-size", str(args.image_size), "--batch-size", str(args.batch_size),
              "--epochs", "1000", "--max-steps", str(args.steps), "--augment", "none",
              "--threads", str(threads), "--quiet", "--no-report", "--no-tensorboard",
              "--out-dir", str(out / "runs"), "--cache-dir", str(out / "cache"), "--name", name]
    launcher = [sys.executable, "-m", "cnnlab"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={processes}", "-m", "cnnlab"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run([*launcher, *common], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    with (out / "runs" / name / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))[1:]  # the first epoch is warm-up
    if not rows:
        sys.exit(f"{name}: only one epoch ran; raise --steps")
    seconds = sum(float(r["epoch_time_s"]) for r in rows)
    images = sum(float(r["images_per_s"]) * float(r["epoch_time_s"]) for r in rows)
    return images / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per run")
    parser.add_argument("--batch-size", type=int, default=256, help="global batch")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="alternating pairs of runs")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    print(f"CPU: {cpu_description()}")
    print(f"simple_cnn on digits at {args.image_size} px, global batch {args.batch_size}, "
          f"{args.steps} optimizer steps, fp32, first epoch excluded")
    base_runs, ddp_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for r in range(args.repeats):
            base_runs.append(_train(out, f"one-{r}", args, processes=1))
            ddp_runs.append(_train(out, f"two-{r}", args, processes=2))
    base, ddp = statistics.median(base_runs), statistics.median(ddp_runs)
    print(f"{'setup':<40} {'median img/s':>12}  each run")
    print(f"{'1 process x 2 threads (baseline)':<40} {base:>12.0f}  "
          + " ".join(f"{v:.0f}" for v in base_runs))
    print(f"{'torchrun 2 processes x 1 thread (DDP)':<40} {ddp:>12.0f}  "
          + " ".join(f"{v:.0f}" for v in ddp_runs))
    print(f"scaling efficiency (DDP / baseline, medians of {args.repeats}): {ddp / base:.2f}; "
          f"per pair: " + " ".join(f"{d / b:.2f}" for b, d in zip(base_runs, ddp_runs)))

if __name__ == "__main__":
    main()
