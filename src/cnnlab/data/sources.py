"""``load_data``: every data source (digits, MNIST, CIFAR, image folders) -> ``DataBundle``."""

from __future__ import annotations

from pathlib import Path

import torch

from cnnlab.data._convert import convert
from cnnlab.data._split import check_fraction, stratified_split
from cnnlab.data.bundle import DataBundle, Split

SOURCES = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "folder:PATH", "csv:PATH")


def _check_size(image_size: int | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, int)
        or not 4 <= image_size <= 4096
    ):
        raise ValueError(f"image_size must be an integer in [4, 4096] or None, got {image_size!r}")
    return (image_size, image_size)


def _check_channels(channels: int | None) -> int | None:
    if channels not in (None, 1, 3):
        raise ValueError(
            f"channels must be 1 (grayscale), 3 (RGB) or None (keep), got {channels!r}"
        )
    return channels


def split_pool(
    pool: Split, val_split: float, test_split: float, seed: int
) -> tuple[Split, Split, Split | None]:
    """Stratified train/val/test split of one pool of samples (test None when test_split = 0).

    Example:
        >>> pool = Split(torch.zeros(20, 1, 2, 2, dtype=torch.uint8), torch.arange(20) % 2)
        >>> [len(s) for s in split_pool(pool, 0.2, 0.2, seed=0)]
        [12, 4, 4]
    """
    val_idx, test_idx, train_idx = stratified_split(pool.labels, (val_split, test_split), seed)
    test = pool.subset(test_idx) if test_split > 0 else None
    return pool.subset(train_idx), pool.subset(val_idx), test


