"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 from torchvision's on-disk layout under data_dir."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.data._cache import cache_key, file_stats, load_cache, save_cache
from cnnlab.data._convert import convert
from cnnlab.data._readers import md5, read_cifar_batch, read_idx
from cnnlab.data.bundle import Split

_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")  # fmt: skip
_TV_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # torchvision's class names
_FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip


_TV_NAMES: dict[str, Any] = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST",
                             "cifar10": "CIFAR10", "cifar100": "CIFAR100"}  # fmt: skip


def _tv_class(key: str) -> Any:
    """torchvision's dataset class for ``key`` (its file lists, md5s, URLs and downloader)."""
    cls = _TV_NAMES[key]
    if isinstance(cls, str):
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls)
    return cls


def _layout(key: str, data_dir: Path) -> tuple[Path, list[str]]:
    """The folder torchvision uses for ``key`` and the file names needed in it."""
    if key in ("mnist", "fashion_mnist"):
        return data_dir / _TV_FOLDERS[key] / "raw", list(_MNIST_FILES)
    cls = _tv_class(key)
    names = [n for n, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return data_dir / cls.base_folder, names


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download(key: str, data_dir: Path) -> None:
    cls = _tv_class(key)
    try:
        for train in (True, False):
            cls(root=str(data_dir), train=train, download=True)
    except Exception as e:  # no network, blocked host, bad archive ...
        raise FileNotFoundError(
            f"could not download {key} into {data_dir} through torchvision: {type(e).__name__}: {e}"
        ) from None


def _missing_message(key: str, data_dir: Path, folder: Path, missing: list[str]) -> str:
    cls = _tv_class(key)
    if key in ("mnist", "fashion_mnist"):
        urls = ", ".join(m + n for m in cls.mirrors[:1] for n, _ in cls.resources)
        how = f"download {urls} and put them (gzipped or not) into {folder}/"
    else:
        archive = data_dir / cls.filename
        if archive.is_file():
            how = f"extract {archive} there (tar xzf {archive} -C {data_dir})"
        else:
            how = f"download {cls.url} and extract it into {data_dir}/"
    what = (
        f"{folder}/ (it should hold {', '.join(missing)})"
        if not folder.is_dir()
        else ", ".join(str(folder / m) for m in missing)
    )
    return (
        f"dataset {key!r} not found: missing {what}. To fix: {how}; or let torchvision "
        f"download it on a machine with network access (cnnlab train --download, or "
        f"load_data(..., download=True)); "
        f"or point data_dir (--data-dir) at the folder that holds "
        f"{folder.relative_to(data_dir)}/."
    )


def _read_mnist(key: str, files: dict[str, Path]) -> tuple[Split, Split, list[str]]:
    def split(images: str, labels: str) -> Split:
        x = read_idx(files[images])
        y = read_idx(files[labels])
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(
                f"{files[images]} and {files[labels]} do not match: images {x.shape}, "
                f"labels {y.shape}"
            )
        images_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)).unsqueeze(1)
        return Split(images_t, torch.from_numpy(y.astype(np.int64)))

    train = split(_MNIST_FILES[0], _MNIST_FILES[1])
    test = split(_MNIST_FILES[2], _MNIST_FILES[3])
    classes = [str(i) for i in range(10)] if key == "mnist" else list(_FASHION_CLASSES)
    return train, test, classes


def _read_cifar(key: str, files: dict[str, Path]) -> tuple[Split, Split, list[str]]:
    cls = _tv_class(key)
    official = {n: h for n, h in cls.train_list + cls.test_list}
    official[cls.meta["filename"]] = cls.meta["md5"]
    unofficial = [n for n, p in files.items() if md5(p) != official[n]]
    if unofficial:
        warnings.warn(
            f"{key}: {', '.join(unofficial)} differ from the official files (md5 mismatch); "
            "reading them anyway with a restricted unpickler that only builds arrays",
            stacklevel=4,
        )
    label_key = "labels" if key == "cifar10" else "fine_labels"

    def split(names: list[str]) -> Split:
        xs, ys = [], []
        for n in names:
            batch = read_cifar_batch(files[n])
            if "data" not in batch or label_key not in batch:
                raise ValueError(f"{files[n]} lacks the 'data' or {label_key!r} entry")
            xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[label_key], dtype=np.int64))
        return Split(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)))

    meta = read_cifar_batch(files[cls.meta["filename"]])
    classes = [str(c) for c in meta[cls.meta["key"]]]
    return split([n for n, _ in cls.train_list]), split([n for n, _ in cls.test_list]), classes


def load_vision(
    key: str,
    data_dir: Path,
    *,
    size: tuple[int, int] | None,
    channels: int | None,
    download: bool,
    cache_dir: Path | None,
    use_cache: bool,
) -> tuple[Split, Split, list[str]]:
    """Load a standard dataset's (train, test, class names), converted and cached."""
    folder, names = _layout(key, data_dir)
    found = {n: _find(folder, n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing and download:
        _download(key, data_dir)
        found = {n: _find(folder, n) for n in names}
        missing = [n for n, p in found.items() if p is None]
    if missing:
        raise FileNotFoundError(_missing_message(key, data_dir, folder, missing))
    files: dict[str, Path] = {n: p for n, p in found.items() if p is not None}
    options = {"source": key, "size": size, "channels": channels}
    key_hash = cache_key(file_stats(files.values(), folder), options)
    cache_dir = cache_dir if cache_dir is not None else data_dir / ".cnnlab-cache"
    if use_cache:
        hit = load_cache(cache_dir, key, folder, options, key_hash)
        if hit is not None:
            t, meta = hit
            train = Split(t["train_images"], t["train_labels"])
            return train, Split(t["test_images"], t["test_labels"]), meta["class_names"]
    reader: Callable = _read_mnist if key in ("mnist", "fashion_mnist") else _read_cifar
    train, test, classes = reader(key, files)
    train, test = (Split(convert(s.images, size, channels), s.labels) for s in (train, test))
    if use_cache:
        tensors = {"train_images": train.images, "train_labels": train.labels,
                   "test_images": test.images, "test_labels": test.labels}  # fmt: skip
        save_cache(cache_dir, key, folder, options, key_hash, tensors, {"class_names": classes})
    return train, test, classes
