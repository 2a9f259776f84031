"""Transformer layers, stacks and the full model against PyTorch (same weights, state dicts
loaded both ways; eval mode, so dropout is off): outputs and the gradients of the inputs and
every parameter, post-norm and pre-norm, relu/gelu/callable activations, batch_first both ways,
masks; the positional encodings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import retrograd as rg
import retrograd.nn.functional as F
from retrograd.nn.layers import transformer as T
from retrograd.ops.attention import causal_mask

FWD = dict(atol=1e-6, rtol=1e-3)
GRAD = dict(atol=1e-4, rtol=1e-3)


def _arr(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _pair(a):
    return rg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _sync(rmod, tmod, direction: str, seed: int = 0) -> None:
    """Give both modules the same weights (loading one state dict into the other), with the
    biases and LayerNorm affine parameters perturbed so that a wrong path cannot hide."""
    if direction == "torch->rg":
        rmod.load_state_dict({k: rg.tensor(v.numpy().copy()) for k, v in tmod.state_dict().items()})
    else:
        tmod.load_state_dict(
            {k: torch.tensor(np.array(v.data)) for k, v in rmod.state_dict().items()}
        )
    rng = np.random.default_rng(seed)
    state = {}
    for name, value in tmod.state_dict().items():
        a = value.numpy().copy()
        if a.ndim == 1:
            a = a + rng.uniform(-0.2, 0.2, a.shape).astype(np.float32)
        state[name] = a
    tmod.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    rmod.load_state_dict({k: rg.tensor(v) for k, v in state.items()})


def _check(rmod, tmod, r_in, t_in, r_out, t_out, fwd=FWD, grad=GRAD):
    assert tuple(r_out.shape) == tuple(t_out.shape)
    np.testing.assert_allclose(r_out.data, t_out.detach().numpy(), **fwd)
    w = np.random.default_rng(1).standard_normal(tuple(t_out.shape)).astype(np.float32)
    (r_out * rg.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    for r, t in zip(r_in, t_in):
        np.testing.assert_allclose(r.grad.data, t.grad.numpy(), **grad)
    rparams = dict(rmod.named_parameters())
    tparams = dict(tmod.named_parameters())
    assert list(rparams) == list(tparams)
    for name, tp in tparams.items():
        tg = np.zeros(tuple(tp.shape), np.float32) if tp.grad is None else tp.grad.numpy()
        rgd = rparams[name].grad
        rv = np.zeros(tuple(tp.shape), np.float32) if rgd is None else rgd.data
        np.testing.assert_allclose(rv, tg, err_msg=name, **grad)


def _activation(name):
    """The same activation in both libraries: a name, a function, or a module."""
    if name == "silu":
        return F.silu, TF.silu
    if name == "gelu_tanh_module":
        return rg.nn.GELU(approximate="tanh"), torch.nn.GELU(approximate="tanh")
    return name, name


def _seq(rng, n, N, E, batch_first):
    return _arr(rng, *((N, n, E) if batch_first else (n, N, E)))


# -- layers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "silu", "gelu_tanh_module"])
def test_encoder_layer_matches_torch(activation, norm_first, batch_first):
    E, H, N, S = 8, 2, 3, 5
    ract, tact = _activation(activation)
    kw = dict(dim_feedforward=16, batch_first=batch_first, norm_first=norm_first)
    tmod = torch.nn.TransformerEncoderLayer(E, H, activation=tact, **kw).eval()
    rmod = T.TransformerEncoderLayer(E, H, activation=ract, **kw).eval()
    _sync(rmod, tmod, "torch->rg" if norm_first else "rg->torch")
    rng = np.random.default_rng(2)
    x = _seq(rng, S, N, E, batch_first)
    kpm = np.zeros((N, S), bool)
    kpm[1, 3:] = True
    rx, tx = _pair(x)
    mask = causal_mask(S, dtype=rg.float32)
    r_out = rmod(rx, src_mask=mask, src_key_padding_mask=rg.tensor(kpm).float() * -1e9)
    t_out = tmod(
        tx,
        src_mask=torch.tensor(mask.data),
        src_key_padding_mask=torch.tensor(kpm).float() * -1e9,
    )
    _check(rmod, tmod, [rx], [tx], r_out, t_out)


@pytest.mark.parametrize("masks", ["none", "bool", "float causal"])
def test_encoder_layer_masks(masks):
    E, H, N, S = 8, 4, 2, 4
    tmod = torch.nn.TransformerEncoderLayer(E, H, 16, dropout=0.0).train()
    rmod = T.TransformerEncoderLayer(E, H, 16, dropout=0.0)
    _sync(rmod, tmod, "torch->rg")
    rx, tx = _pair(_arr(np.random.default_rng(3), S, N, E))
    rkw, tkw = {}, {}
    if masks == "bool":
        am = np.triu(np.ones((S, S), bool), 1)
        kpm = np.array([[False, False, False, True], [False, True, False, False]])
        rkw = dict(src_mask=rg.tensor(am), src_key_padding_mask=rg.tensor(kpm))
        tkw = dict(src_mask=torch.tensor(am), src_key_padding_mask=torch.tensor(kpm))
    elif masks == "float causal":
        rkw = dict(src_mask=T.Transformer.generate_square_subsequent_mask(S), is_causal=True)
        tkw = dict(src_mask=torch.nn.Transformer.generate_square_subsequent_mask(S), is_causal=True)
    _check(rmod, tmod, [rx], [tx], rmod(rx, **rkw), tmod(tx, **tkw))


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_decoder_layer_matches_torch(activation, norm_first, batch_first):
    E, H, N, Tn, S = 8, 2, 2, 4, 5
    kw = dict(dim_feedforward=16, batch_first=batch_first, norm_first=norm_first)
    tmod = torch.nn.TransformerDecoderLayer(E, H, activation=activation, **kw).eval()
    rmod = T.TransformerDecoderLayer(E, H, activation=activation, **kw).eval()
    _sync(rmod, tmod, "rg->torch" if norm_first else "torch->rg")
    rng = np.random.default_rng(4)
    (rt, tt), (rm, tm) = (
        _pair(_seq(rng, Tn, N, E, batch_first)),
        _pair(_seq(rng, S, N, E, batch_first)),
    )
    tgt_kpm = np.array([[False, False, True, True], [False, False, False, False]])
    mem_kpm = np.array([[False, False, False, False, True], [False, True, False, False, False]])
    mem_mask = _arr(rng, Tn, S)
    r_out = rmod(
        rt,
        rm,
        tgt_mask=T.Transformer.generate_square_subsequent_mask(Tn),
        memory_mask=rg.tensor(mem_mask),
        tgt_key_padding_mask=rg.tensor(tgt_kpm).float() * -1e9,
        memory_key_padding_mask=rg.tensor(mem_kpm).float() * -1e9,
        tgt_is_causal=True,
    )
    t_out = tmod(
        tt,
        tm,
        tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(Tn),
        memory_mask=torch.tensor(mem_mask),
        tgt_key_padding_mask=torch.tensor(tgt_kpm).float() * -1e9,
        memory_key_padding_mask=torch.tensor(mem_kpm).float() * -1e9,
        tgt_is_causal=True,
    )
    _check(rmod, tmod, [rt, rm], [tt, tm], r_out, t_out)


def test_layer_submodule_names_and_state_dicts_as_torch():
    for rcls, tcls in (
        (T.TransformerEncoderLayer, torch.nn.TransformerEncoderLayer),
        (T.TransformerDecoderLayer, torch.nn.TransformerDecoderLayer),
    ):
        r, t = rcls(8, 2, 16, bias=False), tcls(8, 2, 16, bias=False)
        assert [n for n, _ in r.named_children()] == [n for n, _ in t.named_children()]
        rs, ts = r.state_dict(), t.state_dict()
        assert list(rs) == list(ts)
        assert all(tuple(rs[k].shape) == tuple(ts[k].shape) for k in ts)
    r = T.TransformerEncoderLayer(8, 2, activation="gelu")
    assert r.activation is F.gelu and r.activation_relu_or_gelu == 2
    assert T.TransformerEncoderLayer(8, 2).activation_relu_or_gelu == 1
    assert T.TransformerEncoderLayer(8, 2, activation=F.silu).activation_relu_or_gelu == 0
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        T.TransformerEncoderLayer(8, 2, activation="tanh")


def test_layer_dropout_in_training_mode():
    layer = T.TransformerEncoderLayer(
        8, 2, 16, dropout=0.5, generator=rg.Generator().manual_seed(0)
    )
    x = rg.randn(4, 2, 8)
    a = layer(x)
    b = layer(x)
    assert not np.allclose(a.data, b.data)
    layer.eval()
    np.testing.assert_array_equal(layer(x).data, layer(x).data)


# -- stacks ----------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Support for mismatched")
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_stack_matches_torch(norm_first, batch_first):
    E, H, N, S = 8, 2, 2, 5
    kw = dict(dim_feedforward=16, batch_first=batch_first, norm_first=norm_first)
    tmod = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(E, H, **kw),
        3,
        norm=torch.nn.LayerNorm(E),
        enable_nested_tensor=False,
    ).eval()
    rmod = T.TransformerEncoder(T.TransformerEncoderLayer(E, H, **kw), 3, norm=rg.nn.LayerNorm(E))
    rmod.eval()
    assert list(rmod.state_dict()) == list(tmod.state_dict())
    _sync(rmod, tmod, "torch->rg")
    rx, tx = _pair(_seq(np.random.default_rng(5), S, N, E, batch_first))
    kpm = np.array([[False] * 5, [False, False, False, True, True]])
    mask = T.Transformer.generate_square_subsequent_mask(S)
    r_out = rmod(rx, mask=mask, src_key_padding_mask=rg.tensor(kpm))
    t_out = tmod(
        tx,
        mask=torch.nn.Transformer.generate_square_subsequent_mask(S),
        src_key_padding_mask=torch.tensor(kpm),
    )
    _check(rmod, tmod, [rx], [tx], r_out, t_out)


def test_decoder_stack_matches_torch():
    E, H, N, Tn, S = 8, 2, 2, 4, 3
    tmod = torch.nn.TransformerDecoder(
        torch.nn.TransformerDecoderLayer(E, H, 16), 2, norm=torch.nn.LayerNorm(E)
    ).eval()
    rmod = T.TransformerDecoder(T.TransformerDecoderLayer(E, H, 16), 2, norm=rg.nn.LayerNorm(E))
    rmod.eval()
    _sync(rmod, tmod, "rg->torch")
    rng = np.random.default_rng(6)
    (rt, tt), (rm, tm) = _pair(_arr(rng, Tn, N, E)), _pair(_arr(rng, S, N, E))
    r_out = rmod(rt, rm, tgt_mask=T.Transformer.generate_square_subsequent_mask(Tn))
    t_out = tmod(tt, tm, tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(Tn))
    _check(rmod, tmod, [rt, rm], [tt, tm], r_out, t_out)


def test_stack_layers_are_independent_deep_copies():
    layer = T.TransformerEncoderLayer(8, 2, 16)
    enc = T.TransformerEncoder(layer, 3)
    assert [n for n, _ in enc.named_children()] == ["layers"]
    assert len(enc.layers) == 3 and enc.num_layers == 3 and enc.norm is None
    p0, p1 = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    assert p0 is not p1 and p0 is not layer.linear1.weight
    np.testing.assert_array_equal(p0.data, p1.data)  # copies of one layer start equal
    p0.data[...] = 0
    assert not np.all(p1.data == 0) and not np.all(layer.linear1.weight.data == 0)
    assert len(list(enc.parameters())) == 3 * len(list(layer.parameters()))
    assert all(p.requires_grad for p in enc.parameters())


def test_is_causal_detection():
    mask = T.Transformer.generate_square_subsequent_mask(4)
    assert T._detect_is_causal_mask(mask, None, 4) is True
    assert T._detect_is_causal_mask(mask, False, 4) is False
    assert T._detect_is_causal_mask(rg.zeros(4, 4), None, 4) is False
    assert T._detect_is_causal_mask(mask, None, 3) is False
    assert T._detect_is_causal_mask(None, None, 4) is False


# -- the full model --------------------------------------------------------------------------------
# a float causal tgt_mask with bool padding masks (the tutorials' mix): both libraries warn
@pytest.mark.filterwarnings("ignore:Support for mismatched")
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_matches_torch(norm_first, batch_first):
    """The 6 + 6 layer model (d_model 8): outputs and every gradient."""
    E, H, N, S, Tn = 8, 2, 2, 5, 4
    kw = dict(
        d_model=E,
        nhead=H,
        dim_feedforward=16,
        batch_first=batch_first,
        norm_first=norm_first,
        activation="gelu" if norm_first else "relu",
    )
    torch.manual_seed(0)
    tmod = torch.nn.Transformer(**kw).eval()
    rmod = T.Transformer(**kw, generator=rg.Generator().manual_seed(0)).eval()
    assert list(rmod.state_dict()) == list(tmod.state_dict())
    _sync(rmod, tmod, "torch->rg" if batch_first else "rg->torch")
    rng = np.random.default_rng(7)
    (rs, ts), (rt, tt) = (
        _pair(_seq(rng, S, N, E, batch_first)),
        _pair(_seq(rng, Tn, N, E, batch_first)),
    )
    src_kpm = np.array([[False] * 5, [False, False, False, False, True]])
    tgt_kpm = np.array([[False, False, False, True], [False] * 4])
    r_out = rmod(
        rs,
        rt,
        tgt_mask=T.Transformer.generate_square_subsequent_mask(Tn),
        src_key_padding_mask=rg.tensor(src_kpm),
        tgt_key_padding_mask=rg.tensor(tgt_kpm),
        memory_key_padding_mask=rg.tensor(src_kpm),
    )
    t_out = tmod(
        ts,
        tt,
        tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(Tn),
        src_key_padding_mask=torch.tensor(src_kpm),
        tgt_key_padding_mask=torch.tensor(tgt_kpm),
        memory_key_padding_mask=torch.tensor(src_kpm),
    )
    _check(rmod, tmod, [rs, rt], [ts, tt], r_out, t_out)


def test_transformer_init_and_errors():
    m = T.Transformer(
        d_model=8,
        nhead=2,
        num_encoder_layers=1,
        num_decoder_layers=1,
        dim_feedforward=16,
        generator=rg.Generator().manual_seed(0),
    )
    for name, p in m.named_parameters():
        if p.dim() > 1:  # xavier_uniform_ on every matrix
            fan_out, fan_in = p.shape[0], p.shape[1]
            assert np.abs(p.data).max() <= math.sqrt(6 / (fan_in + fan_out)) + 1e-7, name
    assert m.d_model == 8 and m.nhead == 2 and m.batch_first is False
    assert isinstance(m.encoder.norm, rg.nn.LayerNorm)
    with pytest.raises(RuntimeError, match="the batch number of src and tgt must be equal"):
        m(rg.randn(3, 2, 8), rg.randn(3, 3, 8))
    with pytest.raises(RuntimeError, match="the feature number of src and tgt must be equal"):
        m(rg.randn(3, 2, 8), rg.randn(3, 2, 6))
    enc = T.TransformerEncoder(T.TransformerEncoderLayer(8, 2, 16), 1)
    custom = T.Transformer(d_model=8, nhead=2, custom_encoder=enc, num_decoder_layers=1)
    assert custom.encoder is enc
    out = custom(rg.randn(3, 2, 8), rg.randn(4, 2, 8))
    assert out.shape == (4, 2, 8)


def test_generate_square_subsequent_mask_as_torch():
    for sz in (1, 4):
        r = T.Transformer.generate_square_subsequent_mask(sz)
        t = torch.nn.Transformer.generate_square_subsequent_mask(sz)
        assert r.dtype == rg.float32
        np.testing.assert_array_equal(r.data, t.numpy())
    assert T.Transformer.generate_square_subsequent_mask(3, dtype=rg.float64).dtype == rg.float64


def test_unbatched_encoder_layer_as_torch():
    tmod = torch.nn.TransformerEncoderLayer(8, 2, 16).eval()
    rmod = T.TransformerEncoderLayer(8, 2, 16).eval()
    _sync(rmod, tmod, "torch->rg")
    rx, tx = _pair(_arr(np.random.default_rng(8), 5, 8))
    _check(rmod, tmod, [rx], [tx], rmod(rx), tmod(tx))


# -- positional encodings --------------------------------------------------------------------------
def _tutorial_pe(d_model, max_len):
    """PyTorch's tutorial PositionalEncoding table, computed in torch."""
    position = torch.arange(max_len).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
    return pe.numpy()


