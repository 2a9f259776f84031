"""Op-table rows: reductions and the softmax family (retrograd/ops/reduce.py)."""

from __future__ import annotations

import math

import numpy as np
import torch

import retrograd as rg
from tests.opspec_base import OpSpec, Sample, reduce_samples, values

SHAPE = (2, 3, 4)
INT_DIMS = (0, 1, 2, -1)


def _np_dims(kw):
    d = kw.get("dim")
    if isinstance(d, tuple):
        d = d or None  # PyTorch reduces every dim for dim=()
    return dict(axis=d, keepdims=kw.get("keepdim", False))


def _torch_dims(kw):
    out = dict(kw)
    if out.get("dim") is None:
        out.pop("dim", None)
        if not out.pop("keepdim", False):
            return out
        out["dim"] = None
        out["keepdim"] = True
    return out


def _distinct(rng, shape, domain=(-2.0, 2.0)):
    """Values with no ties (max/min gradients are only defined without them), spaced >= 0.01."""
    n = int(np.prod(shape))
    lo, hi = domain
    grid = np.linspace(lo, hi, max(n, 1) * 4)
    return rng.permutation(grid)[:n].reshape(shape) + rng.uniform(0, 1e-3, size=shape)


def _distinct_abs(rng, shape):
    """Values whose magnitudes have no ties (for inf norms), |x| >= 0.1."""
    return _distinct(rng, shape, (0.1, 2.0)) * rng.choice([-1.0, 1.0], size=shape)


def _dims_samples(make, dims=(*INT_DIMS, None, (0, 2)), keepdims=(False, True), **kwargs):
    """One sample per (dim, keepdim) on a (2, 3, 4) input built by make(rng, shape)."""

    def samples(rng):
        out = []
        for d in dims:
            for keep in keepdims:
                kw = dict(kwargs, dim=d, keepdim=keep)
                out.append(Sample((make(rng, SHAPE),), kw, f"dim={d} keepdim={keep}"))
        return out

    return samples


def _plus(*makers):
    def samples(rng):
        return [s for m in makers for s in m(rng)]

    return samples


def _extra(*specs):
    """Hand-written samples: (array maker, kwargs, desc[, noncontig])."""

    def samples(rng):
        out = []
        for spec in specs:
            make, kw, desc, *rest = spec
            out.append(
                Sample((make(rng),), dict(kw), desc, noncontig=tuple(rest[0]) if rest else ())
            )
        return out

    return samples


def _v(shape, domain=(-2.0, 2.0), avoid=()):
    return lambda rng: values(rng, shape, domain, avoid)


def _d(shape):
    return lambda rng: _distinct(rng, shape)


def _const(a):
    a = np.asarray(a, dtype=np.float64)
    return lambda rng: a.copy()


# -- NumPy references ------------------------------------------------------------------------------
def _np_var(x, dim=None, keepdim=False, correction=1, unbiased=None, std=False):
    if unbiased is not None:
        correction = int(unbiased)
    kw = _np_dims(dict(dim=dim, keepdim=keepdim))
    n = x.size if kw["axis"] is None else int(np.prod([x.shape[d] for d in np.atleast_1d(dim)]))
    m = np.mean(x, axis=kw["axis"], keepdims=True)
    s = np.sum((x - m) ** 2, **kw)
    v = s / max(n - correction, 0)
    return np.sqrt(v) if std else v


def _torch_var(fn):
    def call(x, dim=None, keepdim=False, correction=1, unbiased=None):
        if unbiased is not None:
            correction = int(unbiased)
        return fn(x, dim, correction=correction, keepdim=keepdim)

    return call


def _np_prod(x, dim=None, keepdim=False):
    if x.ndim == 0:
        return x.copy()
    return np.prod(x, axis=dim, keepdims=keepdim)


def _torch_prod(x, dim=None, keepdim=False):
    return torch.prod(x) if dim is None else torch.prod(x, dim, keepdim)


def _np_extreme(largest):
    def ref(x, dim=None, keepdim=False):
        red, arg = (np.max, np.argmax) if largest else (np.min, np.argmin)
        if dim is None:
            return red(x)
        if x.ndim == 0:
            return x.copy(), np.zeros((), np.int64)
        return red(x, axis=dim, keepdims=keepdim), arg(x, axis=dim, keepdims=keepdim)

    return ref


