"""Elementwise ops: arithmetic, powers, exponentials, trigonometry, rounding, comparisons.

Each primitive is a Function with its forward (on arrays) and gradient rule side by side; the
rule is written with operators and `dual` so it also runs on Tensors (create_graph=True).
Broadcasting is undone by the engine, so rules return gradients of the broadcast shape.

Ops with a pole or a domain edge (log(0), sqrt'(0), 1/0, 0**-1, arcsin(2), ...) and the
exponentials that overflow for moderate inputs (exp(100), cosh(800)), square, sin/cos/tan (nan at
inf) and lerp compute under `_quiet`, so, as in PyTorch, no NumPy warning is printed. Plain
arithmetic (add, sub, mul, div) skips that to stay cheap: NumPy still warns on float overflow
there, and on inf - inf. Gradient rules need nothing: the engine runs them all quietly.
"""

from __future__ import annotations

import math
import operator
import threading

from retrograd import backend
from retrograd.autograd.forward_ad import add_tangents, replay
from retrograd.autograd.function import Function
from retrograd.backend import get_xp
from retrograd.ops import dual
from retrograd.ops._util import as_tensor, check_broadcast, promote, quiet
from retrograd.parallel import parallel_for, threads_for
from retrograd.tensor import Tensor

__all__ = [
    # arithmetic
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "floor_divide",
    "remainder",
    "reciprocal",
    "square",
    "pow",
    # exponentials and logarithms
    "exp",
    "exp2",
    "expm1",
    "log",
    "log2",
    "log1p",
    "sqrt",
    "rsqrt",
    "erf",
    # trigonometric and hyperbolic
    "sin",
    "cos",
    "tan",
    "arcsin",
    "arccos",
    "arctan",
    "asin",
    "acos",
    "atan",
    "atan2",
    "sinh",
    "cosh",
    "tanh",
    # piecewise
    "abs",
    "sign",
    "maximum",
    "minimum",
    "clamp",
    "clip",
    "where",
    "lerp",
    # rounding
    "floor",
    "ceil",
    "round",
    "trunc",
    # comparisons and logic (boolean results, no graph)
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "logical_and",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "bitwise_not",
    "logical_or",
    "logical_xor",
    "logical_not",
    "isnan",
    "isinf",
    "isfinite",
    # dtype and device
    "cast",
    "clone",
    "to_device",
]

# Used as a decorator (~0.3 us a call, a third of np.errstate's; see ops/_util.py). Only NumPy
# warns; the error state is not data, so CuPy arrays pass through untouched.
_quiet = quiet

