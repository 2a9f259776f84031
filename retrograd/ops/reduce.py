"""Reductions: sum, mean, var/std, prod, max/min, arg-reductions, logsumexp, norms, cumulative
ops, all/any, and the softmax family.

Each primitive computes on arrays and writes its gradient rule with operators, indexing, `dual`
and the primitives of this module, so the same rule runs on arrays (plain backward) and on
Tensors (create_graph=True). Reduced dims are None (all) or a sorted tuple of non-negative dims.
"""

from __future__ import annotations

import builtins
import math
import warnings
from collections import namedtuple

from retrograd import backend
from retrograd.autograd.forward_ad import replay
from retrograd.autograd.function import Function
from retrograd.backend import get_xp
from retrograd.ops import dual
from retrograd.ops._util import canonical_dim, canonical_dims, l2_norm, quiet, quiet_block
from retrograd.tensor import Tensor

__all__ = [
    "sum",
    "mean",
    "var",
    "std",
    "prod",
    "max",
    "min",
    "amax",
    "amin",
    "argmax",
    "argmin",
    "logsumexp",
    "norm",
    "cumsum",
    "cumprod",
    "all",
    "any",
    "softmax",
    "log_softmax",
]

# what max(x, dim) / min(x, dim) return, as torch.return_types.max / .min
_MaxResult = namedtuple("max", ["values", "indices"])
_MinResult = namedtuple("min", ["values", "indices"])


# -- helpers ---------------------------------------------------------------------------------------
def _quiet(a):
    """Silence floating-point warnings where inf/nan is the intended result (log 0, inf - inf)."""
    return quiet_block()  # a no-op for CuPy, which never warns


def _dims(dim, ndim: int):
    """Reduced dims: None for all (dim None or (), or a 0-d input), else a sorted tuple."""
    dims = canonical_dims(dim, ndim)
    if ndim == 0 or dims == ():
        return None
    return dims


def _count(shape, dims) -> int:
    """How many elements each output element reduces over."""
    n = 1
    for d in range(len(shape)) if dims is None else dims:
        n *= shape[d]
    return n


def _kept_shape(shape, dims) -> tuple:
    """The output shape with keepdim=True."""
    return tuple(1 if dims is None or i in dims else s for i, s in enumerate(shape))


def _out_shape(shape, dims, keepdim) -> tuple:
    if keepdim:
        return _kept_shape(shape, dims)
    return tuple(s for i, s in enumerate(shape) if dims is not None and i not in dims)


def _restore(g, in_shape, dims, keepdim):
    """Broadcast a reduced gradient back over the reduced dims."""
    if not keepdim and dims is not None and len(in_shape):
        g = dual.expand_dims(g, dims)
    elif not keepdim and dims is None and len(in_shape):
        g = dual.reshape(g, (1,) * len(in_shape))
    return dual.broadcast_to(g, in_shape)


def _reduction_jvp(node, t, in_shape, dims, keepdim):
    """J t of a reduction in which every input element feeds one output element: J has one
    nonzero per column, which the rule gives at g = 1, so J t = sum over dims of t * J^T 1."""
    ones = get_xp(t).ones(_out_shape(in_shape, dims, keepdim), dtype=t.dtype)
    with _quiet(t):
        return (t * node.backward(ones)).sum(axis=dims, keepdims=keepdim)


def _float_input(x: Tensor) -> Tensor:
    """Integers and booleans promote to the default float dtype (as PyTorch's float-only ops)."""
    return x if x.data.dtype.kind in "fc" else x.to(backend.get_default_dtype())


def _torch_dtype_name(dtype) -> str:
    names = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte"}
    return names.get(str(dtype), "Bool" if str(dtype) == "bool" else str(dtype))


def _flip(x, axis: int):
    """x reversed along axis (a view; arrays and Tensors)."""
    return x[(slice(None),) * axis + (slice(None, None, -1),)]


def _moveaxis(x, src: int, dst: int):
    """x with axis src moved to position dst (arrays and Tensors)."""
    nd = len(x.shape)
    order = [i for i in range(nd) if i != src]
    order.insert(dst % nd, src)
    return dual.transpose(x, tuple(order))


def _cumsum(x, axis: int):
    if isinstance(x, Tensor):
        return Cumsum.apply(x, axis=axis)
    return get_xp(x).cumsum(x, axis=axis)


def _cumprod(x, axis: int):
    if isinstance(x, Tensor):
        return Cumprod.apply(x, axis=axis)
    return get_xp(x).cumprod(x, axis=axis)


def _softmax(x, dims):
    if isinstance(x, Tensor):
        return Softmax.apply(x, dims=dims)
    return _softmax_array(x, dims)


