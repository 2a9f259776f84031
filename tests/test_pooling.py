"""Pooling and resampling beyond the op table: PyTorch's error messages, indices and ties, NaN
and -inf, second-order gradients against PyTorch, CNN-sized inputs, and the modules (outputs,
gradients, reprs)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as F

import retrograd as rg
from retrograd.nn.layers import pooling as L
from retrograd.ops import pooling as P

FWD = dict(atol=1e-6, rtol=1e-3)
GRAD = dict(atol=1e-4, rtol=1e-3)


def _pair(x: np.ndarray):
    return (
        rg.from_numpy(x.copy()).requires_grad_(True),
        torch.from_numpy(x.copy()).requires_grad_(True),
    )


def _outs(res) -> list:
    return list(res) if isinstance(res, tuple) else [res]


def _compare(ours, theirs, x, tx, seed=0, fwd=FWD):
    """Outputs (indices exactly) and input gradients of a weighted sum of the float outputs."""
    outs, touts = _outs(ours), _outs(theirs)
    assert len(outs) == len(touts)
    rng = np.random.default_rng(seed)
    for o, t in zip(outs, touts):
        assert o.shape == tuple(t.shape)
        if t.dtype == torch.int64:
            assert o.dtype == np.int64
            np.testing.assert_array_equal(o.data, t.numpy())
        else:
            assert o.dtype == x.dtype
            np.testing.assert_allclose(o.data, t.detach().numpy(), equal_nan=True, **fwd)
    o, t = outs[0], touts[0]
    w = rng.standard_normal(o.shape).astype(np.float32)
    (o * rg.from_numpy(w)).sum().backward()
    (t * torch.from_numpy(w)).sum().backward()
    assert x.grad.dtype == x.dtype
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), **GRAD)


# -- PyTorch's error messages ----------------------------------------------------------------------
ERRORS = [
    ("max_pool2d", (2, 3, 5, 5), dict(kernel_size=3, padding=2)),
    ("max_pool2d", (2, 3, 5, 5), dict(kernel_size=3, padding=2, dilation=2)),
    ("max_pool2d", (2, 3, 5, 5), dict(kernel_size=3, padding=3, dilation=2)),
    ("max_pool2d", (2, 3, 5, 5), dict(kernel_size=3, padding=-1)),
    ("max_pool2d", (2, 3, 5, 5), dict(kernel_size=0)),
    ("max_pool2d", (2, 3, 5, 5), dict(kernel_size=0, stride=1)),
    ("max_pool2d", (2, 3, 5, 5), dict(kernel_size=2, stride=0)),
    ("max_pool2d", (2, 3, 5, 5), dict(kernel_size=2, dilation=0)),
    ("max_pool2d", (2, 3, 5, 5), dict(kernel_size=7)),
    ("max_pool2d", (2, 3, 5, 5), dict(kernel_size=3, stride=1, dilation=3)),
    ("max_pool2d", (5, 5), dict(kernel_size=2)),
    ("max_pool2d", (1, 2, 3, 5, 5), dict(kernel_size=2)),
    ("max_pool2d", (2, 0, 5, 5), dict(kernel_size=2)),
    ("max_pool2d", (2, 3, 5, 5), dict(kernel_size=(2, 2, 2))),
    ("max_pool2d", (2, 3, 5, 5), dict(kernel_size=2, stride=(2, 2, 2))),
    ("max_pool2d", (2, 3, 5, 5), dict(kernel_size=2, padding=(0, 0, 0))),
    ("avg_pool2d", (2, 3, 5, 5), dict(kernel_size=3, padding=2)),
    ("avg_pool2d", (2, 3, 5, 5), dict(kernel_size=3, padding=-1)),
    ("avg_pool2d", (2, 3, 5, 5), dict(kernel_size=0, stride=1)),
    ("avg_pool2d", (2, 3, 5, 5), dict(kernel_size=2, stride=0)),
    ("avg_pool2d", (2, 3, 5, 5), dict(kernel_size=7)),
    ("avg_pool2d", (2, 3, 5, 5), dict(kernel_size=2, divisor_override=0)),
    ("avg_pool2d", (5, 5), dict(kernel_size=2)),
    ("avg_pool2d", (1, 2, 3, 5, 5), dict(kernel_size=2)),
    ("avg_pool2d", (2, 0, 5, 5), dict(kernel_size=2)),
    ("avg_pool2d", (2, 3, 5, 5), dict(kernel_size=(2, 2, 2))),
    ("avg_pool2d", (2, 3, 5, 5), dict(kernel_size=2, stride=(2, 2, 2))),
    ("max_pool1d", (3, 5), dict(kernel_size=3, padding=2)),
    ("max_pool1d", (3, 5), dict(kernel_size=3, padding=-1)),
    ("max_pool1d", (3, 5), dict(kernel_size=0, stride=1)),
    ("max_pool1d", (3, 5), dict(kernel_size=2, stride=0)),
    ("max_pool1d", (3, 5), dict(kernel_size=2, stride=1, dilation=0)),
    ("max_pool1d", (3, 5), dict(kernel_size=7)),
    ("max_pool1d", (3, 5), dict(kernel_size=3, stride=1, dilation=3)),
    ("max_pool1d", (5,), dict(kernel_size=2)),
    ("max_pool1d", (2, 3, 5, 5), dict(kernel_size=2)),
    ("max_pool1d", (2, 0, 5), dict(kernel_size=2)),
    ("max_pool1d", (3, 5), dict(kernel_size=(2, 2))),
    ("avg_pool1d", (3, 5), dict(kernel_size=3, padding=2)),
    ("avg_pool1d", (3, 5), dict(kernel_size=0, stride=1)),
    ("avg_pool1d", (3, 5), dict(kernel_size=2, stride=0)),
    ("avg_pool1d", (3, 5), dict(kernel_size=7)),
    ("avg_pool1d", (5,), dict(kernel_size=2)),
    ("avg_pool1d", (2, 3, 5, 5), dict(kernel_size=2)),
    ("avg_pool1d", (3, 5), dict(kernel_size=(2, 2))),
    ("adaptive_avg_pool2d", (5, 5), dict(output_size=2)),
    ("adaptive_avg_pool2d", (2, 3, 5, 5), dict(output_size=(3, 2, 1))),
    ("adaptive_avg_pool2d", (2, 3, 5, 5), dict(output_size=-1)),
    ("adaptive_avg_pool2d", (2, 3, 0, 5), dict(output_size=2)),
    ("adaptive_max_pool2d", (5, 5), dict(output_size=2)),
    ("adaptive_max_pool2d", (2, 3, 5, 5), dict(output_size=(2, 3, 4))),
    ("adaptive_max_pool2d", (2, 3, 0, 5), dict(output_size=2)),
    ("adaptive_avg_pool1d", (2, 3, 5, 5), dict(output_size=2)),
    ("adaptive_avg_pool1d", (3, 5), dict(output_size=(2, 3))),
    ("adaptive_avg_pool1d", (3, 5), dict(output_size=None)),
    ("pixel_shuffle", (5, 5), dict(upscale_factor=2)),
    ("pixel_shuffle", (2, 3, 5, 5), dict(upscale_factor=2)),
    ("pixel_shuffle", (2, 4, 5, 5), dict(upscale_factor=0)),
    ("pixel_unshuffle", (2, 3, 5, 4), dict(downscale_factor=2)),
    ("pixel_unshuffle", (2, 3, 4, 5), dict(downscale_factor=2)),
    ("pixel_unshuffle", (5, 5), dict(downscale_factor=2)),
    ("pixel_unshuffle", (2, 3, 4, 4), dict(downscale_factor=-1)),
    ("interpolate", (2, 3, 5, 5), dict(size=3, scale_factor=2)),
    ("interpolate", (2, 3, 5, 5), dict()),
    ("interpolate", (2, 3, 5, 5), dict(size=3, mode="linear")),
    ("interpolate", (3, 5, 5), dict(size=3, mode="bilinear")),
    ("interpolate", (1, 1, 2, 2, 2), dict(scale_factor=2, mode="bilinear")),
    ("interpolate", (2, 3, 5, 5), dict(size=3, mode="nearest", align_corners=True)),
    ("interpolate", (2, 3, 5, 5), dict(size=3, mode="foo")),
    ("interpolate", (5, 5), dict(size=3)),
    ("interpolate", (2, 3, 5, 5), dict(size=(3, 4, 5))),
    ("interpolate", (2, 3, 5, 5), dict(scale_factor=(3, 4, 5))),
    ("interpolate", (2, 3, 5, 5), dict(size=0)),
    ("interpolate", (2, 3, 5, 5), dict(scale_factor=0.1)),
    ("interpolate", (2, 3, 5), dict(scale_factor=0.1, mode="linear")),
    ("interpolate", (2, 3, 5, 5, 5), dict(scale_factor=0.1, mode="trilinear")),
    ("interpolate", (2, 3, 5, 5), dict(size=3, recompute_scale_factor=True)),
]


@pytest.mark.parametrize("name,shape,kwargs", ERRORS, ids=[f"{e[0]}-{e[2]}" for e in ERRORS])
def test_errors_match_pytorch(name, shape, kwargs):
    x = np.zeros(shape, np.float32)
    with pytest.raises(Exception) as theirs:
        getattr(F, name)(torch.from_numpy(x), **kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        getattr(P, name)(rg.from_numpy(x), **kwargs)
    assert str(ours.value) == str(theirs.value)


# -- indices, ties, NaN, -inf ----------------------------------------------------------------------
POOLS_WITH_INDICES = [
    ("max_pool2d", (2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool2d", (2, 3, 7, 6), dict(kernel_size=2)),
    ("max_pool2d", (2, 3, 7, 6), dict(kernel_size=3, stride=1, padding=1, dilation=2)),
    ("max_pool2d", (2, 3, 7, 6), dict(kernel_size=(2, 3), stride=(1, 2), ceil_mode=True)),
    ("max_pool1d", (2, 3, 11), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max_pool1d", (2, 3, 11), dict(kernel_size=2, stride=1, dilation=3)),
    ("adaptive_max_pool2d", (2, 3, 7, 6), dict(output_size=(3, 4))),
    ("adaptive_max_pool2d", (2, 3, 7, 6), dict(output_size=1)),
    ("adaptive_max_pool2d", (2, 3, 6, 6), dict(output_size=(2, 3))),
    ("adaptive_max_pool1d", (2, 3, 11), dict(output_size=4)),
    ("adaptive_max_pool1d", (2, 3, 11), dict(output_size=1)),
]


@pytest.mark.parametrize("values", ["distinct", "ties", "nan", "-inf"])
@pytest.mark.parametrize(
    "name,shape,kwargs", POOLS_WITH_INDICES, ids=[f"{e[0]}-{e[2]}" for e in POOLS_WITH_INDICES]
)
def test_max_pool_indices_match_pytorch(name, shape, kwargs, values):
    rng = np.random.default_rng(1)
    if values == "distinct":
        x = rng.standard_normal(shape).astype(np.float32)
    else:  # few distinct values: many ties, the first in the window must win
        x = rng.integers(0, 3, size=shape).astype(np.float32)
        if values == "nan":
            x[rng.random(shape) < 0.1] = np.nan
        if values == "-inf":
            x[rng.random(shape) < 0.7] = -np.inf
    xr, xt = _pair(x)
    ours = getattr(P, name)(xr, **kwargs, return_indices=True)
    theirs = getattr(F, name)(xt, **kwargs, return_indices=True)
    if values in ("nan", "-inf"):  # gradients of non-finite outputs are not compared
        np.testing.assert_array_equal(ours[1].data, theirs[1].numpy())
        np.testing.assert_allclose(ours[0].data, theirs[0].detach().numpy(), equal_nan=True)
        return
    _compare(ours, theirs, xr, xt)


def test_max_pool_integer_input():
    x = np.arange(2 * 3 * 4 * 4).reshape(2, 3, 4, 4) % 7
    out, idx = P.max_pool2d(rg.from_numpy(x), 2, return_indices=True)
    tout, tidx = F.max_pool2d(torch.from_numpy(x).double(), 2, return_indices=True)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out.data, tout.numpy())
    np.testing.assert_array_equal(idx.data, tidx.numpy())


# -- second order against PyTorch ------------------------------------------------------------------
SECOND_ORDER = [
    ("max_pool2d", (2, 2, 6, 5), dict(kernel_size=3, stride=1, padding=1)),
    ("max_pool1d", (2, 2, 9), dict(kernel_size=3, stride=2)),
    ("avg_pool2d", (2, 2, 6, 5), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("avg_pool1d", (2, 2, 9), dict(kernel_size=2, count_include_pad=False, padding=1)),
    ("adaptive_avg_pool2d", (2, 2, 7, 5), dict(output_size=(3, 2))),
    ("adaptive_max_pool2d", (2, 2, 7, 5), dict(output_size=(3, 2))),
    ("interpolate", (2, 2, 4, 5), dict(scale_factor=2, mode="bilinear")),
    ("interpolate", (2, 2, 4, 5), dict(size=(7, 3), mode="nearest")),
    ("interpolate", (2, 2, 4, 5), dict(size=(7, 3), mode="bicubic", align_corners=True)),
    ("pixel_shuffle", (2, 8, 2, 3), dict(upscale_factor=2)),
]


@pytest.mark.parametrize(
    "name,shape,kwargs", SECOND_ORDER, ids=[f"{e[0]}-{e[2]}" for e in SECOND_ORDER]
)
def test_double_backward_matches_pytorch(name, shape, kwargs):
    """grad of <d out/dx^T g, w> with respect to g and x, through create_graph=True."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    xr, xt = _pair(x)
    out, tout = getattr(P, name)(xr, **kwargs), getattr(F, name)(xt, **kwargs)
    g = rng.standard_normal(out.shape)
    w = rng.standard_normal(shape)
    gr, gt = _pair(g)
    (gx,) = rg.autograd.grad(out, xr, gr, create_graph=True)
    (tgx,) = torch.autograd.grad(tout, xt, gt, create_graph=True)
    np.testing.assert_allclose(gx.data, tgx.detach().numpy(), atol=1e-12)
    (gx * rg.from_numpy(w)).sum().backward()
    (tgx * torch.from_numpy(w)).sum().backward()
    np.testing.assert_allclose(gr.grad.data, gt.grad.numpy(), atol=1e-12)


