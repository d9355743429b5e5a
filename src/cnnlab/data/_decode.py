"""Decode image files of any PIL mode and size into uint8 (C, H, W) arrays, many at a time.

Bad files never exhaust memory or hang: only regular files are opened (a FIFO named ``x.png``
would block forever), Pillow's decompression-bomb limit is an error rather than a warning, and a
picture whose resized size would be huge (a 1 x 2,000,000 strip resized to fill 32 x 32 is
32 x 64,000,000) is resized straight from the crop box, so nothing larger than the source and
the target is ever allocated. Pixel values are scaled by bit depth, not by the image's own
maximum: 16-bit / 257, float images from [0, 1] (others refused). A damaged JPEG that libjpeg
decodes with a "Corrupt JPEG data" message is refused like a truncated one.

Modes are mapped to 1 channel (grayscale: ``1``, ``L``, ``I``, ``I;16``, ``F``, ``LA``) or 3
(everything else: RGB, RGBA, palette, CMYK, YCbCr ...). Transparent images are composited onto
white first, so a transparent background does not turn into arbitrary colours. Sizes are
unified by resizing the shorter side to the target and centre-cropping (aspect ratio kept).
EXIF orientation is applied, so photos appear the way viewers show them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import stat
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, ImageOps

_EXIF_ORIENTATION = 0x0112
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
     ".ppm", ".pgm", ".pbm", ".pnm", ".ico", ".tga"}
)  # fmt: skip


def mode_channels(mode: str) -> int:
    """1 for grayscale PIL modes, 3 for colour ones.

    Example:
        >>> mode_channels("L"), mode_channels("CMYK"), mode_channels("P")
        (1, 3, 3)
    """
    return 1 if mode in GRAY_MODES else 3


# A resized picture may have at most this many pixels before the crop (else: resize from the box).
MAX_RESIZED_PIXELS = 4096 * 4096


def not_regular(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as an image file without opening it (None when it can).

    Example:
        >>> not_regular("/dev/null")
        'not a regular file (a character device)'
    """
    try:
        st = os.stat(path)
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror or e}"
    except (ValueError, TypeError) as e:  # e.g. bytes with a NUL given as a path
        return f"{type(e).__name__}: {e}"
    if stat.S_ISREG(st.st_mode):
        return "empty file (0 bytes)" if st.st_size == 0 else None
    kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
            else "a character device" if stat.S_ISCHR(st.st_mode) else "a socket"
            if stat.S_ISSOCK(st.st_mode) else "a special file")  # fmt: skip
    return f"not a regular file ({kind})"


def probe(path: Path) -> tuple[tuple[int, int], str] | str:
    """``((width, height), mode)`` from the file header, or an error string."""
    why = not_regular(path)
    if why is not None:
        return why
    try:
        with Image.open(path) as im:
            return im.size, im.mode
    except Exception as e:  # PIL raises many kinds for bad files
        return f"{type(e).__name__}: {e}"


def _to_channels(im: Image.Image, channels: int) -> Image.Image:
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        im = Image.fromarray(_to_uint8(np.asarray(im), mode), "L")
    elif mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    target = "L" if channels == 1 else "RGB"
    return im if im.mode == target else im.convert(target)


def _to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """16-bit and 32-bit integer pixels scaled by bit depth (/257), float ones from [0, 1].

    PIL's ``convert("L")`` clips these modes at 255; scaling by the image's own maximum would
    make a dark 16-bit picture bright. A 32-bit integer image must hold 16-bit values.
    """
    if mode == "F":
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"float image with values in [{lo:g}, {hi:g}]; cnnlab reads float images "
                "as [0, 1] (convert it to an 8- or 16-bit image first)"
            )
        return np.round(a.astype(np.float64) * 255.0).astype(np.uint8)
    if a.size and (int(a.min()) < 0 or int(a.max()) > 65535):
        raise ValueError(
            f"32-bit integer image with values in [{int(a.min())}, {int(a.max())}]; expected "
            "16-bit values 0..65535 (convert it to an 8- or 16-bit image first)"
        )
    return np.round(a.astype(np.float64) / 257.0).astype(np.uint8)


def _libjpeg_complaint(path: str | Path | IO[bytes]) -> str | None:
    """libjpeg's warning for a damaged JPEG ("Corrupt JPEG data: ..."), or None.

    Pillow decodes damaged entropy data silently, and libjpeg writes its warnings straight to
    the C stderr, so they are collected by decoding once more with torchvision's libjpeg-turbo
    while file descriptor 2 points at a temporary file. None when torchvision is missing.
    """
    try:
        from torchvision.io import decode_jpeg
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return None
    if hasattr(path, "read"):
        path.seek(0)
        data = path.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    return _captured_stderr(lambda: decode_jpeg(torch.frombuffer(bytearray(data),
                                                                 dtype=torch.uint8)))


