"""Activation-memory accounting: bytes held for backward, counted by hand."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import retrograd as rg
from retrograd.autograd import Function
from retrograd.autograd.memory import (
    SavedMemoryTracker,
    saved_tensors_bytes,
    track_saved_memory,
)

F64 = 8  # bytes per float64


def _t(shape, requires_grad=False, seed=0):
    data = np.random.default_rng(seed).standard_normal(shape)
    return rg.tensor(data, dtype=rg.float64, requires_grad=requires_grad)


def test_hand_counted_example():
    x = _t((3, 4))  # a data batch: a leaf that does not require grad, saved by matmul
    w = _t((4, 5), requires_grad=True)  # a parameter: its memory is not the graph's
    y = x @ w  # saves x (96 B) for w's gradient; not w: x needs no gradient (as PyTorch)
    assert saved_tensors_bytes(y) == 3 * 4 * F64
    assert saved_tensors_bytes(y, include_leaves=True) == 3 * 4 * F64
    z = y.relu()  # saves the mask z <= 0 (15 B, one byte each), not its output
    assert saved_tensors_bytes(z) == 12 * F64 + 15
    e = z.exp()  # saves its output (120 B)
    assert saved_tensors_bytes(e) == (12 + 15) * F64 + 15
    m = e.T @ z  # saves e.T (a view of e: counted once, with e) and z (120 B)
    assert saved_tensors_bytes(m) == (12 + 15 + 15) * F64 + 15
    s = (m * m).sum()  # mul saves m twice (25 values, once); sum saves no array
    assert saved_tensors_bytes(s) == (12 + 15 + 15 + 25) * F64 + 15
    # several outputs: shared arrays once
    assert saved_tensors_bytes([s, z, e]) == saved_tensors_bytes(s)


def test_include_outputs_counts_what_the_graph_keeps_alive():
    from retrograd.diagnostics import keep_values

    x = _t((3, 4))
    w = _t((4, 5), requires_grad=True)
    z = (x @ w).exp()  # matmul's output is not saved: its node does not keep it
    assert saved_tensors_bytes(z) == (12 + 15) * F64
    assert saved_tensors_bytes(z, include_outputs=True) == (12 + 15) * F64
    with keep_values():  # recorded for inspection: every node keeps its output (node._out)
        z = (x @ w).exp()
    assert saved_tensors_bytes(z) == (12 + 15) * F64
    assert saved_tensors_bytes(z, include_outputs=True) == (12 + 15 + 15) * F64


def test_views_of_a_leaf_are_the_leafs_memory():
    w = _t((4, 5), requires_grad=True)
    x = _t((3, 4), requires_grad=True) + 0  # needs a gradient: matmul saves (a view of) w
    y = x @ w.T.T  # matmul saves a (non-leaf) view of w: still w's memory
    assert saved_tensors_bytes(y) == 12 * F64
    assert saved_tensors_bytes(y, include_leaves=True) == (12 + 20) * F64


def test_arrays_kept_as_attributes_count_at_their_base():
    x = _t((3, 4), requires_grad=True)
    mask = rg.tensor(np.array([[True, False, True, False]]))
    y = x.masked_fill(mask, 0.0)  # keeps a broadcast view of the 4-byte mask as self.mask
    assert saved_tensors_bytes(y) == 4


def test_freed_after_backward_kept_with_retain_graph():
    x = _t((3, 4), requires_grad=True)
    y = (x.exp() * 2.0).sum()
    held = saved_tensors_bytes(y)
    assert held == 12 * F64 + F64  # exp's output, and the multiplier as a 0-d array
    y.backward(retain_graph=True)
    assert saved_tensors_bytes(y) == held
    y.backward()
    assert saved_tensors_bytes(y) == 0


def test_user_function_saved_output_and_inputs():
    class Square(Function):
        @staticmethod
        def forward(ctx, a, b):
            out = a * b
            ctx.save_for_backward(a, out)
            return out

        @staticmethod
        def backward(ctx, g):
            a, out = ctx.saved_tensors
            return g * out / a, g * a

    a = _t((2, 3), requires_grad=True)
    b = _t((2, 3), seed=1)
    h = a.exp()  # saves its output (48 B), which Square saves again
    out = Square.apply(h, b)
    assert saved_tensors_bytes(out) == (6 + 6) * F64


def test_long_chain_is_walked_iteratively():
    x = _t((2,), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0  # keeps the multiplier as a 0-d array (not its input: 1.0 needs no grad)
    assert saved_tensors_bytes(y) == 5000 * F64


def test_tracker_samples_and_peak():
    x = _t((4, 4), requires_grad=True)
    with track_saved_memory() as mem:
        assert isinstance(mem, SavedMemoryTracker)
        h = x.exp()
        assert mem.sample(h) == 16 * F64
        y = h.exp().sum()
        assert mem.sample(y) == 32 * F64
        y.backward()
        assert mem.sample(y) == 0
    assert mem.peak == 32 * F64
    assert [b for _, b in mem.samples] == [16 * F64, 32 * F64, 0]
    assert mem.current == 0
    from retrograd.autograd import memory

    assert mem not in memory._active.trackers


def test_nested_trackers_both_record():
    x = _t((4,), requires_grad=True)
    with track_saved_memory() as outer:
        with track_saved_memory() as inner:
            inner.sample(x.exp())
        outer.sample(x.exp().exp())
    assert inner.peak == 4 * F64
    assert outer.peak == 8 * F64


@pytest.mark.parametrize("dtype,size", [(rg.float32, 4), (rg.float64, 8)])
def test_counts_bytes_of_the_dtype(dtype, size):
    x = rg.ones(10, dtype=dtype, requires_grad=True)
    assert saved_tensors_bytes(x.exp()) == 10 * size


def test_leaf_and_plain_tensors_hold_nothing():
    assert saved_tensors_bytes(_t((3,), requires_grad=True)) == 0
    assert saved_tensors_bytes(_t((3,))) == 0
    assert saved_tensors_bytes([]) == 0


_FAULTS = """
import resource, numpy as np, retrograd.backend as b
print(b.MALLOC_TUNING)
for i in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = [np.ones(1 << 20, dtype=np.float32) for _ in range(4)]  # a step's arrays: 4 x 4 MB
    del a
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(faults)
"""


def _faults_child(**extra) -> tuple[str, int]:
    """(retrograd.backend.MALLOC_TUNING, page faults of the 4th of four "steps") in a
    fresh process without malloc settings in its environment, plus `extra`."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "RETROGRAD_MA"))}
    env.pop("GLIBC_TUNABLES", None)
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS], env={**env, **extra}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    line, faults = out.stdout.split("\n")[:2]
    return line, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc tuning")
