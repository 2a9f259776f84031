"""Indexing: getitem (basic and advanced), setitem, index_select, gather/scatter, masked_fill,
take_along_dim, one_hot.

Every selecting op is `getitem` with an index tuple (gather is x[arange, ..., index, ...]), so one
gradient rule serves them all: zeros with g written at the index, accumulated only where integer
arrays can repeat a position. Its rule in a differentiable backward is `IndexPutZeros`, whose own
rule is getitem again.
"""

from __future__ import annotations

import re
from numbers import Integral

from retrograd import backend
from retrograd.autograd.forward_ad import replay
from retrograd.autograd.function import Function
from retrograd.autograd.grad_mode import _state
from retrograd.backend import get_xp
from retrograd.ops._util import canonical_dim
from retrograd.tensor import Tensor

__all__ = [
    "getitem",
    "setitem",
    "index_put_zeros",
    "index_select",
    "gather",
    "scatter",
    "scatter_add",
    "masked_fill",
    "take_along_dim",
    "one_hot",
]


# -- index normalization -------------------------------------------------------------------------
def _normalize(index, xp):
    """The index as a tuple of ints, slices, None, Ellipsis and arrays (Tensors and lists become
    arrays); a basic index gets a trailing Ellipsis so NumPy returns a view, never a scalar."""
    items = index if isinstance(index, tuple) else (index,)
    out = []
    for i in items:
        if isinstance(i, Tensor):
            i = i.data
        elif isinstance(i, list):
            i = xp.asarray([v.item() if isinstance(v, Tensor) else v for v in i])
            if i.size == 0:  # x[[]] selects nothing, as in PyTorch
                i = i.astype(backend.int64)
        if hasattr(i, "dtype") and i.dtype.kind not in "biu":
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        out.append(i)
    if _is_basic(out) and not any(i is Ellipsis for i in out):
        out.append(Ellipsis)
    return tuple(out)


def _is_int(i) -> bool:
    return isinstance(i, Integral) and not isinstance(i, bool)


def _is_basic(items) -> bool:
    return all(i is None or i is Ellipsis or isinstance(i, slice) or _is_int(i) for i in items)


def _accumulates(index) -> bool:
    """Integer arrays can name a position twice: their gradient must add, not assign."""
    return any(hasattr(i, "dtype") and i.dtype.kind in "iu" and not _is_int(i) for i in index)


_NUMPY_ERRORS = [
    (
        r"index (-?\d+) is out of bounds for axis (\d+) with size (\d+)",
        "index {0} is out of bounds for dimension {1} with size {2}",
    ),
    (
        r"too many indices for array: array is (\d+)-dimensional",
        "too many indices for tensor of dimension {0}",
    ),
]


def _index_error(e: Exception, shape: tuple, index: tuple) -> IndexError:
    """NumPy's IndexError reworded as PyTorch's."""
    msg = str(e)
    if msg.startswith("boolean index did not match"):
        return IndexError(_mask_mismatch(shape, index))
    for pattern, torch_msg in _NUMPY_ERRORS:
        m = re.match(pattern, msg)
        if m:
            return IndexError(torch_msg.format(*m.groups()))
    return IndexError(msg)


def _mask_mismatch(shape: tuple, index: tuple) -> str:
    """PyTorch's message for the first boolean mask whose shape differs from the dims it covers."""
    used = sum(getattr(i, "ndim", 1) if i is not None and i is not Ellipsis else 0 for i in index)
    pos = 0
    for i in index:
        if i is Ellipsis:
            pos += len(shape) - used
        elif getattr(i, "dtype", None) is not None and i.dtype.kind == "b":
            for j, n in enumerate(i.shape):
                if pos + j >= len(shape) or shape[pos + j] != n:
                    return (
                        f"The shape of the mask {list(i.shape)} at index {j} does not match the "
                        f"shape of the indexed tensor {list(shape)} at index {pos + j}"
                    )
            pos += i.ndim
        elif i is not None:
            pos += 1
    return "boolean index did not match the indexed tensor"


def _put(g, shape, index, accumulate: bool):
    """zeros(shape) with g written (accumulate=False) or added (True) at index."""
    if isinstance(g, Tensor):
        return IndexPutZeros.apply(g, shape=shape, index=index, accumulate=accumulate)
    xp = get_xp(g)
    out = xp.zeros(shape, dtype=g.dtype)
    if accumulate:
        xp.add.at(out, index, g)
    else:
        out[index] = g
    return out


