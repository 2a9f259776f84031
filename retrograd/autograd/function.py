"""Function: one node of the graph, its forward and its gradient rule side by side.

Two ways to write one, run by the same engine:

* primitives (in `retrograd.ops`) set `raw = True`: `forward(self, *arrays, **params)` computes on
  arrays and `backward(self, g)` returns one gradient per input. The rule is written in operations
  that work on arrays and Tensors alike, so a plain backward runs it on arrays (fast) and
  `create_graph=True` runs it on Tensors (differentiable).
* user functions, PyTorch's way: `@staticmethod forward(ctx, *args)` gets Tensors and returns
  Tensors, `@staticmethod backward(ctx, *grads)` gets and returns Tensors.

    >>> class Cube(Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x**3
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 3 * x**2 * g
    >>> y = Cube.apply(x)
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from retrograd.autograd.grad_mode import _state

_FREED = "freed"
_OUT = "out"  # marks a saved output in the packed saved tuple

FREED_MSG = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you "
    "call .backward() or autograd.grad(). Specify retain_graph=True if you need to backward "
    "through the graph a second time or if you need to access saved tensors after calling "
    "backward."
)


# forward-mode AD: the number of dual levels open in any thread (kept by forward_ad.py). Reading
# a module global is the cheapest check for the hot path; the thread-local level comes second.
_dual_levels = 0


class _BackwardState(threading.local):
    """Whether the backward pass in progress builds a graph (create_graph=True). Per thread:
    one thread's double backward must not turn another's plain backward into a graph."""

    graph = False
    # a plain backward that frees the graph as it goes (no retain_graph): a rule may drop its
    # saved values as soon as it has what it needs (`release_saved`)
    consume = False


_bstate = _BackwardState()


# nodes keep their output array (`_out`) only when their rule reads it, or when the forward is
# recorded under `keep_values()` (the diagnostics show every node's value) or in anomaly mode.
# The number of keep_values blocks open in any thread: a module global is the hot path's check.
_keep_levels = 0


class _KeepState(threading.local):
    on = False


_kstate = _KeepState()


class keep_values:
    """Record the forward so that every node keeps its output value (thread-local).

    Outside this mode a node keeps its output only when its gradient rule reads it, so that
    the graph holds no more memory than backward needs; `explain` then shows those values,
    the loss's and those of the tensors it is given by name, and lists the others as not
    kept. Use it around the forward you want to inspect:

    >>> with keep_values():
    ...     loss = model(x).sum()
    >>> print(explain(loss).to_text())
    """

    def __enter__(self):
        global _keep_levels
        self.prev = _kstate.on
        _kstate.on = True
        _keep_levels += 1
        return self

    def __exit__(self, *exc) -> None:
        global _keep_levels
        _kstate.on = self.prev
        _keep_levels -= 1

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with keep_values():
                return fn(*args, **kwargs)

        return wrapper


class Function:
    """A node of the graph: created by `apply`, holding edges to its inputs' nodes."""

    __slots__ = (
        "next_functions",
        "needs_input_grad",
        "_saved",
        "_out",
        "_in_shapes",
        "__weakref__",
        "__dict__",
    )

    # rarely set per node: class-level defaults keep the hot path to a few attribute writes
    _versions = None  # [(version counter, expected value, tensor or None for the output)]
    _hooks = None  # {output index: [tensor hooks]}
    _retains = None  # {output index: weakref to a tensor that retains its grad}
    _post_hooks = None
    _trace = None  # forward stack, recorded in anomaly mode
    _in_nrs = None  # output index of each input within its producer (multi-output producers)
    _n_out = 1
    _saves_out = False  # the saved values include the output (its rule reads `_out`)

    raw = False  # primitives compute on arrays; user Functions on Tensors
    # primitives: for each array passed to `save`, the inputs whose gradients use it (None:
    # all); an entry no needed gradient uses is dropped when the node is recorded
    saved_uses = None
    is_view = False  # output shares memory (and the version counter) with input 0
    # the rule saves something smaller than its output (ReLU: a mask) where PyTorch saves the
    # output: an in-place write into the output before backward raises all the same
    watches_out = False
    # every array the rule returns is newly allocated, and returned once: the engine may hand it
    # to the next rule as that rule's own (`owns_grad`), to be overwritten in place
    fresh_grads = False
    multi_output = None  # a view op one of several outputs: its name (unbind's "Unbind")
    differentiable = True
    # False where PyTorch composes the op and the last of its nodes (a view) saves nothing
    # (matmul's batched forms): run alone, as the own node of a backward(inputs=...) input with
    # no other input below it, PyTorch frees and checks nothing, and neither does the engine
    top_saves = True

    # -- saving what backward needs -------------------------------------------------------------
    def save(self, *values) -> None:
        """Keep arrays (inputs' arrays, the output, intermediates) for the gradient rule."""
        self._saved = values

    def release_saved(self) -> None:
        """For a rule that has unpacked `saved`: in a backward that frees the graph as it goes,
        drop the node's saved values now, so that the rule can free an array it no longer
        needs (`del` its local) before it allocates the next one. A no-op otherwise."""
        if _bstate.consume:
            self._saved = _FREED
            self._versions = None

    def owns_grad(self) -> bool:
        """Whether the gradient handed to the rule running now is the engine's alone (a
        fresh array no one else holds), so that the rule may write its result into it."""
        return self.__dict__.get("_owns_grad", False)

    @property
    def saved(self) -> tuple:
        """What `save` kept: arrays in a plain backward, Tensors when building a graph."""
        packed = self._saved
        if packed is _FREED:
            raise RuntimeError(FREED_MSG)
        if packed is None:
            return ()
        versions = self._versions
        if versions is not None:
            for counter, expected, _ in versions:  # inline: one call per backward is costly
                if counter[0] != expected:
                    self._check_versions()  # raises, naming the tensor
        # list comprehensions: cheaper than generators (0.4 vs 0.6 us a node)
        if _bstate.graph:
            return tuple([self._unpack_tensor(p) for p in packed])
        return tuple(
            [p.data if isinstance(p, Tensor) else (self._out if p is _OUT else p) for p in packed]
        )

    def _unpack_tensor(self, p):
        if isinstance(p, _UserOut):
            return Tensor._make(p.data, p.requires_grad, self if p.requires_grad else None, p.index)
        if p is _OUT:
            # rebuild the output as a Tensor whose grad_fn is this node, as PyTorch does, so a
            # rule that uses the output differentiates through it; no reference cycle is kept.
            return Tensor._make(self._out, True, self, 0)
        if isinstance(p, Tensor):
            return p
        if hasattr(p, "shape") and hasattr(p, "dtype"):
            return Tensor._make(p, False, None, 0)
        return p

    def _check_versions(self) -> None:
        for counter, expected, tensor in self._versions:
            if counter[0] != expected:
                if tensor is None:  # the saved (or watched) output of this node
                    out = self._out
                    if out is not None:
                        shape, dtype = out.shape, out.dtype
                    else:
                        shape, dtype = self.__dict__["_out_meta"][0]
                    desc = f"[retrograd.{dtype} {list(shape)}], which is output 0 of "
                    desc += f"{self.name()},"
                elif tensor.grad_fn is not None:
                    desc = (
                        f"[retrograd.{tensor.dtype} {list(tensor.shape)}], which is output "
                        f"{tensor._out_nr} of {tensor.grad_fn.name()},"
                    )
                else:
                    desc = f"[retrograd.{tensor.dtype} {list(tensor.shape)}]"
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by "
                    f"an inplace operation: {desc} is at version {counter[0]}; expected version "
                    f"{expected} instead. Hint: the backtrace further above can point you to the "
                    "operation that failed to compute its gradient. The variable in question was "
                    "changed in there or anywhere later. Good luck!"
                )

    # -- PyTorch's ctx interface ----------------------------------------------------------------
    def save_for_backward(self, *tensors) -> None:
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(
                    f"save_for_backward can only save variables, but argument {i} is of type "
                    f"{type(t).__name__}"
                )
        self._saved = tensors

    @property
    def saved_tensors(self) -> tuple:
        return self.saved

    def mark_non_differentiable(self, *tensors) -> None:
        self.__dict__["_non_diff"] = {id(t) for t in tensors}

    def set_materialize_grads(self, value: bool) -> None:
        self.__dict__["_materialize"] = bool(value)

    def mark_dirty(self, *tensors) -> None:  # accepted for compatibility
        pass

    # -- the graph ------------------------------------------------------------------------------
    @classmethod
    def apply(cls, *args, **params):
        """Run forward and, when grad mode is on and an input requires grad, record the node."""
        if cls.raw:
            return _apply_raw(cls, args, params)
        return _apply_user(cls, args, params)

    def name(self) -> str:
        return type(self).__name__ + "Backward"

    def register_hook(self, fn):
        """fn(grad_inputs, grad_outputs) runs after this node's backward (PyTorch's Node hook)."""
        if self._post_hooks is None:
            self._post_hooks = []
        self._post_hooks.append(fn)
        from retrograd.tensor import _RemovableHandle

        return _RemovableHandle(self._post_hooks, fn)

    def __repr__(self) -> str:
        return f"<{self.name()}>"

    def forward(self, *args, **params):  # pragma: no cover - abstract
        raise NotImplementedError("You must implement the forward function for custom Function.")

    def backward(self, *grads):  # pragma: no cover - abstract
        raise NotImplementedError("You must implement the backward function for custom Function.")


