"""Attention: the fused scaled-dot-product primitive, PyTorch's multi-head attention forward
(functional form of nn.MultiheadAttention) and a causal-mask helper.

`scaled_dot_product_attention` is one node: its forward computes softmax(q k^T * scale + mask) v
with the max shift and keeps q, k, v (not the probabilities P: the rule recomputes them, bit for
bit, as PyTorch's flash attention does); its rule is the closed form (dV = P^T dO,
dS = P * (dP - rowsum(dP * P)), dQ = dS K * scale, dK = dS^T Q * scale). Causal attention over a
square score matrix runs by two query blocks, skipping the masked quarter. Under
`create_graph=True` the rule recomputes P from the query and key Tensors with ordinary ops, so
gradients of gradients flow through it as well.
"""

from __future__ import annotations

import math

from retrograd import backend
from retrograd.autograd.forward_ad import add_tangents
from retrograd.autograd.function import Function
from retrograd.backend import get_xp
from retrograd.ops import dual
from retrograd.ops._util import quiet
from retrograd.ops.elementwise import where
from retrograd.ops.movement import cat, pad, permute, reshape, unsqueeze
from retrograd.ops.normalization import linear
from retrograd.ops.reduce import softmax
from retrograd.parallel import parallel_ranges, threads_for
from retrograd.tensor import Tensor

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward", "causal_mask"]

_DTYPE_NAMES = {
    "float32": "float",
    "float64": "double",
    "float16": "c10::Half",
    "int64": "long int",
    "int32": "int",
    "int16": "short int",
    "int8": "signed char",
    "uint8": "unsigned char",
    "bool": "bool",
}


def _dtype_name(dtype) -> str:
    return _DTYPE_NAMES.get(str(dtype), str(dtype))


# -- the fused primitive ---------------------------------------------------------------------------
def _lead_slice(t, a, b, lead):
    """t's entries a:b along the first batch axis, or t itself when t has no such axis of its
    own (broadcast from fewer or size-1 batch axes) or there is none."""
    if not lead or t.ndim - 2 < len(lead) or t.shape[t.ndim - 2 - len(lead)] != lead[0]:
        return t
    return t[(slice(None),) * (t.ndim - 2 - len(lead)) + (slice(a, b),)]


def _by_batch(part, lead, *arrays) -> None:
    """part(a, b) over ranges of the first batch axis, on the CPU threads when the inputs are
    large (retrograd.parallel); part(0, n) in the caller otherwise. Each range writes only its
    own batch entries, so the bits do not depend on the thread count."""
    n = lead[0] if lead else 1
    q, k = arrays[0], arrays[1]
    # scores, softmax and products: about 8 passes over an (L, S) block per batch entry
    work = 8 * math.prod(lead) * q.shape[-2] * k.shape[-2] * q.itemsize
    threads = threads_for(q, work) if all(t.shape[: len(lead)] == lead for t in arrays) else 1
    parallel_ranges(n, part, threads)


def _probs_array(s):
    """Row softmax of the scores s (last axis, overwritten in place), shifted by the row max;
    rows with every score -inf (fully masked) give zeros, as PyTorch's safe softmax does."""
    xp = get_xp(s)
    if s.shape[-1] == 0 or s.size == 0:
        return xp.zeros(s.shape, dtype=s.dtype)
    m = s.max(axis=-1, keepdims=True)
    m[m == -xp.inf] = 0  # a fully masked row: exp(-inf - 0) = 0, no inf - inf
    s -= m
    xp.exp(s, out=s)
    den = s.sum(axis=-1, keepdims=True)
    den[den == 0] = 1
    s /= den
    return s


def _scores_array(q, k, mask, mask_is_bool, causal, scale):
    """q k^T * scale with the masks applied (-inf where blocked): a fresh array."""
    xp = get_xp(q)
    s = xp.matmul(q, k.swapaxes(-1, -2))
    s *= s.dtype.type(scale)
    if mask is not None:
        if mask_is_bool:
            s = xp.where(mask, s, xp.asarray(-xp.inf, dtype=s.dtype))
        elif mask.dtype == s.dtype and xp.broadcast_shapes(s.shape, mask.shape) == s.shape:
            s += mask  # in place: s is fresh, and a second array of scores costs its page faults
        else:
            s = s + mask
    if causal:
        keep = xp.tri(s.shape[-2], s.shape[-1], dtype=bool)
        s = xp.where(keep, s, xp.asarray(-xp.inf, dtype=s.dtype))
    return s


