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
