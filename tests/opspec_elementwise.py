"""Op-table rows: elementwise arithmetic and math (retrograd/ops/elementwise.py)."""

from __future__ import annotations

import math

import numpy as np
import torch

import retrograd as rg
from tests.opspec_base import (
    BROADCAST_PAIRS,
    UNARY_SHAPES,
    OpSpec,
    Sample,
    binary_samples,
    values,
)

# -- sample generators for this family -----------------------------------------------------------


def _signed(rng, shape, lo=0.3, hi=2.0):
    """Values with |x| in [lo, hi] and a random sign: away from a pole or kink at 0."""
    return np.asarray(values(rng, shape, (lo, hi)) * rng.choice([-1.0, 1.0], size=shape))


def signed_samples(lo=0.3, hi=2.0):
    """Samples for f(x) with a singularity at 0."""

    def make(rng):
        out = [Sample((_signed(rng, s, lo, hi),), {}, f"shape={s}") for s in UNARY_SHAPES]
        out.append(Sample((_signed(rng, (4, 3), lo, hi),), {}, "noncontig", noncontig=(0,)))
        return out

    return make


def stepped_samples(step, offset=0.0, margin=0.05, **kwargs):
    """Samples for a step function: values kept `margin * step` from its jumps (offset + k*step)."""
    jumps = [offset + k * step for k in range(int(-3 / step), int(3 / step) + 1)]
    return unary_samples(avoid=jumps, margin_=margin * step, **kwargs)


def unary_samples(domain=(-2.0, 2.0), avoid=(), margin_=0.05, extra=(), **kwargs):
    """Like opspec_base.unary_samples, with a margin around `avoid` and extra fixed samples."""

    def make(rng):
        out = [
            Sample((values(rng, s, domain, avoid, margin_),), dict(kwargs), f"shape={s}")
            for s in UNARY_SHAPES
        ]
        out.append(
            Sample(
                (values(rng, (4, 3), domain, avoid, margin_),),
                dict(kwargs),
                "noncontig",
                noncontig=(0,),
            )
        )
        # fixed points on a kink: the first derivative is PyTorch's convention, the second jumps
        out.extend(
            Sample((np.array(e, dtype=np.float64),), dict(kwargs), d, gradgrad=False)
            for d, e in extra
        )
        return out

    return make


def binary_avoiding(bad, domain=(-2.0, 2.0), domain_y=(-2.0, 2.0), repeated=True):
    """Binary samples (broadcast pairs, non-contiguous, f(x, x)) resampled until no element of
    the broadcast pair satisfies `bad(x, y)` (a kink of the op)."""

    def draw(rng, sx, sy):
        for _ in range(200):
            x, y = values(rng, sx, domain), values(rng, sy, domain_y)
            if not np.any(bad(x, y)):
                return x, y
        raise AssertionError("could not draw samples away from the kinks")

    def make(rng):
        out = [Sample(draw(rng, sx, sy), {}, f"{sx}x{sy}") for sx, sy in BROADCAST_PAIRS]
        if repeated:
            x = values(rng, (3, 4), domain)
            out.append(Sample((x, x), {}, "repeated input f(x, x)"))
        out.append(Sample(draw(rng, (4, 3), (4, 3)), {}, "noncontig", noncontig=(0, 1)))
        return out

    return make


def _near_integer(q, margin=0.02):
    return np.abs(q - np.round(q)) < margin


def _erf_ref(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype)


def _with_special(x, nan=True):
    x = x.copy()
    flat = x.reshape(-1)
    flat[0] = np.inf
    flat[1] = -np.inf
    if nan:
        flat[2] = np.nan
    flat[3] = 0.0
    return x


def special_samples(rng):
    return [
        Sample((_with_special(values(rng, (3, 4))),), {}, "inf, -inf, nan, 0"),
        Sample((values(rng, (5,)),), {}, "finite"),
        Sample((values(rng, ()),), {}, "0-d"),
        Sample((values(rng, (0, 2)),), {}, "empty"),
    ]


