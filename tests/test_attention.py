"""scaled_dot_product_attention beyond the op table (fully masked rows, dropout, second order,
errors, the causal-mask helper) and nn.MultiheadAttention against PyTorch: same weights (state
dicts loaded both ways), all mask kinds, kdim/vdim, batch_first, need_weights, gradients of the
inputs and every parameter."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import retrograd as rg
from retrograd.nn.layers.attention import MultiheadAttention
from retrograd.ops import attention as A

FWD = dict(atol=1e-6, rtol=1e-3)
GRAD = dict(atol=1e-4, rtol=1e-3)


def _arr(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _pair(a, requires_grad=True):
    """The same values as a retrograd and a torch tensor."""
    r = rg.tensor(a, requires_grad=requires_grad and a.dtype.kind == "f")
    t = torch.tensor(a, requires_grad=requires_grad and a.dtype.kind == "f")
    return r, t


def _np(x):
    return x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x.data)


# -- scaled_dot_product_attention ------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_fully_masked_rows_give_zeros_as_torch(kind):
    rng = np.random.default_rng(0)
    q, k, v = _arr(rng, 2, 3, 4), _arr(rng, 2, 5, 4), _arr(rng, 2, 5, 6)
    if kind == "bool":
        mask = rng.random((3, 5)) > 0.3
        mask[0] = True
        mask[1] = False
    else:
        mask = _arr(rng, 3, 5)
        mask[1] = -np.inf
    (rq, tq), (rk, tk), (rv, tv) = _pair(q), _pair(k), _pair(v)
    rm, tm = _pair(mask, requires_grad=False)
    ro = A.scaled_dot_product_attention(rq, rk, rv, rm)
    to = TF.scaled_dot_product_attention(tq, tk, tv, tm)
    np.testing.assert_allclose(ro.data, _np(to), **FWD)
    assert np.all(ro.data[:, 1] == 0)
    w = _arr(rng, *ro.shape)
    (ro * rg.tensor(w)).sum().backward()
    (to * torch.tensor(w)).sum().backward()
    for r, t in ((rq, tq), (rk, tk), (rv, tv)):
        np.testing.assert_allclose(r.grad.data, t.grad.numpy(), **GRAD)
    assert np.all(rq.grad.data[:, 1] == 0)
    assert np.isfinite(rk.grad.data).all()


@pytest.mark.parametrize(
    "shapes,kwargs",
    [
        (((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3)), dict(is_causal=True)),
        (((2, 3, 4), (2, 5, 4), (2, 5, 3)), dict(mask=True)),
        (((3, 1, 2, 3, 4), (1, 2, 2, 5, 4), (3, 2, 2, 5, 3)), dict(scale=0.4)),
    ],
)
def test_sdpa_second_order_matches_torch(shapes, kwargs):
    """d/d(q, k, v) of |dL/dq|^2 + |dL/dk|^2 + |dL/dv|^2 (create_graph=True) as PyTorch."""
    rng = np.random.default_rng(1)
    arrays = [_arr(rng, *s) for s in shapes]
    pairs = [_pair(a) for a in arrays]
    kw = dict(kwargs)
    rmask = tmask = None
    if kw.pop("mask", False):
        m = rng.random((shapes[0][-2], shapes[1][-2])) > 0.3
        m[:, 0] = True
        rmask, tmask = _pair(m, requires_grad=False)
    r_in, t_in = [p[0] for p in pairs], [p[1] for p in pairs]
    w = _arr(rng, *np.broadcast_shapes(shapes[0][:-1], shapes[2][:-2] + (1,)), shapes[2][-1])
    ro = A.scaled_dot_product_attention(*r_in, rmask, **kw)
    to = TF.scaled_dot_product_attention(*t_in, tmask, **kw)
    rgrads = rg.autograd.grad((ro * rg.tensor(w)).sum(), r_in, create_graph=True)
    tgrads = torch.autograd.grad((to * torch.tensor(w)).sum(), t_in, create_graph=True)
    sum(((g * g).sum() for g in rgrads), rg.tensor(0.0)).backward()
    sum((g * g).sum() for g in tgrads).backward()
    for r, t in zip(r_in, t_in):
        np.testing.assert_allclose(r.grad.data, t.grad.numpy(), atol=2e-4, rtol=1e-3)


def test_sdpa_large_scores_stay_finite():
    rng = np.random.default_rng(2)
    q, k, v = _arr(rng, 2, 3, 4) * 300, _arr(rng, 2, 5, 4) * 300, _arr(rng, 2, 5, 3)
    (rq, tq), (rk, tk), (rv, tv) = _pair(q), _pair(k), _pair(v)
    ro = A.scaled_dot_product_attention(rq, rk, rv)
    to = TF.scaled_dot_product_attention(tq, tk, tv)
    assert np.isfinite(ro.data).all()
    np.testing.assert_allclose(ro.data, _np(to), atol=1e-4, rtol=1e-3)
    ro.sum().backward()
    assert np.isfinite(rq.grad.data).all() and np.isfinite(rk.grad.data).all()


def test_sdpa_keeps_float32_and_shape():
    x = rg.randn(2, 3, 4, 5)
    out = A.scaled_dot_product_attention(x, x, rg.randn(2, 3, 4, 7))
    assert out.dtype == rg.float32 and out.shape == (2, 3, 4, 7)


def test_sdpa_bool_mask_equals_float_mask_and_causal():
    rng = np.random.default_rng(3)
    q, k, v = (rg.tensor(_arr(rng, 2, 4, 3)) for _ in range(3))
    keep = A.causal_mask(4)
    a = A.scaled_dot_product_attention(q, k, v, keep)
    b = A.scaled_dot_product_attention(q, k, v, A.causal_mask(4, dtype=rg.float32))
    c = A.scaled_dot_product_attention(q, k, v, is_causal=True)
    np.testing.assert_allclose(a.data, b.data, atol=1e-7)
    np.testing.assert_allclose(a.data, c.data, atol=1e-7)


def test_sdpa_dropout_seeded_reproducible_and_unbiased():
    rng = np.random.default_rng(4)
    q, k, v = (rg.tensor(np.broadcast_to(_arr(rng, 1, 3, 4), (4000, 3, 4))) for _ in range(3))
    ref = A.scaled_dot_product_attention(q[:1], k[:1], v[:1]).data
    a = A.scaled_dot_product_attention(
        q, k, v, dropout_p=0.3, generator=rg.Generator().manual_seed(7)
    )
    b = A.scaled_dot_product_attention(
        q, k, v, dropout_p=0.3, generator=rg.Generator().manual_seed(7)
    )
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.allclose(a.data[0], ref[0])
    # E[dropout(P) V] = P V: the mean over 4000 independent draws is close to the clean output
    np.testing.assert_allclose(a.data.mean(axis=0), ref[0], atol=0.08)
    zero = A.scaled_dot_product_attention(q[:2], k[:2], v[:2], dropout_p=1.0)
    assert np.all(zero.data == 0)


def test_sdpa_dropout_uses_the_default_generator():
    x = rg.randn(2, 3, 4)
    rg.manual_seed(11)
    a = A.scaled_dot_product_attention(x, x, x, dropout_p=0.5)
    rg.manual_seed(11)
    b = A.scaled_dot_product_attention(x, x, x, dropout_p=0.5)
    np.testing.assert_array_equal(a.data, b.data)


def test_sdpa_saved_inputs_modified_in_place_raise():
    q = rg.randn(2, 3, 4, requires_grad=True)
    k = rg.randn(2, 3, 4)
    v = rg.randn(2, 3, 4)
    out = A.scaled_dot_product_attention(q * 1, k, v)
    k.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


@pytest.mark.parametrize(
    "call,message",
    [
        (
            lambda q, k, v: A.scaled_dot_product_attention(
                q, k, v, attn_mask=rg.ones(3, 5, dtype=rg.bool), is_causal=True
            ),
            "Explicit attn_mask should not be set when is_causal=True",
        ),
        (
            lambda q, k, v: A.scaled_dot_product_attention(
                q, k, v, attn_mask=rg.ones(3, 5, dtype=rg.int64)
            ),
            "Expected attn_mask dtype to be bool or float or to match query dtype, but got "
            "attn_mask.dtype: long int and  query.dtype: float instead.",
        ),
        (
            lambda q, k, v: A.scaled_dot_product_attention(q.double(), k, v),
            "Expected query, key, and value to have the same dtype, but got query.dtype: double "
            "key.dtype: float and value.dtype: float instead.",
        ),
        (
            lambda q, k, v: A.scaled_dot_product_attention(q[0, 0], k[0, 0], v[0, 0]),
            "Expected query, key, and value to all be  at least 2 dimensional, but got "
            "query.dim: 1 key.dim: 1 and value.dim: 1 instead.",
        ),
        (
            lambda q, k, v: A.scaled_dot_product_attention(q, k, v, dropout_p=1.5),
            "dropout probability has to be between 0 and 1, but got 1.5",
        ),
        (
            lambda q, k, v: A.scaled_dot_product_attention(q, k[..., :3], v),
            "Expected the last dimension of query and key to match",
        ),
        (
            lambda q, k, v: A.scaled_dot_product_attention(q, k, v[:, :4]),
            "Expected key and value to have the same sequence length",
        ),
    ],
)
def test_sdpa_errors(call, message):
    q, k, v = rg.randn(2, 3, 4), rg.randn(2, 5, 4), rg.randn(2, 5, 6)
    with pytest.raises(RuntimeError) as err:
        call(q, k, v)
    assert message in str(err.value)


def test_sdpa_errors_match_torch_wording():
    """The messages above that PyTorch raises too are PyTorch's, word for word."""
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 6)
    cases = [
        (dict(attn_mask=torch.ones(3, 5, dtype=torch.bool), is_causal=True), "Explicit attn_mask"),
        (dict(attn_mask=torch.ones(3, 5, dtype=torch.long)), "long int and  query.dtype: float"),
        (dict(dropout_p=1.5), "dropout probability has to be between 0 and 1, but got 1.5"),
    ]
    for kwargs, message in cases:
        with pytest.raises(RuntimeError, match=message):
            TF.scaled_dot_product_attention(q, k, v, **kwargs)


