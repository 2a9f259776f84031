"""Op-table rows: fused layer primitives (retrograd/ops/normalization.py): layer_norm, rms_norm,
batch_norm, linear, bilinear, and the embedding lookup behind nn.functional.embedding."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import retrograd as rg
from retrograd.ops.normalization import embedding
from tests.opspec_base import OpSpec, Sample, values


# -- NumPy references ------------------------------------------------------------------------------
def _layer_norm_ref(x, shape, w=None, b=None, eps=1e-5):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    xc = x - x.mean(axis=axes, keepdims=True)
    out = xc / np.sqrt((xc * xc).mean(axis=axes, keepdims=True) + eps)
    if w is not None:
        out = out * w
    if b is not None:
        out = out + b
    return out


def _rms_norm_ref(x, shape, w=None, eps=None):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    eps = np.finfo(x.dtype).eps if eps is None else eps
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    out = x / np.sqrt((x * x).mean(axis=axes, keepdims=True) + eps)
    return out * w if w is not None else out


def _batch_norm_ref(x, rm, rv, w=None, b=None, training=False, momentum=0.1, eps=1e-5):
    axes = (0, *range(2, x.ndim))
    pshape = (x.shape[1],) + (1,) * (x.ndim - 2)
    if training:
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    else:
        mean, var = rm.reshape(pshape), rv.reshape(pshape)
    out = (x - mean) / np.sqrt(var + eps)
    if w is not None:
        out = out * w.reshape(pshape)
    if b is not None:
        out = out + b.reshape(pshape)
    return out


def _linear_ref(x, w, b=None):
    out = x @ w.T
    return out + b if b is not None else out


def _bilinear_ref(x1, x2, w, b=None):
    out = np.einsum("...i,oij,...j->...o", x1, w, x2)
    return out + b if b is not None else out


def _embedding_ref(idx, w, padding_idx=None):
    return w[idx]


# -- samples ---------------------------------------------------------------------------------------
def _layer_norm_samples(rng):
    out = []
    for shape, ns in [((4,), (4,)), ((3, 4), (4,)), ((2, 3, 4), (3, 4)), ((0, 3), (3,))]:
        pshape = ns
        x = values(rng, shape)
        w, b = values(rng, pshape, (0.5, 1.5)), values(rng, pshape)
        out.append(Sample((x, ns, w, b), {}, f"{shape} over {ns}"))
    out.append(Sample((values(rng, (3, 4)), (4,)), {}, "no affine"))
    out.append(Sample((values(rng, (3, 4)), (4,), values(rng, (4,)), None), {}, "weight only"))
    out.append(Sample((values(rng, (3, 4)), (4,), None, values(rng, (4,))), {}, "bias only"))
    out.append(Sample((values(rng, (3, 4)), (4,), None, None, 0.1), {}, "eps=0.1"))
    out.append(
        Sample(
            (values(rng, (4, 3)), (3,), values(rng, (3,)), values(rng, (3,))),
            {},
            "noncontig",
            noncontig=(0,),
        )
    )
    return out


def _rms_norm_samples(rng):
    out = []
    for shape, ns in [((4,), (4,)), ((3, 4), (4,)), ((2, 3, 4), (3, 4)), ((0, 3), (3,))]:
        pshape = ns
        out.append(Sample((values(rng, shape), ns, values(rng, pshape)), {}, f"{shape} over {ns}"))
    out.append(Sample((values(rng, (3, 4)), (4,)), {}, "no weight"))
    out.append(Sample((values(rng, (3, 4)), (4,), values(rng, (4,)), 1e-3), {}, "eps=1e-3"))
    out.append(
        Sample((values(rng, (4, 3)), (3,), values(rng, (3,))), {}, "noncontig", noncontig=(0,))
    )
    return out


# running statistics are constants of the op (never differentiated): the rows close over them
_RM = np.array([0.3, -0.2, 0.1])
_RV = np.array([0.8, 1.3, 0.5])


def _rg_batch_norm(x, w, b, training, eps=1e-5):
    if training:
        return rg.batch_norm(x, None, None, w, b, training=True, eps=eps)
    rm, rv = rg.tensor(_RM, dtype=x.dtype), rg.tensor(_RV, dtype=x.dtype)
    return rg.batch_norm(x, rm, rv, w, b, training=False, eps=eps)


def _torch_batch_norm(x, w, b, training, eps=1e-5):
    if training:
        return F.batch_norm(x, None, None, w, b, training=True, eps=eps)
    rm, rv = torch.tensor(_RM, dtype=x.dtype), torch.tensor(_RV, dtype=x.dtype)
    return F.batch_norm(x, rm, rv, w, b, training=False, eps=eps)


def _ref_batch_norm(x, w, b, training, eps=1e-5):
    return _batch_norm_ref(x, _RM, _RV, w, b, training=training, eps=eps)


def _batch_norm_samples(rng):
    out = []
    for training in (True, False):
        for shape in [(4, 3), (2, 3, 2)]:
            x = values(rng, shape)
            w, b = values(rng, (3,), (0.5, 1.5)), values(rng, (3,))
            out.append(Sample((x, w, b, training), {}, f"{shape} training={training}"))
        out.append(Sample((values(rng, (4, 3)), None, None, training), {}, f"no affine {training}"))
        out.append(
            Sample(
                (values(rng, (4, 3)), values(rng, (3,)), values(rng, (3,)), training),
                {},
                f"noncontig training={training}",
                noncontig=(0,),
            )
        )
    out.append(Sample((values(rng, (4, 3)), None, None, True, 0.1), {}, "eps=0.1"))
    return out


def _linear_samples(rng):
    out = []
    for xs in [(3,), (4, 3), (2, 3, 3), (0, 3), (2, 0, 3)]:
        x, w, b = values(rng, xs), values(rng, (2, 3)), values(rng, (2,))
        out.append(Sample((x, w, b), {}, f"{xs} with bias"))
        out.append(Sample((x, w), {}, f"{xs} without bias"))
    x = values(rng, (3, 3))
    out.append(Sample((x, x), {}, "repeated input linear(x, x)"))
    out.append(
        Sample(
            (values(rng, (4, 3)), values(rng, (3, 2)).T.copy(), values(rng, (2,))),
            {},
            "noncontig",
            noncontig=(0, 1),
        )
    )
    return out


def _bilinear_samples(rng):
    out = []
    for lead in [(4,), (2, 3), ()]:
        x1, x2 = values(rng, (*lead, 3)), values(rng, (*lead, 2))
        w, b = values(rng, (2, 3, 2)), values(rng, (2,))
        out.append(Sample((x1, x2, w, b), {}, f"lead={lead}"))
    out.append(Sample((values(rng, (4, 3)), values(rng, (4, 2)), values(rng, (2, 3, 2))), {}, "nb"))
    x = values(rng, (3, 2))
    out.append(Sample((x, x, values(rng, (2, 2, 2))), {}, "repeated input bilinear(x, x, w)"))
    return out


def _embedding_samples(rng):
    # padding_idx zeroes a row's gradient on purpose (finite differences disagree): that case is
    # compared with PyTorch in tests/test_nn_layers.py
    w = values(rng, (5, 3))
    return [
        Sample((np.array([0, 2, 2, 4]), w), {}, "repeated indices"),
        Sample((np.array([[1, 0], [3, 1]]), values(rng, (5, 3))), {}, "2-D indices"),
        Sample((np.array(3), values(rng, (5, 3))), {}, "0-d index"),
        Sample((np.zeros((0,), np.int64), values(rng, (4, 2))), {}, "empty"),
        Sample((np.array([1, 3]), values(rng, (4, 3))), {}, "noncontig", noncontig=(1,)),
    ]


ROWS = [
    OpSpec("layer_norm", rg.layer_norm, _layer_norm_ref, F.layer_norm, _layer_norm_samples),
    OpSpec("rms_norm", rg.rms_norm, _rms_norm_ref, F.rms_norm, _rms_norm_samples),
    OpSpec("batch_norm", _rg_batch_norm, _ref_batch_norm, _torch_batch_norm, _batch_norm_samples),
    OpSpec("linear", rg.linear, _linear_ref, F.linear, _linear_samples),
    OpSpec("bilinear", rg.bilinear, _bilinear_ref, F.bilinear, _bilinear_samples),
    OpSpec("embedding", embedding, _embedding_ref, F.embedding, _embedding_samples),
]
