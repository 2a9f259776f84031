"""Activation-memory accounting: how many bytes the graph holds for the backward pass.

Every claim about memory-efficient backprop (checkpointing, reversible blocks) is a number
measured here. The graph is walked when asked (no hook in the engine): from the given outputs
through `grad_fn` / `next_functions`, iteratively, summing the arrays each node keeps for its
gradient rule:

* saved inputs (Tensors in `_saved`), saved outputs (`_OUT` markers: the node's `_out` array, or
  a user Function's saved output), other saved arrays (intermediates, masks), and arrays a rule
  keeps as attributes (e.g. an index or mask kept as `self.mask`);
* each distinct piece of memory once: arrays are keyed by their base (the array that owns the
  memory), so two views of one array, or an array saved by two nodes, count once, at the size of
  the memory they keep alive;
* not the data of leaf tensors that require grad (parameters, inputs you differentiate with
  respect to), nor views of it: that memory exists whether or not a graph is built. Pass
  `include_leaves=True` to count the leaves the graph saves too (a parameter a rule keeps).
  A leaf that does not require grad (a data batch, a dropout mask) is counted: the graph keeps
  it alive for backward.

Nodes whose saved values were freed by a backward pass (without `retain_graph=True`) hold nothing.

    >>> x = retrograd.randn(128, 256)
    >>> y = net(x)
    >>> saved_tensors_bytes(y)                # bytes held for y.backward()
    >>> with track_saved_memory() as mem:
    ...     loss = net(x).sum()
    ...     mem.sample(loss)                  # the forward's peak: everything is held now
    ...     loss.backward()                   # checkpoint recomputations report into mem
    >>> mem.peak
"""

from __future__ import annotations

import threading
import weakref

from retrograd.autograd.function import _FREED, _OUT, _UserOut
from retrograd.tensor import Tensor

__all__ = ["saved_tensors_bytes", "track_saved_memory", "SavedMemoryTracker"]


def saved_tensors_bytes(
    tensors, include_leaves: bool = False, include_outputs: bool = False
) -> int:
    """Bytes of the arrays held for backward by the graph reachable from `tensors`.

    include_outputs=True also counts the output arrays the graph's nodes keep (`node._out`)
    whether or not their rules saved them: a node keeps its output only when its rule reads it,
    or when the forward was recorded under `retrograd.diagnostics.keep_values()` (or in anomaly
    mode). All the memory the graph keeps alive.

    >>> y = (x @ w).relu()          # x a data batch, w a parameter
    >>> saved_tensors_bytes(y)      # x (saved by matmul) + relu's output; w is a leaf
    """
    return sum(
        _held(_as_tensors(tensors), include_leaves, include_outputs=include_outputs).values()
    )


def _as_tensors(tensors) -> list:
    if tensors is None:
        return []
    if isinstance(tensors, Tensor):
        return [tensors]
    return [t for t in tensors if isinstance(t, Tensor)]


def _base(a):
    """The array that owns `a`'s memory (NumPy and CuPy views keep it as `.base`)."""
    b = getattr(a, "base", None)
    while b is not None and hasattr(b, "nbytes") and hasattr(b, "shape"):
        a = b
        b = getattr(a, "base", None)
    return a


# per-node bookkeeping of the engine, not values a rule keeps
_ENGINE_ATTRS = frozenset(
    ("_versions", "_hooks", "_retains", "_post_hooks", "_trace", "_out_meta", "_arg_is_tensor")
)


def _is_array(v) -> bool:
    return hasattr(v, "nbytes") and hasattr(v, "shape") and hasattr(v, "dtype")


