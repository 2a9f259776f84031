"""The array backend: the only module that knows which array library computes.

NumPy runs on the CPU; CuPy plugs in here for a GPU. Everything else asks `get_xp(array)` for
the namespace of its inputs and uses operations NumPy and CuPy share.
"""

from __future__ import annotations

import numpy as np

try:  # optional GPU backend
    import cupy as _cupy  # type: ignore[import-not-found]
except Exception:  # pragma: no cover - cupy is absent on CPU machines
    _cupy = None

# dtypes exported as retrograd.float32 etc.: NumPy dtype objects, so they compare with arrays'.
float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")
uint8 = np.dtype("uint8")
int8 = np.dtype("int8")
int16 = np.dtype("int16")

_DTYPE_NAMES = {
    "float16": float16,
    "half": float16,
    "float32": float32,
    "float": float32,
    "float64": float64,
    "double": float64,
    "int32": int32,
    "int": int32,
    "int64": int64,
    "long": int64,
    "bool": bool_,
    "uint8": uint8,
    "int8": int8,
    "int16": int16,
}

_default_float = [float32]


def get_default_dtype() -> np.dtype:
    """The dtype a Python float or list of floats becomes (float32 unless changed)."""
    return _default_float[0]


def set_default_dtype(dtype) -> None:
    d = as_dtype(dtype)
    if d.kind != "f":
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float[0] = d


def as_dtype(dtype) -> np.dtype:
    """Turn a dtype-like (retrograd/NumPy dtype, name, Python type) into a NumPy dtype."""
    if dtype is None:
        return get_default_dtype()
    if isinstance(dtype, str):
        try:
            return _DTYPE_NAMES[dtype]
        except KeyError:
            raise TypeError(f"unknown dtype '{dtype}'") from None
    if dtype is float:
        return get_default_dtype()
    if dtype is int:
        return int64
    if dtype is bool:
        return bool_
    return np.dtype(dtype)


def is_floating(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def get_xp(array):
    """The array namespace (numpy or cupy) that computes on `array`."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    return np


def device_of(array) -> str:
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return f"cuda:{array.device.id}"
    return "cpu"


def cuda_available() -> bool:
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # pragma: no cover
        return False


def to_device(array, device: str):
    """Move an array to 'cpu' or 'cuda' (a copy only when the device changes)."""
    if device == "cpu":
        if _cupy is not None and isinstance(array, _cupy.ndarray):
            return _cupy.asnumpy(array)
        return array
    if device.startswith("cuda"):
        if _cupy is None:
            raise RuntimeError(
                "CuPy is not installed: install retrograd[gpu] on a machine with a CUDA GPU "
                "to use device='cuda'"
            )
        return _cupy.asarray(array)
    raise ValueError(f"Expected one of cpu, cuda device type at start of device string: {device}")


def to_numpy(array) -> np.ndarray:
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    return array


class Generator:
    """A random number generator (NumPy's PCG64 underneath); pass one to anything random.

    >>> g = Generator().manual_seed(0)
    >>> x = retrograd.randn(3, generator=g)
    """

    __slots__ = ("_rng", "_seed")

    def __init__(self, device: str = "cpu") -> None:
        self._seed = int(np.random.SeedSequence().entropy % (2**63))
        self._rng = np.random.default_rng(self._seed)

    def manual_seed(self, seed: int) -> Generator:
        self._seed = int(seed)
        self._rng = np.random.default_rng(self._seed)
        return self

    def seed(self) -> int:
        self._seed = int(np.random.SeedSequence().entropy % (2**63))
        self._rng = np.random.default_rng(self._seed)
        return self._seed

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict:
        return self._rng.bit_generator.state

    def set_state(self, state: dict) -> Generator:
        self._rng.bit_generator.state = state
        return self

    @property
    def numpy(self) -> np.random.Generator:
        """The underlying NumPy Generator."""
        return self._rng


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (used when no `generator=` is passed)."""
    return default_generator.manual_seed(seed)


def rng(generator: Generator | None) -> np.random.Generator:
    return (generator if generator is not None else default_generator)._rng


# -- the C allocator -------------------------------------------------------------------------------
# glibc hands every freed block above its mmap threshold back to the system and trims the heap
# top beyond 128 KB, so a training loop that frees its activations at the end of each step faults
# them all in again the next step (W4: ~1,300 page faults a step, 17% of its time; W6: ~6,800).
# On glibc, importing retrograd keeps up to MALLOC_PAD bytes: blocks below it come from the heap
# (M_MMAP_THRESHOLD) and up to that much free memory stays mapped at its top (M_TOP_PAD), so the
# next step reuses the pages. This is process-wide (other libraries in the process share the
# allocator) and costs up to MALLOC_PAD of resident memory kept after a step's arrays are freed;
# the peak of a step does not grow. Opt out with RETROGRAD_MALLOC_TUNING=0; any MALLOC_*_
# variable (or glibc.malloc tunable) in the environment also leaves glibc as configured there.
# 64 MB rather than 32: W3 frees two 16 MB weight gradients at zero_grad and its activations on
# top; with 32 MB kept, 259-770 pages a step faulted in again (3.4-6.3 ms of system time, the
# step 206-221 ms); with 64, one (0.4-1.4 ms; 202-211 ms). Blocks this large and up are mapped
# fresh each time: Linear reuses those weight gradients itself (ops.normalization).
MALLOC_PAD = 64 << 20
_M_TOP_PAD, _M_MMAP_THRESHOLD = -2, -3  # glibc's mallopt parameter numbers
_MALLOC_ENV = (
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_MAX_",
    "MALLOC_ARENA_MAX",
)


def _tune_malloc() -> str:
    """Set glibc's M_TOP_PAD and M_MMAP_THRESHOLD (see above); a line saying what was done."""
    import os
    import sys

    if os.environ.get("RETROGRAD_MALLOC_TUNING", "1").strip().lower() in (
        "0",
        "off",
        "false",
        "no",
    ):
        return "off: RETROGRAD_MALLOC_TUNING=0"
    if any(k in os.environ for k in _MALLOC_ENV) or "glibc.malloc" in os.environ.get(
        "GLIBC_TUNABLES", ""
    ):
        return "off: the environment sets malloc parameters"
    if not sys.platform.startswith("linux"):
        return "off: not glibc"
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl has a mallopt stub)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "off: not glibc"
    if mallopt(_M_TOP_PAD, MALLOC_PAD) != 1 or mallopt(_M_MMAP_THRESHOLD, MALLOC_PAD) != 1:
        return "off: mallopt refused"
    return f"on: M_TOP_PAD and M_MMAP_THRESHOLD = {MALLOC_PAD >> 20} MB"


MALLOC_TUNING = _tune_malloc()  # "on: ..." or "off: why"
