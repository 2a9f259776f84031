"""GradientTape: TensorFlow's way of asking for gradients, on top of retrograd's one graph.

    >>> x = retrograd.tensor(3.0)
    >>> with retrograd.GradientTape() as tape:
    ...     tape.watch(x)
    ...     y = x * x
    >>> tape.gradient(y, x)
    tensor(6.)

How it maps onto the engine. retrograd records an op whenever grad mode is on and an input
requires grad, so there is one graph, not one tape per `GradientTape`:

* `watch(x)` on a leaf with `requires_grad=False` sets `requires_grad=True` on it while the tape
  records (entering the context, or at once if it already records) and sets it back to False
  when the tape stops recording. Several tapes watching the same leaf share it: the flag goes
  back only when the last of them stops. Non-leaf tensors are in the graph already.
* Leaf tensors with `requires_grad=True` of their own (parameters) are TensorFlow's trainable
  variables. With `watch_accessed_variables=True` every such variable the target was computed
  from is watched; with False only those passed to `watch` get gradients (the others get None).
* `gradient` never touches `.grad`: it calls `retrograd.autograd.grad` with `allow_unused=True`
  and keeps the graph. When another tape records (or a persistent tape asks inside its own
  context) the gradient is computed with `create_graph=True`, so the outer tape can
  differentiate it again: nested tapes give higher derivatives.
* `stop_recording()` stops this tape's watches and turns grad mode off for the block, unless
  another tape is recording (then that tape keeps recording, as in TensorFlow).

Limits of sharing one graph: operations on a variable recorded before the tape was entered, or
before `reset()`, are still differentiated through; `watched_variables()` lists the accessed
variables only once a `gradient`/`jacobian` call has seen the graph that uses them.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import warnings

from retrograd.autograd.grad_mode import is_grad_enabled, no_grad
from retrograd.tensor import Tensor

__all__ = ["GradientTape", "UnconnectedGradients"]

NON_PERSISTENT_MSG = (
    "A non-persistent GradientTape can only be used to compute one set of gradients (or jacobians)"
)


class UnconnectedGradients(enum.Enum):
    """What `gradient` returns for a source the target does not depend on: None or zeros."""

    NONE = "none"
    ZERO = "zero"


# -- nested structures (TensorFlow's `nest`, PyTorch's pytree): Tensors in lists/tuples/dicts ----
def tree_flatten(tree) -> tuple[list, object]:
    """The leaves of a nested list/tuple/dict structure (depth first) and its spec."""
    leaves: list = []
    return leaves, _flatten_into(tree, leaves)


def _flatten_into(tree, leaves: list):
    if isinstance(tree, dict):
        keys = list(tree)
        return (
            "dict",
            type(tree),
            tuple(keys),
            tuple(_flatten_into(tree[k], leaves) for k in keys),
        )
    if isinstance(tree, (list, tuple)):
        kind = "list" if isinstance(tree, list) else "tuple"
        return (kind, type(tree), len(tree), tuple(_flatten_into(v, leaves) for v in tree))
    leaves.append(tree)
    return None  # a leaf


def tree_unflatten(spec, leaves) -> object:
    """Rebuild the structure described by `spec` around `leaves` (the inverse of tree_flatten)."""
    it = iter(leaves)
    return _unflatten_from(spec, it)


def _unflatten_from(spec, it):
    if spec is None:
        return next(it)
    kind, typ, meta, children = spec
    values = [_unflatten_from(c, it) for c in children]
    if kind == "dict":
        out = dict(zip(meta, values))
        return out if typ is dict else typ(out)
    if kind == "list":
        return values if typ is list else typ(values)
    if hasattr(typ, "_fields"):  # namedtuple
        return typ(*values)
    return tuple(values) if typ is tuple else typ(values)


def _check_tensors(flat: list, what: str) -> None:
    for t in flat:
        if not isinstance(t, Tensor):
            raise ValueError(
                f"Passed in object {t!r} of type '{type(t).__name__}' as {what}, not Tensor"
            )


# -- which tapes record, and which leaves they switched on ------------------------------------
class _Recording(threading.local):
    def __init__(self) -> None:
        self.tapes: list = []


_recording = _Recording()
_lock = threading.Lock()
# id(leaf) -> [leaf, number of recording tapes watching it]; only leaves a tape switched on
_switched: dict[int, list] = {}


def _acquire(t: Tensor) -> bool:
    """Make leaf t record while a tape watches it; True when a tape now holds it."""
    if t.grad_fn is not None:
        return False
    with _lock:
        entry = _switched.get(id(t))
        if entry is not None:
            entry[1] += 1
            return True
        if t.requires_grad:
            return False  # a variable: it records anyway and is never switched off
        t.requires_grad_(True)
        _switched[id(t)] = [t, 1]
        return True


def _release(t: Tensor) -> None:
    with _lock:
        entry = _switched.get(id(t))
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _switched[id(t)]
            if t.grad_fn is None:
                t.requires_grad_(False)


def _is_variable(t: Tensor) -> bool:
    """A leaf that requires grad by itself (not because a tape watches it): a parameter."""
    return t.grad_fn is None and t.requires_grad and id(t) not in _switched


class GradientTape:
    """Record operations for automatic differentiation, TensorFlow-style.

    >>> x = retrograd.tensor(3.0)
    >>> with retrograd.GradientTape() as g:
    ...     g.watch(x)
    ...     with retrograd.GradientTape() as gg:
    ...         gg.watch(x)
    ...         y = x * x
    ...     dy_dx = gg.gradient(y, x)  # 6.0, differentiable: g records
    >>> g.gradient(dy_dx, x)  # 2.0
    tensor(2.)
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True) -> None:
        self._persistent = bool(persistent)
        self._watch_accessed_variables = bool(watch_accessed_variables)
        self._recording = False
        self._used = False  # a non-persistent tape gave its one set of gradients
        self._watched: dict[int, Tensor] = {}  # id -> tensor, in order of watching
        self._held: dict[int, Tensor] = {}  # leaves this tape switched on while recording
        self._variables: dict[int, Tensor] = {}  # watched variables, in order of watching

    # -- recording --------------------------------------------------------------------------
    def __enter__(self) -> GradientTape:
        self._push()
        return self

    def __exit__(self, *exc) -> None:
        if self._recording:
            self._pop()

    def _push(self) -> None:
        if self._recording:
            raise ValueError(
                "Tape is still recording, This can happen if you try to re-enter an already-"
                "active tape."
            )
        self._recording = True
        _recording.tapes.append(self)
        for t in self._watched.values():
            self._hold(t)

    def _pop(self) -> None:
        if not self._recording:
            raise ValueError("Tape is not recording.")
        self._recording = False
        tapes = _recording.tapes
        for i in range(len(tapes) - 1, -1, -1):
            if tapes[i] is self:
                del tapes[i]
                break
        for t in self._held.values():
            _release(t)
        self._held = {}

    def _hold(self, t: Tensor) -> None:
        if id(t) not in self._held and _acquire(t):
            self._held[id(t)] = t

    def watch(self, tensor) -> None:
        """Ensure `tensor` (a Tensor or a nested list/tuple/dict of them) is traced by this tape."""
        flat, _ = tree_flatten(tensor)
        _check_tensors(flat, "a tensor to watch")
        for t in flat:
            if t.dtype.kind not in "fc":
                warnings.warn(
                    "The dtype of the watched tensor must be floating (e.g. retrograd.float32), "
                    f"got retrograd.{t.dtype}",
                    stacklevel=2,
                )
                continue
            if id(t) in self._watched:
                continue
            if _is_variable(t):
                self._variables[id(t)] = t
            self._watched[id(t)] = t
            if self._recording:
                self._hold(t)

    @contextlib.contextmanager
    def stop_recording(self):
        """Temporarily stop recording operations on this tape.

        >>> with retrograd.GradientTape() as tape:
        ...     with tape.stop_recording():
        ...         y = x ** 2   # not recorded: tape.gradient(y, x) is None
        """
        if not self._recording:
            raise RuntimeError("Trying to stop recording a tape which is not recording.")
        self._pop()
        try:
            if _recording.tapes:  # another tape records: only this one stops
                yield
            else:
                with no_grad():
                    yield
        finally:
            self._push()

    def reset(self) -> None:
        """Clear everything this tape watched, as if exiting and re-entering a new tape."""
        self._pop()
        self._watched = {}
        self._variables = {}
        self._used = False
        self._push()

    def watched_variables(self) -> tuple:
        """The variables (leaves requiring grad of their own) this tape watches."""
        return tuple(self._variables.values())

    # -- gradients --------------------------------------------------------------------------
    def gradient(
        self,
        target,
        sources,
        output_gradients=None,
        unconnected_gradients: UnconnectedGradients | str = UnconnectedGradients.NONE,
    ):
        """d(sum of target)/d(sources), in the structure of `sources` (None where unconnected).

        target: a Tensor or a nested structure of them (their gradients add up); a non-scalar
        target is differentiated as its sum unless `output_gradients` (one per target) is given.
        sources: a Tensor or a nested list/tuple/dict of them.
        unconnected_gradients: 'none' (None for sources the target does not depend on) or
        'zero' (zeros of the source's shape).
        """
        unconnected = _unconnected(unconnected_gradients)
        create_graph = self._begin()
        flat_targets, _ = tree_flatten(target)
        _check_tensors(flat_targets, "a target")
        flat_sources, spec = tree_flatten(sources)
        _check_tensors(flat_sources, "a source")
        if output_gradients is None:
            flat_out_grads = [None] * len(flat_targets)
        else:
            flat_out_grads, _ = tree_flatten(output_gradients)
            if len(flat_out_grads) != len(flat_targets):
                raise ValueError(
                    f"Expected {len(flat_targets)} output_gradients (one per target), got "
                    f"{len(flat_out_grads)}"
                )
        self._note_accessed(flat_targets)
        grads = self._grads(flat_targets, flat_out_grads, flat_sources, create_graph)
        if unconnected is UnconnectedGradients.ZERO:
            grads = [_zeros_like(s) if g is None else g for g, s in zip(grads, flat_sources)]
        self._end()
        return tree_unflatten(spec, grads)

    def jacobian(
        self,
        target: Tensor,
        sources,
        unconnected_gradients: UnconnectedGradients | str = UnconnectedGradients.NONE,
        parallel_iterations=None,
        experimental_use_pfor: bool = True,
    ):
        """d(target)/d(source) for each source: shape target.shape + source.shape.

        One reverse pass per element of `target`; `parallel_iterations` and
        `experimental_use_pfor` are accepted for compatibility and ignored.
        """
        del parallel_iterations, experimental_use_pfor
        unconnected = _unconnected(unconnected_gradients)
        create_graph = self._begin()
        _check_tensors([target], "the target")
        flat_sources, spec = tree_flatten(sources)
        _check_tensors(flat_sources, "a source")
        self._note_accessed([target])
        n = target.numel()
        rows = [[] for _ in flat_sources]
        for k in range(n):
            seed = _one_hot(target, k)
            gs = self._grads([target], [seed], flat_sources, create_graph)
            for r, g in zip(rows, gs):
                r.append(g)
        out = []
        for s, r in zip(flat_sources, rows):
            shape = tuple(target.shape) + tuple(s.shape)
            if n and all(g is None for g in r):
                j = None
            else:
                filled = [_zeros_like(s) if g is None else g for g in r]
                j = _stack(filled, (n, *s.shape), s).reshape(shape)
            if j is None and unconnected is UnconnectedGradients.ZERO:
                j = _zeros(shape, s)
            out.append(j)
        self._end()
        return tree_unflatten(spec, out)

    def batch_jacobian(
        self,
        target: Tensor,
        source: Tensor,
        unconnected_gradients: UnconnectedGradients | str = UnconnectedGradients.NONE,
        parallel_iterations=None,
        experimental_use_pfor: bool = True,
    ):
        """Per-example Jacobians: target [b, ...] and source [b, ...] give [b, *t[1:], *s[1:]].

        Assumes, as TensorFlow does, that example i of target depends only on example i of
        source.
        """
        del parallel_iterations, experimental_use_pfor
        from retrograd.ops import permute

        unconnected = _unconnected(unconnected_gradients)
        create_graph = self._begin()
        _check_tensors([target, source], "the target or source")
        if target.ndim == 0 or source.ndim == 0 or target.shape[0] != source.shape[0]:
            raise ValueError(
                "Need first dimension of target shape "
                f"({tuple(target.shape)}) and source shape ({tuple(source.shape)}) to match."
            )
        self._note_accessed([target])
        b = target.shape[0]
        m = target.numel() // b if b else 0
        flat_target = target.reshape(b, m) if target.requires_grad else target
        rows = []
        for k in range(m):
            seed = _zeros((b, m), target)
            seed.data[:, k] = 1
            (g,) = self._grads([flat_target], [seed], [source], create_graph)
            rows.append(g)
        shape = (b, *target.shape[1:], *source.shape[1:])
        if m and all(g is None for g in rows):
            j = _zeros(shape, source) if unconnected is UnconnectedGradients.ZERO else None
        else:
            filled = [_zeros_like(source) if g is None else g for g in rows]
            stacked = _stack(filled, (m, *source.shape), source)  # [m, b, ...]
            order = (1, 0, *range(2, stacked.ndim))
            j = permute(stacked, *order).reshape(shape)
        self._end()
        return j

    # -- internals ----------------------------------------------------------------------------
    def _begin(self) -> bool:
        """Check the tape can still answer; return whether results must be differentiable."""
        if self._used:
            raise RuntimeError(NON_PERSISTENT_MSG)
        if self._recording and not self._persistent:
            self._pop()  # as in TensorFlow: asking stops a non-persistent tape recording
        # differentiable when a tape still records (an enclosing one, or this persistent one)
        return bool(_recording.tapes) and is_grad_enabled()

    def _end(self) -> None:
        if not self._persistent:
            self._used = True
            self._watched = {}

    def _tracked(self, s: Tensor) -> bool:
        """Whether this tape gives `s` a gradient (False: None, as for an unwatched tensor)."""
        if s.dtype.kind not in "fc":
            return False
        if id(s) in self._watched or s.grad_fn is not None:
            return True
        return self._watch_accessed_variables and _is_variable(s)

    def _grads(self, targets, out_grads, sources, create_graph) -> list:
        from retrograd.autograd import grad

        held = []
        try:
            # watched leaves record again while the gradient is taken (the tape may be closed)
            for t in self._watched.values():
                if _acquire(t):
                    held.append(t)
            outs, seeds = [], []
            for t, g in zip(targets, out_grads):
                if not t.requires_grad:
                    continue  # not computed from anything watched: contributes nothing
                if g is None:
                    g = _ones_like(t)
                elif not isinstance(g, Tensor):
                    g = Tensor(g, dtype=t.dtype)
                outs.append(t)
                seeds.append(g)
            idx = [i for i, s in enumerate(sources) if self._tracked(s) and s.requires_grad]
            result = [None] * len(sources)
            if outs and idx:
                gs = grad(
                    outs,
                    [sources[i] for i in idx],
                    grad_outputs=seeds,
                    retain_graph=True,
                    create_graph=create_graph,
                    allow_unused=True,
                )
                for i, g in zip(idx, gs):
                    result[i] = g
            return result
        finally:
            for t in held:
                _release(t)

    def _note_accessed(self, targets) -> None:
        """Record the variables the targets were computed from (TensorFlow's accessed ones)."""
        if not self._watch_accessed_variables:
            return
        stack = [t.grad_fn for t in targets if t.grad_fn is not None]
        for t in targets:
            if _is_variable(t):
                self._variables.setdefault(id(t), t)
        seen = set(stack)
        while stack:
            node = stack.pop()
            for nxt in node.next_functions:
                if nxt is None:
                    continue
                if isinstance(nxt, Tensor):
                    if _is_variable(nxt):
                        self._variables.setdefault(id(nxt), nxt)
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)


