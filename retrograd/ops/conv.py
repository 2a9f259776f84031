"""Convolutions with PyTorch's functional API: conv1d/2d, conv_transpose1d/2d, unfold/fold.

One N-d core serves them all. The zero-padded input is viewed as sliding windows (`as_strided`,
no copy) and copied once into columns (im2col), which a BLAS product multiplies by the weight
(G, O/G, C/G * K). The way back scatters columns into the image (col2im): one strided add per
kernel offset (kh * kw of them), never a loop over pixels, channels or the batch.

Stride 1 (the common case) has its own path (`_Flat`, below): columns for a chunk of images,
built from long contiguous runs, laid out for the product that measured fastest: per image
straight into the output for the forward, one GEMM per chunk (C * K, images * L) for the input
gradient and for the weight gradient of small images. The columns are recomputed in the
backward, never kept (they are K times the input). Other strides use columns
(N, G, C/G * K, L) and one product per image and group.

A convolution is linear in its input and in its weight; its two adjoints close the family under
differentiation:

    conv(x, w)             the forward
    conv_transpose(y, w)   its adjoint in x:  gx = conv_transpose(g, w)
    conv_weight(x, g)      its adjoint in w:  gw = conv_weight(x, g)

Each is one primitive whose rule calls the other two, so gradients of any order
(create_graph=True) run on the same kernels. Geometry travels as (stride, pads, dilation, groups)
with pads as (low, high) pairs per spatial dim, which covers padding='same' with even kernels.
"""

from __future__ import annotations

import functools
import itertools
import math

from retrograd.autograd.forward_ad import add_tangents, replay
from retrograd.autograd.function import Function
from retrograd.backend import get_xp
from retrograd.ops import dual
from retrograd.ops._util import quiet
from retrograd.parallel import parallel_for, threads_for
from retrograd.tensor import Tensor

# unfold/fold are public through retrograd.nn.functional only: Tensor.unfold means another thing
__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"]

# batched weight-gradient products hold N copies of the weight; past this many elements the
# gradient is contracted by einsum instead (slower, no batch-sized temporary)
_BATCHED_WEIGHT_GRAD_LIMIT = 1 << 24

# _VECTOR_NOTE: with one output channel per group the per-group products are matrix-vector
# products, which NumPy's batched matmul runs outside BLAS, element by element; einsum and
# broadcasting run them 2-3x faster there.

_SCALAR_NAMES = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long"}
_CPP_NAMES = {"float32": "float", "float64": "double", "float16": "c10::Half", "int64": "long"}


# -- array kernels ---------------------------------------------------------------------------------
def _padded(x, pads):
    """x with zeros added around its spatial dims (pads: (low, high) per dim)."""
    if not any(lo or hi for lo, hi in pads):
        return x
    shape = x.shape[:2] + tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads))
    out = get_xp(x).zeros(shape, dtype=x.dtype)
    inner = tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape[2:], pads))
    out[(slice(None), slice(None)) + inner] = x
    return out


def _out_sizes(sizes, ksize, stride, pads, dilation) -> tuple:
    """Number of window positions per spatial dim."""
    return tuple(
        (n + lo + hi - d * (k - 1) - 1) // s + 1
        for n, k, s, (lo, hi), d in zip(sizes, ksize, stride, pads, dilation)
    )


def _im2col(x, ksize, stride, pads, dilation, lsize):
    """Columns (N, C, *K, *L) of x: the receptive field of each of the lsize window positions."""
    xp = get_xp(x)
    xpad = _padded(x, pads)
    st = xpad.strides
    shape = xpad.shape[:2] + tuple(ksize) + tuple(lsize)
    strides = (
        st[:2]
        + tuple(a * d for a, d in zip(st[2:], dilation))
        + tuple(a * s for a, s in zip(st[2:], stride))
    )
    return xp.ascontiguousarray(xp.lib.stride_tricks.as_strided(xpad, shape, strides))


def _col2im(cols, sizes, ksize, stride, pads, dilation):
    """The adjoint of _im2col: columns (N, C, *K, *L) summed back into an (N, C, *sizes) image,
    one strided add per kernel offset."""
    xp = get_xp(cols)
    nd = len(ksize)
    lsize = cols.shape[2 + nd :]
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(sizes, pads))
    out = xp.zeros(cols.shape[:2] + padded, dtype=cols.dtype)
    if cols.size:
        lead = (slice(None), slice(None))
        for offs in itertools.product(*(range(k) for k in ksize)):
            window = tuple(
                slice(o * d, o * d + s * (n - 1) + 1, s)
                for o, d, s, n in zip(offs, dilation, stride, lsize)
            )
            out[lead + window] += cols[lead + offs]
    if any(lo or hi for lo, hi in pads):
        inner = tuple(slice(lo, lo + n) for n, (lo, _) in zip(sizes, pads))
        out = xp.ascontiguousarray(out[(slice(None), slice(None)) + inner])
    return out


