"""Op-table rows: the convolution family (retrograd/ops/conv.py): conv1d, conv2d,
conv_transpose1d, conv_transpose2d, unfold, fold.

The NumPy references are written from the definitions (a sum over kernel offsets for conv, a
scatter of every input position for conv_transpose, a loop over blocks for unfold/fold), in
float64, independently of the im2col kernels they check.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import torch.nn.functional as F

from retrograd.ops import conv
from tests.opspec_base import OpSpec, Sample, values


# -- NumPy references ------------------------------------------------------------------------------
def _tup(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def _conv_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    nd = w.ndim - 2
    dtype = x.dtype
    x, w = x.astype(np.float64), w.astype(np.float64)
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    s, d, k = _tup(stride, nd), _tup(dilation, nd), w.shape[2:]
    if padding == "same":
        pads = [(dd * (kk - 1) // 2, dd * (kk - 1) - dd * (kk - 1) // 2) for kk, dd in zip(k, d)]
    elif padding == "valid":
        pads = [(0, 0)] * nd
    else:
        pads = [(p, p) for p in _tup(padding, nd)]
    xp = np.pad(x, [(0, 0), (0, 0), *pads])
    n, c = x.shape[:2]
    o = w.shape[0]
    cg, og = c // groups, o // groups
    sizes = [(xp.shape[2 + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(nd)]
    out = np.zeros((n, o, *sizes))
    for offs in itertools.product(*(range(kk) for kk in k)):
        index = tuple(
            slice(oo * dd, oo * dd + ss * (ll - 1) + 1, ss)
            for oo, dd, ss, ll in zip(offs, d, s, sizes)
        )
        patch = xp[(slice(None), slice(None)) + index].reshape(n, groups, cg, int(np.prod(sizes)))
        wk = w[(slice(None), slice(None)) + offs].reshape(groups, og, cg)
        out += np.einsum("ngcl,goc->ngol", patch, wk).reshape(out.shape)
    if b is not None:
        out += b.astype(np.float64).reshape((-1,) + (1,) * nd)
    return (out[0] if unbatched else out).astype(dtype)


def _conv_transpose_ref(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Each input value scatters w's kernel into the output (the definition)."""
    nd = w.ndim - 2
    dtype = x.dtype
    x, w = x.astype(np.float64), w.astype(np.float64)
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    s, p = _tup(stride, nd), _tup(padding, nd)
    op, d, k = _tup(output_padding, nd), _tup(dilation, nd), w.shape[2:]
    n, c = x.shape[:2]
    cg, og = c // groups, w.shape[1]
    lsize = x.shape[2:]
    full = [
        (ll - 1) * ss + dd * (kk - 1) + 1 + oo for ll, ss, dd, kk, oo in zip(lsize, s, d, k, op)
    ]
    out = np.zeros((n, groups * og, *full))
    for pos in itertools.product(*(range(ll) for ll in lsize)):
        xv = x[(slice(None), slice(None)) + pos].reshape(n, groups, cg)
        contrib = np.einsum("ngc,gcd...->ngd...", xv, w.reshape(groups, cg, og, *k))
        contrib = contrib.reshape(n, groups * og, *k)
        index = tuple(
            slice(ii * ss, ii * ss + dd * (kk - 1) + 1, dd) for ii, ss, dd, kk in zip(pos, s, d, k)
        )
        out[(slice(None), slice(None)) + index] += contrib
    crop = tuple(slice(pp, ff - pp) for pp, ff in zip(p, full))
    out = out[(slice(None), slice(None)) + crop]
    if b is not None:
        out = out + b.astype(np.float64).reshape((-1,) + (1,) * nd)
    return (out[0] if unbatched else out).astype(dtype)


def _blocks(sizes, k, d, p, s):
    """Top-left corners (in padded coordinates) of the sliding blocks, row-major."""
    counts = [
        (n + 2 * pp - dd * (kk - 1) - 1) // ss + 1 for n, kk, dd, pp, ss in zip(sizes, k, d, p, s)
    ]
    return list(itertools.product(*(range(0, cc * ss, ss) for cc, ss in zip(counts, s))))


