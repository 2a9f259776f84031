"""Gradient checkpointing: gradients equal plain backprop's; memory down; the planner's budget."""

from __future__ import annotations

import math

import numpy as np
import pytest

import retrograd as rg
import retrograd.nn.functional as F
from retrograd import nn
from retrograd.autograd.memory import saved_tensors_bytes, track_saved_memory
from retrograd.utils import SegmentPlan, checkpoint, checkpoint_sequential, plan_segments

D = rg.float64


def _mlp(depth=6, width=8, p=0.0, generator=None, seed=0):
    rg.manual_seed(seed)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width, dtype=D), nn.Tanh()]
        if p:
            layers.append(nn.Dropout(p, generator=generator))
    return nn.Sequential(*layers)


def _x(shape=(4, 8), requires_grad=True, seed=1):
    data = np.random.default_rng(seed).standard_normal(shape)
    return rg.tensor(data, dtype=D, requires_grad=requires_grad)


def _grads(run, x, params, seed=5):
    """Gradients of sum(run(x)**2) w.r.t. x (when it requires grad) and params, via .grad."""
    for p in params:
        p.grad = None
    x.grad = None
    rg.manual_seed(seed)
    y = run(x)
    (y * y).sum().backward()
    out = [p.grad.data.copy() for p in params]
    if x.requires_grad:
        out.insert(0, x.grad.data.copy())
    return out


def _assert_equal(a, b, tol=1e-12):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=tol, atol=tol)


def test_checkpoint_module_gradients_equal_plain():
    net = _mlp()
    x = _x()
    params = list(net.parameters())
    plain = _grads(net, x, params)
    ckpt = _grads(lambda h: checkpoint(net, h), x, params)
    _assert_equal(plain, ckpt)  # the same operations in the same order


def test_closure_and_global_parameters_get_grad_once():
    lin1 = nn.Linear(8, 8, dtype=D)
    params = list(lin1.parameters()) + list(_GLOBAL_LIN.parameters())

    def segment(h):  # lin1 from the closure, _GLOBAL_LIN from the module's globals
        return F.tanh(_GLOBAL_LIN(F.tanh(lin1(h))))

    x = _x()
    plain = _grads(segment, x, params)
    ckpt = _grads(lambda h: checkpoint(segment, h), x, params)
    _assert_equal(plain, ckpt)
    # a second backward accumulates exactly as the plain run does (nothing counted twice)
    for run in (segment, lambda h: checkpoint(segment, h)):
        for p in params:
            p.grad = None
        for _ in range(2):
            (run(x) ** 2).sum().backward()
        np.testing.assert_allclose(params[0].grad.data, 2 * plain[1], rtol=1e-14)


_GLOBAL_LIN = nn.Linear(8, 8, dtype=D)


def test_autograd_grad_wrt_inputs_and_parameters():
    net = _mlp(depth=3)
    x = _x()
    w = net[0].weight
    y = (net(x) ** 2).sum()
    gx, gw = rg.autograd.grad(y, [x, w])
    yc = (checkpoint(net, x) ** 2).sum()
    cx, cw = rg.autograd.grad(yc, [x, w])
    _assert_equal([gx.data, gw.data], [cx.data, cw.data])
    assert w.grad is None and x.grad is None  # autograd.grad returns, never accumulates
    # only w.r.t. the input: parameters untouched
    (cx2,) = rg.autograd.grad((checkpoint(net, x) ** 2).sum(), x)
    _assert_equal([cx2.data], [gx.data])
    assert all(p.grad is None for p in net.parameters())


def test_input_without_grad_parameters_still_learn():
    net = _mlp(depth=3)
    x = _x(requires_grad=False)
    params = list(net.parameters())
    _assert_equal(_grads(net, x, params), _grads(lambda h: checkpoint(net, h), x, params))


@pytest.mark.parametrize("where", ["default", "module_generator", "closure_generator"])
def test_dropout_masks_match_with_rng_preservation(where):
    gen = rg.Generator().manual_seed(7) if where != "default" else None
    net = _mlp(depth=4, p=0.5, generator=gen if where == "module_generator" else None)
    x = _x()
    params = list(net.parameters())
    if where == "closure_generator":

        def run(h):
            return F.dropout(net(h), 0.5, generator=gen)
    else:
        run = net

    def states():
        return rg.default_generator.get_state(), gen.get_state() if gen else None

    if gen:
        gen.manual_seed(7)
    plain = _grads(run, x, params)
    after_plain = states()
    if gen:
        gen.manual_seed(7)
    ckpt = _grads(lambda h: checkpoint(run, h), x, params)
    _assert_equal(plain, ckpt)
    assert states() == after_plain  # the random stream continues as if nothing was recomputed


