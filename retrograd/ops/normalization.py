"""Fused primitives of the layers: normalization (layer, RMS, batch), the linear map, embedding.

Each is one node with a closed-form rule. A plain backward runs the rule on arrays, reusing the
statistics saved by the forward; with `create_graph=True` the rule recomputes the statistics
from the input Tensor with ordinary ops, so gradients of gradients flow through them too.
"""

from __future__ import annotations

import math

from retrograd import parallel
from retrograd.autograd.forward_ad import add_tangents, replay
from retrograd.autograd.function import Function
from retrograd.backend import MALLOC_PAD, get_xp
from retrograd.ops import dual
from retrograd.ops._buffers import buffers_of
from retrograd.ops._util import quiet, quiet_block
from retrograd.ops.elementwise import rsqrt
from retrograd.tensor import Tensor

__all__ = ["layer_norm", "rms_norm", "batch_norm", "linear", "bilinear"]

_TORCH_NAMES = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long"}


def _torch_name(dtype) -> str:
    return _TORCH_NAMES.get(str(dtype), str(dtype))


def _size(shape) -> str:
    return f"[{', '.join(str(s) for s in shape)}]"


# -- normalization ---------------------------------------------------------------------------------
def _stats_array(x, axes, eps, center):
    """(xhat, rstd): x centred (or not, for RMS) and scaled to unit mean square over axes."""
    xp = get_xp(x)
    xc = x - x.mean(axis=axes, keepdims=True) if center else x
    var = (xc * xc).mean(axis=axes, keepdims=True)
    rstd = 1 / xp.sqrt(var + eps)
    return xc * rstd, rstd


def _rows_layout(x, axes) -> bool:
    """Whether axes are x's trailing dims (layer norm) and x is a contiguous array: then the
    statistics and the rule work on rows of a 2-D view."""
    nd = x.ndim
    tail = tuple(range(nd - len(axes), nd))
    return bool(axes) and axes == tail and x.size > 0 and x.flags.c_contiguous


def _layer_stats_rows(x, k, eps):
    """_stats_array over the k trailing dims of a contiguous x, with one full-size temporary
    (xhat itself) instead of four."""
    xp = get_xp(x)
    n = math.prod(x.shape[x.ndim - k :])
    x2 = x.reshape(-1, n)
    xhat = x2 - x2.mean(axis=1, keepdims=True)
    var = xp.einsum("ij,ij->i", xhat, xhat).reshape(-1, 1)  # sum of squares, no temporary
    var /= n
    var += eps
    rstd = xp.sqrt(var)
    xp.divide(1, rstd, out=rstd)
    xhat *= rstd
    lead = x.shape[: x.ndim - k]
    return xhat.reshape(x.shape), rstd.reshape(*lead, *(1,) * k)


def _xhat_rows(x, rstd):
    """(x - mean) * rstd again from the saved x and rstd (layer norm keeps no xhat, as PyTorch:
    the mean is recovered from rstd's rows, one pass over x)."""
    n = x.size // rstd.size if rstd.size else 1
    x2 = x.reshape(-1, n)
    xhat = x2 - x2.mean(axis=1, keepdims=True)
    xhat *= rstd.reshape(-1, 1)
    return xhat.reshape(x.shape)


def _affine_in_place(xhat, wb, pshape) -> bool:
    """Whether xhat * w + b can be written over xhat (same dtype, no broadcasting beyond it)."""
    xp = get_xp(xhat)
    return all(
        p.dtype == xhat.dtype
        and xp.broadcast_shapes(xhat.shape, (1,) * (xhat.ndim - len(pshape)) + tuple(pshape))
        == xhat.shape
        for p in wb
    )


def _stats_tensor(x: Tensor, axes, eps, center):
    """The same statistics as differentiable ops (the rule under create_graph=True)."""
    xc = x - x.mean(axes, keepdim=True) if center else x
    rstd = rsqrt((xc * xc).mean(axes, keepdim=True) + eps)
    return xc * rstd, rstd


