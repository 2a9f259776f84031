"""Shape ops beyond the op table: views share the version counter (and memory) with their base,
copies do not; error messages match PyTorch's; split/chunk sizes match PyTorch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import retrograd as rg

INPLACE = "inplace"  # PyTorch words multi-output views differently

# op(x) for a (2, 3, 4) tensor, as retrograd and PyTorch spell it
VIEWS = {
    "view": lambda m, x: x.view(6, 4),
    "reshape": lambda m, x: x.reshape(-1),
    "flatten": lambda m, x: x.flatten(1),
    "unflatten": lambda m, x: x.unflatten(2, (2, 2)),
    "squeeze": lambda m, x: x.unsqueeze(0).squeeze(0),
    "unsqueeze": lambda m, x: x.unsqueeze(1),
    "permute": lambda m, x: x.permute(2, 0, 1),
    "transpose": lambda m, x: x.transpose(0, 2),
    "swapaxes": lambda m, x: x.swapaxes(0, 1),
    "t": lambda m, x: x[0].t(),
    "mT": lambda m, x: x.mT,
    "movedim": lambda m, x: m.movedim(x, 0, -1),
    "expand": lambda m, x: x[:, :1].expand(2, 5, 4),
    "broadcast_to": lambda m, x: m.broadcast_to(x, (3, 2, 3, 4)),
    "narrow": lambda m, x: x.narrow(1, 1, 2),
    "split": lambda m, x: x.split(1, 1)[1],
    "chunk": lambda m, x: x.chunk(2, 2)[0],
    "unbind": lambda m, x: x.unbind(1)[2],
    "diagonal": lambda m, x: x.diagonal(0, 1, 2),
}

COPIES = {
    "flip": lambda m, x: x.flip(0),
    "roll": lambda m, x: x.roll(1, 0),
    "repeat": lambda m, x: x.repeat(1, 1, 1),
    "tile": lambda m, x: x.tile((2,)),
    "cat": lambda m, x: m.cat([x], 0),
    "stack": lambda m, x: m.stack([x], 0),
    "pad": lambda m, x: m.nn.functional.pad(x, (0, 0)) if m is torch else m.pad(x, (0, 0)),
    "pad crop": lambda m, x: m.nn.functional.pad(x, (-1, 0)) if m is torch else m.pad(x, (-1, 0)),
    "pad reflect": lambda m, x: (
        m.nn.functional.pad(x, (1, 1), mode="reflect")
        if m is torch
        else m.pad(x, (1, 1), mode="reflect")
    ),
    "triu": lambda m, x: x.triu(),
    "tril": lambda m, x: x.tril(),
    "reshape (non-viewable)": lambda m, x: x.transpose(0, 2).reshape(-1),
}


def _pair():
    a = np.random.default_rng(0).uniform(-1, 1, (2, 3, 4)).astype(np.float32)
    return rg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _base_then_inplace(m, leaf, op, inplace=True):
    """y = op(x) saved by y * y; then x changes in place; then backward."""
    x = leaf * 1
    y = op(m, x)
    z = (y * y).sum()
    if inplace:
        x.add_(1)
    z.backward()


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_view_shares_version_with_base(name):
    op = VIEWS[name]
    leaf, tleaf = _pair()
    with pytest.raises(RuntimeError, match=INPLACE):
        _base_then_inplace(torch, tleaf, op)
    with pytest.raises(RuntimeError, match=INPLACE):
        _base_then_inplace(rg, leaf, op)


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_view_shares_memory_and_version_without_grad(name):
    op = VIEWS[name]
    x, _ = _pair()
    with rg.no_grad():
        y = op(rg, x)
    assert np.shares_memory(y.data, x.data)
    assert y._version is x._version


@pytest.mark.parametrize("name", sorted(COPIES))
def test_copy_does_not_share_version(name):
    op = COPIES[name]
    leaf, tleaf = _pair()
    _base_then_inplace(torch, tleaf, op, inplace=False)  # the gradient y's old value gives
    _base_then_inplace(rg, leaf, op)
    np.testing.assert_allclose(leaf.grad.data, tleaf.grad.numpy(), rtol=1e-6, atol=1e-6)
    x, _ = _pair()
    y = op(rg, x)
    assert not np.shares_memory(y.data, x.data)
    assert y._version is not x._version


def test_inplace_on_view_is_seen_by_base_saved_for_backward():
    for m in (torch, rg):
        leaf = _pair()[0 if m is rg else 1]
        x = leaf * 1
        z = (x * x).sum()
        x.view(-1).mul_(2)
        with pytest.raises(RuntimeError, match=INPLACE):
            z.backward()


def test_view_of_non_contiguous_raises_like_torch():
    x, tx = _pair()
    _same_error(lambda: tx.transpose(0, 2).view(-1), lambda: x.transpose(0, 2).view(-1))


def test_diagonal_is_a_writable_view():
    x = rg.zeros(3, 3)
    d = x.diagonal()
    d.data[...] = 1
    np.testing.assert_array_equal(x.data, np.eye(3, dtype=np.float32))


def test_expand_inplace_raises_like_torch():
    _same_error(
        lambda: torch.zeros(1, 2).expand(3, 2).add_(1),
        lambda: rg.zeros(1, 2).expand(3, 2).add_(1),
    )


def test_expand_without_repeats_is_writable():
    x = rg.zeros(2, 3)
    x.expand(1, 2, 3).add_(1)
    np.testing.assert_array_equal(x.data, np.ones((2, 3), np.float32))


# -- errors --------------------------------------------------------------------------------------
def _same_error(torch_call, rg_call):
    with pytest.raises(Exception) as expected:
        torch_call()
    with pytest.raises(type(expected.value)) as got:
        rg_call()
    assert str(got.value) == str(expected.value).split("\n")[0]


def _fpad(m):
    return F.pad if m is torch else rg.pad


ERRORS = {
    "reshape size": lambda m, x: x.reshape(5),
    "reshape two -1": lambda m, x: x.reshape(-1, -1),
    "reshape negative": lambda m, x: x.reshape(-2, 3),
    "reshape 0 and -1": lambda m, x: x.reshape(0, -1),
    "reshape empty -1": lambda m, x: x[:0].reshape(-1, 0),
    "view size": lambda m, x: x.view(4, 2),
    "permute length": lambda m, x: x.permute(0),
    "permute duplicate": lambda m, x: x.permute(0, 0),
    "permute range": lambda m, x: x.permute(0, 2),
    "transpose range": lambda m, x: x.transpose(0, 2),
    "unsqueeze range": lambda m, x: x.unsqueeze(3),
    "squeeze range": lambda m, x: x.squeeze(-3),
    "squeeze repeated": lambda m, x: x.squeeze((0, 0)),
    "flatten order": lambda m, x: x.flatten(1, 0),
    "unflatten product": lambda m, x: x.unflatten(1, (2, 2)),
    "unflatten negative dim": lambda m, x: x.unflatten(-1, (2, 2)),
    "unflatten empty": lambda m, x: x.unflatten(1, ()),
    "t 3-d": lambda m, x: x.unsqueeze(0).t(),
    "movedim lengths": lambda m, x: m.movedim(x, (0, 1), (0,)),
    "movedim source": lambda m, x: m.movedim(x, (0, 0), (0, 1)),
    "movedim destination": lambda m, x: m.movedim(x, (0, 1), (1, 1)),
    "expand fewer": lambda m, x: x.expand(3),
    "expand mismatch": lambda m, x: x.expand(2, 5),
    "expand mismatch both": lambda m, x: x.expand(3, 5),
    "expand leading -1": lambda m, x: x.expand(-1, 2, 3),
    "broadcast_to": lambda m, x: m.broadcast_to(x, (3, 3)),
    "repeat fewer": lambda m, x: x.repeat(2),
    "repeat negative": lambda m, x: x.repeat(-1, 2),
    "flip repeated": lambda m, x: m.flip(x, (0, 0)),
    "flip range": lambda m, x: m.flip(x, (3,)),
    "roll align": lambda m, x: m.roll(x, (1, 2), (0,)),
    "roll align none": lambda m, x: m.roll(x, (1, 2), None),
    "roll 0-d": lambda m, x: m.roll(x[0, 0], 1, 0),
    "cat empty list": lambda m, x: m.cat([]),
    "cat sizes": lambda m, x: m.cat([x, m.zeros(2, 4)]),
    "cat sizes dim 1": lambda m, x: m.cat([x, m.zeros(3, 4)], 1),
    "cat ndim": lambda m, x: m.cat([x, m.zeros(2)]),
    "cat 0-d": lambda m, x: m.cat([x, x[0, 0]]),
    "cat dim": lambda m, x: m.cat([x, x], 2),
    "stack empty": lambda m, x: m.stack([]),
    "stack sizes": lambda m, x: m.stack([x, m.zeros(3)]),
    "stack dim": lambda m, x: m.stack([x, x], 3),
    "split zero": lambda m, x: m.split(x, 0),
    "split negative": lambda m, x: m.split(x, -1),
    "split sections sum": lambda m, x: m.split(x, [1, 2]),
    "split sections negative": lambda m, x: m.split(x, [3, -1]),
    "split 0-d": lambda m, x: m.split(x[0, 0], 1),
    "chunk zero": lambda m, x: m.chunk(x, 0),
    "chunk 0-d": lambda m, x: m.chunk(x[0, 0], 2),
    "unbind 0-d": lambda m, x: m.unbind(x[0, 0]),
    "unbind range": lambda m, x: m.unbind(x, 2),
    "narrow start": lambda m, x: m.narrow(x, 1, 4, 1),
    "narrow negative start": lambda m, x: m.narrow(x, 1, -4, 1),
    "narrow exceeds": lambda m, x: m.narrow(x, 1, 1, 3),
    "narrow length": lambda m, x: m.narrow(x, 1, 1, -1),
    "narrow 0-d": lambda m, x: m.narrow(x[0, 0], 0, 0, 1),
    "triu 1-d": lambda m, x: m.triu(x[0]),
    "tril 1-d": lambda m, x: m.tril(x[0]),
    "diagonal identical": lambda m, x: m.diagonal(x, 0, 0, 0),
    "diagonal range": lambda m, x: m.diagonal(x[0]),
    "pad odd": lambda m, x: _fpad(m)(x, (1,)),
    "pad too long": lambda m, x: _fpad(m)(x, (1, 1, 1, 1, 1, 1)),
    "pad crop too much": lambda m, x: _fpad(m)(x, (-2, -2)),
    "pad reflect too big": lambda m, x: _fpad(m)(x, (3, 2), mode="reflect"),
    "pad circular too big": lambda m, x: _fpad(m)(x, (4, 1), mode="circular"),
    "pad mode": lambda m, x: _fpad(m)(x, (1, 1), mode="foo"),
    "pad value": lambda m, x: _fpad(m)(x, (1, 1), mode="reflect", value=2.0),
    "pad replicate empty": lambda m, x: _fpad(m)(x[:, :0], (1, 1), mode="replicate"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_messages_match_torch(name):
    call = ERRORS[name]
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    _same_error(lambda: call(torch, torch.tensor(a)), lambda: call(rg, rg.tensor(a)))


# -- split / chunk sizes -------------------------------------------------------------------------
@pytest.mark.parametrize("n", range(0, 8))
def test_split_and_chunk_sizes_match_torch(n):
    a = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    x, tx = rg.tensor(a), torch.tensor(a)
    for size in range(0 if n == 0 else 1, 5):
        got = [p.shape for p in rg.split(x, size)]
        assert got == [tuple(p.shape) for p in torch.split(tx, size)], size
    for chunks in range(1, 6):
        got = [p.shape for p in rg.chunk(x, chunks)]
        assert got == [tuple(p.shape) for p in torch.chunk(tx, chunks)], chunks
    for p, tp in zip(rg.chunk(x, 3), torch.chunk(tx, 3)):
        np.testing.assert_array_equal(p.data, tp.numpy())


def test_unused_pieces_get_zero_gradient_like_torch():
    leaf, tleaf = _pair()
    a, _, c = rg.split(leaf, [1, 1, 2], dim=2)
    ta, _, tc = torch.split(tleaf, [1, 1, 2], dim=2)
    (a.sum() * 2 + (c * c).sum()).backward()
    (ta.sum() * 2 + (tc * tc).sum()).backward()
    np.testing.assert_allclose(leaf.grad.data, tleaf.grad.numpy(), rtol=1e-6)


def test_iterating_a_tensor_unbinds_it():
    leaf, tleaf = _pair()
    sum(row.sum() * i for i, row in enumerate(leaf)).backward()
    sum(row.sum() * i for i, row in enumerate(tleaf)).backward()
    np.testing.assert_allclose(leaf.grad.data, tleaf.grad.numpy())


def test_cat_and_stack_promote_like_torch():
    pairs = [
        (np.zeros((1, 2), np.float32), np.zeros((1, 2), np.int64)),
        (np.zeros((1, 2), np.int32), np.zeros((1, 2), np.int64)),
        (np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float64)),
        (np.zeros((1, 2), np.bool_), np.zeros((1, 2), np.int32)),
        (np.zeros((1, 2), np.int8), np.zeros((1, 2), np.uint8)),
    ]
    for a, b in pairs:
        for rfn, tfn in ((rg.cat, torch.cat), (rg.stack, torch.stack)):
            got = rfn([rg.from_numpy(a), rg.from_numpy(b)]).data.dtype
            want = tfn([torch.from_numpy(a), torch.from_numpy(b)]).numpy().dtype
            assert got == want, (a.dtype, b.dtype)


def test_cat_mixed_dtype_gradient_reaches_float64_input():
    x = rg.tensor(np.ones((1, 2), np.float32), requires_grad=True)
    y = rg.tensor(np.ones((1, 2), np.float64), requires_grad=True)
    rg.cat([x, y]).sum().backward()
    assert x.grad.dtype == np.float32 and y.grad.dtype == np.float64


def test_atleast_returns_tuples_for_several_tensors():
    a, b = rg.tensor(1.0), rg.zeros(2, 3)
    out = rg.atleast_2d(a, b)
    tout = torch.atleast_2d(torch.tensor(1.0), torch.zeros(2, 3))
    assert [o.shape for o in out] == [tuple(o.shape) for o in tout]
    assert rg.atleast_1d(b) is b


def test_pad_reflect_double_backward_matches_torch():
    a = np.random.default_rng(1).uniform(-1, 1, (1, 2, 3, 4))
    for mode in ("reflect", "replicate", "circular"):
        x = rg.tensor(a, requires_grad=True)
        tx = torch.tensor(a, requires_grad=True)
        (gx,) = rg.autograd.grad(
            (rg.pad(x, (2, 1, 1, 2), mode=mode) ** 3).sum(), [x], create_graph=True
        )
        (tgx,) = torch.autograd.grad(
            (F.pad(tx, (2, 1, 1, 2), mode=mode) ** 3).sum(), [tx], create_graph=True
        )
        (gx * gx).sum().backward()
        (tgx * tgx).sum().backward()
        np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-10)
