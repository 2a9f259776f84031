"""SGD: stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from retrograd.backend import get_xp
from retrograd.optim.optimizer import (
    _LARGE,
    Optimizer,
    ParamsT,
    _check,
    _each_piece,
    _effective_grad,
    _wrap,
)
from retrograd.parallel import axpy, threads_for

_AXPY_FROM = 4096  # elements: from here the plain update goes by the BLAS's axpy


class SGD(Optimizer):
    """Stochastic gradient descent, as `torch.optim.SGD`.

    >>> opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        _check(lr >= 0.0, f"Invalid learning rate: {lr}")
        _check(momentum >= 0.0, f"Invalid momentum value: {momentum}")
        _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        _check(
            not nesterov or (momentum > 0 and dampening == 0),
            "Nesterov momentum requires a momentum and zero dampening",
        )
        super().__init__(params, defaults)

    def _update(self, p, g, state, group) -> None:
        lr, momentum = float(group["lr"]), float(group["momentum"])
        weight_decay, maximize = group["weight_decay"], group["maximize"]
        if momentum == 0:
            if weight_decay == 0 and not maximize:
                # p += (-lr) g by the BLAS's axpy: one pass and no temporary (W2's step 86 ->
                # 47 us), each element rounded once as in PyTorch's add_(g, alpha=-lr). Whole,
                # unless the pool splits it; below _AXPY_FROM elements NumPy's two passes cost
                # less than the call (W1's hot loop)
                if p.size >= _AXPY_FROM:
                    if threads_for(p, 2 * p.nbytes) > 1:

                        def step(pc, gc):
                            if not axpy(-lr, gc, pc):
                                pc -= lr * gc

                        _each_piece(step, p, g)
                        return
                    if axpy(-lr, g, p):
                        return
                if p.size < _LARGE:
                    p -= lr * g
                    return

            def update(pc, gc):
                pc -= lr * _effective_grad(gc, pc, weight_decay, maximize)

            _each_piece(update, p, g)
            return
        damp, nesterov = 1 - float(group["dampening"]), group["nesterov"]
        buf = state.get("momentum_buffer")
        first = buf is None
        if first:  # the first step starts the buffer at the gradient, undamped
            buf = state["momentum_buffer"] = _wrap(get_xp(p).empty_like(g, order="C"))

        def update(pc, gc, bc):
            gc = _effective_grad(gc, pc, weight_decay, maximize)
            if first:
                bc[...] = gc
            else:
                bc *= momentum
                bc += damp * gc
            pc -= lr * (gc + momentum * bc if nesterov else bc)

        _each_piece(update, p, g, buf.data)
