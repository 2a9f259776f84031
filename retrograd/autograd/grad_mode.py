"""Grad mode: whether ops record the graph. Thread-local, as in PyTorch."""

from __future__ import annotations

import functools
import threading


class _State(threading.local):
    def __init__(self) -> None:
        self.enabled = True
        self.inference = False
        self.anomaly = False
        self.forward_ad = False  # the active dual level (retrograd.autograd.forward_ad)


_state = _State()


def is_grad_enabled() -> bool:
    return _state.enabled


def is_inference_mode_enabled() -> bool:
    return _state.inference


class _DecoratorContextManager:
    """A context manager that also works as a decorator (`@no_grad()` or `@no_grad`)."""

    def __new__(cls, *args, **kwargs):
        # `@no_grad` without parentheses: the function arrives as the only argument
        if len(args) == 1 and callable(args[0]) and not kwargs and cls._bare_decorator_ok:
            return cls()(args[0])
        return super().__new__(cls)

    _bare_decorator_ok = True

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.clone():
                return fn(*args, **kwargs)

        return wrapper

    def clone(self):
        return self.__class__()


class no_grad(_DecoratorContextManager):
    """Disable graph recording inside the block.

    >>> with retrograd.no_grad():
    ...     y = x * 2   # y.requires_grad is False
    """

    def __enter__(self) -> None:
        self.prev = _state.enabled
        _state.enabled = False

    def __exit__(self, *exc) -> None:
        _state.enabled = self.prev


class enable_grad(_DecoratorContextManager):
    """Enable graph recording inside the block (e.g. inside `no_grad`)."""

    def __enter__(self) -> None:
        self.prev = _state.enabled
        _state.enabled = True

    def __exit__(self, *exc) -> None:
        _state.enabled = self.prev


class set_grad_enabled(_DecoratorContextManager):
    """Set grad mode on or off; takes effect at once, and as a context manager restores it."""

    _bare_decorator_ok = False

    def __init__(self, mode: bool) -> None:
        self.prev = _state.enabled
        self.mode = bool(mode)
        _state.enabled = self.mode

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc) -> None:
        _state.enabled = self.prev

    def clone(self):
        return self.__class__(self.mode)


class inference_mode(_DecoratorContextManager):
    """Like `no_grad`, for code that will never need gradients (`inference_mode(False)`: no-op)."""

    _bare_decorator_ok = True

    def __init__(self, mode: bool = True) -> None:
        self.mode = bool(mode)

    def __enter__(self) -> None:
        self.prev = (_state.enabled, _state.inference)
        if self.mode:
            _state.enabled = False
            _state.inference = True

    def __exit__(self, *exc) -> None:
        _state.enabled, _state.inference = self.prev

    def clone(self):
        return self.__class__(self.mode)
