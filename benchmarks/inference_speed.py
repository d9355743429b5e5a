"""Inference speed on CPU: PyTorch eager, channels_last, torch.compile and ONNX Runtime.

Baseline (ratio 1.0): torchvision's resnet18 in eager mode at the same batch size. cnnlab's
resnet18 (224x224) and simple_cnn (32x32) run through cnnlab's own predictor classes (what
``cnnlab predict`` uses); torch.compile is inductor with ``freezing`` (weights folded in as
constants: batch norm folded into the convolutions, weights pre-packed for oneDNN), one static
graph per batch size. simple_cnn rows are compared with simple_cnn eager.

Method: random normalized inputs, the same for every method; each method gets ``--warmup``
untimed calls (for torch.compile these include compilation, whose time is printed). Then
``--repeats`` rounds; in each round every method is timed once, in an order rotated from round
to round, so load changes on a shared machine hit all methods alike. One timing is as many
back-to-back calls as fill ``--min-sample`` seconds (at least one), after ``--gap`` idle seconds
so the worker threads one engine leaves spinning do not slow the next. images/s = batch / median
seconds per call; the range is min..max over the rounds. Everything runs in this one process.

The row "cnnlab resnet18 eager" runs the same network on the same engine as the baseline: its
ratio is a check of the timing noise, and anything but ~1.00 means the run was disturbed. Last,
one 4096x4096 fp32 matrix product is timed as the ceiling of dense fp32 arithmetic on these
cores, and the fastest resnet18 path's GFLOP/s (2 x MACs from ``cnnlab.inspect.summary``) is
given as a fraction of it.

    python benchmarks/inference_speed.py [--skip-compile] [--repeats 7] [--batches 1 64]

With ``--int8 RUN [RUN ...]`` it instead quantizes trained runs to int8 ONNX and times int8 ONNX
Runtime against torchvision eager and fp32 ONNX Runtime on the runs' own validation images,
with the int8 model's top-1 agreement with fp32 on them (see ``_int8_speed.py``):

    python benchmarks/inference_speed.py --int8 runs/cifar-resnet18 ... [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
import torchvision
from _machine import cpu_description

from cnnlab.export.backends import (
    OnnxPredictor,
    TorchPredictor,
    default_backend,
    physical_cores,
)
from cnnlab.export.onnx import export_onnx
from cnnlab.inspect import summary
from cnnlab.models import create

BASELINE = "torchvision resnet18|eager (baseline)"


def time_rotated(
    fns: dict[str, Callable[[], object]],
    warmup: int,
    repeats: int,
    min_sample: float,
    gap: float,
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Seconds per call of each function, one sample per round, in rotated order.

    Returns ``(samples, first_call)``: per function the ``repeats`` seconds-per-call samples,
    and the seconds its first warm-up call took (compilation, for a compiled model).
    """
    names = list(fns)
    inner: dict[str, int] = {}
    first_call: dict[str, float] = {}
    for name, fn in fns.items():
        last = 0.0
        for i in range(max(1, warmup)):
            t0 = time.perf_counter()
            fn()
            last = time.perf_counter() - t0
            if i == 0:
                first_call[name] = last
        inner[name] = max(1, math.ceil(min_sample / max(last, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, n = fns[name], inner[name]
            time.sleep(gap)
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n)
    return samples, first_call


def matmul_gflops(n: int = 4096, repeats: int = 5) -> float:
    """fp32 GFLOP/s of one n x n matrix product (torch.mm: MKL or oneDNN), median of repeats.

    What these cores sustain on the densest fp32 work there is: a ceiling for any fp32 engine.
    """
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def compiled_predictor(model: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """torch.compile for inference: static shapes (one graph per batch size), frozen weights."""
    compiled = torch.compile(model.eval(), dynamic=False)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return compiled(torch.from_numpy(x)).numpy()

    return run


def methods_for(
    name: str, model: torch.nn.Module, size: int, skip_compile: bool
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """cnnlab's ways to run ``model``, each on its own copy (channels_last converts in place)."""
    channels = 3
    meta = {
        "class_names": [str(i) for i in range(model.num_classes)],
        "normalization": {"mean": [0.5] * channels, "std": [0.25] * channels},
        "input_size": [channels, size, size],
    }
    t0 = time.perf_counter()
    data, diff = export_onnx(model, meta, dynamic_batch=True)
    print(
        f"  {name}: ONNX export + check {time.perf_counter() - t0:.1f} s, max abs diff {diff:.1e}"
    )
    out = {
        "eager": TorchPredictor(copy.deepcopy(model), meta),
        "channels_last": TorchPredictor(copy.deepcopy(model), meta, channels_last=True),
        "onnxruntime": OnnxPredictor(data, meta),
    }
    if not skip_compile:
        out["torch.compile"] = compiled_predictor(copy.deepcopy(model))
    return out


def fmt_rate(ips: float) -> str:
    return f"{ips:,.1f}" if ips < 1000 else f"{ips:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-sample", type=float, default=0.2, help="seconds per timing")
    parser.add_argument("--gap", type=float, default=0.05, help="idle seconds before a timing")
    parser.add_argument("--skip-compile", action="store_true", help="leave out torch.compile")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument(
        "--int8", nargs="+", default=None, metavar="RUN",
        help="time int8 ONNX Runtime exports of these trained runs instead (see _int8_speed.py)",
    )  # fmt: skip
    parser.add_argument(
        "--calibration-size", type=int, default=256, help="--int8: calibration images per run"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.int8:
        from _int8_speed import int8_main

        int8_main(args, time_rotated, f"{cpu_description()}; physical cores {physical_cores()}")
        return
    if not args.skip_compile:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    import onnxruntime as ort

    print(f"CPU: {cpu_description()}; physical cores {physical_cores()}")
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), torchvision "
        f"{torchvision.__version__}, onnxruntime {ort.__version__} (intra-op threads = physical "
        f"cores, ORT_ENABLE_ALL); fp32 throughout"
    )
    print(
        f"method: {args.warmup} warm-up calls each, then {args.repeats} rounds timing every "
        f"method once in rotated order (>= {args.min_sample} s of back-to-back calls after "
        f"{args.gap} s idle); images/s = batch / median seconds per call"
    )
    torch.manual_seed(0)
    baseline = torchvision.models.resnet18().eval()
    models = {
        "resnet18": (create("resnet18", num_classes=1000).eval(), 224),
        "simple_cnn": (create("simple_cnn", num_classes=10).eval(), 32),
    }
    rows = []  # (model, method, batch, median img/s, min img/s, max img/s)
    rng = np.random.default_rng(0)
    for name, (model, size) in models.items():
        methods = methods_for(name, model, size, args.skip_compile)
        for batch in args.batches:
            x = rng.normal(size=(batch, 3, size, size)).astype(np.float32)
            fns = {f"cnnlab {name}|{m}": (lambda fn=fn, x=x: fn(x)) for m, fn in methods.items()}
            if name == "resnet18":
                base = TorchPredictor(baseline, {"input_size": [3, size, size]})
                fns = {BASELINE: lambda b=base, x=x: b(x), **fns}
            samples, first = time_rotated(fns, args.warmup, args.repeats, args.min_sample, args.gap)
            for key, secs in samples.items():
                model_name, method = key.split("|")
                ips = batch / statistics.median(secs)
                lo, hi = batch / max(secs), batch / min(secs)
                rows.append((model_name, method, batch, ips, lo, hi))
                extra = f"  (first call {first[key]:.1f} s)" if "compile" in method else ""
                print(
                    f"  {key:<36} batch {batch:>3}: {fmt_rate(ips):>9} images/s "
                    f"(range {fmt_rate(lo)}..{fmt_rate(hi)}){extra}",
                    flush=True,
                )
    print()
    print(
        "| model | method | batch | images/s | range | vs torchvision resnet18 eager "
        "| vs same model eager |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")

    def rate(model: str, method: str, batch: int) -> float:
        return next(r[3] for r in rows if (r[0], r[1], r[2]) == (model, method, batch))

    for model, method, batch, ips, lo, hi in rows:
        base = rate(*BASELINE.split("|"), batch)
        own = rate(model, "eager", batch) if model.startswith("cnnlab") else ips
        vs_base = f"{ips / base:.2f}x" if "resnet18" in model else "-"
        print(
            f"| {model} | {method} | {batch} | {fmt_rate(ips)} | {fmt_rate(lo)}..{fmt_rate(hi)} "
            f"| {vs_base} | {ips / own:.2f}x |"
        )
    top = max(args.batches)
    base = rate(*BASELINE.split("|"), top)
    noise = rate("cnnlab resnet18", "eager", top) / base
    best = max((r for r in rows if r[0] == "cnnlab resnet18" and r[2] == top), key=lambda r: r[3])
    macs = summary(models["resnet18"][0], (1, 3, 224, 224)).totals.macs
    ceiling = matmul_gflops()
    gflop_per_image = 2 * macs / 1e9
    reached, base_gflops = best[3] * gflop_per_image, base * gflop_per_image
    default = {"onnx": "onnxruntime"}.get(default_backend(), default_backend())  # row names
    print(
        f"\ncheck: cnnlab resnet18 eager / torchvision resnet18 eager at batch {top} = "
        f"{noise:.2f} (the same network on the same engine; far from 1.00 means a disturbed run)"
    )
    print(
        f"fastest cnnlab resnet18 path at batch {top}: {best[1]}, {best[3] / base:.2f}x "
        f"torchvision resnet18 eager (target >= 2x); cnnlab predict's default here: {default} "
        f"({rate('cnnlab resnet18', default, top) / base:.2f}x)"
    )
    print(
        f"fp32 ceiling: one 4096x4096 matrix product runs at {ceiling:.0f} GFLOP/s on these "
        f"cores; resnet18 is {macs / 1e9:.2f} GMACs per 224x224 image, so {best[1]} at batch "
        f"{top} sustains {reached:.0f} GFLOP/s = {reached / ceiling:.0%} of it, the baseline "
        f"{base_gflops:.0f} GFLOP/s = {base_gflops / ceiling:.0%}"
    )


if __name__ == "__main__":
    main()