def _probs_tensor(q, k, mask, mask_is_bool, causal, scale):
    """The probabilities as differentiable ops (the rule under create_graph=True)."""
    s = (q @ dual.swap_last(k)) * scale
    xp = get_xp(s.data)
    neg_inf = Tensor._make(xp.asarray(-xp.inf, dtype=s.data.dtype), False, None, 0)
    if mask is not None:
        if mask_is_bool:
            s = where(mask, s, neg_inf)
        else:
            s = s + mask
    if causal:
        keep = xp.tri(s.shape[-2], s.shape[-1], dtype=bool)
        s = where(Tensor._make(keep, False, None, 0), s, neg_inf)
    if s.shape[-1] == 0 or s.data.size == 0:
        return s * 0
    # fully masked rows: softmax over zeros (no inf - inf), then zeroed as in the forward
    dead = (s.data == -xp.inf).all(axis=-1, keepdims=True)
    if dead.any():
        zero = Tensor._make(xp.asarray(0, dtype=s.data.dtype), False, None, 0)
        dead_t = Tensor._make(dead, False, None, 0)
        return where(dead_t, zero, softmax(where(dead_t, zero, s), -1))
    return softmax(s, -1)


class ScaledDotProductAttention(Function):
    """P = softmax(q k^T * scale + mask), out = (P * D) v (D: dropout's keep mask / (1 - p));
    gv = (P * D)^T g, dP = (g v^T) * D, dS = P * (dP - rowsum(dP * P)), gq = dS k * scale,
    gk = dS^T q * scale, gmask = dS"""

    raw = True

    @quiet  # inf - inf, 0 * inf: nan without a warning, as in PyTorch
    def forward(self, q, k, v, *mask, scale, causal, mask_is_bool, dropout_p, generator):
        xp = get_xp(q)
        m = mask[0] if mask else None
        self.scale, self.causal, self.mask_is_bool = scale, causal, mask_is_bool
        self.blocks = None
        if causal and m is None and dropout_p == 0:
            self.blocks = _causal_blocks(q.shape[-2], k.shape[-2])
        if self.blocks:
            self.save(q, k, v, None, None, None)
            return self._forward_blocks(xp, q, k, v)
        p = _probs_array(_scores_array(q, k, m, mask_is_bool, causal, scale))
        keep = None
        if dropout_p > 0:
            if dropout_p >= 1:
                keep = xp.zeros(p.shape, dtype=p.dtype)
            else:
                draw = backend.rng(generator).random(p.shape, dtype=_draw_dtype(p.dtype))
                keep = (draw >= dropout_p).astype(p.dtype) * p.dtype.type(1 / (1 - dropout_p))
                keep = backend.to_device(keep, backend.device_of(q))
            out = _heads_last_matmul(xp, p * keep, v)
        else:
            out = _heads_last_matmul(xp, p, v)
        # P is not kept: the rule recomputes it with the same operations. On W6 (before the
        # causal blocks) +3 ms a step for -4 MB at its peak, the GELU backward
        self.save(q, k, v, m, None, keep)
        return out

    def _probs(self, q, k, m):
        return _probs_array(_scores_array(q, k, m, self.mask_is_bool, self.causal, self.scale))

    # Causal attention by query blocks: the rows r0:r1 see keys 0:r1 only, so the products and
    # the softmax skip the masked upper right block (2 blocks: 3/4 of the work). P is
    # recomputed block by block in the rule with the same operations as in the forward.
    def _block_probs(self, q, k, r0, r1):
        xp = get_xp(q)
        s = xp.matmul(q[..., r0:r1, :], k[..., :r1, :].swapaxes(-1, -2))
        s *= s.dtype.type(self.scale)
        blocked = ~xp.tri(r1 - r0, r1, k=r0, dtype=bool)
        xp.copyto(s, xp.asarray(-xp.inf, dtype=s.dtype), where=blocked)
        return _probs_array(s)

    def _forward_blocks(self, xp, q, k, v):
        lead = xp.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        out = _empty_heads_last(xp, (*lead, q.shape[-2], v.shape[-1]), q.dtype)

        def part(a, b):  # the batch entries a:b (all of them: a slice of nothing)
            qa, ka, va, oa = (_lead_slice(t, a, b, lead) for t in (q, k, v, out))
            for r0, r1 in self.blocks:
                p = self._block_probs(qa, ka, r0, r1)
                xp.matmul(p, va[..., :r1, :], out=oa[..., r0:r1, :])

        _by_batch(part, lead, q, k)
        return out

    def _backward_blocks(self, g, q, k, v, needs):
        xp = get_xp(q)
        lead = xp.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2], g.shape[:-2])
        gq = xp.empty((*lead, *q.shape[-2:]), dtype=q.dtype) if needs[0] else None
        gk = xp.zeros((*lead, *k.shape[-2:]), dtype=k.dtype) if needs[1] else None
        gv = xp.zeros((*lead, *v.shape[-2:]), dtype=v.dtype) if needs[2] else None
        scale = q.dtype.type(self.scale)

        def part(a, b):  # the batch entries a:b (all of them: a slice of nothing)
            qa, ka, va, ga = (_lead_slice(t, a, b, lead) for t in (q, k, v, g))
            gqa, gka, gva = (
                None if t is None else _lead_slice(t, a, b, lead) for t in (gq, gk, gv)
            )
            for r0, r1 in self.blocks:
                p = self._block_probs(qa, ka, r0, r1)
                gb = ga[..., r0:r1, :]
                if gva is not None:
                    gva[..., :r1, :] += xp.matmul(p.swapaxes(-1, -2), gb)
                if gqa is None and gka is None:
                    continue
                ds = xp.matmul(gb, va[..., :r1, :].swapaxes(-1, -2))
                ds -= xp.einsum("...ij,...ij->...i", ds, p)[..., None]
                ds *= p
                if gqa is not None:
                    xp.matmul(ds, ka[..., :r1, :], out=gqa[..., r0:r1, :])
                if gka is not None:
                    gka[..., :r1, :] += xp.matmul(ds.swapaxes(-1, -2), qa[..., r0:r1, :])
            for t in (gqa, gka):
                if t is not None:
                    t *= scale

        _by_batch(part, lead, q, k, g)
        return gq, gk, gv

    def backward(self, g):
        q, k, v, m, p, keep = self.saved
        needs = self.needs_input_grad
        if isinstance(g, Tensor):  # create_graph: P as a function of q, k (and a float mask)
            p = _probs_tensor(q, k, m, self.mask_is_bool, self.causal, self.scale)
        else:
            if self.blocks:
                return self._backward_blocks(g, q, k, v, needs)
            if p is None:
                p = self._probs(q, k, m)
            return self._backward_arrays(g, q, k, v, p, keep, needs)
        pk = p if keep is None else p * keep
        gv = dual.swap_last(pk) @ g if needs[2] else None
        if not (needs[0] or needs[1] or (len(needs) > 3 and needs[3])):
            return (None, None, gv) + ((None,) if len(needs) > 3 else ())
        dp = g @ dual.swap_last(v)
        if keep is not None:
            dp = dp * keep
        ds = p * (dp - dual.sum(dp * p, -1, True))
        gq = (ds @ k) * self.scale if needs[0] else None
        gk = (dual.swap_last(ds) @ q) * self.scale if needs[1] else None
        if len(needs) > 3:
            return gq, gk, gv, ds if needs[3] else None
        return gq, gk, gv

    def _backward_arrays(self, g, q, k, v, p, keep, needs):
        """The rule on arrays, computing dS in place in dP: one array of scores, not four."""
        xp = get_xp(p)
        pk = p if keep is None else p * keep
        gv = xp.matmul(pk.swapaxes(-1, -2), g) if needs[2] else None
        want_mask = len(needs) > 3 and needs[3]
        if not (needs[0] or needs[1] or want_mask):
            return (None, None, gv) + ((None,) if len(needs) > 3 else ())
        ds = xp.matmul(g, v.swapaxes(-1, -2))
        if keep is not None:
            ds *= keep
        ds -= xp.einsum("...ij,...ij->...i", ds, p)[..., None]  # rowsum(dP * P), no temporary
        ds *= p
        scale = ds.dtype.type(self.scale)
        gq = gk = None
        if needs[0]:
            gq = xp.matmul(ds, k)
            gq *= scale
        if needs[1]:
            gk = xp.matmul(ds.swapaxes(-1, -2), q)
            gk *= scale
        if len(needs) > 3:
            return gq, gk, gv, ds if want_mask else None
        return gq, gk, gv

    def jvp(self, tq, tk, tv, *tmask):
        # dS = (dq k^T + q dk^T) * scale + dmask,  dP = P * (dS - rowsum(P * dS)),
        # dout = (dP * D) v + (P * D) dv
        q, k, v, m, p, keep = self.saved
        xp = get_xp(q)
        if p is None:
            p = self._probs(q, k, m)
        ds = add_tangents(
            None if tq is None else xp.matmul(tq, k.swapaxes(-1, -2)) * self.scale,
            None if tk is None else xp.matmul(q, tk.swapaxes(-1, -2)) * self.scale,
            tmask[0] if tmask else None,
        )
        dout = None
        if ds is not None:
            dp = p * (ds - (p * ds).sum(axis=-1, keepdims=True))
            dout = xp.matmul(dp if keep is None else dp * keep, v)
        if tv is not None:
            dout = add_tangents(dout, xp.matmul(p if keep is None else p * keep, tv))
        return dout


