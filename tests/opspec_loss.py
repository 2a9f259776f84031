"""Op-table rows: the fused loss primitives (retrograd/ops/loss.py) and the composite functional
losses (retrograd/nn/losses.py).

Integer arrays in a sample are class indices or +-1 labels (constant tensors); class weights,
`weight` and `pos_weight` travel as keyword arrays (constants, as in PyTorch) and are turned into
tensors of the input's dtype by `_weights`. Probability targets and their class weights are
positional float arrays, so they are differentiated too.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

import retrograd as rg
from retrograd.nn import losses
from tests.opspec_base import OpSpec, Sample, values

REDUCTIONS = ("mean", "sum", "none")


# -- wrappers --------------------------------------------------------------------------------------
def _weights(fn, names=("weight", "pos_weight")):
    """fn with keyword arrays (weights) turned into constant tensors of the input's dtype."""

    def call(*args, **kw):
        dtype = args[0].data.dtype
        for n in names:
            if isinstance(kw.get(n), np.ndarray):
                kw[n] = rg.from_numpy(kw[n].astype(dtype))
        return fn(*args, **kw)

    return call


def _torch_kw(kw: dict) -> dict:
    """Keyword arrays as float32 torch tensors (the torch comparison runs in float32)."""
    return {
        k: torch.from_numpy(v.astype(np.float32)) if isinstance(v, np.ndarray) else v
        for k, v in kw.items()
    }


def _no_mean_warning(fn):
    """kl_div's reduction='mean' warns (as in PyTorch); the table checks values, not that."""

    def call(*args, **kw):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "reduction: 'mean' divides", UserWarning)
            return fn(*args, **kw)

    return call


# -- NumPy references ------------------------------------------------------------------------------
def _reduce(loss, reduction, denom=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (loss.size if denom is None else denom)


def _log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _along(w, axis, ndim):
    return w.reshape((w.shape[0],) + (1,) * (ndim - axis - 1))


def _nll_ref(logp, t, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    axis = 1 if logp.ndim > 1 else 0
    n_classes = logp.shape[axis]
    w = np.ones(n_classes) if weight is None else weight
    keep = t != ignore_index
    ts = np.where(keep, t, 0)
    picked = np.take_along_axis(logp, np.expand_dims(ts, axis), axis).squeeze(axis)
    w_t = w[ts] * keep
    loss = -w_t * picked
    if label_smoothing:
        smooth = -(logp * _along(w, axis, logp.ndim)).sum(axis) * keep
        loss = (1 - label_smoothing) * loss + label_smoothing / n_classes * smooth
    return _reduce(loss, reduction, w_t.sum())


def _ce_ref(x, t, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    axis = 1 if x.ndim > 1 else 0
    logp = _log_softmax(x, axis)
    if t.dtype.kind != "f":
        return _nll_ref(logp, t, weight, ignore_index, reduction, label_smoothing)
    n_classes = x.shape[axis]
    q = t * (1 - label_smoothing) + label_smoothing / n_classes
    if weight is not None:
        q = q * _along(weight, axis, x.ndim)
    return _reduce(-(q * logp).sum(axis), reduction, x.size / n_classes)


def _bce_ref(x, t, weight=None, reduction="mean"):
    loss = -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log1p(-x), -100))
    return _reduce(loss if weight is None else loss * weight, reduction)


def _bce_logits_ref(x, t, weight=None, reduction="mean", pos_weight=None):
    softplus_neg = np.logaddexp(0, -x)
    lw = 1 if pos_weight is None else 1 + (pos_weight - 1) * t
    loss = (1 - t) * x + lw * softplus_neg
    return _reduce(loss if weight is None else loss * weight, reduction)


def _weighted_ref(loss, weight, reduction, mean_by_weight=True):
    if weight is None:
        return _reduce(loss, reduction)
    loss = loss * weight
    if reduction == "mean" and mean_by_weight:
        return loss.sum() / weight.sum()
    return _reduce(loss, reduction)


def _mse_ref(x, y, reduction="mean", weight=None):
    return _weighted_ref((x - y) ** 2, weight, reduction)


def _l1_ref(x, y, reduction="mean", weight=None):
    return _weighted_ref(np.abs(x - y), weight, reduction)


def _smooth_l1_ref(x, y, reduction="mean", beta=1.0):
    d = np.abs(x - y)
    if beta == 0:
        return _reduce(d, reduction)
    return _reduce(np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction)


def _huber_ref(x, y, reduction="mean", delta=1.0, weight=None):
    d = np.abs(x - y)
    loss = np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))
    return _weighted_ref(loss, weight, reduction, mean_by_weight=False)


