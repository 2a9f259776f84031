"""Recurrent layers vs PyTorch: RNN (tanh, relu), LSTM (proj_size), GRU and their cells with
PyTorch's weights loaded (state dicts both ways): outputs, h_n / c_n, input and initial-state
gradients and every parameter's gradient, across num_layers, batch_first, bidirectional, bias,
initial states, unbatched input, lengths (vs pack_padded_sequence) and dropout; float64
gradcheck/gradgradcheck of whole modules; backprop through time and truncated BPTT."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as tnn
from torch.nn.utils import rnn as trnn

import retrograd as rg
from retrograd.autograd.gradcheck import gradcheck, gradgradcheck
from retrograd.nn import utils_rnn
from retrograd.nn.layers import recurrent as L
from retrograd.ops import recurrent as R

# PyTorch notes that its LSTM with projections skips oneDNN: not our concern here
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")


@pytest.fixture(autouse=True, scope="module")
def _torch_one_thread():
    """PyTorch's RNN kernels wait on their thread pool for a second at a time when the two shared
    cores are busy: one thread keeps the comparisons fast (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FWD = dict(atol=1e-6, rtol=1e-3)
GRAD = dict(atol=1e-4, rtol=1e-3)

MODES = {
    "rnn_tanh": (L.RNN, tnn.RNN, {}),
    "rnn_relu": (L.RNN, tnn.RNN, {"nonlinearity": "relu"}),
    "lstm": (L.LSTM, tnn.LSTM, {}),
    "gru": (L.GRU, tnn.GRU, {}),
}


def _np(t) -> np.ndarray:
    return t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t.data)


def _pair(mode, input_size, hidden_size, seed=0, **kw):
    """A retrograd module with a PyTorch module's weights loaded (PyTorch -> retrograd)."""
    cls, tcls, extra = MODES[mode]
    torch.manual_seed(seed)
    tmod = tcls(input_size, hidden_size, **extra, **kw)
    mod = cls(input_size, hidden_size, **extra, **kw)
    mod.load_state_dict({k: v.detach().numpy().copy() for k, v in tmod.state_dict().items()})
    return mod, tmod


def _flatten(out) -> list:
    """(output, h_n) or (output, (h_n, c_n)) -> [output, h_n(, c_n)]."""
    o, h = out
    return [o, *h] if isinstance(h, tuple) else [o, h]


def _run_and_compare(mod, tmod, x, hx=None, lengths=None, grad=GRAD, seed=1):
    """Same inputs into both; compare outputs, input / state grads and every parameter grad."""
    rng = np.random.default_rng(seed)
    rx = rg.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    rh = th = None
    if hx is not None:
        if isinstance(hx, tuple):
            rh = tuple(rg.tensor(h, requires_grad=True) for h in hx)
            th = tuple(torch.tensor(h, requires_grad=True) for h in hx)
        else:
            rh, th = rg.tensor(hx, requires_grad=True), torch.tensor(hx, requires_grad=True)
    if lengths is None:
        routs = _flatten(mod(rx, rh))
        touts = _flatten(tmod(tx, th))
    else:
        routs = _flatten(mod(rx, rh, lengths=lengths))
        packed = trnn.pack_padded_sequence(
            tx, torch.tensor(lengths), batch_first=tmod.batch_first, enforce_sorted=False
        )
        tout, thn = tmod(packed, th)
        total = x.shape[1] if tmod.batch_first else x.shape[0]
        tout, _ = trnn.pad_packed_sequence(tout, batch_first=tmod.batch_first, total_length=total)
        touts = _flatten((tout, thn))
    assert len(routs) == len(touts)
    loss, tloss = 0, 0
    for o, t in zip(routs, touts):
        assert tuple(o.shape) == tuple(t.shape)
        np.testing.assert_allclose(_np(o), _np(t), **FWD)
        w = rng.standard_normal(tuple(t.shape)).astype(np.float32)
        loss = loss + (o * rg.tensor(w)).sum()
        tloss = tloss + (t * torch.tensor(w)).sum()
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(_np(rx.grad), _np(tx.grad), **grad)
    if rh is not None:
        for a, b in zip(
            rh if isinstance(rh, tuple) else (rh,), th if isinstance(th, tuple) else (th,)
        ):
            np.testing.assert_allclose(_np(a.grad), _np(b.grad), **grad)
    tparams = dict(tmod.named_parameters())
    names = [n for n, _ in mod.named_parameters()]
    assert names == list(tparams)
    for name, p in mod.named_parameters():
        np.testing.assert_allclose(_np(p.grad), _np(tparams[name].grad), err_msg=name, **grad)
    return routs


