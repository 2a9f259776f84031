"""Activation functions: sigmoid family, ReLU family, smooth ReLUs (GELU, SiLU, Mish, softplus).

Each is a fused primitive: its forward is stable for any finite input (no overflow, and no
underflow warning either: exponentials of large negative arguments are flushed to 0 explicitly),
and its gradient rule is written in operators, `dual` (where, abs, tanh) and this module's own
primitives (sigmoid, exp, the normal pdf and cdf, all underflow-safe), so the same rule serves a
plain backward on arrays and `create_graph=True` on Tensors. Gradients at kinks follow PyTorch
(relu'(0) = 0, leaky_relu'(0) = negative_slope, elu'(0) = alpha, hardtanh' = 0 at its bounds).
"""

from __future__ import annotations

import math

from retrograd import backend
from retrograd.autograd.function import Function
from retrograd.backend import get_xp
from retrograd.ops import dual
from retrograd.ops._util import quiet
from retrograd.ops.mutation import inplace as _write_inplace
from retrograd.parallel import parallel_ranges, threads_for
from retrograd.tensor import Tensor

__all__ = [
    "sigmoid",
    "logsigmoid",
    "softplus",
    "relu",
    "relu6",
    "leaky_relu",
    "hardtanh",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "mish",
    "hardsigmoid",
    "hardswish",
    "softsign",
    "tanhshrink",
]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_GELU_K = math.sqrt(2 / math.pi)
_GELU_C = 0.044715
_CHUNKED_DTYPES = ("float32", "float64")


# -- array helpers (forward passes and plain backward) -------------------------------------------
_EXP_CAPS: dict = {}


def _exp_neg(z):
    """exp(-z) for z >= 0 (inf and NaN allowed): results below the smallest normal number are
    flushed to 0 without raising NumPy's underflow warning."""
    xp = get_xp(z)
    cap = _EXP_CAPS.get(z.dtype)
    if cap is None:
        cap = _EXP_CAPS[z.dtype] = float(math.floor(-math.log(float(xp.finfo(z.dtype).tiny))))
    return xp.where(z > cap, 0, xp.exp(-xp.minimum(z, cap)))


def _sigmoid_array(x):
    """1 / (1 + exp(-x)), never overflowing nor underflowing."""
    xp = get_xp(x)
    e = _exp_neg(xp.abs(x))
    d = 1 + e
    return xp.where(x >= 0, 1 / d, e / d)


def _softplus_array(z):
    """log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)), stable for any z."""
    xp = get_xp(z)
    return xp.maximum(z, 0) + xp.log1p(_exp_neg(xp.abs(z)))


def _normal_pdf_array(x):
    xp = get_xp(x)
    a = xp.minimum(xp.abs(x), 40.0)  # exp(-800) is 0 in every float dtype; avoids x*x overflow
    return _exp_neg(0.5 * a * a) * _INV_SQRT_2PI


def _erf_array(x):
    # imported at call time: activation and elementwise (erf's home) load in either order
    from retrograd.ops.elementwise import _erf_array as erf_array

    return erf_array(x)


def _normal_cdf_array(x):
    return 0.5 * (1 + _erf_array(x * _SQRT1_2))


def _gelu_array(x, g=None):
    """x * cdf(x) (g None), or the gradient g * (cdf(x) + x * pdf(x)), for float32 and float64
    arrays: one pass over cache-sized chunks with in-place ufuncs (elementwise's normal cdf
    kernels), so no full-size temporaries."""
    from retrograd.ops._util import quiet_block
    from retrograd.ops.elementwise import _chunked, _normal_cdf_kernel

    cdf, nscratch = _normal_cdf_kernel(x.dtype)

    def forward(xp, x, out, *scratch):
        cdf(xp, x, out, *scratch)
        out *= x

    def gradient(xp, g, x, out, *scratch):
        _gelu_derivative_into(xp, cdf, x, out, scratch)
        out *= g

    if g is None:
        return _chunked(forward, (x,), nscratch)
    with quiet_block():
        return _chunked(gradient, (g, x), nscratch)