def _empty_heads_last(xp, shape, dtype):
    """An empty (N, H, L, E) array laid out as (N, L, H, E) in memory (other ranks: plain): the
    caller's transpose back to (N, L, H * E) (multi-head attention's, and every GPT block's)
    is then a view, not a copy of the output."""
    if len(shape) != 4:
        return xp.empty(shape, dtype=dtype)
    n, h, length, e = shape
    return xp.empty((n, length, h, e), dtype=dtype).swapaxes(1, 2)


def _heads_last_matmul(xp, p, v):
    """p @ v into an _empty_heads_last array."""
    if p.dtype != v.dtype:
        return xp.matmul(p, v)
    shape = xp.broadcast_shapes(p.shape[:-1], v.shape[:-2] + (1,)) + (v.shape[-1],)
    return xp.matmul(p, v, out=_empty_heads_last(xp, shape, p.dtype))


_CAUSAL_BLOCK_MIN = 64  # shorter sequences: one product (the block overheads would dominate)


def _causal_blocks(length: int, src_length: int):
    """Two query blocks for causal attention over a square (L, L) score matrix, or None."""
    if length != src_length or length < _CAUSAL_BLOCK_MIN:
        return None
    half = length // 2
    return ((0, half), (half, length))


def _draw_dtype(dtype):
    return dtype if dtype.kind == "f" and dtype.itemsize >= 4 else "float64"


