"""The forward gradient as a learning rule (Baydin, Pearlmutter, Syme, Wood & Torr 2022).

Each step draws a random tangent v over all the parameters, takes one Jacobian-vector product
of the loss, d = grad . v, and uses d v as the update: an unbiased estimate of the gradient with
no backward pass (`retrograd.func.jvp` runs native forward-mode AD: about the cost of one more
forward pass). Its variance grows with
the number of parameters, so it learns small networks and slows down on large ones.
"""

from __future__ import annotations

from collections.abc import Callable

from retrograd.backend import Generator
from retrograd.nn import Module
from retrograd.rules.base import (
    LearningRule,
    accumulate_grad,
    apply_prefix,
    block_params,
    functional_forward,
    layer_blocks,
)
from retrograd.rules.estimators import ForwardGradientEstimator
from retrograd.tensor import Tensor

__all__ = ["ForwardGradient"]


class ForwardGradient(LearningRule):
    """(grad . v) v with v ~ N(0, I), averaged over `n_tangents` tangents.

    >>> rule = ForwardGradient(n_tangents=4, generator=rg.Generator().manual_seed(0))
    >>> loss = rule.compute_grads(model, x, y, F.cross_entropy)
    """

    name = "forward gradient"

    def __init__(self, n_tangents: int = 1, generator: Generator | None = None) -> None:
        self.estimator = ForwardGradientEstimator(n_tangents, generator)

    def _config(self) -> dict:
        return {"n_tangents": self.estimator.n_tangents}

    def compute_grads(self, model: Module, x: Tensor, y: Tensor, loss_fn: Callable) -> float:
        prefix, blocks = layer_blocks(model)
        x0 = apply_prefix(prefix, x)
        params = block_params(blocks)

        def loss_of(*ps):
            return loss_fn(functional_forward(blocks, ps, x0), y)

        estimate = self.estimator.estimate(loss_of, params)
        for p, g in zip(params, estimate.grads):
            accumulate_grad(p, g)
        return estimate.value
