"""Metrics computed without a graph: accuracy and running means."""

from __future__ import annotations

from retrograd.autograd.grad_mode import no_grad
from retrograd.tensor import Tensor


def accuracy(output: Tensor, target: Tensor) -> float:
    """Fraction of rows whose arg-max (or, for one output column, sign) matches the target."""
    with no_grad():
        out, tgt = output.data, target.data
        if out.ndim >= 2 and out.shape[-1] > 1:
            pred = out.argmax(-1)
            if tgt.ndim == out.ndim:  # one-hot or probability targets
                tgt = tgt.argmax(-1)
        else:
            pred = (out.reshape(tgt.shape) > (0.5 if out.min() >= 0 else 0.0)).astype(tgt.dtype)
        return float((pred == tgt).mean()) if pred.size else 0.0


class RunningMean:
    """A mean over batches, weighted by batch size."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def add(self, value: float, n: int = 1) -> None:
        self.total += float(value) * n
        self.count += n

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else float("nan")