_LN2 = math.log(2.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _binary(cls, x, y, **params):
    x, y = promote(x, y)
    try:
        return cls.apply(x, y, **params)
    except ValueError:
        check_broadcast(x, y)
        raise


def _array(out):
    """out as an array: NumPy gives scalars for 0-d inputs. (A saved output must be the array
    itself: the core would replace a scalar after `save`, unlinking it from the output.)"""
    return out if out.ndim else get_xp(out).asarray(out)


def _floating(x) -> Tensor:
    """x as a Tensor of a floating dtype (integers and booleans become the default dtype)."""
    if not isinstance(x, Tensor):
        x = as_tensor(x)
    if x.data.dtype.kind not in "fc":
        x = cast(x, backend.get_default_dtype())
    return x


def _number(value):
    """A Python number: NumPy scalars would promote float32 arrays to float64."""
    return value.item() if hasattr(value, "item") and not isinstance(value, Tensor) else value


def _is_scalar(value) -> bool:
    if isinstance(value, Tensor):
        return False
    return isinstance(value, (bool, int, float)) or getattr(value, "ndim", None) == 0


def _zeros_like(g):
    return dual.zeros(g.shape, g)


# -- arithmetic ----------------------------------------------------------------------------------
class Add(Function):
    """out = x + alpha * y;  gx = g,  gy = alpha * g  (alpha a number: nothing is saved, as
    PyTorch's AddBackward)"""

    raw = True
    alpha = 1

    def forward(self, x, y, alpha=1):
        if alpha == 1:
            return x + y
        self.alpha = alpha
        return x + y * alpha

    def backward(self, g):
        alpha = self.alpha
        return g, (g if alpha == 1 else g * alpha)

    def jvp(self, tx, ty):
        alpha = self.alpha
        return add_tangents(tx, ty if ty is None or alpha == 1 else ty * alpha)


class Sub(Function):
    """out = x - alpha * y;  gx = g,  gy = -alpha * g"""

    raw = True
    alpha = 1

    def forward(self, x, y, alpha=1):
        if alpha == 1:
            return x - y
        self.alpha = alpha
        return x - y * alpha

    def backward(self, g):
        alpha = self.alpha
        return g, (-g if alpha == 1 else -(g * alpha))

    def jvp(self, tx, ty):
        alpha = self.alpha
        return add_tangents(tx, None if ty is None else -(ty if alpha == 1 else ty * alpha))


class Mul(Function):
    """out = x * y;  gx = g * y,  gy = g * x"""

    raw = True
    saved_uses = ((1,), (0,))  # x only for gy, y only for gx

    def forward(self, x, y):
        self.save(x, y)
        return x * y

    def backward(self, g):
        x, y = self.saved
        need = self.needs_input_grad
        return (g * y if need[0] else None), (g * x if need[1] else None)

    def jvp(self, tx, ty):
        x, y = self.saved
        return add_tangents(None if tx is None else tx * y, None if ty is None else x * ty)


class Div(Function):
    """out = x / y;  gx = g / y,  gy = -g * x / y**2"""

    raw = True
    saved_uses = ((1,), (0, 1))  # x only for gy

    def forward(self, x, y):
        self.save(x, y)
        return x / y

    def backward(self, g):
        x, y = self.saved
        need = self.needs_input_grad
        gx = g / y if need[0] else None
        gy = -g * x / (y * y) if need[1] else None
        return gx, gy

    def jvp(self, tx, ty):
        x, y = self.saved
        return add_tangents(
            None if tx is None else tx / y, None if ty is None else -ty * x / (y * y)
        )


class Neg(Function):
    """out = -x;  gx = -g"""

    raw = True

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g

    def jvp(self, t):
        return -t


def add(input, other, alpha=1) -> Tensor:
    """input + alpha * other, broadcasting."""
    if alpha != 1:
        if _plain_number(alpha):
            return _binary(Add, input, other, alpha=alpha)
        other = mul(other, alpha)
    return _binary(Add, input, other)


def sub(input, other, alpha=1) -> Tensor:
    """input - alpha * other, broadcasting."""
    if alpha != 1:
        if _plain_number(alpha):
            return _binary(Sub, input, other, alpha=alpha)
        other = mul(other, alpha)
    return _binary(Sub, input, other)


def _plain_number(alpha) -> bool:
    """A Python int or float (kept by Add/Sub as a parameter, not a saved array)."""
    return type(alpha) in (int, float)


def mul(input, other) -> Tensor:
    """input * other, broadcasting."""
    return _binary(Mul, input, other)


def div(input, other, *, rounding_mode: str | None = None) -> Tensor:
    """input / other (true division: integers divide to float), or rounded with rounding_mode
    'trunc' (toward zero) or 'floor' (toward -inf)."""
    if rounding_mode is not None:
        if rounding_mode not in ("trunc", "floor"):
            raise RuntimeError(
                "div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                f"'{rounding_mode}'"
            )
        return _binary(DivRounded, input, other, mode=rounding_mode)
    x, y = promote(input, other)
    if x.data.dtype.kind in "biu":
        x, y = cast(x, backend.get_default_dtype()), cast(y, backend.get_default_dtype())
    return _binary(Div, x, y)


def neg(input) -> Tensor:
    """-input"""
    return Neg.apply(input)


class DivRounded(Function):
    """out = trunc(x / y) or floor(x / y);  gx = 0,  gy = 0  (piecewise constant, as PyTorch)"""

    raw = True

    @_quiet
    def forward(self, x, y, mode):
        xp = get_xp(x)
        if mode == "floor":
            return xp.floor_divide(x, y)
        if x.dtype.kind in "fc":
            return xp.trunc(x / y)
        q = xp.floor_divide(x, y)
        # floor -> trunc: one step toward zero where signs differ and y does not divide x
        return q + ((xp.remainder(x, y) != 0) & ((x < 0) != (y < 0))).astype(q.dtype)

    def backward(self, g):
        z = _zeros_like(g)
        return z, z

    def jvp(self, tx, ty):
        return None


def floor_divide(input, other) -> Tensor:
    """floor(input / other) (Python's //), broadcasting; integers stay integers."""
    return _binary(DivRounded, input, other, mode="floor")


class Remainder(Function):
    """out = x - floor(x / y) * y  (sign of y);  gx = g,  gy = -g * floor(x / y)"""

    raw = True

    @_quiet
    def forward(self, x, y):
        self.save(x, y)
        return get_xp(x).remainder(x, y)

    @_quiet
    def backward(self, g):
        x, y = self.saved
        need = self.needs_input_grad
        gy = None
        if need[1]:
            xd, yd = dual.data(x), dual.data(y)
            gy = -g * get_xp(xd).floor_divide(xd, yd)
        return (g if need[0] else None), gy

    @_quiet
    def jvp(self, tx, ty):
        x, y = self.saved
        return add_tangents(tx, None if ty is None else -ty * get_xp(x).floor_divide(x, y))


def remainder(input, other) -> Tensor:
    """Python's modulus input % other: the result has the sign of other."""
    return _binary(Remainder, input, other)


class Reciprocal(Function):
    """out = 1 / x;  gx = -g * out**2"""

    raw = True

    @_quiet
    def forward(self, x):
        out = _array(1 / x)
        self.save(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return -g * (out * out)

    def jvp(self, t):
        (out,) = self.saved
        return -t * (out * out)


def reciprocal(input) -> Tensor:
    """1 / input (integers become floats)."""
    return Reciprocal.apply(_floating(input))


class Square(Function):
    """out = x * x;  gx = 2 * g * x"""

    raw = True

    @_quiet  # float32 overflow to inf, as in PyTorch
    def forward(self, x):
        self.save(x)
        return x * x

    def backward(self, g):
        (x,) = self.saved
        return g * (2 * x)

    def jvp(self, t):
        (x,) = self.saved
        return t * (2 * x)


def square(input) -> Tensor:
    """input * input"""
    return Square.apply(input)


# -- powers --------------------------------------------------------------------------------------
class Pow(Function):
    """out = x ** y;  gx = g * y * x**(y - 1)  (0 where y == 0),
    gy = g * out * log(x)  (0 where x == 0 and y >= 0)"""

    raw = True

    @_quiet
    def forward(self, x, y):
        out = _array(x**y)
        self.save(x, y, out)
        return out

    @_quiet
    def backward(self, g):
        x, y, out = self.saved
        need = self.needs_input_grad
        xd, yd = dual.data(x), dual.data(y)
        z = dual.zeros((), g)
        gx = gy = None
        if need[0]:
            # x**0 is constant: gradient 0, also at x == 0 where y * x**(y-1) is 0 * inf
            gx = dual.where(yd == 0, z, g * (y * x ** (y - 1)))
        if need[1]:
            gy = dual.where((xd == 0) & (yd >= 0), z, g * (out * dual.log(x)))
        return gx, gy

    @_quiet
    def jvp(self, tx, ty):
        x, y, out = self.saved
        xp = get_xp(out)
        dx = None if tx is None else xp.where(y == 0, 0, tx * (y * x ** (y - 1)))
        dy = None if ty is None else xp.where((x == 0) & (y >= 0), 0, ty * (out * xp.log(x)))
        return add_tangents(dx, dy)


class PowScalar(Function):
    """out = x ** e  (e a number);  gx = g * e * x**(e - 1)  (0 when e == 0)"""

    raw = True

    @_quiet
    def forward(self, x, exponent):
        self.exponent = exponent
        self.save(x)
        return x**exponent

    @_quiet
    def backward(self, g):
        (x,) = self.saved
        e = self.exponent
        if e == 0:
            return _zeros_like(g)  # x**0 is constant, also at x == 0 (PyTorch)
        if e == 1:
            return g
        if e == 2:
            return g * (2 * x)
        return g * (e * x ** (e - 1))

    @_quiet
    def jvp(self, t):
        (x,) = self.saved
        e = self.exponent
        if e == 0:
            return None
        if e == 1:
            return t
        return t * (e * x ** (e - 1)) if e != 2 else t * (2 * x)


class ScalarPow(Function):
    """out = b ** y  (b a number);  gy = g * out * log(b)  (0 where b == 0 and y >= 0)"""

    raw = True

    @_quiet
    def forward(self, y, base):
        self.base = base
        out = _array(base**y)
        self.save(y, out)
        return out

    @_quiet
    def backward(self, g):
        y, out = self.saved
        b = self.base
        if b > 0:
            return g * (out * math.log(b))
        if b < 0:
            return g * math.nan  # log of a negative base (PyTorch gives nan too)
        return dual.where(dual.data(y) >= 0, dual.zeros((), g), g * (out * -math.inf))

    @_quiet
    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


def pow(input, exponent) -> Tensor:
    """input ** exponent; either may be a number. Integers stay integers unless a float enters."""
    if _is_scalar(exponent) and isinstance(input, Tensor):
        e = _number(exponent)
        if input.data.dtype.kind in "biu":
            if isinstance(e, float):
                input = cast(input, backend.get_default_dtype())
            elif e < 0:
                raise RuntimeError("Integers to negative integer powers are not allowed.")
        return PowScalar.apply(input, exponent=e)
    if _is_scalar(input) and isinstance(exponent, Tensor):
        b = _number(input)
        if isinstance(b, float) and exponent.data.dtype.kind in "biu":
            exponent = cast(exponent, backend.get_default_dtype())
        return ScalarPow.apply(exponent, base=b)
    x, y = promote(input, exponent)
    if x.data.dtype.kind in "biu" and bool((y.data < 0).any()):
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return _binary(Pow, x, y)


# -- exponentials and logarithms -----------------------------------------------------------------
class Exp(Function):
    """out = exp(x);  gx = g * out"""

    raw = True

    @_quiet
    def forward(self, x):
        out = _array(get_xp(x).exp(x))
        self.save(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return g * out

    def jvp(self, t):
        (out,) = self.saved
        return t * out


def exp(input) -> Tensor:
    """e ** input"""
    return Exp.apply(_floating(input))


class Exp2(Function):
    """out = 2**x;  gx = g * out * ln 2"""

    raw = True

    @_quiet
    def forward(self, x):
        out = _array(get_xp(x).exp2(x))
        self.save(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return g * (out * _LN2)

    def jvp(self, t):
        (out,) = self.saved
        return t * (out * _LN2)


def exp2(input) -> Tensor:
    """2 ** input"""
    return Exp2.apply(_floating(input))


class Expm1(Function):
    """out = exp(x) - 1 (accurate near 0);  gx = g * (out + 1)"""

    raw = True

    @_quiet
    def forward(self, x):
        out = _array(get_xp(x).expm1(x))
        self.save(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return g * (out + 1)

    def jvp(self, t):
        (out,) = self.saved
        return t * (out + 1)


def expm1(input) -> Tensor:
    """exp(input) - 1, accurate for small input."""
    return Expm1.apply(_floating(input))


class Log(Function):
    """out = log(x);  gx = g / x"""

    raw = True

    @_quiet
    def forward(self, x):
        self.save(x)
        return get_xp(x).log(x)

    @_quiet
    def backward(self, g):
        (x,) = self.saved
        return g / x

    @_quiet
    def jvp(self, t):
        (x,) = self.saved
        return t / x


def log(input) -> Tensor:
    """Natural logarithm (log(0) = -inf, negative input gives nan)."""
    return Log.apply(_floating(input))


class Log2(Function):
    """out = log2(x);  gx = g / (x * ln 2)"""

    raw = True

    @_quiet
    def forward(self, x):
        self.save(x)
        return get_xp(x).log2(x)

    @_quiet
    def backward(self, g):
        (x,) = self.saved
        return g / (x * _LN2)

    @_quiet
    def jvp(self, t):
        (x,) = self.saved
        return t / (x * _LN2)


def log2(input) -> Tensor:
    """Base-2 logarithm."""
    return Log2.apply(_floating(input))


class Log1p(Function):
    """out = log(1 + x) (accurate near 0);  gx = g / (1 + x)"""

    raw = True

    @_quiet
    def forward(self, x):
        self.save(x)
        return get_xp(x).log1p(x)

    @_quiet
    def backward(self, g):
        (x,) = self.saved
        return g / (x + 1)

    @_quiet
    def jvp(self, t):
        (x,) = self.saved
        return t / (x + 1)


def log1p(input) -> Tensor:
    """log(1 + input), accurate for small input."""
    return Log1p.apply(_floating(input))


class Sqrt(Function):
    """out = sqrt(x);  gx = g / (2 * out)  (inf at 0, as PyTorch)"""

    raw = True

    @_quiet
    def forward(self, x):
        out = _array(get_xp(x).sqrt(x))
        self.save(out)
        return out

    @_quiet
    def backward(self, g):
        (out,) = self.saved
        return g / (2 * out)

    @_quiet
    def jvp(self, t):
        (out,) = self.saved
        return t / (2 * out)


def sqrt(input) -> Tensor:
    """Square root (negative input gives nan)."""
    return Sqrt.apply(_floating(input))


class Rsqrt(Function):
    """out = 1 / sqrt(x);  gx = -g * out**3 / 2"""

    raw = True

    @_quiet
    def forward(self, x):
        out = _array(1 / get_xp(x).sqrt(x))
        self.save(out)
        return out

    @_quiet
    def backward(self, g):
        (out,) = self.saved
        return g * (out * out * out * -0.5)

    @_quiet
    def jvp(self, t):
        (out,) = self.saved
        return t * (out * out * out * -0.5)


def rsqrt(input) -> Tensor:
    """1 / sqrt(input)"""
    return Rsqrt.apply(_floating(input))


# erf: NumPy has none. Two rational approximations, each evaluated over cache-sized chunks with
# in-place ufuncs (no per-element gathers, no full-size temporaries):
#  * float64 (Cephes, ndtr.c): erf(x) = x T(x^2) / U(x^2) for |x| < 1, else
#    sign(x) (1 - exp(-x^2) P(|x|) / Q(|x|)), |x| clipped to 6 where erf rounds to +-1;
#    within 3 ulp of math.erf.
#  * float32, and narrower dtypes computed in float32 (Eigen's and XLA's): erf(x) =
#    x A(x^2) / B(x^2) on x clipped to [-4, 4]; within 8 ulp (4.2e-7 relative), +-1 beyond.
_ERF_T = (
    9.60497373987051638749e0,
    9.00260197203842689217e1,
    2.23200534594684319226e3,
    7.00332514112805075473e3,
    5.55923013010394962768e4,
)
_ERF_U = (
    1.0,
    3.35617141647503099647e1,
    5.21357949780152679795e2,
    4.59432382970980127987e3,
    2.26290000613890934246e4,
    4.92673942608635921086e4,
)
_ERFC_P = (
    2.46196981473530512524e-10,
    5.64189564831068821977e-1,
    7.46321056442269912687e0,
    4.86371970985681366614e1,
    1.96520832956077098242e2,
    5.26445194995477358631e2,
    9.34528527171957607540e2,
    1.02755188689515710272e3,
    5.57535335369399327526e2,
)
_ERFC_Q = (
    1.0,
    1.32281951154744992508e1,
    8.67072140885989742329e1,
    3.54937778887819891062e2,
    9.75708501743205489753e2,
    1.82390916687909736289e3,
    2.24633760818710981792e3,
    1.65666309194161350182e3,
    5.57535340817727675546e2,
)
_ERF32_A = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF32_B = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)
# elements per chunk: from _CHUNK (the scratch arrays stay in the L2 cache) up to _CHUNK_MAX for
# arrays of 16 chunks and more. Every ufunc call takes the GIL, and two threads making many
# short calls wait on each other (a wait costs tens of microseconds here): W6's GELU on two
# threads ran 4.5 ms forward and 6.1 ms backward in 64K-element chunks, 3.4 and 5.1 ms in 128K
# ones (3.0 and 4.5 in 256K, but then the scratch, 3 MB a thread, lifted W6's peak memory
# above PyTorch's). The scratch stays below a quarter of the array a thread.
_CHUNK = 1 << 16
_CHUNK_MAX = 1 << 17


def _horner(xp, z, coefficients, out):
    """out = the polynomial (coefficients highest degree first) at z, in place."""
    xp.multiply(z, coefficients[0], out=out)
    out += coefficients[1]
    for c in coefficients[2:]:
        out *= z
        out += c
    return out


def _erf32_chunk(xp, x, out, s, z, q):
    xp.clip(x, -4.0, 4.0, out=s)
    xp.multiply(s, s, out=z)
    _horner(xp, z, _ERF32_A, out)
    out *= s
    out /= _horner(xp, z, _ERF32_B, q)
    xp.clip(out, -1.0, 1.0, out=out)  # the rational overshoots 1 by up to 4e-7 near |x| = 4


def _erf64_chunk(xp, x, out, s, z, q):
    xp.clip(x, -1.0, 1.0, out=s)  # |x| < 1
    xp.multiply(s, s, out=z)
    _horner(xp, z, _ERF_T, out)
    out *= s
    out /= _horner(xp, z, _ERF_U, q)
    xp.abs(x, out=s)  # |x| >= 1
    inside = s < 1.0
    xp.clip(s, 1.0, 6.0, out=s)
    xp.multiply(s, s, out=z)
    xp.negative(z, out=z)
    xp.exp(z, out=z)
    z *= _horner(xp, s, _ERFC_P, q)
    z /= _horner(xp, s, _ERFC_Q, q)
    xp.subtract(1.0, z, out=z)
    xp.copysign(z, x, out=z)
    out[...] = xp.where(inside, out, z)  # nan stays nan: both branches are nan there


def _chunked(kernel, inputs, nscratch: int, out=None):
    """kernel(xp, *input_chunks, out_chunk, *scratch) over flat chunks of same-shape arrays of
    one dtype; returns the output array (the inputs' shape and dtype; `out`, a C-contiguous
    array of that shape, when given). The chunks of a large array go over the CPU threads
    (retrograd.parallel), each thread with its own scratch."""
    xp = get_xp(inputs[0])
    shape = inputs[0].shape
    flats = [xp.ascontiguousarray(a).reshape(-1) for a in inputs]
    out = xp.empty_like(flats[0]) if out is None else out.reshape(-1)
    size = out.size
    # a kernel makes ~10-20 passes over its chunk: worth threads from about 128 KB of input.
    # Every thread has its own scratch (one chunk's worth each): smaller chunks would keep the
    # total down but multiply the ufunc calls, and two threads calling ufuncs on small chunks
    # spend their time handing the GIL back and forth (W6's GELU in 32K-element chunks on two
    # threads: 9.0 ms forward, 434 context switches, against 5.0 ms on one thread)
    threads = threads_for(out, 16 * out.nbytes)
    step = min(_CHUNK_MAX, max(_CHUNK, size // 16))
    n = min(step, size)
    scratches = {}  # thread -> its scratch arrays

    def chunk(c):
        i = c * step
        j = min(i + step, size)
        scratch = scratches.get(threading.get_ident())
        if scratch is None:
            scratch = scratches[threading.get_ident()] = [
                xp.empty(n, dtype=out.dtype) for _ in range(nscratch)
            ]
        kernel(xp, *(a[i:j] for a in flats), out[i:j], *(s[: j - i] for s in scratch))

    parallel_for(-(-size // step), chunk, threads)
    return out.reshape(shape)


def _erf_kernel(dtype):
    """(kernel, number of scratch arrays, dtype to compute in) of erf for a float dtype."""
    if dtype.itemsize >= 8:
        return _erf64_chunk, 3, dtype
    return _erf32_chunk, 3, "float32"


# The standard normal cdf (1 + erf(x / sqrt(2))) / 2 in float32 as one rational in x^2: the
# float32 erf's coefficients scaled by powers of 1/2 (and 1/(2 sqrt(2)) for the numerator), so
# neither the division by sqrt(2) nor the affine map costs a pass over the data.
_CDF32_A = tuple(
    c * 0.5**d * 0.5 * math.sqrt(0.5) for c, d in zip(_ERF32_A, range(len(_ERF32_A) - 1, -1, -1))
)
_CDF32_B = tuple(c * 0.5**d for c, d in zip(_ERF32_B, range(len(_ERF32_B) - 1, -1, -1)))
_CDF32_CLIP = 4.0 * math.sqrt(2.0)


def _cdf32_chunk(xp, x, out, s, z, q):
    xp.clip(x, -_CDF32_CLIP, _CDF32_CLIP, out=s)
    xp.multiply(s, s, out=z)
    _horner(xp, z, _CDF32_A, out)
    out *= s
    out /= _horner(xp, z, _CDF32_B, q)
    out += 0.5
    xp.clip(out, 0.0, 1.0, out=out)


def _cdf64_chunk(xp, x, out, t, s, z, q):
    xp.multiply(x, math.sqrt(0.5), out=t)
    _erf64_chunk(xp, t, out, s, z, q)
    out *= 0.5
    out += 0.5


def _normal_cdf_kernel(dtype):
    """(kernel, number of scratch arrays) of the standard normal cdf for float32 or float64."""
    if dtype.itemsize >= 8:
        return _cdf64_chunk, 4
    return _cdf32_chunk, 3


def _erf_array(x):
    """erf on an array of any float dtype (NumPy or CuPy)."""
    kernel, nscratch, dtype = _erf_kernel(x.dtype)
    if x.dtype == dtype:
        return _chunked(kernel, (x,), nscratch)
    return _chunked(kernel, (x.astype(dtype),), nscratch).astype(x.dtype)


class Erf(Function):
    """out = erf(x);  gx = g * 2 / sqrt(pi) * exp(-x**2)"""

    raw = True

    def forward(self, x):
        self.save(x)
        return _erf_array(x)

    def backward(self, g):
        (x,) = self.saved
        return g * (dual.exp(-(x * x)) * _TWO_OVER_SQRT_PI)

    def jvp(self, t):
        (x,) = self.saved
        return t * (get_xp(x).exp(-(x * x)) * _TWO_OVER_SQRT_PI)


def erf(input) -> Tensor:
    """The Gauss error function 2/sqrt(pi) * integral_0^x exp(-t^2) dt."""
    return Erf.apply(_floating(input))


# -- trigonometric and hyperbolic ----------------------------------------------------------------
class Sin(Function):
    """out = sin(x);  gx = g * cos(x)"""

    raw = True

    @_quiet  # sin(inf) is nan
    def forward(self, x):
        self.save(x)
        return get_xp(x).sin(x)

    def backward(self, g):
        (x,) = self.saved
        return g * dual.cos(x)

    def jvp(self, t):
        (x,) = self.saved
        return t * get_xp(x).cos(x)


def sin(input) -> Tensor:
    """Sine (radians)."""
    return Sin.apply(_floating(input))


class Cos(Function):
    """out = cos(x);  gx = -g * sin(x)"""

    raw = True

    @_quiet  # cos(inf) is nan
    def forward(self, x):
        self.save(x)
        return get_xp(x).cos(x)

    def backward(self, g):
        (x,) = self.saved
        return g * -dual.sin(x)

    def jvp(self, t):
        (x,) = self.saved
        return t * -get_xp(x).sin(x)


def cos(input) -> Tensor:
    """Cosine (radians)."""
    return Cos.apply(_floating(input))


class Tan(Function):
    """out = tan(x);  gx = g * (1 + out**2)"""

    raw = True

    @_quiet  # tan(inf) is nan
    def forward(self, x):
        out = _array(get_xp(x).tan(x))
        self.save(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return g * (out * out + 1)

    def jvp(self, t):
        (out,) = self.saved
        return t * (out * out + 1)


def tan(input) -> Tensor:
    """Tangent (radians)."""
    return Tan.apply(_floating(input))


class Arcsin(Function):
    """out = arcsin(x);  gx = g / sqrt(1 - x**2)"""

    raw = True

    @_quiet
    def forward(self, x):
        self.save(x)
        return get_xp(x).arcsin(x)

    @_quiet
    def backward(self, g):
        (x,) = self.saved
        return g / dual.sqrt(1 - x * x)

    @_quiet
    def jvp(self, t):
        (x,) = self.saved
        return t / get_xp(x).sqrt(1 - x * x)


def arcsin(input) -> Tensor:
    """Inverse sine (nan outside [-1, 1])."""
    return Arcsin.apply(_floating(input))


class Arccos(Function):
    """out = arccos(x);  gx = -g / sqrt(1 - x**2)"""

    raw = True

    @_quiet
    def forward(self, x):
        self.save(x)
        return get_xp(x).arccos(x)

    @_quiet
    def backward(self, g):
        (x,) = self.saved
        return -g / dual.sqrt(1 - x * x)

    @_quiet
    def jvp(self, t):
        (x,) = self.saved
        return -t / get_xp(x).sqrt(1 - x * x)


def arccos(input) -> Tensor:
    """Inverse cosine (nan outside [-1, 1])."""
    return Arccos.apply(_floating(input))


class Arctan(Function):
    """out = arctan(x);  gx = g / (1 + x**2)"""

    raw = True

    def forward(self, x):
        self.save(x)
        return get_xp(x).arctan(x)

    def backward(self, g):
        (x,) = self.saved
        return g / (x * x + 1)

    def jvp(self, t):
        (x,) = self.saved
        return t / (x * x + 1)


def arctan(input) -> Tensor:
    """Inverse tangent."""
    return Arctan.apply(_floating(input))


def asin(input) -> Tensor:
    """Alias of arcsin."""
    return arcsin(input)


def acos(input) -> Tensor:
    """Alias of arccos."""
    return arccos(input)


def atan(input) -> Tensor:
    """Alias of arctan."""
    return arctan(input)


class Atan2(Function):
    """out = atan2(y, x);  gy = g * x / (x**2 + y**2),  gx = -g * y / (x**2 + y**2)  (0 at 0)"""

    raw = True

    def forward(self, y, x):
        self.save(y, x)
        return get_xp(y).arctan2(y, x)

    @_quiet
    def backward(self, g):
        y, x = self.saved
        need = self.needs_input_grad
        d = x * x + y * y
        r = dual.where(dual.data(d) == 0, dual.zeros((), g), g / d)  # 0 at the origin
        return (r * x if need[0] else None), (r * -y if need[1] else None)

    @_quiet
    def jvp(self, ty, tx):
        y, x = self.saved
        d = x * x + y * y
        num = add_tangents(None if ty is None else ty * x, None if tx is None else -tx * y)
        return get_xp(d).where(d == 0, 0, num / d)  # 0 at the origin, as the rule


def atan2(input, other) -> Tensor:
    """The angle of the point (other, input): atan(input / other) in the right quadrant."""
    y, x = promote(input, other)
    return _binary(Atan2, _floating(y), _floating(x))


class Sinh(Function):
    """out = sinh(x);  gx = g * cosh(x)"""

    raw = True

    @_quiet
    def forward(self, x):
        self.save(x)
        return get_xp(x).sinh(x)

    @_quiet
    def backward(self, g):
        (x,) = self.saved
        return g * dual.cosh(x)

    @_quiet
    def jvp(self, t):
        (x,) = self.saved
        return t * get_xp(x).cosh(x)


def sinh(input) -> Tensor:
    """Hyperbolic sine."""
    return Sinh.apply(_floating(input))


class Cosh(Function):
    """out = cosh(x);  gx = g * sinh(x)"""

    raw = True

    @_quiet
    def forward(self, x):
        self.save(x)
        return get_xp(x).cosh(x)

    @_quiet
    def backward(self, g):
        (x,) = self.saved
        return g * dual.sinh(x)

    @_quiet
    def jvp(self, t):
        (x,) = self.saved
        return t * get_xp(x).sinh(x)


def cosh(input) -> Tensor:
    """Hyperbolic cosine."""
    return Cosh.apply(_floating(input))


class Tanh(Function):
    """out = tanh(x);  gx = g * (1 - out**2)"""

    raw = True

    def forward(self, x):
        out = _array(get_xp(x).tanh(x))  # saturates to +-1 without overflow
        self.save(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return g * (1 - out * out)

    def jvp(self, t):
        (out,) = self.saved
        return t * (1 - out * out)


def tanh(input) -> Tensor:
    """Hyperbolic tangent, exact +-1 for large |input| and no overflow."""
    return Tanh.apply(_floating(input))


# -- piecewise -----------------------------------------------------------------------------------
class Abs(Function):
    """out = |x|;  gx = g * sign(x)  (abs'(0) = 0, as PyTorch)"""

    raw = True

    def forward(self, x):
        self.save(x)
        return get_xp(x).abs(x)

    def backward(self, g):
        (x,) = self.saved
        # dual.sign: under create_graph a Sign node (derivative 0), so the gradient requires
        # grad when x does, as PyTorch's AbsBackward (grad * x.sgn())
        return g * dual.sign(x)

    def jvp(self, t):
        (x,) = self.saved
        return t * get_xp(x).sign(x)


def abs(input) -> Tensor:
    """|input|"""
    return Abs.apply(input)


class _PiecewiseConstant(Function):
    """A step function: its gradient is 0 wherever it is defined (PyTorch's convention)."""

    raw = True

    def backward(self, g):
        return _zeros_like(g)

    def jvp(self, *tangents):
        return None


class Sign(_PiecewiseConstant):
    """out = sign(x) (-1, 0 or 1);  gx = 0"""

    def forward(self, x):
        out = get_xp(x).sign(x)
        if out.dtype.kind == "f":
            out = _array(out)
            nan = out != out
            if nan.any():  # sign(nan) is 0 in PyTorch (NaN in NumPy)
                out[nan] = 0
        return out


def sign(input) -> Tensor:
    """-1, 0 or 1 by the sign of input (gradient 0)."""
    return Sign.apply(input)


class Maximum(Function):
    """out = max(x, y);  gx = g where x > y,  gy = g where y > x;  ties give g / 2 to each"""

    raw = True

    def forward(self, x, y):
        self.save(x, y)
        return get_xp(x).maximum(x, y)

    def backward(self, g):
        x, y = self.saved
        return _tie_split(g, dual.data(x), dual.data(y), self.needs_input_grad)

    def jvp(self, tx, ty):
        x, y = self.saved
        return _tie_split_jvp(tx, ty, x, y)


class Minimum(Function):
    """out = min(x, y);  gx = g where x < y,  gy = g where y < x;  ties give g / 2 to each"""

    raw = True

    def forward(self, x, y):
        self.save(x, y)
        return get_xp(x).minimum(x, y)

    def backward(self, g):
        x, y = self.saved
        return _tie_split(g, dual.data(y), dual.data(x), self.needs_input_grad)

    def jvp(self, tx, ty):
        x, y = self.saved
        return _tie_split_jvp(tx, ty, y, x)


def _tie_split(g, x, y, need):
    """Gradients of max(x, y): the larger takes g, ties split it evenly (PyTorch's rule)."""
    z = dual.zeros((), g)
    tie = x == y
    half = g * 0.5
    gx = dual.where(x < y, z, dual.where(tie, half, g)) if need[0] else None
    gy = dual.where(x > y, z, dual.where(tie, half, g)) if need[1] else None
    return gx, gy


def _tie_split_jvp(tx, ty, x, y):
    """The JVP matching _tie_split: max(x, y) follows the larger's tangent, the mean at ties."""
    xp = get_xp(x)
    tie = x == y
    dx = None if tx is None else xp.where(x < y, 0, xp.where(tie, tx * 0.5, tx))
    dy = None if ty is None else xp.where(x > y, 0, xp.where(tie, ty * 0.5, ty))
    return add_tangents(dx, dy)


def maximum(input, other) -> Tensor:
    """Elementwise max (nan propagates); ties split the gradient evenly."""
    return _binary(Maximum, input, other)


def minimum(input, other) -> Tensor:
    """Elementwise min (nan propagates); ties split the gradient evenly."""
    return _binary(Minimum, input, other)


class ClampScalar(Function):
    """out = min(max(x, lo), hi) (numbers; None: no bound);  gx = g where lo <= x <= hi"""

    raw = True

    def forward(self, x, lo, hi):
        self.lo, self.hi = lo, hi
        self.save(x)
        xp = get_xp(x)
        out = x if lo is None else xp.maximum(x, lo)
        return out if hi is None else xp.minimum(out, hi)

    def backward(self, g):
        (x,) = self.saved
        xd = dual.data(x)
        if self.lo is None:
            keep = xd <= self.hi
        elif self.hi is None:
            keep = xd >= self.lo
        else:
            keep = (xd >= self.lo) & (xd <= self.hi)
        return dual.where(keep, g, dual.zeros((), g))

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


class ClampTensor(Function):
    """out = min(max(x, lo), hi) (tensor bounds);  gx = g where lo <= x <= hi,
    glo = g where x < lo (and lo < hi),  ghi = g where x > hi (or hi < lo)"""

    raw = True

    def forward(self, x, *bounds, has_lo, has_hi):
        xp = get_xp(x)
        self.has_lo, self.has_hi = has_lo, has_hi
        lo = bounds[0] if has_lo else None
        hi = bounds[-1] if has_hi else None
        self.save(x, *bounds)
        out = x if lo is None else xp.maximum(x, lo)
        return out if hi is None else xp.minimum(out, hi)

    def backward(self, g):
        x, *bounds = (dual.data(a) for a in self.saved)
        lo = bounds[0] if self.has_lo else None
        hi = bounds[-1] if self.has_hi else None
        need = self.needs_input_grad
        z = dual.zeros((), g)
        grads = []
        if need[0]:
            if lo is None:
                keep = x <= hi
            elif hi is None:
                keep = x >= lo
            else:
                keep = (x >= lo) & (x <= hi)
            grads.append(dual.where(keep, g, z))
        else:
            grads.append(None)
        if lo is not None:
            below = x < lo if hi is None else (x < lo) & (lo < hi)
            grads.append(dual.where(below, g, z) if need[1] else None)
        if hi is not None:
            above = x > hi if lo is None else (x > hi) | (hi < lo)
            grads.append(dual.where(above, g, z) if need[-1] else None)
        return tuple(grads)

    def jvp(self, tx, *tbounds):
        x, *bounds = self.saved
        xp = get_xp(x)
        lo = bounds[0] if self.has_lo else None
        hi = bounds[-1] if self.has_hi else None
        tlo = tbounds[0] if self.has_lo else None
        thi = tbounds[-1] if self.has_hi else None
        terms = []
        if tx is not None:
            keep = (x <= hi) if lo is None else (x >= lo) if hi is None else (x >= lo) & (x <= hi)
            terms.append(xp.where(keep, tx, 0))
        if tlo is not None:
            terms.append(xp.where(x < lo if hi is None else (x < lo) & (lo < hi), tlo, 0))
        if thi is not None:
            terms.append(xp.where(x > hi if lo is None else (x > hi) | (hi < lo), thi, 0))
        return add_tangents(*terms)


def clamp(input, min=None, max=None) -> Tensor:
    """input limited to [min, max] (numbers or tensors; None: unbounded on that side)."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    x = input
    if (min is None or _is_scalar(min)) and (max is None or _is_scalar(max)):
        lo = None if min is None else _number(min)
        hi = None if max is None else _number(max)
        if x.data.dtype.kind in "biu" and (isinstance(lo, float) or isinstance(hi, float)):
            x = cast(x, backend.get_default_dtype())
        return ClampScalar.apply(x, lo=lo, hi=hi)
    bounds = []
    for b in (min, max):
        if b is not None:
            x, b = promote(x, b)
            bounds.append(b)
    bounds = [cast(b, x.data.dtype) for b in bounds]  # a later bound may have promoted x
    try:
        return ClampTensor.apply(x, *bounds, has_lo=min is not None, has_hi=max is not None)
    except ValueError:
        for b in bounds:
            check_broadcast(x, b)
        raise


def clip(input, min=None, max=None) -> Tensor:
    """Alias of clamp."""
    return clamp(input, min, max)


class Where(Function):
    """out = x where cond else y;  gx = g where cond,  gy = g where not cond"""

    raw = True

    def forward(self, x, y, condition):
        self.save(condition)
        return get_xp(x).where(condition, x, y)

    def backward(self, g):
        (cond,) = self.saved
        c = dual.data(cond)
        z = dual.zeros((), g)
        need = self.needs_input_grad
        gx = dual.where(c, g, z) if need[0] else None
        gy = dual.where(c, z, g) if need[1] else None
        return gx, gy

    def jvp(self, tx, ty):
        (cond,) = self.saved
        return get_xp(cond).where(cond, 0 if tx is None else tx, 0 if ty is None else ty)


def where(condition, input=None, other=None):
    """input where condition is true, else other (either may be a number), broadcasting all
    three; where(condition) alone gives the indices of the true elements, one tensor per dim."""
    if not isinstance(condition, Tensor):
        condition = as_tensor(condition)
    c = condition.data
    if input is None and other is None:
        return tuple(Tensor._make(i, False, None, 0) for i in get_xp(c).nonzero(c))
    if input is None or other is None:
        raise TypeError(
            "where() takes 1 or 3 arguments: where(condition) or where(condition, input, other)"
        )
    if c.dtype.kind != "b":
        raise RuntimeError(
            "where expected condition to be a boolean tensor, but got a tensor with dtype "
            f"{_torch_name(c.dtype)}"
        )
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = as_tensor(input)
    x, y = promote(input, other)
    try:
        return Where.apply(x, y, condition=c)
    except ValueError:
        check_broadcast(x, y)
        check_broadcast(condition, x)
        check_broadcast(condition, y)
        raise


class Lerp(Function):
    """out = x + w * (end - x);  gx = g * (1 - w),  gend = g * w,  gw = g * (end - x)"""

    raw = True

    @_quiet  # inf - inf, 0 * inf
    def forward(self, x, end, w):
        self.save(x, end, w)
        xp = get_xp(x)
        d = end - x
        # PyTorch's form: exact at w == 0 and w == 1
        return xp.where(xp.abs(w) < 0.5, x + w * d, end - d * (1 - w))

    def backward(self, g):
        x, end, w = self.saved
        need = self.needs_input_grad
        gx = g * (1 - w) if need[0] else None
        gend = g * w if need[1] else None
        gw = g * (end - x) if need[2] else None
        return gx, gend, gw

    def jvp(self, tx, tend, tw):
        x, end, w = self.saved
        return add_tangents(
            None if tx is None else tx * (1 - w),
            None if tend is None else tend * w,
            None if tw is None else tw * (end - x),
        )


def lerp(input, end, weight) -> Tensor:
    """input + weight * (end - input), weight a number or a tensor, broadcasting."""
    x, end = promote(input, end)
    w = as_tensor(_number(weight), x) if _is_scalar(weight) else weight
    if w.data.dtype != x.data.dtype:
        w = cast(w, x.data.dtype)
    try:
        return Lerp.apply(x, end, w)
    except ValueError:
        check_broadcast(x, end)
        check_broadcast(x, w)
        check_broadcast(end, w)
        raise


# -- rounding (gradient 0, as PyTorch) -----------------------------------------------------------
class Floor(_PiecewiseConstant):
    """out = floor(x);  gx = 0"""

    def forward(self, x):
        return get_xp(x).floor(x)


class Ceil(_PiecewiseConstant):
    """out = ceil(x);  gx = 0"""

    def forward(self, x):
        return get_xp(x).ceil(x)


class Trunc(_PiecewiseConstant):
    """out = trunc(x) (toward zero);  gx = 0"""

    def forward(self, x):
        return get_xp(x).trunc(x)


class Round(_PiecewiseConstant):
    """out = x rounded half to even at `decimals` digits;  gx = 0"""

    def forward(self, x, decimals):
        return get_xp(x).round(x, decimals)


def _rounding(cls, x, **params) -> Tensor:
    if x.data.dtype.kind in "biu":  # already integral
        return Tensor._make(x.data.copy(), False, None, 0)
    return cls.apply(x, **params)


def floor(input) -> Tensor:
    """Largest integer <= input (gradient 0)."""
    return _rounding(Floor, input)


def ceil(input) -> Tensor:
    """Smallest integer >= input (gradient 0)."""
    return _rounding(Ceil, input)


def trunc(input) -> Tensor:
    """input rounded toward zero (gradient 0)."""
    return _rounding(Trunc, input)


def round(input, decimals: int = 0) -> Tensor:
    """input rounded half to even, to `decimals` decimal digits (gradient 0)."""
    return _rounding(Round, input, decimals=decimals)


# -- comparisons and logic: boolean results, outside the graph -----------------------------------
def _operand(value):
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (bool, int, float)):
        return value
    return as_tensor(value).data


def _boolean(op, input, other) -> Tensor:
    x, y = _operand(input), _operand(other)
    try:
        out = op(x, y)
    except ValueError:
        check_broadcast(as_tensor(input), as_tensor(other))
        raise
    return Tensor._make(_array(out), False, None, 0)


def eq(input, other):
    """input == other, elementwise (bool); comparing with None gives False as in Python."""
    if other is None:
        return False
    return _boolean(operator.eq, input, other)


def ne(input, other):
    """input != other, elementwise (bool)."""
    if other is None:
        return True
    return _boolean(operator.ne, input, other)


def lt(input, other) -> Tensor:
    """input < other, elementwise (bool)."""
    return _boolean(operator.lt, input, other)


def le(input, other) -> Tensor:
    """input <= other, elementwise (bool)."""
    return _boolean(operator.le, input, other)


def gt(input, other) -> Tensor:
    """input > other, elementwise (bool)."""
    return _boolean(operator.gt, input, other)


def ge(input, other) -> Tensor:
    """input >= other, elementwise (bool)."""
    return _boolean(operator.ge, input, other)


def _bitwise(name: str, input, other) -> Tensor:
    """Integer/bool operands only (no gradient), as PyTorch's &, |, ^."""
    for v in (input, other):
        d = _operand(v)
        if getattr(d, "dtype", None) is not None and d.dtype.kind not in "biu":
            raise RuntimeError(f"\"{name}_cpu\" not implemented for '{_dtype_word(d.dtype)}'")
    xd = _operand(input)
    x, y = (input, other) if isinstance(input, Tensor) else (other, input)
    x, y = promote(x, y) if isinstance(input, Tensor) else promote(y, x)
    return Tensor._make(_array(getattr(get_xp(xd), name)(x.data, y.data)), False, None, 0)


def _dtype_word(dtype) -> str:
    return {"float32": "Float", "float64": "Double", "float16": "Half"}.get(str(dtype), str(dtype))


def bitwise_and(input, other) -> Tensor:
    """Bitwise AND of integer or bool tensors (the & operator)."""
    return _bitwise("bitwise_and", input, other)


def bitwise_or(input, other) -> Tensor:
    """Bitwise OR of integer or bool tensors (the | operator)."""
    return _bitwise("bitwise_or", input, other)


def bitwise_xor(input, other) -> Tensor:
    """Bitwise XOR of integer or bool tensors (the ^ operator)."""
    return _bitwise("bitwise_xor", input, other)


def bitwise_not(input) -> Tensor:
    """Bitwise NOT of an integer tensor, logical NOT of a bool one (the ~ operator)."""
    d = input.data
    if d.dtype.kind not in "biu":
        raise RuntimeError(f"\"bitwise_not_cpu\" not implemented for '{_dtype_word(d.dtype)}'")
    return Tensor._make(_array(get_xp(d).invert(d)), False, None, 0)


def logical_and(input, other) -> Tensor:
    """Nonzero input and nonzero other (bool)."""
    xd = _operand(input)
    return _boolean(get_xp(xd).logical_and, input, other)


def logical_or(input, other) -> Tensor:
    """Nonzero input or nonzero other (bool)."""
    xd = _operand(input)
    return _boolean(get_xp(xd).logical_or, input, other)


def logical_xor(input, other) -> Tensor:
    """Exactly one of input and other nonzero (bool)."""
    xd = _operand(input)
    return _boolean(get_xp(xd).logical_xor, input, other)


def logical_not(input) -> Tensor:
    """input == 0 (bool)."""
    xd = _operand(input)
    return Tensor._make(_array(get_xp(xd).logical_not(xd)), False, None, 0)


def isnan(input) -> Tensor:
    """Where input is nan (bool)."""
    xd = input.data
    xp = get_xp(xd)
    out = xp.isnan(xd) if xd.dtype.kind in "fc" else xp.zeros(xd.shape, bool)
    return Tensor._make(_array(out), False, None, 0)


def isinf(input) -> Tensor:
    """Where input is +inf or -inf (bool)."""
    xd = input.data
    xp = get_xp(xd)
    out = xp.isinf(xd) if xd.dtype.kind in "fc" else xp.zeros(xd.shape, bool)
    return Tensor._make(_array(out), False, None, 0)


def isfinite(input) -> Tensor:
    """Where input is neither inf nor nan (bool)."""
    xd = input.data
    xp = get_xp(xd)
    out = xp.isfinite(xd) if xd.dtype.kind in "fc" else xp.ones(xd.shape, bool)
    return Tensor._make(_array(out), False, None, 0)


def _torch_name(dtype) -> str:
    return {
        "float32": "Float",
        "float64": "Double",
        "float16": "Half",
        "int64": "Long",
        "int32": "Int",
        "int16": "Short",
        "int8": "Char",
        "uint8": "Byte",
        "bool": "Bool",
    }.get(str(dtype), str(dtype))


# -- dtype and device ----------------------------------------------------------------------------
def cast(x, dtype) -> Tensor:
    """x converted to dtype (differentiable between floating dtypes)."""
    dtype = backend.as_dtype(dtype)
    if x.data.dtype == dtype:
        return x
    if dtype.kind not in "fc" or x.data.dtype.kind not in "fc":
        return Tensor._make(x.data.astype(dtype), False, None, 0)  # not differentiable
    return Cast.apply(x, dtype=dtype)


class Cast(Function):
    """out = x as dtype;  gx = g as x's dtype"""

    raw = True

    def forward(self, x, dtype):
        self.src = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return dual.cast(g, self.src)

    def jvp(self, t):
        return replay(self, t)


class Clone(Function):
    """out = copy of x;  gx = g"""

    raw = True

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return g

    def jvp(self, t):
        return t


def clone(input) -> Tensor:
    """A copy of input that stays in the graph."""
    return Clone.apply(input)


class ToDevice(Function):
    """out = x on another device;  gx = g on x's device"""

    raw = True

    def forward(self, x, device):
        self.src = backend.device_of(x)
        return backend.to_device(x, device)

    def backward(self, g):
        return backend.to_device(dual.data(g), self.src)

    def jvp(self, t):
        return replay(self, t)


def to_device(x, device: str) -> Tensor:
    """x moved to 'cpu' or 'cuda' (differentiable: the gradient moves back)."""
    return ToDevice.apply(x, device=device)


def sigmoid_array(x):
    """1 / (1 + exp(-x)) without overflow for large |x|."""
    xp = get_xp(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
