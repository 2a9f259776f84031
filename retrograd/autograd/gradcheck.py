"""gradcheck / gradgradcheck: compare gradient rules against central finite differences.

PyTorch's semantics: float64 inputs, eps 1e-6, atol 1e-5, rtol 1e-3; a mismatch raises
`GradcheckError` ("Jacobian mismatch for output i with respect to input j") with both matrices.
`fast_mode=True` compares random projections v^T J u instead of whole Jacobians.
"""

from __future__ import annotations

import warnings

import numpy as np

from retrograd.tensor import Tensor

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(RuntimeError):
    """Raised by gradcheck/gradgradcheck when analytical and numerical gradients differ."""


def _as_tuple(x) -> tuple:
    return x if isinstance(x, tuple) else (x,) if not isinstance(x, list) else tuple(x)


def _diff_outputs(outputs) -> list:
    return [o for o in outputs if isinstance(o, Tensor) and o.dtype.kind in "fc"]


def _eval(fn, inputs) -> list:
    # grad mode stays on: gradgradcheck's function itself calls autograd.grad
    outs = _as_tuple(fn(*inputs))
    return [np.array(o.data, dtype=np.float64) for o in _diff_outputs(outs)]


def _numerical_jacobian(fn, inputs, diff_idx, eps) -> list:
    """J[j][o]: (out_numel, in_numel) for differentiable input j and output o."""
    result = []
    for j in diff_idx:
        x = inputs[j]
        n = x.data.size
        cols = None
        for k in range(n):
            idx = np.unravel_index(k, x.data.shape)
            orig = x.data[idx].copy()
            x.data[idx] = orig + eps
            plus = _eval(fn, inputs)
            x.data[idx] = orig - eps
            minus = _eval(fn, inputs)
            x.data[idx] = orig
            if cols is None:
                cols = [np.zeros((p.size, n)) for p in plus]
            for o, (p, m) in enumerate(zip(plus, minus)):
                cols[o][:, k] = ((p - m) / (2 * eps)).ravel()
        if cols is None:  # empty input
            cols = [np.zeros((p.size, 0)) for p in _eval(fn, inputs)]
        result.append(cols)
    return result


def _analytical_jacobian(fn, inputs, diff_idx) -> list:
    from retrograd.autograd import grad

    outputs = _diff_outputs(_as_tuple(fn(*inputs)))
    diff_inputs = [inputs[j] for j in diff_idx]
    result = [[np.zeros((o.data.size, inputs[j].data.size)) for o in outputs] for j in diff_idx]
    for o, out in enumerate(outputs):
        if not out.requires_grad:
            continue
        for k in range(out.data.size):
            unit = np.zeros(out.data.size, dtype=out.data.dtype)
            unit[k] = 1
            gs = grad(
                out,
                diff_inputs,
                grad_outputs=Tensor(unit.reshape(out.data.shape)),
                retain_graph=True,
                allow_unused=True,
            )
            for jj, (x, g) in enumerate(zip(diff_inputs, gs)):
                if g is None:
                    continue
                if g.shape != x.shape:
                    raise GradcheckError(
                        f"Gradient has shape {tuple(g.shape)} but input has shape {tuple(x.shape)}"
                    )
                result[jj][o][k, :] = np.asarray(g.data, dtype=np.float64).ravel()
    return result


def _fmt(m: np.ndarray) -> str:
    return "tensor(" + np.array2string(m, precision=4, separator=", ", threshold=200) + ")"


def gradcheck(
    func,
    inputs,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    fast_mode: bool = False,
    seed: int = 0,
) -> bool:
    """Check `func`'s gradients w.r.t. the inputs that require grad against finite differences.

    >>> x = retrograd.randn(3, dtype=retrograd.float64, requires_grad=True)
    >>> gradcheck(retrograd.tanh, (x,))
    True
    """
    inputs = _as_tuple(inputs)
    diff_idx = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not diff_idx:
        raise ValueError("gradcheck expects at least one input tensor to require gradient")
    for i in diff_idx:
        if inputs[i].dtype != np.float64:
            warnings.warn(
                f"Input #{i} requires gradient and is not a double precision floating point. "
                "This check will likely fail if all the inputs are not of double precision "
                "floating point.",
                stacklevel=2,
            )
    if fast_mode:
        ok = _fast_check(func, inputs, diff_idx, eps, atol, rtol, seed)
    else:
        ok = _slow_check(func, inputs, diff_idx, eps, atol, rtol)
    if ok is not True:
        if raise_exception:
            raise GradcheckError(ok)
        return False
    return True


