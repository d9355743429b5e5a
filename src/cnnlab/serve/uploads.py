"""What a client may upload, and how it is decoded: limits, content sniffing, one decoder.

An upload is identified by its bytes (Pillow's format sniffing, restricted to common raster
formats), never by its file name or Content-Type, and its pixel count is read from the header
before anything is decompressed, so a decompression bomb (a few KB that inflate to gigapixels) is
refused with 413 and a reason instead of exhausting memory. Accepted images are decoded by the
very code ``cnnlab predict`` uses for files (:func:`cnnlab.data.decode_image`), so the server
and the command give the same answer for the same image.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

# Formats Pillow identifies from their first bytes. Formats that need an external program
# (EPS via Ghostscript) or that match almost any bytes (TGA has no signature) are left out.
SNIFFED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")
MAX_NAME = 120  # characters of a client's file name echoed back (it is only a label)


class RequestError(Exception):
    """A client mistake: answered with ``status`` and a one-line ``reason``; never fatal.

    Example:
        >>> RequestError(413, "too large").status
        413
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """Per-request limits of the server.

    Attributes:
        max_request_bytes: the whole request body (all images together); larger gets 413.
        max_pixels: width x height of one image, read from its header; larger gets 413.
        max_images: images in one request; more gets 413.

    Example:
        >>> Limits().max_images
        64
    """

    max_request_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_images: int = 64


def label(name: str | None, index: int) -> str:
    """A display label for upload ``index``: the client's file name, shortened, or ``<image N>``.

    Only a label: it is never used as a path, and the page inserts it as text, not HTML.

    Example:
        >>> label("../../etc/passwd", 0), label(None, 3)
        ('../../etc/passwd', '<image 3>')
    """
    if not name:
        return f"<image {index}>"
    name = "".join(ch if ch.isprintable() else "?" for ch in name)
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 3] + "..."


def sniff(data: bytes, name: str, max_pixels: int) -> tuple[str, tuple[int, int]]:
    """``(format, (width, height))`` of an upload from its bytes; RequestError when refused.

    Raises:
        RequestError: 422 for empty or non-image bytes, 413 for more than ``max_pixels`` pixels.

    Example:
        >>> buf = io.BytesIO()
        >>> Image.new("L", (4, 3)).save(buf, format="PNG")
        >>> sniff(buf.getvalue(), "a.png", 100)
        ('PNG', (4, 3))
    """
    if not data:
        raise RequestError(422, f"{name}: the upload is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=SNIFFED_FORMATS) as im:  # header only
                fmt, size = str(im.format), im.size
    except UnidentifiedImageError:
        raise RequestError(
            422, f"{name}: not an image (accepted: {', '.join(SNIFFED_FORMATS)}; "
            "the content is checked, not the file name)"
        ) from None  # fmt: skip
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RequestError(413, f"{name}: refused as a decompression bomb ({exc})") from None
    except Exception as exc:  # Pillow raises many kinds for corrupt headers
        raise RequestError(422, f"{name}: unreadable image header ({exc})") from None
    w, h = size
    if w * h > max_pixels:
        raise RequestError(
            413, f"{name}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} "
            "(a decompression-bomb guard; the server's --max-pixels)"
        )  # fmt: skip
    return fmt, size


def decode_upload(data: bytes, name: str, input_size: list[int], max_pixels: int) -> np.ndarray:
    """Sniff and decode one upload to uint8 ``(C, H, W)`` at the model's ``input_size``.

    Raises:
        RequestError: as :func:`sniff`, or 422 when the body is cut short or corrupt.

    Example:
        >>> buf = io.BytesIO()
        >>> Image.new("RGB", (40, 30)).save(buf, format="PNG")
        >>> decode_upload(buf.getvalue(), "x.png", [1, 8, 8], 10_000).shape
        (1, 8, 8)
    """
    from cnnlab.data import decode_image  # the decoder of cnnlab predict

    sniff(data, name, max_pixels)
    try:
        return decode_image(data, input_size).numpy()
    except ValueError as exc:
        reason = str(exc).split("': ", 1)[-1]  # the decoder's reason, after its own label
        raise RequestError(422, f"{name}: cannot be decoded as an image ({reason})") from None
