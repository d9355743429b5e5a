"""Speed of ``cnnlab.inspect.summary`` vs ``torchinfo.summary`` on ResNet-50 at 224x224, CPU.

Both summarize the same torchvision resnet50 (random weights, on the CPU) for a 1x3x224x224
input, with one forward pass in eval mode under ``torch.no_grad``. cnnlab computes more columns
(MACs and FLOPs including the functional ops inside ``forward``, other ops, activation memory,
receptive field, jump and start per layer). Rows:

* ``cnnlab summary`` -- the default: the pass runs on ``meta`` stand-ins of the parameters and
  input (shapes only, no arithmetic; the test suite checks it gives the same table as a real pass);
* ``cnnlab summary(compute=True)`` -- the same pass with real arithmetic, like torchinfo;
* torchinfo with its default columns and with all of them;
* a plain ``model(x)`` under ``torch.no_grad``: the cost of the arithmetic itself.

Method: ``--warmup`` untimed rounds, then ``--repeats`` rounds; in each round every method runs
once, in an order rotated from round to round (so background load hits all methods alike). We
report the median and minimum seconds per call and the ratios torchinfo / cnnlab of the medians
(> 1 means cnnlab is faster).

    python benchmarks/inspect_speed.py [--repeats 9] [--warmup 2] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torchinfo
import torchvision
from _machine import cpu_description

from cnnlab.inspect import summary

TORCHINFO_ALL = (
    "input_size", "output_size", "num_params", "params_percent", "kernel_size", "mult_adds",
    "trainable",
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval()
    shape = (1, 3, 224, 224)
    x = torch.zeros(shape)

    def plain() -> None:
        with torch.no_grad():
            model(x)

    methods: dict[str, Callable[[], object]] = {
        "cnnlab summary": lambda: summary(model, shape),
        "cnnlab summary(compute=True)": lambda: summary(model, shape, compute=True),
        "torchinfo (default columns)": lambda: torchinfo.summary(model, shape, verbose=0),
        "torchinfo (all columns)": lambda: torchinfo.summary(
            model, shape, verbose=0, col_names=TORCHINFO_ALL
        ),
        "plain forward (no_grad)": plain,
    }
    names = list(methods)
    for _ in range(args.warmup):
        for name in names:
            methods[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            t0 = time.perf_counter()
            methods[name]()
            times[name].append(time.perf_counter() - t0)
    ours = summary(model, shape)
    info = torchinfo.summary(model, shape, verbose=0, col_names=TORCHINFO_ALL)
    ours = summary(model, shape)
    real = summary(model, shape, compute=True)
    info = torchinfo.summary(model, shape, verbose=0, col_names=TORCHINFO_ALL)
    host = cpu_description()
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {host}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(f"resnet50, input {shape}, CPU; {args.warmup} warm-up rounds, {args.repeats} timed "
          "rounds (order rotated per round); seconds per call")  # fmt: skip
    print(f"{'method':32s} {'median':>8s} {'min':>8s}")
    for name in names:
        print(f"{name:32s} {statistics.median(times[name]):8.3f} {min(times[name]):8.3f}")
    for mine in names[:2]:
        for theirs in names[2:4]:
            ratio = statistics.median(times[theirs]) / statistics.median(times[mine])
            print(f"ratio {theirs} / {mine}: {ratio:.2f}x")
    print(f"check: params cnnlab {ours.totals.params:,} torchinfo {info.total_params:,}; MACs "
          f"cnnlab {ours.totals.macs:,} (real pass {real.totals.macs:,}), torchinfo mult-adds "
          f"{info.total_mult_adds:,}; same rows with and without arithmetic: "
          f"{[r.macs for r in ours.rows] == [r.macs for r in real.rows]}")  # fmt: skip


if __name__ == "__main__":
    main()
