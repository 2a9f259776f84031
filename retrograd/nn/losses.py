"""Loss functions and loss Modules, with PyTorch's names, arguments and semantics.

The functional losses take `reduction='mean' | 'sum' | 'none'` (and PyTorch's deprecated
`size_average` / `reduce` flags). Cross entropy, nll and the binary cross entropies are the fused
primitives of `retrograd.ops.loss`; the others are composed from ops and get their gradients
(and second derivatives) from them. Each Module stores its constructor arguments and calls its
functional loss in `forward`; class weights are buffers, as in PyTorch.

>>> loss_fn = CrossEntropyLoss(label_smoothing=0.1)
>>> loss = loss_fn(model(x), labels)
>>> loss.backward()
"""

from __future__ import annotations

import warnings

from numpy import broadcast_shapes  # shape arithmetic only

from retrograd import ops
from retrograd.nn.module import Module
from retrograd.ops._util import as_tensor, check_broadcast, quiet_block
from retrograd.ops.loss import (
    SquaredError,
    _floating,
    _legacy_reduction,
    _reduce,
    _reduction,
    _refuse_grad,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    nll_loss,
)
from retrograd.tensor import Tensor

__all__ = [
    # functional
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "kl_div",
    "cosine_similarity",
    "soft_margin_loss",
    "margin_ranking_loss",
    # modules
    "MSELoss",
    "L1Loss",
    "SmoothL1Loss",
    "HuberLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "KLDivLoss",
    "CosineSimilarity",
    "SoftMarginLoss",
    "MarginRankingLoss",
]


# -- helpers ---------------------------------------------------------------------------------------
def _warn_size(input: Tensor, target: Tensor) -> None:
    if input.shape != target.shape:
        warnings.warn(
            f"Using a target size (torch.Size({list(target.shape)})) that is different to the "
            f"input size (torch.Size({list(input.shape)})). This will likely lead to incorrect "
            "results due to broadcasting. Please ensure they have the same size.",
            UserWarning,
            stacklevel=4,  # past _pointwise_args and the loss: the caller's line
        )


def _weighted(loss: Tensor, input: Tensor, weight, reduction: str, mean_by_weight: bool) -> Tensor:
    """loss * weight, reduced: 'mean' divides by the sum of weights (mse, l1) or by the count
    (huber), as PyTorch does."""
    weight = _floating(weight)
    if weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    loss = loss * weight
    if reduction == "mean":
        return loss.sum() / weight.sum() if mean_by_weight else loss.mean()
    return _reduce(loss, reduction)


def _pointwise_args(input, target):
    input, target = _floating(input), as_tensor(target)
    _warn_size(input, target)
    return input, target


# -- regression losses -----------------------------------------------------------------------------


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Mean squared error (input - target)^2, optionally weighted per element."""
    if (
        weight is None
        and isinstance(input, Tensor)
        and isinstance(target, Tensor)
        and input.data.shape == target.data.shape
        and input.data.dtype == target.data.dtype
        and input.data.dtype.kind == "f"
    ):  # the common case in one fused node: same values and gradients, less overhead
        reduction = _reduction(reduction, size_average, reduce)
        return SquaredError.apply(input, target, reduction=reduction)
    input, target = _pointwise_args(input, target)
    reduction = _reduction(reduction, size_average, reduce)
    diff = input - target
    loss = diff * diff
    if weight is not None:
        return _weighted(loss, input, weight, reduction, mean_by_weight=True)
    return _reduce(loss, reduction)


def l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Mean absolute error |input - target|, optionally weighted per element."""
    input, target = _pointwise_args(input, target)
    reduction = _reduction(reduction, size_average, reduce)
    loss = ops.abs(input - target)
    if weight is not None:
        return _weighted(loss, input, weight, reduction, mean_by_weight=True)
    return _reduce(loss, reduction)