@pytest.mark.parametrize("d_model", [6, 7])
def test_sinusoidal_positional_encoding(d_model):
    pe = T.SinusoidalPositionalEncoding(d_model, max_len=50, dropout=0.0)
    np.testing.assert_allclose(pe.pe.data, _tutorial_pe(d_model, 50), atol=1e-6)
    assert "pe" not in pe.state_dict() and len(list(pe.parameters())) == 0
    x = rg.randn(10, 3, d_model, requires_grad=True)
    out = pe(x)
    np.testing.assert_allclose(out.data, x.data + pe.pe.data[:10, None], atol=1e-7)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.ones(x.shape, np.float32))
    bf = T.SinusoidalPositionalEncoding(d_model, 50, dropout=0.0, batch_first=True)
    xb = rg.randn(3, 10, d_model)
    np.testing.assert_allclose(bf(xb, offset=5).data, xb.data + bf.pe.data[5:15], atol=1e-7)
    x2 = rg.randn(10, d_model)
    np.testing.assert_allclose(pe(x2).data, x2.data + pe.pe.data[:10], atol=1e-7)
    with pytest.raises(ValueError, match="exceeds max_len=50"):
        pe(rg.randn(51, 1, d_model))


def test_sinusoidal_positional_encoding_dropout():
    pe = T.SinusoidalPositionalEncoding(8, 20, dropout=0.5, generator=rg.Generator().manual_seed(0))
    x = rg.ones(10, 2, 8)
    out = pe(x).data
    assert (out == 0).any()
    pe.eval()
    expected = np.broadcast_to(1 + pe.pe.data[:10, None], (10, 2, 8))
    np.testing.assert_allclose(pe(x).data, expected, atol=1e-7)


