"""cnnlab.data image folders: messy real-world folders, layouts, cache, errors."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlab.data.folder as folder_mod
from cnnlab.data import load_data
from cnnlab.data._decode import choose_format, decode_one


def _save(path, mode, size, color, fmt=None, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, format=fmt, **kw)


@pytest.fixture
def messy(tmp_path):
    """Two usable classes mixing every PIL mode and size, plus junk and an empty class."""
    root = tmp_path / "messy"
    a, b = root / "apple", root / "banana"
    _save(a / "rgba.png", "RGBA", (20, 16), (255, 0, 0, 0))  # fully transparent -> white
    _save(a / "rgb.jpg", "RGB", (16, 16), (200, 10, 10))
    _save(a / "gray.png", "L", (16, 16), 100)
    _save(a / "nested" / "deep.png", "RGB", (16, 16), (255, 0, 0))
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([0, 0, 255] * 256)
    pal.save(a / "palette.gif")
    _save(b / "cmyk.jpg", "CMYK", (24, 24), (0, 0, 255, 0))  # yellow in CMYK
    _save(b / "rgb.png", "RGB", (16, 16), (250, 250, 0))
    _save(b / "sixteen.png", "I;16", (16, 16), 65535)
    _save(b / "small.bmp", "RGB", (8, 8), (240, 240, 10))
    good = Image.new("RGB", (64, 64), (1, 2, 3))
    good.save(b / "whole.jpg", quality=95)
    data = (b / "whole.jpg").read_bytes()
    (b / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (b / "notes.txt").write_text("not an image")
    (b / "fake.png").write_text("not a png either")
    (b / ".DS_Store").write_bytes(b"\0\1")  # hidden: ignored silently
    (root / "empty_class").mkdir()
    _save(root / "loose.png", "RGB", (16, 16), (0, 0, 0))  # not in a class folder
    os.symlink(root, a / "nested" / "loop")  # a symlink cycle must not hang the scan
    return root


def test_messy_folder_never_crashes(messy, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b = load_data(f"folder:{messy}", image_size=16, val_split=0.2, test_split=0.2,
                      cache_dir=tmp_path / "c")
    msgs = [str(w.message) for w in caught]
    skipped = [m for m in msgs if "could not be decoded" in m]
    assert len(skipped) == 1, msgs
    assert "skipped 2 of 12 image files" in skipped[0]
    assert "truncated.jpg" in skipped[0] and "fake.png" in skipped[0]
    assert "ignored 1 files without an image extension: banana/notes.txt" in skipped[0]
    assert "ignored 1 images outside the class folders: loose.png" in skipped[0]
    assert any("dropping 1 class folder" in m and "empty_class" in m for m in msgs)
    assert b.class_names == ["apple", "banana"]
    assert b.in_channels == 3  # RGB-ish files are the majority
    assert sum(len(s) for s in b.splits().values()) == 10
    assert b.to_json()["skipped_files"] == 4


def test_mode_conversions():
    import io

    def enc(im, fmt="PNG", **kw):
        buf = io.BytesIO()
        im.save(buf, format=fmt, **kw)
        buf.seek(0)
        return buf

    rgba = decode_one(enc(Image.new("RGBA", (4, 4), (255, 0, 0, 0))), (4, 4), 3)
    assert (rgba == 255).all()  # transparent red over white is white
    half = decode_one(enc(Image.new("RGBA", (4, 4), (0, 0, 0, 128))), (4, 4), 3)
    assert abs(int(half[0, 0, 0]) - 127) <= 1  # alpha 128/255 over white
    cmyk = decode_one(enc(Image.new("CMYK", (4, 4), (0, 0, 255, 0)), "JPEG", quality=100),
                      (4, 4), 3)
    assert cmyk[0].min() > 240 and cmyk[1].min() > 240 and cmyk[2].max() < 15  # yellow
    i16 = decode_one(enc(Image.new("I;16", (4, 4), 65535)), (4, 4), 1)
    assert (i16 == 255).all()  # 16-bit white is 8-bit white, not clipped garbage
    gray = decode_one(enc(Image.new("L", (4, 4), 77)), (4, 4), 3)
    assert gray.shape == (3, 4, 4) and (gray == 77).all()
    rgb = decode_one(enc(Image.new("RGB", (4, 4), (255, 0, 0))), (4, 4), 1)
    assert rgb.shape == (1, 4, 4) and abs(int(rgb[0, 0, 0]) - 76) <= 1  # 0.299 * 255
    assert isinstance(decode_one(enc(Image.new("RGB", (4, 4))).getvalue()[:10], (4, 4), 3), str)


def test_resize_shorter_side_then_center_crop():
    import io

    im = Image.new("L", (40, 20), 0)
    im.paste(255, (10, 0, 30, 20))  # white centre square of a 2:1 image
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    buf.seek(0)
    out = decode_one(buf, (10, 10), 1)
    assert out.shape == (1, 10, 10)
    assert out[:, :, 1:-1].min() > 250  # the crop kept the white centre (edges blend a little)


def test_choose_format_defaults():
    hd = [((32, 32), "RGB")] * 3 + [((32, 32), "L")] * 4
    assert choose_format(hd, None, None) == ((32, 32), 1)  # majority grayscale
    hd = [((640, 480), "RGB"), ((800, 600), "RGB"), ((640, 480), "RGB"), "OSError: bad"]
    assert choose_format(hd, None, None) == ((224, 224), 3)  # capped
    hd = [((30, 20), "RGB"), ((40, 20), "RGB"), ((50, 60), "RGB")]
    assert choose_format(hd, None, 1) == ((20, 20), 1)
    assert choose_format(hd, 64, None) == ((64, 64), 3)


def _tiny_folder(root, classes=("cat", "dog"), n=10, size=(12, 12)):
    for ci, c in enumerate(classes):
        for i in range(n):
            _save(root / c / f"{i:02d}.png", "RGB", size, (ci * 100, i * 20, 0))
    return root


def test_folder_split_stratified_and_deterministic(tmp_path):
    root = _tiny_folder(tmp_path / "f", classes=("a", "b", "c"), n=10)
    b1 = load_data(f"folder:{root}", val_split=0.2, test_split=0.3, use_cache=False)
    assert [len(s) for s in b1.splits().values()] == [15, 6, 9]
    assert b1.val.class_counts(3) == [2, 2, 2] and b1.test.class_counts(3) == [3, 3, 3]
    assert b1.image_size == (12, 12)  # one common size: kept as is
    b2 = load_data(f"folder:{root}", val_split=0.2, test_split=0.3, use_cache=False)
    assert torch.equal(b1.val.images, b2.val.images)
    # train, val and test images are disjoint (every image here is distinct)
    keys = [x.numpy().tobytes() for s in b1.splits().values() for x in s.images]
    assert len(set(keys)) == 30


def test_folder_with_train_val_test_subfolders(tmp_path):
    root = tmp_path / "ds"
    _tiny_folder(root / "train", n=6)
    _tiny_folder(root / "valid", n=2)
    _tiny_folder(root / "test", n=3)
    b = load_data(f"folder:{root}", use_cache=False)
    assert [len(s) for s in b.splits().values()] == [12, 4, 6]
    assert b.to_json()["layout"] == ["test", "train", "val"]
    root2 = tmp_path / "ds2"
    _tiny_folder(root2 / "train", n=10)
    b2 = load_data(f"folder:{root2}", val_split=0.3, use_cache=False)
    assert b2.test is None and (len(b2.train), len(b2.val)) == (14, 6)


def test_folder_cache_reuse_and_touch(tmp_path, monkeypatch):
    root = _tiny_folder(tmp_path / "f")
    cache = tmp_path / "cache"
    calls = []
    real = folder_mod.decode_all
    monkeypatch.setattr(folder_mod, "decode_all", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = load_data(f"folder:{root}", cache_dir=cache)
    second = load_data(f"folder:{root}", cache_dir=cache)
    assert len(calls) == 1 and torch.equal(first.train.images, second.train.images)
    load_data(f"folder:{root}", cache_dir=cache, image_size=8)  # other options: new entry
    assert len(calls) == 2
    f = root / "dog" / "03.png"
    Image.new("RGB", (12, 12), (9, 9, 9)).save(f)
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = load_data(f"folder:{root}", cache_dir=cache)
    assert len(calls) == 3
    all_imgs = torch.cat([s.images for s in third.splits().values()])
    assert (all_imgs == 9).all(dim=(1, 2, 3)).any()  # the new pixels are there
    assert len(list(cache.glob("*.safetensors"))) == 2  # size 8 + default size (stale one replaced)


def test_corrupt_cache_is_rebuilt(tmp_path):
    root = _tiny_folder(tmp_path / "f")
    cache = tmp_path / "cache"
    load_data(f"folder:{root}", cache_dir=cache)
    (path,) = cache.glob("*.safetensors")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="ignoring unreadable data cache"):
        b = load_data(f"folder:{root}", cache_dir=cache)
    assert len(b.train) + len(b.val) + len(b.test) == 20


def test_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_data(f"folder:{tmp_path}")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="must name a directory"):
        load_data(f"folder:{tmp_path / 'file.png'}")
    one = _tiny_folder(tmp_path / "one", classes=("only",))
    (one / "empty").mkdir()
    with pytest.raises(ValueError, match="at least 2 class folders"), pytest.warns(UserWarning):
        load_data(f"folder:{one}", use_cache=False)
    junk = tmp_path / "junk"
    (junk / "a").mkdir(parents=True)
    (junk / "a" / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="no image files found"):
        load_data(f"folder:{junk}", use_cache=False)


def test_folder_channels_and_grayscale_majority(tmp_path):
    root = tmp_path / "g"
    for c in ("x", "y"):
        for i in range(3):
            _save(root / c / f"{i}.png", "L", (10, 10), 50 * i)
    b = load_data(f"folder:{root}", use_cache=False, val_split=0.34, test_split=0.0)
    assert b.in_channels == 1
    b3 = load_data(f"folder:{root}", use_cache=False, channels=3, val_split=0.34, test_split=0.0)
    assert b3.in_channels == 3
    assert np.array_equal(b3.train.images[:, 1].numpy(), b.train.images[:, 0].numpy())


def test_folder_too_big_for_memory_is_refused_up_front(tmp_path, monkeypatch):
    root = _tiny_folder(tmp_path / "f", n=3)
    monkeypatch.setattr(os, "sysconf", lambda name: 4096 if name == "SC_PAGE_SIZE" else 16)
    with pytest.raises(ValueError, match=r"smaller image_size \(--image-size\)"):
        load_data(f"folder:{root}", image_size=64, use_cache=False)


def test_exif_orientation_is_applied():
    import io

    from PIL import ImageOps

    im = Image.new("L", (20, 10), 0)
    im.paste(255, (0, 0, 10, 10))  # white left half, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=100, exif=exif)
    buf.seek(0)
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue())))
    assert shown.size == (10, 20)
    out = decode_one(buf, (20, 10), 1)  # (H, W) of the displayed picture
    assert out.shape == (1, 20, 10)
    assert np.abs(out[0].astype(int) - np.asarray(shown, dtype=int)).max() <= 2
    assert out[0, :8].mean() > 240 and out[0, 12:].mean() < 15  # white half now on top


def test_fast_jpeg_path_matches_pil(tmp_path, monkeypatch):
    import cnnlab.data._decode as dec

    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        p = tmp_path / f"{i}.jpg"
        mode = "L" if i == 2 else "RGB"
        arr = rng.integers(0, 256, (16, 16) if mode == "L" else (16, 16, 3), dtype=np.uint8)
        Image.fromarray(arr, mode).save(p, quality=90)
        paths.append(p)
    big = tmp_path / "big.jpg"  # another size: resized by the PIL path
    Image.new("RGB", (40, 32), (10, 200, 30)).save(big)
    data = paths[0].read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    paths += [big, tmp_path / "cut.jpg"]
    monkeypatch.setattr(dec, "_FAST_JPEG_MIN", 0)
    for c in (1, 3):
        slow, err_slow = dec.decode_all(paths, (16, 16), c, fast_jpeg=False)
        fast, err_fast = dec.decode_all(paths, (16, 16), c, fast_jpeg=True)
        assert torch.equal(slow, fast)
        assert [e is None for e in err_fast] == [True] * 7 + [False]
        assert err_slow[-1] == err_fast[-1]  # the damaged file gets PIL's message either way


def test_worker_processes_give_the_serial_result(tmp_path, monkeypatch):
    import cnnlab.data._decode as dec

    root = _tiny_folder(tmp_path / "f", n=6)
    (root / "cat" / "bad.png").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="skipped 1 of 13"):
        serial = load_data(f"folder:{root}", use_cache=False, val_split=0.2, test_split=0.2)
    monkeypatch.setattr(dec, "_MIN_PARALLEL", 0)
    monkeypatch.setattr(dec, "_CHUNK", 3)
    monkeypatch.setattr(dec, "_cpus", lambda: 2)
    with pytest.warns(UserWarning, match="skipped 1 of 13"):
        pooled = load_data(f"folder:{root}", use_cache=False, val_split=0.2, test_split=0.2)
    for a, b in zip(serial.splits().values(), pooled.splits().values()):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_val_class_missing_from_train_is_ignored_with_a_warning(tmp_path):
    root = tmp_path / "ds"
    _tiny_folder(root / "train", n=4)
    _tiny_folder(root / "val", classes=("cat", "dog", "owl"), n=2)
    with pytest.warns(UserWarning, match="not in the training folder: val/owl"):
        b = load_data(f"folder:{root}", use_cache=False)
    assert b.class_names == ["cat", "dog"] and len(b.val) == 4