def _state(rng, mode, layers, batch, hidden, proj=0, batched=True):
    lead = (layers,) + ((batch,) if batched else ())
    h = rng.standard_normal(lead + (proj or hidden,)).astype(np.float32)
    if mode != "lstm":
        return h
    return h, rng.standard_normal(lead + (hidden,)).astype(np.float32)


# -- modules vs PyTorch ----------------------------------------------------------------------------
CONFIGS = list(
    itertools.product(
        MODES,
        (1, 2),  # num_layers
        (False, True),  # bidirectional
        (False, True),  # batch_first
        (False, True),  # initial state given
    )
)


@pytest.mark.parametrize("mode,layers,bidi,batch_first,given", CONFIGS)
def test_module_matches_torch(mode, layers, bidi, batch_first, given):
    steps, batch, inp, hid = 5, 3, 4, 6
    mod, tmod = _pair(
        mode, inp, hid, num_layers=layers, bidirectional=bidi, batch_first=batch_first
    )
    rng = np.random.default_rng(layers * 7 + bidi * 3 + batch_first)
    shape = (batch, steps, inp) if batch_first else (steps, batch, inp)
    x = rng.standard_normal(shape).astype(np.float32)
    hx = _state(rng, mode, layers * (1 + bidi), batch, hid) if given else None
    _run_and_compare(mod, tmod, x, hx)


@pytest.mark.parametrize("mode", list(MODES))
def test_no_bias_matches_torch(mode):
    mod, tmod = _pair(mode, 3, 5, num_layers=2, bias=False, bidirectional=True)
    assert not any("bias" in n for n, _ in mod.named_parameters())
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    _run_and_compare(mod, tmod, x)


@pytest.mark.parametrize(
    "layers,bidi,given", list(itertools.product((1, 2), (False, True), (0, 1)))
)
def test_lstm_proj_size_matches_torch(layers, bidi, given):
    mod, tmod = _pair("lstm", 4, 6, num_layers=layers, bidirectional=bidi, proj_size=3)
    assert mod.weight_hr_l0.shape == (3, 6) and mod.weight_hh_l0.shape == (24, 3)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 2, 4)).astype(np.float32)
    hx = _state(rng, "lstm", layers * (1 + bidi), 2, 6, proj=3) if given else None
    routs = _run_and_compare(mod, tmod, x, hx)
    assert routs[0].shape == (5, 2, 3 * (1 + bidi)) and routs[2].shape[-1] == 6


@pytest.mark.parametrize("mode,given", list(itertools.product(MODES, (False, True))))
def test_unbatched_input_matches_torch(mode, given):
    mod, tmod = _pair(mode, 3, 4, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3)).astype(np.float32)
    hx = _state(rng, mode, 4, 1, 4, batched=False) if given else None
    routs = _run_and_compare(mod, tmod, x, hx)
    assert routs[0].shape == (6, 8) and routs[1].shape == (4, 4)


LENGTH_CONFIGS = list(itertools.product(MODES, (1, 2), (False, True), (False, True), (False, True)))


@pytest.mark.parametrize("mode,layers,bidi,batch_first,given", LENGTH_CONFIGS)
def test_lengths_match_pack_padded_sequence(mode, layers, bidi, batch_first, given):
    steps, batch, inp, hid = 6, 4, 3, 5
    mod, tmod = _pair(
        mode, inp, hid, num_layers=layers, bidirectional=bidi, batch_first=batch_first
    )
    rng = np.random.default_rng(3)
    shape = (batch, steps, inp) if batch_first else (steps, batch, inp)
    x = rng.standard_normal(shape).astype(np.float32)
    lengths = [4, 6, 1, 3]  # unsorted; the longest is L
    hx = _state(rng, mode, layers * (1 + bidi), batch, hid) if given else None
    routs = _run_and_compare(mod, tmod, x, hx, lengths=lengths)
    out = _np(routs[0])
    if batch_first:
        out = out.transpose(1, 0, 2)
    assert not out[1:, 2].any()  # zeros past the length-1 sequence


