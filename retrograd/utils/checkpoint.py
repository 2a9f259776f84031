"""Gradient checkpointing: trade compute for memory by recomputing segments in backward.

`checkpoint(fn, *args)` runs `fn` without recording a graph (nothing inside the segment is kept
for backward) and records one node holding only fn's inputs. Its backward re-runs `fn` with grad
enabled on detached copies of the inputs, with the random state of the forward restored, and
backpropagates through that recomputed segment. Gradients are those of the plain run.

    >>> h = checkpoint(block, x)          # block: a Module or any function of Tensors
    >>> y = checkpoint_sequential(net, 4, x)
    >>> plan = plan_segments(net, x, budget_bytes=2**20)   # segments that fit a budget
    >>> y = checkpoint_sequential(net, plan, x)

What the recomputation needs to know about fn:

* Parameters: those of a Module fn (or a Module's bound method), and the parameters and
  gradient-requiring tensors fn reaches through its closure, default values, the globals its code
  names, `functools.partial` arguments and the arguments themselves are found before the forward
  and become inputs of the checkpoint node, so the engine delivers their gradients like any
  other: `.grad` after `backward()`, or returned by `autograd.grad(out, [x, w])`, never counted
  twice. A leaf the search cannot see (e.g. a parameter held by a plain object's attribute) still
  gets its gradient accumulated into `.grad` by the recomputation's own backward, as in PyTorch's
  reentrant checkpoint; `autograd.grad` w.r.t. such a leaf is not supported (pass it as an
  argument). Non-leaf tensors from the surrounding graph must be arguments or found as above.
* Randomness: with preserve_rng_state=True (the default) the state of retrograd's default
  generator, and of every `Generator` found the same way (e.g. `Dropout(generator=g)` inside a
  Module fn, or `g` in fn's closure), is recorded before the forward and restored for the
  recomputation, then put back, so dropout masks match and the random stream after backward is
  the plain run's. A generator the search cannot see must be passed to fn as an argument.
* Double backward (`create_graph=True`) works: the recomputation is attached to the original
  inputs so that the gradients are differentiable.
* State: fn runs twice, so state it changes besides randomness (BatchNorm's running statistics)
  changes twice, as in PyTorch.
"""

from __future__ import annotations

import functools
import math
import types
from dataclasses import dataclass, field

from retrograd.autograd import grad as autograd_grad
from retrograd.autograd import memory
from retrograd.autograd.function import Function
from retrograd.autograd.grad_mode import enable_grad, is_grad_enabled
from retrograd.backend import Generator, default_generator
from retrograd.nn.module import Module, _expand
from retrograd.nn.parameter import Parameter
from retrograd.tensor import Tensor

__all__ = ["checkpoint", "checkpoint_sequential", "plan_segments", "SegmentPlan"]


# -- finding what fn closes over ----------------------------------------------------------------


def _discover(fn, args, kwargs) -> tuple[list, list]:
    """(tensors requiring grad that fn reaches besides its arguments, Generators it reaches)."""
    tensors: dict = {}
    gens: dict = {}
    seen: set = set()

    def scan(obj, depth: int) -> None:
        if obj is None or isinstance(obj, (bool, int, float, str, bytes, type, types.ModuleType)):
            return
        if id(obj) in seen or depth > 6:
            return
        seen.add(id(obj))
        if isinstance(obj, Tensor):
            if obj.requires_grad:
                tensors[id(obj)] = obj
        elif isinstance(obj, Generator):
            gens[id(obj)] = obj
        elif isinstance(obj, Module):
            for m in obj.modules():  # one walk: attributes, and parameters held in lists/dicts
                for v in vars(m).values():
                    if isinstance(v, Generator):
                        gens[id(v)] = v
                    elif isinstance(v, Tensor):
                        if v.requires_grad:
                            tensors[id(v)] = v
                    elif isinstance(v, (list, tuple, dict)) and v:
                        for _, p in _expand("", v):
                            if isinstance(p, Parameter) and p.requires_grad:
                                tensors[id(p)] = p
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for item in obj:
                scan(item, depth + 1)
        elif isinstance(obj, dict):
            for item in obj.values():
                scan(item, depth + 1)
        elif isinstance(obj, functools.partial):
            scan(obj.func, depth + 1)
            scan(obj.args, depth + 1)
            scan(obj.keywords, depth + 1)
        elif isinstance(obj, types.MethodType):
            owner = obj.__self__
            scan(owner, depth + 1)
            if not isinstance(owner, Module) and hasattr(owner, "__dict__"):
                scan(vars(owner), depth + 1)  # a method reads its object's attributes
            scan(obj.__func__, depth + 1)
        elif isinstance(obj, types.FunctionType):
            for cell in obj.__closure__ or ():
                try:
                    scan(cell.cell_contents, depth + 1)
                except ValueError:  # an empty cell
                    pass
            scan(obj.__defaults__, depth + 1)
            scan(obj.__kwdefaults__, depth + 1)
            g = obj.__globals__
            for name in _global_names(obj.__code__):
                if name in g:
                    scan(g[name], depth + 1)
        elif callable(obj) and hasattr(obj, "__dict__"):
            scan(vars(obj), depth + 1)

    scan(fn, 0)
    scan(args, 0)
    scan(kwargs, 0)
    return list(tensors.values()), list(gens.values())


