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

    def __deepcopy__(self, memo) -> Parameter:
        """A new leaf parameter with a copy of the data (copy.deepcopy of a model)."""
        if id(self) in memo:
            return memo[id(self)]
        if self.grad_fn is not None:
            raise RuntimeError(
                "Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                "protocol at the moment."
            )
        out = Parameter(self.data.copy(), requires_grad=self.requires_grad)
        if self.grad is not None:
            out.grad = Tensor._make(self.grad.data.copy(), False, None, 0)
        memo[id(self)] = out
        return out

    def __reduce_ex__(self, protocol):  # pragma: no cover - pickling is not supported
        raise TypeError("retrograd never pickles tensors: use retrograd.save / state_dict")