def test_lengths_proj_size_and_shorter_than_input():
    # max(lengths) < L: PyTorch's padded output would stop at 4; total_length restores L
    mod, tmod = _pair("lstm", 3, 5, num_layers=2, bidirectional=True, proj_size=2)
    x = np.random.default_rng(4).standard_normal((6, 3, 3)).astype(np.float32)
    _run_and_compare(mod, tmod, x, _state(np.random.default_rng(5), "lstm", 4, 3, 5, 2), [4, 2, 3])


def test_lengths_as_tensor_and_errors():
    mod = L.GRU(2, 3)
    x = rg.randn(4, 2, 2)
    a = mod(x, lengths=rg.tensor([4, 2]))[0]
    b = mod(x, lengths=[4, 2])[0]
    np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(ValueError, match="batch_size"):
        mod(x, lengths=[4, 2, 1])
    with pytest.raises(ValueError, match="lengths must lie in"):
        mod(x, lengths=[5, 2])
    with pytest.raises(TypeError, match="integers"):
        mod(x, lengths=[4.0, 2.0])


@pytest.mark.parametrize("mode", list(MODES))
def test_dropout_eval_matches_torch_and_train_uses_generator(mode):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mod, tmod = _pair(mode, 3, 4, num_layers=3, dropout=0.4)
    mod.eval()
    tmod.eval()
    x = np.random.default_rng(6).standard_normal((5, 2, 3)).astype(np.float32)
    _run_and_compare(mod, tmod, x)
    mod.zero_grad()
    mod.train()
    xt = rg.tensor(x)
    mod.generator = rg.Generator().manual_seed(0)
    a = mod(xt)[0].data
    mod.generator = rg.Generator().manual_seed(0)
    b = mod(xt)[0].data
    np.testing.assert_array_equal(a, b)
    mod.eval()
    assert not np.allclose(a, mod(xt)[0].data)


def test_dropout_single_layer_warns_and_range():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        L.LSTM(2, 3, dropout=0.5)
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        L.GRU(2, 3, dropout=1.5)


# -- state dicts, names, init ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(MODES))
def test_state_dict_moves_both_ways(mode):
    kw = dict(num_layers=2, bidirectional=True, **({"proj_size": 2} if mode == "lstm" else {}))
    cls, tcls, extra = MODES[mode]
    mod = cls(3, 4, generator=rg.Generator().manual_seed(1), **extra, **kw)
    tmod = tcls(3, 4, **extra, **kw)
    sd = mod.state_dict()
    assert list(sd) == list(tmod.state_dict())
    for k, v in tmod.state_dict().items():
        assert tuple(sd[k].shape) == tuple(v.shape), k
    tmod.load_state_dict({k: torch.tensor(v.data) for k, v in sd.items()}, strict=True)
    x = np.random.default_rng(0).standard_normal((3, 2, 3)).astype(np.float32)
    _run_and_compare(mod, tmod, x)


def test_parameter_names_shapes_and_init():
    mod = L.LSTM(10, 20, num_layers=2, bidirectional=True, proj_size=5)
    tmod = tnn.LSTM(10, 20, num_layers=2, bidirectional=True, proj_size=5)
    ours = [(n, tuple(p.shape)) for n, p in mod.named_parameters()]
    assert ours == [(n, tuple(p.shape)) for n, p in tmod.named_parameters()]
    bound = 1 / math.sqrt(20)
    for _, p in mod.named_parameters():
        assert p.data.dtype == np.float32
        assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.8 * bound
    a = L.GRU(3, 4, generator=rg.Generator().manual_seed(7))
    b = L.GRU(3, 4, generator=rg.Generator().manual_seed(7))
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)
    assert len(mod.all_weights) == 4 and len(mod.all_weights[0]) == 5
    mod.flatten_parameters()


