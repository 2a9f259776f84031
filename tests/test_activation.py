"""Activation functions beyond the op table: extreme inputs, kinks, dtypes, in-place, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import retrograd as rg

EXTREMES = [-1e4, -300.0, -30.0, 0.0, 30.0, 300.0, 1e4]

# (name, retrograd function, torch function, kwargs)
SMOOTH = [
    ("sigmoid", rg.sigmoid, torch.sigmoid, {}),
    ("logsigmoid", rg.logsigmoid, F.logsigmoid, {}),
    ("softplus", rg.softplus, F.softplus, {}),
    ("softplus[beta=2,threshold=1000]", rg.softplus, F.softplus, {"beta": 2.0, "threshold": 1e3}),
    ("silu", rg.silu, F.silu, {}),
    ("mish", rg.mish, F.mish, {}),
    ("gelu", rg.gelu, F.gelu, {}),
    ("gelu[tanh]", rg.gelu, F.gelu, {"approximate": "tanh"}),
    ("tanhshrink", rg.tanhshrink, F.tanhshrink, {}),
    ("elu", rg.elu, F.elu, {}),
    ("selu", rg.selu, F.selu, {}),
    ("celu[alpha=0.5]", rg.celu, F.celu, {"alpha": 0.5}),
    ("softsign", rg.softsign, F.softsign, {}),
]

PIECEWISE = [
    ("relu", rg.relu, F.relu, {}),
    ("relu6", rg.relu6, F.relu6, {}),
    ("leaky_relu", rg.leaky_relu, F.leaky_relu, {}),
    ("leaky_relu[0.2]", rg.leaky_relu, F.leaky_relu, {"negative_slope": 0.2}),
    ("hardtanh", rg.hardtanh, F.hardtanh, {}),
    ("hardtanh[-2,3]", rg.hardtanh, F.hardtanh, {"min_val": -2.0, "max_val": 3.0}),
    ("hardsigmoid", rg.hardsigmoid, F.hardsigmoid, {}),
    ("hardswish", rg.hardswish, F.hardswish, {}),
]

ALL = SMOOTH + PIECEWISE
IDS = [case[0] for case in ALL]


def _grads(fn, x: np.ndarray, kwargs: dict, order: int):
    """Forward value and the first `order` derivatives of sum(fn(x)) (each w.r.t. x).

    A derivative that no longer depends on x (piecewise-linear ops) does not require grad;
    the derivatives after it are zeros (PyTorch keeps such zeros in the graph instead)."""
    t = rg.from_numpy(x.copy()).requires_grad_()
    y = fn(t, **kwargs)
    values = [y.data]
    out = y.sum()
    for k in range(order):
        if not out.requires_grad:
            values.append(np.zeros_like(x))
            continue
        (out,) = rg.autograd.grad(out, [t], create_graph=k + 1 < order)
        values.append(out.data)
        out = out.sum()
    return values


def _torch_grads(fn, x: np.ndarray, kwargs: dict, order: int, dtype=None):
    t = torch.from_numpy(x.astype(dtype or x.dtype)).requires_grad_()
    y = fn(t, **kwargs)
    values = [y.detach().numpy()]
    out = y.sum()
    for k in range(order):
        if not out.requires_grad:
            values.append(np.zeros_like(values[0]))
            continue
        (out,) = torch.autograd.grad(out, [t], create_graph=k + 1 < order)
        values.append(out.detach().numpy())
        out = out.sum()
    return values


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,fn,tfn,kwargs", SMOOTH + PIECEWISE, ids=IDS)
def test_extreme_inputs_exact_and_warning_free(name, fn, tfn, kwargs, dtype):
    x = np.array(EXTREMES, dtype=dtype)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        ours = _grads(fn, x, kwargs, order=2)
    # values: as exact as the dtype allows (the reference is PyTorch in float64); gradients:
    # that, or PyTorch's own in this dtype (sigmoid's g * out * (1 - out) cancels for x >> 0)
    exact = _torch_grads(tfn, x, kwargs, order=1, dtype=np.float64)
    same = _torch_grads(tfn, x, kwargs, order=1)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    rtol = max(rtol, RTOL_OVERRIDES.get(name, 0))
    atol = float(np.finfo(dtype).tiny)  # values below the normal range flush to 0
    for i, got in enumerate(ours[:2]):
        assert got.dtype == dtype
        assert np.isfinite(got).all(), got
        # PyTorch's softplus overflows below a large threshold: compare where it is finite
        finite = np.isfinite(exact[i])
        want = exact[i][finite]
        close = np.isclose(got[finite], want, rtol=rtol, atol=atol)
        if i == 1:
            close |= np.isclose(got[finite], same[i][finite], rtol=rtol, atol=atol)
        assert close.all(), (x[finite][~close], got[finite][~close], want[~close])
    assert ours[2].dtype == dtype and np.isfinite(ours[2]).all()


# PyTorch's float64 hardsigmoid backward multiplies by a float32 1/6
RTOL_OVERRIDES = {"hardsigmoid": 1e-7}


# (retrograd function, torch function, kwargs, the kink points)
KINKS = [
    (rg.relu, F.relu, {}, [0.0]),
    (rg.relu6, F.relu6, {}, [0.0, 6.0]),
    (rg.leaky_relu, F.leaky_relu, {}, [0.0]),
    (rg.leaky_relu, F.leaky_relu, {"negative_slope": 0.2}, [0.0]),
    (rg.hardtanh, F.hardtanh, {}, [-1.0, 1.0]),
    (rg.hardtanh, F.hardtanh, {"min_val": -2.0, "max_val": 3.0}, [-2.0, 3.0]),
    (rg.elu, F.elu, {}, [0.0]),
    (rg.elu, F.elu, {"alpha": 0.5}, [0.0]),
    (rg.selu, F.selu, {}, [0.0]),
    (rg.celu, F.celu, {"alpha": 0.5}, [0.0]),
    (rg.hardsigmoid, F.hardsigmoid, {}, [-3.0, 3.0]),
    (rg.hardswish, F.hardswish, {}, [-3.0, 3.0]),
    (rg.softsign, F.softsign, {}, [0.0]),
    (rg.softplus, F.softplus, {}, [20.0]),
    (rg.softplus, F.softplus, {"beta": 2.0, "threshold": 3.0}, [1.5]),
]


@pytest.mark.parametrize("fn,tfn,kwargs,points", KINKS, ids=lambda v: getattr(v, "__name__", None))
def test_gradient_at_kinks_matches_torch(fn, tfn, kwargs, points):
    x = np.array(points, dtype=np.float64)
    ours = _grads(fn, x, kwargs, order=1)
    theirs = _torch_grads(tfn, x, kwargs, order=1)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-15, atol=0)


def test_kink_values_by_name():
    def d(fn, v, **kw):
        return _grads(fn, np.array([v]), kw, order=1)[1][0]

    assert d(rg.relu, 0.0) == 0.0
    assert d(rg.relu6, 0.0) == 0.0 and d(rg.relu6, 6.0) == 0.0
    assert d(rg.leaky_relu, 0.0) == 0.01
    assert d(rg.hardtanh, -1.0) == 0.0 and d(rg.hardtanh, 1.0) == 0.0
    assert d(rg.elu, 0.0, alpha=0.5) == 0.5
    assert d(rg.hardswish, -3.0) == 0.0 and d(rg.hardswish, 3.0) == 1.0


@pytest.mark.parametrize("name,fn,tfn,kwargs", ALL, ids=IDS)
def test_third_derivative_matches_torch(name, fn, tfn, kwargs):
    if name in ("hardsigmoid",):
        pytest.skip("PyTorch has no second derivative for hardsigmoid")
    x = np.linspace(-3.7, 3.3, 15)  # no kinks on this grid
    ours = _grads(fn, x, kwargs, order=3)
    theirs = _torch_grads(tfn, x, kwargs, order=3)
    for got, want in zip(ours, theirs):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name,fn,tfn,kwargs", ALL, ids=IDS)
def test_float32_stays_float32(name, fn, tfn, kwargs):
    x = np.linspace(-4, 4, 9, dtype=np.float32)
    for value in _grads(fn, x, kwargs, order=3):
        assert value.dtype == np.float32


@pytest.mark.parametrize("name,fn,tfn,kwargs", ALL, ids=IDS)
def test_nan_and_inf_follow_torch(name, fn, tfn, kwargs):
    x = np.array([np.nan, -np.inf, np.inf, -0.0], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf - inf in tanhshrink, as in torch
        got = fn(rg.from_numpy(x), **kwargs).data
    want = tfn(torch.from_numpy(x), **kwargs).numpy()
    np.testing.assert_array_equal(got[:1], want[:1])  # NaN propagates
    np.testing.assert_array_equal(
        got[1:3][np.isfinite(want[1:3])], want[1:3][np.isfinite(want[1:3])]
    )


@pytest.mark.parametrize("fn", [rg.sigmoid, rg.logsigmoid, rg.softplus, rg.gelu, rg.silu, rg.mish])
def test_integer_input_gives_default_float(fn):
    assert fn(rg.tensor([1, 2, 3])).dtype == rg.float32


INPLACE = [
    (rg.relu, F.relu, {}),
    (rg.relu6, F.relu6, {}),
    (rg.leaky_relu, F.leaky_relu, {"negative_slope": 0.1}),
    (rg.hardtanh, F.hardtanh, {}),
    (rg.elu, F.elu, {}),
    (rg.selu, F.selu, {}),
    (rg.celu, F.celu, {}),
    (rg.silu, F.silu, {}),
    (rg.mish, F.mish, {}),
    (rg.hardsigmoid, F.hardsigmoid, {}),
    (rg.hardswish, F.hardswish, {}),
]


@pytest.mark.parametrize("fn,tfn,kwargs", INPLACE, ids=lambda v: getattr(v, "__name__", None))
def test_inplace_matches_torch(fn, tfn, kwargs):
    x = np.linspace(-4, 7, 12)
    xr = rg.from_numpy(x.copy()).requires_grad_()
    h = xr * 1.5
    out = fn(h, inplace=True, **kwargs)
    assert out is h
    (gr,) = rg.autograd.grad((out * out).sum(), [xr])
    xt = torch.from_numpy(x.copy()).requires_grad_()
    ht = xt * 1.5
    outt = tfn(ht, inplace=True, **kwargs)
    (gt,) = torch.autograd.grad((outt * outt).sum(), [xt])
    np.testing.assert_allclose(out.data, outt.detach().numpy(), rtol=1e-12)
    # PyTorch's float64 hardsigmoid backward uses a float32 1/6
    np.testing.assert_allclose(gr.data, gt.numpy(), rtol=1e-7, atol=1e-15)


def test_errors_match_torch():
    x = rg.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="approximate argument must be either none or tanh"):
        rg.gelu(x, approximate="fast")
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        rg.hardtanh(x, 2.0, 1.0)
    with pytest.raises(RuntimeError, match="alpha cannot be 0 for CELU"):
        rg.celu(x, alpha=0.0)


def test_tensor_methods_delegate():
    x = rg.tensor([-1.0, 0.5, 30.0])
    np.testing.assert_array_equal(x.softplus(2.0, 10.0).data, rg.softplus(x, 2.0, 10.0).data)
    np.testing.assert_array_equal(x.relu().data, rg.relu(x).data)
    np.testing.assert_array_equal(x.sigmoid().data, rg.sigmoid(x).data)
