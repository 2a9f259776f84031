"""Op-table rows: pooling, resampling and the image norms (retrograd/ops/pooling.py).

The NumPy references loop over output positions and window entries (plain and slow, written from
PyTorch's documented formulas); the op under test works on strided views.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F

import retrograd as rg
from retrograd.ops import pooling as P
from tests.opspec_base import OpSpec, Sample, values


def _tup(v, n):
    if v is None:
        return None
    if isinstance(v, (tuple, list)):
        return tuple(v) if len(v) == n else tuple(v) * n
    return (v,) * n


def _out_size(n, k, s, p, d, ceil_mode):
    eff = d * (k - 1) + 1
    if ceil_mode:
        out = math.ceil((n + 2 * p - eff) / s) + 1
        if (out - 1) * s >= n + p:
            out -= 1
    else:
        out = (n + 2 * p - eff) // s + 1
    return out


# -- NumPy references ------------------------------------------------------------------------------
def _max_pool_ref(x, nsp, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                  return_indices=False):  # fmt: skip
    k = _tup(kernel_size, nsp)
    s = _tup(stride, nsp) or k
    p, d = _tup(padding, nsp), _tup(dilation, nsp)
    sizes = x.shape[-nsp:]
    out = [_out_size(*a, ceil_mode) for a in zip(sizes, k, s, p, d)]
    planes = x.reshape(-1, *sizes)
    vals = np.zeros((planes.shape[0], *out), x.dtype)
    idx = np.zeros((planes.shape[0], *out), np.int64)
    for b in range(planes.shape[0]):
        for o in itertools.product(*(range(m) for m in out)):
            best, where = -np.inf, -1
            for off in itertools.product(*(range(m) for m in k)):
                pos = [oi * si - pi + i * di for oi, si, pi, i, di in zip(o, s, p, off, d)]
                if any(q < 0 or q >= n for q, n in zip(pos, sizes)):
                    continue
                v = planes[b][tuple(pos)]
                if where < 0 or v > best or np.isnan(v):
                    best, where = v, int(np.ravel_multi_index(pos, sizes))
            vals[(b, *o)], idx[(b, *o)] = best, where
    lead = x.shape[:-nsp]
    vals, idx = vals.reshape(*lead, *out), idx.reshape(*lead, *out)
    return (vals, idx) if return_indices else vals


def _avg_pool_ref(x, nsp, kernel_size, stride=None, padding=0, ceil_mode=False,
                  count_include_pad=True, divisor_override=None):  # fmt: skip
    k = _tup(kernel_size, nsp)
    s = _tup(stride, nsp) or k
    p = _tup(padding, nsp)
    sizes = x.shape[-nsp:]
    out = [_out_size(*a, 1, ceil_mode) for a in zip(sizes, k, s, p)]
    planes = x.reshape(-1, *sizes)
    res = np.zeros((planes.shape[0], *out), x.dtype)
    for b in range(planes.shape[0]):
        for o in itertools.product(*(range(m) for m in out)):
            total, inside, padded = 0.0, 0, 1
            for dim in range(nsp):  # windows are clipped at the padded border
                start = o[dim] * s[dim] - p[dim]
                padded *= min(start + k[dim], sizes[dim] + p[dim]) - start
            for off in itertools.product(*(range(m) for m in k)):
                pos = [oi * si - pi + i for oi, si, pi, i in zip(o, s, p, off)]
                if all(0 <= q < n for q, n in zip(pos, sizes)):
                    total += planes[b][tuple(pos)]
                    inside += 1
            div = divisor_override or (padded if count_include_pad else inside)
            res[(b, *o)] = total / div
    return res.reshape(*x.shape[:-nsp], *out)


def _bounds(n, o):
    return [((i * n) // o, -((-(i + 1) * n) // o)) for i in range(o)]


def _adaptive_ref(x, nsp, output_size, kind, return_indices=False):
    sizes = x.shape[-nsp:]
    out = [n if m is None else m for n, m in zip(sizes, _tup(output_size, nsp))]
    planes = x.reshape(-1, *sizes)
    vals = np.zeros((planes.shape[0], *out), x.dtype)
    idx = np.zeros((planes.shape[0], *out), np.int64)
    bounds = [_bounds(n, o) for n, o in zip(sizes, out)]
    for b in range(planes.shape[0]):
        for o in itertools.product(*(range(m) for m in out)):
            ranges = [range(*bounds[dim][o[dim]]) for dim in range(nsp)]
            window = [(planes[b][pos], pos) for pos in itertools.product(*ranges)]
            if kind == "avg":
                vals[(b, *o)] = np.mean([v for v, _ in window])
                continue
            best, where = window[0]
            for v, pos in window[1:]:
                if v > best or np.isnan(v):
                    best, where = v, pos
            vals[(b, *o)] = best
            idx[(b, *o)] = np.ravel_multi_index(where, sizes)
    lead = x.shape[:-nsp]
    vals, idx = vals.reshape(*lead, *out), idx.reshape(*lead, *out)
    return (vals, idx) if return_indices else vals


def _cubic(t, a=-0.75):
    t = abs(t)
    if t <= 1:
        return ((a + 2) * t - (a + 3)) * t * t + 1
    if t < 2:
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return 0.0


def _interp_weights(n, o, scale, mode, align_corners):
    """(o, n) weights of one axis, from PyTorch's source-index formulas."""
    f32 = np.float32
    m = np.zeros((o, n))
    for i in range(o):
        if mode in ("nearest", "nearest-exact"):
            sc = f32(1.0 / scale) if scale else f32(n) / f32(o)
            if mode == "nearest-exact":
                src = int(np.floor(f32((i + 0.5) * sc)))
            elif o == n:
                src = i
            elif o == 2 * n:
                src = i // 2
            else:
                src = int(np.floor(f32(i) * sc))
            m[i, min(src, n - 1)] = 1
            continue
        if align_corners:
            sc = (n - 1) / (o - 1) if o > 1 else 0.0
            src = sc * i
        else:
            sc = 1.0 / scale if scale else n / o
            src = sc * (i + 0.5) - 0.5
        if mode == "bicubic":
            i0 = math.floor(src)
            t = src - i0
            for tap in range(4):
                m[i, min(max(i0 - 1 + tap, 0), n - 1)] += _cubic(t + 1 - tap)
            continue
        src = max(src, 0.0)
        i0 = min(math.floor(src), n - 1)
        lam = min(max(src - i0, 0.0), 1.0)
        m[i, i0] += 1 - lam
        m[i, i0 + (1 if i0 < n - 1 else 0)] += lam
    return m


