"""Tensor: an array, its gradient, and the node of the graph that made it.

Methods are thin: each delegates to the op of the same name in `retrograd.ops`.
"""

from __future__ import annotations

import weakref

import numpy as np

from retrograd import backend


def _to_array(data, dtype=None):
    """Convert data (nested lists, scalars, arrays, Tensors) into an array, float32 by default."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = backend.as_dtype(dtype)
    if isinstance(data, np.ndarray) or hasattr(data, "__cuda_array_interface__"):
        return data.astype(dtype, copy=False) if dtype is not None else data
    if isinstance(data, np.generic):
        arr = np.asarray(data)
        return arr.astype(dtype) if dtype is not None else arr
    arr = np.asarray(data)
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    if arr.dtype == np.float64:
        arr = arr.astype(backend.get_default_dtype())
    elif arr.dtype.kind in "iu" and arr.dtype != np.int64 and not isinstance(data, np.ndarray):
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "O":
        raise TypeError(f"can't convert {type(data).__name__} of objects to a tensor")
    return arr


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    >>> x = retrograd.tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4.])
    """

    __slots__ = (
        "data",
        "grad",
        "_requires_grad",
        "grad_fn",
        "_out_nr",
        "_version",
        "__dict__",
        "__weakref__",
    )
    # rarely set: class-level defaults keep creating a tensor cheap
    _hooks = None  # hooks of a leaf tensor (a non-leaf's live on its grad_fn)
    _retain = False
    name = None
    _view_base = None  # for a view: the tensor whose memory it shares
    _view_chain = ()  # for a view: ((view op, params), ...) taking the base to this view
    _fw_tangent = None  # forward-mode AD: the tangent array, inside a dual level
    __array_priority__ = 1000  # ndarray + Tensor defers to Tensor.__radd__

    def __init__(self, data, dtype=None, requires_grad: bool = False) -> None:
        self.data = _to_array(data, dtype)
        self.grad = None
        self._requires_grad = False
        self.grad_fn = None
        self._out_nr = 0
        self._version = [0]
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data, requires_grad: bool, grad_fn, out_nr: int):
        """Wrap an array without checks (the hot path of every op)."""
        t = object.__new__(Tensor)
        t.data = data
        t.grad = None
        t._requires_grad = requires_grad
        t.grad_fn = grad_fn
        t._out_nr = out_nr
        t._version = [0]
        return t

    # -- autograd attributes --------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to use a "
                "computed variable in a subgraph that doesn't require differentiation use "
                "var_no_grad = var.detach()."
            )
        if requires_grad and self.data.dtype.kind not in "fc":
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def retain_grad(self) -> None:
        """Keep `.grad` on a non-leaf tensor after backward."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is None or self._retain:
            return
        self._retain = True
        node = self.grad_fn
        if node._retains is None:
            node._retains = {}
        node._retains[self._out_nr] = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        return self._retain

    def register_hook(self, hook):
        """hook(grad) -> Tensor or None; runs when the gradient w.r.t. this tensor is computed."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = []
            self._hooks.append(hook)
            hooks = self._hooks
        else:
            node = self.grad_fn
            if node._hooks is None:
                node._hooks = {}
            hooks = node._hooks.setdefault(self._out_nr, [])
            hooks.append(hook)
        return _RemovableHandle(hooks, hook)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` (or only `inputs`')."""
        from retrograd.autograd import backward

        backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    def detach(self) -> Tensor:
        """A tensor sharing the data, cut from the graph."""
        t = Tensor._make(self.data, False, None, 0)
        t._version = self._version
        # a write through t regenerates the views of self's base (mutation.written)
        base = self._view_base
        if base is None:
            alias = self.__dict__.get("_alias_of")
            base = self if alias is None else alias()
        if base is not None:
            t.__dict__["_alias_of"] = weakref.ref(base)
        return t

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self._requires_grad = False
        return self

    # -- array attributes -----------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    def size(self, dim: int | None = None):
        if dim is None:
            return self.data.shape
        return self.data.shape[_ops.canonical_dim(dim, self.data.ndim)]

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def nelement(self) -> int:
        return int(self.data.size)

    def element_size(self) -> int:
        return self.data.itemsize

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_cuda(self) -> bool:
        return self.device != "cpu"

    def is_floating_point(self) -> bool:
        return self.data.dtype.kind == "f"

    @property
    def _version_counter(self) -> int:
        return self._version[0]

    def numpy(self) -> np.ndarray:
        if self._requires_grad:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() "
                "instead."
            )
        return backend.to_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise RuntimeError(
                f"a Tensor with {self.data.size} elements cannot be converted to Scalar"
            )
        return self.data.item()

    def tolist(self):
        return backend.to_numpy(self.data).tolist()

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(_ops.unbind(self, 0))

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(
                "Boolean value of Tensor with more than one value is ambiguous"
                if self.data.size > 1
                else "Boolean value of Tensor with no values is ambiguous"
            )
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        a = backend.to_numpy(self.data)
        return a.astype(dtype) if dtype is not None else a

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        body = np.array2string(
            backend.to_numpy(self.data), separator=", ", precision=4, prefix="tensor("
        )
        extras = []
        if self.data.dtype not in (backend.get_default_dtype(), np.int64, np.bool_):
            extras.append(f"dtype=retrograd.{self.data.dtype}")
        if self.data.size == 0:
            extras.append(f"size={tuple(self.data.shape)}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name()}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # -- conversion ------------------------------------------------------------------------------
    def to(self, *args, dtype=None, device=None, copy: bool = False) -> Tensor:
        for a in args:
            if isinstance(a, str) and (a.startswith("cuda") or a == "cpu"):
                device = a
            elif isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            else:
                dtype = a
        out = self
        if dtype is not None:
            out = _ops.cast(out, dtype)
        if device is not None and device != out.device:
            out = _ops.to_device(out, device)
        if copy and out is self:
            out = _ops.clone(self)
        return out

    def astype(self, dtype) -> Tensor:
        return _ops.cast(self, dtype)

    def type(self, dtype=None):
        if dtype is None:
            return f"retrograd.{self.data.dtype}"
        return _ops.cast(self, dtype)

    def float(self) -> Tensor:
        return _ops.cast(self, backend.float32)

    def double(self) -> Tensor:
        return _ops.cast(self, backend.float64)

    def half(self) -> Tensor:
        return _ops.cast(self, backend.float16)

    def long(self) -> Tensor:
        return _ops.cast(self, backend.int64)

    def int(self) -> Tensor:
        return _ops.cast(self, backend.int32)

    def bool(self) -> Tensor:
        return _ops.cast(self, backend.bool_)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def clone(self) -> Tensor:
        return _ops.clone(self)

    def contiguous(self) -> Tensor:
        return self

    def is_contiguous(self) -> bool:
        return bool(self.data.flags.c_contiguous)

    # -- operators -------------------------------------------------------------------------------
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __floordiv__(self, other):
        return _ops.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return _ops.floor_divide(other, self)

    def __mod__(self, other):
        return _ops.remainder(self, other)

    def __rmod__(self, other):
        return _ops.remainder(other, self)

    def __pow__(self, other):
        return _ops.pow(self, other)

    def __rpow__(self, other):
        return _ops.pow(other, self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops.abs(self)

    def __eq__(self, other):  # type: ignore[override]
        return _ops.eq(self, other)

    def __ne__(self, other):  # type: ignore[override]
        return _ops.ne(self, other)

    def __lt__(self, other):
        return _ops.lt(self, other)

    def __le__(self, other):
        return _ops.le(self, other)

    def __gt__(self, other):
        return _ops.gt(self, other)

    def __ge__(self, other):
        return _ops.ge(self, other)

    def __and__(self, other):
        return _ops.bitwise_and(self, other)

    def __rand__(self, other):
        return _ops.bitwise_and(other, self)

    def __or__(self, other):
        return _ops.bitwise_or(self, other)

    def __ror__(self, other):
        return _ops.bitwise_or(other, self)

    def __xor__(self, other):
        return _ops.bitwise_xor(self, other)

    def __invert__(self):
        return _ops.bitwise_not(self)

    def __getitem__(self, index):
        return _ops.getitem(self, index)

    def __setitem__(self, index, value) -> None:
        _ops.setitem_(self, index, value)

    # in place: the result is computed by the op, then written into this tensor's array
    def __iadd__(self, other):
        return _ops.inplace(self, _ops.add(self, other))

    def __isub__(self, other):
        return _ops.inplace(self, _ops.sub(self, other))

    def __imul__(self, other):
        return _ops.inplace(self, _ops.mul(self, other))

    def __itruediv__(self, other):
        return _ops.inplace(self, _ops.div(self, other))

    def __ipow__(self, other):
        return _ops.inplace(self, _ops.pow(self, other))

    def add_(self, other, alpha=1):
        return _ops.inplace(self, _ops.add(self, other, alpha=alpha))

    def sub_(self, other, alpha=1):
        return _ops.inplace(self, _ops.sub(self, other, alpha=alpha))

    def mul_(self, other):
        return _ops.inplace(self, _ops.mul(self, other))

    def div_(self, other):
        return _ops.inplace(self, _ops.div(self, other))

    def pow_(self, other):
        return _ops.inplace(self, _ops.pow(self, other))

    def neg_(self):
        return _ops.inplace(self, _ops.neg(self))

    def exp_(self):
        return _ops.inplace(self, _ops.exp(self))

    def sqrt_(self):
        return _ops.inplace(self, _ops.sqrt(self))

    def relu_(self):
        return _ops.inplace(self, _ops.relu(self))

    def sigmoid_(self):
        return _ops.inplace(self, _ops.sigmoid(self))

    def tanh_(self):
        return _ops.inplace(self, _ops.tanh(self))

    def abs_(self):
        return _ops.inplace(self, _ops.abs(self))

    def clamp_(self, min=None, max=None):
        return _ops.inplace(self, _ops.clamp(self, min, max))

    clip_ = clamp_

    def masked_fill_(self, mask, value):
        return _ops.inplace(self, _ops.masked_fill(self, mask, value))

    def zero_(self):
        return _ops.fill_(self, 0)

    def fill_(self, value):
        return _ops.fill_(self, value)

    def copy_(self, src):
        return _ops.copy_(self, src)

    def uniform_(self, a=0.0, b=1.0, generator=None):
        return _ops.fill_random_(self, "uniform", a, b, generator)

    def normal_(self, mean=0.0, std=1.0, generator=None):
        return _ops.fill_random_(self, "normal", mean, std, generator)

    # -- elementwise math ------------------------------------------------------------------------
    def add(self, other, alpha=1):
        return _ops.add(self, other, alpha=alpha)

    def sub(self, other, alpha=1):
        return _ops.sub(self, other, alpha=alpha)

    def mul(self, other):
        return _ops.mul(self, other)

    def div(self, other):
        return _ops.div(self, other)

    def pow(self, exponent):
        return _ops.pow(self, exponent)

    def neg(self):
        return _ops.neg(self)

    def exp(self):
        return _ops.exp(self)

    def exp2(self):
        return _ops.exp2(self)

    def log(self):
        return _ops.log(self)

    def log2(self):
        return _ops.log2(self)

    def log1p(self):
        return _ops.log1p(self)

    def expm1(self):
        return _ops.expm1(self)

    def sqrt(self):
        return _ops.sqrt(self)

    def rsqrt(self):
        return _ops.rsqrt(self)

    def abs(self):
        return _ops.abs(self)

    def sign(self):
        return _ops.sign(self)

    def sin(self):
        return _ops.sin(self)

    def cos(self):
        return _ops.cos(self)

    def tan(self):
        return _ops.tan(self)

    def tanh(self):
        return _ops.tanh(self)

    def sinh(self):
        return _ops.sinh(self)

    def cosh(self):
        return _ops.cosh(self)

    def arcsin(self):
        return _ops.arcsin(self)

    def arccos(self):
        return _ops.arccos(self)

    def arctan(self):
        return _ops.arctan(self)

    asin, acos, atan = arcsin, arccos, arctan

    def atan2(self, other):
        return _ops.atan2(self, other)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def relu(self):
        return _ops.relu(self)

    def softplus(self, beta=1.0, threshold=20.0):
        return _ops.softplus(self, beta, threshold)

    def clamp(self, min=None, max=None):
        return _ops.clamp(self, min, max)

    clip = clamp

    def floor(self):
        return _ops.floor(self)

    def ceil(self):
        return _ops.ceil(self)

    def round(self, decimals=0):
        return _ops.round(self, decimals)

    def trunc(self):
        return _ops.trunc(self)

    def reciprocal(self):
        return _ops.reciprocal(self)

    def square(self):
        return _ops.square(self)

    def maximum(self, other):
        return _ops.maximum(self, other)

    def minimum(self, other):
        return _ops.minimum(self, other)

    def lerp(self, end, weight):
        return _ops.lerp(self, end, weight)

    def erf(self):
        return _ops.erf(self)

    def where(self, condition, other):
        return _ops.where(condition, self, other)

    def masked_fill(self, mask, value):
        return _ops.masked_fill(self, mask, value)

    def eq(self, other):
        return _ops.eq(self, other)

    def ne(self, other):
        return _ops.ne(self, other)

    def lt(self, other):
        return _ops.lt(self, other)

    def le(self, other):
        return _ops.le(self, other)

    def gt(self, other):
        return _ops.gt(self, other)

    def ge(self, other):
        return _ops.ge(self, other)

    def isnan(self):
        return _ops.isnan(self)

    def isinf(self):
        return _ops.isinf(self)

    def isfinite(self):
        return _ops.isfinite(self)

    def logical_not(self):
        return _ops.logical_not(self)

    # -- reductions ------------------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False, dtype=None):
        return _ops.sum(self, dim, keepdim, dtype=dtype)

    def mean(self, dim=None, keepdim=False):
        return _ops.mean(self, dim, keepdim)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return _ops.var(self, dim, unbiased, keepdim, correction=correction)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return _ops.std(self, dim, unbiased, keepdim, correction=correction)

    def prod(self, dim=None, keepdim=False):
        return _ops.prod(self, dim, keepdim)

    def max(self, dim=None, keepdim=False):
        return _ops.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return _ops.min(self, dim, keepdim)

    def amax(self, dim=None, keepdim=False):
        return _ops.amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return _ops.amin(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return _ops.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return _ops.argmin(self, dim, keepdim)

    def logsumexp(self, dim=None, keepdim=False):
        return _ops.logsumexp(self, dim, keepdim)

    def norm(self, p="fro", dim=None, keepdim=False):
        return _ops.norm(self, p, dim, keepdim)

    def cumsum(self, dim):
        return _ops.cumsum(self, dim)

    def cumprod(self, dim):
        return _ops.cumprod(self, dim)

    def all(self, dim=None, keepdim=False):
        return _ops.all(self, dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return _ops.any(self, dim, keepdim)

    def softmax(self, dim):
        return _ops.softmax(self, dim)

    def log_softmax(self, dim):
        return _ops.log_softmax(self, dim)

    # -- linear algebra --------------------------------------------------------------------------
    def matmul(self, other):
        return _ops.matmul(self, other)

    def mm(self, other):
        return _ops.mm(self, other)

    def bmm(self, other):
        return _ops.bmm(self, other)

    def dot(self, other):
        return _ops.dot(self, other)

    def outer(self, other):
        return _ops.outer(self, other)

    # -- shape -----------------------------------------------------------------------------------
    def reshape(self, *shape):
        return _ops.reshape(self, *shape)

    def view(self, *shape):
        return _ops.view(self, *shape)

    def view_as(self, other):
        return _ops.reshape(self, other.shape)

    def reshape_as(self, other):
        return _ops.reshape(self, other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return _ops.flatten(self, start_dim, end_dim)

    def unflatten(self, dim, sizes):
        return _ops.unflatten(self, dim, sizes)

    def squeeze(self, dim=None):
        return _ops.squeeze(self, dim)

    def unsqueeze(self, dim):
        return _ops.unsqueeze(self, dim)

    def permute(self, *dims):
        return _ops.permute(self, *dims)

    def transpose(self, dim0, dim1):
        return _ops.transpose(self, dim0, dim1)

    def swapaxes(self, dim0, dim1):
        return _ops.transpose(self, dim0, dim1)

    def t(self):
        return _ops.t(self)

    @property
    def T(self):
        return _ops.permute(self, *range(self.data.ndim - 1, -1, -1))

    @property
    def mT(self):
        return _ops.transpose(self, -2, -1)

    def expand(self, *sizes):
        return _ops.expand(self, *sizes)

    def expand_as(self, other):
        return _ops.expand(self, *other.shape)

    def broadcast_to(self, shape):
        return _ops.broadcast_to(self, shape)

    def repeat(self, *sizes):
        return _ops.repeat(self, *sizes)

    def tile(self, *dims):
        return _ops.tile(self, *dims)

    def flip(self, *dims):
        return _ops.flip(self, *dims)

    def roll(self, shifts, dims=None):
        return _ops.roll(self, shifts, dims)

    def split(self, split_size_or_sections, dim=0):
        return _ops.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return _ops.chunk(self, chunks, dim)

    def unbind(self, dim=0):
        return _ops.unbind(self, dim)

    def narrow(self, dim, start, length):
        return _ops.narrow(self, dim, start, length)

    def triu(self, diagonal=0):
        return _ops.triu(self, diagonal)

    def tril(self, diagonal=0):
        return _ops.tril(self, diagonal)

    def diagonal(self, offset=0, dim1=0, dim2=1):
        return _ops.diagonal(self, offset, dim1, dim2)

    def index_select(self, dim, index):
        return _ops.index_select(self, dim, index)

    def gather(self, dim, index):
        return _ops.gather(self, dim, index)

    def scatter(self, dim, index, src):
        return _ops.scatter(self, dim, index, src)

    def scatter_add(self, dim, index, src):
        return _ops.scatter_add(self, dim, index, src)

    def take_along_dim(self, indices, dim=None):
        return _ops.take_along_dim(self, indices, dim)


class _RemovableHandle:
    __slots__ = ("_hooks", "_hook")

    def __init__(self, hooks: list, hook) -> None:
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


from retrograd import ops as _ops  # noqa: E402  (ops import Tensor)
