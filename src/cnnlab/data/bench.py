"""What the batched data path costs per batch on this machine: ``python -m cnnlab.data.bench``.

For 32x32 RGB batches of 64 and 256 images it times, in one process on the same tensors:
``batches()`` (one index_select), uint8 -> normalized float, each augmentation (on float and,
where possible, on uint8), a per-sample Python loop doing crop+flip (the baseline that batching
replaces), and finally the whole data path of a training step against SimpleCNN's
forward + backward + Adam step on the same batch (the compute it has to keep up with).

Each figure is the minimum and the median over ``--reps`` repeats after 5 warm-ups (the
last comparison uses minima). ``--clock cpu`` (default)
uses process CPU time, which stays meaningful on a machine shared with other jobs;
``--clock wall`` uses perf_counter.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from cnnlab.data.augment import Augment
from cnnlab.data.batches import batches
from cnnlab.data.bundle import Split
from cnnlab.data.normalize import to_float, to_float_normalized
from cnnlab.data.presets import build_augment

SPECS = {
    "flip": "flip", "crop (pad 4)": "crop=4", "crop-flip": "crop-flip",
    "crop reflect-pad": "crop=4,reflect", "rotate 15": "rotate=15", "resized crop": "rrc=0.35",
    "jitter 0.3": "jitter=0.3", "cutout 8": "cutout=8", "strong preset": "strong",
}  # fmt: skip
MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def _time_ms(
    fn: Callable[[], object], reps: int, clock: Callable[[], float]
) -> tuple[float, float]:
    """(minimum, median) milliseconds per call; the minimum is the least disturbed by other jobs."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(reps):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times) * 1e3, statistics.median(times) * 1e3


def _fmt(t: tuple[float, float] | None) -> str:
    return f"{t[0]:7.3f} {t[1]:7.3f}" if t else f"{'-':>7s} {'-':>7s}"


def _per_sample_crop_flip(x: torch.Tensor, g: torch.Generator, p: int = 4) -> torch.Tensor:
    """The baseline: crop + flip one sample at a time in a Python loop."""
    out = torch.empty_like(x)
    xp = F.pad(x, (p, p, p, p))
    h, w = x.shape[2:]
    for i in range(len(x)):
        oy, ox = torch.randint(0, 2 * p + 1, (2,), generator=g).tolist()
        crop = xp[i, :, oy : oy + h, ox : ox + w]
        out[i] = crop.flip(2) if torch.rand(1, generator=g) < 0.5 else crop
    return out


def _endless(split: Split, bs: int, g: torch.Generator):
    while True:
        yield from batches(split, bs, shuffle=True, generator=g, drop_last=True)


def run(reps: int, clock_name: str, sizes: tuple[int, ...]) -> None:
    """Print the table (see the module docstring)."""
    from cnnlab.models import create

    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    what = "process CPU time" if clock_name == "cpu" else "wall time"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {reps}, "
          f"ms per batch ({what})")  # fmt: skip
    pool = Split(torch.randint(0, 256, (4096, 3, 32, 32), dtype=torch.uint8),
                 torch.zeros(4096, dtype=torch.int64))  # fmt: skip
    g = torch.Generator().manual_seed(0)
    for bs in sizes:
        xu = torch.randint(0, 256, (bs, 3, 32, 32), dtype=torch.uint8)
        xf = to_float(xu)
        it = _endless(pool, bs, g)
        print(f"\nbatch {bs}, 3x32x32               float (min, median)  uint8 (min, median)")
        rows: list[tuple[str, Callable, Callable | None]] = [
            ("batches() index_select", lambda it=it: next(it), None),
            ("to_float_normalized", lambda x=xu: to_float_normalized(x, MEAN, STD), None),
            (
                "  + channels_last",
                lambda x=xu: to_float_normalized(x, MEAN, STD, channels_last=True),
                None,
            ),  # fmt: skip
        ]
        for name, spec in SPECS.items():
            aug: Augment = build_augment(spec, 32)
            on_u8 = (lambda a=aug, x=xu: a(x, g)) if aug.uint8_ok else None
            rows.append((name, lambda a=aug, x=xf: a(x, g), on_u8))
        rows.append(("crop-flip, per-sample loop", lambda x=xf: _per_sample_crop_flip(x, g), None))
        for name, fn, fn_u8 in rows:
            u8 = _time_ms(fn_u8, reps, clock) if fn_u8 else None
            print(f"  {name:28s} {_fmt(_time_ms(fn, reps, clock))}    {_fmt(u8)}")
    model = create("simple_cnn", num_classes=10, in_channels=3)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    aug = build_augment("crop-flip", 32)
    print("\nwhole data path (batches + uint8 crop-flip + normalize, NHWC) vs one SimpleCNN step:")
    for bs in sizes:
        it = _endless(pool, bs, g)

        def data_path(it=it):
            x, y = next(it)
            return to_float_normalized(aug(x, g), MEAN, STD, channels_last=True), y

        xb, yb = data_path()

        def step(xb=xb, yb=yb):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()

        d, c = _time_ms(data_path, reps, clock)[0], _time_ms(step, reps, clock)[0]
        print(f"  batch {bs}: data {d:.3f} ms, compute {c:.2f} ms, data/compute {d / c:.1%}, "
              f"so at most {c / (c + d):.1%} of the compute ceiling is reachable")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (``python -m cnnlab.data.bench --help``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--reps", type=int, default=60, help="timed repeats per figure (default 60)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    run(args.reps, args.clock, tuple(args.batch_sizes))


if __name__ == "__main__":
    main()