def test_reprs_match_torch():
    cases = [
        (L.LSTM(10, 20, num_layers=2, batch_first=True), tnn.LSTM(10, 20, 2, batch_first=True)),
        (
            L.LSTM(4, 6, proj_size=2, bidirectional=True),
            tnn.LSTM(4, 6, proj_size=2, bidirectional=True),
        ),
        (L.GRU(3, 4, bias=False), tnn.GRU(3, 4, bias=False)),
        (L.RNN(3, 4), tnn.RNN(3, 4)),
        (L.RNNCell(3, 4, nonlinearity="relu"), tnn.RNNCell(3, 4, nonlinearity="relu")),
        (L.LSTMCell(3, 4, bias=False), tnn.LSTMCell(3, 4, bias=False)),
        (L.GRUCell(3, 4), tnn.GRUCell(3, 4)),
    ]
    for ours, theirs in cases:
        assert repr(ours) == repr(theirs)


def test_constructor_and_forward_errors():
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        L.RNNBase("GRU", 3, 4, proj_size=2)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        L.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        L.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        L.GRU(3, 0)
    lstm = L.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match="LSTM: Expected input to be 2D or 3D, got 4D instead"):
        lstm(rg.randn(2, 2, 2, 3))
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size"):
        lstm(rg.randn(5, 2, 2))
    with pytest.raises(
        RuntimeError, match=r"Expected hidden\[0\] size \(2, 2, 4\), got \[1, 2, 4\]"
    ):
        lstm(rg.randn(5, 2, 3), (rg.zeros(1, 2, 4), rg.zeros(2, 2, 4)))
    with pytest.raises(RuntimeError, match="hx and cx should also be 3-D"):
        lstm(rg.randn(5, 2, 3), (rg.zeros(2, 4), rg.zeros(2, 4)))
    gru = L.GRU(3, 4)
    with pytest.raises(RuntimeError, match="For unbatched 2-D input, hx should also be 2-D"):
        gru(rg.randn(5, 3), rg.zeros(1, 1, 4))
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 2, 4\), got \[1, 3, 4\]"):
        gru(rg.randn(5, 2, 3), rg.zeros(1, 3, 4))
    with pytest.raises(ValueError, match="GRUCell: Expected input to be 1D or 2D, got 3D"):
        L.GRUCell(3, 4)(rg.randn(1, 2, 3))


