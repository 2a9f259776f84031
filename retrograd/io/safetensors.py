"""The safetensors file format, read and written with NumPy alone, treating every file as hostile.

Layout: 8 bytes (little-endian u64) header length N, N bytes of UTF-8 JSON
``{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
"__metadata__": {"key": "string"}}``, then the raw little-endian tensor bytes. Files written here
are readable by the `safetensors` package and the other way round.

Loading never executes code (no pickle, ever). Every check failure raises `FormatError` with a
message naming the problem: header length bounded and inside the file, valid UTF-8 JSON object,
dtypes from an allow-list, non-negative integer shapes with overflow-checked byte sizes, offsets
sorted, contiguous, non-overlapping and ending exactly at the end of the file. Nothing larger
than the file itself is ever allocated.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

__all__ = ["FormatError", "save_file", "load_file", "read_header", "MAX_HEADER_BYTES"]

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors package's own bound
_MAX_NDIM = 64 if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else 32
_MAX_BYTES = 2**63 - 1  # the most bytes an array's shape can span (numpy's intp)
_MAX_DIGITS = 20  # no size, shape or offset needs more digits than 2**64 has

_DTYPES = {
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_CODES = {v.newbyteorder("="): k for k, v in _DTYPES.items()}


class FormatError(ValueError):
    """A file is not a well-formed safetensors file; the message says what is wrong."""


def _code(dtype: np.dtype) -> str:
    d = np.dtype(dtype).newbyteorder("=")
    if d not in _CODES:
        raise TypeError(f"cannot save dtype {dtype}: supported are {sorted(_DTYPES)}")
    return _CODES[d]


def save_file(tensors: dict, path, metadata: dict | None = None) -> None:
    """Write arrays (or Tensors) to `path` atomically: temp file, fsync, rename.

    A crash at any point leaves either the old file or the new one, never a torn file.
    """
    header: dict = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata must map str to str")
        header["__metadata__"] = dict(metadata)
    arrays = []
    offset = 0
    for name, value in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"invalid tensor name: {name!r}")
        arr = _to_numpy(value)
        if not arr.flags.c_contiguous:  # (np.ascontiguousarray would turn 0-d into 1-d)
            arr = arr.copy(order="C")
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        nbytes = arr.nbytes
        header[name] = {
            "dtype": _code(arr.dtype),
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        arrays.append(arr)
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # align the data to 8 bytes, as the safetensors package does
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(len(raw).to_bytes(8, "little"))
            f.write(raw)
            for arr in arrays:
                f.write(arr.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def _to_numpy(value) -> np.ndarray:
    data = getattr(value, "data", value)
    if hasattr(data, "get") and not isinstance(data, np.ndarray):  # cupy
        data = data.get()
    return np.asarray(data)


def read_header(path) -> tuple[dict, dict, int]:
    """Validate and return (tensor entries, metadata, data start) without reading the data."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return _parse_header(f, size)