def _load_digits(size: tuple[int, int], channels: int | None) -> tuple[Split, list[str]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    # 8x8 values are counts 0..16 of "on" pixels in 4x4 blocks; x * 255 / 16 maps them to 0..255.
    x = torch.from_numpy(d.images).to(torch.float64)  # (1797, 8, 8)
    x = (x * (255.0 / 16.0)).round().clamp(0, 255).to(torch.uint8).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.from_numpy(d.target).to(torch.int64)
    return Split(convert(x, size, channels), y), [str(int(c)) for c in d.target_names]


def load_data(
    source: str = "digits",
    *,
    data_dir: str | Path | None = "data",
    image_size: int | None = None,
    val_split: float = 0.1,
    test_split: float = 0.1,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    channels: int | None = None,
    download: bool = False,
    use_cache: bool = True,
    cache: str = "ram",
    storage_size: int | None = None,
    quiet: bool = True,
) -> DataBundle:
    """Load a dataset as resident uint8 tensors with a deterministic train/val/test split.

    Sources:

    * ``digits`` (default): scikit-learn's 1,797 real 8x8 handwritten digits, resized to
      ``image_size`` (default 32) with bilinear interpolation; stratified split by ``seed``.
    * ``mnist``, ``fashion_mnist``: the idx files in torchvision's layout under ``data_dir``
      (``data_dir/MNIST/raw/...``); validation split off the 60,000 training images.
    * ``cifar10``, ``cifar100``: the python batches in torchvision's layout
      (``data_dir/cifar-10-batches-py/...``); validation split off the training images.
    * ``folder:PATH``: one sub-folder per class; ``train/``, ``val/``, ``test/`` sub-folders are
      used when present, else a stratified split with ``val_split`` / ``test_split``.
    * ``csv:PATH``: a labels file with columns ``path,label[,split]`` (see
      :mod:`cnnlab.data.labels_csv`); paths relative to the file's folder.

    Decoded images are cached as safetensors in ``cache_dir`` (default ``data_dir/.cnnlab-cache``
    for datasets, ``~/.cache/cnnlab`` for folders), keyed on the files' names, sizes and mtimes.

    Args:
        source: one of ``SOURCES``.
        data_dir: where the standard datasets live (None: ``"data"``).
        image_size: resize to image_size x image_size (None: the source's native size; 32 for
            digits; for folders, the size all images share if they do (and it is at most 224),
            else a square of the most common shorter side, capped at 224). Folder images are
            resized by their shorter side and centre-cropped, keeping their aspect ratio.
        val_split: fraction of the training data held out for validation, in (0, 1).
        test_split: fraction held out for test where the source has no test set, in [0, 1).
        seed: seed of the split.
        cache_dir: directory of the decoded-image cache.
        channels: 1 or 3 to convert, None to keep the source's channels (majority for folders).
        download: fetch a missing standard dataset through torchvision (needs the network).
        use_cache: read and write the decoded-image cache.
        cache: where folder/CSV images are kept decoded: ``ram`` (resident tensors), ``disk``
            (a memory-mapped store, for sets larger than the RAM) or ``auto`` (disk when the
            decoded set would take over a quarter of the available memory).
        storage_size: folder/CSV only: decode at this square size (>= image_size) and let the
            model see ``image_size`` crops of it (``DataBundle.crop_size``).
        quiet: no progress bar while building a disk store.

    Returns:
        A :class:`DataBundle` with mean/std measured on the training split.

    Example:
        >>> b = load_data("digits", seed=0)
        >>> len(b.train), len(b.val), len(b.test), b.image_size
        (1439, 179, 179, (32, 32))
    """
    if not isinstance(source, str) or not source:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {source!r}")
    size = _check_size(image_size)
    if storage_size is not None and (
        isinstance(storage_size, bool) or not isinstance(storage_size, int)
        or not 4 <= storage_size <= 4096
    ):
        raise ValueError(f"storage_size must be an integer in [4, 4096] or None, got "
                         f"{storage_size!r}")  # fmt: skip
    channels = _check_channels(channels)
    val_split = check_fraction("val_split", val_split, allow_zero=False)
    test_split = check_fraction("test_split", test_split, allow_zero=True)
    if val_split + test_split >= 1:
        raise ValueError(
            f"val_split + test_split must be < 1 to leave training data, got {val_split} + "
            f"{test_split}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    info = {"seed": seed, "val_split": val_split, "test_split": test_split}
    name = source.strip()
    key = name.lower()
    if key == "digits":
        pool, class_names = _load_digits(size or (32, 32), channels)
        train, val, test = split_pool(pool, val_split, test_split, seed)
        return DataBundle("digits", class_names, train, val, test, info=info)
    if key in ("mnist", "fashion_mnist", "fashion-mnist", "cifar10", "cifar100"):
        from cnnlab.data._vision import load_vision

        key = key.replace("-", "_")
        root = Path(data_dir or "data").expanduser()
        train_pool, test, class_names = load_vision(
            key, root, size=size, channels=channels, download=download,
            cache_dir=None if cache_dir is None else Path(cache_dir), use_cache=use_cache,
        )  # fmt: skip
        val_idx, train_idx = stratified_split(train_pool.labels, (val_split,), seed)
        info = {"seed": seed, "val_split": val_split, "test_split": None}
        train, val = train_pool.subset(train_idx), train_pool.subset(val_idx)
        return DataBundle(key, class_names, train, val, test, info=info)
    if key.startswith(("folder:", "csv:")):
        from cnnlab.data.folder import load_folder
        from cnnlab.data.labels_csv import load_csv

        loader, prefix = (load_csv, "csv:") if key.startswith("csv:") else (load_folder, "folder:")
        if not name[len(prefix) :].strip():
            what, example = ("CSV file", "data/labels.csv") if prefix == "csv:" else (
                "folder", "data/flowers")
            raise ValueError(
                f"dataset {prefix!r} names no {what}; write {prefix}PATH with the {what}'s path, "
                f"e.g. {prefix}{example} (use folder:. for the current directory)"
            )
        return loader(
            name[len(prefix) :],
            image_size=image_size,
            channels=channels,
            val_split=val_split,
            test_split=test_split,
            seed=seed,
            cache_dir=cache_dir,
            use_cache=use_cache,
            cache=cache,
            storage_size=storage_size,
            quiet=quiet,
        )
    if storage_size is not None:
        raise ValueError(f"storage_size applies to folder:PATH and csv:PATH sources, not {name!r}")
    hint = ""
    if Path(name).is_dir():
        hint = f" (for an image folder write 'folder:{name}')"
    raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {source!r}{hint}")