def _zero_at(g, index):
    """g with the positions at index set to zero (a constant mask when g is a Tensor)."""
    if isinstance(g, Tensor):
        keep = get_xp(g.data).ones(g.shape, dtype=g.dtype)
        keep[index] = 0
        return g * Tensor._make(keep, False, None, 0)
    out = get_xp(g).array(g)  # a copy, and an array even if g is a NumPy scalar
    out[index] = 0
    return out


# -- getitem -------------------------------------------------------------------------------------
class GetItem(Function):
    """out = x[index];  gx = zeros with g placed at index (added where integer arrays repeat)"""

    raw = True

    def forward(self, x, index, accumulate):
        self.in_shape, self.index, self.accumulate = x.shape, index, accumulate
        if not self.is_view:  # PyTorch's IndexBackward saves the indices: freed by a backward
            self.save()
            out = x[index]
            if not out.flags.c_contiguous:  # NumPy lays a gather of a broadcast array out oddly;
                out = out.copy()  # PyTorch's is a fresh C-contiguous tensor (it can be viewed)
            return out
        return x[index]

    def backward(self, g):
        return _put(g, self.in_shape, self.index, self.accumulate)

    def jvp(self, *tangents):
        return replay(self, *tangents)  # linear in all its inputs


class GetItemView(GetItem):
    """out = x[basic index] (a view);  gx = zeros with g placed at index"""

    is_view = True


def getitem(x, index) -> Tensor:
    """x[index]: ints, slices, Ellipsis, None, integer arrays and boolean masks."""
    index = _normalize(index, get_xp(x.data))
    try:
        if _is_basic(index):
            out = GetItemView.apply(x, index=index, accumulate=False)
            out._version = x._version  # a view shares its base's counter, recorded or not
            return out
        return GetItem.apply(x, index=index, accumulate=_accumulates(index))
    except IndexError as e:
        raise _index_error(e, x.data.shape, index) from None


class IndexPutZeros(Function):
    """out = zeros(shape) with g placed (or added) at index;  gg = out_grad[index]"""

    raw = True

    def forward(self, g, shape, index, accumulate):
        self.index = index
        return _put(g, shape, index, accumulate)

    def backward(self, gg):
        return gg[self.index]

    def jvp(self, *tangents):
        return replay(self, *tangents)  # linear in all its inputs


def index_put_zeros(g, shape, index) -> Tensor:
    """A zero tensor of `shape` with g accumulated at `index` (the rule of getitem)."""
    index = _normalize(index, get_xp(g.data))
    return IndexPutZeros.apply(g, shape=tuple(shape), index=index, accumulate=_accumulates(index))


# -- setitem -------------------------------------------------------------------------------------
class SetItem(Function):
    """out = x with out[index] = v;  gx = g zeroed at index,  gv = g[index]"""

    raw = True

    def forward(self, x, v, index):
        self.index, self.v_shape = index, v.shape
        self.all = _selects_all(index, x.shape)  # x is overwritten: gx is a constant zero
        self.save()  # PyTorch's IndexPutBackward saves the indices: freed by a backward
        out = get_xp(x).array(x)  # a copy, and an array even if x is a NumPy scalar
        out[index] = v
        return out

    def backward(self, g):
        need = self.needs_input_grad
        gx = None
        if need[0] and self.all:  # PyTorch's FillBackward/CopyBackwards: zeros, no graph
            if isinstance(g, Tensor):
                gx = Tensor._make(get_xp(g.data).zeros(g.shape, g.dtype), False, None, 0)
            else:
                gx = get_xp(g).zeros(g.shape, g.dtype)
        elif need[0]:
            gx = _zero_at(g, self.index)
        gv = None
        if need[1]:
            gv = g[self.index]
            extra = len(self.v_shape) - gv.ndim
            if extra > 0:  # v may carry leading 1-dims beyond x[index]'s (PyTorch allows it)
                gv = gv.reshape((1,) * extra + tuple(gv.shape))
        return gx, gv

    def jvp(self, *tangents):
        return replay(self, *tangents)  # linear in all its inputs


def _selects_all(index, shape) -> bool:
    """Whether a normalized index is only Ellipsis and full slices: PyTorch then writes into x
    itself (copy_ or fill_, no view of it)."""
    if not all(i is Ellipsis or isinstance(i, slice) for i in index):
        return False
    k = next((j for j, i in enumerate(index) if i is Ellipsis), len(index))
    before, after = index[:k], index[k + 1 :]
    dims = list(zip(before, shape)) + list(zip(after, shape[len(shape) - len(after) :]))
    return all(sl.indices(n) == (0, n, 1) for sl, n in dims)


