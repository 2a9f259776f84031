"""Loading treats every file as hostile: a Hypothesis fuzz of the loaders over mutated valid files
(bit flips, truncations, header rewrites with wrong dtypes, shapes, offsets and lengths, duplicate
keys, huge numbers, unicode, nested JSON), a corpus of crafted malicious files, bounded memory,
and all-or-nothing `load_state_dict` for modules and optimizers.

Nothing but `retrograd.io.FormatError` may escape a loader, and the memory a load allocates
(tracemalloc peak) stays below a small multiple of the file size plus a constant.

`RETROGRAD_FUZZ=long` (set by `make fuzz`) runs the long budgets; `RETROGRAD_FUZZ_EXAMPLES=N`
sets the examples per fuzz test directly. The summary line printed at the end of the module
(run with -s) counts the files rejected and accepted per loader.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import retrograd as rg
from retrograd import nn, optim
from retrograd.backend import default_generator
from retrograd.io import FormatError, load, load_file, read_header, save_file
from retrograd.train import load_checkpoint, save_checkpoint

LONG = os.environ.get("RETROGRAD_FUZZ") == "long"
EXAMPLES = int(os.environ.get("RETROGRAD_FUZZ_EXAMPLES", 2500 if LONG else 100))
MEMORY_FACTOR = 16  # see test_memory_of_header_bombs_is_a_small_multiple_of_the_file
MEMORY_CONSTANT = 1 << 20

STATS: collections.Counter = collections.Counter()

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
_ALLOWED = {d.newbyteorder("=") for d in _DTYPES.values()}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", autouse=True)
def traced():
    """Trace allocations for the whole module (peaks are measured per load)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    yield
    if started:
        tracemalloc.stop()


def teardown_module(module):
    if STATS:
        print(
            "\nio fuzz: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(STATS.items()))
            + f" (RETROGRAD_FUZZ={'long' if LONG else 'short'})"
        )