def _gelu_derivative_into(xp, cdf, x, out, scratch) -> None:
    """out = cdf(x) + x * pdf(x), GELU's derivative, in place (scratch: cdf's scratch arrays)."""
    cdf(xp, x, out, *scratch)
    t = scratch[0]  # free again once cdf is in out
    # x * pdf(x): x * x overflowing to inf and exp underflowing give 0 (quietly), and
    # 0 * inf = nan at x = +-inf, as the formula
    xp.multiply(x, x, out=t)
    t *= -0.5
    xp.exp(t, out=t)
    t *= x
    t *= _INV_SQRT_2PI
    out += t


# -- rule helpers: the same call on arrays (plain backward) and Tensors (create_graph) ----------
def _zero_where(g, mask):
    """g, zeroed where the constant boolean mask holds (PyTorch's where(mask, 0, g))."""
    if (
        not isinstance(g, Tensor)
        and g.ndim
        and g.dtype.kind == "f"
        and g.dtype.itemsize in _INT_OF_SIZE
        and mask.shape == g.shape
    ):
        return _zero_bits(g, mask)
    return dual.where(mask, 0, g)


_INT_OF_SIZE = {2: "int16", 4: "int32", 8: "int64"}


def _zero_bits(g, mask):
    """where(mask, 0, g) on arrays as a bitwise and with 0 (mask) or all ones (not mask): the
    same bits (+0 where masked; inf and NaN kept elsewhere) at the cost of a mask product.
    `where` with a random mask is branch-bound: 3.9 ms against 0.29 ms for 256x4096 float32."""
    xp = get_xp(g)
    ints = getattr(xp, _INT_OF_SIZE[g.dtype.itemsize])
    if not (g.flags.c_contiguous and mask.flags.c_contiguous):  # (flat ranges need both)
        bits = mask.astype(ints)
        bits -= 1
        bits &= g.view(ints)
        return bits.view(g.dtype)
    bits = xp.empty(g.shape, dtype=ints)
    bf, mf, gf = bits.reshape(-1), mask.reshape(-1), g.reshape(-1).view(ints)

    def part(lo, hi):  # ranges over the CPU threads when g is large (retrograd.parallel)
        b = bf[lo:hi]
        # 0 where masked, else all ones: the mask cast by a copy, then one in place; faster
        # than one subtract that casts (7.7 against 9.5 us at 32K, 255 against 300 at 1M,
        # with the and) and without the casting buffers it takes from the heap each call
        b[...] = mf[lo:hi]
        b -= 1
        b &= gf[lo:hi]

    parallel_ranges(g.size, part, threads_for(g, 2 * g.nbytes))
    return bits.view(g.dtype)


def _sigmoid(x):
    return Sigmoid.apply(x) if isinstance(x, Tensor) else _sigmoid_array(x)


def _floating(x: Tensor) -> Tensor:
    """Integer and boolean inputs compute in the default float dtype, as in PyTorch."""
    if x.data.dtype.kind in "fc":
        return x
    from retrograd.ops.elementwise import cast

    return cast(x, backend.get_default_dtype())


def _maybe_inplace(x: Tensor, out: Tensor, inplace: bool) -> Tensor:
    return _write_inplace(x, out) if inplace else out


