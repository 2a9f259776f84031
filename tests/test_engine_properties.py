"""Hypothesis: random broadcastable shapes through binary ops, gradients vs PyTorch, and backward
never mutates its inputs or the upstream gradient, nor hands out aliased `.grad` arrays."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import retrograd as rg

BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / (b * b + 1), lambda a, b: a / (b * b + 1)),
}


@settings(max_examples=60, deadline=None)
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
    op=st.sampled_from(sorted(BINARY)),
    seed=st.integers(0, 2**31 - 1),
)
def test_binary_ops_broadcast_like_torch(shapes, op, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shapes.input_shapes[0])
    b = rng.standard_normal(shapes.input_shapes[1])
    ours, theirs = BINARY[op]
    x, y = rg.tensor(a, requires_grad=True), rg.tensor(b, requires_grad=True)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    out, tout = ours(x, y), theirs(tx, ty)
    assert out.shape == tuple(tout.shape)
    w = rng.standard_normal(out.shape)
    (out * rg.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy(), rtol=1e-10, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    seed=st.integers(0, 2**31 - 1),
)
def test_backward_mutates_nothing_and_grads_do_not_alias(shapes, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shapes.input_shapes[0])
    b = rng.standard_normal(shapes.input_shapes[1])
    x, y = rg.tensor(a, requires_grad=True), rg.tensor(b, requires_grad=True)
    z = rg.tensor(rng.standard_normal(shapes.input_shapes[0]), requires_grad=True)
    out = (x + y) * 2 - y * z + x  # add/sub hand the same gradient array to several inputs
    upstream = rg.tensor(rng.standard_normal(out.shape))
    up_copy = upstream.data.copy()
    out.backward(upstream)
    np.testing.assert_array_equal(x.data, a)
    np.testing.assert_array_equal(y.data, b)
    np.testing.assert_array_equal(upstream.data, up_copy)
    grads = [x.grad.data, y.grad.data, z.grad.data]
    for i in range(3):
        assert not np.shares_memory(grads[i], upstream.data)
        for j in range(i + 1, 3):
            assert not np.shares_memory(grads[i], grads[j])