# -- building files ------------------------------------------------------------------------------
def _encode(tensors: dict, metadata: dict | None = None) -> bytes:
    """The bytes `save_file` writes, built in memory (no fsync per example)."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = metadata
    chunks, offset = [], 0
    for name, (code, shape, raw) in tensors.items():
        header[name] = {
            "dtype": code,
            "shape": list(shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def _split(blob: bytes):
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def _join(header_bytes: bytes, data: bytes, length: int | None = None) -> bytes:
    n = len(header_bytes) if length is None else length
    return n.to_bytes(8, "little") + header_bytes + data


@st.composite
def valid_files(draw):
    count = draw(st.integers(0, 4))
    names = draw(
        st.lists(
            st.text(max_size=6).filter(lambda s: s != "__metadata__"),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    tensors = {}
    for name in names:
        code = draw(st.sampled_from(sorted(_DTYPES)))
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        n = _DTYPES[code].itemsize * math.prod(shape)
        tensors[name] = (code, shape, rng.bytes(n))
    metadata = draw(
        st.none() | st.dictionaries(st.text(max_size=4), st.text(max_size=6), max_size=2)
    )
    return _encode(tensors, metadata)


def test_in_memory_encoding_matches_save_file(workdir):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "é": np.zeros(0, np.int64)}
    save_file(arrays, workdir / "ref.safetensors", {"k": "v"})
    ours = _encode(
        {k: (code, v.shape, v.tobytes()) for (k, v), code in zip(arrays.items(), ["F32", "I64"])},
        {"k": "v"},
    )
    assert ours == (workdir / "ref.safetensors").read_bytes()


# -- mutations -----------------------------------------------------------------------------------
BIG_INTS = [2**31, 2**32, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64, 2**64 + 1, -(2**63), 10**30]
ints = st.one_of(st.integers(-3, 40), st.integers(-(2**70), 2**70), st.sampled_from(BIG_INTS))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | ints
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from(["F32", "I64", "BOOL", "shape", "data_offsets", "dtype"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)
dtype_values = (
    st.sampled_from(
        [
            *_DTYPES,
            "f32",
            "F32 ",
            "BF16",
            "F8_E4M3",
            "F8_E5M2",
            "U16",
            "U32",
            "U64",
            "C64",
            "OBJECT",
            "",
        ]
    )
    | json_values
)
shape_values = (
    st.lists(ints, max_size=6)
    | st.lists(st.integers(0, 2), min_size=25, max_size=80)
    | st.lists(st.sampled_from([0, 2**40, 2**62, 2**63 - 1, 2**63, 10**30]), max_size=4)
    | json_values
)
offset_values = st.lists(ints, max_size=3) | json_values


@st.composite
def rewritten_header(draw, header: dict) -> dict:
    """Apply a few structural changes to a parsed header."""
    header = dict(header)
    for _ in range(draw(st.integers(1, 3))):
        names = [k for k in header if k != "__metadata__"]
        action = draw(
            st.sampled_from(
                [
                    "dtype",
                    "shape",
                    "offsets",
                    "drop_key",
                    "add_key",
                    "entry",
                    "rename",
                    "copy",
                    "swap",
                    "metadata",
                    "delete",
                    "add",
                ]
            )
        )
        if action in ("metadata", "add") or not names:
            if action == "add" or not names:
                header[draw(st.text(max_size=5))] = draw(json_values)
            else:
                header["__metadata__"] = draw(
                    json_values | st.dictionaries(st.text(max_size=4), json_values, max_size=3)
                )
            continue
        name = draw(st.sampled_from(names))
        entry = header[name]
        entry = dict(entry) if isinstance(entry, dict) else {}
        if action == "dtype":
            entry["dtype"] = draw(dtype_values)
        elif action == "shape":
            entry["shape"] = draw(shape_values)
        elif action == "offsets":
            entry["data_offsets"] = draw(offset_values)
        elif action == "drop_key" and entry:
            entry.pop(draw(st.sampled_from(sorted(entry))))
        elif action == "add_key":
            entry[draw(st.text(max_size=6))] = draw(json_values)
        elif action == "entry":
            header[name] = draw(json_values)
            continue
        elif action == "rename":
            header[draw(st.text(max_size=6))] = header.pop(name)
            continue
        elif action == "copy":
            header[name + draw(st.text(min_size=1, max_size=3))] = entry
        elif action == "swap" and len(names) > 1:
            other = header[draw(st.sampled_from(names))]
            if isinstance(other, dict) and "data_offsets" in other:
                entry["data_offsets"] = other["data_offsets"]
        elif action == "delete":
            del header[name]
            continue
        header[name] = entry
    return header


RAW_INJECTIONS = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e400",
    b"-0",
    b"1.5",
    b"9" * 19,
    b"9" * 400,
    b"9" * 5000,
    b'"\\ud800"',
    b'"\\u0000"',
    b"\xff",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xef\xbb\xbf",
    b"[" * 3000 + b"]" * 3000,
    b'{"a":' * 3000 + b"0" + b"}" * 3000,
    b"[" * 100,
    b"}",
    b",",
    b'"',
    b"\\",
]


@st.composite
def hostile_files(draw):
    blob = draw(valid_files())
    kind = draw(
        st.sampled_from(
            [
                "bitflip",
                "truncate",
                "extend",
                "length",
                "header",
                "header",
                "inject",
                "dup",
                "garbage",
            ]
        )
    )
    STATS[f"mutation {kind}"] += 1
    if kind == "bitflip":
        data = bytearray(blob)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= draw(st.integers(1, 255))
        return bytes(data)
    if kind == "truncate":
        return blob[: draw(st.integers(0, len(blob) - 1))]
    if kind == "extend":
        return blob + draw(st.binary(min_size=1, max_size=64))
    if kind == "garbage":
        return draw(st.binary(max_size=200))
    header, data = _split(blob)
    text = json.dumps(header).encode()
    if kind == "length":
        n = draw(
            st.sampled_from([0, 1, len(text) - 1, len(text) + 1, 2**63, 2**64 - 1, 100 * 2**20 + 1])
            | st.integers(0, 2**64 - 1)
        )
        return _join(text, data, length=n)
    if kind == "header":
        header = draw(rewritten_header(header))
        ensure_ascii = draw(st.booleans())
        text = json.dumps(header, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    elif kind == "inject":
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 8))
        text = text[:at] + draw(st.sampled_from(RAW_INJECTIONS)) + text[at + cut :]
    elif kind == "dup":  # the same key twice: the first with other content
        names = [k for k in header if k != "__metadata__"] or ["a"]
        name = draw(st.sampled_from(names))
        twin = json.dumps({name: draw(json_values | st.just(header.get(name)))})[1:-1]
        text = b"{" + twin.encode() + (b"," if text != b"{}" else b"") + text[1:]
    data = draw(st.sampled_from([data, data[:-1], data + b"\0" * 4])) if data else data
    return _join(text, data)


# -- loading -------------------------------------------------------------------------------------
def _check_arrays(arrays, size):
    assert isinstance(arrays, dict)
    total = 0
    for name, arr in arrays.items():
        assert isinstance(name, str) and isinstance(arr, np.ndarray)
        assert arr.dtype in _ALLOWED and arr.flags.writeable and arr.flags.c_contiguous
        total += arr.nbytes
    assert total <= size


def _load_file(path):
    arrays, metadata = load_file(path)
    _check_arrays(arrays, os.path.getsize(path))
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())


def _read_header(path):
    entries, metadata, start = read_header(path)
    assert 8 <= start <= os.path.getsize(path)


def _load(path):
    tensors, metadata = load(path, with_metadata=True)
    assert all(isinstance(t, rg.Tensor) for t in tensors.values())


def _load_checkpoint(path):
    state = default_generator.get_state()
    try:
        load_checkpoint(path)
    finally:
        default_generator.set_state(state)


LOADERS = {
    "load_file": _load_file,
    "read_header": _read_header,
    "load": _load,
    "load_checkpoint": _load_checkpoint,
}


# Escapes the loaders once let through (fixed): each stays as a regression test below. The fuzz
# would tolerate one only while its probe still reproduces, so it is strict now.
CHECKPOINT_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError)
KNOWN_ESCAPES = {
    # numpy refuses the shape after the header passed validation
    "zero-size tensor with a huge dimension": (
        "load_file",
        lambda: _join(
            b'{"a":{"dtype":"F32","shape":[0,1000000000000000000000000000000],'
            b'"data_offsets":[0,0]}}',
            b"",
        ),
        ValueError,
        r"Maximum allowed dimension|array is too big",
    ),
    "more dimensions than numpy allows": (
        "load_file",
        lambda: _join(
            json.dumps({"a": {"dtype": "U8", "shape": [1] * 70, "data_offsets": [0, 1]}}).encode(),
            b"\0",
        ),
        ValueError,
        r"maximum supported dimension",
    ),
    # Python's int() limit on digits, raised from inside json.loads as a plain ValueError
    "integer with 5000 digits": (
        "load_file",
        lambda: _join(
            b'{"a":{"dtype":"U8","shape":[' + b"1" * 5000 + b'],"data_offsets":[0,0]}}', b""
        ),
        ValueError,
        r"Exceeds the limit .* for integer string conversion",
    ),
    "retrograd.load: metadata JSON nested too deeply": (
        "load",
        lambda: _encode({}, {"retrograd": "[" * 100_000 + "]" * 100_000}),
        RecursionError,
        r"maximum recursion depth",
    ),
    "retrograd.load: metadata JSON with a 5000-digit integer": (
        "load",
        lambda: _encode({}, {"retrograd": "1" * 5000}),
        ValueError,
        r"Exceeds the limit",
    ),
    "load_checkpoint: metadata of the wrong structure": (
        "load_checkpoint",
        lambda: _encode({}, {"retrograd.checkpoint": json.dumps({"model": {"__dict__": 5}})}),
        CHECKPOINT_ERRORS,
        r"",
    ),
    "load_checkpoint: a generator state that is not one": (
        "load_checkpoint",
        lambda: _encode({}, {"retrograd.checkpoint": json.dumps({"rng": {"state": 1}})}),
        CHECKPOINT_ERRORS,
        r"",
    ),
    "load_checkpoint: extras that are not an object": (
        "load_checkpoint",
        lambda: _encode({}, {"retrograd.checkpoint": json.dumps({"extra": [1]})}),
        CHECKPOINT_ERRORS,
        r"",
    ),
    "load_checkpoint: metadata JSON nested too deeply": (
        "load_checkpoint",
        lambda: _encode({}, {"retrograd.checkpoint": "[" * 100_000 + "]" * 100_000}),
        RecursionError,
        r"maximum recursion depth",
    ),
}


def _escape_of(loader: str, blob: bytes, path) -> BaseException | None:
    path.write_bytes(blob)
    try:
        LOADERS[loader](path)
    except FormatError:
        return None
    except Exception as e:  # noqa: BLE001 - the escape is what we are looking for
        return e
    return None


_OPEN: dict[str, tuple] = {}


@pytest.fixture(scope="module")
def open_escapes(workdir):
    """The known escapes that still reproduce (probed once per run)."""
    if not _OPEN:
        for name, (loader, build, types, pattern) in KNOWN_ESCAPES.items():
            e = _escape_of(loader, build(), workdir / "probe.safetensors")
            if isinstance(e, types) and re.search(pattern, str(e)):
                _OPEN[name] = (loader, types, pattern)
        _OPEN.setdefault("", ("", (), ""))  # probed
    return _OPEN


def _known(loader: str, e: BaseException, open_escapes) -> str | None:
    for name, (which, types, pattern) in open_escapes.items():
        if name and which == loader and isinstance(e, types) and re.search(pattern, str(e)):
            return name
    return None


def _attempt(loader: str, path, open_escapes) -> str:
    """Load `path`; returns 'accepted' or 'rejected'; fails on any other exception or when the
    load allocates more than MEMORY_FACTOR times the file size plus MEMORY_CONSTANT."""
    size = os.path.getsize(path)
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        LOADERS[loader](path)
        outcome = "accepted"
    except FormatError as e:
        assert str(e), "a FormatError must say what is wrong"
        outcome = "rejected"
    except Exception as e:
        name = _known(loader, e, open_escapes)
        if name is None:
            raise AssertionError(f"{loader} let {type(e).__name__} escape: {e}") from e
        outcome = "known escape"
    peak = tracemalloc.get_traced_memory()[1] - base
    assert peak <= MEMORY_FACTOR * size + MEMORY_CONSTANT, f"{loader} allocated {peak} bytes"
    STATS[f"{loader} {outcome}"] += 1
    return outcome


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@pytest.mark.parametrize("loader", ["load_file", "read_header", "load"])
@FUZZ
@given(blob=hostile_files())
def test_fuzz_mutated_files_raise_only_format_error(loader, blob, workdir, open_escapes):
    path = workdir / f"fuzz-{loader}.safetensors"
    path.write_bytes(blob)
    _attempt(loader, path, open_escapes)
    STATS["fuzz examples"] += 1


# A valid file the current loader wrongly rejects: a zero-size tensor whose dimensions before
# the zero span more bytes than the file holds (np.zeros((3, 0)) saved alone). Tolerated by the
# valid-file fuzz only while it reproduces (strict-xfail test below; fix proposed in the report).
ZERO_SIZE_BLOB = _encode({"a": ("F32", [3, 0], b"")})


def _zero_size_rejected(workdir) -> bool:
    path = workdir / "zero-size.safetensors"
    path.write_bytes(ZERO_SIZE_BLOB)
    try:
        load_file(path)
    except FormatError:
        return True
    return False


@FUZZ
@given(blob=valid_files())
def test_fuzz_valid_files_load_exactly(blob, workdir):
    path = workdir / "valid.safetensors"
    path.write_bytes(blob)
    header, data = _split(blob)
    try:
        arrays, metadata = load_file(path)
    except FormatError:
        shapes = [v["shape"] for k, v in header.items() if k != "__metadata__"]
        if any(0 in shape for shape in shapes) and _zero_size_rejected(workdir):
            STATS["valid zero-size files wrongly rejected (known)"] += 1
            return
        raise
    assert metadata == header.get("__metadata__", {})
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        assert arrays[name].shape == tuple(info["shape"])
        assert arrays[name].dtype == _DTYPES[info["dtype"]].newbyteorder("=")
        assert arrays[name].tobytes() == data[begin:end]
    STATS["valid files loaded"] += 1


def test_zero_size_tensor_after_a_non_zero_dimension_loads(workdir):
    save_file({"a": np.zeros((3, 0), np.float32)}, workdir / "z.safetensors")
    arrays, _ = load_file(workdir / "z.safetensors")
    assert arrays["a"].shape == (3, 0)


def _checkpoint_blob(workdir) -> bytes:
    rg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    opt = optim.Adam(model.parameters(), lr=0.01)
    model(rg.randn(4, 2)).sum().backward()
    opt.step()
    sched = optim.lr_scheduler.StepLR(opt, step_size=2)
    path = workdir / "base-ckpt.safetensors"
    save_checkpoint(path, model, opt, sched, epoch=3, history=[{"loss": 0.5}])
    return path.read_bytes()


@st.composite
def mutated_json(draw, value):
    """Replace a random subtree of a JSON value with a random JSON value."""
    if isinstance(value, (dict, list)) and value and draw(st.booleans()):
        if isinstance(value, dict):
            key = draw(st.sampled_from(sorted(value)))
            return {**value, key: draw(mutated_json(value[key]))}
        i = draw(st.integers(0, len(value) - 1))
        return value[:i] + [draw(mutated_json(value[i]))] + value[i + 1 :]
    return draw(json_values)


@FUZZ
@given(data=st.data())
def test_fuzz_checkpoint_metadata_raises_only_format_error(data, workdir, open_escapes):
    if "blob" not in STATS_CACHE:
        STATS_CACHE["blob"] = _checkpoint_blob(workdir)
    blob = STATS_CACHE["blob"]
    header, tail = _split(blob)
    meta = json.loads(header["__metadata__"]["retrograd.checkpoint"])
    how = data.draw(st.sampled_from(["tree", "text", "file"]))
    if how == "tree":
        text = json.dumps(data.draw(mutated_json(meta)))
    elif how == "text":
        text = json.dumps(meta)
        at = data.draw(st.integers(0, len(text)))
        text = (
            text[:at]
            + data.draw(st.sampled_from([b.decode("latin-1") for b in RAW_INJECTIONS]))
            + text[at:]
        )
    if how == "file":
        raw = data.draw(st.sampled_from(["bitflip", "truncate"]))
        buf = bytearray(blob)
        if raw == "bitflip":
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= data.draw(st.integers(1, 255))
            new = bytes(buf)
        else:
            new = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        header = {**header, "__metadata__": {"retrograd.checkpoint": text}}
        new = _join(json.dumps(header).encode("utf-8", "surrogatepass"), tail)
    path = workdir / "ckpt.safetensors"
    path.write_bytes(new)
    _attempt("load_checkpoint", path, open_escapes)
    STATS["fuzz examples"] += 1


STATS_CACHE: dict = {}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n) for n in KNOWN_ESCAPES],
)
def test_known_escapes_raise_format_error(name, workdir):
    loader, build, _, _ = KNOWN_ESCAPES[name]
    path = workdir / "known.safetensors"
    path.write_bytes(build())
    with pytest.raises(FormatError):
        LOADERS[loader](path)


# -- crafted malicious files ---------------------------------------------------------------------
def _repeat(item: bytes, count: int, sep: bytes = b",") -> bytes:
    return sep.join([item] * count)


HEADER_ENTRIES = 10_000_000 if LONG else 400_000

CORPUS = {
    "truncated in the data": lambda: _encode({"w": ("F32", [4, 4], b"\1" * 64)})[:-5],
    "truncated in the header": lambda: _encode({"w": ("F32", [4, 4], b"\1" * 64)})[:30],
    "truncated length field": lambda: b"\x10\0\0",
    f"{HEADER_ENTRIES:,}-entry header (one key, repeated)": lambda: _join(
        b"{" + _repeat(b'"":0', HEADER_ENTRIES) + b"}", b""
    ),
    "50,000 distinct entries that are not tensors": lambda: _join(
        b"{" + b",".join(b'"k%d":0' % i for i in range(50_000)) + b"}", b""
    ),
    "object bomb [{},{},...] in a shape": lambda: _join(
        b'{"a":{"dtype":"F32","shape":[' + _repeat(b"{}", 150_000) + b'],"data_offsets":[0,0]}}',
        b"",
    ),
    "array bomb [[],[],...] in a shape": lambda: _join(
        b'{"a":{"dtype":"F32","shape":[' + _repeat(b"[]", 150_000) + b'],"data_offsets":[0,0]}}',
        b"",
    ),
    "float bomb in a shape": lambda: _join(
        b'{"a":{"dtype":"F32","shape":[' + _repeat(b"1.5", 150_000) + b'],"data_offsets":[0,0]}}',
        b"",
    ),
    "integer bomb in metadata": lambda: _join(
        b'{"__metadata__":{"a":[' + _repeat(b"7", 250_000) + b"]}}", b""
    ),
    "duplicate tensor name with other offsets": lambda: _join(
        b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
        b'"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
        b"\0" * 8,
    ),
    "offsets as floats": lambda: _join(
        b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0.0,4.0]}}', b"\0" * 4
    ),
    "offsets as booleans": lambda: _join(
        b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[false,true]}}', b"\0"
    ),
    "shape with NaN": lambda: _join(
        b'{"a":{"dtype":"F32","shape":[NaN],"data_offsets":[0,4]}}', b"\0" * 4
    ),
    "negative end offset": lambda: _join(
        b'{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,-4]}}', b""
    ),
    "offsets past 2**64": lambda: _join(
        json.dumps(
            {"a": {"dtype": "U8", "shape": [1], "data_offsets": [2**64, 2**64 + 1]}}
        ).encode(),
        b"\0",
    ),
    "size overflowing int64 (2**32 x 2**32 x 4)": lambda: _join(
        json.dumps(
            {"a": {"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]}}
        ).encode(),
        b"",
    ),
    "bfloat16 (not in the allow-list)": lambda: _join(
        b'{"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}', b"\0\0"
    ),
    "lowercase dtype": lambda: _join(
        b'{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4
    ),
    "dtype as a list": lambda: _join(
        b'{"a":{"dtype":["F32"],"shape":[1],"data_offsets":[0,4]}}', b"\0" * 4
    ),
    "entry is a list": lambda: _join(b'{"a":["F32",[1],[0,4]]}', b"\0" * 4),
    "metadata is a list": lambda: _join(b'{"__metadata__":["a","b"]}', b""),
    "metadata nested objects": lambda: _join(b'{"__metadata__":{"a":{"b":"c"}}}', b""),
    "invalid utf-8 in a name": lambda: _join(
        b'{"\xff\xfe":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"
    ),
    "utf-8 encoded surrogate in a name": lambda: _join(
        b'{"\xed\xa0\x80":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"
    ),
    "byte-order mark before the JSON": lambda: _join(b"\xef\xbb\xbf{}", b""),
    "two JSON documents": lambda: _join(b"{}{}", b""),
    "header length zero": lambda: _join(b"", b"{}"),
    "header length 2**64 - 1": lambda: _join(b"{}", b"", length=2**64 - 1),
    "header length one past the cap": lambda: _join(b"{}", b"", length=100 * 2**20 + 1),
    "pickle payload": lambda: b"\x80\x04\x95" + b"\0" * 40,
    "zip (a PyTorch .pt file)": lambda: b"PK\x03\x04" + b"\0" * 60,
    "empty file": lambda: b"",
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_crafted_malicious_files_raise_format_error(case, workdir, open_escapes):
    path = workdir / "crafted.safetensors"
    path.write_bytes(CORPUS[case]())
    for loader in ("load_file", "read_header", "load"):
        outcome = _attempt(loader, path, open_escapes)
        assert outcome != "accepted", f"{loader} accepted {case}"
    STATS["crafted malicious files rejected"] += 1


def _amplification(loader: str, blob: bytes, path) -> float:
    path.write_bytes(blob)
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        LOADERS[loader](path)
    except FormatError:
        pass
    return (tracemalloc.get_traced_memory()[1] - base) / len(blob)


def test_memory_of_header_bombs_is_a_small_multiple_of_the_file(workdir):
    """Python objects for a JSON header cost more than its text: the worst shapes are measured
    here. Valid files with many tiny tensors cost about 13x; object and array bombs over 20x with
    the current loader (about 1x once it counts containers before parsing)."""
    bombs = {
        "object bomb": CORPUS["object bomb [{},{},...] in a shape"](),
        "array bomb": CORPUS["array bomb [[],[],...] in a shape"](),
        "float bomb": CORPUS["float bomb in a shape"](),
        "integer bomb": CORPUS["integer bomb in metadata"](),
        "repeated key": _join(b"{" + _repeat(b'"":0', 200_000) + b"}", b""),
        "valid, 20,000 zero-size tensors": _encode(
            {f"t{i}": ("F32", [0], b"") for i in range(20_000)}
        ),
    }
    for name, blob in bombs.items():
        ratio = _amplification("load_file", blob, workdir / "bomb.safetensors")
        STATS[f"amplification x10 {name}"] = round(10 * ratio)
        assert ratio <= MEMORY_FACTOR, f"{name}: a load allocated {ratio:.1f}x the file size"


def test_data_allocation_is_bounded_by_the_file(workdir):
    """Tensor data costs at most the bytes read plus the array made from them."""
    blob = _encode({"w": ("F64", [256, 256], np.ones((256, 256)).tobytes())})
    ratio = _amplification("load_file", blob, workdir / "big.safetensors")
    assert ratio <= 2.2


# -- NaN-filled tensors and the optional finite check ---------------------------------------------
NAN_CORPUS = {
    "all nan": np.full((3, 4), np.nan, np.float32),
    "one inf": np.array([1.0, np.inf, 2.0]),
    "negative inf in float16": np.array([-np.inf], np.float16),
    "nan payload bits": np.frombuffer(b"\x01\x00\xc0\x7f" * 2, np.float32).copy(),
}


@pytest.mark.parametrize("case", sorted(NAN_CORPUS))
def test_nan_filled_tensors_load_by_default(case, workdir):
    path = workdir / "nan.safetensors"
    save_file({"ok": np.ones(2, np.float32), "w": NAN_CORPUS[case]}, path)
    arrays, _ = load_file(path)
    np.testing.assert_array_equal(arrays["w"], NAN_CORPUS[case])  # nan == nan here
    assert load(path)["w"].shape == NAN_CORPUS[case].shape


@pytest.mark.parametrize("case", sorted(NAN_CORPUS))
def test_nan_filled_tensors_are_rejected_with_the_finite_check(case, workdir):
    path = workdir / "nan.safetensors"
    save_file({"ok": np.ones(2, np.float32), "w": NAN_CORPUS[case]}, path)
    with pytest.raises(FormatError, match="tensor 'w' holds non-finite values"):
        load_file(path, check_finite=True)
    with pytest.raises(FormatError, match="tensor 'w'"):
        load(path, check_finite=True)
    save_file({"ok": np.ones(2, np.float32), "i": np.arange(3)}, path)
    assert set(load_file(path, check_finite=True)[0]) == {"ok", "i"}


# -- all-or-nothing loading of module and optimizer state -----------------------------------------
def _net():
    rg.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def _snapshot(model):
    return {k: v.data.copy() for k, v in model.state_dict().items()}


def _same(model, snap):
    return all(np.array_equal(v.data, snap[k]) for k, v in model.state_dict().items())


def test_module_load_state_dict_names_every_bad_key_and_changes_nothing():
    model = _net()
    snap = _snapshot(model)
    good = {k: v + 1 for k, v in snap.items()}
    bad = dict(good)
    del bad["0.bias"]
    bad["extra.weight"] = np.zeros(2)
    bad["2.weight"] = np.zeros((4, 2))  # transposed
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(bad)
    message = str(info.value)
    assert 'Missing key(s) in state_dict: "0.bias"' in message
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in message
    assert "size mismatch for 2.weight" in message
    assert "[4, 2]" in message and "[2, 4]" in message
    assert _same(model, snap)
    with pytest.raises(RuntimeError, match="size mismatch"):
        model.load_state_dict(bad, strict=False)  # shapes are checked even when not strict
    assert _same(model, snap)
    model.load_state_dict(good)
    assert all(np.array_equal(v.data, good[k]) for k, v in model.state_dict().items())


def test_module_load_state_dict_with_an_uncastable_value_changes_nothing():
    model = _net()
    snap = _snapshot(model)
    bad = {k: v + 1 for k, v in snap.items()}
    bad["2.bias"] = np.array(["a", "b"])  # right shape, the last key: earlier ones copy first
    with pytest.raises(RuntimeError, match="2.bias"):
        model.load_state_dict(bad)
    assert _same(model, snap)


def _trained_adam(model, steps=3):
    opt = optim.Adam(
        [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.01}],
        lr=0.1,
    )
    for _ in range(steps):
        opt.zero_grad()
        model(rg.randn(5, 3, generator=rg.Generator().manual_seed(1))).pow(2).sum().backward()
        opt.step()
    return opt


def _opt_snapshot(opt):
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    params = [[id(p) for p in g["params"]] for g in opt.param_groups]
    state = {
        id(p): {k: np.array(v.data if hasattr(v, "data") else v, copy=True) for k, v in s.items()}
        for p, s in opt.state.items()
    }
    return groups, params, state


@pytest.mark.parametrize("corruption", ["group count", "group size", "state shape", "late shape"])
def test_optimizer_load_state_dict_rejects_before_modifying(corruption):
    model = _net()
    opt = _trained_adam(model)
    other = _trained_adam(_net(), steps=5)
    sd = other.state_dict()
    if corruption == "group count":
        sd["param_groups"] = sd["param_groups"][:1]
        match = "different number of parameter groups"
    elif corruption == "group size":
        sd["param_groups"][1]["params"] = sd["param_groups"][1]["params"][:1]
        match = "doesn't match the size"
    elif corruption == "state shape":
        sd["state"][0]["exp_avg"] = rg.zeros(3, 4)
        match = "shape"
    else:  # the last parameter's state: every earlier one would already be loaded
        last = max(sd["state"])
        sd["state"][last]["exp_avg_sq"] = rg.zeros(7)
        match = "shape"
    before = _opt_snapshot(opt)
    state_object, groups_object = opt.state, opt.param_groups
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(sd)
    assert opt.state is state_object and opt.param_groups is groups_object
    after = _opt_snapshot(opt)
    assert before[0] == after[0] and before[1] == after[1]
    assert before[2].keys() == after[2].keys()
    for pid, s in before[2].items():
        for k, v in s.items():
            np.testing.assert_array_equal(v, after[2][pid][k])
    # and the optimizer still steps exactly like an untouched twin
    twin_model = _net()
    twin = _trained_adam(twin_model)
    for m, o in ((model, opt), (twin_model, twin)):
        o.zero_grad()
        m(rg.ones(2, 3)).sum().backward()
        o.step()
    for a, b in zip(model.parameters(), twin_model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
