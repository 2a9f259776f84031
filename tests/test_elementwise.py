"""Elementwise ops beyond the op table: subgradient conventions, stability, dtype promotion,
PyTorch's error messages, in-place operators, inf/nan inputs, erf's accuracy."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import retrograd as rg

LEAF = "a leaf Variable that requires grad is being used in an in-place operation."


def _pair(a, dtype=np.float64, requires_grad=True):
    """The same values as a retrograd and a torch tensor."""
    a = np.asarray(a, dtype=dtype)
    return (
        rg.tensor(a.copy(), dtype=a.dtype, requires_grad=requires_grad),
        torch.tensor(a.copy(), requires_grad=requires_grad),
    )


def _np(t):
    if isinstance(t, torch.Tensor):
        return t.detach().numpy()
    return t.data if isinstance(t, rg.Tensor) else np.asarray(t)


def _same(got, ref, tol=1e-12):
    got, ref = _np(got), _np(ref)
    assert got.shape == ref.shape
    assert got.dtype == ref.dtype or got.dtype.kind == ref.dtype.kind == "f"
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol, equal_nan=True)


@pytest.fixture
def strict():
    """Any NumPy floating-point warning (or any warning at all) fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# -- subgradient conventions ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_abs_gradient_at_zero_is_zero(dtype):
    x = rg.tensor(np.array([0.0, -0.0, -2.0, 3.0], dtype=dtype), requires_grad=True)
    rg.abs(x).sum().backward()
    assert x.grad.dtype == dtype
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, -1.0, 1.0])


def test_sign_gradient_is_zero_also_at_zero():
    x, tx = _pair([0.0, -1.5, 2.0])
    rg.sign(x).sum().backward()
    torch.sign(tx).sum().backward()
    _same(x.grad, tx.grad)


def test_sqrt_gradient_at_zero_is_inf_without_warnings(strict):
    x, tx = _pair([0.0, 4.0])
    rg.sqrt(x).sum().backward()
    torch.sqrt(tx).sum().backward()
    assert x.grad.data[0] == np.inf
    _same(x.grad, tx.grad)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pow_zero_exponent_has_gradient_zero_at_zero(dtype, strict):
    x = rg.tensor(np.array([0.0, 2.0, -3.0], dtype=dtype), requires_grad=True)
    y = x**0
    np.testing.assert_array_equal(y.data, [1.0, 1.0, 1.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 0.0])
    # and the second derivative of x**2 (through x**1) is 2, also at 0
    (g,) = rg.autograd.grad((x**2).sum(), [x], create_graph=True)
    np.testing.assert_array_equal(g.data, 2 * x.data)
    (g2,) = rg.autograd.grad(g.sum(), [x])
    np.testing.assert_array_equal(g2.data, [2.0, 2.0, 2.0])
    (g,) = rg.autograd.grad((x**0.0).sum(), [x], create_graph=True)
    np.testing.assert_array_equal(g.data, [0.0, 0.0, 0.0])


def test_pow_tensor_exponent_edges_match_torch(strict):
    # 0**0, 0**2, x**0, 0**0.5 (inf gradient), negative base with integer exponents
    base = [0.0, 0.0, 1.5, 0.0, -2.0, -2.0]
    expo = [0.0, 2.0, 0.0, 0.5, 3.0, -1.0]
    x, tx = _pair(base)
    y, ty = _pair(expo)
    out, tout = x**y, tx**ty
    _same(out, tout)
    gx, gy = rg.autograd.grad(out.sum(), [x, y])
    tgx, tgy = torch.autograd.grad(tout.sum(), [tx, ty])
    _same(gx, tgx)
    _same(gy, tgy)  # log of a negative base: nan, as PyTorch


def test_pow_scalar_base_edges_match_torch(strict):
    for base in (0.0, 2.0, -2.0):
        y, ty = _pair([-1.0, 0.0, 2.0])
        out, tout = base**y, base**ty
        _same(out, tout)
        (g,) = rg.autograd.grad(out.sum(), [y])
        (tg,) = torch.autograd.grad(tout.sum(), [ty])
        _same(g, tg)


def test_pow_scalar_exponent_is_a_parameter_not_an_input():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = x**2.5
    assert type(y.grad_fn).__name__ == "PowScalar"
    assert len(y.grad_fn.next_functions) == 1
    y = 2.5**x
    assert len(y.grad_fn.next_functions) == 1


