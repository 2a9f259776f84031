"""Op-table rows: indexing (retrograd/ops/indexing.py)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import retrograd as rg
from tests.opspec_base import OpSpec, Sample, values


def _torch_index(index):
    if isinstance(index, np.ndarray):
        return torch.from_numpy(index)
    if isinstance(index, tuple):
        return tuple(_torch_index(i) for i in index)
    return index


def _int(rng, high, shape):
    return rng.integers(0, high, size=shape).astype(np.int64)


def _along(index, dim):
    """NumPy's advanced index picking x[..., index[i], ...] at the positions i of index."""
    nd = index.ndim
    return tuple(
        index if a == dim else np.arange(n).reshape((n,) + (1,) * (nd - 1 - a))
        for a, n in enumerate(index.shape)
    )


def _unique_along(rng, size, shape, dim):
    """An index of `shape` whose entries along dim are distinct (deterministic scatter)."""
    moved = list(shape)
    k = moved.pop(dim)
    rows = [rng.permutation(size)[:k] for _ in range(int(np.prod(moved)))]
    out = np.array(rows, dtype=np.int64).reshape(moved + [k])
    return np.moveaxis(out, -1, dim)


# -- getitem -------------------------------------------------------------------------------------
def _getitem_samples(rng):
    idx = [
        ((1,), "int"),
        ((slice(1, 3),), "slice"),
        ((Ellipsis, 1), "ellipsis"),
        ((None, slice(None), 2), "None"),
        ((slice(None, None, 2), -1), "step + negative int"),
        ((-2, slice(-3, None)), "negative int and slice"),
        ((1, 2), "all ints: a 0-d view"),
        ((np.array([0, 2, 0]),), "int array with repeats"),
        ((np.array([-1, 0, -1]),), "negative int array with repeats"),
        ((np.array([[0, 1], [2, 2]]), slice(None)), "2-d int array"),
        ((np.array([0, 2]), np.array([3, 3])), "two int arrays, repeated position"),
        ((np.array([[0], [2]]), slice(1, 3), np.array([1, 1])), "int arrays split by a slice"),
        ((np.array([True, False, True]),), "bool mask rows"),
        ((slice(None), np.array([False, True, True, False])), "bool mask columns"),
        ((np.array([True, False, True]), np.array([1, 3])), "bool mask with int array"),
        ((slice(0, 0),), "empty slice"),
        ((np.array([], dtype=np.int64),), "empty int array"),
    ]
    out = [Sample((values(rng, (3, 4, 2)),), dict(index=i), d) for i, d in idx]
    x = values(rng, (3, 4))
    out.append(Sample((x,), dict(index=x > 0), "bool mask elements"))
    out.append(Sample((values(rng, (3, 4)), np.array([2, 0, 2])), {}, "index Tensor"))
    out.append(
        Sample((values(rng, (4, 3)),), dict(index=(slice(1, None), 0)), "noncontig", noncontig=(0,))
    )
    out.append(Sample((values(rng, ()),), dict(index=()), "0-d"))
    out.append(Sample((values(rng, ()),), dict(index=None), "0-d with None"))
    out.append(Sample((values(rng, (0, 3)),), dict(index=(slice(None), 1)), "empty input"))
    return out


# -- setitem -------------------------------------------------------------------------------------
def _rg_setitem(x, v, index):
    y = x * 1
    y[index] = v
    return y


def _torch_setitem(x, v, index):
    y = x.clone()
    y[_torch_index(index)] = v
    return y


def _np_setitem(x, v, index):
    y = x.copy()
    y[index] = v
    return y