def where_samples(rng):
    out = []
    for sc, sx, sy in [
        ((3, 4), (3, 4), (3, 4)),
        ((3, 1), (1, 4), (3, 4)),
        ((2, 3, 4), (4,), (3, 1)),
        ((), (3,), (3,)),
        ((3,), (), ()),
        ((0, 3), (3,), (0, 3)),
    ]:
        out.append(
            Sample(
                (np.asarray(rng.random(sc) < 0.5), values(rng, sx), values(rng, sy)),
                {},
                f"{sc},{sx},{sy}",
            )
        )
    x = values(rng, (3, 4))
    out.append(Sample((rng.random((3, 4)) < 0.5, x, x), {}, "repeated input"))
    out.append(Sample((rng.random((3, 4)) < 0.5, values(rng, (3, 4)), 0.5), {}, "other a number"))
    out.append(Sample((rng.random((3, 4)) < 0.5, -1.5, values(rng, (4,))), {}, "input a number"))
    out.append(
        Sample(
            (rng.random((4, 3)) < 0.5, values(rng, (4, 3)), values(rng, (4, 3))),
            {},
            "noncontig",
            noncontig=(1, 2),
        )
    )
    return out


def lerp_samples(rng):
    out = []
    for sx, se, sw in [
        ((3, 4), (3, 4), (3, 4)),
        ((3, 1), (1, 4), (4,)),
        ((2, 3, 4), (4,), (3, 1)),
        ((), (), ()),
        ((0, 3), (3,), ()),
    ]:
        out.append(
            Sample(
                (values(rng, sx), values(rng, se), values(rng, sw, (-0.5, 1.5))),
                {},
                f"{sx},{se},{sw}",
            )
        )
    for w in (0.0, 0.3, 0.7, 1.0):
        out.append(Sample((values(rng, (3, 4)), values(rng, (3, 4)), w), {}, f"weight={w}"))
    x = values(rng, (3, 4))
    out.append(Sample((x, x, values(rng, (3, 4))), {}, "repeated input"))
    out.append(
        Sample(
            (values(rng, (4, 3)), values(rng, (4, 3)), values(rng, (4, 3))),
            {},
            "noncontig",
            noncontig=(0, 1, 2),
        )
    )
    return out


def clamp_samples(rng):
    lo, hi = -0.6, 0.7
    kinks = (lo, hi)
    out = []
    for s in UNARY_SHAPES:
        out.append(Sample((values(rng, s, avoid=kinks),), {"min": lo, "max": hi}, f"shape={s}"))
    out.append(Sample((values(rng, (3, 4), avoid=kinks),), {"min": lo}, "min only"))
    out.append(Sample((values(rng, (3, 4), avoid=kinks),), {"max": hi}, "max only"))
    out.append(Sample((values(rng, (3, 4), avoid=kinks),), {"min": 1, "max": 0}, "min > max"))
    out.append(
        Sample(
            (values(rng, (4, 3), avoid=kinks),), {"min": lo, "max": hi}, "noncontig", noncontig=(0,)
        )
    )
    # tensor bounds (positional: the harness turns arrays into tensors requiring grad)
    for sx, sl, sh in [((3, 4), (3, 4), (3, 4)), ((3, 4), (4,), (3, 1)), ((2, 3), (), ())]:
        out.append(
            Sample(
                (values(rng, sx), values(rng, sl, (-1.5, -0.2)), values(rng, sh, (0.2, 1.5))),
                {},
                f"tensor bounds {sx},{sl},{sh}",
            )
        )
    out.append(
        Sample(
            (
                values(rng, (3, 4)),
                values(rng, (3, 4), (0.2, 1.0)),
                values(rng, (3, 4), (-1.0, -0.2)),
            ),
            {},
            "tensor bounds, min > max",
        )
    )
    out.append(
        Sample((values(rng, (3, 4)), values(rng, (4,), (-1.5, -0.2)), None), {}, "tensor min only")
    )
    out.append(
        Sample((values(rng, (3, 4)), None, values(rng, (3, 1), (0.2, 1.5))), {}, "tensor max only")
    )
    return out


