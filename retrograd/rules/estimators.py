"""Approximate gradient estimators behind one interface, each measured against the true gradient.

An estimator looks at a scalar function of some parameter tensors, `fn(*params) -> Tensor`, and
returns a `GradientEstimate`: one array per parameter, the function value, how many evaluations
it spent, and, from `compare`, the true gradient (by backprop) and the cosine similarity to it.

- `ForwardGradientEstimator` (Baydin et al. 2022): draw a tangent v ~ N(0, I), take one
  Jacobian-vector product d = grad . v (`retrograd.func.jvp`), return d v. Unbiased, since
  E[v v^T] = I; the variance falls as 1 / n_tangents.
- `SPSA` (Spall 1992): Rademacher directions D, (f(p + c D) - f(p - c D)) / (2c) D; two
  evaluations per sample and no derivatives at all; unbiased up to O(c^2).
- `FiniteDifference`: central differences along every coordinate (2 evaluations per element);
  the classic check, exact up to O(eps^2) and round-off.
- `TruncatedBPTT`: backprop through time with the sequence cut into windows; the hidden state is
  detached between windows, so no gradient flows further back than `window` steps.

>>> est = SPSA(n_samples=1000, generator=rg.Generator().manual_seed(0))
>>> report = est.compare(lambda w: ((w - 1) ** 2).sum(), [w])
>>> report.cosine                                   # close to 1 with many samples
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from retrograd import autograd
from retrograd.autograd.grad_mode import enable_grad, no_grad
from retrograd.backend import Generator, get_xp, rng
from retrograd.rules.base import cosine_similarity
from retrograd.tensor import Tensor

__all__ = [
    "GradientEstimate",
    "GradientEstimator",
    "ForwardGradientEstimator",
    "SPSA",
    "FiniteDifference",
    "TruncatedBPTT",
    "true_gradient",
]


@dataclass
class GradientEstimate:
    """An estimated gradient (one array per parameter) and, from `compare`, how good it is."""

    grads: list
    value: float
    evaluations: int
    true_grads: list | None = None
    cosine: float | None = None
    cosines: list = field(default_factory=list)  # per parameter

    def _attach_truth(self, true_grads: list) -> GradientEstimate:
        self.true_grads = true_grads
        self.cosine = cosine_similarity(self.grads, true_grads)
        self.cosines = [cosine_similarity(g, t) for g, t in zip(self.grads, true_grads)]
        return self

    def __repr__(self) -> str:
        cos = "" if self.cosine is None else f", cosine={self.cosine:.4f}"
        return f"GradientEstimate(value={self.value:.6g}, evaluations={self.evaluations}{cos})"


def true_gradient(fn: Callable, params: Sequence[Tensor]) -> tuple[float, list]:
    """(fn(*params), its exact gradient by backprop) as (float, list of arrays)."""
    leaves = [Tensor(p.data, requires_grad=True) for p in params]
    with enable_grad():
        out = fn(*leaves)
        grads = autograd.grad(out, leaves, allow_unused=True)
    xp = get_xp(leaves[0].data) if leaves else None
    arrays = [xp.zeros_like(p.data) if g is None else g.data for p, g in zip(leaves, grads)]
    return float(out.item()), arrays


class GradientEstimator:
    """The interface: `estimate(fn, params)`; `compare` adds the true gradient and cosines."""

    name = "estimator"

    def estimate(self, fn: Callable, params: Sequence[Tensor]) -> GradientEstimate:
        raise NotImplementedError

    def compare(self, fn: Callable, params: Sequence[Tensor]) -> GradientEstimate:
        """The estimate with its cosine similarity to the true gradient (overall and per tensor)."""
        estimate = self.estimate(fn, params)
        _, truth = true_gradient(fn, params)
        return estimate._attach_truth(truth)


def _values(fn: Callable, arrays: list) -> float:
    with no_grad():
        return float(fn(*[Tensor(a) for a in arrays]).item())


class ForwardGradientEstimator(GradientEstimator):
    """(grad . v) v for tangents v ~ N(0, I), averaged over `n_tangents`; one JVP each."""

    name = "forward gradient"

    def __init__(self, n_tangents: int = 1, generator: Generator | None = None) -> None:
        if n_tangents < 1:
            raise ValueError(f"n_tangents must be at least 1, got {n_tangents}")
        self.n_tangents = n_tangents
        self.generator = generator

    def estimate(self, fn: Callable, params: Sequence[Tensor]) -> GradientEstimate:
        from retrograd import func

        g = rng(self.generator)
        primals = tuple(Tensor(p.data) for p in params)
        total = [get_xp(p.data).zeros(p.shape, dtype=p.data.dtype) for p in params]
        value = 0.0
        for _ in range(self.n_tangents):
            tangents = [
                get_xp(p.data).asarray(g.standard_normal(p.shape), dtype=p.data.dtype)
                for p in params
            ]
            out, directional = func.jvp(fn, primals, tuple(Tensor(t) for t in tangents))
            value = float(out.item())
            d = directional.data
            total = [acc + d * t for acc, t in zip(total, tangents)]
        grads = [acc / self.n_tangents for acc in total]
        return GradientEstimate(grads, value, self.n_tangents)


class SPSA(GradientEstimator):
    """Simultaneous-perturbation estimate (f(p + cD) - f(p - cD)) / (2c) D, D = +-1 at random."""

    name = "SPSA"

    def __init__(
        self, n_samples: int = 1, perturbation: float = 1e-3, generator: Generator | None = None
    ) -> None:
        if n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {n_samples}")
        self.n_samples = n_samples
        self.perturbation = perturbation
        self.generator = generator

    def estimate(self, fn: Callable, params: Sequence[Tensor]) -> GradientEstimate:
        g = rng(self.generator)
        c = self.perturbation
        base = [p.data for p in params]
        total = [get_xp(a).zeros(a.shape, dtype=a.dtype) for a in base]
        for _ in range(self.n_samples):
            signs = [
                get_xp(a).asarray(g.integers(0, 2, size=a.shape) * 2 - 1, dtype=a.dtype)
                for a in base
            ]
            up = _values(fn, [a + c * s for a, s in zip(base, signs)])
            down = _values(fn, [a - c * s for a, s in zip(base, signs)])
            slope = (up - down) / (2 * c)
            total = [acc + slope * s for acc, s in zip(total, signs)]
        grads = [acc / self.n_samples for acc in total]
        return GradientEstimate(grads, _values(fn, base), 2 * self.n_samples + 1)


class FiniteDifference(GradientEstimator):
    """Central differences (f(p + eps e_i) - f(p - eps e_i)) / (2 eps), one coordinate at a time."""

    name = "finite difference"

    def __init__(self, eps: float = 1e-4) -> None:
        self.eps = eps

    def estimate(self, fn: Callable, params: Sequence[Tensor]) -> GradientEstimate:
        base = [p.data.copy() for p in params]
        grads = []
        evaluations = 1
        for a in base:
            flat = a.reshape(-1)
            grad = get_xp(a).zeros(flat.shape, dtype=a.dtype)
            for i in range(flat.size):
                old = flat[i].item()
                flat[i] = old + self.eps
                up = _values(fn, base)
                flat[i] = old - self.eps
                down = _values(fn, base)
                flat[i] = old
                grad[i] = (up - down) / (2 * self.eps)
                evaluations += 2
            grads.append(grad.reshape(a.shape))
        return GradientEstimate(grads, _values(fn, base), evaluations)


class TruncatedBPTT:
    """Backprop through time that lets no gradient flow more than `window` steps back.

    The problem is given as `step(h, x_t) -> (h_next, loss_t)`, a closure over `params`; the
    objective is the sum of loss_t over the sequence `inputs` (h0 may be None if `step` accepts
    it). Two ways of truncating:

    - `"chunked"` (the usual TBPTT(k, k)): the sequence is cut into windows of `window` steps
      and the state detached between them; a loss near a window's start sees few steps back.
    - `"sliding"` (Williams & Peng's TBPTT(1, k)): every loss_t is backpropagated through exactly
      the last `window` steps (the earlier state taken from a forward pass, detached); costs
      `window` times the steps. More of the true gradient's terms with every extra step.

    A window as long as the sequence is exact backprop through time either way.

    >>> cell, head = nn.RNNCell(1, 8), nn.Linear(8, 1)
    >>> def step(h, pair):
    ...     h = cell(pair[0], h)
    ...     return h, F.mse_loss(head(h), pair[1])
    >>> TruncatedBPTT(window=5).compare(step, None, pairs, params).cosine
    """

    name = "truncated BPTT"

    def __init__(self, window: int, mode: str = "chunked") -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if mode not in ("chunked", "sliding"):
            raise ValueError(f"mode must be 'chunked' or 'sliding', got {mode!r}")
        self.window = window
        self.mode = mode

    def estimate(self, step: Callable, h0, inputs, params: Sequence[Tensor]) -> GradientEstimate:
        if self.mode == "sliding":
            return self._sliding(step, h0, inputs, params, self.window)
        return self._chunked(step, h0, inputs, params, self.window)

    def compare(self, step: Callable, h0, inputs, params: Sequence[Tensor]) -> GradientEstimate:
        estimate = self.estimate(step, h0, inputs, params)
        full = self._chunked(step, h0, inputs, params, max(1, len(inputs)))
        return estimate._attach_truth(full.grads)

    @staticmethod
    def _chunked(step, h0, inputs, params, window) -> GradientEstimate:
        params = list(params)
        grads = [get_xp(p.data).zeros(p.shape, dtype=p.data.dtype) for p in params]
        h = h0
        total = 0.0
        with enable_grad():
            for start in range(0, len(inputs), window):
                h = None if h is None else h.detach()
                loss = None
                for t in range(start, min(start + window, len(inputs))):
                    h, loss_t = step(h, inputs[t])
                    loss = loss_t if loss is None else loss + loss_t
                total += float(loss.item())
                chunk = autograd.grad(loss, params, allow_unused=True)
                grads = [a if g is None else a + g.data for a, g in zip(grads, chunk)]
        return GradientEstimate(grads, total, len(inputs))

    @staticmethod
    def _sliding(step, h0, inputs, params, window) -> GradientEstimate:
        params = list(params)
        grads = [get_xp(p.data).zeros(p.shape, dtype=p.data.dtype) for p in params]
        states = [h0]  # states[t]: the state before step t, without a graph
        with no_grad():
            for x_t in inputs:
                states.append(step(states[-1], x_t)[0])
        total = 0.0
        with enable_grad():
            for t in range(len(inputs)):
                start = max(0, t - window + 1)
                h = states[start]
                h = None if h is None else h.detach()
                for s in range(start, t + 1):
                    h, loss_t = step(h, inputs[s])
                total += float(loss_t.item())
                part = autograd.grad(loss_t, params, allow_unused=True)
                grads = [a if g is None else a + g.data for a, g in zip(grads, part)]
        evaluations = sum(t - max(0, t - window + 1) + 1 for t in range(len(inputs)))
        return GradientEstimate(grads, total, len(inputs) + evaluations)
