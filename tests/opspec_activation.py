"""Op-table rows: activation functions (retrograd/ops/activation.py)."""

from __future__ import annotations

import numpy as np
import torch

import retrograd as rg
from tests.opspec_base import OpSpec, unary_samples


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


ROWS = [
    OpSpec("sigmoid", rg.sigmoid, _sigmoid, torch.sigmoid, unary_samples()),
    OpSpec("relu", rg.relu, lambda x: np.maximum(x, 0), torch.relu, unary_samples(avoid=(0,))),
]
