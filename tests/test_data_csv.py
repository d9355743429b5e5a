"""csv: labels files -- columns, splits, relative paths, every kind of bad row; prefetch, shards."""

from __future__ import annotations

import warnings

import pytest
import torch
from PIL import Image

from cnnlab.data import load_data, prefetch, shard_order


def _img(path, value, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (10, 12), value if mode == "L" else (value, 0, 0)).save(path)


def _dataset(tmp_path, n=6):
    d = tmp_path / "ds"
    rows = ["path,label"]
    for i in range(n):
        for label, v in (("red", 200), ("dark", 20)):
            _img(d / "img" / f"{label}{i}.png", v)
            rows.append(f"img/{label}{i}.png,{label}")
    return d, rows


def test_csv_relative_paths_and_flat_split(tmp_path):
    d, rows = _dataset(tmp_path, n=10)
    (d / "labels.csv").write_text("\n".join(rows) + "\n")
    b = load_data(f"csv:{d / 'labels.csv'}", val_split=0.2, test_split=0.2, use_cache=False)
    assert b.class_names == ["dark", "red"]
    assert [len(s) for s in b.splits().values()] == [12, 4, 4]
    assert b.image_size == (12, 10)
    red = b.train.images[b.train.labels == 1]
    assert int(red[:, 0].float().mean()) == 200  # labels follow the rows, not the folders


def test_csv_split_column_tsv_and_disk_store(tmp_path):
    d, _ = _dataset(tmp_path, n=3)
    rows = ["label\tsplit\tpath\tnote"]  # any column order; extra columns ignored
    for i in range(3):
        for label in ("red", "dark"):
            split = ("train", "valid", "test")[i]
            rows.append(f"{label}\t{split}\timg/{label}{i}.png\tx")
    (d / "labels.tsv").write_text("\n".join(rows))
    for cache in ("ram", "disk"):
        b = load_data(f"csv:{d / 'labels.tsv'}", cache=cache, cache_dir=tmp_path / "c")
        assert [len(s) for s in b.splits().values()] == [2, 2, 2]
        assert b.info["layout"] == ["test", "train", "val"]


def test_csv_every_kind_of_bad_row_is_counted_named_and_skipped(tmp_path):
    d, _ = _dataset(tmp_path, n=4)
    (d / "img" / "broken.png").write_bytes(b"not a png")
    (d / "img" / "notes.txt").write_text("text")
    rows = ["path,label,split"]
    for i in range(4):
        rows += [f"img/red{i}.png,red,train", f"img/dark{i}.png,dark,train"]
    rows += [
        "img/red0.png,red,val",
        ",red,train",  # empty path
        "img/red1.png,,train",  # empty label
        "img/red2.png,red,holdout",  # unknown split
        "img/missing.png,red,train",  # no such file
        "img/notes.txt,red,train",  # not an image extension
        "img/dark0.png,owl,test",  # a label with no training rows
        "img/broken.png,dark,train",  # exists, does not decode
        "",  # a blank line is not a row
    ]
    (d / "labels.csv").write_text("\n".join(rows))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b = load_data(f"csv:{d / 'labels.csv'}", use_cache=False)
    msgs = [str(w.message) for w in caught]
    (rows_msg,) = [m for m in msgs if "rows:" in m]
    assert "skipped 6 of 16 rows" in rows_msg
    for why in ("line 11 (empty path)", "line 12 img/red1.png (empty label)",
                "unknown split 'holdout'", "img/missing.png (no such file)",
                "img/notes.txt (not an image extension)", "and 1 more"):  # fmt: skip
        assert why in rows_msg, rows_msg
    decode = [m for m in msgs if "could not be decoded" in m]
    assert len(decode) == 1 and "img/broken.png" in decode[0]
    assert len(b.train) == 8 and len(b.val) == 1 and b.test is None


def test_csv_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels file .* does not exist"):
        load_data(f"csv:{tmp_path / 'nope.csv'}")
    (tmp_path / "bad.csv").write_text("file,class\na.png,x\n")
    with pytest.raises(ValueError, match="must name the columns path and label"):
        load_data(f"csv:{tmp_path / 'bad.csv'}")
    (tmp_path / "none.csv").write_text("path,label\nmissing.png,x\n")
    with pytest.raises(ValueError, match="lists no usable image files"), pytest.warns(UserWarning):
        load_data(f"csv:{tmp_path / 'none.csv'}")


def test_relabelled_csv_is_not_served_from_the_cache(tmp_path):
    d, rows = _dataset(tmp_path, n=4)
    (d / "labels.csv").write_text("\n".join(rows))
    first = load_data(f"csv:{d / 'labels.csv'}", cache_dir=tmp_path / "c")
    swapped = [rows[0]] + [f"{r.split(',')[0]},{'dark' if r.endswith('red') else 'red'}"
                           for r in rows[1:]]  # fmt: skip
    (d / "labels.csv").write_text("\n".join(swapped))
    second = load_data(f"csv:{d / 'labels.csv'}", cache_dir=tmp_path / "c")
    assert not torch.equal(first.train.labels, second.train.labels)


def test_prefetch_keeps_order_propagates_errors_and_stops():
    assert list(prefetch(iter(range(20)), depth=3)) == list(range(20))

    def boom():
        yield 1
        raise RuntimeError("disk on fire")

    got = []
    with pytest.raises(RuntimeError, match="disk on fire"):
        for x in prefetch(boom()):
            got.append(x)
    assert got == [1]
    gen = prefetch(iter(range(10**9)), depth=2)
    assert next(gen) == 0
    gen.close()  # the producer thread stops instead of running on
    with pytest.raises(ValueError, match="depth must be >= 1"):
        list(prefetch([], depth=0))


def test_shards_cover_the_epoch_once_with_equal_lengths():
    order = torch.randperm(103, generator=torch.Generator().manual_seed(0))
    shards = [shard_order(order, r, 4) for r in range(4)]
    assert {len(s) for s in shards} == {26}
    joined = torch.cat(shards)
    assert set(joined.tolist()) == set(range(103)) and len(joined) == 104  # one pad index
    unpadded = [shard_order(order, r, 4, pad=False) for r in range(4)]
    assert sorted(torch.cat(unpadded).tolist()) == list(range(103))
    with pytest.raises(ValueError, match="rank must be < world_size"):
        shard_order(order, 4, 4)
