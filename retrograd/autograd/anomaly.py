"""Anomaly detection: the first gradient rule that produces NaN or Inf raises, naming the node and
showing the forward traceback of the op that created it."""

from __future__ import annotations

from retrograd.autograd.grad_mode import _DecoratorContextManager, _state
from retrograd.backend import get_xp

__all__ = ["detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled", "check_node_output"]


def is_anomaly_enabled() -> bool:
    return _state.anomaly


class detect_anomaly(_DecoratorContextManager):
    """Inside the block, backward checks every rule's output for NaN/Inf.

    >>> with retrograd.autograd.detect_anomaly():
    ...     loss.backward()
    """

    _bare_decorator_ok = False

    def __init__(self, check_nan: bool = True) -> None:
        self.check_nan = check_nan

    def __enter__(self) -> None:
        self.prev = _state.anomaly
        _state.anomaly = self.check_nan

    def __exit__(self, *exc) -> None:
        _state.anomaly = self.prev

    def clone(self):
        return self.__class__(self.check_nan)


class set_detect_anomaly(detect_anomaly):
    """Turn anomaly detection on or off; takes effect at once, and restores as a context."""

    def __init__(self, mode: bool) -> None:
        self.prev = _state.anomaly
        self.check_nan = bool(mode)
        _state.anomaly = self.check_nan

    def __enter__(self) -> None:
        pass


def check_node_output(node, grads) -> None:
    """Raise PyTorch's error if a rule returned NaN or Inf in any gradient."""
    for i, g in enumerate(grads):
        if g is None:
            continue
        data = getattr(g, "data", g) if not hasattr(g, "__array_interface__") else g
        xp = get_xp(data)
        bad = None
        if xp.isnan(data).any():
            bad = "nan"
        elif xp.isinf(data).any():
            bad = "inf"
        if bad:
            trace = "".join(
                node._trace or ["(no forward trace: the op ran outside anomaly mode)\n"]
            )
            raise RuntimeError(
                f"Function '{node.name()}' returned {bad} values in its {i}th output.\n"
                f"Traceback of the forward call that caused the error:\n{trace}"
            )