def test_sdpa_grouped_query_heads_error():
    q, k = rg.randn(1, 4, 2, 3), rg.randn(1, 3, 2, 3)
    with pytest.raises(RuntimeError, match="must divide the number of heads"):
        A.scaled_dot_product_attention(q, k, k, enable_gqa=True)


# -- causal_mask -----------------------------------------------------------------------------------
def test_causal_mask_bool_and_float():
    m = A.causal_mask(4)
    assert m.dtype == rg.bool and not m.requires_grad
    np.testing.assert_array_equal(m.data, np.tril(np.ones((4, 4), bool)))
    f = A.causal_mask(4, dtype=rg.float32)
    assert f.dtype == rg.float32
    expected = torch.nn.Transformer.generate_square_subsequent_mask(4).numpy()
    np.testing.assert_array_equal(f.data, expected)
    assert A.causal_mask(3, dtype=rg.float64).dtype == rg.float64
    with pytest.raises(TypeError, match="bool or a floating type"):
        A.causal_mask(3, dtype=rg.int64)


# -- MultiheadAttention against PyTorch ------------------------------------------------------------
def _load_rg_from_torch(rmod, tmod):
    rmod.load_state_dict(
        {k: rg.tensor(v.detach().numpy().copy()) for k, v in tmod.state_dict().items()}
    )


