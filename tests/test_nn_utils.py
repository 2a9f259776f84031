"""nn.utils vs torch.nn.utils: gradient clipping by norm and by value, flat parameter vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.utils as tutils

import retrograd as rg
from retrograd import nn
from retrograd.nn import utils

SHAPES = [(3, 4), (4,), (2, 3, 2), ()]


def _pairs(dtype=np.float32, scale=1.0, seed=0, with_none=False):
    rng = np.random.default_rng(seed)
    params, tparams = [], []
    for i, s in enumerate(SHAPES):
        p = nn.Parameter(rg.tensor(rng.standard_normal(s).astype(dtype)))
        tp = torch.nn.Parameter(torch.tensor(p.data.copy()))
        if not (with_none and i == 1):
            g = (rng.standard_normal(s) * scale).astype(dtype)
            p.grad = rg.tensor(g)
            tp.grad = torch.tensor(g.copy())
        params.append(p)
        tparams.append(tp)
    return params, tparams


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, "inf", 0.5])
@pytest.mark.parametrize("max_norm,scale", [(1.0, 1.0), (100.0, 1.0), (0.5, 10.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, scale, dtype):
    params, tparams = _pairs(dtype, scale, with_none=True)
    total = utils.clip_grad_norm_(params, max_norm, norm_type)
    ttotal = tutils.clip_grad_norm_(tparams, max_norm, norm_type)
    assert isinstance(total, rg.Tensor) and total.shape == () and total.dtype == dtype
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=rtol)
    for p, tp in zip(params, tparams):
        if tp.grad is None:
            assert p.grad is None
        else:
            np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=rtol * 10, atol=1e-7)


def test_clip_grad_norm_accepts_a_tensor_a_generator_and_no_grads():
    params, tparams = _pairs()
    total = utils.clip_grad_norm_(params[0], 0.1)
    ttotal = tutils.clip_grad_norm_(tparams[0], 0.1)
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-6)
    model = nn.Linear(3, 2)
    assert utils.clip_grad_norm_(model.parameters(), 1.0).item() == 0.0  # no gradients yet
    model(rg.randn(4, 3)).sum().backward()
    grads = [p.grad.data.copy() for p in model.parameters()]
    total = utils.clip_grad_norm_(model.parameters(), 1e6)  # a generator, nothing clipped
    expected = math.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    np.testing.assert_allclose(total.item(), expected, rtol=1e-6)
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_array_equal(p.grad.data, g)


def test_clip_grad_norm_is_in_place_and_result_has_max_norm():
    params, _ = _pairs(scale=10.0)
    grads = [p.grad for p in params]
    utils.clip_grad_norm_(params, 2.0)
    assert all(p.grad is g for p, g in zip(params, grads))
    new = math.sqrt(sum(float((p.grad.data.astype(np.float64) ** 2).sum()) for p in params))
    assert abs(new - 2.0) < 1e-5


def test_clip_grad_norm_nonfinite():
    params, tparams = _pairs()
    params[0].grad.data[0, 0] = np.inf
    tparams[0].grad[0, 0] = math.inf
    msg = (
        "The total norm of order 2.0 for gradients from `parameters` is non-finite, so it cannot "
        "be clipped. To disable this error and scale the gradients by the non-finite norm anyway, "
        "set `error_if_nonfinite=False`"
    )
    with pytest.raises(RuntimeError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        tutils.clip_grad_norm_(tparams, 1.0, error_if_nonfinite=True)
    total = utils.clip_grad_norm_(params, 1.0)
    ttotal = tutils.clip_grad_norm_(tparams, 1.0)
    assert math.isinf(total.item()) and math.isinf(ttotal.item())
    for p, tp in zip(params, tparams):
        np.testing.assert_array_equal(p.grad.data, tp.grad.numpy())


@pytest.mark.parametrize("clip_value", [0.1, 1.0, 5])
def test_clip_grad_value_matches_torch(clip_value):
    params, tparams = _pairs(with_none=True, scale=2.0)
    assert utils.clip_grad_value_(params, clip_value) is None
    tutils.clip_grad_value_(tparams, clip_value)
    for p, tp in zip(params, tparams):
        if tp.grad is None:
            assert p.grad is None
        else:
            np.testing.assert_array_equal(p.grad.data, tp.grad.numpy())


def test_parameters_to_vector_and_back_match_torch():
    params, tparams = _pairs()
    vec = utils.parameters_to_vector(params)
    tvec = tutils.parameters_to_vector(tparams)
    np.testing.assert_array_equal(vec.data, tvec.detach().numpy())
    # differentiable, as in PyTorch
    for p in params:
        p.grad = None
    w = np.arange(vec.shape[0], dtype=np.float32)
    (vec * rg.tensor(w)).sum().backward()
    offset = 0
    for p in params:
        n = p.numel()
        np.testing.assert_array_equal(p.grad.data, np.reshape(w[offset : offset + n], p.shape))
        offset += n
    new = rg.arange(vec.shape[0], dtype=rg.float32) * 0.5
    utils.vector_to_parameters(new, params)
    tutils.vector_to_parameters(torch.tensor(new.data.copy()), tparams)
    for p, tp in zip(params, tparams):
        assert p.shape == tuple(tp.shape)
        np.testing.assert_array_equal(p.data, tp.detach().numpy())
    with pytest.raises(TypeError, match="expected retrograd.Tensor, but got: ndarray"):
        utils.vector_to_parameters(new.data, params)
