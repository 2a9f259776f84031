"""In-place ops: the new value is computed by an ordinary op (recording its gradient rule), then
written into the tensor's own array; the version counter is bumped so that a gradient rule that
saved the old value notices (PyTorch's error)."""

from __future__ import annotations

from retrograd import backend
from retrograd.autograd import forward_ad
from retrograd.autograd.forward_ad import primal_output
from retrograd.autograd.function import Function
from retrograd.autograd.grad_mode import _state
from retrograd.ops import dual
from retrograd.ops.indexing import setitem
from retrograd.tensor import Tensor

__all__ = ["inplace", "fill_", "copy_", "fill_random_", "setitem_"]

LEAF_MSG = "a leaf Variable that requires grad is being used in an in-place operation."
VIEW_OF_LEAF_MSG = (
    "a view of a leaf Variable that requires grad is being used in an in-place operation."
)
ALIASED_MSG = (
    "unsupported operation: more than one element of the written-to tensor refers to a single "
    "memory location. Please clone() the tensor before performing the operation."
)


def check_writable(x: Tensor) -> None:
    """PyTorch's errors for writing into x: a leaf requiring grad (or a view of one) while grad
    mode is on, or an array whose elements share memory (a broadcast view)."""
    if _state.enabled and x._requires_grad:
        node = x.grad_fn
        if node is None:
            raise RuntimeError(LEAF_MSG)
        while getattr(node, "is_view", False):  # walk back through views to the base
            node = node.next_functions[0]
            if isinstance(node, Tensor):
                raise RuntimeError(VIEW_OF_LEAF_MSG)
    if not getattr(x.data.flags, "writeable", True):
        if x.data.ndim or x.data.base is not None:
            raise RuntimeError(ALIASED_MSG)
        x.data = backend.get_xp(x.data).array(x.data)  # a NumPy scalar (0-d op result)


def inplace(x: Tensor, result: Tensor) -> Tensor:
    """Write `result` (computed from x) into x and make x the output of result's node."""
    if result is x:
        return x
    check_writable(x)
    if result.data.shape != x.data.shape:
        raise RuntimeError(
            f"output with shape {list(x.data.shape)} doesn't match the broadcast shape "
            f"{list(result.data.shape)}"
        )
    if result.data.dtype != x.data.dtype and not backend.get_xp(x.data).can_cast(
        result.data.dtype, x.data.dtype, casting="same_kind"
    ):
        raise RuntimeError(
            f"result type {_name(result.data.dtype)} can't be cast to the desired output type "
            f"{_name(x.data.dtype)}"
        )
    node = result.grad_fn
    if node is not None:
        _snapshot_saved(node, x)
    x.data[...] = result.data
    x._version[0] += 1
    if node is not None:
        x.grad_fn, x._out_nr, x._requires_grad = node, result._out_nr, True
        if x._view_base is not None:
            _rebase(x)
    if _state.forward_ad:  # inside a dual level: x now carries the result's tangent
        forward_ad.carry_tangent(x, result)
    return x


class CopySlices(Function):
    """out = base with the viewed region replaced by src (the write already happened in place);
    gbase = g with that region zeroed,  gsrc = g viewed like src"""

    raw = True

    def forward(self, base, src, chain):
        self.chain, self.shape = chain, base.shape
        return base

    def backward(self, g):
        xp = backend.get_xp(dual.data(g))
        mask = xp.ones(self.shape, dtype=dual.data(g).dtype)
        _view_through(mask, self.chain)[...] = 0
        gsrc = g
        for cls, params in self.chain:
            gsrc = _view_step(gsrc, cls, params)
        return g * mask, gsrc

    def jvp(self, tbase, tsrc):
        out = primal_output(self)
        dout = backend.get_xp(out).zeros(self.shape, out.dtype) if tbase is None else tbase.copy()
        _view_through(dout, self.chain)[...] = 0 if tsrc is None else tsrc
        return dout


def _view_step(a, cls, params):
    if isinstance(a, Tensor):
        return cls.apply(a, **params)
    return cls.forward(cls.__new__(cls), a, **params)


def _view_through(array, chain):
    for cls, params in chain:
        array = _view_step(array, cls, params)
    return array


def _rebase(view: Tensor) -> None:
    """An in-place change through a view also changed its base: make the base's history say so
    (PyTorch's CopySlices), so gradients through the base see the new values."""
    base = view._view_base
    new = CopySlices.apply(base, view, chain=view._view_chain)
    base.grad_fn, base._out_nr, base._requires_grad = new.grad_fn, 0, True


def _snapshot_saved(node, x: Tensor) -> None:
    """The node about to overwrite x saved x itself (x.mul_(y) saves x for y's gradient): keep a
    copy of the old value instead. A saved output is the node's own array, unaffected."""
    saved = node._saved
    if not saved or all(s is not x for s in saved):
        return
    old = Tensor._make(x.data.copy(), x._requires_grad, x.grad_fn, x._out_nr)
    node._saved = tuple(old if s is x else s for s in saved)
    node._versions = [(old._version, 0, old) if v[2] is x else v for v in node._versions]


def _name(dtype) -> str:
    names = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long"}
    names.update(
        {"int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}
    )
    return names.get(str(dtype), str(dtype))


def fill_(x: Tensor, value) -> Tensor:
    """Set every element to value (a scalar or a 0-d Tensor, which then gets the gradient)."""
    if isinstance(value, Tensor) and value.data.ndim != 0:
        raise RuntimeError(
            "fill_ only supports 0-dimension value tensor but got tensor with "
            f"{value.data.ndim} dimensions."
        )
    setitem(x, Ellipsis, value)
    return x


def copy_(x: Tensor, src) -> Tensor:
    """Copy src (broadcast, cast to x's dtype, moved to x's device) into x."""
    setitem(x, Ellipsis, src)
    return x


def fill_random_(x: Tensor, kind: str, a, b, generator=None) -> Tensor:
    """Fill x from the uniform(a, b) or normal(mean=a, std=b) distribution."""
    rng = backend.rng(generator)
    values = rng.uniform(a, b, size=x.shape) if kind == "uniform" else rng.normal(a, b, x.shape)
    setitem(x, Ellipsis, values.astype(x.dtype, copy=False))
    return x


def setitem_(x: Tensor, index, value) -> None:
    """x[index] = value (Tensor.__setitem__): differentiable w.r.t. the old x and value."""
    setitem(x, index, value)
