"""Factories: tensors from data, constants, ranges and random draws."""

from __future__ import annotations

import numpy as np

from retrograd import backend
from retrograd.backend import Generator, rng
from retrograd.tensor import Tensor, _to_array

__all__ = [
    "tensor",
    "as_tensor",
    "from_numpy",
    "zeros",
    "ones",
    "full",
    "empty",
    "arange",
    "linspace",
    "eye",
    "rand",
    "randn",
    "randint",
    "normal",
    "randperm",
    "zeros_like",
    "ones_like",
    "full_like",
    "empty_like",
    "rand_like",
    "randn_like",
]


def _shape(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    shape = tuple(int(s) for s in size)
    if any(s < 0 for s in shape):
        raise RuntimeError(
            f"Trying to create tensor with negative dimension {min(shape)}: {list(shape)}"
        )
    return shape


def _wrap(array, requires_grad: bool, device=None) -> Tensor:
    if device is not None and device != "cpu":
        array = backend.to_device(array, device)
    t = Tensor._make(array, False, None, 0)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of data (float32 for Python floats).

    >>> retrograd.tensor([[1.0, 2.0]], requires_grad=True)
    tensor([[1., 2.]], requires_grad=True)
    """
    arr = _to_array(data, dtype)
    if isinstance(data, (Tensor, np.ndarray)) and arr is (
        data.data if isinstance(data, Tensor) else data
    ):
        arr = arr.copy()
    return _wrap(arr, requires_grad, device)


def as_tensor(data, dtype=None) -> Tensor:
    """Like `tensor`, but shares memory with data when it can."""
    if isinstance(data, Tensor) and (dtype is None or backend.as_dtype(dtype) == data.dtype):
        return data
    return _wrap(_to_array(data, dtype), False)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with the NumPy array (its dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    return Tensor._make(array, False, None, 0)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _wrap(np.zeros(_shape(size), dtype=backend.as_dtype(dtype)), requires_grad, device)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _wrap(np.ones(_shape(size), dtype=backend.as_dtype(dtype)), requires_grad, device)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _wrap(np.empty(_shape(size), dtype=backend.as_dtype(dtype)), requires_grad, device)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if dtype is None:
        if isinstance(fill_value, bool):
            dtype = backend.bool_
        elif isinstance(fill_value, int):
            dtype = backend.int64
    return _wrap(
        np.full(_shape((size,)), fill_value, dtype=backend.as_dtype(dtype)), requires_grad, device
    )


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Values from start (inclusive) to end (exclusive) by step."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = backend.int64 if is_int else backend.get_default_dtype()
    return _wrap(np.arange(start, end, step, dtype=backend.as_dtype(dtype)), requires_grad, device)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _wrap(
        np.linspace(start, end, int(steps), dtype=backend.as_dtype(dtype)), requires_grad, device
    )


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _wrap(np.eye(n, m, dtype=backend.as_dtype(dtype)), requires_grad, device)


def rand(*size, generator: Generator | None = None, dtype=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1)."""
    dt = backend.as_dtype(dtype)
    return _wrap(
        rng(generator)
        .random(_shape(size), dtype=dt if dt.kind == "f" and dt.itemsize >= 4 else np.float64)
        .astype(dt, copy=False),
        requires_grad,
    )


def randn(*size, generator: Generator | None = None, dtype=None, requires_grad=False) -> Tensor:
    """Standard normal samples."""
    dt = backend.as_dtype(dtype)
    return _wrap(
        rng(generator)
        .standard_normal(
            _shape(size), dtype=dt if dt.kind == "f" and dt.itemsize >= 4 else np.float64
        )
        .astype(dt, copy=False),
        requires_grad,
    )


def randint(low, high=None, size=(), generator: Generator | None = None, dtype=None) -> Tensor:
    """Integers in [low, high)."""
    if high is None:
        low, high = 0, low
    dt = backend.int64 if dtype is None else backend.as_dtype(dtype)
    return _wrap(rng(generator).integers(low, high, size=_shape((size,)), dtype=dt), False)


def normal(mean=0.0, std=1.0, size=None, generator: Generator | None = None) -> Tensor:
    """Normal samples; mean and std may be tensors (broadcast) or floats with a size."""
    m = mean.data if isinstance(mean, Tensor) else mean
    s = std.data if isinstance(std, Tensor) else std
    shape = _shape((size,)) if size is not None else np.broadcast_shapes(np.shape(m), np.shape(s))
    dt = (
        mean.dtype
        if isinstance(mean, Tensor)
        else (std.dtype if isinstance(std, Tensor) else backend.get_default_dtype())
    )
    return _wrap(rng(generator).normal(m, s, size=shape).astype(dt), False)


def randperm(n: int, generator: Generator | None = None, dtype=None) -> Tensor:
    return _wrap(
        rng(generator).permutation(n).astype(backend.as_dtype(dtype or backend.int64)), False
    )


def zeros_like(x: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return _wrap(
        np.zeros(x.shape, dtype=dtype and backend.as_dtype(dtype) or x.dtype),
        requires_grad,
        x.device,
    )


def ones_like(x: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return _wrap(
        np.ones(x.shape, dtype=dtype and backend.as_dtype(dtype) or x.dtype),
        requires_grad,
        x.device,
    )


def empty_like(x: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return zeros_like(x, dtype, requires_grad)


def full_like(x: Tensor, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    return _wrap(
        np.full(x.shape, fill_value, dtype=dtype and backend.as_dtype(dtype) or x.dtype),
        requires_grad,
        x.device,
    )


def rand_like(
    x: Tensor, generator: Generator | None = None, dtype=None, requires_grad=False
) -> Tensor:
    return rand(*x.shape, generator=generator, dtype=dtype or x.dtype, requires_grad=requires_grad)


def randn_like(
    x: Tensor, generator: Generator | None = None, dtype=None, requires_grad=False
) -> Tensor:
    return randn(*x.shape, generator=generator, dtype=dtype or x.dtype, requires_grad=requires_grad)
