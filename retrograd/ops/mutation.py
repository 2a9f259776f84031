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


def check_writable(x: Tensor, index=None, overlap_ok: bool = False) -> None:
    """PyTorch's errors for writing into x: a leaf requiring grad (or a view of one) while grad
    mode is on, or a written region (x, or x[index] for a basic index) in which several elements
    share memory (an expanded tensor), unless overlap_ok (fill_ and zero_ give every element
    one value; copy_ of x into itself changes nothing), or read-only memory."""
    if _state.enabled and x._requires_grad:
        if x.grad_fn is None:
            raise RuntimeError(LEAF_MSG)
        base = x._view_base  # None for a copy (a reshape that could not view, say)
        if base is not None and base.grad_fn is None and base._requires_grad:
            if x._view_chain:
                _check_multi_output(x)  # PyTorch's first complaint
            raise RuntimeError(VIEW_OF_LEAF_MSG)
    data = x.data
    if not getattr(data.flags, "writeable", True) and not data.ndim and data.base is None:
        x.data = data = backend.get_xp(data).array(data)  # a NumPy scalar (0-d op result)
    region = data if index is None else data[index]
    if region.size and (
        not getattr(region.flags, "writeable", True) or (not overlap_ok and _overlaps(region))
    ):
        raise RuntimeError(ALIASED_MSG)


def _overlaps(a) -> bool:
    """Whether several elements of a share memory (PyTorch's check: a stride-0 dim of size > 1)."""
    return any(s == 0 and n > 1 for s, n in zip(a.strides, a.shape))


def inplace(x: Tensor, result: Tensor, index=None, overlap_ok: bool = False) -> Tensor:
    """Write `result` (computed from x) into x and make x the output of result's node. With a
    basic `index`, only x[index] changed: only it is written (x may be expanded elsewhere)."""
    if result is x:
        return x
    node = result.grad_fn
    if node is not None and x._view_chain:
        _check_multi_output(x)  # PyTorch's first complaint (check_inplace)
    check_writable(x, index, overlap_ok)
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
    if node is not None:
        _snapshot_saved(node, x)
    if index is None:
        x.data[...] = result.data
    else:
        x.data[index] = result.data[index]
    x._version[0] += 1
    if node is not None:
        if node._versions is not None:
            _output_is_x(node, result, x)
        old = x.grad_fn
        x.grad_fn, x._out_nr, x._requires_grad = node, result._out_nr, True
        if x._retain:
            _move_retain(x, old)
        if x._view_base is not None:
            _rebase(x, index)
    written(x)
    if _state.forward_ad:  # inside a dual level: x now carries the result's tangent
        forward_ad.carry_tangent(x, result)
    return x


class CopySlices(Function):
    """out = base with the viewed region replaced by src (the write already happened in place);
    gbase = g with that region zeroed,  gsrc = g viewed like src"""

    raw = True

    def forward(self, base, src, chain, region=None):
        self.chain, self.shape, self.region = chain, base.shape, region
        self.save()  # nothing, but freed by a backward: PyTorch's CopySlices releases its fn
        return base

    def backward(self, g):
        xp = backend.get_xp(dual.data(g))
        mask = xp.ones(self.shape, dtype=dual.data(g).dtype)
        region = _view_through(mask, self.chain)
        written = region if self.region is None else region[self.region]
        if written.size and _overlaps(written):  # a fill_ of an expanded view: PyTorch's
            raise RuntimeError(ALIASED_MSG)  # CopySlices copies the gradient into it, and raises
        region[...] = 0
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


def _rebase(view: Tensor, region=None) -> None:
    """An in-place change through a view also changed its base: make the base's history say so
    (PyTorch's CopySlices), so gradients through the base see the new values."""
    base = view._view_base
    new = CopySlices.apply(base, view, chain=view._view_chain, region=region)
    old = base.grad_fn
    base.grad_fn, base._out_nr, base._requires_grad = new.grad_fn, 0, True
    if base._retain:
        _move_retain(base, old)


def written(x: Tensor) -> None:
    """x's memory was written (its version bumped): regenerate the views of its base, and of
    the tensor its base was detached from (x = t.detach() shares t's memory and version)."""
    base = x._view_base
    if base is None:
        base = x
    if "_views" in base.__dict__:
        _replay_views(base)
    alias = base.__dict__.get("_alias_of")
    if alias is not None:
        root = alias()
        if root is not None and "_views" in root.__dict__:
            _replay_views(root)


def _replay_views(base: Tensor) -> None:
    """base's memory was written (through it, a view or a detached alias): every live view of
    it now comes from the base's current history through its recorded view ops, as PyTorch
    regenerates a view's grad_fn from its base once the shared version has changed.
    (Views that were copies are skipped; a view of a tensor that needs no gradient stays.)"""
    views = base.__dict__.get("_views")
    if not views:
        return
    enabled = _state.enabled
    _state.enabled = True  # the view's history is rebuilt whatever the mode of the write
    try:
        for ref in list(views):
            v = ref()
            if v is None or v._view_base is not base:
                continue
            if v.grad_fn is None and not base._requires_grad:
                continue
            name = _multi_output(v)
            if name is not None:  # PyTorch refuses to regenerate it: every later use raises
                if type(v.grad_fn) is not _StaleView:
                    v.grad_fn, v._out_nr, v._requires_grad = _StaleView.make(name), 0, True
                continue
            r = base
            for cls, params in v._view_chain:
                r = cls.apply(r, **params)
            old = v.grad_fn
            v.grad_fn, v._out_nr, v._requires_grad = r.grad_fn, r._out_nr, r._requires_grad
            if v._retain and old is not v.grad_fn:
                _move_retain(v, old)
    finally:
        _state.enabled = enabled


