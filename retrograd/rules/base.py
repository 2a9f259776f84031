"""The learning-rule interface, and the layer view of a model that the rules share.

A learning rule turns (model, batch, loss) into `.grad` on the model's parameters, so any
optimizer in `retrograd.optim` applies it unchanged:

    >>> rule = FeedbackAlignment(generator=rg.Generator().manual_seed(0))
    >>> optimizer.zero_grad()
    >>> loss = rule.compute_grads(model, x, y, F.cross_entropy)
    >>> optimizer.step()

Rules that are not backprop need to see the network layer by layer. The supported models are an
`nn.Sequential` (nested ones are flattened) or a single `nn.Linear`, made of `nn.Linear` layers
and parameter-free modules (activations, Flatten, Dropout, ...). The model is cut into *blocks*:
a block is one Linear and the parameter-free modules after it, up to the next Linear; modules
before the first Linear are a parameter-free *prefix* applied to the input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from retrograd import autograd, nn
from retrograd.autograd.grad_mode import enable_grad, no_grad
from retrograd.backend import Generator, get_xp, rng, to_numpy
from retrograd.nn import functional as F
from retrograd.tensor import Tensor

__all__ = [
    "LearningRule",
    "Block",
    "layer_blocks",
    "block_params",
    "functional_forward",
    "accumulate_grad",
    "cosine_similarity",
    "mlp",
    "ACTIVATIONS",
]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


# -- the layer view --------------------------------------------------------------------------------
@dataclass
class Block:
    """One Linear layer and the parameter-free modules after it: h = post(x W^T + b)."""

    linear: nn.Linear
    post: list = field(default_factory=list)

    @property
    def params(self) -> list:
        lin = self.linear
        return [lin.weight] if lin.bias is None else [lin.weight, lin.bias]

    def after(self, z: Tensor) -> Tensor:
        """The parameter-free part of the block, applied to the Linear's output z."""
        for module in self.post:
            z = module(z)
        return z

    def __call__(self, x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None):
        """The block's output for input x (optionally with other weight and bias tensors)."""
        lin = self.linear
        w = lin.weight if weight is None else weight
        b = lin.bias if bias is None else bias
        return self.after(F.linear(x, w, b))


def _flat_modules(model: nn.Module) -> list:
    if isinstance(model, nn.Sequential):
        out = []
        for module in model:
            out.extend(_flat_modules(module))
        return out
    return [model]


def layer_blocks(model: nn.Module) -> tuple[list, list[Block]]:
    """(prefix modules, blocks) of a Sequential of Linear layers and parameter-free modules.

    >>> prefix, blocks = layer_blocks(nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)))
    >>> [len(b.post) for b in blocks]
    [1, 0]
    """
    prefix: list = []
    blocks: list[Block] = []
    for module in _flat_modules(model):
        if isinstance(module, nn.Linear):
            blocks.append(Block(module))
        elif any(True for _ in module.parameters()):
            raise TypeError(
                f"learning rules support Linear layers and parameter-free modules; "
                f"{type(module).__name__} has parameters"
            )
        elif blocks:
            blocks[-1].post.append(module)
        else:
            prefix.append(module)
    if not blocks:
        raise TypeError("learning rules need a model with at least one nn.Linear layer")
    return prefix, blocks


def block_params(blocks: Sequence[Block]) -> list:
    """All parameters of the blocks, in order (weight, then bias, per block)."""
    return [p for block in blocks for p in block.params]


def apply_prefix(prefix: Sequence[nn.Module], x: Tensor) -> Tensor:
    """The input after the parameter-free modules in front of the first Linear (no graph)."""
    with no_grad():
        for module in prefix:
            x = module(x)
    return x.detach()


def functional_forward(blocks: Sequence[Block], params: Sequence[Tensor], x: Tensor) -> Tensor:
    """The blocks' output with `params` (as ordered by `block_params`) in place of their own."""
    i = 0
    for block in blocks:
        if block.linear.bias is None:
            x = block(x, params[i])
            i += 1
        else:
            x = block(x, params[i], params[i + 1])
            i += 2
    return x


def block_grads(block: Block, output: Tensor, grad_output: Tensor, extra=()) -> tuple:
    """d<output, grad_output>/d(extra..., block params): the block-local chain rule."""
    inputs = [*extra, *block.params]
    return autograd.grad(output, inputs, grad_output, allow_unused=True)


def accumulate_grad(param: Tensor, value) -> None:
    """Add `value` (array or Tensor) into `param.grad`, as `backward()` would."""
    data = value.data if isinstance(value, Tensor) else value
    data = get_xp(param.data).asarray(data, dtype=param.data.dtype).reshape(param.shape)
    if param.grad is None:
        param.grad = Tensor(data.copy())
    else:
        param.grad = Tensor(param.grad.data + data)


