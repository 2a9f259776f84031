"""Shape ops: reshape/view, squeeze/unsqueeze, permute/transpose, expand/broadcast, repeat/tile,
flip/roll, cat/stack/split, pad, triangles and diagonals."""

from __future__ import annotations

from retrograd.autograd.function import Function
from retrograd.ops import dual
from retrograd.ops._util import canonical_dim
from retrograd.tensor import Tensor

__all__ = ["reshape", "view", "permute", "transpose", "swapaxes", "unsqueeze", "broadcast_to", "expand"]


def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


class Reshape(Function):
    """out = x viewed with a new shape;  gx = g reshaped back"""

    raw = True
    is_view = True

    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return dual.reshape(g, self.in_shape)


def reshape(x, *shape) -> Tensor:
    """x with a new shape (one dim may be -1)."""
    shape = _shape_arg(shape)
    if shape == x.data.shape:
        return x
    try:
        return Reshape.apply(x, shape=shape)
    except ValueError:
        raise RuntimeError(
            f"shape '{list(shape)}' is invalid for input of size {x.data.size}"
        ) from None


def view(x, *shape) -> Tensor:
    """Alias of reshape (arrays here are always viewable or copied)."""
    return reshape(x, *shape)


class Permute(Function):
    """out = x with axes permuted;  gx = g with the inverse permutation"""

    raw = True
    is_view = True

    def forward(self, x, axes):
        self.axes = axes
        return x.transpose(axes)

    def backward(self, g):
        inv = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inv[a] = i
        return dual.transpose(g, tuple(inv))


def permute(x, *dims) -> Tensor:
    """x with its dims reordered."""
    dims = _shape_arg(dims)
    nd = x.data.ndim
    if len(dims) != nd:
        raise RuntimeError(
            "permute(sparse_coo): number of dimensions in the tensor input does not match the "
            f"length of the desired ordering of dimensions i.e. input.dim() = {nd} is not equal to "
            f"len(dims) = {len(dims)}"
        )
    axes = tuple(canonical_dim(d, nd) for d in dims)
    if len(set(axes)) != nd:
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return Permute.apply(x, axes=axes)


def transpose(x, dim0: int, dim1: int) -> Tensor:
    """x with dims dim0 and dim1 swapped."""
    nd = x.data.ndim
    if nd == 0:
        canonical_dim(dim0, nd), canonical_dim(dim1, nd)
        return x
    a, b = canonical_dim(dim0, nd), canonical_dim(dim1, nd)
    axes = list(range(nd))
    axes[a], axes[b] = axes[b], axes[a]
    return Permute.apply(x, axes=tuple(axes))


swapaxes = transpose


def unsqueeze(x, dim: int) -> Tensor:
    """x with a new dim of size 1 at `dim`."""
    d = canonical_dim(dim, x.data.ndim + 1)
    shape = x.data.shape
    return Reshape.apply(x, shape=shape[:d] + (1,) + shape[d:])


class BroadcastTo(Function):
    """out = x broadcast to shape;  gx = g summed back (by the engine)"""

    raw = True
    is_view = True

    def forward(self, x, shape):
        from retrograd.backend import get_xp

        return get_xp(x).broadcast_to(x, shape)

    def backward(self, g):
        return g


def broadcast_to(x, shape) -> Tensor:
    """x broadcast to `shape` (a read-only view)."""
    shape = tuple(int(s) for s in shape)
    if shape == x.data.shape:
        return x
    try:
        return BroadcastTo.apply(x, shape=shape)
    except ValueError:
        raise RuntimeError(
            f"The expanded size of the tensor ({shape[-1]}) must match the existing size "
            f"({x.data.shape[-1] if x.data.ndim else 1}) at non-singleton dimension "
            f"{len(shape) - 1}.  Target sizes: {list(shape)}.  Tensor sizes: {list(x.data.shape)}"
        ) from None


def expand(x, *sizes) -> Tensor:
    """x broadcast to sizes, where -1 keeps a dim's size."""
    sizes = _shape_arg(sizes)
    lead = len(sizes) - x.data.ndim
    if lead < 0:
        raise RuntimeError(
            f"expand(torch.FloatTensor{{{list(x.data.shape)}}}, size={list(sizes)}): the number "
            "of sizes provided ({}) must be greater or equal to the number of dimensions in the "
            "tensor ({})".format(len(sizes), x.data.ndim)
        )
    shape = tuple(x.data.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return broadcast_to(x, shape)
