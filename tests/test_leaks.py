"""No leaks, no stale state: 5,000 training steps of a W2-size MLP keep memory flat, repeated
`retain_graph=True` backward passes and hooks don't grow memory, graphs are freed by reference
counting alone (no cycles), and a deleted model frees its arrays.

Memory is measured with tracemalloc, which sees NumPy's array buffers as well as Python objects.
"""

from __future__ import annotations

import contextlib
import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn, optim
from retrograd.nn import functional as F

STEPS = 5000
SLACK = 64 * 1024  # bytes: a leak of 16 bytes per step over 4,000 steps would exceed it
COUNTS = {"steps run leak-free": 0}


def teardown_module(module):
    print(f"\nleaks: {COUNTS['steps run leak-free']} training steps run leak-free")


@contextlib.contextmanager
def _one_blas_thread():
    """Small matmuls are fastest on one BLAS thread, and a loaded machine makes OpenBLAS's
    spinning threads many times slower; memory is what these tests measure."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(1):
        yield


@contextlib.contextmanager
def _traced():
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        yield
    finally:
        if started:
            tracemalloc.stop()


def _held() -> int:
    """Bytes held now (traced), after a full collection."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


class _Window:
    """Memory over a window of steps: growth of what is held, and the peak, both relative to the
    window's start. A full collection at both ends empties Python's free lists (tuples, floats,
    frames), which otherwise fill up to a fixed size and look like growth."""

    def __enter__(self):
        gc.collect()
        tracemalloc.reset_peak()
        self.start = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc):
        self.peak = tracemalloc.get_traced_memory()[1] - self.start
        gc.collect()
        self.growth = tracemalloc.get_traced_memory()[0] - self.start


def _w2():
    rg.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )
    g = np.random.default_rng(0)
    batches = [
        (
            rg.tensor(g.standard_normal((128, 784), dtype=np.float32)),
            rg.tensor(g.integers(0, 10, 128)),
        )
        for _ in range(4)
    ]
    return model, batches


def test_5000_w2_training_steps_keep_memory_flat():
    model, batches = _w2()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def run(first, last):
        for i in range(first, last):
            x, y = batches[i % len(batches)]
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    with _one_blas_thread(), _traced():
        run(0, 100)  # warm-up: optimizer state, caches
        start = _held()
        with _Window() as early:
            run(100, 1000)
        run(1000, STEPS - 900)
        with _Window() as late:
            last = run(STEPS - 900, STEPS)
        growth = _held() - start
    assert np.isfinite(last)
    # the previous step's graph is released when `loss` is rebound: the peak holds one or two
    # graphs, never more, and nothing accumulates from step to step
    assert late.peak <= early.peak + SLACK, (early.peak, late.peak)
    assert growth <= SLACK, f"{growth} bytes held after {STEPS - 100} more steps"
    assert early.growth <= SLACK and late.growth <= SLACK, (early.growth, late.growth)
    COUNTS["steps run leak-free"] += STEPS


def test_retain_graph_repeated_does_not_grow_memory():
    model, batches = _w2()
    x, y = batches[0]
    with _one_blas_thread(), _traced():
        loss = F.cross_entropy(model(x), y)
        for _ in range(20):
            loss.backward(retain_graph=True)
        start = _held()
        with _Window() as early:
            for _ in range(200):
                loss.backward(retain_graph=True)
        for _ in range(400):
            loss.backward(retain_graph=True)
        with _Window() as late:
            for _ in range(200):
                loss.backward(retain_graph=True)
        growth = _held() - start
    assert growth <= SLACK, growth
    assert late.growth <= SLACK and early.growth <= SLACK, (early.growth, late.growth)
    assert late.peak <= early.peak + SLACK
    # the gradient accumulated 820 times into the same arrays
    assert model[0].weight.grad is not None


