"""Shape ops: reshape/view, squeeze/unsqueeze, permute/transpose, expand/broadcast, repeat/tile,
flip/roll, cat/stack/split, pad, triangles and diagonals.

Ops that PyTorch implements as views (reshape when possible, permute, squeeze, expand, narrow,
split, unbind, diagonal, ...) return NumPy views here and share the input's version counter, so an
in-place change through either tensor is seen by gradient rules that saved the other. Ops that
PyTorch implements as copies (flip, roll, repeat, cat, pad, triu, ...) return fresh arrays.

Each linear op's gradient rule is another linear op (slice <-> embed, take <-> scatter-add,
diagonal <-> diagonal-embed, flip <-> flip), written as a Function in both directions, so rules
work under create_graph=True.
"""

from __future__ import annotations

import math

from retrograd.autograd.forward_ad import replay
from retrograd.autograd.function import Function
from retrograd.backend import get_xp
from retrograd.ops import dual
from retrograd.ops._util import as_tensor, canonical_dim, cast, result_dtype
from retrograd.tensor import Tensor

__all__ = [
    "reshape",
    "view",
    "flatten",
    "unflatten",
    "squeeze",
    "unsqueeze",
    "permute",
    "transpose",
    "swapaxes",
    "t",
    "movedim",
    "moveaxis",
    "broadcast_to",
    "expand",
    "repeat",
    "tile",
    "flip",
    "roll",
    "cat",
    "concat",
    "concatenate",
    "stack",
    "split",
    "chunk",
    "unbind",
    "narrow",
    "pad",
    "triu",
    "tril",
    "diagonal",
    "atleast_1d",
    "atleast_2d",
    "atleast_3d",
]


