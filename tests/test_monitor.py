"""GradientMonitor: its statistics against values computed directly, its flags, report, PNG and
training callback."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn, optim
from retrograd.data import DataLoader, TensorDataset
from retrograd.diagnostics.monitor import (
    GradientMonitor,
    GradientMonitorCallback,
    dead_fraction,
    saturated_fraction,
)
from retrograd.nn import functional as F
from retrograd.train import Trainer


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = open(path, "rb").read(32)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _norm(arrays) -> float:
    return math.sqrt(sum(float(np.sum(np.asarray(a, np.float64) ** 2)) for a in arrays))


def _mlp(seed=0):
    g = rg.Generator().manual_seed(seed)
    return nn.Sequential(
        nn.Linear(3, 6, generator=g),
        nn.ReLU(),
        nn.Linear(6, 5, generator=g),
        nn.Tanh(),
        nn.Linear(5, 4, generator=g),
        nn.Sigmoid(),
        nn.Linear(4, 2, generator=g),
    ).double()


def _data(n=16, seed=0):
    g = rg.Generator().manual_seed(seed)
    return rg.randn(n, 3, generator=g, dtype=rg.float64), rg.randint(0, 2, (n,), generator=g)


def test_layers_are_modules_with_parameters_by_dotted_name():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.LayerNorm(3))
            self.head = nn.Linear(3, 1)

        def forward(self, x):
            return self.head(self.body(x))

    monitor = GradientMonitor(Net())
    assert monitor.layers == ["body.0", "body.2", "head"]
    assert monitor.layer_types == {"body.0": "Linear", "body.2": "LayerNorm", "head": "Linear"}
    assert monitor.activations == {"body.1": "relu"}
    assert monitor.num_params == {"body.0": 9, "body.2": 6, "head": 4}


def test_norms_and_update_ratio_match_direct_computation():
    model = _mlp()
    x, y = _data()
    opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    monitor = GradientMonitor(model)
    linears = [model[i] for i in (0, 2, 4, 6)]
    expected = {"grad": [], "weight": [], "ratio": []}
    for _ in range(4):
        before = [[p.data.copy() for p in m.parameters()] for m in linears]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        grads = [[p.grad.data.copy() for p in m.parameters()] for m in linears]
        opt.step()
        monitor.step(loss)
        after = [[p.data.copy() for p in m.parameters()] for m in linears]
        expected["grad"].append([_norm(g) for g in grads])
        expected["weight"].append([_norm(a) for a in after])
        expected["ratio"].append(
            [_norm([a - b for a, b in zip(aa, bb)]) / _norm(bb) for aa, bb in zip(after, before)]
        )
    assert monitor.steps == [0, 1, 2, 3]
    assert len(monitor.losses) == 4
    for j, name in enumerate(["0", "2", "4", "6"]):
        np.testing.assert_allclose(
            monitor.grad_norms[name], [e[j] for e in expected["grad"]], rtol=1e-12
        )
        np.testing.assert_allclose(
            monitor.weight_norms[name], [e[j] for e in expected["weight"]], rtol=1e-12
        )
        np.testing.assert_allclose(
            monitor.update_ratios[name], [e[j] for e in expected["ratio"]], rtol=1e-10
        )


def test_grad_norm_is_the_norm_of_the_parameters_grad():
    model = _mlp(1)
    x, y = _data(seed=1)
    monitor = GradientMonitor(model)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    monitor.step()
    for name, module in [("0", model[0]), ("6", model[6])]:
        direct = np.sqrt(
            sum((p.grad.numpy().astype(np.float64) ** 2).sum() for p in module.parameters())
        )
        assert monitor.grad_norms[name][0] == pytest.approx(direct, rel=1e-12)


def test_dead_relu_fraction_on_a_constructed_case():
    lin = nn.Linear(2, 4).double()
    with rg.no_grad():
        lin.weight.data[...] = [[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-2.0, -1.0]]
        lin.bias.data[...] = [0.0, 0.0, 0.0, -1.0]
    model = nn.Sequential(lin, nn.ReLU(), nn.Linear(4, 1).double())
    monitor = GradientMonitor(model)
    x = rg.tensor([[1.0, 2.0], [0.5, 0.1], [2.0, 1.0]], dtype=rg.float64)  # all positive
    model(x).sum().backward()
    monitor.step()
    # units 1 and 3 are negative for every (positive) input; unit 2 is positive for some
    assert monitor.dead_fractions["1"] == [0.5]
    pre = x.numpy() @ lin.weight.data.T + lin.bias.data
    direct = 1.0 - np.mean(np.any(np.maximum(pre, 0) != 0, axis=0))
    assert monitor.dead_fractions["1"][0] == direct
    assert dead_fraction(np.zeros((5, 3))) == 1.0
    assert dead_fraction(np.array([[0.0, 1.0], [0.0, 0.0]])) == 0.5


def test_saturation_fraction_matches_direct_computation():
    g = rg.Generator().manual_seed(3)
    lin = nn.Linear(4, 50, generator=g).double()
    with rg.no_grad():
        lin.weight.data *= 8.0  # push many units into the tails
    model = nn.Sequential(lin, nn.Tanh(), nn.Linear(50, 50).double(), nn.Sigmoid())
    model[2].weight.data *= 10.0
    monitor = GradientMonitor(model)
    x = rg.randn(32, 4, generator=g, dtype=rg.float64)
    model(x).sum().backward()
    monitor.step()
    z1 = x.numpy() @ lin.weight.data.T + lin.bias.data
    t = np.tanh(z1)
    z2 = t @ model[2].weight.data.T + model[2].bias.data
    s = 1.0 / (1.0 + np.exp(-z2))
    tanh_direct = np.mean(np.abs(t) > 0.99)
    sig_direct = np.mean((s < 0.01) | (s > 0.99))
    assert 0.1 < tanh_direct < 0.9 and 0.1 < sig_direct < 0.9  # a meaningful case
    assert monitor.saturated_fractions["1"][0] == pytest.approx(tanh_direct, abs=1e-12)
    assert monitor.saturated_fractions["3"][0] == pytest.approx(sig_direct, abs=1e-12)
    assert saturated_fraction(np.array([0.5, 0.995, -0.999, 0.0]), "tanh") == 0.5
    assert saturated_fraction(np.array([0.5, 0.995, 0.001, 0.2]), "sigmoid") == 0.5


def test_every_and_eval_passes():
    model = _mlp()
    x, y = _data()
    opt = optim.SGD(model.parameters(), lr=0.1)
    monitor = GradientMonitor(model, every=2)
    for _ in range(5):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.eval()
        with rg.no_grad():  # an evaluation pass with other data must not count
            model(rg.zeros(4, 3, dtype=rg.float64))
        model.train()
        monitor.step(loss)
    assert monitor.steps == [0, 2, 4]
    assert all(len(v) == 3 for v in monitor.grad_norms.values())
    assert monitor.dead_fractions["1"][0] < 1.0  # the all-zero eval input would kill all
    # the ratio of a recorded step is that step's update (a snapshot right before it)
    assert all(math.isfinite(r) for r in monitor.update_ratios["0"])
    monitor.remove()
    assert all(not m._forward_hooks for m in model.modules())


def test_vanishing_flagged_and_explained():
    from retrograd.diagnostics.vanishing import build

    model = build("sigmoid-naive", 10, 16, 2, 2, rg.Generator().manual_seed(0))
    monitor = GradientMonitor(model)
    x = rg.randn(32, 2, generator=rg.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    F.cross_entropy(model(x), y).backward()
    monitor.step()
    kinds = [f.kind for f in monitor.findings()]
    assert "vanishing" in kinds and "exploding" not in kinds
    report = monitor.report()
    assert "Vanishing gradients" in report
    for remedy in ("ReLU", "He (Kaiming)", "Xavier", "normalisation", "residual"):
        assert remedy in report


def test_exploding_flagged():
    g = rg.Generator().manual_seed(0)
    layers = []
    for _ in range(6):
        lin = nn.Linear(16, 16, generator=g)
        with rg.no_grad():
            lin.weight.data *= 30.0
        layers += [lin, nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(16, 2, generator=g))
    monitor = GradientMonitor(model)
    x = rg.randn(8, 16, generator=g)
    F.cross_entropy(model(x), rg.zeros(8, dtype=rg.int64)).backward()
    monitor.step()
    found = [f for f in monitor.findings() if f.kind == "exploding"]
    assert found
    assert "clipping" in monitor.report()


def test_non_finite_gradient_is_exploding():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    monitor = GradientMonitor(model)
    model(rg.ones(1, 2)).sum().backward()
    model[0].weight.grad.data[0, 0] = np.inf
    monitor.step()
    (f,) = [f for f in monitor.findings() if f.kind == "exploding"]
    assert f.layer == "0" and "not finite" in f.message


def test_healthy_network_has_no_findings_and_a_report():
    model = _mlp()
    x, y = _data()
    opt = optim.SGD(model.parameters(), lr=0.01)
    monitor = GradientMonitor(model)
    with pytest.raises(RuntimeError, match="recorded nothing"):
        monitor.report()
    for _ in range(3):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        monitor.step(loss)
    assert monitor.findings() == []
    report = monitor.report()
    assert report.startswith("# Gradient flow")
    assert "| 1 | `0` | Linear | 24 |" in report
    assert "No vanishing or exploding gradients" in report
    summary = monitor.summary()
    json.dumps(summary)
    assert [layer["name"] for layer in summary["layers"]] == ["0", "2", "4", "6"]


def test_plot_writes_a_png_of_the_documented_size(tmp_path):
    model = _mlp()
    x, y = _data()
    monitor = GradientMonitor(model)
    for _ in range(2):
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        monitor.step()
    path = tmp_path / "flow.png"
    monitor.plot(path)
    assert png_size(path) == (1350, 380)  # 3 panels of 4.5 x 3.8 inches at 100 dpi
    monitor.plot(tmp_path / "small.png", dpi=50)
    assert png_size(tmp_path / "small.png") == (675, 190)


def _recurrent():
    try:
        from retrograd.nn.layers.recurrent import LSTM, RNN
    except ImportError:
        pytest.skip("retrograd.nn.RNN/LSTM are not available")
    return RNN, LSTM


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_recurrent_gradient_per_time_step(kind):
    classes = dict(zip(("RNN", "LSTM"), _recurrent()))
    g = rg.Generator().manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = classes[kind](3, 5, batch_first=True, generator=g)
            self.head = nn.Linear(5, 2, generator=g)

        def forward(self, x):
            out, _ = self.rnn(x)
            self.out = out
            out.retain_grad()
            return self.head(out[:, -1] + 0.5 * out[:, 2])

    model = Net()
    monitor = GradientMonitor(model)
    assert monitor.recurrent == ["rnn"]
    x = rg.randn(4, 7, 3, generator=g, requires_grad=True)
    loss = F.cross_entropy(model(x), rg.tensor([0, 1, 1, 0]))
    loss.backward()
    monitor.step(loss)
    direct_in = np.sqrt((x.grad.numpy().astype(np.float64) ** 2).sum(axis=(0, 2)))
    direct_out = np.sqrt((model.out.grad.numpy().astype(np.float64) ** 2).sum(axis=(0, 2)))
    np.testing.assert_allclose(monitor.time_grad_norms["rnn"]["input"][0], direct_in, rtol=1e-5)
    np.testing.assert_allclose(monitor.time_grad_norms["rnn"]["output"][0], direct_out, rtol=1e-5)
    assert direct_out[3] == 0 and direct_out[2] > 0  # only steps 2 and 6 feed the loss directly
    assert "Recurrent layers" in monitor.report()


def test_recurrent_vanishing_through_time_is_flagged(tmp_path):
    rnn_cls, _ = _recurrent()
    g = rg.Generator().manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn_cls(1, 8, generator=g)  # time-major
            self.head = nn.Linear(8, 2, generator=g)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out[-1])

    model = Net()
    monitor = GradientMonitor(model)
    F.cross_entropy(model(rg.randn(60, 4, 1, generator=g)), rg.tensor([0, 1, 0, 1])).backward()
    monitor.step()
    norms = monitor.time_grad_norms["rnn"]["input"][0]
    assert len(norms) == 60 and norms[0] < 1e-3 * norms[-1]
    assert "bptt_vanishing" in [f.kind for f in monitor.findings()]
    monitor.plot(tmp_path / "rnn.png")
    assert png_size(tmp_path / "rnn.png") == (1800, 380)  # a fourth panel: time steps


def test_callback_writes_report_stats_and_png_into_the_run_folder(tmp_path):
    g = rg.Generator().manual_seed(0)
    x = rg.randn(64, 3, generator=g)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(3, 8, generator=g), nn.ReLU(), nn.Linear(8, 2, generator=g))
    callback = GradientMonitorCallback(tmp_path / "run", every=2)
    trainer = Trainer(
        model, optim.SGD(model.parameters(), lr=0.1), F.cross_entropy, callbacks=[callback]
    )
    trainer.fit(DataLoader(TensorDataset(x, y), batch_size=16), epochs=2)
    assert callback.monitor.steps == [0, 2, 4, 6]  # 4 batches per epoch, one in 2
    report = (tmp_path / "run" / "gradient_report.md").read_text()
    assert report.startswith("# Gradient flow") and "4 recorded steps" in report
    stats = json.loads((tmp_path / "run" / "gradient_stats.json").read_text())
    assert stats["steps"] == [0, 2, 4, 6] and len(stats["losses"]) == 4
    assert png_size(tmp_path / "run" / "gradient_flow.png") == (1350, 380)
    assert all(not m._forward_hooks for m in model.modules())  # hooks taken off at the end