# -- CNN-sized inputs (the vectorised paths: disjoint and overlapping windows) --------------------
BIG = [
    ("max_pool2d", dict(kernel_size=2)),
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("avg_pool2d", dict(kernel_size=2)),
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("adaptive_avg_pool2d", dict(output_size=(7, 7))),
    ("adaptive_avg_pool2d", dict(output_size=(5, 6))),
    ("adaptive_max_pool2d", dict(output_size=(5, 6))),
    ("adaptive_max_pool2d", dict(output_size=1)),
    ("interpolate", dict(scale_factor=2, mode="nearest")),
    ("interpolate", dict(size=(40, 33), mode="bilinear", align_corners=False)),
]


@pytest.mark.parametrize("name,kwargs", BIG, ids=[f"{e[0]}-{e[1]}" for e in BIG])
def test_cnn_sized_inputs_match_pytorch(name, kwargs):
    x = np.random.default_rng(3).standard_normal((8, 16, 28, 28)).astype(np.float32)
    xr, xt = _pair(x)
    _compare(getattr(P, name)(xr, **kwargs), getattr(F, name)(xt, **kwargs), xr, xt)


def test_upsample_is_interpolate_with_a_warning():
    x = rg.from_numpy(np.random.default_rng(4).standard_normal((1, 2, 3, 4)).astype(np.float32))
    with pytest.warns(UserWarning, match="upsample` is deprecated"):
        y = P.upsample(x, scale_factor=2, mode="bilinear")
    np.testing.assert_array_equal(y.data, P.interpolate(x, scale_factor=2, mode="bilinear").data)


