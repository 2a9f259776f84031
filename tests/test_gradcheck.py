"""gradcheck itself: it passes correct rules and catches a rule that is off by 0.1%."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg
from retrograd.autograd.function import Function
from retrograd.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
from tests.opspec_base import GRADCHECK_ATOL, GRADCHECK_RTOL

TOL = dict(atol=GRADCHECK_ATOL, rtol=GRADCHECK_RTOL)  # what the op table runs with


class _Square(Function):
    """out = x * x;  gx = 2 * x * g * (1 + error)"""

    raw = True
    error = 0.0

    def forward(self, x):
        self.save(x)
        return x * x

    def backward(self, g):
        (x,) = self.saved
        return g * x * (2 * (1 + self.error))


class _OffSquare(_Square):
    error = 1e-3  # 0.1% off


def _x():
    return rg.tensor(np.array([0.7, -1.3, 2.1]), requires_grad=True)


def test_gradcheck_passes_a_correct_rule():
    assert gradcheck(_Square.apply, (_x(),))


def test_gradcheck_catches_a_rule_off_by_a_tenth_of_a_percent():
    assert gradcheck(_Square.apply, (_x(),), **TOL)
    with pytest.raises(
        GradcheckError, match="Jacobian mismatch for output 0 with respect to input 0"
    ):
        gradcheck(_OffSquare.apply, (_x(),), **TOL)
    assert gradcheck(_OffSquare.apply, (_x(),), raise_exception=False, **TOL) is False


def test_fast_mode_catches_it_too():
    with pytest.raises(GradcheckError):
        gradcheck(_OffSquare.apply, (_x(),), fast_mode=True, **TOL)
    assert gradcheck(_Square.apply, (_x(),), fast_mode=True, **TOL)


def test_error_shows_both_matrices():
    with pytest.raises(GradcheckError) as info:
        gradcheck(_OffSquare.apply, (_x(),), **TOL)
    assert "numerical:" in str(info.value) and "analytical:" in str(info.value)


def test_gradgradcheck_catches_a_wrong_second_derivative():
    class BadSecond(Function):
        """out = x**3 with a first derivative computed from a constant (no second order)"""

        raw = True

        def forward(self, x):
            self.save(x)
            return x * x * x

        def backward(self, g):
            (x,) = self.saved
            return g * 3 * rg.ops.dual.data(x) ** 2  # constant: second derivative lost

    x = _x()
    assert gradcheck(BadSecond.apply, (x,))
    with pytest.raises(GradcheckError):
        gradgradcheck(BadSecond.apply, (x,))


def test_float32_inputs_warn():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.warns(UserWarning, match="not a double precision floating point"):
        gradcheck(lambda t: t * 2, (x,), eps=1e-3, atol=1e-2, rtol=1e-2)


def test_needs_an_input_requiring_grad():
    with pytest.raises(ValueError, match="at least one input tensor to require gradient"):
        gradcheck(lambda t: t * 2, (rg.tensor([1.0]),))
