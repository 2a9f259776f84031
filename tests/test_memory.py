"""Activation-memory accounting: bytes held for backward, counted by hand."""

from __future__ import annotations

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
    y = x @ w  # saves x (96 B) and w (a leaf: not counted)
    assert saved_tensors_bytes(y) == 3 * 4 * F64
    assert saved_tensors_bytes(y, include_leaves=True) == (3 * 4 + 4 * 5) * F64
    z = y.relu()  # saves its output (120 B)
    assert saved_tensors_bytes(z) == (12 + 15) * F64
    e = z.exp()  # saves its output (120 B)
    assert saved_tensors_bytes(e) == (12 + 15 + 15) * F64
    m = e.T @ z  # saves e.T (a view of e: counted once, with e) and z (counted already)
    assert saved_tensors_bytes(m) == (12 + 15 + 15) * F64
    s = (m * m).sum()  # mul saves m twice (25 values, once); sum saves no array
    assert saved_tensors_bytes(s) == (12 + 15 + 15 + 25) * F64
    # several outputs: shared arrays once
    assert saved_tensors_bytes([s, z, e]) == saved_tensors_bytes(s)


def test_include_outputs_counts_what_the_graph_keeps_alive():
    x = _t((3, 4))
    w = _t((4, 5), requires_grad=True)
    z = (x @ w).relu()  # matmul's output is not saved, but its node keeps it (node._out)
    assert saved_tensors_bytes(z) == (12 + 15) * F64
    assert saved_tensors_bytes(z, include_outputs=True) == (12 + 15 + 15) * F64


def test_views_of_a_leaf_are_the_leafs_memory():
    w = _t((4, 5), requires_grad=True)
    x = _t((3, 4))
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
        y = y * 1.0  # keeps its input (but x: a leaf) and the multiplier as a 0-d array
    assert saved_tensors_bytes(y) == 4999 * 2 * F64 + 5000 * F64


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