def _parse_header(f, size: int):
    if size < 8:
        raise FormatError(f"file is too small ({size} bytes) to hold a safetensors header")
    n = int.from_bytes(f.read(8), "little")
    if n > MAX_HEADER_BYTES:
        raise FormatError(f"header length {n} exceeds the limit of {MAX_HEADER_BYTES} bytes")
    if 8 + n > size:
        raise FormatError(f"header length {n} runs past the end of the file ({size} bytes)")
    header = _decode_json(f.read(n))
    if not isinstance(header, dict):
        raise FormatError("header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise FormatError("__metadata__ must map strings to strings")
    data_len = size - 8 - n
    entries = {}
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise FormatError(
                f"tensor '{name}': entry must have exactly dtype, shape, data_offsets"
            )
        dtype = info["dtype"]
        if not isinstance(dtype, str) or dtype not in _DTYPES:
            raise FormatError(f"tensor '{name}': dtype {dtype!r} is not one of {sorted(_DTYPES)}")
        shape = info["shape"]
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise FormatError(f"tensor '{name}': shape must be a list of non-negative integers")
        if len(shape) > _MAX_NDIM:
            raise FormatError(
                f"tensor '{name}': {len(shape)} dimensions, more than the {_MAX_NDIM} an array "
                "can have"
            )
        extent = _DTYPES[dtype].itemsize  # the bytes the shape spans, its zero dimensions aside
        for s in shape:
            extent *= max(s, 1)
            if extent > _MAX_BYTES:  # checked as it grows: no huge intermediate products
                raise FormatError(f"tensor '{name}': shape {shape} is too large for an array")
        nbytes = 0 if 0 in shape else extent
        if nbytes > data_len:
            raise FormatError(
                f"tensor '{name}': shape {shape} needs more bytes than the file holds"
            )
        offsets = info["data_offsets"]
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int for o in offsets)
        ):
            raise FormatError(f"tensor '{name}': data_offsets must be two integers")
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            raise FormatError(
                f"tensor '{name}': data_offsets [{begin}, {end}] are outside the data "
                f"({data_len} bytes)"
            )
        if end - begin != nbytes:
            raise FormatError(
                f"tensor '{name}': data_offsets span {end - begin} bytes but dtype {dtype} and "
                f"shape {shape} need {nbytes}"
            )
        entries[name] = (dtype, tuple(shape), begin, end)
        spans.append((begin, end, name))
    spans.sort()
    position = 0
    for begin, end, name in spans:
        if begin != position:
            raise FormatError(
                f"tensor '{name}': data starts at {begin}, expected {position} (offsets must be "
                "contiguous and non-overlapping)"
            )
        position = end
    if position != data_len:
        raise FormatError(f"data ends at {position} but the file holds {data_len} data bytes")
    return entries, metadata, 8 + n


def _decode_json(raw: bytes):
    """json.loads with the limits a header needs: integers of at most 20 digits, no floats,
    NaN or Infinity, and no more arrays and objects than a header of this length can hold (a
    `[[],[],...]` or `[{},{},...]` bomb would allocate over 20 times its size in Python objects;
    a tensor entry needs at least 26 bytes for its 3 containers)."""
    containers = raw.count(b"[") + raw.count(b"{")
    if containers * 6 > len(raw) + 64:
        raise FormatError(
            f"header holds {containers} '[' and '{{' in {len(raw)} bytes, more than a "
            "safetensors header can"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"header is not valid UTF-8: {e}") from None
    try:
        return _DECODER.decode(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise FormatError(f"header is not valid JSON: {e}") from None


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > _MAX_DIGITS:
        raise FormatError(f"header holds an integer with {len(digits)} digits")
    return int(digits)


def _reject_float(text: str):
    raise FormatError(f"header holds the number {text[:30]}: sizes and offsets are integers")


def _reject_constant(name: str):
    raise FormatError(f"header holds {name}, which is not valid JSON")


_DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_reject_float, parse_constant=_reject_constant
)


def load_file(path, check_finite: bool = False) -> tuple[dict, dict]:
    """Read a safetensors file into NumPy arrays: returns (arrays by name, metadata).

    check_finite=True also rejects (FormatError) a file whose floating tensors hold NaN or Inf.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        entries, metadata, start = _parse_header(f, size)
        arrays = {}
        for name, (dtype, shape, begin, end) in entries.items():
            f.seek(start + begin)
            buf = f.read(end - begin)
            if len(buf) != end - begin:
                raise FormatError(f"tensor '{name}': file is truncated")
            arr = np.frombuffer(buf, dtype=_DTYPES[dtype]).reshape(shape)
            arr = arr.astype(arr.dtype.newbyteorder("="), copy=True)
            if check_finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
                n_nan = int(np.isnan(arr).sum())
                n_inf = int(np.isinf(arr).sum())
                raise FormatError(
                    f"tensor '{name}' holds non-finite values ({n_nan} nan, {n_inf} inf)"
                )
            arrays[name] = arr
    return arrays, metadata