def _setitem_samples(rng):
    cases = [
        ((3, 4), (1,), (4,), "int, row value"),
        ((3, 4), (slice(1, 3), 2), (2,), "slice and int"),
        ((3, 4), (slice(None), slice(1, 3)), (3, 1), "broadcast value"),
        ((3, 4), (Ellipsis,), (), "0-d value everywhere"),
        ((3, 4), (0,), (1, 4), "value with a leading 1-dim"),
        ((3, 4), (np.array([2, 0]),), (2, 4), "int array"),
        ((3, 4), (np.array([-1, 0]), np.array([1, 3])), (2,), "two int arrays, negative"),
        ((3, 4), (np.array([True, False, True]),), (4,), "bool mask rows, broadcast"),
        ((3, 4), (slice(0, 0),), (4,), "empty"),
        ((), (), (), "0-d"),
    ]
    out = [Sample((values(rng, s), values(rng, vs)), dict(index=i), d) for s, i, vs, d in cases]
    x = values(rng, (3, 4))
    out.append(Sample((x, values(rng, (int((x > 0).sum()),))), dict(index=x > 0), "bool mask"))
    out.append(Sample((values(rng, (3, 4)), 0.5), dict(index=(x < 0,)), "scalar value"))
    x = values(rng, (3, 4))
    out.append(Sample((x, x), dict(index=Ellipsis), "repeated input f(x, x)"))
    out.append(
        Sample(
            (values(rng, (4, 3)), values(rng, (3,))),
            dict(index=1),
            "noncontig",
            noncontig=(0, 1),
        )
    )
    return out


# -- index_select --------------------------------------------------------------------------------
def _np_index_select(x, index, dim):
    if x.ndim == 0:
        return x.copy()
    return np.take(x, index.reshape(-1), axis=dim)


def _index_select_samples(rng):
    out = []
    for dim in (0, 1, 2, -1):
        x = values(rng, (3, 4, 2))
        out.append(Sample((x, _int(rng, x.shape[dim], (5,))), dict(dim=dim), f"dim={dim} repeats"))
    out.append(Sample((values(rng, (3, 4)), np.array(2)), dict(dim=0), "0-d index"))
    out.append(
        Sample((values(rng, (3, 4)), np.array([], dtype=np.int64)), dict(dim=1), "empty index")
    )
    out.append(Sample((values(rng, ()), np.array([0])), dict(dim=0), "0-d input"))
    out.append(
        Sample((values(rng, (4, 3)), np.array([2, 0])), dict(dim=1), "noncontig", noncontig=(0,))
    )
    return out


# -- gather, take_along_dim ----------------------------------------------------------------------
def _np_gather(x, index, dim):
    if x.ndim <= 1 and index.ndim <= 1:
        return x.reshape(-1)[index]
    return x[_along(index, dim % x.ndim)]


def _gather_samples(rng):
    out = []
    for dim in (0, 1, -1):
        x = values(rng, (3, 4))
        out.append(
            Sample(
                (x, _int(rng, x.shape[dim], (5, 4) if dim == 0 else (3, 6))),
                dict(dim=dim),
                f"dim={dim} repeats",
            )
        )
    x = values(rng, (3, 4, 2))
    out.append(Sample((x, _int(rng, 4, (2, 3, 1))), dict(dim=1), "index smaller than input"))
    out.append(Sample((values(rng, (5,)), _int(rng, 5, (7,))), dict(dim=0), "1-d"))
    out.append(Sample((values(rng, ()), np.array(0)), dict(dim=0), "0-d"))
    out.append(
        Sample((values(rng, ()), np.zeros(3, np.int64)), dict(dim=-1), "0-d input, 1-d index")
    )
    out.append(
        Sample((values(rng, (3, 4)), np.zeros((0, 4), np.int64)), dict(dim=0), "empty index")
    )
    out.append(
        Sample(
            (values(rng, (4, 3)), _int(rng, 4, (2, 3))), dict(dim=0), "noncontig", noncontig=(0,)
        )
    )
    return out


def _np_take_along_dim(x, indices, dim=None):
    if dim is None:
        return x.reshape(-1)[indices.reshape(-1)]
    return np.take_along_axis(x, indices, axis=dim)