def test_same_size_interpolate_is_a_copy():
    x = rg.from_numpy(np.ones((1, 1, 3, 3), np.float32)).requires_grad_(True)
    y = P.interpolate(x, size=(3, 3))
    assert not np.shares_memory(y.data, x.data)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.ones((1, 1, 3, 3), np.float32))


# -- modules ---------------------------------------------------------------------------------------
MODULES = [
    ("MaxPool1d", (3,), dict(stride=2, padding=1), (2, 3, 10)),
    ("MaxPool1d", (2,), dict(return_indices=True, ceil_mode=True), (2, 3, 9)),
    ("MaxPool2d", (2,), {}, (2, 3, 8, 8)),
    ("MaxPool2d", ((3, 2),), dict(stride=1, padding=1, dilation=(1, 2)), (2, 3, 7, 8)),
    ("MaxPool2d", (3,), dict(stride=2, return_indices=True, ceil_mode=True), (3, 8, 7)),
    ("AvgPool1d", (3,), dict(stride=2, padding=1, count_include_pad=False), (2, 3, 10)),
    ("AvgPool1d", (2,), dict(ceil_mode=True), (3, 9)),
    ("AvgPool2d", (2,), {}, (2, 3, 8, 8)),
    (
        "AvgPool2d",
        (3,),
        dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        (2, 3, 7, 8),
    ),  # fmt: skip
    ("AvgPool2d", (3,), dict(stride=1, padding=1, divisor_override=2), (2, 3, 5, 5)),
    ("AdaptiveAvgPool1d", (4,), {}, (2, 3, 10)),
    ("AdaptiveAvgPool2d", ((None, 3),), {}, (2, 3, 7, 8)),
    ("AdaptiveAvgPool2d", (1,), {}, (2, 3, 7, 8)),
    ("AdaptiveMaxPool1d", (3,), dict(return_indices=True), (2, 3, 10)),
    ("AdaptiveMaxPool2d", ((3, 2),), {}, (2, 3, 7, 8)),
    ("AdaptiveMaxPool2d", (2,), dict(return_indices=True), (3, 7, 8)),
    ("Upsample", (), dict(scale_factor=2), (2, 3, 4, 5)),
    ("Upsample", (), dict(size=(7, 9), mode="bilinear"), (2, 3, 4, 5)),
    (
        "Upsample",
        (),
        dict(scale_factor=(1.5, 2.0), mode="bilinear", align_corners=True),
        (2, 3, 4, 5),
    ),  # fmt: skip
    ("Upsample", (), dict(scale_factor=2, mode="linear"), (2, 3, 5)),
    ("Upsample", (), dict(size=(6, 7), mode="bicubic"), (2, 3, 4, 5)),
    ("UpsamplingNearest2d", (), dict(scale_factor=3), (2, 3, 4, 5)),
    ("UpsamplingBilinear2d", (), dict(size=(5, 8)), (2, 3, 4, 5)),
    ("PixelShuffle", (2,), {}, (2, 8, 3, 4)),
    ("PixelUnshuffle", (2,), {}, (2, 2, 4, 6)),
]