def test_without_rng_preservation_the_masks_differ():
    net = _mlp(depth=2, p=0.5)
    x = _x()
    params = list(net.parameters())
    plain = _grads(net, x, params)
    ckpt = _grads(lambda h: checkpoint(net, h, preserve_rng_state=False), x, params)
    assert any(not np.allclose(a, b) for a, b in zip(plain, ckpt))


def test_several_outputs_non_tensor_arguments_and_kwargs():
    lin = nn.Linear(8, 8, dtype=D)

    def fn(a, scale, b, *, shift):
        h = lin(a) * scale + b
        return h.tanh(), (h * b).sum(dim=1) + shift

    a, b = _x(seed=1), _x(seed=2)
    params = list(lin.parameters())

    def loss(run):
        for t in [a, b, *params]:
            t.grad = None
        o1, o2 = run(a, 3.0, b, shift=1.5)
        ((o1**2).sum() + o2.sum()).backward()
        return [a.grad.data.copy(), b.grad.data.copy()] + [p.grad.data.copy() for p in params]

    _assert_equal(loss(fn), loss(lambda *args, **kw: checkpoint(fn, *args, **kw)))


def test_unused_output_and_unused_input():
    lin = nn.Linear(8, 8, dtype=D)

    def fn(a, b):
        return lin(a).tanh(), b * 2.0

    a, b = _x(seed=1), _x(seed=2)
    o1, _ = checkpoint(fn, a, b)
    (o1**2).sum().backward()
    assert b.grad is None and a.grad is not None


def test_double_backward_through_checkpoint():
    lin0 = nn.Linear(8, 8, dtype=D)  # upstream of the checkpoint: its graph must stay intact
    lin = nn.Linear(8, 8, dtype=D)
    x = _x()
    params = list(lin0.parameters()) + list(lin.parameters())

    def fn(h):
        return lin(h).tanh() * h

    def second(run):
        for p in params:
            p.grad = None
        y = (run(lin0(x).tanh()) ** 2).sum()
        (gx,) = rg.autograd.grad(y, x, create_graph=True)
        (gx**2).sum().backward()
        return [gx.data.copy()] + [p.grad.data.copy() for p in params]

    _assert_equal(second(fn), second(lambda h: checkpoint(fn, h)))


def test_no_node_without_grad():
    net = _mlp(depth=2)
    with rg.no_grad():
        y = checkpoint(net, _x())
    assert y.grad_fn is None and not y.requires_grad
    frozen = nn.Linear(8, 8, dtype=D).requires_grad_(False)
    assert checkpoint(frozen, _x(requires_grad=False)).grad_fn is None


def test_leaf_the_search_cannot_see_still_gets_grad():
    class Holder:  # not a Module, not callable: its parameter is out of the search's reach
        pass

    holder = Holder()
    holder.lin = nn.Linear(8, 8, dtype=D)
    x = _x()

    def fn(h):
        return holder.lin(h).tanh()

    params = list(holder.lin.parameters())
    _assert_equal(_grads(fn, x, params), _grads(lambda h: checkpoint(fn, h), x, params))


def test_checkpoint_holds_only_its_inputs():
    net = _mlp(depth=6)
    x = _x()
    y = checkpoint(net, x)
    assert saved_tensors_bytes(y) == 0  # x requires grad: a leaf, not the graph's memory
    h = x.exp()
    y = checkpoint(net, h)
    assert saved_tensors_bytes(y) == saved_tensors_bytes(h) == h.data.nbytes
    assert saved_tensors_bytes(net(h)) > 6 * h.data.nbytes


def test_checkpoint_sequential_matches_plain_for_every_segment_count():
    net = _mlp(depth=5)  # 10 layers
    x = _x()
    params = list(net.parameters())
    plain = _grads(net, x, params)
    for segments in (1, 2, 3, 4, 10):
        ckpt = _grads(lambda h, s=segments: checkpoint_sequential(net, s, h), x, params)
        _assert_equal(plain, ckpt)


def test_checkpoint_sequential_lowers_the_peak():
    net = _mlp(depth=16)  # 32 layers
    x = _x(requires_grad=False)

    def peak(run):
        with track_saved_memory() as mem:
            y = run(x)
            mem.sample(y)
            y.sum().backward()
        return mem.peak

    plain = peak(net)
    ckpt = peak(lambda h: checkpoint_sequential(net, round(math.sqrt(32)), h))
    assert ckpt < 0.6 * plain  # 9 arrays held instead of 17


