"""Forward-mode automatic differentiation: each op computes its output's tangent alongside its
output, as torch.autograd.forward_ad does.

    >>> from retrograd.autograd import forward_ad as fwAD
    >>> with fwAD.dual_level():
    ...     x = fwAD.make_dual(primal, tangent)
    ...     y = (x * x).sin()
    ...     value, jv = fwAD.unpack_dual(y)      # jv = cos(x^2) * 2 x * tangent

Inside a dual level, a primitive that gets an input carrying a tangent calls its own rule
`jvp(self, *tangents)` right after its forward: one tangent array per input (None for an input
without one, which is a zero tangent), computed from what the forward saved (`self.saved` and
attributes), e.g. Mul's `tx * y + x * ty`, Exp's `tx * out`; linear ops apply themselves to the
tangent. The rule returns the output's tangent, or None for a zero one. Outside any dual level
the cost is one check of a module global per op (`Function.apply`); levels are per thread.

Tangents are arrays, constants of the reverse graph: forward mode here is first order (the
reverse graph is still recorded as usual, so reverse mode works on the primal values). A user
Function gets its tangents from its own `jvp(ctx, *tangents)` staticmethod when it defines one,
else from its backward by the double-vjp identity below.

Helpers for rules:

* `replay(node, *tangents)`: the node's own forward applied to the tangents, which is its JVP when
  the op is linear in all its inputs (reshape, sum, cat, pad, ...).
* `elementwise_jvp(node, tangents)`: for ops whose output element depends on the same element of
  each input, the rule at g = 1 gives the derivatives.
* `jvp_by_double_vjp(node, tangents)`: the JVP of one node from its gradient rule. J^T u is
  linear in u, so J t = d/du <J^T u, t>: one reverse pass of the rule built as a graph, and one
  through that graph. Exact, and as slow as two backward passes of the node. Every primitive of
  retrograd.ops has a closed-form rule; this serves primitives written elsewhere without one.

Not supported yet: a tensor written in place (x.add_(y), x[i] = v) keeps its old tangent until
`ops.mutation.inplace` calls `carry_tangent` and `ops.indexing.setitem` writes tangent-carrying
values through its op; nested dual levels (as in PyTorch).
"""

from __future__ import annotations

import threading
import weakref
from collections import namedtuple
from contextlib import contextmanager

import numpy as np

from retrograd.autograd import function as _function
from retrograd.autograd.grad_mode import _state
from retrograd.backend import get_xp
from retrograd.tensor import Tensor

__all__ = [
    "dual_level",
    "enter_dual_level",
    "exit_dual_level",
    "make_dual",
    "unpack_dual",
    "UnpackedDualTensor",
]

UnpackedDualTensor = namedtuple("UnpackedDualTensor", ["primal", "tangent"])
_levels_lock = threading.Lock()  # guards function._dual_levels (levels open in all threads)


class _Level:
    """A dual level: the tensors given a tangent in it, whose tangents are dropped on exit."""

    __slots__ = ("tensors",)

    def __init__(self) -> None:
        self.tensors: dict = {}  # id -> weakref (a WeakSet would compare Tensors with ==)

    def add(self, t: Tensor) -> None:
        key = id(t)
        if key not in self.tensors:
            tensors = self.tensors
            tensors[key] = weakref.ref(t, lambda _, key=key: tensors.pop(key, None))

    def clear(self) -> None:
        for ref in list(self.tensors.values()):
            t = ref()
            if t is not None:
                t._fw_tangent = None
        self.tensors.clear()


# -- the public API (torch.autograd.forward_ad) ---------------------------------------------------
def enter_dual_level() -> int:
    """Start computing tangents (only one level at a time, as in PyTorch); returns the level."""
    if _state.forward_ad:
        raise RuntimeError("Nested forward mode AD is not supported at the moment")
    with _levels_lock:
        _function._dual_levels += 1
    _state.forward_ad = _Level()
    return 0


def exit_dual_level(*, level: int | None = None) -> None:
    """Stop computing tangents and drop every tangent made in the level."""
    current = _state.forward_ad
    if not current or level not in (None, 0):
        raise RuntimeError(
            "Trying to exit a forward AD level that was not the last one that was created. This "
            "is not supported."
        )
    _state.forward_ad = False
    with _levels_lock:
        _function._dual_levels -= 1
    current.clear()


