"""Large arrays that ops hand out again, step after step, once nothing else refers to them.

A fresh NumPy array costs the kernel a page fault on the first write to each page, and the
pages come zeroed: about 3 us for each 4 KiB page here, and for arrays of 4 MiB and up (which
NumPy asks to back with 2 MiB pages) the zeroing of every byte. glibc hands blocks from its mmap
threshold up (64 MiB with retrograd's tuning, backend.MALLOC_PAD) straight back to the system
when they are freed, and smaller ones too where it trims its heap, so a training loop pays
this again at every step for its largest arrays:

- the recurrent loops' buffers (2,500 faults, a quarter of the LSTM forward's time in the
  char-LSTM benchmark W5);
- a large weight's gradient: optimizer.zero_grad() drops it, and the next backward allocates
  it anew (W3's 4096 x 4096 layer: 64 MiB zeroed a step, 7-18 ms of system time).

An array here is free when this cache holds the only reference to it: a node's saved arrays,
a Tensor's data (a parameter's .grad), a gradient on its way and every view (views keep their
base alive) keep it busy. So a gradient that zero_grad() set to None is reused by the next
backward, and one the user still holds is not touched. The cost: memory stays mapped between
steps. With zero_grad(set_to_none=True) (the default) that is the gradient itself; where
gradients are kept and summed into, it is one more array the size of each large weight (the
product before it is added to .grad, freed at once otherwise). NumPy only (CuPy pools its memory
itself). One cache per weight array (`buffers_of`), so that the memory goes with the model that
uses it; at most `limit` bytes a cache, free arrays of the least recently used shapes dropped
first.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections import OrderedDict

from retrograd.backend import device_of, get_xp

__all__ = ["Buffers", "buffers_of", "only_held_by_caller"]


class Buffers:
    """A cache of arrays by (shape, dtype) that hands out the ones nothing else refers to."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._arrays: OrderedDict = OrderedDict()  # (shape, dtype) -> [arrays]
        self._bytes = 0
        self._lock = threading.Lock()

    def empty(self, shape: tuple, dtype, like):
        """An uninitialised array of shape and dtype, on like's device."""
        xp = get_xp(like)
        if device_of(like) != "cpu":
            return xp.empty(shape, dtype=dtype)
        key = (shape, dtype)
        with self._lock:
            arrays = self._arrays.get(key)
            if arrays is not None:
                self._arrays.move_to_end(key)
                k = _free_index(arrays)
                if k is not None:
                    return arrays[k]
            a = xp.empty(shape, dtype=dtype)
            if self._bytes + a.nbytes > self.limit:
                self._drop_free(self._bytes + a.nbytes - self.limit)
            if self._bytes + a.nbytes <= self.limit:
                self._arrays.setdefault(key, []).append(a)
                self._bytes += a.nbytes
            return a

    def _drop_free(self, nbytes: int) -> None:
        """Forget free arrays, least recently used shapes first, until nbytes are dropped."""
        for key in list(self._arrays):
            arrays = self._arrays[key]
            while nbytes > 0:
                k = _free_index(arrays)
                if k is None:
                    break
                size = arrays.pop(k).nbytes
                self._bytes -= size
                nbytes -= size
            if not arrays:
                del self._arrays[key]
            if nbytes <= 0:
                return


def _free_index(arrays: list, refs: int | None = None):
    """The index of the first array in the list that nothing outside the list refers to."""
    refs = _FREE_REFS if refs is None else refs
    for k, a in enumerate(arrays):
        if sys.getrefcount(a) <= refs:
            return k
    return None


def _count_free_refs() -> int:
    """What sys.getrefcount shows in _free_index for an object only its list holds (the list,
    the loop's own references, the argument: measured, as interpreters differ)."""
    probe = [object()]
    refs = 1
    while _free_index(probe, refs) is None:
        refs += 1
    return refs


_FREE_REFS = _count_free_refs()


def only_held_by_caller(a, refs: int, buffers: Buffers | None = None) -> bool:
    """Whether the caller's `refs` references to array a (its locals), and `buffers` if it
    caches a, are all there are: no saved value of a node, no view, no other frame. The caller
    may then write over a, which nothing will read again."""
    held = 0
    if buffers is not None:
        with buffers._lock:
            held = sum(x is a for arrays in buffers._arrays.values() for x in arrays)
    return sys.getrefcount(a) - _CALL_REFS <= refs + held


def _refs_in_call(a, refs=0, buffers=None) -> int:
    """What sys.getrefcount shows in a call shaped as only_held_by_caller's."""
    return sys.getrefcount(a)


def _count_call_refs() -> int:
    """The references a call like only_held_by_caller adds to its argument's count (its
    parameter, getrefcount's argument: measured, as interpreters differ)."""
    probe = object()  # one reference: this local
    return _refs_in_call(probe) - 1


_CALL_REFS = _count_call_refs()


_pools: dict = {}  # id(weight array) -> (weak reference to it, its Buffers)
_pools_lock = threading.Lock()


def buffers_of(w) -> Buffers:
    """The buffer cache that lives as long as the weight array w."""
    key = id(w)
    with _pools_lock:
        entry = _pools.get(key)
        if entry is not None and entry[0]() is w:
            return entry[1]
        pool = Buffers(256 << 20)
        try:
            ref = weakref.ref(w, lambda _, key=key: _pools.pop(key, None))
        except TypeError:  # an array type without weak references: no reuse
            return pool
        _pools[key] = (ref, pool)
        return pool
