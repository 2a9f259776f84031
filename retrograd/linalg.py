"""retrograd.linalg: PyTorch's `torch.linalg` namespace (norms, and matmul).

>>> import retrograd as rg
>>> rg.linalg.norm(rg.tensor([3.0, 4.0]))
tensor(5.)
"""

from __future__ import annotations

from retrograd.ops.linalg import linalg_norm as norm
from retrograd.ops.linalg import matmul, matrix_norm, vector_norm

__all__ = ["norm", "vector_norm", "matrix_norm", "matmul"]
