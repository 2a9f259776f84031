"""Op-table rows: activation functions (retrograd/ops/activation.py)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

import retrograd as rg
from tests.opspec_base import OpSpec, unary_samples

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x, beta=1.0, threshold=20.0):
    return np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)


def _elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(x))


def _celu(x, alpha=1.0):
    return np.maximum(0, x) + np.minimum(0, alpha * np.expm1(x / alpha))


def _gelu(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return x * 0.5 * (1 + _erf(x / math.sqrt(2)))


def _relu6(x):
    return np.minimum(np.maximum(x, 0), 6)


def _hardsigmoid(x):
    return np.clip(x + 3, 0, 6) / 6


ROWS = [
    OpSpec("sigmoid", rg.sigmoid, _sigmoid, torch.sigmoid, unary_samples(domain=(-6.0, 6.0))),
    OpSpec(
        "logsigmoid",
        rg.logsigmoid,
        lambda x: -np.logaddexp(0, -x),
        F.logsigmoid,
        unary_samples(domain=(-6.0, 6.0)),
    ),
    OpSpec("softplus", rg.softplus, _softplus, F.softplus, unary_samples(domain=(-6.0, 6.0))),
    OpSpec(
        "softplus[beta=2,threshold=3]",
        rg.softplus,
        _softplus,
        F.softplus,
        unary_samples(avoid=(1.5,), beta=2.0, threshold=3.0),  # linear beyond x = 1.5
    ),
    OpSpec("softplus[beta=0.5]", rg.softplus, _softplus, F.softplus, unary_samples(beta=0.5)),
    OpSpec("relu", rg.relu, lambda x: np.maximum(x, 0), torch.relu, unary_samples(avoid=(0,))),
    OpSpec("relu6", rg.relu6, _relu6, F.relu6, unary_samples(domain=(-2.0, 8.0), avoid=(0, 6))),
    OpSpec(
        "leaky_relu",
        rg.leaky_relu,
        lambda x, negative_slope=0.01: np.where(x > 0, x, negative_slope * x),
        F.leaky_relu,
        unary_samples(avoid=(0,)),
    ),
    OpSpec(
        "leaky_relu[negative_slope=0.2]",
        rg.leaky_relu,
        lambda x, negative_slope=0.01: np.where(x > 0, x, negative_slope * x),
        F.leaky_relu,
        unary_samples(avoid=(0,), negative_slope=0.2),
    ),
    OpSpec(
        "hardtanh",
        rg.hardtanh,
        lambda x: np.clip(x, -1, 1),
        F.hardtanh,
        unary_samples(avoid=(-1, 1)),
    ),
    OpSpec(
        "hardtanh[min_val=-0.5,max_val=1.5]",
        rg.hardtanh,
        lambda x, min_val, max_val: np.clip(x, min_val, max_val),
        F.hardtanh,
        unary_samples(avoid=(-0.5, 1.5), min_val=-0.5, max_val=1.5),
    ),
    OpSpec("elu", rg.elu, _elu, F.elu, unary_samples(avoid=(0,))),
    OpSpec("elu[alpha=0.5]", rg.elu, _elu, F.elu, unary_samples(avoid=(0,), alpha=0.5)),
    OpSpec(
        "selu",
        rg.selu,
        lambda x: SELU_SCALE * _elu(x, SELU_ALPHA),
        F.selu,
        unary_samples(avoid=(0,)),
    ),
    OpSpec("celu", rg.celu, _celu, F.celu, unary_samples(avoid=(0,))),
    OpSpec("celu[alpha=2]", rg.celu, _celu, F.celu, unary_samples(avoid=(0,), alpha=2.0)),
    OpSpec("gelu", rg.gelu, _gelu, F.gelu, unary_samples(domain=(-4.0, 4.0))),
    OpSpec(
        "gelu[approximate=tanh]",
        rg.gelu,
        _gelu,
        F.gelu,
        unary_samples(domain=(-4.0, 4.0), approximate="tanh"),
    ),
    OpSpec("silu", rg.silu, lambda x: x * _sigmoid(x), F.silu, unary_samples(domain=(-6.0, 6.0))),
    OpSpec(
        "mish",
        rg.mish,
        lambda x: x * np.tanh(np.log1p(np.exp(x))),
        F.mish,
        unary_samples(domain=(-6.0, 6.0)),
    ),
    OpSpec(
        "hardsigmoid",
        rg.hardsigmoid,
        _hardsigmoid,
        F.hardsigmoid,
        unary_samples(domain=(-4.0, 4.0), avoid=(-3, 3)),
    ),
    OpSpec(
        "hardswish",
        rg.hardswish,
        lambda x: x * _hardsigmoid(x),
        F.hardswish,
        unary_samples(domain=(-4.0, 4.0), avoid=(-3, 3)),
    ),
    OpSpec(
        "softsign",
        rg.softsign,
        lambda x: x / (1 + np.abs(x)),
        F.softsign,
        unary_samples(avoid=(0,)),
    ),
    OpSpec("tanhshrink", rg.tanhshrink, lambda x: x - np.tanh(x), F.tanhshrink, unary_samples()),
]