def _torch_extreme(fn):
    def call(x, dim=None, keepdim=False):
        return fn(x) if dim is None else fn(x, dim, keepdim)

    return call


def _np_amax(largest):
    def ref(x, dim=None, keepdim=False):
        return (np.max if largest else np.min)(x, **_np_dims(dict(dim=dim, keepdim=keepdim)))

    return ref


def _np_arg(largest):
    def ref(x, dim=None, keepdim=False):
        arg = np.argmax if largest else np.argmin
        if dim is None or x.ndim == 0:
            out = np.asarray(arg(x), dtype=np.int64)
            return out.reshape((1,) * x.ndim) if keepdim else out
        return arg(x, axis=dim, keepdims=keepdim).astype(np.int64)

    return ref


def _np_logsumexp(x, dim=None, keepdim=False):
    kw = _np_dims(dict(dim=dim, keepdim=keepdim))
    if x.size == 0:
        return np.log(np.sum(np.exp(x), **kw))
    m = np.max(x, axis=kw["axis"], keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=kw["axis"], keepdims=True)) + m
    return out if keepdim else np.squeeze(out, axis=kw["axis"])


def _torch_logsumexp(x, dim=None, keepdim=False):
    if dim is None:
        dim = tuple(range(x.ndim)) if x.ndim else 0
    return torch.logsumexp(x, dim, keepdim)


def _np_norm(x, p="fro", dim=None, keepdim=False):
    kw = _np_dims(dict(dim=dim, keepdim=keepdim))
    a = np.abs(x)
    if p == "fro" or p == 2:
        return np.sqrt(np.sum(a * a, **kw))
    if p == math.inf:
        return np.max(a, **kw)
    if p == -math.inf:
        return np.min(a, **kw)
    if p == 0:
        return np.sum(x != 0, **kw).astype(x.dtype)
    return np.sum(a**p, **kw) ** (1 / p)


def _torch_norm(x, p="fro", dim=None, keepdim=False):
    return torch.norm(x, p, dim, keepdim)


def _np_cum(fn):
    def ref(x, dim):
        return x.copy() if x.ndim == 0 else fn(x, axis=dim)

    return ref


def _np_bool(fn):
    def ref(x, dim=None, keepdim=False):
        if x.ndim == 0:
            return np.asarray(fn(x))
        return np.asarray(fn(x, axis=dim, keepdims=keepdim))

    return ref


def _torch_bool(fn):
    def call(x, dim=None, keepdim=False):
        return fn(x, keepdim=keepdim) if dim is None else fn(x, dim, keepdim)

    return call


def _np_softmax(x, dim):
    if x.size == 0:
        return x.copy()
    axis = None if x.ndim == 0 else dim
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _np_log_softmax(x, dim):
    if x.size == 0:
        return x.copy()
    axis = None if x.ndim == 0 else dim
    s = x - np.max(x, axis=axis, keepdims=True)
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


# -- samples ---------------------------------------------------------------------------------------
def _bool_samples(rng):
    out = []
    for d in (0, 1, 2, -1, None, (0, 2)):
        for keep in (False, True):
            a = rng.random(SHAPE) < 0.7
            out.append(Sample((a,), dict(dim=d, keepdim=keep), f"bool dim={d} keepdim={keep}"))
    f = values(rng, (3, 4))
    f[0, 1] = 0.0
    out += [
        Sample((f,), dict(dim=1), "float input"),
        Sample((np.ones((3, 4), bool),), dict(dim=None), "all true"),
        Sample((np.array(True),), dict(dim=None), "0-d"),
        Sample((np.zeros((0, 3), bool),), dict(dim=None), "empty"),
        Sample((np.zeros((0, 3), bool),), dict(dim=0), "empty dim=0"),
        Sample((np.zeros((0, 3), bool),), dict(dim=1, keepdim=True), "empty dim=1"),
    ]
    return out


