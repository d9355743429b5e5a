"""Image folders (one sub-folder per class) -> DataBundle, robust to the mess of real folders.

Layouts: ``PATH/<class>/...`` (split with val_split/test_split), or ``PATH/train/<class>/...``
with optional ``PATH/val/`` (or ``valid/``, ``validation/``) and ``PATH/test/``. Images may sit
in nested folders below a class folder. Unreadable or non-image files are skipped with one
warning that counts them and names the first few; empty classes are dropped with a warning.

Nothing is ignored silently: with a ``train/`` folder, other folders beside it (``holdout/``,
class folders at the root) are named in a warning. Folders that operating systems and NAS boxes
create (``SYSTEM_FOLDERS``: ``@eaDir``, ``__MACOSX``, ``$RECYCLE.BIN`` ...) are never classes
nor read for images, anywhere in the tree, and ``SYSTEM_FILES`` (``Thumbs.db``, ``desktop.ini``)
are not counted as stray files. A file whose name is not valid UTF-8 is skipped with a warning
that shows its bytes; a class folder named so is refused (its name could not be saved).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.data._cache import _stem, cache_key, default_cache_dir, load_cache, save_cache
from cnnlab.data._decode import (
    _FAST_JPEG_MIN,
    IMAGE_EXTENSIONS,
    choose_format,
    decode_all,
    probe_all,
)
from cnnlab.data._split import stratified_split
from cnnlab.data.bundle import DataBundle, Split
from cnnlab.data.store import StoreSpec, build_store, open_store, remove_stale, store_bytes
from cnnlab.data.stored import StoredImages

log = logging.getLogger("cnnlab.data")

_VAL_NAMES = ("val", "valid", "validation")
# Made by operating systems, file managers and NAS boxes: never a class, never read for images.
SYSTEM_FOLDERS = frozenset(
    {"@eaDir", "@Recycle", "#recycle", "#snapshot", "__MACOSX", "$RECYCLE.BIN",
     "System Volume Information", "lost+found", ".Trash", "__pycache__"}
)  # fmt: skip
SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"})
_PARTS = ("train", "val", "test", "all")  # index stored per image in the cache
_SHOW = 5  # how many problem files a warning names
_PROBE = 1000  # files whose headers decide the default size and channels
CACHE_MODES = ("auto", "ram", "disk")


def _subdirs(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and p.name not in SYSTEM_FOLDERS)  # fmt: skip


def _system_dirs(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.is_dir() and p.name in SYSTEM_FOLDERS)


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:  # os.fsdecode kept undecodable bytes as surrogates
        return False


def shown_path(path: str | os.PathLike) -> str:
    """A path for messages: as text when it is valid UTF-8, else its bytes escaped.

    Example:
        >>> shown_path("cat/caf\udce9.png")
        "b'cat/caf\\xe9.png'"
    """
    text = os.fspath(path)
    return text if _utf8(text) else repr(os.fsencode(text))


def _layout(root: Path) -> dict[str, Path]:
    names = {p.name.lower(): p for p in _subdirs(root)}
    if "train" not in names or not _subdirs(names["train"]):
        return {"all": root}
    parts = {"train": names["train"]}
    for v in _VAL_NAMES:
        if v in names:
            parts["val"] = names[v]
            break
    if "test" in names:
        parts["test"] = names["test"]
    used = {p.name for p in parts.values()}
    beside = [p.name for p in _subdirs(root) if p.name not in used]
    if beside:
        warnings.warn(
            f"{root}: using the {'/'.join(sorted(used))} folders; ignoring "
            f"{len(beside)} other folder(s) beside train/: {', '.join(beside[:_SHOW])}"
            f"{' ...' if len(beside) > _SHOW else ''} (move them into train/ to use them as "
            "classes, or out of this folder)",
            stacklevel=4,
        )
    return parts


@dataclass
class _Scan:
    """What a folder holds: image files (with stats, part and class) and non-image files."""

    paths: list[str] = field(default_factory=list)
    stats: list[tuple[str, int, int]] = field(default_factory=list)  # (relative path, size, mtime)
    parts: list[int] = field(default_factory=list)  # index into _PARTS
    labels: list[int] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)
    loose: list[Path] = field(default_factory=list)  # images outside any class folder
    bad_names: list[str] = field(default_factory=list)  # file names that are not UTF-8
    seen_dirs: set[str] = field(default_factory=set)  # real paths walked (symlink loops)


def _walk(prefix: int, class_dir: str, part: int, label: int, scan: _Scan) -> None:
    """Add the files below ``class_dir`` (sorted, hidden entries skipped) to ``scan``.

    Works on plain strings (``prefix`` = length of the root path + 1 gives relative paths):
    pathlib objects cost more than the stat calls themselves on 50,000-file folders.
    """
    with os.scandir(class_dir) as it:
        entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    for e in entries:
        if not _utf8(e.name):
            scan.bad_names.append(e.path[prefix:])
            continue
        if e.is_dir():
            if e.name in SYSTEM_FOLDERS:
                continue
            real = os.path.realpath(e.path)
            if real not in scan.seen_dirs:  # a symlink cycle would recurse forever
                scan.seen_dirs.add(real)
                _walk(prefix, e.path, part, label, scan)
        elif e.is_file():
            if os.path.splitext(e.name)[1].lower() not in IMAGE_EXTENSIONS:
                if e.name.lower() not in SYSTEM_FILES:
                    scan.others.append(Path(e.path))
                continue
            st = e.stat()
            scan.paths.append(e.path)
            scan.stats.append((e.path[prefix:].replace(os.sep, "/"), st.st_size, st.st_mtime_ns))
            scan.parts.append(part)
            scan.labels.append(label)


def _scan(root: Path, parts: dict[str, Path]) -> _Scan:
    """List every file of every class folder of every part (train/val/test or all)."""
    train_part = "train" if "train" in parts else "all"
    scan = _Scan(class_names=[d.name for d in _subdirs(parts[train_part])])
    bad = [shown_path(n) for n in scan.class_names if not _utf8(n)]
    if bad:
        raise ValueError(
            f"{root}: class folder name(s) {', '.join(bad)} are not valid UTF-8, so they "
            "cannot be saved as class names; rename them (e.g. with convmv)"
        )
    system = sorted({n for d in {root, *parts.values()} for n in _system_dirs(d)})
    if system:
        warnings.warn(
            f"{root}: ignoring system folders (not classes): {', '.join(system)}", stacklevel=4
        )
    unknown: list[str] = []
    # The root, the part folders and the class folders themselves are never entered through a
    # symlink from inside a class folder (that would relabel or repeat their images).
    scan.seen_dirs.add(os.path.realpath(root))
    for d in parts.values():
        scan.seen_dirs.add(os.path.realpath(d))
        scan.seen_dirs.update(os.path.realpath(c) for c in _subdirs(d))
    for part, d in parts.items():
        scan.loose += [
            p for p in sorted(d.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
        ]  # fmt: skip
        for cdir in _subdirs(d):
            if cdir.name not in scan.class_names:
                unknown.append(f"{part}/{cdir.name}")
                continue
            label = scan.class_names.index(cdir.name)
            _walk(len(str(root)) + 1, str(cdir), _PARTS.index(part), label, scan)
    if unknown:
        warnings.warn(
            f"ignoring class folders that are not in the training folder: {', '.join(unknown)}",
            stacklevel=4,
        )
    return scan


def _rel(p: Path, root: Path) -> str:
    """``p`` relative to ``root`` when inside it (a CSV may list files anywhere), else whole."""
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)


def _report(root: Path, bad: list[tuple[Path, str]], scan: _Scan) -> None:
    others, total = scan.others, len(scan.paths)
    if not bad and not others and not scan.loose and not scan.bad_names:
        return
    msg = []
    if scan.bad_names:
        shown = ", ".join(shown_path(p) for p in scan.bad_names[:_SHOW])
        more = f" and {len(scan.bad_names) - _SHOW} more" if len(scan.bad_names) > _SHOW else ""
        msg.append(f"skipped {len(scan.bad_names)} files whose names are not valid UTF-8 "
                   f"(rename them): {shown}{more}")  # fmt: skip
    if bad:
        shown = "; ".join(f"{_rel(p, root)} ({why})" for p, why in bad[:_SHOW])
        more = f" and {len(bad) - _SHOW} more" if len(bad) > _SHOW else ""
        msg.append(f"skipped {len(bad)} of {total} image files that could not be decoded: "
                   f"{shown}{more}")  # fmt: skip
    if others:
        shown = ", ".join(str(p.relative_to(root)) for p in others[:_SHOW])
        more = f" and {len(others) - _SHOW} more" if len(others) > _SHOW else ""
        msg.append(f"ignored {len(others)} files without an image extension: {shown}{more}")
    if scan.loose:
        shown = ", ".join(str(p.relative_to(root)) for p in scan.loose[:_SHOW])
        more = f" and {len(scan.loose) - _SHOW} more" if len(scan.loose) > _SHOW else ""
        msg.append(f"ignored {len(scan.loose)} images outside the class folders: {shown}{more}")
    warnings.warn(f"{root}: " + "; ".join(msg), stacklevel=6)  # points at load_data's caller


def _check_memory(n: int, c: int, size: tuple[int, int], image_size: int | None) -> None:
    """Refuse up front, with advice, a decoded tensor that would take over half the RAM."""
    need = n * c * size[0] * size[1] * 2  # the tensor, plus one copy while it is assembled
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not available on this platform
        return
    if need > ram // 2:
        chosen = "--image-size" if image_size is not None else "the default size"
        raise ValueError(
            f"decoding {n:,} images at {c}x{size[0]}x{size[1]} ({chosen}) needs about "
            f"{need / 2**30:.1f} GiB, more than half of this machine's {ram / 2**30:.1f} GiB; "
            "pass a smaller image_size (--image-size), e.g. 64 or 128"
        )


def _format(
    root: Path, scan: _Scan, image_size: int | None, channels: int | None
) -> tuple[tuple[int, int], int, bool]:
    """(size, channels, native) for decoding: from the headers of a sample of the files."""
    if not scan.paths:
        raise ValueError(
            f"no image files found in the class folders of {root} (looked for "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}); expected {root}/<class name>/<images>"
        )
    # The common size and channel count are chosen from the headers of an evenly spaced sample
    # of files; every file is then converted to that format whatever its own.
    headers = probe_all(scan.paths[:: max(1, len(scan.paths) // _PROBE)])
    if all(isinstance(h, str) for h in headers):
        headers = probe_all(scan.paths)
    if all(isinstance(h, str) for h in headers):
        raise ValueError(f"none of the {len(scan.paths)} image files in {root} could be read")
    size, chans = choose_format(headers, image_size, channels)
    native = all(isinstance(h, str) or h[0] == (size[1], size[0]) for h in headers)
    return size, chans, native


def _meta(root: Path, scan: _Scan, bad: list[tuple[Path, str]]) -> dict[str, Any]:
    return {
        "class_names": scan.class_names,
        "skipped_files": len(bad) + len(scan.others) + len(scan.loose) + len(scan.bad_names),
        "skipped_examples": [_rel(p, root) for p, _ in bad[:_SHOW]],
    }


def _decode_folder(
    root: Path, scan: _Scan, size: tuple[int, int], chans: int, native: bool,
    image_size: int | None,
) -> dict[str, Any]:
    _check_memory(len(scan.paths), chans, size, image_size)
    log.info("decoding %d images of %s to %dx%dx%d", len(scan.paths), root, chans, *size)
    t0 = time.perf_counter()
    images, errors = decode_all(scan.paths, size, chans, fast_jpeg=native)
    log.info("decoded in %.1f s", time.perf_counter() - t0)
    bad = [(Path(p), e) for p, e in zip(scan.paths, errors) if e is not None]
    _report(root, bad, scan)
    labels = torch.tensor(scan.labels, dtype=torch.int64)
    parts = torch.tensor(scan.parts, dtype=torch.int8)
    if bad:
        keep = torch.tensor([e is None for e in errors], dtype=torch.bool)
        images, labels, parts = images[keep], labels[keep], parts[keep]
    return {"images": images, "labels": labels, "parts": parts, "meta": _meta(root, scan, bad)}


def _store_folder(
    root: Path, scan: _Scan, size: tuple[int, int], chans: int, native: bool,
    store_path: Path, key: str, quiet: bool,
) -> dict[str, Any]:
    """Decode into (or reopen) the disk store; the splits become views of its rows."""
    spec = StoreSpec(
        scan.paths, size, chans,
        {"labels": np.asarray(scan.labels, dtype=np.int64),
         "parts": np.asarray(scan.parts, dtype=np.int8)},
        {"class_names": scan.class_names},
        fast_jpeg=native and len(scan.paths) >= _FAST_JPEG_MIN,
    )  # fmt: skip
    store = build_store(store_path, key, spec, quiet=quiet, log=log.info)
    bad = [(Path(scan.paths[i]), e) for i, e in sorted(store.errors.items())]
    _report(root, bad, scan)
    ok = torch.from_numpy(store.arrays["ok"])
    keep = torch.nonzero(ok).flatten()
    rows = StoredImages(store.images, torch.arange(len(store)), store.sums).take_rows(keep)
    return {
        "images": rows,
        "labels": torch.from_numpy(store.arrays["labels"])[keep],
        "parts": torch.from_numpy(store.arrays["parts"])[keep],
        "meta": _meta(root, scan, bad),
    }


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (MemAvailable), None when unknown.

    Example:
        >>> available_memory() is None or available_memory() > 0
        True
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


RAM_SHARE = 0.25  # `auto` keeps a decoded set resident up to this share of the available memory


def choose_cache(cache: str, need: int) -> tuple[str, str]:
    """``(ram|disk, why)`` for ``cache`` = auto|ram|disk and a decoded size of ``need`` bytes.

    Example:
        >>> choose_cache("auto", 1000)[0], choose_cache("disk", 1000)[0]
        ('ram', 'disk')
    """
    if cache not in CACHE_MODES:
        raise ValueError(f"cache must be one of {', '.join(CACHE_MODES)}, got {cache!r}")
    if cache != "auto":
        return cache, f"--cache {cache}"
    avail = available_memory()
    if avail is None:
        return "ram", "available memory unknown"
    share = need / avail
    where = "disk" if share > RAM_SHARE else "ram"
    return where, (f"decoded size {need / 2**30:.2f} GiB is {share:.0%} of the "
                   f"{avail / 2**30:.1f} GiB available memory "
                   f"({'above' if where == 'disk' else 'within'} the {RAM_SHARE:.0%} kept "
                   "resident)")  # fmt: skip


def _drop_empty_classes(
    labels: torch.Tensor, class_names: list[str], root: Path
) -> tuple[torch.Tensor, list[str], list[str]]:
    counts = torch.bincount(labels, minlength=len(class_names))
    empty = [n for n, c in zip(class_names, counts.tolist()) if c == 0]
    if empty:
        warnings.warn(
            f"{root}: dropping {len(empty)} class folder(s) with no readable images: "
            f"{', '.join(empty)}",
            stacklevel=5,
        )
    kept = [i for i, c in enumerate(counts.tolist()) if c > 0]
    if len(kept) < 2:
        raise ValueError(
            f"{root} needs at least 2 class folders with readable images, found "
            f"{len(kept)} ({', '.join(class_names[i] for i in kept) or 'none'})"
        )
    remap = torch.full((len(class_names),), -1, dtype=torch.int64)
    remap[kept] = torch.arange(len(kept))
    return remap[labels], [class_names[i] for i in kept], empty


def load_folder(
    path: str | Path,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    val_split: float = 0.1,
    test_split: float = 0.1,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    cache: str = "ram",
    storage_size: int | None = None,
    quiet: bool = True,
) -> DataBundle:
    """Load an image folder (see the module docstring for layouts) as a :class:`DataBundle`.

    Decoded images are cached in ``cache_dir`` (default ``~/.cache/cnnlab``), keyed on every
    image file's path, size and mtime plus the decoding options: resident (``cache="ram"``, a
    safetensors file) or as a memory-mapped disk store (``cache="disk"``, see
    :mod:`cnnlab.data.store`; the splits are then views of its rows and stay on disk);
    ``cache="auto"`` picks disk when the decoded set exceeds ``RAM_SHARE`` of the available
    memory. With ``storage_size`` the images are decoded at that size (shorter side resized,
    central square kept) and the bundle's ``crop_size`` is ``image_size``: the model sees
    random-resized crops of the full stored picture in training and centre crops in evaluation.
    Prefer calling ``load_data("folder:PATH", ...)``, which checks the arguments.

    Example:
        >>> import tempfile, pathlib, PIL.Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for c in ("cat", "dog"):
        ...     (root / c).mkdir()
        ...     for i in range(5):
        ...         PIL.Image.new("RGB", (12, 10)).save(root / c / f"{i}.png")
        >>> b = load_folder(root, val_split=0.2, test_split=0.2, use_cache=False)
        >>> b.class_names, len(b.train), b.image_size
        (['cat', 'dog'], 6, (10, 12))
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise ValueError(f"folder:PATH must name a directory of class folders, got file {root}")
    if not _subdirs(root):
        raise ValueError(
            f"{root} has no class sub-folders; expected {root}/<class name>/<images> "
            f"or {root}/train/<class name>/<images>"
        )
    root = root.resolve()
    parts = _layout(root)
    scan = _scan(root, parts)
    return load_scanned(
        f"folder:{root}", "folder", root, scan, {"layout": sorted(parts)},
        image_size=image_size, channels=channels, val_split=val_split, test_split=test_split,
        seed=seed, cache_dir=cache_dir, use_cache=use_cache, cache=cache,
        storage_size=storage_size, quiet=quiet, split_layout="all" not in parts,
    )  # fmt: skip