def test_malloc_tuning_keeps_freed_pages_and_can_be_turned_off():
    state, faults = _faults_child()
    if state == "off: not glibc":
        pytest.skip("not glibc")
    assert state.startswith("on:")
    assert faults < 200  # the pages of the last step are reused: no fresh faults
    state, faults_off = _faults_child(RETROGRAD_MALLOC_TUNING="0")
    assert state == "off: RETROGRAD_MALLOC_TUNING=0"
    assert faults_off > 1000  # glibc's defaults: the 16 MB (4096 pages) faulted in again
    state, _ = _faults_child(MALLOC_MMAP_THRESHOLD_="65536")
    assert state == "off: the environment sets malloc parameters"


def _mlp_grads(x, w1, w2, retain=False, hook=False):
    for t in (x, w1, w2):
        t.grad = None
    h = rg.nn.functional.gelu(rg.nn.functional.linear(x, w1))
    y = rg.nn.functional.linear(h, w2)
    if hook:  # a tensor hook sends the backward down the general path
        y.register_hook(lambda g: g)
    (y * y).sum().backward(retain_graph=retain)
    return [t.grad.numpy().copy() for t in (x, w1, w2)], h


def test_plain_backward_frees_saved_inputs_early_with_the_same_gradients():
    """The plain backward lets Linear free its saved input before it allocates the input's
    gradient, and GELU write its gradient into the fresh array Linear handed it: the same
    gradients, bit for bit, as the general path and as a backward that keeps the graph."""
    import tracemalloc

    rng = np.random.default_rng(0)
    x = rg.tensor(rng.standard_normal((256, 64)), dtype=rg.float32, requires_grad=True)
    w1 = rg.tensor(rng.standard_normal((512, 64)) / 8, dtype=rg.float32, requires_grad=True)
    w2 = rg.tensor(rng.standard_normal((64, 512)) / 8, dtype=rg.float32, requires_grad=True)
    plain, _ = _mlp_grads(x, w1, w2)
    general, _ = _mlp_grads(x, w1, w2, hook=True)
    kept, _ = _mlp_grads(x, w1, w2, retain=True)
    for a, b, c in zip(plain, general, kept):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    w1 = rg.tensor(rng.standard_normal((2048, 64)) / 8, dtype=rg.float32, requires_grad=True)
    w2 = rg.tensor(rng.standard_normal((64, 2048)) / 8, dtype=rg.float32, requires_grad=True)
    threads = rg.get_num_threads()
    rg.set_num_threads(1)  # on n threads GELU's chunk scratch is n times 1 MB (parallel.py)
    tracemalloc.start()
    try:
        h = rg.nn.functional.gelu(rg.nn.functional.linear(x, w1))
        loss = (rg.nn.functional.linear(h, w2) ** 2).sum()
        nbytes = h.data.nbytes  # 2 MB, as the first layer's output (GELU's saved input)
        del h  # the graph alone holds it
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        loss.backward()
        growth = tracemalloc.get_traced_memory()[1] - held
    finally:
        tracemalloc.stop()
        rg.set_num_threads(threads)
    # above what the graph held: the second Linear's gradients (2.5 MB) come as h goes, and
    # GELU's in place (its chunk scratch, 1 MB); without either, 2.5 or 2.75 MB on top
    assert growth < nbytes


