"""Helpers shared by the op families: argument checks, scalar promotion, dim handling."""

from __future__ import annotations

import numpy as np

from retrograd import backend
from retrograd.tensor import Tensor


def canonical_dim(dim: int, ndim: int) -> int:
    """A dim in [-ndim, ndim) as a non-negative index (0-d tensors accept -1 and 0)."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})"
        )
    return dim % n


def canonical_dims(dim, ndim: int):
    """None (all dims) or a sorted tuple of non-negative dims; rejects repeats."""
    if dim is None:
        return None
    if isinstance(dim, (int, np.integer)):
        return (canonical_dim(int(dim), ndim),)
    dims = tuple(canonical_dim(int(d), ndim) for d in dim)
    seen = set()
    for d in dims:
        if d in seen:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
        seen.add(d)
    return tuple(sorted(dims))


def scalar_dtype(value, like: np.dtype) -> np.dtype:
    """The dtype a Python scalar takes next to a tensor of dtype `like` (PyTorch's rules)."""
    if isinstance(value, (bool, np.bool_)):
        return like
    if isinstance(value, (int, np.integer)):
        return like if like.kind != "b" else backend.int64
    if isinstance(value, (float, np.floating)):
        return like if like.kind in "fc" else backend.get_default_dtype()
    if isinstance(value, complex):
        return np.dtype("complex64") if like != np.float64 else np.dtype("complex128")
    raise TypeError(f"unsupported operand type: {type(value).__name__}")


def as_tensor(value, like: Tensor | None = None) -> Tensor:
    """Tensors pass through; scalars and arrays become constant Tensors next to `like`."""
    if isinstance(value, Tensor):
        return value
    if like is not None and isinstance(value, (int, float, bool, np.number, np.bool_)):
        dtype = scalar_dtype(value, like.data.dtype)
        xp = backend.get_xp(like.data)
        return Tensor._make(xp.asarray(value, dtype=dtype), False, None, 0)
    if isinstance(value, (list, tuple)) or isinstance(value, np.ndarray) or hasattr(value, "dtype"):
        return Tensor(value)
    if isinstance(value, (int, float, bool)):
        return Tensor(value)
    raise TypeError(f"expected Tensor, scalar or array, got {type(value).__name__}")


def promote(x, y) -> tuple[Tensor, Tensor]:
    """Two operands as Tensors of one dtype (a float operand wins over an integer one)."""
    if not isinstance(x, Tensor):
        x = as_tensor(x, y if isinstance(y, Tensor) else None)
    if not isinstance(y, Tensor):
        y = as_tensor(y, x)
    dx, dy = x.data.dtype, y.data.dtype
    if dx is dy or dx == dy:
        return x, y
    target = result_dtype(x, y)
    if dx != target:
        x = cast(x, target)
    if dy != target:
        y = cast(y, target)
    return x, y


def result_dtype(x: Tensor, y: Tensor) -> np.dtype:
    dx, dy = x.data.dtype, y.data.dtype
    fx, fy = dx.kind in "fc", dy.kind in "fc"
    if fx and not fy:
        return dx
    if fy and not fx:
        return dy
    # 0-d tensors do not promote dimensioned ones within a category (PyTorch's rule)
    if x.data.ndim == 0 and y.data.ndim > 0:
        return dy
    if y.data.ndim == 0 and x.data.ndim > 0:
        return dx
    return np.promote_types(dx, dy)


def check_broadcast(x: Tensor, y: Tensor) -> None:
    try:
        np.broadcast_shapes(x.data.shape, y.data.shape)
    except ValueError:
        raise RuntimeError(
            f"The size of tensor a ({_mismatch(x.data.shape, y.data.shape)[0]}) must match the "
            f"size of tensor b ({_mismatch(x.data.shape, y.data.shape)[1]}) at non-singleton "
            f"dimension {_mismatch(x.data.shape, y.data.shape)[2]}"
        ) from None


def _mismatch(a: tuple, b: tuple):
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    for i in range(n - 1, -1, -1):
        if a[i] != b[i] and a[i] != 1 and b[i] != 1:
            return a[i], b[i], i
    return a[-1], b[-1], n - 1


def cast(x: Tensor, dtype) -> Tensor:
    from retrograd.ops.elementwise import cast as _cast

    return _cast(x, dtype)
