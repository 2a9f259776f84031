"""Anomaly detection: the first gradient rule that produces NaN or Inf raises, naming the node and
showing the forward traceback of the op that created it (retrograd's own frames trimmed, so the
user's line is last).

Beyond PyTorch, the error explains the most common cause of a NaN gradient: a `where` (or any
mask) that discards values whose derivative is not finite. In ``where(x > 0, sqrt(x), 0)`` the
gradient that reaches sqrt is zero at the unselected positions, and sqrt's derivative there is
inf or nan: 0 * inf = nan. The message says so and shows the safe pattern (mask the input, not
only the output). The graph is only inspected on this error path, never during a healthy pass.

Anomaly mode is thread-local, like grad mode: enabling it in one thread leaves the others alone.
"""

from __future__ import annotations

import gc
import os
import re
import sys
import threading

from retrograd.autograd.grad_mode import _DecoratorContextManager, _state
from retrograd.backend import get_xp

__all__ = [
    "detect_anomaly",
    "set_detect_anomaly",
    "is_anomaly_enabled",
    "is_anomaly_check_nan_enabled",
    "check_node_output",
    "format_forward_trace",
]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_FILE_RE = re.compile(r'\s*File "([^"]+)", line (\d+)')
_SEARCH_DEPTH = 6  # how many ops downstream of the failing node to look for a mask


class _AnomalyLocal(threading.local):
    """The part of anomaly mode that grad mode's thread-local state does not hold."""

    def __init__(self) -> None:
        self.check_nan = True


_local = _AnomalyLocal()


def is_anomaly_enabled() -> bool:
    """Whether anomaly mode is on in this thread (forward traces are recorded)."""
    return _state.anomaly


def is_anomaly_check_nan_enabled() -> bool:
    """Whether anomaly mode is on in this thread and checks gradients for NaN/Inf."""
    return _state.anomaly and _local.check_nan


class detect_anomaly(_DecoratorContextManager):
    """Inside the block, nodes record their forward traceback and backward checks every rule's
    output for NaN/Inf (`check_nan=False`: record the tracebacks only). Thread-local.

    >>> with retrograd.autograd.detect_anomaly():
    ...     loss = model(x).sum()
    ...     loss.backward()
    """

    _bare_decorator_ok = False

    def __init__(self, check_nan: bool = True) -> None:
        self.check_nan = bool(check_nan)

    def __enter__(self) -> None:
        self.prev = (_state.anomaly, _local.check_nan)
        _state.anomaly = True
        _local.check_nan = self.check_nan

    def __exit__(self, *exc) -> None:
        _state.anomaly, _local.check_nan = self.prev

    def clone(self):
        return self.__class__(self.check_nan)


class set_detect_anomaly(_DecoratorContextManager):
    """Turn anomaly detection on or off in this thread; takes effect at once, and as a context
    manager restores the previous setting.

    >>> retrograd.autograd.set_detect_anomaly(True)
    """

    _bare_decorator_ok = False

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        self.prev = (_state.anomaly, _local.check_nan)
        self.mode, self.check_nan = bool(mode), bool(check_nan)
        _state.anomaly = self.mode
        _local.check_nan = self.check_nan

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc) -> None:
        _state.anomaly, _local.check_nan = self.prev

    def clone(self):
        return self.__class__(self.mode, self.check_nan)


# -- the check -------------------------------------------------------------------------------------
_MISSING = object()


def check_node_output(node, grads, grad_output=_MISSING) -> None:
    """Raise PyTorch's error if a rule returned NaN or Inf in any gradient.

    `grad_output` is the gradient that arrived at the node; it lets the message explain a NaN
    that comes from a zero gradient times a non-finite derivative (the `where` trap).
    """
    if not _local.check_nan:
        return
    for i, g in enumerate(grads):
        data = _array(g)
        if data is None or data.dtype.kind not in "fc":
            continue
        xp = get_xp(data)
        if bool(xp.isfinite(data).all()):
            continue
        bad = "nan" if bool(xp.isnan(data).any()) else "inf"
        if grad_output is _MISSING:
            grad_output = _caller_grad_output()
        message = f"Function '{node.name()}' returned {bad} values in its {i}th output."
        trace = format_forward_trace(node)
        if trace:
            message += "\nTraceback of the forward call that caused the error:\n" + trace
        else:
            message += (
                "\n(No forward traceback: the forward pass ran outside anomaly mode. Run it "
                "inside detect_anomaly() too to see the line that created this node.)"
            )
        hint = _explain(node, i, data, grad_output)
        if hint:
            message += "\n" + hint
        raise RuntimeError(message)


def _array(g):
    """The array behind a gradient (None, an array, or a Tensor when create_graph=True)."""
    if g is None:
        return None
    if hasattr(g, "grad_fn"):  # a Tensor (ndarray.data is a buffer, so ask for grad_fn)
        g = g.data
    return g if hasattr(g, "dtype") and hasattr(g, "shape") else None


def _caller_grad_output():
    """The incoming gradient, read from the engine's `_rule_with_checks(n, g)` frame while the
    engine does not pass it (error path only)."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "_rule_with_checks":
            return frame.f_locals.get("g")
        frame = frame.f_back
    return None


# -- the forward traceback -------------------------------------------------------------------------
def format_forward_trace(node) -> str:
    """The forward traceback recorded for `node`, with retrograd's own trailing frames removed
    so that the user's line is the last one ('' when none was recorded)."""
    trace = list(getattr(node, "_trace", None) or ())
    while trace and _is_internal(trace[-1]):
        trace.pop()
    return "".join(trace)


