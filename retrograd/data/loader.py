"""DataLoader: batches from a dataset, shuffled by a Generator, resumable mid-epoch.

Batches are collated by PyTorch's `default_collate` rules. A dataset with array storage
(`TensorDataset`, and `Subset`/`ConcatDataset`/`TransformedDataset` of one) hands over a whole
batch in one fancy index per tensor, so loading never loops over samples in Python.
"""

from __future__ import annotations

import collections.abc
import copy
import math

import numpy as np

from retrograd import backend
from retrograd.backend import Generator
from retrograd.creation import from_numpy
from retrograd.tensor import Tensor

__all__ = ["DataLoader", "default_collate", "default_convert"]

_COLLATE_ERROR = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"
)


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _numpy_array(x) -> np.ndarray:
    if x.dtype.kind in "OSUV":  # strings and objects have no tensor form
        raise TypeError(_COLLATE_ERROR.format(x.dtype))
    return x


def default_collate(batch):
    """Stack a list of samples into a batch, by PyTorch's rules.

    Tensors and NumPy arrays are stacked (dtype kept); Python ints become int64, bools bool and
    floats the default float dtype (float32; PyTorch uses float64); strings stay a list; dicts,
    tuples, lists and namedtuples are collated field by field (a tuple gives a list, as in
    PyTorch). Tensors are stacked outside the graph.

    >>> default_collate([(1.0, 2), (3.0, 4)])
    [tensor([1., 3.]), tensor([2, 4])]
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        shape = elem.shape
        for i, t in enumerate(batch):
            if t.shape != shape:
                raise RuntimeError(
                    "stack expects each tensor to be equal size, but got "
                    f"{list(shape)} at entry 0 and {list(t.shape)} at entry {i}"
                )
        xp = backend.get_xp(elem.data)
        return Tensor(xp.stack([t.data for t in batch]))
    if isinstance(elem, np.ndarray):
        _numpy_array(elem)
        return default_collate([from_numpy(b) for b in batch])
    if isinstance(elem, np.generic) and not isinstance(elem, (np.str_, np.bytes_)):
        return from_numpy(_numpy_array(np.asarray(batch)))
    if isinstance(elem, bool):
        return from_numpy(np.asarray(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return from_numpy(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, float):
        return from_numpy(np.asarray(batch, dtype=backend.get_default_dtype()))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        fields = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update(fields)
                return clone
            return type(elem)(fields)
        except TypeError:  # a mapping type that can't be built from a dict
            return fields
    if _is_namedtuple(elem):
        return type(elem)(*(default_collate(s) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if not all(len(e) == size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        transposed = list(zip(*batch))  # tuples: a batch of strings stays a tuple
        if isinstance(elem, tuple):
            return [default_collate(s) for s in transposed]
        try:
            if isinstance(elem, collections.abc.MutableSequence):
                clone = copy.copy(elem)
                for i, samples in enumerate(transposed):
                    clone[i] = default_collate(samples)
                return clone
            return type(elem)([default_collate(s) for s in transposed])
        except TypeError:  # a sequence type that can't be built from a list
            return [default_collate(s) for s in transposed]
    raise TypeError(_COLLATE_ERROR.format(type(elem)))


def default_convert(data):
    """Turn NumPy arrays (also inside dicts, tuples and lists) into Tensors; leave the rest."""
    if isinstance(data, np.ndarray) and data.dtype.kind not in "OSUV":
        return from_numpy(data)
    if isinstance(data, np.generic) and data.dtype.kind not in "OSUV":
        return from_numpy(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return type(data)({k: default_convert(v) for k, v in data.items()})
    if _is_namedtuple(data):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, list):
        return [default_convert(d) for d in data]
    return data


class DataLoader:
    """Iterate over a dataset in batches.

    Shuffling draws one permutation per epoch from `generator` (the default generator when
    None, so `retrograd.manual_seed` makes it reproducible). `state_dict()` captures where an
    epoch stands; after `load_state_dict()` the next iteration continues with the same order.

    >>> g = Generator().manual_seed(0)
    >>> loader = DataLoader(train, batch_size=64, shuffle=True, generator=g)
    >>> for x, y in loader:
    ...     loss = F.cross_entropy(model(x), y)
    """

    def __init__(
        self,
        dataset,
        batch_size: int | None = 1,
        shuffle: bool | None = False,
        drop_last: bool = False,
        collate_fn=None,
        generator: Generator | None = None,
    ) -> None:
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0
        ):
            raise ValueError(
                f"batch_size should be a positive integer value, but got batch_size={batch_size}"
            )
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        if batch_size is None and drop_last:
            raise ValueError(
                "batch_size=None option disables auto-batching and is mutually exclusive with "
                "drop_last"
            )
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError(
                f"generator must be a retrograd Generator, got {type(generator).__name__}"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = drop_last
        self.collate_fn = collate_fn
        self.generator = generator
        self._epoch = 0  # epochs completed
        self._iterator: _LoaderIterator | None = None  # the latest iterator, for state_dict
        self._resume: dict | None = None

    def __len__(self) -> int:
        n = len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> _LoaderIterator:
        self._iterator = _LoaderIterator(self)
        return self._iterator

    def _generator(self) -> Generator:
        return self.generator if self.generator is not None else backend.default_generator

    def _fetch(self, indices: np.ndarray):
        dataset = self.dataset
        if self.batch_size is None:
            sample = dataset[int(indices[0])]
            return default_convert(sample) if self.collate_fn is None else self.collate_fn(sample)
        if self.collate_fn is None and hasattr(dataset, "get_batch"):
            batch = dataset.get_batch(indices)
            if batch is not None:
                return batch
        index_list = indices.tolist()
        if callable(getattr(dataset, "__getitems__", None)):
            samples = dataset.__getitems__(index_list)
        else:
            samples = [dataset[i] for i in index_list]
        return (self.collate_fn or default_collate)(samples)

    # -- resuming ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Where the loader stands (JSON-serialisable): epochs completed, batches already yielded
        in the current epoch, and the generator states that reproduce its order."""
        it = self._iterator
        in_progress = it is not None and 0 < it.position < it.total
        # every batch yielded but the loop not yet ended: the epoch counts as complete
        complete = it is not None and it.total > 0 and it.position >= it.total and not it.finished
        state = {
            "epoch": self._epoch + int(complete),
            "batches_done": it.position if in_progress else 0,
            "epoch_generator_state": None,
            "generator_state": None,
        }
        if self.shuffle:
            state["generator_state"] = self._generator().get_state()
            if in_progress:
                state["epoch_generator_state"] = it.epoch_state
        return state

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()`: the generator is put back at once, and the next
        iteration yields the batches that were left (the same order)."""
        self._epoch = int(state.get("epoch", 0))
        self._iterator = None
        if self.shuffle and state.get("generator_state") is not None:
            self._generator().set_state(state["generator_state"])
        done = int(state.get("batches_done", 0))
        self._resume = dict(state) if done > 0 else None


class _LoaderIterator:
    """One epoch over a DataLoader."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        n = len(loader.dataset)
        resume, loader._resume = loader._resume, None
        self.epoch_state = None
        if loader.shuffle:
            gen = loader._generator()
            if resume is not None and resume.get("epoch_generator_state") is not None:
                # redraw the interrupted epoch's permutation, then put the generator back
                now = gen.get_state()
                self.epoch_state = resume["epoch_generator_state"]
                gen.set_state(self.epoch_state)
                self.order = gen.numpy.permutation(n)
                gen.set_state(now)
            else:
                self.epoch_state = gen.get_state()
                self.order = gen.numpy.permutation(n)
        else:
            self.order = np.arange(n)
        self.step = 1 if loader.batch_size is None else loader.batch_size
        self.total = len(loader)
        self.position = 0 if resume is None else min(int(resume["batches_done"]), self.total)
        self.finished = False

    def __iter__(self) -> _LoaderIterator:
        return self

    def __len__(self) -> int:
        return self.total

    def __next__(self):
        if self.position >= self.total:
            if not self.finished:
                self.finished = True
                if self.loader._iterator is self:
                    self.loader._epoch += 1
            raise StopIteration
        start = self.position * self.step
        batch = self.loader._fetch(self.order[start : start + self.step])
        self.position += 1
        return batch