def _global_names(code) -> set:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):  # nested functions and lambdas
            names |= _global_names(const)
    return names


def _get_states(gens) -> list:
    return [(g, g.get_state()) for g in gens]


def _set_states(states) -> None:
    for g, s in states:
        g.set_state(s)


# -- the checkpoint node ------------------------------------------------------------------------


class _Spec:
    """What the node needs besides the Tensors: fn, the argument layout, the RNG states."""

    __slots__ = ("fn", "args", "kwargs", "tensor_pos", "gens", "states", "preserve")


class _Checkpoint(Function):
    """One node for a whole segment: saves its inputs, recomputes the segment in backward.

    Inputs: the spec, fn's Tensor arguments, then the tensors fn reaches besides them."""

    @staticmethod
    def forward(ctx, spec, *tensors):
        n = len(spec.tensor_pos)
        ctx.spec = spec
        ctx.captured = list(tensors[n:])
        ctx.set_materialize_grads(False)
        if spec.preserve:
            spec.states = _get_states(spec.gens)
        ctx.save_for_backward(*tensors[:n])
        return spec.fn(*_fill(spec, tensors[:n]), **spec.kwargs)

    @staticmethod
    def backward(ctx, *grads):
        spec, captured = ctx.spec, ctx.captured
        saved = ctx.saved_tensors  # the argument Tensors, as they were passed
        graph = is_grad_enabled()  # True when the backward itself builds a graph
        if graph:
            inputs = list(saved)  # attach the recomputation to the original inputs
        else:
            inputs = [t.detach().requires_grad_(t.requires_grad) for t in saved]
        current = _get_states(spec.gens) if spec.preserve else None
        if current is not None:
            _set_states(spec.states)
        try:
            with enable_grad():
                outs = spec.fn(*_fill(spec, inputs), **spec.kwargs)
        finally:
            if current is not None:
                _set_states(current)
        outs = outs if isinstance(outs, tuple) else (outs,)
        roots, root_grads = [], []
        for o, g in zip(outs, grads):
            if g is not None and isinstance(o, Tensor) and o.requires_grad:
                roots.append(o)
                root_grads.append(g)
        memory.note_recomputation("checkpoint", roots)
        targets = [t for t in inputs if t.requires_grad] + captured
        stray = _stray_leaves(roots, targets) if roots else []
        results = [None] * len(targets)
        if roots and targets + stray:
            results = autograd_grad(
                roots,
                targets + stray,
                grad_outputs=root_grads,
                retain_graph=True,  # never free the surrounding graph a recomputation reaches
                create_graph=graph,
                allow_unused=True,
            )
            for leaf, g in zip(stray, results[len(targets) :]):
                if g is not None:  # a leaf the search did not see: accumulate, as PyTorch does
                    leaf.grad = g if leaf.grad is None else leaf.grad + g
        it = iter(results)
        out = [None]  # for spec
        for t in inputs:
            out.append(next(it) if t.requires_grad else None)
        for _ in captured:
            out.append(next(it))
        return tuple(out)

    def name(self) -> str:
        return "CheckpointBackward"


