"""The vanishing-gradient demonstration: the expected ordering, the text table, the figure, and
backprop through time (vanilla RNN vs LSTM), skipped gracefully without recurrent layers."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import retrograd as rg
from retrograd.diagnostics import vanishing


def png_size(path) -> tuple[int, int]:
    data = open(path, "rb").read(32)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def small():
    return vanishing.run(depth=8, width=16, steps=4, n_samples=128, bptt=False)


@pytest.mark.parametrize("depth", [8, 20])
def test_sigmoid_naive_first_layer_gradient_is_orders_of_magnitude_below_residual(depth):
    result = vanishing.run(depth=depth, width=16, steps=2, n_samples=128, bptt=False)
    first = {name: c.grad_norms_first[0] for name, c in result.configs.items()}
    mean = {name: c.grad_norms_mean[0] for name, c in result.configs.items()}
    assert first["sigmoid-naive"] * 100 <= first["residual"]
    assert mean["sigmoid-naive"] * 100 <= mean["residual"]
    # He initialisation alone already lifts layer 1 out of the vanishing regime
    assert first["sigmoid-naive"] * 100 <= first["relu-he"]
    # in the sigmoid network the gradient shrinks from the last layer to the first
    naive = result.configs["sigmoid-naive"].grad_norms_first
    assert naive[0] < 1e-3 * naive[-1]


def test_result_shapes_and_same_budget(small):
    assert list(small.configs) == list(vanishing.CONFIGS)
    for c in small.configs.values():
        assert len(c.grad_norms_first) == len(c.grad_norms_mean) == 8
        assert len(c.losses) == 4
        assert all(np.isfinite(c.losses))
        assert 0.0 <= c.accuracy <= 1.0
    assert small.bptt is None


def test_same_seed_same_numbers():
    a = vanishing.run(depth=4, width=8, steps=2, n_samples=64, bptt=False, configs=["relu-he"])
    b = vanishing.run(depth=4, width=8, steps=2, n_samples=64, bptt=False, configs=["relu-he"])
    assert a.configs["relu-he"].grad_norms_first == b.configs["relu-he"].grad_norms_first
    assert a.configs["relu-he"].losses == b.configs["relu-he"].losses


def test_residual_blocks_skip_and_naive_init_is_uniform():
    g = rg.Generator().manual_seed(0)
    net = vanishing.build("residual", 4, 8, 2, 2, g)
    assert [b.residual for b in net.blocks] == [False, True, True, True]
    assert net.final_norm is not None
    naive = vanishing.build("sigmoid-naive", 4, 8, 2, 2, g)
    w = naive.blocks[1].linear.weight.data
    assert np.abs(w).max() <= 1 / np.sqrt(8) and np.all(naive.blocks[1].linear.bias.data == 0)
    with pytest.raises(ValueError, match="unknown configuration"):
        vanishing.build("tanh-magic", 4, 8, 2, 2, g)


def test_table_and_figure(small, tmp_path):
    table = small.table()
    for name in vanishing.CONFIGS:
        assert name in table
    assert "1/last" in table
    path = tmp_path / "vanishing.png"
    small.plot(path)
    assert png_size(path) == (1000, 400)  # two panels of 5 x 4 inches at 100 dpi


def _has_lstm() -> bool:
    return vanishing._recurrent_classes() is not None


@pytest.mark.skipif(not _has_lstm(), reason="retrograd.nn.LSTM is not available")
def test_bptt_rnn_gradient_fades_faster_than_lstm(tmp_path):
    result = vanishing.run(
        depth=4, width=8, steps=2, n_samples=64, seq_len=12, bptt_steps=2, configs=["relu-he"]
    )
    b = result.bptt
    assert b is not None and result.note == ""
    rnn, lstm = np.array(b.norms_first["RNN"]), np.array(b.norms_first["LSTM"])
    assert len(rnn) == len(lstm) == 12
    assert rnn[0] / rnn[-1] < lstm[0] / lstm[-1]
    assert rnn[0] < 1e-2 * rnn[-1]  # vanilla RNN: the gradient fades back through time
    assert "Backpropagation through time" in result.table()
    result.plot(tmp_path / "both.png")
    assert png_size(tmp_path / "both.png") == (1500, 400)


def test_bptt_skipped_gracefully_without_recurrent_layers(monkeypatch, tmp_path):
    monkeypatch.setattr(vanishing, "_recurrent_classes", lambda: None)
    result = vanishing.run(depth=3, width=8, steps=1, n_samples=32, configs=["relu-he"])
    assert result.bptt is None
    assert "skipped" in result.note and "skipped" in result.table()
    result.plot(tmp_path / "no_bptt.png")
    assert png_size(tmp_path / "no_bptt.png") == (1000, 400)
