"""Reductions beyond the op table: ties, extreme values, -inf rows, zeros in products, empty
tensors, signatures and errors, and Hypothesis over shapes and dims."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import retrograd as rg


def _rg(a, dtype=np.float64, grad=True):
    return rg.from_numpy(np.asarray(a, dtype=dtype)).requires_grad_(grad)


def _th(a, dtype=torch.float64, grad=True):
    return torch.tensor(np.asarray(a), dtype=dtype).requires_grad_(grad)


def _first_grad(fn, tfn, a, w=None, dtype=np.float64):
    """Values and d(sum(w * f(x)))/dx from retrograd and PyTorch."""
    x, t = _rg(a, dtype), _th(a, torch.float64 if dtype == np.float64 else torch.float32)
    y, ty = fn(x), tfn(t)
    w = np.ones(y.shape) if w is None else w
    (g,) = rg.autograd.grad((y * rg.from_numpy(w.astype(dtype))).sum(), [x])
    (tg,) = torch.autograd.grad((ty * torch.from_numpy(w).to(ty.dtype)).sum(), [t])
    return y.data, ty.detach().numpy(), g.data, tg.numpy()


def _second_grad(fn, tfn, a, seed=0):
    """Hessian-vector products of sum(w * f(x)) from retrograd and PyTorch (create_graph)."""
    rng = np.random.default_rng(seed)
    x, t = _rg(a), _th(a)
    y, ty = fn(x), tfn(t)
    w = rng.standard_normal(y.shape)
    v = rng.standard_normal(np.shape(a))
    (g,) = rg.autograd.grad((y * rg.from_numpy(w)).sum(), [x], create_graph=True)
    (tg,) = torch.autograd.grad((ty * torch.from_numpy(w)).sum(), [t], create_graph=True)
    (h,) = rg.autograd.grad((g * rg.from_numpy(v)).sum(), [x])
    (th,) = torch.autograd.grad((tg * torch.from_numpy(v)).sum(), [t])
    return h.data, th.numpy()


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(divide="raise", over="raise", invalid="raise"):
            yield


# -- ties --------------------------------------------------------------------------------------
TIES = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, -1.0], [0.0, -2.0, 4.0, -2.0]])

TIE_CASES = [
    ("max full", lambda x: rg.max(x), lambda t: torch.max(t)),
    ("min full", lambda x: rg.min(x), lambda t: torch.min(t)),
    ("max dim", lambda x: rg.max(x, 1).values, lambda t: torch.max(t, 1).values),
    ("min dim", lambda x: rg.min(x, 1).values, lambda t: torch.min(t, 1).values),
    ("amax dim", lambda x: rg.amax(x, 1), lambda t: torch.amax(t, 1)),
    ("amin dim", lambda x: rg.amin(x, -1), lambda t: torch.amin(t, -1)),
    ("amax all", lambda x: rg.amax(x), lambda t: torch.amax(t)),
    ("amax dims", lambda x: rg.amax(x, (0, 1)), lambda t: torch.amax(t, (0, 1))),
    ("amin dim 0", lambda x: rg.amin(x, 0, True), lambda t: torch.amin(t, 0, True)),
    ("norm inf", lambda x: rg.norm(x, math.inf, 1), lambda t: torch.norm(t, math.inf, 1)),
    ("norm -inf", lambda x: rg.norm(x, -math.inf, 1), lambda t: torch.norm(t, -math.inf, 1)),
]


@pytest.mark.parametrize("name,fn,tfn", TIE_CASES, ids=[c[0] for c in TIE_CASES])
def test_ties_split_like_torch(name, fn, tfn):
    w = np.random.default_rng(1).standard_normal(tfn(torch.from_numpy(TIES)).shape)
    y, ty, g, tg = _first_grad(fn, tfn, TIES, w)
    np.testing.assert_allclose(y, ty)
    np.testing.assert_allclose(g, tg, atol=1e-12)


def test_full_max_tie_halves():
    x = _rg([1.0, 3.0, 3.0, 2.0])
    rg.max(x).backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.5, 0.5, 0.0])


def test_max_dim_ties_pick_torchs_index():
    values, indices = rg.max(_rg(TIES, grad=False), 1)
    tv, ti = torch.max(torch.from_numpy(TIES), 1)
    np.testing.assert_array_equal(indices.data, ti.numpy())
    assert indices.dtype == np.int64
    values, indices = rg.min(_rg(TIES, grad=False), 1, keepdim=True)
    np.testing.assert_array_equal(indices.data, torch.min(torch.from_numpy(TIES), 1, True)[1])


def test_max_dim_returns_named_tuple():
    x = _rg([[1.0, 4.0], [3.0, 2.0]])
    out = rg.max(x, dim=1)
    assert isinstance(out, tuple) and len(out) == 2
    assert out.values is out[0] and out.indices is out[1]
    np.testing.assert_array_equal(out.values.data, [4.0, 3.0])
    np.testing.assert_array_equal(out.indices.data, [1, 0])
    assert not out.indices.requires_grad and out.values.requires_grad
    values, indices = x.min(0)
    np.testing.assert_array_equal(indices.data, [0, 1])


def test_max_with_tensor_is_maximum():
    a, b = _rg([1.0, 5.0], grad=False), _rg([3.0, 2.0], grad=False)
    np.testing.assert_array_equal(rg.max(a, b).data, [3.0, 5.0])
    np.testing.assert_array_equal(rg.min(a, b).data, [1.0, 2.0])


def test_argmax_keepdim_without_dim():
    x = np.random.default_rng(0).standard_normal((2, 3))
    out = rg.argmax(_rg(x, grad=False), keepdim=True)
    assert out.shape == (1, 1) and out.dtype == np.int64
    assert out.data.item() == torch.argmax(torch.from_numpy(x), keepdim=True).item()
    assert rg.argmin(_rg(x, grad=False)).shape == ()


# -- extreme values: +-1e4, -inf rows --------------------------------------------------------------
EXTREME_CASES = [
    ("softmax", lambda x: rg.softmax(x, 1), lambda t: torch.softmax(t, 1)),
    ("log_softmax", lambda x: rg.log_softmax(x, 1), lambda t: torch.log_softmax(t, 1)),
    ("logsumexp", lambda x: rg.logsumexp(x, 1), lambda t: torch.logsumexp(t, 1)),
    ("softmax dim 0", lambda x: rg.softmax(x, 0), lambda t: torch.softmax(t, 0)),
    ("log_softmax dim 0", lambda x: rg.log_softmax(x, 0), lambda t: torch.log_softmax(t, 0)),
]
BIG = np.array([[1e4, 1e4 - 1.0, -1e4, 0.0], [-1e4, -1e4 + 2.0, -1e4 + 0.5, -1e4], [1e4] * 4])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,fn,tfn", EXTREME_CASES, ids=[c[0] for c in EXTREME_CASES])
def test_large_inputs_finite_and_equal_to_torch(name, fn, tfn, dtype, no_warnings):
    w = np.random.default_rng(2).standard_normal(tfn(torch.from_numpy(BIG)).shape)
    y, ty, g, tg = _first_grad(fn, tfn, BIG, w, dtype=dtype)
    assert np.isfinite(y).all() and np.isfinite(g).all()
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, ty, rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(g, tg, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,fn,tfn", EXTREME_CASES, ids=[c[0] for c in EXTREME_CASES])
def test_large_inputs_second_order(name, fn, tfn, no_warnings):
    h, th = _second_grad(fn, tfn, BIG)
    assert np.isfinite(h).all()
    np.testing.assert_allclose(h, th, rtol=1e-6, atol=1e-9)


def test_logsumexp_all_neg_inf_row(no_warnings):
    a = np.array([[-np.inf] * 3, [1.0, 2.0, 3.0]])
    x = _rg(a)
    y = rg.logsumexp(x, 1)
    assert y.data[0] == -np.inf and not np.isnan(y.data).any()
    ty = torch.logsumexp(_th(a), 1)
    np.testing.assert_allclose(y.data, ty.detach().numpy())


def test_logsumexp_neg_inf_row_gradient_matches_torch():
    # PyTorch's gradient there is exp(-inf - (-inf)) = nan; we match it
    a = np.array([[-np.inf] * 3, [1.0, 2.0, 3.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, ty, g, tg = _first_grad(lambda x: rg.logsumexp(x, 1), lambda t: torch.logsumexp(t, 1), a)
    np.testing.assert_allclose(g, tg, equal_nan=True)
    assert np.isnan(g[0]).all() and np.isfinite(g[1]).all()


def test_logsumexp_infinities_match_torch():
    a = np.array([[-np.inf, 1.0], [np.inf, 2.0], [np.inf, -np.inf], [-np.inf, -np.inf]])
    w = np.array([0.5, -1.0, 2.0, 1.5])
    x, t = _rg(a), _th(a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = rg.logsumexp(x, 1)
        y.backward(rg.from_numpy(w))
    ty = torch.logsumexp(t, 1)
    ty.backward(torch.from_numpy(w))
    np.testing.assert_allclose(y.data, ty.detach().numpy())
    np.testing.assert_allclose(x.grad.data, t.grad.numpy(), equal_nan=True)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_neg_inf_rows_match_torch(name):
    a = np.array([[-np.inf] * 3, [1.0, -np.inf, 3.0]])
    fn, tfn = getattr(rg, name), getattr(torch, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, ty, g, tg = _first_grad(lambda x: fn(x, 1), lambda t: tfn(t, 1), a)
    np.testing.assert_allclose(y, ty, equal_nan=True)
    np.testing.assert_allclose(g, tg, equal_nan=True)


# -- zeros in products -----------------------------------------------------------------------------
ZERO_INPUTS = {
    "one zero": np.array([[2.0, 0.0, 3.0, -1.5], [1.0, 2.0, 0.5, 4.0]]),
    "two zeros": np.array([[0.0, 2.0, 0.0, 3.0], [1.5, -2.0, 0.5, 0.0]]),
    "all zero": np.zeros((2, 4)),
    "zero first and last": np.array([[0.0, 2.0, 3.0, 0.5], [1.5, -2.0, 0.5, 0.0]]),
}
PROD_CASES = [
    ("prod", lambda x: rg.prod(x), lambda t: torch.prod(t)),
    ("prod dim 1", lambda x: rg.prod(x, 1), lambda t: torch.prod(t, 1)),
    ("prod dim 0 keepdim", lambda x: rg.prod(x, 0, True), lambda t: torch.prod(t, 0, True)),
    ("cumprod dim 1", lambda x: rg.cumprod(x, 1), lambda t: torch.cumprod(t, 1)),
    ("cumprod dim -2", lambda x: rg.cumprod(x, -2), lambda t: torch.cumprod(t, -2)),
]


@pytest.mark.parametrize("inp", list(ZERO_INPUTS), ids=list(ZERO_INPUTS))
@pytest.mark.parametrize("name,fn,tfn", PROD_CASES, ids=[c[0] for c in PROD_CASES])
def test_products_with_zeros_match_torch(name, fn, tfn, inp, no_warnings):
    a = ZERO_INPUTS[inp]
    w = np.random.default_rng(3).standard_normal(tfn(torch.from_numpy(a)).shape)
    y, ty, g, tg = _first_grad(fn, tfn, a, w)
    np.testing.assert_allclose(y, ty)
    np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-12)
    h, th = _second_grad(fn, tfn, a)
    np.testing.assert_allclose(h, th, rtol=1e-10, atol=1e-12)


def test_prod_gradient_with_one_zero_is_product_of_others():
    x = _rg([2.0, 0.0, 3.0])
    rg.prod(x).backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 6.0, 0.0])
    x = _rg([0.0, 2.0, 0.0])
    rg.prod(x).backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 0.0])


# -- subgradients at zero --------------------------------------------------------------------------
@pytest.mark.parametrize("p", [2, "fro", 1, 3, 1.5, 0.5, math.inf])
def test_norm_gradient_at_zero_matches_torch(p, no_warnings):
    a = np.zeros((2, 3))
    y, ty, g, tg = _first_grad(lambda x: rg.norm(x, p), lambda t: torch.norm(t, p), a)
    np.testing.assert_array_equal(g, tg)
    np.testing.assert_array_equal(g, np.zeros_like(a))


@pytest.mark.parametrize("p", [0.5, 1.5, 3, -1.0])
def test_norm_gradient_with_some_zeros_matches_torch(p, no_warnings):
    a = np.array([[0.0, 1.0, -2.0], [0.0, 0.0, 0.0]])
    y, ty, g, tg = _first_grad(lambda x: rg.norm(x, p, 1), lambda t: torch.norm(t, p, 1), a)
    np.testing.assert_allclose(y, ty)
    np.testing.assert_allclose(g, tg)


def test_norm_p0_counts_nonzeros_without_gradient():
    x = _rg([[0.0, 1.0, -2.0], [0.0, 0.0, 3.0]])
    y = rg.norm(x, 0, 1)
    np.testing.assert_array_equal(y.data, [2.0, 1.0])
    (g,) = rg.autograd.grad(y.sum(), [x], allow_unused=True)
    assert g is None or not g.data.any()


def test_std_gradient_at_zero_spread_is_zero(no_warnings):
    a = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]])
    y, ty, g, tg = _first_grad(lambda x: rg.std(x, 1), lambda t: torch.std(t, 1), a)
    np.testing.assert_allclose(y, ty)
    np.testing.assert_allclose(g, tg)
    assert not g[0].any()


@pytest.mark.parametrize(
    "name,fn,tfn",
    [
        ("var", lambda x: rg.var(x, 1), lambda t: torch.var(t, 1)),
        (
            "std",
            lambda x: rg.std(x, (0, 1), correction=0),
            lambda t: torch.std(t, (0, 1), correction=0),
        ),
        ("norm 2", lambda x: rg.norm(x, 2, 1), lambda t: torch.norm(t, 2, 1)),
        ("norm 3", lambda x: rg.norm(x, 3), lambda t: torch.norm(t, 3)),
        ("norm 0.5", lambda x: rg.norm(x, 0.5, 0), lambda t: torch.norm(t, 0.5, 0)),
        ("prod", lambda x: rg.prod(x, 1), lambda t: torch.prod(t, 1)),
        ("cumprod", lambda x: rg.cumprod(x, 1), lambda t: torch.cumprod(t, 1)),
        ("logsumexp", lambda x: rg.logsumexp(x, (0, 1)), lambda t: torch.logsumexp(t, (0, 1))),
    ],
)
def test_second_order_matches_torch(name, fn, tfn, no_warnings):
    a = np.random.default_rng(4).uniform(0.5, 2.0, (3, 4)) * np.array([1, -1, 1, -1])
    h, th = _second_grad(fn, tfn, a)
    np.testing.assert_allclose(h, th, rtol=1e-9, atol=1e-12)


# -- no warnings on ordinary inputs ----------------------------------------------------------------
ALL_REDUCTIONS = [
    lambda x: rg.sum(x, 1),
    lambda x: rg.mean(x, (0, 2)),
    lambda x: rg.var(x, 1),
    lambda x: rg.std(x),
    lambda x: rg.prod(x, -1),
    lambda x: rg.max(x),
    lambda x: rg.max(x, 0).values,
    lambda x: rg.min(x, 2, True).values,
    lambda x: rg.amax(x, (0, 1)),
    lambda x: rg.amin(x),
    lambda x: rg.logsumexp(x, 1),
    lambda x: rg.norm(x),
    lambda x: rg.norm(x, 1, 0),
    lambda x: rg.norm(x, math.inf, 2),
    lambda x: rg.norm(x, 3, 2),
    lambda x: rg.cumsum(x, 1),
    lambda x: rg.cumprod(x, 2),
    lambda x: rg.softmax(x, 1),
    lambda x: rg.log_softmax(x, -1),
]


@pytest.mark.parametrize("i", range(len(ALL_REDUCTIONS)))
def test_finite_inputs_raise_no_warnings(i, no_warnings):
    x = _rg(np.random.default_rng(i).standard_normal((2, 3, 4)), np.float32)
    y = ALL_REDUCTIONS[i](x)
    (g,) = rg.autograd.grad(y.sum(), [x], create_graph=True)
    if g.requires_grad:
        rg.autograd.grad((g * g).sum(), [x])


# -- empty tensors ---------------------------------------------------------------------------------
EMPTY_CASES = [
    ("sum", lambda m, x, d: m.sum(x) if d is None else m.sum(x, d)),
    ("mean", lambda m, x, d: m.mean(x) if d is None else m.mean(x, d)),
    ("var", lambda m, x, d: m.var(x) if d is None else m.var(x, d)),
    ("std", lambda m, x, d: m.std(x) if d is None else m.std(x, d)),
    ("prod", lambda m, x, d: m.prod(x) if d is None else m.prod(x, d)),
    ("max", lambda m, x, d: m.max(x) if d is None else m.max(x, d)[0]),
    ("min", lambda m, x, d: m.min(x) if d is None else m.min(x, d)[0]),
    ("max indices", lambda m, x, d: m.max(x) if d is None else m.max(x, d)[1]),
    ("amax", lambda m, x, d: m.amax(x) if d is None else m.amax(x, d)),
    ("amin", lambda m, x, d: m.amin(x) if d is None else m.amin(x, d)),
    ("argmax", lambda m, x, d: m.argmax(x) if d is None else m.argmax(x, d)),
    ("argmin", lambda m, x, d: m.argmin(x) if d is None else m.argmin(x, d)),
    ("logsumexp", lambda m, x, d: m.logsumexp(x, (0, 1) if d is None else d)),
    ("norm", lambda m, x, d: m.norm(x) if d is None else m.norm(x, 2, d)),
    ("norm 1", lambda m, x, d: m.norm(x, 1, d)),
    ("norm inf", lambda m, x, d: m.norm(x, math.inf, d)),
    ("cumsum", lambda m, x, d: m.cumsum(x, 0 if d is None else d)),
    ("cumprod", lambda m, x, d: m.cumprod(x, 1 if d is None else d)),
    ("all", lambda m, x, d: m.all(x) if d is None else m.all(x, d)),
    ("any", lambda m, x, d: m.any(x) if d is None else m.any(x, d)),
    ("softmax", lambda m, x, d: m.softmax(x, 0 if d is None else d)),
    ("log_softmax", lambda m, x, d: m.log_softmax(x, 1 if d is None else d)),
]


@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0)], ids=str)
@pytest.mark.parametrize("dim", [None, 0, -1], ids=str)
@pytest.mark.parametrize("name,call", EMPTY_CASES, ids=[c[0] for c in EMPTY_CASES])
def test_empty_tensors_like_torch(name, call, dim, shape):
    if len(shape) == 1 and name == "logsumexp" and dim is None:
        dim = 0
    a = np.zeros(shape)
    t, x = torch.from_numpy(a).requires_grad_(), _rg(a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            expected = call(torch, t, dim)
        except (RuntimeError, IndexError) as e:
            with pytest.raises(type(e)) as info:
                call(rg, x, dim)
            assert str(info.value) == str(e).split("\n")[0]
            return
        got = call(rg, x, dim)
    assert got.shape == tuple(expected.shape)
    assert str(got.dtype) == str(expected.dtype).replace("torch.", "")
    np.testing.assert_array_equal(got.data, expected.detach().numpy())
    assert got.requires_grad == expected.requires_grad
    if got.requires_grad:
        (g,) = rg.autograd.grad(got.sum(), [x], allow_unused=True)
        (tg,) = torch.autograd.grad(expected.sum(), [t], allow_unused=True)
        assert (g is None or g.shape == shape) and (tg is None or tg.shape == shape)


@pytest.mark.parametrize("name", ["sum", "mean", "prod"])
def test_empty_gradients_have_the_input_shape(name):
    x = _rg(np.zeros((0, 3)))
    y = getattr(rg, name)(x, 0)
    (g,) = rg.autograd.grad(y.sum(), [x])
    assert g.shape == (0, 3)


def test_max_of_empty_error_message():
    with pytest.raises(RuntimeError) as info:
        rg.max(_rg(np.zeros((0, 3))))
    assert str(info.value) == (
        "max(): Expected reduction dim to be specified for input.numel() == 0. Specify the "
        "reduction dim with the 'dim' argument."
    )


# -- signatures, dtypes and errors -----------------------------------------------------------------
def test_var_signatures_match_torch():
    a = np.random.default_rng(5).standard_normal((3, 4))
    x, t = _rg(a, grad=False), torch.from_numpy(a)
    pairs = [
        (rg.var(x), torch.var(t)),
        (rg.var(x, 1, False), torch.var(t, 1, False)),
        (rg.var(x, 1, True, True), torch.var(t, 1, True, True)),
        (rg.var(x, False), torch.var(t, False)),
        (rg.var(x, (0, 1), correction=2), torch.var(t, (0, 1), correction=2)),
        (rg.std(x, -1, keepdim=True, correction=0), torch.std(t, -1, keepdim=True, correction=0)),
        (x.var(0, unbiased=False), t.var(0, unbiased=False)),
        (x.std(), t.std()),
    ]
    for got, expected in pairs:
        np.testing.assert_allclose(got.data, expected.numpy(), rtol=1e-12)
    with pytest.raises(TypeError):
        rg.var(x, 0, True, correction=1)
    with pytest.raises(RuntimeError, match="std and var only support floating point"):
        rg.var(rg.tensor([1, 2, 3]))


def test_var_is_two_pass():
    a = np.array([1e8 + 1.0, 1e8 + 2.0, 1e8 + 3.0], dtype=np.float64)
    np.testing.assert_allclose(rg.var(_rg(a)).data, 1.0)


def test_dtypes_match_torch():
    ints = np.array([[1, 2], [3, 4]], dtype=np.int32)
    bools = np.array([[True, False], [True, True]])
    for arr in (ints, bools):
        x, t = rg.from_numpy(arr), torch.from_numpy(arr)
        for name in ("sum", "prod"):
            got, expected = getattr(rg, name)(x), getattr(torch, name)(t)
            assert str(got.dtype) == str(expected.dtype).replace("torch.", "")
            assert got.data == expected.numpy()
        for name in ("cumsum", "cumprod"):
            got, expected = getattr(rg, name)(x, 1), getattr(torch, name)(t, 1)
            assert str(got.dtype) == str(expected.dtype).replace("torch.", "")
            np.testing.assert_array_equal(got.data, expected.numpy())
    assert rg.max(rg.from_numpy(ints)).dtype == np.int32
    assert rg.all(rg.from_numpy(ints.astype(np.uint8))).dtype == np.uint8
    assert rg.any(rg.from_numpy(ints)).dtype == np.bool_
    x = _rg([[1.0, 2.0]], np.float32, grad=False)
    assert rg.sum(x, dtype=rg.float64).dtype == np.float64
    assert rg.mean(x, dtype=rg.float64).dtype == np.float64
    assert rg.softmax(x, 1, dtype=rg.float64).dtype == np.float64
    assert rg.cumsum(x, 1, dtype=rg.float64).dtype == np.float64
    assert rg.logsumexp(rg.tensor([1, 2]), 0).dtype == np.float32
    for name in ("sum", "mean", "var", "std", "prod", "amax", "logsumexp", "norm", "softmax"):
        fn = getattr(rg, name)
        y = fn(x, 1) if name not in ("prod",) else fn(x, 0)
        assert y.dtype == np.float32, name


def test_float32_stays_float32_in_gradients():
    x = _rg(np.random.default_rng(6).standard_normal((3, 4)), np.float32)
    for y in (rg.var(x, 1), rg.norm(x, 3), rg.logsumexp(x, 0), rg.cumprod(x, 1), rg.prod(x, 1)):
        (g,) = rg.autograd.grad(y.sum(), [x])
        assert g.dtype == np.float32


def test_errors_match_torch():
    x = _rg(np.ones((2, 3)), grad=False)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of "):
        rg.sum(x, 2)
    with pytest.raises(IndexError, match="Dimension out of range"):
        rg.softmax(x, -3)
    with pytest.raises(RuntimeError, match="appears multiple times"):
        rg.amax(x, (1, -1))
    with pytest.raises(TypeError):
        rg.prod(x, (0, 1))
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype"):
        rg.mean(rg.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="linalg.matrix_norm: dim must be a 2-tuple"):
        rg.norm(rg.ones(2, 2, 2), "fro", (0, 1, 2))
    with pytest.raises(RuntimeError, match="Expected a floating point"):
        rg.norm(rg.tensor([1, 2]))


def test_tensor_methods_delegate():
    a = np.random.default_rng(7).standard_normal((2, 3))
    x, t = _rg(a, grad=False), torch.from_numpy(a)
    pairs = [
        (x.sum(1), t.sum(1)),
        (x.prod(0), t.prod(0)),
        (x.amax(), t.amax()),
        (x.argmin(1), t.argmin(1)),
        (x.logsumexp(1), t.logsumexp(1)),
        (x.norm(1), t.norm(1)),
        (x.cumsum(1), t.cumsum(1)),
        (x.cumprod(0), t.cumprod(0)),
        (x.softmax(0), t.softmax(0)),
        (x.log_softmax(1), t.log_softmax(1)),
        (x.max(1).values, t.max(1).values),
    ]
    for got, expected in pairs:
        np.testing.assert_allclose(got.data, expected.numpy(), rtol=1e-12)


# -- Hypothesis: shapes, dims, keepdim -------------------------------------------------------------
@st.composite
def _reduction_case(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=4)))
    nd = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple"] if nd else ["none", "int"]))
    if kind == "none":
        dim = None
    elif kind == "int":
        dim = draw(st.integers(-max(nd, 1), max(nd, 1) - 1))
    else:
        axes = draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
        dim = tuple(a - nd if draw(st.booleans()) else a for a in axes)
    keepdim = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    return shape, dim, keepdim, seed


def _np_axis(dim, nd):
    if dim is None or nd == 0:
        return None
    return tuple(d % nd for d in dim) if isinstance(dim, tuple) else dim % nd


def _np_lse(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


HYPO = {
    "sum": (rg.sum, np.sum, torch.sum),
    "mean": (rg.mean, np.mean, torch.mean),
    "amax": (rg.amax, np.max, torch.amax),
    "logsumexp": (rg.logsumexp, _np_lse, torch.logsumexp),
}


@pytest.mark.parametrize("name", list(HYPO))
@settings(max_examples=60, deadline=None)
@given(case=_reduction_case())
def test_hypothesis_reductions(name, case):
    shape, dim, keepdim, seed = case
    fn, ref, tfn = HYPO[name]
    a = np.random.default_rng(seed).standard_normal(shape)
    x = _rg(a)
    y = fn(x, dim, keepdim)
    expected = ref(a, axis=_np_axis(dim, len(shape)), keepdims=keepdim)
    if len(shape) == 0 and keepdim:
        expected = np.asarray(expected)
    assert y.shape == np.shape(expected)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)

    t = torch.from_numpy(a).requires_grad_()
    tdim = (tuple(range(len(shape))) if shape else 0) if dim is None else dim
    ty = tfn(t, tdim, keepdim)
    w = np.random.default_rng(seed + 1).standard_normal(y.shape)
    (g,) = rg.autograd.grad((y * rg.from_numpy(w)).sum(), [x])
    (tg,) = torch.autograd.grad((ty * torch.from_numpy(w)).sum(), [t])
    np.testing.assert_allclose(g.data, tg.numpy(), rtol=1e-10, atol=1e-12)
