"""SGD: stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from retrograd.backend import get_xp
from retrograd.optim.optimizer import (
    _LARGE,
    Optimizer,
    ParamsT,
    _check,
    _chunk_size,
    _effective_grad,
    _pieces,
    _wrap,
)


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
        if momentum == 0 and weight_decay == 0 and not maximize:
            if p.size < _LARGE:
                p -= lr * g
            else:
                _plain_step(p, g, lr)
            return
        if momentum == 0:
            for pc, gc in _pieces(p, g):
                pc -= lr * _effective_grad(gc, pc, weight_decay, maximize)
            return
        damp, nesterov = 1 - float(group["dampening"]), group["nesterov"]
        buf = state.get("momentum_buffer")
        first = buf is None
        if first:  # the first step starts the buffer at the gradient, undamped
            buf = state["momentum_buffer"] = _wrap(get_xp(p).empty_like(g, order="C"))
        for pc, gc, bc in _pieces(p, g, buf.data):
            gc = _effective_grad(gc, pc, weight_decay, maximize)
            if first:
                bc[...] = gc
            else:
                bc *= momentum
                bc += damp * gc
            pc -= lr * (gc + momentum * bc if nesterov else bc)


def _plain_step(p, g, lr: float) -> None:
    """p -= lr * g for a large parameter, through one small scratch buffer."""
    pieces = _pieces(p, g)
    if type(pieces) is tuple:
        p -= lr * g
        return
    xp = get_xp(p)
    scratch = xp.empty(_chunk_size(p.size), dtype=xp.result_type(g, lr))
    for pc, gc in pieces:
        s = scratch[: pc.size]
        xp.multiply(gc, lr, out=s)
        pc -= s