# -- cells -----------------------------------------------------------------------------------------
CELLS = {
    "rnn_tanh": (L.RNNCell, tnn.RNNCell, {}),
    "rnn_relu": (L.RNNCell, tnn.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (L.LSTMCell, tnn.LSTMCell, {}),
    "gru": (L.GRUCell, tnn.GRUCell, {}),
}


@pytest.mark.parametrize(
    "kind,batched,given,bias",
    list(itertools.product(CELLS, (True, False), (True, False), (True, False))),
)
def test_cells_match_torch(kind, batched, given, bias):
    cls, tcls, extra = CELLS[kind]
    torch.manual_seed(0)
    tcell = tcls(4, 5, bias=bias, **extra)
    cell = cls(4, 5, bias=bias, **extra)
    cell.load_state_dict({k: v.detach().numpy().copy() for k, v in tcell.state_dict().items()})
    tcell.load_state_dict({k: torch.tensor(v.data) for k, v in cell.state_dict().items()})
    rng = np.random.default_rng(1)
    lead = (3,) if batched else ()
    x = rng.standard_normal(lead + (4,)).astype(np.float32)
    rx, tx = rg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    states = [rng.standard_normal(lead + (5,)).astype(np.float32) for _ in range(2)]
    rs = [rg.tensor(s, requires_grad=True) for s in states]
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    if kind == "lstm":
        rh, th = (tuple(rs), tuple(ts)) if given else (None, None)
    else:
        rh, th = (rs[0], ts[0]) if given else (None, None)
    routs, touts = cell(rx, rh), tcell(tx, th)
    routs = list(routs) if isinstance(routs, tuple) else [routs]
    touts = list(touts) if isinstance(touts, tuple) else [touts]
    loss, tloss = 0, 0
    for o, t in zip(routs, touts):
        assert tuple(o.shape) == tuple(t.shape)
        np.testing.assert_allclose(_np(o), _np(t), **FWD)
        w = rng.standard_normal(tuple(t.shape)).astype(np.float32)
        loss, tloss = loss + (o * rg.tensor(w)).sum(), tloss + (t * torch.tensor(w)).sum()
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(_np(rx.grad), _np(tx.grad), **GRAD)
    if given:
        for a, b in zip(rs, ts):
            if b.grad is not None:
                np.testing.assert_allclose(_np(a.grad), _np(b.grad), **GRAD)
    tparams = dict(tcell.named_parameters())
    for name, p in cell.named_parameters():
        np.testing.assert_allclose(_np(p.grad), _np(tparams[name].grad), err_msg=name, **GRAD)


def test_cell_loop_equals_layer():
    """An LSTMCell stepped by hand gives the LSTM layer's outputs (same weights)."""
    lstm = L.LSTM(3, 4, generator=rg.Generator().manual_seed(0))
    cell = L.LSTMCell(3, 4)
    cell.load_state_dict({k[:-3]: v for k, v in lstm.state_dict().items()})
    x = rg.randn(5, 2, 3, generator=rg.Generator().manual_seed(1))
    out, (h_n, c_n) = lstm(x)
    hx = None
    for t in range(5):
        hx = cell(x[t], hx)
        np.testing.assert_allclose(hx[0].data, out[t].data, atol=1e-6)
    np.testing.assert_allclose(hx[1].data, c_n[0].data, atol=1e-6)


# -- float64: gradcheck / gradgradcheck of whole modules, create_graph agrees ----------------------
@pytest.mark.parametrize("mode", list(MODES))
def test_module_gradcheck_and_gradgradcheck_float64(mode):
    cls, _, extra = MODES[mode]
    kw = {"proj_size": 1} if mode == "lstm" else {}
    mod = cls(
        2,
        2,
        num_layers=2,
        bidirectional=True,
        generator=rg.Generator().manual_seed(3),
        **extra,
        **kw,
    ).double()
    rng = np.random.default_rng(0)
    x = rg.tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)

    def fn(x):
        return tuple(_flatten(mod(x, lengths=[3, 2])))

    assert gradcheck(fn, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)
    assert gradgradcheck(fn, (x,), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


@pytest.mark.parametrize("mode", list(MODES))
def test_create_graph_gradient_equals_plain_gradient(mode):
    """The create_graph path (the loop composed of differentiable ops) gives the same first
    gradient as the fused array path, and its second derivative matches finite differences."""
    cls, _, extra = MODES[mode]
    kw = {"proj_size": 2} if mode == "lstm" else {}
    mod = cls(
        3, 4, bidirectional=True, generator=rg.Generator().manual_seed(4), **extra, **kw
    ).double()
    rng = np.random.default_rng(1)
    x = rg.tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    params = list(mod.parameters())
    outs = _flatten(mod(x, lengths=[4, 2]))
    ws = [rg.tensor(rng.standard_normal(o.shape)) for o in outs]
    loss = sum(((o * w).sum() for o, w in zip(outs, ws)), rg.tensor(0.0, dtype=rg.float64))
    plain = rg.autograd.grad(loss, [x, *params], retain_graph=True)
    graph = rg.autograd.grad(loss, [x, *params], create_graph=True)
    for a, b in zip(plain, graph):
        assert b.requires_grad
        np.testing.assert_allclose(a.data, b.data, rtol=1e-10, atol=1e-12)
    # second order: d/d(x, W) of |input gradient|^2 (relu's is zero in x: x is then unused)
    gg = rg.autograd.grad((graph[0] * graph[0]).sum(), [x, *params], allow_unused=True)
    got = [g.data for g in gg if g is not None]
    assert all(np.isfinite(g).all() for g in got) and sum(np.abs(g).sum() for g in got) > 0


def test_backward_twice_with_retain_graph_and_no_grad():
    """The saved arrays are never written by a backward: a second one gives the same gradient."""
    for cls in (L.LSTM, L.GRU, L.RNN):
        mod = cls(3, 4, bidirectional=True, generator=rg.Generator().manual_seed(0))
        x = rg.randn(5, 2, 3, requires_grad=True)
        out = mod(x, lengths=[5, 3])[0]
        loss = (out * out).sum()
        loss.backward(retain_graph=True)
        first = x.grad.data.copy()
        loss.backward()
        np.testing.assert_allclose(x.grad.data, 2 * first, rtol=1e-6)
        with rg.no_grad():
            assert not mod(x)[0].requires_grad


def test_long_sequence_matches_torch():
    """100 steps, hidden 32: gradients summed over many steps stay within float32 tolerances."""
    mod, tmod = _pair("lstm", 8, 32, num_layers=2)
    x = np.random.default_rng(9).standard_normal((100, 4, 8)).astype(np.float32)
    _run_and_compare(mod, tmod, x)


# -- backprop through time -------------------------------------------------------------------------
def _models(seed=0):
    mod, tmod = _pair("lstm", 2, 5, seed=seed)
    torch.manual_seed(seed + 1)
    tfc = tnn.Linear(5, 1)
    fc = rg.nn.Linear(5, 1)
    fc.load_state_dict({k: v.detach().numpy().copy() for k, v in tfc.state_dict().items()})
    return mod, tmod, fc, tfc


def test_bptt_gradient_wrt_first_input_matches_torch():
    mod, tmod, fc, tfc = _models()
    x = np.random.default_rng(0).standard_normal((15, 2, 2)).astype(np.float32)
    rx, tx = rg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fc(mod(rx)[0][-1]).sum().backward()
    tfc(tmod(tx)[0][-1]).sum().backward()
    g0, tg0 = rx.grad.data[0], tx.grad.numpy()[0]
    scale = np.abs(tg0).max()
    assert scale > 1e-6  # the gradient reaches back 15 steps (it fades: compare relative to it)
    np.testing.assert_allclose(g0, tg0, atol=1e-3 * scale, rtol=1e-3)
    np.testing.assert_allclose(rx.grad.data, tx.grad.numpy(), **GRAD)


class _Seq(rg.nn.Module):
    """LSTM + linear head, model(x, hx) -> (prediction per step, hx)."""

    def __init__(self, lstm, fc):
        super().__init__()
        self.lstm, self.fc = lstm, fc

    def forward(self, x, hx=None):
        out, hx = self.lstm(x, hx)
        return self.fc(out), hx


def _mse(out, y):
    return ((out - y) * (out - y)).mean()


def test_truncated_bptt_cuts_the_gradient_at_each_boundary():
    mod, tmod, fc, tfc = _models(1)
    model = _Seq(mod, fc)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((12, 2, 2)).astype(np.float32)
    y = rng.standard_normal((12, 2, 1)).astype(np.float32)
    k = 4
    rx = rg.tensor(x, requires_grad=True)
    losses, hx = utils_rnn.truncated_bptt(model, rx, rg.tensor(y), k, _mse)
    assert len(losses) == 3 and not hx[0].requires_grad
    # the same chunks run separately, each from the previous chunk's final state as a constant
    model.zero_grad()
    sep_grads, state = [], None
    xs = [rg.tensor(x[s : s + k], requires_grad=True) for s in range(0, 12, k)]
    sep_losses = []
    for i, xc in enumerate(xs):
        out, state = model(xc, state)
        loss = _mse(out, rg.tensor(y[i * k : (i + 1) * k]))
        loss.backward()
        sep_losses.append(float(loss.item()))
        state = (state[0].detach(), state[1].detach())
        sep_grads.append(xc.grad.data)
    np.testing.assert_allclose(losses, sep_losses, rtol=1e-6)
    np.testing.assert_allclose(rx.grad.data, np.concatenate(sep_grads), rtol=1e-5, atol=1e-7)
    # a loss on the last chunk only sends nothing past its boundary; full BPTT does
    calls = []

    def last_chunk_only(out, target):
        calls.append(1)
        return _mse(out, target) * (1.0 if len(calls) == 3 else 0.0)

    rx2 = rg.tensor(x, requires_grad=True)
    utils_rnn.truncated_bptt(model, rx2, rg.tensor(y), k, last_chunk_only)
    assert not rx2.grad.data[:8].any() and np.abs(rx2.grad.data[8:]).max() > 1e-6
    full = rg.tensor(x, requires_grad=True)
    out, _ = model(full)
    _mse(out[8:], rg.tensor(y[8:])).backward()
    assert np.abs(full.grad.data[:8]).max() > 1e-6
    np.testing.assert_allclose(full.grad.data[8:], rx2.grad.data[8:], rtol=1e-5, atol=1e-7)


def test_truncated_bptt_with_optimizer_matches_torch():
    mod, tmod, fc, tfc = _models(2)
    model = _Seq(mod, fc)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 10, 2)).astype(np.float32)  # batch_first
    y = rng.standard_normal((2, 10, 1)).astype(np.float32)
    mod.batch_first = tmod.batch_first = True
    opt = rg.optim.SGD(model.parameters(), lr=0.1)
    losses, _ = utils_rnn.truncated_bptt(
        model, rg.tensor(x), rg.tensor(y), 3, _mse, optimizer=opt, batch_first=True
    )
    tparams = list(tmod.parameters()) + list(tfc.parameters())
    topt = torch.optim.SGD(tparams, lr=0.1)
    tx, ty = torch.tensor(x), torch.tensor(y)
    hx, tlosses = None, []
    for s in range(0, 10, 3):
        topt.zero_grad()
        out, hx = tmod(tx[:, s : s + 3], hx)
        loss = _mse(tfc(out), ty[:, s : s + 3])
        loss.backward()
        topt.step()
        tlosses.append(loss.item())
        hx = (hx[0].detach(), hx[1].detach())
    np.testing.assert_allclose(losses, tlosses, rtol=1e-5)
    for p, tp in zip(model.parameters(), tparams):
        np.testing.assert_allclose(p.data, _np(tp), atol=1e-6, rtol=1e-5)


