"""The convolution layers against PyTorch (same weights and inputs: outputs, input gradients,
weight and bias gradients), padding modes, error messages, state dicts, default init, second
order; a speed print at the W4 sizes (never an assertion). The functional ops are checked row by
row in tests/opspec_conv.py."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import retrograd as rg
from retrograd.autograd.gradcheck import GradcheckError, gradcheck
from retrograd.nn.layers import conv as layers
from retrograd.ops import conv

# torch notes that 'same' with an even kernel copies the input; the note is not ours to test
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

FWD = dict(atol=1e-6, rtol=1e-3)
GRAD = dict(atol=1e-4, rtol=1e-3)


def _copy_weights(module, tmodule):
    module.load_state_dict({k: v.detach().numpy() for k, v in tmodule.state_dict().items()})


def _compare(module, tmodule, xshape, seed=0, **call):
    """Same input through both: outputs, then input, weight and bias gradients of a random
    projection of the output."""
    _copy_weights(module, tmodule)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xshape).astype(np.float32)
    rx = rg.from_numpy(x.copy()).requires_grad_()
    tx = torch.from_numpy(x.copy()).requires_grad_()
    out, tout = module(rx, **call), tmodule(tx, **call)
    assert out.shape == tuple(tout.shape)
    assert out.dtype == rg.float32
    np.testing.assert_allclose(out.data, tout.detach().numpy(), **FWD)
    w = rng.standard_normal(out.shape).astype(np.float32)
    (out * rg.from_numpy(w)).sum().backward()
    (tout * torch.from_numpy(w)).sum().backward()
    np.testing.assert_allclose(rx.grad.data, tx.grad.numpy(), **GRAD)
    for (name, p), (tname, tp) in zip(module.named_parameters(), tmodule.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), **GRAD, err_msg=name)


CONV2D = [
    (dict(in_channels=3, out_channels=4, kernel_size=3), (2, 3, 8, 8)),
    (
        dict(in_channels=3, out_channels=4, kernel_size=(3, 2), stride=(2, 1), padding=(1, 2)),
        (2, 3, 9, 7),
    ),
    (
        dict(in_channels=2, out_channels=4, kernel_size=3, dilation=2, padding=2, bias=False),
        (2, 2, 7, 8),
    ),
    (dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, padding=1), (2, 4, 6, 6)),
    (dict(in_channels=4, out_channels=8, kernel_size=3, groups=4, padding="same"), (2, 4, 5, 7)),
    (
        dict(in_channels=3, out_channels=5, kernel_size=4, padding="same", dilation=(1, 2)),
        (1, 3, 7, 9),
    ),
    (dict(in_channels=3, out_channels=5, kernel_size=2, padding="valid", stride=3), (2, 3, 9, 10)),
    (
        dict(in_channels=2, out_channels=3, kernel_size=3, padding=2, padding_mode="reflect"),
        (2, 2, 6, 7),
    ),
    (
        dict(
            in_channels=2,
            out_channels=3,
            kernel_size=(2, 3),
            padding=(1, 2),
            padding_mode="replicate",
            stride=2,
        ),
        (2, 2, 6, 7),
    ),
    (
        dict(
            in_channels=2,
            out_channels=3,
            kernel_size=3,
            padding=1,
            padding_mode="circular",
            groups=1,
            dilation=(2, 1),
        ),
        (2, 2, 6, 7),
    ),
    (
        dict(
            in_channels=2,
            out_channels=4,
            kernel_size=4,
            padding="same",
            padding_mode="reflect",
            groups=2,
        ),
        (2, 2, 6, 6),
    ),
    (dict(in_channels=3, out_channels=4, kernel_size=3, padding=1), (3, 6, 6)),  # unbatched
    (dict(in_channels=1, out_channels=16, kernel_size=5), (8, 1, 28, 28)),  # the W4 layer
]

CONV1D = [
    (dict(in_channels=3, out_channels=4, kernel_size=3), (2, 3, 10)),
    (dict(in_channels=3, out_channels=6, kernel_size=4, stride=2, padding=3, groups=3), (2, 3, 11)),
    (dict(in_channels=2, out_channels=4, kernel_size=3, dilation=3, bias=False), (3, 2, 12)),
    (dict(in_channels=2, out_channels=3, kernel_size=4, padding="same"), (2, 2, 9)),
    (
        dict(in_channels=2, out_channels=3, kernel_size=3, padding=2, padding_mode="reflect"),
        (2, 2, 6),
    ),
    (
        dict(in_channels=2, out_channels=3, kernel_size=3, padding=1, padding_mode="replicate"),
        (2, 2, 6),
    ),
    (
        dict(in_channels=2, out_channels=3, kernel_size=5, padding="same", padding_mode="circular"),
        (2, 2, 8),
    ),
    (dict(in_channels=2, out_channels=3, kernel_size=3), (2, 7)),  # unbatched
]

CONVT2D = [
    (dict(in_channels=3, out_channels=4, kernel_size=3), (2, 3, 5, 5)),
    (
        dict(in_channels=3, out_channels=2, kernel_size=3, stride=2, padding=1, output_padding=1),
        (2, 3, 4, 5),
    ),
    (
        dict(
            in_channels=4, out_channels=6, kernel_size=(2, 3), stride=(2, 3), groups=2, bias=False
        ),
        (2, 4, 3, 3),
    ),
    (
        dict(in_channels=2, out_channels=3, kernel_size=3, dilation=2, output_padding=1),
        (1, 2, 4, 4),
    ),
    (dict(in_channels=4, out_channels=4, kernel_size=3, groups=4, stride=2), (2, 4, 3, 3)),
    (dict(in_channels=3, out_channels=2, kernel_size=4, stride=2, padding=1), (3, 4, 4)),
]

CONVT1D = [
    (dict(in_channels=3, out_channels=4, kernel_size=3), (2, 3, 6)),
    (
        dict(
            in_channels=4,
            out_channels=2,
            kernel_size=4,
            stride=3,
            padding=1,
            output_padding=2,
            groups=2,
        ),
        (2, 4, 5),
    ),
    (dict(in_channels=2, out_channels=3, kernel_size=2, dilation=3, bias=False), (2, 2, 5)),
    (dict(in_channels=2, out_channels=3, kernel_size=3, stride=2), (2, 6)),  # unbatched
]


def _ids(cases):
    return [str(kw) + f" x{shape}" for kw, shape in cases]


@pytest.mark.parametrize("kwargs,xshape", CONV2D, ids=_ids(CONV2D))
def test_conv2d_module_matches_torch(kwargs, xshape):
    _compare(layers.Conv2d(**kwargs), torch.nn.Conv2d(**kwargs), xshape)


@pytest.mark.parametrize("kwargs,xshape", CONV1D, ids=_ids(CONV1D))
def test_conv1d_module_matches_torch(kwargs, xshape):
    _compare(layers.Conv1d(**kwargs), torch.nn.Conv1d(**kwargs), xshape)


@pytest.mark.parametrize("kwargs,xshape", CONVT2D, ids=_ids(CONVT2D))
def test_conv_transpose2d_module_matches_torch(kwargs, xshape):
    _compare(layers.ConvTranspose2d(**kwargs), torch.nn.ConvTranspose2d(**kwargs), xshape)


@pytest.mark.parametrize("kwargs,xshape", CONVT1D, ids=_ids(CONVT1D))
def test_conv_transpose1d_module_matches_torch(kwargs, xshape):
    _compare(layers.ConvTranspose1d(**kwargs), torch.nn.ConvTranspose1d(**kwargs), xshape)


@pytest.mark.parametrize("output_size", [(9, 10), [9, 9], (2, 3, 10, 9)])
def test_conv_transpose2d_output_size(output_size):
    kw = dict(in_channels=4, out_channels=3, kernel_size=3, stride=2, padding=1)
    m, tm = layers.ConvTranspose2d(**kw), torch.nn.ConvTranspose2d(**kw)
    _compare(m, tm, (2, 4, 5, 5), output_size=output_size)


def test_conv_transpose_output_size_errors_match_torch():
    kw = dict(in_channels=4, out_channels=3, kernel_size=3, stride=2, padding=1)
    m, tm = layers.ConvTranspose2d(**kw), torch.nn.ConvTranspose2d(**kw)
    x, tx = rg.zeros(2, 4, 5, 5), torch.zeros(2, 4, 5, 5)
    for size in [(11, 9), (9,), (1, 9, 9)]:
        with pytest.raises(ValueError) as theirs:
            tm(tx, output_size=size)
        with pytest.raises(ValueError) as ours:
            m(x, output_size=size)
        assert str(ours.value) == str(theirs.value).replace("torch.Size([5, 5])", "(5, 5)")


@pytest.mark.parametrize(
    "kwargs,xshape",
    [
        (dict(kernel_size=2), (2, 3, 4, 5)),
        (dict(kernel_size=(2, 3), dilation=(1, 2), padding=1, stride=(2, 1)), (2, 2, 6, 7)),
        (dict(kernel_size=3, padding=1), (2, 5, 5)),
    ],
)
def test_unfold_fold_modules_match_torch(kwargs, xshape):
    """Unfold, then Fold back: fold(unfold(x)) counts each pixel once per block covering it."""
    _compare(layers.Unfold(**kwargs), torch.nn.Unfold(**kwargs), xshape)
    cols = torch.nn.Unfold(**kwargs)(torch.zeros(xshape))
    _compare(layers.Fold(xshape[-2:], **kwargs), torch.nn.Fold(xshape[-2:], **kwargs), cols.shape)
    x = rg.ones(*xshape)
    counts = layers.Fold(xshape[-2:], **kwargs)(layers.Unfold(**kwargs)(x))
    tcounts = torch.nn.Fold(xshape[-2:], **kwargs)(torch.nn.Unfold(**kwargs)(torch.ones(xshape)))
    np.testing.assert_array_equal(counts.data, tcounts.numpy())


# -- parameters, state dicts, init, repr ---------------------------------------------------------
MODULES = [
    ("Conv1d", dict(in_channels=4, out_channels=6, kernel_size=3, groups=2)),
    ("Conv2d", dict(in_channels=3, out_channels=8, kernel_size=(3, 5))),
    ("Conv2d", dict(in_channels=3, out_channels=8, kernel_size=3, bias=False)),
    ("ConvTranspose1d", dict(in_channels=4, out_channels=6, kernel_size=3, groups=2)),
    ("ConvTranspose2d", dict(in_channels=4, out_channels=2, kernel_size=(2, 3))),
]


@pytest.mark.parametrize("name,kwargs", MODULES, ids=[f"{n}{k}" for n, k in MODULES])
def test_state_dict_matches_torch_both_ways(name, kwargs):
    m, tm = getattr(layers, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    sd, tsd = m.state_dict(), tm.state_dict()
    assert list(sd) == list(tsd)
    assert [tuple(v.shape) for v in sd.values()] == [tuple(v.shape) for v in tsd.values()]
    m.load_state_dict({k: v.numpy() for k, v in tsd.items()})
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v.data, tsd[k].numpy())
    m2 = getattr(layers, name)(**kwargs)
    tm.load_state_dict({k: torch.from_numpy(v.data.copy()) for k, v in m2.state_dict().items()})
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), m2.state_dict()[k].data)


REPRS = [
    ("Conv2d", dict(in_channels=1, out_channels=16, kernel_size=5)),
    (
        "Conv2d",
        dict(
            in_channels=4,
            out_channels=8,
            kernel_size=3,
            stride=2,
            padding=1,
            dilation=2,
            groups=2,
            bias=False,
            padding_mode="reflect",
        ),
    ),
    ("Conv2d", dict(in_channels=4, out_channels=8, kernel_size=3, padding="same")),
    ("Conv1d", dict(in_channels=4, out_channels=8, kernel_size=3, padding="valid")),
    (
        "ConvTranspose2d",
        dict(in_channels=4, out_channels=8, kernel_size=3, stride=2, output_padding=1),
    ),
    ("ConvTranspose1d", dict(in_channels=4, out_channels=8, kernel_size=2, groups=4)),
    ("Unfold", dict(kernel_size=(2, 3), stride=2)),
    ("Fold", dict(output_size=(4, 5), kernel_size=2, padding=1)),
]


@pytest.mark.parametrize("name,kwargs", REPRS, ids=[f"{n}{k}" for n, k in REPRS])
def test_repr_matches_torch(name, kwargs):
    assert repr(getattr(layers, name)(**kwargs)) == repr(getattr(torch.nn, name)(**kwargs))


@pytest.mark.parametrize("name,kwargs", MODULES, ids=[f"{n}{k}" for n, k in MODULES])
def test_default_init_is_pytorchs(name, kwargs):
    """kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias the same."""
    m = getattr(layers, name)(**kwargs, generator=rg.Generator().manual_seed(0))
    w = m.weight.data
    assert w.dtype == np.float32
    fan_in = w.shape[1] * math.prod(w.shape[2:])
    bound = 1 / math.sqrt(fan_in)
    assert np.abs(w).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.25 * bound
    if m.bias is not None:
        assert np.abs(m.bias.data).max() <= bound
    big = getattr(layers, name)(**dict(kwargs, in_channels=32, out_channels=32))
    tbig = getattr(torch.nn, name)(**dict(kwargs, in_channels=32, out_channels=32))
    np.testing.assert_allclose(big.weight.data.std(), tbig.weight.detach().numpy().std(), rtol=0.1)
    g1, g2 = rg.Generator().manual_seed(3), rg.Generator().manual_seed(3)
    a, b = (
        getattr(layers, name)(**kwargs, generator=g1),
        getattr(layers, name)(**kwargs, generator=g2),
    )
    np.testing.assert_array_equal(a.weight.data, b.weight.data)


def test_dtype_float64_module():
    m = layers.Conv2d(2, 3, 3, dtype=rg.float64)
    assert m.weight.dtype == rg.float64 and m.bias.dtype == rg.float64
    out = m(rg.randn(1, 2, 5, 5, dtype=rg.float64))
    assert out.dtype == rg.float64


MODULE_ERRORS = [
    ("Conv2d", dict(in_channels=3, out_channels=4, kernel_size=3, groups=0)),
    ("Conv2d", dict(in_channels=3, out_channels=4, kernel_size=3, groups=2)),
    ("Conv2d", dict(in_channels=4, out_channels=3, kernel_size=3, groups=2)),
    ("Conv2d", dict(in_channels=3, out_channels=4, kernel_size=3, padding="full")),
    ("Conv2d", dict(in_channels=3, out_channels=4, kernel_size=3, padding="same", stride=2)),
    ("Conv1d", dict(in_channels=3, out_channels=4, kernel_size=3, padding_mode="mirror")),
    ("ConvTranspose2d", dict(in_channels=3, out_channels=4, kernel_size=3, padding_mode="reflect")),
]


@pytest.mark.parametrize("name,kwargs", MODULE_ERRORS, ids=[str(k) for _, k in MODULE_ERRORS])
def test_module_argument_errors_match_torch(name, kwargs):
    with pytest.raises(ValueError) as theirs:
        getattr(torch.nn, name)(**kwargs)
    with pytest.raises(ValueError) as ours:
        getattr(layers, name)(**kwargs)
    if "padding_mode must be one of" in str(theirs.value):  # a set: its order is the hash's
        assert str(ours.value).startswith("padding_mode must be one of")
        assert str(ours.value).endswith("but got padding_mode='mirror'")
    else:
        assert str(ours.value) == str(theirs.value)


# -- functional errors: PyTorch's wording --------------------------------------------------------
def _r(lib):
    def make(*shape, dtype="float32"):
        if lib is torch:
            return torch.zeros(shape, dtype=getattr(torch, dtype))
        return rg.zeros(*shape, dtype=getattr(rg, dtype))

    return make


ERRORS = [
    ("conv2d", lambda F, r: F.conv2d(r(1, 2, 5, 5), r(4, 3, 3, 3))),
    ("groups channels", lambda F, r: F.conv2d(r(1, 4, 5, 5), r(4, 3, 3, 3), groups=2)),
    ("groups divisible", lambda F, r: F.conv2d(r(1, 6, 5, 5), r(4, 3, 3, 3), groups=3)),
    ("groups too many", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3), groups=5)),
    ("groups zero", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3), groups=0)),
    ("weight 3-d", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3))),
    ("weight 5-d", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3, 3))),
    ("weight 2-d", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3))),
    ("input 2-d", lambda F, r: F.conv2d(r(3, 5), r(4, 3, 3, 3))),
    ("input 4-d to conv1d", lambda F, r: F.conv1d(r(1, 3, 5, 5), r(4, 3, 3))),
    ("kernel too big", lambda F, r: F.conv2d(r(1, 3, 2, 2), r(4, 3, 3, 3))),
    ("kernel too big 1d", lambda F, r: F.conv1d(r(1, 3, 5), r(4, 3, 7), padding="valid")),
    ("bias size", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3), r(3))),
    ("bias 2-d", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3), r(4, 1))),
    ("stride 0", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3), stride=0)),
    ("padding -1", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3), padding=-1)),
    ("dilation 0", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3), dilation=(1, 0))),
    ("dilation -1", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3), dilation=-1)),
    ("stride length", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3), stride=(1, 1, 1))),
    ("padding length", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3), padding=(1, 2, 3))),
    ("same strided", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3), padding="same", stride=2)),
    ("padding string", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3), padding="foo")),
    ("dtypes", lambda F, r: F.conv2d(r(1, 3, 5, 5, dtype="float64"), r(4, 3, 3, 3))),
    ("dtypes 2", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3, dtype="float64"))),
    ("bias dtype", lambda F, r: F.conv2d(r(1, 3, 5, 5), r(4, 3, 3, 3), r(4, dtype="float64"))),
    ("unbatched channels", lambda F, r: F.conv2d(r(3, 5, 5), r(4, 2, 3, 3))),
    ("T channels", lambda F, r: F.conv_transpose2d(r(1, 3, 5, 5), r(4, 3, 3, 3))),
    ("T bias", lambda F, r: F.conv_transpose2d(r(1, 4, 5, 5), r(4, 3, 3, 3), r(4))),
    ("T groups", lambda F, r: F.conv_transpose2d(r(1, 4, 5, 5), r(4, 3, 3, 3), groups=3)),
    (
        "T output_padding",
        lambda F, r: F.conv_transpose2d(r(1, 4, 5, 5), r(4, 3, 3, 3), output_padding=1),
    ),
    (
        "T output_padding 2",
        lambda F, r: F.conv_transpose2d(
            r(1, 4, 5, 5), r(4, 3, 3, 3), stride=2, output_padding=(1, 2)
        ),
    ),
    (
        "T output_padding 1d",
        lambda F, r: F.conv_transpose1d(r(1, 4, 5), r(4, 3, 3), output_padding=1),
    ),
    (
        "T output_padding -1",
        lambda F, r: F.conv_transpose2d(r(1, 4, 5, 5), r(4, 3, 3, 3), output_padding=-1),
    ),
    ("T too small", lambda F, r: F.conv_transpose2d(r(1, 4, 1, 1), r(4, 3, 3, 3), padding=2)),
    ("T too small 1d", lambda F, r: F.conv_transpose1d(r(1, 4, 1), r(4, 3, 3), padding=2)),
    ("T input 2-d", lambda F, r: F.conv_transpose2d(r(4, 5), r(4, 3, 3, 3))),
    ("T dilation 0", lambda F, r: F.conv_transpose2d(r(1, 4, 5, 5), r(4, 3, 3, 3), dilation=0)),
    (
        "T padding str",
        lambda F, r: F.conv_transpose2d(r(1, 4, 5, 5), r(4, 3, 3, 3), padding="same"),
    ),
    ("unfold big kernel", lambda F, r: F.unfold(r(1, 3, 5, 5), 6)),
    ("unfold kernel 0", lambda F, r: F.unfold(r(1, 3, 5, 5), 0)),
    ("unfold stride 0", lambda F, r: F.unfold(r(1, 3, 5, 5), 2, stride=0)),
    ("unfold padding", lambda F, r: F.unfold(r(1, 3, 5, 5), 2, padding=-1)),
    ("unfold dilation", lambda F, r: F.unfold(r(1, 3, 5, 5), 2, dilation=0)),
    ("unfold kernel len", lambda F, r: F.unfold(r(1, 3, 5, 5), (2, 2, 2))),
    ("unfold 5-d", lambda F, r: F.unfold(r(1, 3, 5, 5, 5), 2)),
    ("unfold no channels", lambda F, r: F.unfold(r(1, 0, 5, 5), 2)),
    ("fold blocks", lambda F, r: F.fold(r(1, 12, 15), (5, 5), 2)),
    ("fold divisible", lambda F, r: F.fold(r(1, 13, 16), (5, 5), 2)),
    ("fold 4-d", lambda F, r: F.fold(r(1, 12, 16, 1), (5, 5), 2)),
    ("fold output_size len", lambda F, r: F.fold(r(1, 12, 16), (5, 5, 5), 2)),
    ("fold stride 0", lambda F, r: F.fold(r(1, 12, 16), (5, 5), 2, stride=0)),
    ("fold too small", lambda F, r: F.fold(r(1, 12, 16), (1, 1), 2)),
    ("fold empty L", lambda F, r: F.fold(r(1, 12, 0), (1, 1), 2)),
]


@pytest.mark.parametrize("name,call", ERRORS, ids=[n for n, _ in ERRORS])
def test_errors_match_torch(name, call):
    with pytest.raises(Exception) as theirs:
        call(TF, _r(torch))
    with pytest.raises(type(theirs.value)) as ours:
        call(conv, _r(rg))
    assert str(ours.value) == str(theirs.value)


# -- random geometries (Hypothesis) --------------------------------------------------------------
@st.composite
def _geometry(draw, transposed: bool):
    nd = draw(st.integers(1, 2))
    groups, cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    k = [draw(st.integers(1, 4)) for _ in range(nd)]
    s = [draw(st.integers(1, 3)) for _ in range(nd)]
    d = [draw(st.integers(1, 3)) for _ in range(nd)]
    p = [draw(st.integers(0, 3)) for _ in range(nd)]
    kw = dict(stride=tuple(s), padding=tuple(p), dilation=tuple(d), groups=groups)
    if transposed:
        kw["output_padding"] = tuple(draw(st.integers(0, max(a, b) - 1)) for a, b in zip(s, d))
        sizes = [draw(st.integers(1, 5)) for _ in range(nd)]
        wshape = (groups * cg, og, *k)
    else:
        if all(a == 1 for a in s) and draw(st.booleans()):
            kw["padding"] = "same"
            sizes = [draw(st.integers(1, 6)) for _ in range(nd)]
        else:
            ext = [dd * (kk - 1) + 1 for dd, kk in zip(d, k)]
            lows = [max(1, e - 2 * pp) for e, pp in zip(ext, p)]
            sizes = [draw(st.integers(lo, lo + 5)) for lo in lows]
        wshape = (groups * og, cg, *k)
    xshape = (draw(st.integers(0, 2)), groups * cg, *sizes)
    bias = draw(st.booleans())
    return nd, xshape, wshape, bias, kw


def _against_torch(name, nd, xshape, wshape, bias, kw, seed):
    """float64: output and every gradient agree with PyTorch to rounding."""
    rng = np.random.default_rng(seed)
    transposed = "transpose" in name
    nb = wshape[1] * kw["groups"] if transposed else wshape[0]
    arrays = [rng.standard_normal(xshape), rng.standard_normal(wshape)]
    if bias:
        arrays.append(rng.standard_normal(nb))
    ours = [rg.from_numpy(a.copy()).requires_grad_() for a in arrays]
    theirs = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]
    if transposed:
        size = [
            (n - 1) * s - 2 * p + d * (k - 1) + op + 1
            for n, s, p, d, k, op in zip(
                xshape[2:],
                kw["stride"],
                kw["padding"],
                kw["dilation"],
                wshape[2:],
                kw["output_padding"],
            )
        ]
        if min(size) < 1:
            return
    fn = f"{name}{nd}d"
    out = getattr(conv, fn)(*ours, **kw)
    tout = getattr(TF, fn)(*theirs, **kw)
    assert out.shape == tuple(tout.shape)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(out.shape)
    grads = rg.autograd.grad(out, ours, rg.from_numpy(g))
    tgrads = torch.autograd.grad(tout, theirs, torch.from_numpy(g))
    for a, b in zip(grads, tgrads):
        np.testing.assert_allclose(a.data, b.numpy(), rtol=1e-10, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(_geometry(transposed=False), st.integers(0, 2**16))
def test_random_conv_geometries_match_torch(geometry, seed):
    _against_torch("conv", *geometry, seed)


@settings(max_examples=60, deadline=None)
@given(_geometry(transposed=True), st.integers(0, 2**16))
def test_random_conv_transpose_geometries_match_torch(geometry, seed):
    _against_torch("conv_transpose", *geometry, seed)


# -- gradients: second order, fallbacks, meta ------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [dict(stride=2, padding=1), dict(groups=2, dilation=2, padding="same")],
)
def test_gradient_penalty_matches_torch(kwargs):
    """Double backward: d/dw of |dL/dx|^2 (a gradient penalty) agrees with PyTorch."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((6, 4 // kwargs.get("groups", 1), 3, 3))
    b = rng.standard_normal(6)
    rx, rw, rb = (rg.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
    tx, tw, tb = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
    out = rg.tanh(conv.conv2d(rx, rw, rb, **kwargs))
    tout = torch.tanh(TF.conv2d(tx, tw, tb, **kwargs))
    (gx,) = rg.autograd.grad(out.sum(), [rx], create_graph=True)
    (tgx,) = torch.autograd.grad(tout.sum(), [tx], create_graph=True)
    np.testing.assert_allclose(gx.data, tgx.detach().numpy(), rtol=1e-10, atol=1e-10)
    grads = rg.autograd.grad((gx * gx).sum(), [rx, rw, rb])
    tgrads = torch.autograd.grad((tgx * tgx).sum(), [tx, tw, tb])
    for g, tg in zip(grads, tgrads):
        np.testing.assert_allclose(g.data, tg.numpy(), rtol=1e-9, atol=1e-9)


def test_third_order_through_conv_transpose():
    """Each rule calls the sibling primitives: a third derivative is still exact."""
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 2, 3, 3)), rng.standard_normal((2, 2, 2, 2))
    rx, rw = (rg.from_numpy(a.copy()).requires_grad_() for a in (x, w))
    tx, tw = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w))

    def third(F, lib, x, w):
        y = F.conv_transpose2d(x, w, stride=2) ** 3
        (g1,) = lib.autograd.grad(y.sum(), [w], create_graph=True)
        (g2,) = lib.autograd.grad((g1 * g1).sum(), [x], create_graph=True)
        return lib.autograd.grad((g2**2).sum(), [w])[0]

    np.testing.assert_allclose(
        third(conv, rg, rx, rw).data, third(TF, torch, tx, tw).numpy(), rtol=1e-9
    )


