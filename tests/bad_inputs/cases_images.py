"""Broken and unusual image files: decoded through predict (and decode_image) on a tiny run."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from bad_inputs.corpus import Result, case, decoded, png_with_header, predict_json, sub


def _predict_one(tmp: Path, ctx, path: Path, expect: str, must=()) -> Result:
    rc, _, err, results = predict_json([str(path)], ctx.run)
    return Result(expect, rc, err, must=must)


@case("images")
def case_truncated_png(tmp, ctx):
    p = ctx.digit_png(tmp)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return _predict_one(tmp, ctx, p, "error", must=(p.name, "truncated"))


@case("images")
def case_jpeg_corrupt_middle(tmp, ctx):
    a = (np.indices((64, 64)).sum(0) % 256).astype(np.uint8)
    p = tmp / "x.jpg"
    Image.fromarray(a).save(p, quality=90)
    b = bytearray(p.read_bytes())
    mid = len(b) // 2
    b[mid : mid + 40] = bytes(40)  # zeroed entropy-coded data: libjpeg warns, PIL does not
    p.write_bytes(bytes(b))
    ctx.digit_png(tmp, "good.png")
    rc, out, err, results = predict_json([str(tmp)], ctx.run)
    return Result("warn", rc, err, must=("x.jpg", "corrupt"), check=len(results) == 1)


@case("images")
def case_png_16bit_dark(tmp, ctx):
    """16-bit gray value 200/65535 is black; by-max scaling turned it into 200/255."""
    p = tmp / "dark16.png"
    Image.fromarray(np.full((16, 16), 200, dtype=np.uint16)).save(p)
    a = decoded(p)
    ok = not isinstance(a, str) and int(a.max()) <= 1
    return Result("ok", 0, "" if ok else f"decoded as {a if isinstance(a, str) else a.max()}",
                  check=ok)


@case("images")
def case_png_16bit_bright(tmp, ctx):
    p = tmp / "mid16.png"
    Image.fromarray(np.full((16, 16), 32896, dtype=np.uint16)).save(p)  # 128 * 257
    a = decoded(p)
    ok = not isinstance(a, str) and int(a.min()) == int(a.max()) == 128
    return Result("ok", 0, "", check=ok)


@case("images")
def case_float_tiff(tmp, ctx):
    """A 32-bit float TIFF in [0, 1] (the usual convention) decoded all black."""
    p = tmp / "f.tif"
    Image.fromarray(np.full((16, 16), 0.5, dtype=np.float32), "F").save(p)
    a = decoded(p)
    ok = not isinstance(a, str) and 126 <= int(a.mean()) <= 129
    return Result("ok", 0, "", check=ok)


@case("images")
def case_float_tiff_out_of_range(tmp, ctx):
    p = tmp / "hdr.tif"
    Image.fromarray(np.full((16, 16), 1000.0, dtype=np.float32), "F").save(p)
    return _predict_one(tmp, ctx, p, "error", must=("hdr.tif", "float"))


@case("images", slow=True)
def case_png_1x2000000_bomb(tmp, ctx):
    """4 KB on disk, 2 MP decoded: fine; but resized to fill 32x32 it is 32 x 64,000,000.

    A valid picture: predicting on it must work within the memory budget."""
    p = tmp / "bomb.png"
    p.write_bytes(png_with_header(2_000_000, 1, b"\x00" + bytes(2_000_000)))
    rc, out, err, rss = sub(["predict", str(ctx.run), str(p), "--backend", "torch"], timeout=120)
    r = Result("ok", rc, err, check=rc == 0, peak_rss_mb=rss)
    r.note = f"peak RSS {rss:.0f} MB"
    return r


@case("images")
def case_huge_declared_size(tmp, ctx):
    p = tmp / "huge.png"
    p.write_bytes(png_with_header(100_000, 100_000))
    return _predict_one(tmp, ctx, p, "error", must=("huge.png", "pixels"))


@case("images")
def case_zero_byte(tmp, ctx):
    p = tmp / "empty.png"
    p.write_bytes(b"")
    return _predict_one(tmp, ctx, p, "error", must=("empty.png", "empty"))


@case("images")
def case_text_named_jpg(tmp, ctx):
    p = tmp / "notes.jpg"
    p.write_text("not an image\n")
    return _predict_one(tmp, ctx, p, "error", must=("notes.jpg", "not"))


@case("images")
def case_cmyk_jpeg(tmp, ctx):
    p = tmp / "cmyk.jpg"
    Image.new("CMYK", (20, 20), (0, 0, 0, 0)).save(p)  # no ink = white
    a = decoded(p, (3, 8, 8))
    return Result("ok", 0, "", check=not isinstance(a, str) and int(a.min()) >= 250)


@case("images")
def case_palette_transparency(tmp, ctx):
    p = tmp / "pal.png"
    im = Image.new("P", (20, 20), 0)
    im.putpalette([0, 0, 0] * 256)
    im.info["transparency"] = 0
    im.save(p, transparency=0)
    a = decoded(p)
    return Result("ok", 0, "", check=not isinstance(a, str) and int(a.min()) == 255)


@case("images")
def case_exif_rotated(tmp, ctx):
    p = tmp / "rot.jpg"
    im = Image.new("L", (40, 20), 0)
    im.paste(255, (0, 0, 20, 20))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display: the white half goes on top
    im.save(p, exif=exif, quality=95)
    a = decoded(p, (1, 20, 10))
    ok = not isinstance(a, str) and a[0, :8].mean() > 200 and a[0, 12:].mean() < 50
    return Result("ok", 0, "", check=ok)


@case("images")
def case_animated_gif(tmp, ctx):
    p = tmp / "anim.gif"
    frames = [Image.new("L", (10, 10), v) for v in (0, 255)]
    frames[0].save(p, save_all=True, append_images=frames[1:])
    a = decoded(p)
    return Result("ok", 0, "", check=not isinstance(a, str) and int(a.max()) == 0)


@case("images")
def case_in_memory_png_bytes(tmp, ctx):
    """Bytes that are not an image handed to the decoder as a file object."""
    from cnnlab.data._decode import decode_one

    r = decode_one(io.BytesIO(b"\x89PNG garbage"), (8, 8), 1)
    return Result("ok", 0, "", check=isinstance(r, str))
