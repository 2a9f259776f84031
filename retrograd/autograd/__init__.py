"""Reverse-mode automatic differentiation: the engine, Function, grad mode, tape, gradcheck."""

from __future__ import annotations

import numpy as np

from retrograd.autograd.anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from retrograd.autograd.function import Function
from retrograd.autograd.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from retrograd.autograd.gradcheck import gradcheck, gradgradcheck
from retrograd.autograd.memory import saved_tensors_bytes, track_saved_memory
from retrograd.autograd.tape import GradientTape
from retrograd.tensor import Tensor

__all__ = [
    "Function",
    "gradcheck",
    "gradgradcheck",
    "GradientTape",
    "saved_tensors_bytes",
    "track_saved_memory",
    "detect_anomaly",
    "set_detect_anomaly",
    "is_anomaly_enabled",
    "backward",
    "grad",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "inference_mode",
    "is_grad_enabled",
]


def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, Tensor):
        return [x]
    return list(x)


def _root_grads(outputs, grad_outputs, graph: bool) -> list:
    from retrograd.backend import get_xp

    grads = []
    for i, out in enumerate(outputs):
        g = grad_outputs[i] if grad_outputs is not None and i < len(grad_outputs) else None
        if g is None:
            if out.data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            if out.data.dtype.kind not in "fc":
                raise RuntimeError(
                    "grad can be implicitly created only for real scalar outputs but got "
                    f"{out.data.dtype}"
                )
            g = get_xp(out.data).ones(out.data.shape, dtype=out.data.dtype)
            if graph:
                g = Tensor._make(g, False, None, 0)
        else:
            if not isinstance(g, Tensor):
                g = Tensor(g)
            if g.shape != out.shape:
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[{i}] has a shape of {tuple(g.shape)} and "
                    f"output[{i}] has a shape of {tuple(out.shape)}."
                )
            if not graph:
                g = g.data
        grads.append(g)
    return grads


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate gradients of `tensors` into the `.grad` of leaves (or of `inputs` only)."""
    from retrograd.autograd.engine import run_backward

    outputs = _as_list(tensors)
    grad_list = _as_list(grad_tensors) if grad_tensors is not None else None
    if retain_graph is None:
        retain_graph = create_graph
    for out in outputs:
        if not out.requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn"
            )
    roots = _root_grads(outputs, grad_list, create_graph)
    inputs_list = _as_list(inputs) if inputs is not None else None
    if inputs_list is not None and len(inputs_list) == 0:
        raise RuntimeError("'inputs' argument to backward() cannot be empty.")
    for t in inputs_list or ():
        if t.grad_fn is not None:  # a non-leaf input accumulates into .grad, as in PyTorch
            t.retain_grad()
    run_backward(outputs, roots, retain_graph, create_graph, inputs=inputs_list, accumulate=True)


def grad(
    outputs,
    inputs,
    grad_outputs=None,
    retain_graph=None,
    create_graph: bool = False,
    allow_unused: bool | None = None,
    materialize_grads: bool = False,
):
    """The gradients of outputs w.r.t. inputs, returned (not accumulated into `.grad`).

    >>> (gx,) = retrograd.autograd.grad((x * x).sum(), x)
    """
    from retrograd.autograd.engine import run_backward

    single = isinstance(inputs, Tensor)
    outputs_list = _as_list(outputs)
    inputs_list = _as_list(inputs)
    if allow_unused is None:
        allow_unused = materialize_grads
    for t in inputs_list:
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    for out in outputs_list:
        if not out.requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn"
            )
    if retain_graph is None:
        retain_graph = create_graph
    grad_list = _as_list(grad_outputs) if grad_outputs is not None else None
    roots = _root_grads(outputs_list, grad_list, create_graph)
    results = run_backward(
        outputs_list,
        roots,
        retain_graph,
        create_graph,
        inputs=inputs_list,
        accumulate=False,
        allow_unused=allow_unused,
    )
    out = []
    for t, r in zip(inputs_list, results):
        if r is None:
            if materialize_grads:
                from retrograd.creation import zeros_like

                r = zeros_like(t)
            out.append(r)
        elif isinstance(r, Tensor):
            out.append(r)
        else:
            # a rule may return a view of another gradient: hand out owned arrays
            r = r.copy() if r.base is not None else r
            if isinstance(r, np.generic):  # 0-d arithmetic gives NumPy scalars: keep arrays
                r = np.asarray(r)
            out.append(Tensor._make(r, False, None, 0))
    del single
    return tuple(out)
