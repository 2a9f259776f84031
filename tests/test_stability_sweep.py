"""Numerical stability sweep: every row of the op table on extreme inputs.

For each row, a few of its samples get one extreme value written into the first element of
their first float argument (and, for "zeros", the whole argument zeroed): +-1e4, +-1e30, 1e-30,
0, +-inf and nan, in float64 and float32. Then
  * retrograd's forward runs under `np.errstate(all="raise", under="ignore")` with warnings as
    errors: no NumPy warning may escape (PyTorch emits none on such inputs; underflow is left
    out, see `_strict`);
  * its values match PyTorch's (NumPy's where the row has no PyTorch counterpart), nan for nan;
  * with the gradient seeded by ones (also run under the error settings), every input's
    gradient matches PyTorch's wherever PyTorch's is finite;
  * where PyTorch raises, retrograd raises; where PyTorch succeeds, retrograd succeeds.
Where NumPy and PyTorch disagree the sweep follows PyTorch (sign(nan) is 0 there; float32 std
stays finite at 1e30 there).

ALLOWED lists cases where PyTorch itself warns or its answer is not a reference; KNOWN lists
retrograd bugs the sweep found (strict xfail in `test_known_failures` until fixed).
"""

from __future__ import annotations

import math
import os
import warnings
import zlib

import numpy as np
import pytest
import torch

import retrograd as rg
from tests.opspec import ROWS
from tests.opspec_base import OpSpec, Sample

EXTREMES = {
    "+1e4": 1e4,
    "-1e4": -1e4,
    "+1e30": 1e30,
    "-1e30": -1e30,
    "1e-30": 1e-30,
    "zeros": 0.0,
    "+inf": math.inf,
    "-inf": -math.inf,
    "nan": math.nan,
}
DTYPES = {"float64": (np.float64, torch.float64), "float32": (np.float32, torch.float32)}
LONG = os.environ.get("RETROGRAD_FUZZ") == "long"
LONG_SAMPLES_PER_ROW = 12  # samples of distinct shapes per row (RETROGRAD_FUZZ=long)
SAMPLES_PER_ROW = LONG_SAMPLES_PER_ROW if LONG else 3
SEED = int(os.environ.get("RETROGRAD_SWEEP_SEED", "0"))  # another seed draws other sample values
FWD_TOL = {"float64": (1e-6, 1e-9), "float32": (1e-3, 1e-5)}  # rtol, atol (scaled)
GRAD_TOL = {"float64": (1e-5, 1e-8), "float32": (1e-2, 1e-4)}

KINDS = ("forward warns", "backward warns", "user warning", "forward", "gradient", "raises")

# Patterns (row, sample index, dtype, extreme, kind of problem): each field a value, "*", or a
# tuple of options.
#
# ALLOWED: where PyTorch itself is no reference, with the reason; not checked.
NAN_GRADIENT = (
    "PyTorch's gradient at a nan input is whatever branch its kernel takes (abs: 0, elu: 1, "
    "hardsigmoid: 0, max of one element: 1, ...): no reference; the nan forward is checked"
)
ALLOWED: dict[tuple, str] = {
    ("*", "*", "*", "nan", "gradient"): NAN_GRADIENT,
    ("gelu", "*", "float32", "+inf", "forward"): "PyTorch's float32 gelu(+inf) is nan",
    (
        ("layer_norm", "group_norm", "multi_head_attention_forward"),
        "*",
        "float32",
        ("+1e30", "-1e30"),
        "forward",
    ): "PyTorch gives nan (its float32 variance / scores overflow); retrograd's values are finite",
    ("cosine_similarity", "*", "float32", ("+1e30", "-1e30"), ("forward", "gradient")): (
        "PyTorch gives 0 (its float32 squared norms overflow): no reference for the cosine"
    ),
    ("soft_margin_loss", "*", "*", ("+1e4", "-1e4", "+1e30", "-1e30"), "forward"): (
        "PyTorch's log(1 + exp(-y x)) overflows to inf; retrograd's stable form is exact"
    ),
    ("cross_entropy", "*", "*", "+inf", "forward"): (
        "PyTorch gives nan (inf - inf in its log_softmax)"
    ),
    ("scaled_dot_product_attention", "*", "*", ("+inf", "-inf", "nan"), "forward"): (
        "a row whose scores are all -inf is 0 or nan in PyTorch depending on the kernel it "
        "picks (0 in retrograd, as PyTorch's math path), and with no keys PyTorch gives nan "
        "where the empty sum is 0"
    ),
    (("var", "std"), "*", "*", "*", "user warning"): (
        "PyTorch warns the same ('degrees of freedom is <= 0')"
    ),
    (
        ("norm", "vector_norm", "linalg_norm", "matrix_norm"),
        "*",
        "float32",
        ("+1e30", "-1e30"),
        ("forward", "gradient"),
    ): (
        "PyTorch's float32 2-norm of more than one element sums float32 squares: inf, gradient "
        "0; retrograd's scaled norm is finite and exact (PyTorch's own answer for one element, "
        "checked in test_float32_norms_and_std_stay_finite)"
    ),
}