def _np_clamp(x, min=None, max=None):
    out = x if min is None else np.maximum(x, min)
    return out if max is None else np.minimum(out, max)


def pow_scalar_samples(rng):
    out = []
    for e, domain in [
        (2, (-2.0, 2.0)),
        (3, (-2.0, 2.0)),
        (2.0, (-2.0, 2.0)),
        (-1, (0.3, 2.0)),
        (0.5, (0.3, 2.0)),
        (-1.5, (0.3, 2.0)),
        (1, (-2.0, 2.0)),
        (0, (-2.0, 2.0)),
    ]:
        out.append(Sample((values(rng, (3, 4), domain), e), {}, f"x**{e}"))
    out.append(Sample((values(rng, (), (0.3, 2.0)), 2.5), {}, "0-d"))
    out.append(Sample((values(rng, (0, 3)), 2), {}, "empty"))
    out.append(Sample((values(rng, (4, 3)), 3), {}, "noncontig", noncontig=(0,)))
    out.append(Sample((np.array([0.0, 1.5, -2.0]), 0), {}, "x**0 at 0"))
    out.append(Sample((np.array([0.0, 1.5, -2.0]), 2), {}, "x**2 at 0"))
    out.append(Sample((-values(rng, (5,), (0.5, 2.0)), -3), {}, "negative base, integer exponent"))
    return out


def pow_tensor_samples(rng):
    out = []
    for sx, sy in BROADCAST_PAIRS:
        out.append(Sample((values(rng, sx, (0.3, 2.0)), values(rng, sy)), {}, f"{sx}x{sy}"))
    x = values(rng, (3, 4), (0.3, 2.0))
    out.append(Sample((x, x), {}, "repeated input x**x"))
    out.append(
        Sample(
            (values(rng, (4, 3), (0.3, 2.0)), values(rng, (4, 3))),
            {},
            "noncontig",
            noncontig=(0, 1),
        )
    )
    out.append(
        Sample(
            (-values(rng, (2, 3), (0.5, 2.0)), np.array([2, 3, -1])),
            {},
            "negative base, integer exponent tensor",
        )
    )
    return out


def rpow_samples(rng):
    return [
        Sample((2.5, values(rng, (3, 4))), {}, "2.5**y"),
        Sample((0.5, values(rng, (5,))), {}, "0.5**y"),
        Sample((2.5, values(rng, ())), {}, "0-d"),
        Sample((2.5, values(rng, (0, 3))), {}, "empty"),
        Sample((3.0, values(rng, (4, 3))), {}, "noncontig", noncontig=(1,)),
    ]


def comparison_samples(rng):
    out = binary_samples()(rng)
    a = np.round(values(rng, (3, 4)))
    b = np.round(values(rng, (4,)))
    out.append(Sample((a, b), {}, "with ties"))
    out.append(Sample((values(rng, (3, 4)), 0.5), {}, "other a number"))
    out.append(Sample((np.array([1, 2, 3]), np.array([2, 2, 2])), {}, "integers"))
    return out


def logical_samples(rng):
    return [
        Sample((rng.random((3, 4)) < 0.5, rng.random((3, 4)) < 0.5), {}, "bool"),
        Sample((rng.random((3, 1)) < 0.5, rng.random((4,)) < 0.5), {}, "broadcast"),
        Sample((np.round(values(rng, (3, 4))), np.round(values(rng, (3, 4)))), {}, "floats"),
        Sample((np.array([0, 1, 2]), np.array([1, 0, 0])), {}, "integers"),
        Sample((np.asarray(rng.random(()) < 0.5), rng.random((0, 2)) < 0.5), {}, "empty"),
    ]


def integer_division_samples(rng):
    out = binary_avoiding(lambda x, y: _near_integer(x / y) | (np.abs(y) < 0.3), repeated=False)(
        rng
    )
    out.append(Sample((np.array([7, -7, 7, -7, 6]), np.array([2, 2, -2, -2, 3])), {}, "integers"))
    return out