@contextmanager
def dual_level():
    """A block in which dual tensors can be made and ops compute their tangents.

    >>> with dual_level():
    ...     y = f(make_dual(x, v))
    ...     jv = unpack_dual(y).tangent
    """
    enter_dual_level()
    try:
        yield 0
    finally:
        exit_dual_level()


def make_dual(tensor: Tensor, tangent, *, level: int | None = None) -> Tensor:
    """`tensor` (the same data, and the same history when it requires grad) carrying `tangent`
    (a Tensor or array of its shape, cast to its dtype)."""
    current = _state.forward_ad
    if not current:
        raise RuntimeError(
            "Trying to create a dual Tensor for forward AD but no level exists, make sure to "
            "enter_dual_level() first."
        )
    if tensor.dtype.kind not in "fc":
        raise ValueError(
            f"Expected primal to be floating point or complex, but got: retrograd.{tensor.dtype}"
        )
    t = tangent.data if isinstance(tangent, Tensor) else get_xp(tensor.data).asarray(tangent)
    if t.dtype.kind not in "fc":
        raise ValueError(
            f"Expected tangent to be floating point or complex, but got: retrograd.{t.dtype}"
        )
    if t.shape != tensor.shape:
        raise RuntimeError(
            "Trying to set a forward gradient that has a different size than that of the "
            f"original Tensor, this is not supported. Tensor is of size {list(tensor.shape)} "
            f"while the given forward gradient is of size {list(t.shape)}."
        )
    if t.dtype != tensor.dtype:
        t = t.astype(tensor.dtype)
    if tensor.requires_grad and _state.enabled:
        _state.forward_ad = False  # the alias itself carries no tangent of its input's
        try:
            dual = tensor.view_as(tensor)
        finally:
            _state.forward_ad = current
    else:
        dual = Tensor._make(tensor.data, False, None, 0)
        dual._version = tensor._version
    dual._fw_tangent = t
    current.add(dual)
    return dual


def unpack_dual(tensor: Tensor, *, level: int | None = None) -> UnpackedDualTensor:
    """(tensor, its tangent as a Tensor, or None where it has none: a zero tangent)."""
    t = tensor._fw_tangent if _state.forward_ad else None
    return UnpackedDualTensor(tensor, None if t is None else Tensor._make(t, False, None, 0))


# -- the hooks called by Function.apply inside a dual level ---------------------------------------
def attach_tangent(node, inputs, params, result) -> None:
    """After a primitive's forward: give `result` the tangent `node.jvp` computes, when an input
    carries one."""
    tangents = [t._fw_tangent for t in inputs]
    if all(t is None for t in tangents):
        return
    out = result.data
    if out.dtype.kind not in "fc" or not node.differentiable:
        return
    node._fw = ([t.data for t in inputs], params, out)
    try:
        rule = getattr(node, "jvp", None)
        # every primitive of retrograd.ops has its rule (a test checks); one written elsewhere
        # without a rule still gets exact tangents, from its gradient rule
        tangent = rule(*tangents) if rule is not None else jvp_by_double_vjp(node, tangents)
    finally:
        del node._fw
    if tangent is not None:
        result._fw_tangent = _as_tangent(tangent, out)
        _state.forward_ad.add(result)


