"""Op-table rows: linear algebra (retrograd/ops/linalg.py)."""

from __future__ import annotations

import math

import numpy as np
import torch

import retrograd as rg
from tests.opspec_base import OpSpec, Sample, values

INF = math.inf

# -- products ------------------------------------------------------------------------------------
MATMUL_SHAPES = [
    ((3,), (3,)),
    ((3,), (3, 4)),
    ((2, 3), (3,)),
    ((2, 3), (3, 4)),
    ((5, 2, 3), (5, 3, 4)),
    ((2, 1, 2, 3), (5, 3, 4)),
    ((3,), (2, 3, 4)),
    ((2, 2, 3), (3,)),
    ((2, 2, 3), (3, 4)),
    ((2, 3), (2, 3, 4)),
    ((1, 2, 3), (3, 1, 3, 2)),
    ((0, 3), (3, 2)),
    ((2, 0), (0, 3)),
    ((2, 3), (3, 0)),
    ((0,), (0,)),
    ((0, 2, 3), (3, 4)),
]


def _pairs(rng, shapes, repeated=(3, 3), noncontig=((3, 4), (4, 2))):
    out = [Sample((values(rng, a), values(rng, b)), {}, f"{a}@{b}") for a, b in shapes]
    x = values(rng, repeated)
    out.append(Sample((x, x), {}, "repeated input x @ x"))
    a, b = noncontig
    out.append(Sample((values(rng, a), values(rng, b)), {}, "noncontig", noncontig=(0, 1)))
    return out


def matmul_samples(rng):
    return _pairs(rng, MATMUL_SHAPES)


def mm_samples(rng):
    return _pairs(rng, [((2, 3), (3, 4)), ((1, 3), (3, 1)), ((0, 3), (3, 2)), ((3, 0), (0, 2))])


def bmm_samples(rng):
    shapes = [
        ((2, 2, 3), (2, 3, 4)),
        ((1, 3, 1), (1, 1, 2)),
        ((0, 2, 3), (0, 3, 4)),
        ((2, 0, 3), (2, 3, 2)),
    ]
    return _pairs(rng, shapes, repeated=(2, 3, 3), noncontig=((2, 3, 4), (2, 4, 2)))


def dot_samples(rng):
    return _pairs(
        rng, [((3,), (3,)), ((1,), (1,)), ((0,), (0,))], repeated=(4,), noncontig=((5,), (5,))
    )


def outer_samples(rng):
    return _pairs(
        rng,
        [((3,), (4,)), ((1,), (2,)), ((0,), (3,)), ((3,), (0,))],
        repeated=(4,),
        noncontig=((3,), (4,)),
    )


# -- einsum --------------------------------------------------------------------------------------
EINSUM_CASES = [
    ("ij,jk->ik", (2, 3), (3, 4)),
    ("bij,bjk->bik", (2, 2, 3), (2, 3, 4)),
    ("ii->i", (3, 3)),
    ("ii->", (3, 3)),
    ("ii", (3, 3)),
    ("i,j->ij", (3,), (4,)),
    ("...ij,...jk->...ik", (2, 1, 2, 3), (3, 3, 2)),
    ("...ij,...jk->...ik", (2, 3), (2, 3, 2)),
    ("ij->ji", (2, 3)),
    ("ij->", (2, 3)),
    ("ij->i", (2, 3)),
    ("ij,jk", (2, 3), (3, 4)),
    ("i,i->", (3,), (3,)),
    ("i,i->", (0,), (0,)),
    ("ij,jk->ik", (2, 0), (0, 3)),
    ("ij,jk->ik", (0, 3), (3, 2)),
    ("bii->bi", (2, 3, 3)),
    ("iji->j", (3, 2, 3)),
    ("iii->i", (2, 2, 2)),
    ("ii,i->i", (3, 3), (3,)),
    ("ij,ij->ij", (2, 3), (2, 3)),
    ("i,ij,j->", (3,), (3, 4), (4,)),
    ("ijk->kji", (2, 3, 4)),
    ("ij,k->ik", (2, 3), (4,)),
    ("ab,cd->", (2, 3), (2, 2)),
    ("...->", (2, 3)),
    ("i...->...", (2, 3, 4)),
    ("...ii->...i", (2, 3, 3)),
    ("i,->i", (3,), ()),
    ("->", ()),
    ("Ba,aC", (2, 3), (3, 4)),
    (" ij , jk -> ik ", (2, 3), (3, 2)),
]


