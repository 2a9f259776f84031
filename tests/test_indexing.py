"""Indexing beyond the op table: accumulation of repeated indices, masks, negative indices,
PyTorch's errors, views, and gather/scatter against PyTorch on random shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import retrograd as rg


def _pair(a, requires_grad=True):
    a = np.asarray(a, dtype=np.float64)
    return (
        rg.tensor(a.copy(), dtype=rg.float64, requires_grad=requires_grad),
        torch.tensor(a.copy(), requires_grad=requires_grad),
    )


def _close(t, ref):
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    got = t.data if isinstance(t, rg.Tensor) else np.asarray(t)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def _grads(f, tf, *arrays):
    """Forward values and gradients of f (retrograd) and tf (torch) on the same inputs."""
    ins = [_pair(a) for a in arrays]
    out = f(*[i[0] for i in ins])
    tout = tf(*[i[1] for i in ins])
    _close(out, tout)
    w = np.random.default_rng(0).standard_normal(out.shape)
    (out * rg.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    for x, tx in ins:
        _close(x.grad, tx.grad)


# -- getitem --------------------------------------------------------------------------------------
def test_repeated_integer_indices_accumulate():
    x = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 0.0, 1.0])

    m = rg.zeros(2, 3, requires_grad=True)
    m[rg.tensor([1, 1]), rg.tensor([2, 2])].sum().backward()
    np.testing.assert_array_equal(m.grad.data, [[0, 0, 0], [0, 0, 2]])


@pytest.mark.parametrize(
    "index",
    [
        (np.array([0, 0, 2, 0]),),
        (np.array([[1, 1], [0, 1]]), slice(None)),
        (np.array([0, 2, 0]), np.array([3, 3, 3])),
        (slice(1, None), np.array([0, 0, -1])),
        (np.array([True, False, True]), np.array([1, 1])),
    ],
)
def test_repeated_indices_match_torch_with_create_graph(index):
    tindex = tuple(torch.from_numpy(i) if isinstance(i, np.ndarray) else i for i in index)
    x, tx = _pair(np.random.default_rng(1).uniform(-2, 2, (3, 4)))
    y, ty = x[index], tx[tindex]
    _close(y, ty)
    (g,) = rg.autograd.grad((y**3).sum(), [x], create_graph=True)
    (tg,) = torch.autograd.grad((ty**3).sum(), [tx], create_graph=True)
    _close(g, tg)
    (gg,) = rg.autograd.grad((g * g).sum(), [x])
    (tgg,) = torch.autograd.grad((tg * tg).sum(), [tx])
    _close(gg, tgg)


def test_boolean_masks():
    a = np.random.default_rng(2).uniform(-2, 2, (3, 4))
    _grads(lambda x: x[x > 0], lambda x: x[x > 0], a)
    _grads(lambda x: x[x.sum(1) > 0], lambda x: x[x.sum(1) > 0], a)
    _grads(lambda x: x[:, [True, False, True, True]], lambda x: x[:, [True, False, True, True]], a)
    _grads(lambda x: x[x < -5], lambda x: x[x < -5], a)  # nothing selected


def test_negative_indices():
    a = np.random.default_rng(3).uniform(-2, 2, (3, 4))
    _grads(lambda x: x[-1], lambda x: x[-1], a)
    _grads(lambda x: x[-2:, -1], lambda x: x[-2:, -1], a)
    _grads(lambda x: x[[-1, -1, 0]], lambda x: x[[-1, -1, 0]], a)
    _grads(lambda x: x[..., -3], lambda x: x[..., -3], a)


def test_basic_index_is_a_view_and_advanced_a_copy():
    x = rg.zeros(3, 4)
    row = x[1]
    row.fill_(5.0)
    assert x.data[1].tolist() == [5.0] * 4
    assert x._version_counter == 1
    picked = x[[0, 1]]
    picked.fill_(7.0)
    assert x.data[0].tolist() == [0.0] * 4
    s = x[1, 2]
    assert isinstance(s, rg.Tensor) and s.shape == () and s.item() == 5.0


def test_index_forms():
    x = rg.arange(12.0).reshape(3, 4)
    tx = torch.arange(12.0).reshape(3, 4)
    _close(x[rg.tensor(1)], tx[torch.tensor(1)])
    _close(x[[]], tx[[]])
    _close(x[None, 1, ..., None], tx[None, 1, ..., None])
    _close(x[np.int64(2)], tx[2])
    _close(x[rg.tensor([[0], [2]]), rg.tensor([1, 3])], tx[torch.tensor([[0], [2]]), [1, 3]])


@pytest.mark.parametrize(
    "index",
    [5, (slice(None), 7), [0, 5], (-4,), (1, -5)],
    ids=["int", "second dim", "int array", "negative", "negative second dim"],
)
def test_out_of_range_index_raises_like_torch(index):
    x, tx = rg.zeros(3, 4), torch.zeros(3, 4)
    with pytest.raises(IndexError) as err:
        tx[index]
    with pytest.raises(IndexError, match=f"^{err.value}$"):
        x[index]
    with pytest.raises(IndexError, match=f"^{err.value}$"):
        x[index] = 1.0


def test_index_error_message():
    with pytest.raises(IndexError, match="^index 5 is out of bounds for dimension 0 with size 3$"):
        rg.zeros(3)[5]


def test_other_index_errors_match_torch():
    x, tx = rg.zeros(3, 4, 5), torch.zeros(3, 4, 5)
    for index in [
        (torch.tensor([True, False]), rg.tensor([True, False])),
        ((slice(None), torch.ones(3, 5, dtype=torch.bool)), (slice(None), rg.ones(3, 5) > 0)),
        ((Ellipsis, torch.ones(2, dtype=torch.bool)), (Ellipsis, rg.ones(2) > 0)),
        (torch.tensor([0.5]), rg.tensor([0.5])),
        ((0, 0, 0, 0), (0, 0, 0, 0)),
    ]:
        with pytest.raises(IndexError) as err:
            tx[index[0]]
        with pytest.raises(IndexError, match=f"^{_escape(err.value)}$"):
            x[index[1]]


def _escape(e) -> str:
    import re

    return re.escape(str(e))


# -- index_select, gather, take_along_dim, scatter ------------------------------------------------
def _rand_case(seed):
    rng = np.random.default_rng(seed)
    nd = int(rng.integers(1, 4))
    shape = tuple(int(s) for s in rng.integers(1, 5, nd))
    dim = int(rng.integers(-nd, nd))
    return rng, shape, dim


@pytest.mark.parametrize("seed", range(12))
def test_gather_against_torch(seed):
    rng, shape, dim = _rand_case(seed)
    ishape = [int(rng.integers(1, s + 1)) for s in shape]
    ishape[dim] = int(rng.integers(0, 6))
    index = rng.integers(0, shape[dim], ishape)
    ri, ti = rg.tensor(index), torch.tensor(index)
    _grads(
        lambda x: rg.gather(x, dim, ri),
        lambda x: torch.gather(x, dim, ti),
        rng.uniform(-2, 2, shape),
    )
    # take_along_dim broadcasts instead: other dims of the index are 1 or x's
    ishape = [s if rng.random() < 0.5 else 1 for s in shape]
    ishape[dim] = int(rng.integers(0, 6))
    index = rng.integers(-shape[dim], shape[dim], ishape)
    ri, ti = rg.tensor(index), torch.tensor(index)
    _grads(
        lambda x: x.take_along_dim(ri, dim),
        lambda x: x.take_along_dim(ti, dim),
        rng.uniform(-2, 2, shape),
    )


@pytest.mark.parametrize("seed", range(12))
def test_scatter_against_torch(seed):
    rng, shape, dim = _rand_case(seed)
    ishape = [int(rng.integers(1, s + 1)) for s in shape]
    d = dim % len(shape)
    ishape[d] = int(rng.integers(0, shape[d] + 1))
    # distinct positions along dim: scatter with repeats is nondeterministic in PyTorch
    perm = np.argsort(rng.random(tuple(ishape[:d]) + (shape[d],) + tuple(ishape[d + 1 :])), axis=d)
    index = np.take(perm, np.arange(ishape[d]), axis=d)
    ri, ti = rg.tensor(index), torch.tensor(index)
    _grads(
        lambda x, s: rg.scatter(x, dim, ri, s),
        lambda x, s: torch.scatter(x, dim, ti, s),
        rng.uniform(-2, 2, shape),
        rng.uniform(-2, 2, ishape),
    )
    _grads(
        lambda x: x.scatter(dim, ri, 0.5),
        lambda x: x.scatter(dim, ti, 0.5),
        rng.uniform(-2, 2, shape),
    )
    repeats = rng.integers(0, shape[d], ishape)
    rr, tr = rg.tensor(repeats), torch.tensor(repeats)
    _grads(
        lambda x, s: x.scatter_add(dim, rr, s),
        lambda x, s: x.scatter_add(dim, tr, s),
        rng.uniform(-2, 2, shape),
        rng.uniform(-2, 2, ishape),
    )


def test_index_select_against_torch():
    rng = np.random.default_rng(5)
    for dim in (0, 1, -1):
        index = rng.integers(0, 3, 5)
        ri, ti = rg.tensor(index), torch.tensor(index)
        _grads(
            lambda x, dim=dim, ri=ri: x.index_select(dim, ri),
            lambda x, dim=dim, ti=ti: x.index_select(dim, ti),
            rng.uniform(-2, 2, (3, 3, 3)),
        )


def _torch_error(fn):
    try:
        fn()
    except (RuntimeError, IndexError, TypeError) as e:
        return type(e), str(e).splitlines()[0]
    raise AssertionError("PyTorch did not raise")


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: m.gather(x, 0, m.tensor([[5]])),
        lambda m, x: m.gather(x, 0, m.tensor([[-1]])),
        lambda m, x: m.gather(x, 0, m.tensor([0])),
        lambda m, x: m.gather(x, 1, m.zeros(4, 4, dtype=m.int64)),
        lambda m, x: m.gather(x, 0, m.zeros(1, 1)),
        lambda m, x: m.scatter(x, 0, m.tensor([[5]]), m.ones(1, 1)),
        lambda m, x: m.scatter(x, 0, m.tensor([[0, 0]]), m.ones(1, 1)),
        lambda m, x: m.scatter(x, 0, m.tensor([[0]]), m.ones(1, 1, dtype=m.float64)),
        lambda m, x: m.scatter(x, 0, m.tensor([0]), m.ones(1)),
        lambda m, x: m.scatter(x, 0, m.tensor([[0]]), m.ones(1, 1, 1)),
        lambda m, x: m.scatter_add(x, 0, m.tensor([[0]]), 2.5),
        lambda m, x: m.index_select(x, 0, m.tensor([5])),
        lambda m, x: m.index_select(x, 0, m.tensor([[0]])),
        lambda m, x: m.index_select(x, 0, m.tensor([0.0])),
        lambda m, x: m.take_along_dim(x, m.tensor([1]), 0),
        lambda m, x: m.take_along_dim(x, m.tensor([[1]], dtype=m.int32), 0),
        lambda m, x: m.take_along_dim(m.zeros(3, 2), m.zeros(1, 4, dtype=m.int64), 0),
        lambda m, x: m.masked_fill(x, m.ones(3, 4), 1.0),
        lambda m, x: m.masked_fill(x, m.ones(3, 4, dtype=m.int64), 1.0),
        lambda m, x: m.masked_fill(x, m.ones(3, 4, dtype=m.bool), m.ones(1)),
        lambda m, x: m.masked_fill(x, m.ones(5, dtype=m.bool), 1.0),
    ],
)
def test_errors_match_torch(call):
    kind, msg = _torch_error(lambda: call(torch, torch.zeros(3, 4)))
    with pytest.raises(kind) as err:
        call(rg, rg.zeros(3, 4))
    assert str(err.value) == msg


@pytest.mark.parametrize(
    "args",
    [([0, 2], -1), ([0, 2], 5), ([0, 2], 2), ([0, -2], -1), ([], -1), ([], 3), ([1], 0)],
)
def test_one_hot_matches_torch(args):
    values, n = args
    t = torch.tensor(values, dtype=torch.int64)
    r = rg.tensor(np.array(values, dtype=np.int64))
    try:
        expected = F.one_hot(t, n)
    except RuntimeError as e:
        with pytest.raises(RuntimeError, match=f"^{_escape(e)}$"):
            rg.one_hot(r, n)
        return
    out = rg.one_hot(r, n)
    assert out.dtype == rg.int64 and not out.requires_grad
    np.testing.assert_array_equal(out.data, expected.numpy())


def test_one_hot_rejects_non_long():
    with pytest.raises(RuntimeError, match="one_hot is only applicable to index tensor"):
        rg.one_hot(rg.tensor([0.0, 1.0]))


def test_masked_fill_value_gradient():
    x, tx = _pair(np.random.default_rng(6).uniform(-2, 2, (2, 3)))
    v, tv = _pair(1.5)
    mask = np.array([[True], [False]])
    out = rg.masked_fill(x, rg.tensor(mask), v)
    tout = torch.masked_fill(tx, torch.tensor(mask), tv)
    (out * out).sum().backward()
    (tout * tout).sum().backward()
    _close(out, tout)
    _close(x.grad, tx.grad)
    _close(v.grad, tv.grad)