def random_array(generator: Generator | None, like, kind: str, size, bound: float = 1.0):
    """uniform(-bound, bound) or normal(0, bound) draws from `generator`, on like's device."""
    g = rng(generator)
    draw = g.uniform(-bound, bound, size=size) if kind == "uniform" else g.normal(0, bound, size)
    return get_xp(like).asarray(draw, dtype=like.dtype)


def cosine_similarity(a, b) -> float:
    """cos(a, b) of two arrays or lists of arrays (flattened and concatenated); 0 if one is 0."""
    a = _flat(a)
    b = _flat(b)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def _flat(values) -> np.ndarray:
    if isinstance(values, (list, tuple)):
        parts = [_flat(v) for v in values if v is not None]
        return np.concatenate(parts) if parts else np.zeros(0)
    if isinstance(values, Tensor):
        values = values.data
    return np.asarray(to_numpy(values), dtype=np.float64).ravel()


def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int | None,
    activation: str = "tanh",
    generator: Generator | None = None,
    dtype=None,
) -> nn.Sequential:
    """Linear layers of widths in_features -> hidden... -> out_features, activations between.

    With out_features None the network ends with the last hidden layer and its activation.
    """
    act = ACTIVATIONS[activation]
    layers: list = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h, generator=generator, dtype=dtype), act()]
        width = h
    if out_features is not None:
        layers.append(nn.Linear(width, out_features, generator=generator, dtype=dtype))
    return nn.Sequential(*layers)


# -- the interface ---------------------------------------------------------------------------------
class LearningRule:
    """A way of turning a batch into parameter updates, written as `.grad` on the parameters.

    Subclasses implement `compute_grads`. The defaults of the other methods suit rules that train
    an ordinary classifier (logits = model(x)); Forward-Forward overrides them.
    """

    name: str = "rule"
    #: a learning rate that suits this rule with Adam (what `compare_rules` uses by default)
    lr: float = 1e-2

    def compute_grads(self, model: nn.Module, x: Tensor, y: Tensor, loss_fn: Callable) -> float:
        """Accumulate this rule's update direction into each parameter's `.grad`; return the
        loss of the batch (before the update). Call `optimizer.zero_grad()` first."""
        raise NotImplementedError

    # -- models and predictions ------------------------------------------------------------------
    def build_model(
        self,
        in_features: int,
        hidden: Sequence[int],
        n_classes: int,
        activation: str = "tanh",
        generator: Generator | None = None,
    ) -> nn.Module:
        """The network this rule trains for a classification task (an MLP by default)."""
        return mlp(in_features, hidden, n_classes, activation, generator)

    def logits(self, model: nn.Module, x: Tensor) -> Tensor:
        """Class scores for x (no graph)."""
        with no_grad():
            return model(x)

    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        """Predicted class indices for x."""
        return self.logits(model, x).argmax(dim=-1)

    # -- comparison with backprop ----------------------------------------------------------------
    def reference_grads(self, model: nn.Module, x: Tensor, y: Tensor, loss_fn: Callable) -> list:
        """The exact gradient (by backprop) of the objective this rule's updates stand in for."""
        params = list(model.parameters())
        with enable_grad():
            loss = loss_fn(model(x), y)
            grads = autograd.grad(loss, params, allow_unused=True)
        return [None if g is None else g.data for g in grads]

    def gradient_cosines(
        self, model: nn.Module, x: Tensor, y: Tensor, loss_fn: Callable
    ) -> list[float]:
        """cos(rule's update, backprop's gradient) per Linear layer (weight and bias together).

        The parameters' `.grad` are left as they were.
        """
        params = list(model.parameters())
        saved = [p.grad for p in params]
        try:
            for p in params:
                p.grad = None
            self.compute_grads(model, x, y, loss_fn)
            estimate = {id(p): (None if p.grad is None else p.grad.data) for p in params}
        finally:
            for p, g in zip(params, saved):
                p.grad = g
        reference = dict(zip((id(p) for p in params), self.reference_grads(model, x, y, loss_fn)))
        _, blocks = layer_blocks(model)
        cosines = []
        for block in blocks:
            est = [_or_zeros(estimate[id(p)], p) for p in block.params]
            ref = [_or_zeros(reference[id(p)], p) for p in block.params]
            cosines.append(cosine_similarity(est, ref))
        return cosines

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({fields})"

    def _config(self) -> dict:
        return {}


def _or_zeros(array, param):
    return get_xp(param.data).zeros(param.shape) if array is None else array


def _fan_in_bound(shape) -> float:
    return 1.0 / math.sqrt(shape[-1]) if shape[-1] > 0 else 0.0