def _einsum(*xs, equation):
    return rg.einsum(equation, *xs)


def _np_einsum(*xs, equation):
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    if arrow and "..." in lhs and "..." not in rhs:  # NumPy cannot sum the ellipsis dims itself
        out = np.einsum(f"{lhs}->...{rhs}", *xs)
        return out.sum(axis=tuple(range(out.ndim - len(rhs))))
    return np.einsum(equation, *xs)


def _torch_einsum(*xs, equation):
    return torch.einsum(equation, *xs)


def einsum_samples(rng):
    out = []
    for eq, *shapes in EINSUM_CASES:
        out.append(Sample(tuple(values(rng, s) for s in shapes), {"equation": eq}, eq))
    x = values(rng, (3, 3))
    out.append(Sample((x, x), {"equation": "ij,jk"}, "repeated einsum('ij,jk', x, x)"))
    y = values(rng, (2, 3))
    out.append(Sample((y, y), {"equation": "ij,ij->"}, "repeated einsum('ij,ij->', y, y)"))
    out.append(
        Sample(
            (values(rng, (4, 3)), values(rng, (2, 3))),
            {"equation": "ij,kj->ik"},
            "noncontig",
            noncontig=(0, 1),
        )
    )
    out.append(
        Sample((values(rng, (3, 3)),), {"equation": "ii->i"}, "noncontig diagonal", noncontig=(0,))
    )
    return out


# -- tensordot -----------------------------------------------------------------------------------
TENSORDOT_CASES = [
    ((2, 3, 4), (3, 4, 5), 2),
    ((2, 3), (3, 4), 1),
    ((2,), (3,), 0),
    ((), (3,), 0),
    ((3, 2, 4), (2, 3, 5), ([1, 0], [0, 1])),
    ((2, 3, 4), (4, 3), ([-1, 1], [0, 1])),
    ((2, 3), (4, 3), ([-1], [-1])),
    ((0, 3), (3, 2), 1),
    ((2, 0), (0, 3), 1),
    ((2, 3), (3, 4), ([], [])),
]


def tensordot_samples(rng):
    out = [
        Sample((values(rng, a), values(rng, b)), {"dims": d}, f"{a},{b} dims={d}")
        for a, b, d in TENSORDOT_CASES
    ]
    x = values(rng, (3, 3))
    out.append(Sample((x, x), {"dims": ([0], [1])}, "repeated input"))
    out.append(
        Sample(
            (values(rng, (4, 3)), values(rng, (3, 4))), {"dims": 1}, "noncontig", noncontig=(0, 1)
        )
    )
    return out


# -- norms ---------------------------------------------------------------------------------------
def _np_vector_norm(x, ord=2, dim=None, keepdim=False):
    axis = tuple(dim) if isinstance(dim, (list, tuple)) else dim
    a = np.abs(x)
    if ord == INF:
        return a.max(axis=axis, keepdims=keepdim)
    if ord == -INF:
        return a.min(axis=axis, keepdims=keepdim)
    if ord == 0:
        return (x != 0).sum(axis=axis, keepdims=keepdim).astype(x.dtype)
    with np.errstate(divide="ignore"):
        return np.asarray((a**ord).sum(axis=axis, keepdims=keepdim) ** (1.0 / ord), x.dtype)


def vector_norm_samples(rng):
    out = []
    avoid = (0.0,)  # |x| has a kink at 0
    for ord in (2, 1, INF, -INF, 0, 3, 0.5, 1.5, -1):
        for dim, keep in ((None, False), (-1, True), (0, False), ((0, 2), True), ((2, 0), False)):
            out.append(
                Sample(
                    (values(rng, (2, 3, 4), avoid=avoid),),
                    dict(ord=ord, dim=dim, keepdim=keep),
                    f"ord={ord} dim={dim} {keep}",
                )
            )
        out.append(Sample((values(rng, (), avoid=avoid),), dict(ord=ord), f"ord={ord} 0-d"))
        out.append(
            Sample(
                (values(rng, (4, 3), avoid=avoid),),
                dict(ord=ord, dim=0),
                f"ord={ord} noncontig",
                noncontig=(0,),
            )
        )
        empty_dim = 0 if ord >= 0 and ord != INF else 1  # no identity for inf / negative ord
        out.append(Sample((values(rng, (0, 3)),), dict(ord=ord, dim=empty_dim), f"ord={ord} empty"))
    return out


