"""CIFAR-10 JPEG benchmarks' shared parts: the split, decoding, and the course recipe as written.

``train_speed.py`` and ``speedrun.py`` both time the course recipe against cnnlab presets on the
same images; this module holds what they share so that the course recipe exists exactly once:
``torchvision.datasets.ImageFolder`` with per-sample ``ToTensor() + Normalize((0.5,)*3,
(0.5,)*3)``, ``DataLoader(batch_size=64, shuffle=True)``, SimpleCNN, ``Adam(lr=1e-3)``, NCHW
fp32, constant learning rate, a held-out pass after every epoch.
"""

from __future__ import annotations

import random
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# ../shared/data beside the checkout (see ../shared/data/README.md); --archive to point elsewhere.
ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-train-jpg.tar.gz"
COURSE_BATCH, COURSE_LR = 64, 1e-3


# --- data ---------------------------------------------------------------------------------------


def extract(archive: Path, root: Path) -> Path:
    """Extract the archive once; returns the folder holding one sub-folder per class."""
    train = root / "train"
    if not (train.is_dir() and len(list(train.glob("*/*.jpg"))) >= 50_000):
        if not archive.is_file():
            sys.exit(f"{archive} not found; pass --archive PATH")
        root.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data") if sys.version_info >= (3, 12) else \
                tar.extractall(root)  # noqa: S202 - our own benchmark archive
    return train


def split_files(train_dir: Path, heldout: int, max_images: int | None, seed: int):
    """Stratified split by file: (class_names, train [(path, label)], heldout [(path, label)])."""
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir())
    rng = random.Random(seed)
    tr, ho = [], []
    per_class = None if max_images is None else max_images // len(classes)
    for label, name in enumerate(classes):
        files = sorted((train_dir / name).glob("*.jpg"))
        rng.shuffle(files)
        ho += [(f, label) for f in files[:heldout]]
        rest = files[heldout:]
        tr += [(f, label) for f in (rest if per_class is None else rest[:per_class])]
    return classes, tr, ho


def decode_cnnlab(items) -> tuple[torch.Tensor, torch.Tensor]:
    """JPEG files -> uint8 (N, 3, 32, 32) and labels through cnnlab's image-folder decoder.

    ``cnnlab.data.decode_images``: what ``cnnlab train --dataset folder:...`` runs to build
    its cache (worker processes, libjpeg-turbo for 32x32 JPEGs).
    """
    from cnnlab.data import decode_images

    x, errors = decode_images([p for p, _ in items], [3, 32, 32])
    bad = [str(p) for (p, _), e in zip(items, errors) if e is not None]
    if bad:
        sys.exit(f"{len(bad)} images could not be decoded, e.g. {bad[0]}")
    return x, torch.tensor([label for _, label in items], dtype=torch.int64)


def decode(items) -> tuple[torch.Tensor, torch.Tensor]:
    """JPEG files -> uint8 (N, 3, 32, 32) and int64 labels, decoded in a thread pool."""
    from PIL import Image

    def one(item):
        with Image.open(item[0]) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)

    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(one, items, chunksize=256))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)
    y = torch.tensor([label for _, label in items], dtype=torch.int64)
    return x, y


# --- (1) the course recipe -------------------------------------------------------------------


def course(train_dir: Path, train_items, heldout_items, epochs: int, workers: int, seed: int):
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from cnnlab.models import create

    torch.manual_seed(seed)
    tf = transforms.Compose([transforms.ToTensor(),
                             transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    folder = datasets.ImageFolder(str(train_dir), transform=tf)
    index = {Path(p): i for i, (p, _) in enumerate(folder.samples)}
    train_set = Subset(folder, [index[p] for p, _ in train_items])
    held_set = Subset(folder, [index[p] for p, _ in heldout_items])
    train_loader = DataLoader(train_set, batch_size=COURSE_BATCH, shuffle=True,
                              num_workers=workers)
    held_loader = DataLoader(held_set, batch_size=256, num_workers=workers)
    model = create("simple_cnn", num_classes=10)
    opt = torch.optim.Adam(model.parameters(), lr=COURSE_LR)
    epochs_out, start, start_cpu = [], time.perf_counter(), time.process_time()
    for epoch in range(1, epochs + 1):
        model.train()
        t0, c0, seen = time.perf_counter(), time.process_time(), 0
        for x, y in train_loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(y)
        train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in held_loader:
                correct += (model(x).argmax(1) == y).sum().item()
                total += len(y)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        epochs_out.append({"epoch": epoch, "train_s": train_s, "images_per_s": seen / train_s,
                           "cpu_images_per_s": seen / train_cpu,
                           "heldout_acc": correct / total, "wall_s": wall, "cpu_s": cpu})
        print(f"  course epoch {epoch}: {seen / train_s:,.0f} img/s ({seen / train_cpu:,.0f} per "
              f"CPU s), held-out {correct / total:.4f}, wall {wall:.1f}s", flush=True)
    return epochs_out


# --- (2) cnnlab's pipeline, and the preset ---------------------------------------------------


def make_bundle(classes, x_tr, y_tr, x_ho, y_ho):
    from cnnlab.data import DataBundle, Split

    return DataBundle(name="cifar10-jpg", class_names=classes, train=Split(x_tr, y_tr),
                      val=Split(x_ho, y_ho), test=None, info={"source": "benchmark"})


def run_fit(bundle, out_dir: Path, **options):
    from cnnlab.train import fit

    t0 = time.perf_counter()
    result = fit(data=bundle, out_dir=str(out_dir), eval_split=None, report=False, quiet=True,
                 **options)
    return result, time.perf_counter() - t0