def _load_torch_from_rg(tmod, rmod):
    tmod.load_state_dict({k: torch.tensor(np.array(v.data)) for k, v in rmod.state_dict().items()})


def _mha_pair(E, H, direction="torch->rg", **kwargs):
    torch.manual_seed(0)
    tmod = torch.nn.MultiheadAttention(E, H, **kwargs)
    rmod = MultiheadAttention(E, H, generator=rg.Generator().manual_seed(0), **kwargs)
    if direction == "torch->rg":
        _load_rg_from_torch(rmod, tmod)
    else:
        _load_torch_from_rg(tmod, rmod)
    # then non-zero biases in both (both libraries initialise them to zero, which would hide a
    # wrong bias path)
    rng = np.random.default_rng(5)
    state = {}
    for name, value in tmod.state_dict().items():
        a = value.numpy().copy()
        if "bias" in name:
            a = a + rng.uniform(-0.3, 0.3, a.shape).astype(np.float32)
        state[name] = a
    tmod.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    rmod.load_state_dict({k: rg.tensor(v) for k, v in state.items()})
    return rmod, tmod


def _compare(rmod, tmod, r_inputs, t_inputs, r_out, t_out, fwd=FWD, grad=GRAD):
    """Outputs equal; then gradients of a random projection of every output w.r.t. the inputs
    that require grad and every parameter, matched by name."""
    r_out = [o for o in (r_out if isinstance(r_out, tuple) else (r_out,)) if o is not None]
    t_out = [o for o in (t_out if isinstance(t_out, tuple) else (t_out,)) if o is not None]
    assert len(r_out) == len(t_out)
    rng = np.random.default_rng(6)
    rloss, tloss = rg.tensor(0.0), torch.tensor(0.0)
    for ro, to in zip(r_out, t_out):
        assert tuple(ro.shape) == tuple(to.shape)
        np.testing.assert_allclose(ro.data, _np(to), **fwd)
        w = rng.standard_normal(tuple(to.shape)).astype(np.float32)
        rloss = rloss + (ro * rg.tensor(w)).sum()
        tloss = tloss + (to * torch.tensor(w)).sum()
    rloss.backward()
    tloss.backward()
    for r, t in zip(r_inputs, t_inputs):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            np.testing.assert_allclose(r.grad.data, t.grad.numpy(), **grad)
    tparams = dict(tmod.named_parameters())
    rparams = dict(rmod.named_parameters())
    assert sorted(tparams) == sorted(rparams)
    for name, tp in tparams.items():
        assert tuple(rparams[name].shape) == tuple(tp.shape), name
        tg = np.zeros(tuple(tp.shape), np.float32) if tp.grad is None else tp.grad.numpy()
        rgd = rparams[name].grad
        rgv = np.zeros(tuple(tp.shape), np.float32) if rgd is None else rgd.data
        np.testing.assert_allclose(rgv, tg, err_msg=name, **grad)