# -- helpers -------------------------------------------------------------------------------------
def _shape_arg(shape) -> tuple:
    """(2, 3), ((2, 3),) and ([2, 3],) all mean the shape (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _int_or_tuple(value) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value)
    return (int(value),)


def _share_version(out: Tensor, x: Tensor) -> Tensor:
    """out is a view of x: one version counter for both (also when no graph was recorded)."""
    out._version = x._version
    return out


def _shares_memory(out, x) -> bool:
    return out.size == 0 or bool(get_xp(x).may_share_memory(out, x))


def _canonical_dims(dim, ndim: int):
    """None (all dims) or a sorted tuple of non-negative dims; rejects repeats (PyTorch's words)."""
    if dim is None:
        return None
    dims = tuple(canonical_dim(int(d), ndim) for d in _int_or_tuple(dim))
    seen = set()
    for d in dims:
        if d in seen:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
        seen.add(d)
    return tuple(sorted(dims))


def _numel(shape) -> int:
    return math.prod(shape)


def _torch_dtype(dtype) -> str:
    return {
        "float32": "Float",
        "float64": "Double",
        "float16": "Half",
        "int64": "Long",
        "int32": "Int",
        "int16": "Short",
        "int8": "Char",
        "uint8": "Byte",
        "bool": "Bool",
    }.get(str(dtype), str(dtype))


# -- slicing and its transpose (embedding) ------------------------------------------------------
def _embed_array(x, shape, index, value):
    out = get_xp(x).full(shape, value, dtype=x.dtype)
    out[index] = x
    return out


class Slice(Function):
    """out = x[index] (ints and slices: a view);  gx = zeros with g placed at index"""

    raw = True
    is_view = True

    def forward(self, x, index):
        self.in_shape, self.index = x.shape, index
        return x[index]

    def backward(self, g):
        return _embed(g, self.in_shape, self.index)

    def jvp(self, t):
        return replay(self, t)


class Embed(Function):
    """out = full(shape, value) with x placed at index;  gx = g[index]"""

    raw = True

    def forward(self, x, shape, index, value=0):
        self.index = index
        return _embed_array(x, shape, index, value)

    def backward(self, g):
        return _slice(g, self.index)

    def jvp(self, t):
        return replay(self, t, value=0)  # the fill is a constant


def _slice(a, index):
    """a[index] for a basic index, differentiable when a is a Tensor."""
    return Slice.apply(a, index=index) if isinstance(a, Tensor) else a[index]


def _embed(a, shape, index, value=0):
    """A `shape` array filled with value, a placed at index (differentiable in a)."""
    if isinstance(a, Tensor):
        return Embed.apply(a, shape=tuple(shape), index=index, value=value)
    return _embed_array(a, shape, index, value)


class UnbindSlice(Slice):
    """One output of unbind: a view that PyTorch does not let an in-place op write through
    (while grad mode is on and the write needs a gradient), nor use after another write into
    its base (see mutation.MULTI_VIEW_MSG)."""

    multi_output = "Unbind"


class SplitSlice(Slice):
    """One output of split or chunk (the same rules as UnbindSlice)."""

    multi_output = "Split"


def _dim_index(dim: int, item) -> tuple:
    return (slice(None),) * dim + (item,)


def _view_slice(x: Tensor, index, cls=Slice) -> Tensor:
    return _share_version(cls.apply(x, index=index), x)


# -- reshape family ------------------------------------------------------------------------------
class Reshape(Function):
    """out = x viewed with a new shape;  gx = g reshaped back"""

    raw = True
    is_view = True

    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return dual.reshape(g, self.in_shape)

    def jvp(self, t):
        return replay(self, t)


def _infer_shape(shape: tuple, numel: int) -> tuple:
    """Resolve one -1 in shape against numel, with PyTorch's errors."""
    infer = None
    known = 1
    for i, s in enumerate(shape):
        if s == -1:
            if infer is not None:
                raise RuntimeError("only one dimension can be inferred")
            infer = i
        elif s < 0:
            raise RuntimeError(f"invalid shape dimension {s} at index {i} of shape {list(shape)}")
        else:
            known *= s
    if infer is None:
        if known != numel:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        return shape
    if known == 0:
        if numel == 0:
            raise RuntimeError(
                f"cannot reshape tensor of 0 elements into shape {list(shape)} because the "
                "unspecified dimension size -1 can be any value and is ambiguous"
            )
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    if numel % known:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape[:infer] + (numel // known,) + shape[infer + 1 :]


def _reshape(x: Tensor, shape: tuple) -> Tensor:
    """Reshape to a resolved shape: a view when the strides allow it, else a copy."""
    out = Reshape.apply(x, shape=shape)
    if x.data.flags.c_contiguous or _shares_memory(out.data, x.data):
        return _share_version(out, x)
    out._version = [0]  # NumPy copied (non-viewable strides): a new tensor, as PyTorch's reshape
    out._view_base, out._view_chain = None, ()
    return out


def reshape(x, *shape) -> Tensor:
    """x with a new shape (one dim may be -1); a view when the strides allow it, else a copy."""
    return _reshape(x, _infer_shape(_shape_arg(shape), x.data.size))


def view(x, *shape) -> Tensor:
    """x viewed with a new shape (one dim may be -1); raises where only a copy would do."""
    shape = _infer_shape(_shape_arg(shape), x.data.size)
    out = Reshape.apply(x, shape=shape)
    if not (x.data.flags.c_contiguous or _shares_memory(out.data, x.data)):
        raise RuntimeError(
            "view size is not compatible with input tensor's size and stride (at least one "
            "dimension spans across two contiguous subspaces). Use .reshape(...) instead."
        )
    return _share_version(out, x)


def flatten(x, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """x with dims start_dim..end_dim merged into one (a 0-d tensor becomes 1-d)."""
    shape = x.data.shape
    nd = len(shape)
    start, end = canonical_dim(start_dim, nd), canonical_dim(end_dim, nd)
    if start > end:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if nd == 0:
        return _reshape(x, (1,))
    return _reshape(x, shape[:start] + (_numel(shape[start : end + 1]),) + shape[end + 1 :])


def unflatten(x, dim: int, sizes) -> Tensor:
    """x with dim split into `sizes` (one may be -1)."""
    shape = x.data.shape
    d = canonical_dim(dim, len(shape))
    sizes = tuple(int(s) for s in sizes)
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    size = shape[d] if shape else 1
    try:
        sizes = _infer_shape(sizes, size)
    except RuntimeError:
        if sizes.count(-1) > 1:
            raise RuntimeError("only one dimension can be inferred") from None
        raise RuntimeError(
            f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim {d} "
            f"({size}) in the input tensor"
        ) from None
    return _reshape(x, shape[:d] + sizes + shape[d + 1 :])


def squeeze(x, dim=None) -> Tensor:
    """x without size-1 dims (all, or those in dim; other sizes are left alone)."""
    shape = x.data.shape
    dims = _canonical_dims(dim, len(shape))
    if dims is None:
        dims = tuple(i for i, s in enumerate(shape) if s == 1)
    drop = {d for d in dims if d < len(shape) and shape[d] == 1}
    return _reshape(x, tuple(s for i, s in enumerate(shape) if i not in drop))


def unsqueeze(x, dim: int) -> Tensor:
    """x with a new dim of size 1 at `dim`."""
    d = canonical_dim(dim, x.data.ndim + 1)
    shape = x.data.shape
    return _reshape(x, shape[:d] + (1,) + shape[d:])


def atleast_1d(*tensors):
    """Each tensor with at least 1 dim (a 0-d tensor becomes shape (1,))."""
    return _atleast(tensors, 1)


def atleast_2d(*tensors):
    """Each tensor with at least 2 dims (new dims lead)."""
    return _atleast(tensors, 2)


def atleast_3d(*tensors):
    """Each tensor with at least 3 dims ((n,) -> (1, n, 1), (m, n) -> (m, n, 1))."""
    return _atleast(tensors, 3)


def _atleast(tensors, k: int):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        return tuple(_atleast_one(x, k) for x in tensors[0])
    out = tuple(_atleast_one(x, k) for x in tensors)
    return out[0] if len(out) == 1 else out


def _atleast_one(x, k: int) -> Tensor:
    shape = x.data.shape
    if len(shape) >= k:
        return x
    if k == 3 and len(shape) == 1:
        return _reshape(x, (1, shape[0], 1))
    if k == 3 and len(shape) == 2:
        return _reshape(x, shape + (1,))
    return _reshape(x, (1,) * (k - len(shape)) + shape)


# -- permutations --------------------------------------------------------------------------------
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

    def jvp(self, t):
        return replay(self, t)


def _permute(x: Tensor, axes: tuple) -> Tensor:
    return _share_version(Permute.apply(x, axes=axes), x)


def permute(x, *dims) -> Tensor:
    """x with its dims reordered (a view)."""
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
    return _permute(x, axes)


def transpose(x, dim0: int, dim1: int) -> Tensor:
    """x with dims dim0 and dim1 swapped (a view)."""
    nd = x.data.ndim
    a, b = canonical_dim(dim0, nd), canonical_dim(dim1, nd)
    axes = list(range(nd))
    if nd:
        axes[a], axes[b] = axes[b], axes[a]
    return _permute(x, tuple(axes))


swapaxes = transpose


def t(x) -> Tensor:
    """The transpose of a matrix (0-d and 1-d tensors are returned as they are, as views)."""
    nd = x.data.ndim
    if nd > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {nd}D")
    return _permute(x, tuple(range(nd))[::-1])


def movedim(x, source, destination) -> Tensor:
    """x with the dims in `source` moved to the positions in `destination` (a view)."""
    nd = x.data.ndim
    src, dst = _int_or_tuple(source), _int_or_tuple(destination)
    if len(src) != len(dst):
        raise RuntimeError(
            f"movedim: Invalid source or destination dims: source ({list(src)} dims) should "
            f"contain the same number of dims as destination ({list(dst)} dims)"
        )
    src = tuple(canonical_dim(d, nd) for d in src)
    dst = tuple(canonical_dim(d, nd) for d in dst)
    if len(set(src)) != len(src):
        raise RuntimeError(f"movedim: repeated dim in `source` ({list(_int_or_tuple(source))})")
    if len(set(dst)) != len(dst):
        raise RuntimeError(
            f"movedim: repeated dim in `destination` ({list(_int_or_tuple(destination))})"
        )
    if nd == 0:
        return _permute(x, ())
    order = [None] * nd
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(i for i in range(nd) if i not in set(src))
    axes = tuple(o if o is not None else next(rest) for o in order)
    return _permute(x, axes)


moveaxis = movedim


# -- broadcasting and repetition -----------------------------------------------------------------
class BroadcastTo(Function):
    """out = x broadcast to shape (a view);  gx = g summed back (by the engine)"""

    raw = True
    is_view = True

    def forward(self, x, shape):
        # writable, as in PyTorch (NumPy flags it read-only): mutation.check_writable refuses
        # the writes in which elements that share memory would get different values
        out = get_xp(x).broadcast_to(x, shape)
        flags = out.flags
        if hasattr(flags, "writeable") and not flags.writeable and x.flags.writeable:
            flags.writeable = True
        return out

    def backward(self, g):
        return g

    def jvp(self, t):
        return replay(self, t)


def expand(x, *sizes) -> Tensor:
    """x broadcast to sizes, where -1 keeps a dim's size (a view)."""
    sizes = _shape_arg(sizes)
    in_shape = x.data.shape
    nd = len(in_shape)
    lead = len(sizes) - nd
    if lead < 0:
        raise RuntimeError(
            f"expand(torch.{_torch_dtype(x.data.dtype)}Tensor{{{list(in_shape)}}}, "
            f"size={list(sizes)}): the number of sizes provided ({len(sizes)}) must be greater or "
            f"equal to the number of dimensions in the tensor ({nd})"
        )
    shape = list(sizes)
    for i in range(len(sizes) - 1, -1, -1):
        s = sizes[i]
        if i < lead:
            if s < 0:
                raise RuntimeError(
                    f"The expanded size of the tensor ({s}) isn't allowed in a leading, "
                    f"non-existing dimension {i}"
                )
            continue
        have = in_shape[i - lead]
        if s == -1:
            shape[i] = have
        elif have != 1 and have != s:
            raise RuntimeError(
                f"The expanded size of the tensor ({s}) must match the existing size ({have}) at "
                f"non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: "
                f"{list(in_shape)}"
            )
        elif s < 0:
            raise RuntimeError(
                f"Trying to create tensor with negative dimension {s}: {list(sizes)}"
            )
    shape = tuple(shape)
    if _numel(shape) == x.data.size and all(s == 1 for s in shape[:lead]):
        return _reshape(x, shape)  # nothing repeats: a writable view, as in PyTorch
    return _share_version(BroadcastTo.apply(x, shape=shape), x)


def broadcast_to(x, shape) -> Tensor:
    """x broadcast to `shape` (a view; -1 keeps a dim's size)."""
    return expand(x, *tuple(shape))


def repeat(x, *sizes) -> Tensor:
    """x repeated `sizes[i]` times along each dim (new leading dims for extra sizes): a copy."""
    sizes = _shape_arg(sizes)
    shape = x.data.shape
    if len(sizes) < len(shape):
        raise RuntimeError(
            "Number of dimensions of repeat dims can not be smaller than number of dimensions of "
            "tensor"
        )
    shape = (1,) * (len(sizes) - len(shape)) + shape
    out_shape = tuple(r * s for r, s in zip(sizes, shape))
    for s in out_shape:
        if s < 0:
            raise RuntimeError(
                f"Trying to create tensor with negative dimension {s}: {list(out_shape)}"
            )
    # (s0, s1) -> (1, s0, 1, s1) -> broadcast (r0, s0, r1, s1) -> (r0*s0, r1*s1)
    inter = tuple(v for s in shape for v in (1, s))
    wide = tuple(v for r, s in zip(sizes, shape) for v in (r, s))
    out = reshape(broadcast_to(_reshape(x, inter), wide), out_shape)
    if out._version is x._version:  # every size was 1: still a new tensor
        from retrograd.ops.elementwise import clone

        out = clone(out)
    return out


def tile(x, *dims) -> Tensor:
    """x repeated dims[i] times along each dim; missing dims count as 1 (torch.tile)."""
    dims = _shape_arg(dims)
    nd = x.data.ndim
    if len(dims) < nd:
        dims = (1,) * (nd - len(dims)) + dims
    return repeat(x, *dims)


# -- flip and roll -------------------------------------------------------------------------------
class Flip(Function):
    """out = x reversed along dims (a copy);  gx = g reversed along dims"""

    raw = True

    def forward(self, x, dims):
        self.dims = dims
        return get_xp(x).flip(x, dims).copy()

    def backward(self, g):
        return (
            Flip.apply(g, dims=self.dims) if isinstance(g, Tensor) else get_xp(g).flip(g, self.dims)
        )

    def jvp(self, t):
        return replay(self, t)


def flip(x, *dims) -> Tensor:
    """x reversed along each of dims (a copy, as in PyTorch)."""
    dims = _shape_arg(dims)
    nd = x.data.ndim
    axes = _canonical_dims(dims, nd) or ()
    if nd == 0:
        axes = ()
    return Flip.apply(x, dims=axes)


class Roll(Function):
    """out = x rolled by shifts along dims (None: the flattened x);  gx = g rolled back"""

    raw = True

    def forward(self, x, shifts, dims):
        self.shifts, self.dims = shifts, dims
        return get_xp(x).roll(x, shifts, dims) if x.ndim else x.copy()

    def backward(self, g):
        back = tuple(-s for s in self.shifts) if self.dims is not None else -self.shifts
        if isinstance(g, Tensor):
            return Roll.apply(g, shifts=back, dims=self.dims)
        return get_xp(g).roll(g, back, self.dims) if g.ndim else g

    def jvp(self, t):
        return replay(self, t)


def roll(x, shifts, dims=None) -> Tensor:
    """x with elements shifted cyclically along dims (None: over the flattened tensor)."""
    shifts = _int_or_tuple(shifts)
    if not shifts:
        raise RuntimeError("`shifts` required")
    nd = x.data.ndim
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
        return Roll.apply(x, shifts=shifts[0], dims=None)
    dims = _int_or_tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(
            f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}"
        )
    if nd == 0:
        raise IndexError(f"Dimension specified as {dims[0]} but tensor has no dimensions")
    axes = tuple(canonical_dim(d, nd) for d in dims)
    return Roll.apply(x, shifts=shifts, dims=axes)


# -- joining -------------------------------------------------------------------------------------
def _as_tensors(tensors) -> list:
    return [as_tensor(t) for t in tensors]


def _promoted(tensors: list) -> list:
    """The tensors cast to one dtype (PyTorch's promotion: floats win over integers)."""
    rep = tensors[0]
    for x in tensors[1:]:
        if x.data.dtype != rep.data.dtype:
            dtype = result_dtype(rep, x)
            if x.data.dtype == dtype:
                rep = x
            elif rep.data.dtype != dtype:  # neither (int8 with uint8): a stand-in of that dtype
                rep = Tensor._make(get_xp(x.data).zeros((1,) * x.data.ndim, dtype), False, None, 0)
    dtype = rep.data.dtype
    return [x if x.data.dtype == dtype else cast(x, dtype) for x in tensors]


class Cat(Function):
    """out = concatenate(xs, dim);  gx_i = g sliced at x_i's span along dim"""

    raw = True

    def forward(self, *xs, dim, nd):
        self.dim = dim
        # PyTorch skips 1-d empty tensors next to tensors of more dims (legacy behaviour)
        self.sizes = [None if x.ndim != nd else x.shape[dim] for x in xs]
        return get_xp(xs[0]).concatenate([x for x in xs if x.ndim == nd], axis=dim)

    def backward(self, g):
        grads = []
        start = 0
        for size, need in zip(self.sizes, self.needs_input_grad):
            if size is None:  # a skipped 1-d empty tensor
                grads.append(None)
                continue
            span = _dim_index(self.dim, slice(start, start + size))
            grads.append(_slice(g, span) if need else None)
            start += size
        return tuple(grads)

    def jvp(self, *tangents):
        return replay(self, *tangents)


def cat(tensors, dim: int = 0) -> Tensor:
    """The tensors joined along an existing dim (shapes must match elsewhere)."""
    tensors = _as_tensors(tensors)
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    for i, x in enumerate(tensors):
        if x.data.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be concatenated")
    real = [(i, x) for i, x in enumerate(tensors) if x.data.shape != (0,)]
    if not real:
        real = list(enumerate(tensors))
    ref = real[0][1].data.shape
    nd = len(ref)
    d = canonical_dim(dim, nd)
    for i, x in real[1:]:
        shape = x.data.shape
        if len(shape) != nd:
            raise RuntimeError(
                f"Tensors must have same number of dimensions: got {nd} and {len(shape)}"
            )
        for k in range(nd):
            if k != d and shape[k] != ref[k]:
                raise RuntimeError(
                    f"Sizes of tensors must match except in dimension {d}. Expected size "
                    f"{ref[k]} but got size {shape[k]} for tensor number {i} in the list."
                )
    tensors = _promoted(tensors)
    return Cat.apply(*tensors, dim=d, nd=nd)


def concat(tensors, dim: int = 0) -> Tensor:
    """Alias of cat."""
    return cat(tensors, dim)


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Alias of cat (NumPy's argument name)."""
    return cat(tensors, axis)


class Stack(Function):
    """out = stack(xs, dim);  gx_i = g[..., i, ...] along dim"""

    raw = True

    def forward(self, *xs, dim):
        self.dim = dim
        return get_xp(xs[0]).stack(xs, axis=dim)

    def backward(self, g):
        need = self.needs_input_grad
        return tuple(_slice(g, _dim_index(self.dim, i)) if n else None for i, n in enumerate(need))

    def jvp(self, *tangents):
        return replay(self, *tangents)


def stack(tensors, dim: int = 0) -> Tensor:
    """The tensors (of one shape) joined along a new dim."""
    tensors = _as_tensors(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    ref = tensors[0].data.shape
    for i, x in enumerate(tensors[1:], 1):
        if x.data.shape != ref:
            raise RuntimeError(
                f"stack expects each tensor to be equal size, but got {list(ref)} at entry 0 and "
                f"{list(x.data.shape)} at entry {i}"
            )
    d = canonical_dim(dim, len(ref) + 1)
    return Stack.apply(*_promoted(tensors), dim=d)


# -- splitting (each piece is a view) ------------------------------------------------------------
def _pieces(x: Tensor, sizes, d: int) -> tuple:
    out = []
    start = 0
    for s in sizes:
        out.append(_view_slice(x, _dim_index(d, slice(start, start + s)), SplitSlice))
        start += s
    return tuple(out)


def split(x, split_size_or_sections, dim: int = 0) -> tuple:
    """x cut along dim into pieces of split_size (the last may be smaller) or of given sizes."""
    shape = x.data.shape
    if not shape:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    d = canonical_dim(dim, len(shape))
    n = shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes):
            raise RuntimeError(
                "split_with_sizes expects split_sizes have only non-negative entries, but got "
                f"split_sizes={sizes}"
            )
        if sum(sizes) != n:
            raise RuntimeError(
                f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size "
                f"at dimension {d}), but got split_sizes={sizes}"
            )
        return _pieces(x, sizes, d)
    size = int(split_size_or_sections)
    if size < 0:
        raise RuntimeError(f"split expects split_size be non-negative, but got split_size={size}")
    if size == 0 and n != 0:
        raise RuntimeError(
            f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}"
        )
    count = max(-(-n // size), 1) if size else 1
    sizes = [size] * (count - 1) + [n - size * (count - 1)]
    return _pieces(x, sizes, d)


def chunk(x, chunks: int, dim: int = 0) -> tuple:
    """x cut along dim into at most `chunks` pieces of ceil(size / chunks) (as torch.chunk)."""
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    shape = x.data.shape
    if not shape:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    d = canonical_dim(dim, len(shape))
    n = shape[d]
    size = -(-n // chunks)
    if n == 0:
        return _pieces(x, [0] * chunks, d)
    return split(x, size, d)


def unbind(x, dim: int = 0) -> tuple:
    """The slices of x along dim, each without that dim (views)."""
    shape = x.data.shape
    if not shape:
        raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
    d = canonical_dim(dim, len(shape))
    # a trailing Ellipsis: NumPy gives a 0-d view, not a scalar copy, for a 1-D x
    return tuple(
        _view_slice(x, _dim_index(d, i) + (Ellipsis,), UnbindSlice) for i in range(shape[d])
    )


def narrow(x, dim: int, start: int, length: int) -> Tensor:
    """x[..., start:start+length, ...] along dim (a view); a negative start counts from the end."""
    shape = x.data.shape
    if not shape:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = canonical_dim(dim, len(shape))
    n = shape[d]
    start, length = int(start), int(length)
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if not -n <= start <= n:
        raise IndexError(
            f"start out of range (expected to be in range of [{-n}, {n}], but got {start})"
        )
    if start < 0:
        start += n
    if start + length > n:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return _view_slice(x, _dim_index(d, slice(start, start + length)))


# -- padding -------------------------------------------------------------------------------------
def _scatter_edges(g, idx, lo: int, n: int, dim: int):
    """The transpose of take(x, idx, dim) where idx[lo:lo+n] == arange(n): edges add in."""
    xp = get_xp(g)
    out = g[_dim_index(dim, slice(lo, lo + n))].copy()
    m = g.shape[dim]
    if lo:
        xp.add.at(out, _dim_index(dim, idx[:lo]), g[_dim_index(dim, slice(0, lo))])
    if lo + n < m:
        xp.add.at(out, _dim_index(dim, idx[lo + n :]), g[_dim_index(dim, slice(lo + n, m))])
    return out


class PadAlong(Function):
    """out = take(x, idx, dim) (idx: edge indices around arange(n));  gx = edges added back"""

    raw = True

    def forward(self, x, idx, lo, dim):
        self.idx, self.lo, self.n, self.dim = idx, lo, x.shape[dim], dim
        return get_xp(x).take(x, idx, axis=dim)

    def backward(self, g):
        if isinstance(g, Tensor):
            return PadAlongGrad.apply(g, idx=self.idx, lo=self.lo, n=self.n, dim=self.dim)
        return _scatter_edges(g, self.idx, self.lo, self.n, self.dim)

    def jvp(self, t):
        return replay(self, t)


class PadAlongGrad(Function):
    """out = the rule of PadAlong (edges of x added into the centre);  gx = take(g, idx, dim)"""

    raw = True

    def forward(self, x, idx, lo, n, dim):
        self.idx, self.lo, self.dim = idx, lo, dim
        return _scatter_edges(x, idx, lo, n, dim)

    def backward(self, g):
        if isinstance(g, Tensor):
            return PadAlong.apply(g, idx=self.idx, lo=self.lo, dim=self.dim)
        return get_xp(g).take(g, self.idx, axis=self.dim)

    def jvp(self, t):
        return replay(self, t)


def _edge_index(xp, n: int, lo: int, hi: int, mode: str):
    j = xp.arange(-lo, n + hi)
    if mode == "reflect":
        j = xp.abs(j)
        return xp.where(j >= n, 2 * (n - 1) - j, j)
    if mode == "replicate":
        return xp.clip(j, 0, n - 1)
    return j % n  # circular


def pad(x, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """x padded as torch.nn.functional.pad: `pad` lists (left, right) pairs from the last dim
    backwards; negative pads crop; mode constant (value), reflect, replicate or circular."""
    pads = tuple(int(p) for p in pad)
    shape = x.data.shape
    nd = len(shape)
    if len(pads) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pads) // 2 > nd:
        raise RuntimeError(
            "Padding length should be less than or equal to two times the input dimension but "
            f"got padding length {len(pads)} and input of dimension {nd}"
        )
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if mode != "constant" and value is not None and value != 0:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    pairs = {nd - 1 - i: (pads[2 * i], pads[2 * i + 1]) for i in range(len(pads) // 2)}
    # negative pads crop first (a view), then positive pads grow what is left
    crop = tuple(
        slice(max(-pairs[d][0], 0), shape[d] - max(-pairs[d][1], 0)) if d in pairs else slice(None)
        for d in range(nd)
    )
    for d, (lo, hi) in pairs.items():
        if shape[d] + min(lo, 0) + min(hi, 0) < 0:
            raise RuntimeError("narrow(): length must be non-negative.")
    if any(min(lo, 0) or min(hi, 0) for lo, hi in pairs.values()):
        x = Slice.apply(x, index=crop)
    if mode == "constant":
        out_shape = tuple(
            x.data.shape[d] + max(pairs[d][0], 0) + max(pairs[d][1], 0)
            if d in pairs
            else x.data.shape[d]
            for d in range(nd)
        )
        index = tuple(
            slice(max(pairs[d][0], 0), max(pairs[d][0], 0) + x.data.shape[d])
            if d in pairs
            else slice(None)
            for d in range(nd)
        )
        return Embed.apply(x, shape=out_shape, index=index, value=0 if value is None else value)
    xp = get_xp(x.data)
    grown = False
    for d in sorted(pairs, reverse=True):
        lo, hi = max(pairs[d][0], 0), max(pairs[d][1], 0)
        n = x.data.shape[d]
        if not lo and not hi:
            continue
        if mode == "circular" and (lo > n or hi > n):
            raise RuntimeError("Padding value causes wrapping around more than once.")
        if n == 0:
            k = len(pairs)
            raise RuntimeError(
                f"Expected {k + 1}D or {k + 2}D (batch mode) tensor with possibly 0 batch size and "
                f"other non-zero dimensions for input, but got: {list(shape)}"
            )
        if mode == "reflect" and (lo >= n or hi >= n):
            raise RuntimeError(
                "Argument #4: Padding size should be less than the corresponding input dimension, "
                f"but got: padding ({pairs[d][0]}, {pairs[d][1]}) at dimension {d} of input "
                f"{list(shape)}"
            )
        x = PadAlong.apply(x, idx=_edge_index(xp, n, lo, hi, mode), lo=lo, dim=d)
        grown = True
    if not grown:  # only crops (or nothing): still a new tensor, as in PyTorch
        from retrograd.ops.elementwise import clone

        x = clone(x)
    return x


# -- triangles and diagonals ---------------------------------------------------------------------
class Triu(Function):
    """out = x with elements below diagonal k zeroed;  gx = triu(g, k)"""

    raw = True

    def forward(self, x, k):
        self.k = k
        return get_xp(x).triu(x, k)

    def backward(self, g):
        return Triu.apply(g, k=self.k) if isinstance(g, Tensor) else get_xp(g).triu(g, self.k)

    def jvp(self, t):
        return replay(self, t)


class Tril(Function):
    """out = x with elements above diagonal k zeroed;  gx = tril(g, k)"""

    raw = True

    def forward(self, x, k):
        self.k = k
        return get_xp(x).tril(x, k)

    def backward(self, g):
        return Tril.apply(g, k=self.k) if isinstance(g, Tensor) else get_xp(g).tril(g, self.k)

    def jvp(self, t):
        return replay(self, t)


def triu(x, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (on and above `diagonal`), the rest zero."""
    if x.data.ndim < 2:
        raise RuntimeError("triu: input tensor must have at least 2 dimensions")
    return Triu.apply(x, k=int(diagonal))


def tril(x, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (on and below `diagonal`), the rest zero."""
    if x.data.ndim < 2:
        raise RuntimeError("tril: input tensor must have at least 2 dimensions")
    return Tril.apply(x, k=int(diagonal))


def _diagonal_view(x, offset, dim1, dim2):
    """A writable diagonal view, as in PyTorch (NumPy's is flagged read-only)."""
    d = x.diagonal(offset, dim1, dim2)
    flags = d.flags
    if hasattr(flags, "writeable") and not flags.writeable and x.flags.writeable:
        flags.writeable = True
    return d


class Diagonal(Function):
    """out = the diagonal of x over dim1, dim2 (a view, as the last dim);  gx = g on the diagonal"""

    raw = True
    is_view = True

    def forward(self, x, offset, dim1, dim2):
        self.in_shape, self.args = x.shape, (offset, dim1, dim2)
        return _diagonal_view(x, offset, dim1, dim2)

    def backward(self, g):
        if isinstance(g, Tensor):
            return DiagonalEmbed.apply(g, shape=self.in_shape, args=self.args)
        return _diagonal_embed(g, self.in_shape, self.args)

    def jvp(self, t):
        return replay(self, t)


def _diagonal_embed(g, shape, args):
    out = get_xp(g).zeros(shape, dtype=g.dtype)
    _diagonal_view(out, *args)[...] = g
    return out


class DiagonalEmbed(Function):
    """out = zeros(shape) with x on the diagonal (the rule of diagonal);  gx = diagonal(g)"""

    raw = True

    def forward(self, x, shape, args):
        self.args = args
        return _diagonal_embed(x, shape, args)

    def backward(self, g):
        if isinstance(g, Tensor):
            return Diagonal.apply(g, offset=self.args[0], dim1=self.args[1], dim2=self.args[2])
        return g.diagonal(*self.args)

    def jvp(self, t):
        return replay(self, t)


def diagonal(x, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal over dims dim1, dim2 (offset > 0: above it), as the last dim of a view."""
    nd = x.data.ndim
    a, b = canonical_dim(dim1, nd), canonical_dim(dim2, nd)
    if a == b:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    out = Diagonal.apply(x, offset=int(offset), dim1=a, dim2=b)
    return _share_version(out, x)