def test_large_weight_gradient_path(monkeypatch):
    """Past the size limit the weight gradient is one einsum instead of a batched product."""
    monkeypatch.setattr(conv, "_BATCHED_WEIGHT_GRAD_LIMIT", 0)
    for kwargs in (
        dict(in_channels=3, out_channels=4, kernel_size=3, padding=1),
        dict(in_channels=4, out_channels=6, kernel_size=2, groups=2, stride=2),
    ):
        _compare(
            layers.Conv2d(**kwargs), torch.nn.Conv2d(**kwargs), (2, kwargs["in_channels"], 6, 5)
        )
        _compare(
            layers.ConvTranspose2d(**kwargs),
            torch.nn.ConvTranspose2d(**kwargs),
            (2, kwargs["in_channels"], 4, 3),
        )


@pytest.mark.parametrize(
    "kernel, needs, which",
    [
        ("_conv_weight_array", (False, True), None),  # the weight's gradient alone
        ("_conv_transpose_array", (True, False), None),  # the input's alone
        ("_conv_grads_array", (True, True), 0),  # both, in one loop: the input's off
        ("_conv_grads_array", (True, True), 1),  # the weight's off
    ],
)
def test_gradcheck_catches_a_rule_off_by_a_tenth_of_a_percent(monkeypatch, kernel, needs, which):
    rng = np.random.default_rng(3)
    x = rg.from_numpy(rng.standard_normal((1, 2, 4, 4))).requires_grad_(needs[0])
    w = rg.from_numpy(rng.standard_normal((2, 2, 2, 2))).requires_grad_(needs[1])
    assert gradcheck(lambda x, w: conv.conv2d(x, w), (x, w), atol=1e-6, rtol=1e-4)
    exact = getattr(conv, kernel)
    if which is None:
        monkeypatch.setattr(conv, kernel, lambda *a, **k: exact(*a, **k) * 1.001)
    else:

        def off(*a, **k):
            grads = list(exact(*a, **k))
            grads[which] = grads[which] * 1.001
            return tuple(grads)

        monkeypatch.setattr(conv, kernel, off)
    with pytest.raises(GradcheckError):
        gradcheck(lambda x, w: conv.conv2d(x, w), (x, w), atol=1e-6, rtol=1e-4)


