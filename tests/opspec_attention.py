"""Op-table rows: attention (retrograd/ops/attention.py): the fused scaled_dot_product_attention
and PyTorch's functional multi-head attention forward."""

from __future__ import annotations

import math

import numpy as np
import torch.nn.functional as TF

import retrograd as rg
from retrograd.ops import attention as A
from tests.opspec_base import OpSpec, Sample, values


# -- NumPy references ------------------------------------------------------------------------------
def _softmax_rows(s):
    """Row softmax; rows with every score -inf give zeros (PyTorch's safe softmax in sdpa)."""
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isneginf(m), 0.0, m)
    e = np.exp(s - m)
    den = e.sum(axis=-1, keepdims=True)
    return e / np.where(den == 0, 1.0, den)


def _sdpa_ref(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kw):
    if kw.get("enable_gqa"):
        k = np.repeat(k, q.shape[-3] // k.shape[-3], axis=-3)
        v = np.repeat(v, q.shape[-3] // v.shape[-3], axis=-3)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ np.swapaxes(k, -1, -2)) * scale
    if attn_mask is not None:
        if attn_mask.dtype == bool:
            s = np.where(attn_mask, s, -np.inf)
        else:
            s = s + attn_mask
    if is_causal:
        s = np.where(np.tri(s.shape[-2], s.shape[-1], dtype=bool), s, -np.inf)
    p = _softmax_rows(s) if s.shape[-1] else np.zeros(s.shape, s.dtype)
    if dropout_p > 0:  # the same draws as the op: the generator seeded alike
        draw = rg.Generator().manual_seed(kw["seed"]).numpy.random(p.shape, dtype=p.dtype)
        p = p * (draw >= dropout_p) / (1 - dropout_p)
    return p @ v


def _sdpa_rg(q, k, v, attn_mask=None, seed=None, **kwargs):
    gen = None if seed is None else rg.Generator().manual_seed(seed)
    return A.scaled_dot_product_attention(q, k, v, attn_mask, generator=gen, **kwargs)


def _sdpa_torch(q, k, v, attn_mask=None, seed=None, **kwargs):
    return TF.scaled_dot_product_attention(q, k, v, attn_mask, **kwargs)


def _additive(mask):
    if mask is None or mask.dtype != bool:
        return mask
    return np.where(mask, -np.inf, 0.0)


def _mha_ref(
    query,
    key,
    value,
    in_w,
    in_b,
    out_w,
    out_b,
    kpm=None,
    attn_mask=None,
    qw=None,
    kw=None,
    vw=None,
    bias_k=None,
    bias_v=None,
    num_heads=2,
    need_weights=True,
    average_attn_weights=True,
    is_causal=False,
    add_zero_attn=False,
):
    unbatched = query.ndim == 2
    if unbatched:
        query, key, value = query[:, None], key[:, None], value[:, None]
        kpm = None if kpm is None else kpm[None]
    L, N, E = query.shape
    H, d = num_heads, E // num_heads
    if qw is None:
        qw, kw, vw = in_w[:E], in_w[E : 2 * E], in_w[2 * E :]
    bq, bk, bv = (0, 0, 0) if in_b is None else (in_b[:E], in_b[E : 2 * E], in_b[2 * E :])
    q, k, v = query @ qw.T + bq, key @ kw.T + bk, value @ vw.T + bv
    mask = 0.0 if attn_mask is None else _additive(attn_mask)
    if attn_mask is not None:
        mask = mask.reshape(1, 1, L, -1) if mask.ndim == 2 else mask.reshape(N, H, L, -1)
    kmask = 0.0 if kpm is None else _additive(kpm)
    if bias_k is not None:
        k = np.concatenate([k, np.broadcast_to(bias_k.reshape(1, 1, E), (1, N, E))])
        v = np.concatenate([v, np.broadcast_to(bias_v.reshape(1, 1, E), (1, N, E))])
        mask = mask if attn_mask is None else np.pad(mask, [(0, 0)] * 3 + [(0, 1)])
        kmask = kmask if kpm is None else np.pad(kmask, [(0, 0), (0, 1)])
    q, k, v = (a.reshape(a.shape[0], N, H, d).transpose(1, 2, 0, 3) for a in (q, k, v))
    if add_zero_attn:
        k = np.pad(k, [(0, 0), (0, 0), (0, 1), (0, 0)])
        v = np.pad(v, [(0, 0), (0, 0), (0, 1), (0, 0)])
        mask = mask if attn_mask is None else np.pad(mask, [(0, 0)] * 3 + [(0, 1)])
        kmask = kmask if kpm is None else np.pad(kmask, [(0, 0), (0, 1)])
    if kpm is not None:
        mask = mask + kmask.reshape(N, 1, 1, -1)
    if is_causal and kpm is None and not need_weights:
        mask = np.where(np.tri(L, k.shape[2], dtype=bool), 0.0, -np.inf)
    p = _softmax_rows(q @ k.swapaxes(-1, -2) / math.sqrt(d) + mask)
    out = (p @ v).transpose(2, 0, 1, 3).reshape(L, N, E) @ out_w.T
    out = out + out_b if out_b is not None else out
    if average_attn_weights:
        p = p.mean(axis=1)
    if unbatched:
        out, p = out[:, 0], p[0]
    return (out, p) if need_weights else out


def _mha_args(
    query, key, value, in_w, in_b, out_w, out_b, kpm, attn_mask, qw, kw, vw, bk=None, bv=None
):
    E = query.shape[-1]
    return dict(
        query=query,
        key=key,
        value=value,
        embed_dim_to_check=E,
        in_proj_weight=in_w,
        in_proj_bias=in_b,
        bias_k=bk,
        bias_v=bv,
        dropout_p=0.0,
        out_proj_weight=out_w,
        out_proj_bias=out_b,
        key_padding_mask=kpm,
        attn_mask=attn_mask,
        use_separate_proj_weight=qw is not None,
        q_proj_weight=qw,
        k_proj_weight=kw,
        v_proj_weight=vw,
    )


def _mha_rg(*args, need_weights=True, **kwargs):
    out = A.multi_head_attention_forward(**_mha_args(*args), need_weights=need_weights, **kwargs)
    return out if need_weights else out[0]


def _mha_torch(*args, need_weights=True, **kwargs):
    out = TF.multi_head_attention_forward(**_mha_args(*args), need_weights=need_weights, **kwargs)
    return out if need_weights else out[0]


# -- samples ---------------------------------------------------------------------------------------
def _qkv(rng, qs, ks, vs, domain=(-1.5, 1.5)):
    return values(rng, qs, domain), values(rng, ks, domain), values(rng, vs, domain)


def _sdpa_samples(rng):
    out = []
    for qs, ks, vs in [
        ((2, 3, 4), (2, 5, 4), (2, 5, 3)),
        ((3, 4), (5, 4), (5, 2)),
        ((2, 2, 3, 4), (2, 2, 4, 4), (2, 2, 4, 3)),
        ((2, 1, 3, 2), (1, 2, 4, 2), (2, 2, 4, 3)),
    ]:
        out.append(Sample(_qkv(rng, qs, ks, vs), {}, f"q{qs} k{ks} v{vs}"))
    q, k, v = _qkv(rng, (2, 3, 4), (2, 4, 4), (2, 4, 3))
    keep = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 1]], dtype=bool)
    out.append(Sample((q, k, v, keep), {}, "bool mask (3, 4), a fully masked row"))
    keep2 = rng.random((2, 1, 4)) > 0.4
    keep2[..., 0] = True
    out.append(Sample((q, k, v, keep2), {}, "bool mask broadcast (2, 1, 4)"))
    out.append(Sample((q, k, v, values(rng, (3, 4))), {}, "float mask (3, 4) (differentiated)"))
    fm = values(rng, (2, 3, 4))
    fm[:, 0, 1] = -np.inf
    out.append(Sample((q, k, v, fm), {}, "float mask with -inf"))
    fm2 = np.zeros((3, 4))
    fm2[2] = -np.inf
    out.append(Sample((q, k, v, fm2), {}, "float mask, a fully -inf row"))
    out.append(Sample(_qkv(rng, (2, 4, 3), (2, 4, 3), (2, 4, 2)), {"is_causal": True}, "causal"))
    out.append(
        Sample(_qkv(rng, (2, 5, 3), (2, 3, 3), (2, 3, 2)), {"is_causal": True}, "causal L > S")
    )
    out.append(
        Sample(_qkv(rng, (2, 2, 3), (2, 4, 3), (2, 4, 2)), {"is_causal": True}, "causal L < S")
    )
    out.append(Sample(_qkv(rng, (2, 3, 4), (2, 4, 4), (2, 4, 3)), {"scale": 0.7}, "scale=0.7"))
    out.append(
        Sample(
            _qkv(rng, (2, 3, 4), (2, 4, 4), (2, 4, 3)),
            {"scale": 0.5, "is_causal": True},
            "scale=0.5 causal",
        )
    )
    x = values(rng, (2, 3, 4))
    out.append(Sample((x, x, x), {}, "repeated input q = k = v"))
    out.append(Sample((x, x, x), {"is_causal": True}, "repeated input, causal"))
    y = values(rng, (2, 4, 3))
    out.append(Sample((values(rng, (2, 2, 3)), y, y), {}, "repeated input k = v"))
    out.append(
        Sample(_qkv(rng, (2, 3, 4), (2, 4, 4), (2, 4, 3)), {}, "noncontig", noncontig=(0, 1, 2))
    )
    out.append(Sample(_qkv(rng, (2, 0, 3), (2, 4, 3), (2, 4, 2)), {}, "empty L"))
    out.append(Sample(_qkv(rng, (2, 3, 3), (2, 0, 3), (2, 0, 2)), {}, "empty S"))
    out.append(
        Sample(
            _qkv(rng, (1, 4, 2, 2), (1, 2, 3, 2), (1, 2, 3, 2)),
            {"enable_gqa": True},
            "grouped-query heads",
        )
    )
    out.append(
        Sample(
            _qkv(rng, (2, 3, 4), (2, 4, 4), (2, 4, 3)),
            {"dropout_p": 0.3, "seed": 5},
            "dropout_p=0.3 (seeded generator)",
            torch=False,
        )
    )
    return out