def test_a_gradient_shared_by_two_consumers_is_not_overwritten():
    """Add hands one array to both inputs: neither GELU may write into it."""
    rng = np.random.default_rng(1)
    a = rg.tensor(rng.standard_normal((64, 32)), dtype=rg.float64, requires_grad=True)
    b = rg.tensor(rng.standard_normal((64, 32)), dtype=rg.float64, requires_grad=True)
    w = rg.tensor(rng.standard_normal((32, 32)), dtype=rg.float64, requires_grad=True)
    lin = rg.nn.functional.linear
    s = rg.nn.functional.gelu(lin(a, w)) + rg.nn.functional.gelu(lin(b, w))
    (s * 3.0).sum().backward()
    grads = [t.grad.numpy().copy() for t in (a, b, w)]
    for t in (a, b, w):
        t.grad = None
    s = rg.nn.functional.gelu(lin(a, w)) + rg.nn.functional.gelu(lin(b, w))
    s.register_hook(lambda g: g)  # the general path: no gradient is overwritten there
    (s * 3.0).sum().backward()
    for g, t in zip(grads, (a, b, w)):
        np.testing.assert_array_equal(g, t.grad.numpy())


def _data_address(t) -> int:
    return t.data.__array_interface__["data"][0]


@pytest.fixture
def reuse_from_4mb(monkeypatch):
    """Weight gradients reused from 4 MiB (in use: from backend.MALLOC_PAD, the mmap threshold)."""
    from retrograd.ops import normalization

    assert normalization.REUSE_GRAD_BYTES == rg.backend.MALLOC_PAD
    monkeypatch.setattr(normalization, "REUSE_GRAD_BYTES", 4 << 20)