MULTI_VIEW_MSG = (
    "This view is the output of a function that returns multiple views. Such functions do not "
    "allow the output views to be modified inplace. You should replace the inplace operation by "
    "an out-of-place one."
)


def _multi_output(t: Tensor):
    """The name of the multi-output view op (unbind, split) t was taken through, or None."""
    for cls, _ in t._view_chain:
        if cls.multi_output is not None:
            return cls.multi_output
    return None


def _check_multi_output(x: Tensor) -> None:
    """PyTorch refuses an in-place write that needs a gradient into an output of unbind or
    split (or a view of one)."""
    name = _multi_output(x)
    if name is not None:
        raise RuntimeError(
            f"Output 0 of {name}Backward0 is a view and is being modified inplace. "
            + MULTI_VIEW_MSG
        )


class _StaleView(Function):
    """The grad_fn of an unbind/split output whose base was written in place since: using the
    view in a recorded op (the `grad_fn or tensor` of recording calls bool) or backpropagating
    from it raises, as PyTorch's grad_fn does for such a view."""

    raw = True

    @classmethod
    def make(cls, name: str) -> _StaleView:
        node = cls.__new__(cls)
        node.next_functions, node.needs_input_grad, node._in_shapes = [], [], []
        node._saved, node._out = None, None
        node.msg = (
            f"Output 0 of {name}Backward0 is a view and its base or another view of its base "
            "has been modified inplace. " + MULTI_VIEW_MSG
        )
        return node

    def __bool__(self):
        raise RuntimeError(self.msg)

    def backward(self, g):
        raise RuntimeError(self.msg)

    def jvp(self, *tangents):
        raise RuntimeError(self.msg)


def _move_retain(t: Tensor, old) -> None:
    """t.retain_grad() follows t to its new grad_fn (PyTorch moves the retains-grad hook)."""
    if old is not None and old._retains is not None:
        for k, r in list(old._retains.items()):
            if r() is t:
                del old._retains[k]
    t._retain = False
    if t.grad_fn is not None:
        t.retain_grad()


def _snapshot_saved(node, x: Tensor) -> None:
    """The node about to overwrite x saved x itself as `self` (x.mul_(y) saves x for y's
    gradient): keep a copy of the old value there instead, as PyTorch saves a clone of the
    original self. Another entry that is x (the `other` of x.mul_(x)) stays x: the write makes
    it stale, and a backward through it raises, as in PyTorch."""
    saved = node._saved
    if not saved:
        return
    i = next((k for k, s in enumerate(saved) if s is x), None)
    if i is None:
        return
    old = Tensor._make(x.data.copy(), x._requires_grad, x.grad_fn, x._out_nr)
    node._saved = saved[:i] + (old,) + saved[i + 1 :]
    versions = node._versions
    for k, v in enumerate(versions):
        if v[2] is x:
            versions[k] = (old._version, 0, old)
            break


def _output_is_x(node, result: Tensor, x: Tensor) -> None:
    """After the write, the node's output is x itself (PyTorch's in-place result): a saved
    output (x.exp_() saves it) is x's memory at x's new version, so a later write into x
    makes a backward through the node raise, as in PyTorch."""
    versions = node._versions
    for k, v in enumerate(versions):
        if v[2] is None and v[0] is result._version:
            versions[k] = (x._version, x._version[0], None)
            node._out = x.data


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
    overlap_ok = not (isinstance(value, Tensor) and value.requires_grad)
    setitem(x, Ellipsis, value, overlap_ok=overlap_ok, whole=True)
    return x


def copy_(x: Tensor, src) -> Tensor:
    """Copy src (broadcast, cast to x's dtype, moved to x's device) into x."""
    shape = getattr(src, "shape", ())
    if len(shape) > x.data.ndim:  # setitem allows extra leading 1-dims; copy_ does not
        wide = _broadcast_shape(tuple(x.data.shape), tuple(shape))
        if wide is not None:  # (None: not broadcastable, which setitem reports)
            raise RuntimeError(
                f"output with shape {list(x.data.shape)} doesn't match the broadcast shape "
                f"{list(wide)}"
            )
    setitem(x, Ellipsis, src, overlap_ok=src is x, whole=True)  # x into x: a no-op in PyTorch
    return x


def _broadcast_shape(a: tuple, b: tuple):
    """The shape a and b broadcast to, or None if they do not."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    if any(p != q and p != 1 and q != 1 for p, q in zip(a, b)):
        return None
    return tuple(q if p == 1 else p for p, q in zip(a, b))


def fill_random_(x: Tensor, kind: str, a, b, generator=None) -> Tensor:
    """Fill x from the uniform(a, b) or normal(mean=a, std=b) distribution."""
    rng = backend.rng(generator)
    values = rng.uniform(a, b, size=x.shape) if kind == "uniform" else rng.normal(a, b, x.shape)
    setitem(x, Ellipsis, values.astype(x.dtype, copy=False))
    return x


def setitem_(x: Tensor, index, value) -> None:
    """x[index] = value (Tensor.__setitem__): differentiable w.r.t. the old x and value."""
    setitem(x, index, value)
