"""Op-table rows: the recurrent primitives (retrograd/ops/recurrent.py): PyTorch's cell functions
(rnn_tanh_cell, rnn_relu_cell, lstm_cell, gru_cell) and the fused layers (rnn_layer, lstm_layer,
gru_layer: one node runs the whole time loop, with lengths and reverse).

The layers have no single PyTorch function; their PyTorch counterpart here is the same loop
over torch.lstm_cell / torch.gru_cell / torch.rnn_*_cell (or PyTorch's gate math for proj_size),
with torch.where carrying the state past each sequence's length. tests/test_recurrent.py checks
the modules against torch.nn.LSTM/GRU/RNN and pack_padded_sequence.
"""

from __future__ import annotations

import numpy as np
import torch

from retrograd.ops import recurrent as R
from tests.opspec_base import OpSpec, Sample, values


# -- NumPy cells ---------------------------------------------------------------------------------
def _sig(x):
    return 1 / (1 + np.exp(-x))


def _lin(x, w, b):
    return x @ w.T + (0 if b is None else b)


def _np_rnn_cell(x, h, wi, wh, bi=None, bh=None, nonlinearity="tanh"):
    z = _lin(x, wi, bi) + _lin(h, wh, bh)
    return np.tanh(z) if nonlinearity == "tanh" else np.maximum(z, 0)


def _np_lstm_cell(x, state, wi, wh, bi=None, bh=None, wr=None):
    h, c = state
    i, f, g, o = np.split(_lin(x, wi, bi) + _lin(h, wh, bh), 4, axis=-1)
    c = _sig(f) * c + _sig(i) * np.tanh(g)
    h = _sig(o) * np.tanh(c)
    return (h if wr is None else h @ wr.T), c


def _np_gru_cell(x, h, wi, wh, bi=None, bh=None):
    xr, xz, xn = np.split(_lin(x, wi, bi), 3, axis=-1)
    hr, hz, hn = np.split(_lin(h, wh, bh), 3, axis=-1)
    r, z = _sig(xr + hr), _sig(xz + hz)
    n = np.tanh(xn + r * hn)
    return (1 - z) * n + z * h


# -- the layer loop, for NumPy and PyTorch ---------------------------------------------------------
def _loop(step, x, state, lengths, reverse, where, zeros_like, stack):
    """Run `step(x_t, state) -> state` over time; state[0] is the output. Past a sequence's
    length the state is carried and the output is zero."""
    n = x.shape[0]
    outs = [None] * n
    for t in range(n - 1, -1, -1) if reverse else range(n):
        new = step(x[t], state)
        if lengths is None:
            state = new
            outs[t] = new[0]
        else:
            m = (t < np.asarray(lengths))[:, None]
            mt = m if where is np.where else torch.from_numpy(m)
            state = tuple(where(mt, a, b) for a, b in zip(new, state))
            outs[t] = where(mt, new[0], zeros_like(new[0]))
    return stack(outs), state


def _np_loop(step, x, state, lengths=None, reverse=False):
    return _loop(step, x, state, lengths, reverse, np.where, np.zeros_like, np.stack)


def _torch_loop(step, x, state, lengths=None, reverse=False):
    return _loop(step, x, state, lengths, reverse, torch.where, torch.zeros_like, torch.stack)


def _zeros_state(x, size, lib):
    return lib.zeros((x.shape[1], size), dtype=x.dtype)


def _ref_rnn_layer(x, h0, wi, wh, bi=None, bh=None, nonlinearity="tanh", **kw):
    h0 = _zeros_state(x, wh.shape[1], np) if h0 is None else h0
    out, (h,) = _np_loop(
        lambda xt, s: (_np_rnn_cell(xt, s[0], wi, wh, bi, bh, nonlinearity),), x, (h0,), **kw
    )
    return out, h


def _torch_rnn_layer(x, h0, wi, wh, bi=None, bh=None, nonlinearity="tanh", **kw):
    h0 = _zeros_state(x, wh.shape[1], torch) if h0 is None else h0
    cell = torch.rnn_tanh_cell if nonlinearity == "tanh" else torch.rnn_relu_cell
    out, (h,) = _torch_loop(lambda xt, s: (cell(xt, s[0], wi, wh, bi, bh),), x, (h0,), **kw)
    return out, h


