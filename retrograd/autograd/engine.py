"""The engine: one reverse traversal serving Tensor.backward, autograd.grad and GradientTape.

The graph is walked with an iterative topological sort (Kahn's algorithm over dependency
counts), so depth is limited by memory, not by Python's recursion limit. Gradients arriving at a
node are summed, un-broadcast to the input's shape here (in one place, not in every op), and the
node's saved arrays are freed as soon as its rule has run unless `retain_graph=True`.
"""

from __future__ import annotations

import numpy as np

from retrograd.autograd.function import _FREED, FREED_MSG, Function, _bstate, _run_user_backward
from retrograd.autograd.grad_mode import _state, set_grad_enabled
from retrograd.backend import get_xp
from retrograd.tensor import Tensor


def sum_to_shape(g, shape):
    """Sum a broadcast gradient back to `shape` (works on arrays and Tensors)."""
    gshape = g.shape
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and gshape[i + lead] != 1
    )
    if axes:
        g = g.sum(axis=axes, keepdims=True) if not isinstance(g, Tensor) else g.sum(axes, True)
    if lead:
        g = g.reshape(shape)
    elif g.shape != shape:
        g = g.reshape(shape)
    return g


def _call_rule(node, g):
    """Run one node's gradient rule; always returns a tuple with one entry per input."""
    if node.raw:
        grads = node.backward(g)
        if not isinstance(grads, tuple):
            grads = (grads,)
        return grads
    return _run_user_backward(node, g if node._n_out > 1 else [g])


def _run_tensor_hooks(hooks, g, graph):
    for fn in hooks:
        gt = g if graph else Tensor._make(g, False, None, 0)
        r = fn(gt)
        if r is not None:
            g = r if graph else (r.data if isinstance(r, Tensor) else r)
    return g


def run_backward(
    roots,
    root_grads,
    retain_graph: bool,
    create_graph: bool,
    inputs=None,
    accumulate: bool = True,
    allow_unused: bool = True,
):
    """Backpropagate from `roots` (Tensors) seeded with `root_grads`.

    accumulate=True adds into the `.grad` of leaves (all of them, or only `inputs`);
    accumulate=False returns the gradients w.r.t. `inputs` (a list, None where unconnected).
    """
    if (
        not create_graph
        and inputs is None
        and accumulate
        and len(roots) == 1
        and roots[0].grad_fn is not None
        and not _state.anomaly
        and _plain_backward(roots[0].grad_fn, root_grads[0], retain_graph)
    ):
        return None
    graph = create_graph
    # seed: the gradient arriving at each root's node (a leaf root is its own target)
    buf = {}
    start = []
    for t, g in zip(roots, root_grads):
        target = t.grad_fn if t.grad_fn is not None else t
        if not t.requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn"
            )
        _add_grad(buf, target, t._out_nr if t.grad_fn is not None else 0, g, graph)
        start.append(target)

    # capture points for autograd.grad / backward(inputs=...)
    capture = None
    if inputs is not None:
        capture = {}
        for i, t in enumerate(inputs):
            key = (t.grad_fn, t._out_nr) if t.grad_fn is not None else (t, 0)
            capture.setdefault(key, []).append(i)

    # count dependencies with an iterative DFS over the reachable graph
    deps = {}
    stack = list(dict.fromkeys(start))
    seen = set(stack)
    order_nodes = []
    while stack:
        n = stack.pop()
        order_nodes.append(n)
        nexts = getattr(n, "next_functions", None)
        if nexts is None:
            continue
        for nxt in nexts:
            if nxt is None:
                continue
            if nxt in deps:
                deps[nxt] += 1
            else:
                deps[nxt] = 1
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)

    # with inputs (autograd.grad, backward(inputs=)), as PyTorch's exec_info: only the rules of
    # nodes that lead to an input run, and a gradient is sent only to such nodes and to the
    # inputs themselves (a single root always gets its seed: its hooks and retained grad run)
    needed = send = None
    if capture is not None:
        targets = {k[0] for k in capture}
        needed = _reachable_to(order_nodes, targets)
        if accumulate:  # backward(inputs=): PyTorch runs a non-leaf input's own node too
            needed.update(
                k
                for k in targets
                if not isinstance(k, Tensor) and (k.top_saves or k._post_hooks is not None)
            )
        send = needed | targets
        if len(buf) > 1:
            for r in start:
                if r not in send:
                    buf.pop(r, None)

    results = [None] * len(inputs) if inputs is not None else None
    handed = {id(g) for g in root_grads}
    ready = [n for n in dict.fromkeys(start) if n not in deps]
    prev_graph = _bstate.graph
    _bstate.graph = graph
    try:
        # one quiet state for the whole traversal (rules run as arrays or, under create_graph,
        # as Tensors): PyTorch's backward never warns on inf/nan; anomaly mode checks values
        with set_grad_enabled(graph), np.errstate(all="ignore"):
            while ready:
                n = ready.pop()
                g = buf.pop(n, None)
                if isinstance(n, Tensor):  # a leaf
                    if g is not None:
                        _deliver_leaf(n, g, graph, capture, results, accumulate, handed)
                    continue
                nexts = n.next_functions
                if g is not None:
                    if n._hooks is not None or n._retains is not None:
                        g = _run_node_hooks(n, g, graph)
                    if capture is not None:
                        _capture_node(n, g, capture, results, graph)
                if g is not None and (needed is None or n in needed):
                    if not retain_graph and not n._saves_out and not _state.anomaly:
                        n._out = None  # as _plain_backward: a kept value its rule does not read
                    grads = _rule_with_checks(n, g)
                    post = n._post_hooks
                    if post:
                        for fn in post:
                            fn(grads, g)
                    shapes = n._in_shapes
                    nrs = n._in_nrs
                    k = 0
                    for nxt, gi in zip(nexts, grads):
                        if nxt is not None and gi is not None and (send is None or nxt in send):
                            if gi.shape != shapes[k]:
                                gi = sum_to_shape(gi, shapes[k])
                            _add_grad(buf, nxt, nrs[k] if nrs else 0, gi, graph)
                        k += 1
                    if not retain_graph:
                        if n._saved is not None:
                            n._saved = _FREED
                            n._versions = None  # it holds the saved input Tensors
                        n._out = None  # the output array: a graph kept alive keeps no activations
                for nxt in nexts:
                    if nxt is None:
                        continue
                    c = deps[nxt] - 1
                    deps[nxt] = c
                    if c == 0:
                        ready.append(nxt)
    finally:
        _bstate.graph = prev_graph

    if inputs is not None and not accumulate and not allow_unused:
        for i, r in enumerate(results):
            if r is None:
                raise RuntimeError(
                    f"The differentiated Tensor at index {i} appears to not have been used in "
                    "the graph. Set allow_unused=True if this is the desired behavior."
                )
    return results


