"""Shared pieces of the engine fuzz (tests/test_engine_fuzz.py): a retrograd tensor and its
PyTorch twin, the op tables the state machine draws from, and the outcome comparison.

Every op is written once as `fn(lib, *tensors)` (lib is `retrograd` or `torch`), so the same code
drives both libraries; method names are shared between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import retrograd as rg

# values in the pool stay within BOUND: results beyond it are checked, then dropped
TINY = 1e-150  # smaller nonzero magnitudes leave the program: see in_bounds
BOUND = 1e3
RTOL = 1e-9


@dataclass(eq=False)
class Pair:
    """A retrograd tensor and the PyTorch tensor that mirrors it."""

    r: rg.Tensor
    t: torch.Tensor
    label: str

    def __repr__(self) -> str:
        return self.label


def values(t) -> np.ndarray:
    """The values of a retrograd or torch tensor as a float64 array."""
    if isinstance(t, torch.Tensor):
        return t.detach().numpy()
    return np.asarray(t.data)


def assert_close(got, ref, what: str, gradient: bool = False) -> None:
    """Equal shapes, and values within RTOL plus an absolute slack for cancellation. For a
    gradient, a nan in PyTorch's (0/0 at a kink, e.g. the second derivative of norm at 0) is no
    reference: retrograd may give any value there."""
    got, ref = values(got), values(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != PyTorch's {ref.shape}"
    if gradient:
        keep = ~np.isnan(ref)
        got, ref = got[keep], ref[keep]
    scale = float(np.max(np.abs(ref[np.isfinite(ref)]), initial=1.0))
    np.testing.assert_allclose(
        got, ref, rtol=RTOL, atol=1e-12 * scale, equal_nan=True, err_msg=what
    )


def in_bounds(t) -> bool:
    """Finite, at most BOUND, and no nonzero value below TINY: where float64 squares underflow,
    PyTorch's norm gives 0 (it does not rescale) while retrograd's scaled norm stays exact, so
    PyTorch is no reference there (extremes are the stability sweep's job)."""
    v = np.abs(values(t))
    return bool(np.all(np.isfinite(v)) and np.all(v <= BOUND) and not np.any((v > 0) & (v < TINY)))


# -- errors ---------------------------------------------------------------------------------------
# PyTorch's message -> the words retrograd's message must share with it
CATEGORIES = (
    "modified by an inplace operation",
    "backward through the graph a second time",
    "a leaf Variable that requires grad is being used in an in-place operation",
    "a view of a leaf Variable that requires grad is being used in an in-place operation",
    "This view is the output of a function that returns multiple views",
    "more than one element of the written-to tensor",
)
KINDS = (IndexError, ValueError, TypeError, RuntimeError)


def category(exc: BaseException) -> str | None:
    msg = str(exc)
    for c in CATEGORIES:
        if c in msg:
            return c
    return None


def kind(exc: BaseException) -> type:
    for k in KINDS:
        if isinstance(exc, k):
            return k
    return type(exc)


# -- op tables: unary name -> (fn(lib, x), precondition on x's values or None) ---------------------
def _sqrt_safe(lib, x):
    return (x * x + 1).sqrt()


def _log_safe(lib, x):
    return (x.abs() + 1).log()


UNARY = {
    "neg": (lambda lib, x: -x, None),
    "tanh": (lambda lib, x: x.tanh(), None),
    "sin": (lambda lib, x: x.sin(), None),
    "sigmoid": (lambda lib, x: x.sigmoid(), None),
    "relu": (lambda lib, x: x.relu(), None),
    "abs": (lambda lib, x: x.abs(), None),
    "exp": (lambda lib, x: x.exp(), lambda v: np.all(v <= 5)),
    "log(|x|+1)": (_log_safe, None),
    "sqrt(x*x+1)": (_sqrt_safe, None),
    "square": (lambda lib, x: x.square(), None),
    "pow3": (lambda lib, x: x**3, lambda v: np.all(np.abs(v) <= 10)),
    "pow2.5(|x|)": (lambda lib, x: x.abs() ** 2.5, lambda v: np.all(np.abs(v) <= 10)),
    "scale": (lambda lib, x: x * 0.5, None),
    "rsub": (lambda lib, x: 1 - x, None),
    "1/(x*x+1)": (lambda lib, x: 1 / (x * x + 1), None),
    "clamp": (lambda lib, x: x.clamp(-0.5, 0.5), None),
    "arctan": (lambda lib, x: x.arctan(), None),
    "clone": (lambda lib, x: x.clone(), None),
    "x*x": (lambda lib, x: x * x, None),
    "x+x": (lambda lib, x: x + x, None),
    "maximum(x,x)": (lambda lib, x: lib.maximum(x, x), None),
}

BINARY = {  # name -> fn(lib, x, y), with broadcasting
    "add": lambda lib, x, y: x + y,
    "sub": lambda lib, x, y: x - y,
    "mul": lambda lib, x, y: x * y,
    "div": lambda lib, x, y: x / (y * y + 1),
    "maximum": lambda lib, x, y: lib.maximum(x, y),
    "minimum": lambda lib, x, y: lib.minimum(x, y),
    "where": lambda lib, x, y: lib.where(x > 0, x, y),
    "add_alpha": lambda lib, x, y: x.add(y, alpha=2),
}


# reductions: fn(lib, x, dim, keepdim); dim None means "all" (then keepdim is False)
def _all_or_dim(method):
    def fn(lib, x, dim, keepdim):
        if dim is None:
            return getattr(x, method)()
        return getattr(x, method)(dim, keepdim=keepdim)

    return fn


def _var(lib, x, dim, keepdim):
    if dim is None:
        return x.var()
    return x.var(dim, keepdim=keepdim)


def _norm(lib, x, dim, keepdim):
    if dim is None:
        return x.norm()
    return x.norm(dim=dim, keepdim=keepdim)


def _logsumexp(lib, x, dim, keepdim):
    return x.logsumexp(dim, keepdim=keepdim)


def _softmax(lib, x, dim, keepdim):
    return x.softmax(dim)


def _log_softmax(lib, x, dim, keepdim):
    return x.log_softmax(dim)


def _cumsum(lib, x, dim, keepdim):
    return x.cumsum(dim)


def _max_full(lib, x, dim, keepdim):
    return x.max()


REDUCE = {
    # name: (fn, needs a dim, minimum size of the reduced part)
    "sum": (_all_or_dim("sum"), False, 0),
    "mean": (_all_or_dim("mean"), False, 1),
    "amax": (_all_or_dim("amax"), False, 1),
    "amin": (_all_or_dim("amin"), False, 1),
    "prod": (_all_or_dim("prod"), False, 0),
    "var": (_var, False, 2),
    "norm": (_norm, False, 0),
    "logsumexp": (_logsumexp, True, 1),
    "softmax": (_softmax, True, 1),
    "log_softmax": (_log_softmax, True, 1),
    "cumsum": (_cumsum, True, 0),
    "max": (_max_full, False, 1),
}

# unary in-place ops: name -> (fn(x), precondition on x's values)
INPLACE_UNARY = {
    "neg_": (lambda x: x.neg_(), None),
    "tanh_": (lambda x: x.tanh_(), None),
    "sigmoid_": (lambda x: x.sigmoid_(), None),
    "exp_": (lambda x: x.exp_(), lambda v: np.all(v <= 5)),
    "relu_": (lambda x: x.relu_(), None),
    "abs_": (lambda x: x.abs_(), None),
    "clamp_": (lambda x: x.clamp_(-1.0, 1.0), None),
    "zero_": (lambda x: x.zero_(), None),
    "fill_": (lambda x: x.fill_(0.75), None),
    "mul_scalar_": (lambda x: x.mul_(0.5), None),
    "iadd_scalar": (lambda x: x.__iadd__(1.5), None),
}

# binary in-place ops: name -> fn(x, y)
INPLACE_BINARY = {
    "add_": lambda x, y: x.add_(y),
    "sub_": lambda x, y: x.sub_(y),
    "mul_": lambda x, y: x.mul_(y),
    "copy_": lambda x, y: x.copy_(y),
    "iadd": lambda x, y: x.__iadd__(y),
    "add_alpha_": lambda x, y: x.add_(y, alpha=-0.5),
}


def broadcastable(a: tuple, b: tuple) -> bool:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


def broadcasts_to(src: tuple, dst: tuple) -> bool:
    """Whether src broadcasts to exactly dst (what an in-place operand must do)."""
    return broadcastable(src, dst) and np.broadcast_shapes(src, dst) == tuple(dst)


def matmul_ok(a: tuple, b: tuple) -> bool:
    if not a or not b:
        return False
    try:
        np.matmul(np.zeros(a), np.zeros(b))
    except ValueError:
        return False
    return True


def partial_overlap(dst: torch.Tensor, src, any_overlap: bool = False) -> bool:
    """Whether writing src into dst reads memory the write changes: PyTorch refuses such writes
    ("some elements of the input tensor and the written-to tensor refer to a single memory
    location") while retrograd computes every in-place result out of place first, so the write
    is well defined there. The machine does not generate them (a documented divergence).
    An identical source (x.add_(x)) is allowed by both, except for index_put (any_overlap)."""
    if not isinstance(src, torch.Tensor) or dst.numel() == 0 or src.numel() == 0:
        return False
    if not np.shares_memory(values(dst), values(src)):
        return False
    same = (
        dst.data_ptr() == src.data_ptr() and dst.shape == src.shape and dst.stride() == src.stride()
    )
    return any_overlap or not same