# -- sigmoid family ------------------------------------------------------------------------------
class Sigmoid(Function):
    """out = 1 / (1 + exp(-x));  gx = g * out * (1 - out)"""

    raw = True

    def forward(self, x):
        out = _sigmoid_array(x)
        self.save(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return g * out * (1 - out)

    def jvp(self, t):
        (out,) = self.saved
        return t * out * (1 - out)


def sigmoid(input: Tensor) -> Tensor:
    """The logistic function 1 / (1 + exp(-input)), stable for any input."""
    return Sigmoid.apply(_floating(input))


class LogSigmoid(Function):
    """out = -softplus(-x) = min(x, 0) - log1p(exp(-|x|));  gx = g * sigmoid(-x)"""

    raw = True

    def forward(self, x):
        xp = get_xp(x)
        e = _exp_neg(xp.abs(x))
        self.save(x, e)
        return xp.minimum(x, 0) - xp.log1p(e)

    def backward(self, g):
        x, e = self.saved
        if isinstance(x, Tensor):
            return g * Sigmoid.apply(-x)
        return g * (get_xp(x).where(x >= 0, e, 1) / (1 + e))  # sigmoid(-x) from exp(-|x|)

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(input)), stable for large |input|."""
    return LogSigmoid.apply(_floating(input))


class Softplus(Function):
    """out = log1p(exp(beta x)) / beta (x where beta x > threshold);
    gx = g * sigmoid(beta x) (g where beta x > threshold)"""

    raw = True

    def forward(self, x, beta, threshold):
        self.beta, self.threshold = beta, threshold
        self.save(x)
        z = x * beta if beta != 1 else x
        return get_xp(x).where(z > threshold, x, _softplus_array(z) / beta)

    def backward(self, g):
        (x,) = self.saved
        z = x * self.beta if self.beta != 1 else x
        return g * dual.where(dual.data(z) > self.threshold, 1, _sigmoid(z))

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta input)) / beta, linear where beta input > threshold (as in PyTorch)."""
    return Softplus.apply(_floating(input), beta=beta, threshold=threshold)


# -- ReLU family (piecewise linear: the rule selects g, or a multiple of it, by a constant mask)
# NumPy's maximum runs its vector loop only when both operands are arrays: against the scalar 0
# it is 3x slower (32K float32: 12.9 against 4.1 us). ReLU takes its zeros from one block per
# dtype and device, in pieces of at most this many elements (the same bits as the scalar's).
_ZERO_BLOCK = 1 << 16
_zero_blocks: dict = {}


def _zero_block(x):
    key = (backend.device_of(x), x.dtype)
    z = _zero_blocks.get(key)
    if z is None:
        z = _zero_blocks[key] = get_xp(x).zeros(_ZERO_BLOCK, dtype=x.dtype)
    return z


class ReLU(Function):
    """out = max(x, 0);  gx = g * (out > 0)  (relu'(0) = 0, as in PyTorch)

    Saves the mask out <= 0 (1 byte an element) instead of the output: PyTorch saves the
    output, so a write into it before backward raises here too (`watches_out`)."""

    raw = True
    watches_out = True

    def forward(self, x):
        xp = get_xp(x)
        if not x.flags.c_contiguous:  # (flat ranges need a contiguous x)
            out = xp.maximum(x, 0)
            self.save(out <= 0)
            return out
        out, dead = xp.empty_like(x), xp.empty(x.shape, dtype=bool)
        xf, of, df = x.reshape(-1), out.reshape(-1), dead.reshape(-1)
        zero = _zero_block(x)

        def part(lo, hi):  # ranges over the CPU threads when x is large (retrograd.parallel)
            for s in range(lo, hi, _ZERO_BLOCK):  # NaN propagates, as in PyTorch
                e = min(s + _ZERO_BLOCK, hi)
                xp.maximum(xf[s:e], zero[: e - s], out=of[s:e])
            # NaN: not dead, its gradient passes, as PyTorch's threshold_backward
            xp.less_equal(of[lo:hi], 0, out=df[lo:hi])

        parallel_ranges(x.size, part, threads_for(x, 2 * x.nbytes))
        self.save(dead)
        return out

    def backward(self, g):
        (dead,) = self.saved
        dead = dual.data(dead)
        if isinstance(g, Tensor):
            # create_graph: PyTorch's threshold_backward(g, out) depends on the output with a zero
            # derivative, so the gradient requires grad; sign(out) is the mask: rebuild it as a
            # Tensor of this node (its values are the mask's) and select through a Sign node
            alive = Tensor._make(get_xp(dead).logical_not(dead).astype(g.dtype), True, self, 0)
            return g * dual.sign(alive)
        return _zero_where(g, dead)

    def jvp(self, t):
        (dead,) = self.saved
        return _zero_where(t, dual.data(dead))


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(input, 0)"""
    return _maybe_inplace(input, ReLU.apply(input), inplace)


class Hardtanh(Function):
    """out = min(max(x, min_val), max_val);  gx = g * (min_val < x < max_val)"""

    raw = True

    def forward(self, x, min_val, max_val):
        self.min_val, self.max_val = min_val, max_val
        self.save(x)
        xp = get_xp(x)
        return xp.minimum(xp.maximum(x, min_val), max_val)

    def backward(self, g):
        (x,) = self.saved
        x = dual.data(x)
        return _zero_where(g, (x <= self.min_val) | (x >= self.max_val))

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


def hardtanh(
    input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Tensor:
    """input clamped to [min_val, max_val]; zero gradient at and beyond the bounds."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _maybe_inplace(input, Hardtanh.apply(input, min_val=min_val, max_val=max_val), inplace)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(input, 0), 6) (hardtanh(input, 0, 6): zero gradient at 0 and 6)."""
    return hardtanh(input, 0.0, 6.0, inplace)


