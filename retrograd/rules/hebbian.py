"""Hebbian learning for unsupervised layers: Oja's rule, Sanger's rule, competitive learning.

Each rule changes a Linear layer's weights from the activity at its input x and at its output
y = W x alone, with no error signal from above (averaged over the batch; the update is written
as .grad = -dW, so an optimizer *adds* dW times its learning rate):

- `oja`:   dw_k = y_k (x - y_k w_k) for each unit; a single unit converges to the first principal
           component of its input (unit length), Oja (1982). Several units all find that one.
- `sanger`: dW = y x^T - tril(y y^T) W, the generalised Hebbian algorithm (Sanger 1989): unit k
           converges to the k-th principal component.
- `competitive`: the unit nearest the input wins (y = one-hot of argmax W x + b, with each bias
           held at -||w_k||^2 / 2 so the argmax is the nearest w_k) and
           dw_k = y_k (x - w_k): Oja's form with binary output, i.e. online k-means. Losing units
           move toward the input `leak` times as fast ("leaky learning", Rumelhart & Zipser 1985)
           so none is left dead. This is the one that builds features a classifier can use.

`Hebbian` trains every Linear layer but the last with the chosen rule; the last layer (the
readout) learns from the labels by the delta rule, its own local loss gradient. With
`readout=False` every layer is unsupervised and y, loss_fn may be None.
"""

from __future__ import annotations

from collections.abc import Callable

from retrograd import autograd
from retrograd.autograd.grad_mode import enable_grad, no_grad
from retrograd.backend import get_xp
from retrograd.nn import Module
from retrograd.rules.base import Block, LearningRule, accumulate_grad, apply_prefix, layer_blocks
from retrograd.tensor import Tensor

__all__ = ["Hebbian", "hebbian_update"]

RULES = ("oja", "sanger", "competitive")


def hebbian_update(rule: str, x, weight, bias=None, leak: float = 0.0):
    """(dW, dbias or None) of one Hebbian step for a layer with input batch x (N, in), as arrays.

    dW is the batch average of the rule's update (see the module docstring); an optimizer
    applies it as .grad = -dW.
    """
    if rule not in RULES:
        raise ValueError(f"unknown Hebbian rule {rule!r}; expected one of {RULES}")
    xp = get_xp(weight)
    n = x.shape[0]
    if rule == "competitive":
        scores = x @ weight.T + (bias if bias is not None else -0.5 * (weight * weight).sum(1))
        won = xp.zeros(scores.shape, dtype=weight.dtype)
        won[xp.arange(n), scores.argmax(axis=1)] = 1
        rate = won + leak * (1 - won)  # (N, units)
        # sum_n rate_nk (x_n - w_k) / N
        dW = (rate.T @ x - rate.sum(0)[:, None] * weight) / n
        # the bias relaxes toward -||w||^2 / 2 (so argmax(W x + b) is the nearest prototype)
        db = None if bias is None else -(bias + 0.5 * (weight * weight).sum(1))
        return dW, db
    y = x @ weight.T  # (N, units): the output before any bias or nonlinearity
    if rule == "oja":
        dW = (y.T @ x - (y * y).sum(0)[:, None] * weight) / n
    else:
        dW = (y.T @ x - xp.tril(y.T @ y) @ weight) / n
    return dW, None


class Hebbian(LearningRule):
    """Unsupervised Hebbian layers (Oja / Sanger / competitive) under a delta-rule readout.

    >>> rule = Hebbian("oja", readout=False)                    # one unit: the first PC
    >>> rule.compute_grads(nn.Linear(5, 1, bias=False), x)

    Returns the readout's loss (or, without readout, the mean squared reconstruction error
    ||x - W^T W x||^2 of the last layer, for the PCA rules, or the mean squared distance to the
    winning prototype, for competitive learning).
    """

    name = "hebbian"

    def __init__(self, rule: str = "competitive", readout: bool = True, leak: float = 0.0):
        if rule not in RULES:
            raise ValueError(f"unknown Hebbian rule {rule!r}; expected one of {RULES}")
        self.rule = rule
        self.readout = readout
        self.leak = leak

    def _config(self) -> dict:
        return {"rule": self.rule, "readout": self.readout, "leak": self.leak}

    def build_model(self, in_features, hidden, n_classes, activation="tanh", generator=None):
        """An MLP; competitive layers get ReLU units (a prototype's half-space detector)."""
        act = "relu" if self.rule == "competitive" else activation
        return super().build_model(in_features, hidden, n_classes, act, generator)

    def compute_grads(
        self, model: Module, x: Tensor, y: Tensor | None = None, loss_fn: Callable | None = None
    ) -> float:
        prefix, blocks = layer_blocks(model)
        h = apply_prefix(prefix, x)
        unsupervised = blocks[:-1] if self.readout else blocks
        value = 0.0
        for block in unsupervised:
            value = self._unsupervised_step(block, h.data)
            with no_grad():
                h = block(h)
        if not self.readout:
            return value
        if y is None or loss_fn is None:
            raise ValueError("Hebbian(readout=True) needs labels y and a loss_fn for the readout")
        last: Block = blocks[-1]
        with enable_grad():
            loss = loss_fn(last(h.detach()), y)
            grads = autograd.grad(loss, last.params)
        for p, g in zip(last.params, grads):
            accumulate_grad(p, g)
        return float(loss.item())

    def _unsupervised_step(self, block: Block, x) -> float:
        lin = block.linear
        w = lin.weight.data
        b = None if lin.bias is None else lin.bias.data
        dW, db = hebbian_update(self.rule, x, w, b, self.leak)
        accumulate_grad(lin.weight, -dW)
        if db is not None:
            accumulate_grad(lin.bias, -db)
        xp = get_xp(w)
        if self.rule == "competitive":
            d2 = (x * x).sum(1)[:, None] - 2 * x @ w.T + (w * w).sum(1)[None, :]
            return float(xp.mean(d2.min(axis=1)))
        r = x - (x @ w.T) @ w
        return float(xp.mean((r * r).sum(1)))