# KNOWN: retrograd bugs the sweep found; strict xfail in `test_known_failures` until fixed (then
# the xfail passes, strict turns that into a failure, and the entry goes).
KNOWN: dict[tuple, str] = {}


# -- picking the samples ---------------------------------------------------------------------------
def _first_float(sample: Sample) -> int | None:
    for i, a in enumerate(sample.args):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.size:
            return i
    return None


def _samples(spec: OpSpec, limit: int) -> list[tuple[int, Sample]]:
    """Up to `limit` samples with a non-empty float argument, of distinct shapes."""
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()) + SEED)
    picked, shapes = [], set()
    for i, s in enumerate(spec.samples(rng)):
        k = _first_float(s)
        if k is None or s.args[k].shape in shapes:
            continue
        shapes.add(s.args[k].shape)
        picked.append((i, s))
        if len(picked) == limit:
            break
    return picked


def _extreme(sample: Sample, k: int, label: str) -> Sample:
    """The sample with the extreme value written into argument k (every use of that array)."""
    old = sample.args[k]
    new = old.copy()
    if label == "zeros":
        new[...] = 0.0
    else:
        new.flat[0] = EXTREMES[label]
    args = tuple(new if a is old else a for a in sample.args)
    return Sample(args, dict(sample.kwargs), sample.desc, sample.noncontig, sample.torch)


# -- running one case ------------------------------------------------------------------------------
def _noncontig(a: np.ndarray) -> np.ndarray:
    if a.size <= 1:
        return a
    axis = max(i for i, s in enumerate(a.shape) if s > 1)
    shape = list(a.shape)
    shape[axis] *= 2
    index = [slice(None)] * a.ndim
    index[axis] = slice(None, None, 2)
    view = np.zeros(shape, dtype=a.dtype)[tuple(index)]
    view[...] = a
    return view


def _rg_inputs(sample: Sample, np_dtype) -> list:
    made, out = {}, []
    for i, a in enumerate(sample.args):
        if isinstance(a, np.ndarray):
            if id(a) not in made:
                arr = a.astype(np_dtype) if a.dtype.kind == "f" else a
                if i in sample.noncontig:
                    arr = _noncontig(arr)
                made[id(a)] = rg.from_numpy(arr).requires_grad_(a.dtype.kind == "f")
            out.append(made[id(a)])
        else:
            out.append(a)
    return out


def _torch_inputs(sample: Sample, np_dtype) -> list:
    made, out = {}, []
    for a in sample.args:
        if isinstance(a, np.ndarray):
            if id(a) not in made:
                t = torch.from_numpy(a.astype(np_dtype) if a.dtype.kind == "f" else a.copy())
                made[id(a)] = t.requires_grad_(a.dtype.kind == "f")
            out.append(made[id(a)])
        else:
            out.append(a)
    return out