def _np_trunc_div(x, y):
    if x.dtype.kind in "iu" and y.dtype.kind in "iu":
        q = np.floor_divide(x, y)
        return q + ((np.remainder(x, y) != 0) & ((x < 0) != (y < 0)))
    return np.trunc(x / y)


def _rg_round_trip(x):
    """float64 -> float32 -> float64 (exercises both directions of Cast); float32 -> float64."""
    return rg.cast(x, rg.float32).double() if x.dtype == np.float64 else rg.cast(x, rg.float64)


def _np_round_trip(x):
    return (
        x.astype(np.float32).astype(np.float64) if x.dtype == np.float64 else x.astype(np.float64)
    )


def _torch_round_trip(x):
    return x.to(torch.float32).double() if x.dtype == torch.float64 else x.to(torch.float64)


def _int_pairs(rng):
    a = rng.integers(-8, 8, size=(3, 4))
    b = rng.integers(-8, 8, size=(4,))
    m = rng.random((3, 4)) > 0.5
    n = rng.random((3, 4)) > 0.5
    return [
        Sample((a, b), {}, "int64 broadcast"),
        Sample((m, n), {}, "bool"),
        Sample((a, a), {}, "repeated input"),
        Sample((rng.integers(0, 5, size=()), rng.integers(0, 5, size=(0,))), {}, "0-d and empty"),
    ]


def _int_singles(rng):
    return [
        Sample((rng.integers(-8, 8, size=(3, 4)),), {}, "int64"),
        Sample((rng.random((5,)) > 0.5,), {}, "bool"),
        Sample((rng.integers(0, 5, size=()),), {}, "0-d"),
    ]


