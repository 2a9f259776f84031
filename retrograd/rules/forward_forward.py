"""The Forward-Forward algorithm (Hinton 2022): two forward passes, layer-local objectives.

The label is written into the input (a one-hot vector appended to x). Each layer's *goodness* is
the sum of squares of its activities, and each layer learns on its own to make the goodness high
(above theta_l = `threshold` times its width) for positive data, the input with its correct
label, and low for negative data, the input with a wrong label drawn at random:

    loss_l = mean softplus(theta_l - G_pos) + mean softplus(G_neg - theta_l),   G = sum h^2

No error is sent between layers: each layer's input is the previous layer's activity, detached and
normalised to unit length (so a layer cannot pass on its own goodness, only the pattern). A
prediction tries every label and picks the one with the highest goodness summed over the layers.

Hinton used ReLU units. With ReLU the goodness of the first layer, a sum of squared ReLUs of an
affine function of x, is convex in x, so the set where it stays below the threshold is convex:
one ReLU layer cannot carve two interleaved moons (it stalls near 90%). Bounded units (tanh, the
default of `build_model`, with threshold 0.5: a mean square of 0.5) have no such limit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from retrograd import autograd, ops
from retrograd.autograd.grad_mode import enable_grad, no_grad
from retrograd.backend import Generator, get_xp, rng
from retrograd.nn import Module
from retrograd.nn import functional as F
from retrograd.rules.base import (
    LearningRule,
    accumulate_grad,
    apply_prefix,
    block_params,
    cosine_similarity,
    layer_blocks,
    mlp,
)
from retrograd.tensor import Tensor

__all__ = ["ForwardForward", "embed_label"]


def embed_label(x: Tensor, labels, n_classes: int, scale: float = 1.0) -> Tensor:
    """x with a one-hot of `labels` (times `scale`) appended along the last dimension."""
    xp = get_xp(x.data)
    labels = xp.asarray(labels.data if isinstance(labels, Tensor) else labels).astype("int64")
    onehot = xp.zeros((x.shape[0], n_classes), dtype=x.data.dtype)
    onehot[xp.arange(x.shape[0]), labels] = scale
    return Tensor(xp.concatenate([x.data.reshape(x.shape[0], -1), onehot], axis=1))


class ForwardForward(LearningRule):
    """Forward-Forward for a Sequential of Linear layers and activations (no output layer).

    The model takes in_features + n_classes inputs (`build_model` makes one: ReLU layers of the
    hidden widths). `loss_fn` is not used; the returned loss is the sum of the layers' losses.

    >>> rule = ForwardForward(n_classes=2, generator=rg.Generator().manual_seed(0))
    >>> model = rule.build_model(2, [32, 32], 2)
    >>> loss = rule.compute_grads(model, x, y)
    >>> rule.predict(model, x)
    """

    name = "forward-forward"

    def __init__(
        self,
        n_classes: int,
        threshold: float = 0.5,
        label_scale: float = 1.0,
        generator: Generator | None = None,
    ) -> None:
        if n_classes < 2:
            raise ValueError(f"n_classes must be at least 2, got {n_classes}")
        self.n_classes = n_classes
        self.threshold = threshold
        self.label_scale = label_scale
        self.generator = generator

    def _config(self) -> dict:
        return {"n_classes": self.n_classes, "threshold": self.threshold}

    def build_model(self, in_features, hidden, n_classes, activation="tanh", generator=None):
        """Layers of the hidden widths on in_features + n_classes inputs; no output layer."""
        return mlp(in_features + n_classes, hidden, None, activation, generator)

    # -- the objective ---------------------------------------------------------------------------
    def _negative_labels(self, y: Tensor):
        xp = get_xp(y.data)
        shift = rng(self.generator).integers(1, self.n_classes, size=y.shape[0])
        return (y.data + xp.asarray(shift)) % self.n_classes

    def _layer_losses(self, model, x, y, y_neg, local: bool) -> list:
        """The per-layer FF losses; with local=False the graph runs through all the layers."""
        prefix, blocks = layer_blocks(model)
        x0 = apply_prefix(prefix, x)
        h_pos = embed_label(x0, y, self.n_classes, self.label_scale)
        h_neg = embed_label(x0, y_neg, self.n_classes, self.label_scale)
        losses = []
        with enable_grad():
            for i, block in enumerate(blocks):
                if i > 0:
                    if local:
                        h_pos, h_neg = h_pos.detach(), h_neg.detach()
                    h_pos, h_neg = F.normalize(h_pos, dim=1), F.normalize(h_neg, dim=1)
                h_pos, h_neg = block(h_pos), block(h_neg)
                theta = self.threshold * h_pos.shape[1]
                g_pos = (h_pos * h_pos).sum(1)
                g_neg = (h_neg * h_neg).sum(1)
                loss = F.softplus(theta - g_pos).mean() + F.softplus(g_neg - theta).mean()
                losses.append((block, loss))
        return losses

    def compute_grads(
        self, model: Module, x: Tensor, y: Tensor, loss_fn: Callable | None = None
    ) -> float:
        return self._local_grads(model, x, y, self._negative_labels(y))

    def _local_grads(self, model, x, y, y_neg) -> float:
        total = 0.0
        for block, loss in self._layer_losses(model, x, y, y_neg, local=True):
            for p, g in zip(block.params, autograd.grad(loss, block.params)):
                accumulate_grad(p, g)
            total += float(loss.item())
        return total

    def gradient_cosines(self, model, x, y, loss_fn=None) -> list[float]:
        """cos(FF's layer-local updates, backprop of the summed FF loss through all layers)."""
        y_neg = self._negative_labels(y)
        params = list(model.parameters())
        saved = [p.grad for p in params]
        try:
            for p in params:
                p.grad = None
            self._local_grads(model, x, y, y_neg)
            local = {id(p): p.grad.data for p in params if p.grad is not None}
        finally:
            for p, g in zip(params, saved):
                p.grad = g
        losses = self._layer_losses(model, x, y, y_neg, local=False)
        with enable_grad():
            total = sum((loss for _, loss in losses[1:]), losses[0][1])
            _, blocks = layer_blocks(model)
            full = autograd.grad(total, block_params(blocks))
        full = {id(p): g.data for p, g in zip(block_params(blocks), full)}
        return [
            cosine_similarity([local[id(p)] for p in b.params], [full[id(p)] for p in b.params])
            for b in blocks
        ]

    def reference_grads(self, model, x, y, loss_fn=None) -> list:
        losses = self._layer_losses(model, x, y, self._negative_labels(y), local=False)
        params = list(model.parameters())
        with enable_grad():
            total = sum((loss for _, loss in losses[1:]), losses[0][1])
            return [g.data for g in autograd.grad(total, params)]

    # -- predictions -----------------------------------------------------------------------------
    def goodness(self, model: Module, x: Tensor, labels: Sequence[int] | None = None) -> Tensor:
        """(N, n_classes): goodness summed over the layers with each label written in."""
        prefix, blocks = layer_blocks(model)
        x0 = apply_prefix(prefix, x)
        xp = get_xp(x0.data)
        columns = []
        with no_grad():
            for c in range(self.n_classes) if labels is None else labels:
                h = embed_label(x0, xp.full(x0.shape[0], c), self.n_classes, self.label_scale)
                total = None
                for i, block in enumerate(blocks):
                    h = block(F.normalize(h, dim=1) if i > 0 else h)
                    g = (h * h).sum(1)
                    total = g if total is None else total + g
                columns.append(total)
        return ops.stack(columns, dim=1)

    def logits(self, model: Module, x: Tensor) -> Tensor:
        """The total goodness of each label, used as class scores."""
        return self.goodness(model, x)