def _check_sdpa(query: Tensor, key: Tensor, value: Tensor, attn_mask, dropout_p, is_causal):
    q, k, v = query.data, key.data, value.data
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise RuntimeError(
            "Expected query, key, and value to all be  at least 2 dimensional, but got query.dim: "
            f"{q.ndim} key.dim: {k.ndim} and value.dim: {v.ndim} instead."
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise RuntimeError(
            "Expected query, key, and value to have the same dtype, but got query.dtype: "
            f"{_dtype_name(q.dtype)} key.dtype: {_dtype_name(k.dtype)} and value.dtype: "
            f"{_dtype_name(v.dtype)} instead."
        )
    if q.dtype.kind != "f":
        raise RuntimeError(
            f"scaled_dot_product_attention: expected a floating point query, got "
            f"{_dtype_name(q.dtype)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise RuntimeError(
            f"Expected the last dimension of query and key to match (the head dimension), but "
            f"got query.size(-1): {q.shape[-1]} and key.size(-1): {k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise RuntimeError(
            f"Expected key and value to have the same sequence length, but got key.size(-2): "
            f"{k.shape[-2]} and value.size(-2): {v.shape[-2]}"
        )
    if attn_mask is not None:
        md = attn_mask.data.dtype
        if md.kind != "b" and md != q.dtype:
            raise RuntimeError(
                "Expected attn_mask dtype to be bool or float or to match query dtype, but got "
                f"attn_mask.dtype: {_dtype_name(md)} and  query.dtype: {_dtype_name(q.dtype)} "
                "instead."
            )
        if is_causal:
            raise RuntimeError(
                "_scaled_dot_product_attention: Explicit attn_mask should not be set when "
                "is_causal=True"
            )
    if dropout_p > 1:
        raise RuntimeError(f"dropout probability has to be between 0 and 1, but got {dropout_p}")


def _repeat_heads(x: Tensor, times: int) -> Tensor:
    """x with each head (dim -3) repeated `times` times in place (repeat_interleave)."""
    shape = tuple(x.shape)
    x = unsqueeze(x, -3).expand(*shape[:-2], times, *shape[-2:])
    return reshape(x, (*shape[:-3], shape[-3] * times, *shape[-2:]))


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    generator: backend.Generator | None = None,
) -> Tensor:
    """softmax(query key^T * scale + mask) value over the last two dims, leading dims batched.

    attn_mask: bool (True takes part, as in PyTorch) or float (added to the scores), broadcast to
    (..., L, S); is_causal: the top-left lower triangle takes part; scale: 1/sqrt(E) when None;
    dropout_p: dropout on the probabilities, the masks drawn from `generator`. Rows with no key
    taking part give zeros, as PyTorch does.

    >>> q = retrograd.randn(2, 4, 5, 8)  # (batch, heads, L, E)
    >>> scaled_dot_product_attention(q, q, q, is_causal=True).shape
    (2, 4, 5, 8)
    """
    _check_sdpa(query, key, value, attn_mask, dropout_p, is_causal)
    if enable_gqa and key.data.ndim >= 3:
        hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
        if hq % hk or hq % hv:
            raise RuntimeError(
                "Number of heads in key and value must divide the number of heads in query"
            )
        if hk != hq:
            key = _repeat_heads(key, hq // hk)
        if hv != hq:
            value = _repeat_heads(value, hq // hv)
    s = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    params = dict(
        scale=s,
        causal=bool(is_causal),
        dropout_p=float(dropout_p),
        generator=generator,
        mask_is_bool=attn_mask is not None and attn_mask.data.dtype.kind == "b",
    )
    if attn_mask is None:
        return ScaledDotProductAttention.apply(query, key, value, **params)
    return ScaledDotProductAttention.apply(query, key, value, attn_mask, **params)


# -- masks -----------------------------------------------------------------------------------------
def causal_mask(sz: int, dtype=bool, device=None) -> Tensor:
    """The causal mask of a length-sz sequence: position i attends to positions j <= i.

    dtype=bool: True where attention is allowed (the lower triangle) -- the convention of
    `scaled_dot_product_attention`; MultiheadAttention's bool masks mean the opposite (True =
    blocked), so pass it `~causal_mask(sz)` or the float form. A float dtype: 0 on and below the
    diagonal, -inf above (Transformer.generate_square_subsequent_mask), valid for both.

    >>> causal_mask(3, dtype=retrograd.float32)
    tensor([[0., -inf, -inf], [0., 0., -inf], [0., 0., 0.]])
    """
    import numpy as np

    dt = backend.as_dtype(dtype) if dtype is not bool else np.dtype(bool)
    keep = np.tri(sz, sz, dtype=bool)
    if dt.kind == "b":
        arr = keep
    elif dt.kind == "f":
        arr = np.where(keep, dt.type(0), dt.type(-np.inf)).astype(dt)
    else:
        raise TypeError(f"causal_mask: dtype must be bool or a floating type, got {dt}")
    if device is not None:
        arr = backend.to_device(arr, str(device))
    return Tensor._make(arr, False, None, 0)


def _canonical_mask(mask: Tensor | None, name: str, dtype, other=None, other_name="") -> Tensor:
    """A bool mask (True = blocked) as an additive float mask of `dtype` (0 / -inf); float masks
    pass through (PyTorch's F._canonical_mask)."""
    if mask is None:
        return None
    md = mask.data.dtype
    if md.kind != "b" and md.kind != "f":
        raise AssertionError(f"only bool and floating types of {name} are supported")
    if other is not None and md != other.data.dtype:
        import warnings

        warnings.warn(
            f"Support for mismatched {name} and {other_name} is deprecated. Use same type for "
            "both instead.",
            stacklevel=3,
        )
    if md.kind == "b":
        xp = get_xp(mask.data)
        arr = xp.where(mask.data, xp.asarray(-xp.inf, dtype=dtype), xp.asarray(0, dtype=dtype))
        return Tensor._make(arr, False, None, 0)
    return mask


def _is_causal_mask(mask: Tensor | None, tgt_len: int, src_len: int) -> bool:
    """Whether a constant 2-D mask is the causal one in MultiheadAttention's convention (bool:
    True above the diagonal; float: -inf above it and 0 elsewhere)."""
    if mask is None or mask.requires_grad or tgt_len != src_len:
        return False
    d = mask.data
    if d.shape != (tgt_len, src_len) or d.dtype.kind not in "bf":
        return False
    xp = get_xp(d)
    above = xp.triu(xp.ones(d.shape, dtype=bool), 1)
    if d.dtype.kind == "b":
        return bool(xp.array_equal(d, above))
    return bool(xp.array_equal(d == -xp.inf, above) and not (d[~above] != 0).any())


def _dropout(x: Tensor, p: float, generator) -> Tensor:
    """x * keep / (1 - p) with keep ~ Bernoulli(1 - p) (training-mode dropout)."""
    d = x.data
    xp = get_xp(d)
    if p >= 1:
        scale = xp.zeros(d.shape, dtype=d.dtype)
    else:
        draw = backend.rng(generator).random(d.shape, dtype=_draw_dtype(d.dtype))
        scale = (draw >= p).astype(d.dtype) * d.dtype.type(1 / (1 - p))
        scale = backend.to_device(scale, backend.device_of(d))
    return x * Tensor._make(scale, False, None, 0)


# -- multi-head attention --------------------------------------------------------------------------
def _check_mha_shapes(query, key, value, key_padding_mask, attn_mask, num_heads) -> bool:
    """PyTorch's _mha_shape_check: whether the input is batched (3-D) or not (2-D)."""
    qd, kd, vd = query.data.ndim, key.data.ndim, value.data.ndim
    if qd == 3:
        if kd != 3 or vd != 3:
            raise AssertionError(
                "For batched (3-D) `query`, expected `key` and `value` to be 3-D but found "
                f"{kd}-D and {vd}-D tensors respectively"
            )
        if key_padding_mask is not None and key_padding_mask.data.ndim != 2:
            raise AssertionError(
                "For batched (3-D) `query`, expected `key_padding_mask` to be `None` or 2-D but "
                f"found {key_padding_mask.data.ndim}-D tensor instead"
            )
        if attn_mask is not None and attn_mask.data.ndim not in (2, 3):
            raise AssertionError(
                "For batched (3-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D but "
                f"found {attn_mask.data.ndim}-D tensor instead"
            )
        return True
    if qd == 2:
        if kd != 2 or vd != 2:
            raise AssertionError(
                "For unbatched (2-D) `query`, expected `key` and `value` to be 2-D but found "
                f"{kd}-D and {vd}-D tensors respectively"
            )
        if key_padding_mask is not None and key_padding_mask.data.ndim != 1:
            raise AssertionError(
                "For unbatched (2-D) `query`, expected `key_padding_mask` to be `None` or 1-D but "
                f"found {key_padding_mask.data.ndim}-D tensor instead"
            )
        if attn_mask is not None:
            if attn_mask.data.ndim not in (2, 3):
                raise AssertionError(
                    "For unbatched (2-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D "
                    f"but found {attn_mask.data.ndim}-D tensor instead"
                )
            if attn_mask.data.ndim == 3:
                expected = (num_heads, query.shape[0], key.shape[0])
                if tuple(attn_mask.shape) != expected:
                    raise AssertionError(
                        f"Expected `attn_mask` shape to be {expected} but got "
                        f"{tuple(attn_mask.shape)}"
                    )
        return False
    raise AssertionError(
        f"query should be unbatched 2D or batched 3D tensor but received {qd}-D query tensor"
    )


def _heads(x: Tensor, n: int, batch_first: bool, num_heads: int, head_dim: int) -> Tensor:
    """(S, N, E) (or (N, S, E) when batch_first) -> (N, H, S, head_dim)."""
    if batch_first:
        return permute(reshape(x, (n, x.shape[1], num_heads, head_dim)), 0, 2, 1, 3)
    return permute(reshape(x, (x.shape[0], n, num_heads, head_dim)), 1, 2, 0, 3)


def _project(query, key, value, w, b, wq, wk, wv, embed_dim):
    """The input projections q, k, v (one product for self-attention, as PyTorch packs them)."""
    E = embed_dim
    if wq is None:  # packed in_proj_weight
        if query is key and key is value:
            proj = linear(query, w, b)
            return proj[..., :E], proj[..., E : 2 * E], proj[..., 2 * E :]
        if key is value:
            q = linear(query, w[:E], None if b is None else b[:E])
            kv = linear(key, w[E:], None if b is None else b[E:])
            return q, kv[..., :E], kv[..., E:]
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E : 2 * E], b[2 * E :])
        return (
            linear(query, w[:E], bq),
            linear(key, w[E : 2 * E], bk),
            linear(value, w[2 * E :], bv),
        )
    bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E : 2 * E], b[2 * E :])
    return linear(query, wq, bq), linear(key, wk, bk), linear(value, wv, bv)


