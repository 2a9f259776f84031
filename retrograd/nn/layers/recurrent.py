"""Recurrent layers, PyTorch's names, parameters and gate order: RNN, LSTM, GRU and their cells.

Parameters are `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}` (and
`weight_hr_l{k}` for an LSTM with proj_size), `_reverse` for the backward direction, with
PyTorch's shapes, so state dicts move between the two libraries. Each layer and direction is one
fused node (retrograd.ops.recurrent): the input projection of all time steps is one matrix
product, each step one product for all gates, and backprop through time one reverse loop.

Variable-length batches: `forward(input, hx, lengths=...)` gives what PyTorch's
pack_padded_sequence / pad_packed_sequence(total_length=L) give: outputs past each sequence's
length are zero, and h_n (c_n) hold each sequence's last valid state.
"""

from __future__ import annotations

import math
import numbers
import warnings

from retrograd import ops
from retrograd.creation import empty, zeros
from retrograd.nn import functional as F
from retrograd.nn import init
from retrograd.nn.module import Module
from retrograd.nn.parameter import Parameter
from retrograd.ops import recurrent as R
from retrograd.tensor import Tensor

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
_NAMES = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN", "RNN_RELU": "RNN"}


class RNNBase(Module):
    """The stack of recurrent layers behind RNN, LSTM and GRU (mode: 'LSTM', 'GRU', 'RNN_TANH',
    'RNN_RELU'). Parameters are drawn from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) with
    `generator`, which also draws the dropout masks between layers."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        generator=None,
    ) -> None:
        super().__init__()
        if mode not in _GATES:
            raise ValueError("Unrecognized RNN mode: " + mode)
        _check_sizes(input_size, hidden_size, num_layers, bias, batch_first, dropout, proj_size)
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=2,
            )
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self.generator = generator
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        self._all_weights = []
        for layer in range(num_layers):
            for direction in range(directions):
                in_size = input_size if layer == 0 else real_hidden * directions
                shapes = [(gate_size, in_size), (gate_size, real_hidden)]
                names = ["weight_ih_l{}{}", "weight_hh_l{}{}"]
                if bias:
                    shapes += [(gate_size,), (gate_size,)]
                    names += ["bias_ih_l{}{}", "bias_hh_l{}{}"]
                if proj_size > 0:
                    shapes.append((proj_size, hidden_size))
                    names.append("weight_hr_l{}{}")
                suffix = "_reverse" if direction == 1 else ""
                names = [n.format(layer, suffix) for n in names]
                for name, shape in zip(names, shapes):
                    # dynamic names (PyTorch's), found like any attribute by Module's walk
                    setattr(self, name, Parameter(empty(*shape, dtype=dtype, device=device)))
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv, generator=generator)

    @property
    def all_weights(self) -> list:
        """The parameters of each layer and direction, as PyTorch lists them."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """A no-op (PyTorch packs cuDNN weights here); kept so PyTorch code runs unchanged."""

    def _layer_weights(self, layer: int, direction: int) -> tuple:
        """(w_ih, w_hh, b_ih, b_hh, w_hr), None for the absent ones."""
        suffix = f"l{layer}" + ("_reverse" if direction == 1 else "")
        d = self.__dict__
        return (
            d[f"weight_ih_{suffix}"],
            d[f"weight_hh_{suffix}"],
            d.get(f"bias_ih_{suffix}"),
            d.get(f"bias_hh_{suffix}"),
            d.get(f"weight_hr_{suffix}"),
        )

    def forward(self, input: Tensor, hx=None, lengths=None):
        """input (L, N, H_in), (N, L, H_in) when batch_first, or unbatched (L, H_in); hx the
        initial state(s) (D * num_layers, N, H_out) (LSTM: a tuple (h0, c0)); lengths: N
        integers for a padded batch. Returns (output, h_n) (LSTM: (output, (h_n, c_n)))."""
        name = _NAMES[self.mode]
        is_lstm = self.mode == "LSTM"
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D instead")
        batched = input.ndim == 3
        if batched:
            x = input.transpose(0, 1) if self.batch_first else input
        else:
            if lengths is not None:
                raise ValueError("lengths needs a batched (3-D) input")
            x = input.unsqueeze(1)
        hx = self._check_hx(hx, batched)
        if x.shape[-1] != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got "
                f"{x.shape[-1]}"
            )
        steps, batch = x.shape[0], x.shape[1]
        directions = 2 if self.bidirectional else 1
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        expected = (self.num_layers * directions, batch, real_hidden)
        if hx is None:
            h0 = zeros(*expected, dtype=x.dtype, device=x.device)
            c0 = zeros(expected[0], batch, self.hidden_size, dtype=x.dtype, device=x.device)
        elif is_lstm:
            h0, c0 = hx
            _check_hidden(h0, expected, "Expected hidden[0] size {}, got {}")
            _check_hidden(
                c0, expected[:2] + (self.hidden_size,), "Expected hidden[1] size {}, got {}"
            )
        else:
            h0 = hx
            _check_hidden(h0, expected, "Expected hidden size {}, got {}")
        mask = R._lengths_mask(lengths, steps, batch, x)
        layer_in = x
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(directions):
                k = layer * directions + direction
                w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_weights(layer, direction)
                reverse = direction == 1
                if is_lstm:
                    out, h, c = R._lstm(
                        layer_in, h0[k], c0[k], w_ih, w_hh, b_ih, b_hh, w_hr, mask, reverse
                    )
                    c_n.append(c)
                elif self.mode == "GRU":
                    out, h = R._gru(layer_in, h0[k], w_ih, w_hh, b_ih, b_hh, mask, reverse)
                else:
                    act = "tanh" if self.mode == "RNN_TANH" else "relu"
                    out, h = R._rnn(layer_in, h0[k], w_ih, w_hh, b_ih, b_hh, act, mask, reverse)
                outs.append(out)
                h_n.append(h)
            # past each sequence's length the states are carried, never read by the next
            # layer's valid steps: the output is masked once, at the end
            layer_in = outs[0] if directions == 1 else ops.cat(outs, -1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, True, generator=self.generator)
        output = R._apply_mask(layer_in, mask)
        h_n = ops.stack(h_n, 0)
        if batched:
            if self.batch_first:
                output = output.transpose(0, 1)
        else:
            output, h_n = output.squeeze(1), h_n.squeeze(1)
        if not is_lstm:
            return output, h_n
        c_n = ops.stack(c_n, 0)
        return output, (h_n, c_n if batched else c_n.squeeze(1))

    def _check_hx(self, hx, batched: bool):
        """hx with a batch dim (unbatched input: checked 2-D and unsqueezed)."""
        if hx is None:
            return None
        want = 3 if batched else 2
        what = "batched 3-D" if batched else "unbatched 2-D"
        if self.mode == "LSTM":
            h, c = hx
            if h.ndim != want or c.ndim != want:
                raise RuntimeError(
                    f"For {what} input, hx and cx should also be {want}-D but got "
                    f"({h.ndim}-D, {c.ndim}-D) tensors"
                )
            return hx if batched else (h.unsqueeze(1), c.unsqueeze(1))
        if hx.ndim != want:
            raise RuntimeError(
                f"For {what} input, hx should also be {want}-D but got {hx.ndim}-D tensor"
            )
        return hx if batched else hx.unsqueeze(1)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


def _check_sizes(input_size, hidden_size, num_layers, bias, batch_first, dropout, proj_size):
    if (
        not isinstance(dropout, numbers.Number)
        or isinstance(dropout, bool)
        or not 0 <= dropout <= 1
    ):
        raise ValueError(
            "dropout should be a number in range [0, 1] representing the probability of an "
            "element being zeroed"
        )
    if not isinstance(bias, bool):
        raise TypeError(f"bias should be of type bool, got: {type(bias).__name__}")
    if not isinstance(batch_first, bool):
        raise TypeError(f"batch_first should be of type bool, got: {type(batch_first).__name__}")
    if not isinstance(input_size, int):
        raise TypeError(f"input_size should be of type int, got: {type(input_size).__name__}")
    if input_size <= 0:
        raise ValueError("input_size must be greater than zero")
    if not isinstance(hidden_size, int):
        raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
    if hidden_size <= 0:
        raise ValueError("hidden_size must be greater than zero")
    if num_layers <= 0:
        raise ValueError("num_layers must be greater than zero")
    if proj_size < 0:
        raise ValueError("proj_size should be a positive integer or zero to disable projections")
    if proj_size >= hidden_size:
        raise ValueError("proj_size has to be smaller than hidden_size")


def _check_hidden(h: Tensor, expected: tuple, msg: str) -> None:
    if tuple(h.shape) != tuple(expected):
        raise RuntimeError(msg.format(tuple(expected), list(h.shape)))


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu.

    >>> rnn = RNN(10, 20, num_layers=2)
    >>> output, h_n = rnn(retrograd.randn(5, 3, 10))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        generator=None,
    ) -> None:
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        super().__init__(
            mode,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
            generator=generator,
        )
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None, lengths=None):
        """(output, h_n); see RNNBase.forward."""
        return super().forward(input, hx, lengths)


class LSTM(RNNBase):
    """Long short-term memory, gates i, f, g, o (PyTorch's order):
    c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)  (times W_hr^T when proj_size > 0).

    >>> lstm = LSTM(10, 20, num_layers=2, batch_first=True)
    >>> output, (h_n, c_n) = lstm(retrograd.randn(3, 5, 10))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        generator=None,
    ) -> None:
        super().__init__(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device=device,
            dtype=dtype,
            generator=generator,
        )

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None, lengths=None):
        """(output, (h_n, c_n)); see RNNBase.forward."""
        return super().forward(input, hx, lengths)