def _mha_samples(rng):
    E, H, L, S, N = 4, 2, 3, 4, 2

    def weights(kdim=E, vdim=E, bias=True, packed=True):
        ws = [values(rng, (3 * E, E), (-0.8, 0.8)) if packed else None]
        ws.append(values(rng, (3 * E,), (-0.3, 0.3)) if bias else None)
        ws.append(values(rng, (E, E), (-0.8, 0.8)))
        ws.append(values(rng, (E,), (-0.3, 0.3)) if bias else None)
        return ws

    def sep(kdim, vdim):
        return [
            values(rng, (E, E), (-0.8, 0.8)),
            values(rng, (E, kdim), (-0.8, 0.8)),
            values(rng, (E, vdim), (-0.8, 0.8)),
        ]

    base = {"num_heads": H, "add_zero_attn": False}
    out = []
    x = values(rng, (L, N, E))
    none4 = [None] * 4
    for nw in (True, False):
        out.append(
            Sample(
                (x, x, x, *weights(), None, None, *none4, None),
                dict(base, need_weights=nw),
                f"self-attention need_weights={nw}",
            )
        )
    mem = values(rng, (S, N, E))
    out.append(
        Sample(
            (values(rng, (L, N, E)), mem, mem, *weights(), None, None, *none4, None),
            dict(base, need_weights=False),
            "cross-attention (key is value)",
        )
    )
    out.append(
        Sample(
            (*_qkv(rng, (L, N, E), (S, N, E), (S, N, E)), *weights(), None, None, *none4, None),
            dict(base, average_attn_weights=False),
            "q, k, v distinct, per-head weights",
        )
    )
    w = weights(packed=False)
    out.append(
        Sample(
            (*_qkv(rng, (L, N, E), (S, N, 3), (S, N, 5)), *w, None, None, *sep(3, 5), None, None),
            dict(base, need_weights=False),
            "kdim=3, vdim=5 (separate projection weights)",
        )
    )
    kpm = np.array([[False, False, True, False], [False, True, False, True]])
    am = np.array(
        [[False, True, False, False], [False, False, False, True], [True, False, False, False]]
    )
    for nw in (True, False):
        out.append(
            Sample(
                (*_qkv(rng, (L, N, E), (S, N, E), (S, N, E)), *weights(), kpm, am, *none4),
                dict(base, need_weights=nw),
                f"bool key_padding_mask and attn_mask, need_weights={nw}",
            )
        )
    fam = values(rng, (N * H, L, S))
    for nw in (True, False):
        out.append(
            Sample(
                (*_qkv(rng, (L, N, E), (S, N, E), (S, N, E)), *weights(), None, fam, *none4),
                dict(base, need_weights=nw),
                f"float 3-D attn_mask, need_weights={nw}",
            )
        )
    causal = np.triu(np.full((L, L), -np.inf), 1)
    y = values(rng, (L, N, E))
    for nw in (True, False):
        out.append(
            Sample(
                (y, y, y, *weights(), None, causal, *none4),
                dict(base, need_weights=nw, is_causal=True),
                f"is_causal with the causal mask, need_weights={nw}",
            )
        )
    fkpm = values(rng, (N, L))
    out.append(
        Sample(
            (y, y, y, *weights(), fkpm, None, *none4),
            dict(base, need_weights=False),
            "float key_padding_mask",
        )
    )
    z = values(rng, (L, E))
    out.append(
        Sample(
            (z, z, z, *weights(), np.array([False, True, False]), None, *none4),
            dict(base),
            "unbatched (L, E)",
        )
    )
    out.append(
        Sample(
            (*_qkv(rng, (L, N, E), (S, N, E), (S, N, E)), *weights(bias=False), None, None, *none4),
            dict(base, need_weights=False),
            "no biases",
        )
    )
    bkv = [values(rng, (1, 1, E)), values(rng, (1, 1, E))]
    out.append(
        Sample(
            (*_qkv(rng, (L, N, E), (S, N, E), (S, N, E)), *weights(), kpm, am, None, None, None)
            + tuple(bkv),
            dict(base, need_weights=True),
            "bias_k, bias_v with masks",
        )
    )
    out.append(
        Sample(
            (*_qkv(rng, (L, N, E), (S, N, E), (S, N, E)), *weights(), kpm, None, *none4),
            dict(base, need_weights=False, add_zero_attn=True),
            "add_zero_attn",
        )
    )
    return out


ROWS = [
    OpSpec(
        "scaled_dot_product_attention",
        _sdpa_rg,
        _sdpa_ref,
        _sdpa_torch,
        _sdpa_samples,
    ),
    OpSpec(
        "multi_head_attention_forward",
        _mha_rg,
        _mha_ref,
        _mha_torch,
        _mha_samples,
        fast_gradcheck_above=200,
    ),
]

NOT_ROWS = {
    "causal_mask": "helper building a constant mask, covered by tests/test_attention.py",
}
