"""Reversible residual blocks: inputs rebuilt from outputs, gradients as the stored version's."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn
from retrograd.autograd.memory import saved_tensors_bytes, track_saved_memory
from retrograd.nn.layers.reversible import ReversibleBlock, ReversibleSequence

D = rg.float64


def _mlp(width, p=0.0, generator=None, act=nn.Tanh):
    layers = [nn.Linear(width, width, dtype=D), act()]
    if p:
        layers.append(nn.Dropout(p, generator=generator))
    return nn.Sequential(*layers)


def _net(depth, half=4, p=0.0, generator=None, seed=0):
    rg.manual_seed(seed)
    blocks = [
        ReversibleBlock(_mlp(half, p, generator), _mlp(half, p, generator, nn.ReLU))
        for _ in range(depth)
    ]
    return ReversibleSequence(blocks)


def _x(shape=(5, 8), requires_grad=True, seed=1):
    data = np.random.default_rng(seed).standard_normal(shape)
    return rg.tensor(data, dtype=D, requires_grad=requires_grad)


def _grads(net, x, reversible, seed=3):
    net.reversible = reversible
    params = list(net.parameters())
    for t in [x, *params]:
        t.grad = None
    rg.manual_seed(seed)
    y = net(x)
    (y * y).sum().backward()
    out = [p.grad.data.copy() for p in params]
    if x.requires_grad:
        out.insert(0, x.grad.data.copy())
    return y.data.copy(), out


def _assert_close(a, b):
    """Equal within float64 round-off (the rebuilt inputs differ from the stored ones by it)."""
    for u, v in zip(a, b):
        scale = max(1.0, float(np.abs(u).max()))
        np.testing.assert_allclose(u, v, rtol=0, atol=1e-12 * scale)


def test_block_inverse_rebuilds_the_input():
    block = ReversibleBlock(_mlp(4), _mlp(4))
    x = _x()
    np.testing.assert_allclose(block.inverse(block(x)).data, x.data, atol=1e-13)


def test_gradients_equal_the_stored_version():
    net = _net(depth=6)
    x = _x()
    y_plain, plain = _grads(net, x, reversible=False)
    y_rev, rev = _grads(net, x, reversible=True)
    _assert_close([y_plain], [y_rev])  # the forward is the same arithmetic
    assert len(plain) == 1 + 4 * 6
    _assert_close(plain, rev)


@pytest.mark.parametrize("explicit_generator", [False, True])
def test_dropout_masks_are_replayed(explicit_generator):
    gen = rg.Generator().manual_seed(11) if explicit_generator else None
    net = _net(depth=4, p=0.3, generator=gen)
    x = _x()
    if gen:
        gen.manual_seed(11)
    y_plain, plain = _grads(net, x, reversible=False)
    after = rg.default_generator.get_state(), gen.get_state() if gen else None
    if gen:
        gen.manual_seed(11)
    y_rev, rev = _grads(net, x, reversible=True)
    _assert_close([y_plain], [y_rev])
    _assert_close(plain, rev)
    assert (rg.default_generator.get_state(), gen.get_state() if gen else None) == after


def test_input_without_grad_and_autograd_grad():
    net = _net(depth=3)
    x = _x(requires_grad=False)
    _, plain = _grads(net, x, reversible=False)
    _, rev = _grads(net, x, reversible=True)
    _assert_close(plain, rev)
    xg = _x()
    w = net.blocks[1].G[0].weight
    for p in net.parameters():
        p.grad = None
    gx, gw = rg.autograd.grad((net(xg) ** 2).sum(), [xg, w])
    net.reversible = False
    px, pw = rg.autograd.grad((net(xg) ** 2).sum(), [xg, w])
    _assert_close([px.data, pw.data], [gx.data, gw.data])
    assert all(p.grad is None for p in net.parameters())


def test_memory_is_flat_in_depth():
    x = _x(shape=(16, 8))
    after, peaks, stored = [], [], []
    for depth in (4, 16):
        net = _net(depth)
        with track_saved_memory() as mem:
            y = net(x)
            after.append(mem.sample(y))
            y.sum().backward()
        peaks.append(mem.peak)
        net.reversible = False
        stored.append(saved_tensors_bytes(net(x)))
    assert after[0] == after[1] == x.data.nbytes  # only the final output is kept
    assert peaks[0] == peaks[1]  # plus one F or G graph at a time during backward
    assert stored[1] > 3.5 * stored[0]  # the stored version grows with depth


def test_attention_blocks_split_along_the_features():
    class SelfAttention(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.norm = nn.LayerNorm(dim, dtype=D)
            self.attn = nn.MultiheadAttention(dim, 2, dropout=0.0, dtype=D)

        def forward(self, x):
            h = self.norm(x)
            return self.attn(h, h, h, need_weights=False)[0]

    rg.manual_seed(0)
    blocks = [ReversibleBlock(SelfAttention(4), _mlp(4)) for _ in range(2)]
    net = ReversibleSequence(blocks)
    x = _x(shape=(3, 2, 8))  # (S, N, E): E splits into 4 + 4
    _, plain = _grads(net, x, reversible=False)
    _, rev = _grads(net, x, reversible=True)
    _assert_close(plain, rev)


def test_no_grad_runs_the_blocks_plainly():
    net = _net(depth=2)
    x = _x()
    with rg.no_grad():
        y = net(x)
    assert y.grad_fn is None
    net.reversible = False
    _assert_close([net(x).data], [y.data])


def test_errors():
    net = _net(depth=2)
    with pytest.raises(ValueError, match="two halves"):
        net(_x(shape=(2, 7)))
    x = _x()
    y = (net(x) ** 2).sum()
    with pytest.raises(RuntimeError, match="double backward"):
        rg.autograd.grad(y, x, create_graph=True)
    with pytest.raises(TypeError, match="ReversibleBlock"):
        ReversibleSequence([nn.Linear(2, 2)])