def _plain_backward(root, g, retain_graph: bool) -> bool:
    """The common backward, `loss.backward()`, on a graph of primitives alone: the same
    traversal, order and results as `run_backward`, with the rule call and the accumulation
    inlined (no per-node helpers, hooks, captures or multi-output slots).

    Returns False, having run nothing, when some node needs the general path: a user Function,
    a hook (tensor, node or post hook), a retained grad, a multi-output node.
    """
    deps = {}
    stack = [root]
    seen = {root}
    while stack:
        n = stack.pop()
        if isinstance(n, Tensor):
            if n._hooks is not None:
                return False
            continue
        if (
            not n.raw
            or n._n_out != 1
            or n._hooks is not None
            or n._retains is not None
            or n._post_hooks is not None
        ):
            return False
        for nxt in n.next_functions:
            if nxt is None:
                continue
            if nxt in deps:
                deps[nxt] += 1
            else:
                deps[nxt] = 1
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)

    buf = {root: g}
    handed = {id(g)}
    owned = set()  # nodes whose pending gradient is a fresh array only the engine holds
    ready = [root]
    prev_graph, prev_enabled, prev_consume = _bstate.graph, _state.enabled, _bstate.consume
    _bstate.graph = False
    _state.enabled = False
    _bstate.consume = not retain_graph  # rules may release their saved values early
    try:
        with np.errstate(all="ignore"):  # as run_backward: a backward never warns on inf/nan
            while ready:
                n = ready.pop()
                g = buf.pop(n, None)
                if isinstance(n, Tensor):  # a leaf
                    if g is None:
                        continue
                    if n.grad is None and g.dtype == n.data.dtype and not n._hooks:
                        # never alias: a rule may hand one array to two inputs, or a view
                        if id(g) in handed or g.base is not None:
                            g = g.copy()
                        elif isinstance(g, np.generic):
                            g = np.asarray(g)
                        handed.add(id(g))
                        n.grad = Tensor._make(g, False, None, 0)
                    else:
                        _deliver_leaf(n, g, False, None, None, True, handed)
                    continue
                nexts = n.next_functions
                if g is not None:
                    if n._saved is _FREED:
                        raise RuntimeError(FREED_MSG)
                    if not retain_graph and not n._saves_out:
                        n._out = None  # the rule does not read it: free it before the rule
                    if owned and n in owned:  # the rule may overwrite g (Function.owns_grad)
                        owned.discard(n)
                        n.__dict__["_owns_grad"] = True
                        try:
                            grads = n.backward(g)
                        finally:
                            del n.__dict__["_owns_grad"]
                    else:
                        grads = n.backward(g)
                    if not isinstance(grads, tuple):
                        grads = (grads,)
                    shapes = n._in_shapes
                    fresh = n.fresh_grads
                    k = 0
                    for nxt, gi in zip(nexts, grads):
                        if nxt is not None and gi is not None:
                            if gi.shape != shapes[k]:
                                gi = sum_to_shape(gi, shapes[k])
                            prev = buf.get(nxt)
                            if prev is None:
                                buf[nxt] = gi
                                if fresh and not isinstance(nxt, Tensor):
                                    owned.add(nxt)
                            else:
                                buf[nxt] = prev + gi
                                if not isinstance(nxt, Tensor):
                                    owned.add(nxt)
                        k += 1
                    if not retain_graph:
                        if n._saved is not None:
                            n._saved = _FREED
                            n._versions = None
                        n._out = None
                for nxt in nexts:
                    if nxt is None:
                        continue
                    c = deps[nxt] - 1
                    deps[nxt] = c
                    if c == 0:
                        ready.append(nxt)
    finally:
        _bstate.graph = prev_graph
        _state.enabled = prev_enabled
        _bstate.consume = prev_consume
    return True


