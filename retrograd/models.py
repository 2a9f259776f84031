"""Small model builders the examples and `retrograd train` share: a CNN for small images and
two character-level language models (an LSTM and a causal Transformer).

>>> net = cnn(in_channels=1, n_classes=10, image_size=28)     # Fashion-MNIST-sized
>>> lm = CharLSTM(vocab_size=96)
>>> lm(retrograd.zeros(2, 16, dtype=retrograd.int64)).shape    # (N, L, vocab_size) logits
(2, 16, 96)
"""

from __future__ import annotations

import numpy as np

from retrograd import backend, nn
from retrograd.autograd.grad_mode import no_grad
from retrograd.creation import from_numpy
from retrograd.nn.layers.recurrent import LSTM
from retrograd.ops.attention import causal_mask
from retrograd.tensor import Tensor

__all__ = ["cnn", "CharLSTM", "CharTransformer", "sample_next"]


def cnn(
    in_channels: int = 1,
    n_classes: int = 10,
    image_size: int = 28,
    channels: tuple[int, int] = (16, 32),
    batch_norm: bool = True,
) -> nn.Sequential:
    """Two conv -> BatchNorm2d -> ReLU -> 2x2 max-pool blocks, then one linear layer, as an
    nn.Sequential (`batch_norm=False`: conv with bias -> ReLU -> max-pool).

    Images of 20 pixels or more get 5x5 'valid' convolutions (28 -> 24 -> 12 -> 8 -> 4), smaller
    ones 3x3 'same' convolutions (8 -> 8 -> 4 -> 4 -> 2). Square images of side `image_size`.

    >>> cnn(1, 10, 8)(retrograd.zeros(4, 1, 8, 8)).shape
    (4, 10)
    """
    c1, c2 = channels
    kernel, padding = (5, 0) if image_size >= 20 else (3, 1)
    side = image_size
    for _ in range(2):
        side = (side + 2 * padding - kernel + 1) // 2
    if side < 1:
        raise ValueError(f"image_size={image_size} is too small for two conv + pool blocks")
    layers = []
    for c_in, c_out in ((in_channels, c1), (c1, c2)):
        layers.append(nn.Conv2d(c_in, c_out, kernel, padding=padding, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c2 * side * side, n_classes))


def sample_next(logits, temperature: float = 1.0, generator=None) -> int:
    """One index drawn from softmax(logits / temperature) (a 1-D array or Tensor of logits);
    temperature 0 takes the argmax."""
    z = backend.to_numpy(logits.data if isinstance(logits, Tensor) else logits)
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    if temperature <= 0:
        return int(z.argmax())
    z = (z - z.max()) / temperature
    p = np.exp(z)
    p /= p.sum()
    return int(backend.rng(generator).choice(len(p), p=p))


def _ids(ids) -> Tensor:
    return from_numpy(np.asarray(ids, dtype=np.int64).reshape(1, -1))


class CharLSTM(nn.Module):
    """Embedding -> LSTM -> Linear: next-character logits at every position.

    >>> lm = CharLSTM(vocab_size=50, embed_dim=32, hidden_size=64)
    >>> lm(retrograd.zeros(2, 10, dtype=retrograd.int64)).shape
    (2, 10, 50)
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = LSTM(
            embed_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward_with_state(self, idx: Tensor, state=None):
        """(logits (N, L, vocab_size), (h, c)) from int64 indices (N, L) and an optional state."""
        out, state = self.lstm(self.embedding(idx), state)
        return self.head(out), state

    def forward(self, idx: Tensor) -> Tensor:
        """Next-character logits (N, L, vocab_size) for int64 indices (N, L)."""
        return self.forward_with_state(idx)[0]

    def generate(self, prompt, n_chars: int, temperature: float = 1.0, generator=None) -> list:
        """`n_chars` indices sampled one at a time after the prompt's indices (carrying the LSTM
        state, so each step costs one time step)."""
        was_training = self.training
        self.eval()
        out = []
        with no_grad():
            logits, state = self.forward_with_state(_ids(prompt))
            for _ in range(n_chars):
                nxt = sample_next(logits[0, -1], temperature, generator)
                out.append(nxt)
                logits, state = self.forward_with_state(_ids([nxt]), state)
        self.train(was_training)
        return out


class CharTransformer(nn.Module):
    """A decoder-only (causal) Transformer: token and learned position embeddings, pre-norm
    encoder layers under a causal mask, a final LayerNorm and a linear head.

    >>> lm = CharTransformer(vocab_size=50, d_model=32, nhead=4, num_layers=1, block_size=16)
    >>> lm(retrograd.zeros(2, 10, dtype=retrograd.int64)).shape
    (2, 10, 50)
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int | None = None,
        block_size: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, block_size
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.position = nn.LearnedPositionalEmbedding(block_size, d_model, batch_first=True)
        layer = nn.TransformerEncoderLayer(
            d_model,
            nhead,
            dim_feedforward or 4 * d_model,
            dropout=dropout,
            activation="relu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        self._masks: dict = {}

    def _mask(self, length: int) -> Tensor:
        if length not in self._masks:
            self._masks[length] = causal_mask(length, dtype=backend.get_default_dtype())
        return self._masks[length]

    def forward(self, idx: Tensor) -> Tensor:
        """Next-character logits (N, L, vocab_size) for int64 indices (N, L), L <= block_size."""
        length = idx.shape[1]
        x = self.position(self.embedding(idx))
        x = self.encoder(x, mask=self._mask(length), is_causal=True)
        return self.head(self.norm(x))

    def generate(self, prompt, n_chars: int, temperature: float = 1.0, generator=None) -> list:
        """`n_chars` indices sampled one at a time after the prompt's indices, each step reading
        the last `block_size` characters."""
        was_training = self.training
        self.eval()
        context = [int(i) for i in prompt]
        out = []
        with no_grad():
            for _ in range(n_chars):
                logits = self(_ids(context[-self.block_size :]))
                nxt = sample_next(logits[0, -1], temperature, generator)
                out.append(nxt)
                context.append(nxt)
        self.train(was_training)
        return out
