"""Op-table rows: reductions and the softmax family (retrograd/ops/reduce.py)."""

from __future__ import annotations

import numpy as np
import torch

import retrograd as rg
from tests.opspec_base import OpSpec, reduce_samples


def _np_dims(kw):
    d = kw.get("dim")
    return dict(axis=tuple(d) if isinstance(d, tuple) else d, keepdims=kw.get("keepdim", False))


def _torch_dims(kw):
    out = dict(kw)
    if out.get("dim") is None:
        out.pop("dim", None)
        if not out.pop("keepdim", False):
            return out
        out["dim"] = None
        out["keepdim"] = True
    return out


ROWS = [
    OpSpec(
        "sum",
        rg.sum,
        lambda x, **kw: np.sum(x, **_np_dims(kw)),
        lambda x, **kw: torch.sum(x, **_torch_dims(kw)),
        reduce_samples(),
    ),
    OpSpec(
        "mean",
        rg.mean,
        lambda x, **kw: np.mean(x, **_np_dims(kw)),
        lambda x, **kw: torch.mean(x, **_torch_dims(kw)),
        reduce_samples(empty=False),
    ),
]
