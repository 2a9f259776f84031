"""Functions for gradient rules that work on arrays (plain backward) and Tensors (create_graph).

A rule written with these, operators and indexing serves both backward modes: fed arrays it
runs NumPy/CuPy directly; fed Tensors it records a graph, giving gradients of gradients.
"""

from __future__ import annotations

from retrograd.backend import get_xp
from retrograd.tensor import Tensor


def _ops():
    from retrograd import ops

    return ops


def exp(x):
    return _ops().exp(x) if isinstance(x, Tensor) else get_xp(x).exp(x)


def log(x):
    return _ops().log(x) if isinstance(x, Tensor) else get_xp(x).log(x)


def sqrt(x):
    return _ops().sqrt(x) if isinstance(x, Tensor) else get_xp(x).sqrt(x)


def sin(x):
    return _ops().sin(x) if isinstance(x, Tensor) else get_xp(x).sin(x)


def cos(x):
    return _ops().cos(x) if isinstance(x, Tensor) else get_xp(x).cos(x)


def tanh(x):
    return _ops().tanh(x) if isinstance(x, Tensor) else get_xp(x).tanh(x)


def sign(x):
    return _ops().sign(x) if isinstance(x, Tensor) else get_xp(x).sign(x)


def abs(x):
    return _ops().abs(x) if isinstance(x, Tensor) else get_xp(x).abs(x)


def cosh(x):
    return _ops().cosh(x) if isinstance(x, Tensor) else get_xp(x).cosh(x)


def sinh(x):
    return _ops().sinh(x) if isinstance(x, Tensor) else get_xp(x).sinh(x)


def sigmoid(x):
    if isinstance(x, Tensor):
        return _ops().sigmoid(x)
    from retrograd.ops.elementwise import sigmoid_array

    return sigmoid_array(x)


def where(cond, x, y):
    """cond is always a boolean array (never differentiated)."""
    if isinstance(x, Tensor) or isinstance(y, Tensor):
        c = cond.data if isinstance(cond, Tensor) else cond
        return _ops().where(Tensor._make(c, False, None, 0), x, y)
    return get_xp(cond).where(cond, x, y)


def sum(x, axis=None, keepdims: bool = False):
    if isinstance(x, Tensor):
        return _ops().sum(x, axis, keepdims)
    return x.sum(axis=axis, keepdims=keepdims)


def reshape(x, shape):
    return _ops().reshape(x, shape) if isinstance(x, Tensor) else x.reshape(shape)


def transpose(x, axes):
    return _ops().permute(x, *axes) if isinstance(x, Tensor) else x.transpose(axes)


def swap_last(x):
    """Swap the last two axes."""
    if isinstance(x, Tensor):
        return _ops().transpose(x, -1, -2)
    return x.swapaxes(-1, -2)


def broadcast_to(x, shape):
    if isinstance(x, Tensor):
        return _ops().broadcast_to(x, shape)
    return get_xp(x).broadcast_to(x, shape)


def expand_dims(x, axes):
    if isinstance(x, Tensor):
        for a in sorted(axes):
            x = _ops().unsqueeze(x, a)
        return x
    return get_xp(x).expand_dims(x, axes)


def matmul(x, y):
    return x @ y


def zeros(shape, like):
    """Zeros of `like`'s dtype (a constant in graph mode)."""
    data = like.data if isinstance(like, Tensor) else like
    z = get_xp(data).zeros(shape, dtype=data.dtype)
    return Tensor._make(z, False, None, 0) if isinstance(like, Tensor) else z


def data(x):
    """The raw array of x (constants in a rule: masks, indices)."""
    return x.data if isinstance(x, Tensor) else x


def cast(x, dtype):
    if isinstance(x, Tensor):
        return _ops().cast(x, dtype)
    return x.astype(dtype, copy=False)


def pad_into(g, shape, index):
    """A zero array of `shape` with g scattered at `index` (the getitem rule)."""
    if isinstance(g, Tensor):
        return _ops().index_put_zeros(g, shape, index)
    out = get_xp(g).zeros(shape, dtype=g.dtype)
    get_xp(g).add.at(out, index, g)
    return out
