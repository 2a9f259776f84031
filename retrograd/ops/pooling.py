"""Pooling, resampling and the image norms: max/avg pools (sliding windows), adaptive pools,
interpolate (nearest, linear, bilinear, bicubic, trilinear, area), pixel (un)shuffle, and the
functional group_norm, instance_norm and dropout2d.

Pools work on the trailing 1 or 2 dims (every leading dim is a plane: batch and channel alike), by
a loop over the kernel offsets, each a strided view of the (padded) input: no loop over pixels,
channels or batch. Max pools record the flat index of each window's maximum within its plane (as
PyTorch's `return_indices`); their gradient adds g at those indices, and the gradient of that
gathers at them again, so second order works. Max pooling over 2x2 blocks (kernel and stride 2,
the common case) takes pairwise maxima instead and keeps two booleans per output for its
gradient (`MaxPool2x2`), not an int64 index. Resampling along an axis is a linear map given by a
small matrix (a gather for nearest modes): bilinear, bicubic and adaptive average pooling apply
one matrix per spatial axis, the gradient applies its transpose.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
import warnings

from retrograd import backend
from retrograd.autograd.forward_ad import replay
from retrograd.autograd.function import Function
from retrograd.backend import get_xp
from retrograd.ops._util import canonical_dim, quiet_block
from retrograd.ops.normalization import _normalize, batch_norm
from retrograd.parallel import parallel_ranges, threads_for
from retrograd.tensor import Tensor

__all__ = [
    "max_pool1d",
    "max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "interpolate",
    "upsample",
    "pixel_shuffle",
    "pixel_unshuffle",
    "group_norm",
    "instance_norm",
    "dropout2d",
]


def _const(a) -> Tensor:
    return Tensor._make(a, False, None, 0)


def _size(shape) -> str:
    return f"[{', '.join(str(s) for s in shape)}]"


# -- gather at / scatter to flat indices within each plane -------------------------------------
def _planes(shape, nsp: int):
    """(number of planes, plane size) of an array whose trailing nsp dims form the planes."""
    return math.prod(shape[: len(shape) - nsp]), math.prod(shape[len(shape) - nsp :])


def _take_array(x, idx, nsp: int):
    b, p = _planes(x.shape, nsp)
    if idx.size == 0:
        return get_xp(x).zeros(idx.shape, dtype=x.dtype)
    flat = get_xp(x).take_along_axis(x.reshape(b, p), idx.reshape(b, -1), axis=1)
    return flat.reshape(idx.shape)


def _put_array(g, idx, shape, nsp: int, unique: bool):
    """zeros(shape) with g added at the flat indices idx of each plane."""
    xp = get_xp(g)
    b, p = _planes(shape, nsp)
    if idx.size == 0:
        return xp.zeros(shape, dtype=g.dtype)
    idx2 = idx.reshape(b, -1)
    if unique:  # disjoint windows: each position is written at most once
        out = xp.zeros((b, p), dtype=g.dtype)
        out[xp.arange(b)[:, None], idx2] = g.reshape(b, -1)
        return out.reshape(shape)
    flat = (idx2 + (xp.arange(b, dtype=idx2.dtype) * p)[:, None]).reshape(-1)
    summed = xp.bincount(flat, weights=g.reshape(-1), minlength=b * p)
    return summed.astype(g.dtype, copy=False).reshape(shape)


class TakeAt(Function):
    """out = x at the flat indices idx of each plane (values may be given, found by a search);
    gx = g added at idx"""

    raw = True

    def forward(self, x, idx, nsp, unique, values=None):
        self.idx, self.shape, self.nsp, self.unique = idx, x.shape, nsp, unique
        return _take_array(x, idx, nsp) if values is None else values

    def backward(self, g):
        return _put(g, self.idx, self.shape, self.nsp, self.unique)

    def jvp(self, t):
        return replay(self, t, values=None)  # the values found by a search are the primal's


class PutAt(Function):
    """out = zeros(shape) with g added at the flat indices idx of each plane;  gg = out_grad
    taken at idx"""

    raw = True

    def forward(self, g, idx, shape, nsp, unique):
        self.idx, self.nsp, self.unique = idx, nsp, unique
        return _put_array(g, idx, shape, nsp, unique)

    def backward(self, gg):
        return _take(gg, self.idx, self.nsp, self.unique)

    def jvp(self, t):
        return replay(self, t)


def _take(a, idx, nsp, unique):
    if isinstance(a, Tensor):
        return TakeAt.apply(a, idx=idx, nsp=nsp, unique=unique)
    return _take_array(a, idx, nsp)


def _put(g, idx, shape, nsp, unique):
    if isinstance(g, Tensor):
        return PutAt.apply(g, idx=idx, shape=tuple(shape), nsp=nsp, unique=unique)
    return _put_array(g, idx, shape, nsp, unique)


# -- sliding windows ---------------------------------------------------------------------------
def _pool_out(n: int, k: int, p: int, s: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling_output_shape: floor (or ceil) division, last window starting inside."""
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


class _Windows:
    """The geometry of a sliding-window pool over the trailing dims of an input."""

    def __init__(self, sizes, kernel, stride, padding, dilation, ceil_mode) -> None:
        self.sizes, self.kernel, self.stride = tuple(sizes), tuple(kernel), tuple(stride)
        self.padding, self.dilation = tuple(padding), tuple(dilation)
        self.nsp = len(self.sizes)
        self.out = tuple(
            _pool_out(n, k, p, s, d, ceil_mode)
            for n, k, s, p, d in zip(sizes, kernel, stride, padding, dilation)
        )
        # the padded extent the windows read: PyTorch clips windows of ceil_mode at the border
        self.extent = tuple(
            (o - 1) * s + (k - 1) * d + 1 for o, k, s, d in zip(self.out, kernel, stride, dilation)
        )
        self.copy = any(p > 0 or e > n for p, e, n in zip(padding, self.extent, sizes))
        # windows that cannot overlap hit each input position at most once (fast scatter)
        self.disjoint = all(s >= (k - 1) * d + 1 for k, s, d in zip(kernel, stride, dilation))
        self.offsets = list(itertools.product(*(range(k) for k in kernel)))

    def padded(self, x, fill):
        """x with `padding` on the left and enough fill on the right for every window."""
        if not self.copy:
            return x
        xp = get_xp(x)
        lead = x.shape[: x.ndim - self.nsp]
        out = xp.full(lead + self.extent, fill, dtype=x.dtype)
        keep = [min(n, e - p) for n, e, p in zip(self.sizes, self.extent, self.padding)]
        dst = tuple(slice(p, p + m) for p, m in zip(self.padding, keep))
        out[(Ellipsis, *dst)] = x[(Ellipsis, *(slice(0, m) for m in keep))]
        return out

    def unpadded(self, gpad, xp):
        """The part of a padded-shape array that lies over the input (zeros where cut off)."""
        if not self.copy:
            return gpad
        lead = gpad.shape[: gpad.ndim - self.nsp]
        out = xp.zeros(lead + self.sizes, dtype=gpad.dtype)
        keep = [min(n, e - p) for n, e, p in zip(self.sizes, self.extent, self.padding)]
        src = tuple(slice(p, p + m) for p, m in zip(self.padding, keep))
        out[(Ellipsis, *(slice(0, m) for m in keep))] = gpad[(Ellipsis, *src)]
        return out

    def window(self, offset) -> tuple:
        """The index picking, for every output position, its window's entry at `offset`."""
        return (Ellipsis,) + tuple(
            slice(i * d, i * d + (o - 1) * s + 1, s)
            for i, o, s, d in zip(offset, self.out, self.stride, self.dilation)
        )

    def flat_index(self, offset, xp):
        """(flat index of the input position, valid mask or None) of each output position."""
        flat, valid = None, None
        step = 1
        for dim in range(self.nsp - 1, -1, -1):
            i, o, s, p, d, n = (
                offset[dim],
                self.out[dim],
                self.stride[dim],
                self.padding[dim],
                self.dilation[dim],
                self.sizes[dim],
            )
            pos = xp.arange(o, dtype=backend.int64) * s + (i * d - p)
            shape = [1] * self.nsp
            shape[dim] = o
            pos = pos.reshape(shape)
            term = pos * step
            flat = term if flat is None else flat + term
            if p > 0 or (o - 1) * s + i * d - p >= n:
                ok = (pos >= 0) & (pos < n)
                valid = ok if valid is None else valid & ok
            step *= n
        return flat, valid