MHA_CASES = {
    "self": dict(inputs="self"),
    "self need_weights=False": dict(inputs="self", call=dict(need_weights=False)),
    "cross k=v": dict(inputs="kv"),
    "cross k=v need_weights=False": dict(inputs="kv", call=dict(need_weights=False)),
    "distinct per-head weights": dict(inputs="qkv", call=dict(average_attn_weights=False)),
    "kdim vdim": dict(inputs="qkv", init=dict(kdim=3, vdim=5)),
    "kdim vdim need_weights=False": dict(
        inputs="qkv", init=dict(kdim=3, vdim=5), call=dict(need_weights=False)
    ),
    "no bias": dict(inputs="qkv", init=dict(bias=False)),
    "bool key_padding_mask": dict(inputs="kv", masks=("kpm_bool",)),
    "bool key_padding_mask need_weights=False": dict(
        inputs="kv", masks=("kpm_bool",), call=dict(need_weights=False)
    ),
    "bool attn_mask 2-D": dict(inputs="kv", masks=("am_bool",)),
    "bool attn_mask 3-D + key_padding_mask, no weights": dict(
        inputs="kv", masks=("am3_bool", "kpm_bool"), call=dict(need_weights=False)
    ),
    "float attn_mask 3-D": dict(inputs="qkv", masks=("am3_float",)),
    "float masks need_weights=False": dict(
        inputs="qkv", masks=("am_float", "kpm_float"), call=dict(need_weights=False)
    ),
    "is_causal self, no weights": dict(
        inputs="self", masks=("causal",), call=dict(is_causal=True, need_weights=False)
    ),
    "is_causal self, weights": dict(inputs="self", masks=("causal",), call=dict(is_causal=True)),
    "is_causal with key_padding_mask": dict(
        inputs="self",
        masks=("causal_bool", "kpm_bool"),
        call=dict(is_causal=True, need_weights=False),
    ),
    "add_bias_kv": dict(inputs="kv", masks=("am_bool", "kpm_bool"), init=dict(add_bias_kv=True)),
    "add_zero_attn": dict(
        inputs="qkv", masks=("kpm_bool",), init=dict(add_zero_attn=True), call=dict()
    ),
    "add_bias_kv add_zero_attn no weights": dict(
        inputs="qkv",
        init=dict(add_bias_kv=True, add_zero_attn=True),
        call=dict(need_weights=False),
    ),
    "unbatched": dict(inputs="kv", masks=("kpm_bool",), unbatched=True),
    "unbatched self no weights": dict(inputs="self", unbatched=True, call=dict(need_weights=False)),
}