def test_planner_respects_the_budget_and_predicts_the_peak():
    net = _mlp(depth=8, p=0.2)  # 24 layers, dropout included
    x = _x(requires_grad=False)
    params = list(net.parameters())
    plain_peak = _measured_peak(lambda h: net(h), x)
    default = plan_segments(net, x)
    assert isinstance(default, SegmentPlan) and len(default.segments) == round(math.sqrt(24))
    seen_recomputed = []
    for fraction in (1.0, 0.7, 0.5, 0.35):
        budget = int(plain_peak * fraction)
        plan = plan_segments(net, x, budget_bytes=budget)
        peak = _measured_peak(lambda h, plan=plan: checkpoint_sequential(net, plan, h), x)
        assert peak <= budget
        assert peak == plan.predicted_peak
        seen_recomputed.append(plan.recomputed)
        _assert_equal(
            _grads(net, x, params),
            _grads(lambda h, plan=plan: checkpoint_sequential(net, plan, h), x, params),
        )
    assert seen_recomputed[0] == 0  # the plain run fits: nothing recomputed
    assert seen_recomputed == sorted(seen_recomputed)  # a tighter budget costs recomputation
    with pytest.raises(ValueError, match="smallest peak"):
        plan_segments(net, x, budget_bytes=plain_peak // 20)


def _measured_peak(run, x):
    with track_saved_memory() as mem:
        y = run(x)
        mem.sample(y)
        y.sum().backward()
    return mem.peak


def test_planner_plan_layout_and_no_trace():
    net = _mlp(depth=2, p=0.5)  # 6 layers, two of them dropout
    net.append(nn.BatchNorm1d(8, dtype=D))
    x = _x()
    state = rg.default_generator.get_state()
    stats = net[-1].running_mean.data.copy()
    plan = plan_segments(net, x)
    assert rg.default_generator.get_state() == state  # the dry run drew no random numbers
    np.testing.assert_array_equal(net[-1].running_mean.data, stats)
    assert plan.segments == [(0, 2, True), (2, 4, True), (4, 7, False)]
    assert plan.boundaries() == [0, 2, 4, 7]
    assert len(plan.layer_bytes) == 7


def test_planner_plan_layout():
    net = _mlp(depth=2)  # 4 layers
    x = _x()
    plan = plan_segments(net, x)
    assert plan.segments == [(0, 2, True), (2, 4, False)]
    assert plan.boundaries() == [0, 2, 4]
    assert len(plan.layer_bytes) == 4


def test_transformer_layers_with_dropout():
    rg.manual_seed(0)
    gen = rg.Generator().manual_seed(3)
    net = nn.Sequential(
        nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.2, dtype=D),
        nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.2, dtype=D, generator=gen),
    )
    x = _x(shape=(5, 2, 8))
    params = list(net.parameters())
    gen.manual_seed(3)
    plain = _grads(net, x, params)
    gen.manual_seed(3)
    ckpt = _grads(lambda h: checkpoint_sequential(net, [(0, 1, True), (1, 2, True)], h), x, params)
    _assert_equal(plain, ckpt)


def test_nested_plans_give_plain_gradients_with_dropout():
    net = _mlp(depth=6, p=0.3)  # 18 layers
    x = _x()
    params = list(net.parameters())
    nested = [
        (0, 9, [(0, 3, True), (3, 6, True), (6, 9, False)]),
        (9, 15, [(9, 12, True), (12, 15, [(12, 13, True), (13, 15, False)])]),
        (15, 18, False),
    ]
    _assert_equal(
        _grads(net, x, params),
        _grads(lambda h: checkpoint_sequential(net, nested, h), x, params),
    )


def test_a_32_block_mlp_fits_a_quarter_of_its_peak_with_a_two_level_plan():
    # the target in bytes (the time side is measured by benchmarks/memory.py): 4x less
    net = _mlp(depth=32)  # 64 layers: 32 x (Linear, Tanh), 33 activations held when plain
    x = _x(requires_grad=False)
    plain = _measured_peak(net, x)
    plan = plan_segments(net, x, budget_bytes=plain // 4)
    assert any(isinstance(c, list) for _, _, c in plan.segments)  # no one-level plan fits
    peak = _measured_peak(lambda h: checkpoint_sequential(net, plan, h), x)
    assert peak == plan.predicted_peak <= plain // 4
    checkpointed = sum(e - s for s, e, c in plan.segments if c)
    assert plan.recomputed > checkpointed  # the nested part runs a third time
    params = list(net.parameters())
    _assert_equal(
        _grads(net, x, params), _grads(lambda h: checkpoint_sequential(net, plan, h), x, params)
    )


@pytest.mark.parametrize(
    "segments, message",
    [
        ([(0, 2, True), (3, 4, False)], "without gaps or overlaps"),
        ([(0, 3, True), (2, 4, False)], "without gaps or overlaps"),
        ([(0, 2, True)], "they end at 2"),
        ([(0, 4, "yes")], "True, False or a nested plan"),
        ([(0, 4, [(0, 2, True), (2, 3, False)])], "they end at 3"),
        ([(0, 4)], r"\(start, end, checkpointed\)"),
    ],
)
def test_malformed_plans_are_rejected(segments, message):
    net = _mlp(depth=2)
    with pytest.raises(ValueError, match=message):
        checkpoint_sequential(net, segments, _x())
