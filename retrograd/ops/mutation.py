"""In-place ops: the new value is computed by an ordinary op (recording its gradient rule), then
written into the tensor's own array; the version counter is bumped so that a gradient rule that
saved the old value notices (PyTorch's error)."""

from __future__ import annotations

from retrograd import backend
from retrograd.autograd.function import _OUT
from retrograd.autograd.grad_mode import _state
from retrograd.tensor import Tensor

__all__ = ["inplace", "fill_", "copy_", "fill_random_", "setitem_"]

LEAF_MSG = "a leaf Variable that requires grad is being used in an in-place operation."


def _check_leaf(x: Tensor) -> None:
    if _state.enabled and x.grad_fn is None and x._requires_grad:
        raise RuntimeError(LEAF_MSG)


def inplace(x: Tensor, result: Tensor) -> Tensor:
    """Write `result` (computed from x) into x and make x the output of result's node."""
    if result is x:
        return x
    _check_leaf(x)
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
    if not x.data.flags.writeable:
        raise RuntimeError(
            "unsupported operation: more than one element of the written-to tensor refers to a "
            "single memory location. Please clone() the tensor before performing the operation."
        )
    x.data[...] = result.data
    x._version[0] += 1
    if node is not None:
        x.grad_fn = node
        x._out_nr = result._out_nr
        x._requires_grad = True
        if node._saved is not None and node._versions:
            # the node's saved output is its own array (result.data), unaffected by later writes
            pass
    return x


def _snapshot_saved(node, x: Tensor) -> None:
    """The node about to overwrite x saved x itself: keep a copy of the old value instead."""
    saved = node._saved
    if not saved or all(s is not x for s in saved):
        return
    old = Tensor._make(x.data.copy(), x._requires_grad, x.grad_fn, x._out_nr)
    node._saved = tuple(old if s is x else s for s in saved)
    node._versions = [
        (old._version, 0, old) if v[2] is x else v for v in node._versions
    ] if node._versions else None


def _name(dtype) -> str:
    return {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int",
            "bool": "Bool", "float16": "Half"}.get(str(dtype), str(dtype))


def fill_(x: Tensor, value) -> Tensor:
    """Set every element to value (cut from the graph unless value is a Tensor)."""
    _check_leaf(x)
    if isinstance(value, Tensor):
        from retrograd.ops.movement import expand

        return inplace(x, expand(value.to(x.dtype), *x.shape) * 1)
    x.data[...] = value
    x._version[0] += 1
    if x.grad_fn is not None and _state.enabled:
        x.grad_fn = None
        x._requires_grad = False
    return x


def copy_(x: Tensor, src) -> Tensor:
    """Copy src (broadcast, cast to x's dtype) into x."""
    from retrograd.ops._util import as_tensor
    from retrograd.ops.elementwise import cast, clone
    from retrograd.ops.movement import broadcast_to

    src = as_tensor(src, x)
    if src._requires_grad and _state.enabled:
        _check_leaf(x)
        return inplace(x, clone(broadcast_to(cast(src, x.dtype), x.shape)))
    _check_leaf(x)
    x.data[...] = backend.to_device(src.data, x.device) if src.device != x.device else src.data
    x._version[0] += 1
    return x


def fill_random_(x: Tensor, kind: str, a, b, generator=None) -> Tensor:
    """Fill x from the uniform(a, b) or normal(mean=a, std=b) distribution, without a graph."""
    rng = backend.rng(generator)
    if kind == "uniform":
        values = rng.uniform(a, b, size=x.shape)
    else:
        values = rng.normal(a, b, size=x.shape)
    x.data[...] = backend.get_xp(x.data).asarray(values, dtype=x.dtype)
    x._version[0] += 1
    return x


def setitem_(x: Tensor, index, value) -> None:
    """x[index] = value, differentiable w.r.t. the old x (elsewhere) and value (at index)."""
    from retrograd.ops.indexing import setitem

    setitem(x, index, value)


_ = _OUT  # saved outputs are the node's own array: nothing to snapshot