def test_learned_positional_embedding():
    pos = T.LearnedPositionalEmbedding(64, 16, generator=rg.Generator().manual_seed(0))
    assert list(pos.state_dict()) == ["weight"] and tuple(pos.weight.shape) == (64, 16)
    assert 0.015 < pos.weight.data.std() < 0.025
    x = rg.randn(5, 2, 16, requires_grad=True)
    out = pos(x, offset=3)
    np.testing.assert_allclose(out.data, x.data + pos.weight.data[3:8, None], atol=1e-7)
    out.sum().backward()
    g = pos.weight.grad.data
    np.testing.assert_array_equal(g[3:8], np.full((5, 16), 2.0, np.float32))  # batch of 2
    assert np.all(g[:3] == 0) and np.all(g[8:] == 0)
    bf = T.LearnedPositionalEmbedding(64, 16, batch_first=True)
    xb = rg.randn(2, 5, 16)
    np.testing.assert_allclose(bf(xb).data, xb.data + bf.weight.data[:5], atol=1e-7)
    with pytest.raises(ValueError, match="exceeds max_len=64"):
        pos(rg.randn(60, 1, 16), offset=10)


@pytest.mark.parametrize("norm_first", [False, True])
def test_matches_torch_fast_path_inference(norm_first):
    """PyTorch's inference fast path (eval, no grad, batch_first: its fused encoder-layer and
    multi-head-attention kernels) gives the same numbers as retrograd's one path."""
    E, H = 8, 2
    kw = dict(dim_feedforward=16, batch_first=True, norm_first=norm_first)
    tlayer = torch.nn.TransformerEncoderLayer(E, H, **kw).eval()
    rlayer = T.TransformerEncoderLayer(E, H, **kw).eval()
    _sync(rlayer, tlayer, "torch->rg")
    x = _arr(np.random.default_rng(9), 2, 5, E)
    mask = np.triu(np.ones((5, 5), bool), 1)
    with torch.no_grad():
        t_out = tlayer(torch.tensor(x), src_mask=torch.tensor(mask))
        t_mha, t_w = tlayer.self_attn(*(torch.tensor(x),) * 3)
    r_out = rlayer(rg.tensor(x), src_mask=rg.tensor(mask))
    r_mha, r_w = rlayer.self_attn(*(rg.tensor(x),) * 3)
    np.testing.assert_allclose(r_out.data, t_out.numpy(), **FWD)
    np.testing.assert_allclose(r_mha.data, t_mha.numpy(), **FWD)
    np.testing.assert_allclose(r_w.data, t_w.numpy(), **FWD)