@quiet  # its composite steps (masks added to scores) see inf - inf quietly, as PyTorch's
def _mha(
    query,
    key,
    value,
    embed_dim_to_check,
    num_heads,
    in_proj_weight,
    in_proj_bias,
    bias_k,
    bias_v,
    add_zero_attn,
    dropout_p,
    out_proj_weight,
    out_proj_bias,
    training,
    key_padding_mask,
    need_weights,
    attn_mask,
    use_separate_proj_weight,
    q_proj_weight,
    k_proj_weight,
    v_proj_weight,
    static_k,
    static_v,
    average_attn_weights,
    is_causal,
    batch_first,
    generator,
):
    """multi_head_attention_forward on (L, N, E) inputs, or (N, L, E) with batch_first."""
    is_batched = _check_mha_shapes(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not is_batched:
        batch_first = False
        query, key, value = unsqueeze(query, 1), unsqueeze(key, 1), unsqueeze(value, 1)
        if key_padding_mask is not None:
            key_padding_mask = unsqueeze(key_padding_mask, 0)
    if batch_first:
        bsz, tgt_len, embed_dim = query.shape
        src_len = key.shape[1]
    else:
        tgt_len, bsz, embed_dim = query.shape
        src_len = key.shape[0]
    dtype = query.data.dtype
    key_padding_mask = _canonical_mask(
        key_padding_mask, "key_padding_mask", dtype, attn_mask, "attn_mask"
    )
    if is_causal and attn_mask is None:
        raise RuntimeError(
            "Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
            "method `generate_square_subsequent_mask` to create this mask."
        )
    if (
        not is_causal
        and key_padding_mask is None
        and not need_weights
        and bias_k is None
        and not add_zero_attn
        and static_k is None
        and _is_causal_mask(attn_mask, tgt_len, src_len)
    ):
        is_causal = True  # the mask is the causal one: the fused op skips its masked half
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # the hint replaces the mask: the fused op builds it
    else:
        attn_mask = _canonical_mask(attn_mask, "attn_mask", dtype)
        if key_padding_mask is not None:
            is_causal = False
    if embed_dim != embed_dim_to_check:
        raise AssertionError(
            f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}"
        )
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        if tuple(key.shape[:2]) != tuple(value.shape[:2]):
            raise AssertionError(
                f"key's sequence and batch dims {tuple(key.shape[:2])} do not match value's "
                f"{tuple(value.shape[:2])}"
            )
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is True but q/k/v_proj_weight is None")
        q, k, v = _project(
            query,
            key,
            value,
            None,
            in_proj_bias,
            q_proj_weight,
            k_proj_weight,
            v_proj_weight,
            embed_dim,
        )
    else:
        if tuple(key.shape) != tuple(value.shape):
            raise AssertionError(
                f"key shape {tuple(key.shape)} does not match value shape {tuple(value.shape)}"
            )
        if in_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is False but in_proj_weight is None")
        q, k, v = _project(
            query, key, value, in_proj_weight, in_proj_bias, None, None, None, embed_dim
        )
    if attn_mask is not None:
        if attn_mask.data.ndim == 2:
            if tuple(attn_mask.shape) != (tgt_len, src_len):
                raise RuntimeError(
                    f"The shape of the 2D attn_mask is {_torch_size(attn_mask.shape)}, but should "
                    f"be {(tgt_len, src_len)}."
                )
            attn_mask = reshape(attn_mask, (1, 1, tgt_len, src_len))
        elif attn_mask.data.ndim == 3:
            if tuple(attn_mask.shape) != (bsz * num_heads, tgt_len, src_len):
                raise RuntimeError(
                    f"The shape of the 3D attn_mask is {_torch_size(attn_mask.shape)}, but should "
                    f"be {(bsz * num_heads, tgt_len, src_len)}."
                )
            attn_mask = reshape(attn_mask, (bsz, num_heads, tgt_len, src_len))
        else:
            raise RuntimeError(f"attn_mask's dimension {attn_mask.data.ndim} is not supported")
    # (N, H, len, head_dim) from here on
    q = _heads(q, bsz, batch_first, num_heads, head_dim)
    seq_dim = 1 if batch_first else 0
    if bias_k is not None and bias_v is not None:
        if static_k is not None:
            raise AssertionError("bias cannot be added to static key.")
        if static_v is not None:
            raise AssertionError("bias cannot be added to static value.")
        bk = bias_k.reshape(1, 1, embed_dim).expand(
            *((bsz, 1, embed_dim) if batch_first else (1, bsz, embed_dim))
        )
        bv = bias_v.reshape(1, 1, embed_dim).expand(
            *((bsz, 1, embed_dim) if batch_first else (1, bsz, embed_dim))
        )
        k = cat([k, bk], seq_dim)
        v = cat([v, bv], seq_dim)
        if attn_mask is not None:
            attn_mask = pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = pad(key_padding_mask, (0, 1))
    elif bias_k is not None:
        raise AssertionError("bias_k is set but bias_v is None")
    elif bias_v is not None:
        raise AssertionError("bias_v is set but bias_k is None")
    if static_k is None:
        k = _heads(k, bsz, batch_first, num_heads, head_dim)
    else:
        k = reshape(static_k, (bsz, num_heads, static_k.shape[1], head_dim))
    if static_v is None:
        v = _heads(v, bsz, batch_first, num_heads, head_dim)
    else:
        v = reshape(static_v, (bsz, num_heads, static_v.shape[1], head_dim))
    if add_zero_attn:
        k = pad(k, (0, 0, 0, 1))
        v = pad(v, (0, 0, 0, 1))
        if attn_mask is not None:
            attn_mask = pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = pad(key_padding_mask, (0, 1))
    src_len = k.shape[2]
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise AssertionError(
                f"Expected key_padded_mask.shape[0] to be {bsz}, but got "
                f"{key_padding_mask.shape[0]}"
                if key_padding_mask.shape[0] != bsz
                else f"Expected key_padded_mask.shape[1] to be {src_len}, but got "
                f"{key_padding_mask.shape[1]}"
            )
        kpm = reshape(key_padding_mask, (bsz, 1, 1, src_len))
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    if not training:
        dropout_p = 0.0
    if need_weights:
        scores = (q * math.sqrt(1.0 / head_dim)) @ dual.swap_last(k)
        if attn_mask is not None:
            scores = attn_mask + scores
        weights = softmax(scores, -1)
        if dropout_p > 0.0:
            weights = _dropout(weights, dropout_p, generator)
        out = weights @ v
    else:
        weights = None
        out = scaled_dot_product_attention(
            q, k, v, attn_mask, dropout_p, bool(is_causal), generator=generator
        )
    # (N, H, L, hd) -> (N, L, E) or (L, N, E), then the output projection
    out = permute(out, *((0, 2, 1, 3) if batch_first else (2, 0, 1, 3)))
    out = linear(reshape(out, (*out.shape[:2], embed_dim)), out_proj_weight, out_proj_bias)
    if weights is not None and average_attn_weights:
        weights = weights.mean(1)
    if not is_batched:
        out = out.squeeze(1)
        if weights is not None:
            weights = weights.squeeze(0)
    return out, weights


