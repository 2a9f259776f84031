"""Learning rules and gradient estimators behind one interface, compared on the same tasks.

A rule writes its update into `.grad`, so the optimizers of `retrograd.optim` apply it unchanged:

    >>> import retrograd as rg
    >>> from retrograd import rules
    >>> rule = rules.FeedbackAlignment(generator=rg.Generator().manual_seed(0))
    >>> optimizer.zero_grad()
    >>> loss = rule.compute_grads(model, x, y, F.cross_entropy)
    >>> optimizer.step()
    >>> rule.gradient_cosines(model, x, y, F.cross_entropy)   # per layer, vs backprop

`compare_rules` trains the same network with each rule on the same data and budget.
"""

from retrograd.rules.backprop import Backprop
from retrograd.rules.base import (
    Block,
    LearningRule,
    block_params,
    cosine_similarity,
    functional_forward,
    layer_blocks,
    mlp,
)
from retrograd.rules.compare import (
    RULE_NAMES,
    TASKS,
    Comparison,
    RuleResult,
    compare_rules,
    default_rules,
    load_task,
)
from retrograd.rules.estimators import (
    SPSA,
    FiniteDifference,
    ForwardGradientEstimator,
    GradientEstimate,
    GradientEstimator,
    TruncatedBPTT,
    true_gradient,
)
from retrograd.rules.feedback_alignment import DirectFeedbackAlignment, FeedbackAlignment
from retrograd.rules.forward_forward import ForwardForward, embed_label
from retrograd.rules.forward_gradient import ForwardGradient
from retrograd.rules.hebbian import Hebbian, hebbian_update
from retrograd.rules.predictive_coding import PredictiveCoding

__all__ = [
    "LearningRule",
    "Backprop",
    "FeedbackAlignment",
    "DirectFeedbackAlignment",
    "PredictiveCoding",
    "Hebbian",
    "hebbian_update",
    "ForwardGradient",
    "ForwardForward",
    "embed_label",
    "GradientEstimate",
    "GradientEstimator",
    "ForwardGradientEstimator",
    "SPSA",
    "FiniteDifference",
    "TruncatedBPTT",
    "true_gradient",
    "compare_rules",
    "default_rules",
    "load_task",
    "RULE_NAMES",
    "TASKS",
    "Comparison",
    "RuleResult",
    "Block",
    "layer_blocks",
    "block_params",
    "functional_forward",
    "cosine_similarity",
    "mlp",
]