class GRU(RNNBase):
    """Gated recurrent unit, gates r, z, n (PyTorch's order and n):
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h_t = (1 - z) n + z h_{t-1}.

    >>> gru = GRU(10, 20, bidirectional=True)
    >>> output, h_n = gru(retrograd.randn(5, 3, 10))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        generator=None,
    ) -> None:
        super().__init__(
            "GRU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
            generator=generator,
        )

    def forward(self, input: Tensor, hx: Tensor | None = None, lengths=None):
        """(output, h_n); see RNNBase.forward."""
        return super().forward(input, hx, lengths)


# -- cells -----------------------------------------------------------------------------------------
class RNNCellBase(Module):
    """weight_ih (chunks * hidden, input), weight_hh (chunks * hidden, hidden), bias_ih, bias_hh,
    all drawn from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) as in PyTorch."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool,
        num_chunks: int,
        device=None,
        dtype=None,
        generator=None,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        gates = num_chunks * hidden_size
        self.weight_ih = Parameter(empty(gates, input_size, dtype=dtype, device=device))
        self.weight_hh = Parameter(empty(gates, hidden_size, dtype=dtype, device=device))
        if bias:
            self.bias_ih = Parameter(empty(gates, dtype=dtype, device=device))
            self.bias_hh = Parameter(empty(gates, dtype=dtype, device=device))
        else:
            self.bias_ih = self.bias_hh = None
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv, generator=generator)

    def _prepare(self, name: str, input: Tensor, hx):
        """(input, hx) with a batch dim, and whether the input had one."""
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        states = hx if isinstance(hx, tuple) else (hx,)
        for i, h in enumerate(states):
            if h is not None and h.ndim not in (1, 2):
                which = f"hx[{i}]" if isinstance(hx, tuple) else "hidden"
                raise ValueError(f"{name}: Expected {which} to be 1D or 2D, got {h.ndim}D instead")
        batched = input.ndim == 2
        if not batched:
            input = input.unsqueeze(0)
            if hx is not None:
                hx = tuple(h.unsqueeze(0) for h in hx) if isinstance(hx, tuple) else hx.unsqueeze(0)
        if hx is None:
            z = zeros(input.shape[0], self.hidden_size, dtype=input.dtype, device=input.device)
            hx = (z, z) if isinstance(self, LSTMCell) else z
        return input, hx, batched

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(RNNCellBase):
    """One Elman RNN step: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or relu.

    >>> cell = RNNCell(10, 20)
    >>> h = cell(retrograd.randn(3, 10))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
        generator=None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 1, device, dtype, generator)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, h, batched = self._prepare("RNNCell", input, hx)
        if self.nonlinearity == "tanh":
            cell = R.rnn_tanh_cell
        elif self.nonlinearity == "relu":
            cell = R.rnn_relu_cell
        else:
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        out = cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out if batched else out.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o): returns (h', c').

    >>> cell = LSTMCell(10, 20)
    >>> h, c = cell(retrograd.randn(3, 10))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        generator=None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype, generator)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None):
        x, hx, batched = self._prepare("LSTMCell", input, hx)
        h, c = R.lstm_cell(x, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n): h' = (1 - z) n + z h.

    >>> cell = GRUCell(10, 20)
    >>> h = cell(retrograd.randn(3, 10))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        generator=None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype, generator)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, h, batched = self._prepare("GRUCell", input, hx)
        out = R.gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out if batched else out.squeeze(0)
