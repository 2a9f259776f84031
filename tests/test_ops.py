"""The op table drives these: forward vs NumPy, float64 gradcheck and gradgradcheck, and forward
and gradients vs PyTorch in float32."""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd.autograd.gradcheck import gradcheck, gradgradcheck
from tests.opspec import NOT_ROWS, ROWS

CASES = []
for _spec in ROWS:
    for _i, _sample in enumerate(
        _spec.samples(np.random.default_rng(zlib.crc32(_spec.name.encode())))  # stable seed
    ):
        CASES.append(pytest.param(_spec, _sample, id=f"{_spec.name}-{_i}-{_sample.desc}"))


def _noncontig(a: np.ndarray) -> np.ndarray:
    """The same values in a non-contiguous view (transposed storage, or a stride of 2)."""
    if a.size <= 1:
        return a
    axis = max(i for i, s in enumerate(a.shape) if s > 1)
    shape = list(a.shape)
    shape[axis] *= 2
    index = [slice(None)] * a.ndim
    index[axis] = slice(None, None, 2)
    view = np.zeros(shape, dtype=a.dtype)[tuple(index)]
    view[...] = a
    assert not view.flags.c_contiguous
    return view


def _inputs(sample, dtype, requires_grad=True):
    """Sample arrays -> retrograd tensors (one tensor per distinct array: repeats stay shared)."""
    made = {}
    out = []
    for i, a in enumerate(sample.args):
        if isinstance(a, np.ndarray):
            if id(a) not in made:
                arr = a.astype(dtype) if a.dtype.kind == "f" else a
                if i in sample.noncontig:
                    arr = _noncontig(arr)
                made[id(a)] = rg.from_numpy(arr).requires_grad_(
                    requires_grad and a.dtype.kind == "f"
                )
            out.append(made[id(a)])
        else:
            out.append(a)
    return out


def _torch_inputs(sample, dtype):
    made = {}
    out = []
    for a in sample.args:
        if isinstance(a, np.ndarray):
            if id(a) not in made:
                t = torch.from_numpy(a.astype(dtype) if a.dtype.kind == "f" else a.copy())
                made[id(a)] = t.requires_grad_(a.dtype.kind == "f")
            out.append(made[id(a)])
        else:
            out.append(a)
    return out


def _outputs(res) -> list:
    if isinstance(res, (tuple, list)):
        return list(res)
    return [res]


def _distinct(tensors) -> list:
    seen, out = set(), []
    for t in tensors:
        if isinstance(t, (rg.Tensor, torch.Tensor)) and t.requires_grad and id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


@pytest.mark.parametrize("spec,sample", CASES)
def test_forward_matches_numpy(spec, sample, counts):
    if spec.ref is None:
        pytest.skip("no NumPy reference")
    ref_kwargs = spec.ref_kwargs(sample.kwargs) if spec.ref_kwargs else sample.kwargs
    for dtype, atol, rtol in (
        (np.float64, 1e-7, 1e-7),
        (np.float32, spec.fwd_atol32, spec.fwd_rtol32),
    ):
        ins = _inputs(sample, dtype, requires_grad=False)
        arrays = [t.data if isinstance(t, rg.Tensor) else t for t in ins]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = _outputs(spec.ref(*arrays, **ref_kwargs))
        got = _outputs(spec.fn(*ins, **sample.kwargs))
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            g = g.data if isinstance(g, rg.Tensor) else np.asarray(g)
            e = np.asarray(e)
            assert g.shape == e.shape, f"shape {g.shape} != NumPy's {e.shape}"
            if e.dtype.kind == "f" and g.dtype.kind == "f":
                assert g.dtype == e.dtype or dtype == np.float32, f"dtype {g.dtype} != {e.dtype}"
            np.testing.assert_allclose(g, e, atol=atol, rtol=rtol, equal_nan=True)
    counts["numpy"] += 1


