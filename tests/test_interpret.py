"""retrograd.interpret: saliency, gradient x input, SmoothGrad and integrated gradients against
direct computations, IG's completeness, seeded SmoothGrad, and the PNG grid."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import retrograd as rg
from retrograd import interpret, nn
from retrograd.interpret import (
    METHODS,
    gradient_x_input,
    integrated_gradients,
    saliency,
    saliency_grid,
    smoothgrad,
)


def png_size(path) -> tuple[int, int]:
    data = open(path, "rb").read(32)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _linear(seed=0, n_in=5, n_out=3):
    lin = nn.Linear(n_in, n_out, generator=rg.Generator().manual_seed(seed)).double()
    return lin, lin.weight.data.copy(), lin.bias.data.copy()


def _x(n=4, d=5, seed=1, dtype=rg.float64):
    return rg.randn(n, d, generator=rg.Generator().manual_seed(seed), dtype=dtype)


def test_saliency_of_a_linear_model_is_the_weight_row():
    model, w, b = _linear()
    x = _x()
    out = x.numpy() @ w.T + b
    pred = out.argmax(1)
    np.testing.assert_allclose(saliency(model, x).numpy(), np.abs(w[pred]))
    np.testing.assert_allclose(saliency(model, x, target=2).numpy(), np.abs(w[[2, 2, 2, 2]]))
    np.testing.assert_allclose(
        saliency(model, x, target=[0, 1, 2, 0], absolute=False).numpy(), w[[0, 1, 2, 0]]
    )
    np.testing.assert_allclose(
        gradient_x_input(model, x, target=1).numpy(), x.numpy() * w[1], rtol=1e-12
    )


def test_saliency_matches_backward_and_leaves_parameters_alone():
    g = rg.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8, generator=g), nn.Tanh(), nn.Linear(8, 3, generator=g))
    x = rg.randn(6, 4, generator=g)
    target = [0, 1, 2, 2, 1, 0]
    maps = saliency(model, x, target=target, absolute=False)
    assert all(p.grad is None for p in model.parameters())
    assert not x.requires_grad
    xr = x.detach().requires_grad_(True)
    out = model(xr)
    out[np.arange(6), target].sum().backward()
    np.testing.assert_allclose(maps.numpy(), xr.grad.numpy(), rtol=1e-6)


def test_target_errors():
    model, _, _ = _linear()
    with pytest.raises(ValueError, match="3 entries for a batch of 4"):
        saliency(model, _x(), target=[0, 1, 2])
    with pytest.raises(IndexError, match="out of range"):
        saliency(model, _x(), target=7)
    with pytest.raises(TypeError, match="floating-point"):
        saliency(model, rg.tensor([[1, 2, 3, 4, 5]]))


def _check_completeness(model, x, attr, delta, baseline=None, tol=0.01):
    with rg.no_grad():
        out = model(x).numpy()
        base = model(rg.zeros_like(x) if baseline is None else baseline).numpy()
    idx = out.argmax(1)
    rows = np.arange(len(idx))
    diff = out[rows, idx] - base[rows, idx]
    sums = attr.numpy().reshape(len(idx), -1).sum(axis=1)
    np.testing.assert_allclose(delta.numpy(), sums - diff, atol=1e-5)
    assert np.all(np.abs(sums - diff) <= tol * np.abs(diff)), (sums, diff)


def test_integrated_gradients_completeness_smooth_model():
    g = rg.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 16, generator=g), nn.Tanh(), nn.Linear(16, 4, generator=g)
    ).double()
    x = rg.randn(5, 6, generator=g, dtype=rg.float64) * 2
    attr, delta = integrated_gradients(model, x, steps=64)
    assert attr.shape == x.shape
    _check_completeness(model, x, attr, delta, tol=1e-3)
    # a baseline other than zeros
    baseline = rg.full((5, 6), 0.3, dtype=rg.float64)
    attr, delta = integrated_gradients(model, x, baseline=baseline, steps=64)
    _check_completeness(model, x, attr, delta, baseline=baseline, tol=1e-3)


def test_integrated_gradients_completeness_relu_cnn_within_one_percent():
    g = rg.Generator().manual_seed(2)
    model = interpret.digits_cnn(g)
    model.eval()
    x = rg.rand(6, 1, 8, 8, generator=g)
    attr, delta = integrated_gradients(model, x, steps=300)
    _check_completeness(model, x, attr, delta, tol=0.01)


def test_integrated_gradients_of_a_linear_model_is_exact():
    model, w, _ = _linear()
    x = _x()
    attr, delta = integrated_gradients(model, x, target=1, steps=1)
    np.testing.assert_allclose(attr.numpy(), x.numpy() * w[1], rtol=1e-12)
    assert np.all(np.abs(delta.numpy()) < 1e-12)


def test_smoothgrad_is_deterministic_with_a_seeded_generator():
    g = rg.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8, generator=g), nn.ReLU(), nn.Linear(8, 3, generator=g))
    x = _x(dtype=rg.float32)
    a = smoothgrad(model, x, n_samples=10, generator=rg.Generator().manual_seed(7))
    b = smoothgrad(model, x, n_samples=10, generator=rg.Generator().manual_seed(7))
    c = smoothgrad(model, x, n_samples=10, generator=rg.Generator().manual_seed(8))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())
    assert a.shape == x.shape and a.dtype == x.dtype


def test_smoothgrad_is_the_mean_saliency_of_the_noisy_copies():
    g = rg.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8, generator=g), nn.Tanh(), nn.Linear(8, 3, generator=g))
    model = model.double()
    x = _x()
    n, noise = 4, 0.2
    maps = smoothgrad(
        model, x, target=1, n_samples=n, noise=noise, generator=rg.Generator().manual_seed(3)
    )
    eps = rg.randn(n * 4, 5, generator=rg.Generator().manual_seed(3), dtype=rg.float64).numpy()
    spread = x.numpy().max(axis=1, keepdims=True) - x.numpy().min(axis=1, keepdims=True)
    expected = np.zeros((4, 5))
    for k in range(n):
        noisy = rg.tensor(x.numpy() + eps[k * 4 : (k + 1) * 4] * noise * spread)
        expected += saliency(model, noisy, target=1).numpy() / n
    np.testing.assert_allclose(maps.numpy(), expected, rtol=1e-10)
    # without noise it is the plain saliency
    plain = smoothgrad(model, x, target=1, n_samples=3, noise=0.0)
    np.testing.assert_allclose(plain.numpy(), saliency(model, x, target=1).numpy(), rtol=1e-12)


def test_saliency_grid_png_size(tmp_path):
    g = rg.Generator().manual_seed(0)
    model = interpret.digits_cnn(g)
    model.eval()
    x = rg.rand(5, 1, 8, 8, generator=g)
    path = tmp_path / "grid.png"
    saliency_grid(model, x, [0, 1, 2, 3, 4], path, methods=("saliency", "smoothgrad"), ncols=4)
    # 4 columns x 1.2 in; 2 groups x (image + 2 maps) rows x 1.3 in; 100 dpi
    assert png_size(path) == (480, 780)
    flat = nn.Sequential(nn.Linear(16, 3, generator=g))
    saliency_grid(flat, rg.rand(3, 16, generator=g), None, tmp_path / "flat.png", methods=METHODS)
    assert png_size(tmp_path / "flat.png") == (360, 650)
    with pytest.raises(ValueError, match="unknown method"):
        saliency_grid(flat, rg.rand(3, 16), None, tmp_path / "x.png", methods=("lime",))


def test_digits_saliency_trains_saves_and_loads(tmp_path):
    pytest.importorskip("sklearn")
    ckpt = tmp_path / "cnn.safetensors"
    path = tmp_path / "digits.png"
    first = interpret.digits_saliency(path, n=10, epochs=2, checkpoint=ckpt)
    assert first.trained and ckpt.exists() and first.accuracy > 0.5
    assert png_size(path) == (1200, 650)  # 10 columns; image + 4 methods
    again = interpret.train_digits_cnn(checkpoint=ckpt)
    assert not again.trained and again.accuracy == first.accuracy