def setitem(x, index, value, overlap_ok: bool = False, whole: bool = False) -> None:
    """x[index] = value in place (value: scalar, array or Tensor, broadcast to x[index]).
    overlap_ok: allowed where elements of x[index] share memory (fill_, see check_writable).
    whole: x.copy_ or x.fill_ (index Ellipsis), whose node, as PyTorch's CopyBackwards and
    FillBackward, saves nothing (a second backward through it works)."""
    from retrograd.ops.mutation import check_writable, inplace, written

    xp = get_xp(x.data)
    index = _normalize(index, xp)
    if isinstance(value, Tensor):
        if value.device != x.device:
            value = value.to(x.device)
    elif not isinstance(value, (int, float, bool)):  # arrays, lists and NumPy scalars
        value = xp.asarray(value)
    try:
        if (
            _state.enabled
            and (x._requires_grad or isinstance(value, Tensor) and value._requires_grad)
        ) or (
            _state.forward_ad
            and (
                x._fw_tangent is not None
                or isinstance(value, Tensor)
                and value._fw_tangent is not None
            )
        ):
            if isinstance(value, Tensor):
                v = value.to(x.dtype)
            else:
                v = Tensor._make(xp.asarray(value).astype(x.dtype, copy=False), False, None, 0)
            region = index if _is_basic(index) else None  # an advanced index: all of x
            result = SetItem.apply(x, v, index=index)
            if (whole or _selects_all(index, x.data.shape)) and result.grad_fn is not None:
                result.grad_fn._saved = None
            inplace(x, result, region, overlap_ok)
            return
        check_writable(x, index if _is_basic(index) else None, overlap_ok)
        x.data[index] = value.data if isinstance(value, Tensor) else value
        x._version[0] += 1
        written(x)
    except IndexError as e:
        raise _index_error(e, x.data.shape, index) from None
    except ValueError as e:
        if "broadcast" not in str(e):
            raise
        raise RuntimeError(
            f"shape mismatch: value tensor of shape {list(getattr(value, 'shape', ()))} cannot be "
            f"broadcast to indexing result of shape {list(x.data[index].shape)}"
        ) from None


# -- index_select, gather, take_along_dim --------------------------------------------------------
def _check_index_dtype(index: Tensor, op: str) -> None:
    if index.data.dtype.kind not in "iu":
        raise RuntimeError(f"{op}(): Expected dtype int32/int64 for index")


def _check_bounds(idx, size: int, dim: int, allow_negative: bool = False) -> None:
    """PyTorch's range check (NumPy would wrap negative indices silently)."""
    if idx.size == 0:
        return
    lo, hi = int(idx.min()), int(idx.max())
    low = -size if allow_negative else 0
    if lo < low or hi >= size:
        bad = lo if lo < low else hi
        raise RuntimeError(f"index {bad} is out of bounds for dimension {dim} with size {size}")


def _along(idx, dim: int, shape: tuple) -> tuple:
    """The advanced index x[i0, .., idx[i], .., in] over positions i of `shape` (gather's)."""
    xp = get_xp(idx)
    nd = len(shape)
    return tuple(
        idx if a == dim else xp.arange(n).reshape((n,) + (1,) * (nd - 1 - a))
        for a, n in enumerate(shape)
    )


def index_select(x, dim: int, index) -> Tensor:
    """The entries of x at positions `index` (a vector) along dim."""
    d = canonical_dim(dim, x.data.ndim)
    idx = index.data if isinstance(index, Tensor) else get_xp(x.data).asarray(index)
    if idx.dtype.kind not in "iu":
        raise RuntimeError("index_select(): Expected dtype int32 or int64 for index")
    if idx.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    size = x.data.shape[d] if x.data.ndim else 1
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= size):
        raise IndexError("index out of range in self")
    if x.data.ndim == 0:
        if idx.size != 1:
            raise RuntimeError(
                f"index_select(): Index to scalar can have only 1 value, got {idx.size} value(s)"
            )
        return getitem(x, ())
    return getitem(x, (slice(None),) * d + (idx.reshape(-1),))


