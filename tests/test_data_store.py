"""cnnlab.data disk store: RAM/disk equality, resumable builds, full disks, bounded memory."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_folder import _save, _tiny_folder, messy  # noqa: F401  (messy is a fixture)

import cnnlab.data.store as store_mod
from cnnlab.data import build_augment, load_data, to_float
from cnnlab.data.batches import batches
from cnnlab.data.store import StoreSpec, build_store, open_store


def _photo_folder(root, n=12, classes=("cat", "dog", "emu"), size=(40, 30)):
    """Random-pixel JPEGs of a non-square size (so that resizing and cropping matter)."""
    rng = np.random.default_rng(0)
    for c in classes:
        for i in range(n):
            (root / c).mkdir(parents=True, exist_ok=True)
            arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i:03d}.jpg", quality=90)
    return root


def _load(root, cache, tmp_path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_data(f"folder:{root}", cache=cache, cache_dir=tmp_path / f"cache-{cache}",
                         val_split=0.2, test_split=0.2, **kw)  # fmt: skip


def test_disk_and_ram_give_bit_identical_batches(tmp_path, monkeypatch):
    root = _photo_folder(tmp_path / "f", n=20)
    (root / "cat" / "bad.jpg").write_bytes(b"not a jpeg")
    monkeypatch.setattr(store_mod, "CHUNK", 7)  # several chunks, in worker processes
    ram = _load(root, "ram", tmp_path, image_size=24, storage_size=32)
    disk = _load(root, "disk", tmp_path, image_size=24, storage_size=32)
    assert disk.info["cache"] == "disk" and ram.info["cache"] == "ram"
    assert type(disk.train.images).__name__ == "StoredImages"
    assert disk.crop_size == ram.crop_size == (24, 24) and disk.image_size == (32, 32)
    assert (disk.mean, disk.std) == (ram.mean, ram.std)
    for name, split in ram.splits().items():
        other = disk.split(name)
        assert torch.equal(split.labels, other.labels)
        assert torch.equal(split.images, other.images[torch.arange(len(other))])
    aug = build_augment("rrc-flip", 24)
    aug.size = (24, 24)
    outs = []
    for b in (ram, disk):
        g = torch.Generator().manual_seed(3)
        got = []
        for x, y in batches(b.train, 8, shuffle=True, generator=g):
            got.append((aug(to_float(x), generator=g), y))
        outs.append(got)
    assert len(outs[0]) == len(outs[1]) > 1
    for (xa, ya), (xb, yb) in zip(*outs):
        assert xa.shape == (len(ya), 3, 24, 24)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_messy_folder_through_the_disk_store(messy, tmp_path):  # noqa: F811
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b = load_data(f"folder:{messy}", image_size=16, val_split=0.2, test_split=0.2,
                      cache="disk", cache_dir=tmp_path / "c")  # fmt: skip
    msgs = [str(w.message) for w in caught]
    skipped = [m for m in msgs if "could not be decoded" in m]
    assert len(skipped) == 1, msgs
    assert "skipped 2 of 12 image files" in skipped[0]
    assert "truncated.jpg" in skipped[0] and "fake.png" in skipped[0]
    assert any("dropping 1 class folder" in m and "empty_class" in m for m in msgs)
    assert b.class_names == ["apple", "banana"] and b.in_channels == 3
    assert sum(len(s) for s in b.splits().values()) == 10
    assert b.to_json()["skipped_files"] == 4 and b.info["cache"] == "disk"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ram = load_data(f"folder:{messy}", image_size=16, val_split=0.2, test_split=0.2,
                        use_cache=False)  # fmt: skip
    for name, split in ram.splits().items():  # modes, alpha, EXIF, 16-bit: same pixels
        assert torch.equal(split.images, b.split(name).images[0 : len(split)])


def test_train_val_test_layout_and_grayscale_through_the_disk_store(tmp_path):
    root = tmp_path / "ds"
    _tiny_folder(root / "train", n=4)
    _tiny_folder(root / "val", n=2)
    _tiny_folder(root / "test", n=3)
    for p in (root / "train" / "cat").glob("*.png"):
        Image.open(p).convert("L").save(p)  # a mixed-mode class
    b = load_data(f"folder:{root}", cache="disk", cache_dir=tmp_path / "c")
    assert [len(s) for s in b.splits().values()] == [8, 4, 6]
    assert b.info["layout"] == ["test", "train", "val"]
    g = load_data(f"folder:{root}", cache="disk", cache_dir=tmp_path / "c", channels=1)
    assert g.in_channels == 1


def _spec(root, size=(16, 16)):
    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    labels = np.arange(len(paths), dtype=np.int64) % 3
    return StoreSpec(paths, size, 3, {"labels": labels}, {"note": "test"})


def _files(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_interrupted_build_resumes_and_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    root = _photo_folder(tmp_path / "f", n=10)  # 30 files
    monkeypatch.setattr(store_mod, "CHUNK", 4)  # 8 chunks
    whole = build_store(tmp_path / "whole.store", "k", _spec(root), quiet=True)

    def stop_after(k):
        if k == 3:
            raise store_mod.StoreBuildInterrupted("simulated kill")

    path = tmp_path / "part.store"
    with pytest.raises(store_mod.StoreBuildInterrupted):
        build_store(path, "k", _spec(root), quiet=True, workers=1, on_chunk=stop_after)
    assert open_store(path) is None and not path.exists()  # never read as complete
    partial = tmp_path / "part.store.partial"
    with open(partial / "progress.jsonl", "a") as f:
        f.write('{"chunk": 5, "err')  # a kill in the middle of a progress line
    calls = []
    resumed = build_store(path, "k", _spec(root), quiet=True, workers=1, on_chunk=calls.append)
    assert calls == [4, 5, 6, 7, 8]  # only the 5 missing chunks were decoded
    assert not partial.exists()
    assert _files(path) == _files(whole.path)
    assert torch.equal(resumed.images, whole.images)


def test_killed_process_resumes(tmp_path):
    root = _photo_folder(tmp_path / "f", n=10)
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import cnnlab.data.store as s
        from pathlib import Path
        from test_data_store import _spec
        s.CHUNK = 4
        kill = int(sys.argv[1])
        def hook(k):
            if k == kill:
                os.kill(os.getpid(), signal.SIGKILL)  # a real kill, between two chunks
        s.build_store(Path(sys.argv[2]), "k", _spec(Path({str(root)!r})), quiet=True,
                      workers=1, on_chunk=hook)
    """)
    path = tmp_path / "x.store"
    run = [sys.executable, "-c", script]
    killed = subprocess.run([*run, "2", str(path)], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert not path.exists() and (tmp_path / "x.store.partial" / "progress.jsonl").is_file()
    lines = (tmp_path / "x.store.partial" / "progress.jsonl").read_text().splitlines()
    assert len(lines) == 2
    done = subprocess.run([*run, "0", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    store_mod.CHUNK, old = 4, store_mod.CHUNK
    try:
        whole = build_store(tmp_path / "w.store", "k", _spec(root), quiet=True, workers=1)
    finally:
        store_mod.CHUNK = old
    assert _files(path) == _files(whole.path)


def test_changed_source_rebuilds_and_removes_the_stale_store(tmp_path):
    root = _photo_folder(tmp_path / "f", n=6)
    cache = tmp_path / "c"
    first = load_data(f"folder:{root}", cache="disk", cache_dir=cache)
    again = load_data(f"folder:{root}", cache="disk", cache_dir=cache)
    assert "already built" in again.info["cache_why"]
    assert torch.equal(first.train.images[0:3], again.train.images[0:3])
    p = root / "cat" / "000.jpg"
    Image.new("RGB", (40, 30), (255, 255, 255)).save(p)
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    third = load_data(f"folder:{root}", cache="disk", cache_dir=cache)
    assert "already built" not in third.info["cache_why"]
    assert len([d for d in cache.glob("*.store") if d.is_dir()]) == 1


def test_a_damaged_manifest_is_rebuilt(tmp_path):
    root = _photo_folder(tmp_path / "f", n=4)
    b = load_data(f"folder:{root}", cache="disk", cache_dir=tmp_path / "c")
    (store,) = (tmp_path / "c").glob("*.store")
    (store / "manifest.json").write_text("{broken")
    with pytest.warns(UserWarning, match="ignoring unreadable image store"):
        again = load_data(f"folder:{root}", cache="disk", cache_dir=tmp_path / "c")
    assert torch.equal(b.val.images[0:2], again.val.images[0:2])


def test_full_disk_at_preallocation_names_the_path_and_leaves_nothing(tmp_path, monkeypatch):
    root = _photo_folder(tmp_path / "f", n=4)

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    cache = tmp_path / "c"
    with pytest.raises(ValueError, match=r"not enough disk space for the decoded image store in "
                       + str(cache) + r": it needs 0\.0 MiB"):  # fmt: skip
        load_data(f"folder:{root}", cache="disk", cache_dir=cache)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_full_disk_while_writing_slots_leaves_nothing(tmp_path, monkeypatch):
    root = _photo_folder(tmp_path / "f", n=4)
    real = os.pwrite

    def full(fd, data, offset):
        if len(data) > 1000:  # image slots, not the progress log
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(ValueError, match="not enough disk space"):
        build_store(tmp_path / "x.store", "k", _spec(root), quiet=True, workers=1)
    assert not (tmp_path / "x.store").exists()
    assert not (tmp_path / "x.store.partial").exists()


def test_not_enough_free_space_is_refused_up_front(tmp_path, monkeypatch):
    root = _photo_folder(tmp_path / "f", n=4)
    import shutil
    import types

    monkeypatch.setattr(shutil, "disk_usage", lambda p: types.SimpleNamespace(free=0))
    with pytest.raises(ValueError, match=r"needs 0\.1 MiB \(0\.0 MiB free\)"):
        build_store(tmp_path / "x.store", "k", _spec(root, (64, 64)), quiet=True)
    assert not (tmp_path / "x.store.partial").exists()


def test_auto_picks_disk_above_the_memory_share_and_says_why(tmp_path, monkeypatch):
    import cnnlab.data.folder as folder

    root = _photo_folder(tmp_path / "f", n=4)
    monkeypatch.setattr(folder, "available_memory", lambda: 10_000)
    b = load_data(f"folder:{root}", cache="auto", cache_dir=tmp_path / "c", image_size=16)
    assert b.info["cache"] == "disk" and "above the 25%" in b.info["cache_why"]
    assert "memory-mapped disk store" in b.summary()
    monkeypatch.setattr(folder, "available_memory", lambda: 10 * 2**30)
    b = load_data(f"folder:{root}", cache="auto", use_cache=False, image_size=16)
    assert b.info["cache"] == "ram" and "within the 25%" in b.info["cache_why"]
    with pytest.raises(ValueError, match="cache must be one of auto, ram, disk"):
        load_data(f"folder:{root}", cache="tape")


_MEMORY_PROBE = """
import json, sys, threading, time, warnings
from pathlib import Path
import torch
from cnnlab.data import load_data

def anon_kib(pid="self"):
    # Pss_Anon: a forked worker's pages still shared with the parent count half to each,
    # so the sum over the tree counts every anonymous page once.
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss_Anon:"):
                return int(line.split()[1])
    except OSError:  # the process just ended
        pass
    return 0

def tree_kib():  # this process and its children (the decoding workers)
    kids = []
    for task in Path("/proc/self/task").iterdir():
        try:
            kids += (task / "children").read_text().split()
        except OSError:
            pass
    return anon_kib() + sum(anon_kib(k) for k in kids)

peak = [0]
def sample():
    while True:
        peak[0] = max(peak[0], tree_kib() - base)
        time.sleep(0.002)

torch.set_num_threads(1)
root, cache, mode = sys.argv[1], sys.argv[2], sys.argv[3]
base = anon_kib()
threading.Thread(target=sample, daemon=True).start()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    b = load_data("folder:" + root, image_size=96, storage_size=128, cache=mode, cache_dir=cache,
                  use_cache=False)
n = 0
for split in b.splits().values():  # read every stored image once, a batch at a time
    for start in range(0, len(split), 64):
        n += int(split.images[start:start + 64].shape[0])
time.sleep(0.05)
print(json.dumps({"peak_kib": max(peak[0], anon_kib() - base), "images": n,
                  "decoded_bytes": sum(s.images.numel() for s in b.splits().values())}))
"""


def test_disk_store_memory_stays_bounded_below_the_dataset_size(tmp_path):
    """A 131 MiB decoded set is built and read with < 96 MiB of extra anonymous memory.

    (64 MiB held on a quiet machine but was exceeded once, at 75 MiB, in a CI run: the
    workers' Pss_Anon varies with the allocator; the set stays larger than the budget.)

    Measured as the peak of the anonymous memory (Pss_Anon) summed over the process and its
    decoding workers (file pages of the mapped store are not anonymous memory), above the
    level after the imports.
    """
    budget = 96 * 2**20
    root = tmp_path / "f"
    for c in ("a", "b"):
        for i in range(1400):
            _save(root / c / f"{i}.png", "RGB", (12, 12), (i % 256, 0, 255 * (c == "a")))
    run = [sys.executable, "-c", _MEMORY_PROBE, str(root), str(tmp_path / "c")]
    disk = json.loads(subprocess.run([*run, "disk"], capture_output=True, text=True,
                                     check=True).stdout)  # fmt: skip
    assert disk["images"] == 2800 and disk["decoded_bytes"] > budget
    assert disk["peak_kib"] * 1024 < budget, disk
    # The control: the resident path holds the whole set, so the same probe sees it.
    ram = json.loads(subprocess.run([*run, "ram"], capture_output=True, text=True,
                                    check=True).stdout)  # fmt: skip
    assert ram["peak_kib"] * 1024 > disk["decoded_bytes"], ram