def _apply_raw(cls, inputs, params):
    node = cls.__new__(cls)
    node._saved = None
    out = node.forward(*[t.data for t in inputs], **params)
    if isinstance(out, np.generic):  # NumPy returns scalars from 0-d arithmetic: keep arrays
        scalar, out = out, np.asarray(out)
        if node._saved:  # a rule that saved its own output must find the array it gets back
            node._saved = tuple(out if a is scalar else a for a in node._saved)
    record = False
    if _state.enabled and cls.differentiable:
        for t in inputs:
            if t._requires_grad:
                record = True
                break
    if not record:
        result = Tensor._make(out, False, None, 0)
        if cls.is_view:
            _link_view(result, inputs[0], cls, params)
        if _dual_levels and _state.forward_ad:  # in a dual level: the output's tangent
            _forward_ad.attach_tangent(node, inputs, params, result)
        return result
    nexts = []
    multi = False
    for t in inputs:
        nexts.append((t.grad_fn or t) if t._requires_grad else None)
        if t._out_nr:
            multi = True
    node.next_functions = nexts
    node.needs_input_grad = [t._requires_grad for t in inputs]
    node._in_shapes = [t.data.shape for t in inputs]
    if multi:
        node._in_nrs = [t._out_nr for t in inputs]
    # the output array only when asked (a saved output is kept by _pack_saved below)
    node._out = out if _keep_levels and _kstate.on else None
    if _state.anomaly:
        node._trace = _capture_trace()
        node._out = out  # anomaly mode's hints look at the forward value
    result = Tensor._make(out, True, node, 0)
    if cls.is_view:
        _link_view(result, inputs[0], cls, params)
    saved = node._saved
    if saved:
        _pack_saved(node, saved, inputs, out, result)
    if _dual_levels and _state.forward_ad:
        _forward_ad.attach_tangent(node, inputs, params, result)
    return result