def _fill(spec, tensors) -> list:
    args = list(spec.args)
    for pos, t in zip(spec.tensor_pos, tensors):
        args[pos] = t
    return args


def _stray_leaves(roots, known) -> list:
    """Leaves requiring grad that the recomputed graph reaches but that are not `known`.

    The walk stops at the nodes of known non-leaf tensors: beyond them lies the surrounding graph,
    whose leaves the engine serves itself."""
    known_ids = {id(t) for t in known}
    found: dict = {}
    stop = {t.grad_fn for t in known if t.grad_fn is not None}
    stack = [r.grad_fn for r in roots if r.grad_fn is not None and r.grad_fn not in stop]
    seen = set(stack) | stop
    while stack:
        n = stack.pop()
        for nxt in getattr(n, "next_functions", None) or ():
            if nxt is None:
                continue
            if isinstance(nxt, Tensor):
                if id(nxt) not in known_ids:
                    found[id(nxt)] = nxt
            elif nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return list(found.values())


def checkpoint(fn, *args, use_reentrant=None, preserve_rng_state: bool = True, **kwargs):
    """fn(*args, **kwargs), keeping only the inputs for backward and recomputing the rest there.

    Gradients (w.r.t. the inputs and the parameters fn uses) equal those of the plain call.
    `use_reentrant` is accepted for PyTorch compatibility and ignored (see the module docstring).

    >>> y = checkpoint(lambda h: F.relu(layer(h)), x)
    """
    del use_reentrant
    if not is_grad_enabled():
        return fn(*args, **kwargs)
    spec = _Spec()
    spec.fn, spec.kwargs, spec.preserve = fn, kwargs, preserve_rng_state
    spec.tensor_pos = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    # the Tensors travel as node inputs (saved, freed after backward), not in the spec
    spec.args = [None if isinstance(a, Tensor) else a for a in args]
    arg_tensors = [args[i] for i in spec.tensor_pos]
    found, gens = _discover(fn, [a for a in args if not isinstance(a, Tensor)], kwargs)
    arg_ids = {id(t) for t in arg_tensors}
    captured = [t for t in found if id(t) not in arg_ids]
    spec.gens = [default_generator] + [g for g in gens if g is not default_generator]
    spec.states = None
    if not any(t.requires_grad for t in arg_tensors) and not captured:
        return fn(*args, **kwargs)  # nothing to differentiate: no node to record
    return _Checkpoint.apply(spec, *arg_tensors, *captured)


# -- sequential models and the planner ----------------------------------------------------------


@dataclass
class SegmentPlan:
    """Segments of a sequential model: (start, end, checkpointed) with end exclusive.

    `checkpointed` is True, False (run plainly), or a nested plan: a list of segments covering
    start..end, which the checkpointed segment runs when it is recomputed (two levels of
    checkpointing: less memory for more recomputation).
    predicted_peak / predicted_after_forward: bytes held for backward, from the planner's dry run
    (at the peak over forward and backward, and right after the forward).
    recomputed: how many layer forwards the backward runs again (nested segments: twice).
    """

    segments: list
    predicted_peak: int = 0
    predicted_after_forward: int = 0
    recomputed: int = 0
    layer_bytes: list = field(default_factory=list)

    def boundaries(self) -> list:
        return [s for s, _, _ in self.segments] + [self.segments[-1][1]] if self.segments else []


def _layers(model) -> list:
    if isinstance(model, Module) and hasattr(model, "_items"):
        return list(model._items())
    return list(model)


def _as_plan(n: int, segments) -> list:
    if isinstance(segments, SegmentPlan):
        return segments.segments
    if isinstance(segments, int):
        # PyTorch's layout: segments-1 checkpointed chunks of n // segments, the rest run plainly
        # (its backward follows the forward at once, so recomputing it would only cost time)
        if segments < 1:
            raise ValueError(f"segments must be a positive integer, got {segments}")
        size = n // segments
        plan, start = [], 0
        if size > 0:
            for start in range(0, size * (segments - 1), size):
                plan.append((start, start + size, True))
            start = size * (segments - 1)
        if start < n or not plan:
            plan.append((start, n, False))
        return plan
    return _check_plan(segments, 0, n)


