"""Transformers, PyTorch's modules and submodule names (state dicts move between the libraries):
TransformerEncoderLayer, TransformerDecoderLayer, TransformerEncoder, TransformerDecoder,
Transformer; and positional encodings: SinusoidalPositionalEncoding (Vaswani et al., 2017) and
LearnedPositionalEmbedding."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np

from retrograd import backend
from retrograd.creation import empty, tensor
from retrograd.nn import functional as F
from retrograd.nn import init
from retrograd.nn.containers import ModuleList
from retrograd.nn.layers.activation import GELU, ReLU
from retrograd.nn.layers.attention import MultiheadAttention
from retrograd.nn.layers.dropout import Dropout
from retrograd.nn.layers.linear import Linear
from retrograd.nn.layers.normalization import LayerNorm
from retrograd.nn.module import Module
from retrograd.nn.parameter import Parameter
from retrograd.ops.attention import _canonical_mask, causal_mask
from retrograd.tensor import Tensor

__all__ = [
    "Transformer",
    "TransformerEncoder",
    "TransformerDecoder",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEmbedding",
]


# -- helpers ---------------------------------------------------------------------------------------
def _generate_square_subsequent_mask(sz: int, device=None, dtype=None) -> Tensor:
    """(sz, sz) float mask: -inf above the diagonal, 0 on and below it."""
    return causal_mask(
        sz, dtype=backend.get_default_dtype() if dtype is None else dtype, device=device
    )


def _get_seq_len(src: Tensor, batch_first: bool) -> int:
    if src.data.ndim == 2:  # unbatched: (S, E)
        return src.shape[0]
    return src.shape[1 if batch_first else 0]


def _detect_is_causal_mask(mask: Tensor | None, is_causal: bool | None = None, size=None) -> bool:
    """is_causal when given; else whether `mask` is the causal float mask of the sequence."""
    make_causal = is_causal is True
    if is_causal is None and mask is not None:
        sz = size if size is not None else mask.shape[-2]
        causal = _generate_square_subsequent_mask(sz, dtype=mask.data.dtype)
        if tuple(mask.shape) == tuple(causal.shape):
            make_causal = bool((mask.data == causal.data).all())
        else:
            make_causal = False
    return make_causal


def _get_activation_fn(activation: str) -> Callable[[Tensor], Tensor]:
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


def _deepcopy_module(module: Module) -> Module:
    """copy.deepcopy for a module: fresh copies of its parameters and buffers; generators stay
    shared (copies of one generator would draw the same dropout masks in every layer)."""
    memo: dict = {}
    for m in module.modules():
        for value in m.__dict__.values():
            if isinstance(value, backend.Generator):
                memo[id(value)] = value
    for _, p in module.named_parameters():
        if id(p) not in memo:
            memo[id(p)] = Parameter(
                Tensor._make(p.data.copy(), False, None, 0), requires_grad=p.requires_grad
            )
    for _, b in module.named_buffers():
        if b is not None and id(b) not in memo:
            memo[id(b)] = Tensor._make(b.data.copy(), False, None, 0)
    return copy.deepcopy(module, memo)


def _get_clones(module: Module, n: int) -> ModuleList:
    return ModuleList([_deepcopy_module(module) for _ in range(n)])


# -- layers ----------------------------------------------------------------------------------------
class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each with a residual connection and LayerNorm
    (post-norm; pre-norm with norm_first=True). Submodules as PyTorch's: self_attn, linear1,
    dropout, linear2, norm1, norm2, dropout1, dropout2.

    >>> layer = TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32)
    >>> layer(retrograd.randn(5, 2, 16)).shape    # (S, N, E)
    (5, 2, 16)
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = F.relu,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device=None,
        dtype=None,
        generator=None,
    ) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(
            d_model,
            nhead,
            dropout=dropout,
            bias=bias,
            batch_first=batch_first,
            generator=generator,
            **kw,
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, generator=generator, **kw)
        self.dropout = Dropout(dropout, generator=generator)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, generator=generator, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout, generator=generator)
        self.dropout2 = Dropout(dropout, generator=generator)
        if isinstance(activation, str):
            activation = _get_activation_fn(activation)
        if activation is F.relu or isinstance(activation, ReLU):
            self.activation_relu_or_gelu = 1
        elif activation is F.gelu or isinstance(activation, GELU):
            self.activation_relu_or_gelu = 2
        else:
            self.activation_relu_or_gelu = 0
        self.activation = activation

    def forward(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        """src (S, N, E) ((N, S, E) with batch_first); masks as MultiheadAttention's."""
        dtype = src.data.dtype
        src_key_padding_mask = _canonical_mask(
            src_key_padding_mask, "src_key_padding_mask", dtype, src_mask, "src_mask"
        )
        src_mask = _canonical_mask(src_mask, "src_mask", dtype)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False) -> Tensor:
        x = self.self_attn(
            x,
            x,
            x,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            is_causal=is_causal,
        )[0]
        return self.dropout1(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)


