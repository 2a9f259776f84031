"""Indexing: getitem (basic and advanced), index_select, gather/scatter, masked_fill,
take_along_dim, one_hot."""

from __future__ import annotations

from retrograd.autograd.function import Function
from retrograd.ops import dual
from retrograd.tensor import Tensor

__all__ = ["getitem", "index_put_zeros"]


def _raw_index(index):
    """Replace Tensors inside an index by their arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list) and any(isinstance(i, Tensor) for i in index):
        return [i.data if isinstance(i, Tensor) else i for i in index]
    return index


def _is_basic(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items)


class GetItem(Function):
    """out = x[index];  gx = zeros with g added at index (repeated indices accumulate)"""

    raw = True

    def forward(self, x, index):
        self.in_shape, self.index = x.shape, index
        return x[index]

    def backward(self, g):
        return dual.pad_into(g, self.in_shape, self.index)


class GetItemView(GetItem):
    """out = x[basic index] (a view);  gx = zeros with g placed at index"""

    is_view = True


def getitem(x, index) -> Tensor:
    """x[index]: ints, slices, Ellipsis, None, integer arrays and boolean masks."""
    index = _raw_index(index)
    try:
        if _is_basic(index):
            return GetItemView.apply(x, index=index)
        return GetItem.apply(x, index=index)
    except IndexError as e:
        raise IndexError(str(e)) from None


class IndexPutZeros(Function):
    """out = zeros(shape) with g added at index;  gg = out_grad[index]"""

    raw = True

    def forward(self, g, shape, index):
        self.index = index
        return dual.pad_into(g, shape, index)

    def backward(self, gg):
        return gg[self.index]


def index_put_zeros(g, shape, index) -> Tensor:
    """A zero tensor of `shape` with g accumulated at `index` (the rule of getitem)."""
    return IndexPutZeros.apply(g, shape=tuple(shape), index=index)
