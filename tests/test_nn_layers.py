"""Layers vs PyTorch: same weights and inputs, outputs and gradients (input and every parameter)
agree within float32 tolerances; BatchNorm running statistics over several steps; Dropout's
masks; Embedding's padding_idx; PyTorch's reprs and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

import retrograd as rg
import retrograd.nn.functional as F
from retrograd import nn

FWD = dict(atol=1e-6, rtol=1e-3)
GRAD = dict(atol=1e-4, rtol=1e-3)


def _np(t) -> np.ndarray:
    return t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t.data)


def copy_weights(module: nn.Module, tmodule: tnn.Module) -> None:
    """PyTorch's initialised parameters and buffers, converted to NumPy, into the retrograd one."""
    module.load_state_dict({k: v.detach().numpy().copy() for k, v in tmodule.state_dict().items()})


def compare(module, tmodule, *inputs, seed: int = 0, grad_inputs=True):
    """Forward both on the same inputs, backward a random projection of the outputs, and
    compare outputs, input gradients and every parameter's gradient by name."""
    rins, tins = [], []
    for a in inputs:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            rins.append(rg.tensor(a, requires_grad=grad_inputs))
            tins.append(torch.tensor(a, requires_grad=grad_inputs))
        else:
            rins.append(rg.tensor(a))
            tins.append(torch.tensor(a))
    out, tout = module(*rins), tmodule(*tins)
    np.testing.assert_allclose(_np(out), _np(tout), **FWD)
    assert out.dtype == rg.float32 and tuple(out.shape) == tuple(tout.shape)
    if not tout.requires_grad:
        return out, tout
    w = np.random.default_rng(seed).standard_normal(tout.shape).astype(np.float32)
    (out * rg.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    for r, t in zip(rins, tins):
        if t.requires_grad:
            np.testing.assert_allclose(_np(r.grad), _np(t.grad), **GRAD)
    tparams = dict(tmodule.named_parameters())
    names = [n for n, _ in module.named_parameters()]
    assert names == list(tparams)
    for name, p in module.named_parameters():
        tp = tparams[name]
        if tp.grad is None:
            assert p.grad is None or not np.any(p.grad.data), name
        else:
            np.testing.assert_allclose(_np(p.grad), _np(tp.grad), **GRAD, err_msg=name)
    return out, tout


def _x(shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# -- Linear, Bilinear, Identity, Flatten -------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3), (3,), (2, 2, 2, 3), (0, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(shape, bias):
    t = tnn.Linear(3, 4, bias=bias)
    m = nn.Linear(3, 4, bias=bias)
    copy_weights(m, t)
    compare(m, t, _x(shape))


def test_linear_default_init_is_pytorchs():
    rg.manual_seed(0)
    m = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w, b = m.weight.data, m.bias.data
    assert w.dtype == np.float32 and b.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(-bound, bound): std bound / sqrt(3)
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound
    assert abs(w.mean()) < 0.01 * bound
    assert m.weight.requires_grad and m.bias.requires_grad and m.weight.is_leaf


def test_linear_init_is_seeded_and_takes_a_generator():
    rg.manual_seed(3)
    a = nn.Linear(4, 5)
    rg.manual_seed(3)
    b = nn.Linear(4, 5)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    c = nn.Linear(4, 5, generator=rg.Generator().manual_seed(1))
    d = nn.Linear(4, 5, generator=rg.Generator().manual_seed(1))
    np.testing.assert_array_equal(c.weight.data, d.weight.data)
    assert not np.array_equal(a.weight.data, c.weight.data)


def test_linear_dtype_and_errors():
    m = nn.Linear(3, 2, dtype=rg.float64)
    assert m.weight.dtype == rg.float64 and m.bias.dtype == rg.float64
    out = m(rg.randn(4, 3, dtype=rg.float64))
    assert out.dtype == rg.float64
    with pytest.raises(
        RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(4x5 and 3x2\)"
    ):
        m(rg.randn(4, 5, dtype=rg.float64))
    with pytest.raises(
        RuntimeError, match="mat1 and mat2 must have the same dtype, but got Float and Double"
    ):
        m(rg.randn(4, 3))
    with torch.no_grad():
        with pytest.raises(
            RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(4x5 and 3x2\)"
        ):
            tnn.Linear(3, 2)(torch.randn(4, 5))


def test_linear_second_order_matches_torch():
    t = tnn.Linear(3, 2).double()
    m = nn.Linear(3, 2, dtype=rg.float64)
    copy_weights(m, t)
    x = _x((4, 3)).astype(np.float64)
    rx, tx = rg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (g,) = rg.autograd.grad(rg.tanh(m(rx)).sum(), [rx], create_graph=True)
    (tg,) = torch.autograd.grad(torch.tanh(t(tx)).sum(), [tx], create_graph=True)
    (g * g).sum().backward()
    (tg * tg).sum().backward()
    np.testing.assert_allclose(rx.grad.data, tx.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(m.weight.grad.data, t.weight.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("lead", [(5,), (2, 3)])
def test_bilinear_matches_torch(lead):
    t = tnn.Bilinear(3, 2, 4)
    m = nn.Bilinear(3, 2, 4)
    copy_weights(m, t)
    compare(m, t, _x((*lead, 3), 1), _x((*lead, 2), 2))
    m.reset_parameters()
    assert np.abs(m.weight.data).max() <= 1 / math.sqrt(3)


def test_identity_flatten_unflatten():
    compare(nn.Identity(54, unused="x"), tnn.Identity(54, unused="x"), _x((2, 3)))
    for args in [(), (0,), (1, 2), (0, -1), (-2, -1)]:
        compare(nn.Flatten(*args), tnn.Flatten(*args), _x((2, 3, 4, 2)))
    compare(nn.Unflatten(1, (3, 4)), tnn.Unflatten(1, (3, 4)), _x((2, 12)))
    compare(nn.Unflatten(-1, (2, -1)), tnn.Unflatten(-1, (2, -1)), _x((2, 3, 8)))
    with pytest.raises(TypeError, match="unflattened_size must be tuple of ints"):
        nn.Unflatten(1, 12)


# -- normalization ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,normalized",
    [((5, 4), 4), ((2, 3, 4), 4), ((2, 3, 4), (3, 4)), ((4,), [4]), ((2, 1, 6), (6,))],
)
@pytest.mark.parametrize(
    "kwargs", [{}, {"elementwise_affine": False}, {"bias": False}, {"eps": 0.1}]
)
def test_layer_norm_matches_torch(shape, normalized, kwargs):
    t = tnn.LayerNorm(normalized, **kwargs)
    with torch.no_grad():  # non-trivial affine parameters
        for p in t.parameters():
            p.uniform_(0.5, 1.5)
    m = nn.LayerNorm(normalized, **kwargs)
    copy_weights(m, t)
    compare(m, t, _x(shape, scale=3.0) + 1.0)
    assert repr(m) == repr(t)


def test_layer_norm_errors_and_defaults():
    m = nn.LayerNorm(4)
    np.testing.assert_array_equal(m.weight.data, np.ones(4, np.float32))
    np.testing.assert_array_equal(m.bias.data, np.zeros(4, np.float32))
    msg = (
        r"Given normalized_shape=\[4\], expected input with shape \[\*, 4\], "
        r"but got input of size\[2, 3\]"
    )
    with pytest.raises(RuntimeError, match=msg):
        m(rg.randn(2, 3))
    with pytest.raises(RuntimeError, match=msg):
        tnn.LayerNorm(4)(torch.randn(2, 3))


@pytest.mark.parametrize("shape,normalized", [((5, 4), 4), ((2, 3, 4), (3, 4))])
@pytest.mark.parametrize("kwargs", [{}, {"eps": 1e-3}, {"elementwise_affine": False}])
def test_rms_norm_matches_torch(shape, normalized, kwargs):
    t = tnn.RMSNorm(normalized, **kwargs)
    with torch.no_grad():
        for p in t.parameters():
            p.uniform_(0.5, 1.5)
    m = nn.RMSNorm(normalized, **kwargs)
    copy_weights(m, t)
    compare(m, t, _x(shape, scale=2.0))
    assert repr(m) == repr(t)


def _bn_pair(cls, tcls, num, **kwargs):
    t = tcls(num, **kwargs)
    with torch.no_grad():
        for p in t.parameters():
            p.uniform_(0.5, 1.5)
    m = cls(num, **kwargs)
    copy_weights(m, t)
    return m, t


def _check_buffers(m, t):
    tb = dict(t.named_buffers())
    assert [n for n, _ in m.named_buffers()] == list(tb)
    for name, b in m.named_buffers():
        assert b.dtype == np.dtype(str(tb[name].dtype).removeprefix("torch.")), name
        np.testing.assert_allclose(b.data, tb[name].numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"momentum": None}, {"momentum": 0.3}, {"affine": False}, {"bias": False}, {"eps": 1e-3}],
)
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5)])
def test_batch_norm1d_train_then_eval_matches_torch(kwargs, shape):
    m, t = _bn_pair(nn.BatchNorm1d, tnn.BatchNorm1d, 3, **kwargs)
    for step in range(4):  # running statistics over several steps
        x = _x(shape, seed=step, scale=2.0) + step
        compare(m, t, x, seed=step)
        _check_buffers(m, t)
        m.zero_grad()
        t.zero_grad()
    assert int(m.num_batches_tracked.item()) == 4
    m.eval()
    t.eval()
    for step in range(2):  # eval: the running statistics, nothing updated
        compare(m, t, _x(shape, seed=10 + step))
        _check_buffers(m, t)
        m.zero_grad()
        t.zero_grad()
    assert repr(m) == repr(t)


