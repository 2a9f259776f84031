"""nn.init: statistics of every initialiser on big tensors (mean, std, bounds), gains and fans
equal to PyTorch's, generators, in-place writes without a graph, PyTorch's errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.init as tinit

import retrograd as rg
from retrograd.nn import init

SHAPE = (400, 500)  # fan_in 500, fan_out 400; 200,000 samples: ~0.5% relative noise on std


@pytest.fixture(autouse=True)
def _seeded():
    rg.manual_seed(1234)  # statistics below hold for any seed; a fixed one keeps runs identical


def _big(shape=SHAPE, dtype=None):
    return rg.empty(*shape, dtype=dtype)


@pytest.mark.parametrize(
    "nonlinearity,param",
    [
        ("linear", None),
        ("conv1d", None),
        ("conv2d", None),
        ("conv_transpose3d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("leaky_relu", 1),
        ("leaky_relu", math.sqrt(5)),
        ("selu", None),
    ],
)
def test_calculate_gain_equals_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == tinit.calculate_gain(nonlinearity, param)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="Unsupported nonlinearity gelu"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="negative_slope True not a valid number"):
        init.calculate_gain("leaky_relu", True)
    with pytest.raises(ValueError, match="negative_slope 0.1 not a valid number"):
        init.calculate_gain("leaky_relu", "0.1")


@pytest.mark.parametrize("shape", [(3, 5), (4, 3, 2), (6, 2, 3, 3), (1, 1)])
def test_fans_equal_torch(shape):
    assert init._calculate_fan_in_and_fan_out(rg.empty(*shape)) == (
        tinit._calculate_fan_in_and_fan_out(torch.empty(*shape))
    )


@pytest.mark.parametrize(
    "fn", [init.xavier_uniform_, init.xavier_normal_, init.kaiming_uniform_, init.kaiming_normal_]
)
def test_fewer_than_two_dims_is_an_error(fn):
    msg = "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
    with pytest.raises(ValueError, match=msg):
        fn(rg.empty(5))
    with pytest.raises(ValueError, match=msg):
        getattr(tinit, fn.__name__)(torch.empty(5))


def _check(values, mean, std, lo=None, hi=None):
    v = values.data.astype(np.float64)
    assert abs(v.mean() - mean) < 0.01 * max(std, 1e-3) * 3 + 1e-6
    assert abs(v.std() - std) < 0.01 * std
    if lo is not None:  # the bounds as float32 numbers (rounded by at most one part in 2**24)
        slack = 1e-7 * max(abs(lo), abs(hi))
        assert v.min() >= lo - slack and v.max() <= hi + slack
        # the bounds are reached (nearly): the support is the whole interval
        assert v.min() < lo + 0.01 * (hi - lo) and v.max() > hi - 0.01 * (hi - lo)


def test_uniform_and_normal():
    _check(init.uniform_(_big(), -2.0, 4.0), 1.0, 6 / math.sqrt(12), -2.0, 4.0)
    _check(init.uniform_(_big()), 0.5, 1 / math.sqrt(12), 0.0, 1.0)
    _check(init.normal_(_big(), 3.0, 0.5), 3.0, 0.5)
    _check(init.normal_(_big()), 0.0, 1.0)


def test_xavier():
    fan_in, fan_out = 500, 400
    a = math.sqrt(6 / (fan_in + fan_out))
    _check(init.xavier_uniform_(_big()), 0.0, a / math.sqrt(3), -a, a)
    _check(init.xavier_uniform_(_big(), gain=2.0), 0.0, 2 * a / math.sqrt(3), -2 * a, 2 * a)
    _check(init.xavier_normal_(_big()), 0.0, math.sqrt(2 / (fan_in + fan_out)))
    _check(init.xavier_normal_(_big(), gain=0.5), 0.0, 0.5 * math.sqrt(2 / (fan_in + fan_out)))


@pytest.mark.parametrize("mode,fan", [("fan_in", 500), ("fan_out", 400)])
@pytest.mark.parametrize(
    "nonlinearity,a", [("leaky_relu", 0), ("leaky_relu", math.sqrt(5)), ("relu", 0), ("tanh", 0)]
)
def test_kaiming(mode, fan, nonlinearity, a):
    std = tinit.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3) * std
    _check(init.kaiming_uniform_(_big(), a, mode, nonlinearity), 0.0, std, -bound, bound)
    _check(init.kaiming_normal_(_big(), a, mode, nonlinearity), 0.0, std)


def test_kaiming_receptive_field_and_errors():
    w = init.kaiming_normal_(rg.empty(64, 32, 3, 3), nonlinearity="relu")
    _check(w, 0.0, math.sqrt(2 / (32 * 9)))
    with pytest.raises(
        ValueError, match=r"Mode fan_avg not supported, please use one of \['fan_in', 'fan_out'\]"
    ):
        init.kaiming_uniform_(_big(), mode="fan_avg")
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        init.kaiming_uniform_(rg.empty(0, 3))


@pytest.mark.parametrize(
    "mean,std,a,b", [(0.0, 1.0, -2.0, 2.0), (1.0, 0.5, 0.0, 3.0), (0.0, 1.0, 1.0, 2.5)]
)
def test_trunc_normal_statistics_equal_torch(mean, std, a, b):
    x = init.trunc_normal_(_big(), mean, std, a, b).data.astype(np.float64)
    t = tinit.trunc_normal_(torch.empty(*SHAPE), mean, std, a, b, torch.Generator().manual_seed(0))
    t = t.numpy().astype(np.float64)
    assert x.min() >= a and x.max() <= b
    assert abs(x.mean() - t.mean()) < 0.01 * std
    assert abs(x.std() - t.std()) < 0.01 * std
    np.testing.assert_allclose(
        np.quantile(x, [0.1, 0.5, 0.9]), np.quantile(t, [0.1, 0.5, 0.9]), atol=0.02 * std
    )


def test_trunc_normal_warns_like_torch():
    with pytest.warns(UserWarning, match="mean is more than 2 std from"):
        init.trunc_normal_(rg.empty(100), mean=10.0, std=1.0, a=-2.0, b=2.0)


def test_constant_zeros_ones_eye():
    np.testing.assert_array_equal(init.constant_(rg.empty(3, 2), 0.25).data, np.full((3, 2), 0.25))
    np.testing.assert_array_equal(init.zeros_(rg.ones(3)).data, np.zeros(3))
    np.testing.assert_array_equal(init.ones_(rg.zeros(2, 2)).data, np.ones((2, 2)))
    np.testing.assert_array_equal(init.eye_(rg.empty(3, 5)).data, np.eye(3, 5))
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions are supported"):
        init.eye_(rg.empty(3, 2, 2))


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 2, 3), (5, 5)])
def test_orthogonal(shape):
    w = init.orthogonal_(rg.empty(*shape, dtype=rg.float64), gain=2.0).data
    m = w.reshape(shape[0], -1)
    rows, cols = m.shape
    gram = m.T @ m if rows >= cols else m @ m.T
    np.testing.assert_allclose(gram, 4 * np.eye(min(rows, cols)), atol=1e-10)
    with pytest.raises(ValueError, match="Only tensors with 2 or more dimensions are supported"):
        init.orthogonal_(rg.empty(4))


RANDOM = [
    (init.uniform_, {}),
    (init.normal_, {}),
    (init.trunc_normal_, {}),
    (init.xavier_uniform_, {}),
    (init.xavier_normal_, {}),
    (init.kaiming_uniform_, {}),
    (init.kaiming_normal_, {}),
    (init.orthogonal_, {}),
]


@pytest.mark.parametrize("fn,kwargs", RANDOM, ids=[f.__name__ for f, _ in RANDOM])
def test_generators_make_it_reproducible(fn, kwargs):
    a = fn(rg.empty(20, 30), generator=rg.Generator().manual_seed(1), **kwargs)
    b = fn(rg.empty(20, 30), generator=rg.Generator().manual_seed(1), **kwargs)
    np.testing.assert_array_equal(a.data, b.data)
    rg.manual_seed(4)
    c = fn(rg.empty(20, 30), **kwargs)
    rg.manual_seed(4)
    d = fn(rg.empty(20, 30), **kwargs)
    np.testing.assert_array_equal(c.data, d.data)
    assert not np.array_equal(a.data, c.data)


@pytest.mark.parametrize("dtype", [rg.float32, rg.float64])
def test_in_place_without_a_graph(dtype):
    p = rg.nn.Parameter(rg.zeros(10, 20, dtype=dtype))
    data = p.data
    version = p._version[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fn, _ in RANDOM:
            out = fn(p)
            assert out is p and p.data is data and p.dtype == dtype
            assert p.is_leaf and p.requires_grad and p.grad_fn is None
    assert p._version[0] > version  # a gradient rule that saved p would notice