def _mean(a, axes):
    if isinstance(a, Tensor):
        return a.mean(axes, keepdim=True)
    return a.mean(axis=axes, keepdims=True)


def _sum(a, axes):
    """Sum over axes; no axes: a itself (ops.sum reads an empty tuple as all dims)."""
    return dual.sum(a, axes) if axes else a


class Normalize(Function):
    """xhat = (x - mean) * rstd over axes (RMS: xhat = x * rstd), rstd = 1/sqrt(var + eps);
    out = xhat * w + b;  gx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)) with
    gxhat = g * w (RMS: no mean(gxhat) term);  gw = sum(g * xhat),  gb = sum(g) over paxes"""

    raw = True

    @quiet  # inf - inf, float32 squares overflowing: nan/inf without a warning, as PyTorch
    def forward(self, x, *wb, axes, paxes, pshape, eps, center, has_w, has_b, stats=None):
        self.axes, self.paxes, self.pshape = axes, paxes, pshape
        self.eps, self.center, self.has_w, self.has_b = eps, center, has_w, has_b
        if stats is None and center and _rows_layout(x, axes):
            xhat, rstd = _layer_stats_rows(x, len(axes), eps)
            if _affine_in_place(xhat, wb, pshape):
                # out is written over xhat and only x and rstd are kept: one full-size array
                self.save(x, wb[0] if has_w else None, None, rstd)
                if has_w:
                    xhat *= wb[0].reshape(pshape)
                if has_b:
                    xhat += wb[-1].reshape(pshape)
                return xhat
        elif stats is None:
            xhat, rstd = _stats_array(x, axes, eps, center)
        else:
            mean, var = stats
            rstd = 1 / get_xp(x).sqrt(var + eps)
            xhat = (x - mean) * rstd
        w = wb[0] if has_w else None
        self.save(x, w, xhat, rstd)  # w as given: under create_graph it comes back as the input
        if has_w:
            out = xhat * w.reshape(pshape)
            if has_b:
                out += wb[-1].reshape(pshape)  # in place: no second full-size array
            return out
        return xhat + wb[-1].reshape(pshape) if has_b else xhat

    def backward(self, g):
        x, w, xhat, rstd = self.saved
        recomputed = None
        if isinstance(x, Tensor):  # create_graph: statistics as functions of x
            xhat, rstd = _stats_tensor(x, self.axes, self.eps, self.center)
        elif xhat is None:
            xhat = recomputed = _xhat_rows(x, rstd)
        if not isinstance(x, Tensor) and (
            self.center
            and _rows_layout(xhat, self.axes)
            and self.paxes == tuple(range(xhat.ndim - len(self.axes)))
            and g.shape == xhat.shape
        ):  # layer norm: statistics and parameters over the trailing dims
            return self._backward_rows(g, w, xhat, rstd, xhat is recomputed)
        if w is not None:
            w = dual.reshape(w, self.pshape)
        need = self.needs_input_grad
        gx = gw = gb = None
        if need[0]:
            gxhat = g * w if w is not None else g
            inner = gxhat - xhat * _mean(gxhat * xhat, self.axes)
            if self.center:
                inner = inner - _mean(gxhat, self.axes)
            gx = rstd * inner
        if self.has_w and need[1]:
            gw = _sum(g * xhat, self.paxes)
        if self.has_b and need[-1]:
            gb = _sum(g, self.paxes)
        return self._grads(gx, gw, gb)

    def _grads(self, gx, gw, gb) -> tuple:
        """(gx, gw, gb) without the parameters this node does not have."""
        return (gx,) + ((gw,) if self.has_w else ()) + ((gb,) if self.has_b else ())

    def _backward_rows(self, g, w, xhat, rstd, own_xhat):
        """The rule on arrays normalised over their trailing dims (layer norm), with one
        full-size array besides gx instead of one per operator (none when xhat was recomputed
        here: own_xhat, then it is overwritten)."""
        xp = get_xp(xhat)
        n = math.prod(self.pshape)
        x2, r2 = xhat.reshape(-1, n), rstd.reshape(-1, 1)
        g2 = xp.ascontiguousarray(g).reshape(-1, n)
        need = self.needs_input_grad
        gx = gw = gb = None
        if self.has_w and need[1]:
            gw = xp.einsum("ij,ij->j", g2, x2).reshape(self.pshape)  # sum(g * xhat), no temporary
        if self.has_b and need[-1]:
            gb = g2.sum(axis=0).reshape(self.pshape)
        if need[0]:  # gx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))
            gxhat = g2 * w.reshape(1, n) if w is not None else g2.copy()
            m2 = xp.einsum("ij,ij->i", gxhat, x2).reshape(-1, 1)
            m2 /= n
            m1 = gxhat.mean(axis=1, keepdims=True)
            work = x2 if own_xhat else xp.empty_like(x2)
            xp.multiply(x2, m2, out=work)
            gxhat -= work
            gxhat -= m1
            gxhat *= r2
            gx = gxhat.reshape(xhat.shape)
        return self._grads(gx, gw, gb)

    def jvp(self, tx, *twb):
        x, w, xhat, rstd = self.saved
        if xhat is None:
            xhat = _xhat_rows(x, rstd)
        pshape, axes = self.pshape, self.axes
        tw = twb[0] if self.has_w else None
        tb = twb[-1] if self.has_b else None
        terms = []
        if tx is not None:  # d xhat = rstd (dx - mean(dx) - xhat mean(xhat dx))
            inner = tx - xhat * (tx * xhat).mean(axis=axes, keepdims=True)
            if self.center:
                inner = inner - tx.mean(axis=axes, keepdims=True)
            dxhat = rstd * inner
            terms.append(dxhat * w.reshape(pshape) if w is not None else dxhat)
        if tw is not None:
            terms.append(xhat * tw.reshape(pshape))
        if tb is not None:
            terms.append(tb.reshape(pshape))
        return add_tangents(*terms)