def _take_along_dim_samples(rng):
    out = []
    for dim in (0, 1, -1):
        x = values(rng, (3, 4))
        shape = [3, 4]
        shape[dim] = 5
        out.append(Sample((x, _int(rng, x.shape[dim], shape)), dict(dim=dim), f"dim={dim}"))
    x = values(rng, (3, 4))
    out.append(Sample((x, -_int(rng, 3, (2, 4)) - 1), dict(dim=0), "negative indices"))
    out.append(Sample((values(rng, (3, 1)), _int(rng, 3, (2, 4))), dict(dim=0), "broadcast input"))
    out.append(Sample((values(rng, (3, 4)), _int(rng, 4, (1, 2))), dict(dim=1), "broadcast index"))
    out.append(Sample((values(rng, (3, 4)), _int(rng, 12, (2, 5))), dict(dim=None), "dim=None"))
    out.append(Sample((values(rng, ()), np.array(0)), dict(dim=None), "0-d"))
    out.append(
        Sample(
            (values(rng, (4, 3)), _int(rng, 3, (4, 2))), dict(dim=1), "noncontig", noncontig=(0,)
        )
    )
    return out


# -- scatter, scatter_add ------------------------------------------------------------------------
def _np_scatter(x, index, src, dim):
    out = x.copy()
    if x.ndim == 0:
        out = out.reshape(1)
        index = index.reshape(-1)
    part = src if np.ndim(src) == 0 else src[tuple(slice(0, m) for m in index.shape)]
    out[_along(index, dim % max(x.ndim, 1))] = part
    return out.reshape(x.shape)


def _np_scatter_add(x, index, src, dim):
    out = x.copy()
    part = src[tuple(slice(0, m) for m in index.shape)]
    np.add.at(out, _along(index, dim % x.ndim), part)
    return out


def _scatter_samples(rng):
    out = []
    for dim in (0, 1, -1):
        shape = [2, 3]
        n = (4, 5)[dim]
        index = _unique_along(rng, n, shape, dim)
        out.append(
            Sample((values(rng, (4, 5)), index, values(rng, (2, 3))), dict(dim=dim), f"dim={dim}")
        )
    index = _unique_along(rng, 4, [2, 3], 0)
    # PyTorch's scatter backward rejects a src larger than index: no PyTorch comparison there
    big = values(rng, (3, 5))
    out.append(Sample((values(rng, (4, 5)), index, big), dict(dim=0), "src larger", torch=False))
    out.append(Sample((values(rng, (4, 5)), index, 1.5), dict(dim=0), "scalar value"))
    out.append(
        Sample(
            (values(rng, (4, 5)), np.zeros((0, 3), np.int64), values(rng, (0, 3))),
            dict(dim=0),
            "empty index",
        )
    )
    out.append(Sample((values(rng, ()), np.array(0), values(rng, ())), dict(dim=0), "0-d"))
    out.append(
        Sample(
            (values(rng, (4, 3)), _unique_along(rng, 3, [4, 2], 1), values(rng, (4, 2))),
            dict(dim=1),
            "noncontig",
            noncontig=(0, 2),
        )
    )
    return out


def _scatter_add_samples(rng):
    out = []
    for dim in (0, 1, -1):
        n = (4, 5)[dim]
        out.append(
            Sample(
                (values(rng, (4, 5)), _int(rng, n, (3, 4)), values(rng, (3, 4))),
                dict(dim=dim),
                f"dim={dim} repeats",
            )
        )
    out.append(
        Sample(
            (values(rng, (4, 5)), _int(rng, 4, (2, 3)), values(rng, (3, 5))),
            dict(dim=0),
            "src larger",
            torch=False,
        )
    )
    x = values(rng, (4, 4))
    out.append(Sample((x, _int(rng, 4, (4, 4)), x), dict(dim=1), "repeated input f(x, i, x)"))
    out.append(
        Sample(
            (values(rng, (4, 3)), _int(rng, 4, (3, 3)), values(rng, (3, 3))),
            dict(dim=0),
            "noncontig",
            noncontig=(0, 2),
        )
    )
    return out


