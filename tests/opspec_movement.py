"""Op-table rows: shape ops (retrograd/ops/movement.py)."""

from __future__ import annotations

import numpy as np
import torch

import retrograd as rg
from tests.opspec_base import OpSpec, Sample, values


def _shape_samples(rng):
    return [
        Sample((values(rng, (2, 3, 4)),), dict(shape=(6, 4)), "(2,3,4)->(6,4)"),
        Sample((values(rng, (2, 3, 4)),), dict(shape=(-1,)), "flatten -1"),
        Sample((values(rng, ()),), dict(shape=(1, 1)), "0-d"),
        Sample((values(rng, (0, 3)),), dict(shape=(3, 0)), "empty"),
        Sample((values(rng, (4, 3)),), dict(shape=(2, 6)), "noncontig", noncontig=(0,)),
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
        Sample((values(rng, (3, 4)),), dict(dim0=0, dim1=1), "noncontig", noncontig=(0,)),
        Sample((values(rng, (0, 4)),), dict(dim0=0, dim1=1), "empty"),
    ]


def _unsqueeze_samples(rng):
    return [
        Sample((values(rng, (3, 4)),), dict(dim=d), f"dim={d}") for d in (0, 1, 2, -1, -3)
    ] + [Sample((values(rng, ()),), dict(dim=0), "0-d")]


def _broadcast_samples(rng):
    return [
        Sample((values(rng, (3, 1)),), dict(shape=(2, 3, 4)), "(3,1)->(2,3,4)"),
        Sample((values(rng, ()),), dict(shape=(3,)), "0-d"),
        Sample((values(rng, (1, 4)),), dict(shape=(0, 4)), "empty"),
        Sample((values(rng, (4, 1)),), dict(shape=(4, 3)), "noncontig", noncontig=(0,)),
    ]


ROWS = [
    OpSpec("reshape", lambda x, shape: rg.reshape(x, shape), lambda x, shape: np.reshape(x, shape),
           lambda x, shape: torch.reshape(x, shape), _shape_samples),
    OpSpec("view", lambda x, shape: x.view(*shape), lambda x, shape: np.reshape(x, shape),
           lambda x, shape: x.reshape(*shape), _shape_samples),
    OpSpec("permute", lambda x, dims: rg.permute(x, *dims), lambda x, dims: np.transpose(x, dims),
           lambda x, dims: x.permute(*dims), _perm_samples),
    OpSpec("transpose", rg.transpose, lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1),
           torch.transpose, _transpose_samples),
    OpSpec("swapaxes", rg.swapaxes, lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1),
           lambda x, dim0, dim1: torch.swapaxes(x, dim0, dim1), _transpose_samples),
    OpSpec("unsqueeze", rg.unsqueeze, lambda x, dim: np.expand_dims(x, dim), torch.unsqueeze,
           _unsqueeze_samples),
    OpSpec("broadcast_to", rg.broadcast_to, np.broadcast_to, torch.broadcast_to,
           _broadcast_samples),
    OpSpec("expand", lambda x, shape: rg.expand(x, *shape), np.broadcast_to,
           lambda x, shape: x.expand(*shape), _broadcast_samples),
]
