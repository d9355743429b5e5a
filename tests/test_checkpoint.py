"""cnnlab.checkpoint: atomic writes, integrity checks, and no unpickling of arbitrary objects."""

import os
import pickle

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from cnnlab.checkpoint import (
    atomic_write_bytes,
    load_state,
    read_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
    save_state,
)


def test_roundtrip_keeps_weights_and_metadata(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    path = save_checkpoint(tmp_path / "m.safetensors", model, {"class_names": ["a", "b"]})
    state, meta = read_checkpoint(path)
    assert meta["class_names"] == ["a", "b"] and meta["format"] == "cnnlab-checkpoint"
    for name, value in model.state_dict().items():
        assert torch.equal(state[name], value)


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temp file left behind
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_modified_weights_fail_the_integrity_check(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", nn.Linear(4, 3), {})
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip bits of the last weight byte
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="integrity check"):
        read_checkpoint(path)


def test_truncated_and_foreign_files_are_named_in_the_error(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", nn.Linear(4, 3), {})
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="truncated"):
        read_checkpoint(path)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, plain)
    with pytest.raises(ValueError, match="not a cnnlab checkpoint"):
        read_checkpoint(plain)
    with pytest.raises(ValueError, match="must end in .safetensors"):
        save_checkpoint(tmp_path / "m.pt", nn.Linear(1, 1), {})


def test_run_directory_resolution(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no best.safetensors"):
        resolve_checkpoint(tmp_path)
    save_checkpoint(tmp_path / "last.safetensors", nn.Linear(1, 1), {})
    assert resolve_checkpoint(tmp_path).name == "last.safetensors"  # no best yet: falls back
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_checkpoint(tmp_path / "missing")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_training_state_refuses_pickled_objects(tmp_path):
    good = tmp_path / "state.pt"
    save_state(good, {"epoch": 3, "rng": torch.get_rng_state(), "opt": {"lr": [0.1]}})
    assert load_state(good)["epoch"] == 3
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"x": _Evil()}, f)
    with pytest.raises(ValueError, match="not allowed to be unpickled|corrupt"):
        load_state(evil)