# -- masked_fill, one_hot ------------------------------------------------------------------------
def _masked_fill_samples(rng):
    out = []
    pairs = [
        ((3, 4), (3, 4), "same shape"),
        ((3, 4), (3, 1), "broadcast mask"),
        ((4,), (3, 4), "mask broadcasts x"),
        ((), (), "0-d"),
        ((0, 3), (3,), "empty"),
    ]
    for xs, ms, d in pairs:
        mask = np.asarray(rng.random(ms) < 0.5)
        out.append(Sample((values(rng, xs), mask, values(rng, ())), {}, d))
    out.append(Sample((values(rng, (3, 4)), rng.random((3, 4)) < 0.5, -1.5), {}, "scalar value"))
    out.append(
        Sample((values(rng, (3, 4)), np.zeros((3, 4), bool), values(rng, ())), {}, "all False")
    )
    out.append(
        Sample(
            (values(rng, (4, 3)), rng.random((4, 3)) < 0.5, values(rng, ())),
            {},
            "noncontig",
            noncontig=(0,),
        )
    )
    return out


def _np_one_hot(tensor, num_classes=-1):
    n = int(tensor.max()) + 1 if num_classes == -1 else num_classes
    return np.eye(n, dtype=np.int64)[tensor]


def _one_hot_samples(rng):
    return [
        Sample((_int(rng, 4, (5,)),), {}, "inferred classes"),
        Sample((_int(rng, 4, (2, 3)),), dict(num_classes=6), "2-d, num_classes"),
        Sample((np.array(2),), {}, "0-d"),
        Sample((np.zeros(0, np.int64),), dict(num_classes=3), "empty"),
    ]


ROWS = [
    OpSpec(
        "getitem",
        lambda x, index: x[index],
        lambda x, index: x[index],
        lambda x, index: x[_torch_index(index)],
        _getitem_samples,
    ),
    OpSpec("setitem", _rg_setitem, _np_setitem, _torch_setitem, _setitem_samples),
    OpSpec(
        "index_select",
        lambda x, index, dim: rg.index_select(x, dim, index),
        _np_index_select,
        lambda x, index, dim: torch.index_select(x, dim, index),
        _index_select_samples,
    ),
    OpSpec(
        "gather",
        lambda x, index, dim: rg.gather(x, dim, index),
        _np_gather,
        lambda x, index, dim: torch.gather(x, dim, index),
        _gather_samples,
    ),
    OpSpec(
        "take_along_dim",
        lambda x, indices, dim: rg.take_along_dim(x, indices, dim),
        _np_take_along_dim,
        lambda x, indices, dim: torch.take_along_dim(x, indices, dim),
        _take_along_dim_samples,
    ),
    OpSpec(
        "scatter",
        lambda x, index, src, dim: rg.scatter(x, dim, index, src),
        _np_scatter,
        lambda x, index, src, dim: torch.scatter(x, dim, index, src),
        _scatter_samples,
    ),
    OpSpec(
        "scatter_add",
        lambda x, index, src, dim: rg.scatter_add(x, dim, index, src),
        _np_scatter_add,
        lambda x, index, src, dim: torch.scatter_add(x, dim, index, src),
        _scatter_add_samples,
    ),
    OpSpec(
        "masked_fill",
        rg.masked_fill,
        lambda x, mask, value: np.where(mask, value, x),
        torch.masked_fill,
        _masked_fill_samples,
    ),
    OpSpec(
        "one_hot",
        rg.one_hot,
        _np_one_hot,
        F.one_hot,
        _one_hot_samples,
        differentiable=False,
    ),
]

_INPLACE = "an in-place writer: covered by tests/test_inplace.py"
NOT_ROWS = {
    "index_put_zeros": "the gradient rule of getitem: covered by getitem's gradgradcheck",
    "inplace": _INPLACE,
    "fill_": _INPLACE,
    "copy_": _INPLACE,
    "fill_random_": _INPLACE,
    "setitem_": _INPLACE + " (and the setitem row)",
}
