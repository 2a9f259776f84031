"""Adagrad: per-coordinate learning rates from the sum of squared gradients."""

from __future__ import annotations

from retrograd.backend import get_xp
from retrograd.optim.optimizer import (
    Optimizer,
    ParamsT,
    _check,
    _each_piece,
    _effective_grad,
    _scalar_state,
    _wrap,
)


class Adagrad(Optimizer):
    """Adagrad, as `torch.optim.Adagrad` (its state exists from construction, as there).

    s += g^2;  p -= lr / (1 + (t-1) lr_decay) * g / (sqrt(s) + eps)

    >>> opt = Adagrad(model.parameters(), lr=1e-2)
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= lr_decay, f"Invalid lr_decay value: {lr_decay}")
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        _check(
            0.0 <= initial_accumulator_value,
            f"Invalid initial_accumulator_value value: {initial_accumulator_value}",
        )
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "maximize": maximize,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(self.state[p], p.data, group)

    def _init_state(self, state, p, group) -> None:
        state["step"] = _scalar_state(0.0)
        # the constructor's value for every group (a per-group value is ignored, as in PyTorch)
        state["sum"] = _wrap(get_xp(p).full_like(p, self.defaults["initial_accumulator_value"]))

    def _update(self, p, g, state, group) -> None:
        xp = get_xp(p)
        step_t = state["step"].data
        step_t += 1
        clr = float(group["lr"]) / (1 + (float(step_t) - 1) * float(group["lr_decay"]))
        weight_decay, maximize, eps = group["weight_decay"], group["maximize"], float(group["eps"])

        def update(pc, gc, state_sum):
            gc = _effective_grad(gc, pc, weight_decay, maximize)
            state_sum += gc * gc
            std = xp.sqrt(state_sum, out=xp.empty_like(pc))
            std += eps
            xp.divide(gc, std, out=std)
            std *= clr
            pc -= std

        _each_piece(update, p, g, state["sum"].data)
