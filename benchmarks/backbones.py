"""Backbones to choose from: parameters, MACs, inference and training images/s on this CPU.

For each ``--models`` name (``torchvision:NAME`` / ``timm:NAME``, built by cnnlab with random
weights, 1000 classes, 3x224x224): parameters and MACs (``cnnlab models``, counted by
``cnnlab.inspect.summary``), inference images/s through cnnlab's predictors (what
``cnnlab predict`` runs): PyTorch eager (the baseline, ratio 1.00), channels_last, and ONNX
Runtime (exported and checked by ``cnnlab.export.onnx``), and training images/s of one AdamW
step (forward, cross-entropy, backward, update) in train mode with channels_last, as
``cnnlab train`` runs by default.

Batch norms get the statistics of a few random batches first (see ``calibrate_bn``).
Method: random inputs, the same for every method; inference is timed with the rotated-rounds
timer of ``inference_speed.py`` (``--warmup`` untimed calls, then ``--repeats`` rounds timing
every method once in rotated order, each timing >= ``--min-sample`` s of back-to-back calls);
images/s = batch / median seconds per call. Training: ``--train-warmup`` untimed steps, then the
median of ``--train-steps`` timed steps. One process, fp32 throughout.

    python benchmarks/backbones.py [--batch 8] [--repeats 3] [--models torchvision:resnet18 ...]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import numpy as np
import torch
from _machine import cpu_description
from inference_speed import fmt_rate, time_rotated

from cnnlab.cli.models import model_rows
from cnnlab.export.backends import OnnxPredictor, TorchPredictor, physical_cores
from cnnlab.export.onnx import export_onnx
from cnnlab.inspect import human_count
from cnnlab.models import create

DEFAULT_MODELS = [
    "torchvision:resnet18",
    "torchvision:mobilenet_v3_large",
    "torchvision:efficientnet_b0",
    "torchvision:regnet_y_400mf",
    "torchvision:convnext_tiny",
]
SIZE = 224


@torch.no_grad()
def calibrate_bn(model: torch.nn.Module, batches: int = 2) -> None:
    """Give batch norms the statistics of real activations (cumulative average of a few
    random batches): with their initial ones, randomly initialized torchvision nets compute
    activations near 1e-10 in eval mode, which are not what trained weights compute."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    model.train()
    for _ in range(batches):
        model(torch.randn(4, 3, SIZE, SIZE))
    model.eval()


def train_rate(model: torch.nn.Module, batch: int, warmup: int, steps: int) -> float:
    """Images/s of one AdamW step in train mode, channels_last, median over ``steps``."""
    model = model.train().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, SIZE, SIZE, generator=gen).contiguous(
        memory_format=torch.channels_last
    )
    y = torch.randint(0, 1000, (batch,), generator=gen)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--batch", type=int, default=8, help="images per call and step")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-sample", type=float, default=0.5, help="seconds per timing")
    parser.add_argument("--gap", type=float, default=0.05, help="idle seconds before a timing")
    parser.add_argument("--train-warmup", type=int, default=1)
    parser.add_argument("--train-steps", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import onnxruntime as ort

    print(f"CPU: {cpu_description()}; physical cores {physical_cores()}")
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime "
        f"{ort.__version__}; fp32, 3x{SIZE}x{SIZE}, batch {args.batch}, 1000 classes, random "
        "weights"
    )
    print(
        f"method: inference {args.warmup} warm-up calls, {args.repeats} rotated rounds of >= "
        f"{args.min_sample} s each, images/s = batch / median s per call; training "
        f"{args.train_warmup} warm-up + median of {args.train_steps} AdamW steps (channels_last)"
    )
    rows = []
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, 3, SIZE, SIZE)).astype(np.float32)
    for name in args.models:
        t_start = time.perf_counter()
        torch.manual_seed(0)
        (info,) = model_rows([name], num_classes=1000, in_channels=3, input_size=SIZE)
        model = create(name, num_classes=1000)
        calibrate_bn(model)
        meta = {
            "class_names": [str(i) for i in range(1000)],
            "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3},
            "input_size": [3, SIZE, SIZE],
        }
        data, diff = export_onnx(model, meta, dynamic_batch=True)
        methods = {
            "eager": TorchPredictor(copy.deepcopy(model), meta),
            "channels_last": TorchPredictor(copy.deepcopy(model), meta, channels_last=True),
            "onnxruntime": OnnxPredictor(data, meta),
        }
        fns = {m: (lambda fn=fn: fn(x)) for m, fn in methods.items()}
        samples, _ = time_rotated(fns, args.warmup, args.repeats, args.min_sample, args.gap)
        rates = {m: args.batch / statistics.median(s) for m, s in samples.items()}
        del methods, fns
        train = train_rate(model, args.batch, args.train_warmup, args.train_steps)
        rows.append((name, info["params"], info["macs"], rates, train))
        print(
            f"  {name}: eager {fmt_rate(rates['eager'])}, channels_last "
            f"{fmt_rate(rates['channels_last'])}, onnxruntime {fmt_rate(rates['onnxruntime'])} "
            f"img/s (ONNX max abs diff {diff:.1e}); train {fmt_rate(train)} img/s "
            f"[{time.perf_counter() - t_start:.0f} s]",
            flush=True,
        )
    print()
    print(
        "| model | params | MACs | eager img/s | channels_last img/s (vs eager) "
        "| ONNX Runtime img/s (vs eager) | train img/s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, params, macs, r, train in rows:
        e = r["eager"]
        print(
            f"| {name} | {human_count(params)} | {human_count(macs)} | {fmt_rate(e)} "
            f"| {fmt_rate(r['channels_last'])} ({r['channels_last'] / e:.2f}x) "
            f"| {fmt_rate(r['onnxruntime'])} ({r['onnxruntime'] / e:.2f}x) | {fmt_rate(train)} |"
        )


if __name__ == "__main__":
    main()
