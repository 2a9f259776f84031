"""GradientTape: TensorFlow's semantics on retrograd's graph, checked against PyTorch."""

from __future__ import annotations

import collections
import warnings

import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd.autograd import tape as tape_module
from retrograd.autograd.tape import GradientTape, UnconnectedGradients

ATOL = 1e-10
NON_PERSISTENT = (
    "A non-persistent GradientTape can only be used to compute one set of gradients "
    r"\(or jacobians\)"
)


def t64(values, requires_grad: bool = False) -> rg.Tensor:
    return rg.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


def close(a, b, atol: float = ATOL) -> None:
    a = a.detach().numpy() if isinstance(a, rg.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    np.testing.assert_allclose(a, b, atol=atol, rtol=0)


@pytest.fixture(autouse=True)
def no_leaked_watches():
    """Every test must leave no leaf switched on and no tape recording."""
    yield
    assert tape_module._switched == {}
    assert tape_module._recording.tapes == []


# -- watching ------------------------------------------------------------------------------------
def test_watch_constant_gives_gradient_and_restores_flag():
    x = t64(3.0)
    with GradientTape() as tape:
        tape.watch(x)
        assert x.requires_grad
        y = x * x
    assert not x.requires_grad  # switched back when the tape stopped recording
    g = tape.gradient(y, x)
    close(g, 6.0)
    assert x.grad is None  # gradient() never accumulates into .grad
    assert not g.requires_grad


def test_unwatched_constant_gets_none():
    x = t64(3.0)
    with GradientTape() as tape:
        y = x * x
    assert tape.gradient(y, x) is None


def test_variables_are_watched_automatically():
    w = t64([1.0, 2.0], requires_grad=True)
    with GradientTape() as tape:
        loss = (w * w).sum()
    close(tape.gradient(loss, w), [2.0, 4.0])
    assert w.grad is None and w.requires_grad
    assert tape.watched_variables()[0] is w


def test_watch_accessed_variables_false():
    a = t64(2.0, requires_grad=True)
    b = t64(3.0, requires_grad=True)
    with GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(a)
        y = a * a
        z = b * b * b
    ga, gb = tape.gradient([y, z], [a, b])
    close(ga, 4.0)
    assert gb is None  # b is recorded by the engine but not watched by this tape
    assert tape.watched_variables() == (a,)


def test_watch_structures_and_non_leaf():
    x, y = t64([1.0, 2.0]), t64(3.0)
    with GradientTape(persistent=True) as tape:
        tape.watch({"x": x, "rest": [y]})
        h = x * y  # an intermediate: a valid source
        out = (h * h).sum()
    gx, gy = tape.gradient(out, (x, y))
    close(gx, 2 * 1.0 * np.array([1.0, 2.0]) * 9.0)
    close(gy, 2 * 3.0 * (1.0 + 4.0))
    close(tape.gradient(out, h), 2 * np.array([3.0, 6.0]))


def test_watch_before_enter_and_repeated_watch():
    x = t64(2.0)
    tape = GradientTape()
    tape.watch(x)
    tape.watch(x)
    assert not x.requires_grad
    with tape:
        assert x.requires_grad
        y = x * x * x
    close(tape.gradient(y, x), 12.0)


def test_watch_integer_tensor_warns_and_is_ignored():
    i = rg.tensor([1, 2])
    with GradientTape() as tape:
        with pytest.warns(UserWarning, match="The dtype of the watched tensor must be floating"):
            tape.watch(i)
        assert not i.requires_grad


def test_watch_non_tensor_raises():
    with GradientTape() as tape:
        with pytest.raises(ValueError, match="not Tensor"):
            tape.watch(3.0)


def test_two_tapes_share_a_watched_leaf():
    x = t64(2.0)
    outer = GradientTape()
    with outer:
        inner = GradientTape()
        with inner:
            inner.watch(x)
            outer.watch(x)
        assert x.requires_grad  # the outer tape still records it
        y = x * x
    assert not x.requires_grad
    close(outer.gradient(y, x), 4.0)


# -- persistence ---------------------------------------------------------------------------------
def test_non_persistent_second_call_raises():
    x = t64(3.0)
    with GradientTape() as tape:
        tape.watch(x)
        y = x * x
    tape.gradient(y, x)
    with pytest.raises(RuntimeError, match=NON_PERSISTENT):
        tape.gradient(y, x)
    with pytest.raises(RuntimeError, match=NON_PERSISTENT):
        tape.jacobian(y, x)


def test_persistent_tape_many_gradients():
    x = t64(3.0)
    with GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * x
        z = y * y
    close(tape.gradient(z, x), 108.0)  # 4 x^3
    close(tape.gradient(y, x), 6.0)
    close(tape.gradient(z, x), 108.0)


def test_non_persistent_gradient_inside_context_stops_recording():
    x = t64(3.0)
    with GradientTape() as tape:
        tape.watch(x)
        y = x * x
        g = tape.gradient(y, x)
        assert not x.requires_grad  # the tape stopped recording, as in TensorFlow
        assert not (x * x).requires_grad
    close(g, 6.0)
    assert not g.requires_grad


def test_reenter_active_tape_raises():
    tape = GradientTape()
    with tape:
        with pytest.raises(ValueError, match="Tape is still recording"):
            tape.__enter__()


# -- structure of the result ---------------------------------------------------------------------
Pair = collections.namedtuple("Pair", ["a", "b"])


def test_result_structure_follows_sources():
    a, b, c = t64(1.0), t64([2.0, 3.0]), t64(4.0)
    with GradientTape(persistent=True) as tape:
        tape.watch([a, b, c])
        y = a * (b * b).sum() * c
    ga, gb, gc = 13.0 * 4.0, np.array([2.0 * 2, 2.0 * 3]) * 4.0, 13.0
    as_list = tape.gradient(y, [a, b])
    assert isinstance(as_list, list) and len(as_list) == 2
    as_tuple = tape.gradient(y, (a, b))
    assert isinstance(as_tuple, tuple)
    as_dict = tape.gradient(y, {"a": a, "b": b})
    assert list(as_dict) == ["a", "b"]
    nested = tape.gradient(y, {"first": [a, (b, c)], "c": c})
    close(nested["first"][0], ga)
    close(nested["first"][1][0], gb)
    close(nested["first"][1][1], gc)
    close(nested["c"], gc)
    named = tape.gradient(y, Pair(a, c))
    assert isinstance(named, Pair)
    close(named.b, gc)
    close(tape.gradient(y, a), ga)
    close(as_dict["b"], gb)


def test_repeated_source():
    x = t64(2.0)
    with GradientTape() as tape:
        tape.watch(x)
        y = x * x
    g1, g2 = tape.gradient(y, [x, x])
    close(g1, 4.0)
    close(g2, 4.0)


def test_target_list_sums_and_non_scalar_target():
    x = t64([1.0, 2.0, 3.0])
    with GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * x  # non-scalar: differentiated as its sum
        z = (x * x * x).sum()
    close(tape.gradient(y, x), 2 * x.numpy())
    close(tape.gradient([y, z], x), 2 * x.numpy() + 3 * x.numpy() ** 2)
    close(tape.gradient({"y": y, "z": [z]}, x), 2 * x.numpy() + 3 * x.numpy() ** 2)


def test_output_gradients_match_torch():
    xv = np.array([0.5, -1.0, 2.0])
    v = np.array([1.0, 2.0, -3.0])
    x = t64(xv)
    with GradientTape() as tape:
        tape.watch(x)
        y = rg.sigmoid(x) * x
    g = tape.gradient(y, x, output_gradients=t64(v))
    tx = torch.tensor(xv, requires_grad=True)
    (tg,) = torch.autograd.grad(torch.sigmoid(tx) * tx, tx, torch.tensor(v))
    close(g, tg)


def test_output_gradients_count_checked():
    x = t64(1.0)
    with GradientTape() as tape:
        tape.watch(x)
        y = x * x
    with pytest.raises(ValueError, match="output_gradients"):
        tape.gradient([y, y], x, output_gradients=[t64(1.0)])


def test_float32_stays_float32():
    x = rg.tensor([1.0, 2.0])
    with GradientTape() as tape:
        tape.watch(x)
        y = (x * x).sum()
    assert tape.gradient(y, x).dtype == np.float32


# -- unconnected sources -------------------------------------------------------------------------
def test_unconnected_none_and_zero():
    x, u = t64(2.0), t64([1.0, 2.0])
    with GradientTape(persistent=True) as tape:
        tape.watch([x, u])
        y = x * x
    gx, gu = tape.gradient(y, [x, u])
    close(gx, 4.0)
    assert gu is None
    gx, gu = tape.gradient(y, [x, u], unconnected_gradients="zero")
    close(gu, [0.0, 0.0])
    assert gu.shape == (2,) and gu.dtype == np.float64
    _, gu = tape.gradient(y, [x, u], unconnected_gradients=UnconnectedGradients.ZERO)
    close(gu, [0.0, 0.0])
    # a target computed from nothing watched: every source is unconnected
    assert tape.gradient(t64(1.0), [x]) == [None]
    assert tape.gradient(t64(1.0), u, unconnected_gradients="zero").shape == (2,)


def test_unknown_unconnected_value():
    x = t64(1.0)
    with GradientTape() as tape:
        tape.watch(x)
        y = x * 2
    with pytest.raises(ValueError, match="Unknown value for unconnected_gradients: 'nonsense'"):
        tape.gradient(y, x, unconnected_gradients="nonsense")


# -- stop_recording and reset --------------------------------------------------------------------
def test_stop_recording():
    x = t64(4.0)
    with GradientTape() as tape:
        tape.watch(x)
        with tape.stop_recording():
            y = x * x
        z = x * 3.0
    close(tape.gradient([y, z], x), 3.0)  # only z was recorded
    x2 = t64(4.0)
    with GradientTape() as tape:
        tape.watch(x2)
        with tape.stop_recording():
            y = x2 * x2
    assert tape.gradient(y, x2) is None


def test_stop_recording_variables_like_tensorflow_docs():
    x, y = t64(2.0, requires_grad=True), t64(3.0, requires_grad=True)
    with GradientTape() as tape:
        x_sq = x * x
        with tape.stop_recording():
            y_sq = y * y
        z = x_sq + y_sq
    grad = tape.gradient(z, {"x": x, "y": y})
    close(grad["x"], 4.0)
    assert grad["y"] is None


def test_stop_recording_gradient_is_not_traced():
    x = t64(3.0)
    with GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * x * x
        with tape.stop_recording():
            g = tape.gradient(y, x)
    assert not g.requires_grad
    close(g, 27.0)


def test_stop_recording_requires_recording():
    tape = GradientTape()
    with pytest.raises(
        RuntimeError, match="Trying to stop recording a tape which is not recording"
    ):
        with tape.stop_recording():
            pass


def test_reset_forgets_watched_tensors():
    x = t64(2.0)
    with GradientTape(persistent=True) as tape:
        tape.watch(x)
        tape.reset()
        assert not x.requires_grad
        y = x * x
    assert tape.gradient(y, x) is None
    with GradientTape() as tape:
        tape.watch(x)
        _ = x * x
        tape.reset()
        tape.watch(x)
        y = x * x * x
    close(tape.gradient(y, x), 12.0)


def test_reset_outside_context_raises():
    tape = GradientTape()
    with pytest.raises(ValueError, match="Tape is not recording"):
        tape.reset()


def test_watched_variables_lists_variables_only():
    w = t64([1.0], requires_grad=True)
    v = t64([2.0], requires_grad=True)
    c = t64([3.0])
    with GradientTape() as tape:
        tape.watch([c, w])
        y = (w * c * v).sum()
    assert tape.watched_variables() == (w,)
    tape.gradient(y, [w])
    ids = [id(t) for t in tape.watched_variables()]
    assert ids[0] == id(w) and id(v) in ids and id(c) not in ids


# -- nested tapes: higher derivatives ------------------------------------------------------------
def test_nested_tapes_second_derivative():
    x = t64(3.0)
    with GradientTape() as outer:
        outer.watch(x)
        with GradientTape() as inner:
            inner.watch(x)
            y = x * x * x
        dy_dx = inner.gradient(y, x)
    d2y_dx2 = outer.gradient(dy_dx, x)
    close(dy_dx, 27.0)
    close(d2y_dx2, 18.0)
    assert not x.requires_grad and x.grad is None


def test_three_nested_tapes_third_derivative():
    x = t64(1.5)
    with GradientTape() as t1:
        t1.watch(x)
        with GradientTape() as t2:
            t2.watch(x)
            with GradientTape() as t3:
                t3.watch(x)
                y = x * x * x * x  # x^4
            d1 = t3.gradient(y, x)
        d2 = t2.gradient(d1, x)
    d3 = t1.gradient(d2, x)
    close(d1, 4 * 1.5**3)
    close(d2, 12 * 1.5**2)
    close(d3, 24 * 1.5)


def test_persistent_tape_inside_own_context_is_differentiable():
    x = t64(2.0)
    with GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * x * x
        g = tape.gradient(y, x)
    close(tape.gradient(g, x), 12.0)


def test_nested_tapes_with_variable_match_torch():
    wv, xv = np.array([0.3, -0.7]), np.array([1.0, 2.0])
    w = t64(wv, requires_grad=True)
    x = t64(xv)
    with GradientTape() as outer:
        with GradientTape() as inner:
            inner.watch(x)
            y = rg.sigmoid(x * w).sum()
        gx = inner.gradient(y, x)
        penalty = (gx * gx).sum()
    gw = outer.gradient(penalty, w)
    tw = torch.tensor(wv, requires_grad=True)
    tx = torch.tensor(xv, requires_grad=True)
    (tgx,) = torch.autograd.grad(torch.sigmoid(tx * tw).sum(), tx, create_graph=True)
    (tgw,) = torch.autograd.grad((tgx * tgx).sum(), tw)
    close(gw, tgw)


# -- jacobians -----------------------------------------------------------------------------------
def _f_torch(x, w):
    return torch.sigmoid(x @ w) * x.sum()


def _f_rg(x, w):
    return rg.sigmoid(x @ w) * x.sum()


def test_jacobian_matches_torch():
    rng = np.random.default_rng(0)
    xv, wv = rng.normal(size=(3,)), rng.normal(size=(3, 2))
    x, w = t64(xv), t64(wv, requires_grad=True)
    with GradientTape() as tape:
        tape.watch(x)
        y = _f_rg(x, w)
    jx, jw = tape.jacobian(y, [x, w])
    tjx, tjw = torch.autograd.functional.jacobian(_f_torch, (torch.tensor(xv), torch.tensor(wv)))
    assert jx.shape == (2, 3) and jw.shape == (2, 3, 2)
    close(jx, tjx)
    close(jw, tjw)


def test_jacobian_unconnected_and_scalar_target():
    x, u = t64([1.0, 2.0]), t64([[1.0], [2.0]])
    with GradientTape(persistent=True) as tape:
        tape.watch([x, u])
        y = (x * x).sum()
        z = x * 3.0
    jx, ju = tape.jacobian(y, {"x": x, "u": u}).values()
    close(jx, [2.0, 4.0])
    assert ju is None
    ju = tape.jacobian(z, u, unconnected_gradients="zero")
    assert ju.shape == (2, 2, 1)
    close(tape.jacobian(z, x), 3.0 * np.eye(2))


def test_batch_jacobian_matches_torch():
    rng = np.random.default_rng(1)
    xv, wv = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    x, w = t64(xv), t64(wv)
    with GradientTape() as tape:
        tape.watch(x)
        y = rg.sigmoid(x @ w)
    j = tape.batch_jacobian(y, x)
    assert j.shape == (4, 2, 3)
    tw = torch.tensor(wv)
    for i in range(4):
        tj = torch.autograd.functional.jacobian(
            lambda r: torch.sigmoid(r @ tw), torch.tensor(xv[i])
        )
        close(j[i], tj)


def test_batch_jacobian_shape_mismatch():
    x = t64(np.ones((2, 3)))
    with GradientTape() as tape:
        tape.watch(x)
        y = x.sum()
    with pytest.raises(ValueError, match="Need first dimension"):
        tape.batch_jacobian(y, x)


def test_hessian_by_nested_tapes_matches_torch():
    rng = np.random.default_rng(2)
    xv, av = rng.normal(size=(3,)), rng.normal(size=(3, 3))
    x, a = t64(xv), t64(av)
    with GradientTape() as outer:
        outer.watch(x)
        with GradientTape() as inner:
            inner.watch(x)
            y = rg.sigmoid(x @ a @ x) + (x * x * x).sum()
        g = inner.gradient(y, x)
    h = outer.jacobian(g, x)
    ta = torch.tensor(av)
    th = torch.autograd.functional.hessian(
        lambda t: torch.sigmoid(t @ ta @ t) + (t * t * t).sum(), torch.tensor(xv)
    )
    close(h, th)


def test_differentiable_jacobian_without_stack_op(monkeypatch):
    """The fallback assembly (no `stack` op) still gives a differentiable Jacobian."""
    from retrograd import ops

    monkeypatch.delattr(ops, "stack", raising=False)
    x = t64([1.0, 2.0])
    with GradientTape() as outer:
        outer.watch(x)
        with GradientTape() as inner:
            inner.watch(x)
            y = x * x * x
        j = inner.jacobian(y, x)  # diag(3 x^2), differentiable
        s = (j * j).sum()  # sum 9 x^4
    close(outer.gradient(s, x), 36 * x.numpy() ** 3)


def test_custom_function_on_tape():
    class Cube(rg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x * x * g

    x = t64(2.0)
    with GradientTape() as outer:
        outer.watch(x)
        with GradientTape() as inner:
            inner.watch(x)
            y = Cube.apply(x)
        g = inner.gradient(y, x)
    close(g, 12.0)
    close(outer.gradient(g, x), 12.0)


def test_exception_inside_tape_restores_flags():
    x = t64(1.0)
    with warnings.catch_warnings():
        with pytest.raises(KeyError):
            with GradientTape() as tape:
                tape.watch(x)
                raise KeyError("boom")
    assert not x.requires_grad
