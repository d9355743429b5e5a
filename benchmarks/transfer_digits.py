"""Transfer learning offline: pretrain on digits 0-4, fine-tune on 5-9 vs training from scratch.

See :mod:`cnnlab.transfer.demo` for the set-up. Prints the target-test accuracy of both ways
for every seed, their mean and the mean difference; both use the same network (simple_cnn),
optimizer (Adam), learning rate, batches and number of steps on the same few target images.

    python benchmarks/transfer_digits.py [--seeds 0 1 2] [--per-class 5] [--steps 40]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cnnlab.transfer.demo import digits_transfer_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=5, help="labelled target images/class")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps on the target")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--freeze", default="backbone", help="backbone | none | until:LAYER")
    parser.add_argument("--canvas", type=int, default=16, help="0: centred digits, no canvas")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny network: one thread avoids contention
    print(
        f"digits 0-4 -> 5-9, simple_cnn, {args.per_class} target images/class, "
        f"{args.steps} Adam steps at lr {args.lr}, fine-tune freeze={args.freeze!r}, "
        f"canvas={args.canvas or 'none'}; torch {torch.__version__}"
    )
    print("| seed | source acc (0-4) | fine-tuned acc (5-9) | scratch acc (5-9) | seconds |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    tuned, scratch = [], []
    for seed in args.seeds:
        t0 = time.perf_counter()
        r = digits_transfer_demo(
            seed=seed, per_class=args.per_class, steps=args.steps, lr=args.lr,
            freeze_spec=args.freeze, canvas=args.canvas or None,
        )  # fmt: skip
        tuned.append(r.finetuned_acc)
        scratch.append(r.scratch_acc)
        print(
            f"| {seed} | {r.source_acc:.3f} | {r.finetuned_acc:.3f} | {r.scratch_acc:.3f} | "
            f"{time.perf_counter() - t0:.0f} |"
        )
    diff = statistics.mean(t - s for t, s in zip(tuned, scratch))
    print(
        f"\nmean over {len(args.seeds)} seeds ({r.n_target_train} target training images, "
        f"{r.n_target_test} test images): fine-tuned {statistics.mean(tuned):.3f}, scratch "
        f"{statistics.mean(scratch):.3f}, difference {diff:+.3f}"
    )


if __name__ == "__main__":
    main()