def test_no_graph_without_grad_and_float32_stays_float32():
    x, w = rg.randn(2, 3, 5, 5), rg.randn(4, 3, 3, 3)
    out = conv.conv2d(x, w)
    assert out.grad_fn is None and not out.requires_grad and out.dtype == rg.float32
    with rg.no_grad():
        out = conv.conv2d(x, w.requires_grad_())
    assert out.grad_fn is None
    out = conv.conv_transpose2d(rg.randn(1, 4, 3, 3), w.requires_grad_(), stride=2)
    assert out.requires_grad and out.dtype == rg.float32
    out.sum().backward()
    assert w.grad.dtype == rg.float32


def test_only_weight_requires_grad():
    """The first layer of a network: the input needs no gradient, the weight does."""
    m, tm = layers.Conv2d(1, 4, 3), torch.nn.Conv2d(1, 4, 3)
    _copy_weights(m, tm)
    x = np.random.default_rng(4).standard_normal((3, 1, 6, 6)).astype(np.float32)
    m(rg.from_numpy(x)).square().sum().backward()
    tm(torch.from_numpy(x)).square().sum().backward()
    np.testing.assert_allclose(m.weight.grad.data, tm.weight.grad.numpy(), **GRAD)
    np.testing.assert_allclose(m.bias.grad.data, tm.bias.grad.numpy(), **GRAD)