def test_a_large_weight_gradient_reuses_the_array_zero_grad_dropped(reuse_from_4mb):
    """A large weight's gradient goes into the array that held it last step once nothing
    refers to it (a fresh one costs a page fault and the zeroing of every page): the same
    values as a fresh product, and an array someone still holds is never written."""
    rng = np.random.default_rng(0)
    lin = rg.nn.Linear(1024, 1024)
    opt = rg.optim.SGD(lin.parameters(), lr=0.0)

    def step(seed):
        x = np.random.default_rng(seed).standard_normal((8, 1024)).astype(np.float32)
        opt.zero_grad()
        (lin(rg.tensor(x)) ** 2).sum().backward()
        g = 2 * (x @ lin.weight.data.T + lin.bias.data)
        np.testing.assert_allclose(lin.weight.grad.numpy(), g.T @ x, rtol=1e-5, atol=1e-3)
        return _data_address(lin.weight.grad)

    first = step(1)
    assert step(2) == first  # zero_grad dropped it: reused
    kept = lin.weight.grad  # the user holds it now
    before = kept.numpy().copy()
    assert step(3) != first
    np.testing.assert_array_equal(kept.numpy(), before)
    del kept
    assert step(4) == first  # free again
    small = rg.nn.Linear(256, 256)  # below the size: a fresh array each time
    (small(rg.tensor(rng.standard_normal((4, 256)), dtype=rg.float32)) ** 2).sum().backward()
    from retrograd.ops import _buffers

    assert id(small.weight.data) not in _buffers._pools


def test_reused_weight_gradients_accumulate_and_flow_through_computed_weights(reuse_from_4mb):
    """Gradients kept between backwards (set_to_none=False) add up; a weight computed from a
    parameter (the reused array flows on as a fresh gradient) and one used twice in a graph
    get the products' sums."""
    rng = np.random.default_rng(5)
    p = rg.tensor(rng.standard_normal((1024, 1024)) / 32, dtype=rg.float32, requires_grad=True)
    x = rng.standard_normal((8, 1024)).astype(np.float32)
    lin = rg.nn.functional.linear
    g1 = None
    for k in range(1, 4):  # no zeroing: each backward adds the same gradient
        (lin(rg.tensor(x), p) ** 2).sum().backward()
        g1 = p.grad.numpy().copy() if g1 is None else g1
        np.testing.assert_allclose(p.grad.numpy(), k * g1, rtol=1e-5, atol=1e-3)
    for _ in range(2):  # through a computed weight, and the weight used twice
        p.grad = None
        w = p * 3.0
        h = lin(rg.tensor(x), w)
        (h * h).sum().backward()
        np.testing.assert_allclose(p.grad.numpy(), 9.0 * g1, rtol=1e-4, atol=1e-2)
        p.grad = None
        (lin(lin(rg.tensor(x), p), p) ** 2).sum().backward()
        w64 = p.detach().numpy().astype(np.float64)
        y = x @ w64.T
        gz = 2 * (y @ w64.T)
        expected = gz.T @ y + (gz @ w64).T @ x
        np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-4, atol=1e-3)


def test_only_held_by_caller_counts_every_other_reference():
    # the LSTM's backward writes over its activations only when this says nothing else holds
    # them: a second name, a view, a container or a cache that was not named must all count
    from retrograd.ops._buffers import Buffers, only_held_by_caller

    a = np.zeros(4)
    assert only_held_by_caller(a, 1)
    b = a
    assert not only_held_by_caller(a, 1)
    assert only_held_by_caller(a, 2)
    del b
    view = a[:2]
    assert not only_held_by_caller(a, 1)
    del view
    box = [a]
    assert not only_held_by_caller(a, 1)
    box.clear()
    cache = Buffers(1 << 20)
    c = cache.empty((8,), np.float64, a)
    assert only_held_by_caller(c, 1, cache)
    assert not only_held_by_caller(c, 1)  # the cache's own reference, unnamed