def _cum_samples(with_zeros):
    def samples(rng):
        out = [Sample((values(rng, SHAPE),), dict(dim=d), f"dim={d}") for d in INT_DIMS]
        out += [
            Sample((values(rng, ()),), dict(dim=0), "0-d"),
            Sample((values(rng, (0, 3)),), dict(dim=0), "empty dim=0"),
            Sample((values(rng, (0, 3)),), dict(dim=1), "empty dim=1"),
            Sample((values(rng, (4, 3)),), dict(dim=1), "noncontig", noncontig=(0,)),
            Sample((values(rng, (1, 5)),), dict(dim=0), "length-1 dim"),
        ]
        if with_zeros:
            one = values(rng, (3, 5))
            one[0, 2] = one[1, 0] = one[2, 4] = 0.0
            two = values(rng, (3, 5))
            two[0, 1] = two[0, 3] = two[2, 0] = two[2, 1] = 0.0
            out += [
                Sample((one,), dict(dim=1), "one zero per row (first, middle, last)"),
                Sample((two,), dict(dim=1), "two zeros in a row"),
                Sample((two.T.copy(),), dict(dim=0), "zeros along dim 0"),
            ]
        return out

    return samples


def _prod_samples(rng):
    out = []
    for d in (*INT_DIMS, None):
        for keep in (False, True) if d is not None else (False,):
            out.append(Sample((values(rng, SHAPE),), dict(dim=d, keepdim=keep), f"dim={d}"))
    one = values(rng, (3, 4))
    one[1, 2] = 0.0
    two = values(rng, (3, 4))
    two[1, 0] = two[1, 3] = 0.0
    out += [
        Sample((values(rng, ()),), dict(dim=None), "0-d"),
        Sample((values(rng, ()),), dict(dim=0, keepdim=True), "0-d dim=0"),
        Sample((values(rng, (4, 3)),), dict(dim=0), "noncontig", noncontig=(0,)),
        Sample((values(rng, (0, 3)),), dict(dim=None), "empty"),
        Sample((values(rng, (0, 3)),), dict(dim=0), "empty dim=0 (ones)"),
        Sample((values(rng, (0, 3)),), dict(dim=1), "empty dim=1"),
        Sample((one,), dict(dim=1), "one zero"),
        Sample((one,), dict(dim=None), "one zero, full"),
        Sample((two,), dict(dim=1), "two zeros in a row"),
        Sample((two,), dict(dim=None), "two zeros, full"),
        Sample((two,), dict(dim=0, keepdim=True), "zeros along dim 0"),
    ]
    return out


def _extreme_samples(rng):
    out = []
    for d in (*INT_DIMS, None):
        for keep in (False, True) if d is not None else (False,):
            out.append(Sample((_distinct(rng, SHAPE),), dict(dim=d, keepdim=keep), f"dim={d}"))
    out += [
        Sample((values(rng, ()),), dict(dim=None), "0-d"),
        Sample((values(rng, ()),), dict(dim=0, keepdim=False), "0-d dim=0"),
        Sample((values(rng, ()),), dict(dim=-1, keepdim=True), "0-d dim=-1"),
        Sample((_distinct(rng, (4, 3)),), dict(dim=0), "noncontig", noncontig=(0,)),
        Sample((_distinct(rng, (4, 3)),), dict(dim=None), "noncontig full", noncontig=(0,)),
        Sample((values(rng, (0, 3)),), dict(dim=1), "empty dim=1"),
    ]
    return out


def _amax_samples(rng):
    out = _dims_samples(_distinct)(rng)
    out += [
        Sample((values(rng, ()),), dict(dim=None), "0-d"),
        Sample((values(rng, ()),), dict(dim=0, keepdim=True), "0-d dim=0"),
        Sample((_distinct(rng, (4, 3)),), dict(dim=0), "noncontig", noncontig=(0,)),
        Sample((_distinct(rng, SHAPE),), dict(dim=(-1, 0)), "dims=(-1, 0)"),
        Sample((values(rng, (0, 3)),), dict(dim=1), "empty dim=1"),
        Sample((values(rng, (0, 3)),), dict(dim=-1, keepdim=True), "empty dim=-1 keepdim"),
    ]
    return out


def _arg_samples(rng):
    out = []
    for d in (*INT_DIMS, None):
        for keep in (False, True):
            out.append(Sample((_distinct(rng, SHAPE),), dict(dim=d, keepdim=keep), f"dim={d}"))
    out += [
        Sample((values(rng, ()),), dict(), "0-d"),
        Sample((values(rng, ()),), dict(dim=0), "0-d dim=0"),
        Sample((_distinct(rng, (4, 3)),), dict(dim=1), "noncontig", noncontig=(0,)),
        Sample((values(rng, (0, 3)),), dict(dim=1), "empty dim=1"),
    ]
    return out


