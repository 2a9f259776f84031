"""The op-table machinery: what a row is, and the sample generators rows share.

A row (`OpSpec`) names a public op, its NumPy reference, its PyTorch counterpart and a function
producing samples. Samples hold float64 NumPy arrays; float arrays become inputs that require
grad, integer and boolean arrays become constant index/mask tensors, anything else is passed
through. The same array object given twice becomes one tensor used twice (a repeated input).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

GRADCHECK_ATOL = 1e-6
GRADCHECK_RTOL = 1e-4


@dataclass
class Sample:
    args: tuple
    kwargs: dict = field(default_factory=dict)
    desc: str = ""
    noncontig: tuple = ()  # indices of args stored non-contiguously (transposed / strided views)
    torch: bool = True  # compare this sample with PyTorch
    gradgrad: bool = True  # run gradgradcheck on this sample (if the row supports it)


@dataclass
class OpSpec:
    name: str  # public name: "add", "linalg.norm", "Tensor.__getitem__", ...
    fn: Callable  # retrograd: fn(*tensors, **kwargs)
    ref: Callable | None  # NumPy: ref(*arrays, **kwargs) -> array or tuple of arrays
    torch_fn: Callable | None  # PyTorch: torch_fn(*torch_tensors, **kwargs); None if no counterpart
    samples: Callable[[np.random.Generator], list]
    differentiable: bool = True
    gradgrad: bool = True  # second order supported (PyTorch supports it)
    torch_kwargs: Callable | None = None  # kwargs -> kwargs for torch_fn
    ref_kwargs: Callable | None = None  # kwargs -> kwargs for ref
    fwd_atol32: float = 1e-6
    fwd_rtol32: float = 1e-3
    grad_atol32: float = 1e-4
    grad_rtol32: float = 1e-3
    # tighter than PyTorch's defaults (1e-5, 1e-3) so that a rule off by 0.1% fails
    gradcheck_eps: float = 1e-6
    gradcheck_atol: float = GRADCHECK_ATOL
    gradcheck_rtol: float = GRADCHECK_RTOL
    fast_gradcheck_above: int = 150  # input elements beyond which gradcheck uses projections
    compare_outputs: Callable | None = None  # picks which outputs to compare (e.g. values only)


# -- shapes and values ---------------------------------------------------------------------------
UNARY_SHAPES = [(), (0,), (5,), (3, 4), (2, 3, 4)]

BROADCAST_PAIRS = [
    ((3, 4), (3, 4)),
    ((3, 1), (1, 4)),
    ((2, 3, 4), (4,)),
    ((), (3,)),
    ((3,), ()),
    ((0, 3), (3,)),
    ((2, 1, 4), (3, 1)),
]


def values(rng, shape, domain=(-2.0, 2.0), avoid=(), margin=0.05):
    """Uniform float64 values in domain, kept `margin` away from the points in `avoid` (kinks)."""
    lo, hi = domain
    x = rng.uniform(lo, hi, size=shape)
    for _ in range(50):
        bad = np.zeros(x.shape, dtype=bool)
        for p in avoid:
            bad |= np.abs(x - p) < margin
        if not bad.any():
            break
        x[bad] = rng.uniform(lo, hi, size=int(bad.sum()))
    return np.asarray(x, dtype=np.float64)


def unary_samples(domain=(-2.0, 2.0), avoid=(), shapes=UNARY_SHAPES, **kwargs):
    """Samples for f(x): each shape, plus a non-contiguous input."""

    def make(rng):
        out = [Sample((values(rng, s, domain, avoid),), dict(kwargs), f"shape={s}") for s in shapes]
        out.append(
            Sample((values(rng, (4, 3), domain, avoid),), dict(kwargs), "noncontig", noncontig=(0,))
        )
        return out

    return make


def binary_samples(domain=(-2.0, 2.0), domain_y=None, avoid=(), avoid_y=None, **kwargs):
    """Samples for f(x, y): broadcast pairs, 0-d, empty, non-contiguous and f(x, x)."""
    dy = domain_y or domain
    ay = avoid if avoid_y is None else avoid_y

    def make(rng):
        out = []
        for sx, sy in BROADCAST_PAIRS:
            out.append(
                Sample(
                    (values(rng, sx, domain, avoid), values(rng, sy, dy, ay)),
                    dict(kwargs),
                    f"{sx}x{sy}",
                )
            )
        x = values(rng, (3, 4), domain, avoid)
        if domain_y is None or domain_y == domain:
            out.append(Sample((x, x), dict(kwargs), "repeated input f(x, x)"))
        out.append(
            Sample(
                (values(rng, (4, 3), domain, avoid), values(rng, (4, 3), dy, ay)),
                dict(kwargs),
                "noncontig",
                noncontig=(0, 1),
            )
        )
        return out

    return make


def reduce_samples(
    domain=(-2.0, 2.0), shape=(2, 3, 4), allow_none=True, allow_tuple=True, empty=True, **kwargs
):
    """Samples for a reduction f(x, dim, keepdim): every axis, negative, tuple, None, keepdim."""

    def make(rng):
        out = []
        dims = [0, 1, 2, -1]
        if allow_none:
            dims.append(None)
        if allow_tuple:
            dims.append((0, 2))
        for d in dims:
            for keep in (False, True):
                out.append(
                    Sample(
                        (values(rng, shape, domain),),
                        dict(kwargs, dim=d, keepdim=keep),
                        f"dim={d} keepdim={keep}",
                    )
                )
        out.append(
            Sample(
                (values(rng, (), domain),),
                dict(kwargs, dim=None if allow_none else 0, keepdim=False),
                "0-d",
            )
        )
        out.append(
            Sample(
                (values(rng, (4, 3), domain),),
                dict(kwargs, dim=0, keepdim=False),
                "noncontig",
                noncontig=(0,),
            )
        )
        if empty:
            out.append(
                Sample((values(rng, (0, 3), domain),), dict(kwargs, dim=1, keepdim=False), "empty")
            )
        return out

    return make
