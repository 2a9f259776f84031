"""Exact backpropagation: the reference every other rule is measured against."""

from __future__ import annotations

from collections.abc import Callable

from retrograd.autograd.grad_mode import enable_grad
from retrograd.nn import Module
from retrograd.rules.base import LearningRule
from retrograd.tensor import Tensor

__all__ = ["Backprop"]


class Backprop(LearningRule):
    """loss_fn(model(x), y).backward(): the exact gradient, for any model.

    >>> loss = Backprop().compute_grads(model, x, y, F.cross_entropy)
    """

    name = "backprop"

    def compute_grads(self, model: Module, x: Tensor, y: Tensor, loss_fn: Callable) -> float:
        with enable_grad():
            loss = loss_fn(model(x), y)
            loss.backward()
        return float(loss.item())
