"""Map-style datasets with PyTorch's semantics: Dataset, TensorDataset, Subset, ConcatDataset.

A dataset that stores its samples as arrays also offers `get_batch(indices)`: the whole batch in
one fancy index, already collated. `DataLoader` takes that path when it can, so batching costs
one gather per tensor instead of a Python loop over samples.
"""

from __future__ import annotations

import bisect
import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np

from retrograd import backend
from retrograd.creation import as_tensor, from_numpy
from retrograd.tensor import Tensor

__all__ = [
    "Dataset",
    "TensorDataset",
    "Subset",
    "ConcatDataset",
    "TransformedDataset",
    "random_split",
]


class Dataset:
    """A map from indices to samples: subclasses define `__getitem__` and `__len__`.

    >>> class Squares(Dataset):
    ...     def __len__(self):
    ...         return 10
    ...     def __getitem__(self, i):
    ...         return float(i), float(i * i)
    """

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __len__(self) -> int:
        raise NotImplementedError("Subclasses of Dataset should implement __len__.")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


def _wrap(array) -> Tensor:
    """A tensor around an array (NumPy or, for data already on a GPU, CuPy) without a copy."""
    return from_numpy(array) if isinstance(array, np.ndarray) else Tensor(array)


def _index_array(indices) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        if idx.size == 0:
            return idx.astype(np.int64)
        raise TypeError(f"batch indices must be integers, got dtype {idx.dtype}")
    return idx


class TensorDataset(Dataset):
    """Samples are the rows of tensors sharing their first dimension (NumPy arrays accepted).

    >>> ds = TensorDataset(retrograd.randn(100, 3), retrograd.zeros(100, dtype=retrograd.int64))
    >>> x, y = ds[0]
    """

    tensors: tuple[Tensor, ...]

    def __init__(self, *tensors) -> None:
        tensors = tuple(t if isinstance(t, Tensor) else as_tensor(t) for t in tensors)
        for t in tensors:
            if t.ndim == 0:
                raise ValueError("TensorDataset needs tensors with a first (sample) dimension")
        if not all(tensors[0].shape[0] == t.shape[0] for t in tensors):
            # PyTorch asserts this; the same type and message, without depending on `assert`
            raise AssertionError("Size mismatch between tensors")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0] if self.tensors else 0

    def get_batch(self, indices) -> list[Tensor]:
        """The collated batch of `indices` (one gather per tensor, a copy, outside any graph)."""
        idx = _index_array(indices)
        return [_wrap(t.data[idx]) for t in self.tensors]


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: list[int]) -> list:
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def get_batch(self, indices):
        """The collated batch, or None when the wrapped dataset has no array storage."""
        if not hasattr(self.dataset, "get_batch"):
            return None
        return self.dataset.get_batch(self._index_array()[_index_array(indices)])

    def _index_array(self) -> np.ndarray:
        # converting a long index list costs more than the gather: keep the array while
        # `indices` is the same object of the same length
        cached = self.__dict__.get("_cached_indices")
        if cached is None or cached[0] is not self.indices or len(cached[1]) != len(self.indices):
            cached = (self.indices, np.asarray(self.indices, dtype=np.int64))
            self._cached_indices = cached
        return cached[1]