def _large(rng, shape, offset):
    return values(rng, shape) + offset


def _lse_samples(rng):
    out = reduce_samples()(rng)
    inf_row = values(rng, (3, 4))
    inf_row[0, 1] = inf_row[2, 3] = -np.inf
    out += [
        Sample((_large(rng, SHAPE, 1e4),), dict(dim=1), "around +1e4"),
        Sample((_large(rng, SHAPE, -1e4),), dict(dim=-1), "around -1e4"),
        Sample((values(rng, (0, 3)),), dict(dim=0), "empty dim=0 (-inf)"),
        Sample((values(rng, (0, 3)),), dict(dim=None), "empty, full (-inf)"),
        Sample((inf_row,), dict(dim=1), "some -inf", gradgrad=False),
        Sample((values(rng, SHAPE),), dict(dim=(-1, 0), keepdim=True), "dims=(-1, 0)"),
    ]
    return out


def _softmax_samples(with_inf):
    return lambda rng: _softmax_list(rng, with_inf)


def _softmax_list(rng, with_inf):
    out = [Sample((values(rng, SHAPE, (-3.0, 3.0)),), dict(dim=d), f"dim={d}") for d in INT_DIMS]
    some_inf = values(rng, (3, 4))
    some_inf[0, 1] = some_inf[2, 3] = -np.inf
    out += [
        Sample((values(rng, ()),), dict(dim=0), "0-d"),
        Sample((values(rng, ()),), dict(dim=-1), "0-d dim=-1"),
        Sample((values(rng, (0, 3)),), dict(dim=1), "empty dim=1"),
        Sample((values(rng, (0, 3)),), dict(dim=0), "empty dim=0"),
        Sample((values(rng, (4, 3)),), dict(dim=0), "noncontig", noncontig=(0,)),
        Sample((values(rng, (4, 3)),), dict(dim=1), "noncontig dim=1", noncontig=(0,)),
        Sample((_large(rng, (3, 4), 1e4),), dict(dim=1), "around +1e4"),
        Sample((_large(rng, (3, 4), -1e4),), dict(dim=0), "around -1e4"),
        Sample((values(rng, (2, 5), (-1e4, 1e4)),), dict(dim=1), "spread over +-1e4"),
    ]
    if with_inf:  # log_softmax is -inf there: finite differences give nan
        out.append(Sample((some_inf,), dict(dim=1), "some -inf", gradgrad=False))
    return out


def _var_samples(rng):
    out = []
    for d in (*INT_DIMS, None, (0, 2)):
        for keep in (False, True):
            out.append(Sample((values(rng, SHAPE),), dict(dim=d, keepdim=keep), f"dim={d}"))
    out += [
        Sample((values(rng, SHAPE),), dict(dim=1, correction=0), "correction=0"),
        Sample((values(rng, SHAPE),), dict(dim=-1, correction=2), "correction=2"),
        Sample((values(rng, SHAPE),), dict(dim=(0, 1), correction=0.5), "correction=0.5"),
        Sample((values(rng, SHAPE),), dict(dim=2, unbiased=False), "unbiased=False"),
        Sample((values(rng, SHAPE),), dict(dim=None, unbiased=True), "unbiased=True"),
        Sample((values(rng, ()),), dict(correction=0), "0-d"),
        Sample((values(rng, (4, 3)),), dict(dim=0), "noncontig", noncontig=(0,)),
        Sample((values(rng, (0, 3)),), dict(dim=1), "empty dim=1"),
        Sample((values(rng, (3, 1)),), dict(dim=1), "one element per slice (nan)", gradgrad=False),
    ]
    return out


