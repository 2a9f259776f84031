"""Reductions: sum, mean, var/std, prod, max/min, arg-reductions, logsumexp, norms, cumulative
ops, all/any, and the softmax family."""

from __future__ import annotations

from retrograd.autograd.function import Function
from retrograd.ops import dual
from retrograd.ops._util import canonical_dims
from retrograd.tensor import Tensor

__all__ = ["sum", "mean"]


def _restore(g, in_shape, dims, keepdim):
    """Broadcast a reduced gradient back over the reduced dims."""
    if not keepdim and dims is not None and len(in_shape):
        g = dual.expand_dims(g, dims)
    elif not keepdim and dims is None and len(in_shape):
        g = dual.reshape(g, (1,) * len(in_shape))
    return dual.broadcast_to(g, in_shape)


class Sum(Function):
    """out = sum(x, dims);  gx = broadcast(g)"""

    raw = True

    def forward(self, x, dims, keepdim):
        self.in_shape, self.dims, self.keepdim = x.shape, dims, keepdim
        return x.sum(axis=dims, keepdims=keepdim)

    def backward(self, g):
        return _restore(g, self.in_shape, self.dims, self.keepdim)


def sum(x, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Sum over dim (an int, a tuple, or None for all)."""
    if dtype is not None:
        x = x.to(dtype)
    elif x.data.dtype.kind in "biu":
        x = x.long()
    dims = canonical_dims(dim, x.data.ndim)
    return Sum.apply(x, dims=dims, keepdim=keepdim)


def mean(x, dim=None, keepdim: bool = False) -> Tensor:
    """Arithmetic mean over dim."""
    if x.data.dtype.kind not in "fc":
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point "
            f"or complex dtype. Got: {_torch_dtype_name(x.data.dtype)}"
        )
    dims = canonical_dims(dim, x.data.ndim)
    shape = x.data.shape
    n = 1
    for d in range(len(shape)) if dims is None else dims:
        n *= shape[d]
    return Sum.apply(x, dims=dims, keepdim=keepdim) / n if n else _nan_mean(x, dims, keepdim)


def _nan_mean(x, dims, keepdim):
    s = Sum.apply(x, dims=dims, keepdim=keepdim)
    return s / 0.0 if s.data.size else s


def _torch_dtype_name(dtype) -> str:
    return {"int64": "Long", "int32": "Int", "bool": "Bool"}.get(str(dtype), str(dtype))
