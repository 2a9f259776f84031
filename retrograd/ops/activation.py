"""Activation functions: sigmoid family, ReLU family, smooth ReLUs (GELU, SiLU, Mish, softplus)."""

from __future__ import annotations

from retrograd.autograd.function import Function
from retrograd.ops import dual
from retrograd.ops.elementwise import sigmoid_array
from retrograd.tensor import Tensor

__all__ = ["sigmoid", "relu"]


class Sigmoid(Function):
    """out = 1 / (1 + exp(-x));  gx = g * out * (1 - out)"""

    raw = True

    def forward(self, x):
        out = sigmoid_array(x)
        self.save(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return g * out * (1 - out)


def sigmoid(x) -> Tensor:
    """The logistic function, stable for large |x|."""
    return Sigmoid.apply(x)


class ReLU(Function):
    """out = max(x, 0);  gx = g * (x > 0)  (relu'(0) = 0, as in PyTorch)"""

    raw = True

    def forward(self, x):
        out = x * (x > 0)
        self.save(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return dual.where(dual.data(out) > 0, g, dual.zeros((), g))


def relu(x) -> Tensor:
    """max(x, 0)"""
    return ReLU.apply(x)
