"""The Adam family: Adam (and AMSGrad), AdamW, Adamax and NAdam."""

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


def _check_adam_args(lr: float, betas: tuple[float, float], eps: float, weight_decay: float):
    _check(0.0 <= lr, f"Invalid learning rate: {lr}")
    _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
    _check(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
    _check(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")
    _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")


def _step(state) -> float:
    """Advance the state's step counter and return the new count."""
    step = state["step"].data
    step += 1
    return float(step)


class Adam(Optimizer):
    """Adam (AMSGrad with `amsgrad=True`), as `torch.optim.Adam`.

    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps)

    >>> opt = Adam(model.parameters(), lr=1e-3)
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        _check_adam_args(lr, betas, eps, weight_decay)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _init_state(self, state, p, group) -> None:
        state["step"] = _scalar_state(0.0)
        state["exp_avg"] = _zeros_like(p)
        state["exp_avg_sq"] = _zeros_like(p)
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = _zeros_like(p)

    def _update(self, p, g, state, group) -> None:
        xp = get_xp(p)
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), group["weight_decay"]
        beta1, beta2 = (float(b) for b in group["betas"])
        step = _step(state)
        decay = (
            1 - lr * weight_decay if weight_decay != 0 and group["decoupled_weight_decay"] else 1
        )
        if decay != 1:
            weight_decay = 0
        maximize, amsgrad = group["maximize"], group["amsgrad"]
        bias2, step_size = (1 - beta2**step) ** 0.5, lr / (1 - beta1**step)
        betas = (beta1, beta2)
        arrays = [p, g, state["exp_avg"].data, state["exp_avg_sq"].data]
        if amsgrad:
            arrays.append(state["max_exp_avg_sq"].data)

        def update(pc, gc, exp_avg, exp_avg_sq, *max_sq):
            gc = _moments(pc, gc, exp_avg, exp_avg_sq, decay, weight_decay, maximize, betas)
            if amsgrad:
                xp.maximum(max_sq[0], exp_avg_sq, out=max_sq[0])
                denom = xp.sqrt(max_sq[0], out=xp.empty_like(pc))
            else:
                denom = xp.sqrt(exp_avg_sq, out=xp.empty_like(pc))
            denom /= bias2
            denom += eps
            xp.divide(exp_avg, denom, out=denom)
            denom *= step_size
            pc -= denom

        _each_piece(update, *arrays)


def _moments(p, g, exp_avg, exp_avg_sq, decay, weight_decay, maximize, betas):
    """Adam's and NAdam's shared start of a step, in place on a chunk: decoupled decay of p,
    the effective gradient (returned), and both running moments."""
    beta1, beta2 = betas
    if decay != 1:
        p *= decay
    g = _effective_grad(g, p, weight_decay, maximize)
    _lerp_(exp_avg, g, 1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g
    return g


class AdamW(Adam):
    """Adam with decoupled weight decay (p *= 1 - lr * weight_decay), as `torch.optim.AdamW`.

    >>> opt = AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )


class Adamax(Optimizer):
    """Adamax (Adam with the infinity norm), as `torch.optim.Adamax`.

    m = b1 m + (1-b1) g;  u = max(b2 u, |g| + eps);  p -= lr / (1-b1^t) * m / u

    >>> opt = Adamax(model.parameters(), lr=2e-3)
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        *,
        maximize: bool = False,
    ) -> None:
        _check_adam_args(lr, betas, eps, weight_decay)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _init_state(self, state, p, group) -> None:
        state["step"] = _scalar_state(0.0)
        state["exp_avg"] = _zeros_like(p)
        state["exp_inf"] = _zeros_like(p)

    def _update(self, p, g, state, group) -> None:
        xp = get_xp(p)
        beta1, beta2 = (float(b) for b in group["betas"])
        step = _step(state)
        weight_decay, maximize, eps = group["weight_decay"], group["maximize"], float(group["eps"])
        step_size = float(group["lr"]) / (1 - beta1**step)
        arrays = (p, g, state["exp_avg"].data, state["exp_inf"].data)

        def update(pc, gc, exp_avg, exp_inf):
            gc = _effective_grad(gc, pc, weight_decay, maximize)
            _lerp_(exp_avg, gc, 1 - beta1)
            exp_inf *= beta2
            norm = xp.abs(gc, out=xp.empty_like(pc))
            norm += eps
            xp.maximum(exp_inf, norm, out=exp_inf)
            xp.divide(exp_avg, exp_inf, out=norm)
            norm *= step_size
            pc -= norm

        _each_piece(update, *arrays)


class NAdam(Optimizer):
    """NAdam (Adam with Nesterov momentum and momentum decay), as `torch.optim.NAdam`.

    >>> opt = NAdam(model.parameters(), lr=2e-3)
    """

    _scalar_keys = ("step", "mu_product")

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        _check_adam_args(lr, betas, eps, weight_decay)
        _check(0.0 <= momentum_decay, f"Invalid momentum_decay value: {momentum_decay}")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _init_state(self, state, p, group) -> None:
        state["step"] = _scalar_state(0.0)
        state["mu_product"] = _scalar_state(1.0)
        state["exp_avg"] = _zeros_like(p)
        state["exp_avg_sq"] = _zeros_like(p)

    def _update(self, p, g, state, group) -> None:
        xp = get_xp(p)
        lr, weight_decay = float(group["lr"]), group["weight_decay"]
        beta1, beta2 = (float(b) for b in group["betas"])
        momentum_decay = float(group["momentum_decay"])
        step = _step(state)
        decay = (
            1 - lr * weight_decay if weight_decay != 0 and group["decoupled_weight_decay"] else 1
        )
        if decay != 1:
            weight_decay = 0
        maximize, eps = group["maximize"], float(group["eps"])
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
        mu_product = state["mu_product"].data
        mu_product *= mu  # kept in the scalar dtype, as PyTorch does
        mu_product = float(mu_product)
        bias2 = 1 - beta2**step
        betas = (beta1, beta2)
        grad_size = lr * (1.0 - mu) / (1.0 - mu_product)
        avg_size = lr * mu_next / (1.0 - mu_product * mu_next)
        arrays = (p, g, state["exp_avg"].data, state["exp_avg_sq"].data)

        def update(pc, gc, exp_avg, exp_avg_sq):
            gc = _moments(pc, gc, exp_avg, exp_avg_sq, decay, weight_decay, maximize, betas)
            denom = xp.divide(exp_avg_sq, bias2, out=xp.empty_like(pc))
            xp.sqrt(denom, out=denom)
            denom += eps
            pc -= grad_size * (gc / denom)
            pc -= avg_size * (exp_avg / denom)

        _each_piece(update, *arrays)