def test_batch_norm_without_running_stats_matches_torch():
    m, t = _bn_pair(nn.BatchNorm1d, tnn.BatchNorm1d, 3, track_running_stats=False)
    assert list(m.state_dict()) == list(t.state_dict())
    for mode in (True, False):
        m.train(mode)
        t.train(mode)
        compare(m, t, _x((6, 3), seed=int(mode)))
        m.zero_grad()
        t.zero_grad()


def test_batch_norm2d_matches_torch():
    m, t = _bn_pair(nn.BatchNorm2d, tnn.BatchNorm2d, 3)
    for step in range(3):
        compare(m, t, _x((2, 3, 4, 4), seed=step) * 2 + 1, seed=step)
        _check_buffers(m, t)
    m.eval()
    t.eval()
    compare(m, t, _x((2, 3, 4, 4), seed=9))


def test_batch_norm_running_var_is_unbiased():
    m = nn.BatchNorm1d(2, momentum=1.0)
    x = _x((5, 2))
    m(rg.tensor(x))
    np.testing.assert_allclose(m.running_mean.data, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(m.running_var.data, x.var(0, ddof=1), rtol=1e-5)
    assert m.running_mean.grad_fn is None and not m.running_mean.requires_grad


def test_batch_norm_errors():
    m = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        m(rg.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        m(rg.randn(1, 3))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        tnn.BatchNorm1d(3)(torch.randn(1, 3))
    m.eval()
    assert m(rg.randn(1, 3)).shape == (1, 3)  # eval mode takes a single sample
    with pytest.raises(RuntimeError, match="running_mean should contain 3 elements not 4"):
        F.batch_norm(rg.randn(2, 3), rg.zeros(4), rg.ones(4))


# -- Embedding -------------------------------------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [None, 0, 2, -1])
def test_embedding_matches_torch(padding_idx):
    t = tnn.Embedding(5, 3, padding_idx=padding_idx)
    m = nn.Embedding(5, 3, padding_idx=padding_idx)
    copy_weights(m, t)
    idx = np.array([[0, 2, 4, 2], [1, 2, 0, 3]], dtype=np.int64)
    compare(m, t, idx)
    assert repr(m) == repr(t)
    if padding_idx is not None:
        assert not np.any(m.weight.grad.data[padding_idx])


def test_embedding_init_zeroes_the_padding_row():
    rg.manual_seed(0)
    m = nn.Embedding(1000, 50, padding_idx=3)
    w = m.weight.data
    assert not np.any(w[3])
    rest = np.delete(w, 3, axis=0)
    assert abs(rest.mean()) < 0.01 and abs(rest.std() - 1) < 0.01


def test_embedding_options_match_torch():
    idx = np.array([1, 3, 1, 1, 0], dtype=np.int64)
    t = tnn.Embedding(4, 3, scale_grad_by_freq=True)
    m = nn.Embedding(4, 3, scale_grad_by_freq=True)
    copy_weights(m, t)
    compare(m, t, idx)
    t = tnn.Embedding(4, 3, max_norm=1.0)
    m = nn.Embedding(4, 3, max_norm=1.0)
    copy_weights(m, t)
    compare(m, t, idx)
    np.testing.assert_allclose(m.weight.data, t.weight.detach().numpy(), **FWD)  # renormed rows
    assert repr(m) == repr(t)


def test_embedding_from_pretrained_and_errors():
    w = rg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    m = nn.Embedding.from_pretrained(w)
    assert not m.weight.requires_grad
    np.testing.assert_array_equal(m(rg.tensor([2, 0])).data, [[5.0, 6.0], [1.0, 2.0]])
    m = nn.Embedding.from_pretrained(w, freeze=False, padding_idx=1)
    assert m.weight.requires_grad and m.padding_idx == 1
    np.testing.assert_array_equal(m.weight.data[1], [3.0, 4.0])  # not zeroed, as in PyTorch
    with pytest.raises(IndexError, match="index out of range in self"):
        m(rg.tensor([3]))
    with pytest.raises(IndexError, match="index out of range in self"):
        tnn.Embedding(3, 2)(torch.tensor([3]))
    with pytest.raises(RuntimeError, match="Expected tensor for argument #1 'indices'"):
        m(rg.tensor([1.0]))
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        nn.Embedding(3, 2, padding_idx=3)


def test_embedding_second_order():
    w = rg.randn(4, 3, dtype=rg.float64, requires_grad=True)
    idx = rg.tensor([0, 1, 1, 3])
    assert rg.autograd.gradgradcheck(lambda w: F.embedding(idx, w) ** 2, (w,))


def test_embedding_padding_second_order_matches_torch():
    w0 = np.random.default_rng(0).random((5, 3))
    idx = np.array([0, 1, 1, 4, 2])
    w, tw = rg.tensor(w0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    out = (F.embedding(rg.tensor(idx), w, padding_idx=1) ** 3).sum()
    tout = (TF.embedding(torch.tensor(idx), tw, padding_idx=1) ** 3).sum()
    (g,) = rg.autograd.grad(out, [w], create_graph=True)
    (tg,) = torch.autograd.grad(tout, [tw], create_graph=True)
    np.testing.assert_allclose(g.data, tg.detach().numpy(), rtol=1e-12)
    (g * g).sum().backward()
    (tg * tg).sum().backward()
    np.testing.assert_allclose(w.grad.data, tw.grad.numpy(), rtol=1e-12)


# -- Dropout ---------------------------------------------------------------------------------------
def test_dropout_mask_statistics():
    x = rg.ones(200, 500)
    for p in (0.1, 0.5, 0.8):
        out = nn.Dropout(p, generator=rg.Generator().manual_seed(0))(x).data
        kept = out != 0
        assert abs(kept.mean() - (1 - p)) < 0.01
        np.testing.assert_allclose(out[kept], 1 / (1 - p), rtol=1e-6)
        assert abs(out.mean() - 1) < 0.02  # expectation preserved


def test_dropout_is_deterministic_with_a_seeded_generator():
    x = rg.randn(50, 20)
    a = F.dropout(x, 0.3, generator=rg.Generator().manual_seed(7))
    b = F.dropout(x, 0.3, generator=rg.Generator().manual_seed(7))
    np.testing.assert_array_equal(a.data, b.data)
    rg.manual_seed(5)
    c = nn.Dropout(0.3)(x)
    rg.manual_seed(5)
    d = nn.Dropout(0.3)(x)
    np.testing.assert_array_equal(c.data, d.data)
    assert not np.array_equal(a.data, c.data)


def test_dropout_gradient_uses_the_mask():
    x = rg.randn(30, 40, requires_grad=True)
    out = nn.Dropout(0.4, generator=rg.Generator().manual_seed(1))(x)
    out.sum().backward()
    mask = out.data != 0
    np.testing.assert_allclose(x.grad.data, mask / 0.6, rtol=1e-6)


def test_dropout_eval_p0_p1_inplace_and_errors():
    x = rg.randn(4, 5)
    m = nn.Dropout(0.5).eval()
    assert m(x) is x
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert not np.any(F.dropout(x, 1.0).data)
    y = x.clone()
    out = F.dropout(y, 0.5, inplace=True, generator=rg.Generator().manual_seed(0))
    assert out is y
    assert np.all((y.data == 0) | np.isclose(y.data, 2 * x.data))
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            nn.Dropout(p)
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            F.dropout(x, p)
    assert repr(nn.Dropout(0.2, inplace=True)) == repr(tnn.Dropout(0.2, inplace=True))


# -- activations as modules ------------------------------------------------------------------------
ACTIVATIONS = [
    ("ReLU", (), {}),
    ("ReLU", (), {"inplace": True}),
    ("ReLU6", (), {}),
    ("LeakyReLU", (), {}),
    ("LeakyReLU", (0.2,), {"inplace": True}),
    ("ELU", (), {}),
    ("ELU", (0.5,), {}),
    ("SELU", (), {}),
    ("CELU", (), {"alpha": 2.0}),
    ("GELU", (), {}),
    ("GELU", (), {"approximate": "tanh"}),
    ("SiLU", (), {}),
    ("Mish", (), {}),
    ("Sigmoid", (), {}),
    ("Tanh", (), {}),
    ("Softplus", (), {}),
    ("Softplus", (), {"beta": 2.0, "threshold": 5.0}),
    ("Softmax", (), {"dim": 1}),
    ("Softmax", (), {"dim": -1}),
    ("LogSoftmax", (), {"dim": 1}),
    ("Softmin", (), {"dim": 0}),
    ("Hardtanh", (), {}),
    ("Hardtanh", (-0.5, 2.0), {}),
    ("Hardsigmoid", (), {}),
    ("Hardswish", (), {}),
    ("Softsign", (), {}),
    ("Tanhshrink", (), {}),
    ("LogSigmoid", (), {}),
]


@pytest.mark.parametrize(
    "name,args,kwargs", ACTIVATIONS, ids=[f"{n}{a}{k}" for n, a, k in ACTIVATIONS]
)
def test_activation_modules_match_torch(name, args, kwargs):
    m, t = getattr(nn, name)(*args, **kwargs), getattr(tnn, name)(*args, **kwargs)
    assert repr(m) == repr(t)
    x = _x((4, 5, 3), seed=3, scale=3.0)
    if kwargs.get("inplace"):  # in place on a non-leaf, then the gradient through it
        rx, tx = rg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        out, tout = m(rx * 1.0), t(tx * 1.0)
        np.testing.assert_allclose(_np(out), _np(tout), **FWD)
        out.sum().backward()
        tout.sum().backward()
        np.testing.assert_allclose(_np(rx.grad), _np(tx.grad), **GRAD)
    else:
        compare(m, t, x)


def test_softmax_without_dim_warns_like_torch():
    x = _x((2, 3))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        out = nn.Softmax()(rg.tensor(x))
    with pytest.warns(UserWarning):
        tout = tnn.Softmax()(torch.tensor(x))
    np.testing.assert_allclose(out.data, tout.numpy(), **FWD)
    assert repr(nn.Softmax()) == repr(tnn.Softmax())


def test_hardtanh_bounds_error():
    with pytest.raises(ValueError, match="must be greater than min_val"):
        nn.Hardtanh(1.0, -1.0)


# -- functional extras -----------------------------------------------------------------------------
@pytest.mark.parametrize("p,dim", [(2.0, 1), (1.0, 0), (3.0, -1), (math.inf, 1)])
def test_normalize_matches_torch(p, dim):
    x = _x((4, 5), seed=4)
    x[1] = 0  # a zero row: eps keeps it finite
    rx, tx = rg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, tout = F.normalize(rx, p, dim), TF.normalize(tx, p, dim)
    np.testing.assert_allclose(_np(out), _np(tout), **FWD)
    w = _x((4, 5), seed=5)
    (out * rg.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(_np(rx.grad), _np(tx.grad), **GRAD)


def test_functional_reexports_the_ops():
    for name in ["relu", "gelu", "softmax", "log_softmax", "pad", "one_hot", "tanh", "sigmoid"]:
        assert getattr(F, name) is getattr(rg, name)
    for name in F.__all__:
        assert callable(getattr(F, name)), name


def test_mlp_trains_like_torch():
    """Ten SGD steps on a small MLP with every piece above: the same trajectory as PyTorch."""
    tnet = tnn.Sequential(
        tnn.Linear(4, 16),
        tnn.LayerNorm(16),
        tnn.GELU(),
        tnn.Linear(16, 8),
        tnn.BatchNorm1d(8),
        tnn.Tanh(),
        tnn.Linear(8, 3),
    )
    net = nn.Sequential(
        nn.Linear(4, 16),
        nn.LayerNorm(16),
        nn.GELU(),
        nn.Linear(16, 8),
        nn.BatchNorm1d(8),
        nn.Tanh(),
        nn.Linear(8, 3),
    )
    copy_weights(net, tnet)
    x = _x((32, 4), seed=1)
    y = _x((32, 3), seed=2)
    for _ in range(10):
        out, tout = net(rg.tensor(x)), tnet(torch.tensor(x))
        loss = ((out - rg.tensor(y)) ** 2).mean()
        tloss = ((tout - torch.tensor(y)) ** 2).mean()
        net.zero_grad()
        tnet.zero_grad()
        loss.backward()
        tloss.backward()
        with rg.no_grad():
            for p in net.parameters():
                p.data -= 0.1 * p.grad.data
        with torch.no_grad():
            for p in tnet.parameters():
                p -= 0.1 * p.grad
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-4)
    for (name, p), tp in zip(net.state_dict().items(), tnet.state_dict().values()):
        np.testing.assert_allclose(p.data, tp.numpy(), atol=1e-5, rtol=1e-4, err_msg=name)
