"""User-defined autograd Functions, PyTorch's way, checked against the same torch.autograd.Function.

Each Function is written once, for a library `lib` (retrograd or torch), so both run the very same
forward and backward code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd.autograd.gradcheck import gradcheck, gradgradcheck

ATOL = 1e-10
XV = np.array([0.5, -1.25, 2.0])
YV = np.array([1.5, 0.75, -0.5])


def make(lib, values, requires_grad: bool = True):
    return lib.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


def close(a, b) -> None:
    av = a.detach().numpy() if isinstance(a, rg.Tensor) else np.asarray(a)
    bv = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert av.shape == bv.shape, (av.shape, bv.shape)
    np.testing.assert_allclose(av, bv, atol=ATOL, rtol=0)


def both(fn):
    """Run fn(lib) for retrograd and torch; return the two results."""
    return fn(rg), fn(torch)


# -- the Functions -------------------------------------------------------------------------------
def scaled_mul(lib):
    """out = k * x * y, k a Python number (not a tensor input)."""

    class ScaledMul(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, y, k):
            ctx.save_for_backward(x, y)
            ctx.k = k
            return x * y * k

        @staticmethod
        def backward(ctx, g):
            x, y = ctx.saved_tensors
            ctx.seen_needs = tuple(ctx.needs_input_grad)
            gx = g * y * ctx.k if ctx.needs_input_grad[0] else None
            gy = g * x * ctx.k if ctx.needs_input_grad[1] else None
            return gx, gy, None  # None for the non-tensor k

    return ScaledMul


def split(lib):
    """Two outputs: (2 x, x^2)."""

    class Split(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2.0, x * x

        @staticmethod
        def backward(ctx, g_double, g_square):
            (x,) = ctx.saved_tensors
            return g_double * 2.0 + g_square * 2.0 * x

    return Split


def cube_saving_output(lib):
    """out = x^3, backward from the saved output: 3 out / x (differentiable: double backward)."""

    class Cube(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            out = x * x * x
            ctx.save_for_backward(x, out)
            return out

        @staticmethod
        def backward(ctx, g):
            x, out = ctx.saved_tensors
            return 3.0 * out / x * g

    return Cube


def mul(lib):
    class Mul(lib.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            return g * b, g * a

    return Mul


# -- basics --------------------------------------------------------------------------------------
def test_non_tensor_argument_and_saved_tensors():
    def run(lib):
        x, y = make(lib, XV), make(lib, YV)
        out = scaled_mul(lib).apply(x, y, 3.0)
        (out * out).sum().backward()
        return out, x.grad, y.grad

    for a, b in zip(*both(run)):
        close(a, b)


def test_needs_input_grad_in_backward():
    def run(lib):
        x, y = make(lib, XV), make(lib, YV, requires_grad=False)
        out = scaled_mul(lib).apply(x, y, 2.0)
        out.sum().backward()
        return out.grad_fn.seen_needs, x.grad, y.grad

    (needs, gx, gy), (tneeds, tgx, tgy) = both(run)
    assert needs == tneeds == (True, False, False)
    close(gx, tgx)
    assert gy is None and tgy is None


def test_no_graph_when_nothing_requires_grad_or_under_no_grad():
    F = scaled_mul(rg)
    out = F.apply(make(rg, XV, False), make(rg, YV, False), 2.0)
    assert not out.requires_grad and out.grad_fn is None
    with rg.no_grad():
        out = F.apply(make(rg, XV), make(rg, YV), 2.0)
    assert not out.requires_grad and out.grad_fn is None


def test_forward_runs_without_recording():
    seen = {}

    class Peek(rg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x * 2.0
            seen["inner"] = y.requires_grad
            return y

        @staticmethod
        def backward(ctx, g):
            return g * 2.0

    out = Peek.apply(make(rg, XV))
    assert seen["inner"] is False  # forward runs under no_grad, as in PyTorch
    assert out.grad_fn is not None and type(out.grad_fn).__name__ == "Peek"
    assert out.grad_fn.name() == "PeekBackward"


# -- multiple outputs ----------------------------------------------------------------------------
@pytest.mark.parametrize("use", ["both", "first", "second"])
def test_multiple_outputs(use):
    def run(lib):
        x = make(lib, XV)
        a, b = split(lib).apply(x)
        loss = {"both": a.sum() + (b * b).sum(), "first": (a * a).sum(), "second": b.sum()}[use]
        loss.backward()
        return a, b, x.grad

    for r, t in zip(*both(run)):
        close(r, t)


def test_multiple_outputs_chained_into_another_function():
    def run(lib):
        x = make(lib, XV)
        a, b = split(lib).apply(x)
        z = mul(lib).apply(b, a)  # inputs are outputs 1 and 0 of Split: 2 x^3
        (gx,) = lib.autograd.grad(z.sum(), x, create_graph=True)
        (hx,) = lib.autograd.grad(gx.sum(), x)
        return z, gx, hx

    for r, t in zip(*both(run)):
        close(r, t)


def test_mark_non_differentiable():
    grads_seen = {}

    def run(lib):
        class WithMask(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                out, flag = x * 3.0, x * 0.0 + 1.0
                ctx.mark_non_differentiable(flag)
                return out, flag

            @staticmethod
            def backward(ctx, g, g_flag):
                grads_seen[lib.__name__] = g_flag
                return g * 3.0

        x = make(lib, XV)
        out, flag = WithMask.apply(x)
        assert out.requires_grad and not flag.requires_grad
        out.sum().backward()
        return out, flag, x.grad

    for r, t in zip(*both(run)):
        close(r, t)
    close(grads_seen["retrograd"], grads_seen["torch"])  # zeros: materialized by default


def test_integer_output_is_not_differentiable():
    class WithIndex(rg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2.0, (x * 0.0).long()

        @staticmethod
        def backward(ctx, g, g_index):
            return g * 2.0

    x = make(rg, XV)
    out, index = WithIndex.apply(x)
    assert out.requires_grad and not index.requires_grad
    assert index.dtype == np.int64
    out.sum().backward()
    close(x.grad, 2.0 * np.ones(3))


@pytest.mark.parametrize("materialize", [True, False])
def test_set_materialize_grads(materialize):
    seen = {}

    def run(lib):
        class Two(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.set_materialize_grads(materialize)
                return x * 2.0, x * 3.0

            @staticmethod
            def backward(ctx, ga, gb):
                seen[lib.__name__] = (ga is None, gb is None)
                out = None
                if ga is not None:
                    out = ga * 2.0
                if gb is not None:
                    out = gb * 3.0 if out is None else out + gb * 3.0
                return out

        x = make(lib, XV)
        _, b = Two.apply(x)
        b.sum().backward()
        return x.grad

    close(*both(run))
    assert seen["retrograd"] == seen["torch"] == ((False, False) if materialize else (True, False))


# -- checking gradients --------------------------------------------------------------------------
def test_gradcheck_and_gradgradcheck():
    F = scaled_mul(rg)
    x, y = make(rg, XV), make(rg, YV)
    assert gradcheck(lambda a, b: F.apply(a, b, 1.5), (x, y))
    assert gradgradcheck(lambda a, b: F.apply(a, b, 1.5), (x, y))
    S = split(rg)
    assert gradcheck(S.apply, (x,))
    assert gradgradcheck(S.apply, (x,))
    C = cube_saving_output(rg)
    assert gradcheck(C.apply, (x,))
    assert gradgradcheck(C.apply, (x,))


def test_gradcheck_catches_a_wrong_custom_backward():
    class Wrong(rg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2.02 * x * g  # off by 1%

    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        gradcheck(Wrong.apply, (make(rg, XV),))


def test_double_and_triple_backward_through_custom_function():
    def run(lib):
        x = make(lib, XV)
        y = cube_saving_output(lib).apply(x)
        (g,) = lib.autograd.grad(y.sum(), x, create_graph=True)
        (h,) = lib.autograd.grad(g.sum(), x, create_graph=True)
        (t,) = lib.autograd.grad(h.sum(), x)
        return y, g, h, t

    for r, t in zip(*both(run)):
        close(r, t)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True:UserWarning")
def test_double_backward_via_backward_create_graph():
    def run(lib):
        x, y = make(lib, XV), make(lib, YV)
        out = scaled_mul(lib).apply(x, y, 2.0)
        (out * out).sum().backward(create_graph=True)
        gx = x.grad
        x.grad, y.grad = None, None
        (gx * gx).sum().backward()
        return gx, x.grad, y.grad

    for r, t in zip(*both(run)):
        close(r, t)


# -- errors as PyTorch ---------------------------------------------------------------------------
def test_wrong_number_of_gradients():
    def run(lib):
        class TooFew(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x, y):
                return x * y

            @staticmethod
            def backward(ctx, g):
                return g

        with pytest.raises(RuntimeError) as info:
            TooFew.apply(make(lib, XV), make(lib, YV)).sum().backward()
        return str(info.value)

    msg, tmsg = both(run)
    assert (
        msg
        == tmsg
        == ("function TooFewBackward returned an incorrect number of gradients (expected 2, got 1)")
    )


def test_backward_twice_and_inplace_change_of_saved_tensor():
    C = mul(rg)
    x = make(rg, XV)
    out = C.apply(x, x)
    out.sum().backward()
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        out.sum().backward()
    z = x * 1.0
    out = C.apply(z, z)
    with rg.no_grad():
        z.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_retain_graph_allows_a_second_backward():
    x = make(rg, XV)
    out = cube_saving_output(rg).apply(x)
    out.sum().backward(retain_graph=True)
    out.sum().backward()
    close(x.grad, 6.0 * XV**2)


# -- gaps: the behaviour PyTorch has and retrograd does not (yet) --------------------------------
def test_needs_input_grad_available_in_forward():
    class Peek(rg.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            ctx.flags = tuple(ctx.needs_input_grad)
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g, g

    out = Peek.apply(make(rg, XV), make(rg, YV, False))
    assert out.grad_fn.flags == (True, False)


def test_gradient_for_non_tensor_input_is_an_error():
    class Bad(rg.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g * 2.0, g

    with pytest.raises(
        RuntimeError,
        match="function BadBackward returned a gradient different than None at position 2, but "
        "the corresponding forward input was not a Variable",
    ):
        Bad.apply(make(rg, XV), 2.0).sum().backward()


def test_wrongly_shaped_gradient_is_reported_like_torch():
    class BadShape(rg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2.0

        @staticmethod
        def backward(ctx, g):
            return rg.ones(2, dtype=rg.float64)

    with pytest.raises(
        RuntimeError,
        match=r"Function BadShapeBackward returned an invalid gradient at index 0 - got \[2\] "
        r"but expected shape compatible with \[3\]",
    ):
        BadShape.apply(make(rg, XV)).sum().backward()


def test_save_for_backward_rejects_non_tensors():
    class SavesFloat(rg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x, 3.0)
            return x * 2.0

        @staticmethod
        def backward(ctx, g):
            return g * 2.0

    with pytest.raises(
        TypeError,
        match="save_for_backward can only save variables, but argument 1 is of type float",
    ):
        SavesFloat.apply(make(rg, XV))


def test_broadcastable_gradient_is_summed_like_torch():
    def run(lib):
        class Expand(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2.0

            @staticmethod
            def backward(ctx, g):
                return g.expand(4, 3) if lib is torch else rg.broadcast_to(g, (4, 3))

        x = make(lib, XV)
        Expand.apply(x).sum().backward()
        return x.grad

    close(*both(run))
