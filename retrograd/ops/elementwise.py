"""Elementwise ops: arithmetic, powers, exponentials, trigonometry, rounding, comparisons.

Each primitive is a Function with its forward (on arrays) and gradient rule side by side; the
rule is written with operators and `dual` so it also runs on Tensors (create_graph=True).
Broadcasting is undone by the engine, so rules return gradients of the broadcast shape.
"""

from __future__ import annotations

import math

from retrograd import backend
from retrograd.autograd.function import Function
from retrograd.backend import get_xp
from retrograd.ops import dual
from retrograd.ops._util import as_tensor, check_broadcast, promote
from retrograd.tensor import Tensor

__all__ = ["add", "sub", "mul", "div", "neg", "cast", "clone", "to_device"]


def _binary(cls, x, y, **params):
    x, y = promote(x, y)
    try:
        return cls.apply(x, y, **params)
    except ValueError:
        check_broadcast(x, y)
        raise


# -- arithmetic ----------------------------------------------------------------------------------
class Add(Function):
    """out = x + y;  gx = g,  gy = g"""

    raw = True

    def forward(self, x, y):
        return x + y

    def backward(self, g):
        return g, g


class Sub(Function):
    """out = x - y;  gx = g,  gy = -g"""

    raw = True

    def forward(self, x, y):
        return x - y

    def backward(self, g):
        return g, -g


class Mul(Function):
    """out = x * y;  gx = g * y,  gy = g * x"""

    raw = True

    def forward(self, x, y):
        self.save(x, y)
        return x * y

    def backward(self, g):
        x, y = self.saved
        need = self.needs_input_grad
        return (g * y if need[0] else None), (g * x if need[1] else None)


class Div(Function):
    """out = x / y;  gx = g / y,  gy = -g * x / y**2"""

    raw = True

    def forward(self, x, y):
        self.save(x, y)
        return x / y

    def backward(self, g):
        x, y = self.saved
        need = self.needs_input_grad
        gx = g / y if need[0] else None
        gy = -g * x / (y * y) if need[1] else None
        return gx, gy


class Neg(Function):
    """out = -x;  gx = -g"""

    raw = True

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


def add(x, y, alpha=1) -> Tensor:
    """x + alpha * y, broadcasting."""
    if alpha != 1:
        y = mul(y, alpha)
    return _binary(Add, x, y)


def sub(x, y, alpha=1) -> Tensor:
    """x - alpha * y, broadcasting."""
    if alpha != 1:
        y = mul(y, alpha)
    return _binary(Sub, x, y)


def mul(x, y) -> Tensor:
    """x * y, broadcasting."""
    return _binary(Mul, x, y)


def div(x, y, rounding_mode=None) -> Tensor:
    """x / y (true division; integers divide to float), or rounded with rounding_mode."""
    if rounding_mode == "floor":
        return floor_divide(x, y)
    if rounding_mode == "trunc":
        return trunc(div(x, y))
    x, y = promote(x, y)
    if x.data.dtype.kind in "biu":
        x, y = cast(x, backend.get_default_dtype()), cast(y, backend.get_default_dtype())
    return _binary(Div, x, y)


def neg(x) -> Tensor:
    """-x"""
    return Neg.apply(x)


def cast(x, dtype) -> Tensor:
    """x converted to dtype (differentiable between floating dtypes)."""
    dtype = backend.as_dtype(dtype)
    if x.data.dtype == dtype:
        return x
    if dtype.kind not in "fc" or x.data.dtype.kind not in "fc":
        return Tensor._make(x.data.astype(dtype), False, None, 0)  # not differentiable
    return Cast.apply(x, dtype=dtype)


class Cast(Function):
    """out = x as dtype;  gx = g as x's dtype"""

    raw = True

    def forward(self, x, dtype):
        self.src = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return dual.cast(g, self.src)


class Clone(Function):
    """out = copy of x;  gx = g"""

    raw = True

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return g


def clone(x) -> Tensor:
    """A copy of x that stays in the graph."""
    return Clone.apply(x)


class ToDevice(Function):
    """out = x on another device;  gx = g on x's device"""

    raw = True

    def forward(self, x, device):
        self.src = backend.device_of(x)
        return backend.to_device(x, device)

    def backward(self, g):
        return backend.to_device(dual.data(g), self.src)


def to_device(x, device: str) -> Tensor:
    return ToDevice.apply(x, device=device)


def sigmoid_array(x):
    """1 / (1 + exp(-x)) without overflow for large |x|."""
    xp = get_xp(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


# the remaining elementwise ops follow below
