"""Learning rules: each learns XOR and two moons; FA/DFA/PC relate to backprop as the papers say;
Oja finds the principal direction; Forward-Forward predicts by goodness; compare-rules reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn, optim
from retrograd.nn import functional as F
from retrograd.rules import (
    Backprop,
    DirectFeedbackAlignment,
    FeedbackAlignment,
    ForwardForward,
    ForwardGradient,
    Hebbian,
    LearningRule,
    PredictiveCoding,
    compare_rules,
    cosine_similarity,
    embed_label,
    hebbian_update,
    layer_blocks,
    mlp,
)
from retrograd.rules import compare as compare_module
from retrograd.rules.compare import RULE_NAMES, load_task


def _gen(seed: int = 0) -> rg.Generator:
    return rg.Generator().manual_seed(seed)


def _batch(name: str, n: int = 64, dtype=np.float32):
    task = load_task(name, seed=0)
    x = rg.from_numpy(task.x_train[:n].astype(dtype))
    return x, rg.from_numpy(task.y_train[:n])


def _backprop_grads(model, x, y) -> list:
    model.zero_grad()
    Backprop().compute_grads(model, x, y, F.cross_entropy)
    grads = [p.grad.data.copy() for p in model.parameters()]
    model.zero_grad()
    return grads


def _rule_grads(rule, model, x, y) -> list:
    model.zero_grad()
    rule.compute_grads(model, x, y, F.cross_entropy)
    grads = [p.grad.data.copy() for p in model.parameters()]
    model.zero_grad()
    return grads


# -- the layer view ----------------------------------------------------------------------------
def test_layer_blocks_cut_the_model_at_each_linear():
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(4, 8), nn.Tanh(), nn.Sequential(nn.Linear(8, 3), nn.ReLU())
    )
    prefix, blocks = layer_blocks(model)
    assert [type(m).__name__ for m in prefix] == ["Flatten"]
    assert [b.linear.out_features for b in blocks] == [8, 3]
    assert [[type(m).__name__ for m in b.post] for b in blocks] == [["Tanh"], ["ReLU"]]
    assert len(layer_blocks(nn.Linear(3, 2))[1]) == 1


def test_layer_blocks_reject_unsupported_models():
    with pytest.raises(TypeError, match="LayerNorm has parameters"):
        layer_blocks(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)))
    with pytest.raises(TypeError, match="at least one nn.Linear"):
        layer_blocks(nn.Sequential(nn.Tanh()))


def test_cosine_similarity():
    a = np.array([1.0, 0.0])
    assert cosine_similarity(a, a) == pytest.approx(1.0)
    assert cosine_similarity(a, -a) == pytest.approx(-1.0)
    assert cosine_similarity([a, a], [a, np.array([0.0, 1.0])]) == pytest.approx(0.5)
    assert cosine_similarity(a, np.zeros(2)) == 0.0


def test_base_rule_is_abstract():
    with pytest.raises(NotImplementedError):
        LearningRule().compute_grads(nn.Linear(2, 2), None, None, None)


# -- exactness checks --------------------------------------------------------------------------
def test_backprop_rule_is_backward():
    model = mlp(2, [8, 8], 2, "tanh", _gen())
    x, y = _batch("moons", 32)
    loss = Backprop().compute_grads(model, x, y, F.cross_entropy)
    assert loss == pytest.approx(F.cross_entropy(model(x), y).item())
    assert Backprop().gradient_cosines(model, x, y, F.cross_entropy) == pytest.approx([1, 1, 1])


def test_feedback_alignment_with_the_forward_weights_is_backprop():
    model = mlp(2, [8, 8], 2, "tanh", _gen())
    x, y = _batch("moons", 32)
    rule = FeedbackAlignment(generator=_gen(1))
    _, blocks = layer_blocks(model)
    for i, block in enumerate(blocks):
        rule.feedback[i] = block.linear.weight.data  # B_l = W_l
    for got, want in zip(_rule_grads(rule, model, x, y), _backprop_grads(model, x, y)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_feedback_alignment_keeps_its_random_matrices_fixed():
    model = mlp(2, [8, 8], 2, "tanh", _gen())
    x, y = _batch("moons", 32)
    rule = FeedbackAlignment(generator=_gen(1))
    first = _rule_grads(rule, model, x, y)
    matrices = {i: b.copy() for i, b in rule.feedback.items()}
    assert sorted(matrices) == [1, 2] and matrices[1].shape == (8, 8)
    np.testing.assert_array_equal(first[0], _rule_grads(rule, model, x, y)[0])
    assert all(np.array_equal(rule.feedback[i], matrices[i]) for i in matrices)
    # the output layer's update is its exact gradient; hidden ones are not
    exact = _backprop_grads(model, x, y)
    np.testing.assert_allclose(first[-2], exact[-2], rtol=1e-5, atol=1e-7)
    assert cosine_similarity(first[0], exact[0]) < 0.99


def test_direct_feedback_alignment_projects_the_output_error():
    model = mlp(2, [8, 6], 3, "tanh", _gen())
    x = rg.randn(16, 2, generator=_gen(2))
    y = rg.tensor(np.arange(16) % 3)
    rule = DirectFeedbackAlignment(generator=_gen(1))
    grads = _rule_grads(rule, model, x, y)
    assert {i: b.shape for i, b in rule.feedback.items()} == {0: (3, 8), 1: (3, 6)}
    exact = _backprop_grads(model, x, y)
    np.testing.assert_allclose(grads[-2], exact[-2], rtol=1e-5, atol=1e-7)
    # layer 0 by hand: delta = (e B_0) * tanh'(a_0)
    with rg.no_grad():
        a0 = F.linear(x, model[0].weight, model[0].bias)
        out = model(x)
    e = (F.softmax(out, dim=1).numpy() - np.eye(3)[y.numpy()]) / 16
    delta = (e @ rule.feedback[0]) * (1 - np.tanh(a0.numpy()) ** 2)
    np.testing.assert_allclose(grads[0], delta.T @ x.numpy(), rtol=1e-4, atol=1e-7)


# -- predictive coding -------------------------------------------------------------------------
def test_predictive_coding_approaches_backprop_in_the_small_step_limit():
    """Whittington & Bogacz 2017: small output error, inference run to equilibrium -> backprop."""
    model = mlp(2, [32, 32], 2, "tanh", _gen()).double()
    x, y = _batch("moons", 64, np.float64)
    rule = PredictiveCoding(n_iters=200, inference_lr=0.1, beta=1e-3)
    cosines = rule.gradient_cosines(model, x, y, F.cross_entropy)
    assert min(cosines) > 0.99, cosines
    energies = rule.energies  # the inference settles: the energy never rises
    assert len(energies) == 201 and all(b <= a for a, b in zip(energies, energies[1:]))
    # too few inference steps: the error has not reached the first layer yet
    early = PredictiveCoding(n_iters=1, inference_lr=0.1, beta=1e-3)
    assert early.gradient_cosines(model, x, y, F.cross_entropy)[0] == 0.0
    # a large output error (beta = 1) and a short inference are further from backprop
    rough = PredictiveCoding(n_iters=5, inference_lr=0.1, beta=1.0)
    assert min(rough.gradient_cosines(model, x, y, F.cross_entropy)) < min(cosines)


def test_predictive_coding_with_fixed_predictions_is_backprop():
    model = mlp(2, [16, 16], 2, "tanh", _gen()).double()
    x, y = _batch("moons", 32, np.float64)
    rule = PredictiveCoding(n_iters=3, inference_lr=1.0, fixed_prediction=True)
    for got, want in zip(_rule_grads(rule, model, x, y), _backprop_grads(model, x, y)):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)


def test_predictive_coding_checks_its_arguments():
    with pytest.raises(ValueError, match="beta"):
        PredictiveCoding(beta=0)
    with pytest.raises(ValueError, match="n_iters"):
        PredictiveCoding(n_iters=-1)


# -- Hebbian -----------------------------------------------------------------------------------
def _principal_data(n=2000, seed=0):
    """5-D data, variance 9 along a known unit direction u, 0.25 in the others."""
    r = np.random.default_rng(seed)
    u = np.array([2.0, -1.0, 0.5, 1.0, 0.0])
    u /= np.linalg.norm(u)
    x = r.normal(0, 0.5, (n, 5)) + r.normal(0, 3.0, (n, 1)) * u
    return x, u


def test_oja_rule_extracts_the_first_principal_component():
    x, u = _principal_data()
    layer = nn.Linear(5, 1, bias=False, generator=_gen())
    opt = optim.SGD(layer.parameters(), lr=0.01)
    rule = Hebbian("oja", readout=False)
    r = np.random.default_rng(1)
    for _ in range(300):
        opt.zero_grad()
        rule.compute_grads(layer, rg.tensor(x[r.integers(0, len(x), 32)], dtype=rg.float32))
        opt.step()
    w = layer.weight.detach().numpy()[0]
    assert abs(cosine_similarity(w, u)) > 0.99
    assert np.linalg.norm(w) == pytest.approx(1.0, abs=0.05)  # Oja keeps the weights normalised


def test_sanger_rule_orders_the_principal_components():
    r = np.random.default_rng(0)
    basis = np.linalg.qr(r.normal(size=(4, 4)))[0]
    x = (r.normal(size=(3000, 4)) * [3.0, 2.0, 0.5, 0.3]) @ basis.T
    w = r.normal(0, 0.1, (2, 4))
    for i in range(0, 3000 * 3, 50):
        batch = x[i % 3000 : i % 3000 + 50]
        dw, db = hebbian_update("sanger", batch, w)
        w = w + 0.01 * dw
        assert db is None
    assert abs(cosine_similarity(w[0], basis[:, 0])) > 0.99
    assert abs(cosine_similarity(w[1], basis[:, 1])) > 0.99


def test_competitive_rule_moves_the_winner_to_the_input():
    w = np.array([[0.0, 0.0], [5.0, 5.0]])
    b = -0.5 * (w * w).sum(1)
    x = np.array([[1.0, 0.0], [4.0, 6.0]])
    dw, db = hebbian_update("competitive", x, w, b)
    np.testing.assert_allclose(dw, [[0.5, 0.0], [-0.5, 0.5]])  # (x - w) / N for each winner
    np.testing.assert_allclose(db, [0.0, 0.0])  # biases already at -||w||^2 / 2
    with pytest.raises(ValueError, match="unknown Hebbian rule"):
        hebbian_update("anti", x, w)
    with pytest.raises(ValueError, match="needs labels"):
        Hebbian().compute_grads(mlp(2, [4], 2), rg.tensor(x, dtype=rg.float32))


# -- Forward-Forward ---------------------------------------------------------------------------
def test_forward_forward_embeds_labels_and_predicts_by_goodness():
    x = rg.tensor([[0.5, -1.0], [2.0, 0.0]])
    np.testing.assert_allclose(
        embed_label(x, [1, 0], 3).numpy(), [[0.5, -1.0, 0, 1, 0], [2.0, 0.0, 1, 0, 0]]
    )
    rule = ForwardForward(3, generator=_gen())
    model = rule.build_model(2, [8, 8], 3, generator=_gen())
    assert model[0].in_features == 5 and isinstance(model[-1], nn.Tanh)
    goodness = rule.goodness(model, x)
    assert goodness.shape == (2, 3)
    np.testing.assert_array_equal(rule.predict(model, x).numpy(), goodness.numpy().argmax(1))
    y = rg.tensor([0, 2])
    cos = rule.gradient_cosines(model, x, y)
    assert len(cos) == 2 and cos[-1] == pytest.approx(1.0)  # the last layer is exactly local
    with pytest.raises(ValueError, match="n_classes"):
        ForwardForward(1)


# -- every rule learns XOR and two moons ------------------------------------------------------
# (rule factory, hidden widths, steps, Adam's lr): budgets sized for a second or a few each
LEARNERS = {
    "backprop": (lambda c: Backprop(), [16, 16], 200, 1e-2),
    "fa": (lambda c: FeedbackAlignment(generator=_gen(1)), [16, 16], 300, 1e-2),
    "dfa": (lambda c: DirectFeedbackAlignment(generator=_gen(1)), [16, 16], 400, 1e-2),
    "pc": (lambda c: PredictiveCoding(n_iters=10, inference_lr=0.3), [16, 16], 300, 1e-2),
    "hebbian": (lambda c: Hebbian(), [32], 700, 1e-2),
    "forward-gradient": (lambda c: ForwardGradient(generator=_gen(1)), [16], 700, 3e-2),
    "ff": (lambda c: ForwardForward(c, generator=_gen(1)), [32, 32], 500, 1e-2),
}
# stated accuracies (test split); moons with noise 0.1 is ~86% linearly separable
REQUIRED = {"xor": 0.95, "moons": 0.95}


def _train(rule, task, hidden, steps, lr=1e-2, seed=0):
    model = rule.build_model(task.x_train.shape[1], hidden, task.n_classes, "tanh", _gen(seed))
    opt = optim.Adam(model.parameters(), lr=lr)
    r = np.random.default_rng(seed)
    for _ in range(steps):
        idx = r.integers(0, len(task.x_train), 64)
        opt.zero_grad()
        rule.compute_grads(
            model,
            rg.from_numpy(task.x_train[idx]),
            rg.from_numpy(task.y_train[idx]),
            F.cross_entropy,
        )
        opt.step()
    pred = rule.predict(model, rg.from_numpy(task.x_test)).numpy()
    return float((pred == task.y_test).mean())


@pytest.mark.parametrize("dataset", ["xor", "moons"])
@pytest.mark.parametrize("name", list(LEARNERS))
def test_each_rule_learns(name, dataset):
    make, hidden, steps, lr = LEARNERS[name]
    task = load_task(dataset, seed=0)
    acc = _train(make(task.n_classes), task, hidden, steps, lr)
    assert acc >= REQUIRED[dataset], f"{name} on {dataset}: {acc:.3f}"


# -- compare-rules -----------------------------------------------------------------------------
def test_compare_rules_reports_every_rule_and_writes_a_png(tmp_path, monkeypatch):
    real = compare_module.load_task

    def fake_load(name, seed=0, data_root=None):
        if name == "fashion-mnist":
            raise FileNotFoundError("Fashion-MNIST file not found (test)")
        return real(name, seed, data_root)

    monkeypatch.setattr(compare_module, "load_task", fake_load)
    seen = []
    result = compare_rules(
        datasets=("xor", "fashion-mnist"),
        steps=12,
        hidden=(8,),
        n_evals=3,
        out_dir=tmp_path,
        on_result=seen.append,
    )
    assert seen == result.results
    rules = [r.rule for r in result.results]
    assert len(rules) == len(RULE_NAMES) == 7
    assert {
        "backprop",
        "feedback alignment",
        "direct feedback alignment",
        "predictive coding",
        "hebbian",
        "forward gradient",
        "forward-forward",
    } == set(rules)
    assert result.skipped == {"fashion-mnist": "Fashion-MNIST file not found (test)"}
    for r in result.results:
        assert 0.0 <= r.accuracy <= 1.0 and r.ms_per_step > 0 and r.steps == 12
        assert [p["step"] for p in r.curve] == [0, 4, 8, 12]  # n_evals=3
        assert len(r.layer_cosines) == (1 if r.rule == "forward-forward" else 2)
        assert all(-1.0 <= c <= 1.0 for c in r.layer_cosines)
    backprop = next(r for r in result.results if r.rule == "backprop")
    assert backprop.layer_cosines == pytest.approx([1.0, 1.0])
    table = result.table()
    assert table.count("\n| xor |") == 7 and "skipped" in table
    png = (tmp_path / "rules.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "rules.png").ndim == 3
    written = (tmp_path / "rules.md").read_text()
    assert written.startswith(table) and "Same budget for every rule" in written
    data = json.loads((tmp_path / "rules.json").read_text())
    assert len(data["results"]) == 7 and data["paths"]["figure"].endswith("rules.png")


def test_compare_rules_takes_rule_names_and_step_budgets():
    result = compare_rules(
        datasets=("xor",), rules=["backprop", "dfa"], steps={"xor": 5}, hidden=(4,), n_evals=1
    )
    assert [r.rule for r in result.results] == ["backprop", "direct feedback alignment"]
    assert result.paths == {} and result.results[0].steps == 5
    with pytest.raises(ValueError, match="unknown rules"):
        compare_rules(datasets=("xor",), rules=["sgd"], steps=1)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_task("mnist")