class LeakyReLU(Function):
    """out = x if x > 0 else negative_slope * x;  gx = g if x > 0 else negative_slope * g"""

    raw = True

    def forward(self, x, negative_slope):
        self.slope = negative_slope
        self.save(x)
        return get_xp(x).where(x > 0, x, x * negative_slope)

    def backward(self, g):
        (x,) = self.saved
        return dual.where(dual.data(x) > 0, g, g * self.slope)

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """input where input > 0, negative_slope * input elsewhere."""
    return _maybe_inplace(
        input, LeakyReLU.apply(_floating(input), negative_slope=negative_slope), inplace
    )


class Hardsigmoid(Function):
    """out = min(max(x + 3, 0), 6) / 6;  gx = g / 6 where -3 < x < 3, else 0"""

    raw = True

    def forward(self, x):
        self.save(x)
        xp = get_xp(x)
        return xp.minimum(xp.maximum(x + 3, 0), 6) / 6

    def backward(self, g):
        (x,) = self.saved
        x = dual.data(x)
        return _zero_where(g, (x <= -3) | (x >= 3)) / 6

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """The piecewise-linear sigmoid relu6(input + 3) / 6."""
    return _maybe_inplace(input, Hardsigmoid.apply(_floating(input)), inplace)


class Hardswish(Function):
    """out = x * min(max(x + 3, 0), 6) / 6;
    gx = 0 (x <= -3),  g * (x / 3 + 1/2) (-3 < x < 3),  g (x >= 3)"""

    raw = True

    @quiet  # -inf * 0 is nan, quietly
    def forward(self, x):
        self.save(x)
        xp = get_xp(x)
        return x * xp.minimum(xp.maximum(x + 3, 0), 6) / 6

    def backward(self, g):
        (x,) = self.saved
        xd = dual.data(x)
        return g * dual.where(xd <= -3, 0, dual.where(xd < 3, x / 3 + 0.5, 1))

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """input * relu6(input + 3) / 6"""
    return _maybe_inplace(input, Hardswish.apply(_floating(input)), inplace)