def _conv_array(x, w, stride, pads, dilation, groups, lsize, bias=None):
    """conv(x, w) (+ bias): (N, O, *lsize)."""
    n, o = x.shape[0], w.shape[0]
    if _flat_ok(stride, o, groups) and x.size and all(lsize):
        return _conv_flat(x, w, pads, dilation, groups, tuple(lsize), bias)
    ksize = w.shape[2:]
    cols = _im2col(x, ksize, stride, pads, dilation, lsize)
    cols = cols.reshape(n, groups, w.shape[1] * math.prod(ksize), math.prod(lsize))
    wg = w.reshape(groups, o // groups, cols.shape[2])
    if o == groups:  # one output per group (depthwise): vector products, see _VECTOR_NOTE
        out = get_xp(x).einsum("gk,ngkl->ngl", wg[:, 0], cols)
    else:
        out = get_xp(x).matmul(wg, cols)  # (N, G, O/G, L): one BLAS product per image and group
    out = out.reshape((n, o) + tuple(lsize))
    if bias is not None:
        out += bias.reshape(_bias_shape(out.ndim))
    return out


def _conv_transpose_array(y, w, sizes, stride, pads, dilation, groups):
    """The adjoint of conv in its input: y (N, O, *L) -> (N, C, *sizes)."""
    n, o = y.shape[:2]
    if _flat_ok(stride, o, groups) and y.size and all(sizes) and _finite(w):
        return _conv_flat_input(y, w, tuple(sizes), pads, dilation, groups)
    lsize = y.shape[2:]
    ksize = w.shape[2:]
    cg = w.shape[1]
    yg = y.reshape(n, groups, o // groups, math.prod(lsize))
    wg = w.reshape(groups, o // groups, cg * math.prod(ksize))
    if o == groups:  # an outer product per image and group
        cols = wg.reshape(1, groups, wg.shape[2], 1) * yg
    else:
        cols = get_xp(y).matmul(wg.swapaxes(-1, -2), yg)  # (N, G, C/G * K, L)
    cols = cols.reshape((n, groups * cg) + tuple(ksize) + tuple(lsize))
    return _col2im(cols, sizes, ksize, stride, pads, dilation)


def _conv_grads_array(x, g, w, stride, pads, dilation, groups):
    """(the input's gradient, the weight's) of conv(x, w) for g: by the stride-1 path as one
    loop where both can take it, else each by its own path. One loop: the threads meet once
    and both gradients' chunks balance over them (W4's second layer alone, two threads: 2.51-
    2.70 against 2.63-2.81 ms; W4 7.41 against 7.59 ms a step, alternating in one process)."""
    o = g.shape[1]
    if _flat_ok(stride, o, groups) and g.size and x.size and _finite(w) and _finite(x):
        geom = (pads, dilation, groups)
        both = _input_loop(g, w, tuple(x.shape[2:]), *geom), _weight_loop(x, g, w.shape[2:], *geom)
        return tuple(_run_loops(*both))
    sizes, ksize = x.shape[2:], w.shape[2:]
    return (
        _conv_transpose_array(g, w, sizes, stride, pads, dilation, groups),
        _conv_weight_array(x, g, ksize, stride, pads, dilation, groups),
    )


def _conv_weight_array(x, g, ksize, stride, pads, dilation, groups):
    """The adjoint of conv in its weight: sum over images and positions of g times x's columns."""
    xp = get_xp(x)
    n, o = g.shape[:2]
    lsize = g.shape[2:]
    cg = x.shape[1] // groups
    if _flat_ok(stride, o, groups) and g.size and x.size and _finite(x):
        return _conv_flat_weight(x, g, tuple(ksize), pads, dilation, groups)
    cols = _im2col(x, ksize, stride, pads, dilation, lsize)
    cols = cols.reshape(n, groups, cg * math.prod(ksize), math.prod(lsize))
    gg = g.reshape(n, groups, o // groups, cols.shape[3])
    if o == groups:
        gw = xp.einsum("ngl,ngkl->gk", gg[:, :, 0], cols)
    elif n * o * cols.shape[2] <= _BATCHED_WEIGHT_GRAD_LIMIT:
        gw = xp.matmul(gg, cols.swapaxes(-1, -2)).sum(axis=0)
    else:
        gw = xp.einsum("ngol,ngkl->gok", gg, cols, optimize=True)
    return gw.reshape((o, cg) + tuple(ksize))


# -- the stride-1 path: windows over flattened planes ----------------------------------------------
# With stride 1, the window at kernel offset k reads a padded plane shifted by one flat offset
# (sum of k_i * d_i * pitch_i): a contiguous run of L' = sum((l_i - 1) * pitch_i) + 1 elements.
# Columns (C * K, images, L') are then copied with long contiguous inner runs, one GEMM per chunk
# of images gives every output channel, and the way back (col2im) is K contiguous slice-adds.
# Positions of a run that wrap past a row's last window are computed and dropped in the forward;
# in the backward the gradient is zero there, so they add nothing (finite operands only: with
# an inf or NaN in the wrapped input or weight, the general path runs).
# In 2-D, where a run would wrap (kernel wider than 1), the columns are built exactly instead,
# in two copies: the kw column shifts (C, kw, images, H, Wo), then the kh row shifts of those,
# each a contiguous run of Ho * Wo; col2im_hw undoes them in kh then kw slice-adds, the kh
# ones on whole planes (columns ordered (h, w, image): spread_hw). No position is
# wasted in the GEMMs (W4's 5x5 layers: 16% and 44% of the flat runs' columns), and the exact
# path measured faster on both (28x28: 0.82 vs 0.98 ms forward; 12x12: 1.8 vs 2.25 ms).
# Images go in chunks holding at most this many column entries (1 MB in float32): the columns
# are recomputed in the backward, never kept, so they are transient and bounded. (W4's step ran
# as fast with chunks of 2 and 4 MB: past ~1 MB the GEMMs gain nothing.)
_FLAT_CHUNK = 1 << 18
_EXACT_ABOVE = 1.0  # 2-D columns are built exactly when L' / L exceeds this


class _Flat:
    """The geometry of a stride-1 convolution over flattened padded planes."""

    def __init__(self, sizes, ksize, pads, dilation, lsize, channels, itemsize) -> None:
        self.pads = pads
        self.padded = tuple(n + lo + hi for n, (lo, hi) in zip(sizes, pads))
        pitches = [math.prod(self.padded[i + 1 :]) for i in range(len(sizes))]
        self.plane = math.prod(self.padded)
        self.lflat = sum((n - 1) * p for n, p in zip(lsize, pitches)) + 1
        self.ksize, self.lsize = tuple(ksize), tuple(lsize)
        self.kstrides = tuple(d * p * itemsize for d, p in zip(dilation, pitches))
        self.lstrides = tuple(p * itemsize for p in pitches)
        self.offsets = [
            sum(k * d * p for k, d, p in zip(offs, dilation, pitches))
            for offs in itertools.product(*(range(k) for k in ksize))
        ]
        self.itemsize = itemsize
        self.dilation = tuple(dilation)
        self.exact = len(lsize) == 2 and self.lflat > _EXACT_ABOVE * math.prod(lsize)
        if self.exact:
            self.lflat = lsize[0] * lsize[1]
            self.lstrides = (lsize[1] * itemsize, itemsize)
        # runs without wrapped positions: a forward product per image lands in the output as is
        self.direct = self.lflat == math.prod(lsize)
        self.image_cols = per_image = channels * math.prod(ksize) * self.lflat
        self.batch = max(1, _FLAT_CHUNK // max(per_image, 1))

    def chunks(self, n: int):
        return [(i, min(i + self.batch, n)) for i in range(0, n, self.batch)]

    def threads(self, x, n: int) -> int:
        """Threads for n images: their columns are copied, multiplied and (backward) added
        back, about four passes over them."""
        return threads_for(x, 4 * n * self.image_cols * self.itemsize)

    def cols(self, x, groups, per_image=False):
        """Columns (G, C/G * K, nb * L') of a chunk x (nb, C, *sizes); per_image (direct runs
        only): (nb, G, C/G * K, L) instead."""
        xp = get_xp(x)
        xpad = xp.ascontiguousarray(_padded(x, self.pads))
        nb, c = xpad.shape[:2]
        it = self.itemsize
        strided = xp.lib.stride_tricks.as_strided
        if self.exact:
            (ph, pw), (kh, kw), (ho, wo) = self.padded, self.ksize, self.lsize
            dh, dw = self.dilation
            shifted = strided(
                xpad, (c, kw, nb, ph, wo), (ph * pw * it, dw * it, c * ph * pw * it, pw * it, it)
            )
            xa = xp.empty(shifted.shape, dtype=x.dtype)
            xp.copyto(xa, shifted)
            sn = ph * wo * it
            shape = (c, kh, kw, nb, ho * wo)
            strides = (kw * nb * sn, dh * wo * it, nb * sn, sn, it)
        else:
            shape = (c,) + self.ksize + (nb, self.lflat)
            strides = (self.plane * it,) + self.kstrides + (c * self.plane * it, it)
        if per_image:  # the image axis first
            shape = shape[-2:-1] + shape[:-2] + shape[-1:]
            strides = strides[-2:-1] + strides[:-2] + strides[-1:]
        view = strided(xa if self.exact else xpad, shape, strides)
        cols = xp.empty(view.shape, dtype=x.dtype)
        xp.copyto(cols, view)
        if per_image:
            return cols.reshape(nb, groups, -1, self.lflat)
        return cols.reshape(groups, -1, nb * self.lflat)

    def positions(self, flat, nb: int):
        """The (nb, O, *lsize) view of a product (O, nb * L') at the valid positions."""
        o = flat.size // (nb * self.lflat)
        it = flat.itemsize
        return get_xp(flat).lib.stride_tricks.as_strided(
            flat,
            (nb, o) + self.lsize,
            (self.lflat * it, nb * self.lflat * it) + self.lstrides,
        )

    def spread(self, g):
        """g (nb, O, *lsize) as (O, nb * L'), zeros at the wrapped positions."""
        nb, o = g.shape[:2]
        xp = get_xp(g)
        flat = (xp.empty if self.direct else xp.zeros)((o, nb * self.lflat), dtype=g.dtype)
        self.positions(flat, nb)[...] = g
        return flat

    def spread_hw(self, g):
        """Exact 2-D columns only: g (nb, O, ho, wo) as (O, ho * wo * nb), the columns in (h, w,
        image) order for col2im_hw."""
        nb, o, ho, wo = g.shape
        flat = get_xp(g).empty((o, ho, wo, nb), dtype=g.dtype)
        flat[...] = g.transpose(1, 2, 3, 0)
        return flat.reshape(o, -1)

    def col2im_hw(self, cols, out, groups: int):
        """Exact 2-D columns (G, kh * C/G * kw, ho * wo * nb), rows in (kernel row, channel,
        kernel column) order within each group and columns in spread_hw's, summed into out (nb,
        C, H, W), which it overwrites. The kh row shifts add blocks of ho * wo * nb floats
        (whole planes of a kernel row's products), the kw column shifts rows of wo * nb, and
        one transposing copy puts the sum in place: at W4's second layer 81 + 50 against 148 +
        52 us a chunk of 10 images for the (channel, kernel row, kernel column) rows, whose
        row shifts added runs of ho * nb, and (w, h, image) columns."""
        xp = get_xp(cols)
        nb, c = out.shape[:2]
        (ph, pw), (kh, kw), (ho, wo) = self.padded, self.ksize, self.lsize
        dh, dw = self.dilation
        run = wo * nb
        cols = cols.reshape(groups, kh, c // groups, kw, ho, run)
        acc = xp.empty((groups, c // groups, kw, ph, run), dtype=cols.dtype)
        acc[:, :, :, :ho] = cols[:, 0]  # the first row shift written, the rows below it zeroed
        acc[:, :, :, ho:] = 0
        for i in range(1, kh):
            rows = acc[:, :, :, i * dh : i * dh + ho]
            rows += cols[:, i]
        acc = acc.reshape(c, kw, ph, run)
        total = xp.empty((c, ph, pw * nb), dtype=cols.dtype)
        total[:, :, :run] = acc[:, 0]
        total[:, :, run:] = 0
        for j in range(1, kw):
            window = total[:, :, j * dw * nb : j * dw * nb + run]
            window += acc[:, j]
        full = total.reshape(c, ph, pw, nb).transpose(3, 0, 1, 2)  # (nb, C, ph, pw)
        (top, _), (left, _) = self.pads
        out[...] = full[:, :, top : top + out.shape[2], left : left + out.shape[3]]

    def col2im(self, cols, out):
        """Flat runs only (exact columns: col2im_wh): add columns (C * K, nb * L') into out
        (nb, C, *sizes), a slice-add per kernel offset."""
        xp = get_xp(cols)
        nb, c = out.shape[:2]
        pad = any(lo or hi for lo, hi in self.pads)
        dst = xp.zeros((nb, c) + self.padded, dtype=out.dtype) if pad else out
        dflat = dst.reshape(nb, c, self.plane)
        cols = cols.reshape(c, len(self.offsets), nb, self.lflat)
        for i, off in enumerate(self.offsets):
            window = dflat[:, :, off : off + self.lflat].swapaxes(0, 1)
            window += cols[:, i]
        if pad:
            inner = tuple(slice(lo, lo + n) for n, (lo, _) in zip(out.shape[2:], self.pads))
            out[...] = dst[(slice(None), slice(None)) + inner]


def _flat(sizes, ksize, pads, dilation, lsize, channels, itemsize) -> _Flat:
    """The geometry for these arguments, built once per distinct set."""
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    return _flat_cached(
        tuple(sizes), tuple(ksize), pads, tuple(dilation), tuple(lsize), channels, itemsize
    )


_flat_cached = functools.lru_cache(maxsize=256)(_Flat)


def _flat_ok(stride, o: int, groups: int) -> bool:
    """Stride 1 everywhere, and not one output per group (that path is einsum, see _VECTOR_NOTE)."""
    return all(s == 1 for s in stride) and (groups == 1 or o != groups)


def _finite(a) -> bool:
    return a.dtype.kind not in "fc" or bool(get_xp(a).isfinite(a).all())


@quiet  # the wrapped positions may compute inf - inf from finite-looking rows: dropped anyway
def _conv_flat(x, w, pads, dilation, groups, lsize, bias=None):
    """conv(x, w) (+ bias) by the stride-1 path: (N, O, *lsize)."""
    xp = get_xp(x)
    n, c = x.shape[:2]
    o = w.shape[0]
    dtype = xp.result_type(x.dtype, w.dtype)
    f = _flat(x.shape[2:], w.shape[2:], pads, dilation, lsize, c, dtype.itemsize)
    x = x.astype(dtype, copy=False)
    wg = w.astype(dtype, copy=False).reshape(groups, o // groups, -1)
    out = xp.empty((n, o) + tuple(lsize), dtype=dtype)
    b = None if bias is None else bias.reshape(_bias_shape(out.ndim))
    chunks = f.chunks(n)

    def chunk(i):
        n0, n1 = chunks[i]
        if f.direct:  # a product per image and group, straight into the output
            part = out[n0:n1].reshape(n1 - n0, groups, o // groups, f.lflat)
            xp.matmul(wg, f.cols(x[n0:n1], groups, per_image=True), out=part)
            if b is not None:
                out[n0:n1] += b
            return
        cols = f.cols(x[n0:n1], groups)
        prod = xp.matmul(wg, cols)  # (G, O/G, nb * L'): one GEMM per group
        valid = f.positions(prod, n1 - n0)
        if b is None:
            out[n0:n1] = valid
        else:
            xp.add(valid, b, out=out[n0:n1])

    parallel_for(len(chunks), chunk, f.threads(x, n))
    return out


def _conv_flat_input(g, w, sizes, pads, dilation, groups):
    """conv's adjoint in its input by the stride-1 path: g (N, O, *L) -> (N, C, *sizes)."""
    return _run_loops(_input_loop(g, w, sizes, pads, dilation, groups))[0]


def _run_loops(*loops) -> list:
    """Run loops (count, body, threads, result) as one loop over all their pieces, so that the
    threads meet once (the input and weight gradients of a convolution: one wake-up, and the
    pieces of both balance over the threads); their results, in order."""
    bodies = [(body, i) for count, body, _, _ in loops for i in range(count)]
    threads = max(loop[2] for loop in loops)
    parallel_for(len(bodies), lambda k: bodies[k][0](bodies[k][1]), threads)
    return [loop[3]() for loop in loops]


def _input_loop(g, w, sizes, pads, dilation, groups):
    """_conv_flat_input as a loop for _run_loops."""
    xp = get_xp(g)
    n, o = g.shape[:2]
    c = w.shape[1] * groups
    dtype = xp.result_type(g.dtype, w.dtype)
    f = _flat(sizes, w.shape[2:], pads, dilation, g.shape[2:], c, dtype.itemsize)
    wg = w.astype(dtype, copy=False).reshape((groups, o // groups) + w.shape[1:])
    if f.exact:  # rows (kernel row, channel, kernel column): see col2im_hw
        wt = xp.ascontiguousarray(wg.transpose(0, 3, 2, 4, 1)).reshape(groups, -1, o // groups)
    else:
        wt = wg.reshape(groups, o // groups, -1).swapaxes(-1, -2)
    gx = (xp.empty if f.exact else xp.zeros)((n, c) + tuple(sizes), dtype=dtype)
    chunks = f.chunks(n)

    def chunk(i):
        n0, n1 = chunks[i]
        gn = g[n0:n1].astype(dtype, copy=False)
        gs = (f.spread_hw(gn) if f.exact else f.spread(gn)).reshape(groups, o // groups, -1)
        cols = xp.matmul(wt, gs)  # (G, C/G * K, nb * L'): one GEMM per group
        if f.exact:
            f.col2im_hw(cols, gx[n0:n1], groups)
        else:
            f.col2im(cols, gx[n0:n1])

    return len(chunks), chunk, f.threads(g, n), lambda: gx


def _conv_flat_weight(x, g, ksize, pads, dilation, groups):
    """conv's adjoint in its weight by the stride-1 path: one GEMM per chunk of images."""
    return _run_loops(_weight_loop(x, g, ksize, pads, dilation, groups))[0]


def _weight_loop(x, g, ksize, pads, dilation, groups):
    """_conv_flat_weight as a loop for _run_loops."""
    xp = get_xp(g)
    n, c = x.shape[:2]
    o = g.shape[1]
    dtype = xp.result_type(x.dtype, g.dtype)
    f = _flat(x.shape[2:], ksize, pads, dilation, g.shape[2:], c, dtype.itemsize)
    x = x.astype(dtype, copy=False)
    gw = xp.zeros((groups, o // groups, (c // groups) * math.prod(ksize)), dtype=dtype)
    # many positions per image and a small weight (W4's first layer: 576 of them, 16 x 25): a
    # product per image beats one with a huge inner dimension (0.49 vs 0.96 ms), and g needs no
    # spreading; few positions (12x12 images: 64) favour the single product (1.9 vs 2.6 ms)
    per_image = f.direct and f.lflat >= 4 * max(gw.shape[1:])
    chunks = f.chunks(n)
    parts = [None] * len(chunks)  # each chunk's share, summed in order below (the same bits
    # for any number of threads)

    def chunk(i):
        n0, n1 = chunks[i]
        if per_image:
            cols = f.cols(x[n0:n1], groups, per_image=True)  # (nb, G, C/G * K, L)
            gg = g[n0:n1].astype(dtype, copy=False).reshape(cols.shape[:2] + (o // groups, -1))
            parts[i] = xp.matmul(cols, gg.swapaxes(-1, -2)).sum(axis=0).swapaxes(-1, -2)
            return
        gs = f.spread(g[n0:n1].astype(dtype, copy=False)).reshape(groups, o // groups, -1)
        # gw^T = cols gs^T: OpenBLAS runs this orientation ~1.5x faster for few output channels
        parts[i] = xp.matmul(f.cols(x[n0:n1], groups), gs.swapaxes(-1, -2)).swapaxes(-1, -2)

    def result():
        for part in parts:
            xp.add(gw, part, out=gw)
        return gw.reshape((o, c // groups) + tuple(ksize))

    return len(chunks), chunk, f.threads(x, n), result


# -- the three primitives --------------------------------------------------------------------------
def _const(a):
    return a if isinstance(a, Tensor) else Tensor._make(a, False, None, 0)


def _bias_axes(ndim: int) -> tuple:
    return (0,) + tuple(range(2, ndim))


def _bias_grad(g):
    """The bias's gradient: g summed over every axis but the channels'. On arrays by einsum's
    loop, which adds each image's channel plane as one contiguous run: W4's first layer 35
    against 112 us for NumPy's sum over axes (0, 2, 3), which reduces the planes with the
    channel axis innermost; as accurate (float32 against a float64 sum: 1.2e-4 against 1.7e-4
    on W4's first-layer gradient, PyTorch 1.1e-4)."""
    if isinstance(g, Tensor) or not g.size:
        return dual.sum(g, _bias_axes(len(g.shape)))
    n, c = g.shape[:2]
    return get_xp(g).einsum("ncl->c", g.reshape(n, c, -1))


def _bias_shape(ndim: int) -> tuple:
    return (-1,) + (1,) * (ndim - 2)


def _conv(x, w, geom, lsize):
    """conv(x, w) on arrays, or as a differentiable node when either is a Tensor."""
    if isinstance(x, Tensor) or isinstance(w, Tensor):
        w = _const(w)
        return Conv.apply(_const(x), w, **geom, lsize=tuple(lsize))
    return _conv_array(x, w, **geom, lsize=lsize)


def _conv_transpose(y, w, sizes, geom):
    if isinstance(y, Tensor) or isinstance(w, Tensor):
        return ConvTranspose.apply(_const(y), _const(w), **geom, sizes=tuple(sizes))
    return _conv_transpose_array(y, w, sizes, **geom)


def _conv_weight(x, g, ksize, geom):
    if isinstance(x, Tensor) or isinstance(g, Tensor):
        return ConvWeight.apply(_const(x), _const(g), **geom, ksize=tuple(ksize))
    return _conv_weight_array(x, g, ksize, **geom)


class Conv(Function):
    """out = conv(x, w) + b;  gx = conv_transpose(g, w),  gw = conv_weight(x, g),  gb = sum(g)"""

    raw = True

    def forward(self, x, w, *b, stride, pads, dilation, groups, lsize):
        self.geom = dict(stride=stride, pads=pads, dilation=dilation, groups=groups)
        # the input, not its columns (K times its size): the backward recomputes them in chunks
        self.save(x, w)
        return _conv_array(x, w, **self.geom, lsize=lsize, bias=b[0] if b else None)

    def backward(self, g):
        x, w = self.saved
        need = self.needs_input_grad
        gx = gw = gb = None
        if need[0] and need[1] and not isinstance(g, Tensor):
            gx, gw = _conv_grads_array(x, g, w, **self.geom)
        else:
            if need[0]:
                gx = _conv_transpose(g, w, x.shape[2:], self.geom)
            if need[1]:
                gw = _conv_weight(x, g, w.shape[2:], self.geom)
        if len(need) > 2 and need[2]:
            gb = _bias_grad(g)
        return gx, gw, gb

    def jvp(self, tx, tw, *tb):
        # bilinear in (input, weight), plus the bias
        x, w = self.saved[:2]
        terms = [
            None if tx is None else replay(self, tx, w),
            None if tw is None else replay(self, x, tw),
        ]
        if tb and tb[0] is not None:
            terms.append(tb[0].reshape(_bias_shape(len(x.shape))))
        return add_tangents(*terms)


class ConvTranspose(Function):
    """out = conv_transpose(y, w) + b (conv's adjoint in its input);  gy = conv(g, w),
    gw = conv_weight(g, y),  gb = sum(g)"""

    raw = True

    @quiet  # 0 * inf in the products is nan without a warning, as in PyTorch
    def forward(self, y, w, *b, stride, pads, dilation, groups, sizes):
        self.geom = dict(stride=stride, pads=pads, dilation=dilation, groups=groups)
        out = _conv_transpose_array(y, w, sizes, **self.geom)
        if b:
            out += b[0].reshape(_bias_shape(out.ndim))
        self.save(y, w)
        return out

    def backward(self, g):
        y, w = self.saved
        need = self.needs_input_grad
        gy = gw = gb = None
        lsize = y.shape[2:]
        if need[0]:
            gy = _conv(g, w, self.geom, lsize)
        if need[1]:
            gw = _conv_weight(g, y, w.shape[2:], self.geom)
        if len(need) > 2 and need[2]:
            gb = _bias_grad(g)
        return gy, gw, gb

    def jvp(self, tx, tw, *tb):
        # bilinear in (input, weight), plus the bias
        x, w = self.saved[:2]
        terms = [
            None if tx is None else replay(self, tx, w),
            None if tw is None else replay(self, x, tw),
        ]
        if tb and tb[0] is not None:
            terms.append(tb[0].reshape(_bias_shape(len(x.shape))))
        return add_tangents(*terms)


class ConvWeight(Function):
    """out = conv_weight(x, g) (conv's adjoint in its weight);  gx = conv_transpose(g, h),
    gg = conv(x, h)  (h: the incoming gradient)"""

    raw = True

    def forward(self, x, g, stride, pads, dilation, groups, ksize):
        self.geom = dict(stride=stride, pads=pads, dilation=dilation, groups=groups)
        self.save(x, g)
        return _conv_weight_array(x, g, ksize, **self.geom)

    def backward(self, h):
        x, g = self.saved
        need = self.needs_input_grad
        gx = _conv_transpose(g, h, x.shape[2:], self.geom) if need[0] else None
        gg = _conv(x, h, self.geom, g.shape[2:]) if need[1] else None
        return gx, gg

    def jvp(self, tx, tg):
        x, g = self.saved  # bilinear in (x, g)
        return add_tangents(
            None if tx is None else replay(self, tx, g), None if tg is None else replay(self, x, tg)
        )


class Unfold(Function):
    """out = im2col(x) as (N, C * K, L);  gx = fold(g)"""

    raw = True

    def forward(self, x, ksize, stride, pads, dilation, lsize):
        self.geom = dict(ksize=ksize, stride=stride, pads=pads, dilation=dilation)
        self.sizes, self.lsize = x.shape[2:], lsize
        return _unfold_array(x, ksize, stride, pads, dilation, lsize)

    def backward(self, g):
        if isinstance(g, Tensor):
            return Fold.apply(g, **self.geom, sizes=self.sizes, lsize=self.lsize)
        return _fold_array(g, **self.geom, sizes=self.sizes, lsize=self.lsize)

    def jvp(self, t):
        return replay(self, t)


def _unfold_array(x, ksize, stride, pads, dilation, lsize):
    n, c = x.shape[:2]
    cols = _im2col(x, ksize, stride, pads, dilation, lsize)
    return cols.reshape(n, c * math.prod(ksize), math.prod(lsize))


def _fold_array(cols, ksize, stride, pads, dilation, sizes, lsize):
    n, ck = cols.shape[:2]
    c = ck // math.prod(ksize)
    cols = cols.reshape((n, c) + tuple(ksize) + tuple(lsize))
    return _col2im(cols, sizes, ksize, stride, pads, dilation)


class Fold(Function):
    """out = col2im(x): (N, C * K, L) columns summed into (N, C, *output_size);  gx = unfold(g)"""

    raw = True

    def forward(self, x, ksize, stride, pads, dilation, sizes, lsize):
        self.geom = dict(ksize=ksize, stride=stride, pads=pads, dilation=dilation)
        self.lsize = lsize
        return _fold_array(x, **self.geom, sizes=sizes, lsize=lsize)

    def backward(self, g):
        if isinstance(g, Tensor):
            return Unfold.apply(g, **self.geom, lsize=self.lsize)
        return _unfold_array(g, **self.geom, lsize=self.lsize)

    def jvp(self, t):
        return replay(self, t)


# -- argument checks (PyTorch's wording) -----------------------------------------------------------
def _size(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _ints(value, n: int) -> tuple:
    """An int becomes n copies (PyTorch's argument parser); sequences are kept as given."""
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    return (int(value),) * n


def _expand(values: tuple, name: str, dim: int) -> tuple:
    if len(values) == 1:
        return values * dim
    if len(values) != dim:
        raise RuntimeError(
            f"expected {name} to be a single integer value or a list of {dim} values to match "
            f"the convolution dimensions, but got {name}={_size(values)}"
        )
    return values


def _batched(input: Tensor, nd: int, name: str) -> tuple[Tensor, bool]:
    """input with a batch dim (an unbatched input gains one), and whether it was unbatched."""
    from retrograd.ops.movement import unsqueeze

    ndim = input.data.ndim
    if ndim not in (nd + 1, nd + 2):
        raise RuntimeError(
            f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {name}, but got "
            f"input of size: {_size(input.shape)}"
        )
    if ndim == nd + 1:
        return unsqueeze(input, 0), True
    return input, False


def _hw(values: tuple, nd: int, fill: int) -> tuple:
    """Values as (height, width): 1-D convolutions run as 2-D ones of height 1 in PyTorch."""
    return (fill,) * (2 - nd) + tuple(values) if nd < 2 else tuple(values)


def _check_common(
    x, w, b, groups, stride, padding, dilation, output_padding, transposed, same=False
):
    """The checks PyTorch's `_convolution` makes, in its order; returns the expanded params."""
    ws, xs = w.shape, x.shape
    if len(ws) < 3:
        raise RuntimeError("weight should have at least three dimensions")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    dim = len(ws) - 2
    stride = _expand(stride, "stride", dim)
    padding = _expand(padding, "padding", dim)
    dilation = _expand(dilation, "dilation", dim)
    output_padding = _expand(output_padding, "output_padding", dim)
    if any(p < 0 for p in padding):
        raise RuntimeError("negative padding is not supported")
    if any(p < 0 for p in output_padding):
        raise RuntimeError("negative output_padding is not supported")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d < 0 for d in dilation):
        raise RuntimeError("dilation should be greater than zero")
    if len(ws) != len(xs):
        raise RuntimeError(
            f"Expected {len(ws)}-dimensional input for {len(ws)}-dimensional weight {_size(ws)}, "
            f"but got {len(xs)}-dimensional input of size {_size(xs)} instead"
        )
    if ws[0] < groups:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be at least {groups} at dimension 0, but "
            f"got weight of size {_size(ws)} instead"
        )
    if ws[0] % groups:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
            f"but got weight of size [{_size(ws)}] instead"
        )
    if not transposed:
        if xs[1] != ws[1] * groups:
            raise RuntimeError(
                f"Given groups={groups}, weight of size {_size(ws)}, expected input{_size(xs)} to "
                f"have {ws[1] * groups} channels, but got {xs[1]} channels instead"
            )
        if b is not None and (b.ndim != 1 or b.shape[0] != ws[0]):
            raise RuntimeError(
                f"Given weight of size {_size(ws)}, expected bias to be 1-dimensional with "
                f"{ws[0]} elements, but got bias of size {_size(b.shape)} instead"
            )
        if any(d == 0 for d in dilation):
            raise RuntimeError(f"dilation should be greater than zero, but got {_size(dilation)}")
        extent = [d * (k - 1) + 1 for d, k in zip(dilation, ws[2:])]
        if same:  # the padding is the kernel's extent less one, split over both sides
            padded = [n + e - 1 for n, e in zip(xs[2:], extent)]
        else:
            padded = [n + 2 * p for n, p in zip(xs[2:], padding)]
        if any(p < e for p, e in zip(padded, extent)):
            raise RuntimeError(
                f"Calculated padded input size per channel: ({' x '.join(map(str, padded))}). "
                f"Kernel size: ({' x '.join(map(str, extent))}). Kernel size can't be greater "
                "than actual input size"
            )
    else:
        if xs[1] != ws[0]:
            raise RuntimeError(
                f"Given transposed=1, weight of size {_size(ws)}, expected input{_size(xs)} to "
                f"have {ws[0]} channels, but got {xs[1]} channels instead"
            )
        if b is not None and (b.ndim != 1 or b.shape[0] != ws[1] * groups):
            raise RuntimeError(
                f"Given transposed=1, weight of size {_size(ws)}, expected bias to be "
                f"1-dimensional with {ws[1] * groups} elements, but got bias of size "
                f"{_size(b.shape)} instead"
            )
    return stride, padding, dilation, output_padding


def _check_dtypes(x, w, b) -> None:
    if b is not None and b.dtype != x.dtype:
        raise RuntimeError(
            f"Input type ({_CPP_NAMES.get(str(x.dtype), x.dtype)}) and bias type "
            f"({_CPP_NAMES.get(str(b.dtype), b.dtype)}) should be the same"
        )
    if w.dtype != x.dtype:
        raise RuntimeError(
            f"expected scalar type {_SCALAR_NAMES.get(str(x.dtype), x.dtype)} but found "
            f"{_SCALAR_NAMES.get(str(w.dtype), w.dtype)}"
        )


def _same_pads(ksize, dilation) -> tuple:
    """padding='same': d * (k - 1) split as PyTorch does, the odd one on the high side."""
    return tuple(
        (d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(ksize, dilation)
    )


# -- public functions ------------------------------------------------------------------------------
def _convolution(input, weight, bias, stride, padding, dilation, groups, nd: int, name: str):
    from retrograd.ops.movement import squeeze

    x, unbatched = _batched(input, nd, name)
    xd, wd = x.data, weight.data
    bd = None if bias is None else bias.data
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise RuntimeError(f"Invalid padding string: '{padding}'")
        if padding == "same" and any(s != 1 for s in _ints(stride, nd)):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        pad_ints = (0,) * nd
    else:
        pad_ints = _ints(padding, nd)
    stride, pad_ints, dilation, _ = _check_common(
        xd,
        wd,
        bd,
        int(groups),
        _ints(stride, nd),
        pad_ints,
        _ints(dilation, nd),
        (0,),
        False,
        same=padding == "same",
    )
    _check_dtypes(xd, wd, bd)
    ksize = wd.shape[2:]
    if padding == "same":
        pads = _same_pads(ksize, dilation)
    else:
        pads = tuple((p, p) for p in pad_ints)
    lsize = _out_sizes(xd.shape[2:], ksize, stride, pads, dilation)
    geom = dict(stride=stride, pads=pads, dilation=dilation, groups=int(groups), lsize=lsize)
    args = (x, weight) if bias is None else (x, weight, bias)
    out = Conv.apply(*args, **geom)
    return squeeze(out, 0) if unbatched else out


def _transposed(
    input, weight, bias, stride, padding, output_padding, groups, dilation, nd: int, name: str
):
    from retrograd.ops.movement import squeeze

    if isinstance(padding, str):
        raise TypeError(f"{name}(): argument 'padding' must be tuple of ints, not str")
    x, unbatched = _batched(input, nd, name)
    xd, wd = x.data, weight.data
    bd = None if bias is None else bias.data
    stride, padding, dilation, output_padding = _check_common(
        xd,
        wd,
        bd,
        int(groups),
        _ints(stride, nd),
        _ints(padding, nd),
        _ints(dilation, nd),
        _ints(output_padding, nd),
        True,
    )
    if any(d <= 0 for d in dilation):
        raise RuntimeError(
            "dilation should be greater than zero, but got dilation_height: "
            f"{_hw(dilation, nd, 1)[0]}, dilation_width: {_hw(dilation, nd, 1)[1]}"
        )
    if not all(op < s or op < d for op, s, d in zip(output_padding, stride, dilation)):
        oph, opw = _hw(output_padding, nd, 0)
        sh, sw = _hw(stride, nd, 1)
        dh, dw = _hw(dilation, nd, 1)
        raise RuntimeError(
            "output padding must be smaller than either stride or dilation, but got "
            f"output_padding_height: {oph} output_padding_width: {opw} stride_height: {sh} "
            f"stride_width: {sw} dilation_height: {dh} dilation_width: {dw}"
        )
    ksize = wd.shape[2:]
    sizes = tuple(
        (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        for n, s, p, d, k, op in zip(xd.shape[2:], stride, padding, dilation, ksize, output_padding)
    )
    if any(n < 1 for n in sizes):
        ins, outs = _hw(xd.shape[2:], nd, 1), _hw(sizes, nd, 1)
        raise RuntimeError(
            f"Given input size per channel: ({ins[0]} x {ins[1]}). Calculated output size per "
            f"channel: ({outs[0]} x {outs[1]}). Output size is too small"
        )
    _check_dtypes(xd, wd, bd)
    geom = dict(
        stride=stride,
        pads=tuple((p, p) for p in padding),
        dilation=dilation,
        groups=int(groups),
        sizes=sizes,
    )
    args = (x, weight) if bias is None else (x, weight, bias)
    out = ConvTranspose.apply(*args, **geom)
    return squeeze(out, 0) if unbatched else out


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
) -> Tensor:
    """1-D convolution (cross-correlation) of (N, C, L) by weight (O, C/groups, k)."""
    return _convolution(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation) of (N, C, H, W) by weight (O, C/groups, kh, kw);
    padding: int, pair, 'valid' or 'same'.

    >>> conv2d(retrograd.randn(8, 3, 32, 32), retrograd.randn(16, 3, 3, 3), padding=1).shape
    (8, 16, 32, 32)
    """
    return _convolution(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


def conv_transpose1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    output_padding=0,
    groups: int = 1,
    dilation=1,
) -> Tensor:
    """1-D transposed convolution (conv1d's adjoint in its input) by weight (C, O/groups, k)."""
    return _transposed(
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        1,
        "conv_transpose1d",
    )


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    output_padding=0,
    groups: int = 1,
    dilation=1,
) -> Tensor:
    """2-D transposed convolution (conv2d's adjoint in its input) by weight (C, O/groups, kh, kw).

    >>> conv_transpose2d(retrograd.randn(1, 4, 5, 5), retrograd.randn(4, 2, 3, 3), stride=2).shape
    (1, 2, 11, 11)
    """
    return _transposed(
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        2,
        "conv_transpose2d",
    )


def _pair_arg(value, name: str) -> tuple:
    t = _ints(value, 2)
    if len(t) != 2:
        raise RuntimeError(f"It is expected {name} equals to 2, but got size {len(t)}")
    return t


def _check_block_args(kernel, dilation, padding, stride) -> None:
    if any(k <= 0 for k in kernel):
        raise RuntimeError(
            "kernel size should be greater than zero, but got kernel_height: "
            f"{kernel[0]} kernel_width: {kernel[1]}"
        )
    if any(s <= 0 for s in stride):
        raise RuntimeError(
            "stride should be greater than zero, but got stride_height: "
            f"{stride[0]} stride_width: {stride[1]}"
        )
    if any(d <= 0 for d in dilation):
        raise RuntimeError(
            "dilation should be greater than zero, but got dilation_height: "
            f"{dilation[0]} dilation_width: {dilation[1]}"
        )
    if any(p < 0 for p in padding):
        raise RuntimeError(
            f"padding should be non-negative, but got pad_height: {padding[0]} pad_width: "
            f"{padding[1]}"
        )


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Sliding local blocks of a batched image (N, C, H, W) as columns (N, C * kh * kw, L)
    (im2col); a (C, H, W) input gives (C * kh * kw, L)."""
    from retrograd.ops.movement import squeeze, unsqueeze

    kernel = _pair_arg(kernel_size, "kernel_size")
    dilation = _pair_arg(dilation, "dilation")
    padding = _pair_arg(padding, "padding")
    stride = _pair_arg(stride, "stride")
    _check_block_args(kernel, dilation, padding, stride)
    shape = input.shape
    if len(shape) not in (3, 4) or 0 in shape[len(shape) - 3 :]:
        raise RuntimeError(
            "Expected 3D or 4D (batch mode) tensor with possibly 0 batch size and other non-zero "
            f"dimensions for input, but got: {_size(shape)}"
        )
    pads = tuple((p, p) for p in padding)
    lsize = _out_sizes(shape[-2:], kernel, stride, pads, dilation)
    if any(n < 1 for n in lsize):
        raise RuntimeError(
            f"Given input with spatial size ({shape[-2]}, {shape[-1]}), kernel_size=({kernel[0]}, "
            f"{kernel[1]}), dilation=({dilation[0]}, {dilation[1]}), padding=({padding[0]}, "
            f"{padding[1]}), calculated shape of the array of sliding blocks as ({lsize[0]}, "
            f"{lsize[1]}), but its components must be at least one."
        )
    x = unsqueeze(input, 0) if len(shape) == 3 else input
    out = Unfold.apply(x, ksize=kernel, stride=stride, pads=pads, dilation=dilation, lsize=lsize)
    return squeeze(out, 0) if len(shape) == 3 else out


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Columns (N, C * kh * kw, L) summed into an image (N, C, *output_size) (col2im, the
    adjoint of unfold); a 2-D input (C * kh * kw, L) gives (C, *output_size)."""
    from retrograd.ops.movement import squeeze, unsqueeze

    sizes = _pair_arg(output_size, "output_size")
    kernel = _pair_arg(kernel_size, "kernel_size")
    dilation = _pair_arg(dilation, "dilation")
    padding = _pair_arg(padding, "padding")
    stride = _pair_arg(stride, "stride")
    _check_block_args(kernel, dilation, padding, stride)
    shape = input.shape
    if len(shape) not in (2, 3) or 0 in shape[len(shape) - 2 :]:
        raise RuntimeError(
            "Expected 2D or 3D (batch mode) tensor for input with possibly 0 batch size and "
            f"non-zero dimensions for input, but got: {_size(shape)}"
        )
    ck = math.prod(kernel)
    if shape[-2] % ck:
        raise RuntimeError(
            "Expected size of input's dimension 1 to be divisible by the product of kernel_size, "
            f"but got input.size(1)={shape[-2]} and kernel_size=({kernel[0]}, {kernel[1]})."
        )
    pads = tuple((p, p) for p in padding)
    lsize = _out_sizes(sizes, kernel, stride, pads, dilation)
    described = (
        f"Given output_size=({sizes[0]}, {sizes[1]}), kernel_size=({kernel[0]}, {kernel[1]}), "
        f"dilation=({dilation[0]}, {dilation[1]}), padding=({padding[0]}, {padding[1]}), "
        f"stride=({stride[0]}, {stride[1]}), "
    )
    blocks = max(lsize[0], 0) * max(lsize[1], 0)
    if shape[-1] != blocks:
        raise RuntimeError(
            described + "expected size of input's dimension 2 to match the calculated number of "
            f"sliding blocks {lsize[0]} * {lsize[1]} = {lsize[0] * lsize[1]}, but got "
            f"input.size(2)={shape[-1]}."
        )
    x = unsqueeze(input, 0) if len(shape) == 2 else input
    out = Fold.apply(
        x, ksize=kernel, stride=stride, pads=pads, dilation=dilation, sizes=sizes, lsize=lsize
    )
    return squeeze(out, 0) if len(shape) == 2 else out