def gather(x, dim: int, index) -> Tensor:
    """out[i][j] = x[index[i][j]][j] (dim=0): values picked along dim at index's positions."""
    from retrograd.ops.movement import reshape

    d = canonical_dim(dim, x.data.ndim)
    _check_index_dtype(index, "gather")
    idx, shape = index.data, x.data.shape
    if x.data.ndim <= 1 and idx.ndim <= 1:  # 0-d and 1-d tensors mix, as in PyTorch
        _check_bounds(idx, x.data.size, 0)
        return reshape(getitem(reshape(x, -1), (idx.reshape(-1),)), idx.shape)
    if idx.ndim != x.data.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    for a in range(idx.ndim):
        if a != d and idx.shape[a] > shape[a]:
            raise RuntimeError(
                f"Size does not match at dimension {a} expected index {list(idx.shape)} to be no "
                f"larger than self {list(shape)} apart from dimension {d}"
            )
    _check_bounds(idx, shape[d], d)
    return getitem(x, _along(idx, d, idx.shape))


def take_along_dim(x, indices, dim: int | None = None) -> Tensor:
    """Values of x at `indices` along dim, x and indices broadcast (dim=None: x flattened)."""
    from retrograd.ops.movement import reshape

    idx = indices.data
    if idx.dtype != backend.int64:
        raise RuntimeError(
            f"torch.take_along_dim(): dtype of indices should be Long but got {_torch_name(idx)}"
        )
    if dim is None:
        _check_bounds(idx, x.data.size, 0)
        return getitem(reshape(x, -1), (idx.reshape(-1),))
    nd = x.data.ndim
    d = canonical_dim(dim, nd)
    if idx.ndim != nd:
        raise RuntimeError(
            "torch.take_along_dim(): input and indices should have the same number of dimensions, "
            f"but got {nd} dimensions for input, and {idx.ndim} dimensions for indices"
        )
    xp = get_xp(idx)
    index = []
    for a, (n, m) in enumerate(zip(x.data.shape, idx.shape)):
        if a == d:
            index.append(idx)
        elif n != m and n != 1 and m != 1:
            raise RuntimeError(
                f"The size of tensor a ({n}) must match the size of tensor b ({m}) at "
                f"non-singleton dimension {a}"
            )
        else:  # a size-1 dim of x broadcasts by repeating position 0
            index.append(xp.arange(n).reshape((n,) + (1,) * (nd - 1 - a)) if n != 1 else 0)
    _check_bounds(idx, x.data.shape[d], d, allow_negative=True)
    # broadcast the index arrays to the output's shape (ints alone would drop the dim)
    out_shape = tuple(
        m if a == d else max(n, m) for a, (n, m) in enumerate(zip(x.data.shape, idx.shape))
    )
    index = tuple(xp.broadcast_to(xp.asarray(i), out_shape) for i in index)
    return getitem(x, index)


def _torch_name(a) -> str:
    return {"int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte"}.get(
        str(a.dtype), str(a.dtype)
    )


# -- scatter, scatter_add ------------------------------------------------------------------------
class Scatter(Function):
    """out = x with out[idx] = src;  gx = g zeroed at idx,  gsrc = g[idx]"""

    raw = True

    def forward(self, x, src, idx):
        self.idx = idx
        out = x.copy()
        out[idx] = src
        return out

    def backward(self, g):
        need = self.needs_input_grad
        return (_zero_at(g, self.idx) if need[0] else None), (g[self.idx] if need[1] else None)

    def jvp(self, *tangents):
        return replay(self, *tangents)  # linear in all its inputs


class ScatterAdd(Function):
    """out = x with src added at idx (repeats accumulate);  gx = g,  gsrc = g[idx]"""

    raw = True

    def forward(self, x, src, idx):
        self.idx = idx
        out = x.copy()
        get_xp(x).add.at(out, idx, src)
        return out

    def backward(self, g):
        return g, (g[self.idx] if self.needs_input_grad[1] else None)

    def jvp(self, *tangents):
        return replay(self, *tangents)  # linear in all its inputs


