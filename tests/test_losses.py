"""Loss functions and loss Modules beyond the op table: Modules against torch.nn's, PyTorch's
errors and warnings, stability at +-1e4, dtypes, second derivatives against PyTorch's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import retrograd as rg
from retrograd.nn import losses
from retrograd.nn.module import Module

RNG = np.random.default_rng(0)


def _pair(a: np.ndarray, requires_grad: bool = True):
    """The same array as a retrograd and a torch tensor (floats require grad)."""
    grad = requires_grad and a.dtype.kind == "f"
    return (
        rg.from_numpy(a.copy()).requires_grad_(grad),
        torch.from_numpy(a.copy()).requires_grad_(grad),
    )


def _close(got, expected, atol=1e-6, rtol=1e-5):
    g = got.data if isinstance(got, rg.Tensor) else np.asarray(got)
    e = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    assert g.shape == e.shape, f"shape {g.shape} != {e.shape}"
    np.testing.assert_allclose(g, e, atol=atol, rtol=rtol, equal_nan=True)


def _check_against_torch(out, tout, ins, tins, atol=1e-6, rtol=1e-5):
    """Outputs agree, and so do the gradients of a random projection of them."""
    _close(out, tout, atol, rtol)
    w = RNG.standard_normal(tout.shape)
    wt = w.astype(tout.detach().numpy().dtype)
    rd = [t for t in ins if t.requires_grad]
    td = [t for t in tins if t.requires_grad]
    grads = rg.autograd.grad((out * rg.from_numpy(wt)).sum(), rd)
    tgrads = torch.autograd.grad((tout * torch.from_numpy(wt)).sum(), td)
    for g, tg in zip(grads, tgrads):
        _close(g, tg, atol, rtol)


# -- Modules against torch.nn ----------------------------------------------------------------------
def _labels(n_classes, shape):
    return RNG.integers(0, n_classes, size=shape).astype(np.int64)


def _module_cases():
    w5 = RNG.uniform(0.5, 2.0, 5)
    logits = RNG.standard_normal((6, 5))
    labels = _labels(5, (6,))
    labels[2] = -100
    probs = RNG.uniform(0.05, 0.95, (6, 5))
    soft = RNG.uniform(0.0, 1.0, (6, 5))
    x, y = RNG.standard_normal((6, 5)), RNG.standard_normal((6, 5))
    signs = RNG.choice([-1.0, 1.0], size=(6, 5))
    logp = np.log(RNG.dirichlet(np.ones(5), 6))
    cases = []
    for red in ("mean", "sum", "none"):
        cases += [
            ("MSELoss", dict(reduction=red), (x, y)),
            ("L1Loss", dict(reduction=red), (x, y)),
            ("SmoothL1Loss", dict(reduction=red, beta=0.5), (x, y)),
            ("HuberLoss", dict(reduction=red, delta=0.7), (x, y)),
            ("CrossEntropyLoss", dict(reduction=red), (logits, labels)),
            (
                "CrossEntropyLoss",
                dict(weight=w5, reduction=red, label_smoothing=0.1),
                (logits, labels),
            ),
            ("CrossEntropyLoss", dict(ignore_index=3, reduction=red), (logits, labels % 5)),
            ("CrossEntropyLoss", dict(reduction=red, label_smoothing=0.2), (logits, soft)),
            ("NLLLoss", dict(weight=w5, reduction=red), (logp, labels)),
            ("BCELoss", dict(weight=w5, reduction=red), (probs, soft)),
            (
                "BCEWithLogitsLoss",
                dict(weight=w5, pos_weight=w5[::-1].copy(), reduction=red),
                (x, soft),
            ),
            ("KLDivLoss", dict(reduction=red), (logp, np.exp(logp[::-1].copy()))),
            ("SoftMarginLoss", dict(reduction=red), (x, signs)),
            ("MarginRankingLoss", dict(margin=0.3, reduction=red), (x, y, signs)),
        ]
    cases += [
        ("KLDivLoss", dict(reduction="batchmean", log_target=True), (logp, logp[::-1].copy())),
        ("CosineSimilarity", dict(dim=0), (x, y)),
        ("CosineSimilarity", dict(), (x, y)),
    ]
    return [pytest.param(*c, id=f"{c[0]}-{i}") for i, c in enumerate(cases)]


@pytest.mark.parametrize("name,kwargs,arrays", _module_cases())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_module_matches_torch(name, kwargs, arrays, dtype):
    def convert(a, lib):
        a = a.astype(dtype) if a.dtype.kind == "f" else a
        return rg.from_numpy(a.copy()) if lib == "rg" else torch.from_numpy(a.copy())

    kw = {k: convert(v, "rg") if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    tkw = {k: convert(v, "torch") if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
    # labels (+-1 and class indices) are not differentiated; the other inputs are
    label = (name in ("SoftMarginLoss", "MarginRankingLoss"), len(arrays) - 1)
    ins, tins = [], []
    for i, a in enumerate(arrays):
        r, t = _pair(a, requires_grad=not (label[0] and i == label[1]))
        ins.append(r)
        tins.append(t)
    module = getattr(losses, name)(**kw)
    tmodule = getattr(torch.nn, name)(**tkw)
    assert isinstance(module, Module)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "reduction: 'mean' divides", UserWarning)
        out, tout = module(*ins), tmodule(*tins)
    assert out.dtype == np.dtype(dtype), "the loss keeps the input's dtype"
    tol = dict(atol=1e-12, rtol=1e-10) if dtype == np.float64 else dict(atol=1e-6, rtol=1e-4)
    _check_against_torch(out, tout, ins, tins, **tol)


def test_weights_are_buffers_as_in_torch():
    w = rg.tensor([1.0, 2.0, 3.0])
    for cls in (losses.CrossEntropyLoss, losses.NLLLoss, losses.BCELoss):
        m = cls(weight=w)
        assert list(m.state_dict()) == list(
            getattr(torch.nn, cls.__name__)(weight=torch.ones(3)).state_dict()
        )
        assert m.state_dict()["weight"] is not w and np.array_equal(
            m.state_dict()["weight"].data, w.data
        )
        assert list(m.parameters()) == []
        assert list(cls().state_dict()) == []
    m = losses.BCEWithLogitsLoss(weight=w, pos_weight=w * 2)
    assert list(m.state_dict()) == ["weight", "pos_weight"]
    assert list(losses.BCEWithLogitsLoss(pos_weight=w).state_dict()) == ["pos_weight"]
    # buffers follow the module's dtype
    m = losses.CrossEntropyLoss(weight=w).double()
    assert m.weight.dtype == rg.float64


def test_module_attributes_match_torch():
    for name, kw in [
        ("CrossEntropyLoss", dict(ignore_index=3, label_smoothing=0.1, reduction="sum")),
        ("NLLLoss", dict(ignore_index=1)),
        ("SmoothL1Loss", dict(beta=0.3)),
        ("HuberLoss", dict(delta=2.0, reduction="none")),
        ("KLDivLoss", dict(log_target=True, reduction="batchmean")),
        ("MarginRankingLoss", dict(margin=0.5)),
        ("CosineSimilarity", dict(dim=2, eps=1e-6)),
    ]:
        m, tm = getattr(losses, name)(**kw), getattr(torch.nn, name)(**kw)
        for attr in (
            "reduction",
            "ignore_index",
            "label_smoothing",
            "beta",
            "delta",
            "log_target",
            "margin",
            "dim",
            "eps",
        ):
            assert getattr(m, attr, None) == getattr(tm, attr, None), (name, attr)


def test_legacy_size_average_and_reduce():
    x, tx = _pair(RNG.standard_normal((3, 4)))
    y, ty = _pair(RNG.standard_normal((3, 4)))
    for size_average, reduce in [(False, None), (None, False), (True, True), (False, True)]:
        with pytest.warns(UserWarning) as got:
            out = losses.mse_loss(x, y, size_average=size_average, reduce=reduce)
        with pytest.warns(UserWarning) as expected:
            tout = F.mse_loss(tx, ty, size_average=size_average, reduce=reduce)
        assert str(got[0].message) == str(expected[0].message)
        _close(out, tout)
        with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
            m = losses.L1Loss(size_average=size_average, reduce=reduce)
        with pytest.warns(UserWarning):
            tm = torch.nn.L1Loss(size_average=size_average, reduce=reduce)
        assert m.reduction == tm.reduction


# -- cross entropy and nll edge cases --------------------------------------------------------------
def test_cross_entropy_all_ignored_is_nan_with_zero_gradient():
    x, tx = _pair(RNG.standard_normal((3, 4)))
    t, tt = _pair(np.full(3, -100, dtype=np.int64))
    for eps in (0.0, 0.2):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = rg.cross_entropy(x, t, label_smoothing=eps)
            (g,) = rg.autograd.grad(out, [x])
        tout = F.cross_entropy(tx, tt, label_smoothing=eps)
        (tg,) = torch.autograd.grad(tout, [tx])
        _close(out, tout)
        _close(g, tg)
        assert np.isnan(out.item())


def test_nll_loss_all_ignored_and_empty_batch():
    x, tx = _pair(RNG.standard_normal((3, 4)))
    t, tt = _pair(np.full(3, -100, dtype=np.int64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _close(rg.nll_loss(x, t), F.nll_loss(tx, tt))
        e, te = _pair(np.zeros((0, 4)))
        et, tet = _pair(np.zeros(0, np.int64))
        for red in ("mean", "sum", "none"):
            _close(rg.nll_loss(e, et, reduction=red), F.nll_loss(te, tet, reduction=red))
            _close(rg.cross_entropy(e, et, reduction=red), F.cross_entropy(te, tet, reduction=red))


def test_cross_entropy_one_sample_as_a_batch_of_one():
    """Input (C,) with target (1,): one sample, as PyTorch's forward takes it (its backward fails
    on it); retrograd differentiates it as that sample."""
    a = RNG.standard_normal(5)
    x, tx = _pair(a)
    t, tt = _pair(np.array([3]))
    b, tb = _pair(a[None].copy())
    for red, eps in [("mean", 0.0), ("sum", 0.0), ("none", 0.0), ("mean", 0.1)]:
        out = rg.cross_entropy(x, t, reduction=red, label_smoothing=eps)
        if eps == 0:  # PyTorch's label smoothing fails on this shape
            _close(out, F.cross_entropy(tx, tt, reduction=red))
        batch = rg.cross_entropy(b, t, reduction=red, label_smoothing=eps).reshape(out.shape)
        (g,) = rg.autograd.grad(out.sum(), [x])
        (gb,) = rg.autograd.grad(batch.sum(), [b])
        _close(g, gb.data[0])
    with pytest.raises(ValueError, match="For 1D input, 1D target must have size 1, but got"):
        rg.cross_entropy(x, rg.tensor([1, 2]))


@pytest.mark.parametrize(
    "targets, ignore_index, bad",
    [([-1, 0], 3, -1), ([5, 0], -100, 5), ([-1, 0], -100, -1), ([3, 0], 3, None)],
)
def test_cross_entropy_targets_out_of_range_raise_as_in_torch(targets, ignore_index, bad):
    """The (N, C) mean path too: a negative target never wraps around, an ignored one is
    dropped, and the message is PyTorch's."""
    logits = RNG.standard_normal((2, 5))
    x, tx = _pair(logits)
    t, tt = _pair(np.array(targets))
    if bad is None:
        _close(
            rg.cross_entropy(x, t, ignore_index=ignore_index),
            F.cross_entropy(tx, tt, ignore_index=ignore_index),
        )
        return
    with pytest.raises(IndexError, match=f"^Target {bad} is out of bounds.$"):
        rg.cross_entropy(x, t, ignore_index=ignore_index)
    with pytest.raises(IndexError, match=f"^Target {bad} is out of bounds.$"):
        F.cross_entropy(tx, tt, ignore_index=ignore_index)