def _masks(names, rng, N, H, L, S):
    out = {}
    for name in names:
        if name == "kpm_bool":
            m = rng.random((N, S)) < 0.3
            m[:, 0] = False
            out["key_padding_mask"] = m
        elif name == "kpm_float":
            out["key_padding_mask"] = _arr(rng, N, S)
        elif name == "am_bool":
            m = rng.random((L, S)) < 0.3
            m[:, 1] = False
            out["attn_mask"] = m
        elif name == "am3_bool":
            m = rng.random((N * H, L, S)) < 0.3
            m[..., 2] = False
            out["attn_mask"] = m
        elif name == "am_float":
            out["attn_mask"] = _arr(rng, L, S)
        elif name == "am3_float":
            out["attn_mask"] = _arr(rng, N * H, L, S)
        elif name == "causal":
            out["attn_mask"] = np.triu(np.full((L, S), -np.inf, np.float32), 1)
        elif name == "causal_bool":
            out["attn_mask"] = np.triu(np.ones((L, S), bool), 1)
    return out


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("direction", ["torch->rg", "rg->torch"])
@pytest.mark.parametrize("case", list(MHA_CASES), ids=list(MHA_CASES))
def test_multihead_attention_matches_torch(case, direction, batch_first):
    cfg = MHA_CASES[case]
    E, H, N = 8, 2, 3
    L = 4
    S = L if cfg["inputs"] == "self" else 5
    init = dict(cfg.get("init", {}))
    rmod, tmod = _mha_pair(E, H, direction, batch_first=batch_first, **init)
    rng = np.random.default_rng(7)
    kdim, vdim = init.get("kdim", E), init.get("vdim", E)
    unbatched = cfg.get("unbatched", False)

    def shape(n, d):
        if unbatched:
            return (n, d)
        return (N, n, d) if batch_first else (n, N, d)

    q = _arr(rng, *shape(L, E))
    if cfg["inputs"] == "self":
        arrays = [q, q, q]
    elif cfg["inputs"] == "kv":
        kv = _arr(rng, *shape(S, E))
        arrays = [q, kv, kv]
    else:
        arrays = [q, _arr(rng, *shape(S, kdim)), _arr(rng, *shape(S, vdim))]
    made = {}
    for a in arrays:
        if id(a) not in made:
            made[id(a)] = _pair(a)
    r_in = [made[id(a)][0] for a in arrays]
    t_in = [made[id(a)][1] for a in arrays]
    masks = _masks(cfg.get("masks", ()), rng, N, H, L, S)
    if unbatched and "key_padding_mask" in masks:
        masks["key_padding_mask"] = masks["key_padding_mask"][0]
    rkw = {k: rg.tensor(v) for k, v in masks.items()}
    tkw = {k: torch.tensor(v) for k, v in masks.items()}
    call = cfg.get("call", {})
    r_out = rmod(*r_in, **rkw, **call)
    t_out = tmod(*t_in, **tkw, **call)
    assert (r_out[1] is None) == (t_out[1] is None)
    r_all, t_all = [p[0] for p in made.values()], [p[1] for p in made.values()]
    _compare(rmod, tmod, r_all, t_all, r_out, t_out, fwd=FWD)


def test_multihead_attention_parameters_and_init_as_torch():
    m = MultiheadAttention(16, 4, generator=rg.Generator().manual_seed(0))
    t = torch.nn.MultiheadAttention(16, 4)
    assert list(m.state_dict()) == list(t.state_dict())
    for (name, p), (tname, tp) in zip(m.named_parameters(), t.named_parameters()):
        assert name == tname and tuple(p.shape) == tuple(tp.shape)
    bound = np.sqrt(6 / (16 + 48))  # xavier_uniform_ on (3E, E)
    w = m.in_proj_weight.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.all(m.in_proj_bias.data == 0) and np.all(m.out_proj.bias.data == 0)
    assert m.q_proj_weight is None and m.k_proj_weight is None and m.v_proj_weight is None
    assert m.bias_k is None and m.bias_v is None
    s = MultiheadAttention(16, 4, kdim=3, vdim=5, bias=False, add_bias_kv=True)
    ts = torch.nn.MultiheadAttention(16, 4, kdim=3, vdim=5, bias=False, add_bias_kv=True)
    assert list(s.state_dict()) == list(ts.state_dict())
    assert s.in_proj_weight is None and s.in_proj_bias is None and s.out_proj.bias is None
    assert tuple(s.k_proj_weight.shape) == (16, 3) and tuple(s.v_proj_weight.shape) == (16, 5)
    assert tuple(s.bias_k.shape) == (1, 1, 16)


