"""Inference speed on CPU: PyTorch eager, channels_last, torch.compile and ONNX Runtime.

Baseline (ratio 1.0): torchvision's resnet18 in eager mode at the same batch size. cnnlab's
resnet18 (224x224) and simple_cnn (32x32) run through cnnlab's own predictor classes (what
``cnnlab predict`` uses). simple_cnn rows are also compared with simple_cnn eager.

Method: random normalized inputs; per (model, batch) every method gets ``--warmup`` untimed
calls (for torch.compile these include compilation), then ``--repeats`` rounds in which each
method is timed once in turn (so load changes on a shared machine hit all methods alike);
images/s = batch / median seconds per call. Everything runs in this one process on the same
inputs.

    python benchmarks/inference_speed.py [--skip-compile] [--repeats 7] [--batches 1 64]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
import torchvision

from cnnlab.export.backends import OnnxPredictor, TorchPredictor, physical_cores
from cnnlab.export.onnx import export_onnx
from cnnlab.models import create


def time_round_robin(
    fns: dict[str, Callable[[], object]], warmup: int, repeats: int
) -> dict[str, float]:
    """Median seconds per call of each function, timed in turns.

    Every function gets ``warmup`` untimed calls; then each round times one call of every
    function in turn, so a change of machine load during the run hits all methods alike.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def compiled_predictor(model: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    compiled = torch.compile(model.eval())

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return compiled(torch.from_numpy(x)).numpy()

    return run


def methods_for(
    name: str, model: torch.nn.Module, size: int, skip_compile: bool
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
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
        "eager": TorchPredictor(model, meta),
        "channels_last": TorchPredictor(model, meta, channels_last=True),
        "onnxruntime": OnnxPredictor(data, meta),
    }
    if not skip_compile:
        out["torch.compile"] = compiled_predictor(model)
    # TorchPredictor(channels_last) converted the shared model in place; give eager its own copy
    out["eager"] = TorchPredictor(create(name, num_classes=model.num_classes), meta)
    out["eager"].model.load_state_dict(model.state_dict())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--skip-compile", action="store_true", help="leave out torch.compile")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    import onnxruntime as ort

    print(
        f"CPU: {platform.processor() or platform.machine()}, physical cores {physical_cores()}, "
        f"torch threads {torch.get_num_threads()}; torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}, onnxruntime {ort.__version__} (intra-op threads = physical "
        f"cores, ORT_ENABLE_ALL)"
    )
    print(
        f"method: {args.warmup} warmup calls each, then {args.repeats} rounds timing every "
        "method once in turn; images/s = batch / median seconds per call"
    )
    torch.manual_seed(0)
    baseline = torchvision.models.resnet18().eval()
    models = {
        "resnet18": (create("resnet18", num_classes=1000).eval(), 224),
        "simple_cnn": (create("simple_cnn", num_classes=10).eval(), 32),
    }
    rows = []
    rng = np.random.default_rng(0)
    for name, (model, size) in models.items():
        methods = methods_for(name, model, size, args.skip_compile)
        for batch in args.batches:
            x = rng.normal(size=(batch, 3, size, size)).astype(np.float32)
            fns = {f"cnnlab {name}|{m}": (lambda fn=fn, x=x: fn(x)) for m, fn in methods.items()}
            if name == "resnet18":
                base = TorchPredictor(baseline, {"input_size": [3, size, size]})
                fns = {"torchvision resnet18|eager (baseline)": lambda b=base, x=x: b(x), **fns}
            medians = time_round_robin(fns, args.warmup, args.repeats)
            for key, med in medians.items():
                model_name, method = key.split("|")
                rows.append((model_name, method, batch, batch / med))
                print(f"  {key:<36} batch {batch:>3}: {batch / med:9.1f} images/s", flush=True)
    print()
    print(
        "| model | method | batch | images/s | vs torchvision resnet18 eager "
        "| vs same model eager |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for model, method, batch, ips in rows:
        base = next(r[3] for r in rows if r[0] == "torchvision resnet18" and r[2] == batch)
        own = next(
            (r[3] for r in rows if r[0] == model and r[1].startswith("eager") and r[2] == batch),
            ips,
        )
        vs_base = f"{ips / base:.2f}x" if "resnet18" in model else "-"
        print(f"| {model} | {method} | {batch} | {ips:,.1f} | {vs_base} | {ips / own:.2f}x |")
    best = max(
        (r for r in rows if r[0] == "cnnlab resnet18" and r[2] == max(args.batches)),
        key=lambda r: r[3],
    )
    base = next(r[3] for r in rows if r[0] == "torchvision resnet18" and r[2] == max(args.batches))
    print(
        f"\nfastest cnnlab resnet18 path at batch {best[2]}: {best[1]}, "
        f"{best[3] / base:.2f}x torchvision resnet18 eager (target >= 2x)"
    )


if __name__ == "__main__":
    main()