def test_pow_negative_base_integer_exponent():
    x, tx = _pair([-2.0, -0.5, 3.0])
    for e in (2, 3, -1, -2, 2.0):
        out, tout = x**e, tx**e
        _same(out, tout)
        (g,) = rg.autograd.grad(out.sum(), [x])
        (tg,) = torch.autograd.grad(tout.sum(), [tx])
        _same(g, tg)


def test_pow_integer_dtypes_and_errors():
    i = rg.tensor([1, 2, 3])
    assert (i**2).dtype == rg.int64
    np.testing.assert_array_equal((i**2).data, [1, 4, 9])
    assert (i**0.5).dtype == rg.float32
    assert (2**i).dtype == rg.int64
    assert (2.5**i).dtype == rg.float32
    with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed."):
        i**-1
    with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed."):
        i ** rg.tensor([1, -1, 2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tanh_saturates_exactly_without_warnings(dtype):
    x = rg.tensor(np.array([-300.0, 300.0, -1e30, 1e30], dtype=dtype), requires_grad=True)
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        y = rg.tanh(x)
        y.sum().backward()
    np.testing.assert_array_equal(y.data, [-1.0, 1.0, -1.0, 1.0])
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 0.0, 0.0])


def test_maximum_of_a_tensor_with_itself_gives_half_to_each():
    x, tx = _pair([1.0, -2.0, 3.0])
    for fn, tfn in ((rg.maximum, torch.maximum), (rg.minimum, torch.minimum)):
        for t in (x, tx):
            t.grad = None
        fn(x, x).sum().backward()
        tfn(tx, tx).sum().backward()
        np.testing.assert_array_equal(x.grad.data, [1.0, 1.0, 1.0])  # 1/2 + 1/2
        _same(x.grad, tx.grad)


def test_maximum_minimum_ties_split_like_torch():
    x, tx = _pair([1.0, 2.0, 3.0, 0.0])
    y, ty = _pair([1.0, 1.0, 4.0, 0.0])
    for fn, tfn in ((rg.maximum, torch.maximum), (rg.minimum, torch.minimum)):
        gx, gy = rg.autograd.grad(fn(x, y).sum(), [x, y])
        tgx, tgy = torch.autograd.grad(tfn(tx, ty).sum(), [tx, ty])
        _same(gx, tgx)
        _same(gy, tgy)


def test_clamp_gradient_passes_at_the_bounds_like_torch():
    x, tx = _pair([-1.0, -0.5, 0.0, 0.5, 1.0])
    rg.clamp(x, -0.5, 0.5).sum().backward()
    torch.clamp(tx, -0.5, 0.5).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 1.0, 1.0, 1.0, 0.0])
    _same(x.grad, tx.grad)


def test_clamp_with_tensor_bounds_at_ties_and_crossed_bounds_matches_torch():
    x, tx = _pair([-1.0, 0.0, 1.0, 2.0, 0.5])
    lo, tlo = _pair([-1.0, 0.5, 0.0, 0.0, 1.0])
    hi, thi = _pair([1.0, 1.0, 1.0, 1.0, 0.0])
    out, tout = rg.clamp(x, lo, hi), torch.clamp(tx, tlo, thi)
    _same(out, tout)
    grads = rg.autograd.grad(out.sum(), [x, lo, hi])
    tgrads = torch.autograd.grad(tout.sum(), [tx, tlo, thi])
    for g, tg in zip(grads, tgrads):
        _same(g, tg)


def test_clamp_errors_and_dtypes():
    x = rg.tensor([1, 5])
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max' must not be None"):
        rg.clamp(x)
    assert rg.clamp(x, 2, 3).dtype == rg.int64
    out = rg.clamp(x, 0.5, 3)
    assert out.dtype == rg.float32
    np.testing.assert_array_equal(out.data, [1.0, 3.0])
    y = rg.tensor([1.0, 5.0])
    assert rg.clamp(y, np.float64(0.5), 3.0).dtype == rg.float32
    assert rg.clip(y, max=2.0).dtype == rg.float32


def test_remainder_gradients_match_torch():
    x, tx = _pair([5.5, -5.5, 5.5, -5.5])
    y, ty = _pair([2.0, 2.0, -2.0, -2.0])
    out, tout = x % y, tx % ty
    _same(out, tout)
    for g, tg in zip(
        rg.autograd.grad(out.sum(), [x, y]), torch.autograd.grad(tout.sum(), [tx, ty])
    ):
        _same(g, tg)