def _max_windows(x, w: _Windows):
    """(max of each window, flat index of its first maximum in the plane), as PyTorch: ties go
    to the first position in the window, a NaN wins (the last NaN of the window)."""
    xp = get_xp(x)
    floating = x.dtype.kind == "f"
    fill = -xp.inf if floating else xp.iinfo(x.dtype).min
    xpad = w.padded(x, fill)
    offsets = w.offsets
    best = xpad[w.window(offsets[0])].copy()
    for off in offsets[1:]:
        xp.maximum(best, xpad[w.window(off)], out=best)
    idx = xp.zeros(best.shape, dtype=backend.int64)
    hit = xp.empty(best.shape, dtype=bool)
    for off in reversed(offsets):  # the first offset holding the maximum is written last
        xp.equal(xpad[w.window(off)], best, out=hit)
        flat, valid = w.flat_index(off, xp)
        if valid is not None:
            hit &= valid
        xp.copyto(idx, flat, where=hit)
    if floating and best.size and bool(xp.isnan(best).any()):
        for off in offsets:
            flat, valid = w.flat_index(off, xp)
            hit = xp.isnan(xpad[w.window(off)])
            if valid is not None:
                hit &= valid
            xp.copyto(idx, flat, where=hit)
    return best, idx


# -- max pool over 2x2 blocks (kernel 2, stride 2): pairwise maxima ---------------------------
def _pairs_ok(x, w: _Windows) -> bool:
    """2x2 blocks tiling the plane: kernel and stride 2, no padding or dilation, even sizes."""
    return (
        w.nsp == 2
        and w.kernel == (2, 2)
        and w.stride == (2, 2)
        and w.padding == (0, 0)
        and w.dilation == (1, 1)
        and x.size > 0
        and all(n % 2 == 0 for n in w.sizes)
    )