# -- padding helpers -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "batch_first,side", list(itertools.product((False, True), ("right", "left")))
)
def test_pad_sequence_matches_torch(batch_first, side):
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((n, 3)).astype(np.float32) for n in (4, 1, 3)]
    rs = [rg.tensor(s, requires_grad=True) for s in seqs]
    ts = [torch.tensor(s, requires_grad=True) for s in seqs]
    out = utils_rnn.pad_sequence(rs, batch_first, -1.0, side)
    tout = trnn.pad_sequence(ts, batch_first, -1.0, side)
    np.testing.assert_array_equal(out.data, _np(tout))
    w = rng.standard_normal(tuple(tout.shape)).astype(np.float32)
    (out * rg.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    for a, b in zip(rs, ts):
        np.testing.assert_allclose(a.grad.data, _np(b.grad))


def test_lengths_mask_helpers():
    m = utils_rnn.lengths_to_mask([3, 1, 2])
    assert m.shape == (3, 3) and m.dtype == np.bool_
    np.testing.assert_array_equal(m.data.T, [[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    assert utils_rnn.lengths_to_mask(rg.tensor([2, 1]), max_len=4, batch_first=True).shape == (2, 4)
    np.testing.assert_array_equal(utils_rnn.mask_to_lengths(m).data, [3, 1, 2])
    h = rg.randn(2, 3, requires_grad=True) * 2
    state = utils_rnn.detach_state((h, [h, None]))
    assert not state[0].requires_grad and not state[1][0].requires_grad and state[1][1] is None


def test_functional_layers_reject_bad_input():
    w_ih, w_hh = rg.randn(8, 3), rg.randn(8, 2)
    with pytest.raises(RuntimeError, match="expected input of shape"):
        R.lstm_layer(rg.randn(4, 3), None, w_ih, w_hh)
    with pytest.raises(RuntimeError, match="Expected 3, got 2"):
        R.lstm_layer(rg.randn(4, 1, 2), None, w_ih, w_hh)
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        R.rnn_layer(rg.randn(4, 1, 3), None, rg.randn(2, 3), rg.randn(2, 2), nonlinearity="x")


@pytest.mark.parametrize("case", ["output only", "state held", "retain_graph", "output and c_n"])
def test_lstm_gate_gradients_over_activations_only_when_nothing_reads_them(case, monkeypatch):
    # the plain backward writes the gate gradients over the saved activations when nothing
    # else holds them (a graph freed as it goes, c_n's node gone or done); gradients must match
    # PyTorch's on both paths, and a retained graph must give the same gradients twice
    seen = []
    real = R._lstm_backward_arrays

    def spy(*args):  # (a spy on the check itself would hold one more reference)
        seen.append(args[-1])
        return real(*args)

    monkeypatch.setattr(R, "_lstm_backward_arrays", spy)
    mod, tmod = _pair("lstm", 3, 5, num_layers=2, bidirectional=True)
    x = np.random.default_rng(2).standard_normal((6, 2, 3)).astype(np.float32)
    rx, tx = rg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, (h, c) = mod(rx)
    tout, (th, tc) = tmod(tx)
    if case == "output and c_n":
        loss, tloss = out.sum() + (c * c).sum(), tout.sum() + (tc * tc).sum()
    else:
        loss, tloss = (out * out).sum(), (tout * tout).sum()
    if case != "state held":
        del h, c
    tloss.backward()
    if case == "retain_graph":
        loss.backward(retain_graph=True)
        first = [t.grad.numpy().copy() for t in [rx, *mod.parameters()]]
        rx.grad = None
        mod.zero_grad()
        loss.backward()
        for a, t in zip(first, [rx, *mod.parameters()]):
            np.testing.assert_array_equal(t.grad.numpy(), a)
    else:
        loss.backward()
    np.testing.assert_allclose(rx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    for (name, p), tp in zip(mod.named_parameters(), tmod.parameters()):
        np.testing.assert_allclose(
            p.grad.numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name
        )
    expected = {  # per node backward, in the order they ran
        "output only": [True] * 4,
        "state held": [False] * 4,
        "retain_graph": [False] * 4 + [True] * 4,
    }
    if case in expected:
        assert seen == expected[case]
    else:  # every layer's c_n feeds the loss: two nodes per layer and direction, the first kept
        assert True in seen and False in seen


@pytest.mark.parametrize("bidi,lengths,bias", [(False, None, True), (True, "mixed", False)])
def test_lstm_at_the_benchmark_sizes_on_two_threads_matches_torch(
    bidi, lengths, bias, gemm_batch_calls
):
    """At the char-LSTM benchmark's sizes (input 64, hidden 256, batch 32) on two threads, the
    backward's products go to OpenBLAS's gemm_batch: each step's product in one call with the
    step's share of the weights' sums, the input gradient a chunk of steps at a time. PyTorch's
    gradients, both directions, ended sequences and no bias too."""
    from retrograd import parallel

    before = parallel.get_num_threads()
    try:
        parallel.set_num_threads(2)
        steps, batch = 11, 32
        mod, tmod = _pair("lstm", 64, 256, bidirectional=bidi, bias=bias)
        rng = np.random.default_rng(3)
        x = (0.5 * rng.standard_normal((steps, batch, 64))).astype(np.float32)
        lens = None if lengths is None else [steps - (i % 4) for i in range(batch)]
        _run_and_compare(mod, tmod, x, lengths=lens, grad=dict(atol=2e-4, rtol=2e-3))
    finally:
        parallel.set_num_threads(before)
    # per direction: the forward's product a step (2 pieces); c_n's backward (the loss reads
    # c_n too: a node of its own, with no outputs' gradient) the step's sums alone (2); the
    # outputs' backward the step's product and sums in one call (4; the first step's sums
    # alone, as h0 needs no gradient); each backward the input gradient a chunk of up to 8
    # steps at a time (11 steps: 8 and 3)
    per_direction = [2] * steps + [2] * steps + [4] * (steps - 1) + [2] + [8, 3] * 2
    assert sorted(gemm_batch_calls) == sorted(per_direction * (1 + bidi))