def _unconnected(value) -> UnconnectedGradients:
    try:
        return UnconnectedGradients(value)
    except ValueError:
        raise ValueError(f"Unknown value for unconnected_gradients: {value!r}") from None


def _zeros(shape, like: Tensor) -> Tensor:
    from retrograd.backend import get_xp

    return Tensor._make(get_xp(like.data).zeros(shape, dtype=like.dtype), False, None, 0)


def _zeros_like(t: Tensor) -> Tensor:
    return _zeros(t.shape, t)


def _ones_like(t: Tensor) -> Tensor:
    from retrograd.backend import get_xp

    return Tensor._make(get_xp(t.data).ones(t.shape, dtype=t.dtype), False, None, 0)


def _one_hot(t: Tensor, k: int) -> Tensor:
    seed = _zeros(t.shape, t)
    seed.data.reshape(-1)[k] = 1
    return seed


def _stack(rows: list, shape: tuple, like: Tensor) -> Tensor:
    """Stack equally shaped Tensors along a new first axis; differentiable when they are."""
    if not any(r.requires_grad for r in rows):
        from retrograd.backend import get_xp

        xp = get_xp(like.data)
        if not rows:
            return _zeros(shape, like)
        return Tensor._make(xp.stack([r.data for r in rows]), False, None, 0)
    return _stack_graph(rows)


def _stack_graph(rows: list) -> Tensor:
    """Stack Tensors along a new first axis keeping the graph (for Jacobians of gradients)."""
    from retrograd import ops

    stack = getattr(ops, "stack", None)
    if stack is not None:
        return stack(rows, 0)
    # without a stack op: place each row into zeros and add up (O(n^2), for small Jacobians)
    shape = (len(rows), *rows[0].shape)
    out = None
    for k, r in enumerate(rows):
        placed = ops.index_put_zeros(r, shape, (k,))
        out = placed if out is None else out + placed
    return out
