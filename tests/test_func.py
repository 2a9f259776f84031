"""retrograd.func transforms against torch.func on small float64 functions (atol 1e-10)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.func as tf

import retrograd as rg
from retrograd import func

# torch.func's own internals warn about torch.jit.script; not ours to fix
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)

ATOL = 1e-10
RNG = np.random.default_rng(1234)
XV = RNG.normal(size=(3,))
WV = RNG.normal(size=(3, 2))
BV = RNG.normal(size=(2,))


def t64(values, requires_grad: bool = False) -> rg.Tensor:
    return rg.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


def tt(values) -> torch.Tensor:
    return torch.tensor(np.asarray(values, dtype=np.float64))


def close(a, b, atol: float = ATOL) -> None:
    """Compare (nested) results of retrograd and torch."""
    if isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list)) and len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            close(x, y, atol)
        return
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            close(a[k], b[k], atol)
        return
    assert isinstance(a, rg.Tensor), type(a)
    bv = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert tuple(a.shape) == tuple(bv.shape), (a.shape, bv.shape)
    np.testing.assert_allclose(a.detach().numpy(), bv, atol=atol, rtol=0)


# small functions written once for both libraries (only ops both have under the same names)
def mlp(lib):
    sigmoid = rg.sigmoid if lib is rg else torch.sigmoid
    relu = rg.relu if lib is rg else torch.relu

    def f(x, w, b):
        h = sigmoid(x @ w + b)
        return (h * h).sum() / 3.0 - relu(x).mean() + (x[1:] * x[:-1]).sum()

    return f


def vector_fn(lib):
    sigmoid = rg.sigmoid if lib is rg else torch.sigmoid

    def f(x, w):
        return sigmoid(x @ w) * x.sum() - (w * w).sum(0)

    return f


def two_outputs(lib):
    sigmoid = rg.sigmoid if lib is rg else torch.sigmoid

    def f(x, w):
        return x * x - x.sum(), sigmoid(x @ w).reshape(1, 2)

    return f


# -- grad ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argnums", [0, 1, 2, -1, (0, 1), (2, 0), (0, 1, 2)])
def test_grad_matches_torch(argnums):
    g = func.grad(mlp(rg), argnums=argnums)(t64(XV), t64(WV), t64(BV))
    tg = tf.grad(mlp(torch), argnums=argnums)(tt(XV), tt(WV), tt(BV))
    close(g, tg)
    assert isinstance(g, tuple) == isinstance(argnums, tuple)


def test_grad_has_aux():
    def f(lib):
        def inner(x):
            y = (x * x).sum()
            return y, {"y": y, "double": x * 2.0}

        return inner

    g, aux = func.grad(f(rg), has_aux=True)(t64(XV))
    tg, taux = tf.grad(f(torch), has_aux=True)(tt(XV))
    close(g, tg)
    close(aux, taux)
    assert not aux["double"].requires_grad


def test_grad_and_value_and_value_and_grad():
    x, w, b = t64(XV), t64(WV), t64(BV)
    tg, tv = tf.grad_and_value(mlp(torch), argnums=(0, 1))(tt(XV), tt(WV), tt(BV))
    g, v = func.grad_and_value(mlp(rg), argnums=(0, 1))(x, w, b)
    close(g, tg)
    close(v, tv)
    v2, g2 = func.value_and_grad(mlp(rg), argnums=(0, 1))(x, w, b)  # JAX's order
    close(v2, tv)
    close(g2, tg)
    (v3, aux), g3 = func.value_and_grad(lambda x: ((x * x).sum(), x * 3.0), has_aux=True)(x)
    close(g3, 2 * XV)
    close(aux, 3 * XV)
    assert not v3.requires_grad and not v.requires_grad


def test_grad_pytree_argument():
    def f(lib):
        def inner(params, x):
            return ((x @ params["w"] + params["b"]) * params["scale"][0]).sum()

        return inner

    params = {"w": t64(WV), "b": t64(BV), "scale": [t64(1.5)]}
    tparams = {"w": tt(WV), "b": tt(BV), "scale": [tt(1.5)]}
    g = func.grad(f(rg))(params, t64(XV))
    close(g, tf.grad(f(torch))(tparams, tt(XV)))
    assert isinstance(g["scale"], list)


def test_grad_leaves_inputs_untouched():
    x = t64(XV)
    g = func.grad(lambda x: (x * x).sum())(x)
    assert not x.requires_grad and x.grad is None
    assert not g.requires_grad and g.grad_fn is None
    close(g, 2 * XV)


def test_grad_of_requires_grad_input_is_differentiable_like_torch():
    x = t64(XV, requires_grad=True)
    g = func.grad(lambda x: (x * x * x).sum())(x)
    assert g.requires_grad and x.grad is None
    (h,) = rg.autograd.grad(g.sum(), x)
    close(h, 6 * XV)


def test_grad_inside_no_grad_still_works():
    x = t64(XV, requires_grad=True)
    with rg.no_grad():
        g = func.grad(lambda x: (x * x).sum())(x)
    close(g, 2 * XV)
    assert not g.requires_grad


def test_grad_closure_over_parameter_matches_torch():
    """A gradient penalty: d/dw |grad_x f(x, w)|^2 with w closed over."""
    w, tw = t64(WV, requires_grad=True), tt(WV).requires_grad_(True)

    def penalty(lib, weight):
        sigmoid = rg.sigmoid if lib is rg else torch.sigmoid
        grad_fn = func.grad if lib is rg else tf.grad
        gx = grad_fn(lambda x: sigmoid(x @ weight).sum())
        return lambda x: (gx(x) * gx(x)).sum()

    p = penalty(rg, w)(t64(XV))
    p.backward()
    tp = penalty(torch, tw)(tt(XV))
    tp.backward()
    close(p, tp)
    close(w.grad, tw.grad)


def test_unused_input_gets_zeros():
    g = func.grad(lambda x, y: (x * x).sum(), argnums=(0, 1))(t64(XV), t64(BV))
    tg = tf.grad(lambda x, y: (x * x).sum(), argnums=(0, 1))(tt(XV), tt(BV))
    close(g, tg)
    g0 = func.grad(lambda x: t64(1.0))(t64(XV))
    close(g0, np.zeros(3))


def test_kwargs_are_passed_not_differentiated():
    g = func.grad(lambda x, scale=1.0: (x * x).sum() * scale)(t64(XV), scale=3.0)
    close(g, 6 * XV)


@pytest.mark.parametrize(
    ("argnums", "message"),
    [
        ((), "argnums must be non-empty"),
        ((0, 0), r"argnums elements must be unique, got \(0, 0\)"),
        ((0, -2), r"argnums elements must be unique, got \(0, 0\)"),
        (2, "Got argnum=2, but only 2 positional inputs"),
        ([0], "argnums must be int or Tuple"),
        ((0, 1.0), "argnum must be int, got: <class 'float'>"),
    ],
)
def test_argnums_errors_like_torch(argnums, message):
    args = (t64(XV), t64(XV))
    with pytest.raises(RuntimeError, match=message):
        func.grad(lambda x, y: (x * y).sum(), argnums=argnums)(*args)
    with pytest.raises(RuntimeError, match=message):
        tf.grad(lambda x, y: (x * y).sum(), argnums=argnums)(tt(XV), tt(XV))


def test_non_scalar_output_error():
    with pytest.raises(RuntimeError, match="Expected f\\(\\*args\\) to return a scalar Tensor"):
        func.grad(lambda x: x * 2.0)(t64(XV))
    with pytest.raises(RuntimeError, match="should be a tuple: \\(output, aux\\)"):
        func.grad(lambda x: (x * x).sum(), has_aux=True)(t64(XV))


# -- higher derivatives by nesting ---------------------------------------------------------------
def cube(x):
    return x * x * x


def poly(x):
    """2 x^4 - 3 x^3 + x^2 - 5 x + 7, with mul/add/sub only."""
    x2 = x * x
    return 2.0 * x2 * x2 - 3.0 * x2 * x + x2 - 5.0 * x + 7.0


@pytest.mark.parametrize("x0", [-1.5, 0.0, 0.7, 2.0])
def test_grad_of_grad_of_grad_cube(x0):
    x = t64(x0)
    close(func.grad(cube)(x), 3 * x0**2)
    close(func.grad(func.grad(cube))(x), 6 * x0)
    close(func.grad(func.grad(func.grad(cube)))(x), 6.0)
    close(func.grad(func.grad(func.grad(func.grad(cube))))(x), 0.0)


@pytest.mark.parametrize("x0", [-1.1, 0.3, 1.7])
def test_nested_grads_of_polynomial_match_torch(x0):
    f, tfn = poly, poly
    for _ in range(4):
        f, tfn = func.grad(f), tf.grad(tfn)
        close(f(t64(x0)), tfn(tt(x0)))
    d4 = func.grad(func.grad(func.grad(func.grad(poly))))(t64(x0))
    close(d4, 48.0)


def test_nested_grad_result_not_attached():
    d2 = func.grad(func.grad(cube))(t64(1.0))
    assert not d2.requires_grad


def test_nested_grad_with_closure_no_perturbation_confusion():
    """d/dx [x * (d/dy x*y)(x)] = d/dx x^2 = 2x (the inner derivative must not see outer x)."""

    def outer(lib):
        grad_fn = func.grad if lib is rg else tf.grad

        def f(x):
            return x * grad_fn(lambda y: x * y)(x)

        return f

    close(func.grad(outer(rg))(t64(1.5)), tf.grad(outer(torch))(tt(1.5)))
    close(func.grad(outer(rg))(t64(1.5)), 3.0)


# -- vjp -----------------------------------------------------------------------------------------
def test_vjp_matches_torch():
    x, w = t64(XV), t64(WV)
    out, vjp_fn = func.vjp(two_outputs(rg), x, w)
    tout, tvjp_fn = tf.vjp(two_outputs(torch), tt(XV), tt(WV))
    close(out, tout)
    ct = (t64(RNG.normal(size=(3,))), t64(RNG.normal(size=(1, 2))))
    tct = tuple(tt(c.numpy()) for c in ct)
    close(vjp_fn(ct), tvjp_fn(tct))
    close(vjp_fn(ct), tvjp_fn(tct))  # callable more than once
    assert not out[0].requires_grad


def test_vjp_has_aux_and_structure_error():
    out, vjp_fn, aux = func.vjp(lambda x: (x * x, x.sum()), t64(XV), has_aux=True)
    close(aux, XV.sum())
    (g,) = vjp_fn(rg.ones(3, dtype=rg.float64))
    close(g, 2 * XV)
    with pytest.raises(RuntimeError, match="Expected pytree structure of cotangents"):
        vjp_fn((rg.ones(3, dtype=rg.float64),))


def test_vjp_integer_output_rejected():
    with pytest.raises(RuntimeError, match="All outputs of f must be floating-point"):
        func.vjp(lambda x: x.long(), t64(XV))


# -- jvp -----------------------------------------------------------------------------------------
def test_jvp_matches_torch():
    x, w = t64(XV), t64(WV)
    tx_, tw_ = RNG.normal(size=(3,)), RNG.normal(size=(3, 2))
    out, jv = func.jvp(vector_fn(rg), (x, w), (t64(tx_), t64(tw_)))
    tout, tjv = tf.jvp(vector_fn(torch), (tt(XV), tt(WV)), (tt(tx_), tt(tw_)))
    close(out, tout)
    close(jv, tjv)
    assert not jv.requires_grad and not out.requires_grad


def test_jvp_tuple_output_and_unconnected():
    x, w = t64(XV), t64(WV)
    tx_, tw_ = RNG.normal(size=(3,)), RNG.normal(size=(3, 2))
    out, jv = func.jvp(two_outputs(rg), (x, w), (t64(tx_), t64(tw_)))
    tout, tjv = tf.jvp(two_outputs(torch), (tt(XV), tt(WV)), (tt(tx_), tt(tw_)))
    close(out, tout)
    close(jv, tjv)
    _, jv0 = func.jvp(lambda x: t64([1.0, 2.0]) * 1.0, (x,), (t64(tx_),))
    close(jv0, np.zeros(2))


def test_jvp_of_identity_and_errors():
    x, v = t64(XV), t64(RNG.normal(size=(3,)))
    out, jv = func.jvp(lambda a: a, (x,), (v,))
    close(jv, v.numpy())
    with pytest.raises(RuntimeError, match="Expected primals to be a tuple"):
        func.jvp(lambda a: a, x, (v,))
    with pytest.raises(RuntimeError, match="same python structure"):
        func.jvp(lambda a: a, (x,), [v])
    with pytest.raises(RuntimeError, match="same shape"):
        func.jvp(lambda a: a, (x,), (t64([1.0]),))


def test_jvp_of_grad_is_hvp():
    x, v = t64(XV), t64(RNG.normal(size=(3,)))
    _, hv = func.jvp(func.grad(mlp_x), (x,), (v,))
    _, thv = tf.jvp(tf.grad(mlp_x_torch), (tt(XV),), (tt(v.numpy()),))
    close(hv, thv)


def mlp_x(x):
    return mlp(rg)(x, t64(WV), t64(BV))


def mlp_x_torch(x):
    return mlp(torch)(x, tt(WV), tt(BV))


# -- jacobian, hessian, hvp ----------------------------------------------------------------------
@pytest.mark.parametrize("argnums", [0, 1, (0, 1), (1, 0)])
def test_jacobian_matches_jacrev(argnums):
    j = func.jacobian(vector_fn(rg), argnums=argnums)(t64(XV), t64(WV))
    tj = tf.jacrev(vector_fn(torch), argnums=argnums)(tt(XV), tt(WV))
    close(j, tj)


def test_jacobian_tuple_output_and_aux():
    j = func.jacrev(two_outputs(rg), argnums=(0, 1))(t64(XV), t64(WV))
    tj = tf.jacrev(two_outputs(torch), argnums=(0, 1))(tt(XV), tt(WV))
    close(j, tj)
    j, aux = func.jacobian(lambda x: (x * x, x.sum()), has_aux=True)(t64(XV))
    close(j, np.diag(2 * XV))
    close(aux, XV.sum())


def test_jacobian_unconnected_is_zeros():
    j = func.jacobian(lambda x, y: x * 2.0, argnums=1)(t64(XV), t64(WV))
    assert j.shape == (3, 3, 2)
    close(j, np.zeros((3, 3, 2)))


@pytest.mark.parametrize("argnums", [0, 1, (0, 2)])
def test_hessian_matches_torch(argnums):
    h = func.hessian(mlp(rg), argnums=argnums)(t64(XV), t64(WV), t64(BV))
    th = tf.hessian(mlp(torch), argnums=argnums)(tt(XV), tt(WV), tt(BV))
    close(h, th)


def test_hessian_without_stack_op(monkeypatch):
    from retrograd import ops

    monkeypatch.delattr(ops, "stack", raising=False)
    close(func.hessian(mlp_x)(t64(XV)), tf.hessian(mlp_x_torch)(tt(XV)))


def test_hvp_matches_torch():
    x, w = t64(XV), t64(WV)
    vx, vw = RNG.normal(size=(3,)), RNG.normal(size=(3, 2))
    out, hv = func.hvp(lambda x, w: mlp(rg)(x, w, t64(BV)), (x, w), (t64(vx), t64(vw)))
    tout, thv = torch.autograd.functional.hvp(
        lambda x, w: mlp(torch)(x, w, tt(BV)), (tt(XV), tt(WV)), (tt(vx), tt(vw))
    )
    close(out, tout)
    close(hv, thv)
    assert not hv[0].requires_grad


def test_hvp_nested_in_grad():
    """d/dx <v, H(x) v> for f = sum x^4 / 12: H = diag(x^2), so d/dx sum v^2 x^2 = 2 v^2 x."""
    v = t64([1.0, -2.0, 0.5])

    def quad(x):
        _, (hv,) = func.hvp(lambda y: (y * y * y * y).sum() / 12.0, (x,), (v,))
        return (v * hv).sum()

    close(func.grad(quad)(t64(XV)), 2 * v.numpy() ** 2 * XV)


def test_transforms_through_custom_function():
    class Mul(rg.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            return g * b, g * a

    x = t64(XV)
    close(func.hessian(lambda a: Mul.apply(Mul.apply(a, a), a).sum())(x), np.diag(6 * XV))
    _, jv = func.jvp(Mul.apply, (x, x), (t64(np.ones(3)), t64(np.zeros(3))))
    close(jv, XV)