def _check_plan(segments, lo: int, hi: int) -> list:
    """[(start, end, checkpointed or nested plan)] covering lo..hi in order; ValueError if not."""
    plan, at = [], lo
    for seg in segments:
        try:
            start, end, ckpt = seg
        except (TypeError, ValueError):
            raise ValueError(f"a segment must be (start, end, checkpointed), got {seg!r}") from None
        if start != at or end <= start or end > hi:
            raise ValueError(
                f"segments must cover layers {lo}..{hi} in order without gaps or overlaps: "
                f"got ({start}, {end}) after layer {at}"
            )
        if isinstance(ckpt, (list, tuple)):
            ckpt = _check_plan(ckpt, start, end)
        elif not isinstance(ckpt, bool):
            raise ValueError(f"checkpointed must be True, False or a nested plan, got {ckpt!r}")
        plan.append((start, end, ckpt))
        at = end
    if at != hi:
        raise ValueError(f"segments must cover layers {lo}..{hi}: they end at {at}")
    return plan


def _recomputed(plan) -> int:
    """Layer forwards the backward runs again: a nested segment's, plus its own plan's."""
    return sum((e - s) + (_recomputed(c) if isinstance(c, list) else 0) for s, e, c in plan if c)


def checkpoint_sequential(functions, segments, input, use_reentrant=None, **kwargs):
    """Run a sequential model, checkpointing its segments; returns the output.

    segments: an int (PyTorch's layout: segments-1 checkpointed chunks of len // segments, the
    remainder run plainly), a SegmentPlan from `plan_segments`, or [(start, end, checkpointed)]
    where checkpointed may itself be such a list over start..end (a nested, two-level plan).

    >>> y = checkpoint_sequential(net, 4, x)
    >>> y = checkpoint_sequential(net, [(0, 6, [(0, 4, True), (4, 6, False)]), (6, 8, False)], x)
    """
    del use_reentrant
    layers = _layers(functions)
    return _run_plan(layers, _as_plan(len(layers), segments), input, kwargs)


def _run_plan(layers, plan, x, kwargs):
    for start, end, ckpt in plan:
        sub = None
        if isinstance(ckpt, list):  # nested: its plan, relative to the segment
            sub = [(s - start, e - start, _shift(c, -start)) for s, e, c in ckpt]
        segment = _Segment(layers[start:end], sub, kwargs)
        x = checkpoint(segment, x, **kwargs) if ckpt else segment(x)
    return x


def _shift(ckpt, by: int):
    if not isinstance(ckpt, list):
        return ckpt
    return [(s + by, e + by, _shift(c, by)) for s, e, c in ckpt]


class _Segment(Module):
    """Layers start..end as one callable whose parameters and generators can be found."""

    def __init__(self, layers, plan=None, kwargs=None) -> None:
        super().__init__()
        self.layers = list(layers)
        self.plan = plan  # a nested plan (indices relative to the segment) or None
        self.kwargs = kwargs or {}

    def forward(self, x):
        if self.plan is not None:
            return _run_plan(self.layers, self.plan, x, self.kwargs)
        for layer in self.layers:
            x = layer(x)
        return x


@dataclass
class _LayerCost:
    internal: int  # bytes of saved arrays other than the layer's input and output
    saves_in: bool
    saves_out: bool
    out_is_view: bool  # the output shares the input's memory (reshape, identity)
    in_bytes: int


