"""Saving and loading in the safetensors format: round trips, interop, atomicity, hostile files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import retrograd as rg
from retrograd.io import FormatError, load, load_file, save, save_file


def _tensors():
    return {
        "w": rg.randn(3, 4, generator=rg.Generator().manual_seed(0)),
        "b": rg.zeros(4, dtype=rg.float64),
        "steps": rg.arange(5),
        "mask": rg.tensor([True, False]),
        "empty": rg.zeros(0, 3),
        "scalar": rg.tensor(2.5),
    }


def test_round_trip_keeps_values_dtypes_shapes_and_metadata(tmp_path):
    path = tmp_path / "m.safetensors"
    save(_tensors(), path, {"epoch": 3, "lr": [0.1, 0.01]})
    loaded, meta = load(path, with_metadata=True)
    assert meta == {"epoch": 3, "lr": [0.1, 0.01]}
    for k, v in _tensors().items():
        assert loaded[k].dtype == v.dtype and loaded[k].shape == v.shape
        np.testing.assert_array_equal(loaded[k].numpy(), v.numpy())


def test_interoperates_with_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    ours = tmp_path / "ours.safetensors"
    save_file({k: v.numpy() for k, v in _tensors().items()}, ours)
    theirs = st.load_file(str(ours))
    for k, v in _tensors().items():
        np.testing.assert_array_equal(theirs[k], v.numpy())
    back = tmp_path / "theirs.safetensors"
    st.save_file({k: v.numpy() for k, v in _tensors().items()}, str(back))
    arrays, _ = load_file(back)
    for k, v in _tensors().items():
        np.testing.assert_array_equal(arrays[k], v.numpy())


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save({"a": rg.ones(2)}, path)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        save({"a": rg.zeros(2)}, path)
    np.testing.assert_array_equal(load(path)["a"].numpy(), [1.0, 1.0])
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left


def _write(path, header: dict | bytes, data: bytes = b"", length: int | None = None):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if length is None else length
    path.write_bytes(n.to_bytes(8, "little") + raw + data)
    return path


MALICIOUS = {
    "too small": lambda p: p.write_bytes(b"\x01\x02") or p,
    "lying header length": lambda p: _write(p, {}, length=1 << 40),
    "header past the end": lambda p: _write(p, {}, length=500),
    "not utf-8": lambda p: _write(p, b"\xff\xfe{}"),
    "not json": lambda p: _write(p, b"{not json"),
    "not an object": lambda p: _write(p, b"[1, 2]"),
    "bad dtype": lambda p: _write(
        p, {"a": {"dtype": "OBJECT", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8
    ),
    "negative shape": lambda p: _write(
        p, {"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4
    ),
    "huge shape": lambda p: _write(
        p, {"a": {"dtype": "F64", "shape": [2**62, 2**62], "data_offsets": [0, 8]}}, b"\0" * 8
    ),
    "offsets out of range": lambda p: _write(
        p, {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 400]}}, b"\0" * 4
    ),
    "overlapping offsets": lambda p: _write(
        p,
        {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
        },
        b"\0" * 12,
    ),
    "gap between tensors": lambda p: _write(
        p, {"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8
    ),
    "trailing bytes": lambda p: _write(
        p, {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 9
    ),
    "size disagrees with shape": lambda p: _write(
        p, {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8
    ),
    "metadata not strings": lambda p: _write(p, {"__metadata__": {"a": 1}}),
    "extra entry keys": lambda p: _write(
        p, {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}}, b"\0" * 4
    ),
    "deeply nested json": lambda p: _write(p, b"[" * 100_000 + b"]" * 100_000),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_files_raise_the_documented_error(tmp_path, case):
    path = MALICIOUS[case](tmp_path / "bad.safetensors")
    with pytest.raises(FormatError):
        load(path)


def test_loading_never_unpickles(tmp_path):
    import pickle

    path = tmp_path / "p.safetensors"
    path.write_bytes(pickle.dumps({"a": np.ones(2)}))
    with pytest.raises(FormatError):
        load(path)
