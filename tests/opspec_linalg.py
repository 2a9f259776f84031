"""Op-table rows: linear algebra (retrograd/ops/linalg.py)."""

from __future__ import annotations

import numpy as np
import torch

import retrograd as rg
from tests.opspec_base import OpSpec, Sample, values

MATMUL_SHAPES = [
    ((3,), (3,)),
    ((3,), (3, 4)),
    ((2, 3), (3,)),
    ((2, 3), (3, 4)),
    ((5, 2, 3), (5, 3, 4)),
    ((2, 1, 2, 3), (5, 3, 4)),
    ((3,), (2, 3, 4)),
    ((2, 2, 3), (3,)),
    ((0, 3), (3, 2)),
]


def matmul_samples(rng):
    out = [Sample((values(rng, a), values(rng, b)), {}, f"{a}@{b}") for a, b in MATMUL_SHAPES]
    x = values(rng, (3, 3))
    out.append(Sample((x, x), {}, "repeated input x @ x"))
    out.append(Sample((values(rng, (3, 4)), values(rng, (4, 2))), {}, "noncontig", noncontig=(0, 1)))
    return out


ROWS = [
    OpSpec("matmul", rg.matmul, np.matmul, torch.matmul, matmul_samples),
]
