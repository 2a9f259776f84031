"""Linear algebra: matmul in every form PyTorch accepts, mm, bmm, dot, outer, einsum, tensordot,
norms."""

from __future__ import annotations

from retrograd.autograd.function import Function
from retrograd.ops import dual
from retrograd.ops._util import promote
from retrograd.tensor import Tensor

__all__ = ["matmul"]


class MatMul(Function):
    """out = x @ y (batched, broadcast);  gx = g @ y^T,  gy = x^T @ g"""

    raw = True

    def forward(self, x, y):
        self.save(x, y)
        return x @ y

    def backward(self, g):
        x, y = self.saved
        need = self.needs_input_grad
        xnd, ynd = len(x.shape), len(y.shape)
        if xnd == 1 and ynd == 1:  # dot
            return (g * y if need[0] else None), (g * x if need[1] else None)
        if xnd == 1:  # (k) @ (..., k, n) -> (..., n)
            gx = (dual.expand_dims(g, (-2,)) @ dual.swap_last(y)) if need[0] else None
            gx = dual.reshape(gx, gx.shape[:-2] + gx.shape[-1:]) if gx is not None else None
            gy = (dual.expand_dims(x, (-1,)) * dual.expand_dims(g, (-2,))) if need[1] else None
            return gx, gy
        if ynd == 1:  # (..., m, k) @ (k) -> (..., m)
            gx = (dual.expand_dims(g, (-1,)) * y) if need[0] else None
            gy = (dual.swap_last(x) @ dual.expand_dims(g, (-1,))) if need[1] else None
            gy = dual.reshape(gy, gy.shape[:-1]) if gy is not None else None
            return gx, gy
        gx = g @ dual.swap_last(y) if need[0] else None
        gy = dual.swap_last(x) @ g if need[1] else None
        return gx, gy


def matmul(x, y) -> Tensor:
    """Matrix product with NumPy/PyTorch semantics (1-D, 2-D, batched, broadcast batch)."""
    x, y = promote(x, y)
    if x.data.ndim == 0 or y.data.ndim == 0:
        raise RuntimeError(
            f"both arguments to matmul need to be at least 1D, but they are {x.data.ndim}D "
            f"and {y.data.ndim}D"
        )
    kx = x.data.shape[-1]
    ky = y.data.shape[-2] if y.data.ndim > 1 else y.data.shape[0]
    if kx != ky:
        _raise_matmul(x.data.shape, y.data.shape)
    try:
        return MatMul.apply(x, y)
    except ValueError:
        _raise_matmul(x.data.shape, y.data.shape)


def _raise_matmul(a, b):
    if len(a) == 1 and len(b) == 1:
        raise RuntimeError(
            "inconsistent tensor size, expected tensor [{}] and src [{}] to have the same number "
            "of elements, but got {} and {} elements respectively".format(a[0], b[0], a[0], b[0])
        )
    ma = "x".join(str(s) for s in (a if len(a) > 1 else (1,) + tuple(a)))
    mb = "x".join(str(s) for s in (b if len(b) > 1 else tuple(b) + (1,)))
    raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({ma} and {mb})")
