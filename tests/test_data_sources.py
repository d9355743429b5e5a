"""cnnlab.data: digits, MNIST idx and CIFAR batches, splits, statistics, cache, errors."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnlab.data._vision as vision
from cnnlab.data import Split, channel_stats, load_data
from cnnlab.data._readers import read_cifar_batch, read_idx
from cnnlab.data._split import stratified_split

# --- digits ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", seed=0)


def test_digits_shapes_and_dtypes(digits):
    assert digits.class_names == [str(i) for i in range(10)]
    assert (digits.in_channels, digits.image_size, digits.num_classes) == (1, (32, 32), 10)
    for s in digits.splits().values():
        assert s.images.dtype == torch.uint8 and s.images.is_contiguous()
        assert s.labels.dtype == torch.int64
    assert sum(len(s) for s in digits.splits().values()) == 1797
    # 8x8 values 0..16 scaled by 255/16: the full range is used.
    assert int(digits.train.images.max()) == 255 and int(digits.train.images.min()) == 0


def test_digits_split_is_stratified(digits):
    total = np.bincount(np.concatenate([s.labels.numpy() for s in digits.splits().values()]))
    for name, frac in (("val", 0.1), ("test", 0.1)):
        counts = digits.split(name).class_counts(10)
        assert np.all(np.abs(np.array(counts) - total * frac) <= 0.5 + 1e-9), (name, counts)


def test_digits_split_deterministic_and_seeded(digits):
    again = load_data("digits", seed=0)
    assert torch.equal(again.val.images, digits.val.images)
    assert torch.equal(again.train.labels, digits.train.labels)
    other = load_data("digits", seed=1)
    assert not torch.equal(other.val.images, digits.val.images)


def test_digits_image_size_and_channels():
    b = load_data("digits", image_size=16, channels=3, val_split=0.2, test_split=0.0)
    assert b.image_size == (16, 16) and b.in_channels == 3 and b.test is None
    assert torch.equal(b.train.images[:, 0], b.train.images[:, 2])


def test_to_json_is_serializable(digits):
    d = json.loads(json.dumps(digits.to_json()))
    assert d["source"] == "digits" and d["image_size"] == [32, 32]
    assert d["split_sizes"] == {"train": len(digits.train), "val": len(digits.val),
                                "test": len(digits.test)}
    assert d["mean"] == list(digits.mean) and d["seed"] == 0
    assert [sum(c) for c in d["class_counts"].values()] == list(d["split_sizes"].values())


# --- splits and statistics -------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=1, max_size=200),
    val=st.floats(0.05, 0.5),
    seed=st.integers(0, 2**31),
)
def test_stratified_split_partitions_every_class(labels, val, seed):
    y = torch.tensor(labels)
    v, t = stratified_split(y, (val,), seed)
    both = torch.cat([v, t])
    assert sorted(both.tolist()) == list(range(len(labels)))  # disjoint and complete
    for c in set(labels):
        n = labels.count(c)
        nv = int((y[v] == c).sum())
        assert nv == min(round(n * val), n - 1)  # every class keeps a training sample
    v2, t2 = stratified_split(y, (val,), seed)
    assert torch.equal(v, v2) and torch.equal(t, t2)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), c=st.sampled_from([1, 3]), seed=st.integers(0, 1000))
def test_channel_stats_match_numpy(n, c, seed):
    x = np.random.default_rng(seed).integers(0, 256, size=(n, c, 5, 7), dtype=np.uint8)
    mean, std = channel_stats(torch.from_numpy(x))
    f = x.astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, f.mean(axis=(0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(std, np.maximum(f.std(axis=(0, 2, 3)), 1e-6), atol=1e-6)


# --- argument errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"source": "imagenet"}, "digits, mnist, fashion_mnist, cifar10, cifar100, folder:PATH"),
        ({"val_split": 0.0}, r"val_split must be in \(0, 1\), got 0.0"),
        ({"val_split": 1.5}, "val_split"),
        ({"test_split": -0.1}, r"test_split must be in \[0, 1\)"),
        ({"val_split": 0.6, "test_split": 0.5}, "val_split \\+ test_split must be < 1"),
        ({"image_size": 0}, "image_size must be an integer in"),
        ({"channels": 2}, "channels must be 1"),
        ({"seed": "x"}, "seed must be an integer"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_data(**kwargs)


def test_folder_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_data(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(ValueError, match="folder:"):  # a bare directory gets a hint
        load_data(str(tmp_path))


# --- MNIST idx ---------------------------------------------------------------------------------


def _idx(path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)


def _write_mnist(root, folder="MNIST", n_train=40, n_test=10, gz=True):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x_tr = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    y_tr = np.arange(n_train) % 10
    x_te = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    y_te = np.arange(n_test) % 10
    _idx(raw / "train-images-idx3-ubyte", x_tr, gz)
    _idx(raw / "train-labels-idx1-ubyte", y_tr, gz)
    _idx(raw / "t10k-images-idx3-ubyte", x_te, gz=False)  # mixed gz / plain is fine
    _idx(raw / "t10k-labels-idx1-ubyte", y_te, gz=False)
    return x_tr, y_tr, x_te, y_te


def test_mnist_idx_files(tmp_path):
    x_tr, y_tr, x_te, y_te = _write_mnist(tmp_path)
    b = load_data("mnist", data_dir=tmp_path, val_split=0.25, cache_dir=tmp_path / "c")
    assert (b.in_channels, b.image_size, b.class_names[3]) == (1, (28, 28), "3")
    assert torch.equal(b.test.images[:, 0], torch.from_numpy(x_te))
    assert b.test.labels.tolist() == y_te.tolist()
    assert (len(b.train), len(b.val)) == (30, 10)
    # every training image is one of the files' images, with its label
    lookup = {x_tr[i].tobytes(): int(y_tr[i]) for i in range(len(x_tr))}
    for s in (b.train, b.val):
        for img, lab in zip(s.images, s.labels):
            assert lookup[img[0].numpy().tobytes()] == int(lab)


def test_fashion_mnist_names_and_resize(tmp_path):
    _write_mnist(tmp_path, folder="FashionMNIST", gz=False)
    b = load_data("fashion_mnist", data_dir=tmp_path, image_size=32, channels=3,
                  use_cache=False)
    assert b.class_names[0] == "T-shirt/top" and b.class_names[9] == "Ankle boot"
    assert b.image_size == (32, 32) and b.in_channels == 3


def test_idx_truncated_and_bad_magic(tmp_path):
    p = tmp_path / "x-idx3-ubyte"
    p.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 28, 28) + bytes(100))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(p)
    p.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(p)


def test_missing_dataset_offline_message(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_data("mnist", data_dir=tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and str(tmp_path / "MNIST" / "raw") in msg
    assert "download=True" in msg and "--data-dir" in msg
    with pytest.raises(FileNotFoundError) as e:
        load_data("cifar10", data_dir=tmp_path)
    msg = str(e.value)
    assert f"{tmp_path / 'cifar-10-batches-py'}/ (it should hold data_batch_1" in msg
    assert "batches.meta" in msg and "cifar-10-python.tar.gz and extract it into" in msg
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"")
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as e:
        load_data("cifar10", data_dir=tmp_path)
    msg = str(e.value)
    assert "data_batch_2" in msg and "data_batch_1," not in msg
    assert f"tar xzf {tmp_path / 'cifar-10-python.tar.gz'} -C {tmp_path}" in msg


# --- CIFAR python batches --------------------------------------------------------------------


def _write_cifar(root, n_per_batch=6, hundred=False):
    """Batches in the exact layout torchvision reads: dicts pickled with protocol 2."""
    rng = np.random.default_rng(1)
    if hundred:
        d = root / "cifar-100-python"
        names, label_key, meta = ["train"], "fine_labels", ("meta", "fine_label_names")
        test_names, ncls = ["test"], 100
    else:
        d = root / "cifar-10-batches-py"
        names = [f"data_batch_{i}" for i in range(1, 6)]
        label_key, meta, test_names, ncls = "labels", ("batches.meta", "label_names"), ["test_batch"], 10
    d.mkdir(parents=True)
    data = {}
    for name in names + test_names:
        x = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, ncls, n_per_batch)]
        batch = {"batch_label": name, label_key: y, "data": x,
                 "filenames": [f"{i}.png" for i in range(n_per_batch)]}
        (d / name).write_bytes(pickle.dumps(batch, protocol=2))
        data[name] = (x, y)
    names_list = [f"class{i}" for i in range(ncls)]
    (d / meta[0]).write_bytes(pickle.dumps({meta[1]: names_list, "num_cases_per_batch": 6},
                                           protocol=2))
    return data


def test_cifar10_batches(tmp_path):
    data = _write_cifar(tmp_path)
    with pytest.warns(UserWarning, match="md5 mismatch"):
        b = load_data("cifar10", data_dir=tmp_path, val_split=0.2, cache_dir=tmp_path / "c")
    assert b.class_names[:2] == ["class0", "class1"] and b.num_classes == 10
    x, y = data["test_batch"]
    # row layout: 1024 red, 1024 green, 1024 blue values, each row-major 32x32
    assert torch.equal(b.test.images, torch.from_numpy(x.reshape(-1, 3, 32, 32)))
    assert b.test.labels.tolist() == y
    assert len(b.train) + len(b.val) == 30


def test_cifar100_fine_labels(tmp_path):
    data = _write_cifar(tmp_path, hundred=True, n_per_batch=20)
    with pytest.warns(UserWarning, match="md5"):
        b = load_data("cifar100", data_dir=tmp_path, use_cache=False)
    assert b.num_classes == 100 and b.test.labels.tolist() == data["test"][1]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_cifar_reader_refuses_code(tmp_path):
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({"data": _Evil(), "labels": [0]}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load posix.system|refusing to load os.system"):
        read_cifar_batch(p)


def test_cache_reused_and_invalidated_by_touch(tmp_path, monkeypatch):
    _write_cifar(tmp_path)
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning):
        first = load_data("cifar10", data_dir=tmp_path, cache_dir=cache)
    assert len(list(cache.glob("*.safetensors"))) == 1

    def boom(*a, **k):
        raise AssertionError("the files were read again")

    monkeypatch.setattr(vision, "_read_cifar", boom)
    second = load_data("cifar10", data_dir=tmp_path, cache_dir=cache)  # from the cache
    assert torch.equal(first.train.images, second.train.images)
    assert second.class_names == first.class_names
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    st_ = batch.stat()
    os.utime(batch, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))  # touch
    with pytest.raises(AssertionError, match="read again"):
        load_data("cifar10", data_dir=tmp_path, cache_dir=cache)


def test_split_validation():
    with pytest.raises(ValueError, match="uint8"):
        Split(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="labels"):
        Split(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))


def test_download_failure_is_a_clear_error(tmp_path, monkeypatch):
    class Offline:
        def __init__(self, root, train, download):
            raise OSError("network is unreachable")

    monkeypatch.setitem(vision._TV_NAMES, "mnist", Offline)
    with pytest.raises(FileNotFoundError, match="could not download mnist .*network is unreachable"):
        load_data("mnist", data_dir=tmp_path, download=True)


def _py2_str(b: bytes) -> bytes:
    """A Python 2 ``str`` as cPickle wrote it (SHORT_BINSTRING / BINSTRING)."""
    return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<i", len(b)) + b)


def _py2_uint8_array(raw: bytes, shape: tuple[int, int]) -> bytes:
    """A NumPy uint8 array pickled by Python 2 (numpy.core.multiarray._reconstruct + BUILD)."""
    dims = b"".join(b"J" + struct.pack("<i", d) for d in shape)
    return (
        b"cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85"
        + _py2_str(b"b") + b"\x87Rq\x03(K\x01" + dims + b"\x86cnumpy\ndtype\nq\x04"
        + _py2_str(b"u1") + b"K\x00K\x01\x87Rq\x05(K\x03" + _py2_str(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89" + _py2_str(raw) + b"tb"
    )


def test_cifar_reader_reads_python2_pickles(tmp_path):
    """The official batches were written by Python 2's cPickle; read them like torchvision."""
    raw = bytes(range(256)) * 24  # 2 images x 3072 bytes
    body = (
        b"\x80\x02}q\x00(" + _py2_str(b"batch_label") + _py2_str(b"training batch 1 of 5")
        + _py2_str(b"labels") + b"]q\x06(K\x03K\x07e" + _py2_str(b"data")
        + _py2_uint8_array(raw, (2, 3072)) + _py2_str(b"filenames") + b"]q\x07("
        + _py2_str(b"a.png") + _py2_str(b"b.png") + b"eu."
    )
    p = tmp_path / "data_batch_1"
    p.write_bytes(body)
    d = read_cifar_batch(p)
    assert d["labels"] == [3, 7] and d["filenames"] == ["a.png", "b.png"]
    assert d["data"].dtype == np.uint8 and d["data"].shape == (2, 3072)
    assert d["data"].tobytes() == raw
    with open(p, "rb") as f:  # torchvision's way (plain pickle) gives the same array
        assert np.array_equal(pickle.load(f, encoding="latin1")["data"], d["data"])