def _held(roots, include_leaves: bool = False, nodes=None, include_outputs: bool = False) -> dict:
    """{id of base array: bytes} for the graph reachable from roots (Tensors) or `nodes`."""
    counted: dict = {}
    keep: list = []  # the base arrays themselves, so that their ids stay unique meanwhile
    leaf_bases: set = set()

    def count(a) -> None:
        b = _base(a)
        k = id(b)
        if k not in counted:
            counted[k] = int(b.nbytes)
            keep.append(b)

    def leaf(t: Tensor, saved: bool) -> None:
        b = _base(t.data)
        leaf_bases.add(id(b))
        keep.append(b)
        if include_leaves and saved:
            count(b)

    def visit(v, node, depth: int) -> None:
        if v is _OUT:  # (a str marker: test it before skipping plain values)
            if node._out is not None:
                count(node._out)
        elif v is None or isinstance(v, (bool, int, float, str)):
            return
        elif isinstance(v, Tensor):
            if v.grad_fn is None and v._requires_grad:
                leaf(v, True)
            else:
                count(v.data)
        elif isinstance(v, _UserOut):
            count(v.data)
        elif _is_array(v):
            count(v)
        elif depth < 3 and isinstance(v, (tuple, list)):
            for item in v:
                visit(item, node, depth + 1)
        elif depth < 3 and isinstance(v, dict):
            for item in v.values():
                visit(item, node, depth + 1)

    stack = list(nodes) if nodes is not None else []
    for t in roots:
        if t.grad_fn is not None:
            stack.append(t.grad_fn)
    seen = set(stack)
    while stack:
        n = stack.pop()
        saved = n._saved
        if include_outputs and n._out is not None:
            count(n._out)
        if saved is not _FREED:
            if saved is not None:
                for v in saved:
                    visit(v, n, 0)
            # arrays a rule keeps as attributes (masks, indices) are held for backward as well
            for k, v in n.__dict__.items():
                if k not in _ENGINE_ATTRS:
                    visit(v, n, 1)
        nexts = getattr(n, "next_functions", None)
        if not nexts:
            continue
        for nxt in nexts:
            if nxt is None:
                continue
            if isinstance(nxt, Tensor):  # a leaf edge
                if nxt._requires_grad:
                    leaf(nxt, False)
            elif nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    if not include_leaves:
        for k in leaf_bases:
            counted.pop(k, None)
    return counted


# -- peak tracking ------------------------------------------------------------------------------


class _Active(threading.local):
    def __init__(self) -> None:
        self.trackers: list = []


_active = _Active()


class SavedMemoryTracker:
    """Bytes held for backward, sampled when asked and during recomputations in backward.

    `sample(*tensors)` walks the graph behind `tensors` (call it at the end of a forward: the
    forward's peak, since a forward only adds to what is held) and remembers those outputs, so
    that a checkpoint or reversible block recomputing a segment inside the backward pass can add
    a sample of "what the rest of the graph still holds + the recomputed segment's graph".
    """

    def __init__(self, include_leaves: bool = False) -> None:
        self.include_leaves = include_leaves
        self.peak = 0  # the largest sample
        self.current = 0  # the latest sample
        self.samples: list[tuple[str, int]] = []  # (where, bytes), in order
        self._roots: list = []  # weak references to the sampled outputs' nodes

    def sample(self, *tensors, label: str = "sample") -> int:
        """Record the bytes held for backward by the graph behind `tensors`; returns them."""
        roots = _as_tensors(tensors[0] if len(tensors) == 1 else tensors)
        for t in roots:
            if t.grad_fn is not None:
                self._roots.append(weakref.ref(t.grad_fn))
        return self._record(label, _held(roots, self.include_leaves))

    def _record(self, label: str, held: dict) -> int:
        total = sum(held.values())
        self.current = total
        self.peak = max(self.peak, total)
        self.samples.append((label, total))
        return total

    def _sample_recomputation(self, label: str, tensors) -> None:
        nodes = [n for n in (r() for r in self._roots) if n is not None]
        held = _held([], self.include_leaves, nodes=nodes)
        held.update(_held(_as_tensors(tensors), self.include_leaves))
        self._record(label, held)

    def __repr__(self) -> str:
        return f"SavedMemoryTracker(peak={self.peak}, samples={len(self.samples)})"


class track_saved_memory:
    """Context manager yielding a `SavedMemoryTracker` (see the module docstring)."""

    def __init__(self, include_leaves: bool = False) -> None:
        self.tracker = SavedMemoryTracker(include_leaves)

    def __enter__(self) -> SavedMemoryTracker:
        _active.trackers.append(self.tracker)
        return self.tracker

    def __exit__(self, *exc) -> None:
        _active.trackers.remove(self.tracker)


def note_recomputation(label: str, tensors) -> None:
    """Called by checkpoint / reversible backward after recomputing a segment with grad on:
    every active tracker samples the outer graph's remaining saved arrays plus that segment's."""
    if _active.trackers:
        for tracker in _active.trackers:
            tracker._sample_recomputation(label, tensors)
