"""Augmentation policies on one batch: torchvision's transforms called per image vs cnnlab's.

Method: a batch of 128 random uint8 3x32x32 images; torchvision's ``transforms.v2`` policy
called once per image (its batch call gives every image the same operation) against
cnnlab.data's batched per-image policy; the median of 25 alternating repetitions each, 2
threads. Prints the machine and the ratio.

Example:
    flock /tmp/cnnlab-cpu.lock python benchmarks/policies.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_description  # noqa: E402


def main() -> None:
    from torchvision.transforms import v2

    from cnnlab.data.auto_augment import AutoAugment, RandAugment, RandomErasing, TrivialAugmentWide

    torch.set_num_threads(2)
    print(f"machine: {cpu_description()}; torch {torch.__version__}, 2 threads; batch 128x3x32x32 "
          "uint8; median of 25")
    x = torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    pairs = [
        ("ra=2:9", v2.RandAugment(2, 9), RandAugment(2, 9)),
        ("ta", v2.TrivialAugmentWide(), TrivialAugmentWide()),
        ("aa=cifar10", v2.AutoAugment(v2.AutoAugmentPolicy("cifar10")), AutoAugment("cifar10")),
        ("erase=0.25", v2.RandomErasing(0.25), RandomErasing(0.25)),
    ]
    print("| policy | torchvision per image ms | cnnlab batched ms | speed-up |")
    print("|---|---|---|---|")
    for name, theirs, ours in pairs:
        a, b = [], []
        for _ in range(25):
            t = time.perf_counter()
            torch.stack([theirs(im) for im in x])
            a.append(time.perf_counter() - t)
            t = time.perf_counter()
            ours(x, g)
            b.append(time.perf_counter() - t)
        ma, mb = statistics.median(a) * 1e3, statistics.median(b) * 1e3
        print(f"| {name} | {ma:.1f} | {mb:.1f} | {ma / mb:.1f}x |")


if __name__ == "__main__":
    main()