def _measure(layers, input) -> list:
    """Dry run, one layer at a time with grad on: what each layer's graph holds for backward."""
    costs = []
    x = input.detach().requires_grad_()  # so that layers without parameters record too
    for layer in layers:
        with enable_grad():
            out = layer(x)
        # the input is a leaf here: find whether the layer keeps it by counting leaves as well
        with_leaves = memory._held([out], include_leaves=True)
        held = memory._held([out])
        in_id = id(memory._base(x.data))
        out_id = id(memory._base(out.data))
        internal = sum(b for k, b in held.items() if k not in (in_id, out_id))
        costs.append(
            _LayerCost(
                internal,
                in_id in with_leaves,
                out_id in held,
                out_id == in_id,
                int(memory._base(x.data).nbytes),
            )
        )
        x = out.detach().requires_grad_()
        del out, held, with_leaves
    costs.append(_LayerCost(0, False, False, False, int(memory._base(x.data).nbytes)))
    return costs


class _Model:
    """The bytes held for backward by a plan, from the per-layer costs (exact set arithmetic)."""

    def __init__(self, costs, input_counted: bool) -> None:
        self.costs = costs
        n = len(costs) - 1
        # boundary i is layer i's input (boundary n: the output); views share one group
        self.group = list(range(n + 1))
        for i in range(n):
            if costs[i].out_is_view:
                self.group[i + 1] = self.group[i]
        self.gbytes = {}
        for i in range(n + 1):
            g = self.group[i]
            self.gbytes.setdefault(g, costs[i].in_bytes)
        if not input_counted:  # a leaf requiring grad: its memory is not the graph's
            self.gbytes[self.group[0]] = 0

    def labels(self, start: int, end: int, fresh: str, in_key) -> dict:
        """What layers start..end hold for backward, keyed so that one array counts once.

        fresh: "b" for arrays of the forward, "r" for those of a recomputation (new arrays,
        except the segment's input, which keeps `in_key`, the key of whoever holds it)."""
        held = {}
        g0 = self.group[start]
        for i in range(start, end):
            c = self.costs[i]
            held[("int", i)] = c.internal
            for b, flag in ((i, c.saves_in), (i + 1, c.saves_out)):
                if not flag:
                    continue
                g = self.group[b]
                held[in_key if g == g0 else (fresh, g)] = self.gbytes[g]
        return held

    def simulate(self, plan, fresh: str = "b", in_key=None, outer=None) -> tuple[int, int]:
        """(peak over forward and backward, bytes held right after the forward).

        A nested segment's recomputation is simulated as a plan of its own, run while what the
        outer plan holds at that moment (`outer`) stays held."""
        outer = outer or {}
        prefix = []  # what each segment holds from its forward until its backward
        keys = []
        for idx, (start, end, ckpt) in enumerate(plan):
            key = in_key if idx == 0 and in_key is not None else (fresh, self.group[start])
            keys.append(key)
            if ckpt:
                prefix.append({key: self.gbytes[self.group[start]]})
            else:
                prefix.append(self.labels(start, end, fresh, key))
        after = dict(outer)
        for h in prefix:
            after.update(h)
        peak = after_forward = sum(after.values())
        for j in range(len(plan) - 1, -1, -1):
            start, end, ckpt = plan[j]
            if not ckpt:
                continue
            held = dict(outer)
            for h in prefix[: j + 1]:
                held.update(h)
            if isinstance(ckpt, list):
                peak = max(peak, self.simulate(ckpt, "r", keys[j], held)[0])
            else:
                held.update(self.labels(start, end, "r", keys[j]))
                peak = max(peak, sum(held.values()))
        return peak, after_forward