MATRIX_ORDS = ("fro", 1, -1, INF, -INF)


def _np_matrix_norm(x, ord="fro", dim=(-2, -1), keepdim=False):
    return np.linalg.norm(x, ord=ord, axis=tuple(dim), keepdims=keepdim)


def matrix_norm_samples(rng):
    out = []
    for ord in MATRIX_ORDS:
        out.append(Sample((values(rng, (3, 4), avoid=(0.0,)),), dict(ord=ord), f"ord={ord}"))
        out.append(
            Sample(
                (values(rng, (2, 3, 4), avoid=(0.0,)),),
                dict(ord=ord, keepdim=True),
                f"ord={ord} batched keepdim",
            )
        )
        out.append(
            Sample(
                (values(rng, (3, 2, 4), avoid=(0.0,)),),
                dict(ord=ord, dim=(2, 0)),
                f"ord={ord} dim=(2, 0)",
            )
        )
        out.append(
            Sample(
                (values(rng, (4, 3), avoid=(0.0,)),),
                dict(ord=ord),
                f"ord={ord} noncontig",
                noncontig=(0,),
            )
        )
    out.append(Sample((values(rng, (0, 3)),), dict(ord="fro"), "empty fro"))
    out.append(Sample((values(rng, (2, 0, 3)),), dict(ord=1), "empty batch of matrices, ord=1"))
    return out


def _np_linalg_norm(x, ord=None, dim=None, keepdim=False):
    axis = tuple(dim) if isinstance(dim, (list, tuple)) else dim
    return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdim)


LINALG_NORM_CASES = [
    ((2, 3, 4), {}),
    ((2, 3, 4), dict(keepdim=True)),
    ((5,), dict(ord=INF)),
    ((5,), dict(ord=3)),
    ((5,), dict(ord=1)),
    ((3, 4), {}),
    ((3, 4), dict(ord="fro")),
    ((3, 4), dict(ord=INF)),
    ((3, 4), dict(ord=-1)),
    ((2, 3, 4), dict(dim=1)),
    ((2, 3, 4), dict(ord=1, dim=-1, keepdim=True)),
    ((2, 3, 4), dict(dim=(0, 2))),
    ((2, 3, 4), dict(ord=INF, dim=(2, 1))),
    ((2, 3, 4), dict(ord="fro", dim=(0, 1), keepdim=True)),
    ((2, 3, 4), dict(ord=0.5, dim=[2])),
    ((), {}),
    ((0, 3), {}),
]


def linalg_norm_samples(rng):
    out = [Sample((values(rng, s, avoid=(0.0,)),), kw, f"{s} {kw}") for s, kw in LINALG_NORM_CASES]
    out.append(
        Sample((values(rng, (4, 3), avoid=(0.0,)),), dict(ord=-INF), "noncontig", noncontig=(0,))
    )
    return out


ROWS = [
    OpSpec("matmul", rg.matmul, np.matmul, torch.matmul, matmul_samples),
    OpSpec("mm", rg.mm, np.matmul, torch.mm, mm_samples),
    OpSpec("bmm", rg.bmm, np.matmul, torch.bmm, bmm_samples),
    OpSpec("dot", rg.dot, np.dot, torch.dot, dot_samples),
    OpSpec("outer", rg.outer, np.outer, torch.outer, outer_samples),
    OpSpec("einsum", _einsum, _np_einsum, _torch_einsum, einsum_samples),
    OpSpec(
        "tensordot",
        rg.tensordot,
        np.tensordot,
        torch.tensordot,
        tensordot_samples,
        ref_kwargs=lambda kw: {"axes": kw["dims"]},
    ),
    OpSpec(
        "vector_norm",
        rg.vector_norm,
        _np_vector_norm,
        torch.linalg.vector_norm,
        vector_norm_samples,
    ),
    OpSpec(
        "matrix_norm",
        rg.matrix_norm,
        _np_matrix_norm,
        torch.linalg.matrix_norm,
        matrix_norm_samples,
    ),
    OpSpec("linalg_norm", rg.linalg_norm, _np_linalg_norm, torch.linalg.norm, linalg_norm_samples),
]