def _slow_check(func, inputs, diff_idx, eps, atol, rtol):
    numerical = _numerical_jacobian(func, inputs, diff_idx, eps)
    analytical = _analytical_jacobian(func, inputs, diff_idx)
    for jj, j in enumerate(diff_idx):
        for o, (num, ana) in enumerate(zip(numerical[jj], analytical[jj])):
            if not np.allclose(ana, num, rtol=rtol, atol=atol, equal_nan=True):
                return (
                    f"Jacobian mismatch for output {o} with respect to input {j},\n"
                    f"numerical:{_fmt(num)}\nanalytical:{_fmt(ana)}\n"
                )
    return True


def _fast_check(func, inputs, diff_idx, eps, atol, rtol, seed):
    """Compare v^T J u: one backward (v^T J) and one directional difference (J u) per output."""
    from retrograd.autograd import grad

    rng = np.random.default_rng(seed)
    outputs = _diff_outputs(_as_tuple(func(*inputs)))
    us = {j: rng.standard_normal(inputs[j].shape) for j in diff_idx}
    for o, out in enumerate(outputs):
        v = rng.standard_normal(out.shape)
        if out.requires_grad:
            gs = grad(
                out,
                [inputs[j] for j in diff_idx],
                grad_outputs=Tensor(v.astype(out.dtype)),
                retain_graph=True,
                allow_unused=True,
            )
        else:
            gs = [None] * len(diff_idx)
        for jj, j in enumerate(diff_idx):
            x = inputs[j]
            u = us[j]
            ana = 0.0 if gs[jj] is None else float(np.sum(np.asarray(gs[jj].data) * u))
            orig = x.data.copy()
            x.data[...] = orig + eps * u
            plus = _eval(func, inputs)[o]
            x.data[...] = orig - eps * u
            minus = _eval(func, inputs)[o]
            x.data[...] = orig
            num = float(np.sum((plus - minus) / (2 * eps) * v))
            if not np.isclose(ana, num, rtol=rtol, atol=atol):
                return (
                    f"Jacobian mismatch for output {o} with respect to input {j},\n"
                    f"numerical:{num}\nanalytical:{ana}\n(fast mode: v^T J u projections)\n"
                )
    return True


def gradgradcheck(
    func,
    inputs,
    grad_outputs=None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    fast_mode: bool = False,
    seed: int = 0,
) -> bool:
    """Check second derivatives: gradcheck of the vector-Jacobian product of `func`."""
    from retrograd.autograd import grad

    inputs = _as_tuple(inputs)
    diff_idx = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    outputs = _diff_outputs(_as_tuple(func(*inputs)))
    rng = np.random.default_rng(seed)
    if grad_outputs is None:
        grad_outputs = tuple(
            Tensor(rng.standard_normal(o.shape).astype(o.dtype), requires_grad=True)
            for o in outputs
        )
    else:
        grad_outputs = _as_tuple(grad_outputs)
    n_in = len(inputs)

    def vjp(*args):
        ins, gos = args[:n_in], args[n_in:]
        outs = _diff_outputs(_as_tuple(func(*ins)))
        pairs = [(o, g) for o, g in zip(outs, gos) if o.requires_grad]
        if not pairs:
            return tuple()
        gs = grad(
            [p[0] for p in pairs],
            [ins[j] for j in diff_idx],
            grad_outputs=[p[1] for p in pairs],
            create_graph=True,
            allow_unused=True,
        )
        return tuple(g for g in gs if g is not None)

    return gradcheck(
        vjp,
        inputs + tuple(grad_outputs),
        eps=eps,
        atol=atol,
        rtol=rtol,
        raise_exception=raise_exception,
        fast_mode=fast_mode,
        seed=seed,
    )
