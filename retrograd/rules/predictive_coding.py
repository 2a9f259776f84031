"""Predictive coding (Whittington & Bogacz 2017; Millidge, Tschantz & Buckley 2020).

Each block output gets a value node x_l; the block predicts it from the layer below,
mu_l = f(W_l x_{l-1} + b_l), with prediction error eps_l = x_l - mu_l. The network settles by
gradient descent on the energy

    F = sum_{l<L} ||x_l - mu_l(x_{l-1})||^2 / 2  +  beta * N * loss(mu_L(x_{L-1}), y)

over the hidden value nodes (x_0 = the input, clamped; the loss takes the place of the top layer's
error, scaled by beta and by the batch size N so each sample's dynamics do not depend on N). The
value nodes start at the feedforward pass (eps = 0) and take `n_iters` gradient steps of
`inference_lr` (halved whenever a step would raise F, which keeps the inference stable as the
weights grow).
Then each weight moves down dF/dW_l = -eps_l f'(.) x_{l-1}^T: a local, Hebbian-like product of
the error at the layer's output and the activity at its input. Divided by beta * N it
approximates the loss gradient; as beta -> 0 (a small output error) and the inference converges,
eps_l -> beta * N * (backprop's delta at layer l) and the updates become backprop's.

With `fixed_prediction=True` (Millidge et al.) the predictions mu_l and their Jacobians stay at
their feedforward values during inference and the top error is -N dloss/dmu_L: then the errors
converge to backprop's deltas exactly, for any output error.
"""

from __future__ import annotations

from collections.abc import Callable

from retrograd import autograd
from retrograd.autograd.grad_mode import enable_grad, no_grad
from retrograd.nn import Module
from retrograd.rules.base import (
    LearningRule,
    accumulate_grad,
    apply_prefix,
    block_params,
    layer_blocks,
)
from retrograd.tensor import Tensor

__all__ = ["PredictiveCoding"]


def _leaf(array) -> Tensor:
    return Tensor(array, requires_grad=True)


class PredictiveCoding(LearningRule):
    """Inference to equilibrium on value nodes, then local weight updates (see module docstring).

    >>> rule = PredictiveCoding(n_iters=100, inference_lr=0.1, beta=1e-3)   # ~ backprop
    >>> loss = rule.compute_grads(model, x, y, F.cross_entropy)             # mean-reduced loss

    `loss_fn` must average over the batch (the default reduction of the losses).
    """

    name = "predictive coding"

    def __init__(
        self,
        n_iters: int = 20,
        inference_lr: float = 0.2,
        beta: float = 0.1,
        fixed_prediction: bool = False,
    ) -> None:
        if n_iters < 0:
            raise ValueError(f"n_iters must be non-negative, got {n_iters}")
        if beta <= 0:
            raise ValueError(f"beta must be positive, got {beta}")
        self.n_iters = n_iters
        self.inference_lr = inference_lr
        self.beta = beta
        self.fixed_prediction = fixed_prediction
        #: the energy before and after each inference step of the last call (never rising:
        #: a step that would raise it is halved)
        self.energies: list[float] = []

    def _config(self) -> dict:
        return {
            "n_iters": self.n_iters,
            "inference_lr": self.inference_lr,
            "beta": self.beta,
            "fixed_prediction": self.fixed_prediction,
        }

    def compute_grads(self, model: Module, x: Tensor, y: Tensor, loss_fn: Callable) -> float:
        prefix, blocks = layer_blocks(model)
        x0 = apply_prefix(prefix, x)
        if self.fixed_prediction:
            return self._fixed_prediction(blocks, x0, y, loss_fn)
        scale = self.beta * x0.shape[0]
        with no_grad():  # value nodes start at the feedforward pass
            h = x0
            values = []
            for block in blocks[:-1]:
                h = block(h)
                values.append(h.data)
            loss = float(loss_fn(blocks[-1](h), y).item())
        values = [_leaf(v) for v in values]
        with enable_grad():
            energy = self._energy(blocks, x0, values, y, loss_fn, scale)
            self.energies = [float(energy.item())]
            step = self.inference_lr
            for _ in range(self.n_iters if values else 0):
                grads = autograd.grad(energy, values)
                while True:  # a step that raises the energy is halved (large weights: stiff F)
                    trial = [_leaf(v.data - step * g.data) for v, g in zip(values, grads)]
                    trial_energy = self._energy(blocks, x0, trial, y, loss_fn, scale)
                    if float(trial_energy.item()) <= self.energies[-1] or step < 1e-6:
                        break
                    step /= 2
                values, energy = trial, trial_energy
                self.energies.append(float(energy.item()))
            params = block_params(blocks)
            grads = autograd.grad(energy, params, allow_unused=True)
        for p, g in zip(params, grads):
            if g is not None:
                accumulate_grad(p, g.data / scale)
        return loss

    @staticmethod
    def _energy(blocks, x0, values, y, loss_fn, scale) -> Tensor:
        below = [x0, *values]
        energy = scale * loss_fn(blocks[-1](below[-1]), y)
        for block, x_in, x_out in zip(blocks[:-1], below[:-1], values):
            eps = x_out - block(x_in)
            energy = energy + 0.5 * (eps * eps).sum()
        return energy

    def _fixed_prediction(self, blocks, x0, y, loss_fn) -> float:
        n = x0.shape[0]
        inputs, mus = [], []
        with enable_grad():  # the feedforward predictions, each block's graph kept for its vjp
            h = x0
            for i, block in enumerate(blocks):
                h = h.detach().requires_grad_(i > 0)
                inputs.append(h)
                h = block(h)
                mus.append(h)
            top = mus[-1].detach().requires_grad_()
            loss = loss_fn(top, y)
            (g_top,) = autograd.grad(loss, top)
        L = len(blocks)
        errors = [mu.data * 0 for mu in mus[:-1]] + [-n * g_top.data]
        self.energies = []
        for _ in range(self.n_iters):
            # dF/dx_l = eps_l - J_{l+1}^T eps_{l+1}, Jacobians at the feedforward values
            pulled = [
                autograd.grad(mus[i + 1], inputs[i + 1], Tensor(errors[i + 1]), retain_graph=True)[
                    0
                ].data
                for i in range(L - 1)
            ]
            for i in range(L - 1):
                errors[i] = errors[i] + self.inference_lr * (pulled[i] - errors[i])
            self.energies.append(float(sum(0.5 * (e * e).sum() for e in errors[:-1])))
        for i, block in enumerate(blocks):
            # dF/dW_l = -eps_l dmu_l/dW_l, over N for the mean loss
            grads = autograd.grad(mus[i], block.params, Tensor(-errors[i] / n))
            for p, g in zip(block.params, grads):
                accumulate_grad(p, g.data)
        return float(loss.item())
