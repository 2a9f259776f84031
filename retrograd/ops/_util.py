"""Helpers shared by the op families: argument checks, scalar promotion, dim handling."""

from __future__ import annotations

import functools

import numpy as np

from retrograd import backend
from retrograd.tensor import Tensor

# -- quiet floating point ---------------------------------------------------------------------
# PyTorch never warns on inf, nan or overflow; NumPy prints a RuntimeWarning unless its error
# state says "ignore". `np.errstate` costs ~1 us per entry (it builds the state every time).
# NumPy >= 2 keeps the state in a context variable: setting a state built once and resetting
# the token costs ~0.2 us, and is thread-safe and reentrant (every entry holds its own token).
# The state built here is NumPy's default with every error ignored (a user's np.setbufsize or
# np.seterrcall does not reach inside a quiet primitive). CuPy never warns: nothing to do there.
try:
    from numpy._core.umath import _extobj_contextvar as _errstate_var
except ImportError:  # pragma: no cover - NumPy 1.x: the state is global; errstate it is
    _errstate_var = None

if _errstate_var is not None:
    with np.errstate(all="ignore"):
        _QUIET_STATE = _errstate_var.get()
    _set_state = _errstate_var.set
    _reset_state = _errstate_var.reset

    def quiet(fn):
        """Decorator: `fn` computes with NumPy's floating-point warnings off (as PyTorch)."""

        @functools.wraps(fn)
        def quiet_fn(*args, **kwargs):
            token = _set_state(_QUIET_STATE)
            try:
                return fn(*args, **kwargs)
            finally:
                _reset_state(token)

        return quiet_fn

    class quiet_block:
        """`with quiet_block():` the block computes with NumPy's floating-point warnings off."""

        __slots__ = ("_token",)

        def __enter__(self):
            self._token = _set_state(_QUIET_STATE)

        def __exit__(self, *exc):
            _reset_state(self._token)

else:  # pragma: no cover

    def quiet(fn):
        """Decorator: `fn` computes with NumPy's floating-point warnings off (as PyTorch)."""
        return np.errstate(all="ignore")(fn)

    def quiet_block():
        """`with quiet_block():` the block computes with NumPy's floating-point warnings off."""
        return np.errstate(all="ignore")


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


# -- 2-norms that neither overflow nor underflow ----------------------------------------------
# Past these bounds the squares of a 2-norm overflow, or underflow enough to lose precision
# (float32: (1e30)**2 = inf, (1e-30)**2 = 0): the norm is then computed again, scaled by the
# largest |a| (PyTorch's float32 norms of one element and its std stay finite and exact there).
_SQUARES_SAFE = {
    np.dtype(t).char: (
        float(np.sqrt(np.finfo(t).tiny.astype(np.float64) / np.finfo(t).eps)),
        float(np.sqrt(np.finfo(t).max.astype(np.float64))) / 4,
    )
    for t in ("float16", "float32", "float64")
}


def l2_norm(xp, a, dims, keepdim: bool, denom=1):
    """sqrt(sum(a * a) / denom) over dims (None: all), as m * sqrt(sum((a / m)**2) / denom) with
    m = max |a| where the plain sum overflows or underflows. Call it under `quiet`."""
    ss = (a * a).sum(axis=dims, keepdims=keepdim)
    out = xp.sqrt(ss / denom if denom != 1 else ss)
    safe = _SQUARES_SAFE.get(out.dtype.char)
    if safe is None or not a.size:
        return out
    if out.size == 1:  # one norm (the common case): a Python float compares fastest
        if safe[0] <= out.item() <= safe[1]:
            return out
    elif safe[0] <= out.min() and out.max() <= safe[1]:
        return out
    m = xp.abs(a).max(axis=dims, keepdims=True)
    m = xp.where((m > 0) & (m < xp.inf), m, xp.ones_like(m))  # 0, inf, nan: the plain sum holds
    s = a / m
    ss = (s * s).sum(axis=dims, keepdims=keepdim)
    out = xp.sqrt(ss / denom if denom != 1 else ss)
    return out * m.reshape(out.shape)