def test_multihead_attention_eval_turns_dropout_off_and_train_draws_masks():
    rmod, tmod = _mha_pair(8, 2, dropout=0.5)
    x = _arr(np.random.default_rng(8), 4, 2, 8)
    rmod.eval()
    tmod.eval()
    with torch.no_grad():
        t_out, t_w = tmod(*(torch.tensor(x),) * 3)
    r_out, r_w = rmod(*(rg.tensor(x),) * 3)
    np.testing.assert_allclose(r_out.data, t_out.numpy(), **FWD)
    np.testing.assert_allclose(r_w.data, t_w.numpy(), **FWD)
    rmod.train()
    rmod.generator = rg.Generator().manual_seed(3)
    a = rmod(*(rg.tensor(x),) * 3)[0]
    rmod.generator = rg.Generator().manual_seed(3)
    b = rmod(*(rg.tensor(x),) * 3)[0]
    c = rmod(*(rg.tensor(x),) * 3, need_weights=False)[0]
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.allclose(a.data, r_out.data) and not np.allclose(c.data, r_out.data)


def test_multihead_attention_fully_masked_rows_as_torch():
    """need_weights=True runs an explicit softmax (NaN rows, as PyTorch); need_weights=False the
    fused op (zero rows, as PyTorch)."""
    rmod, tmod = _mha_pair(8, 2)
    x = _arr(np.random.default_rng(9), 3, 2, 8)
    kpm = np.zeros((2, 3), bool)
    kpm[1] = True
    for need in (True, False):
        r = rmod(*(rg.tensor(x),) * 3, key_padding_mask=rg.tensor(kpm), need_weights=need)[0]
        t = tmod(*(torch.tensor(x),) * 3, key_padding_mask=torch.tensor(kpm), need_weights=need)[0]
        np.testing.assert_allclose(r.data, _np(t), **FWD, equal_nan=True)
        assert np.isnan(r.data[:, 1]).all() == need


def test_multihead_attention_functional_form_matches_module():
    rmod, _ = _mha_pair(8, 2)
    x = rg.randn(4, 2, 8)
    out, w = A.multi_head_attention_forward(
        x,
        x,
        x,
        8,
        2,
        rmod.in_proj_weight,
        rmod.in_proj_bias,
        None,
        None,
        False,
        0.0,
        rmod.out_proj.weight,
        rmod.out_proj.bias,
    )
    mout, mw = rmod(x, x, x)
    np.testing.assert_allclose(out.data, mout.data, atol=1e-7)
    np.testing.assert_allclose(w.data, mw.data, atol=1e-7)


def test_multihead_attention_errors():
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match="embed_dim and num_heads must be greater than 0"):
        MultiheadAttention(0, 2)
    m = MultiheadAttention(8, 2)
    x = rg.randn(3, 2, 8)
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        m(x, x, x, is_causal=True)
    with pytest.raises(
        RuntimeError, match=r"The shape of the 2D attn_mask is torch.Size\(\[2, 2\]\)"
    ):
        m(x, x, x, attn_mask=rg.zeros(2, 2))
    with pytest.raises(AssertionError, match="only bool and floating types of key_padding_mask"):
        m(x, x, x, key_padding_mask=rg.zeros(2, 3, dtype=rg.int64))
    with pytest.raises(AssertionError, match="query should be unbatched 2D or batched 3D tensor"):
        m(rg.randn(1, 3, 2, 8), x, x)
    with pytest.raises(AssertionError, match="was expecting embedding dimension of 8, but got 6"):
        y = rg.randn(3, 2, 6)
        m(y, y, y)
    with pytest.warns(UserWarning, match="Support for mismatched key_padding_mask and attn_mask"):
        m(x, x, x, key_padding_mask=rg.zeros(2, 3, dtype=rg.bool), attn_mask=rg.zeros(3, 3))


