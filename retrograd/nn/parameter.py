"""Parameter: a Tensor that a Module owns and an optimizer updates (the type is the tag)."""

from __future__ import annotations

from retrograd.tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad by default and is found by `Module.parameters()`.

    >>> w = Parameter(retrograd.randn(3, 2))
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True) -> None:
        if data is None:
            data = []
        source = data.data if isinstance(data, Tensor) else data
        super().__init__(source, requires_grad=False)
        if isinstance(data, Tensor):
            self.data = data.data  # share memory with the tensor it wraps, as PyTorch does
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):  # pragma: no cover - pickling is not supported
        raise TypeError("retrograd never pickles tensors: use retrograd.save / state_dict")
