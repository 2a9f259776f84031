"""Op-table rows: shape ops (retrograd/ops/movement.py)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import retrograd as rg
from tests.opspec_base import OpSpec, Sample, values


# -- NumPy references ----------------------------------------------------------------------------
def _np_squeeze(x, dim):
    if dim is None:
        return np.squeeze(x)
    dims = (dim,) if isinstance(dim, int) else dim
    if x.ndim == 0:
        return x
    axes = tuple(d % x.ndim for d in dims if x.shape[d] == 1)
    return np.squeeze(x, axes)


def _np_flatten(x, start_dim, end_dim):
    if x.ndim == 0:
        return x.reshape(1)
    s, e = start_dim % x.ndim, end_dim % x.ndim
    return (
        x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1 :])
        if x.size
        else x.reshape(x.shape[:s] + (int(np.prod(x.shape[s : e + 1])),) + x.shape[e + 1 :])
    )


def _np_unflatten(x, dim, sizes):
    d = dim % x.ndim
    return x.reshape(x.shape[:d] + tuple(sizes) + x.shape[d + 1 :])


def _np_t(x):
    return x.T


def _np_flip(x, dims):
    return np.flip(x, dims) if x.ndim else x


def _np_roll(x, shifts, dims):
    return np.roll(x, shifts, dims) if x.ndim else x


def _np_cat(*xs, dim):
    nd = max(x.ndim for x in xs)
    keep = [x for x in xs if x.ndim == nd] if any(x.shape != (0,) for x in xs) else list(xs)
    return np.concatenate(keep, dim)


def _np_split_sizes(n, split):
    if isinstance(split, (list, tuple)):
        return list(split)
    count = max(-(-n // split), 1) if split else 1
    return [split] * (count - 1) + [n - split * (count - 1)]


def _np_pieces(x, sizes, dim):
    bounds = np.cumsum(sizes)[:-1]
    return tuple(np.split(x, bounds, axis=dim))


def _np_split(x, split_size_or_sections, dim):
    return _np_pieces(x, _np_split_sizes(x.shape[dim], split_size_or_sections), dim)


def _np_chunk(x, chunks, dim):
    n = x.shape[dim]
    if n == 0:
        return _np_pieces(x, [0] * chunks, dim)
    return _np_split(x, -(-n // chunks), dim)


def _np_unbind(x, dim):
    return tuple(np.take(x, i, axis=dim) for i in range(x.shape[dim]))


def _np_narrow(x, dim, start, length):
    n = x.shape[dim]
    start = start % n if start < 0 else start
    index = [slice(None)] * x.ndim
    index[dim] = slice(start, start + length)
    return x[tuple(index)]


_NP_MODE = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _np_pad(x, pad, mode="constant", value=None):
    nd = x.ndim
    if nd == 0:
        return x.copy()
    crop = [slice(None)] * nd
    widths = [(0, 0)] * nd
    for i in range(len(pad) // 2):
        d = nd - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        crop[d] = slice(max(-lo, 0), x.shape[d] - max(-hi, 0))
        widths[d] = (max(lo, 0), max(hi, 0))
    x = x[tuple(crop)]
    if mode == "constant":
        return np.pad(x, widths, constant_values=0 if value is None else value)
    return np.pad(x, widths, mode=_NP_MODE[mode])


def _np_movedim(x, source, destination):
    return np.moveaxis(x, source, destination) if x.ndim else x


def _np_atleast_3d(x):
    if x.ndim == 0:
        return x.reshape(1, 1, 1)
    if x.ndim == 1:
        return x.reshape(1, -1, 1)
    if x.ndim == 2:
        return x[..., None]
    return x


# -- samples -------------------------------------------------------------------------------------
def _shape_samples(rng):
    return [
        Sample((values(rng, (2, 3, 4)),), dict(shape=(6, 4)), "(2,3,4)->(6,4)"),
        Sample((values(rng, (2, 3, 4)),), dict(shape=(-1,)), "flatten -1"),
        Sample((values(rng, (2, 3, 4)),), dict(shape=(4, -1, 2)), "-1 in the middle"),
        Sample((values(rng, ()),), dict(shape=(1, 1)), "0-d"),
        Sample((values(rng, (1, 1)),), dict(shape=()), "to 0-d"),
        Sample((values(rng, (0, 3)),), dict(shape=(3, 0)), "empty"),
        Sample((values(rng, (2, 3)),), dict(shape=(2, 3)), "same shape"),
        Sample((values(rng, (4, 3)),), dict(shape=(2, 6)), "noncontig", noncontig=(0,)),
    ]


def _reshape_copy_samples(rng):
    # a transposed-storage input cannot be viewed as (12,): reshape copies
    return _shape_samples(rng) + [
        Sample((values(rng, (4, 3)),), dict(shape=(3, 4)), "noncontig copy", noncontig=(0,)),
    ]


def _flatten_samples(rng):
    return [
        Sample((values(rng, (2, 3, 4)),), dict(start_dim=0, end_dim=-1), "all"),
        Sample((values(rng, (2, 3, 4)),), dict(start_dim=1, end_dim=-1), "start=1"),
        Sample((values(rng, (2, 3, 4)),), dict(start_dim=0, end_dim=1), "0..1"),
        Sample((values(rng, (2, 3, 4)),), dict(start_dim=-2, end_dim=-2), "one dim"),
        Sample((values(rng, ()),), dict(start_dim=0, end_dim=-1), "0-d"),
        Sample((values(rng, (0, 3)),), dict(start_dim=0, end_dim=1), "empty"),
        Sample((values(rng, (4, 3)),), dict(start_dim=0, end_dim=1), "noncontig", noncontig=(0,)),
    ]


def _unflatten_samples(rng):
    return [
        Sample((values(rng, (2, 6)),), dict(dim=1, sizes=(2, 3)), "dim=1"),
        Sample((values(rng, (2, 6)),), dict(dim=-1, sizes=(3, -1)), "dim=-1 with -1"),
        Sample((values(rng, (2, 6)),), dict(dim=0, sizes=(1, 2)), "dim=0"),
        Sample((values(rng, (0, 6)),), dict(dim=1, sizes=(2, 3)), "empty"),
        Sample((values(rng, (4, 6)),), dict(dim=1, sizes=(3, 2)), "noncontig", noncontig=(0,)),
    ]


def _squeeze_samples(rng):
    out = [
        Sample((values(rng, (1, 3, 1, 2)),), dict(dim=d), f"dim={d}")
        for d in (None, 0, 2, -1, -4, (0, 2), (1, 3))
    ]
    return out + [
        Sample((values(rng, ()),), dict(dim=None), "0-d"),
        Sample((values(rng, ()),), dict(dim=0), "0-d dim=0"),
        Sample((values(rng, (0, 1)),), dict(dim=1), "empty"),
        Sample((values(rng, (4, 1, 3)),), dict(dim=1), "noncontig", noncontig=(0,)),
    ]


def _unsqueeze_samples(rng):
    return [Sample((values(rng, (3, 4)),), dict(dim=d), f"dim={d}") for d in (0, 1, 2, -1, -3)] + [
        Sample((values(rng, ()),), dict(dim=0), "0-d"),
        Sample((values(rng, (0, 4)),), dict(dim=1), "empty"),
        Sample((values(rng, (4, 3)),), dict(dim=1), "noncontig", noncontig=(0,)),
    ]


def _perm_samples(rng):
    return [
        Sample((values(rng, (2, 3, 4)),), dict(dims=(2, 0, 1)), "3-d"),
        Sample((values(rng, (2, 3, 4)),), dict(dims=(-1, 1, 0)), "negative dims"),
        Sample((values(rng, (3, 4)),), dict(dims=(1, 0)), "noncontig", noncontig=(0,)),
        Sample((values(rng, ()),), dict(dims=()), "0-d"),
        Sample((values(rng, (0, 2)),), dict(dims=(1, 0)), "empty"),
    ]


def _transpose_samples(rng):
    return [
        Sample((values(rng, (2, 3, 4)),), dict(dim0=0, dim1=2), "0,2"),
        Sample((values(rng, (2, 3, 4)),), dict(dim0=-1, dim1=-2), "-1,-2"),
        Sample((values(rng, (2, 3)),), dict(dim0=1, dim1=1), "same dim"),
        Sample((values(rng, ()),), dict(dim0=0, dim1=-1), "0-d"),
        Sample((values(rng, (3, 4)),), dict(dim0=0, dim1=1), "noncontig", noncontig=(0,)),
        Sample((values(rng, (0, 4)),), dict(dim0=0, dim1=1), "empty"),
    ]


def _t_samples(rng):
    return [
        Sample((values(rng, (3, 4)),), {}, "2-d"),
        Sample((values(rng, (4,)),), {}, "1-d"),
        Sample((values(rng, ()),), {}, "0-d"),
        Sample((values(rng, (0, 2)),), {}, "empty"),
        Sample((values(rng, (4, 3)),), {}, "noncontig", noncontig=(0,)),
    ]


def _movedim_samples(rng):
    return [
        Sample((values(rng, (2, 3, 4)),), dict(source=0, destination=2), "0->2"),
        Sample((values(rng, (2, 3, 4)),), dict(source=-1, destination=0), "-1->0"),
        Sample((values(rng, (2, 3, 4)),), dict(source=(0, 1), destination=(2, 0)), "tuples"),
        Sample((values(rng, (2, 3, 4)),), dict(source=(0, -1), destination=(-1, 0)), "swap"),
        Sample((values(rng, ()),), dict(source=0, destination=0), "0-d"),
        Sample((values(rng, (0, 3)),), dict(source=0, destination=1), "empty"),
        Sample((values(rng, (4, 3)),), dict(source=1, destination=0), "noncontig", noncontig=(0,)),
    ]


def _broadcast_samples(rng):
    return [
        Sample((values(rng, (3, 1)),), dict(shape=(2, 3, 4)), "(3,1)->(2,3,4)"),
        Sample((values(rng, ()),), dict(shape=(3,)), "0-d"),
        Sample((values(rng, ()),), dict(shape=()), "0-d to 0-d"),
        Sample((values(rng, (1, 4)),), dict(shape=(0, 4)), "empty"),
        Sample((values(rng, (2, 3)),), dict(shape=(1, 2, 3)), "new leading 1"),
        Sample((values(rng, (2, 3)),), dict(shape=(2, 3)), "same shape"),
        Sample((values(rng, (4, 1)),), dict(shape=(4, 3)), "noncontig", noncontig=(0,)),
    ]


def _expand_samples(rng):
    return _broadcast_samples(rng) + [
        Sample((values(rng, (3, 1)),), dict(shape=(2, -1, 4)), "-1 keeps"),
        Sample((values(rng, (3, 1)),), dict(shape=(-1, -1)), "all -1"),
    ]


def _expand_ref(x, shape):
    lead = len(shape) - x.ndim
    full = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    return np.broadcast_to(x, full)


def _repeat_samples(rng):
    return [
        Sample((values(rng, (2, 3)),), dict(sizes=(2, 1)), "(2,1)"),
        Sample((values(rng, (2, 3)),), dict(sizes=(1, 2, 2)), "leading dim"),
        Sample((values(rng, (2, 3)),), dict(sizes=(1, 1)), "all ones"),
        Sample((values(rng, (2, 3)),), dict(sizes=(0, 2)), "zero repeat"),
        Sample((values(rng, ()),), dict(sizes=(3,)), "0-d"),
        Sample((values(rng, ()),), dict(sizes=()), "0-d no sizes", torch=False),
        Sample((values(rng, (0, 2)),), dict(sizes=(2, 2)), "empty"),
        Sample((values(rng, (4, 3)),), dict(sizes=(2, 1)), "noncontig", noncontig=(0,)),
    ]


def _tile_samples(rng):
    return [
        Sample((values(rng, (2, 3)),), dict(dims=(2,)), "fewer dims"),
        Sample((values(rng, (3,)),), dict(dims=(2, 2)), "more dims"),
        Sample((values(rng, (2, 3)),), dict(dims=(2, 2)), "same"),
        Sample((values(rng, ()),), dict(dims=(2,)), "0-d"),
        Sample((values(rng, (0, 2)),), dict(dims=(2,)), "empty"),
        Sample((values(rng, (4, 3)),), dict(dims=(1, 2)), "noncontig", noncontig=(0,)),
    ]


def _flip_samples(rng):
    return [
        Sample((values(rng, (2, 3, 4)),), dict(dims=(0,)), "dim 0"),
        Sample((values(rng, (2, 3, 4)),), dict(dims=(0, 2)), "dims 0,2"),
        Sample((values(rng, (2, 3, 4)),), dict(dims=(-1,)), "dim -1"),
        Sample((values(rng, (2, 3)),), dict(dims=()), "no dims"),
        Sample((values(rng, ()),), dict(dims=(0,)), "0-d"),
        Sample((values(rng, (0, 3)),), dict(dims=(1,)), "empty"),
        Sample((values(rng, (4, 3)),), dict(dims=(0, 1)), "noncontig", noncontig=(0,)),
    ]


def _roll_samples(rng):
    return [
        Sample((values(rng, (2, 3, 4)),), dict(shifts=1, dims=0), "dim 0"),
        Sample((values(rng, (2, 3, 4)),), dict(shifts=(1, -2), dims=(0, 2)), "two dims"),
        Sample((values(rng, (2, 3, 4)),), dict(shifts=-1, dims=-1), "dim -1"),
        Sample((values(rng, (2, 3, 4)),), dict(shifts=5, dims=None), "flattened"),
        Sample((values(rng, (2, 3)),), dict(shifts=(1, 1), dims=(1, 1)), "same dim twice"),
        Sample((values(rng, ()),), dict(shifts=1, dims=None), "0-d"),
        Sample((values(rng, (0, 3)),), dict(shifts=1, dims=1), "empty"),
        Sample((values(rng, (4, 3)),), dict(shifts=2, dims=1), "noncontig", noncontig=(0,)),
    ]


def _cat_samples(rng):
    x = values(rng, (2, 3))
    return [
        Sample((values(rng, (2, 3)), values(rng, (1, 3))), dict(dim=0), "dim 0"),
        Sample((values(rng, (2, 3)), values(rng, (2, 2))), dict(dim=1), "dim 1"),
        Sample(
            (values(rng, (2, 3)), values(rng, (2, 1)), values(rng, (2, 2))),
            dict(dim=-1),
            "three, dim -1",
        ),
        Sample((values(rng, (2, 3, 2)), values(rng, (2, 1, 2))), dict(dim=1), "3-d"),
        Sample((x, x), dict(dim=0), "repeated input cat([x, x])"),
        Sample((values(rng, (2, 3)),), dict(dim=0), "one tensor"),
        Sample((values(rng, (0, 3)), values(rng, (2, 3))), dict(dim=0), "empty"),
        Sample((values(rng, (2, 3)), values(rng, (0,))), dict(dim=1), "legacy 1-d empty"),
        Sample(
            (values(rng, (4, 3)), values(rng, (4, 2))), dict(dim=1), "noncontig", noncontig=(0, 1)
        ),
    ]


def _stack_samples(rng):
    x = values(rng, (2, 3))
    out = [
        Sample((values(rng, (2, 3)), values(rng, (2, 3))), dict(dim=d), f"dim={d}")
        for d in (0, 1, 2, -1, -3)
    ]
    return out + [
        Sample((x, x), dict(dim=0), "repeated input stack([x, x])"),
        Sample((values(rng, ()), values(rng, ()), values(rng, ())), dict(dim=0), "0-d"),
        Sample((values(rng, (0, 3)), values(rng, (0, 3))), dict(dim=1), "empty"),
        Sample(
            (values(rng, (4, 3)), values(rng, (4, 3))), dict(dim=1), "noncontig", noncontig=(0,)
        ),
    ]


def _split_samples(rng):
    return [
        Sample((values(rng, (5, 2)),), dict(split_size_or_sections=2, dim=0), "uneven"),
        Sample((values(rng, (5, 2)),), dict(split_size_or_sections=5, dim=0), "one piece"),
        Sample((values(rng, (5, 2)),), dict(split_size_or_sections=7, dim=0), "bigger than dim"),
        Sample((values(rng, (5, 2)),), dict(split_size_or_sections=[1, 3, 1], dim=0), "sections"),
        Sample(
            (values(rng, (5, 2)),), dict(split_size_or_sections=[2, 0, 3], dim=0), "zero section"
        ),
        Sample((values(rng, (2, 5)),), dict(split_size_or_sections=3, dim=-1), "dim -1"),
        Sample((values(rng, (0, 2)),), dict(split_size_or_sections=2, dim=0), "empty"),
        Sample((values(rng, (0, 2)),), dict(split_size_or_sections=0, dim=0), "empty size 0"),
        Sample(
            (values(rng, (4, 3)),),
            dict(split_size_or_sections=2, dim=1),
            "noncontig",
            noncontig=(0,),
        ),
    ]


def _chunk_samples(rng):
    return [
        Sample((values(rng, (5, 2)),), dict(chunks=3, dim=0), "5 in 3"),
        Sample((values(rng, (6, 2)),), dict(chunks=4, dim=0), "6 in 4 (3 pieces)"),
        Sample((values(rng, (5, 2)),), dict(chunks=5, dim=0), "5 in 5"),
        Sample((values(rng, (2, 5)),), dict(chunks=2, dim=-1), "dim -1"),
        Sample((values(rng, (2, 2)),), dict(chunks=4, dim=0), "more chunks than rows"),
        Sample((values(rng, (0, 2)),), dict(chunks=3, dim=0), "empty"),
        Sample((values(rng, (4, 3)),), dict(chunks=2, dim=1), "noncontig", noncontig=(0,)),
    ]


def _unbind_samples(rng):
    return [
        Sample((values(rng, (3, 4)),), dict(dim=0), "dim 0"),
        Sample((values(rng, (3, 4)),), dict(dim=1), "dim 1"),
        Sample((values(rng, (2, 3, 4)),), dict(dim=-2), "dim -2"),
        Sample((values(rng, (3,)),), dict(dim=0), "1-d"),
        Sample((values(rng, (0, 3)),), dict(dim=1), "empty"),
        Sample((values(rng, (4, 3)),), dict(dim=1), "noncontig", noncontig=(0,)),
    ]


def _narrow_samples(rng):
    return [
        Sample((values(rng, (4, 3)),), dict(dim=0, start=1, length=2), "dim 0"),
        Sample((values(rng, (4, 3)),), dict(dim=-1, start=-2, length=2), "negative"),
        Sample((values(rng, (4, 3)),), dict(dim=1, start=3, length=0), "length 0"),
        Sample((values(rng, (4, 3)),), dict(dim=0, start=0, length=4), "whole"),
        Sample((values(rng, (0, 3)),), dict(dim=1, start=1, length=1), "empty"),
        Sample((values(rng, (4, 3)),), dict(dim=1, start=1, length=2), "noncontig", noncontig=(0,)),
    ]


def _pad_samples(rng):
    c, r = "constant", "reflect"
    cases = [
        ((2, 3), (1, 2), c, None, "constant last dim"),
        ((2, 3, 4), (1, 0, 2, 1), c, 0.5, "constant two dims, value"),
        ((2, 3), (-1, 1), c, None, "constant negative crops"),
        ((2, 3), (1, 1, -1, 0), c, None, "constant crop + pad"),
        ((2, 3), (-1, -2), c, None, "constant crop to empty"),
        ((2, 3), (0, 0), c, None, "zero pads"),
        ((3,), (2, 1), c, None, "1-d"),
        ((), (), c, None, "0-d"),
        ((0, 3), (1, 1, 1, 0), c, None, "empty"),
        ((2, 3), (1, 2), r, None, "reflect"),
        ((1, 2, 3, 4), (1, 2, 2, 1), r, None, "reflect 2-d"),
        ((1, 2, 3, 3, 4), (1, 2, 2, 1, 1, 1), r, None, "reflect 3-d"),
        ((2, 4), (-1, 2), r, None, "reflect crop"),
        ((2, 3), (0, 0), r, None, "reflect zero pads"),
        ((2, 3), (2, 1), "replicate", None, "replicate"),
        ((1, 2, 3, 4), (1, 2, 0, 3), "replicate", None, "replicate 2-d"),
        ((2, 3, 2, 2, 2), (1, 1, 1, 0, 0, 1), "replicate", None, "replicate 3-d"),
        ((2, 4), (2, -3), "replicate", None, "replicate crop"),
        ((2, 3), (1, 2), "circular", None, "circular"),
        ((1, 2, 3, 4), (3, 1, 2, 2), "circular", None, "circular 2-d"),
        ((2, 3), (-1, 2), "circular", None, "circular crop"),
    ]
    out = []
    for shape, p, mode, value, desc in cases:
        kw = dict(pad=p, mode=mode, value=value)
        out.append(Sample((values(rng, shape),), kw, desc))
    out += [
        Sample(
            (values(rng, (4, 3)),),
            dict(pad=(1, 2, 0, 1), mode=c, value=None),
            "noncontig constant",
            noncontig=(0,),
        ),
        Sample(
            (values(rng, (3, 4, 3)),),
            dict(pad=(2, 1, 1, 2), mode=r, value=None),
            "noncontig reflect",
            noncontig=(0,),
        ),
        # beyond PyTorch: reflect/replicate/circular on any number of dims
        Sample(
            (values(rng, (4,)),),
            dict(pad=(2, 1), mode=r, value=None),
            "reflect 1-d input",
            torch=False,
        ),
        Sample(
            (values(rng, (3, 4)),),
            dict(pad=(1, 1, 2, 1), mode="replicate", value=None),
            "replicate all dims",
            torch=False,
        ),
    ]
    return out


def _tri_samples(rng):
    return [
        Sample((values(rng, (4, 4)),), dict(diagonal=0), "square"),
        Sample((values(rng, (4, 4)),), dict(diagonal=1), "k=1"),
        Sample((values(rng, (4, 4)),), dict(diagonal=-1), "k=-1"),
        Sample((values(rng, (3, 5)),), dict(diagonal=2), "wide k=2"),
        Sample((values(rng, (3, 5)),), dict(diagonal=10), "k beyond"),
        Sample((values(rng, (2, 3, 4)),), dict(diagonal=0), "batched"),
        Sample((values(rng, (0, 3)),), dict(diagonal=0), "empty"),
        Sample((values(rng, (4, 3)),), dict(diagonal=-1), "noncontig", noncontig=(0,)),
    ]


def _diagonal_samples(rng):
    return [
        Sample((values(rng, (3, 4)),), dict(offset=0, dim1=0, dim2=1), "default"),
        Sample((values(rng, (3, 4)),), dict(offset=1, dim1=0, dim2=1), "offset 1"),
        Sample((values(rng, (3, 4)),), dict(offset=-1, dim1=0, dim2=1), "offset -1"),
        Sample((values(rng, (3, 4)),), dict(offset=1, dim1=1, dim2=0), "dims swapped"),
        Sample((values(rng, (3, 4)),), dict(offset=5, dim1=0, dim2=1), "offset beyond"),
        Sample((values(rng, (2, 3, 4)),), dict(offset=0, dim1=1, dim2=2), "batched"),
        Sample((values(rng, (2, 3, 4)),), dict(offset=1, dim1=-1, dim2=0), "negative dims"),
        Sample((values(rng, (0, 3)),), dict(offset=0, dim1=0, dim2=1), "empty"),
        Sample((values(rng, (4, 3)),), dict(offset=0, dim1=0, dim2=1), "noncontig", noncontig=(0,)),
    ]


def _atleast_samples(rng):
    return [
        Sample((values(rng, s),), {}, f"shape={s}") for s in ((), (3,), (2, 3), (2, 3, 2), (0,))
    ] + [Sample((values(rng, (4, 3)),), {}, "noncontig", noncontig=(0,))]


ROWS = [
    OpSpec(
        "reshape",
        lambda x, shape: rg.reshape(x, shape),
        lambda x, shape: np.reshape(x, shape),
        lambda x, shape: torch.reshape(x, shape),
        _reshape_copy_samples,
    ),
    OpSpec(
        "view",
        lambda x, shape: x.view(*shape),
        lambda x, shape: np.reshape(x, shape),
        lambda x, shape: x.view(shape),
        _shape_samples,
    ),
    OpSpec("flatten", rg.flatten, _np_flatten, torch.flatten, _flatten_samples),
    OpSpec("unflatten", rg.unflatten, _np_unflatten, torch.unflatten, _unflatten_samples),
    OpSpec(
        "squeeze",
        rg.squeeze,
        _np_squeeze,
        lambda x, dim: x.squeeze() if dim is None else x.squeeze(dim),
        _squeeze_samples,
    ),
    OpSpec(
        "unsqueeze",
        rg.unsqueeze,
        lambda x, dim: np.expand_dims(x, dim),
        torch.unsqueeze,
        _unsqueeze_samples,
    ),
    OpSpec(
        "permute",
        lambda x, dims: rg.permute(x, *dims),
        lambda x, dims: np.transpose(x, dims),
        lambda x, dims: x.permute(dims),
        _perm_samples,
    ),
    OpSpec(
        "transpose",
        rg.transpose,
        lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1) if x.ndim else x,
        torch.transpose,
        _transpose_samples,
    ),
    OpSpec(
        "swapaxes",
        rg.swapaxes,
        lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1) if x.ndim else x,
        lambda x, dim0, dim1: torch.swapaxes(x, dim0, dim1),
        _transpose_samples,
    ),
    OpSpec("t", rg.t, _np_t, torch.t, _t_samples),
    OpSpec("movedim", rg.movedim, _np_movedim, torch.movedim, _movedim_samples),
    OpSpec("moveaxis", rg.moveaxis, _np_movedim, torch.moveaxis, _movedim_samples),
    OpSpec(
        "broadcast_to",
        rg.broadcast_to,
        np.broadcast_to,
        lambda x, shape: torch.broadcast_to(x, shape),
        _broadcast_samples,
    ),
    OpSpec(
        "expand",
        lambda x, shape: rg.expand(x, *shape),
        _expand_ref,
        lambda x, shape: x.expand(shape),
        _expand_samples,
    ),
    OpSpec(
        "repeat",
        lambda x, sizes: rg.repeat(x, *sizes),
        lambda x, sizes: np.tile(x, sizes),
        lambda x, sizes: x.repeat(*sizes),
        _repeat_samples,
    ),
    OpSpec(
        "tile",
        lambda x, dims: rg.tile(x, *dims),
        lambda x, dims: np.tile(x, dims),
        torch.tile,
        _tile_samples,
    ),
    OpSpec("flip", lambda x, dims: rg.flip(x, *dims), _np_flip, torch.flip, _flip_samples),
    OpSpec("roll", rg.roll, _np_roll, torch.roll, _roll_samples),
    OpSpec(
        "cat",
        lambda *xs, dim: rg.cat(list(xs), dim),
        _np_cat,
        lambda *xs, dim: torch.cat(xs, dim),
        _cat_samples,
    ),
    OpSpec(
        "concat",
        lambda *xs, dim: rg.concat(list(xs), dim=dim),
        _np_cat,
        lambda *xs, dim: torch.concat(xs, dim=dim),
        _cat_samples,
    ),
    OpSpec(
        "concatenate",
        lambda *xs, dim: rg.concatenate(xs, axis=dim),
        _np_cat,
        lambda *xs, dim: torch.concatenate(xs, axis=dim),
        _cat_samples,
    ),
    OpSpec(
        "stack",
        lambda *xs, dim: rg.stack(list(xs), dim),
        lambda *xs, dim: np.stack(xs, dim),
        lambda *xs, dim: torch.stack(xs, dim),
        _stack_samples,
    ),
    OpSpec("split", rg.split, _np_split, torch.split, _split_samples),
    OpSpec("chunk", rg.chunk, _np_chunk, torch.chunk, _chunk_samples),
    OpSpec("unbind", rg.unbind, _np_unbind, torch.unbind, _unbind_samples),
    OpSpec("narrow", rg.narrow, _np_narrow, torch.narrow, _narrow_samples),
    OpSpec("pad", rg.pad, _np_pad, F.pad, _pad_samples),
    OpSpec("triu", rg.triu, lambda x, diagonal: np.triu(x, diagonal), torch.triu, _tri_samples),
    OpSpec("tril", rg.tril, lambda x, diagonal: np.tril(x, diagonal), torch.tril, _tri_samples),
    OpSpec(
        "diagonal",
        rg.diagonal,
        lambda x, offset, dim1, dim2: np.diagonal(x, offset, dim1, dim2),
        torch.diagonal,
        _diagonal_samples,
    ),
    OpSpec("atleast_1d", rg.atleast_1d, np.atleast_1d, torch.atleast_1d, _atleast_samples),
    OpSpec("atleast_2d", rg.atleast_2d, np.atleast_2d, torch.atleast_2d, _atleast_samples),
    OpSpec("atleast_3d", rg.atleast_3d, _np_atleast_3d, torch.atleast_3d, _atleast_samples),
]