def _check_nonempty(name: str, x: Tensor, dim, error=RuntimeError) -> None:
    """PyTorch's errors for max/min-like reductions of empty tensors (they have no identity)."""
    shape = x.data.shape
    if dim is None or dim == () or not shape:
        if x.data.size == 0:
            hint = (
                " Specify the reduction dim with the 'dim' argument."
                if error is RuntimeError
                else ""
            )
            raise error(
                f"{name}(): Expected reduction dim to be specified for input.numel() == 0.{hint}"
            )
        return
    for d in (dim,) if isinstance(dim, int) else dim:  # named as given, as PyTorch does
        if shape[canonical_dim(d, len(shape))] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")


# -- sum and mean ----------------------------------------------------------------------------------
class Sum(Function):
    """out = sum(x, dims);  gx = broadcast(g)"""

    raw = True

    def forward(self, x, dims, keepdim):
        self.in_shape, self.dims, self.keepdim = x.shape, dims, keepdim
        return x.sum(axis=dims, keepdims=keepdim)

    def backward(self, g):
        return _restore(g, self.in_shape, self.dims, self.keepdim)

    def jvp(self, t):
        return replay(self, t)


def sum(x: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Sum over dim (an int, a tuple, or None for all); integers and booleans sum to int64."""
    if dtype is not None:
        x = x.to(dtype)
    elif x.data.dtype.kind in "biu":
        x = x.long()
    return Sum.apply(x, dims=_dims(dim, x.data.ndim), keepdim=keepdim)


def mean(x: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Arithmetic mean over dim (nan where the reduced dims are empty)."""
    if dtype is not None:
        x = x.to(dtype)
    if x.data.dtype.kind not in "fc":
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point "
            f"or complex dtype. Got: {_torch_dtype_name(x.data.dtype)}"
        )
    return Mean.apply(x, dims=_dims(dim, x.data.ndim), keepdim=keepdim)


class Mean(Function):
    """out = sum(x, dims) / n;  gx = broadcast(g / n)  (n a number: nothing is saved, as
    PyTorch's MeanBackward)"""

    raw = True

    def forward(self, x, dims, keepdim):
        self.in_shape, self.dims, self.keepdim = x.shape, dims, keepdim
        self.n = n = _count(x.shape, dims)
        s = x.sum(axis=dims, keepdims=keepdim)
        # the mean of nothing is nan (no 0/0 warning: nan * 0 is quiet)
        return s / n if n else s * math.nan

    def backward(self, g):
        n = self.n
        if isinstance(g, Tensor):  # as PyTorch: a gradient of its own (expand, then divide)
            g = _restore(g, self.in_shape, self.dims, self.keepdim)
            return g / n if n else g * math.nan
        return _restore(g / n if n else g * math.nan, self.in_shape, self.dims, self.keepdim)

    def jvp(self, t):
        return replay(self, t)


# -- variance and standard deviation ---------------------------------------------------------------
class Var(Function):
    """out = sum((x - mean)^2) / (N - correction), two-pass;  gx = g * 2 (x - mean) / (N - c)"""

    raw = True

    def forward(self, x, dims, keepdim, correction):
        xp = get_xp(x)
        self.in_shape, self.dims, self.keepdim = x.shape, dims, keepdim
        n = _count(x.shape, dims)
        self.n, self.denom = n, builtins.max(n - correction, 0)
        self.save(x)
        if n == 0:
            return xp.full(_out_shape(x.shape, dims, keepdim), math.nan, dtype=x.dtype)
        with _quiet(x):
            d = x - x.sum(axis=dims, keepdims=True) / n
            return (d * d).sum(axis=dims, keepdims=keepdim) / self.denom

    def backward(self, g):
        (x,) = self.saved
        dims, n = self.dims, self.n
        if n == 0:
            return dual.zeros(self.in_shape, g)
        centered = x - dual.sum(x, dims, True) / n
        scale = 2 / self.denom if self.denom else math.inf
        with _quiet(g):
            return _restore(g, self.in_shape, dims, self.keepdim) * scale * centered

    def jvp(self, t):
        (x,) = self.saved
        dims, n = self.dims, self.n
        if n == 0:
            return None
        centered = x - x.sum(axis=dims, keepdims=True) / n
        scale = 2 / self.denom if self.denom else math.inf
        with _quiet(t):
            return (t * centered).sum(axis=dims, keepdims=self.keepdim) * scale