def test_small_cnn_matches_torch():
    """Conv -> ReLU -> Conv (stride 2) -> ConvTranspose -> mean: every parameter's gradient."""

    def build(nn, layers):
        return nn.Sequential(
            layers.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            layers.Conv2d(4, 6, 3, stride=2, groups=2),
            layers.ConvTranspose2d(6, 2, 2, stride=2),
        )

    m, tm = build(rg.nn, layers), build(torch.nn, torch.nn)
    _compare(m, tm, (4, 1, 9, 9))


# -- speed (printed, never asserted) ---------------------------------------------------------------
def test_speed_print_w4_sizes(capsys):
    """conv2d forward + backward, 64x1x28x28 by 16x1x5x5, next to PyTorch (run with -s)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    w = rng.standard_normal((16, 1, 5, 5)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    rw, rb = rg.from_numpy(w).requires_grad_(), rg.from_numpy(b).requires_grad_()
    tw, tb = torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_()
    rx, tx = rg.from_numpy(x).requires_grad_(), torch.from_numpy(x).requires_grad_()

    def step_rg():
        conv.conv2d(rx, rw, rb).sum().backward()

    def step_torch():
        TF.conv2d(tx, tw, tb).sum().backward()

    def best(fn, n=10):
        fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times) * 1e3

    with capsys.disabled():
        print(
            f"\nconv2d 64x1x28x28 * 16x1x5x5 forward+backward: retrograd {best(step_rg):.2f} ms, "
            f"torch {best(step_torch):.2f} ms ({torch.get_num_threads()} threads)"
        )