def _torch_size(shape) -> str:
    return f"torch.Size([{', '.join(str(s) for s in shape)}])"


def multi_head_attention_forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    embed_dim_to_check: int,
    num_heads: int,
    in_proj_weight: Tensor | None,
    in_proj_bias: Tensor | None,
    bias_k: Tensor | None,
    bias_v: Tensor | None,
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight: Tensor,
    out_proj_bias: Tensor | None,
    training: bool = True,
    key_padding_mask: Tensor | None = None,
    need_weights: bool = True,
    attn_mask: Tensor | None = None,
    use_separate_proj_weight: bool = False,
    q_proj_weight: Tensor | None = None,
    k_proj_weight: Tensor | None = None,
    v_proj_weight: Tensor | None = None,
    static_k: Tensor | None = None,
    static_v: Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
    generator: backend.Generator | None = None,
) -> tuple[Tensor, Tensor | None]:
    """PyTorch's F.multi_head_attention_forward on (L, N, E) inputs ((L, E) unbatched).

    Returns (attn_output, attn_weights): weights averaged over heads (N, L, S) when
    average_attn_weights, else per head (N, H, L, S); None when need_weights is False (then
    the fused scaled_dot_product_attention runs). Bool masks: True = blocked.
    """
    return _mha(
        query,
        key,
        value,
        embed_dim_to_check,
        num_heads,
        in_proj_weight,
        in_proj_bias,
        bias_k,
        bias_v,
        add_zero_attn,
        dropout_p,
        out_proj_weight,
        out_proj_bias,
        training,
        key_padding_mask,
        need_weights,
        attn_mask,
        use_separate_proj_weight,
        q_proj_weight,
        k_proj_weight,
        v_proj_weight,
        static_k,
        static_v,
        average_attn_weights,
        is_causal,
        False,
        generator,
    )