def _correction(name: str, x: Tensor, dim, unbiased, correction):
    if x.data.dtype.kind not in "fc":
        raise RuntimeError("std and var only support floating point and complex dtypes")
    if isinstance(dim, bool):  # var(x, False): the (input, unbiased) overload
        dim, unbiased = None, dim if unbiased is None else unbiased
    if unbiased is not None and correction is not None:
        raise TypeError(f"{name}(): can only specify one of 'unbiased' and 'correction'")
    if correction is None:
        correction = 0 if unbiased is False else 1
    dims = _dims(dim, x.data.ndim)
    n = _count(x.data.shape, dims)
    if x.data.size == 0 or n - correction <= 0:
        warnings.warn(
            f"{name}(): degrees of freedom is <= 0. Correction should be strictly less than the "
            "reduction factor (input numel divided by output numel).",
            UserWarning,
            stacklevel=3,
        )
    return dims, correction


def var(
    x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None
) -> Tensor:
    """Variance over dim with Bessel's correction (correction=1) unless told otherwise."""
    dims, correction = _correction("var", x, dim, unbiased, correction)
    return Var.apply(x, dims=dims, keepdim=keepdim, correction=correction)


def std(
    x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None
) -> Tensor:
    """Standard deviation over dim; its gradient is 0 where the deviation is 0, as PyTorch's."""
    dims, correction = _correction("std", x, dim, unbiased, correction)
    return Std.apply(x, dims=dims, keepdim=keepdim, correction=correction)


class Std(Function):
    """out = sqrt(sum((x - mean)^2) / (N - c)), scaled where the squares overflow or underflow
    (float32 std of [1e30, 1, 2] is finite, as PyTorch's);  gx = g (x - mean) / ((N - c) out),
    0 where out == 0 (PyTorch's subgradient)"""

    raw = True

    @quiet
    def forward(self, x, dims, keepdim, correction):
        xp = get_xp(x)
        self.in_shape, self.dims, self.keepdim = x.shape, dims, keepdim
        n = _count(x.shape, dims)
        self.n, self.denom = n, builtins.max(n - correction, 0)
        if n == 0:
            out = xp.full(_out_shape(x.shape, dims, keepdim), math.nan, dtype=x.dtype)
        else:
            d = x - x.sum(axis=dims, keepdims=True) / n
            out = xp.asarray(l2_norm(xp, d, dims, keepdim, self.denom), dtype=x.dtype)
        self.save(x, out)
        return out

    def backward(self, g):
        x, out = self.saved
        shape, dims, n = self.in_shape, self.dims, self.n
        if n == 0:
            return dual.zeros(shape, g)
        centered = x - dual.sum(x, dims, True) / n
        out = _restore(out, shape, dims, self.keepdim)
        od = dual.data(out)
        zero = od == 0
        if zero.any():  # no deviation: gradient 0 (divide by 1 there, then mask)
            out = out + _like(zero.astype(od.dtype), out)
            centered = centered * _like((~zero).astype(od.dtype), out)
        scale = 1 / self.denom if self.denom else math.inf
        # centered / out first: it is at most sqrt(N) in size, whatever the scale of x
        return _restore(g, shape, dims, self.keepdim) * scale * (centered / out)

    def jvp(self, t):
        return _reduction_jvp(self, t, self.in_shape, self.dims, self.keepdim)


def _like(array, like):
    """array as a constant of a rule: a Tensor without history when `like` is a Tensor."""
    return Tensor._make(array, False, None, 0) if isinstance(like, Tensor) else array


class AbsPow(Function):
    """out = sign(x)^s * |x|^q, with 0^q = 0 for q < 0;  gx = g * q * sign(x)^(1-s) |x|^(q-1)

    The masked 0^q for q < 0 gives PyTorch's subgradients where a power of |x| or of a norm would
    divide by zero (sqrt'(0), norm'(0)); it serves gradient rules, not as a public power.
    """

    raw = True

    def forward(self, x, q, signed=False):
        self.q, self.signed = q, signed
        self.save(x)
        return _abs_pow_array(x, q, signed)

    def backward(self, g):
        (x,) = self.saved
        if self.q == 0:
            return g * 0.0
        return g * self.q * _abs_pow(x, self.q - 1, not self.signed)

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


def _abs_pow(x, q, signed=False):
    if isinstance(x, Tensor):
        return AbsPow.apply(x, q=q, signed=signed)
    return _abs_pow_array(x, q, signed)


def _abs_pow_array(x, q, signed):
    xp = get_xp(x)
    a = xp.abs(x)
    if q == 0:
        out = xp.ones_like(a)
    elif q < 0:
        zero = a == 0
        out = xp.where(zero, 0, xp.where(zero, 1, a) ** q).astype(x.dtype, copy=False)
    else:
        out = a if q == 1 else a**q
    return out * xp.sign(x) if signed else out


