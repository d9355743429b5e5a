"""Data at scale: the disk store's build speed and memory, disk vs resident training, RRC accuracy.

    python benchmarks/data_scale.py                 # 30,000 JPEGs, all four measurements
    python benchmarks/data_scale.py --generate-only # just the JPEG folder (cached)

1. **Folder** (cached in ``--folder``, made once): ``--images`` 256x256 JPEGs of 11 classes --
   the ten CIFAR-10 classes (``/tmp/cifar10/train``, each picture cropped, upscaled with bicubic
   interpolation and flipped at random) and a ``photo`` class of random crops/scales/flips of
   scikit-learn's two sample photographs. Decoded at 224 the folder is 4.5 GB at 30,000 images.
2. **Store build** (``cache="disk"``, storage 256 for 224 training): images/s against
   ``cores x`` the single-core PIL decode rate of the same files measured first (``Image.open
   -> convert("RGB") -> numpy``, files in the page cache), and the peak anonymous memory of the
   process tree, sampled every 5 ms: Pss_Anon summed over the process and its workers (a forked
   worker's pages shared with the parent count once) and, for reference, RssAnon summed (which
   counts those shared pages once per process).
3. **Training** ``resnet18`` at 224 (random-resized-crop from the stored 256 px) for
   ``--train-steps`` steps of ``--batch-size``: from the disk store (the whole training split,
   memory-mapped, batches gathered by the prefetch thread) and from a resident copy of
   ``--subset`` training images; step throughput disk / resident (median of ``--repeats``
   alternating runs, after one warm-up run), and the peak anonymous memory while training
   from disk.
4. **Accuracy** of a short fixed schedule (``--acc-steps`` steps of ``--acc-batch`` images,
   resnet18 at ``--acc-size``): random-resized-crop (8-100 % area) + flip from images stored
   at ``round(size * 256 / 224)`` against today's fixed-size storage at ``--acc-size`` with the
   folder default augmentation (crop with padding + flip), top-1 on the held-out test split.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import threading
import time
import warnings
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from _machine import cpu_description
from PIL import Image

CIFAR = Path("/tmp/cifar10/train")
SIDE = 256


def _make(task: tuple[int, str, str]) -> None:
    i, out, src = task
    rng = np.random.default_rng(i)
    if src == "photo":
        from sklearn.datasets import load_sample_images

        photos = _make.photos = getattr(_make, "photos", None) or load_sample_images().images
        img = photos[i % 2]
        side = int(rng.integers(96, min(img.shape[:2]) + 1))
        y, x = (int(rng.integers(0, img.shape[k] - side + 1)) for k in (0, 1))
        im = Image.fromarray(img[y : y + side, x : x + side])
    else:
        im = Image.open(src).convert("RGB")
        side = int(rng.integers(24, 33))
        x, y = (int(rng.integers(0, 32 - side + 1)) for _ in range(2))
        im = im.crop((x, y, x + side, y + side))
    im = im.resize((SIDE, SIDE), Image.BICUBIC)
    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    im.save(out, quality=90)


def generate(folder: Path, n: int) -> None:
    """Write ``n`` 256x256 JPEGs into ``folder/<class>/`` (skipped when already complete)."""
    marker = folder / ".complete"
    if marker.is_file() and marker.read_text() == str(n):
        print(f"folder: {folder} ({n:,} JPEGs, cached)")
        return
    if not CIFAR.is_dir():
        sys.exit(f"need the CIFAR-10 JPEGs in {CIFAR}/<class>/*.jpg")
    shutil.rmtree(folder, ignore_errors=True)
    classes = sorted(p.name for p in CIFAR.iterdir() if p.is_dir())
    files = {c: sorted((CIFAR / c).glob("*.jpg")) for c in classes}
    tasks = []
    for i in range(n):
        c = (classes + ["photo"])[i % (len(classes) + 1)]
        (folder / c).mkdir(parents=True, exist_ok=True)
        src = "photo" if c == "photo" else str(files[c][(i // 11) % len(files[c])])
        tasks.append((i, str(folder / c / f"{i:06d}.jpg"), src))
    t0 = time.perf_counter()
    with Pool(os.cpu_count()) as pool:
        for _ in pool.imap_unordered(_make, tasks, chunksize=64):
            pass
    marker.write_text(str(n))
    print(f"folder: {folder} ({n:,} JPEGs generated in {time.perf_counter() - t0:.0f} s)")


class AnonSampler:
    """Peak anonymous memory of this process and its children (Pss_Anon and RssAnon, KiB)."""

    def __init__(self) -> None:
        self.peak_pss = self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _field(pid: str, file: str, key: str) -> int:
        try:
            with open(f"/proc/{pid}/{file}") as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def sample(self) -> tuple[int, int]:
        pids = ["self"]
        for task in Path("/proc/self/task").iterdir():
            try:
                pids += (task / "children").read_text().split()
            except OSError:
                pass
        pss = sum(self._field(p, "smaps_rollup", "Pss_Anon:") for p in pids)
        rss = sum(self._field(p, "status", "RssAnon:") for p in pids)
        return pss, rss

    def _run(self) -> None:
        while not self._stop.is_set():
            pss, rss = self.sample()
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            time.sleep(0.005)

    def __enter__(self) -> AnonSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _warm(paths: list[Path]) -> None:
    for p in paths:  # the page cache holds the files, so decoding is what gets measured
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


def pil_rate(paths: list[Path]) -> float:
    t0 = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            np.asarray(im.convert("RGB"))
    return len(paths) / (time.perf_counter() - t0)


def _fit(bundle, steps: int, batch: int, name: str, out: Path, **kw):
    from cnnlab.train import fit

    return fit(data=bundle, model="resnet18", image_size=224, max_steps=steps, epochs=1,
               batch_size=batch, eval_split=None, report=False, quiet=True, name=name,
               out_dir=str(out), **kw)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=30_000)
    ap.add_argument("--folder", type=Path, default=Path("/tmp/cnnlab-scale/jpegs"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/cnnlab-scale/work"))
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--decode-sample", type=int, default=600)
    ap.add_argument("--train-steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--subset", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--acc-size", type=int, default=64)
    ap.add_argument("--acc-steps", type=int, default=300)
    ap.add_argument("--acc-batch", type=int, default=64)
    ap.add_argument("--skip-acc", action="store_true")
    args = ap.parse_args()

    print(f"machine: {cpu_description()}")
    generate(args.folder, args.images)
    if args.generate_only:
        return
    import torch

    from cnnlab.data import DataBundle, Split, load_data

    cores = len(os.sched_getaffinity(0))
    paths = sorted(args.folder.rglob("*.jpg"))
    _warm(paths)
    sample = paths[:: max(1, len(paths) // args.decode_sample)]
    rate1 = pil_rate(sample)
    print(f"single-core PIL decode (open + RGB + numpy) of {len(sample)} files: {rate1:,.0f} "
          f"img/s; x {cores} cores = {rate1 * cores:,.0f} img/s")  # fmt: skip

    # --- 2. build ----------------------------------------------------------------------------
    shutil.rmtree(args.work, ignore_errors=True)
    cache = args.work / "cache"
    opts = dict(image_size=224, storage_size=256, val_split=0.02, test_split=0.02, seed=0,
                cache_dir=cache)  # fmt: skip
    with AnonSampler() as mem:
        base_pss, base_rss = mem.sample()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            disk = load_data(f"folder:{args.folder}", cache="disk", **opts)
        build_s = time.perf_counter() - t0
    build_peak = mem.peak_pss
    n = sum(len(s) for s in disk.splits().values())
    store_gb = n * 3 * 256 * 256 / 1e9
    ips = n / build_s
    print(f"store build: {n:,} images -> {store_gb:.1f} GB store (decoded at 224 the folder "
          f"is {n * 3 * 224 * 224 / 1e9:.1f} GB) in {build_s:.1f} s = {ips:,.0f} img/s = "
          f"{ips / (rate1 * cores):.2f} x ({cores} cores x single-core PIL rate)")  # fmt: skip
    print(f"  peak anonymous memory of the process tree during the build: Pss_Anon "
          f"{mem.peak_pss / 2**20:.2f} GiB (RssAnon sum {mem.peak_rss / 2**20:.2f} GiB); "
          f"before the build {base_pss / 2**20:.2f} GiB")  # fmt: skip

    # --- 3. training: disk vs resident ---------------------------------------------------------
    torch.manual_seed(0)
    val = disk.val.subset(torch.arange(min(64, len(disk.val))))
    g = torch.Generator().manual_seed(0)
    keep = torch.randperm(len(disk.train), generator=g)[: args.subset].sort().values
    sub = disk.train.subset(keep)
    resident = Split(sub.images[torch.arange(len(sub))].clone(), sub.labels.clone())
    bundles = {
        "disk": DataBundle(disk.name, disk.class_names, disk.train, val, None, disk.mean,
                           disk.std, crop_size=(224, 224)),
        "resident": DataBundle(disk.name, disk.class_names, resident,
                               Split(val.images[torch.arange(len(val))], val.labels), None,
                               disk.mean, disk.std, crop_size=(224, 224)),
    }  # fmt: skip
    runs = args.work / "runs"
    _fit(bundles["resident"], 2, args.batch_size, "warmup", runs)
    speeds: dict[str, list[float]] = {"disk": [], "resident": []}
    peak_train = 0
    for r in range(args.repeats):
        for kind in ("disk", "resident"):
            with AnonSampler() as mem:
                res = _fit(bundles[kind], args.train_steps, args.batch_size, f"{kind}{r}", runs)
            speeds[kind].append(res.history[-1]["images_per_s"])
            if kind == "disk":
                peak_train = max(peak_train, mem.peak_pss)
    d, m = statistics.median(speeds["disk"]), statistics.median(speeds["resident"])
    print(f"training resnet18 at 224 (RRC from 256), {args.train_steps} steps x "
          f"{args.batch_size}: disk store (whole train split, {len(disk.train):,} images) "
          f"{d:.1f} img/s, resident ({args.subset} images) {m:.1f} img/s; disk/resident = "
          f"{d / m:.3f}  (runs: disk {[round(v, 1) for v in speeds['disk']]}, resident "
          f"{[round(v, 1) for v in speeds['resident']]})")  # fmt: skip
    print(f"  peak anonymous memory while training from disk: Pss_Anon "
          f"{peak_train / 2**20:.2f} GiB (the {store_gb:.1f} GB store is file-backed)")

    # --- 4. accuracy: RRC from stored 256-equivalent vs today's fixed-size storage ------------
    if args.skip_acc:
        return
    from cnnlab.train import fit

    size = args.acc_size
    results = {}
    for label, storage, augment in (("rrc-from-storage", round(size * 256 / 224), "rrc-flip"),
                                    ("fixed-size (today)", None, "auto")):  # fmt: skip
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = fit(dataset=f"folder:{args.folder}", model="resnet18", image_size=size,
                    storage_size=storage or size, augment=augment, max_steps=args.acc_steps,
                    epochs=50, batch_size=args.acc_batch, val_split=0.05, test_split=0.1,
                    cache="ram", cache_dir=str(cache), report=False, quiet=True,
                    out_dir=str(runs), name=f"acc-{storage or size}")  # fmt: skip
        results[label] = r.eval["accuracy"]
        print(f"accuracy, {label}: stored {storage or size} px, augment "
              f"{'rrc-flip (8-100% area)' if storage else 'crop-flip (folder default)'}, "
              f"resnet18 at {size}, {args.acc_steps} steps x {args.acc_batch}: test top-1 "
              f"{r.eval['accuracy']:.4f} on {r.eval['num_images']:,} held-out images "
              f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    print(json.dumps({"build_img_s": round(ips), "pil_1core_img_s": round(rate1),
                      "build_vs_cores_x_pil": round(ips / (rate1 * cores), 3),
                      "build_peak_pss_anon_gib": round(build_peak / 2**20, 3),
                      "disk_over_resident": round(d / m, 3),
                      "train_disk_peak_pss_anon_gib": round(peak_train / 2**20, 3),
                      "accuracy": results}))  # fmt: skip


if __name__ == "__main__":
    main()