def _rg_rnn_layer(x, h0, wi, wh, bi=None, bh=None, **kw):
    return R.rnn_layer(x, h0, wi, wh, bi, bh, **kw)


def _ref_lstm_layer(x, h0, c0, wi, wh, bi=None, bh=None, wr=None, **kw):
    if h0 is None:
        h0, c0 = _zeros_state(x, wh.shape[1], np), _zeros_state(x, wh.shape[0] // 4, np)
    out, (h, c) = _np_loop(
        lambda xt, s: _np_lstm_cell(xt, s, wi, wh, bi, bh, wr), x, (h0, c0), **kw
    )
    return out, h, c


def _torch_lstm_step(xt, s, wi, wh, bi, bh, wr):
    if wr is None:
        return tuple(torch.lstm_cell(xt, s, wi, wh, bi, bh))
    # torch.lstm_cell has no projection: PyTorch's gate math (as in its LSTM with proj_size)
    h, c = s
    gates = torch.nn.functional.linear(xt, wi, bi) + torch.nn.functional.linear(h, wh, bh)
    i, f, g, o = gates.chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return (torch.sigmoid(o) * torch.tanh(c)) @ wr.T, c


def _torch_lstm_layer(x, h0, c0, wi, wh, bi=None, bh=None, wr=None, **kw):
    if h0 is None:
        h0, c0 = _zeros_state(x, wh.shape[1], torch), _zeros_state(x, wh.shape[0] // 4, torch)
    out, (h, c) = _torch_loop(
        lambda xt, s: _torch_lstm_step(xt, s, wi, wh, bi, bh, wr), x, (h0, c0), **kw
    )
    return out, h, c


def _rg_lstm_layer(x, h0, c0, wi, wh, bi=None, bh=None, wr=None, **kw):
    hx = None if h0 is None else (h0, c0)
    out, (h, c) = R.lstm_layer(x, hx, wi, wh, bi, bh, wr, **kw)
    return out, h, c


def _ref_gru_layer(x, h0, wi, wh, bi=None, bh=None, **kw):
    h0 = _zeros_state(x, wh.shape[1], np) if h0 is None else h0
    out, (h,) = _np_loop(lambda xt, s: (_np_gru_cell(xt, s[0], wi, wh, bi, bh),), x, (h0,), **kw)
    return out, h


def _torch_gru_layer(x, h0, wi, wh, bi=None, bh=None, **kw):
    h0 = _zeros_state(x, wh.shape[1], torch) if h0 is None else h0
    out, (h,) = _torch_loop(
        lambda xt, s: (torch.gru_cell(xt, s[0], wi, wh, bi, bh),), x, (h0,), **kw
    )
    return out, h


def _rg_gru_layer(x, h0, wi, wh, bi=None, bh=None, **kw):
    return R.gru_layer(x, h0, wi, wh, bi, bh, **kw)


# -- cells as rows -------------------------------------------------------------------------------
def _rg_lstm_cell(x, h, c, wi, wh, bi=None, bh=None):
    return R.lstm_cell(x, (h, c), wi, wh, bi, bh)


def _torch_lstm_cell(x, h, c, wi, wh, bi=None, bh=None):
    return torch.lstm_cell(x, (h, c), wi, wh, bi, bh)


def _ref_lstm_cell(x, h, c, wi, wh, bi=None, bh=None):
    return _np_lstm_cell(x, (h, c), wi, wh, bi, bh)


# -- samples ---------------------------------------------------------------------------------------
def _weights(rng, gates, hidden, inp, bias=True):
    w = [values(rng, (gates * hidden, inp), (-0.8, 0.8)), values(rng, (gates * hidden, hidden))]
    if bias:
        w += [values(rng, (gates * hidden,), (-0.5, 0.5)), values(rng, (gates * hidden,))]
    return w


def _cell_samples(gates, with_c=False):
    def make(rng):
        out = []
        inp, hid = 4, 3

        def state(n=3):
            return [values(rng, (n, hid)) for _ in range(1 + with_c)]

        for bias in (True, False):
            out.append(
                Sample(
                    (values(rng, (3, inp)), *state(), *_weights(rng, gates, hid, inp, bias)),
                    {},
                    f"bias={bias}",
                )
            )
        # the input is the state too (input_size == hidden_size): a repeated input
        x = values(rng, (3, hid))
        st = [x] + [values(rng, (3, hid))] * with_c
        out.append(Sample((x, *st, *_weights(rng, gates, hid, hid)), {}, "repeated input (x, x)"))
        out.append(
            Sample(
                (values(rng, (3, inp)), *state(), *_weights(rng, gates, hid, inp)),
                {},
                "noncontig",
                noncontig=(0, 1 + with_c),
            )
        )
        out.append(
            Sample(
                (values(rng, (1, inp)), *state(1), *_weights(rng, gates, hid, inp)),
                {},
                "batch of one",
            )
        )
        return out

    return make


_LENGTHS = (3, 1)  # batch of two: one full sequence, one of length 1


def _layer_samples(gates, with_c=False, proj=False, relu=False):
    def make(rng):
        out = []
        steps, n, inp, hid = 3, 2, 3, 2
        nstate = 1 + with_c

        def state(size=hid):
            return [values(rng, (n, size))] + [values(rng, (n, hid))] * with_c

        def x():
            return values(rng, (steps, n, inp))

        for reverse in (False, True):
            for lengths in (None, _LENGTHS):
                kw = {"reverse": reverse, "lengths": lengths}
                out.append(
                    Sample(
                        (x(), *state(), *_weights(rng, gates, hid, inp)),
                        kw,
                        f"reverse={reverse} lengths={lengths}",
                    )
                )
        out.append(Sample((x(), *[None] * nstate, *_weights(rng, gates, hid, inp)), {}, "hx=None"))
        out.append(
            Sample(
                (x(), *state(), *_weights(rng, gates, hid, inp, bias=False)),
                {"lengths": (2, 3)},
                "no bias, lengths",
            )
        )
        out.append(
            Sample(
                (x(), *state(), *_weights(rng, gates, hid, inp)),
                {},
                "noncontig",
                noncontig=(0, 1),
            )
        )
        out.append(
            Sample(
                (
                    values(rng, (1, 1, inp)),
                    *[values(rng, (1, hid))] * nstate,
                    *_weights(rng, gates, hid, inp),
                ),
                {},
                "one step, batch of one",
            )
        )
        if proj:
            p = 1
            for reverse, lengths in ((False, None), (True, _LENGTHS)):
                w = _weights(rng, gates, hid, inp)
                w[1] = values(rng, (gates * hid, p))
                out.append(
                    Sample(
                        (x(), *state(p), *w, values(rng, (p, hid))),
                        {"reverse": reverse, "lengths": lengths},
                        f"proj_size=1 reverse={reverse} lengths={lengths}",
                    )
                )
        if relu:
            for lengths in (None, _LENGTHS):
                out.append(
                    Sample(
                        (x(), *state(), *_weights(rng, gates, hid, inp)),
                        {"nonlinearity": "relu", "lengths": lengths, "reverse": True},
                        f"relu lengths={lengths}",
                    )
                )
        return out

    return make


def _np_relu_cell(x, h, wi, wh, bi=None, bh=None):
    return _np_rnn_cell(x, h, wi, wh, bi, bh, "relu")


ROWS = [
    OpSpec("rnn_tanh_cell", R.rnn_tanh_cell, _np_rnn_cell, torch.rnn_tanh_cell, _cell_samples(1)),
    # relu's kink: random inputs keep the pre-activations away from 0 at these sizes
    OpSpec("rnn_relu_cell", R.rnn_relu_cell, _np_relu_cell, torch.rnn_relu_cell, _cell_samples(1)),
    OpSpec("lstm_cell", _rg_lstm_cell, _ref_lstm_cell, _torch_lstm_cell, _cell_samples(4, True)),
    OpSpec("gru_cell", R.gru_cell, _np_gru_cell, torch.gru_cell, _cell_samples(3)),
    OpSpec(
        "rnn_layer",
        _rg_rnn_layer,
        _ref_rnn_layer,
        _torch_rnn_layer,
        _layer_samples(1, relu=True),
    ),
    OpSpec(
        "lstm_layer",
        _rg_lstm_layer,
        _ref_lstm_layer,
        _torch_lstm_layer,
        _layer_samples(4, with_c=True, proj=True),
    ),
    OpSpec("gru_layer", _rg_gru_layer, _ref_gru_layer, _torch_gru_layer, _layer_samples(3)),
]

NOT_ROWS: dict = {}