def _shape_tuple(normalized_shape) -> tuple:
    if isinstance(normalized_shape, int):
        return (normalized_shape,)
    return tuple(int(s) for s in normalized_shape)


def _check_normalized(input: Tensor, shape: tuple, weight, bias) -> None:
    k = len(shape)
    if k == 0 or input.data.ndim < k or tuple(input.data.shape[-k:]) != shape:
        raise RuntimeError(
            f"Given normalized_shape={_size(shape)}, expected input with shape "
            f"{_size(['*', *shape])}, but got input of size{_size(input.data.shape)}"
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.data.shape) != shape:
            raise RuntimeError(
                f"Expected {name} to be of same shape as normalized_shape, but got {name} of "
                f"shape {_size(p.data.shape)} and normalized_shape = {_size(shape)}"
            )


def _normalize(input, weight, bias, **params) -> Tensor:
    ins = [input] + [p for p in (weight, bias) if p is not None]
    return Normalize.apply(*ins, has_w=weight is not None, has_b=bias is not None, **params)


def layer_norm(
    input: Tensor,
    normalized_shape,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """(input - mean) / sqrt(var + eps) * weight + bias over the trailing normalized_shape dims."""
    shape = _shape_tuple(normalized_shape)
    _check_normalized(input, shape, weight, bias)
    nd, k = input.data.ndim, len(shape)
    return _normalize(
        input,
        weight,
        bias,
        axes=tuple(range(nd - k, nd)),
        paxes=tuple(range(nd - k)),
        pshape=shape,
        eps=eps,
        center=True,
    )


def rms_norm(
    input: Tensor, normalized_shape, weight: Tensor | None = None, eps: float | None = None
) -> Tensor:
    """input / sqrt(mean(input^2) + eps) * weight over the trailing normalized_shape dims
    (eps=None: the machine epsilon of input's dtype, as in PyTorch)."""
    shape = _shape_tuple(normalized_shape)
    _check_normalized(input, shape, weight, None)
    if eps is None:
        eps = float(get_xp(input.data).finfo(input.data.dtype).eps)
    nd, k = input.data.ndim, len(shape)
    return _normalize(
        input,
        weight,
        None,
        axes=tuple(range(nd - k, nd)),
        paxes=tuple(range(nd - k)),
        pshape=shape,
        eps=eps,
        center=False,
    )


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel (dim 1) over the batch and any trailing dims.

    training=True: batch statistics, and the running statistics (when given) are updated in
    place without a graph: r = (1 - momentum) r + momentum s, with the unbiased batch variance.
    training=False: the running statistics.
    """
    x = input.data
    if x.ndim < 2:
        raise ValueError(f"batch_norm expected at least 2D input (got {x.ndim}D input)")
    c = x.shape[1]
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if t is not None and t.data.size != c:
            raise RuntimeError(f"{name} should contain {c} elements not {t.data.size}")
    if training:
        n = x.size // c if c else 0
        if n == 1:
            raise ValueError(
                "Expected more than 1 value per channel when training, got input size "
                f"retrograd.Size({list(x.shape)})"
            )
        if eps <= 0.0:
            raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    elif eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    axes = (0, *range(2, x.ndim))
    pshape = (c,) + (1,) * (x.ndim - 2)
    if training:
        with quiet_block():
            mean = x.mean(axis=axes, keepdims=True)
            xc = x - mean
            var = (xc * xc).mean(axis=axes, keepdims=True)
        if running_mean is not None or running_var is not None:
            _update_running(running_mean, running_var, mean, var, n, momentum)
        return _normalize(
            input,
            weight,
            bias,
            axes=axes,
            paxes=axes,
            pshape=pshape,
            eps=eps,
            center=True,
            stats=(mean, var),
        )
    if running_mean is None or running_var is None:
        raise RuntimeError("running_mean and running_var must be defined in evaluation mode")
    # fixed statistics: an affine map per channel, out = x * scale + shift (two passes over x)
    rm = Tensor._make(running_mean.data.reshape(pshape), False, None, 0)
    scale = rsqrt(Tensor._make(running_var.data.reshape(pshape) + eps, False, None, 0))
    if weight is not None:
        scale = scale * weight.reshape(pshape)
    shift = -rm * scale
    if bias is not None:
        shift = shift + bias.reshape(pshape)
    return input * scale + shift


def _update_running(running_mean, running_var, mean, var, n: int, momentum: float) -> None:
    """Exponential moving averages of the batch statistics, written in place (no graph)."""
    if running_mean is not None:
        rm = running_mean.data
        rm *= 1 - momentum
        rm += (momentum * mean).reshape(rm.shape).astype(rm.dtype, copy=False)
        running_mean._version[0] += 1
    if running_var is not None:
        rv = running_var.data
        unbiased = var * (n / (n - 1)) if n > 1 else var
        rv *= 1 - momentum
        rv += (momentum * unbiased).reshape(rv.shape).astype(rv.dtype, copy=False)
        running_var._version[0] += 1


# -- the linear map --------------------------------------------------------------------------------
def _rows(a, n: int):
    """a as a 2-D matrix of rows of length n (a view when possible)."""
    return a if len(a.shape) == 2 else dual.reshape(a, (-1, n))


# a weight gradient of at least this many bytes is written into the array that held it last
# time, once nothing refers to it any more (zero_grad dropped it). glibc maps blocks this large
# fresh from the kernel (backend.MALLOC_PAD: its mmap threshold), which faults in and zeroes
# every page (W3's 4096 x 4096 layer: 64 MiB a step, 7-18 ms of system time; see _buffers).
# Smaller ones come from the heap, whose freed pages serve the next step's activations:
# keeping them here would only hold them through the forward and raise the peak (W3 with all
# three kept: 206 against 196 MB)
REUSE_GRAD_BYTES = MALLOC_PAD


def _grad_buffer(w, g, x):
    """Where w's gradient g^T x goes: a reused array for a large NumPy weight, else None."""
    if type(w).__module__ != "numpy" or len(w.shape) != 2 or w.nbytes < REUSE_GRAD_BYTES:
        return None  # (a Tensor under create_graph, a CuPy array, a small weight)
    if type(g) is not type(w) or type(x) is not type(w) or not g.dtype == x.dtype == w.dtype:
        return None
    return buffers_of(w).empty(w.shape, w.dtype, w)


class Linear(Function):
    """out = x @ w^T + b;  gx = g @ w,  gw = g^T @ x,  gb = sum(g) over the leading dims
    (the batch dims are folded into the rows: one matrix product per gradient)"""

    raw = True
    fresh_grads = True  # three arrays no one else holds (gw may be reused: _grad_buffer)

    @quiet  # 0 * inf in the product is nan without a warning, as in PyTorch
    def forward(self, x, w, *b):
        self.save(x, w)
        n, k = w.shape
        if x.ndim == 1:
            out = w @ x
        elif x.ndim == 2:
            out = parallel.matmul(x, w.T)
        else:
            out = parallel.matmul(x.reshape(-1, k), w.T).reshape(*x.shape[:-1], n)
        if b:
            out += b[0]
        return out

    def backward(self, g):
        x, w = self.saved
        need = self.needs_input_grad
        n, k = w.shape
        gx = gw = gb = None
        if len(x.shape) == 1:
            if need[0]:
                gx = g @ w
            if need[1]:
                gw = dual.expand_dims(g, (1,)) * dual.expand_dims(x, (0,))
            if len(need) > 2 and need[2]:
                gb = g
        else:
            g2 = _rows(g, n)
            if need[1]:
                gw = parallel.matmul(dual.swap_last(g2), _rows(x, k), _grad_buffer(w, g2, x))
            if len(need) > 2 and need[2]:
                gb = dual.sum(g2, 0)
            if need[0]:
                shape = x.shape
                self.release_saved()  # x is not needed for gx: free it before gx is allocated
                del x
                gx = parallel.matmul(g2, w)
                if len(shape) != 2:
                    gx = dual.reshape(gx, shape)
        return (gx, gw) if len(need) == 2 else (gx, gw, gb)

    def jvp(self, tx, tw, *tb):
        x, w = self.saved
        return add_tangents(
            None if tx is None else replay(self, tx, w),
            None if tw is None else replay(self, x, tw),
            tb[0] if tb else None,
        )


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight^T + bias (one fused node: the hot path of every MLP)."""
    x, w = input.data, weight.data
    if w.ndim != 2:
        raise RuntimeError(f"linear(): weight must be 2-D, got {w.ndim}-D")
    if x.ndim == 0:
        raise RuntimeError(
            "both arguments to linear need to be at least 1D, but they are 0D and 2D"
        )
    if x.dtype != w.dtype:
        raise RuntimeError(
            f"mat1 and mat2 must have the same dtype, but got {_torch_name(x.dtype)} and "
            f"{_torch_name(w.dtype)}"
        )
    if x.shape[-1] != w.shape[1]:
        rows = math.prod(x.shape[:-1])
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({rows}x{x.shape[-1]} and "
            f"{w.shape[1]}x{w.shape[0]})"
        )
    if bias is None:
        return Linear.apply(input, weight)
    return Linear.apply(input, weight, bias)


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """out[..., o] = sum_ij input1[..., i] weight[o, i, j] input2[..., j] + bias[o]."""
    w = weight.data
    if w.ndim != 3:
        raise RuntimeError(f"bilinear(): weight must be 3-D, got {w.ndim}-D")
    o, i, j = w.shape
    if input1.data.shape[-1] != i or input2.data.shape[-1] != j:
        raise RuntimeError(
            f"bilinear(): input sizes do not match the weight: got input1 {_size(input1.shape)}, "
            f"input2 {_size(input2.shape)} and weight {_size(w.shape)}"
        )
    if input1.data.shape[:-1] != input2.data.shape[:-1]:
        raise RuntimeError(
            "bilinear(): input batch dimensions do not match: got "
            f"{_size(input1.shape[:-1])} and {_size(input2.shape[:-1])}"
        )
    lead = input1.data.shape[:-1]
    x1 = input1.reshape(-1, i)
    x2 = input2.reshape(-1, j)
    # (N, i) @ (i, o*j) -> (N, o, j), then contract j with input2: no N*o*i*j temporary
    with quiet_block():  # inf and overflow, quietly
        t = (x1 @ weight.permute(1, 0, 2).reshape(i, o * j)).reshape(-1, o, j)
        out = (t * x2.unsqueeze(1)).sum(-1)
    if bias is not None:
        out = out + bias
    return out.reshape(*lead, o)


# -- embedding ---------------------------------------------------------------------------------
class Embedding(Function):
    """out = w[idx];  gw = rows of g added at idx (zero at padding_idx; scaled by 1/count
    of each index when scale_grad_by_freq)"""

    raw = True

    def forward(self, w, idx, padding_idx, scale_grad_by_freq):
        self.idx, self.shape = idx, w.shape
        self.padding_idx, self.scale = padding_idx, scale_grad_by_freq
        return get_xp(w).take(w, idx, axis=0)

    def backward(self, g):
        idx, shape = self.idx, self.shape
        flat = idx.reshape(-1)
        xp = get_xp(flat)
        if self.scale:  # each row's gradient divided by how often its index occurs
            counts = xp.bincount(flat, minlength=shape[0])[idx][..., None]
            counts = counts.astype(dual.data(g).dtype)
            g = g / (Tensor._make(counts, False, None, 0) if isinstance(g, Tensor) else counts)
        if isinstance(g, Tensor):
            gw = dual.pad_into(dual.reshape(g, (-1, shape[1])), shape, (flat,))
            if self.padding_idx is not None:
                keep = xp.ones((shape[0], 1), dtype=bool)
                keep[self.padding_idx] = False
                gw = dual.where(keep, gw, 0)
            return gw
        gw = xp.zeros(shape, dtype=g.dtype)
        rows = g.reshape(-1, shape[1])
        if flat.size <= 64 or not _sum_rows_by_index(gw, flat, rows):
            xp.add.at(gw, flat, rows)
        if self.padding_idx is not None:
            gw[self.padding_idx] = 0
        return gw

    def jvp(self, t):
        # the transpose of the rule (no gradient into padding_idx, scaled by frequency, as
        # PyTorch's) rather than of the plain lookup, so that both modes give one Jacobian
        xp = get_xp(t)
        if self.padding_idx is not None:
            t = t.copy()
            t[self.padding_idx] = 0
        out = xp.take(t, self.idx, axis=0)
        if self.scale:
            counts = xp.bincount(self.idx.reshape(-1), minlength=self.shape[0])[self.idx]
            out = out / counts[..., None].astype(out.dtype)
        return out


def _sum_rows_by_index(gw, flat, rows) -> bool:
    """gw[i] = the sum of the rows whose index is i, by one sort and a segmented sum (add.at,
    which adds row by row, took 4.5 ms for W6's 2048 rows of 256; this 1.8). False where the
    array library has no reduceat (then the caller uses add.at)."""
    xp = get_xp(gw)
    try:
        order = xp.argsort(flat, kind="stable")
        ordered = flat[order]
        starts = xp.flatnonzero(ordered[1:] != ordered[:-1]) + 1
        starts = xp.concatenate((xp.zeros(1, dtype=starts.dtype), starts))
        sums = xp.add.reduceat(rows[order], starts, axis=0)
    except (AttributeError, NotImplementedError, TypeError):
        return False
    gw[ordered[starts]] = sums
    return True


def embedding(
    input: Tensor,
    weight: Tensor,
    padding_idx: int | None = None,
    scale_grad_by_freq: bool = False,
) -> Tensor:
    """Rows of weight picked by the integer indices in input (the gradient adds rows back)."""
    idx = input.data
    if idx.dtype.kind not in "iu":
        raise RuntimeError(
            "Expected tensor for argument #1 'indices' to have one of the following scalar "
            f"types: Long, Int; but got {_torch_name(idx.dtype)}Tensor instead (while checking "
            "arguments for embedding)"
        )
    num = weight.data.shape[0]
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num):
        raise IndexError("index out of range in self")
    return Embedding.apply(
        weight, idx=idx, padding_idx=padding_idx, scale_grad_by_freq=scale_grad_by_freq
    )