def test_uint8_targets_and_ignored_positions_with_infinite_logits():
    logits = RNG.standard_normal((3, 4))
    logits[1, 0] = -np.inf  # an ignored sample's placeholder class must not turn the loss to nan
    x, tx = _pair(logits)
    t, tt = _pair(np.array([2, 0, 1], dtype=np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = rg.cross_entropy(x, t, ignore_index=0)
    _close(out, F.cross_entropy(tx, tt.long(), ignore_index=0))
    x2, tx2 = _pair(np.log(RNG.dirichlet(np.ones(4), 3)))
    x2.data[1, 0] = tx2.data[1, 0] = -np.inf
    t64, tt64 = _pair(np.array([2, -100, 1]))
    _close(rg.nll_loss(x2, t64), F.nll_loss(tx2, tt64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_at_large_logits_without_warnings(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0], [0.0, 0.0, -1e4]], dtype=dtype)
    labels = np.array([1, 0, 2])
    soft = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.5], [0.25, 1.0, 0.0]], dtype=dtype)
    cases = [
        (rg.cross_entropy, F.cross_entropy, (logits, labels), dict(label_smoothing=0.1)),
        (rg.cross_entropy, F.cross_entropy, (logits, labels), dict(reduction="none")),
        (rg.cross_entropy, F.cross_entropy, (logits, soft / soft.sum(1, keepdims=True)), {}),
        (
            rg.binary_cross_entropy_with_logits,
            F.binary_cross_entropy_with_logits,
            (logits, soft),
            dict(reduction="none"),
        ),
        (
            rg.binary_cross_entropy_with_logits,
            F.binary_cross_entropy_with_logits,
            (logits, soft),
            dict(pos_weight=np.array([2.0, 0.5, 3.0], dtype=dtype)),
        ),
        (losses.soft_margin_loss, F.soft_margin_loss, (logits, np.sign(soft - 0.5)), {}),
    ]
    for fn, tfn, arrays, kw in cases:
        ins, tins = zip(
            *[_pair(a, requires_grad=fn is not losses.soft_margin_loss) for a in arrays]
        )
        ins[0].requires_grad_()
        tins[0].requires_grad_()
        rkw = {k: rg.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        tkw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        with warnings.catch_warnings(), np.errstate(all="raise"):
            warnings.simplefilter("error")
            out = fn(*ins, **rkw)
            w = RNG.standard_normal(out.shape).astype(dtype)
            grads = rg.autograd.grad((out * rg.from_numpy(w)).sum(), list(ins[:1]))
        tout = tfn(*tins, **tkw)
        (tg,) = torch.autograd.grad((tout * torch.from_numpy(w)).sum(), [tins[0]])
        assert np.isfinite(out.data).all() and np.isfinite(grads[0].data).all()
        assert out.dtype == np.dtype(dtype) and grads[0].dtype == np.dtype(dtype)
        _close(out, tout, atol=1e-6, rtol=1e-6)
        _close(grads[0], tg, atol=1e-6, rtol=1e-6)


def test_binary_cross_entropy_clamps_log_at_minus_100():
    x, tx = _pair(np.array([0.0, 1.0, 0.5, 1e-30, 1 - 1e-16]))
    t, tt = _pair(np.array([0.0, 1.0, 0.3, 0.3, 0.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = rg.binary_cross_entropy(x, t, reduction="none")
        grads = rg.autograd.grad(out.sum(), [x, t])
    tout = F.binary_cross_entropy(tx, tt, reduction="none")
    tgrads = torch.autograd.grad(tout.sum(), [tx, tt])
    _close(out, tout)
    for g, tg in zip(grads, tgrads):
        _close(g, tg)  # includes PyTorch's +-inf target gradients at 0 and 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtypes_are_kept(dtype):
    """float32 stays float32 (and float64 float64) through every loss, forward and backward."""
    x = rg.from_numpy(RNG.standard_normal((4, 3)).astype(dtype)).requires_grad_()
    y = rg.from_numpy(RNG.uniform(0.1, 0.9, (4, 3)).astype(dtype)).requires_grad_()
    labels = rg.from_numpy(_labels(3, (4,)))
    w = rg.tensor([0.5, 1.0, 2.0])  # float32 weights follow the input's dtype
    outs = [
        rg.cross_entropy(x, labels, weight=w, label_smoothing=0.1),
        rg.cross_entropy(x, y, weight=w),
        rg.nll_loss(x, labels, weight=w),
        rg.binary_cross_entropy(y, y.detach(), weight=w),
        rg.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=w),
        losses.mse_loss(x, y),
        losses.l1_loss(x, y),
        losses.smooth_l1_loss(x, y, beta=0.5),
        losses.huber_loss(x, y, delta=0.5),
        losses.kl_div(x, y, reduction="batchmean"),
        losses.cosine_similarity(x, y).sum(),
        losses.soft_margin_loss(x, rg.tensor([[1, -1, 1]] * 4)),
        losses.margin_ranking_loss(x, y, rg.tensor([[1, -1, 1]] * 4)),
    ]
    for out in outs:
        assert out.dtype == np.dtype(dtype)
        for g in rg.autograd.grad(out, [x, y], allow_unused=True):
            assert g is None or g.dtype == np.dtype(dtype)


# -- second derivatives against PyTorch's ----------------------------------------------------------
def _double_backward_cases():
    x = RNG.standard_normal((4, 3))
    p = RNG.uniform(0.1, 0.9, (4, 3))
    labels = np.array([0, 2, -100, 1])
    w = RNG.uniform(0.5, 2.0, 3)
    return [
        (
            "ce",
            lambda f, a, b, **k: f.cross_entropy(a, b, **k),
            (x, labels),
            dict(label_smoothing=0.2, weight=w),
        ),
        (
            "ce-prob",
            lambda f, a, b, **k: f.cross_entropy(a, b, **k),
            (x, p / p.sum(1, keepdims=True)),
            dict(label_smoothing=0.1),
        ),
        ("bce", lambda f, a, b, **k: f.binary_cross_entropy(a, b, **k), (p, p[::-1].copy()), {}),
        (
            "bce-logits",
            lambda f, a, b, **k: f.binary_cross_entropy_with_logits(a, b, **k),
            (x, p),
            dict(pos_weight=w),
        ),
    ]


@pytest.mark.parametrize("name,call,arrays,kw", _double_backward_cases())
def test_hessian_vector_products_match_torch(name, call, arrays, kw):
    ins, tins = zip(*[_pair(a) for a in arrays])
    rkw = {k: rg.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    tkw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    rd = [t for t in ins if t.requires_grad]
    td = [t for t in tins if t.requires_grad]
    out = call(rg, *ins, **rkw)
    tout = call(F, *tins, **tkw)
    grads = rg.autograd.grad(out, rd, create_graph=True)
    tgrads = torch.autograd.grad(tout, td, create_graph=True)
    v = [RNG.standard_normal(g.shape) for g in grads]
    s = sum((g * rg.from_numpy(vi)).sum() for g, vi in zip(grads, v))
    ts = sum((g * torch.from_numpy(vi)).sum() for g, vi in zip(tgrads, v))
    hv = rg.autograd.grad(s, rd, allow_unused=True)
    thv = torch.autograd.grad(ts, td, allow_unused=True)
    for h, th, x in zip(hv, thv, rd):
        h = np.zeros(x.shape) if h is None else h.data
        th = np.zeros(x.shape) if th is None else th.numpy()
        np.testing.assert_allclose(h, th, atol=1e-8, rtol=1e-6)


# -- errors and warnings, with PyTorch's wording ---------------------------------------------------
def _error_cases():
    x = RNG.standard_normal((3, 4))
    p = RNG.uniform(0.1, 0.9, (3, 1))
    return [
        ("cross_entropy", (x, np.array([0, 5, 1])), {}),
        ("cross_entropy", (x, np.array([0, -1, 1])), {}),
        ("cross_entropy", (x, np.array([0, 1])), {}),
        ("cross_entropy", (x, np.array(1)), {}),
        ("cross_entropy", (x[0], np.array(7)), {}),
        ("cross_entropy", (x, np.array([0, 1, 1])), dict(weight=np.ones(2))),
        ("cross_entropy", (x, np.array([0, 1, 1])), dict(label_smoothing=1.5)),
        ("cross_entropy", (x, RNG.uniform(size=(3, 4))), dict(ignore_index=1)),
        ("cross_entropy", (x, RNG.uniform(size=3)), {}),
        ("cross_entropy", (x, np.array([0, 1, 1])), dict(reduction="foo")),
        ("cross_entropy", (np.array(1.0), np.array(0)), {}),
        ("cross_entropy", (x, np.ones((3, 4), np.int64)), {}),
        ("cross_entropy", (x, np.array([True, False, True])), {}),
        ("cross_entropy", (RNG.standard_normal((2, 3, 4)), np.zeros((2, 3), np.int64)), {}),
        ("cross_entropy", (RNG.standard_normal((3, 4, 2, 2)), np.zeros((3, 2, 5), np.int64)), {}),
        ("cross_entropy", (RNG.standard_normal((3, 4, 2, 2)), np.zeros((3, 2), np.int64)), {}),
        ("cross_entropy", (np.zeros((3, 0)), np.zeros(3, np.int64)), {}),
        ("nll_loss", (x, np.array([0, 7, 1])), {}),
        ("nll_loss", (x[0], np.array([[1]])), {}),
        ("nll_loss", (x[0], np.array([1, 2])), {}),
        ("nll_loss", (np.array(1.0), np.array(0)), {}),
        ("nll_loss", (RNG.standard_normal((3, 4, 2)), np.zeros((3, 2, 1), np.int64)), {}),
        ("binary_cross_entropy", (p, p[:, 0].copy()), {}),
        ("binary_cross_entropy", (np.array([1.5]), np.array([0.5])), {}),
        ("binary_cross_entropy", (np.array([np.nan]), np.array([0.5])), {}),
        ("binary_cross_entropy_with_logits", (p, p[:, 0].copy()), {}),
        ("binary_cross_entropy_with_logits", (x, x), dict(pos_weight=np.ones(2))),
        ("binary_cross_entropy_with_logits", (x[0], x[0]), dict(weight=np.ones((2, 4)))),
        ("mse_loss", (x, x), dict(weight=np.ones(4))),
        ("smooth_l1_loss", (x, x), dict(beta=-1.0)),
        ("huber_loss", (x, x), dict(delta=0.0)),
        ("kl_div", (x, x), dict(reduction="batchmean_")),
        ("margin_ranking_loss", (x[0], x[0], x[:, :1]), {}),
        ("cosine_similarity", (x, x[:, :2]), {}),
        ("cosine_similarity", (x[0], x[0]), {}),
    ]


@pytest.mark.parametrize(
    "name,arrays,kw", [pytest.param(*c, id=f"{c[0]}-{i}") for i, c in enumerate(_error_cases())]
)
def test_errors_match_torch(name, arrays, kw):
    fn = getattr(losses, name)
    tfn = getattr(F, name)
    ins = [rg.from_numpy(a.copy()) for a in arrays]
    tins = [torch.from_numpy(a.copy()) for a in arrays]
    rkw = {k: rg.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    tkw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    with pytest.raises(Exception) as expected:
        tfn(*tins, **tkw)
    with pytest.raises(type(expected.value)) as got:
        fn(*ins, **rkw)
    assert str(got.value) == str(expected.value)


def test_weights_that_require_grad_are_refused_as_in_torch():
    x, tx = _pair(RNG.standard_normal((3, 4)))
    t, tt = _pair(np.array([0, 1, 2]))
    w, tw = _pair(np.ones(4))
    for name in ("cross_entropy", "nll_loss"):
        with pytest.raises(RuntimeError) as expected:
            getattr(F, name)(tx, tt, weight=tw)
        with pytest.raises(RuntimeError) as got:
            getattr(losses, name)(x, t, weight=w)
        assert str(got.value) == str(expected.value)
    p01, tp01 = _pair(RNG.uniform(0.1, 0.9, (3, 4)))
    for name, arg in [
        ("binary_cross_entropy", "weight"),
        ("binary_cross_entropy_with_logits", "weight"),
        ("binary_cross_entropy_with_logits", "pos_weight"),
    ]:
        with pytest.raises(RuntimeError) as expected:
            getattr(F, name)(tp01, tp01.detach(), **{arg: tw})
        with pytest.raises(RuntimeError) as got:
            getattr(losses, name)(p01, p01.detach(), **{arg: w})
        assert str(got.value) == str(expected.value)
    with pytest.raises(RuntimeError) as expected:
        F.soft_margin_loss(tx, tp01)
    with pytest.raises(RuntimeError) as got:
        losses.soft_margin_loss(x, p01)
    assert str(got.value) == str(expected.value)
    with rg.no_grad():
        losses.cross_entropy(x, t, weight=w)  # no graph: nothing to refuse
    # with probability targets the class weights are differentiated (as in PyTorch)
    p, tp = _pair(RNG.dirichlet(np.ones(4), 3))
    _check_against_torch(
        losses.cross_entropy(x, p, weight=w),
        F.cross_entropy(tx, tp, weight=tw),
        [x, p, w],
        [tx, tp, tw],
    )


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
def test_broadcasting_target_warns_as_torch(name):
    x, tx = _pair(RNG.standard_normal(3))
    y, ty = _pair(RNG.standard_normal((3, 1)))
    with pytest.warns(UserWarning) as got:
        out = getattr(losses, name)(x, y)
    with pytest.warns(UserWarning) as expected:
        tout = getattr(F, name)(tx, ty)
    assert [str(w.message) for w in got] == [str(w.message) for w in expected]
    assert got[0].filename == __file__  # points at the caller
    _check_against_torch(out, tout, [x, y], [tx, ty])


def test_kl_div_warnings_and_batchmean():
    x, tx = _pair(np.log(RNG.dirichlet(np.ones(4), 3)))
    y, ty = _pair(RNG.dirichlet(np.ones(4), 3))
    with pytest.warns(UserWarning) as got:
        out = losses.kl_div(x, y)
    with pytest.warns(UserWarning) as expected:
        tout = F.kl_div(tx, ty)
    assert str(got[0].message) == str(expected[0].message)
    _close(out, tout)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check_against_torch(
            losses.kl_div(x, y, reduction="batchmean"),
            F.kl_div(tx, ty, reduction="batchmean"),
            [x, y],
            [tx, ty],
        )
        s, ts = _pair(np.array(-0.5))
        u, tu = _pair(np.array(0.3))
        _close(losses.kl_div(s, u, reduction="batchmean"), F.kl_div(ts, tu, reduction="batchmean"))
        # a zero target contributes nothing (0 log 0 = 0) and no warning
        z, tz = _pair(np.array([0.0, 0.5, 0.5]))
        i, ti = _pair(np.log(np.array([0.2, 0.3, 0.5])))
        _close(losses.kl_div(i, z, reduction="sum"), F.kl_div(ti, tz, reduction="sum"))
        (g,) = rg.autograd.grad(losses.kl_div(i, z, reduction="sum"), [i])
        (tg,) = torch.autograd.grad(F.kl_div(ti, tz, reduction="sum"), [ti])
        _close(g, tg)


def test_elementwise_mean_is_deprecated_as_in_torch():
    x, tx = _pair(RNG.standard_normal((3, 4)))
    t, tt = _pair(np.array([0, 1, 2]))
    with pytest.warns(UserWarning, match="reduction='elementwise_mean' is deprecated"):
        out = losses.cross_entropy(x, t, reduction="elementwise_mean")
    with pytest.warns(UserWarning):
        tout = F.cross_entropy(tx, tt, reduction="elementwise_mean")
    _close(out, tout)


def test_cosine_similarity_of_a_zero_vector_matches_torch():
    a = np.zeros((2, 3))
    a[1] = [1e-9, -2e-9, 3e-9]  # below eps: the floor applies, the gradient passes through
    x, tx = _pair(a)
    y, ty = _pair(RNG.standard_normal((2, 3)))
    out, tout = losses.cosine_similarity(x, y), F.cosine_similarity(tx, ty)
    _close(out, tout)
    grads = rg.autograd.grad(out.sum(), [x, y])
    tgrads = torch.autograd.grad(tout.sum(), [tx, ty])
    for g, tg in zip(grads, tgrads):
        _close(g, tg, rtol=1e-6)


def test_losses_import_nothing_above_ops():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(losses))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    retro = {m for m in imported if m.startswith("retrograd")}
    allowed = ("retrograd.ops", "retrograd.tensor", "retrograd.nn.module", "retrograd")
    assert all(m.split(".")[:2] == ["retrograd", "ops"] or m in allowed for m in retro), retro
    assert "retrograd.nn.functional" not in retro


def test_training_a_classifier_with_cross_entropy_matches_torch():
    """A few steps of plain gradient descent on a linear classifier, side by side."""
    xs = RNG.standard_normal((16, 4))
    ys = _labels(3, (16,))
    w0 = RNG.standard_normal((4, 3)) * 0.1
    w, tw = _pair(w0)
    x, tx = _pair(xs, requires_grad=False)
    y, ty = _pair(ys)
    loss_fn = losses.CrossEntropyLoss(label_smoothing=0.05)
    tloss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    for _ in range(20):
        (g,) = rg.autograd.grad(loss_fn(x @ w, y), [w])
        (tg,) = torch.autograd.grad(tloss_fn(tx @ tw, ty), [tw])
        w = (w - 0.5 * g).detach().requires_grad_()
        tw = (tw - 0.5 * tg).detach().requires_grad_()
    _close(w, tw, atol=1e-12, rtol=1e-10)
    _close(loss_fn(x @ w, y), tloss_fn(tx @ tw, ty), atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1.0, 30.0, 50.0, 400.0, 1e4])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_on_both_sides_of_the_unshifted_range(dtype, scale, reduction):
    # exp() runs without a per-row shift while every |logit| is below half of log(max / C)
    # (float32, 7 classes: 43.4; float64: 353.9): each scale here lands on one side of it in
    # one dtype or the other, through the short path (mean) and the general one (sum)
    logits = (RNG.standard_normal((9, 7)) * scale).astype(dtype)
    labels = RNG.integers(0, 7, 9)
    x, tx = _pair(logits)
    t, tt = _pair(labels)
    out, tout = (
        rg.cross_entropy(x, t, reduction=reduction),
        F.cross_entropy(tx, tt, reduction=reduction),
    )
    out.backward()
    tout.backward()
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    _close(out, tout, atol=0, rtol=rtol)
    _close(x.grad, tx.grad, atol=1e-7 if dtype == np.float32 else 1e-15, rtol=rtol)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_cross_entropy_short_path_with_nonfinite_logits_matches_torch(bad):
    logits = RNG.standard_normal((4, 5)).astype(np.float32)
    logits[1, 2] = bad
    logits[3, :] = bad  # a whole row of it
    labels = np.array([0, 2, 4, 1])
    x, tx = _pair(logits)
    t, tt = _pair(labels)
    out, tout = rg.cross_entropy(x, t), F.cross_entropy(tx, tt)
    out.backward()
    tout.backward()
    _close(out, tout)
    _close(x.grad, tx.grad)