@pytest.mark.parametrize("spec,sample", CASES)
def test_gradcheck(spec, sample, counts):
    if not spec.differentiable:
        pytest.skip("not differentiable")
    ins = _inputs(sample, np.float64)
    if not _distinct(ins):
        pytest.skip("no differentiable input")
    n = sum(t.data.size for t in _distinct(ins))
    fn = _wrapped(spec, sample)
    assert gradcheck(
        fn,
        tuple(ins),
        eps=spec.gradcheck_eps,
        atol=spec.gradcheck_atol,
        rtol=spec.gradcheck_rtol,
        fast_mode=n > spec.fast_gradcheck_above,
    )
    counts["gradcheck"] += 1


@pytest.mark.parametrize("spec,sample", CASES)
def test_gradgradcheck(spec, sample, counts):
    if not (spec.differentiable and spec.gradgrad and sample.gradgrad):
        pytest.skip("second order not supported for this row")
    ins = _inputs(sample, np.float64)
    dist = _distinct(ins)
    if not dist or sum(t.data.size for t in dist) == 0:
        pytest.skip("no differentiable input")
    n = sum(t.data.size for t in dist)
    fn = _wrapped(spec, sample)
    assert gradgradcheck(
        fn,
        tuple(ins),
        eps=spec.gradcheck_eps,
        atol=spec.gradcheck_atol * 10,
        rtol=spec.gradcheck_rtol * 10,
        fast_mode=n > 40,
    )
    counts["gradgradcheck"] += 1


def _wrapped(spec, sample):
    def fn(*ins):
        return spec.fn(*ins, **sample.kwargs)

    return fn


@pytest.mark.parametrize("spec,sample", CASES)
def test_matches_torch(spec, sample, counts):
    if spec.torch_fn is None or not sample.torch:
        pytest.skip("no PyTorch counterpart")
    tkw = spec.torch_kwargs(sample.kwargs) if spec.torch_kwargs else sample.kwargs
    ins = _inputs(sample, np.float32)
    tins = _torch_inputs(sample, np.float32)
    outs = _outputs(spec.fn(*ins, **sample.kwargs))
    touts = _outputs(spec.torch_fn(*tins, **tkw))
    if spec.compare_outputs:
        outs, touts = spec.compare_outputs(outs), spec.compare_outputs(touts)
    assert len(outs) == len(touts)
    rng = np.random.default_rng(0)
    loss_terms, tloss_terms = [], []
    compared = 0
    for o, t in zip(outs, touts):
        tv = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        ov = o.data if isinstance(o, rg.Tensor) else np.asarray(o)
        assert ov.shape == tv.shape, f"shape {ov.shape} != PyTorch's {tv.shape}"
        np.testing.assert_allclose(
            ov, tv, atol=spec.fwd_atol32, rtol=spec.fwd_rtol32, equal_nan=True
        )
        compared += 1
        if (
            spec.differentiable
            and isinstance(o, rg.Tensor)
            and o.requires_grad
            and isinstance(t, torch.Tensor)
            and t.requires_grad
        ):
            w = rng.standard_normal(ov.shape).astype(np.float32)
            loss_terms.append((o * rg.from_numpy(w)).sum())
            tloss_terms.append((t * torch.from_numpy(w)).sum())
    if loss_terms:
        loss = loss_terms[0]
        for term in loss_terms[1:]:
            loss = loss + term
        tloss = sum(tloss_terms)
        rd, td = _distinct(ins), _distinct(tins)
        grads = rg.autograd.grad(loss, rd, allow_unused=True)
        tgrads = torch.autograd.grad(tloss, td, allow_unused=True)
        for g, tg, x in zip(grads, tgrads, rd):
            gv = np.zeros(x.shape, np.float32) if g is None else g.data
            tv = np.zeros(x.shape, np.float32) if tg is None else tg.numpy()
            np.testing.assert_allclose(gv, tv, atol=spec.grad_atol32, rtol=spec.grad_rtol32)
            compared += 1
    counts["torch"] += compared


def test_every_public_op_has_a_row(counts):
    from retrograd import ops

    names = {spec.name for spec in ROWS}
    missing = [n for n in ops.__all__ if n not in names and n not in NOT_ROWS]
    assert not missing, f"public ops without a row in tests/opspec.py: {missing}"
    counts["ops"] = len({n.split("[")[0] for n in names})
