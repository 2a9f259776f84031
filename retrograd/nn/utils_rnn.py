"""Helpers for recurrent models: padded batches (lengths, masks, pad_sequence) and truncated
backprop through time.

A padded batch goes to RNN/LSTM/GRU as `model(padded, hx, lengths=lengths)`: outputs past each
sequence's length are zero and h_n holds each sequence's last valid state, as PyTorch's
pack_padded_sequence / pad_packed_sequence give (no PackedSequence object is needed).

Truncated BPTT carries the state from one chunk of k steps to the next but cuts its history, so
each backward pass runs through at most k steps. `truncated_bptt` is the whole loop; written out:

>>> hx = None
>>> for start in range(0, inputs.shape[0], k):
...     out, hx = model(inputs[start : start + k], hx)
...     loss = loss_fn(out, targets[start : start + k])
...     optimizer.zero_grad()
...     loss.backward()
...     optimizer.step()
...     hx = detach_state(hx)  # the next chunk starts from this state, not from its history
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from retrograd.backend import get_xp
from retrograd.ops.movement import narrow, pad, stack
from retrograd.tensor import Tensor

__all__ = ["lengths_to_mask", "mask_to_lengths", "pad_sequence", "detach_state", "truncated_bptt"]


def lengths_to_mask(lengths, max_len: int | None = None, batch_first: bool = False) -> Tensor:
    """A bool mask (max_len, N) (batch_first: (N, max_len)), True where t < lengths[n].

    >>> lengths_to_mask([3, 1]).shape
    (3, 2)
    """
    lens = lengths.data if isinstance(lengths, Tensor) else np.asarray(lengths)
    xp = get_xp(lens)
    lens = lens.reshape(-1)
    steps = int(lens.max()) if max_len is None and lens.size else int(max_len or 0)
    mask = xp.arange(steps)[:, None] < lens[None, :]
    if batch_first:
        mask = mask.T.copy()
    return Tensor._make(mask, False, None, 0)


def mask_to_lengths(mask: Tensor, batch_first: bool = False) -> Tensor:
    """The lengths (int64, N) of a prefix mask (L, N) (batch_first: (N, L)): its True counts."""
    data = mask.data if isinstance(mask, Tensor) else mask
    counts = data.astype(bool).sum(axis=1 if batch_first else 0).astype("int64")
    return Tensor._make(counts, False, None, 0)


def pad_sequence(
    sequences: Sequence[Tensor],
    batch_first: bool = False,
    padding_value: float = 0.0,
    padding_side: str = "right",
) -> Tensor:
    """Stack sequences of shapes (L_i, *) into (L_max, N, *) (batch_first: (N, L_max, *)),
    padded with padding_value (differentiable w.r.t. the sequences), as PyTorch's."""
    if padding_side not in ("left", "right"):
        raise ValueError(
            f"Expected padding_side to be one of left or right, but got {padding_side}."
        )
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    steps = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        extra = steps - s.shape[0]
        pairs = (0, 0) * (s.ndim - 1) + ((0, extra) if padding_side == "right" else (extra, 0))
        padded.append(pad(s, pairs, value=padding_value) if extra else s)
    return stack(padded, 0 if batch_first else 1)


def detach_state(state):
    """The state with its history cut: Tensors detached, tuples/lists (LSTM's (h, c)) walked."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    return state


def truncated_bptt(
    model: Callable,
    inputs: Tensor,
    targets: Tensor,
    k: int,
    loss_fn: Callable,
    optimizer=None,
    hx=None,
    batch_first: bool = False,
):
    """Run `model` over `inputs` in chunks of k time steps with truncated backprop through time.

    model(chunk, hx) -> (output, hx) (an RNN/LSTM/GRU, or a Module wrapping one with a head);
    each chunk's loss_fn(output, targets chunk) is backpropagated through that chunk only: the
    carried state is detached at every boundary. With an optimizer: zero_grad, backward, step
    per chunk; without one the gradients of all chunks accumulate in .grad.
    Returns (the chunk losses as floats, the final state, detached).

    >>> losses, hx = truncated_bptt(lstm_model, x, y, k=35, loss_fn=F.cross_entropy, optimizer=opt)
    """
    if k <= 0:
        raise ValueError(f"k must be a positive number of time steps, got {k}")
    dim = 1 if batch_first else 0
    steps = inputs.shape[dim]
    losses = []
    for start in range(0, steps, k):
        size = min(k, steps - start)
        x = narrow(inputs, dim, start, size)
        y = narrow(targets, dim, start, size)
        if optimizer is not None:
            optimizer.zero_grad()
        out, hx = model(x, hx)
        loss = loss_fn(out, y)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        losses.append(float(loss.item()))
        hx = detach_state(hx)
    return losses, hx