def _reachable_to(nodes, targets):
    """The nodes from which some target can be reached through at least one edge: only their
    rules need to run (a target's own rule runs only if another target lies below it)."""
    parents = {}
    for n in nodes:
        nexts = getattr(n, "next_functions", None)
        if nexts is None:
            continue
        for nxt in nexts:
            if nxt is not None:
                parents.setdefault(nxt, []).append(n)
    needed = set()
    stack = [p for t in targets for p in parents.get(t, ())]
    while stack:
        n = stack.pop()
        if n in needed:
            continue
        needed.add(n)
        stack.extend(parents.get(n, ()))
    return needed


def _add_grad(buf, node, out_nr, g, graph):
    """Sum gradient `g` into the buffer of `node` (out_nr -1: the edge's own output index)."""
    n_out = 1 if isinstance(node, Tensor) else node._n_out
    if n_out == 1:
        prev = buf.get(node)
        buf[node] = g if prev is None else prev + g
        return
    slots = buf.get(node)
    if slots is None:
        slots = buf[node] = [None] * n_out
    idx = out_nr
    slots[idx] = g if slots[idx] is None else slots[idx] + g


def _rule_with_checks(n, g):
    if n._saved is _FREED:
        raise RuntimeError(FREED_MSG)
    grads = _call_rule(n, g)
    if _state.anomaly:
        from retrograd.autograd.anomaly import check_node_output

        check_node_output(n, grads, g)
    return grads


def _run_node_hooks(n, g, graph):
    hooks = n._hooks
    if hooks:
        if n._n_out == 1:
            g = _run_tensor_hooks(hooks.get(0, ()), g, graph)
        else:
            g = list(g)
            for k, fns in hooks.items():
                if g[k] is not None:
                    g[k] = _run_tensor_hooks(fns, g[k], graph)
    if n._retains:
        for k, ref in n._retains.items():
            t = ref()
            gk = g if n._n_out == 1 else g[k]
            if t is not None and gk is not None:
                gk = gk.clone() if graph else Tensor._make(gk.copy(), False, None, 0)
                t.grad = gk if t.grad is None else t.grad + gk
    return g


def _capture_node(n, g, capture, results, graph):
    if n._n_out == 1:
        idxs = capture.get((n, 0))
        if idxs:
            for i in idxs:
                results[i] = g
        return
    for k in range(n._n_out):
        idxs = capture.get((n, k))
        if idxs and g[k] is not None:
            for i in idxs:
                results[i] = g[k]


def _deliver_leaf(t, g, graph, capture, results, accumulate, handed):
    hooks = t._hooks
    if hooks:
        g = _run_tensor_hooks(hooks, g, graph)
    if capture is not None:
        idxs = capture.get((t, 0))
        if idxs:
            for i in idxs:
                results[i] = g
        elif not accumulate:
            return
        if not accumulate or not idxs:
            return
    if not accumulate:
        return
    if g.dtype != t.data.dtype:
        g = g.astype(t.data.dtype) if not graph else g.to(t.data.dtype)
    if graph:  # .grad gets its own tensor (a clone in the graph), never the incoming one
        t.grad = g.clone() if t.grad is None else t.grad + g
    elif t.grad is None:
        # never alias: a rule may hand the same array to two inputs, or a view of another
        if id(g) in handed or g.base is not None:
            g = g.copy()
        elif isinstance(g, np.generic):  # 0-d arithmetic gives NumPy scalars: keep arrays
            g = np.asarray(g)
        handed.add(id(g))
        t.grad = Tensor._make(g, False, None, 0)
    elif t.grad.grad_fn is not None or t.grad.requires_grad:
        t.grad = t.grad.detach() + Tensor._make(g, False, None, 0)
    else:
        gd = t.grad.data
        if get_xp(gd) is get_xp(g) and gd.shape == g.shape:
            gd += g
        else:
            t.grad = Tensor._make(gd + g, False, None, 0)


__all__ = ["run_backward", "sum_to_shape", "Function"]