def test_hooks_and_retained_grads_do_not_leak():
    model, batches = _w2()
    opt = optim.SGD(model.parameters(), lr=0.01)
    seen = []

    def forward_hook(module, args, out):
        out.register_hook(lambda g: g)  # returns a handle: the hook itself returns None

    def step(i):
        x, y = batches[i % len(batches)]
        handle = model[2].register_forward_hook(forward_hook)
        h = model[1](model[0](x))
        h.retain_grad()
        h.register_hook(lambda g: g * 1.0)
        loss = F.cross_entropy(model[4](model[3](model[2](h))), y)
        loss.grad_fn.register_hook(lambda grads_in, grads_out: seen.append(len(grads_in)))
        opt.zero_grad()
        loss.backward()
        handle.remove()
        opt.step()
        seen.clear()

    with _one_blas_thread(), _traced():
        for i in range(20):
            step(i)
        start = _held()
        with _Window() as early:
            for i in range(150):
                step(i)
        for i in range(300):
            step(i)
        with _Window() as late:
            for i in range(150):
                step(i)
        growth = _held() - start
    assert growth <= SLACK, growth
    assert model[2]._forward_hooks == []
    assert late.growth <= SLACK and early.growth <= SLACK, (early.growth, late.growth)
    assert late.peak <= early.peak + SLACK


def test_double_backward_loop_does_not_leak():
    """Gradient penalty: create_graph=True builds a graph of the gradient; both must go."""
    rg.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 1))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x = rg.randn(64, 16, requires_grad=True)

    def step():
        out = model(x).sum()
        (gx,) = rg.autograd.grad(out, x, create_graph=True)
        loss = out + (gx * gx).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    with _traced():
        for _ in range(20):
            step()
        start = _held()
        with _Window() as early:
            for _ in range(150):
                step()
        for _ in range(300):
            step()
        with _Window() as late:
            for _ in range(150):
                step()
        growth = _held() - start
    assert growth <= SLACK, growth
    assert late.growth <= SLACK and early.growth <= SLACK, (early.growth, late.growth)
    assert late.peak <= early.peak + SLACK


# -- freed by reference counting ------------------------------------------------------------
@contextlib.contextmanager
def _no_gc():
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def test_graphs_are_freed_by_reference_counting_alone():
    """No reference cycles: with the cycle collector off, a graph dies with its last tensor,
    before and after backward (and a collection afterwards finds nothing of ours)."""
    model, batches = _w2()
    x, y = batches[0]
    with _no_gc():
        for do_backward in (False, True, True):
            hidden = model[1](model[0](x))
            loss = F.cross_entropy(model[4](model[3](model[2](hidden))), y)
            refs = [weakref.ref(loss.grad_fn), weakref.ref(hidden.grad_fn), weakref.ref(hidden)]
            if do_backward:
                loss.backward()
            del hidden, loss
            assert [r() for r in refs] == [None, None, None]
        out = (model(x) ** 2).sum()
        (gx,) = rg.autograd.grad(out, model[0].weight, create_graph=True)
        refs = [weakref.ref(out.grad_fn), weakref.ref(gx.grad_fn)]
        gx.sum().backward()
        del out, gx
        assert [r() for r in refs] == [None, None]


def test_saved_arrays_are_freed_by_backward():
    x = rg.randn(1000, requires_grad=True)
    y = rg.exp(rg.sin(x))  # Sin saves its input (x's array); Exp saves its output
    node = y.grad_fn
    assert node._saved is not None
    y.sum().backward()
    assert node._saved == "freed" and node.next_functions[0]._saved == "freed"
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()


def test_a_graph_kept_alive_after_backward_holds_no_activations():
    """PyTorch frees saved activations at backward; a user keeping `loss` (e.g. in a list)
    keeps only the graph's small nodes. Here every node keeps its output array (`_out`), so
    the usual loop `loss = f(); loss.backward()` holds two steps of activations at once."""
    model, batches = _w2()
    x, y = batches[0]
    hidden = model[1](model[0](x))
    ref = weakref.ref(hidden.data)
    loss = F.cross_entropy(model[4](model[3](model[2](hidden))), y)
    del hidden
    loss.backward()
    assert ref() is None


def test_a_deleted_model_frees_its_arrays():
    model, batches = _w2()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    weight = model[0].weight
    refs = [
        weakref.ref(weight),
        weakref.ref(weight.data),
        weakref.ref(weight.grad.data),
        weakref.ref(opt.state[weight]["exp_avg"].data),
        weakref.ref(model[2]),
    ]
    del weight, model, opt, loss
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)


def test_a_deleted_model_is_freed_without_the_cycle_collector():
    with _no_gc():
        model, batches = _w2()
        refs = [weakref.ref(model[0].weight.data), weakref.ref(model)]
        loss = F.cross_entropy(model(batches[0][0]), batches[0][1])
        loss.backward()
        del model, loss
        assert [r() for r in refs] == [None, None]