def _is_internal(entry: str) -> bool:
    m = _FILE_RE.match(entry)
    return bool(m) and os.path.abspath(m.group(1)).startswith(_PACKAGE_DIR)


def _user_line(node) -> str:
    """'file:line' of the user's call that created `node`, or ''."""
    trace = format_forward_trace(node)
    found = _FILE_RE.findall(trace)
    if not found:
        return ""
    path, line = found[-1]
    return f"{os.path.basename(path)}:{line}"


# -- explaining the NaN ----------------------------------------------------------------------------
def _explain(node, index: int, data, grad_output) -> str:
    """A hint naming the likely cause, or '' when nothing specific is known."""
    try:
        return _explain_unsafe(node, index, data, grad_output)
    except Exception:  # the hint is a courtesy: never hide the real error behind a new one
        return ""


def _explain_unsafe(node, index: int, data, grad_output) -> str:
    xp = get_xp(data)
    data = xp.asarray(data)
    bad = ~xp.isfinite(data)
    n_bad, size = int(bad.sum()), int(data.size)
    where_bad = f"{n_bad} of {size} elements" if size > 1 else "the only element"
    g = _array(grad_output) if not isinstance(grad_output, (list, tuple)) else None
    if g is None or g.shape != data.shape:
        return ""
    g = xp.asarray(g)  # a reduction or a multi-output node: positions do not line up
    if not bool(xp.isfinite(g[bad]).all()):
        return (
            f"Hint: the gradient arriving at {node.name()} was already not finite at "
            f"{where_bad}: it came from the gradient passed to backward() (or a hook), not from "
            "this rule."
        )
    if not bool((g[bad] == 0).all()):
        op = type(node).__name__.lower()
        return (
            f"Hint: {node.name()}'s own derivative is not finite at {where_bad} (for example "
            f"sqrt'(0) = inf, log'(0) = inf): keep the input of {op} inside its domain, e.g. "
            f"{op}(x + eps) or {op}(clamp(x, min=eps))."
        )
    # every bad position got an exactly zero gradient: 0 * inf (or 0 * nan) = nan
    op = type(node).__name__.lower()
    out = getattr(node, "_out", None)
    forward = ""
    if out is not None and hasattr(out, "shape") and out.shape == data.shape:
        n_out_bad = int((~xp.isfinite(out[bad])).sum())
        if n_out_bad:
            forward = f" ({op} itself produced nan/inf there in the forward pass)"
    mask = _find_mask(node)
    if mask is not None:
        consumer, branch, depth = mask
        line = _user_line(consumer)
        at = f", created at {line}" if line else ""
        via = "" if depth == 1 else f" (through {depth - 1} op(s) in between)"
        selected = "condition is False" if branch == 0 else "condition is True"
        return (
            f"Hint: the NaN comes from the branch that `where` did not select. The output of "
            f"{node.name()} feeds {'input' if branch == 0 else 'other'} of where "
            f"({consumer.name()}{at}){via}; at {where_bad} the {selected}, so where passed back "
            f"a zero gradient, but {op}'s derivative there is not finite{forward}, and "
            f"0 * inf = nan. Masking the output is not enough: mask the input too, so that the "
            f"unselected elements get a safe value, e.g.\n"
            f"    where(x > 0, {op}(where(x > 0, x, 1)), 0)   instead of   "
            f"where(x > 0, {op}(x), 0)"
        )
    return (
        f"Hint: the gradient arriving at {node.name()} is exactly zero at {where_bad}, but "
        f"{op}'s derivative there is not finite{forward}: 0 * inf = nan. Some op downstream "
        f"(a mask, where, masked_fill, indexing) discarded these values; give the input of {op} a "
        f"safe value at those positions before calling it, not only after."
    )


def _find_mask(node):
    """(Where node, which input branch, depth) for a `where` downstream of `node`, or None.

    Edges point from a node to its inputs, so consumers are found through the objects that refer
    to a node: the `next_functions` list of each consumer. Searched breadth-first, a few levels.
    """
    frontier = [node]
    seen = {id(node)}
    for depth in range(1, _SEARCH_DEPTH + 1):
        consumers = []
        for parent, child in _consumers(frontier):
            if id(parent) in seen:
                continue
            seen.add(id(parent))
            if type(parent).__name__ == "Where":
                # which branch of the where leads back to the failing node
                branch = next(
                    (k for k, n in enumerate(parent.next_functions) if n is child),
                    0,
                )
                return parent, branch, depth
            consumers.append(parent)
        if not consumers:
            return None
        frontier = consumers
    return None


def _consumers(nodes):
    """(consumer, child) pairs: nodes whose next_functions list holds one of `nodes`."""
    wanted = {id(n): n for n in nodes}
    lists = [
        r
        for r in gc.get_referrers(*nodes)
        if type(r) is list and any(id(x) in wanted for x in r if x is not None)
    ]
    if not lists:
        return []
    by_list = {id(lst): lst for lst in lists}
    pairs = []
    for r in gc.get_referrers(*lists):
        nexts = getattr(r, "next_functions", None) if not isinstance(r, (list, dict)) else None
        if nexts is not None and id(nexts) in by_list:
            for x in nexts:
                if x is not None and id(x) in wanted:
                    pairs.append((r, x))
    return pairs
