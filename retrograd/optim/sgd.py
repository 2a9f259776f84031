"""SGD: stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from retrograd.backend import get_xp
from retrograd.optim.optimizer import Optimizer, ParamsT, _check, _effective_grad, _wrap


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
        g = _effective_grad(g, p, group["weight_decay"], group["maximize"])
        momentum = float(group["momentum"])
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:  # the first step starts the buffer at the gradient, undamped
                buf = state["momentum_buffer"] = _wrap(get_xp(p).array(g, copy=True))
            else:
                buf.data *= momentum
                buf.data += (1 - float(group["dampening"])) * g
            g = g + momentum * buf.data if group["nesterov"] else buf.data
        p -= float(group["lr"]) * g
