"""Tensor: construction, dtypes, factories, conversion, Python protocol, RNG."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import retrograd as rg


def test_default_dtypes_follow_pytorch():
    assert rg.tensor([1.0, 2.0]).dtype == rg.float32
    assert rg.tensor([1, 2]).dtype == rg.int64
    assert rg.tensor([True]).dtype == rg.bool
    assert rg.tensor(np.array([1.0])).dtype == rg.float64  # NumPy arrays keep their dtype
    assert rg.tensor([1.0], dtype=rg.float64).dtype == rg.float64
    assert rg.zeros(2).dtype == rg.float32 and rg.arange(3).dtype == rg.int64
    assert rg.arange(0.0, 1.0, 0.5).dtype == rg.float32


def test_python_scalars_do_not_upcast_float32():
    x = rg.ones(3)
    for y in (x * 2.5, 2.5 * x, x + 1, x / 3, x - 0.1, x**2.0):
        assert y.dtype == rg.float32
    assert (rg.tensor([1, 2]) * 1.5).dtype == rg.float32
    assert (rg.tensor([1, 2]) + rg.ones(2)).dtype == rg.float32
    assert (rg.ones(2, dtype=rg.float64) + rg.ones(2)).dtype == rg.float64


def test_dtype_names_exported():
    for name in ("float16", "float32", "float64", "int32", "int64", "bool"):
        assert getattr(rg, name) == np.dtype(name if name != "bool" else "bool")


def test_attributes_and_conversions():
    x = rg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert x.shape == (2, 2) and x.ndim == 2 and x.dim() == 2 and x.numel() == 4
    assert x.device == "cpu" and x.is_leaf and x.grad is None and x.grad_fn is None
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert x.detach().numpy().sum() == 10.0
    assert x.sum().item() == 10.0
    assert len(x) == 2
    rows = list(rg.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert [r.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0]]
    assert x.double().dtype == rg.float64 and x.long().dtype == rg.int64
    assert x.to(rg.float64).dtype == rg.float64 and x.float().dtype == rg.float32
    assert x.astype("float64").dtype == rg.float64


def test_numpy_on_tensor_requiring_grad_raises_pytorch_message():
    with pytest.raises(RuntimeError, match=r"Use tensor.detach\(\).numpy\(\) instead"):
        rg.tensor([1.0], requires_grad=True).numpy()


def test_item_on_many_elements():
    with pytest.raises(
        RuntimeError, match="a Tensor with 2 elements cannot be converted to Scalar"
    ):
        rg.tensor([1.0, 2.0]).item()


def test_bool_of_many_elements_is_ambiguous():
    with pytest.raises(
        RuntimeError, match="Boolean value of Tensor with more than one value is ambiguous"
    ):
        bool(rg.tensor([1.0, 2.0]))
    assert bool(rg.tensor([1.0]))


def test_len_and_iter_of_0d():
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(rg.tensor(1.0))
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(rg.tensor(1.0))


def test_repr_like_pytorch():
    assert repr(rg.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(rg.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    r = repr(rg.tensor([1.0], requires_grad=True) * 2)
    assert r.startswith("tensor([2.], grad_fn=<MulBackward")
    assert "dtype=retrograd.float64" in repr(rg.tensor(np.array([1.0])))


def test_from_numpy_shares_memory_and_tensor_copies():
    a = np.zeros(3, dtype=np.float32)
    shared, copied = rg.from_numpy(a), rg.tensor(a)
    a[0] = 5
    assert shared[0].item() == 5 and copied[0].item() == 0


def test_factories():
    assert rg.ones(2, 3).tolist() == [[1.0] * 3] * 2
    assert rg.full((2,), 7.0).tolist() == [7.0, 7.0]
    assert rg.full((2,), 7).dtype == rg.int64
    assert rg.empty(2, 2).shape == (2, 2)
    assert rg.arange(1, 7, 2).tolist() == [1, 3, 5]
    assert np.allclose(rg.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5))
    assert rg.eye(3).numpy().trace() == 3
    x = rg.ones(2, 3, dtype=rg.float64)
    assert rg.zeros_like(x).dtype == rg.float64 and rg.ones_like(x).sum().item() == 6
    assert rg.full_like(x, 2.0).sum().item() == 12
    assert rg.rand_like(x).shape == (2, 3) and rg.randn_like(x).dtype == rg.float64
    assert rg.zeros((2, 3)).shape == (2, 3)
    with pytest.raises(RuntimeError, match="negative dimension"):
        rg.zeros(-1)


def test_random_factories_are_reproducible_with_a_generator_or_manual_seed():
    g1, g2 = rg.Generator().manual_seed(3), rg.Generator().manual_seed(3)
    for fn in (rg.rand, rg.randn):
        assert np.array_equal(fn(4, 2, generator=g1).numpy(), fn(4, 2, generator=g2).numpy())
    assert np.array_equal(
        rg.randint(0, 10, (5,), generator=g1).numpy(), rg.randint(0, 10, (5,), generator=g2).numpy()
    )
    rg.manual_seed(7)
    a = rg.randn(3)
    rg.manual_seed(7)
    assert np.array_equal(a.numpy(), rg.randn(3).numpy())
    n = rg.normal(2.0, 0.5, size=(1000,), generator=g1)
    assert abs(n.mean().item() - 2.0) < 0.1 and n.dtype == rg.float32
    assert rg.rand(3).dtype == rg.float32 and rg.randn(3, dtype=rg.float64).dtype == rg.float64
    u = rg.rand(1000, generator=g1).numpy()
    assert u.min() >= 0 and u.max() < 1


def test_generator_state_round_trip():
    g = rg.Generator().manual_seed(1)
    state = g.get_state()
    a = rg.randn(3, generator=g).numpy()
    g.set_state(state)
    assert np.array_equal(a, rg.randn(3, generator=g).numpy())


def test_operators_and_reflected_forms_match_torch():
    a = np.array([[1.5, -2.0], [3.0, 4.5]], dtype=np.float32)
    b = np.array([[0.5, 2.0], [-1.0, 2.5]], dtype=np.float32)
    x, y = rg.tensor(a), rg.tensor(b)
    tx, ty = torch.tensor(a), torch.tensor(b)
    pairs = [
        (x + y, tx + ty),
        (x - y, tx - ty),
        (x * y, tx * ty),
        (x / y, tx / ty),
        (x // y, tx // ty),
        (x % y, tx % ty),
        (x @ y, tx @ ty),
        (-x, -tx),
        (2 + x, 2 + tx),
        (2 - x, 2 - tx),
        (2 * x, 2 * tx),
        (2 / x, 2 / tx),
        (x < y, tx < ty),
        (x <= y, tx <= ty),
        (x > y, tx > ty),
        (x >= y, tx >= ty),
        (x == y, tx == ty),
        (x != y, tx != ty),
        (abs(x), abs(tx)),
        ((x > 0) & (y > 0), (tx > 0) & (ty > 0)),
        ((x > 0) | (y > 0), (tx > 0) | (ty > 0)),
        (~(x > 0), ~(tx > 0)),
        (a + y, torch.tensor(a) + ty),
    ]
    for ours, theirs in pairs:
        assert isinstance(ours, rg.Tensor)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_reflected_pow_and_matmul():
    x = rg.tensor([1.0, 2.0])
    np.testing.assert_allclose((2**x).numpy(), [2.0, 4.0])
    np.testing.assert_allclose((x**2).numpy(), [1.0, 4.0])
    np.testing.assert_allclose((np.ones(2, dtype=np.float32) @ x).item(), 3.0)


def test_in_place_forms():
    x = rg.tensor([1.0, 2.0])
    x += 1
    x *= 2
    x -= 1
    x /= 3
    np.testing.assert_allclose(x.numpy(), [1.0, 5.0 / 3.0])
    x.add_(1).mul_(3).zero_()
    assert x.tolist() == [0.0, 0.0]
    x.fill_(2.0)
    assert x.tolist() == [2.0, 2.0]
    x.copy_(rg.tensor([5.0, 6.0]))
    assert x.tolist() == [5.0, 6.0]
    x.clamp_(5.5, 10.0)
    assert x.tolist() == [5.5, 6.0]
    x[0] = 1.0
    assert x.tolist() == [1.0, 6.0]
    v = x._version_counter
    x.add_(1)
    assert x._version_counter == v + 1


def test_detach_and_requires_grad_():
    x = rg.tensor([1.0], requires_grad=True)
    y = (x * 2).detach()
    assert not y.requires_grad and y.is_leaf
    z = rg.tensor([1.0]).requires_grad_()
    assert z.requires_grad
    z.requires_grad = False
    assert not z.requires_grad


def test_default_dtype_can_change():
    rg.set_default_dtype(rg.float64)
    try:
        assert rg.tensor([1.0]).dtype == rg.float64 and rg.zeros(1).dtype == rg.float64
    finally:
        rg.set_default_dtype(rg.float32)
    assert rg.get_default_dtype() == rg.float32


def test_to_device_cpu_is_identity_and_cuda_needs_cupy():
    x = rg.tensor([1.0])
    assert x.to("cpu") is x and x.cpu() is x
    from retrograd import backend

    if not backend.cuda_available():
        with pytest.raises(RuntimeError, match="CuPy"):
            x.to("cuda")
