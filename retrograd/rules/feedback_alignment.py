"""Feedback alignment (Lillicrap et al. 2016) and direct feedback alignment (Nokland 2016).

Backprop sends the error at layer l's output back through W_l^T. Feedback alignment sends it back
through a fixed random matrix B_l of the same shape instead; the forward weights then come to
align with B_l, and the updates with backprop's. Direct feedback alignment skips the chain
altogether: every hidden layer receives the output error e through its own fixed random matrix,
delta_l = (e B_l) * f'(a_l). The activation derivatives and the weight gradients of each layer
are local, and are taken by autograd within the block.
"""

from __future__ import annotations

from collections.abc import Callable

from retrograd import autograd
from retrograd.autograd.grad_mode import enable_grad, no_grad
from retrograd.backend import Generator
from retrograd.nn import Module
from retrograd.rules.base import (
    Block,
    LearningRule,
    _fan_in_bound,
    accumulate_grad,
    apply_prefix,
    block_grads,
    layer_blocks,
    random_array,
)
from retrograd.tensor import Tensor

__all__ = ["FeedbackAlignment", "DirectFeedbackAlignment"]


def _forward_blocks(blocks: list[Block], x: Tensor) -> tuple[list, list, list]:
    """Run the blocks with each one's graph cut off from the one before: (inputs, z, h)."""
    inputs, zs, hs = [], [], []
    with enable_grad():
        for block in blocks:
            x = x.detach()
            lin = block.linear
            z = lin(x)
            h = block.after(z)
            inputs.append(x)
            zs.append(z)
            hs.append(h)
            x = h
    return inputs, zs, hs


def _output_error(out: Tensor, y: Tensor, loss_fn: Callable) -> tuple[float, Tensor]:
    """(loss, dloss/dout) at the network's output."""
    with enable_grad():
        leaf = out.detach().requires_grad_()
        loss = loss_fn(leaf, y)
        (e,) = autograd.grad(loss, leaf)
    return float(loss.item()), e


class _FixedFeedback(LearningRule):
    """Holds one fixed random matrix per layer, drawn the first time a layer is seen."""

    def __init__(self, generator: Generator | None = None, scale: float = 1.0) -> None:
        self.generator = generator
        self.scale = scale
        self.feedback: dict = {}  # layer index -> fixed matrix (array)

    def _matrix(self, index: int, shape: tuple, like) -> Tensor:
        B = self.feedback.get(index)
        if B is None or tuple(B.shape) != tuple(shape):
            bound = self.scale * _fan_in_bound(shape)
            B = random_array(self.generator, like, "uniform", shape, bound)
            self.feedback[index] = B
        return Tensor(B)

    def _config(self) -> dict:
        return {"scale": self.scale}


class FeedbackAlignment(_FixedFeedback):
    """Backprop with W_l^T replaced by a fixed random B_l: delta_{l-1} = (delta_l B_l) * f'.

    B_l has W_l's shape and is drawn U(-scale/sqrt(fan_in), scale/sqrt(fan_in)) from `generator`
    the first time layer l is seen (one rule object per model). With B_l = W_l it is backprop.

    >>> rule = FeedbackAlignment(generator=rg.Generator().manual_seed(0))
    >>> loss = rule.compute_grads(model, x, y, F.cross_entropy)
    """

    name = "feedback alignment"

    def compute_grads(self, model: Module, x: Tensor, y: Tensor, loss_fn: Callable) -> float:
        prefix, blocks = layer_blocks(model)
        inputs, zs, hs = _forward_blocks(blocks, apply_prefix(prefix, x))
        loss, g = _output_error(hs[-1], y, loss_fn)
        for i in reversed(range(len(blocks))):
            block = blocks[i]
            gz, *grads = block_grads(block, hs[i], g, extra=(zs[i],))
            for p, gp in zip(block.params, grads):
                accumulate_grad(p, gp)
            if i > 0:
                weight = block.linear.weight
                with no_grad():
                    g = gz @ self._matrix(i, weight.shape, weight.data)
        return loss


class DirectFeedbackAlignment(_FixedFeedback):
    """Each hidden layer gets the output error e through a fixed random B_l: delta_l = e B_l * f'.

    B_l has shape (outputs, width of layer l), drawn U(-scale/sqrt(width), scale/sqrt(width))
    from `generator`. The output layer learns from e directly (its exact gradient).
    """

    name = "direct feedback alignment"

    def compute_grads(self, model: Module, x: Tensor, y: Tensor, loss_fn: Callable) -> float:
        prefix, blocks = layer_blocks(model)
        inputs, zs, hs = _forward_blocks(blocks, apply_prefix(prefix, x))
        loss, e = _output_error(hs[-1], y, loss_fn)
        for i, block in enumerate(blocks):
            if i == len(blocks) - 1:
                g = e
            else:
                shape = (e.shape[-1], hs[i].shape[-1])
                with no_grad():
                    g = e @ self._matrix(i, shape, block.linear.weight.data)
            for p, gp in zip(block.params, block_grads(block, hs[i], g)):
                accumulate_grad(p, gp)
        return loss