def _link_view(view: Tensor, x: Tensor, cls, params) -> None:
    """A view shares x's version counter and remembers its base and how it was taken from it,
    so that an in-place change through the view can rebase the base's history (CopySlices)."""
    view._version = x._version
    base = x._view_base
    if base is None:
        base = x
    view._view_base = base
    view._view_chain = x._view_chain + ((cls, params),)
    # the base knows its live views: an in-place write into it (or one of them) regenerates
    # their history from the base's new one (PyTorch's view replay); dead refs are pruned as
    # the list doubles
    views = base.__dict__.get("_views")
    if views is None:
        base.__dict__["_views"] = [weakref.ref(view)]
    else:
        views.append(weakref.ref(view))
        if len(views) >= 16 and len(views) & (len(views) - 1) == 0:
            views[:] = [r for r in views if r() is not None]


def _pack_saved(node, saved, inputs, out, result) -> None:
    packed = []
    versions = []
    # keep only what the needed gradients use (PyTorch saves x for Mul(x, c) only when c
    # requires grad): saved entry i feeds the gradients of inputs uses[i]; a forward-mode
    # tangent needs every entry
    uses = node.saved_uses
    if uses is not None and not (_dual_levels and _state.forward_ad):
        need = node.needs_input_grad
        saved = [a if any(need[k] for k in u) else None for a, u in zip(saved, uses)]
    for a in saved:
        if a is None:
            packed.append(None)
            continue
        if a is out:
            packed.append(_OUT)
            versions.append((result._version, result._version[0], None))
            node._saves_out = True
            node._out = out
            continue
        for t in inputs:
            if t.data is a:
                packed.append(t)
                versions.append((t._version, t._version[0], t))
                break
        else:
            packed.append(a)
    if node.watches_out:  # the rule keeps no output, but a write into it must still raise
        versions.append((result._version, result._version[0], None))
        node.__dict__["_out_meta"] = ((out.shape, out.dtype),)  # for the error message
    node._saved = tuple(packed)
    node._versions = versions or None


