"""MultiheadAttention: PyTorch's module, parameter names and shapes, so state dicts move between
the two libraries."""

from __future__ import annotations

from retrograd.creation import empty
from retrograd.nn import init
from retrograd.nn.layers.linear import Linear
from retrograd.nn.module import Module
from retrograd.nn.parameter import Parameter
from retrograd.ops.attention import _mha
from retrograd.tensor import Tensor

__all__ = ["MultiheadAttention"]


class MultiheadAttention(Module):
    """Attention over num_heads subspaces of embed_dim: softmax(Q K^T / sqrt(d) + mask) V per head,
    heads concatenated and projected by out_proj.

    Parameters as PyTorch's: `in_proj_weight` (3E, E) and `in_proj_bias` (3E) when
    kdim == vdim == embed_dim, else `q_proj_weight` (E, E), `k_proj_weight` (E, kdim),
    `v_proj_weight` (E, vdim); `out_proj` (a Linear); `bias_k`, `bias_v` (1, 1, E) with
    add_bias_kv. Initialised as PyTorch: xavier_uniform_ input projections, zero biases.
    Inputs are (L, N, E) ((N, L, E) with batch_first, (L, E) unbatched). Bool masks: True means
    the position is blocked (PyTorch's MultiheadAttention convention); float masks are added.

    >>> mha = MultiheadAttention(16, 4, batch_first=True)
    >>> x = retrograd.randn(2, 5, 16)
    >>> out, weights = mha(x, x, x)   # out (2, 5, 16), weights (2, 5, 5)
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device=None,
        dtype=None,
        generator=None,
    ) -> None:
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(
                f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and "
                f"num_heads={num_heads} instead"
            )
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        self.generator = generator  # dropout masks are drawn from it (the default one if None)
        if self.head_dim * num_heads != self.embed_dim:
            raise AssertionError("embed_dim must be divisible by num_heads")
        if not self._qkv_same_embed_dim:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, **kw))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, **kw))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, **kw))
            self.in_proj_weight = None
        else:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, **kw))
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        self.in_proj_bias = Parameter(empty(3 * embed_dim, **kw)) if bias else None
        if add_bias_kv:
            self.bias_k = Parameter(empty(1, 1, embed_dim, **kw))
            self.bias_v = Parameter(empty(1, 1, embed_dim, **kw))
        else:
            self.bias_k = self.bias_v = None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, generator=generator, **kw)
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        g = self.generator
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight, generator=g)
        else:
            init.xavier_uniform_(self.q_proj_weight, generator=g)
            init.xavier_uniform_(self.k_proj_weight, generator=g)
            init.xavier_uniform_(self.v_proj_weight, generator=g)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k, generator=g)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v, generator=g)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """(attn_output, attn_weights): weights averaged over heads (N, L, S), per head
        (N, H, L, S) with average_attn_weights=False, None with need_weights=False (which runs the
        fused scaled_dot_product_attention)."""
        return _mha(
            query,
            key,
            value,
            self.embed_dim,
            self.num_heads,
            self.in_proj_weight,
            self.in_proj_bias,
            self.bias_k,
            self.bias_v,
            self.add_zero_attn,
            self.dropout,
            self.out_proj.weight,
            self.out_proj.bias,
            self.training,
            key_padding_mask,
            need_weights,
            attn_mask,
            not self._qkv_same_embed_dim,
            self.q_proj_weight,
            self.k_proj_weight,
            self.v_proj_weight,
            None,
            None,
            average_attn_weights,
            is_causal,
            self.batch_first,
            self.generator,
        )

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
            f"batch_first={self.batch_first}"
        )