class TransformerDecoderLayer(Module):
    """Self-attention over the target, attention over the encoder's memory and a feed-forward
    block, each with a residual connection and LayerNorm (pre-norm with norm_first=True).
    Submodules as PyTorch's: self_attn, multihead_attn, linear1, dropout, linear2, norm1..3,
    dropout1..3.

    >>> layer = TransformerDecoderLayer(d_model=16, nhead=4, dim_feedforward=32)
    >>> layer(retrograd.randn(4, 2, 16), retrograd.randn(6, 2, 16)).shape
    (4, 2, 16)
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = F.relu,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device=None,
        dtype=None,
        generator=None,
    ) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(
            d_model,
            nhead,
            dropout=dropout,
            batch_first=batch_first,
            bias=bias,
            generator=generator,
            **kw,
        )
        self.multihead_attn = MultiheadAttention(
            d_model,
            nhead,
            dropout=dropout,
            batch_first=batch_first,
            bias=bias,
            generator=generator,
            **kw,
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, generator=generator, **kw)
        self.dropout = Dropout(dropout, generator=generator)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, generator=generator, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout, generator=generator)
        self.dropout2 = Dropout(dropout, generator=generator)
        self.dropout3 = Dropout(dropout, generator=generator)
        if isinstance(activation, str):
            activation = _get_activation_fn(activation)
        self.activation = activation

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> Tensor:
        """tgt (T, N, E), memory (S, N, E) ((N, ., E) with batch_first)."""
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(
                self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal
            )
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(
                x
                + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            )
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False) -> Tensor:
        x = self.self_attn(
            x,
            x,
            x,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            is_causal=is_causal,
            need_weights=False,
        )[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal=False) -> Tensor:
        x = self.multihead_attn(
            x,
            mem,
            mem,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            is_causal=is_causal,
            need_weights=False,
        )[0]
        return self.dropout2(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout3(x)


# -- stacks ----------------------------------------------------------------------------------------
class TransformerEncoder(Module):
    """num_layers copies of encoder_layer (deep copies: `layers.0`, `layers.1`, ...), then norm.

    enable_nested_tensor and mask_check are accepted for PyTorch compatibility; retrograd has no
    nested-tensor fast path, so they change nothing.
    """

    def __init__(
        self,
        encoder_layer: TransformerEncoderLayer,
        num_layers: int,
        norm: Module | None = None,
        enable_nested_tensor: bool = True,
        mask_check: bool = True,
    ) -> None:
        super().__init__()
        self.layers = _get_clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        self.use_nested_tensor = False
        self.mask_check = mask_check

    def forward(
        self,
        src: Tensor,
        mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool | None = None,
    ) -> Tensor:
        """is_causal=None: detected from `mask` (True when it is the causal float mask)."""
        dtype = src.data.dtype
        src_key_padding_mask = _canonical_mask(
            src_key_padding_mask, "src_key_padding_mask", dtype, mask, "mask"
        )
        mask = _canonical_mask(mask, "mask", dtype)
        batch_first = self.layers[0].self_attn.batch_first
        is_causal = _detect_is_causal_mask(mask, is_causal, _get_seq_len(src, batch_first))
        output = src
        for mod in self.layers:
            output = mod(
                output,
                src_mask=mask,
                is_causal=is_causal,
                src_key_padding_mask=src_key_padding_mask,
            )
        if self.norm is not None:
            output = self.norm(output)
        return output


class TransformerDecoder(Module):
    """num_layers copies of decoder_layer (deep copies: `layers.0`, `layers.1`, ...), then norm."""

    def __init__(
        self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: Module | None = None
    ) -> None:
        super().__init__()
        self.layers = _get_clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> Tensor:
        """tgt_is_causal=None: detected from `tgt_mask`."""
        seq_len = _get_seq_len(tgt, self.layers[0].self_attn.batch_first)
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal, seq_len)
        output = tgt
        for mod in self.layers:
            output = mod(
                output,
                memory,
                tgt_mask=tgt_mask,
                memory_mask=memory_mask,
                tgt_key_padding_mask=tgt_key_padding_mask,
                memory_key_padding_mask=memory_key_padding_mask,
                tgt_is_causal=tgt_is_causal,
                memory_is_causal=memory_is_causal,
            )
        if self.norm is not None:
            output = self.norm(output)
        return output


class Transformer(Module):
    """The encoder-decoder Transformer of Vaswani et al. (2017), PyTorch's module: an encoder
    (`encoder.layers.*`, `encoder.norm`) and a decoder (`decoder.layers.*`, `decoder.norm`);
    every parameter with more than one dim xavier_uniform_-initialised.

    >>> model = Transformer(d_model=16, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
    ...                     dim_feedforward=32, batch_first=True)
    >>> src, tgt = retrograd.randn(2, 7, 16), retrograd.randn(2, 5, 16)
    >>> out = model(src, tgt, tgt_mask=Transformer.generate_square_subsequent_mask(5))
    """

    def __init__(
        self,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = F.relu,
        custom_encoder: Module | None = None,
        custom_decoder: Module | None = None,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device=None,
        dtype=None,
        generator=None,
    ) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        layer_args = (
            d_model,
            nhead,
            dim_feedforward,
            dropout,
            activation,
            layer_norm_eps,
            batch_first,
            norm_first,
            bias,
        )
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            encoder_layer = TransformerEncoderLayer(*layer_args, generator=generator, **kw)
            encoder_norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
            self.encoder = TransformerEncoder(encoder_layer, num_encoder_layers, encoder_norm)
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            decoder_layer = TransformerDecoderLayer(*layer_args, generator=generator, **kw)
            decoder_norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
            self.decoder = TransformerDecoder(decoder_layer, num_decoder_layers, decoder_norm)
        self._reset_parameters(generator)
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    def forward(
        self,
        src: Tensor,
        tgt: Tensor,
        src_mask: Tensor | None = None,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        src_is_causal: bool | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> Tensor:
        """src (S, N, E), tgt (T, N, E) ((N, ., E) with batch_first) -> (T, N, E)."""
        is_batched = src.data.ndim == 3
        if not self.batch_first and src.shape[1] != tgt.shape[1] and is_batched:
            raise RuntimeError("the batch number of src and tgt must be equal")
        if self.batch_first and src.shape[0] != tgt.shape[0] and is_batched:
            raise RuntimeError("the batch number of src and tgt must be equal")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError("the feature number of src and tgt must be equal to d_model")
        memory = self.encoder(
            src,
            mask=src_mask,
            src_key_padding_mask=src_key_padding_mask,
            is_causal=src_is_causal,
        )
        return self.decoder(
            tgt,
            memory,
            tgt_mask=tgt_mask,
            memory_mask=memory_mask,
            tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask,
            tgt_is_causal=tgt_is_causal,
            memory_is_causal=memory_is_causal,
        )

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device=None, dtype=None) -> Tensor:
        """The causal mask for a length-sz sequence: -inf above the diagonal, 0 elsewhere."""
        return _generate_square_subsequent_mask(sz, device=device, dtype=dtype)

    def _reset_parameters(self, generator=None) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                init.xavier_uniform_(p, generator=generator)


# -- positional encodings --------------------------------------------------------------------------
def _add_positions(x: Tensor, table: Tensor, offset: int, batch_first: bool, max_len: int):
    """x + table[offset : offset + L], broadcast over the batch of x ((L, N, E), (N, L, E))."""
    seq = x.shape[0] if x.data.ndim == 2 or not batch_first else x.shape[1]
    if offset + seq > max_len:
        raise ValueError(
            f"sequence of length {seq} at offset {offset} exceeds max_len={max_len} positions"
        )
    pos = table[offset : offset + seq]
    if x.data.ndim == 3 and not batch_first:
        pos = pos.unsqueeze(1)
    return x + pos


class SinusoidalPositionalEncoding(Module):
    """Adds the fixed sinusoids of Vaswani et al. (2017) to a sequence, then dropout:
    PE[pos, 2i] = sin(pos / 10000^(2i/d_model)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d_model)).

    Input (L, N, d_model), or (N, L, d_model) with batch_first, or (L, d_model). The table is a
    non-persistent buffer `pe` (max_len, d_model): it is not saved in state dicts.

    >>> pe = SinusoidalPositionalEncoding(16, max_len=100, dropout=0.0, batch_first=True)
    >>> pe(retrograd.zeros(2, 10, 16)).shape
    (2, 10, 16)
    """

    def __init__(
        self,
        d_model: int,
        max_len: int = 5000,
        dropout: float = 0.1,
        batch_first: bool = False,
        dtype=None,
        generator=None,
    ) -> None:
        super().__init__()
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.dropout = Dropout(dropout, generator=generator)
        position = np.arange(max_len, dtype=np.float64)[:, None]
        div_term = np.exp(
            np.arange(0, d_model, 2, dtype=np.float64) * (-math.log(10000.0) / d_model)
        )
        pe = np.zeros((max_len, d_model), dtype=np.float64)
        pe[:, 0::2] = np.sin(position * div_term)
        pe[:, 1::2] = np.cos(position * div_term[: d_model // 2])
        dt = backend.get_default_dtype() if dtype is None else backend.as_dtype(dtype)
        self.register_buffer("pe", tensor(pe.astype(dt)), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x plus the encodings of positions offset .. offset + L - 1, then dropout."""
        return self.dropout(_add_positions(x, self.pe, offset, self.batch_first, self.max_len))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"


class LearnedPositionalEmbedding(Module):
    """Adds a trained embedding of each position to a sequence: `weight` (max_len, d_model),
    initialised N(0, 0.02^2) (GPT-2's choice).

    Input (L, N, d_model), or (N, L, d_model) with batch_first, or (L, d_model).

    >>> pos = LearnedPositionalEmbedding(128, 16, batch_first=True)
    >>> pos(retrograd.zeros(2, 10, 16)).shape
    (2, 10, 16)
    """

    def __init__(
        self,
        max_len: int,
        d_model: int,
        batch_first: bool = False,
        device=None,
        dtype=None,
        generator=None,
    ) -> None:
        super().__init__()
        self.max_len, self.d_model, self.batch_first = max_len, d_model, batch_first
        self.weight = Parameter(empty(max_len, d_model, dtype=dtype, device=device))
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None) -> None:
        init.normal_(self.weight, 0.0, 0.02, generator=generator)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x plus the embeddings of positions offset .. offset + L - 1."""
        return _add_positions(x, self.weight, offset, self.batch_first, self.max_len)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}, batch_first={self.batch_first}"