class ConcatDataset(Dataset):
    """The datasets one after another.

    >>> both = ConcatDataset([train, extra])   # or: train + extra
    """

    @staticmethod
    def cumsum(sequence) -> list[int]:
        r, s = [], 0
        for e in sequence:
            s += len(e)
            r.append(s)
        return r

    def __init__(self, datasets) -> None:
        self.datasets = list(datasets)
        if len(self.datasets) == 0:
            raise AssertionError("datasets should not be an empty iterable")
        self.cumulative_sizes = self.cumsum(self.datasets)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        dataset_idx = bisect.bisect_right(self.cumulative_sizes, idx)
        if dataset_idx >= len(self.datasets):
            raise IndexError(f"index {idx} is out of range for a dataset of size {len(self)}")
        sample_idx = idx if dataset_idx == 0 else idx - self.cumulative_sizes[dataset_idx - 1]
        return self.datasets[dataset_idx][sample_idx]

    def get_batch(self, indices):
        """The collated batch when every part stores arrays (else None): one gather per part."""
        idx = _index_array(indices)
        idx = np.where(idx < 0, idx + len(self), idx)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"index out of range for a dataset of size {len(self)}")
        which = np.searchsorted(self.cumulative_sizes, idx, side="right")
        starts = np.asarray([0, *self.cumulative_sizes[:-1]])
        positions, parts = [], []
        for d in np.unique(which):
            dataset = self.datasets[d]
            sel = np.flatnonzero(which == d)
            part = (
                dataset.get_batch(idx[sel] - starts[d]) if hasattr(dataset, "get_batch") else None
            )
            if not isinstance(part, (list, tuple)) or not all(isinstance(t, Tensor) for t in part):
                return None
            positions.append(sel)
            parts.append(part)
        if not parts:
            return None
        if len(parts) == 1:
            return list(parts[0])
        if any(len(p) != len(parts[0]) for p in parts):
            return None
        order = np.argsort(np.concatenate(positions), kind="stable")
        return [
            _wrap(np.concatenate([backend.to_numpy(p[k].data) for p in parts])[order])
            for k in range(len(parts[0]))
        ]


class TransformedDataset(Dataset):
    """`dataset` with `transform` applied to each sample's input (and `target_transform` to its
    target). Batches from `get_batch` are transformed in one vectorised call (`transform.batch`).

    >>> train = TransformedDataset(train, transforms.RandomShift(1, generator=g))
    """

    def __init__(self, dataset, transform=None, target_transform=None) -> None:
        self.dataset = dataset
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        sample = list(self.dataset[index])
        if self.transform is not None:
            sample[0] = self.transform(sample[0])
        if self.target_transform is not None and len(sample) > 1:
            sample[1] = self.target_transform(sample[1])
        return tuple(sample)

    def get_batch(self, indices):
        """The collated, transformed batch, or None when the wrapped dataset has no arrays."""
        batch = self.dataset.get_batch(indices) if hasattr(self.dataset, "get_batch") else None
        if batch is None:
            return None
        batch = list(batch)
        for pos, fn in ((0, self.transform), (1, self.target_transform)):
            if fn is not None and pos < len(batch):
                batch[pos] = _apply_batch(fn, batch[pos])
        return batch


def _apply_batch(fn, batch: Tensor) -> Tensor:
    """Apply a transform to a whole batch: vectorised when it has `.batch`, else per sample."""
    if hasattr(fn, "batch"):
        out = fn.batch(batch)
    else:
        out = [fn(batch[i]) for i in range(len(batch))]
        out = np.stack([np.asarray(o.data if isinstance(o, Tensor) else o) for o in out])
    return out if isinstance(out, Tensor) else from_numpy(np.asarray(out))


def random_split(dataset, lengths, generator=None) -> list[Subset]:
    """Split into non-overlapping Subsets of the given lengths (or fractions summing to 1).

    >>> train, val = random_split(data, [0.8, 0.2], generator=Generator().manual_seed(0))
    """
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        subset_lengths: list[int] = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            subset_lengths.append(int(math.floor(len(dataset) * frac)))
        remainder = len(dataset) - sum(subset_lengths)
        # add 1 to the lengths round-robin until nothing remains, as PyTorch does
        for i in range(remainder):
            subset_lengths[i % len(subset_lengths)] += 1
        lengths = subset_lengths
        for i, length in enumerate(lengths):
            if length == 0:
                warnings.warn(
                    f"Length of split at index {i} is 0. This might result in an empty dataset.",
                    stacklevel=2,
                )
    if sum(lengths) != len(dataset):
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    indices = backend.rng(generator).permutation(sum(lengths)).tolist()
    return [
        Subset(dataset, indices[offset - length : offset])
        for offset, length in zip(itertools.accumulate(lengths), lengths)
    ]