def load_scanned(
    name: str, kind: str, root: Path, scan: _Scan, key_options: dict[str, Any], *,
    image_size: int | None, channels: int | None, val_split: float, test_split: float,
    seed: int, cache_dir: str | Path | None, use_cache: bool, cache: str,
    storage_size: int | None, quiet: bool, split_layout: bool,
) -> DataBundle:
    """Decode the files of a scan (folder or CSV) through the RAM cache or the disk store."""
    if storage_size is not None and image_size is not None and storage_size < image_size:
        raise ValueError(
            f"storage_size ({storage_size}) must be at least image_size ({image_size}): images "
            "are stored at least as large as the model sees them"
        )
    decode_size = storage_size if storage_size is not None else image_size
    crop = (image_size, image_size) if storage_size is not None and image_size else None
    options = {"image_size": decode_size, "channels": channels, **key_options}
    key = cache_key(scan.stats, options)
    cdir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if cache not in CACHE_MODES:
        raise ValueError(f"cache must be one of {', '.join(CACHE_MODES)}, got {cache!r}")
    hit = load_cache(cdir, kind, root, options, key) if use_cache and cache != "disk" else None
    why = "from the resident cache"
    if hit is not None:
        decoded = {**hit[0], "meta": hit[1]}
        log.info("%s: %d decoded images from the cache in %s", root, len(hit[0]["labels"]), cdir)
    else:
        stem = _stem(kind, root, options)
        store_path = cdir / f"{stem}-{key[:24]}.store"
        built = open_store(store_path, key) if cache == "disk" else None
        if built is not None:  # a complete store of these very files: no probing, no decoding
            where, why = "disk", f"the store {store_path} is already built"
            size, chans, native = tuple(built.images.shape[2:]), built.images.shape[1], False
        else:
            size, chans, native = _format(root, scan, decode_size, channels)
            where, why = choose_cache(cache, store_bytes(len(scan.paths), chans, size))
        log.info("%s: %s store (%s)", root, "memory-mapped disk" if where == "disk"
                 else "resident", why)  # fmt: skip
        if where == "disk":
            decoded = _store_folder(root, scan, size, chans, native, store_path, key, quiet)
            remove_stale(cdir, stem, store_path)
        else:
            decoded = _decode_folder(root, scan, size, chans, native, decode_size)
            if use_cache:
                tensors = {k: decoded[k] for k in ("images", "labels", "parts")}
                save_cache(cdir, kind, root, options, key, tensors, decoded["meta"])
    meta = decoded["meta"]
    labels, class_names, dropped = _drop_empty_classes(decoded["labels"], meta["class_names"], root)
    images, parts = decoded["images"], decoded["parts"]
    stored = isinstance(images, StoredImages)
    info = {"seed": seed, "val_split": val_split, "test_split": test_split,
            "skipped_files": meta["skipped_files"], "dropped_classes": dropped,
            "cache": "disk" if stored else "ram", "cache_why": why}  # fmt: skip
    if crop is not None:
        info["storage_size"] = storage_size

    def where(part: str) -> torch.Tensor:  # indices of the kept samples of one part
        return torch.nonzero((parts == _PARTS.index(part)) & (labels >= 0)).flatten()

    def take(index: torch.Tensor) -> Split:  # one copy per split (a row view for a disk store)
        rows = images.take_rows(index) if stored else images.index_select(0, index)
        return Split(rows, labels.index_select(0, index))

    def split_off(index: torch.Tensor, fractions: tuple[float, ...]) -> list[torch.Tensor]:
        return [index[i] for i in stratified_split(labels[index], fractions, seed)]

    present = {p for p in _PARTS if len(where(p))}
    if "all" in present:
        val_i, test_i, train_i = split_off(where("all"), (val_split, test_split))
        test = take(test_i) if test_split > 0 else None
    else:
        test = take(where("test")) if "test" in present else None
        if "val" in present:
            train_i, val_i = where("train"), where("val")
        else:
            val_i, train_i = split_off(where("train"), (val_split,))
        if split_layout:
            info["layout"] = sorted(present)
    train, val = take(train_i), take(val_i)
    return DataBundle(name, class_names, train, val, test, info=info, crop_size=crop)
