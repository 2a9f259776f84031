"""Gradient estimators: forward gradient (unbiased), SPSA, finite differences, truncated BPTT,
each reporting its cosine similarity to the true gradient."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn
from retrograd.nn import functional as F
from retrograd.rules import (
    SPSA,
    FiniteDifference,
    ForwardGradientEstimator,
    TruncatedBPTT,
    cosine_similarity,
    true_gradient,
)


def _gen(seed: int = 0) -> rg.Generator:
    return rg.Generator().manual_seed(seed)


def _problem(hidden: int = 4):
    """A small float64 network loss as a function of its parameters: 2-hidden-2 tanh."""
    r = np.random.default_rng(0)
    x = rg.tensor(r.normal(size=(16, 2)), dtype=rg.float64)
    y = rg.tensor(r.integers(0, 2, 16))
    params = [
        rg.tensor(r.normal(0, 0.8, (hidden, 2)), dtype=rg.float64),
        rg.tensor(r.normal(0, 0.1, hidden), dtype=rg.float64),
        rg.tensor(r.normal(0, 0.8, (2, hidden)), dtype=rg.float64),
        rg.tensor(r.normal(0, 0.1, 2), dtype=rg.float64),
    ]

    def loss(w1, b1, w2, b2):
        return F.cross_entropy(F.linear(rg.tanh(F.linear(x, w1, b1)), w2, b2), y)

    return loss, params


def _flat(arrays) -> np.ndarray:
    return np.concatenate([np.asarray(a).ravel() for a in arrays])


def test_true_gradient_is_backprop():
    loss, params = _problem()
    value, grads = true_gradient(loss, params)
    leaves = [p.detach().requires_grad_() for p in params]
    out = loss(*leaves)
    out.backward()
    assert value == pytest.approx(out.item())
    for g, p in zip(grads, leaves):
        np.testing.assert_allclose(g, p.grad.numpy())


def test_forward_gradient_is_the_directional_derivative_times_the_tangent():
    loss, params = _problem()
    est = ForwardGradientEstimator(n_tangents=1, generator=_gen(3)).estimate(loss, params)
    r = np.random.default_rng(3)  # the same draws as the estimator's generator
    v = _flat([r.standard_normal(p.shape) for p in params])
    _, truth = true_gradient(loss, params)
    g = _flat(truth)
    np.testing.assert_allclose(_flat(est.grads), (g @ v) * v, rtol=1e-9, atol=1e-12)
    assert est.evaluations == 1


def test_forward_gradient_is_unbiased():
    """The mean over many tangents approaches the true gradient: each coordinate within 4
    standard errors (Var[(g.v) v_i] = |g|^2 + g_i^2 for v ~ N(0, I)), the whole vector within
    3 sqrt((P + 1) / n) relative error."""
    loss, params = _problem()
    n = 1500
    report = ForwardGradientEstimator(n_tangents=n, generator=_gen(0)).compare(loss, params)
    mean, g = _flat(report.grads), _flat(report.true_grads)
    stderr = np.sqrt((g @ g + g * g) / n)
    assert np.all(np.abs(mean - g) < 4 * stderr)
    p = g.size
    assert np.linalg.norm(mean - g) / np.linalg.norm(g) < 3 * np.sqrt((p + 1) / n)
    assert report.cosine > 0.95
    assert len(report.cosines) == 4 and report.evaluations == n


def test_one_tangent_is_a_poor_estimate_many_a_good_one():
    loss, params = _problem(hidden=16)
    cos1 = [ForwardGradientEstimator(1, _gen(s)).compare(loss, params).cosine for s in range(20)]
    # E[cos] for one tangent in P = 82 dimensions is about sqrt(2 / (pi P)) ~ 0.09
    assert abs(np.mean(cos1)) < 0.3 and min(cos1) > -1 and max(cos1) < 1
    assert ForwardGradientEstimator(500, _gen(0)).compare(loss, params).cosine > 0.9


def test_spsa_with_many_samples_points_along_the_gradient():
    loss, params = _problem()
    many = SPSA(n_samples=600, perturbation=1e-4, generator=_gen(0)).compare(loss, params)
    assert many.cosine > 0.9
    assert many.evaluations == 1201
    one = SPSA(n_samples=1, perturbation=1e-4, generator=_gen(0)).compare(loss, params)
    assert one.cosine < many.cosine
    value, _ = true_gradient(loss, params)
    assert many.value == pytest.approx(value)


def test_finite_differences_match_the_gradient():
    loss, params = _problem()
    report = FiniteDifference(eps=1e-5).compare(loss, params)
    assert report.cosine > 0.99999
    for est, truth in zip(report.grads, report.true_grads):
        np.testing.assert_allclose(est, truth, rtol=1e-5, atol=1e-8)
    n = sum(p.numel() for p in params)
    assert report.evaluations == 2 * n + 1
    for p, before in zip(params, _problem()[1]):  # the parameters are left as they were
        np.testing.assert_array_equal(p.numpy(), before.numpy())


def _sequence_problem(length: int = 24):
    cell = nn.RNNCell(1, 8, generator=_gen(0)).double()
    head = nn.Linear(8, 1, generator=_gen(1)).double()
    r = np.random.default_rng(0)
    signal = r.normal(size=(length + 3, 4, 1))
    # the target is the input three steps back: a window under 4 steps misses that path
    xs = [rg.tensor(signal[t + 3], dtype=rg.float64) for t in range(length)]
    ys = [rg.tensor(signal[t], dtype=rg.float64) for t in range(length)]
    pairs = list(zip(xs, ys))

    def step(h, pair):
        x, target = pair
        h = cell(x, h)
        return h, F.mse_loss(head(h), target)

    params = list(cell.parameters()) + list(head.parameters())
    return step, pairs, params


def test_truncated_bptt_with_the_whole_sequence_is_exact():
    step, pairs, params = _sequence_problem()
    report = TruncatedBPTT(window=len(pairs)).compare(step, None, pairs, params)
    assert report.cosine == pytest.approx(1.0)
    for est, truth in zip(report.grads, report.true_grads):
        np.testing.assert_allclose(est, truth)
    # the hand-written full BPTT agrees
    h, total = None, 0
    for pair in pairs:
        h, loss_t = step(h, pair)
        total = total + loss_t
    grads = rg.autograd.grad(total, params)
    for est, g in zip(report.grads, grads):
        np.testing.assert_allclose(est, g.numpy(), rtol=1e-10)


@pytest.mark.parametrize("mode", ["chunked", "sliding"])
def test_truncated_bptt_with_the_whole_sequence_is_exact_in_both_modes(mode):
    step, pairs, params = _sequence_problem(12)
    report = TruncatedBPTT(len(pairs), mode).compare(step, None, pairs, params)
    for est, truth in zip(report.grads, report.true_grads):
        np.testing.assert_allclose(est, truth, rtol=1e-10, atol=1e-14)


def test_sliding_window_cosine_grows_with_the_window():
    step, pairs, params = _sequence_problem()
    reports = [
        TruncatedBPTT(w, "sliding").compare(step, None, pairs, params) for w in (1, 2, 4, 12)
    ]
    cosines = [r.cosine for r in reports]
    assert cosines[0] < 0.99
    assert all(a < b for a, b in zip(cosines, cosines[1:])), cosines
    assert cosines[-1] > 0.99
    # chunked windows: shorter than the sequence is not exact, and the value is the sequence loss
    step_report = TruncatedBPTT(4).compare(step, None, pairs, params)
    assert 0.9 < step_report.cosine < 0.99
    full = TruncatedBPTT(len(pairs)).estimate(step, None, pairs, params).value
    assert step_report.value == pytest.approx(full)
    assert reports[1].value == pytest.approx(full)


def test_estimators_check_their_arguments():
    with pytest.raises(ValueError, match="n_tangents"):
        ForwardGradientEstimator(0)
    with pytest.raises(ValueError, match="n_samples"):
        SPSA(0)
    with pytest.raises(ValueError, match="window"):
        TruncatedBPTT(0)
    with pytest.raises(ValueError, match="mode"):
        TruncatedBPTT(3, mode="random")
    assert cosine_similarity([np.ones(2)], [np.ones(2)]) == pytest.approx(1.0)