def _norm_samples(rng):
    out = []
    far = (0.0,)
    for p in (2, "fro", 1, 3, 1.5, 0.5, -1.0):
        for d, keep in ((None, False), (1, False), ((0, 2), True), (-1, True)):
            x = values(rng, SHAPE, avoid=far, margin=0.2)
            out.append(Sample((x,), dict(p=p, dim=d, keepdim=keep), f"p={p} dim={d}"))
    for p in (math.inf, -math.inf):
        for d, keep in ((None, False), (1, False), ((0, 2), True)):
            x = _distinct_abs(rng, SHAPE)
            out.append(Sample((x,), dict(p=p, dim=d, keepdim=keep), f"p={p} dim={d}"))
    zeros = values(rng, (3, 4), avoid=far, margin=0.2)
    zeros[1, 2] = 0.0
    out += [
        Sample((values(rng, SHAPE),), dict(p=0, dim=1), "p=0 (count)", gradgrad=False),
        Sample((values(rng, ()),), dict(), "0-d"),
        Sample((values(rng, (), avoid=far),), dict(p=3, dim=0), "0-d p=3"),
        Sample((values(rng, (4, 3), avoid=far),), dict(dim=1), "noncontig", noncontig=(0,)),
        Sample((values(rng, (0, 3)),), dict(), "empty (0)"),
        Sample((values(rng, (0, 3)),), dict(p=1, dim=0), "empty dim=0"),
        Sample((values(rng, (0, 3)),), dict(p=math.inf, dim=1), "empty inf dim=1"),
        Sample((zeros,), dict(p=1.5, dim=1), "p=1.5 with a zero", gradgrad=False),
        Sample((zeros,), dict(p=3, dim=0), "p=3 with a zero"),
    ]
    return out


ROWS = [
    OpSpec(
        "sum",
        rg.sum,
        lambda x, **kw: np.sum(x, **_np_dims(kw)),
        lambda x, **kw: torch.sum(x, **_torch_dims(kw)),
        _plus(
            reduce_samples(),
            _extra(
                (_v((0, 3)), dict(dim=None), "empty, full"),
                (_v((0, 3)), dict(dim=0, keepdim=True), "empty dim=0"),
                (_v(SHAPE), dict(dim=()), "dim=() reduces all"),
            ),
        ),
    ),
    OpSpec(
        "mean",
        rg.mean,
        lambda x, **kw: np.mean(x, **_np_dims(kw)),
        lambda x, **kw: torch.mean(x, **_torch_dims(kw)),
        _plus(
            reduce_samples(),
            _extra(
                (_v((0, 3)), dict(dim=None), "empty, full (nan)"),
                (_v((0, 3)), dict(dim=0), "empty dim=0 (nan)"),
            ),
        ),
    ),
    OpSpec("var", rg.var, _np_var, _torch_var(torch.var), _var_samples),
    OpSpec(
        "std",
        rg.std,
        lambda x, **kw: _np_var(x, **kw, std=True),
        _torch_var(torch.std),
        _var_samples,
    ),
    OpSpec("prod", rg.prod, _np_prod, _torch_prod, _prod_samples),
    OpSpec("max", rg.max, _np_extreme(True), _torch_extreme(torch.max), _extreme_samples),
    OpSpec("min", rg.min, _np_extreme(False), _torch_extreme(torch.min), _extreme_samples),
    OpSpec(
        "amax",
        rg.amax,
        _np_amax(True),
        lambda x, dim=None, keepdim=False: torch.amax(x, () if dim is None else dim, keepdim),
        _amax_samples,
    ),
    OpSpec(
        "amin",
        rg.amin,
        _np_amax(False),
        lambda x, dim=None, keepdim=False: torch.amin(x, () if dim is None else dim, keepdim),
        _amax_samples,
    ),
    OpSpec("argmax", rg.argmax, _np_arg(True), torch.argmax, _arg_samples, differentiable=False),
    OpSpec("argmin", rg.argmin, _np_arg(False), torch.argmin, _arg_samples, differentiable=False),
    OpSpec("logsumexp", rg.logsumexp, _np_logsumexp, _torch_logsumexp, _lse_samples),
    OpSpec("norm", rg.norm, _np_norm, _torch_norm, _norm_samples),
    OpSpec("cumsum", rg.cumsum, _np_cum(np.cumsum), torch.cumsum, _cum_samples(False)),
    OpSpec("cumprod", rg.cumprod, _np_cum(np.cumprod), torch.cumprod, _cum_samples(True)),
    OpSpec(
        "all",
        rg.all,
        _np_bool(np.all),
        _torch_bool(torch.all),
        _bool_samples,
        differentiable=False,
    ),
    OpSpec(
        "any",
        rg.any,
        _np_bool(np.any),
        _torch_bool(torch.any),
        _bool_samples,
        differentiable=False,
    ),
    OpSpec("softmax", rg.softmax, _np_softmax, torch.softmax, _softmax_samples(True)),
    OpSpec(
        "log_softmax", rg.log_softmax, _np_log_softmax, torch.log_softmax, _softmax_samples(False)
    ),
]
