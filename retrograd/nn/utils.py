"""Gradient clipping and flat parameter vectors (PyTorch's `torch.nn.utils`).

Clipping works on the gradient arrays in place: one norm per parameter (array reductions), one
combined norm, one in-place scale per gradient; no graph and no per-element Python.

>>> total = clip_grad_norm_(model.parameters(), max_norm=1.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from retrograd.backend import get_xp
from retrograd.ops._util import quiet_block
from retrograd.ops.movement import cat
from retrograd.tensor import Tensor

__all__ = [
    "clip_grad_norm_",
    "clip_grad_value_",
    "get_total_norm",
    "clip_grads_with_norm_",
    "parameters_to_vector",
    "vector_to_parameters",
]


def _tensors(tensors) -> list:
    if isinstance(tensors, Tensor):
        return [tensors]
    return list(tensors)


def _quiet(a):
    return quiet_block()  # NumPy's floating-point warnings off (CuPy never warns)


def _array_norm(a, norm_type: float):
    """The p-norm of an array's elements (0-d array, a's dtype)."""
    xp = get_xp(a)
    if norm_type == math.inf:
        return xp.abs(a).max() if a.size else xp.zeros((), a.dtype)
    if norm_type == -math.inf:
        return xp.abs(a).min() if a.size else xp.asarray(math.inf, a.dtype)
    if norm_type == 0:
        return xp.asarray((a != 0).sum(), a.dtype)
    if norm_type == 2:
        flat = a.reshape(-1)
        return xp.sqrt(xp.dot(flat, flat))
    if norm_type == 1:
        return xp.abs(a).sum()
    return (xp.abs(a) ** norm_type).sum() ** (1.0 / norm_type)


def get_total_norm(
    tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None
) -> Tensor:
    """The norm of all tensors' elements together (the norm of their norms)."""
    norm_type = float(norm_type)
    arrays = [t.data for t in _tensors(tensors) if t is not None]
    if not arrays:
        return Tensor(0.0)
    xp = get_xp(arrays[0])
    with quiet_block():  # an inf/nan gradient, or squares overflowing: quietly, as PyTorch
        norms = xp.stack([_array_norm(a, norm_type) for a in arrays])
        total = _array_norm(norms, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
            "so it cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    return Tensor._make(xp.asarray(total), False, None, 0)


def clip_grads_with_norm_(parameters, max_norm: float, total_norm: Tensor, foreach=None) -> None:
    """Scale every gradient by min(1, max_norm / (total_norm + 1e-6)), in place."""
    grads = [p.grad for p in _tensors(parameters) if p.grad is not None]
    if not grads:
        return
    total = total_norm.data if isinstance(total_norm, Tensor) else total_norm
    coef = min(float(max_norm) / (float(total) + 1e-6), 1.0)
    if coef == 1.0:
        return  # multiplying by exactly 1 changes nothing
    for g in grads:
        with _quiet(g.data):  # inf * 0 (a non-finite total norm) is nan, quietly
            g.data *= g.data.dtype.type(coef)
        g._version[0] += 1


def clip_grad_norm_(
    parameters,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach=None,
) -> Tensor:
    """Scale the gradients so that their total norm is at most max_norm; return that total norm
    (before clipping) as a 0-d Tensor.

    >>> total = clip_grad_norm_(model.parameters(), 1.0)
    """
    params = _tensors(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total)
    return total


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient element into [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    for p in _tensors(parameters):
        if p.grad is not None:
            g = p.grad.data
            get_xp(g).clip(g, -clip_value, clip_value, out=g)
            p.grad._version[0] += 1


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated into one vector (differentiable)."""
    params = _tensors(parameters)
    if not params:
        raise RuntimeError("parameters_to_vector(): expected a non-empty iterable of tensors")
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Slice vec into the parameters' shapes; each parameter's data becomes that slice."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected retrograd.Tensor, but got: {type(vec).__name__}")
    pointer = 0
    for p in _tensors(parameters):
        n = p.numel()
        p.data = vec.data[pointer : pointer + n].reshape(p.shape)
        pointer += n


from retrograd.nn import utils_rnn as rnn  # noqa: E402, F401  (nn.utils.rnn.pad_sequence)