def _torch_kwargs(spec: OpSpec, kwargs: dict, torch_dtype) -> dict:
    kw = spec.torch_kwargs(kwargs) if spec.torch_kwargs else dict(kwargs)
    return {
        k: v.to(torch_dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        for k, v in kw.items()
    }


def _outputs(res) -> list:
    return list(res) if isinstance(res, (tuple, list)) else [res]


def _array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().numpy()
    if isinstance(x, rg.Tensor):
        return np.asarray(x.data)
    return np.asarray(x)


def _close(got, ref, rtol, atol, mask=None) -> str | None:
    """None if got matches ref (nan for nan, inf for inf), else a one-line description."""
    got, ref = _array(got), _array(ref)
    if got.shape != ref.shape:
        return f"shape {got.shape} != {ref.shape}"
    if got.dtype.kind == "b" or ref.dtype.kind == "b":
        return None if np.array_equal(got, ref) else "boolean values differ"
    got, ref = got.astype(np.float64), ref.astype(np.float64)
    if mask is not None:
        got, ref = got[mask], ref[mask]
    finite = ref[np.isfinite(ref)]
    scale = float(np.max(np.abs(finite), initial=1.0))
    ok = np.isclose(got, ref, rtol=rtol, atol=atol * scale, equal_nan=True)
    if ok.all():
        return None
    i = int(np.flatnonzero(~ok)[0])
    return f"{got.size - int(ok.sum())}/{got.size} differ, e.g. {got.flat[i]!r} vs {ref.flat[i]!r}"


def _warn_kind(exc: BaseException, phase: str) -> str:
    """A NumPy floating-point warning, or another warning (retrograd's own UserWarning)."""
    if isinstance(exc, (FloatingPointError, RuntimeWarning)):
        return f"{phase} warns"
    return "user warning"


def _strict(fn):
    """Run fn with every NumPy warning, and every floating-point problem but underflow, raised
    as an error. Underflow is left out: NumPy ignores it by default (np.geterr()), PyTorch
    flushes silently too, and it is ordinary arithmetic (exp(-1e4) == 0, 1e-30**2 in float32)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            return fn()


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return fn()


def run_case(spec: OpSpec, sample: Sample, dtype: str) -> list[tuple[str, str]]:
    """The problems of one extreme case as (kind, message); kind is one of KINDS."""
    np_dtype, torch_dtype = DTYPES[dtype]
    problems = []

    # PyTorch (the reference), or NumPy when there is no PyTorch counterpart
    expected, texc, tins = None, None, None
    if spec.torch_fn is not None and sample.torch:
        tins = _torch_inputs(sample, np_dtype)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = _outputs(
                    spec.torch_fn(*tins, **_torch_kwargs(spec, sample.kwargs, torch_dtype))
                )
        except (RuntimeError, ValueError, IndexError, TypeError) as e:
            texc = e
    elif spec.ref is not None:
        ref_kwargs = spec.ref_kwargs(sample.kwargs) if spec.ref_kwargs else sample.kwargs
        arrays = [
            a.astype(np_dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
            for a in sample.args
        ]
        expected = _quiet(lambda: _outputs(spec.ref(*arrays, **ref_kwargs)))
    else:
        return []

    # retrograd's forward, under the error settings
    ins = _rg_inputs(sample, np_dtype)

    def forward():
        return _outputs(spec.fn(*ins, **sample.kwargs))

    try:
        outs = _strict(forward)
    except (FloatingPointError, Warning) as e:
        problems.append((_warn_kind(e, "forward"), f"{type(e).__name__}: {e}"))
        ins = _rg_inputs(sample, np_dtype)
        try:
            outs = _quiet(forward)
        except Exception as e:  # noqa: BLE001
            return problems + [("raises", f"forward raises {type(e).__name__}: {e}")]
    except Exception as e:  # noqa: BLE001
        if texc is not None:
            return problems
        return problems + [("raises", f"{type(e).__name__}: {e} (PyTorch does not raise)")]
    if texc is not None:
        return problems + [("raises", f"forward succeeds where PyTorch raises: {texc}")]

    if spec.compare_outputs and tins is not None:
        outs, expected = spec.compare_outputs(outs), spec.compare_outputs(expected)
    if len(outs) != len(expected):
        return problems + [("forward", f"{len(outs)} outputs, expected {len(expected)}")]
    rtol, atol = FWD_TOL[dtype]
    for j, (o, e) in enumerate(zip(outs, expected)):
        bad = _close(o, e, rtol, atol)
        if bad:
            problems.append(("forward", f"output {j}: {bad}"))

    # gradients seeded by ones, against PyTorch's where finite
    if not spec.differentiable or tins is None:
        return problems
    pairs = _pairs(outs, expected)
    rd = _distinct(ins)
    td = _distinct(tins)
    if not pairs or not rd:
        return problems
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tgrads = torch.autograd.grad(
                [e for _, e in pairs],
                td,
                [torch.ones_like(e) for _, e in pairs],
                allow_unused=True,
            )
    except RuntimeError:
        return problems  # PyTorch has no gradient here either

    def backward():
        return rg.autograd.grad(
            [o for o, _ in pairs],
            rd,
            [rg.ones(o.shape, dtype=o.dtype) for o, _ in pairs],
            allow_unused=True,
        )

    try:
        grads = _strict(backward)
    except (FloatingPointError, Warning) as e:
        problems.append((_warn_kind(e, "backward"), f"{type(e).__name__}: {e}"))
        ins = _rg_inputs(sample, np_dtype)  # run the case again, quietly, to check the values
        outs = _quiet(forward)
        if spec.compare_outputs:
            outs = spec.compare_outputs(outs)
        pairs, rd = _pairs(outs, expected), _distinct(ins)
        try:
            grads = _quiet(backward)
        except Exception as e:  # noqa: BLE001
            return problems + [("raises", f"backward raises {type(e).__name__}: {e}")]
    except Exception as e:  # noqa: BLE001
        return problems + [("raises", f"backward raises {type(e).__name__}: {e}")]
    rtol, atol = GRAD_TOL[dtype]
    for j, (g, tg, x) in enumerate(zip(grads, tgrads, rd)):
        ref = np.zeros(x.shape) if tg is None else tg.numpy()
        got = np.zeros(x.shape) if g is None else _array(g)
        bad = _close(got, ref, rtol, atol, mask=np.isfinite(ref))
        if bad:
            problems.append(("gradient", f"input {j}: {bad}"))
    return problems


def _pairs(outs, expected) -> list:
    """(retrograd output, PyTorch output) for the outputs both can differentiate."""
    return [
        (o, e)
        for o, e in zip(outs, expected)
        if isinstance(o, rg.Tensor)
        and o.requires_grad
        and isinstance(e, torch.Tensor)
        and e.requires_grad
    ]


def _distinct(tensors) -> list:
    seen, out = set(), []
    for t in tensors:
        if isinstance(t, (rg.Tensor, torch.Tensor)) and t.requires_grad and id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


# -- the cases -------------------------------------------------------------------------------------
def cases(spec: OpSpec, limit: int = SAMPLES_PER_ROW):
    """Every (key, sample) of a row: key = (row, sample index, dtype, extreme)."""
    for i, sample in _samples(spec, limit):
        k = _first_float(sample)
        for label in EXTREMES:
            for dtype in DTYPES:
                yield (spec.name, i, dtype, label), _extreme(sample, k, label)


def _fits(pattern: tuple, key: tuple) -> bool:
    """Whether key fits pattern: each field equal, "*", or one of a tuple of options."""
    return all(
        p == "*" or p == k or (isinstance(p, tuple) and k in p) for p, k in zip(pattern, key)
    )


def _excused(key: tuple, kind: str) -> bool:
    """Whether the problem `kind` of case `key` is in ALLOWED or KNOWN."""
    return any(_fits(p, key + (kind,)) for p in (*ALLOWED, *KNOWN))


@pytest.mark.parametrize("spec", ROWS, ids=[r.name for r in ROWS])
def test_extreme_inputs(spec):
    failures = []
    for key, sample in cases(spec):
        for kind, message in run_case(spec, sample, key[2]):
            if not _excused(key, kind):
                failures.append(f"{key} {kind}: {message}")
    assert not failures, "\n".join(failures)


def _known_params():
    out = []
    for pattern, why in KNOWN.items():
        out.append(
            pytest.param(
                pattern,
                id="-".join("|".join(p) if isinstance(p, tuple) else str(p) for p in pattern),
                marks=pytest.mark.xfail(strict=True, reason=why),
            )
        )
    return out


@pytest.mark.parametrize("pattern", _known_params())
def test_known_failures(pattern):
    """Passes once retrograd is fixed for every case of the pattern (then strict xfail fails)."""
    names = pattern[0] if isinstance(pattern[0], tuple) else (pattern[0],)
    failures = []
    for spec in (r for r in ROWS if r.name in names):
        # every sample the long sweep sees: the entry holds for all of them until fixed
        for key, sample in cases(spec, LONG_SAMPLES_PER_ROW):
            if _fits(pattern[:4], key):
                for kind, message in run_case(spec, sample, key[2]):
                    if _fits(pattern[4:], (kind,)):
                        failures.append(f"{key} {kind}: {message}")
    assert not failures, "\n".join(failures)


# -- fixed divergences, pinned -----------------------------------------------------------------
@pytest.mark.parametrize(
    "fn",
    [
        rg.norm,
        rg.linalg.vector_norm,
        rg.linalg.norm,
        lambda x: rg.linalg.matrix_norm(x[None, None]),
    ],
    ids=["norm", "vector_norm", "linalg_norm", "matrix_norm"],
)
@pytest.mark.parametrize("value", [1e30, -1e30, 1e-30, -1e-30])
def test_float32_norms_and_std_stay_finite(fn, value):
    """PyTorch's float32 norm of one element is |x| with gradient sign(x), even where x * x
    overflows or underflows; retrograd's norms scale instead of squaring plainly."""
    x = rg.tensor(np.float32(value)).requires_grad_()
    out = _strict(lambda: fn(x))
    assert out.dtype == rg.float32
    assert out.item() == abs(np.float32(value))
    (g,) = _strict(lambda: rg.autograd.grad(out, [x]))
    assert g.item() == np.sign(value)


def test_float32_std_stays_finite():
    """std over [1e30, 1, 2] in float32: PyTorch's 5.77e29 (float64 accumulation), not inf."""
    data = np.array([1e30, 1.0, 2.0], dtype=np.float32)
    x = rg.from_numpy(data).requires_grad_()
    t = torch.from_numpy(data).requires_grad_()
    out = _strict(lambda: rg.std(x))
    ref = torch.std(t)
    assert out.dtype == rg.float32
    np.testing.assert_allclose(out.item(), ref.item(), rtol=1e-6)
    (g,) = _strict(lambda: rg.autograd.grad(out, [x]))
    (tg,) = torch.autograd.grad(ref, [t])
    np.testing.assert_allclose(_array(g), tg.numpy(), rtol=1e-5, atol=1e-6)


def test_quiet_restores_the_callers_error_state():
    """Quiet primitives and backward passes leave the caller's NumPy error state as it was,
    also when they raise (the helper resets its own token: nested and threaded uses are safe)."""
    from retrograd.ops._util import quiet, quiet_block

    @quiet
    def fails():
        raise ValueError("inside")

    with np.errstate(all="raise"):
        before = np.geterr()
        x = rg.tensor([math.inf, 1.0], requires_grad=True)
        y = rg.sin(x)  # quiet inside: nan without a warning
        y.sum().backward()
        with pytest.raises(ValueError):
            fails()
        with quiet_block():
            with quiet_block():
                np.sin(np.array(math.inf))
            np.sin(np.array(math.inf))
        assert np.geterr() == before
        with pytest.raises(FloatingPointError):
            np.sin(np.array(math.inf))
    assert math.isnan(y.data[0]) and x.grad is not None
