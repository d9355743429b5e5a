"""A run that fails before its first epoch leaves no empty run directory behind."""

import pytest

from cnnlab.train import fit


def test_bad_pretrained_source_leaves_no_run_directory(tmp_path):
    out = tmp_path / "runs"
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        fit(pretrained=str(tmp_path / "missing.pth"), epochs=1, out_dir=str(out), quiet=True,
            max_train_images=64, image_size=16, report=False)
    # the source is read before the data and the run directory: nothing was created
    assert not out.exists() or list(out.iterdir()) == []