def test_multihead_attention_mismatched_mask_warning_is_torchs():
    t = torch.nn.MultiheadAttention(8, 2)
    x = torch.randn(3, 2, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t(
            x,
            x,
            x,
            key_padding_mask=torch.zeros(2, 3, dtype=torch.bool),
            attn_mask=torch.zeros(3, 3),
        )
    assert any(
        "Support for mismatched key_padding_mask and attn_mask" in str(w.message) for w in caught
    )


@pytest.mark.parametrize("empty", ["query", "key"])
def test_multihead_attention_empty_sequences_as_torch(empty):
    rmod, tmod = _mha_pair(8, 2)
    rng = np.random.default_rng(10)
    q = _arr(rng, 0 if empty == "query" else 3, 2, 8)
    kv = _arr(rng, 0 if empty == "key" else 4, 2, 8)
    for need in (True, False):
        r_out, r_w = rmod(rg.tensor(q), rg.tensor(kv), rg.tensor(kv), need_weights=need)
        t_out, t_w = tmod(torch.tensor(q), torch.tensor(kv), torch.tensor(kv), need_weights=need)
        assert tuple(r_out.shape) == tuple(t_out.shape)
        np.testing.assert_allclose(r_out.data, _np(t_out), **FWD)
        if need:
            assert tuple(r_w.shape) == tuple(t_w.shape)


def test_causal_mask_in_multihead_attention():
    """MultiheadAttention blocks where a bool mask is True: ~causal_mask(L) = the float form."""
    rmod, _ = _mha_pair(8, 2)
    x = rg.randn(4, 2, 8)
    a = rmod(x, x, x, attn_mask=~A.causal_mask(4))[0]
    b = rmod(x, x, x, attn_mask=A.causal_mask(4, dtype=rg.float32))[0]
    c = rmod(x, x, x, attn_mask=A.causal_mask(4, dtype=rg.float32), is_causal=True)[0]
    d = rmod(x, x, x, attn_mask=A.causal_mask(4, dtype=rg.float32), need_weights=False)[0]
    for other in (b, c, d):
        np.testing.assert_allclose(a.data, other.data, atol=1e-6)


@pytest.mark.parametrize("length", [A._CAUSAL_BLOCK_MIN, A._CAUSAL_BLOCK_MIN + 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_causal_attention_in_query_blocks_matches_torch(length, dtype):
    """Long causal attention runs in two query blocks (the masked quarter skipped): values and
    gradients as PyTorch's, broadcast leading dims included."""
    assert A._causal_blocks(length, length) is not None  # the blocked path is the one tested
    rng = np.random.default_rng(3)
    shapes = ((2, 1, length, 8), (1, 2, length, 8), (2, 2, length, 5))
    pairs = [_pair(rng.standard_normal(s).astype(dtype)) for s in shapes]
    r_in, t_in = [p[0] for p in pairs], [p[1] for p in pairs]
    w = rng.standard_normal((2, 2, length, 5)).astype(dtype)
    ro = A.scaled_dot_product_attention(*r_in, is_causal=True)
    to = TF.scaled_dot_product_attention(*t_in, is_causal=True)
    tol = dict(atol=1e-10, rtol=1e-9) if dtype == np.float64 else GRAD
    np.testing.assert_allclose(ro.data, to.detach().numpy(), **tol)
    (ro * rg.tensor(w)).sum().backward()
    (to * torch.tensor(w)).sum().backward()
    for r, t in zip(r_in, t_in):
        np.testing.assert_allclose(r.grad.data, t.grad.numpy(), **tol)


def test_causal_attention_in_query_blocks_passes_gradcheck():
    n = A._CAUSAL_BLOCK_MIN
    rng = np.random.default_rng(4)
    args = [rg.tensor(rng.standard_normal((1, n, 3)), requires_grad=True) for _ in range(3)]
    f = lambda q, k, v: A.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
    assert rg.autograd.gradcheck(f, args, fast_mode=True)
    assert rg.autograd.gradgradcheck(f, args, fast_mode=True)


def test_multihead_attention_with_a_long_causal_mask_matches_torch():
    """A constant causal mask is recognised and run by the blocked causal path."""
    n = A._CAUSAL_BLOCK_MIN
    rmod, tmod = _mha_pair(8, 2)
    x = np.random.default_rng(5).standard_normal((n, 2, 8)).astype(np.float32)
    rx, tx = _pair(x)
    mask = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    for rmask in (~A.causal_mask(n), A.causal_mask(n, dtype=rg.float32)):
        rx.grad = None
        tx.grad = None
        ro = rmod(rx, rx, rx, attn_mask=rmask, need_weights=False)[0]
        to = tmod(tx, tx, tx, attn_mask=mask, need_weights=False)[0]
        np.testing.assert_allclose(ro.data, to.detach().numpy(), atol=1e-5, rtol=1e-4)
        ro.sum().backward()
        to.sum().backward()
        np.testing.assert_allclose(rx.grad.data, tx.grad.numpy(), **GRAD)