def attach_user_tangents(node, args, outputs, own) -> None:
    """After a user Function's forward: tangents of its floating `outputs` (`own`: the Tensors
    its forward returned, which `outputs` may re-wrap), taken from, in this order:

    * its `jvp` staticmethod (PyTorch's protocol: jvp(ctx, *tangents), one per forward input,
      zeros for a Tensor without one, None for other arguments; returns the outputs' tangents);
    * the tangents its forward's own ops computed, when it sets `tangents_from_forward = True`
      (a backward that is the exact derivative of the forward: checkpointing, reversible layers);
    * its backward, by the double-vjp identity (so both modes follow the gradient rule, e.g. a
      straight-through estimator); this needs a backward that supports create_graph=True.
    """
    tangents = [a._fw_tangent if isinstance(a, Tensor) else None for a in args]
    if all(t is None for t in tangents):
        return
    level = _state.forward_ad
    floating = [
        (o, w) for o, w in zip(outputs, own) if isinstance(o, Tensor) and o.data.dtype.kind in "fc"
    ]
    if not floating:
        return
    cls = type(node)
    rule = getattr(cls, "jvp", None)
    if rule is not None:
        from retrograd.autograd.grad_mode import no_grad

        given = [
            None
            if not isinstance(a, Tensor)
            else Tensor._make(_zeros(a.data) if t is None else t, False, None, 0)
            for a, t in zip(args, tangents)
        ]
        _state.forward_ad = False
        try:
            with no_grad():
                result = rule(node, *given)
        finally:
            _state.forward_ad = level
        if not isinstance(result, (tuple, list)):
            result = (result,)
        per_out = dict(zip([id(o) for o in outputs if isinstance(o, Tensor)], result))
        found = [per_out.get(id(o)) for o, _ in floating]
    elif getattr(cls, "tangents_from_forward", False):
        found = [w._fw_tangent if isinstance(w, Tensor) else None for _, w in floating]
    else:
        found = _user_double_vjp(node, args, tangents, outputs, [o for o, _ in floating])
    for (o, _), t in zip(floating, found):
        o._fw_tangent = None if t is None else _as_tangent(t, o.data)
        level.add(o)


def carry_tangent(x: Tensor, result: Tensor) -> None:
    """For in-place writes (`ops.mutation.inplace`, inside a dual level): x now holds result's
    value, so it takes result's tangent; written through a view, its base's tangent changes over
    the viewed region too."""
    t = result._fw_tangent
    level = _state.forward_ad
    x._fw_tangent = t
    level.add(x)
    base = x._view_base
    if base is None or (t is None and base._fw_tangent is None):
        return
    from retrograd.ops.mutation import _view_through

    old = base._fw_tangent
    new = _zeros(base.data) if old is None else old.copy()
    _view_through(new, x._view_chain)[...] = 0 if t is None else t
    base._fw_tangent = new
    level.add(base)


def _as_tangent(t, out):
    """A rule's result as an array of the output's shape and dtype (rules may return a tangent
    that broadcasts to it, a NumPy scalar, or a Tensor)."""
    if isinstance(t, Tensor):
        t = t.data
    xp = get_xp(out)
    if isinstance(t, np.generic) or not hasattr(t, "shape"):
        t = xp.asarray(t)
    if t.dtype != out.dtype:
        t = t.astype(out.dtype)
    if t.shape != out.shape:
        t = xp.broadcast_to(t, out.shape)
    return t


def _zeros(like):
    return get_xp(like).zeros(like.shape, dtype=like.dtype)


# -- helpers for jvp rules ------------------------------------------------------------------------
def add_tangents(*terms):
    """The sum of the terms that are not None (None when all are: a zero tangent)."""
    total = None
    for t in terms:
        if t is not None:
            total = t if total is None else total + t
    return total


def primal_inputs(node) -> list:
    """The input arrays of the node whose jvp is running."""
    return node._fw[0]


def primal_output(node):
    """The output array of the node whose jvp is running."""
    return node._fw[2]


def replay(node, *tangents, **overrides):
    """The node's own forward on `tangents` (zeros for None), with its parameters (`overrides`
    replacing some): the JVP of an op that is linear in all its inputs."""
    inputs, params, _ = node._fw
    cls = type(node)
    fresh = cls.__new__(cls)
    fresh._saved = None
    args = [_zeros(x) if t is None else t for t, x in zip(tangents, inputs)]
    return fresh.forward(*args, **(dict(params, **overrides) if overrides else params))


def backward_at(node, g, tangents):
    """node.backward(g) on arrays, computing the gradients of the inputs that have a tangent."""
    had = getattr(node, "needs_input_grad", None)
    node.needs_input_grad = [t is not None for t in tangents]
    try:
        grads = node.backward(g)
    finally:
        if had is None:
            del node.needs_input_grad
        else:
            node.needs_input_grad = had
    return grads if isinstance(grads, tuple) else (grads,)


def elementwise_jvp(node, tangents):
    """J t of an op whose output element i depends only on element i of each (broadcast) input:
    the rule at g = 1 gives every input's derivative in the output's shape."""
    out = node._fw[2]
    grads = backward_at(node, get_xp(out).ones(out.shape, dtype=out.dtype), tangents)
    return add_tangents(*(None if t is None else t * g for t, g in zip(tangents, grads)))