def smooth_l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (d = input - target)."""
    input, target = _pointwise_args(input, target)
    reduction = _reduction(reduction, size_average, reduce)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    diff = input - target
    abs_diff = ops.abs(diff)
    if beta == 0:  # the quadratic branch is empty: plain l1
        return _reduce(abs_diff, reduction)
    small, inner = _quadratic_part(diff, abs_diff, beta)
    loss = ops.where(small, inner * inner * (0.5 / beta), abs_diff - 0.5 * beta)
    return _reduce(loss, reduction)


def _quadratic_part(diff: Tensor, abs_diff: Tensor, bound: float):
    """(|d| < bound, d there and 0 elsewhere): the quadratic branch squares only the values it
    keeps, so a huge or infinite d neither overflows nor sends 0 * inf = nan back through the
    branch not taken (the gradient is then the clipped slope, as PyTorch's)."""
    small = abs_diff < bound
    return small, ops.where(small, diff, 0.0)


def huber_loss(
    input: Tensor,
    target: Tensor,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Tensor | None = None,
) -> Tensor:
    """0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere (d = input - target)."""
    input, target = _pointwise_args(input, target)
    reduction = _reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    diff = input - target
    abs_diff = ops.abs(diff)
    small, inner = _quadratic_part(diff, abs_diff, delta)
    loss = ops.where(small, inner * inner * 0.5, (abs_diff - 0.5 * delta) * delta)
    if weight is not None:
        return _weighted(loss, input, weight, reduction, mean_by_weight=False)
    return _reduce(loss, reduction)


# -- distribution losses ---------------------------------------------------------------------------
def _xlogx(t: Tensor) -> Tensor:
    """t log t, 0 at t = 0 (gradient log t + 1 elsewhere, 0 there)."""
    zero = t == 0
    return ops.where(zero, 0.0, t * ops.log(ops.where(zero, 1.0, t)))


def kl_div(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    """KL divergence sum target (log target - input), input given as log-probabilities
    (target too when log_target); reduction 'batchmean' divides the sum by the batch size."""
    input, target = _floating(input), as_tensor(target)
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce, stacklevel=3)
    elif reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support "
            "size.'batchmean' divides only by the batch size, and aligns with the KL div math "
            "definition.'mean' will be changed to behave the same as 'batchmean' in the next "
            "major release.",
            UserWarning,
            stacklevel=2,
        )
    elif reduction != "batchmean":
        reduction = _reduction(reduction)
    if log_target:
        loss = ops.exp(target) * (target - input)
    else:
        loss = _xlogx(target) - target * input
    if reduction == "batchmean":
        total = loss.sum()
        return total / input.shape[0] if input.ndim != 0 else total
    return _reduce(loss, reduction)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """sum(x1 * x2) / (max(||x1||, eps) * max(||x2||, eps)) along dim (inputs broadcast)."""
    x1, x2 = _floating(x1), _floating(x2)
    check_broadcast(x1, x2)
    shape = broadcast_shapes(x1.shape, x2.shape)
    x1, x2 = ops.broadcast_to(x1, shape), ops.broadcast_to(x2, shape)
    dim = ops.canonical_dim(dim, len(shape))
    # each input is divided by its own norm first (the result stays in [-1, 1]); the eps floor
    # is applied outside autograd, as PyTorch's no-grad clamp_min_, so it passes the gradient
    n1 = ops.norm(x1, 2, dim, keepdim=True)
    n2 = ops.norm(x2, 2, dim, keepdim=True)
    with quiet_block():  # an infinite norm gives inf / inf = nan, quietly (as PyTorch)
        return ((x1 / _floor_no_grad(n1, eps)) * (x2 / _floor_no_grad(n2, eps))).sum(dim)


def _floor_no_grad(n: Tensor, eps: float) -> Tensor:
    """max(n, eps) in value, with the gradient of n (PyTorch clamps the norm under no_grad)."""
    lifted = (eps - n.data).clip(0, None)  # = max(n, eps) - n, and 0 (not inf - inf) at inf
    return n + Tensor._make(lifted.astype(n.data.dtype, copy=False), False, None, 0)


# -- margin losses ---------------------------------------------------------------------------------
def soft_margin_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """log(1 + exp(-target * input)) for targets in {-1, 1}, stable for large |input|."""
    reduction = _reduction(reduction, size_average, reduce)
    input, target = _floating(input), as_tensor(target)
    _refuse_grad(target, "soft_margin_loss", "target")  # labels are constants, as in PyTorch
    if target.dtype != input.dtype:
        target = target.to(input.dtype)
    return _reduce(-ops.logsigmoid(target * input), reduction)


def margin_ranking_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0.0,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """max(0, -target * (input1 - input2) + margin) for targets in {-1, 1}."""
    reduction = _reduction(reduction, size_average, reduce)
    input1, input2 = _floating(input1), _floating(input2)
    target = as_tensor(target)
    if input1.ndim != input2.ndim or input1.ndim != target.ndim:
        raise RuntimeError(
            "margin_ranking_loss : All input tensors should have same dimension but got sizes: "
            f"input1: torch.Size({list(input1.shape)}), input2: torch.Size({list(input2.shape)}), "
            f"target: torch.Size({list(target.shape)}) "
        )
    loss = ops.clamp(-target * (input1 - input2) + margin, min=0)
    return _reduce(loss, reduction)


# -- modules ---------------------------------------------------------------------------------------
class _Loss(Module):
    """A loss Module: holds the reduction (from `reduction` or the legacy flags)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss Module with per-class weights, kept as the buffer `weight`."""

    def __init__(
        self, weight: Tensor | None = None, size_average=None, reduce=None, reduction="mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class MSELoss(_Loss):
    """Mean squared error: `mse_loss(input, target, reduction=self.reduction)`."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error: `l1_loss(input, target, reduction=self.reduction)`."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Smooth L1 loss (quadratic below beta, linear above)."""

    def __init__(
        self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """Huber loss (quadratic below delta, linear with slope delta above)."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class CrossEntropyLoss(_WeightedLoss):
    """Cross entropy from logits against class indices or class probabilities."""

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of class indices given log-probabilities."""

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return nll_loss(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


class BCELoss(_WeightedLoss):
    """Binary cross entropy of probabilities."""

    def __init__(
        self, weight: Tensor | None = None, size_average=None, reduce=None, reduction="mean"
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross entropy of sigmoid(logits), computed stably from the logits."""

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average=None,
        reduce=None,
        reduction: str = "mean",
        pos_weight: Tensor | None = None,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy_with_logits(
            input,
            target,
            self.weight,
            pos_weight=self.pos_weight,
            reduction=self.reduction,
        )


class KLDivLoss(_Loss):
    """KL divergence of the target from the input, both as log-probabilities when log_target."""

    def __init__(
        self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class CosineSimilarity(Module):
    """Cosine similarity of x1 and x2 along dim."""

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return cosine_similarity(x1, x2, self.dim, self.eps)


class SoftMarginLoss(_Loss):
    """Two-class logistic loss log(1 + exp(-target * input))."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return soft_margin_loss(input, target, reduction=self.reduction)


class MarginRankingLoss(_Loss):
    """Ranking hinge loss max(0, -target * (input1 - input2) + margin)."""

    def __init__(
        self, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return margin_ranking_loss(
            input1, input2, target, margin=self.margin, reduction=self.reduction
        )
