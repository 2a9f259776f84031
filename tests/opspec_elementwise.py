"""Op-table rows: elementwise arithmetic and math (retrograd/ops/elementwise.py)."""

from __future__ import annotations

import numpy as np
import torch

import retrograd as rg
from tests.opspec_base import OpSpec, Sample, binary_samples, unary_samples, values

ROWS = [
    OpSpec("add", rg.add, np.add, torch.add, binary_samples()),
    OpSpec("sub", rg.sub, np.subtract, torch.sub, binary_samples()),
    OpSpec("mul", rg.mul, np.multiply, torch.mul, binary_samples()),
    OpSpec("div", rg.div, np.divide, torch.div, binary_samples(domain_y=(0.5, 2.0))),
    OpSpec("neg", rg.neg, np.negative, torch.neg, unary_samples()),
    OpSpec("clone", rg.clone, np.copy, torch.clone, unary_samples()),
    OpSpec(
        "cast",
        lambda x: rg.cast(x, rg.float32).double() if x.dtype == np.float64 else rg.cast(x, rg.float64),
        lambda x: x.astype(np.float32).astype(np.float64) if x.dtype == np.float64 else x.astype(np.float64),
        lambda x: x.to(torch.float32).double() if x.dtype == torch.float64 else x.to(torch.float64),
        unary_samples(),
        gradcheck_eps=1e-3,
        gradcheck_atol=1e-3,
    ),
]

NOT_ROWS = {
    "to_device": "device transfer: covered by tests/test_tensor.py",
}