ROWS = [
    # arithmetic
    OpSpec("add", rg.add, np.add, torch.add, binary_samples()),
    OpSpec(
        "add[alpha]",
        lambda x, y: rg.add(x, y, alpha=2.5),
        lambda x, y: x + 2.5 * y,
        lambda x, y: torch.add(x, y, alpha=2.5),
        binary_samples(),
    ),
    OpSpec("sub", rg.sub, np.subtract, torch.sub, binary_samples()),
    OpSpec(
        "sub[alpha]",
        lambda x, y: rg.sub(x, y, alpha=-0.5),
        lambda x, y: x + 0.5 * y,
        lambda x, y: torch.sub(x, y, alpha=-0.5),
        binary_samples(),
    ),
    OpSpec("mul", rg.mul, np.multiply, torch.mul, binary_samples()),
    OpSpec("div", rg.div, np.divide, torch.div, binary_samples(domain_y=(0.5, 2.0))),
    OpSpec(
        "div[floor]",
        lambda x, y: rg.div(x, y, rounding_mode="floor"),
        np.floor_divide,
        lambda x, y: torch.div(x, y, rounding_mode="floor"),
        integer_division_samples,
    ),
    OpSpec(
        "div[trunc]",
        lambda x, y: rg.div(x, y, rounding_mode="trunc"),
        _np_trunc_div,
        lambda x, y: torch.div(x, y, rounding_mode="trunc"),
        integer_division_samples,
    ),
    OpSpec(
        "floor_divide",
        rg.floor_divide,
        np.floor_divide,
        torch.floor_divide,
        integer_division_samples,
        differentiable=False,  # PyTorch has no gradient for floor_divide
    ),
    OpSpec(
        "remainder",
        rg.remainder,
        np.remainder,
        torch.remainder,
        binary_avoiding(lambda x, y: _near_integer(x / y) | (np.abs(y) < 0.3)),
    ),
    OpSpec("neg", rg.neg, np.negative, torch.neg, unary_samples()),
    OpSpec("reciprocal", rg.reciprocal, np.reciprocal, torch.reciprocal, signed_samples()),
    OpSpec("square", rg.square, np.square, torch.square, unary_samples()),
    OpSpec("pow", rg.pow, np.power, torch.pow, pow_tensor_samples),
    OpSpec("pow[scalar exponent]", rg.pow, np.power, torch.pow, pow_scalar_samples),
    OpSpec("pow[scalar base]", rg.pow, np.power, torch.pow, rpow_samples),
    # exponentials and logarithms
    OpSpec("exp", rg.exp, np.exp, torch.exp, unary_samples()),
    OpSpec("exp2", rg.exp2, np.exp2, torch.exp2, unary_samples()),
    OpSpec("expm1", rg.expm1, np.expm1, torch.expm1, unary_samples()),
    OpSpec("log", rg.log, np.log, torch.log, unary_samples((0.2, 3.0))),
    OpSpec("log2", rg.log2, np.log2, torch.log2, unary_samples((0.2, 3.0))),
    OpSpec("log1p", rg.log1p, np.log1p, torch.log1p, unary_samples((-0.7, 2.0))),
    OpSpec("sqrt", rg.sqrt, np.sqrt, torch.sqrt, unary_samples((0.2, 3.0))),
    OpSpec("rsqrt", rg.rsqrt, lambda x: 1 / np.sqrt(x), torch.rsqrt, unary_samples((0.2, 3.0))),
    OpSpec("erf", rg.erf, _erf_ref, torch.erf, unary_samples((-3.0, 3.0))),
    # trigonometric and hyperbolic
    OpSpec("sin", rg.sin, np.sin, torch.sin, unary_samples((-3.0, 3.0))),
    OpSpec("cos", rg.cos, np.cos, torch.cos, unary_samples((-3.0, 3.0))),
    OpSpec("tan", rg.tan, np.tan, torch.tan, unary_samples((-1.2, 1.2))),
    OpSpec("arcsin", rg.arcsin, np.arcsin, torch.arcsin, unary_samples((-0.9, 0.9))),
    OpSpec("arccos", rg.arccos, np.arccos, torch.arccos, unary_samples((-0.9, 0.9))),
    OpSpec("arctan", rg.arctan, np.arctan, torch.arctan, unary_samples((-3.0, 3.0))),
    OpSpec("asin", rg.asin, np.arcsin, torch.asin, unary_samples((-0.9, 0.9))),
    OpSpec("acos", rg.acos, np.arccos, torch.acos, unary_samples((-0.9, 0.9))),
    OpSpec("atan", rg.atan, np.arctan, torch.atan, unary_samples((-3.0, 3.0))),
    OpSpec(
        "atan2",
        rg.atan2,
        np.arctan2,
        torch.atan2,
        binary_avoiding(lambda y, x: (np.abs(x) < 0.2) & (np.abs(y) < 0.2)),
    ),
    OpSpec("sinh", rg.sinh, np.sinh, torch.sinh, unary_samples()),
    OpSpec("cosh", rg.cosh, np.cosh, torch.cosh, unary_samples()),
    OpSpec("tanh", rg.tanh, np.tanh, torch.tanh, unary_samples()),
    # piecewise
    OpSpec(
        "abs",
        rg.abs,
        np.abs,
        torch.abs,
        unary_samples(avoid=(0.0,), extra=[("abs at 0", [0.0, -1.0, 1.5])]),
    ),
    OpSpec(
        "sign",
        rg.sign,
        np.sign,
        torch.sign,
        unary_samples(avoid=(0.0,)),  # sign'(0) = 0 is in tests/test_elementwise.py
    ),
    OpSpec(
        "maximum",
        rg.maximum,
        np.maximum,
        torch.maximum,
        binary_avoiding(lambda x, y: np.abs(x - y) < 0.02),
    ),
    OpSpec(
        "minimum",
        rg.minimum,
        np.minimum,
        torch.minimum,
        binary_avoiding(lambda x, y: np.abs(x - y) < 0.02),
    ),
    OpSpec("clamp", rg.clamp, _np_clamp, torch.clamp, clamp_samples),
    OpSpec("clip", rg.clip, _np_clamp, torch.clip, clamp_samples),
    OpSpec("where", rg.where, np.where, torch.where, where_samples),
    OpSpec(
        "lerp",
        rg.lerp,
        lambda x, e, w: x + w * (e - x),
        lambda x, e, w: torch.lerp(x, e, w),
        lerp_samples,
    ),
    # rounding: gradient 0 (checked against finite differences away from the jumps)
    OpSpec("floor", rg.floor, np.floor, torch.floor, stepped_samples(1.0)),
    OpSpec("ceil", rg.ceil, np.ceil, torch.ceil, stepped_samples(1.0)),
    OpSpec("trunc", rg.trunc, np.trunc, torch.trunc, stepped_samples(1.0)),
    OpSpec("round", rg.round, np.round, torch.round, stepped_samples(1.0, offset=0.5)),
    OpSpec(
        "round[decimals]",
        lambda x: rg.round(x, decimals=1),
        lambda x: np.round(x, 1),
        lambda x: torch.round(x, decimals=1),
        stepped_samples(0.1, offset=0.05, margin=0.1),
    ),
    # comparisons and logic: boolean results
    OpSpec("eq", rg.eq, np.equal, torch.eq, comparison_samples, differentiable=False),
    OpSpec("ne", rg.ne, np.not_equal, torch.ne, comparison_samples, differentiable=False),
    OpSpec("lt", rg.lt, np.less, torch.lt, comparison_samples, differentiable=False),
    OpSpec("le", rg.le, np.less_equal, torch.le, comparison_samples, differentiable=False),
    OpSpec("gt", rg.gt, np.greater, torch.gt, comparison_samples, differentiable=False),
    OpSpec("ge", rg.ge, np.greater_equal, torch.ge, comparison_samples, differentiable=False),
    OpSpec(
        "logical_and",
        rg.logical_and,
        np.logical_and,
        torch.logical_and,
        logical_samples,
        differentiable=False,
    ),
    OpSpec(
        "logical_or",
        rg.logical_or,
        np.logical_or,
        torch.logical_or,
        logical_samples,
        differentiable=False,
    ),
    OpSpec(
        "logical_xor",
        rg.logical_xor,
        np.logical_xor,
        torch.logical_xor,
        logical_samples,
        differentiable=False,
    ),
    OpSpec(
        "logical_not",
        rg.logical_not,
        np.logical_not,
        torch.logical_not,
        special_samples,
        differentiable=False,
    ),
    OpSpec(
        "bitwise_and",
        rg.bitwise_and,
        np.bitwise_and,
        torch.bitwise_and,
        _int_pairs,
        differentiable=False,
    ),
    OpSpec(
        "bitwise_or",
        rg.bitwise_or,
        np.bitwise_or,
        torch.bitwise_or,
        _int_pairs,
        differentiable=False,
    ),
    OpSpec(
        "bitwise_xor",
        rg.bitwise_xor,
        np.bitwise_xor,
        torch.bitwise_xor,
        _int_pairs,
        differentiable=False,
    ),
    OpSpec(
        "bitwise_not",
        rg.bitwise_not,
        np.invert,
        torch.bitwise_not,
        _int_singles,
        differentiable=False,
    ),
    OpSpec("isnan", rg.isnan, np.isnan, torch.isnan, special_samples, differentiable=False),
    OpSpec("isinf", rg.isinf, np.isinf, torch.isinf, special_samples, differentiable=False),
    OpSpec(
        "isfinite", rg.isfinite, np.isfinite, torch.isfinite, special_samples, differentiable=False
    ),
    # dtype
    OpSpec("clone", rg.clone, np.copy, torch.clone, unary_samples()),
    OpSpec(
        "cast",
        _rg_round_trip,
        _np_round_trip,
        _torch_round_trip,
        unary_samples(),
        gradcheck_eps=1e-3,
        gradcheck_atol=1e-3,
    ),
]

NOT_ROWS = {
    "to_device": "device transfer: covered by tests/test_tensor.py",
}
