"""The functional form of every layer: `import retrograd.nn.functional as F`.

Activations, softmax, pad and one_hot are the ops of `retrograd.ops`; the layers' fused
primitives (linear, layer_norm, rms_norm, batch_norm, embedding) live in
`retrograd/ops/normalization.py`; dropout and normalize are written here from ops.

>>> import retrograd.nn.functional as F
>>> y = F.relu(F.linear(x, w, b))
"""

from __future__ import annotations

from retrograd import backend
from retrograd.ops import (
    celu,
    elu,
    gelu,
    hardsigmoid,
    hardswish,
    hardtanh,
    leaky_relu,
    log_softmax,
    logsigmoid,
    mish,
    one_hot,
    pad,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    softmax,
    softplus,
    softsign,
    tanh,
    tanhshrink,
)
from retrograd.ops.linalg import vector_norm
from retrograd.ops.mutation import inplace as _write_inplace
from retrograd.ops.normalization import (
    batch_norm,
    bilinear,
    layer_norm,
    linear,
    rms_norm,
)
from retrograd.ops.normalization import embedding as _embedding
from retrograd.tensor import Tensor

__all__ = [
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "mish",
    "softplus",
    "hardtanh",
    "hardsigmoid",
    "hardswish",
    "softsign",
    "tanhshrink",
    "sigmoid",
    "tanh",
    "logsigmoid",
    "softmax",
    "log_softmax",
    "softmin",
    "pad",
    "one_hot",
    "linear",
    "bilinear",
    "dropout",
    "layer_norm",
    "rms_norm",
    "batch_norm",
    "embedding",
    "normalize",
]


def softmin(input: Tensor, dim: int, dtype=None) -> Tensor:
    """softmax(-input) along dim."""
    return softmax(-input, dim, dtype)


def dropout(
    input: Tensor,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    generator: backend.Generator | None = None,
) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (training only).

    The mask is drawn from `generator` (retrograd's default generator when None, seeded by
    `retrograd.manual_seed`).
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    x = input.data
    if p == 1.0:
        scale = backend.get_xp(x).zeros(x.shape, dtype=x.dtype)
    else:
        dtype = x.dtype if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else "float64"
        keep = backend.rng(generator).random(x.shape, dtype=dtype) >= p
        scale = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
        scale = backend.to_device(scale, backend.device_of(x))
    out = input * Tensor._make(scale, False, None, 0)
    return _write_inplace(input, out) if inplace else out


def embedding(
    input: Tensor,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of weight picked by the integer indices in input.

    padding_idx: that row gets no gradient. max_norm: the picked rows whose norm exceeds it are
    renormalised in place first (as in PyTorch, this changes weight).
    """
    num = weight.data.shape[0]
    if padding_idx is not None:
        if padding_idx > 0 and padding_idx >= num:
            raise AssertionError("Padding_idx must be within num_embeddings")
        if padding_idx < 0:
            if padding_idx < -num:
                raise AssertionError("Padding_idx must be within num_embeddings")
            padding_idx = num + padding_idx
    if sparse:
        raise NotImplementedError("sparse gradients are not supported: use sparse=False")
    if max_norm is not None:
        _embedding_renorm_(weight, input, max_norm, norm_type)
    return _embedding(input, weight, padding_idx, scale_grad_by_freq)


def _embedding_renorm_(weight: Tensor, input: Tensor, max_norm: float, norm_type: float) -> None:
    """Scale the rows of weight named in input down to norm max_norm (in place, no graph)."""
    w = weight.data
    xp = backend.get_xp(w)
    rows = xp.unique(input.data.reshape(-1))
    if rows.size == 0:
        return
    picked = w[rows]
    norms = (xp.abs(picked) ** norm_type).sum(axis=1) ** (1.0 / norm_type)
    over = norms > max_norm
    if bool(over.any()):
        scale = max_norm / (norms[over] + 1e-7)
        w[rows[over]] = picked[over] * scale[:, None].astype(w.dtype)
        weight._version[0] += 1


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None) -> Tensor:
    """input / max(||input||_p, eps) along dim."""
    if out is not None:
        raise NotImplementedError("normalize(out=...) is not supported")
    denom = vector_norm(input, p, dim, keepdim=True).clamp(min=eps)
    return input / denom


from retrograd.ops.attention import (  # noqa: E402
    multi_head_attention_forward,
    scaled_dot_product_attention,
)

__all__ += ["scaled_dot_product_attention", "multi_head_attention_forward"]

from retrograd.ops.conv import (  # noqa: E402
    conv1d,
    conv2d,
    conv_transpose1d,
    conv_transpose2d,
    fold,
    unfold,
)

__all__ += ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "unfold", "fold"]

from retrograd.ops.pooling import (  # noqa: E402
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    avg_pool1d,
    avg_pool2d,
    dropout2d,
    group_norm,
    instance_norm,
    interpolate,
    max_pool1d,
    max_pool2d,
    pixel_shuffle,
    pixel_unshuffle,
    upsample,
)

__all__ += [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "dropout2d",
    "group_norm",
    "instance_norm",
    "interpolate",
    "max_pool1d",
    "max_pool2d",
    "pixel_shuffle",
    "pixel_unshuffle",
    "upsample",
]

# the functional losses (the loss modules stay in retrograd.nn)
from retrograd.nn.losses import (  # noqa: E402
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_similarity,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    margin_ranking_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
    soft_margin_loss,
)

__all__ += [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cosine_similarity",
    "cross_entropy",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "margin_ranking_loss",
    "mse_loss",
    "nll_loss",
    "smooth_l1_loss",
    "soft_margin_loss",
]