def plan_segments(model, input, budget_bytes: int | None = None) -> SegmentPlan:
    """Choose checkpoint segments for a sequential model.

    Measures each layer's saved bytes on a dry run (one layer's graph alive at a time; random
    streams and buffers are put back afterwards). Without a budget: round(sqrt(n)) segments in
    PyTorch's layout. With a budget: the plan that recomputes the fewest layers (checkpointed
    segments first, a plain tail) whose peak of bytes held for backward, over forward and
    backward, stays within budget_bytes. When no such one-level plan fits, a two-level one: the
    first segment, whose recomputation has the most room (only the input is held then), is
    itself checkpointed in segments, so part of it is recomputed twice. ValueError when neither
    fits, with the smallest peak a plan reaches.

    >>> plan = plan_segments(net, x, budget_bytes=8 * 2**20)
    >>> y = checkpoint_sequential(net, plan, x)
    """
    layers = _layers(model)
    n = len(layers)
    # the dry run must leave no trace: random streams and buffers (running statistics) restored
    _, gens = _discover(layers, (), {})
    states = _get_states([default_generator] + [g for g in gens if g is not default_generator])
    buffers = [(b, b.data.copy()) for m in layers if isinstance(m, Module) for b in m.buffers()]
    try:
        costs = _measure(layers, input)
    finally:
        _set_states(states)
        for b, data in buffers:
            b.data[...] = data
    counted = not (input.grad_fn is None and input.requires_grad)
    model_ = _Model(costs, counted)
    layer_bytes = [sum(model_.labels(i, i + 1, "b", ("b", i)).values()) for i in range(n)]
    if budget_bytes is None:
        plan = _as_plan(n, max(1, round(math.sqrt(n))))
    else:
        plan = _plan_within(model_, n, budget_bytes)
        if plan is None:
            lo = _smallest_budget(model_, n)
            raise ValueError(
                f"no segmentation keeps the bytes held for backward within {budget_bytes}: the "
                f"smallest peak a plan reaches is {lo} bytes"
            )
    peak, after = model_.simulate(plan)
    return SegmentPlan(plan, peak, after, _recomputed(plan), layer_bytes)


def _plan_within(model_, n: int, budget: int):
    """The fewest-recomputation one-level plan within budget, else the best two-level one."""
    plan = _fewest_recomputations(model_, 0, n, budget)
    if plan is not None:
        return plan
    best, best_cost = None, None
    for m in range(2, n):  # the first segment [0, m), nested; the rest one-level
        inner = _fewest_recomputations(model_, 0, m, budget)
        if inner is None:
            break  # a longer first segment only holds more
        if len(inner) < 2:
            continue  # one plain segment: nesting it would just be a checkpoint
        rest = _fewest_recomputations(model_, m, n, budget, held=model_.gbytes[model_.group[0]])
        if rest is None:
            continue
        candidate = [(0, m, inner), *rest]
        if model_.simulate(candidate)[0] > budget:
            continue
        cost = _recomputed(candidate)
        if best_cost is None or cost < best_cost:
            best, best_cost = candidate, cost
    return best


def _fewest_recomputations(model_, lo: int, hi: int, budget: int, held: int = 0):
    """Checkpointed segments over layers [lo, p) and a plain tail [p, hi), p as small as possible,
    while `held` bytes (inputs of earlier segments) stay held.

    For a fixed budget, g[e] is the least sum of checkpoint inputs over segmentations of [lo, e)
    whose every recomputation fits (held inputs + the segment's graph <= budget): a smaller sum
    never hurts later segments, so the dynamic programme is exact for feasibility."""
    inf = float("inf")
    g = {e: inf for e in range(lo, hi + 1)}
    choice = {}
    g[lo] = held
    for s in range(lo, hi):
        if g[s] == inf:
            continue
        in_cost = model_.gbytes[model_.group[s]]
        key = ("b", model_.group[s])
        for e in range(s + 1, hi + 1):
            here = {key: in_cost}
            here.update(model_.labels(s, e, "r", key))
            if g[s] + sum(here.values()) > budget:
                break  # longer segments only hold more
            if g[s] + in_cost < g[e]:
                g[e] = g[s] + in_cost
                choice[e] = s
    outer = {("held",): held} if held else None
    for p in range(lo, hi + 1):
        if g[p] == inf:
            continue
        plan = []
        e = p
        while e > lo:
            s = choice[e]
            plan.append((s, e, True))
            e = s
        plan.reverse()
        if p < hi or not plan:
            plan.append((p, hi, False))
        peak, _ = model_.simulate(plan, outer=outer)
        if peak <= budget:
            return plan
    return None


def _smallest_budget(model_, n: int) -> int:
    hi = model_.simulate([(0, n, False)])[0]
    lo = 0
    while lo < hi:
        mid = (lo + hi) // 2
        if _plan_within(model_, n, mid) is None:
            lo = mid + 1
        else:
            hi = mid
    return hi