def _apply_user(cls, args, params):
    from retrograd.autograd.grad_mode import no_grad

    node = cls.__new__(cls)
    node._saved = None
    tensors = [a for a in args if isinstance(a, Tensor)]
    record = _state.enabled and any(t.requires_grad for t in tensors)
    node.needs_input_grad = tuple(
        isinstance(a, Tensor) and a.requires_grad and record for a in args
    )
    with no_grad():
        outs = cls.forward(node, *args, **params)
    single = not isinstance(outs, tuple)
    out_list = (outs,) if single else outs
    if not record:
        if _dual_levels and _state.forward_ad:
            _forward_ad.attach_user_tangents(node, args, out_list, out_list)
        return outs
    node.next_functions = [(t.grad_fn or t) if t._requires_grad else None for t in tensors]
    node.__dict__["_arg_is_tensor"] = tuple(isinstance(a, Tensor) for a in args)
    if any(t._out_nr for t in tensors):
        node._in_nrs = [t._out_nr for t in tensors]
    node._in_shapes = [t.data.shape for t in tensors]
    if _state.anomaly:
        node._trace = _capture_trace()
    non_diff = node.__dict__.get("_non_diff", ())
    results = []
    n_diff = 0
    for i, o in enumerate(out_list):
        if isinstance(o, Tensor) and id(o) not in non_diff and o.dtype.kind in "fc":
            r = Tensor._make(o.data, True, node, i)
            n_diff += 1
        elif isinstance(o, Tensor):
            r = Tensor._make(o.data, False, None, 0)
        else:
            r = o
        results.append(r)
    node._n_out = len(out_list)
    node.__dict__["_out_meta"] = tuple(
        (o.data.shape, o.data.dtype) if isinstance(o, Tensor) else None for o in out_list
    )
    node._out = None
    # saved tensors: inputs are kept as Tensors; a saved output as (marker, index) so that no
    # reference cycle node -> output -> node forms; it is rebuilt on unpack
    saved = node._saved
    if saved:
        packed = []
        versions = []
        out_index = {id(o): i for i, o in enumerate(out_list)}
        for s in saved:
            if isinstance(s, Tensor) and id(s) in out_index:
                i = out_index[id(s)]
                r = results[i]
                packed.append(_UserOut(i, r.data, r._requires_grad))
                versions.append((r._version, r._version[0], r))
            elif isinstance(s, Tensor):
                packed.append(s)
                versions.append((s._version, s._version[0], s))
            else:
                packed.append(s)
        node._saved = tuple(packed)
        node._versions = versions or None
    if _dual_levels and _state.forward_ad:
        _forward_ad.attach_user_tangents(node, args, results, out_list)
    return results[0] if single else tuple(results)


def _run_user_backward(node, grads):
    """Call a user Function's backward with Tensor grads; return one gradient per Tensor input."""
    from retrograd.autograd.grad_mode import set_grad_enabled

    meta = node.__dict__["_out_meta"]
    materialize = node.__dict__.get("_materialize", True)
    tgrads = []
    for g, m in zip(grads, meta):
        if g is None:
            if materialize and m is not None:
                import numpy as np

                g = Tensor._make(np.zeros(m[0], dtype=m[1]), False, None, 0)
            tgrads.append(g)
        elif isinstance(g, Tensor):
            tgrads.append(g)
        else:
            tgrads.append(Tensor._make(g, False, None, 0))
    saved_mode = _bstate.graph
    _bstate.graph = True  # ctx.saved_tensors gives Tensors to user code
    try:
        with set_grad_enabled(saved_mode):
            result = type(node).backward(node, *tgrads)
    finally:
        _bstate.graph = saved_mode
    if not isinstance(result, tuple):
        result = (result,)
    is_tensor = node.__dict__["_arg_is_tensor"]
    if len(result) < len(is_tensor):
        raise RuntimeError(
            f"function {node.name()} returned an incorrect number of gradients (expected "
            f"{len(is_tensor)}, got {len(result)})"
        )
    out = []
    k = 0
    for i, (r, flag) in enumerate(zip(result, is_tensor)):
        if not flag:
            if r is not None:
                raise RuntimeError(
                    f"function {node.name()} returned a gradient different than None at position "
                    f"{i + 1}, but the corresponding forward input was not a Variable"
                )
            continue
        if r is not None:
            if not isinstance(r, Tensor):
                r = Tensor._make(r, False, None, 0)
            expected = node._in_shapes[k]
            if r.shape != expected and not _broadcastable(expected, r.shape):
                raise RuntimeError(
                    f"Function {node.name()} returned an invalid gradient at index {k} - got "
                    f"{list(r.shape)} but expected shape compatible with {list(expected)}"
                )
            if not saved_mode:
                r = r.data
        out.append(r)
        k += 1
    return tuple(out)


def _broadcastable(shape, to) -> bool:
    """Whether `shape` broadcasts to `to` (a gradient of that shape can be summed back)."""
    if len(shape) > len(to):
        return False
    return all(s == t or s == 1 for s, t in zip(reversed(shape), reversed(to)))


class _UserOut:
    """A user Function's saved output: rebuilt as a Tensor whose grad_fn is the node."""

    __slots__ = ("index", "data", "requires_grad")

    def __init__(self, index: int, data, requires_grad: bool) -> None:
        self.index, self.data, self.requires_grad = index, data, requires_grad


def _capture_trace():
    import traceback

    return traceback.format_stack()[:-3]


from retrograd.tensor import Tensor  # noqa: E402, I001  (Tensor imports this module too)
from retrograd.autograd import forward_ad as _forward_ad  # noqa: E402  (it needs Tensor first)
