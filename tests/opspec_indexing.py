"""Op-table rows: indexing (retrograd/ops/indexing.py)."""

from __future__ import annotations

import numpy as np
import torch

from tests.opspec_base import OpSpec, Sample, values


def _torch_index(index):
    if isinstance(index, np.ndarray):
        return torch.from_numpy(index)
    if isinstance(index, tuple):
        return tuple(_torch_index(i) for i in index)
    return index


def _getitem_samples(rng):
    idx = [
        ((1,), "int"),
        ((slice(1, 3),), "slice"),
        ((Ellipsis, 1), "ellipsis"),
        ((None, slice(None), 2), "None"),
        ((slice(None, None, -1) if False else slice(None, None, 2), -1), "step + negative int"),
        ((np.array([0, 2, 0]),), "int array with repeats"),
        ((np.array([[0, 1], [2, 2]]), slice(None)), "2-d int array"),
        ((np.array([True, False, True]),), "bool mask rows"),
        ((slice(0, 0),), "empty slice"),
    ]
    out = [Sample((values(rng, (3, 4)),), dict(index=i), d) for i, d in idx]
    x = values(rng, (3, 4))
    out.append(Sample((x,), dict(index=x > 0), "bool mask elements"))
    out.append(Sample((values(rng, (4, 3)),), dict(index=(slice(1, None), 0)), "noncontig",
                      noncontig=(0,)))
    out.append(Sample((values(rng, ()),), dict(index=()), "0-d"))
    return out


ROWS = [
    OpSpec(
        "getitem",
        lambda x, index: x[index],
        lambda x, index: x[index],
        lambda x, index: x[_torch_index(index)],
        _getitem_samples,
    ),
]

NOT_ROWS = {
    "index_put_zeros": "the gradient rule of getitem: covered by getitem's gradgradcheck",
}