def _interp_ref(x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None):  # fmt: skip
    nsp = x.ndim - 2
    sizes = x.shape[2:]
    if size is not None:
        out, scales = list(_tup(size, nsp)), [None] * nsp
    else:
        scales = [float(s) for s in _tup(scale_factor, nsp)]
        out = [int(math.floor(n * s)) for n, s in zip(sizes, scales)]
        if recompute_scale_factor:
            scales = [None] * nsp
    if mode == "area":
        return _adaptive_ref(x, nsp, tuple(out), "avg")
    res = x
    for dim, (n, o, s) in enumerate(zip(sizes, out, scales)):
        m = _interp_weights(n, o, s, mode, align_corners).astype(x.dtype)
        res = np.moveaxis(np.tensordot(m, res, axes=([1], [2 + dim])), 0, 2 + dim)
    return res


def _pixel_shuffle_ref(x, upscale_factor):
    r = upscale_factor
    *lead, c, h, w = x.shape
    y = x.reshape(*lead, c // (r * r), r, r, h, w)
    n = len(lead)
    y = y.transpose(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return y.reshape(*lead, c // (r * r), h * r, w * r)


def _pixel_unshuffle_ref(x, downscale_factor):
    r = downscale_factor
    *lead, c, h, w = x.shape
    y = x.reshape(*lead, c, h // r, r, w // r, r)
    n = len(lead)
    y = y.transpose(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return y.reshape(*lead, c * r * r, h // r, w // r)


def _group_norm_ref(x, num_groups, weight=None, bias=None, eps=1e-5):
    n, c = x.shape[:2]
    g = x.reshape(n, num_groups, (c // num_groups) * math.prod(x.shape[2:]))
    mean = g.mean(axis=2, keepdims=True)
    var = ((g - mean) ** 2).mean(axis=2, keepdims=True)
    out = ((g - mean) / np.sqrt(var + eps)).reshape(x.shape)
    pshape = (c,) + (1,) * (x.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(pshape)
    if bias is not None:
        out = out + bias.reshape(pshape)
    return out


def _instance_norm_ref(x, weight=None, bias=None, eps=1e-5):
    n, c = x.shape[:2]
    return _group_norm_ref(x, c, weight, bias, eps)


# -- wrappers: keyword arguments into the nsp-generic references --------------------------------
def _mp1(x, **kw):
    return _max_pool_ref(x, 1, **kw)


def _mp2(x, **kw):
    return _max_pool_ref(x, 2, **kw)


def _ap1(x, **kw):
    return _avg_pool_ref(x, 1, **kw)


def _ap2(x, **kw):
    return _avg_pool_ref(x, 2, **kw)


def _aap1(x, output_size):
    return _adaptive_ref(x, 1, output_size, "avg")


def _aap2(x, output_size):
    return _adaptive_ref(x, 2, output_size, "avg")


def _amp1(x, output_size, return_indices=False):
    return _adaptive_ref(x, 1, output_size, "max", return_indices)


def _amp2(x, output_size, return_indices=False):
    return _adaptive_ref(x, 2, output_size, "max", return_indices)


# running statistics are constants of the op: the rows close over fresh copies
_RM = np.array([0.3, -0.2, 0.1])
_RV = np.array([0.8, 1.3, 0.5])


def _rg_instance_norm(x, w=None, b=None, use_input_stats=True, eps=1e-5):
    if use_input_stats:
        rm, rv = rg.tensor(_RM, dtype=x.dtype), rg.tensor(_RV, dtype=x.dtype)  # updated, unused
        return P.instance_norm(x, rm, rv, w, b, True, 0.1, eps)
    rm, rv = rg.tensor(_RM, dtype=x.dtype), rg.tensor(_RV, dtype=x.dtype)
    return P.instance_norm(x, rm, rv, w, b, False, 0.1, eps)


def _torch_instance_norm(x, w=None, b=None, use_input_stats=True, eps=1e-5):
    rm, rv = torch.tensor(_RM, dtype=x.dtype), torch.tensor(_RV, dtype=x.dtype)
    return F.instance_norm(x, rm, rv, w, b, use_input_stats, 0.1, eps)


def _ref_instance_norm(x, w=None, b=None, use_input_stats=True, eps=1e-5):
    if use_input_stats:
        return _instance_norm_ref(x, w, b, eps)
    pshape = (x.shape[1],) + (1,) * (x.ndim - 2)
    out = (x - _RM.reshape(pshape)) / np.sqrt(_RV.reshape(pshape) + eps)
    if w is not None:
        out = out * w.reshape(pshape)
    if b is not None:
        out = out + b.reshape(pshape)
    return out


# -- samples -------------------------------------------------------------------------------------
def _max_pool2d_samples(rng):
    cases = [
        ((2, 2, 5, 5), dict(kernel_size=2), "k=2"),
        ((2, 2, 5, 5), dict(kernel_size=3, stride=2, padding=1), "k=3 s=2 p=1"),
        (
            (1, 2, 6, 5),
            dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
            "rectangular, dilation (1, 2)",
        ),  # fmt: skip
        ((1, 2, 7, 6), dict(kernel_size=3, stride=1, padding=1, dilation=2), "dilation=2"),
        ((2, 1, 5, 7), dict(kernel_size=2, ceil_mode=True), "ceil_mode odd sizes"),
        ((1, 2, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), "ceil p=1"),
        ((1, 2, 6, 6), dict(kernel_size=2, stride=3), "stride > kernel"),
        ((2, 2, 5, 5), dict(kernel_size=3, stride=2, return_indices=True), "return_indices"),
        ((1, 1, 6, 6), dict(kernel_size=4, stride=1, padding=2, dilation=1), "overlap p=2"),
        ((3, 5, 5), dict(kernel_size=2, stride=1), "unbatched"),
        ((0, 2, 4, 4), dict(kernel_size=2), "empty batch"),
    ]
    out = [Sample((values(rng, s),), kw, d) for s, kw, d in cases]
    out.append(
        Sample((values(rng, (2, 2, 4, 6)),), dict(kernel_size=2), "noncontig", noncontig=(0,))
    )
    return out


def _max_pool1d_samples(rng):
    cases = [
        ((2, 3, 9), dict(kernel_size=2), "k=2"),
        ((2, 3, 9), dict(kernel_size=3, stride=2, padding=1), "k=3 s=2 p=1"),
        ((2, 2, 9), dict(kernel_size=3, stride=2, padding=1, dilation=2), "dilation=2"),
        ((2, 2, 8), dict(kernel_size=3, stride=2, ceil_mode=True), "ceil_mode"),
        ((2, 2, 10), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True), "ceil p=2"),
        ((2, 2, 9), dict(kernel_size=3, stride=1, return_indices=True), "return_indices"),
        ((3, 7), dict(kernel_size=2), "unbatched"),
        ((0, 3, 7), dict(kernel_size=2), "empty batch"),
    ]
    out = [Sample((values(rng, s),), kw, d) for s, kw, d in cases]
    out.append(Sample((values(rng, (2, 3, 6)),), dict(kernel_size=2), "noncontig", noncontig=(0,)))
    return out


def _avg_pool2d_samples(rng):
    cases = [
        ((2, 2, 5, 5), dict(kernel_size=2), "k=2"),
        ((2, 2, 5, 5), dict(kernel_size=3, stride=2, padding=1), "k=3 s=2 p=1"),
        (
            (2, 2, 5, 5),
            dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
            "count_include_pad=False",
        ),  # fmt: skip
        (
            (1, 2, 7, 6),
            dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True),
            "rectangular ceil",
        ),  # fmt: skip
        (
            (1, 2, 7, 6),
            dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
            "ceil no pad count",
        ),  # fmt: skip
        ((2, 1, 5, 7), dict(kernel_size=2, ceil_mode=True), "ceil odd sizes"),
        (
            (1, 2, 5, 5),
            dict(kernel_size=3, stride=1, padding=1, divisor_override=4),
            "divisor_override",
        ),  # fmt: skip
        ((1, 2, 6, 6), dict(kernel_size=2, stride=3), "stride > kernel"),
        ((3, 5, 5), dict(kernel_size=2, stride=1), "unbatched"),
        ((0, 2, 4, 4), dict(kernel_size=2), "empty batch"),
    ]
    out = [Sample((values(rng, s),), kw, d) for s, kw, d in cases]
    out.append(
        Sample((values(rng, (2, 2, 4, 6)),), dict(kernel_size=2), "noncontig", noncontig=(0,))
    )
    return out


def _avg_pool1d_samples(rng):
    cases = [
        ((2, 3, 9), dict(kernel_size=2), "k=2"),
        ((2, 3, 9), dict(kernel_size=3, stride=2, padding=1), "k=3 s=2 p=1"),
        (
            (2, 3, 9),
            dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
            "count_include_pad=False",
        ),  # fmt: skip
        ((2, 2, 10), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True), "ceil p=2"),
        (
            (2, 2, 10),
            dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False),
            "ceil no pad count",
        ),  # fmt: skip
        ((3, 7), dict(kernel_size=2), "unbatched"),
        ((0, 3, 7), dict(kernel_size=2), "empty batch"),
    ]
    out = [Sample((values(rng, s),), kw, d) for s, kw, d in cases]
    out.append(Sample((values(rng, (2, 3, 6)),), dict(kernel_size=2), "noncontig", noncontig=(0,)))
    return out


def _adaptive2d_samples(with_indices):
    def make(rng):
        cases = [
            ((2, 2, 6, 6), (3, 3), "divisible"),
            ((2, 2, 5, 7), (3, 4), "overlapping windows"),
            ((1, 2, 5, 4), (1, 1), "global"),
            ((1, 2, 3, 4), (5, 6), "larger than input"),
            ((1, 2, 5, 6), (None, 4), "None keeps H"),
            ((1, 2, 5, 6), 2, "int size"),
            ((2, 5, 7), (2, 3), "unbatched"),
            ((0, 2, 4, 4), (2, 2), "empty batch"),
        ]
        out = [Sample((values(rng, s),), dict(output_size=o), d) for s, o, d in cases]
        if with_indices:
            out.append(
                Sample(
                    (values(rng, (2, 2, 5, 7)),),
                    dict(output_size=(2, 3), return_indices=True),
                    "return_indices",
                )  # fmt: skip
            )
        out.append(
            Sample(
                (values(rng, (2, 2, 4, 6)),), dict(output_size=(3, 4)), "noncontig", noncontig=(0,)
            )  # fmt: skip
        )
        return out

    return make


def _adaptive1d_samples(with_indices):
    def make(rng):
        cases = [
            ((2, 3, 8), 4, "divisible"),
            ((2, 3, 7), 3, "overlapping windows"),
            ((2, 3, 5), 1, "global"),
            ((2, 3, 4), 6, "larger than input"),
            ((3, 7), (3,), "unbatched, tuple size"),
            ((0, 3, 5), 2, "empty batch"),
        ]
        out = [Sample((values(rng, s),), dict(output_size=o), d) for s, o, d in cases]
        if with_indices:
            out.append(
                Sample(
                    (values(rng, (2, 3, 7)),),
                    dict(output_size=3, return_indices=True),
                    "return_indices",
                )  # fmt: skip
            )
        out.append(
            Sample((values(rng, (2, 3, 6)),), dict(output_size=4), "noncontig", noncontig=(0,))
        )
        return out

    return make


def _interpolate_samples(rng, modes=("nearest", "nearest-exact", "bilinear", "area")):
    out = []
    x4 = (1, 2, 4, 5)
    for mode in modes:
        aligns = [None] if mode in ("nearest", "nearest-exact", "area") else [False, True]
        for ac in aligns:
            for kw in (dict(size=(6, 7)), dict(scale_factor=2), dict(size=(3, 3)),
                       dict(scale_factor=(1.5, 0.7))):  # fmt: skip
                if mode == "area" and "scale_factor" in kw:
                    kw = dict(kw, recompute_scale_factor=True)
                out.append(
                    Sample(
                        (values(rng, x4),),
                        dict(kw, mode=mode, align_corners=ac),
                        f"{mode} {kw} align_corners={ac}",
                    )  # fmt: skip
                )
    if modes == ("bicubic",):
        return out
    for mode in ("nearest", "linear"):
        ac = None if mode == "nearest" else False
        out.append(Sample((values(rng, (2, 3, 5)),), dict(scale_factor=2.5, mode=mode,
                          align_corners=ac), f"1-d {mode}"))  # fmt: skip
    out.append(Sample((values(rng, (2, 2, 4)),), dict(size=7, mode="linear", align_corners=True),
                      "1-d linear align_corners"))  # fmt: skip
    out.append(Sample((values(rng, (1, 1, 2, 3, 4)),), dict(size=(3, 4, 3), mode="trilinear"),
                      "3-d trilinear"))  # fmt: skip
    out.append(Sample((values(rng, (1, 1, 2, 3, 2)),), dict(scale_factor=2), "3-d nearest"))
    out.append(Sample((values(rng, x4),), dict(size=(4, 5), mode="bilinear"), "same size"))
    out.append(Sample((values(rng, x4),), dict(scale_factor=1.5, mode="bilinear",
                      recompute_scale_factor=True), "recompute_scale_factor"))  # fmt: skip
    out.append(Sample((values(rng, (0, 2, 3, 3)),), dict(scale_factor=2), "empty batch"))
    out.append(Sample((values(rng, (1, 2, 4, 3)),), dict(size=(5, 5), mode="bilinear"),
                      "noncontig", noncontig=(0,)))  # fmt: skip
    return out


def _bicubic_samples(rng):
    return _interpolate_samples(rng, modes=("bicubic",))


def _pixel_shuffle_samples(rng):
    return [
        Sample((values(rng, (2, 8, 2, 3)),), dict(upscale_factor=2), "r=2"),
        Sample((values(rng, (1, 9, 2, 2)),), dict(upscale_factor=3), "r=3"),
        Sample((values(rng, (4, 2, 2)),), dict(upscale_factor=2), "3-d"),
        Sample((values(rng, (2, 1, 4, 1, 2)),), dict(upscale_factor=2), "5-d"),
        Sample((values(rng, (1, 4, 2, 3)),), dict(upscale_factor=1), "r=1"),
        # PyTorch's own backward fails on an empty batch ("invalid gradient ... [0, 1, 4, 4]")
        Sample((values(rng, (0, 4, 2, 2)),), dict(upscale_factor=2), "empty", torch=False),
        Sample((values(rng, (1, 4, 3, 2)),), dict(upscale_factor=2), "noncontig", noncontig=(0,)),
    ]


def _pixel_unshuffle_samples(rng):
    return [
        Sample((values(rng, (2, 2, 4, 6)),), dict(downscale_factor=2), "r=2"),
        Sample((values(rng, (1, 1, 6, 3)),), dict(downscale_factor=3), "r=3"),
        Sample((values(rng, (1, 4, 4)),), dict(downscale_factor=2), "3-d"),
        Sample((values(rng, (2, 1, 1, 2, 4)),), dict(downscale_factor=2), "5-d"),
        # PyTorch's own backward fails on an empty batch, as for pixel_shuffle
        Sample((values(rng, (0, 1, 2, 2)),), dict(downscale_factor=2), "empty", torch=False),
        Sample((values(rng, (1, 2, 4, 2)),), dict(downscale_factor=2), "noncontig", noncontig=(0,)),
    ]


def _group_norm_samples(rng):
    out = []
    for shape, groups in (((2, 4, 3, 3), 2), ((2, 4, 3, 3), 1), ((2, 4, 3, 3), 4), ((3, 6), 3),
                          ((2, 4, 5), 2)):  # fmt: skip
        c = shape[1]
        w, b = values(rng, (c,), (0.5, 1.5)), values(rng, (c,))
        out.append(Sample((values(rng, shape), groups, w, b), {}, f"{shape} groups={groups}"))
    out.append(Sample((values(rng, (2, 4, 2, 2)), 2), {}, "no affine"))
    out.append(Sample((values(rng, (2, 4, 2, 2)), 2, None, values(rng, (4,))), {}, "bias only"))
    out.append(Sample((values(rng, (2, 4, 3)), 2), dict(eps=0.1), "eps=0.1"))
    out.append(Sample((values(rng, (0, 4, 2, 2)), 2), {}, "empty batch"))
    out.append(
        Sample(
            (values(rng, (2, 4, 3)), 2, values(rng, (4,)), values(rng, (4,))),
            {},
            "noncontig",
            noncontig=(0,),
        )  # fmt: skip
    )
    return out


def _instance_norm_samples(rng):
    out = []
    for shape in ((2, 3, 3, 3), (2, 3, 5), (1, 3, 2, 2, 2)):
        w, b = values(rng, (3,), (0.5, 1.5)), values(rng, (3,))
        out.append(Sample((values(rng, shape), w, b), {}, f"{shape}"))
    out.append(Sample((values(rng, (2, 3, 4)),), {}, "no affine"))
    out.append(Sample((values(rng, (2, 3, 2, 2)), values(rng, (3,)), None), dict(eps=0.1), "eps"))
    w, b = values(rng, (3,)), values(rng, (3,))
    out.append(Sample((values(rng, (2, 3, 2, 2)), w, b), dict(use_input_stats=False),
                      "running statistics"))  # fmt: skip
    out.append(Sample((values(rng, (2, 3, 4)), w, b), {}, "noncontig", noncontig=(0,)))
    return out


def _gn_rg(x, num_groups, w=None, b=None, eps=1e-5):
    return P.group_norm(x, num_groups, w, b, eps)


def _gn_torch(x, num_groups, w=None, b=None, eps=1e-5):
    if w is None and b is not None:  # PyTorch's backward fails there ("tensor does not have a
        w = torch.ones(x.shape[1], dtype=x.dtype)  # device"): a unit weight is the same map
    return F.group_norm(x, num_groups, w, b, eps)


def _gn_ref(x, num_groups, w=None, b=None, eps=1e-5):
    return _group_norm_ref(x, num_groups, w, b, eps)


ROWS = [
    OpSpec("max_pool1d", P.max_pool1d, _mp1, F.max_pool1d, _max_pool1d_samples),
    OpSpec("max_pool2d", P.max_pool2d, _mp2, F.max_pool2d, _max_pool2d_samples),
    OpSpec("avg_pool1d", P.avg_pool1d, _ap1, F.avg_pool1d, _avg_pool1d_samples),
    OpSpec("avg_pool2d", P.avg_pool2d, _ap2, F.avg_pool2d, _avg_pool2d_samples),
    OpSpec(
        "adaptive_avg_pool1d",
        P.adaptive_avg_pool1d,
        _aap1,
        F.adaptive_avg_pool1d,
        _adaptive1d_samples(False),
    ),
    OpSpec(
        "adaptive_avg_pool2d",
        P.adaptive_avg_pool2d,
        _aap2,
        F.adaptive_avg_pool2d,
        _adaptive2d_samples(False),
    ),
    OpSpec(
        "adaptive_max_pool1d",
        P.adaptive_max_pool1d,
        _amp1,
        F.adaptive_max_pool1d,
        _adaptive1d_samples(True),
    ),
    OpSpec(
        "adaptive_max_pool2d",
        P.adaptive_max_pool2d,
        _amp2,
        F.adaptive_max_pool2d,
        _adaptive2d_samples(True),
    ),
    OpSpec("interpolate", P.interpolate, _interp_ref, F.interpolate, _interpolate_samples),
    # bicubic weights have negative lobes: float32 sums cancel, and PyTorch's own float32 result
    # is up to ~4e-6 from the float64 one on values in [-2, 2]
    OpSpec(
        "interpolate[bicubic]",
        P.interpolate,
        _interp_ref,
        F.interpolate,
        _bicubic_samples,
        fwd_atol32=1e-5,
    ),
    OpSpec(
        "pixel_shuffle",
        P.pixel_shuffle,
        _pixel_shuffle_ref,
        F.pixel_shuffle,
        _pixel_shuffle_samples,
    ),  # fmt: skip
    OpSpec(
        "pixel_unshuffle",
        P.pixel_unshuffle,
        _pixel_unshuffle_ref,
        F.pixel_unshuffle,
        _pixel_unshuffle_samples,
    ),  # fmt: skip
    OpSpec("group_norm", _gn_rg, _gn_ref, _gn_torch, _group_norm_samples),
    OpSpec(
        "instance_norm",
        _rg_instance_norm,
        _ref_instance_norm,
        _torch_instance_norm,
        _instance_norm_samples,
    ),  # fmt: skip
]

NOT_ROWS = {
    "upsample": "deprecated alias of interpolate (warns): tests/test_pooling.py",
    "dropout2d": "random channel masks: tests/test_norm2d.py (statistics, scaling, gradients)",
}