def _captured_stderr(fn: Callable[[], Any]) -> str | None:
    """What ``fn`` wrote to file descriptor 2 (C libraries), or None when nothing / it raised."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn()
        except Exception:  # noqa: BLE001 - PIL already decoded it; only the messages matter
            pass
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode("utf-8", "replace").strip()
    return " ".join(text.split())[:200] or None


def decode_one(
    path: str | Path | IO[bytes],
    size: tuple[int, int],
    channels: int,
    out: torch.Tensor | None = None,
) -> np.ndarray | str | None:
    """Decode one image file (or binary file object) to uint8 (C, H, W) of the target size.

    Without ``out``: returns the array, or an error string when the file cannot be decoded.
    With ``out`` (a uint8 tensor (C, H, W)): writes into it and returns None, or the error string.

    Example:
        >>> import io
        >>> buf = io.BytesIO()
        >>> Image.new("RGBA", (40, 30), (0, 0, 0, 0)).save(buf, format="PNG")
        >>> a = decode_one(buf, (8, 8), 1)
        >>> a.shape, int(a.min())  # transparent pixels composited onto white
        ((1, 8, 8), 255)
    """
    a = _decode(path, size, channels)
    if out is None or isinstance(a, str):
        return a
    out.copy_(torch.from_numpy(a))
    return None


def _decode(path: str | Path | IO[bytes], size: tuple[int, int], channels: int) -> np.ndarray | str:
    h, w = size
    if not hasattr(path, "read"):
        why = not_regular(path)
        if why is not None:
            return why
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Palette images with transparency ..."
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # refuse, not warn
            with Image.open(path) as im:
                # Camera photos are often stored sideways with an EXIF orientation tag (values
                # 5-8 mean a quarter turn, so the displayed width and height swap).
                orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
                turned = orientation in (5, 6, 7, 8)
                iw, ih = im.size[::-1] if turned else im.size  # displayed size
                scale = max(h / ih, w / iw)  # shorter side (relative to target) fills the target
                rw, rh = max(w, round(iw * scale)), max(h, round(ih * scale))
                if im.format == "JPEG":  # let libjpeg decode at a reduced scale (much faster)
                    im.draft("L" if channels == 1 else "RGB", (rh, rw) if turned else (rw, rh))
                jpeg = im.format == "JPEG"
                if orientation != 1:
                    im = ImageOps.exif_transpose(im)
                im = _to_channels(im, channels)
                if rw * rh > MAX_RESIZED_PIXELS:
                    # Resize only the centre crop's box of the source: memory stays bounded by
                    # the source and the target, whatever the aspect ratio.
                    sw, sh = im.size
                    bw, bh = w / scale, h / scale
                    box = ((sw - bw) / 2, (sh - bh) / 2, (sw + bw) / 2, (sh + bh) / 2)
                    im = im.resize((w, h), Image.BILINEAR, box=box)
                    rw, rh = w, h
                if im.size != (rw, rh):
                    im = im.resize((rw, rh), Image.BILINEAR)  # PIL's resize filters (antialias)
                if (rw, rh) != (w, h):
                    left, top = (rw - w) // 2, (rh - h) // 2
                    im = im.crop((left, top, left + w, top + h))
                a = np.asarray(im, dtype=np.uint8)
        if jpeg:
            complaint = _libjpeg_complaint(path)
            if complaint:
                return f"damaged JPEG: {complaint}"
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)  # (C, H, W)
        return np.array(a, dtype=np.uint8, order="C")  # a writable copy of PIL's buffer
    except Exception as e:  # truncated, corrupt, unsupported: reported, never fatal
        return f"{type(e).__name__}: {e}"


_JPEG_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif")
_FAST_JPEG_MIN = 10_000  # below this many files, importing torchvision.io costs more than it saves


def _decode_jpeg_native(
    path: str | Path, size: tuple[int, int], channels: int
) -> np.ndarray | None:
    """libjpeg-turbo via torchvision.io for a JPEG already of the target size, else None.

    2.5x less CPU than PIL on 32x32 files (PIL parses JPEG headers in Python) and bit-identical
    output; anything unusual (other size, EXIF turn, damaged file) returns None so that the
    PIL path handles it and reports the error.
    """
    try:
        from torchvision.io import ImageReadMode, decode_jpeg

        with open(path, "rb") as f:
            data = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
        mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
        out: list[torch.Tensor] = []
        complaint = _captured_stderr(
            lambda: out.append(decode_jpeg(data, mode=mode, apply_exif_orientation=True))
        )
    except Exception:
        return None
    if complaint or not out:  # damaged: the PIL path reports it
        return None
    img = out[0]  # (C, H, W)
    return img.numpy() if tuple(img.shape) == (channels, *size) else None


def _decode_chunk(
    paths: Sequence[Path], size: tuple[int, int], channels: int, fast_jpeg: bool = False
) -> tuple[np.ndarray, list[str | None]]:
    out = np.zeros((len(paths), channels, *size), dtype=np.uint8)
    errors: list[str | None] = []
    with warnings.catch_warnings():
        # torchvision >= 0.29 flags its image decoders as deprecated (in favour of torchcodec);
        # they still work, and if they are ever removed the PIL path takes over.
        warnings.simplefilter("ignore", DeprecationWarning)
        for i, p in enumerate(paths):
            a = None
            if fast_jpeg and str(p).lower().endswith(_JPEG_EXTENSIONS):
                a = _decode_jpeg_native(p, size, channels)
            if a is None:
                a = _decode(p, size, channels)
            if isinstance(a, str):
                errors.append(a)
            else:
                out[i] = a
                errors.append(None)
    return out, errors


def _probe_chunk(paths: Sequence[Path]) -> list[tuple[tuple[int, int], str] | str]:
    return [probe(p) for p in paths]


_CHUNK = 500  # files per task sent to a worker process
_MIN_PARALLEL = 2000  # below this many files, decoding in-process is faster than a pool
_MAX_WORKERS = 8  # beyond this, disk reads and result transfer dominate


def _cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _worker_init() -> None:
    # One intra-op thread per worker process: the workers themselves are the parallelism, and
    # a single-threaded child never enters the OpenMP pool it inherited from the parent.
    torch.set_num_threads(1)


def _map_chunks(fn: Callable, paths: Sequence[Path], *args: Any) -> list:
    """Run ``fn(chunk, *args)`` over chunks of ``paths``: in worker processes when that pays.

    Per-file work is mostly Python overhead for small images, so threads would serialize on the
    GIL; forked worker processes decode in parallel and send back compact uint8 arrays.
    """
    chunks = [paths[i : i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    workers = min(_cpus(), _MAX_WORKERS, len(chunks))
    fork = "fork" in mp.get_all_start_methods()
    if workers < 2 or len(paths) < _MIN_PARALLEL or not fork:
        return [fn(c, *args) for c in chunks]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded, fork() may ..."
        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
            return list(pool.map(fn, chunks, *([a] * len(chunks) for a in args)))


def probe_all(paths: Sequence[Path]) -> list[tuple[tuple[int, int], str] | str]:
    """``((width, height), mode)`` or an error string for every file, from the headers only."""
    return [h for part in _map_chunks(_probe_chunk, paths) for h in part]


def choose_format(
    headers: Sequence[tuple[tuple[int, int], str] | str],
    image_size: int | None,
    channels: int | None,
    max_side: int = 224,
) -> tuple[tuple[int, int], int]:
    """Pick the common (H, W) and channel count from the readable files' headers.

    Channels: the requested value, else the majority over the files. Size: the requested square,
    else the size every file shares when they all agree (and it is at most ``max_side``),
    else a square of the most common shorter side, capped at ``max_side``.

    Example:
        >>> choose_format([((32, 32), "RGB"), ((32, 32), "L"), ((32, 32), "RGB")], None, None)
        ((32, 32), 3)
    """
    ok = [hd for hd in headers if not isinstance(hd, str)]
    if channels is None:
        votes = Counter(mode_channels(mode) for _, mode in ok)
        channels = 3 if votes[3] >= votes[1] else 1
    if image_size is not None:
        return (image_size, image_size), channels
    sizes = Counter(s for s, _ in ok)
    if len(sizes) == 1:
        (w, h) = next(iter(sizes))
        if max(w, h) <= max_side:
            return (h, w), channels
    side = Counter(min(s) for s, _ in ok).most_common(1)[0][0]
    side = min(side, max_side)
    return (side, side), channels


def decode_all(
    paths: Sequence[Path], size: tuple[int, int], channels: int, fast_jpeg: bool = False
) -> tuple[torch.Tensor, list[str | None]]:
    """Decode every file into one uint8 tensor (N, C, H, W).

    ``fast_jpeg`` (for folders whose images already have the target size, like CIFAR's)
    decodes JPEGs with torchvision's libjpeg-turbo binding first, falling back to PIL.

    Rows of files that failed are left zero; the second result holds each file's error or None.
    """
    fast_jpeg = fast_jpeg and len(paths) >= _FAST_JPEG_MIN
    if fast_jpeg:
        try:  # import once here, so that forked workers inherit it instead of each importing
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import torchvision.io  # noqa: F401
        except ImportError:
            fast_jpeg = False
    parts = _map_chunks(_decode_chunk, paths, size, channels, fast_jpeg)
    if not parts:
        return torch.zeros((0, channels, *size), dtype=torch.uint8), []
    images = torch.from_numpy(np.concatenate([a for a, _ in parts]))
    return images, [e for _, errs in parts for e in errs]