def _kl_ref(x, t, reduction="mean", log_target=False):
    if log_target:
        loss = np.exp(t) * (t - x)
    else:
        loss = np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0) - t * x
    if reduction == "batchmean":
        return loss.sum() / x.shape[0]
    return _reduce(loss, reduction)


def _cos_ref(x1, x2, dim=1, eps=1e-8):
    x1, x2 = np.broadcast_arrays(x1, x2)
    n1 = np.maximum(np.sqrt((x1 * x1).sum(dim, keepdims=True)), eps)
    n2 = np.maximum(np.sqrt((x2 * x2).sum(dim, keepdims=True)), eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def _soft_margin_ref(x, y, reduction="mean"):
    return _reduce(np.logaddexp(0, -y * x), reduction)


def _margin_ranking_ref(x1, x2, y, margin=0.0, reduction="mean"):
    return _reduce(np.maximum(0, -y * (x1 - x2) + margin), reduction)


# -- samples ---------------------------------------------------------------------------------------
# (input shape, target shape): (N, C), one sample (C,), and K-dim inputs (N, C, d1, ...)
CLASS_SHAPES = [((4, 5), (4,)), ((5,), ()), ((2, 3, 4), (2, 4)), ((2, 3, 2, 2), (2, 2, 2))]


def _labels(rng, n_classes, shape):
    return np.asarray(rng.integers(0, n_classes, size=shape), dtype=np.int64)


def _class_samples(domain=(-3.0, 3.0), smoothing=True):
    """Class-index targets: every shape and reduction, then weights, ignore_index (default and
    custom), label smoothing and their combinations, an empty batch, a non-contiguous input."""

    def make(rng):
        out = []
        for xs, ts in CLASS_SHAPES:
            n_classes = xs[1] if len(xs) > 1 else xs[0]
            for red in REDUCTIONS:
                x, t = values(rng, xs, domain), _labels(rng, n_classes, ts)
                out.append(Sample((x, t), dict(reduction=red), f"{xs} {red}"))

        def sample(desc, reduction="mean", ignore=(), shape=(4, 5), **kw):
            x = values(rng, shape, domain)
            t = _labels(rng, shape[1], (shape[0],) + shape[2:])
            for i in ignore:
                t.reshape(-1)[i] = kw.get("ignore_index", -100)
            out.append(Sample((x, t), dict(kw, reduction=reduction), desc))

        w = rng.uniform(0.5, 2.0, 5)
        for red in REDUCTIONS:
            sample(f"weight {red}", red, weight=w)
            sample(f"ignore_index=-100 {red}", red, ignore=(1, 3))
        sample("ignore_index=2", ignore=(0,), ignore_index=2)
        sample("weight + ignore", ignore=(2,), weight=w)
        sample("K-dim weight + ignore", "sum", ignore=(1, 5), shape=(2, 3, 2, 2), weight=w[:3])
        if smoothing:
            for red in REDUCTIONS:
                sample(f"label_smoothing {red}", red, label_smoothing=0.2)
                sample(
                    f"smoothing + weight + ignore {red}", red, (0,), weight=w, label_smoothing=0.3
                )
            sample("K-dim smoothing + ignore", "mean", (2,), (2, 3, 4), label_smoothing=0.1)
            sample("smoothing=1", label_smoothing=1.0)
        sample("all ignored, sum", "sum", ignore=(0, 1, 2, 3))
        out.append(
            Sample(
                (values(rng, (0, 5), domain), np.zeros(0, np.int64)),
                dict(reduction="sum"),
                "empty batch sum",
            )
        )
        out.append(
            Sample(
                (values(rng, (0, 5), domain), np.zeros(0, np.int64)),
                dict(reduction="none"),
                "empty batch none",
            )
        )
        x = values(rng, (4, 3), domain)
        out.append(Sample((x, _labels(rng, 3, (4,))), {}, "noncontig", noncontig=(0,)))
        return out

    return make


def _probs(rng, shape, axis):
    """Class probabilities along axis (each position's distribution drawn from a Dirichlet)."""
    others = shape[:axis] + shape[axis + 1 :]
    p = rng.dirichlet(np.ones(shape[axis]), size=others)  # others + (C,)
    return np.ascontiguousarray(np.moveaxis(p, -1, axis))


def _prob_samples(with_weight: bool):
    """Probability targets (differentiable), every shape and reduction, label smoothing; with
    class weights as a third, differentiable, input when with_weight."""

    def make(rng):
        out = []
        for shape in ((4, 5), (5,), (2, 3, 4)):
            axis = 1 if len(shape) > 1 else 0
            for red in REDUCTIONS:
                for eps in (0.0, 0.25):
                    args = (values(rng, shape, (-3.0, 3.0)), _probs(rng, shape, axis))
                    if with_weight:
                        args += (rng.uniform(0.5, 2.0, shape[axis]),)
                    desc = f"{shape} {red} smoothing={eps}"
                    out.append(Sample(args, dict(reduction=red, label_smoothing=eps), desc))
        x = values(rng, (4, 3), (-3.0, 3.0))
        args = (x, _probs(rng, (4, 3), 1))
        if with_weight:
            args += (rng.uniform(0.5, 2.0, 3),)
        out.append(Sample(args, {}, "noncontig", noncontig=(0, 1)))
        if not with_weight:
            # soft targets that are not normalised (PyTorch does not require it)
            t = rng.uniform(0.0, 1.0, (4, 5))
            out.append(Sample((values(rng, (4, 5)), t), dict(reduction="sum"), "unnormalised"))
            out.append(
                Sample((values(rng, (0, 5)), np.zeros((0, 5))), dict(reduction="sum"), "empty")
            )
        return out

    return make


def _pointwise_samples(
    domain=(0.05, 0.95), domain_t=(0.0, 1.0), weight=False, pos_weight=False, repeated=True
):
    """f(input, target): shapes 0-d to 3-d, empty, every reduction, weights that broadcast."""

    def make(rng):
        out = []
        for shape in ((), (0,), (5,), (3, 4), (2, 3, 4)):
            for red in REDUCTIONS:
                args = (values(rng, shape, domain), values(rng, shape, domain_t))
                out.append(Sample(args, dict(reduction=red), f"{shape} {red}"))
        for red in REDUCTIONS:
            args = (values(rng, (3, 4), domain), values(rng, (3, 4), domain_t))
            if weight:
                kw = dict(reduction=red, weight=rng.uniform(0.5, 2.0, (4,)))
                out.append(Sample(args, kw, f"weight (4,) {red}"))
                kw = dict(reduction=red, weight=rng.uniform(0.5, 2.0, (3, 4)))
                out.append(Sample(args, kw, f"weight (3, 4) {red}"))
            if pos_weight:
                kw = dict(reduction=red, pos_weight=rng.uniform(0.5, 3.0, (4,)))
                out.append(Sample(args, kw, f"pos_weight {red}"))
                kw = dict(kw, weight=rng.uniform(0.5, 2.0, (3, 1)))
                out.append(Sample(args, kw, f"weight + pos_weight {red}"))
        hard = np.asarray(rng.integers(0, 2, (3, 4)), dtype=np.float64)
        out.append(Sample((values(rng, (3, 4), domain), hard), {}, "hard 0/1 targets"))
        if repeated:
            x = values(rng, (3, 4), (0.05, 0.95))
            out.append(Sample((x, x), {}, "repeated input f(x, x)"))
        out.append(
            Sample(
                (values(rng, (4, 3), domain), values(rng, (4, 3), domain_t)),
                {},
                "noncontig",
                noncontig=(0, 1),
            )
        )
        return out

    return make


def _regression_samples(weight=False, **kwargs):
    """f(input, target) with float targets; weights of the input's shape when weight."""

    def make(rng):
        out = []
        for shape in ((), (0,), (5,), (3, 4), (2, 3, 4)):
            for red in REDUCTIONS:
                args = (values(rng, shape), values(rng, shape))
                out.append(Sample(args, dict(kwargs, reduction=red), f"{shape} {red}"))
        if weight:
            for red in REDUCTIONS:
                args = (values(rng, (3, 4)), values(rng, (3, 4)))
                kw = dict(kwargs, reduction=red, weight=rng.uniform(0.5, 2.0, (3, 4)))
                out.append(Sample(args, kw, f"weight {red}"))
        x = values(rng, (3, 4))
        out.append(Sample((x, x), dict(kwargs), "repeated input f(x, x)"))
        out.append(
            Sample(
                (values(rng, (4, 3)), values(rng, (4, 3))),
                dict(kwargs),
                "noncontig",
                noncontig=(0, 1),
            )
        )
        return out

    return make


def _kl_samples(rng):
    out = []
    for log_target in (False, True):
        for red in ("batchmean", "sum", "none", "mean"):
            for shape in ((4, 5), (2, 3, 4)):
                x = values(rng, shape, (-3.0, 0.0))
                t = values(rng, shape, (-3.0, 0.0) if log_target else (0.05, 1.0))
                kw = dict(reduction=red, log_target=log_target)
                out.append(Sample((x, t), kw, f"{shape} {red} log_target={log_target}"))
    out.append(
        Sample(
            (values(rng, (4, 3)), values(rng, (4, 3), (0.05, 1.0))),
            dict(reduction="batchmean"),
            "noncontig",
            noncontig=(0, 1),
        )
    )
    return out


def _cosine_samples(rng):
    out = []
    for s1, s2, kw in (
        ((3, 4), (3, 4), {}),
        ((3, 4), (3, 4), dict(dim=0)),
        ((3, 4), (3, 4), dict(dim=-1)),
        ((2, 3, 4), (2, 3, 4), {}),
        ((2, 1, 4), (3, 4), dict(dim=-1)),
        ((5,), (5,), dict(dim=0)),
        ((3, 4), (3, 4), dict(eps=0.5)),
    ):
        out.append(Sample((values(rng, s1), values(rng, s2)), kw, f"{s1}x{s2} {kw}"))
    x = values(rng, (3, 4))
    out.append(Sample((x, x), {}, "repeated input f(x, x)"))
    out.append(
        Sample((values(rng, (4, 3)), values(rng, (4, 3))), {}, "noncontig", noncontig=(0, 1))
    )
    return out


def _signs(rng, shape):
    return np.asarray(rng.choice([-1, 1], size=shape), dtype=np.int64)


def _soft_margin_samples(rng):
    out = []
    for shape in ((), (5,), (3, 4)):
        for red in REDUCTIONS:
            args = (values(rng, shape, (-4.0, 4.0)), _signs(rng, shape))
            out.append(Sample(args, dict(reduction=red), f"{shape} {red}"))
    out.append(Sample((values(rng, (4, 3)), _signs(rng, (4, 3))), {}, "noncontig", noncontig=(0,)))
    return out


def _margin_ranking_samples(rng):
    out = []
    for shape in ((5,), (3, 4)):
        for red in REDUCTIONS:
            for margin in (0.0, 0.5):
                x1, x2, y = values(rng, shape), values(rng, shape), _signs(rng, shape)
                # keep away from the hinge: |-y (x1 - x2) + margin| >= 0.05
                hinge = -y * (x1 - x2) + margin
                x1 = np.where(np.abs(hinge) < 0.05, x1 + 0.2 * -y, x1)
                out.append(
                    Sample(
                        (x1, x2, y),
                        dict(reduction=red, margin=margin),
                        f"{shape} {red} margin={margin}",
                    )
                )
    out.append(
        Sample(
            (values(rng, (4, 3)), values(rng, (4, 3)), _signs(rng, (4, 3))),
            {},
            "noncontig",
            noncontig=(0, 1),
        )
    )
    return out


# -- rows ------------------------------------------------------------------------------------------
ROWS = [
    # fused primitives (retrograd.ops.loss; also retrograd.nn.functional)
    OpSpec(
        "cross_entropy",
        _weights(rg.cross_entropy),
        _ce_ref,
        F.cross_entropy,
        _class_samples(),
        torch_kwargs=_torch_kw,
    ),
    OpSpec(
        "cross_entropy[probabilities]",
        rg.cross_entropy,
        _ce_ref,
        F.cross_entropy,
        _prob_samples(with_weight=False),
    ),
    OpSpec(
        "cross_entropy[probabilities, weight]",
        lambda x, t, w, **kw: rg.cross_entropy(x, t, weight=w, **kw),
        lambda x, t, w, **kw: _ce_ref(x, t, weight=w, **kw),
        lambda x, t, w, **kw: F.cross_entropy(x, t, weight=w, **kw),
        _prob_samples(with_weight=True),
    ),
    OpSpec(
        "nll_loss",
        _weights(rg.nll_loss),
        _nll_ref,
        F.nll_loss,
        _class_samples(smoothing=False),
        torch_kwargs=_torch_kw,
    ),
    OpSpec(
        "binary_cross_entropy",
        _weights(rg.binary_cross_entropy),
        _bce_ref,
        F.binary_cross_entropy,
        _pointwise_samples(weight=True),
        torch_kwargs=_torch_kw,
    ),
    OpSpec(
        "binary_cross_entropy_with_logits",
        _weights(rg.binary_cross_entropy_with_logits),
        _bce_logits_ref,
        F.binary_cross_entropy_with_logits,
        _pointwise_samples((-4.0, 4.0), weight=True, pos_weight=True),
        torch_kwargs=_torch_kw,
    ),
    # composite losses (retrograd.nn.losses)
    OpSpec(
        "mse_loss",
        _weights(losses.mse_loss),
        _mse_ref,
        F.mse_loss,
        _regression_samples(weight=True),
        torch_kwargs=_torch_kw,
    ),
    OpSpec(
        "l1_loss",
        _weights(losses.l1_loss),
        _l1_ref,
        F.l1_loss,
        _regression_samples(weight=True),
        torch_kwargs=_torch_kw,
    ),
    OpSpec(
        "smooth_l1_loss",
        losses.smooth_l1_loss,
        _smooth_l1_ref,
        F.smooth_l1_loss,
        _regression_samples(),
    ),
    OpSpec(
        "smooth_l1_loss[beta=0.5]",
        losses.smooth_l1_loss,
        _smooth_l1_ref,
        F.smooth_l1_loss,
        _regression_samples(beta=0.5),
    ),
    OpSpec(
        "smooth_l1_loss[beta=0]",
        losses.smooth_l1_loss,
        _smooth_l1_ref,
        F.smooth_l1_loss,
        _regression_samples(beta=0.0),
    ),
    OpSpec(
        "huber_loss",
        _weights(losses.huber_loss),
        _huber_ref,
        F.huber_loss,
        _regression_samples(weight=True),
        torch_kwargs=_torch_kw,
    ),
    OpSpec(
        "huber_loss[delta=0.5]",
        losses.huber_loss,
        _huber_ref,
        F.huber_loss,
        _regression_samples(delta=0.5),
    ),
    OpSpec(
        "kl_div", _no_mean_warning(losses.kl_div), _kl_ref, _no_mean_warning(F.kl_div), _kl_samples
    ),
    OpSpec(
        "cosine_similarity",
        losses.cosine_similarity,
        _cos_ref,
        F.cosine_similarity,
        _cosine_samples,
    ),
    OpSpec(
        "soft_margin_loss",
        losses.soft_margin_loss,
        _soft_margin_ref,
        F.soft_margin_loss,
        _soft_margin_samples,
    ),
    OpSpec(
        "margin_ranking_loss",
        losses.margin_ranking_loss,
        _margin_ranking_ref,
        lambda a, b, y, **kw: F.margin_ranking_loss(a, b, y.to(a.dtype), **kw),
        _margin_ranking_samples,
    ),
]