# -- products --------------------------------------------------------------------------------------
class Prod(Function):
    """out = prod(x, dims);  gx = g * prod of the other elements (= g * out / x without zeros)"""

    raw = True

    def forward(self, x, dims, keepdim):
        self.in_shape, self.dims, self.keepdim = x.shape, dims, keepdim
        out = get_xp(x).asarray(x.prod(axis=dims, keepdims=keepdim))  # the rule uses out: an array
        self.save(x, out)
        return out

    def backward(self, g):
        x, out = self.saved
        shape, dims, keepdim = self.in_shape, self.dims, self.keepdim
        g = _restore(g, shape, dims, keepdim)
        xd = dual.data(x)
        if xd.size == 0 or _count(shape, dims) == 1:  # one factor: out = x (also at +-inf)
            return g
        if not (xd == 0).any():
            return g * _restore(out, shape, dims, keepdim) / x
        # with zeros, out / x is 0/0: take the product of the others instead
        if dims is None:
            return g * dual.reshape(_prod_others(dual.reshape(x, (-1,)), 0), shape)
        return g * _prod_others(x, dims[0])

    def jvp(self, t):
        return _reduction_jvp(self, t, self.in_shape, self.dims, self.keepdim)


def _prod_others(x, axis: int):
    """prod_{j != i} x_j along axis, exact with zeros (exclusive cumulative products both ways)."""
    left = _exclusive_cumprod(x, axis)
    right = _flip(_exclusive_cumprod(_flip(x, axis), axis), axis)
    return left * right


def _exclusive_cumprod(x, axis: int):
    """[1, x0, x0*x1, ...] along axis."""
    shape = x.shape
    c = _cumprod(x, axis)
    head = (slice(None),) * axis + (slice(None, -1),)
    tail = (slice(None),) * axis + (slice(1, None),)
    xd = dual.data(x)
    first = get_xp(xd).zeros((shape[axis],) + (1,) * (len(shape) - axis - 1), dtype=xd.dtype)
    first[0] = 1
    return dual.pad_into(c[head], shape, tail) + first