def test_div_rounding_modes_match_torch_on_integers_and_floats():
    a = np.array([7, -7, 7, -7, 6, 0])
    b = np.array([2, 2, -2, -2, 3, 5])
    for mode in ("trunc", "floor"):
        _same(
            rg.div(rg.tensor(a), rg.tensor(b), rounding_mode=mode),
            torch.div(torch.tensor(a), torch.tensor(b), rounding_mode=mode),
        )
        _same(
            rg.div(rg.tensor(a * 1.5), 2.0, rounding_mode=mode),
            torch.div(torch.tensor(a * 1.5), 2.0, rounding_mode=mode),
        )
    _same(rg.tensor(a) // rg.tensor(b), torch.tensor(a) // torch.tensor(b))
    assert rg.div(rg.tensor(a), rg.tensor(b)).dtype == rg.float32
    with pytest.raises(RuntimeError, match="div expected rounding_mode to be one of None, 'trunc'"):
        rg.div(rg.tensor(a), 2, rounding_mode="round")


def test_rounding_ops_have_zero_gradient_and_keep_integers():
    x, tx = _pair([0.5, 1.5, -2.7, 2.25])
    for fn, tfn in (
        (rg.floor, torch.floor),
        (rg.ceil, torch.ceil),
        (rg.trunc, torch.trunc),
        (rg.round, torch.round),
    ):
        out, tout = fn(x), tfn(tx)
        _same(out, tout)
        (g,) = rg.autograd.grad(out.sum(), [x])
        (tg,) = torch.autograd.grad(tout.sum(), [tx])
        _same(g, tg)
    _same(rg.round(x, decimals=1), torch.round(tx, decimals=1))
    i = rg.tensor([1, -2])
    for fn in (rg.floor, rg.ceil, rg.trunc, rg.round):
        assert fn(i).dtype == rg.int64


def test_lerp_is_exact_at_the_ends():
    start, end = rg.tensor([1.0, -3.0, 0.1]), rg.tensor([2.0, 7.0, 0.3])
    np.testing.assert_array_equal(rg.lerp(start, end, 1.0).data, end.data)
    np.testing.assert_array_equal(rg.lerp(start, end, 0.0).data, start.data)
    assert rg.lerp(start, end, np.float64(0.5)).dtype == rg.float32


# -- dtypes --------------------------------------------------------------------------------------
def test_float32_tensor_with_python_and_numpy_scalars_stays_float32():
    x = rg.tensor([1.0, 2.0])
    for y in (x * 2.5, 2.5 * x, x + 1e-8, x / 3.0, x - 1, x**2.0, x * np.float64(2.5)):
        assert y.dtype == rg.float32
    for fn in (rg.exp, rg.log, rg.sqrt, rg.sin, rg.tanh, rg.erf, rg.exp2, rg.rsqrt):
        assert fn(x).dtype == rg.float32
    assert rg.maximum(x, 0.5).dtype == rg.float32
    assert rg.where(x > 1, x, 0.0).dtype == rg.float32
    x.requires_grad_()
    (x * 2.5).sum().backward()
    assert x.grad.dtype == rg.float32


def test_integer_promotion_matches_torch():
    i = rg.tensor([1, 2, 3])
    ti = torch.tensor([1, 2, 3])
    f32 = rg.tensor([0.5, 1.5, 2.5])
    tf32 = torch.tensor([0.5, 1.5, 2.5])
    cases = [
        (i + 1.5, ti + 1.5),
        (i * 2, ti * 2),
        (i + f32, ti + tf32),
        (f32 - i, tf32 - ti),
        (i / 2, ti / 2),
        (i / i, ti / ti),
        (rg.maximum(i, f32), torch.maximum(ti, tf32)),
        (rg.exp(i), torch.exp(ti)),
        (rg.sqrt(i), torch.sqrt(ti)),
        (rg.abs(-i), torch.abs(-ti)),
        (rg.square(i), torch.square(ti)),
        (rg.sign(i), torch.sign(ti)),
        (i % 2, ti % 2),
        (rg.where(i > 1, i, 0), torch.where(ti > 1, ti, 0)),
        (rg.where(i > 1, i, 0.5), torch.where(ti > 1, ti, 0.5)),
        (rg.tensor(2.0, dtype=rg.float64) * f32, torch.tensor(2.0, dtype=torch.float64) * tf32),
    ]
    for got, ref in cases:
        assert str(got.dtype) == str(ref.dtype).replace("torch.", ""), (got.dtype, ref.dtype)
        _same(got, ref, tol=1e-6)


def test_comparisons_and_logic_are_boolean_and_outside_the_graph():
    x = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for out in (
        x == 2,
        x != 2,
        x < 2,
        x <= 2,
        x > 2,
        x >= 2,
        rg.isnan(x),
        rg.isinf(x),
        rg.isfinite(x),
        rg.logical_not(x),
        rg.logical_and(x, x > 1),
        rg.logical_or(x > 2, x < 2),
        rg.logical_xor(x > 1, x > 2),
    ):
        assert out.dtype == rg.bool_
        assert not out.requires_grad and out.grad_fn is None
    np.testing.assert_array_equal((x == 2).data, [False, True, False])
    assert (x == None) is False  # noqa: E711  (Python's comparison with None, as torch)
    assert (x != None) is True  # noqa: E711
    s = rg.tensor(1.0)
    for out in (s == 1, s < 2, rg.isnan(s), rg.logical_not(s), rg.logical_or(s, s)):
        assert isinstance(out.data, np.ndarray) and out.shape == ()  # 0-d arrays, not scalars
    i = rg.tensor([1, 2])
    np.testing.assert_array_equal(rg.isnan(i).data, [False, False])
    np.testing.assert_array_equal(rg.isfinite(i).data, [True, True])


def test_where_forms_and_errors():
    cond = rg.tensor([[True, False], [False, True]])
    rows, cols = rg.where(cond)
    np.testing.assert_array_equal(rows.data, [0, 1])
    np.testing.assert_array_equal(cols.data, [0, 1])
    with pytest.raises(
        RuntimeError,
        match="where expected condition to be a boolean tensor, but got a tensor with dtype Float",
    ):
        rg.where(rg.tensor([1.0]), rg.tensor([1.0]), 0.0)
    out = rg.where(cond, 1.0, 0.0)
    assert out.dtype == rg.float32
    np.testing.assert_array_equal(out.data, [[1.0, 0.0], [0.0, 1.0]])
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    x.where(cond, 0.0).sum().backward()  # Tensor.where(condition, other)
    np.testing.assert_array_equal(x.grad.data, [1.0, 1.0])


# -- errors --------------------------------------------------------------------------------------
BROADCAST = (
    "The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1"
)


@pytest.mark.parametrize(
    "fn",
    [
        rg.add,
        rg.sub,
        rg.mul,
        rg.div,
        rg.pow,
        rg.maximum,
        rg.minimum,
        rg.atan2,
        rg.remainder,
        rg.floor_divide,
        rg.eq,
        rg.lt,
        rg.logical_and,
        lambda a, b: rg.where(rg.tensor(True), a, b),
        lambda a, b: rg.lerp(a, b, 0.5),
        lambda a, b: rg.clamp(a, min=b),
    ],
)
def test_broadcast_mismatch_message_matches_torch(fn):
    a = rg.tensor(np.ones((2, 3)) + 0.5)
    b = rg.tensor(np.ones((2, 4)) + 0.5)
    with pytest.raises(RuntimeError) as info:
        fn(a, b)
    assert str(info.value) == BROADCAST
    with pytest.raises(RuntimeError) as tinfo:
        torch.add(torch.ones(2, 3), torch.ones(2, 4))
    assert str(tinfo.value) == BROADCAST


# -- in place ------------------------------------------------------------------------------------
INPLACE = [
    ("+=", lambda t: t.__iadd__(2.0), lambda t: t.__iadd__(2.0)),
    ("-=", lambda t: t.__isub__(0.5), lambda t: t.__isub__(0.5)),
    ("*=", lambda t: t.__imul__(3.0), lambda t: t.__imul__(3.0)),
    ("/=", lambda t: t.__itruediv__(4.0), lambda t: t.__itruediv__(4.0)),
    ("**=", lambda t: t.__ipow__(2), lambda t: t.__ipow__(2)),
    ("add_", lambda t: t.add_(1.5, alpha=2), lambda t: t.add_(1.5, alpha=2)),
    ("sub_", lambda t: t.sub_(1.5), lambda t: t.sub_(1.5)),
    ("mul_", lambda t: t.mul_(-2.0), lambda t: t.mul_(-2.0)),
    ("div_", lambda t: t.div_(2.0), lambda t: t.div_(2.0)),
    ("pow_", lambda t: t.pow_(3), lambda t: t.pow_(3)),
    ("neg_", lambda t: t.neg_(), lambda t: t.neg_()),
    ("exp_", lambda t: t.exp_(), lambda t: t.exp_()),
    ("tanh_", lambda t: t.tanh_(), lambda t: t.tanh_()),
    ("abs_", lambda t: t.abs_(), lambda t: t.abs_()),
    ("clamp_", lambda t: t.clamp_(-1.0, 1.0), lambda t: t.clamp_(-1.0, 1.0)),
    ("clip_", lambda t: t.clip_(max=0.5), lambda t: t.clip_(max=0.5)),
]


@pytest.mark.parametrize("name,op,top", INPLACE, ids=[c[0] for c in INPLACE])
def test_in_place_operators_match_torch(name, op, top):
    x, tx = _pair([-1.5, 0.3, 2.0])
    y, ty = x * 1.0, tx * 1.0  # non-leaf
    ry = op(y)
    top(ty)
    assert ry is y and y._version_counter == 1
    _same(y, ty)
    (y * rg.tensor([1.0, 2.0, 3.0], dtype=rg.float64)).sum().backward()
    (ty * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
    _same(x.grad, tx.grad)


@pytest.mark.parametrize("name,op,top", INPLACE, ids=[c[0] for c in INPLACE])
def test_in_place_on_a_leaf_requiring_grad_raises_torch_error(name, op, top):
    x = rg.tensor([-1.5, 0.25, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError) as info:
        op(x)
    assert str(info.value) == LEAF
    with pytest.raises(RuntimeError) as tinfo:
        top(torch.tensor([-1.5, 0.25, 2.0], requires_grad=True))
    assert str(tinfo.value) == LEAF
    np.testing.assert_array_equal(x.data, [-1.5, 0.25, 2.0])  # untouched
    with rg.no_grad():  # an optimizer step
        op(x)
    assert x.is_leaf and x.requires_grad


def test_in_place_keeps_dtype_and_rejects_a_float_result_in_an_integer_tensor():
    x = rg.tensor([1.0, 2.0])
    x += 1
    x *= np.float64(2.0)
    assert x.dtype == rg.float32
    i = rg.tensor([1, 2])
    with pytest.raises(
        RuntimeError, match="result type Float can't be cast to the desired output type Long"
    ):
        i += 1.5


# -- inf and nan ---------------------------------------------------------------------------------
SPECIAL = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1.0, -1.0, 2.0, 1e300, -1e300])

FORWARD = [
    (rg.exp, np.exp),
    (rg.exp2, np.exp2),
    (rg.expm1, np.expm1),
    (rg.log, np.log),
    (rg.log2, np.log2),
    (rg.log1p, np.log1p),
    (rg.sqrt, np.sqrt),
    (rg.rsqrt, lambda x: 1 / np.sqrt(x)),
    (rg.reciprocal, np.reciprocal),
    (rg.sin, np.sin),
    (rg.cos, np.cos),
    (rg.tan, np.tan),
    (rg.arcsin, np.arcsin),
    (rg.arccos, np.arccos),
    (rg.arctan, np.arctan),
    (rg.sinh, np.sinh),
    (rg.cosh, np.cosh),
    (rg.tanh, np.tanh),
    (rg.abs, np.abs),
    (rg.sign, lambda x: np.where(np.isnan(x), 0.0, np.sign(x))),  # PyTorch: sign(nan) = 0
    (rg.square, np.square),
    (rg.floor, np.floor),
    (rg.ceil, np.ceil),
    (rg.trunc, np.trunc),
    (rg.round, np.round),
    (rg.erf, np.vectorize(math.erf, otypes=[np.float64])),
    (lambda x: x**0.5, lambda x: x**0.5),
    (lambda x: x**-1, lambda x: x**-1.0),
    (lambda x: 0.0**x, lambda x: 0.0**x),
    (lambda x: rg.clamp(x, -1.0, 1.0), lambda x: np.clip(x, -1.0, 1.0)),
    (lambda x: x % 2.0, lambda x: np.remainder(x, 2.0)),
    (lambda x: x // 0.0, lambda x: np.floor_divide(x, 0.0)),
    (lambda x: rg.maximum(x, 0.0), lambda x: np.maximum(x, 0.0)),
    (lambda x: rg.atan2(x, 0.0), lambda x: np.arctan2(x, 0.0)),
]


# NumPy warns on sin/cos/tan of inf and on the overflow of 1e300**2 in square; retrograd does
# not (as PyTorch): no op is excused
WARNS = ()


@pytest.mark.parametrize("fn,ref", FORWARD, ids=[f"{i}" for i in range(len(FORWARD))])
def test_inf_and_nan_inputs_match_numpy_without_warnings(fn, ref):
    x = rg.tensor(SPECIAL, dtype=rg.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if fn in WARNS else "error")
        got = fn(x)
    with np.errstate(all="ignore"):
        expected = ref(SPECIAL)
    rtol = 1e-14 if fn is rg.erf else 1e-15
    np.testing.assert_allclose(got.data, expected, rtol=rtol, equal_nan=True)


def test_named_special_values(strict):
    assert rg.exp(rg.tensor(np.inf)).item() == np.inf
    assert rg.exp(rg.tensor(-np.inf)).item() == 0.0
    assert rg.log(rg.tensor(0.0)).item() == -np.inf
    assert math.isnan(rg.log(rg.tensor(-1.0)).item())
    assert rg.exp(rg.tensor(1000.0)).item() == np.inf  # overflow, quietly (PyTorch)
    assert rg.reciprocal(rg.tensor(0.0)).item() == np.inf
    assert rg.erf(rg.tensor(np.inf)).item() == 1.0 and rg.erf(rg.tensor(-np.inf)).item() == -1.0


@pytest.mark.parametrize(
    "fn,tfn,value",
    [
        (rg.log, torch.log, 0.0),
        (rg.log2, torch.log2, 0.0),
        (rg.log1p, torch.log1p, -1.0),
        (rg.reciprocal, torch.reciprocal, 0.0),
        (rg.rsqrt, torch.rsqrt, 0.0),
        (rg.arcsin, torch.arcsin, 1.0),
        (rg.arccos, torch.arccos, -1.0),
        (lambda x: x**0.5, lambda x: x**0.5, 0.0),
        (lambda x: x**-2, lambda x: x**-2, 0.0),
        (lambda x: rg.atan2(x, x * 0), lambda x: torch.atan2(x, x * 0), 0.0),
        (rg.exp, torch.exp, 800.0),
        (rg.cosh, torch.cosh, 800.0),
    ],
)
def test_gradients_at_poles_match_torch_without_warnings(fn, tfn, value, strict):
    x, tx = _pair([value, 0.5])
    (g,) = rg.autograd.grad(fn(x).sum(), [x])
    (tg,) = torch.autograd.grad(tfn(tx).sum(), [tx])
    _same(g, tg)


# -- erf -----------------------------------------------------------------------------------------
def test_erf_float64_accuracy():
    x = np.concatenate(
        [np.linspace(-7, 7, 20001), np.logspace(-300, 1, 3000), -np.logspace(-300, 1, 300)]
    )
    got = rg.erf(rg.tensor(x, dtype=rg.float64)).data
    ref = np.array([math.erf(v) for v in x])
    assert np.max(np.abs(got - ref)) < 1e-14
    tiny = (np.abs(x) < 1e-3) & (x != 0)
    assert np.max(np.abs(got[tiny] - ref[tiny]) / np.abs(ref[tiny])) < 1e-14  # relative near 0
    np.testing.assert_allclose(got, torch.special.erf(torch.tensor(x)).numpy(), atol=1e-14)
    try:
        from scipy import special
    except ImportError:
        return
    np.testing.assert_allclose(got, special.erf(x), atol=1e-14)


def test_erf_float32_accuracy_and_gradient():
    x = np.linspace(-5, 5, 1001, dtype=np.float32)
    t = rg.tensor(x, requires_grad=True)
    out = rg.erf(t)
    assert out.dtype == rg.float32
    np.testing.assert_allclose(out.data, torch.erf(torch.tensor(x)).numpy(), atol=3e-7)
    out.sum().backward()
    expected = 2 / np.sqrt(np.pi) * np.exp(-(x.astype(np.float64) ** 2))
    np.testing.assert_allclose(t.grad.data, expected, rtol=1e-6, atol=1e-7)


def test_erf_second_derivative():
    x, tx = _pair([-1.3, 0.0, 0.4, 2.2])
    (g,) = rg.autograd.grad(rg.erf(x).sum(), [x], create_graph=True)
    (g2,) = rg.autograd.grad(g.sum(), [x])
    (tg,) = torch.autograd.grad(torch.erf(tx).sum(), [tx], create_graph=True)
    (tg2,) = torch.autograd.grad(tg.sum(), [tx])
    _same(g2, tg2)
