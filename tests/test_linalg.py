"""Linear algebra beyond the op table: PyTorch's errors for mismatched shapes and dtypes, einsum
against torch.einsum (values and gradients), float32 staying float32, norm edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import retrograd as rg
import retrograd.linalg as rla

INF = math.inf


def _pair(a, b, dtype_a=np.float32, dtype_b=None, requires_grad=False):
    """The same operands for retrograd and torch (filled with ones)."""
    dtype_b = dtype_b or dtype_a
    xa, xb = np.ones(a, dtype=dtype_a), np.ones(b, dtype=dtype_b)
    r = (rg.from_numpy(xa), rg.from_numpy(xb))
    t = (torch.from_numpy(xa.copy()), torch.from_numpy(xb.copy()))
    if requires_grad:
        r[0].requires_grad_(), t[0].requires_grad_()
    return r, t


def _same_error(fn, tfn, r_args, t_args, **kwargs):
    with pytest.raises(Exception) as expected:
        tfn(*t_args, **kwargs)
    with pytest.raises(type(expected.value)) as got:
        fn(*r_args, **kwargs)
    assert str(got.value).split("\n")[0] == str(expected.value).split("\n")[0]


# -- errors as PyTorch ---------------------------------------------------------------------------
MATMUL_BAD = [
    ((2, 3), (4, 5)),
    ((3,), (4,)),
    ((3,), (4, 5)),
    ((2, 3), (4,)),
    ((2, 2, 3), (2, 4, 5)),
    ((2, 2, 3), (4,)),
    ((3,), (2, 4, 5)),
    ((2, 2, 3), (4, 5)),
    ((2, 3), (2, 4, 5)),
    ((2, 2, 3), (3, 3, 4)),
    ((4, 2, 2, 3), (3, 3, 4)),
    ((), (3,)),
    ((3,), ()),
]


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("a,b", MATMUL_BAD)
def test_matmul_shape_errors_match_torch(a, b, requires_grad):
    r, t = _pair(a, b, requires_grad=requires_grad)
    _same_error(rg.matmul, torch.matmul, r, t)


@pytest.mark.parametrize("b", [(5, 2), (5,)])
def test_matmul_noncontiguous_batch_error_matches_torch(b):
    # a batch that cannot be folded into rows without a copy makes PyTorch take the bmm path
    x = rg.from_numpy(np.ones((3, 2, 4), np.float32)).transpose(0, 1)
    tx = torch.ones(3, 2, 4).transpose(0, 1)
    _same_error(rg.matmul, torch.matmul, (x, rg.ones(*b)), (tx, torch.ones(b)))
    _same_error(rg.matmul, torch.matmul, (rg.ones(*b[::-1]), x.mT), (torch.ones(b[::-1]), tx.mT))


DTYPE_BAD = [
    ((3,), (3,)),
    ((3,), (3, 2)),
    ((2, 3), (3,)),
    ((2, 3), (3, 2)),
    ((2, 2, 3), (2, 3, 4)),
    ((2, 2, 3), (3, 4)),
    ((3,), (2, 3, 4)),
]


@pytest.mark.parametrize("a,b", DTYPE_BAD)
@pytest.mark.parametrize(
    "dtypes", [(np.float32, np.float64), (np.int64, np.int32), (np.float64, np.int64)]
)
def test_matmul_dtype_errors_match_torch(a, b, dtypes):
    r, t = _pair(a, b, *dtypes)
    _same_error(rg.matmul, torch.matmul, r, t)


@pytest.mark.parametrize(
    "a,b", [((2, 3), (4, 5)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 2, 3), (3, 4)), ((), (3, 3))]
)
def test_mm_errors_match_torch(a, b):
    r, t = _pair(a, b)
    _same_error(rg.mm, torch.mm, r, t)


@pytest.mark.parametrize(
    "a,b",
    [
        ((2, 2, 3), (2, 4, 5)),
        ((2, 2, 3), (3, 3, 4)),
        ((2, 3), (3, 4)),
        ((2, 2, 3), (2, 3)),
        ((1, 2, 3), (2, 3, 4)),
    ],
)
def test_bmm_errors_match_torch(a, b):
    r, t = _pair(a, b)
    _same_error(rg.bmm, torch.bmm, r, t)


@pytest.mark.parametrize("a,b", [((3,), (4,)), ((2, 3), (3,)), ((3,), (2, 3)), ((), (3,))])
def test_dot_errors_match_torch(a, b):
    r, t = _pair(a, b)
    _same_error(rg.dot, torch.dot, r, t)


def test_product_dtype_errors_match_torch():
    for fn, tfn, a, b in (
        (rg.mm, torch.mm, (2, 3), (3, 2)),
        (rg.bmm, torch.bmm, (1, 2, 3), (1, 3, 2)),
        (rg.dot, torch.dot, (3,), (3,)),
        (rg.dot, torch.dot, (3,), (4,)),
    ):
        r, t = _pair(a, b, np.float32, np.float64)
        _same_error(fn, tfn, r, t)


@pytest.mark.parametrize("a,b", [((2, 3), (3,)), ((3,), (2, 3)), ((), (3,))])
def test_outer_errors_match_torch(a, b):
    r, t = _pair(a, b)
    _same_error(rg.outer, torch.outer, r, t)


def test_outer_promotes_like_torch():
    r, t = _pair((3,), (2,), np.float32, np.float64)
    assert rg.outer(*r).dtype == np.float64 and torch.outer(*t).dtype == torch.float64


@pytest.mark.parametrize(
    "a,b,dims",
    [
        ((2, 3, 4), (4, 4, 5), 2),
        ((2, 3, 4), (3, 4, 5), ([1, 2], [1, 0])),
        ((2, 3, 4), (3, 4, 5), ([1, 2], [0])),
        ((2, 3, 4), (3, 4, 5), -1),
        ((2, 3, 4), (3, 4, 5), 4),
        ((2, 3, 4), (3, 4, 5), 3),
        ((2, 3, 4), (3, 4, 5), ([1, 1], [0, 0])),
        ((2, 3, 4), (3, 4, 5), ([5], [0])),
        ((2, 3, 4), (3, 4, 5), ([-2, -1], [-3, -3])),
        ((2, 3, 4), (3, 4, 5), (1, 0)),
        ((2, 3, 4), (3, 4, 5), 2.0),
    ],
)
def test_tensordot_errors_match_torch(a, b, dims):
    r, t = _pair(a, b)
    _same_error(rg.tensordot, torch.tensordot, r, t, dims=dims)


def test_tensordot_dtype_error_matches_torch():
    r, t = _pair((2, 3), (3, 2), np.float32, np.float64)
    _same_error(rg.tensordot, torch.tensordot, r, t, dims=1)


EINSUM_BAD = [
    ("ii->i", [(3, 4)]),
    ("ij->ii", [(3, 3)]),
    ("ij->k", [(3, 3)]),
    ("ij,jk->ik", [(2, 3)]),
    ("ij,jk->ik", [(2, 3), (4, 5)]),
    ("ij", [(2, 3, 4)]),
    ("a->", [()]),
    ("ij->i.", [(2, 3)]),
    ("i1->i", [(2, 3)]),
    ("ij-", [(2, 3)]),
    ("ij->j->i", [(2, 3)]),
    ("....i", [(2, 3)]),
    ("i..j", [(2, 3)]),
    ("ij,ij->ij", [(2, 3), (2, 3), (2, 3)]),
    ("...i,...i->...", [(2, 2, 3), (4, 3)]),
    ("...i,...i->...", [(1, 2, 3), (5, 4, 3)]),
    ("...i,i...->...", [(2, 3), (3, 5)]),
    ("i...,i...->...", [(2, 3), (2, 3, 4)]),
    ("ij...k", [(2, 3)]),
    ("iij->j", [(2, 1, 3)]),
    ("ij->...i...", [(2, 3)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM_BAD)
def test_einsum_errors_match_torch(eq, shapes):
    r = [rg.from_numpy(np.ones(s, np.float32)) for s in shapes]
    t = [torch.ones(s) for s in shapes]
    _same_error(lambda *a: rg.einsum(eq, *a), lambda *a: torch.einsum(eq, *a), r, t)


NORM_BAD = [
    (rla.norm, torch.linalg.norm, (2, 3, 4), dict(ord=2)),
    (rla.norm, torch.linalg.norm, (2, 3, 4), dict(ord="fro")),
    (rla.norm, torch.linalg.norm, (3,), dict(ord="fro")),
    (rla.norm, torch.linalg.norm, (3, 3), dict(ord=3)),
    (rla.norm, torch.linalg.norm, (3, 3), dict(dim=(0, 1, 1))),
    (rla.norm, torch.linalg.norm, (3, 3), dict(dim=(0, 0))),
    (rla.norm, torch.linalg.norm, (3, 3), dict(ord="fro", dim=0)),
    (rla.norm, torch.linalg.norm, (3, 3), dict(ord="abc", dim=(0, 1))),
    (rla.norm, torch.linalg.norm, (2, 3, 4), dict(dim=5)),
    (rla.vector_norm, torch.linalg.vector_norm, (0, 3), dict(ord=INF)),
    (rla.vector_norm, torch.linalg.vector_norm, (0, 3), dict(ord=INF, dim=0)),
    (rla.vector_norm, torch.linalg.vector_norm, (0, 3), dict(ord=-1, dim=0)),
    (rla.vector_norm, torch.linalg.vector_norm, (2, 3), dict(ord="fro")),
    (rla.matrix_norm, torch.linalg.matrix_norm, (3,), {}),
    (rla.matrix_norm, torch.linalg.matrix_norm, (2, 3), dict(dim=(0, 0))),
    (rla.matrix_norm, torch.linalg.matrix_norm, (2, 3, 4), dict(dim=(0, 1, 2))),
    (rla.matrix_norm, torch.linalg.matrix_norm, (0, 3), dict(ord=-INF)),
    (rla.matrix_norm, torch.linalg.matrix_norm, (3, 0), dict(ord=-1)),
    (rla.matrix_norm, torch.linalg.matrix_norm, (2, 0, 3), dict(ord=-INF)),
]


@pytest.mark.parametrize("fn,tfn,shape,kw", NORM_BAD)
def test_norm_errors_match_torch(fn, tfn, shape, kw):
    _same_error(fn, tfn, (rg.from_numpy(np.ones(shape, np.float32)),), (torch.ones(shape),), **kw)


@pytest.mark.parametrize(
    "fn,tfn",
    [
        (rla.norm, torch.linalg.norm),
        (rla.vector_norm, torch.linalg.vector_norm),
        (rla.matrix_norm, torch.linalg.matrix_norm),
    ],
)
def test_norm_rejects_integers_like_torch(fn, tfn):
    x = np.ones((3, 3), np.int64)
    _same_error(fn, tfn, (rg.from_numpy(x),), (torch.from_numpy(x),))


def test_vector_norm_dtype_argument():
    x = rg.ones(2, 3)
    assert rla.vector_norm(x, dtype=rg.float64).dtype == np.float64
    with pytest.raises(RuntimeError, match="dtype should be floating point"):
        rla.vector_norm(x, dtype=rg.int64)
    with pytest.raises(RuntimeError, match="without narrowing"):
        rla.vector_norm(rg.ones(2, dtype=rg.float64), dtype=rg.float32)


@pytest.mark.parametrize("ord", ["nuc", 2, -2])
def test_singular_value_norms_are_not_implemented(ord):
    with pytest.raises(NotImplementedError):
        rla.matrix_norm(rg.ones(2, 2), ord=ord)


# -- einsum against torch ------------------------------------------------------------------------
EINSUM_VS_TORCH = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)]),
    ("bij,bjk->bik", [(1, 2, 3), (4, 3, 5)]),  # size-1 labelled dims broadcast
    ("i,i->", [(1,), (3,)]),
    ("ij,j->i", [(2, 1), (3,)]),
    ("ii->i", [(3, 3)]),
    ("ii->", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("i,j->ij", [(3,), (4,)]),
    ("...ij,...jk->...ik", [(2, 1, 2, 3), (3, 3, 4)]),
    ("...i,...i->...", [(2, 1, 3), (4, 3)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("Ba,aC", [(2, 3), (3, 4)]),
    ("ba,aB", [(2, 3), (3, 4)]),
    ("i...->...", [(2, 3, 4)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("ii...->i", [(3, 3, 2)]),
    ("ij,ij->i...", [(2, 3), (2, 3)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("iij,jk->ik", [(2, 2, 3), (3, 2)]),
    ("ii,i->i", [(1, 1), (3,)]),
    ("ij,kl->", [(2, 3), (1, 2)]),
    ("->", [()]),
    ("i,->i", [(3,), ()]),
    ("ij,jk->ik", [(2, 0), (0, 3)]),
]


def _check_einsum(eq, shapes, dtype=np.float32, call=None):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    r = [rg.from_numpy(a.copy()).requires_grad_() for a in arrays]
    t = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]
    out = (call or rg.einsum)(eq, *r)
    tout = (torch.einsum if call is None else call.torch)(eq, *t)
    assert out.shape == tuple(tout.shape)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), atol=1e-5, rtol=1e-4)
    w = rng.standard_normal(out.shape).astype(dtype)
    grads = rg.autograd.grad((out * rg.from_numpy(w)).sum(), r)
    tgrads = torch.autograd.grad((tout * torch.from_numpy(w)).sum(), t)
    for g, tg in zip(grads, tgrads):
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g.data, tg.numpy(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("eq,shapes", EINSUM_VS_TORCH)
def test_einsum_matches_torch(eq, shapes):
    _check_einsum(eq, shapes)


def test_einsum_operand_list_and_sublist_forms():
    a, b = np.ones((2, 3), np.float32), np.arange(12, dtype=np.float32).reshape(3, 4)
    ra, rb = rg.from_numpy(a), rg.from_numpy(b)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    np.testing.assert_allclose(
        rg.einsum("ij,jk", [ra, rb]).data, torch.einsum("ij,jk", [ta, tb]).numpy()
    )
    np.testing.assert_allclose(
        rg.einsum(ra, [0, 1], rb, [1, 2], [0, 2]).data,
        torch.einsum(ta, [0, 1], tb, [1, 2], [0, 2]).numpy(),
    )
    np.testing.assert_allclose(
        rg.einsum(ra, [0, Ellipsis], rb, [1, 2]).data,
        torch.einsum(ta, [0, Ellipsis], tb, [1, 2]).numpy(),
    )
    with pytest.raises(ValueError, match="must specify the equation"):
        rg.einsum("")


def test_einsum_promotes_like_elementwise_ops():
    x = rg.ones(2, dtype=rg.float64)
    y = rg.ones(3)
    assert rg.einsum("i,j->", x, y).dtype == np.float64
    assert rg.einsum("i,j->", rg.ones(2, dtype=rg.int64), y).dtype == np.float32
    assert rg.einsum("ij->j", rg.ones(2, 3, dtype=rg.int64)).dtype == np.int64


def test_einsum_output_owns_its_memory():
    x = rg.from_numpy(np.arange(6.0).reshape(2, 3))
    for eq in ("ij->ji", "ii->i", "ij->ij"):
        y = rg.einsum(eq, x if eq != "ii->i" else rg.ones(3, 3))
        assert not np.shares_memory(y.data, x.data)


def test_einsum_second_order_with_diagonal():
    a = np.arange(9.0).reshape(3, 3) / 5
    x = rg.tensor(a, requires_grad=True)
    t = torch.tensor(a, requires_grad=True)
    (g,) = rg.autograd.grad(rg.einsum("ii,ij,ik->", x, x, x), [x], create_graph=True)
    (tg,) = torch.autograd.grad(torch.einsum("ii,ij,ik->", t, t, t), [t], create_graph=True)
    (gg,) = rg.autograd.grad((g * g).sum(), [x])
    (tgg,) = torch.autograd.grad((tg * tg).sum(), [t])
    np.testing.assert_allclose(g.data, tg.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(gg.data, tgg.numpy(), rtol=1e-10)


# -- float32 stays float32 -----------------------------------------------------------------------
F32_CASES = [
    ("matmul", lambda x, y: rg.matmul(x, y), (2, 2, 3), (3, 4)),
    ("matmul 1-D", lambda x, y: rg.matmul(x, y), (3,), (2, 3, 4)),
    ("matmul vec", lambda x, y: rg.matmul(x, y), (2, 2, 3), (3,)),
    ("mm", rg.mm, (2, 3), (3, 4)),
    ("bmm", rg.bmm, (2, 2, 3), (2, 3, 4)),
    ("dot", rg.dot, (3,), (3,)),
    ("outer", rg.outer, (3,), (4,)),
    ("einsum", lambda x, y: rg.einsum("ii,ij->j", x, y), (3, 3), (3, 2)),
    ("tensordot", lambda x, y: rg.tensordot(x, y, 1), (2, 3), (3, 4)),
    ("norm", lambda x, y: rla.norm(x) * rla.vector_norm(y, 3, dim=0), (2, 3), (3, 4)),
    ("vector_norm p", lambda x, y: rla.vector_norm(x, 0.5) + rla.vector_norm(y, INF), (3,), (4,)),
    ("matrix_norm", lambda x, y: rla.matrix_norm(x, 1) + rla.matrix_norm(y, -INF), (2, 3), (3, 4)),
]


@pytest.mark.parametrize("name,fn,a,b", F32_CASES, ids=[c[0] for c in F32_CASES])
def test_float32_stays_float32(name, fn, a, b):
    rng = np.random.default_rng(1)
    x = rg.from_numpy(rng.uniform(0.5, 1.5, a).astype(np.float32)).requires_grad_()
    y = rg.from_numpy(rng.uniform(0.5, 1.5, b).astype(np.float32)).requires_grad_()
    out = fn(x, y)
    assert out.dtype == np.float32
    gx, gy = rg.autograd.grad(out.sum(), [x, y], create_graph=True)
    assert gx.dtype == np.float32 and gy.dtype == np.float32
    ggx, ggy = rg.autograd.grad((gx.sum() + gy.sum()), [x, y], allow_unused=True)
    for gg in (ggx, ggy):
        assert gg is None or gg.dtype == np.float32


# -- norms at the edges --------------------------------------------------------------------------
def _norm_vs_torch(fn, tfn, x, **kw):
    r = rg.from_numpy(np.array(x, np.float32)).requires_grad_()
    t = torch.tensor(np.array(x, np.float32), requires_grad=True)
    out, tout = fn(r, **kw), tfn(t, **kw)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), atol=1e-6, rtol=1e-5)
    if out.data.size:
        (g,) = rg.autograd.grad(out.sum(), [r], allow_unused=True)
        (tg,) = torch.autograd.grad(tout.sum(), [t], allow_unused=True)
        assert (g is None) == (tg is None)  # ord=0 (a count) has no gradient at all
        if g is not None:
            np.testing.assert_allclose(g.data, tg.numpy(), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("ord", [2, 1, 3, 1.5, 0.5, -1, INF, -INF, 0])
def test_vector_norm_at_zero_matches_torch(ord):
    _norm_vs_torch(rla.vector_norm, torch.linalg.vector_norm, [0.0, 0.0, 0.0], ord=ord)
    _norm_vs_torch(rla.vector_norm, torch.linalg.vector_norm, [0.0, -3.0, 3.0], ord=ord)


def test_inf_norm_ties_share_the_gradient():
    _norm_vs_torch(rla.vector_norm, torch.linalg.vector_norm, [1.0, -3.0, 3.0], ord=INF)
    _norm_vs_torch(
        rla.vector_norm, torch.linalg.vector_norm, [[1.0, -1.0], [2.0, 0.5]], ord=-INF, dim=1
    )
    _norm_vs_torch(rla.matrix_norm, torch.linalg.matrix_norm, [[1.0, -2, 3], [3.0, 0, 1]], ord=INF)
    _norm_vs_torch(rla.matrix_norm, torch.linalg.matrix_norm, [[1.0, -2, 2], [3.0, 0, 1]], ord=1)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (2, 0, 3)])
@pytest.mark.parametrize("ord", ["fro", 1, INF, -1, -INF])
def test_matrix_norm_of_empty_matrices_matches_torch(shape, ord):
    x = np.ones(shape, np.float32)
    try:
        expected = torch.linalg.matrix_norm(torch.from_numpy(x), ord=ord)
    except IndexError:
        _same_error(
            rla.matrix_norm,
            torch.linalg.matrix_norm,
            (rg.from_numpy(x),),
            (torch.from_numpy(x),),
            ord=ord,
        )
        return
    got = rla.matrix_norm(rg.from_numpy(x), ord=ord)
    assert got.shape == tuple(expected.shape)
    np.testing.assert_allclose(got.data, expected.numpy())


@pytest.mark.parametrize("kw", [dict(), dict(dim=0), dict(dim=-1, keepdim=True), dict(dim=[])])
def test_vector_norm_of_0d_and_empty_dim_lists(kw):
    _norm_vs_torch(rla.vector_norm, torch.linalg.vector_norm, -3.0, **kw)
    _norm_vs_torch(
        rla.vector_norm,
        torch.linalg.vector_norm,
        [[1.0, -2.0], [3.0, 0.5]],
        **{k: v for k, v in kw.items() if k != "dim" or v == []},
    )


def test_linalg_namespace():
    x = rg.tensor([[3.0, -4.0], [0.0, 0.0]])
    assert float(rla.norm(x).data) == 5.0
    assert float(rla.norm(x, 1).data) == 4.0  # matrix 1-norm: largest column sum
    assert float(rla.norm(x[0], INF).data) == 4.0
    assert rla.matmul is rg.matmul


# -- other forms ---------------------------------------------------------------------------------
def test_tensordot_broadcasts_size_one_dims_like_torch():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 1, 4)).astype(np.float32)
    b = rng.standard_normal((3, 4, 5)).astype(np.float32)
    r = [rg.from_numpy(a).requires_grad_(), rg.from_numpy(b).requires_grad_()]
    t = [torch.from_numpy(a).requires_grad_(), torch.from_numpy(b).requires_grad_()]
    out, tout = rg.tensordot(*r, dims=([1], [0])), torch.tensordot(*t, dims=([1], [0]))
    np.testing.assert_allclose(out.data, tout.detach().numpy(), atol=1e-5)
    for g, tg in zip(rg.autograd.grad(out.sum(), r), torch.autograd.grad(tout.sum(), t)):
        np.testing.assert_allclose(g.data, tg.numpy(), atol=1e-5)


def test_tensordot_dims_as_tensor():
    a, b = rg.ones(2, 3), rg.ones(3, 4)
    assert rg.tensordot(a, b, dims=rg.tensor(1)).shape == (2, 4)
    assert rg.tensordot(a, b, dims=rg.tensor([[1], [0]])).shape == (2, 4)


def test_matmul_accepts_arrays_next_to_a_tensor():
    x = rg.ones(2, 3)
    out = x @ np.ones((3, 2))
    assert out.dtype == np.float32 and out.shape == (2, 2)
    assert (np.ones(2) @ x).shape == (3,)


def test_matmul_folded_weight_gradient_matches_torch():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 2, 3)).astype(np.float32)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    v = rng.standard_normal(3).astype(np.float32)
    for y in (w, v):
        r = [rg.from_numpy(a).requires_grad_(), rg.from_numpy(y).requires_grad_()]
        t = [torch.from_numpy(a).requires_grad_(), torch.from_numpy(y).requires_grad_()]
        out, tout = r[0] @ r[1], t[0] @ t[1]
        for g, tg in zip(rg.autograd.grad(out.sum(), r), torch.autograd.grad(tout.sum(), t)):
            assert g.shape == tuple(tg.shape)
            np.testing.assert_allclose(g.data, tg.numpy(), atol=1e-5)


@pytest.mark.parametrize("ord", [1, INF, 3])
def test_norm_second_derivative_is_defined_like_torch(ord):
    a = np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]])
    x, t = rg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    (g,) = rg.autograd.grad(rla.norm(x, ord, dim=1).sum(), [x], create_graph=True)
    (tg,) = torch.autograd.grad(torch.linalg.norm(t, ord, dim=1).sum(), [t], create_graph=True)
    (gg,) = rg.autograd.grad((g * g).sum(), [x])
    (tgg,) = torch.autograd.grad((tg * tg).sum(), [t])
    np.testing.assert_allclose(gg.data, tgg.numpy(force=True), atol=1e-12)
