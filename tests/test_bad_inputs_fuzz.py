"""Property-based fuzzing (hypothesis): image bytes, YAML configs and checkpoint headers.

Whatever the bytes, the decoder returns an array or an error string, the YAML reader returns a
mapping or raises ValueError, and the checkpoint readers raise only ValueError (never unpickle,
never crash).
"""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnlab.checkpoint import read_checkpoint, read_metadata
from cnnlab.data._decode import decode_one

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _seed_images() -> list[bytes]:
    out = []
    for fmt, mode in (("PNG", "L"), ("PNG", "RGBA"), ("JPEG", "RGB"), ("GIF", "P"),
                      ("BMP", "RGB"), ("TIFF", "I;16"), ("WEBP", "RGB")):
        buf = io.BytesIO()
        a = np.arange(12 * 10 * (3 if mode in ("RGB",) else 1)) % 251
        try:
            im = Image.new(mode, (12, 10)) if mode in ("RGBA", "P", "I;16") else Image.fromarray(
                a.reshape(10, 12, -1).squeeze().astype(np.uint8))
            im.save(buf, format=fmt)
        except (OSError, KeyError):
            continue
        out.append(buf.getvalue())
    return out


SEEDS = _seed_images()


@st.composite
def mutated_image(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut])


@FUZZ
@given(mutated_image(), st.sampled_from([1, 3]), st.integers(1, 40), st.integers(1, 40))
def test_decode_never_raises(data, channels, h, w):
    r = decode_one(io.BytesIO(data), (h, w), channels)
    assert isinstance(r, str) or r.shape == (channels, h, w)


@FUZZ
@given(st.binary(max_size=300))
def test_decode_random_bytes(data):
    r = decode_one(io.BytesIO(data), (8, 8), 1)
    assert isinstance(r, (str, np.ndarray))


yaml_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.tuples(st.sampled_from(["epochs", "lr", "name", "model", "x", "epochs"]),
                       st.sampled_from(["3", "0.1", "'a'", "[1, 2]", "{a: 1}", "!!python/none",
                                        "&a 1", "*a", "-1", "null", "123", "yes"])),
             max_size=6).map(lambda kv: "\n".join(f"{k}: {v}" for k, v in kv)),
)


@FUZZ
@given(yaml_text)
def test_yaml_config_never_tracebacks(tmp_path_factory, text):
    from cnnlab.train.config import build_config

    p = tmp_path_factory.mktemp("yaml") / "c.yaml"
    p.write_bytes(text.encode("utf-8", "replace"))
    try:
        build_config({}, p)
    except ValueError:
        pass


def _header_file(tmp, header: bytes, body: bytes = b"") -> str:
    p = tmp / "f.safetensors"
    p.write_bytes(struct.pack("<Q", len(header)) + header + body)
    return str(p)


header_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 2**40), st.text(max_size=20)),
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c,
                                                                 max_size=4)),
    max_leaves=12,
)


@FUZZ
@given(st.one_of(st.binary(max_size=200), header_json.map(lambda v: json.dumps(v).encode()),
                 st.dictionaries(st.sampled_from(["__metadata__", "w"]), header_json,
                                 max_size=2).map(lambda v: json.dumps(v).encode())))
def test_checkpoint_header_never_crashes(tmp_path_factory, header):
    f = _header_file(tmp_path_factory.mktemp("ckpt"), header, b"\0" * 16)
    for reader in (read_metadata, read_checkpoint):
        try:
            reader(f)
        except ValueError:
            pass


@pytest.mark.parametrize("meta", [
    {"format": "cnnlab-checkpoint", "class_names": "abc"},
    {"format": "cnnlab-checkpoint", "input_size": [1, 10**9, 10**9]},
    {"format": "cnnlab-checkpoint", "model": "x"},
])
def test_checkpoint_metadata_values_never_crash(tmp_path, meta):
    header = json.dumps({"__metadata__": {"cnnlab": json.dumps(meta)}}).encode()
    f = _header_file(tmp_path, header)
    with pytest.raises(ValueError):
        read_checkpoint(f)
