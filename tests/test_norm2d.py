"""Norms and dropout for images against PyTorch: BatchNorm2d, GroupNorm, InstanceNorm1d/2d,
LayerNorm over (C, H, W), Dropout2d (outputs, input and parameter gradients, running statistics
over several training steps, eval mode, state dicts, reprs, errors)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as F

import retrograd as rg
from retrograd.nn.layers import norm2d as N
from retrograd.nn.layers.normalization import BatchNorm2d, LayerNorm
from retrograd.ops import pooling as P

FWD = dict(atol=1e-6, rtol=1e-3)
GRAD = dict(atol=1e-4, rtol=1e-3)


def _randomize(ours, theirs, rng) -> None:
    """Same random parameters (and running statistics) in both modules."""
    for t in theirs.state_dict().values():
        if t.dtype.is_floating_point:
            v = rng.uniform(0.5, 1.5, size=tuple(t.shape)).astype(np.float32)
            with torch.no_grad():
                t.copy_(torch.from_numpy(v))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})


def _step(ours, theirs, x, rng):
    """One forward/backward with the same input; compare output, input and parameter grads."""
    xr = rg.from_numpy(x.copy()).requires_grad_(True)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    y, ty = ours(xr), theirs(xt)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), **FWD)
    w = rng.standard_normal(y.shape).astype(np.float32)
    (y * rg.from_numpy(w)).sum().backward()
    (ty * torch.from_numpy(w)).sum().backward()
    np.testing.assert_allclose(xr.grad.data, xt.grad.numpy(), **GRAD)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.data, tparams[name].grad.numpy(), **GRAD)
        p.grad = None
        tparams[name].grad = None


def _same_state(ours, theirs) -> None:
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert list(sd.keys()) == list(tsd.keys())
    for k, v in tsd.items():
        np.testing.assert_allclose(np.asarray(sd[k].data), v.numpy(), atol=1e-6, rtol=1e-5)


# -- BatchNorm2d -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        dict(momentum=None),
        dict(momentum=0.3, eps=1e-3),
        dict(affine=False),
        dict(track_running_stats=False),
    ],
)
def test_batch_norm2d_training_steps_and_eval(kwargs):
    rng = np.random.default_rng(0)
    ours, theirs = BatchNorm2d(3, **kwargs), tnn.BatchNorm2d(3, **kwargs)
    assert repr(ours) == repr(theirs)
    _randomize(ours, theirs, rng)
    for _ in range(3):
        x = rng.standard_normal((4, 3, 5, 6)).astype(np.float32) * 2 + 1
        _step(ours, theirs, x, rng)
        _same_state(ours, theirs)
    ours.eval()
    theirs.eval()
    _step(ours, theirs, rng.standard_normal((2, 3, 5, 6)).astype(np.float32), rng)
    _same_state(ours, theirs)


def test_batch_norm2d_state_dict_keys_and_errors():
    assert list(BatchNorm2d(3).state_dict()) == [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input\)"):
        BatchNorm2d(3)(rg.zeros(3, 4, 4))


# -- GroupNorm -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "groups,channels,kwargs,shape",
    [
        (2, 4, {}, (3, 4, 5, 5)),
        (1, 4, {}, (3, 4, 5, 5)),
        (4, 4, dict(eps=1e-3), (3, 4, 5, 5)),
        (3, 6, dict(affine=False), (2, 6, 4)),
        (2, 6, dict(bias=False), (2, 6, 3, 2)),
        (2, 4, {}, (5, 4)),
    ],
)
def test_group_norm_module(groups, channels, kwargs, shape):
    rng = np.random.default_rng(1)
    ours, theirs = (
        N.GroupNorm(groups, channels, **kwargs),
        tnn.GroupNorm(groups, channels, **kwargs),
    )
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    _randomize(ours, theirs, rng)
    for train in (True, False):  # the same statistics in both modes
        ours.train(train)
        theirs.train(train)
        _step(ours, theirs, rng.standard_normal(shape).astype(np.float32) * 3 - 1, rng)


def test_group_norm_errors():
    with pytest.raises(
        ValueError, match=r"num_channels \(3\) must be divisible by num_groups \(2\)"
    ):
        N.GroupNorm(2, 3)
    x = np.zeros((2, 3, 5, 5), np.float32)
    for args in [(2,), (3, rg.ones(4))]:
        targs = tuple(torch.ones(4) if isinstance(a, rg.Tensor) else a for a in args)
        with pytest.raises(RuntimeError) as theirs:
            F.group_norm(torch.from_numpy(x), *targs)
        with pytest.raises(RuntimeError) as ours:
            P.group_norm(rg.from_numpy(x), *args)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(RuntimeError, match="Expected at least 2 dimensions for input tensor"):
        P.group_norm(rg.zeros(5), 1)


# -- InstanceNorm ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        dict(affine=True),
        dict(track_running_stats=True),
        dict(affine=True, track_running_stats=True, momentum=0.3),
        dict(affine=True, track_running_stats=True, momentum=None),
    ],
)
def test_instance_norm2d_training_steps_and_eval(kwargs):
    rng = np.random.default_rng(2)
    ours, theirs = N.InstanceNorm2d(3, **kwargs), tnn.InstanceNorm2d(3, **kwargs)
    assert repr(ours) == repr(theirs)
    _randomize(ours, theirs, rng)
    for _ in range(3):
        _step(ours, theirs, rng.standard_normal((4, 3, 5, 6)).astype(np.float32) * 2 + 1, rng)
        _same_state(ours, theirs)  # num_batches_tracked stays 0, as in PyTorch
    ours.eval()
    theirs.eval()
    _step(ours, theirs, rng.standard_normal((2, 3, 5, 6)).astype(np.float32), rng)
    _step(ours, theirs, rng.standard_normal((3, 5, 6)).astype(np.float32), rng)  # unbatched
    _same_state(ours, theirs)


def test_instance_norm1d_and_unbatched():
    rng = np.random.default_rng(3)
    ours, theirs = N.InstanceNorm1d(4, affine=True), tnn.InstanceNorm1d(4, affine=True)
    _randomize(ours, theirs, rng)
    _step(ours, theirs, rng.standard_normal((2, 4, 7)).astype(np.float32), rng)
    _step(ours, theirs, rng.standard_normal((4, 7)).astype(np.float32), rng)
    ours2, theirs2 = N.InstanceNorm2d(3), tnn.InstanceNorm2d(3)
    _step(ours2, theirs2, rng.standard_normal((3, 4, 5)).astype(np.float32), rng)


def test_instance_norm_errors_and_warning():
    x = np.zeros((2, 3, 5, 5), np.float32)
    cases = [
        (lambda m: m.InstanceNorm2d(3), (5, 5)),
        (lambda m: m.InstanceNorm2d(4, affine=True), (2, 3, 5, 5)),
    ]
    for make, shape in cases:
        with pytest.raises(ValueError) as theirs:
            make(tnn)(torch.zeros(shape))
        with pytest.raises(ValueError) as ours:
            make(N)(rg.zeros(*shape))
        assert str(ours.value) == str(theirs.value)
    with pytest.warns(UserWarning, match="does not match num_features"):
        N.InstanceNorm2d(4)(rg.from_numpy(x))
    for kwargs in [
        dict(running_mean=4, running_var=4),
        dict(use_input_stats=False),
        dict(weight=4),
    ]:
        tk = {k: torch.zeros(v) if isinstance(v, int) and k != "use_input_stats" else v
              for k, v in kwargs.items()}  # fmt: skip
        rk = {k: rg.zeros(v) if isinstance(v, int) and k != "use_input_stats" else v
              for k, v in kwargs.items()}  # fmt: skip
        with pytest.raises(RuntimeError) as theirs:
            F.instance_norm(torch.from_numpy(x), **tk)
        with pytest.raises(RuntimeError) as ours:
            P.instance_norm(rg.from_numpy(x), **rk)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError, match="Expected more than 1 spatial element when training"):
        P.instance_norm(rg.zeros(2, 3, 1, 1))


# -- LayerNorm over (C, H, W) ------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{}, dict(elementwise_affine=False), dict(bias=False)])
def test_layer_norm_over_image_dims(kwargs):
    rng = np.random.default_rng(4)
    ours, theirs = LayerNorm((3, 4, 5), **kwargs), tnn.LayerNorm((3, 4, 5), **kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    _randomize(ours, theirs, rng)
    _step(ours, theirs, rng.standard_normal((2, 3, 4, 5)).astype(np.float32) * 2 + 3, rng)
    _step(ours, theirs, rng.standard_normal((3, 4, 5)).astype(np.float32), rng)


# -- Dropout2d -------------------------------------------------------------------------------------
def test_dropout2d_zeroes_whole_channels():
    x = rg.ones(64, 32, 3, 3, requires_grad=True)
    gen = rg.Generator().manual_seed(0)
    y = P.dropout2d(x, 0.25, generator=gen)
    planes = y.data.reshape(64, 32, 9)
    kept = planes[:, :, 0] != 0
    assert np.all(planes == planes[:, :, :1])  # one decision per channel
    np.testing.assert_allclose(planes[kept], 1 / 0.75, rtol=1e-6)
    assert abs(1 - kept.mean() - 0.25) < 0.03
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, y.data)  # the gradient is the same mask
    again = P.dropout2d(rg.ones(64, 32, 3, 3), 0.25, generator=rg.Generator().manual_seed(0))
    np.testing.assert_array_equal(again.data, y.data)


def test_dropout2d_modes_and_module():
    x = rg.from_numpy(np.random.default_rng(5).standard_normal((4, 3, 2, 2)).astype(np.float32))
    assert P.dropout2d(x, 0.5, training=False) is x
    assert P.dropout2d(x, 0.0) is x
    np.testing.assert_array_equal(P.dropout2d(x, 1.0).data, np.zeros((4, 3, 2, 2)))
    m, tm = N.Dropout2d(0.3), tnn.Dropout2d(0.3)
    assert repr(m) == repr(tm) and list(m.state_dict()) == []
    m.eval()
    assert m(x) is x
    m = N.Dropout2d(0.5, generator=rg.Generator().manual_seed(1)).train()
    y = m(x).data
    zero = (y == 0).all(axis=(2, 3))
    np.testing.assert_allclose(y[~zero], 2 * x.data[~zero], rtol=1e-6)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got"):
        N.Dropout2d(1.5)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        P.dropout2d(x, -0.1)


def test_dropout2d_inplace_and_warnings():
    x = rg.ones(2, 3, 4, 4)
    y = P.dropout2d(x, 0.5, inplace=True, generator=rg.Generator().manual_seed(2))
    assert y is x and set(np.unique(x.data)) <= {0.0, 2.0}
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        P.dropout2d(rg.ones(2, 3, 4), 0.5)
    with pytest.warns(UserWarning, match="Received a 2-D input to dropout2d"):
        P.dropout2d(rg.ones(2, 3), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="Feature dropout requires at least 2 dimensions"):
            P.dropout2d(rg.ones(3), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P.dropout2d(rg.ones(2, 3, 4, 4), 0.5)
