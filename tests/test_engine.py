"""The engine: graph shapes, accumulation, retain_graph, hooks, grad modes, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd.autograd.function import _FREED


def f64(*values, requires_grad=True):
    return rg.tensor(np.array(values, dtype=np.float64), requires_grad=requires_grad)


# -- graph shapes --------------------------------------------------------------------------------
def test_diamond_graph_sums_both_paths():
    x = f64(1.5, -2.0)
    y = x * 3
    z = (y * y + y * 2).sum()  # dz/dx = (2y + 2) * 3
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), (2 * 3 * x.data + 2) * 3)


def test_repeated_input_gets_both_gradients():
    x = f64(2.0, 3.0)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.data)


def test_repeated_input_add_does_not_alias():
    x = f64(2.0, 3.0)
    (x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_ten_thousand_op_chain():
    x = f64(1.0)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001**10_000], rtol=1e-9)


def test_deep_chain_create_graph():
    x = f64(0.5)
    y = x
    for _ in range(2_000):
        y = y + x * 0.001
    (g,) = rg.autograd.grad(y.sum(), x, create_graph=True)
    np.testing.assert_allclose(g.data, [1 + 2_000 * 0.001])


def test_gradients_accumulate_across_backward_calls():
    x = f64(1.0, 2.0)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 5.0])


def test_accumulation_is_in_place_on_the_same_grad_array():
    x = f64(1.0, 2.0)
    (x * 2).sum().backward()
    first = x.grad.data
    (x * 2).sum().backward()
    assert x.grad.data is first


def test_leaf_and_non_leaf():
    x = f64(1.0)
    y = x * 2
    assert x.is_leaf and not y.is_leaf
    assert y.requires_grad and y.grad_fn is not None
    y.sum().backward()
    assert y.grad is None
    c = rg.tensor([1.0])
    assert c.is_leaf and not (c * 2).requires_grad


def test_retain_grad_on_non_leaf():
    x = f64(1.0, 2.0)
    y = x * 3
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), 2 * y.data)
    assert y.retains_grad


def test_saved_arrays_are_freed_after_backward_unless_retained():
    x = f64(1.0, 2.0)
    y = x * x
    z = (y * x).sum()
    z.backward()
    assert y.grad_fn._saved is _FREED
    y2 = x * x
    (y2 * x).sum().backward(retain_graph=True)
    assert y2.grad_fn._saved is not _FREED


def test_backward_twice_raises_pytorch_message():
    x = f64(1.0, 2.0)
    z = (x * x).sum()
    z.backward()
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        z.backward()


def test_retain_graph_allows_second_backward():
    x = f64(1.0, 2.0)
    z = (x * x).sum()
    z.backward(retain_graph=True)
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.data)


def test_backward_with_explicit_gradient_and_inputs():
    x = f64(1.0, 2.0)
    w = f64(3.0, 4.0)
    y = x * w
    y.backward(rg.tensor(np.array([1.0, 10.0])), inputs=[x])
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 40.0])
    assert w.grad is None


def test_autograd_grad_does_not_touch_dot_grad():
    x = f64(1.0, 2.0)
    (g,) = rg.autograd.grad((x * x).sum(), x)
    np.testing.assert_allclose(g.numpy(), [2.0, 4.0])
    assert x.grad is None


def test_grad_wrt_non_leaf():
    x = f64(1.0, 2.0)
    y = x * 2
    z = (y * y).sum()
    (gy,) = rg.autograd.grad(z, y)
    np.testing.assert_allclose(gy.numpy(), 2 * y.data)


def test_higher_order_grad_of_grad_of_grad():
    x = f64(2.0)
    y = x * x * x
    (g1,) = rg.autograd.grad(y.sum(), x, create_graph=True)
    (g2,) = rg.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = rg.autograd.grad(g2.sum(), x)
    np.testing.assert_allclose([g1.item(), g2.item(), g3.item()], [12.0, 12.0, 6.0])


def test_backward_create_graph_grad_is_differentiable():
    x = f64(3.0)
    (x * x * x).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (g2,) = rg.autograd.grad(x.grad.sum(), x)
    np.testing.assert_allclose(g2.item(), 18.0)


def test_matches_torch_on_a_small_mlp():
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((5, 3))
    w1, b1 = rng.standard_normal((3, 4)), rng.standard_normal(4)
    w2 = rng.standard_normal((4, 1))
    ours = [rg.tensor(a, requires_grad=True) for a in (w1, b1, w2)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (w1, b1, w2)]
    loss = (rg.sigmoid(rg.tensor(xs) @ ours[0] + ours[1]) @ ours[2]).mean()
    tloss = (torch.sigmoid(torch.tensor(xs) @ theirs[0] + theirs[1]) @ theirs[2]).mean()
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


# -- hooks -----------------------------------------------------------------------------------------
def test_tensor_hooks_run_in_registration_order_and_can_replace_grad():
    calls = []
    x = f64(1.0, 2.0)
    y = x * 2
    y.register_hook(lambda g: calls.append("first"))
    y.register_hook(lambda g: (calls.append("second"), g * 10)[1])
    y.sum().backward()
    assert calls == ["first", "second"]
    np.testing.assert_allclose(x.grad.numpy(), [20.0, 20.0])


def test_leaf_hook_sees_total_gradient_and_can_be_removed():
    seen = []
    x = f64(1.0)
    handle = x.register_hook(lambda g: seen.append(g.item()))
    (x * 2 + x * 3).sum().backward()
    assert seen == [5.0]
    handle.remove()
    (x * 2).sum().backward()
    assert seen == [5.0]


def test_hook_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        rg.tensor([1.0]).register_hook(lambda g: g)


# -- grad modes ------------------------------------------------------------------------------------
def test_no_grad_and_enable_grad_nest():
    x = f64(1.0)
    with rg.no_grad():
        assert not (x * 2).requires_grad
        with rg.enable_grad():
            assert (x * 2).requires_grad
    assert (x * 2).requires_grad


def test_grad_modes_as_decorators():
    x = f64(1.0)

    @rg.no_grad()
    def f(t):
        return t * 2

    @rg.no_grad
    def g(t):
        return t * 2

    @rg.inference_mode()
    def h(t):
        return t * 2

    assert not f(x).requires_grad and not g(x).requires_grad and not h(x).requires_grad
    assert rg.is_grad_enabled()


def test_set_grad_enabled_function_and_context():
    x = f64(1.0)
    with rg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    rg.set_grad_enabled(False)
    try:
        assert not rg.is_grad_enabled()
    finally:
        rg.set_grad_enabled(True)


def test_inference_mode_flag():
    with rg.inference_mode():
        assert rg.is_inference_mode_enabled() and not rg.is_grad_enabled()
    assert not rg.is_inference_mode_enabled()


def test_grad_mode_is_thread_local():
    seen = {}

    def worker():
        seen["enabled"] = rg.is_grad_enabled()

    with rg.no_grad():
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert seen["enabled"] is True


def test_two_threads_train_like_sequential():
    def run(seed, out):
        rng = np.random.default_rng(seed)
        w = rg.tensor(rng.standard_normal((4, 1)), requires_grad=True)
        x = rg.tensor(rng.standard_normal((8, 4)))
        for _ in range(50):
            loss = ((x @ w) * (x @ w)).mean()
            w.grad = None
            loss.backward()
            with rg.no_grad():
                w -= w.grad * 0.1
        out[seed] = w.data.copy()

    seq, par = {}, {}
    run(1, seq)
    run(2, seq)
    threads = [threading.Thread(target=run, args=(s, par)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in (1, 2):
        np.testing.assert_array_equal(seq[s], par[s])


# -- errors (PyTorch's wording) --------------------------------------------------------------------
def test_non_scalar_backward_without_gradient():
    with pytest.raises(
        RuntimeError, match="grad can be implicitly created only for scalar outputs"
    ):
        (f64(1.0, 2.0) * 2).backward()


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad"):
        rg.tensor([1.0]).sum().backward()


def test_unused_input_requires_allow_unused():
    x, y = f64(1.0), f64(2.0)
    with pytest.raises(RuntimeError, match="at index 1 appears to not have been used in the graph"):
        rg.autograd.grad((x * 2).sum(), [x, y])
    gx, gy = rg.autograd.grad((x * 2).sum(), [x, y], allow_unused=True)
    assert gy is None and gx.item() == 2.0
    gx, gy = rg.autograd.grad((x * 2).sum(), [x, y], materialize_grads=True)
    assert gy.item() == 0.0


def test_grad_wrt_tensor_without_grad():
    with pytest.raises(
        RuntimeError, match="One of the differentiated Tensors does not require grad"
    ):
        rg.autograd.grad((f64(1.0) * 2).sum(), rg.tensor([1.0]))


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(
        RuntimeError, match="only Tensors of floating point dtype can require gradients"
    ):
        rg.tensor([1, 2], requires_grad=True)


def test_grad_output_shape_mismatch():
    x = f64(1.0, 2.0)
    with pytest.raises(RuntimeError, match=r"Mismatch in shape: grad_output\[0\] has a shape of"):
        rg.autograd.grad(x * 2, x, grad_outputs=rg.tensor(np.ones(3)))


def test_broadcast_error_names_both_sizes():
    with pytest.raises(
        RuntimeError, match=r"The size of tensor a \(3\) must match the size of tensor b \(4\)"
    ):
        rg.ones(3) + rg.ones(4)


def test_matmul_error_names_both_shapes():
    with pytest.raises(
        RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"
    ):
        rg.ones(2, 3) @ rg.ones(4, 5)


def test_bad_dim():
    with pytest.raises(
        IndexError,
        match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)",
    ):
        rg.ones(2, 3).sum(2)


def test_requires_grad_on_non_leaf_cannot_be_cleared():
    y = f64(1.0) * 2
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf"):
        y.requires_grad_(False)


def test_in_place_on_leaf_requiring_grad():
    x = f64(1.0)
    with pytest.raises(
        RuntimeError,
        match="a leaf Variable that requires grad is being used in an in-place operation",
    ):
        x += 1
    with rg.no_grad():
        x += 1
    assert x.item() == 2.0


def test_in_place_on_saved_tensor_raises_version_error():
    x = f64(1.0, 2.0)
    y = x * 1
    z = y * y
    y.add_(1)
    with pytest.raises(RuntimeError, match="is at version 1; expected version 0 instead"):
        z.sum().backward()


def test_in_place_on_non_saved_tensor_is_fine():
    x = f64(1.0, 2.0)
    y = x * 2
    y.add_(1)
    (y * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])


# -- custom gradients flow through the same engine -------------------------------------------------
def test_custom_function_minimal():
    class Cube(rg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x * x

    x = f64(2.0)
    y = Cube.apply(x)
    assert y.grad_fn is not None
    y.sum().backward()
    assert x.grad.item() == 12.0


# -- backward(inputs=...) runs an input's own node as PyTorch runs the last node of its op -------
@pytest.mark.parametrize(
    "xshape, yshape",
    [
        ((2,), (2,)),
        ((3, 2), (2,)),
        ((3, 2), (2, 3)),
        ((2,), (2, 3)),
        ((2,), (2, 2, 3)),
        ((2, 3, 2), (2,)),
        ((2, 3, 2), (2, 4)),
        ((2, 3, 2), (2, 2, 3)),
    ],
)
def test_backward_inputs_own_node_of_matmul_frees_as_pytorch(xshape, yshape):
    # y = c @ leaf, then y.backward(inputs=[y]) without retain_graph: PyTorch runs only y's own
    # node, MmBackward (dot, mv, mm: its saved tensors are freed and a second backward raises)
    # or, for the other ranks, the squeeze/_unsafe_view after the product (nothing is freed)
    rng = np.random.default_rng(0)
    c, leaf = rng.standard_normal(xshape), rng.standard_normal(yshape)
    results = []
    for lib in (torch, rg):
        x = lib.tensor(c, dtype=lib.float64)
        w = lib.tensor(leaf, dtype=lib.float64, requires_grad=True)
        y = x @ w
        y.backward(lib.ones(y.shape, dtype=lib.float64), inputs=[y])
        np.testing.assert_array_equal(y.grad.numpy(), np.ones(y.shape))
        try:
            y.sum().backward()
        except RuntimeError as e:
            assert "backward through the graph a second time" in str(e)
            results.append(None)
        else:
            results.append(w.grad.numpy())
    if results[0] is None:
        assert results[1] is None, "PyTorch raised on the second backward; retrograd did not"
    else:
        assert results[1] is not None, "retrograd raised on the second backward; PyTorch did not"
        np.testing.assert_allclose(results[1], results[0], rtol=1e-12)
    single_node = (len(xshape), len(yshape)) in ((1, 1), (2, 1), (2, 2))  # dot, mv, mm
    assert (results[0] is None) == single_node


def test_backward_inputs_own_node_of_bmm_is_freed():
    # torch.bmm is one node (BmmBackward0), unlike matmul of the same ranks
    x = rg.tensor(np.ones((2, 2, 3)))
    w = rg.tensor(np.ones((2, 3, 3)), requires_grad=True)
    y = rg.bmm(x, w)
    y.backward(rg.ones(y.shape, dtype=rg.float64), inputs=[y])
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()
