"""RMSprop: divide the gradient by a running root mean square (centered, with momentum)."""

from __future__ import annotations

from retrograd.backend import get_xp
from retrograd.optim.optimizer import (
    Optimizer,
    ParamsT,
    _check,
    _each_piece,
    _effective_grad,
    _lerp_,
    _scalar_state,
    _zeros_like,
)


class RMSprop(Optimizer):
    """RMSprop, as `torch.optim.RMSprop`.

    v = alpha v + (1-alpha) g^2;  p -= lr g / (sqrt(v - mean(g)^2 if centered) + eps)

    >>> opt = RMSprop(model.parameters(), lr=1e-2, momentum=0.9, centered=True)
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        _check(0.0 <= momentum, f"Invalid momentum value: {momentum}")
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        _check(0.0 <= alpha, f"Invalid alpha value: {alpha}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _init_state(self, state, p, group) -> None:
        state["step"] = _scalar_state(0.0)
        state["square_avg"] = _zeros_like(p)
        if group["momentum"] > 0:
            state["momentum_buffer"] = _zeros_like(p)
        if group["centered"]:
            state["grad_avg"] = _zeros_like(p)

    def _update(self, p, g, state, group) -> None:
        xp = get_xp(p)
        alpha, momentum, lr = float(group["alpha"]), float(group["momentum"]), float(group["lr"])
        state["step"].data += 1
        weight_decay, maximize, eps = group["weight_decay"], group["maximize"], float(group["eps"])
        centered = group["centered"]
        arrays = [p, g, state["square_avg"].data]
        if centered:
            arrays.append(state["grad_avg"].data)
        if momentum > 0:
            arrays.append(state["momentum_buffer"].data)

        def update(pc, gc, square_avg, *rest):
            gc = _effective_grad(gc, pc, weight_decay, maximize)
            square_avg *= alpha
            square_avg += (1 - alpha) * gc * gc
            if centered:
                grad_avg = rest[0]
                _lerp_(grad_avg, gc, 1 - alpha)
                avg = xp.subtract(square_avg, grad_avg * grad_avg, out=xp.empty_like(pc))
                xp.sqrt(avg, out=avg)
            else:
                avg = xp.sqrt(square_avg, out=xp.empty_like(pc))
            avg += eps
            xp.divide(gc, avg, out=avg)
            if momentum > 0:
                buf = rest[-1]
                buf *= momentum
                buf += avg
                avg = buf
            pc -= lr * avg

        _each_piece(update, *arrays)
