"""Stop at the first non-finite value: `check_finite(model, loss)` names the parameter (by its
dotted name), buffer or loss that holds a NaN or an infinity.

>>> loss.backward()
>>> retrograd.check_finite(model, loss)   # raises NonFiniteError naming e.g. '0.weight'
"""

from __future__ import annotations

import math

from retrograd.backend import get_xp
from retrograd.train.trainer import NonFiniteError

__all__ = ["NonFiniteError", "check_finite", "find_nonfinite", "describe_nonfinite"]


def describe_nonfinite(value) -> str | None:
    """None if `value` (a Tensor, array or number) is all finite; else what is wrong with it:
    the value itself for one element ('nan'), else e.g. '2 nan and 1 inf values of 12 (first at
    index (0, 3))'."""
    data = value.data if hasattr(value, "grad_fn") else value
    if isinstance(data, (int, float)):
        return None if math.isfinite(data) else str(data)
    if not hasattr(data, "dtype") or data.dtype.kind not in "fc":
        return None
    xp = get_xp(data)
    data = xp.asarray(data)
    finite = xp.isfinite(data)
    if bool(finite.all()):
        return None
    if data.size == 1:
        return str(data.item())
    n_nan = int(xp.isnan(data).sum())
    n_inf = int((~finite).sum()) - n_nan
    what = " and ".join(f"{n} {kind}" for n, kind in ((n_nan, "nan"), (n_inf, "inf")) if n)
    first = tuple(int(i) for i in xp.argwhere(~finite)[0])
    values = "value" if n_nan + n_inf == 1 else "values"
    return f"{what} {values} of {data.size} (first at index {first})"


def find_nonfinite(
    model, loss=None, *, values: bool = True, grads: bool = True, buffers: bool = True
) -> str | None:
    """The first non-finite thing, described; None if everything is finite.

    Order: parameter values (a NaN weight is the root of every NaN after it), buffers (running
    statistics), the loss, then gradients; within each, the model's parameter order.
    """
    params = list(model.named_parameters()) if hasattr(model, "named_parameters") else []
    if values:
        for name, p in params:
            bad = describe_nonfinite(p)
            if bad:
                return f"parameter '{name}' is not finite: {bad}"
    if buffers and hasattr(model, "named_buffers"):
        for name, b in model.named_buffers():
            bad = describe_nonfinite(b)
            if bad:
                return f"buffer '{name}' is not finite: {bad}"
    if loss is not None:
        bad = describe_nonfinite(loss)
        if bad:
            return f"loss is {bad}" if " " not in bad else f"loss is not finite: {bad}"
    if grads:
        for name, p in params:
            if p.grad is not None:
                bad = describe_nonfinite(p.grad)
                if bad:
                    return f"gradient of parameter '{name}' is not finite: {bad}"
    return None


def check_finite(
    model, loss=None, *, values: bool = True, grads: bool = True, buffers: bool = True
) -> None:
    """Raise `NonFiniteError` naming the first parameter value, buffer, loss or gradient that
    holds a NaN or an infinity (see `find_nonfinite` for the order). Returns None if all finite.

    >>> loss = F.cross_entropy(model(x), y); loss.backward()
    >>> check_finite(model, loss)
    """
    problem = find_nonfinite(model, loss, values=values, grads=grads, buffers=buffers)
    if problem is not None:
        raise NonFiniteError(problem)