def jvp_by_double_vjp(node, tangents):
    """J t of one primitive from its gradient rule: J t = d/du <J^T u, t>, u a dummy cotangent.

    The rule runs once on Tensors (as under create_graph=True) with its saved values as
    constants, then one reverse pass through what it built gives J t. Exact; for rules whose
    closed-form JVP would be long. Needs the rule to support create_graph=True (all do here).
    """
    from retrograd.autograd import grad
    from retrograd.autograd.function import _bstate

    _, _, out = node._fw
    constants = tuple(node.saved)  # arrays: the rule's graph starts from u alone
    u = Tensor._make(_zeros(out), True, None, 0)
    level, enabled, graph = _state.forward_ad, _state.enabled, _bstate.graph
    packed = node._saved
    node._saved = constants
    _state.forward_ad, _state.enabled, _bstate.graph = False, True, True
    try:
        grads = backward_at(node, u, tangents)
        _bstate.graph = False
        total = _pairing(grads, tangents)
        if total is None:
            return None
        (jt,) = grad(total, [u], allow_unused=True)
    finally:
        node._saved = packed
        _state.forward_ad, _state.enabled, _bstate.graph = level, enabled, graph
    return None if jt is None else jt.data


def _pairing(grads, tangents):
    """sum_i <g_i, t_i> as a Tensor (g_i may have the broadcast shape its input is summed from:
    pairing it with t_i broadcast is the same number), or None when nothing pairs."""
    total = None
    for g, t in zip(grads, tangents):
        if t is None or not isinstance(g, Tensor) or not g.requires_grad:
            continue
        if t.shape != g.shape:
            xp = get_xp(t)
            t = t.reshape(g.shape) if t.size == g.data.size else xp.broadcast_to(t, g.shape)
        term = (g * Tensor._make(t, False, None, 0)).sum()
        total = term if total is None else total + term
    return total


def _user_double_vjp(node, args, tangents, outputs, outs):
    """Tangents of a user Function's floating outputs `outs` from its backward (double vjp)."""
    from retrograd.autograd import grad
    from retrograd.autograd.function import _OUT, _bstate, _UserOut

    level, enabled, graph = _state.forward_ad, _state.enabled, _bstate.graph
    packed = node._saved
    if packed:
        # saved tensors cut from the graph around (the rule's graph starts from the dummies);
        # inputs with a tangent as leaves requiring grad, for rules that look at requires_grad
        moving = {id(a) for a, t in zip(args, tangents) if t is not None}
        node._saved = tuple(
            Tensor._make(p.data, isinstance(p, Tensor) and id(p) in moving, None, 0)
            if isinstance(p, (Tensor, _UserOut))
            else (node._out if p is _OUT else p)
            for p in packed
        )
    had = getattr(node, "needs_input_grad", None)
    node.needs_input_grad = tuple(t is not None for t in tangents)
    _state.forward_ad, _state.enabled, _bstate.graph = False, True, True
    try:
        dummies, grads_in = [], []
        for o in outputs:
            if not isinstance(o, Tensor):
                grads_in.append(None)
                continue
            d = Tensor._make(_zeros(o.data), o.data.dtype.kind in "fc", None, 0)
            grads_in.append(d)
            if d.requires_grad:
                dummies.append(d)
        try:
            grads = type(node).backward(node, *grads_in)
        except RuntimeError as e:
            raise RuntimeError(
                f"forward-mode AD through {type(node).__name__}: its tangents come from its "
                "backward run with create_graph=True, which failed. Give it a jvp(ctx, "
                "*tangents) staticmethod, or set tangents_from_forward = True when its backward "
                "is the exact derivative of its forward's ops."
            ) from e
        if not isinstance(grads, tuple):
            grads = (grads,)
        _bstate.graph = False
        total = _pairing(
            [g if isinstance(a, Tensor) else None for g, a in zip(grads, args)], tangents
        )
        found = [None] * len(dummies)
        if total is not None:
            found = [None if j is None else j.data for j in grad(total, dummies, allow_unused=True)]
    finally:
        node._saved = packed
        if had is None:
            del node.needs_input_grad
        else:
            node.needs_input_grad = had
        _state.forward_ad, _state.enabled, _bstate.graph = level, enabled, graph
    return found