def _unfold_ref(x, kernel_size, dilation=1, padding=0, stride=1):
    dtype = x.dtype
    x = x.astype(np.float64)
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    k, d, p, s = (_tup(v, 2) for v in (kernel_size, dilation, padding, stride))
    xp = np.pad(x, [(0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])])
    cols = []
    for i, j in _blocks(x.shape[2:], k, d, p, s):
        block = xp[:, :, i : i + d[0] * (k[0] - 1) + 1 : d[0], j : j + d[1] * (k[1] - 1) + 1 : d[1]]
        cols.append(block.reshape(x.shape[0], x.shape[1] * k[0] * k[1]))
    out = np.stack(cols, axis=-1)
    return (out[0] if unbatched else out).astype(dtype)


def _fold_ref(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    dtype = x.dtype
    x = x.astype(np.float64)
    unbatched = x.ndim == 2
    if unbatched:
        x = x[None]
    size, k, d, p, s = (_tup(v, 2) for v in (output_size, kernel_size, dilation, padding, stride))
    n = x.shape[0]
    c = x.shape[1] // (k[0] * k[1])
    out = np.zeros((n, c, size[0] + 2 * p[0], size[1] + 2 * p[1]))
    for b, (i, j) in enumerate(_blocks(size, k, d, p, s)):
        block = x[:, :, b].reshape(n, c, k[0], k[1])
        out[:, :, i : i + d[0] * (k[0] - 1) + 1 : d[0], j : j + d[1] * (k[1] - 1) + 1 : d[1]] += (
            block
        )
    out = out[:, :, p[0] : p[0] + size[0], p[1] : p[1] + size[1]]
    return (out[0] if unbatched else out).astype(dtype)


def _torch_same_quiet(fn):
    """fn with PyTorch's note on padding='same' with even kernels (a copy is made) silenced."""

    def run(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return fn(*args, **kwargs)

    run.__name__ = fn.__name__
    return run


# -- samples ---------------------------------------------------------------------------------------
def _conv_case(rng, xshape, wshape, bias=True, **kwargs):
    x, w = values(rng, xshape), values(rng, wshape)
    args = (x, w, values(rng, (wshape[0],))) if bias else (x, w)
    desc = f"x{xshape} w{wshape}{' +b' if bias else ''} {kwargs}"
    return Sample(args, kwargs, desc)


def _conv1d_samples(rng):
    c = _conv_case
    out = [
        c(rng, (2, 3, 7), (4, 3, 3)),
        c(rng, (2, 3, 7), (4, 3, 3), False, stride=2, padding=1),
        c(rng, (1, 2, 9), (3, 2, 3), dilation=2, padding=2),
        c(rng, (2, 4, 6), (6, 2, 2), groups=2),
        c(rng, (2, 3, 5), (6, 1, 3), groups=3, padding=1),  # depthwise, multiplier 2
        c(rng, (1, 2, 6), (3, 2, 3), padding="same"),
        c(rng, (1, 2, 6), (3, 2, 4), False, padding="same", dilation=1),  # asymmetric pads
        c(rng, (1, 2, 7), (3, 2, 2), padding="same", dilation=3),
        c(rng, (1, 2, 3), (2, 2, 5), padding="same"),  # kernel wider than the input
        c(rng, (2, 2, 6), (3, 2, 3), padding="valid"),
        c(rng, (2, 2, 8), (3, 2, 2), stride=3),  # stride beyond the kernel: skipped inputs
        c(rng, (3, 7), (2, 3, 3), padding=1),  # unbatched
        c(rng, (0, 3, 5), (2, 3, 3)),  # empty batch
        c(rng, (2, 2, 1), (3, 2, 1)),
        c(rng, (2, 3, 6), (1, 3, 3), padding=1),  # one output channel
        c(rng, (1, 2, 5), (2, 2, 5), stride=(2,), padding=(2,), dilation=(1,)),
    ]
    x = values(rng, (2, 3, 6))
    out.append(Sample((x, values(rng, (4, 3, 3))), {"padding": 1}, "noncontig", noncontig=(0, 1)))
    return out


def _conv2d_samples(rng):
    c = _conv_case
    out = [
        c(rng, (2, 3, 5, 5), (4, 3, 3, 3)),
        c(rng, (2, 2, 6, 5), (3, 2, 3, 2), False, stride=2, padding=1),
        c(rng, (1, 2, 6, 7), (2, 2, 3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
        c(rng, (1, 2, 7, 7), (3, 2, 2, 2), dilation=2, padding=(0, 1)),
        c(rng, (2, 4, 4, 5), (6, 2, 2, 2), groups=2, padding=1),
        c(rng, (1, 4, 5, 5), (4, 1, 3, 3), groups=4, padding=1),  # depthwise
        c(rng, (1, 3, 4, 4), (6, 1, 2, 3), False, groups=3),  # depthwise, multiplier 2
        c(rng, (1, 2, 5, 6), (3, 2, 3, 3), padding="same"),
        c(rng, (1, 2, 5, 4), (2, 2, 2, 4), padding="same"),  # even kernels: asymmetric pads
        c(rng, (1, 2, 6, 6), (2, 2, 3, 2), False, padding="same", dilation=(2, 3)),
        c(rng, (2, 2, 5, 5), (3, 2, 2, 3), padding="valid"),
        c(rng, (1, 2, 7, 8), (2, 2, 2, 2), stride=(3, 4)),
        c(rng, (2, 5, 5), (3, 2, 3, 3), padding=1),  # unbatched
        c(rng, (0, 2, 4, 4), (3, 2, 3, 3)),  # empty batch
        c(rng, (2, 3, 1, 1), (4, 3, 1, 1)),  # 1x1 convolution
        c(rng, (2, 2, 4, 4), (1, 2, 2, 2), stride=2),  # one output channel
        c(rng, (1, 1, 4, 3), (2, 1, 4, 3)),  # kernel as large as the input
    ]
    x = values(rng, (2, 2, 3, 3))
    out.append(Sample((x, x), {"padding": 1}, "repeated input conv2d(x, x)"))
    out.append(
        Sample(
            (values(rng, (2, 2, 5, 4)), values(rng, (3, 2, 3, 2)), values(rng, (3,))),
            {"stride": 2, "padding": 1},
            "noncontig",
            noncontig=(0, 1),
        )
    )
    return out


def _tconv_case(rng, xshape, wshape, bias=True, **kwargs):
    groups = kwargs.get("groups", 1)
    x, w = values(rng, xshape), values(rng, wshape)
    args = (x, w, values(rng, (wshape[1] * groups,))) if bias else (x, w)
    desc = f"x{xshape} w{wshape}{' +b' if bias else ''} {kwargs}"
    return Sample(args, kwargs, desc)


def _conv_transpose1d_samples(rng):
    c = _tconv_case
    out = [
        c(rng, (2, 3, 4), (3, 2, 3)),
        c(rng, (2, 3, 4), (3, 2, 3), False, stride=2, padding=1),
        c(rng, (1, 2, 5), (2, 3, 3), stride=3, padding=1, output_padding=2),
        c(rng, (1, 2, 4), (2, 2, 2), dilation=2, padding=1),
        c(rng, (2, 4, 3), (4, 1, 3), groups=2, stride=2, output_padding=1),
        c(rng, (1, 2, 4), (2, 1, 2), stride=1, dilation=3, output_padding=2),  # op < dilation
        c(rng, (2, 1, 4), (1, 3, 2), stride=2),  # one input channel
        c(rng, (3, 4), (3, 2, 3), stride=2),  # unbatched
        c(rng, (0, 3, 4), (3, 2, 3)),  # empty batch
    ]
    out.append(
        Sample(
            (values(rng, (2, 3, 4)), values(rng, (3, 2, 2))),
            {"stride": 2},
            "noncontig",
            noncontig=(0, 1),
        )
    )
    return out


def _conv_transpose2d_samples(rng):
    c = _tconv_case
    out = [
        c(rng, (2, 3, 3, 3), (3, 2, 3, 3)),
        c(rng, (1, 2, 3, 4), (2, 3, 3, 2), False, stride=(2, 3), padding=(1, 0)),
        c(rng, (1, 2, 3, 3), (2, 2, 3, 3), stride=2, padding=1, output_padding=1),
        c(rng, (1, 2, 3, 2), (2, 2, 2, 3), stride=(3, 2), output_padding=(2, 1)),
        c(rng, (1, 2, 3, 3), (2, 1, 2, 2), dilation=2, padding=(1, 0)),
        c(rng, (2, 4, 2, 3), (4, 1, 3, 2), groups=2, stride=2),
        c(rng, (1, 3, 3, 3), (3, 1, 2, 2), False, groups=3, stride=2, output_padding=1),
        c(rng, (1, 2, 3, 3), (2, 1, 2, 2), dilation=2, output_padding=1),  # op < dilation
        c(rng, (2, 3, 3), (2, 2, 2, 2), stride=2, padding=1),  # unbatched
        c(rng, (0, 2, 3, 3), (2, 2, 2, 2)),  # empty batch
    ]
    out.append(
        Sample(
            (values(rng, (1, 3, 3, 2)), values(rng, (3, 2, 2, 2)), values(rng, (2,))),
            {"stride": 2},
            "noncontig",
            noncontig=(0, 1),
        )
    )
    return out


def _unfold_samples(rng):
    cases = [
        ((2, 3, 4, 4), dict(kernel_size=2)),
        ((1, 2, 5, 6), dict(kernel_size=(2, 3), dilation=(1, 2), padding=(1, 0), stride=(2, 1))),
        ((2, 2, 5, 5), dict(kernel_size=3, padding=1, stride=2)),
        ((1, 1, 6, 6), dict(kernel_size=2, dilation=2, stride=3)),
        ((2, 4, 4), dict(kernel_size=(3, 2), padding=1)),  # unbatched
        ((0, 2, 4, 4), dict(kernel_size=2)),  # empty batch
    ]
    out = [Sample((values(rng, s),), kw, f"{s} {kw}") for s, kw in cases]
    out.append(
        Sample((values(rng, (1, 2, 4, 3)),), dict(kernel_size=2), "noncontig", noncontig=(0,))
    )
    return out


def _fold_samples(rng):
    cases = [
        ((2, 12, 9), dict(output_size=4, kernel_size=2)),  # overlapping blocks accumulate
        (
            (1, 12, 6),
            dict(
                output_size=(5, 6),
                kernel_size=(2, 3),
                dilation=(1, 2),
                padding=(1, 0),
                stride=(2, 1),
            ),
        ),
        ((2, 18, 9), dict(output_size=(5, 5), kernel_size=3, padding=1, stride=2)),
        ((1, 4, 4), dict(output_size=(6, 6), kernel_size=2, dilation=2, stride=3)),
        ((12, 9), dict(output_size=(4, 4), kernel_size=2)),  # unbatched
        ((0, 8, 9), dict(output_size=4, kernel_size=2)),  # empty batch
    ]
    out = [Sample((values(rng, s),), kw, f"{s} {kw}") for s, kw in cases]
    out.append(
        Sample(
            (values(rng, (1, 8, 4)),),
            dict(output_size=3, kernel_size=2),
            "noncontig",
            noncontig=(0,),
        )
    )
    return out


ROWS = [
    OpSpec(
        "conv1d",
        conv.conv1d,
        _conv_ref,
        _torch_same_quiet(F.conv1d),
        _conv1d_samples,
        fast_gradcheck_above=200,
    ),
    OpSpec(
        "conv2d",
        conv.conv2d,
        _conv_ref,
        _torch_same_quiet(F.conv2d),
        _conv2d_samples,
        fast_gradcheck_above=200,
    ),
    OpSpec(
        "conv_transpose1d",
        conv.conv_transpose1d,
        _conv_transpose_ref,
        F.conv_transpose1d,
        _conv_transpose1d_samples,
        fast_gradcheck_above=200,
    ),
    OpSpec(
        "conv_transpose2d",
        conv.conv_transpose2d,
        _conv_transpose_ref,
        F.conv_transpose2d,
        _conv_transpose2d_samples,
        fast_gradcheck_above=200,
    ),
    OpSpec("unfold", conv.unfold, _unfold_ref, F.unfold, _unfold_samples),
    OpSpec("fold", conv.fold, _fold_ref, F.fold, _fold_samples),
]

NOT_ROWS: dict = {}
