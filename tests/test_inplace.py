"""In-place ops: version counters, PyTorch's errors, gradients through writes (setitem, add_,
mul_, fill_, copy_, zero_)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import retrograd as rg

LEAF = "a leaf Variable that requires grad is being used in an in-place operation."
VIEW_OF_LEAF = (
    "a view of a leaf Variable that requires grad is being used in an in-place operation."
)
MODIFIED = (
    "one of the variables needed for gradient computation has been modified by an inplace "
    "operation: "
)


def _pair(a, requires_grad=True):
    """The same float64 values as a retrograd and a torch leaf."""
    a = np.asarray(a, dtype=np.float64)
    return (
        rg.tensor(a.copy(), dtype=rg.float64, requires_grad=requires_grad),
        torch.tensor(a.copy(), requires_grad=requires_grad),
    )


def _close(t, ref):
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    got = t.data if isinstance(t, rg.Tensor) else np.asarray(t)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def _values(shape, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, size=shape)


# -- leaves ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "write",
    [
        lambda x: x.add_(1),
        lambda x: x.mul_(2),
        lambda x: x.__iadd__(1),
        lambda x: x.zero_(),
        lambda x: x.fill_(3.0),
        lambda x: x.copy_(rg.ones(3, dtype=rg.float64)),
        lambda x: x.uniform_(),
        lambda x: x.normal_(),
        lambda x: x.__setitem__(0, 5.0),
        lambda x: x.masked_fill_(rg.tensor([True, False, True]), 0.0),
    ],
)
def test_in_place_on_leaf_requiring_grad_raises(write):
    x = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="^" + LEAF + "$"):
        write(x)
    np.testing.assert_array_equal(x.data, [1.0, 2.0, 3.0])  # nothing was written
    assert x._version_counter == 0


def test_in_place_on_a_view_of_a_leaf_raises():
    w = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="^" + VIEW_OF_LEAF + "$"):
        w[0].mul_(2)
    with pytest.raises(RuntimeError, match="^" + VIEW_OF_LEAF + "$"):
        w.reshape(3, 1)[1:].zero_()
    tw = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="^" + VIEW_OF_LEAF + "$"):
        tw[0].mul_(2)


def test_in_place_under_no_grad_on_leaf_is_allowed():
    x = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    with rg.no_grad():
        x.sub_(0.5 * x.grad)  # an optimizer step
        x[0] = 10.0
        x.mul_(2)
    np.testing.assert_allclose(x.data, [20.0, 0.0, 0.0])
    assert x.is_leaf and x.requires_grad and x.grad_fn is None
    assert x._version_counter == 3
    with rg.no_grad():
        x.zero_()
        x.fill_(1.0)
        x.copy_(rg.tensor([4.0, 5.0, 6.0]))
        x.uniform_(0, 1)
    assert x._version_counter == 7 and x.is_leaf and x.requires_grad


# -- versions -------------------------------------------------------------------------------------
def test_modifying_a_saved_tensor_raises_with_versions():
    x = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = x * 2
    c = b * b  # saves b
    b.add_(1)
    with pytest.raises(RuntimeError) as err:
        c.sum().backward()
    msg = str(err.value)
    assert msg.startswith(MODIFIED)
    assert "is at version 1; expected version 0 instead" in msg

    tx = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    tb = tx * 2
    tc = tb * tb
    tb.add_(1)
    with pytest.raises(RuntimeError) as terr:
        tc.sum().backward()
    assert str(terr.value).startswith(MODIFIED)
    assert "is at version 1; expected version 0 instead" in str(terr.value)


def test_versions_count_writes_and_views_share_them():
    x = rg.zeros(2, 3)
    assert x._version_counter == 0
    x.add_(1)
    x[0] = 2.0
    x.fill_(0.5)
    assert x._version_counter == 3
    v = x[1]
    v.mul_(3)  # writes through the view into x, and counts on x's counter
    np.testing.assert_allclose(x.data, [[0.5] * 3, [1.5] * 3])
    assert x._version_counter == 4 and v._version_counter == 4


def test_add_in_place_on_non_leaf():
    x, tx = _pair([1.0, -2.0, 3.0])
    y, ty = x * 2, tx * 2
    y.add_(1)
    ty.add_(1)
    y.sum().backward()
    ty.sum().backward()
    _close(y, ty)
    _close(x.grad, tx.grad)
    assert x._version_counter == 0 and y._version_counter == 1


def test_in_place_after_op_that_saved_its_output_raises():
    x = rg.tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()  # exp saves its output
    y.mul_(2)
    with pytest.raises(RuntimeError, match="^" + MODIFIED):
        y.sum().backward()


def test_in_place_after_op_that_saved_its_input_raises():
    x = rg.tensor([0.5, 1.0], requires_grad=True)
    y = x * 1
    z = y.sin()  # saves y
    y.add_(1)
    with pytest.raises(RuntimeError, match="is at version 1; expected version 0 instead"):
        z.sum().backward()


@pytest.mark.parametrize("a_requires_grad", [True, False])
def test_mul_in_place_snapshots_the_old_value(a_requires_grad):
    a0 = _values((3,), 1)
    x, tx = _pair(a0, requires_grad=a_requires_grad)
    b, tb = _pair(_values((3,), 2))
    a, ta = (x * 1, tx * 1) if a_requires_grad else (x, tx)
    a.mul_(b)
    ta.mul_(tb)
    a.mul_(b)  # twice: the second rule needs the value written by the first
    ta.mul_(tb)
    (a * a).sum().backward()
    (ta * ta).sum().backward()
    _close(a, ta)
    _close(b.grad, tb.grad)
    if a_requires_grad:
        _close(x.grad, tx.grad)
    else:
        assert x.grad is None and not x.is_leaf  # x now holds the product: a graph node


def test_in_place_with_create_graph():
    x, tx = _pair([0.5, -1.5, 2.0])
    y, ty = x * 1, tx * 1
    y.mul_(x)
    ty.mul_(tx)
    y[1] = x[0] ** 3
    ty[1] = tx[0] ** 3
    (g,) = rg.autograd.grad(y.sum(), [x], create_graph=True)
    (tg,) = torch.autograd.grad(ty.sum(), [tx], create_graph=True)
    _close(g, tg)
    (gg,) = rg.autograd.grad((g * g).sum(), [x])
    (tgg,) = torch.autograd.grad((tg * tg).sum(), [tx])
    _close(gg, tgg)


def test_int_in_place_rejects_float_result():
    x = rg.zeros(3, dtype=rg.int64)
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output"):
        x += 1.5
    tx = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output"):
        tx += 1.5


def test_write_into_broadcast_view_raises():
    x = rg.zeros(1).expand(3)
    with pytest.raises(RuntimeError, match="^unsupported operation: more than one element"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="^unsupported operation: more than one element"):
        torch.zeros(1).expand(3).add_(1)
    x[0] = 1.0  # the written region, one element, has no overlap: PyTorch writes
    tx = torch.zeros(1).expand(3)
    tx[0] = 1.0
    assert x.tolist() == tx.tolist() == [1.0, 1.0, 1.0]
    x.zero_()  # every element gets one value: PyTorch writes
    tx.zero_()
    assert x.tolist() == tx.tolist() == [0.0, 0.0, 0.0]


def test_masked_fill_in_place_matches_torch():
    x, tx = _pair(_values((3, 4), 3))
    mask = np.random.default_rng(4).random((3, 1)) < 0.5
    y, ty = x * 3, tx * 3
    y.masked_fill_(rg.tensor(mask), -1.0)
    ty.masked_fill_(torch.tensor(mask), -1.0)
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    _close(y, ty)
    _close(x.grad, tx.grad)


# -- setitem --------------------------------------------------------------------------------------
def _mask():
    return _values((3, 4), 5) > 0


SETITEM_CASES = [
    ((1,), 0.0, "int, scalar"),
    ((slice(0, 2), 3), "v[2]", "slice and int, tensor"),
    ((slice(None), slice(1, 3)), "v[3, 1]", "broadcast tensor"),
    ((0,), "v[1, 4]", "value with a leading 1-dim"),
    (("mask",), 0.0, "x[mask] = 0"),
    (("mask",), "v[1]", "x[mask] = 0-d-like tensor"),
    ((np.array([2, 0]),), "v[4]", "int array rows"),
    ((np.array([-1, 0]), np.array([1, 3])), "v[2]", "negative int arrays"),
    ((Ellipsis,), "v[]", "everything"),
    ((None, 1, None), "v[1, 4]", "None"),
]


def _value(spec, seed):
    if not isinstance(spec, str):
        return spec, spec
    shape = tuple(int(s) for s in spec[2:-1].split(",") if s.strip())
    return _pair(_values(shape, seed))


@pytest.mark.parametrize("index,value,desc", SETITEM_CASES, ids=[c[2] for c in SETITEM_CASES])
def test_setitem_on_non_leaf_matches_torch(index, value, desc):
    x, tx = _pair(_values((3, 4), 6))
    v, tv = _value(value, 7)
    index = tuple(_mask() if isinstance(i, str) else i for i in index)
    tindex = tuple(torch.from_numpy(i) if isinstance(i, np.ndarray) else i for i in index)
    y, ty = x * 2, tx * 2
    y[index] = v
    ty[tindex] = tv
    w = _values((3, 4), 8)
    (y * y * rg.tensor(w)).sum().backward()
    (ty * ty * torch.tensor(w)).sum().backward()
    _close(y, ty)
    _close(x.grad, tx.grad)
    if isinstance(v, rg.Tensor):
        _close(v.grad, tv.grad)
    assert y._version_counter == 1


def test_setitem_into_buffer_without_grad_records_value():
    w, tw = _pair(_values((4,), 9))
    buf, tbuf = rg.zeros(3, 4, dtype=rg.float64), torch.zeros(3, 4, dtype=torch.float64)
    buf[1] = w * 2
    tbuf[1] = tw * 2
    buf[2, 1:3] = w[:2]
    tbuf[2, 1:3] = tw[:2]
    assert buf.requires_grad and not buf.is_leaf
    (buf.sum(1) ** 2).sum().backward()
    (tbuf.sum(1) ** 2).sum().backward()
    _close(buf, tbuf)
    _close(w.grad, tw.grad)


def test_setitem_without_grad_writes_directly():
    x = rg.zeros(3, 4)
    x[1] = 2.0
    x[:, 0] = rg.tensor([1.0, 2.0, 3.0])
    x[x > 2.5] = -1.0
    x[[0, 2], [3, 3]] = np.array([7.0, 8.0])
    tx = torch.zeros(3, 4)
    tx[1] = 2.0
    tx[:, 0] = torch.tensor([1.0, 2.0, 3.0])
    tx[tx > 2.5] = -1.0
    tx[[0, 2], [3, 3]] = torch.tensor([7.0, 8.0])
    _close(x, tx)
    assert x.grad_fn is None and not x.requires_grad and x._version_counter == 4


def test_setitem_casts_to_the_tensors_dtype():
    x = rg.zeros(3, dtype=rg.int64)
    x[0] = 2.7
    assert x.dtype == rg.int64 and x.tolist() == [2, 0, 0]
    y = rg.zeros(3)
    v = rg.tensor(2.0, dtype=rg.float64, requires_grad=True)
    y[1] = v
    assert y.dtype == rg.float32
    y.sum().backward()
    assert v.grad.dtype == rg.float64 and v.grad.item() == 1.0


def test_setitem_shape_mismatch():
    x = rg.zeros(3, 4)
    with pytest.raises(RuntimeError, match=r"shape mismatch: value tensor of shape \[3\]"):
        x[0:2] = rg.ones(3)


# -- fill_, zero_, copy_ ---------------------------------------------------------------------------
def test_fill_and_zero_on_non_leaf_match_torch():
    x, tx = _pair(_values((2, 3), 10))
    y, ty = x * 2, tx * 2
    y.fill_(1.5)
    ty.fill_(1.5)
    z, tz = x * 3, tx * 3
    z.zero_()
    tz.zero_()
    assert y.requires_grad and y.grad_fn is not None
    (y * x + z * x).sum().backward()
    (ty * tx + tz * tx).sum().backward()
    _close(y, ty)
    _close(z, tz)
    _close(x.grad, tx.grad)  # the old values get no gradient


def test_fill_with_a_tensor_value_gets_its_gradient():
    v, tv = _pair(2.5)
    x, tx = rg.zeros(2, 3, dtype=rg.float64), torch.zeros(2, 3, dtype=torch.float64)
    x.fill_(v)
    tx.fill_(tv)
    (x * rg.tensor(_values((2, 3), 11))).sum().backward()
    (tx * torch.tensor(_values((2, 3), 11))).sum().backward()
    _close(x, tx)
    _close(v.grad, tv.grad)
    with pytest.raises(RuntimeError, match="fill_ only supports 0-dimension value tensor"):
        x.fill_(rg.ones(1))


@pytest.mark.parametrize(
    "src",
    [
        np.arange(12.0).reshape(3, 4),
        np.arange(4.0),
        np.arange(12).reshape(3, 4),
        np.float64(2.5),
    ],
    ids=["same shape", "broadcast", "int source", "0-d"],
)
def test_copy_matches_torch(src):
    x, tx = rg.zeros(3, 4), torch.zeros(3, 4)
    x.copy_(rg.tensor(src))
    tx.copy_(torch.tensor(src))
    assert x.dtype == rg.float32
    _close(x, tx)
    assert x._version_counter == 1


def test_copy_gradients_match_torch():
    x, tx = _pair(_values((3, 4), 12))
    s, ts = _pair(_values((4,), 13))
    y, ty = x * 1, tx * 1
    y.copy_(s)
    ty.copy_(ts)
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    _close(y, ty)
    _close(x.grad, tx.grad)
    _close(s.grad, ts.grad)


def test_copy_from_float64_into_float32_keeps_dtype_and_gradient():
    s = rg.tensor([1.0, 2.0], dtype=rg.float64, requires_grad=True)
    x = rg.zeros(2)
    x.copy_(s)
    assert x.dtype == rg.float32 and x.requires_grad
    (x * 3).sum().backward()
    assert s.grad.dtype == rg.float64
    np.testing.assert_allclose(s.grad.data, [3.0, 3.0])


def test_in_place_through_a_view_rebases_the_base_like_pytorch():
    grads = []
    for lib in (rg, torch):
        x = lib.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
        b = x * 1
        v = b.view(2, 2)
        v.mul_(2)
        row = v[0]
        row.add_(x[:2])  # a view of a view, written from a source that requires grad
        (b * lib.tensor([1.0, 10.0, 100.0, 1000.0])).sum().backward()
        grads.append(np.asarray(x.grad.detach().numpy() if lib is torch else x.grad.numpy()))
    np.testing.assert_allclose(grads[0], grads[1])


def test_view_made_without_grad_shares_the_version_counter():
    x = rg.tensor([1.0, 2.0])
    v = x.reshape(2, 1)
    v.add_(1)
    assert x._version_counter == 1 and x.tolist() == [2.0, 3.0]


# -- views after in-place writes: PyTorch's view replay (issue 6) ----------------------------------
@pytest.mark.parametrize("lib", [rg, torch], ids=["retrograd", "torch"])
def test_a_view_regenerates_after_a_write_through_a_detached_alias(lib):
    w = lib.tensor([1.0, 2.0, 3.0], dtype=lib.float64, requires_grad=True)
    v = w.view(1, 3)
    old = v * 1  # recorded from v's first history
    w.detach().mul_(2)  # no graph, but the shared version changed
    v.retain_grad()  # on v's regenerated grad_fn, which `old` does not use
    (g,) = lib.autograd.grad(old.sum(), [w])
    np.testing.assert_array_equal(np.asarray(g.tolist()), [1.0, 1.0, 1.0])
    assert v.grad is None


@pytest.mark.parametrize("lib", [rg, torch], ids=["retrograd", "torch"])
def test_views_of_a_written_view_and_its_base_get_the_new_history(lib):
    leaf = lib.tensor([1.0, 2.0, 3.0, 4.0], dtype=lib.float64, requires_grad=True)
    base = leaf * 1
    a, b = base[:2], base[1:]
    a.mul_(leaf[:2])  # base[0:2] *= leaf[0:2]
    ((a * 5).sum() + (b * 7).sum() + (base * 3).sum()).backward()
    # d/dleaf: (5 + 3) * 2 leaf on [0, 1] from a, (7 * 2 leaf) on [1], 7 + 3 on [2, 3]
    np.testing.assert_allclose(
        np.asarray(leaf.grad.tolist()), [16.0, 4 * 8 + 7 * 4, 10.0, 10.0], rtol=1e-12
    )


@pytest.mark.parametrize("split", ["unbind", "split", "chunk"])
def test_in_place_into_a_multi_output_view_raises(split):
    for lib in (rg, torch):
        base = lib.ones((2, 3), dtype=lib.float64, requires_grad=True) * 1
        pieces = {"unbind": base.unbind(0), "split": base.split(1), "chunk": base.chunk(2)}
        with pytest.raises(RuntimeError, match="returns multiple views"):
            pieces[split][0].mul_(2)
        other = (base.unbind(0), base.split(1), base.chunk(2))[0 if split == "unbind" else 1][1]
        base.mul_(2)  # the pieces' base changed: every later use of them raises
        with pytest.raises(RuntimeError, match="returns multiple views"):
            other.sum()


def test_non_leaf_inputs_of_backward_get_their_grad():
    x, tx = _pair([1.0, 2.0])
    y, ty = x * 2, tx * 2
    y.exp().sum().backward(inputs=[y])
    ty.exp().sum().backward(inputs=[ty])
    _close(y.grad, ty.grad)
    assert x.grad is None and tx.grad is None


@pytest.mark.parametrize(
    "write", [lambda x, v: x.copy_(v), lambda x, v: x.fill_(v), lambda x, v: x.__setitem__(..., v)]
)
def test_a_whole_tensor_write_saves_nothing_a_slice_write_does(write):
    for lib in (rg, torch):
        x = lib.zeros(2, dtype=lib.float64)
        write(x, lib.ones((), dtype=lib.float64, requires_grad=True))
        x.sum().backward()
        x.sum().backward()  # CopyBackwards / FillBackward keep nothing
        x[1:] = lib.ones((), dtype=lib.float64, requires_grad=True)
        x.sum().backward()
        with pytest.raises(RuntimeError, match="second time"):
            x.sum().backward()