def _max_pairs(x):
    """(max of each 2x2 block, whether its bottom row holds the maximum, whether the right
    column of that row does): left of top first, as PyTorch's scan of the block in row-major
    order (ties to the first; a NaN wins, the last NaN), over horizontal pairs then rows.
    Rows of blocks go in ranges over the CPU threads (retrograd.parallel)."""
    xp = get_xp(x)
    h, wd = x.shape[-2:]
    blocks = x.reshape(-1, 2, wd)  # rows of blocks: (top row, bottom row)
    nrows, half = blocks.shape[0], wd // 2
    out = xp.empty((nrows, half), dtype=x.dtype)
    down = xp.empty((nrows, half), dtype=bool)
    col = xp.empty((nrows, half), dtype=bool)
    nan_ok = x.dtype.kind == "f"

    def rows(r0, r1):
        pairs = blocks[r0:r1].reshape(-1, 2)
        left, right = pairs[:, 0], pairs[:, 1]
        best = xp.maximum(left, right).reshape(-1, 2, half)  # each row's max, rows in pairs
        right_wins = xp.greater(right, left)
        top, bottom = best[:, 0], best[:, 1]
        o = xp.maximum(top, bottom, out=out[r0:r1])
        d = xp.greater(bottom, top, out=down[r0:r1])
        if nan_ok and bool(xp.isnan(o).any()):
            right_wins |= xp.isnan(right)
            d |= xp.isnan(bottom)
        rw = right_wins.reshape(-1, 2, half)
        flip = rw[:, 0] ^ rw[:, 1]
        flip &= d
        xp.bitwise_xor(rw[:, 0], flip, out=col[r0:r1])  # the chosen row's, without branches

    parallel_ranges(nrows, rows, threads_for(x, 2 * x.nbytes))
    return out.reshape(x.shape[:-2] + (h // 2, half)), down, col


def _pairs_index(down, col, shape):
    """The flat index within the plane (h * W + w) of each block's maximum."""
    xp = get_xp(down)
    h, wd = shape[-2:]
    i = xp.arange(0, h, 2, dtype=backend.int64).reshape(-1, 1)
    j = xp.arange(0, wd, 2, dtype=backend.int64)
    out = shape[:-2] + (h // 2, wd // 2)
    return (i + down.reshape(out)) * wd + (j + col.reshape(out))


def _max_pairs_adjoint(g, down, col, shape):
    """zeros(shape) with g at each block's maximum: mask products into the four block corners
    (g finite: 0 * g is then exactly 0), rows of blocks in ranges over the CPU threads."""
    xp = get_xp(g)
    g2 = g.reshape(down.shape)
    gx = xp.empty((g2.shape[0], 2, g2.shape[1], 2), dtype=g.dtype)

    def rows(r0, r1):
        gr, out = g2[r0:r1], gx[r0:r1]
        lower = xp.multiply(gr, down[r0:r1])
        upper = xp.subtract(gr, lower)
        for r, part in ((0, upper), (1, lower)):
            xp.multiply(part, col[r0:r1], out=out[:, r, :, 1])
            xp.subtract(part, out[:, r, :, 1], out=out[:, r, :, 0])

    parallel_ranges(g2.shape[0], rows, threads_for(g, 8 * g.nbytes))
    return gx.reshape(shape)


class MaxPool2x2(Function):
    """out = max of each 2x2 block;  gx = g at each block's first maximum, zeros elsewhere"""

    raw = True

    def forward(self, x):
        out, down, col = _max_pairs(x)
        self.shape = x.shape
        self.save(down, col)  # two bytes per output, freed after the backward
        return out

    def indices(self):
        down, col = (a.data if isinstance(a, Tensor) else a for a in self.saved)
        return _pairs_index(down, col, self.shape)

    def backward(self, g):
        if isinstance(g, Tensor) or not bool(get_xp(g).isfinite(g).all()):
            return _put(g, self.indices(), self.shape, 2, True)
        down, col = self.saved
        return _max_pairs_adjoint(g, down, col, self.shape)

    def jvp(self, t):
        return _take(t, self.indices(), 2, True)


class AvgPool(Function):
    """out = sum of each window / divisor;  gx = g / divisor added back over each window"""

    raw = True

    def forward(self, x, w, divisor):
        self.w, self.divisor = w, divisor
        return _avg_array(x, w, divisor)

    def backward(self, g):
        return _avg_adjoint(g, self.w, self.divisor)

    def jvp(self, t):
        return replay(self, t)


class AvgPoolAdjoint(Function):
    """out = g / divisor added over each window of an input-shaped zero array (the rule of
    AvgPool);  gg = AvgPool of out_grad"""

    raw = True

    def forward(self, g, w, divisor):
        self.w, self.divisor = w, divisor
        return _avg_adjoint_array(g, w, divisor)

    def backward(self, gg):
        return _avg(gg, self.w, self.divisor)

    def jvp(self, t):
        return replay(self, t)


def _avg_array(x, w: _Windows, divisor):
    xpad = w.padded(x, 0)
    out = xpad[w.window(w.offsets[0])].copy()
    for off in w.offsets[1:]:
        out += xpad[w.window(off)]
    out /= divisor
    return out


def _avg_adjoint_array(g, w: _Windows, divisor):
    xp = get_xp(g)
    lead = g.shape[: g.ndim - w.nsp]
    gpad = xp.zeros(lead + (w.extent if w.copy else w.sizes), dtype=g.dtype)
    gd = g / divisor
    for off in w.offsets:
        gpad[w.window(off)] += gd
    return w.unpadded(gpad, xp)


def _avg(a, w, divisor):
    if isinstance(a, Tensor):
        return AvgPool.apply(a, w=w, divisor=divisor)
    return _avg_array(a, w, divisor)


def _avg_adjoint(g, w, divisor):
    if isinstance(g, Tensor):
        return AvgPoolAdjoint.apply(g, w=w, divisor=divisor)
    return _avg_adjoint_array(g, w, divisor)


def _avg_divisor(w: _Windows, count_include_pad: bool, divisor_override, xp, dtype):
    """PyTorch's divide factor per output position (a product of per-dim window counts)."""
    if divisor_override:
        return xp.asarray(divisor_override, dtype=dtype)
    div = None
    for dim in range(w.nsp):
        o, k, s, p, n = w.out[dim], w.kernel[dim], w.stride[dim], w.padding[dim], w.sizes[dim]
        start = xp.arange(o, dtype=backend.int64) * s - p
        end = xp.minimum(start + k, n + p)
        if count_include_pad:
            cnt = end - start
        else:
            cnt = xp.minimum(end, n) - xp.maximum(start, 0)
        shape = [1] * w.nsp
        shape[dim] = o
        cnt = cnt.reshape(shape)
        div = cnt if div is None else div * cnt
    return div.astype(dtype)


# -- argument handling -------------------------------------------------------------------------
def _ints(value, n: int, name: str, op: str, allow_none: bool = False):
    """An int or a sequence of n ints (a 1-sequence is repeated), with PyTorch's message."""
    if value is None and allow_none:
        return None
    if isinstance(value, numbers.Integral):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * n
    if len(value) != n:
        if n == 1:
            raise RuntimeError(
                f"{op}() argument '{name}' should contain one int (got {len(value)})"
            )
        what = {
            "kernel_size": "must either be a single int, or a tuple of two ints",
            "stride": "must either be omitted, a single int, or a tuple of two ints",
            "padding": "must either be a single int, or a tuple of two ints",
            "dilation": "must be either a single int, or a tuple of two ints",
        }[name]
        raise RuntimeError(f"{op}: {name} {what}")
    return value


def _check_pool(x, w_args) -> None:
    """PyTorch's pooling_output_shape and pool2d_shape_check, in their order."""
    sizes, kernel, stride, padding, dilation, ceil_mode = w_args
    for k, s, p, d in zip(kernel, stride, padding, dilation):
        if s == 0:
            raise RuntimeError("stride should not be zero")
        if p < 0:
            raise RuntimeError(f"pad must be non-negative, but got pad: {p}")
        if p > ((k - 1) * d + 1) // 2:
            raise RuntimeError(
                "pad should be at most half of effective kernel size, but got "
                f"pad={p}, kernel_size={k} and dilation={d}"
            )
    kh, kw = (1, *kernel)[-2:]
    sh, sw = (1, *stride)[-2:]
    dh, dw = (1, *dilation)[-2:]
    ph, pw = (0, *padding)[-2:]
    if kh <= 0 or kw <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {kh} kW: {kw}")
    if sh <= 0 or sw <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got dH: {sh} dW: {sw}")
    if dh <= 0 or dw <= 0:
        raise RuntimeError(
            f"dilation should be greater than zero, but got dilationH: {dh} dilationW: {dw}"
        )
    shape = x.shape
    if len(kernel) == 2 and (shape[-3] == 0 or 0 in shape[-2:]):
        raise RuntimeError(
            "Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, "
            f"but got:{_size(shape)}"
        )
    if kw // 2 < pw or kh // 2 < ph:
        raise RuntimeError(
            "pad should be smaller than or equal to half of kernel size, but got "
            f"padW = {pw}, padH = {ph}, kW = {kw}, kH = {kh}"
        )
    out = [_pool_out(n, k, p, s, d, ceil_mode) for n, k, s, p, d in zip(*w_args[:5])]
    oh, ow = (1, *out)[-2:]
    if oh < 1 or ow < 1:
        ih, iw = (1, *sizes)[-2:]
        c = shape[-len(sizes) - 1]
        raise RuntimeError(
            f"Given input size: ({c}x{ih}x{iw}). Calculated output size: ({c}x{oh}x{ow}). "
            "Output size is too small"
        )


def _check_max_pool1d(x, kernel, stride, padding, dilation, ceil_mode) -> None:
    (k,), (s,), (p,), (d,) = kernel, stride, padding, dilation
    if k <= 0:
        raise RuntimeError(f"max_pool1d() kernel_size must be greater than zero, but got {k}")
    if s <= 0:
        raise RuntimeError(f"max_pool1d() stride must be greater than zero, but got {s}")
    if p < 0:
        raise RuntimeError(f"max_pool1d() padding must be non-negative, but got {p}")
    if p > k // 2:
        raise RuntimeError(
            "max_pool1d() padding should be at most half of kernel size, but got "
            f"padding={p} and kernel_size={k}"
        )
    if d <= 0:
        raise RuntimeError(f"max_pool1d() dilation must be greater than zero, but got {d}")
    out = _pool_out(x.shape[-1], k, p, s, d, ceil_mode)
    if out <= 0:
        raise RuntimeError(f"max_pool1d() Invalid computed output size: {out}")


def _pool_args(input, nsp, kernel_size, stride, padding, dilation, op):
    kernel = _ints(kernel_size, nsp, "kernel_size", op)
    empty = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    stride = kernel if empty else _ints(stride, nsp, "stride", op)
    padding = _ints(padding, nsp, "padding", op)
    dilation = _ints(dilation, nsp, "dilation", op)
    sizes = tuple(input.data.shape[-nsp:])
    return sizes, kernel, stride, padding, dilation


# -- max pools ---------------------------------------------------------------------------------
def _max_pool(input: Tensor, w: _Windows, return_indices: bool):
    if _pairs_ok(input.data, w):
        if not return_indices:
            return MaxPool2x2.apply(input)
        values, down, col = _max_pairs(input.data)
        idx = _pairs_index(down, col, input.data.shape)
        out = TakeAt.apply(input, idx=idx, nsp=2, unique=True, values=values)
        return out, _const(idx)
    values, idx = _max_windows(input.data, w)
    out = TakeAt.apply(input, idx=idx, nsp=w.nsp, unique=w.disjoint, values=values)
    return (out, _const(idx)) if return_indices else out


def max_pool1d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """Max over sliding windows along the last dim of (N, C, L) or (C, L) input; indices:
    position of each maximum along L (ties: the first)."""
    x = input.data
    if x.ndim not in (2, 3) or x.shape[-2] == 0 or x.shape[-1] == 0:
        raise RuntimeError(
            "max_pool1d: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch size "
            f"for input, but got:{_size(x.shape)}"
        )
    for name, v, what in (
        ("kernel_size", kernel_size, "an int, list of ints or tuple of ints"),
        ("stride", stride, "None, an int, list of ints, or tuple of ints"),
        ("padding", padding, "an int, list of ints, or tuple of ints"),
        ("dilation", dilation, "an int, list of ints or tuple of ints"),
    ):
        if isinstance(v, (tuple, list)) and len(v) != 1 and not (name == "stride" and not v):
            raise RuntimeError(
                f"max_pool1d() {name} must be {what} of size 1 but got size {len(v)}"
            )
    sizes, kernel, stride, padding, dilation = _pool_args(
        input, 1, kernel_size, stride, padding, dilation, "max_pool1d"
    )
    _check_max_pool1d(x, kernel, stride, padding, dilation, ceil_mode)
    w = _Windows(sizes, kernel, stride, padding, dilation, ceil_mode)
    return _max_pool(input, w, return_indices)


def max_pool2d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """Max over sliding kernel_size windows of the last two dims of (N, C, H, W) or (C, H, W)
    input; indices: flat position h * W + w of each maximum in its plane (ties: the first)."""
    if input.data.ndim not in (3, 4):
        raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
    args = _pool_args(input, 2, kernel_size, stride, padding, dilation, "max_pool2d")
    _check_pool(input.data, (*args, ceil_mode))
    w = _Windows(*args, ceil_mode)
    return _max_pool(input, w, return_indices)


# -- average pools -----------------------------------------------------------------------------
def _avg_pool(input, w, count_include_pad, divisor_override):
    x = input.data
    divisor = _avg_divisor(w, count_include_pad, divisor_override, get_xp(x), x.dtype)
    return AvgPool.apply(input, w=w, divisor=divisor)


def avg_pool1d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """Mean over sliding windows along the last dim of (N, C, L) or (C, L) input (padding counts
    in the divisor when count_include_pad)."""
    x = input.data
    if x.ndim not in (2, 3):
        raise RuntimeError(
            f"Expected 2 to 3 dimensions, but got {x.ndim}-dimensional tensor for argument #1 "
            "'self' (while checking arguments for avg_pool1d)"
        )
    args = _pool_args(input, 1, kernel_size, stride, padding, 1, "avg_pool1d")
    sizes, kernel, stride, padding, dilation = args
    # PyTorch runs avg_pool2d on (C, 1, L): its checks and messages, with a height of 1
    shape2d = x.shape[:-1] + (1, x.shape[-1])
    _check_pool(
        _Shape(shape2d),
        ((1, *sizes), (1, *kernel), (1, *stride), (0, *padding), (1, 1), ceil_mode),
    )
    w = _Windows(sizes, kernel, stride, padding, dilation, ceil_mode)
    return _avg_pool(input, w, count_include_pad, None)


class _Shape:
    """Stands in for an array in the checks: only its shape is read."""

    def __init__(self, shape) -> None:
        self.shape, self.ndim = tuple(shape), len(shape)


def avg_pool2d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Mean over sliding kernel_size windows of the last two dims of (N, C, H, W) or (C, H, W)
    input; divisor_override replaces the window size as the divisor."""
    x = input.data
    if x.ndim < 3:
        canonical_dim(-3, x.ndim)  # PyTorch reads size(-3) first: an IndexError
    if x.ndim not in (3, 4):
        raise RuntimeError(
            "Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, "
            f"but got:{_size(x.shape)}"
        )
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    args = _pool_args(input, 2, kernel_size, stride, padding, 1, "avg_pool2d")
    _check_pool(x, (*args, ceil_mode))
    w = _Windows(*args, ceil_mode)
    return _avg_pool(input, w, count_include_pad, divisor_override)


# -- resampling along an axis by a matrix --------------------------------------------------------
# A map also comes as taps (cols, weights, valid): output o adds weights[o, k] * x[cols[o, k]]
# over k (where valid[o, k], if given), PyTorch's own kernel arithmetic. The dense product is
# fast but multiplies every input by the matrix's zeros: one inf or nan input would turn every
# output into nan (0 * inf). `_separable` checks its input once, and builds and passes the taps
# only when it holds an inf or nan.
def _map_array(x, m, axis: int, idx=None, taps=None):
    xp = get_xp(x)
    if idx is not None:
        return xp.take(x, idx, axis=axis)
    if taps is not None:
        return _tap_array(x, taps, axis)
    o, n = m.shape
    if axis == x.ndim - 1:
        lead = x.shape[:-1]
        return (x.reshape(-1, n) @ m.T).reshape(*lead, o)
    # (o, n) @ (lead, n, trail): a batch of matrix products, no transposed copies
    lead, trail = x.shape[:axis], x.shape[axis + 1 :]
    out = m @ x.reshape(math.prod(lead), n, math.prod(trail))
    return out.reshape(*lead, o, *trail)


def _tap_array(x, taps, axis: int):
    """sum_k weights[:, k] * x[cols[:, k]] along axis (invalid taps left out): inf and nan reach
    only the outputs whose taps hold them."""
    xp = get_xp(x)
    cols, weights, valid = taps
    shape = (cols.shape[0],) + (1,) * (x.ndim - axis - 1)  # broadcasts along axis
    out = None
    with quiet_block():  # inf * 0 of an invalid tap is dropped by the where
        for k in range(cols.shape[1]):
            term = xp.take(x, cols[:, k], axis=axis) * weights[:, k].reshape(shape)
            if valid is not None:
                term = xp.where(valid[:, k].reshape(shape), term, 0)
            out = term if out is None else out + term
    return out.astype(x.dtype, copy=False)


class AxisMap(Function):
    """out[.., o, ..] = sum_i m[o, i] x[.., i, ..] along axis (a gather at idx when each row of
    m picks one entry; by its taps when given, for inputs with an inf or nan);
    gx = m^T applied along axis"""

    raw = True

    def forward(self, x, m, axis, idx=None, taps=None):
        self.m, self.axis = m, axis
        return _map_array(x, m, axis, idx, taps)

    def backward(self, g):
        return _axis_map(g, self.m.T, self.axis)

    def jvp(self, t):
        return replay(self, t)


def _axis_map(a, m, axis: int, idx=None):
    if isinstance(a, Tensor):
        return AxisMap.apply(a, m=m, axis=axis, idx=idx)
    return _map_array(a, m, axis, idx)


def _select_matrix(idx, n: int, xp, dtype):
    """The (len(idx), n) matrix whose row o picks entry idx[o]."""
    return (idx[:, None] == xp.arange(n)[None, :]).astype(dtype)


def _adaptive_bounds(n: int, o: int, xp):
    """PyTorch's adaptive windows: start = floor(i n / o), end = ceil((i + 1) n / o)."""
    i = xp.arange(o, dtype=backend.int64)
    return (i * n) // o, ((i + 1) * n + o - 1) // o


def _average_matrix(n: int, o: int, xp, dtype):
    start, end = _adaptive_bounds(n, o, xp)
    j = xp.arange(n)[None, :]
    inside = (j >= start[:, None]) & (j < end[:, None])
    return inside.astype(dtype) / (end - start)[:, None].astype(dtype)


def _average_taps(n: int, o: int, xp, dtype):
    """Each output's window start..end-1 as taps of weight 1 / (end - start)."""
    start, end = _adaptive_bounds(n, o, xp)
    width = end - start
    cols = start[:, None] + xp.arange(int(width.max()))[None, :]
    valid = cols < end[:, None]
    weights = valid.astype(dtype) / width[:, None].astype(dtype)
    return xp.minimum(cols, n - 1), weights, valid


def _separable(input: Tensor, maps) -> Tensor:
    """Apply (axis, matrix, gather index or None, taps builder or None) maps one spatial axis at
    a time (the last axis first: it needs no transposed copy). Where the input holds an inf or
    nan, the matrices with taps apply by their taps (see `_map_array`)."""
    maps = [t for t in sorted(maps, key=lambda t: -t[0]) if t[1] is not None]
    if all(taps is None for *_, taps in maps):
        return _apply_maps(input, maps, False)
    xp = get_xp(input.data)
    size_out = input.data.size
    for _, m, _, _ in maps:
        size_out = size_out // m.shape[1] * m.shape[0]
    if size_out < input.data.size:
        # downsampling: check the (smaller) result; an inf or nan input makes every dense
        # output along its line inf or nan, and a finite result has no inf or nan behind it
        with quiet_block():
            out = _apply_maps(input, maps, False)
        if bool(xp.isfinite(out.data).all()):
            return out
        return _apply_maps(input, maps, True)
    return _apply_maps(input, maps, not bool(xp.isfinite(input.data).all()))


def _apply_maps(out: Tensor, maps, by_taps: bool) -> Tensor:
    for axis, m, idx, taps in maps:
        k = m.shape[0] // m.shape[1]
        if idx is not None and k > 1 and bool((idx == get_xp(idx).arange(idx.size) // k).all()):
            out = Repeat.apply(out, axis=axis, k=k)
        else:
            taps = taps() if by_taps and taps is not None else None  # taps: built on demand
            out = AxisMap.apply(out, m=m, axis=axis, idx=idx, taps=taps)
    return out


def _repeat(a, axis: int, k: int):
    if isinstance(a, Tensor):
        return Repeat.apply(a, axis=axis, k=k)
    return get_xp(a).repeat(a, k, axis=axis)


def _fold_sum(g, axis: int, k: int):
    if isinstance(g, Tensor):
        return FoldSum.apply(g, axis=axis, k=k)
    out = g[_every(axis, 0, k)].copy()
    for j in range(1, k):
        out += g[_every(axis, j, k)]
    return out


def _every(axis: int, start: int, k: int) -> tuple:
    return (slice(None),) * axis + (slice(start, None, k),)


class Repeat(Function):
    """out = each entry along axis k times (nearest upsampling by an integer factor);
    gx = g summed over each entry's k copies"""

    raw = True

    def forward(self, x, axis, k):
        self.axis, self.k = axis, k
        return _repeat(x, axis, k)

    def backward(self, g):
        return _fold_sum(g, self.axis, self.k)

    def jvp(self, t):
        return replay(self, t)


class FoldSum(Function):
    """out[i] = sum_j g[i k + j] along axis (the rule of Repeat);  gg = Repeat of out_grad"""

    raw = True

    def forward(self, g, axis, k):
        self.axis, self.k = axis, k
        return _fold_sum(g, axis, k)

    def backward(self, gg):
        return _repeat(gg, self.axis, self.k)

    def jvp(self, t):
        return replay(self, t)


# -- adaptive pools ------------------------------------------------------------------------------
def _adaptive_sizes(output_size, x, nsp: int, op: str):
    if nsp == 1:
        if isinstance(output_size, (tuple, list)):
            if len(output_size) != 1:
                raise RuntimeError(
                    f"{op}() argument 'output_size' should contain one int (got {len(output_size)})"
                )
            output_size = output_size[0]
        if output_size is None:
            raise TypeError(f"{op}(): argument 'output_size' must be tuple of ints, not NoneType")
        sizes = (int(output_size),)
    elif isinstance(output_size, (tuple, list)):
        if len(output_size) != nsp:
            if op == "adaptive_max_pool2d":
                raise RuntimeError(f"{op}(): internal error: output_size.size() must be 2")
            raise RuntimeError(f"{op}: output_size must be 2")
        sizes = tuple(
            x.shape[x.ndim - nsp + i] if s is None else int(s) for i, s in enumerate(output_size)
        )
    else:
        sizes = (int(output_size),) * nsp
    if any(s < 0 for s in sizes):
        shown = "{" + ", ".join(str(s) for s in sizes) + "}"
        raise RuntimeError(
            f"{op}: elements of output_size must be greater than or equal to 0 but received {shown}"
        )
    return sizes


def _check_adaptive(x, nsp: int, op: str) -> None:
    if nsp == 1:
        if x.ndim not in (2, 3):
            raise RuntimeError(
                f"Expected 2 to 3 dimensions, but got {x.ndim}-dimensional tensor for argument #1 "
                f"'self' (while checking arguments for {op})"
            )
    elif x.ndim not in (3, 4):
        sep = ": " if op == "adaptive_max_pool2d" else " "
        raise RuntimeError(f"{op}(): Expected 3D or 4D tensor, but got{sep}{_size(x.shape)}")
    first = 1 if x.ndim == nsp + 2 else 0  # dims after the batch dim
    for d in range(first, x.ndim):
        if x.shape[d] == 0:
            raise RuntimeError(
                f"{op}(): Expected input to have non-zero size for non-batch dimensions, but "
                f"input has sizes {_size(x.shape)} with dimension {d} being empty"
            )


def _adaptive_avg(input: Tensor, output_size, nsp: int, op: str) -> Tensor:
    x = input.data
    _check_adaptive(x, nsp, op)
    out = _adaptive_sizes(output_size, x, nsp, op)
    sizes = x.shape[x.ndim - nsp :]
    if all(o > 0 and n % o == 0 for n, o in zip(sizes, out)):
        # equal windows tiling the input: a reshape and a mean (global pooling included)
        lead = x.shape[: x.ndim - nsp]
        split = [d for n, o in zip(sizes, out) for d in (o, n // o)]
        dims = tuple(len(lead) + 2 * i + 1 for i in range(nsp))
        return input.reshape(*lead, *split).mean(dims)
    xp = get_xp(x)
    maps = []
    for i, o in enumerate(out):
        axis = x.ndim - nsp + i
        n = x.shape[axis]
        if o == n:
            maps.append((axis, None, None, None))
        else:
            taps = functools.partial(_average_taps, n, o, xp, x.dtype)
            maps.append((axis, _average_matrix(n, o, xp, x.dtype), None, taps))
    return _separable(input, maps)


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """Mean over output_size windows covering the last dim (PyTorch's start/end formulas)."""
    return _adaptive_avg(input, output_size, 1, "adaptive_avg_pool1d")


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Mean over an output_size grid of windows covering the last two dims (None keeps a size)."""
    return _adaptive_avg(input, output_size, 2, "adaptive_avg_pool2d")


def _adaptive_max_windows(x, out, nsp: int):
    """(max, flat index of the first maximum) of PyTorch's adaptive windows: a loop over the
    offsets within the largest window, each a gather (offsets past a window's end repeat its
    last entry, which never displaces an earlier equal maximum)."""
    xp = get_xp(x)
    sizes = x.shape[x.ndim - nsp :]
    lead = x.shape[: x.ndim - nsp]
    if all(o == 1 for o in out):  # global pooling: one argmax per plane
        b, p = _planes(x.shape, nsp)
        flat = x.reshape(b, p)
        idx = xp.argmax(flat, axis=1)[:, None]
        if x.dtype.kind == "f":  # argmax stops at the first NaN; PyTorch keeps the last one
            nan = xp.isnan(flat)
            last = p - 1 - xp.argmax(nan[:, ::-1], axis=1)[:, None]
            idx = xp.where(nan.any(axis=1, keepdims=True), last, idx)
        best = xp.take_along_axis(flat, idx, axis=1)
        return best.reshape(lead + out), idx.reshape(lead + out)
    bounds = [_adaptive_bounds(n, o, xp) for n, o in zip(sizes, out)]
    kmax = [int((e - s).max()) if o else 0 for (s, e), o in zip(bounds, out)]
    positions = []
    for dim in range(nsp):
        start, end = bounds[dim]
        shape = [1] * nsp
        shape[dim] = out[dim]
        positions.append([xp.minimum(start + i, end - 1).reshape(shape) for i in range(kmax[dim])])
    steps = [math.prod(sizes[d + 1 :]) for d in range(nsp)]
    offsets = list(itertools.product(*(range(k) for k in kmax)))

    def at(off):
        pos = [positions[d][i] for d, i in enumerate(off)]
        return x[(Ellipsis, *pos)], sum(p * s for p, s in zip(pos, steps))

    best = at(offsets[0])[0].copy()
    for off in offsets[1:]:
        xp.maximum(best, at(off)[0], out=best)
    idx = xp.zeros(best.shape, dtype=backend.int64)
    for off in reversed(offsets):
        v, flat = at(off)
        xp.copyto(idx, flat, where=v == best)
    if x.dtype.kind == "f" and best.size and bool(xp.isnan(best).any()):
        for off in offsets:
            v, flat = at(off)
            xp.copyto(idx, flat, where=xp.isnan(v))
    return best, idx


def _adaptive_max(input, output_size, return_indices, nsp, op):
    x = input.data
    _check_adaptive(x, nsp, op)
    out = _adaptive_sizes(output_size, x, nsp, op)
    if 0 in out or x.size == 0:
        xp = get_xp(x)
        shape = x.shape[: x.ndim - nsp] + out
        values = xp.zeros(shape, dtype=x.dtype)
        idx = xp.zeros(shape, dtype=backend.int64)
    else:
        values, idx = _adaptive_max_windows(x, out, nsp)
    unique = all(n % o == 0 for n, o in zip(x.shape[x.ndim - nsp :], out) if o)
    result = TakeAt.apply(input, idx=idx, nsp=nsp, unique=unique, values=values)
    return (result, _const(idx)) if return_indices else result


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False):
    """Max over output_size windows covering the last dim (indices: position along L)."""
    return _adaptive_max(input, output_size, return_indices, 1, "adaptive_max_pool1d")


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """Max over an output_size grid of windows covering the last two dims (indices: flat
    position h * W + w in each plane)."""
    return _adaptive_max(input, output_size, return_indices, 2, "adaptive_max_pool2d")


# -- interpolate -----------------------------------------------------------------------------------
_MODES = "nearest | linear | bilinear | bicubic | trilinear | lanczos | area | nearest-exact"
_LINEAR_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def _nearest_index(n: int, o: int, scale, exact: bool, xp):
    """PyTorch's nearest source index (float32 arithmetic, as its kernels)."""
    f32 = backend.as_dtype("float32")
    i = xp.arange(o, dtype=backend.int64)
    if not exact and o == n:
        return i
    if not exact and o == 2 * n:
        return i >> 1
    s = f32.type(1.0 / scale) if scale is not None and scale > 0 else f32.type(n) / f32.type(o)
    if exact:
        src = xp.floor(((i + 0.5) * float(s)).astype(f32))
    else:
        src = xp.floor(i.astype(f32) * s)
    return xp.minimum(src.astype(backend.int64), n - 1)


def _linear_scale(n: int, o: int, scale, align_corners: bool, dtype):
    t = dtype.type
    if align_corners:
        return t(n - 1) / t(o - 1) if o > 1 else t(0)
    return t(1.0 / scale) if scale is not None and scale > 0 else t(n) / t(o)


def _linear_weights(n: int, o: int, scale, align_corners: bool, xp, dtype):
    """Each output's two taps i0, i1 and their weights 1 - lam1, lam1 (in the input's dtype)."""
    t = dtype.type
    s = _linear_scale(n, o, scale, align_corners, dtype)
    dst = xp.arange(o).astype(dtype)
    if align_corners:
        src = s * dst
    else:
        src = xp.maximum(s * (dst + t(0.5)) - t(0.5), t(0))
    i0 = xp.minimum(xp.floor(src).astype(backend.int64), n - 1)
    lam1 = xp.clip(src - i0.astype(dtype), t(0), t(1))
    i1 = i0 + (i0 < n - 1)
    return i0, i1, t(1) - lam1, lam1


def _linear_matrix(n: int, o: int, scale, align_corners: bool, xp, dtype):
    """Rows of linear interpolation weights (two taps), computed in the input's dtype."""
    i0, i1, lam0, lam1 = _linear_weights(n, o, scale, align_corners, xp, dtype)
    m = xp.zeros((o, n), dtype=dtype)
    rows = xp.arange(o)
    m[rows, i0] += lam0
    m[rows, i1] += lam1
    return m


def _linear_taps(n: int, o: int, scale, align_corners: bool, xp, dtype):
    i0, i1, lam0, lam1 = _linear_weights(n, o, scale, align_corners, xp, dtype)
    return xp.stack([i0, i1], axis=1), xp.stack([lam0, lam1], axis=1), None


def _cubic_weights(n: int, o: int, scale, align_corners: bool, xp, dtype):
    """Each output's first tap i0 - 1 and the weights of its four taps (Keys' kernel,
    A = -0.75), in the input's dtype."""
    t = dtype.type
    s = _linear_scale(n, o, scale, align_corners, dtype)
    dst = xp.arange(o).astype(dtype)
    src = s * dst if align_corners else s * (dst + t(0.5)) - t(0.5)
    i0 = xp.floor(src)
    f = src - i0
    i0 = i0.astype(backend.int64)
    a = t(-0.75)

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return i0, (far(f + 1), near(f), near(1 - f), far((1 - f) + 1))  # as PyTorch rounds


def _cubic_matrix(n: int, o: int, scale, align_corners: bool, xp, dtype):
    """Rows of bicubic weights (taps clamped at the borders)."""
    i0, weights = _cubic_weights(n, o, scale, align_corners, xp, dtype)
    m = xp.zeros((o, n), dtype=dtype)
    j = xp.arange(n)[None, :]
    for k, wk in enumerate(weights):  # taps clamped onto the same column add up
        cols = xp.clip(i0 - 1 + k, 0, n - 1)
        m += (cols[:, None] == j).astype(dtype) * wk[:, None]
    return m


def _cubic_taps(n: int, o: int, scale, align_corners: bool, xp, dtype):
    i0, weights = _cubic_weights(n, o, scale, align_corners, xp, dtype)
    cols = xp.stack([xp.clip(i0 - 1 + k, 0, n - 1) for k in range(4)], axis=1)
    return cols, xp.stack(weights, axis=1).astype(dtype, copy=False), None


def _interp_sizes(input, size, scale_factor, recompute_scale_factor, nsp):
    x = input.data
    spatial = list(x.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        if isinstance(size, (tuple, list)):
            if len(size) != nsp:
                raise ValueError(
                    "Input and output must have the same number of spatial dimensions, but got "
                    f"input with spatial dimensions of {spatial} and output size of {size}. "
                    "Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
                    "output size in (o1, o2, ...,oK) format."
                )
            if not all(isinstance(s, numbers.Integral) for s in size):
                raise TypeError(
                    "expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                    f"Tuple[int, int, int], but got size with types {[type(s) for s in size]}"
                )
            out = [int(s) for s in size]
        else:
            out = [int(size)] * nsp
        if recompute_scale_factor:
            raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
        return out, [None] * nsp
    if scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    if isinstance(scale_factor, (tuple, list)):
        if len(scale_factor) != nsp:
            raise ValueError(
                "Input and scale_factor must have the same number of spatial dimensions, but "
                f"got input with spatial dimensions of {spatial} and scale_factor of shape "
                f"{scale_factor}. Please provide input tensor in (N, C, d1, d2, ...,dK) format "
                "and scale_factor in (s1, s2, ...,sK) format."
            )
        scales = [float(s) for s in scale_factor]
    else:
        scales = [float(scale_factor)] * nsp
    out = [int(math.floor(n * s)) for n, s in zip(spatial, scales)]
    return out, ([None] * nsp if recompute_scale_factor else scales)


def interpolate(
    input: Tensor,
    size=None,
    scale_factor=None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resize the spatial dims of (N, C, *spatial) input to `size` or by `scale_factor`:
    nearest, nearest-exact, (bi/tri)linear, bicubic or area (PyTorch's index formulas)."""
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError(
                "align_corners option can only be set with the interpolating modes: "
                "linear | bilinear | bicubic | trilinear"
            )
    elif align_corners is None:
        align_corners = False
    x = input.data
    nsp = x.ndim - 2
    if antialias:
        raise NotImplementedError("interpolate(antialias=True) is not supported")
    known = mode in ("nearest", "nearest-exact", "area") or mode in _LINEAR_DIMS
    if x.ndim not in (3, 4, 5) or not known:
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the "
            f"modes: {_MODES} (got {mode})"
        )
    if mode in _LINEAR_DIMS and _LINEAR_DIMS[mode] != nsp:
        want = _LINEAR_DIMS[mode] + 2
        raise NotImplementedError(f"Got {x.ndim}D input, but {mode} mode needs {want}D input")
    if mode == "area" and size is None:
        recompute_scale_factor = True
    out, scales = _interp_sizes(input, size, scale_factor, recompute_scale_factor, nsp)
    if mode == "area":
        return _adaptive_avg(input, out, nsp, f"adaptive_avg_pool{nsp}d")
    sizes = x.shape[2:]
    if any(o <= 0 for o in out) or any(n <= 0 for n in sizes):
        names = "DHW"[-nsp:] if nsp > 1 else "W"
        ins = ", ".join(f"{c}: {n}" for c, n in zip(names, sizes))
        outs = ", ".join(f"{c}: {o}" for c, o in zip(names, out))
        raise RuntimeError(
            f"Input and output sizes should be greater than 0, but got input ({ins}) "
            f"{'and ' if nsp == 1 else ''}output ({outs})"
        )
    xp = get_xp(x)
    maps = []
    for i, (n, o, s) in enumerate(zip(sizes, out, scales)):
        axis = 2 + i
        if mode in ("nearest", "nearest-exact"):
            idx = _nearest_index(n, o, s, mode == "nearest-exact", xp)
            if o == n and bool((idx == xp.arange(n)).all()):
                continue  # the identity along this axis
            maps.append((axis, _select_matrix(idx, n, xp, x.dtype), idx, None))
        elif mode == "bicubic":
            taps = functools.partial(_cubic_taps, n, o, s, align_corners, xp, x.dtype)
            maps.append((axis, _cubic_matrix(n, o, s, align_corners, xp, x.dtype), None, taps))
        elif o != n or not (align_corners or s is None or s == 1.0):
            taps = functools.partial(_linear_taps, n, o, s, align_corners, xp, x.dtype)
            maps.append((axis, _linear_matrix(n, o, s, align_corners, xp, x.dtype), None, taps))
    if not maps:  # same size: a copy, as PyTorch
        n = sizes[-1]
        maps.append((x.ndim - 1, xp.eye(n, dtype=x.dtype), xp.arange(n), None))
    return _separable(input, maps)


def upsample(
    input: Tensor,
    size=None,
    scale_factor=None,
    mode: str = "nearest",
    align_corners: bool | None = None,
) -> Tensor:
    """Deprecated alias of interpolate (warns, as PyTorch)."""
    warnings.warn(
        "`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` instead.",
        stacklevel=2,
    )
    return interpolate(input, size, scale_factor, mode, align_corners)


# -- pixel shuffle ---------------------------------------------------------------------------------
def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(*, C r^2, H, W) -> (*, C, H r, W r): channel blocks become r x r pixel blocks."""
    x = input.data
    r = int(upscale_factor)
    if x.ndim < 3:
        raise RuntimeError(
            "pixel_shuffle expects input to have at least 3 dimensions, but got input with "
            f"{x.ndim} dimension(s)"
        )
    if r <= 0:
        raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {r}")
    c, h, w = x.shape[-3:]
    if c % (r * r):
        raise RuntimeError(
            "pixel_shuffle expects its input's 'channel' dimension to be divisible by the square "
            f"of upscale_factor, but input.size(-3)={c} is not divisible by {r * r}"
        )
    lead = x.shape[:-3]
    n = len(lead)
    y = input.reshape(*lead, c // (r * r), r, r, h, w)
    y = y.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return y.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """(*, C, H r, W r) -> (*, C r^2, H, W): the inverse of pixel_shuffle."""
    x = input.data
    r = int(downscale_factor)
    if x.ndim < 3:
        raise RuntimeError(
            "pixel_unshuffle expects input to have at least 3 dimensions, but got input with "
            f"{x.ndim} dimension(s)"
        )
    if r <= 0:
        raise RuntimeError(f"pixel_unshuffle expects a positive downscale_factor, but got {r}")
    c, h, w = x.shape[-3:]
    for name, dim, n in (("height", -2, h), ("width", -1, w)):
        if n % r:
            raise RuntimeError(
                f"pixel_unshuffle expects {name} to be divisible by downscale_factor, but "
                f"input.size({dim})={n} is not divisible by {r}"
            )
    lead = x.shape[:-3]
    k = len(lead)
    y = input.reshape(*lead, c, h // r, r, w // r, r)
    y = y.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)
    return y.reshape(*lead, c * r * r, h // r, w // r)


# -- the image norms -------------------------------------------------------------------------------
def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise (N, C, *) input over each group of C / num_groups channels (and all trailing
    dims), then scale and shift per channel."""
    x = input.data
    if x.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {x.ndim}")
    n, c = x.shape[:2]
    g = int(num_groups)
    if g <= 0 or c % g:
        raise RuntimeError(
            "Expected number of channels in input to be divisible by num_groups, but got input "
            f"of shape {_size(x.shape)} and num_groups={num_groups}"
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and (p.data.ndim != 1 or p.data.shape[0] != c):
            raise RuntimeError(
                f"Expected {name} to be a vector of size equal to the number of channels in "
                f"input, but got {name} of shape {_size(p.data.shape)} and input of shape "
                f"{_size(x.shape)}"
            )
    # (N, G, C/G, S): statistics over the last two axes, parameters shaped (G, C/G, 1)
    grouped = input.reshape(n, g, c // g, math.prod(x.shape[2:]))
    w = weight.reshape(g, c // g) if weight is not None else None
    b = bias.reshape(g, c // g) if bias is not None else None
    out = _normalize(
        grouped,
        w,
        b,
        axes=(2, 3),
        paxes=(0, 3),
        pshape=(g, c // g, 1),
        eps=eps,
        center=True,
    )
    return out.reshape(x.shape)


def instance_norm(
    input: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each (sample, channel) of (N, C, *) input over its trailing dims.

    With running statistics and use_input_stats, they are updated in place with the batch mean
    of the instance statistics (unbiased variance); use_input_stats=False normalises with them.
    """
    x = input.data
    if x.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {x.ndim}")
    n, c = x.shape[:2]
    spatial = math.prod(x.shape[2:])
    if use_input_stats and spatial == 1:
        raise ValueError(
            "Expected more than 1 spatial element when training, got input size "
            f"retrograd.Size({list(x.shape)})"
        )
    for name, t in (
        ("weight", weight),
        ("bias", bias),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ):
        if t is not None and t.data.size != c:
            raise RuntimeError(f"{name} should contain {n * c} elements not {t.data.size * n}")
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise RuntimeError(
                "Expected running_mean and running_var to be defined when use_input_stats is false"
            )
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    flat = input.reshape(n, c, spatial)
    if running_mean is not None or running_var is not None:
        _update_instance_running(flat.data, running_mean, running_var, momentum)
    out = _normalize(
        flat, weight, bias, axes=(2,), paxes=(0, 2), pshape=(c, 1), eps=eps, center=True
    )
    return out.reshape(x.shape)


def _update_instance_running(x, running_mean, running_var, momentum: float) -> None:
    """PyTorch's rule: each running statistic moves toward the batch mean of the instance ones
    (unbiased instance variances), in place and without a graph."""
    s = x.shape[-1]
    with quiet_block():  # inf - inf, float32 squares overflowing: quietly, as PyTorch
        mean = x.mean(axis=2)
        var = ((x - mean[..., None]) ** 2).sum(axis=2) / max(s - 1, 1)
    for t, stat in ((running_mean, mean), (running_var, var)):
        if t is None:
            continue
        r = t.data
        r *= 1 - momentum
        r += (momentum * stat.mean(axis=0)).astype(r.dtype, copy=False)
        t._version[0] += 1


def dropout2d(
    input: Tensor,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    generator: backend.Generator | None = None,
) -> Tensor:
    """Zero whole channels (input[n, c]) with probability p, scaling the rest by 1 / (1 - p)
    (training only); the mask comes from `generator` (the default generator when None)."""
    from retrograd.ops.mutation import inplace as write_inplace

    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    x = input.data
    if x.ndim not in (3, 4):
        warnings.warn(
            f"dropout2d: Received a {x.ndim}-D input to dropout2d, which is deprecated and will "
            "result in an error in a future release. To retain the behavior and silence this "
            "warning, please use dropout instead. Note that dropout2d exists to provide "
            "channel-wise dropout on inputs with 2 spatial dimensions, a channel dimension, and "
            "an optional batch dimension (i.e. 3D or 4D inputs).",
            stacklevel=2,
        )
    if x.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D "
            "dropout behavior is desired - input is interpreted as shape (N, C, L), where C is "
            "the channel dim. This behavior will change in a future release to interpret the "
            "input as one without a batch dimension, i.e. shape (C, H, W). To maintain the 1D "
            "channel-wise dropout behavior, please switch to using dropout1d instead.",
            stacklevel=2,
        )
    if not training or p == 0.0 or x.size == 0:
        return input
    xp = get_xp(x)
    if p == 1.0:
        scale = xp.zeros((), dtype=x.dtype)
    else:
        if x.ndim < 2:
            raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
        shape = x.shape[:2] + (1,) * (x.ndim - 2)
        dtype = x.dtype if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else "float64"
        keep = backend.rng(generator).random(shape, dtype=dtype) >= p
        scale = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
        scale = backend.to_device(scale, backend.device_of(x))
    out = input * _const(scale)
    return write_inplace(input, out) if inplace else out