@pytest.mark.parametrize("name,args,kwargs,shape", MODULES, ids=[f"{m[0]}-{m[2]}" for m in MODULES])
def test_modules_match_pytorch(name, args, kwargs, shape):
    ours, theirs = getattr(L, name)(*args, **kwargs), getattr(tnn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    assert ours.state_dict().keys() == theirs.state_dict().keys() == set()
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    xr, xt = _pair(x)
    # bicubic: float32 sums with negative weights, atol widened as in its op-table row
    fwd = dict(FWD, atol=1e-5) if kwargs.get("mode") == "bicubic" else FWD
    _compare(ours(xr), theirs(xt), xr, xt, fwd=fwd)


def test_module_attributes_as_pytorch():
    for name, args, kwargs in [
        ("MaxPool2d", (3,), {}),
        ("MaxPool1d", (3,), dict(stride=1)),
        ("AvgPool1d", (3,), {}),
        ("AvgPool2d", ((2, 3),), dict(padding=1)),
        ("Upsample", (), dict(scale_factor=(2, 3))),
    ]:
        ours, theirs = getattr(L, name)(*args, **kwargs), getattr(tnn, name)(*args, **kwargs)
        for attr in ("kernel_size", "stride", "padding", "dilation", "scale_factor", "mode"):
            if hasattr(theirs, attr):
                assert getattr(ours, attr) == getattr(theirs, attr), (name, attr)


def test_modules_in_a_small_cnn_match_pytorch():
    """conv-free CNN-like stack: pool, upsample, shuffle; every gradient agrees."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 8, 12, 12)).astype(np.float32)
    ours = [L.MaxPool2d(2), L.Upsample(scale_factor=2, mode="bilinear"), L.PixelUnshuffle(2),
            L.AvgPool2d(3, stride=1, padding=1), L.AdaptiveAvgPool2d((2, 2))]  # fmt: skip
    theirs = [tnn.MaxPool2d(2), tnn.Upsample(scale_factor=2, mode="bilinear"),
              tnn.PixelUnshuffle(2), tnn.AvgPool2d(3, stride=1, padding=1),
              tnn.AdaptiveAvgPool2d((2, 2))]  # fmt: skip
    xr, xt = _pair(x)
    y, ty = xr, xt
    for m, tm in zip(ours, theirs):
        y, ty = m(y), tm(ty)
    _compare(y, ty, xr, xt)


def test_no_numpy_warnings():
    x = rg.from_numpy(np.full((1, 1, 4, 4), -np.inf, np.float32)).requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P.max_pool2d(x, 3, stride=1, padding=1).sum().backward()
        P.avg_pool2d(rg.ones(1, 1, 4, 4), 3, stride=2, padding=1, ceil_mode=True)
