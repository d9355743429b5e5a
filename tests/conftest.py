"""Session-wide fixtures: one thread-limiting fixture and the shared, read-only trained runs.

``tiny_run``: a simple_cnn trained for a few steps on digits 0-2 (1 x 32 x 32), saved as a run
directory with only ``best.safetensors`` (the export and predict tests).
``trained_run``: a real ``cnnlab train`` run with the default settings on digits (16 x 16, two
epochs), with its evaluation, figures and report (the report and viz tests).
Tests must not write into either; copy a run first (``shutil.copytree``) to change it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _utils import make_run, single_thread


@pytest.fixture(scope="module")
def one_thread():
    """torch on one intra-op thread for a module (restored after): the models in the tests are
    tiny, and on a shared 2-core machine extra threads only wait for each other.

    Use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    with single_thread():
        yield


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny hand-trained run directory (3 classes ``zero, one, two``, 1 x 32 x 32)."""
    with single_thread():
        return make_run(tmp_path_factory.mktemp("tiny-run") / "run")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A real tiny training run with the default settings (augment ``auto``); ends with a report."""
    from cnnlab.train import fit

    with single_thread():
        result = fit(
            epochs=2,
            image_size=16,
            max_train_images=300,
            batch_size=64,
            out_dir=str(tmp_path_factory.mktemp("runs")),
            quiet=True,
        )
    return Path(result.run_dir)