def prod(x: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Product over one dim (or all); exact gradients with zeros in the input."""
    if dtype is not None:
        x = x.to(dtype)
    elif x.data.dtype.kind in "biu":
        x = x.long()
    if isinstance(dim, (tuple, list)):
        raise TypeError(
            "prod() received an invalid combination of arguments - got (Tensor, "
            f"{type(dim).__name__}), but expected (Tensor input, int dim, bool keepdim)"
        )
    if dim is None and keepdim:
        raise TypeError("prod(): keepdim needs a dim (prod(input, dim, keepdim=True))")
    dims = _dims(dim, x.data.ndim)
    return Prod.apply(x, dims=dims, keepdim=keepdim)


class Cumsum(Function):
    """out_i = sum_{j<=i} x_j along axis;  gx = reversed cumsum of g"""

    raw = True

    def forward(self, x, axis):
        self.axis = axis
        return x.copy() if x.ndim == 0 else get_xp(x).cumsum(x, axis=axis)

    def backward(self, g):
        if len(g.shape) == 0:
            return g
        return _flip(_cumsum(_flip(g, self.axis), self.axis), self.axis)

    def jvp(self, t):
        return replay(self, t)


def cumsum(x: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Running sums along dim; integers and booleans accumulate in int64."""
    if dtype is not None:
        x = x.to(dtype)
    elif x.data.dtype.kind in "biu":
        x = x.long()
    return Cumsum.apply(x, axis=canonical_dim(dim, x.data.ndim))


class Cumprod(Function):
    """out_i = prod_{j<=i} x_j along axis;  gx_i = sum_{k>=i} g_k out_k / x_i (zeros: exact)"""

    raw = True

    @quiet  # inf * 0 in the running product is nan without a warning, as in PyTorch
    def forward(self, x, axis):
        self.axis = axis
        out = x.copy() if x.ndim == 0 else get_xp(x).cumprod(x, axis=axis)
        self.save(x, out)
        return out

    def backward(self, g):
        x, out = self.saved
        axis = self.axis
        xd = dual.data(x)
        if xd.ndim == 0 or xd.size == 0 or xd.shape[axis] == 1:
            return g
        if not (xd == 0).any():
            return _flip(_cumsum(_flip(g * out, axis), axis), axis) / x
        if isinstance(x, Tensor):  # differentiable, O(n^2) along axis (as PyTorch's)
            return _cumprod_grad_graph(x, g, axis)
        return _cumprod_grad_zeros(x, g, out, axis)

    def jvp(self, t):
        x, out = self.saved
        axis = self.axis
        if x.ndim == 0 or x.size == 0:
            return t
        xp = get_xp(x)
        if not (x == 0).any():
            return out * xp.cumsum(t / x, axis=axis)
        # with zeros: before a slice's first zero z the zero-free rule holds; from z on only the
        # term of x_z survives, t_z * prod_{j <= i, j != z} x_j
        x, t, out = (xp.moveaxis(a, axis, -1) for a in (x, t, out))
        n = x.shape[-1]
        is_zero = x == 0
        first = xp.where(is_zero.any(-1, keepdims=True), is_zero.argmax(-1)[..., None], n)
        idx = xp.arange(n)
        before = idx < first
        lead = out * xp.cumsum(xp.where(before, t / xp.where(before, x, 1), 0), axis=-1)
        t_zero = xp.take_along_axis(t, xp.minimum(first, n - 1), axis=-1)
        after = t_zero * xp.cumprod(xp.where(idx == first, 1, x), axis=-1)
        return xp.moveaxis(xp.where(before, lead, after), -1, axis)


def _cumprod_grad_zeros(x, g, out, axis: int):
    """The cumprod rule on arrays with zeros, O(n): split at each slice's first zero z.

    Before z the zero-free rule holds; at z the gradient is sum_{k>=z} g_k prod_{j<=k, j!=z} x_j;
    after z every product contains x_z = 0.
    """
    xp = get_xp(x)
    x, g, out = (xp.moveaxis(a, axis, -1) for a in (x, g, out))
    n = x.shape[-1]
    is_zero = x == 0
    first = xp.where(is_zero.any(-1, keepdims=True), is_zero.argmax(-1)[..., None], n)
    idx = xp.arange(n)
    before = idx < first
    w = g * out
    tail_sums = _flip(xp.cumsum(_flip(w, w.ndim - 1), axis=-1), w.ndim - 1)
    gx = xp.where(before, tail_sums / xp.where(before, x, 1), 0)
    others = xp.cumprod(xp.where(idx == first, 1, x), axis=-1)  # x_z replaced by 1
    at_zero = (g * others * (idx >= first)).sum(-1, keepdims=True)
    gx = xp.where(idx == first, at_zero, gx).astype(x.dtype, copy=False)
    return xp.moveaxis(gx, -1, axis)


def _cumprod_grad_graph(x, g, axis: int):
    """The cumprod rule with zeros, differentiable: gx_i = sum_{k>=i} g_k prod_{j<=k, j!=i} x_j.

    Row i of an (n, n) stack holds x with x_i replaced by 1; its cumprod gives every product.
    """
    nd = len(x.shape)
    x, g = _moveaxis(x, axis, -1), _moveaxis(g, axis, -1)
    n = x.shape[-1]
    xd = dual.data(x)
    xp = get_xp(xd)
    eye = xp.eye(n, dtype=xd.dtype)
    stack = dual.expand_dims(x, (nd - 1,)) * (1 - eye) + eye  # (..., i, k)
    products = _cumprod(stack, nd)
    upper = xp.triu(xp.ones((n, n), dtype=xd.dtype))  # k >= i
    gx = dual.sum(dual.expand_dims(g, (nd - 1,)) * products * upper, nd)
    return _moveaxis(gx, nd - 1, axis)


def cumprod(x: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Running products along dim; exact gradients with zeros in the input."""
    if dtype is not None:
        x = x.to(dtype)
    elif x.data.dtype.kind in "biu":
        x = x.long()
    return Cumprod.apply(x, axis=canonical_dim(dim, x.data.ndim))


# -- max and min -----------------------------------------------------------------------------------
class AMax(Function):
    """out = max(x, dims) (min if not largest);  gx = g * (x == out) / count  (ties split evenly)"""

    raw = True

    def forward(self, x, dims, keepdim, largest=True):
        self.in_shape, self.dims, self.keepdim = x.shape, dims, keepdim
        out = x.max(axis=dims, keepdims=keepdim) if largest else x.min(axis=dims, keepdims=keepdim)
        out = get_xp(x).asarray(out)
        self.save(x, out)
        return out

    def backward(self, g):
        x, out = self.saved
        shape, dims, keepdim = self.in_shape, self.dims, self.keepdim
        xd = dual.data(x)
        hit = (xd == _restore(dual.data(out), shape, dims, keepdim)).astype(xd.dtype)
        with _quiet(xd):
            share = hit / hit.sum(axis=dims, keepdims=True)
        return _restore(g, shape, dims, keepdim) * share

    def jvp(self, t):
        return _reduction_jvp(self, t, self.in_shape, self.dims, self.keepdim)


class TakeAlong(Function):
    """out = x at `index` along axis (an argmax/argmin);  gx = g at index, 0 elsewhere"""

    raw = True

    def forward(self, x, axis, index, keepdim):
        self.in_shape, self.axis, self.index, self.keepdim = x.shape, axis, index, keepdim
        out = get_xp(x).take_along_axis(x, index, axis=axis)
        return out if keepdim else out.reshape(_out_shape(x.shape, (axis,), False))

    def backward(self, g):
        xp = get_xp(self.index)
        n = self.in_shape[self.axis]
        positions = xp.arange(n).reshape((n,) + (1,) * (len(self.in_shape) - self.axis - 1))
        dtype = dual.data(g).dtype
        onehot = (positions == self.index).astype(dtype)
        return _restore(g, self.in_shape, (self.axis,), self.keepdim) * onehot

    def jvp(self, t):
        return replay(self, t)


def _reduce_extreme(name, x, dim, keepdim, largest):
    if dim is None:
        if keepdim:
            raise TypeError(f"{name}(): keepdim needs a dim ({name}(input, dim, keepdim=True))")
        _check_nonempty(name, x, None)
        return AMax.apply(x, dims=None, keepdim=False, largest=largest)
    if isinstance(dim, (tuple, list)):
        raise TypeError(
            f"{name}() received an invalid combination of arguments - got (Tensor, "
            f"{type(dim).__name__}), but expected (Tensor input, int dim, bool keepdim)"
        )
    result = _MaxResult if largest else _MinResult
    axis = canonical_dim(dim, x.data.ndim)
    if x.data.ndim == 0:
        index = Tensor._make(get_xp(x.data).zeros((), dtype=backend.int64), False, None, 0)
        return result(AMax.apply(x, dims=None, keepdim=False, largest=largest), index)
    _check_nonempty(name, x, axis)
    xp = get_xp(x.data)
    arg = xp.argmax if largest else xp.argmin
    index = arg(x.data, axis=axis, keepdims=True).astype(backend.int64, copy=False)
    values = TakeAlong.apply(x, axis=axis, index=index, keepdim=keepdim)
    if not keepdim:
        index = index.reshape(values.data.shape)
    return result(values, Tensor._make(index, False, None, 0))


def max(x: Tensor, dim=None, keepdim: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """The largest element (ties share the gradient), or (values, indices) along dim."""
    if isinstance(dim, Tensor):  # max(input, other): the elementwise maximum
        from retrograd.ops import maximum

        return maximum(x, dim)
    return _reduce_extreme("max", x, dim, keepdim, largest=True)


def min(x: Tensor, dim=None, keepdim: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """The smallest element (ties share the gradient), or (values, indices) along dim."""
    if isinstance(dim, Tensor):  # min(input, other): the elementwise minimum
        from retrograd.ops import minimum

        return minimum(x, dim)
    return _reduce_extreme("min", x, dim, keepdim, largest=False)


def amax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Maximum over dim (an int, a tuple, or None/() for all); ties split the gradient evenly."""
    dims = _dims(dim, x.data.ndim)
    _check_nonempty("amax", x, dim)
    return AMax.apply(x, dims=dims, keepdim=keepdim, largest=True)


def amin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Minimum over dim (an int, a tuple, or None/() for all); ties split the gradient evenly."""
    dims = _dims(dim, x.data.ndim)
    _check_nonempty("amin", x, dim)
    return AMax.apply(x, dims=dims, keepdim=keepdim, largest=False)


def _arg_extreme(name, x, dim, keepdim, largest) -> Tensor:
    xd = x.data
    xp = get_xp(xd)
    arg = xp.argmax if largest else xp.argmin
    if dim is None or xd.ndim == 0:
        if dim is not None:
            canonical_dim(dim, 0)
        _check_nonempty(name, x, None, error=IndexError)
        out = arg(xd.reshape(-1)) if xd.ndim else xp.zeros((), dtype=backend.int64)
        out = xp.asarray(out, dtype=backend.int64)
        if keepdim:
            out = out.reshape((1,) * xd.ndim)
        return Tensor._make(out, False, None, 0)
    axis = canonical_dim(dim, xd.ndim)
    _check_nonempty(name, x, axis)
    out = arg(xd, axis=axis, keepdims=keepdim).astype(backend.int64, copy=False)
    return Tensor._make(out, False, None, 0)


def argmax(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the largest element (flattened when dim is None), as int64."""
    return _arg_extreme("argmax", x, dim, keepdim, largest=True)


def argmin(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the smallest element (flattened when dim is None), as int64."""
    return _arg_extreme("argmin", x, dim, keepdim, largest=False)


# -- logsumexp and the softmax family --------------------------------------------------------------
def _shift(x, dims):
    """The max over dims (kept), 0 where it is not finite: exp(x - shift) never overflows."""
    xp = get_xp(x)
    if x.size == 0:
        return xp.zeros(_kept_shape(x.shape, dims), dtype=x.dtype)
    m = x.max(axis=dims, keepdims=True)
    # all -inf stays -inf (log 0) and +inf stays inf
    return xp.where(xp.isfinite(m), m, 0).astype(x.dtype, copy=False)


class LogSumExp(Function):
    """out = m + log(sum(exp(x - m))), m = max(x);  gx = g * exp(x - out) = g * softmax(x)"""

    raw = True

    def forward(self, x, dims, keepdim):
        xp = get_xp(x)
        self.in_shape, self.dims, self.keepdim = x.shape, dims, keepdim
        m = _shift(x, dims)
        with _quiet(x):
            out = xp.log(xp.exp(x - m).sum(axis=dims, keepdims=True)) + m
        if not keepdim:
            out = out.reshape(_out_shape(x.shape, dims, False))
        self.save(x, out)
        return out

    def backward(self, g):
        x, out = self.saved
        shape, dims, keepdim = self.in_shape, self.dims, self.keepdim
        if isinstance(x, Tensor):
            p = _softmax(x, dims)
        else:
            with _quiet(x):
                p = get_xp(x).exp(x - _restore(out, shape, dims, keepdim))
        return _restore(g, shape, dims, keepdim) * p

    def jvp(self, t):
        return _reduction_jvp(self, t, self.in_shape, self.dims, self.keepdim)


def logsumexp(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) over dim, stable for large |x|; all -inf gives -inf."""
    x = _float_input(x)
    return LogSumExp.apply(x, dims=_dims(dim, x.data.ndim), keepdim=keepdim)


def _softmax_array(x, dims):
    xp = get_xp(x)
    if x.size == 0:
        return x.copy()
    with _quiet(x):
        e = xp.exp(x - x.max(axis=dims, keepdims=True))
        return xp.asarray(e / e.sum(axis=dims, keepdims=True))  # 0-d: an array, not a scalar


class Softmax(Function):
    """out = exp(x - max) / sum(exp(x - max));  gx = out * (g - sum(g * out))"""

    raw = True

    def forward(self, x, dims):
        self.dims = dims
        out = _softmax_array(x, dims)
        self.save(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return out * (g - dual.sum(g * out, self.dims, True))

    def jvp(self, t):
        (out,) = self.saved
        return out * (t - (t * out).sum(axis=self.dims, keepdims=True))


class LogSoftmax(Function):
    """out = x - max - log(sum(exp(x - max)));  gx = g - softmax(x) * sum(g)"""

    raw = True

    def forward(self, x, dims):
        xp = get_xp(x)
        self.dims = dims
        if x.size == 0:
            out = x.copy()
        else:
            with _quiet(x):
                shifted = x - x.max(axis=dims, keepdims=True)
                out = shifted - xp.log(xp.exp(shifted).sum(axis=dims, keepdims=True))
            out = xp.asarray(out)  # 0-d: an array, not a scalar (the rule uses out)
        self.save(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        if isinstance(out, Tensor):
            # softmax(out) equals exp(out) (out is normalised) and is differentiable here; its
            # Jacobian differs from exp's only along directions the log_softmax Jacobian removes
            p = _softmax(out, self.dims)
        else:
            p = get_xp(out).exp(out)
        return g - p * dual.sum(g, self.dims, True)

    def jvp(self, t):
        (out,) = self.saved
        return t - (get_xp(out).exp(out) * t).sum(axis=self.dims, keepdims=True)


def _softmax_args(name, x, dim, dtype):
    if dtype is not None:
        x = x.to(dtype)
    if x.data.dtype.kind not in "fc":
        raise NotImplementedError(
            f'"{name}_lastdim_kernel_impl" not implemented for '
            f"'{_torch_dtype_name(x.data.dtype)}'"
        )
    axis = canonical_dim(dim, x.data.ndim)
    return x, None if x.data.ndim == 0 else (axis,)


def softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) along dim, shifted by the max (stable for large |x|)."""
    x, dims = _softmax_args("softmax", x, dim, dtype)
    return Softmax.apply(x, dims=dims)


def log_softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    """x - logsumexp(x) along dim, shifted by the max (stable for large |x|)."""
    x, dims = _softmax_args("log_softmax", x, dim, dtype)
    return LogSoftmax.apply(x, dims=dims)


# -- norms -----------------------------------------------------------------------------------------
class Norm(Function):
    """out = (sum |x|^p)^(1/p) (max |x| for p = inf);  gx = g * sign(x) |x|^(p-1) / out^(p-1)"""

    raw = True

    def forward(self, x, p, dims, keepdim):
        xp = get_xp(x)
        self.in_shape, self.p, self.dims, self.keepdim = x.shape, p, dims, keepdim
        a = xp.abs(x)
        kw = dict(axis=dims, keepdims=keepdim)
        with _quiet(x):
            if p == math.inf:
                out = a.max(**kw)
            elif p == -math.inf:
                out = a.min(**kw)
            elif p == 0:
                out = (x != 0).sum(**kw).astype(x.dtype)
            elif p == 1:
                out = a.sum(**kw)
            elif p == 2:
                out = l2_norm(xp, a, dims, keepdim)
            else:
                out = (a**p).sum(**kw) ** (1 / p)
        out = xp.asarray(out, dtype=x.dtype)  # an array (not a NumPy scalar): the rule uses out
        self.save(x, out)
        return out

    def backward(self, g):
        x, out = self.saved
        p, shape, dims, keepdim = self.p, self.in_shape, self.dims, self.keepdim
        if p == 0:
            return None  # piecewise constant: no gradient, as PyTorch
        g = _restore(g, shape, dims, keepdim)
        out = _restore(out, shape, dims, keepdim)
        if math.isinf(p):  # ties in max |x| split the gradient evenly
            xd = dual.data(x)
            xp = get_xp(xd)
            hit = (xp.abs(xd) == dual.data(out)).astype(xd.dtype)
            with _quiet(xd):
                share = xp.sign(xd) * hit / hit.sum(axis=dims, keepdims=True)
            return g * share
        # |x|^(p-1) and out^(1-p) are 0 where PyTorch masks a 0/0 (x = 0 for p < 1, out = 0)
        return g * _abs_pow(out, 1 - p) * _abs_pow(x, p - 1, True)

    def jvp(self, t):
        if self.p == 0:
            return None  # a count: piecewise constant
        return _reduction_jvp(self, t, self.in_shape, self.dims, self.keepdim)


def norm(x: Tensor, p="fro", dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Vector p-norm over dim (p: int, float, inf, -inf, 'fro'), as torch.norm."""
    if dtype is not None:
        x = x.to(dtype)
    if x.data.dtype.kind not in "fc":
        raise RuntimeError(
            "linalg.vector_norm: Expected a floating point or complex tensor as input. Got "
            f"{_torch_dtype_name(x.data.dtype)}"
        )
    if isinstance(dim, int):
        dim = (dim,)
    if isinstance(p, str):
        if p == "nuc":
            raise NotImplementedError("norm(p='nuc'): the nuclear norm is not supported yet")
        if p != "fro":
            raise RuntimeError(f"linalg.matrix_norm: Order {p} not supported.")
        if dim is not None and len(dim) > 2:
            raise RuntimeError(
                "linalg.matrix_norm: dim must be a 2-tuple. Got " + " ".join(str(d) for d in dim)
            )
        p = 2
    p = 2 if p is None else float(p)
    dims = _dims(dim, x.data.ndim)
    if math.isinf(p) and x.data.size == 0:
        if dims is None:
            raise RuntimeError(
                "linalg.vector_norm cannot compute the inf norm on an empty tensor because the "
                "operation does not have an identity"
            )
        for d in dim:
            if x.data.shape[canonical_dim(d, x.data.ndim)] == 0:
                raise RuntimeError(
                    f"linalg.vector_norm cannot compute the inf norm on the dimension {d}because "
                    "this dimension is empty and the operation does not have an identity"
                )
    return Norm.apply(x, p=p, dims=dims, keepdim=keepdim)


# -- boolean reductions ----------------------------------------------------------------------------
def _bool_reduce(x: Tensor, dim, keepdim, fn) -> Tensor:
    xd = x.data
    dims = None if dim is None or xd.ndim == 0 else canonical_dims(dim, xd.ndim)
    out = fn(xd, axis=dims, keepdims=keepdim)
    dtype = backend.uint8 if xd.dtype == backend.uint8 else backend.bool_
    return Tensor._make(get_xp(xd).asarray(out).astype(dtype, copy=False), False, None, 0)


def all(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where every element over dim is nonzero (bool; uint8 for uint8 input)."""
    return _bool_reduce(x, dim, keepdim, get_xp(x.data).all)


def any(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where some element over dim is nonzero (bool; uint8 for uint8 input)."""
    return _bool_reduce(x, dim, keepdim, get_xp(x.data).any)
