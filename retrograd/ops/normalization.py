"""Fused primitives of the layers: normalization (layer, RMS, batch), the linear map, embedding.

Each is one node with a closed-form rule. A plain backward runs the rule on arrays, reusing the
statistics saved by the forward; with `create_graph=True` the rule recomputes the statistics
from the input Tensor with ordinary ops, so gradients of gradients flow through them too.
"""

from __future__ import annotations

import math

from retrograd.autograd.forward_ad import add_tangents, replay
from retrograd.autograd.function import Function
from retrograd.backend import get_xp
from retrograd.ops import dual
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

    def forward(self, x, *wb, axes, paxes, pshape, eps, center, has_w, has_b, stats=None):
        self.axes, self.paxes, self.pshape = axes, paxes, pshape
        self.eps, self.center, self.has_w, self.has_b = eps, center, has_w, has_b
        if stats is None:
            xhat, rstd = _stats_array(x, axes, eps, center)
        else:
            mean, var = stats
            rstd = 1 / get_xp(x).sqrt(var + eps)
            xhat = (x - mean) * rstd
        w = wb[0] if has_w else None
        self.save(x, w, xhat, rstd)  # w as given: under create_graph it comes back as the input
        out = xhat * w.reshape(pshape) if has_w else xhat
        if has_b:
            out = out + wb[-1].reshape(pshape)
        return out

    def backward(self, g):
        x, w, xhat, rstd = self.saved
        if isinstance(x, Tensor):  # create_graph: statistics as functions of x
            xhat, rstd = _stats_tensor(x, self.axes, self.eps, self.center)
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
        grads = [gx]
        if self.has_w:
            grads.append(gw)
        if self.has_b:
            grads.append(gb)
        return tuple(grads)

    def jvp(self, tx, *twb):
        x, w, xhat, rstd = self.saved
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


class Linear(Function):
    """out = x @ w^T + b;  gx = g @ w,  gw = g^T @ x,  gb = sum(g) over the leading dims
    (the batch dims are folded into the rows: one matrix product per gradient)"""

    raw = True

    def forward(self, x, w, *b):
        self.save(x, w)
        n, k = w.shape
        if x.ndim == 1:
            out = w @ x
        elif x.ndim == 2:
            out = x @ w.T
        else:
            out = (x.reshape(-1, k) @ w.T).reshape(*x.shape[:-1], n)
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
            if need[0]:
                gx = g2 @ w
                if len(x.shape) != 2:
                    gx = dual.reshape(gx, x.shape)
            if need[1]:
                gw = dual.swap_last(g2) @ _rows(x, k)
            if len(need) > 2 and need[2]:
                gb = dual.sum(g2, 0)
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
        xp.add.at(gw, flat, g.reshape(-1, shape[1]))
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
