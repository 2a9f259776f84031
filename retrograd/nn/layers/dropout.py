"""Dropout: zero elements at random while training (identity in eval mode)."""

from __future__ import annotations

from retrograd.nn import functional as F
from retrograd.nn.module import Module
from retrograd.tensor import Tensor

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each element with probability p in training mode, scaling the rest by 1 / (1 - p).

    The masks come from `generator` (retrograd's default generator when None).

    >>> drop = Dropout(0.2, generator=retrograd.Generator().manual_seed(0))
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, generator=None) -> None:
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace
        self.generator = generator

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training, self.inplace, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