def _scatter_args(op: str, x, dim: int, index, src):
    """Checked (index tuple, src cut to index's shape) for scatter and scatter_add."""
    d = canonical_dim(dim, x.data.ndim)
    _check_index_dtype(index, op)
    idx, shape = index.data, x.data.shape
    if x.data.ndim == 0:  # a 0-d tensor scatters like a 1-element vector
        idx, shape = idx.reshape(-1), (1,)
    elif idx.ndim != x.data.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    if isinstance(src, Tensor):
        if src.data.dtype != x.data.dtype:
            raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
        sshape = src.data.shape if x.data.ndim else (src.data.size,)
        if len(sshape) != idx.ndim:
            raise RuntimeError("Index tensor must have the same number of dimensions as src tensor")
        too_big = any(m > s for m, s in zip(idx.shape, sshape)) or any(
            m > n for a, (m, n) in enumerate(zip(idx.shape, shape)) if a != d
        )
        if too_big:
            raise RuntimeError(
                f"Expected index {list(index.shape)} to be no larger than self {list(x.shape)} "
                f"apart from dimension {d} and to be no larger size than src {list(src.shape)}"
            )
        if x.data.ndim == 0:
            from retrograd.ops.movement import reshape

            src = reshape(src, -1)
        if src.data.shape != idx.shape:
            src = getitem(src, tuple(slice(0, m) for m in idx.shape))
    else:
        xp = get_xp(x.data)
        src = Tensor._make(xp.full(idx.shape, src, dtype=x.data.dtype), False, None, 0)
    _check_bounds(idx, shape[d] if x.data.ndim else 1, d)
    return _along(idx, d if x.data.ndim else 0, idx.shape), src


def scatter(x, dim: int, index, src=None, *, value=None) -> Tensor:
    """A copy of x with src (a Tensor, or the scalar value) written at index along dim."""
    from retrograd.ops.movement import reshape

    idx, src = _scatter_args("scatter", x, dim, index, value if src is None else src)
    if x.data.ndim == 0:
        return reshape(Scatter.apply(reshape(x, 1), src, idx=idx), ())
    return Scatter.apply(x, src, idx=idx)


def scatter_add(x, dim: int, index, src) -> Tensor:
    """A copy of x with src added at index along dim (repeated positions accumulate)."""
    from retrograd.ops.movement import reshape

    if not isinstance(src, Tensor):
        raise TypeError(
            f"scatter_add(): argument 'src' (position 4) must be Tensor, not {type(src).__name__}"
        )
    idx, src = _scatter_args("scatter", x, dim, index, src)
    if x.data.ndim == 0:
        return reshape(ScatterAdd.apply(reshape(x, 1), src, idx=idx), ())
    return ScatterAdd.apply(x, src, idx=idx)


# -- masked_fill, one_hot ------------------------------------------------------------------------
class MaskedFill(Function):
    """out = where(mask, value, x);  gx = g where not mask,  gvalue = sum of g where mask"""

    raw = True

    def forward(self, x, value, mask):
        xp = get_xp(x)
        out = xp.where(mask, value, x)
        self.mask = xp.broadcast_to(mask, out.shape)
        return out

    def backward(self, g):
        need = self.needs_input_grad
        return (_zero_at(g, self.mask) if need[0] else None), (g[self.mask] if need[1] else None)

    def jvp(self, *tangents):
        return replay(self, *tangents)  # linear in all its inputs


def masked_fill(x, mask, value) -> Tensor:
    """x with value (a scalar or 0-d Tensor) where mask is True; mask broadcasts."""
    from retrograd.ops._util import check_broadcast

    m = mask.data if isinstance(mask, Tensor) else get_xp(x.data).asarray(mask)
    if m.dtype != backend.bool_:
        raise RuntimeError(
            "masked_fill_ only supports boolean masks, but got mask with dtype "
            + {"int64": "long int", "float32": "float", "float64": "double"}.get(
                str(m.dtype), str(m.dtype)
            )
        )
    if isinstance(value, Tensor):
        if value.data.ndim != 0:
            raise RuntimeError(
                "masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                f"{value.data.ndim} dimension(s)."
            )
        value = value.to(x.dtype)
    else:
        value = Tensor._make(get_xp(x.data).asarray(value).astype(x.dtype), False, None, 0)
    check_broadcast(Tensor._make(m, False, None, 0), x)
    return MaskedFill.apply(x, value, mask=m)


def one_hot(tensor, num_classes: int = -1) -> Tensor:
    """Classes (int64) as one-hot rows: shape tensor.shape + (num_classes,), int64."""
    idx = tensor.data
    if idx.dtype != backend.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        if idx.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(idx.max()) + 1
    if idx.size and int(idx.min()) < 0:
        raise RuntimeError("Class values must be non-negative.")
    if idx.size and int(idx.max()) >= num_classes or num_classes < 0:
        raise RuntimeError("Class values must be smaller than num_classes.")
    xp = get_xp(idx)
    out = (idx[..., None] == xp.arange(num_classes)).astype(backend.int64)
    return Tensor._make(out, False, None, 0)