# -- exponential linear units ----------------------------------------------------------------------
class _Exp(Function):
    """out = exp(x);  gx = g * out  (for this module's rules: x <= 0, so it never overflows)"""

    raw = True

    def forward(self, x):
        out = _exp_neg(-x)
        self.save(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return g * out

    def jvp(self, t):
        (out,) = self.saved
        return t * out


class ELU(Function):
    """out = scale * x (x > 0), scale * alpha * expm1(input_scale * x) (x <= 0);
    gx = g * scale (x > 0),  g * scale * alpha * input_scale * exp(input_scale * x) (x <= 0)"""

    raw = True

    def forward(self, x, alpha, scale, input_scale):
        self.alpha, self.scale, self.input_scale = alpha, scale, input_scale
        xp = get_xp(x)
        # expm1 only sees the non-positive part: no overflow on the branch not taken
        neg = xp.expm1(xp.minimum(x, 0) * input_scale) * (scale * alpha)
        self.save(x)
        return xp.where(x > 0, x * scale if scale != 1 else x, neg)

    def backward(self, g):
        (x,) = self.saved
        positive = dual.data(x) > 0
        # exp(x) itself rather than out + alpha: full relative precision for x << 0
        if isinstance(x, Tensor):
            e = _Exp.apply(dual.where(positive, 0, x) * self.input_scale)
        else:
            e = _exp_neg(-get_xp(x).minimum(x, 0) * self.input_scale)
        neg = e * (self.scale * self.alpha * self.input_scale)
        return g * dual.where(positive, self.scale, neg)

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """input where input > 0, alpha * (exp(input) - 1) elsewhere."""
    out = ELU.apply(_floating(input), alpha=alpha, scale=1.0, input_scale=1.0)
    return _maybe_inplace(input, out, inplace)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(input, alpha) with the self-normalizing constants of Klambauer et al."""
    out = ELU.apply(_floating(input), alpha=_SELU_ALPHA, scale=_SELU_SCALE, input_scale=1.0)
    return _maybe_inplace(input, out, inplace)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """max(0, input) + min(0, alpha * (exp(input / alpha) - 1))"""
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")
    out = ELU.apply(_floating(input), alpha=alpha, scale=1.0, input_scale=1.0 / alpha)
    return _maybe_inplace(input, out, inplace)


# -- smooth ReLUs ----------------------------------------------------------------------------------
class _NormalPdf(Function):
    """out = exp(-x^2 / 2) / sqrt(2 pi);  gx = -g * x * out"""

    raw = True

    def forward(self, x):
        out = _normal_pdf_array(x)
        self.save(x, out)
        return out

    def backward(self, g):
        x, out = self.saved
        return -g * x * out

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


class _NormalCdf(Function):
    """out = (1 + erf(x / sqrt(2))) / 2;  gx = g * pdf(x)"""

    raw = True

    def forward(self, x):
        self.save(x)
        return _normal_cdf_array(x)

    def backward(self, g):
        (x,) = self.saved
        return g * (_NormalPdf.apply(x) if isinstance(x, Tensor) else _normal_pdf_array(x))

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


class GELU(Function):
    """out = x * cdf(x);  gx = g * (cdf(x) + x * pdf(x))  (cdf, pdf: the standard normal's)"""

    raw = True

    @quiet  # -inf * 0 is nan, quietly
    def forward(self, x):
        self.save(x)  # only x, as PyTorch: the backward recomputes cdf (cheaper than its memory)
        if x.dtype in _CHUNKED_DTYPES:
            return _gelu_array(x)
        return x * _normal_cdf_array(x)

    def backward(self, g):
        (x,) = self.saved
        if isinstance(x, Tensor):
            return g * (_NormalCdf.apply(x) + x * _NormalPdf.apply(x))
        if x.dtype in _CHUNKED_DTYPES and g.dtype == x.dtype and g.shape == x.shape:
            if self.owns_grad() and g.flags.c_contiguous and g.flags.writeable:
                return _gelu_grad_into(x, g)  # no third full-size array at the peak
            return _gelu_array(x, g)
        return g * (_normal_cdf_array(x) + x * _normal_pdf_array(x))

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


def _gelu_grad_into(x, g):
    """g *= cdf(x) + x * pdf(x) in place (g: a C-contiguous array no one else holds), over
    cache-sized chunks: the same products as `_gelu_array(x, g)`, bit for bit."""
    from retrograd.ops._util import quiet_block
    from retrograd.ops.elementwise import _chunked, _normal_cdf_kernel

    cdf, nscratch = _normal_cdf_kernel(x.dtype)

    def scale(xp, x, g, d, *scratch):
        _gelu_derivative_into(xp, cdf, x, d, scratch)
        g *= d

    with quiet_block():
        return _chunked(scale, (x,), nscratch + 1, out=g)


class GELUTanh(Function):
    """out = x * (1 + tanh(u)) / 2 = x * sigmoid(2u),  u = sqrt(2/pi) (x + 0.044715 x^3);
    gx = g * (s + x * s * (1 - s) * 2u'),  s = sigmoid(2u)"""

    raw = True

    @quiet  # -inf * 0 is nan, quietly
    def forward(self, x):
        # sigmoid(2u) saturates long before |x| = 100; clipping keeps x^3 from overflowing
        xc = get_xp(x).clip(x, -100, 100)
        s = _sigmoid_array(2 * _GELU_K * (xc + _GELU_C * xc * xc * xc))
        self.save(x, s)
        return x * s

    def backward(self, g):
        x, s = self.saved
        if isinstance(x, Tensor):
            s = Sigmoid.apply(2 * _GELU_K * (x + _GELU_C * x * x * x))
            xc = x
        else:
            xc = get_xp(x).clip(x, -100, 100)
        du = 2 * _GELU_K * (1 + 3 * _GELU_C * xc * xc)
        return g * (s + x * s * (1 - s) * du)

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """input * Phi(input) (Phi: the standard normal cdf), or its tanh approximation."""
    if approximate == "none":
        return GELU.apply(_floating(input))
    if approximate == "tanh":
        return GELUTanh.apply(_floating(input))
    raise RuntimeError("approximate argument must be either none or tanh.")


class SiLU(Function):
    """out = x * sigmoid(x);  gx = g * s * (1 + x * (1 - s)),  s = sigmoid(x)"""

    raw = True

    @quiet  # -inf * 0 is nan, quietly
    def forward(self, x):
        s = _sigmoid_array(x)
        self.save(x, s)
        return x * s

    def backward(self, g):
        x, s = self.saved
        if isinstance(x, Tensor):
            s = Sigmoid.apply(x)
        return g * s * (1 + x * (1 - s))

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """input * sigmoid(input) (swish)."""
    return _maybe_inplace(input, SiLU.apply(_floating(input)), inplace)


def _tanh_softplus(s):
    """tanh(softplus(x)) from s = sigmoid(x): with 1 + e^x = 1 / (1 - s) it is
    s (2 - s) / (1 + (1 - s)^2), free of overflow and cancellation."""
    r = 1 - s
    return s * (2 - s) / (1 + r * r)


class Mish(Function):
    """out = x * t,  t = tanh(softplus(x));  gx = g * (t + x * s * (1 - t^2)),  s = sigmoid(x)"""

    raw = True

    @quiet  # -inf * 0 is nan, quietly
    def forward(self, x):
        s = _sigmoid_array(x)
        self.save(x, s)
        return x * _tanh_softplus(s)

    def backward(self, g):
        x, s = self.saved
        if isinstance(x, Tensor):
            s = Sigmoid.apply(x)
        t = _tanh_softplus(s)
        return g * (t + x * s * (1 - t * t))

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """input * tanh(softplus(input))"""
    return _maybe_inplace(input, Mish.apply(_floating(input)), inplace)


# -- other squashing functions ---------------------------------------------------------------------
class Softsign(Function):
    """out = x / (1 + |x|);  gx = g / (1 + |x|)^2"""

    raw = True

    @quiet  # inf / inf is nan, quietly
    def forward(self, x):
        self.save(x)
        return x / (1 + get_xp(x).abs(x))

    def backward(self, g):
        (x,) = self.saved
        d = 1 + dual.abs(x)
        return g / (d * d)

    def jvp(self, t):
        (x,) = self.saved
        d = 1 + get_xp(x).abs(x)
        return t / (d * d)


def softsign(input: Tensor) -> Tensor:
    """input / (1 + |input|)"""
    return Softsign.apply(_floating(input))


class Tanhshrink(Function):
    """out = x - tanh(x);  gx = g * tanh(x)^2"""

    raw = True

    def forward(self, x):
        self.save(x)
        return x - get_xp(x).tanh(x)

    def backward(self, g):
        (x,) = self.saved
        t = dual.tanh(x)
        return g * t * t

    def jvp(self, t):
        (x,) = self.saved
        th = get_xp(x).tanh(x)
        return t * th * th


def tanhshrink(input: Tensor) -> Tensor:
    """input - tanh(input)"""
    return Tanhshrink.apply(_floating(input))
