"""Optimizer: the base of every optimizer. It owns param groups, per-parameter state,
`zero_grad`, `step` and `state_dict`; a subclass only says how to start a parameter's state
(`_init_state`) and how to update one parameter (`_update`).

Updates are in-place arithmetic on the parameter's array (`p.data`) through the namespace of the
array (NumPy or CuPy): no graph is built and nothing is allocated per element in Python.
"""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from retrograd import backend
from retrograd.autograd.grad_mode import enable_grad
from retrograd.parallel import parallel_for, threads_for
from retrograd.tensor import Tensor

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, Tensor]]


def _typename(obj) -> str:
    t = type(obj)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _scalar_dtype() -> np.dtype:
    """The dtype of scalar state (`step`), as PyTorch: float64 only when that is the default."""
    return backend.float64 if backend.get_default_dtype() == backend.float64 else backend.float32


def _wrap(array) -> Tensor:
    return Tensor._make(array, False, None, 0)


def _scalar_state(value: float) -> Tensor:
    """A 0-d state tensor on the CPU (steps stay on the host, as in PyTorch)."""
    return _wrap(np.array(value, dtype=_scalar_dtype()))


def _zeros_like(p) -> Tensor:
    return _wrap(backend.get_xp(p).zeros_like(p))


class Optimizer:
    """Base class of all optimizers.

    >>> opt = SGD(model.parameters(), lr=0.1)
    >>> opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    """

    # state entries that are scalars (not shaped like the parameter) and keep their dtype
    _scalar_keys: tuple[str, ...] = ("step",)

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                "dicts, but got " + _typename(params)
            )
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"

    # -- groups --------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (missing ones take the defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        param_group["params"] = params
        if names:
            if len(names) != len(params):
                raise ValueError(
                    "all optimizer params should be with/without names. Some param names are "
                    "missing"
                )
            param_group["param_names"] = names
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    "optimizer can only optimize Tensors, but one of the params is " + _typename(p)
                )
            if not (p.is_leaf or p.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            param_group.setdefault(name, default)
        if len(params) != len({id(p) for p in params}):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; in future, this "
                "will cause an error; see github.com/pytorch/pytorch/issues/40967 for more "
                "information",
                stacklevel=3,
            )
        seen: set[int] = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {which} to the optimizer"
                )
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # -- gradients and steps -------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: drop them (default) or fill them with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if g.grad_fn is not None:
                        g.detach_()
                    else:
                        g.requires_grad_(False)
                    if isinstance(g.data, np.generic):  # a NumPy scalar has no memory to fill
                        g.data = np.zeros_like(g.data)
                    else:
                        g.data[...] = 0
                    g._version[0] += 1

    def step(self, closure: Callable[[], Any] | None = None):
        """Update every parameter that has a gradient; `closure` re-evaluates and returns the loss.

        Parameters whose `.grad` is None are skipped (their state is not touched).
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:
                    self._init_state(state, p.data, group)
                self._update(p.data, p.grad.data, state, group)
                p._version[0] += 1
        return loss

    def _init_state(self, state: dict, p, group: dict) -> None:
        """Fill the empty `state` of parameter array `p` (nothing by default)."""

    def _update(self, p, g, state: dict, group: dict) -> None:
        """Update parameter array `p` in place from its gradient array `g`."""
        raise NotImplementedError

    # -- saving and loading --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The state as PyTorch lays it out: params referenced by index, state as tensors.

        The tensors are the live state (as in PyTorch): save them before the next `step()`.

        >>> sd = opt.state_dict()
        >>> sd["param_groups"][0]["params"], sorted(sd["state"][0])
        ([0, 1], ['exp_avg', 'exp_avg_sq', 'step'])
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {
            (index[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items() if v
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load what `state_dict` returned (a copy of it); all checks run before anything changes.

        Raises ValueError when the group count, a group's size, or a state tensor's shape differs.
        """
        groups = self.param_groups
        saved_groups = copy.deepcopy(list(state_dict["param_groups"]))
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of "
                "optimizer's group"
            )
        id_map = {
            saved_id: p
            for g, s in zip(groups, saved_groups)
            for saved_id, p in zip(s["params"], g["params"])
        }
        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for key, values in state_dict["state"].items():
            if key not in id_map and str(key).isdigit() and int(key) in id_map:
                key = int(key)  # keys that went through JSON come back as strings
            if key not in id_map:
                state[key] = values  # kept as is, as PyTorch does
                continue
            p = id_map[key]
            state[p] = {k: self._load_value(p, k, v, key) for k, v in values.items()}
        for g, s in zip(groups, saved_groups):
            s["params"] = g["params"]
            if "param_names" in g and "param_names" not in s:
                s["param_names"] = g["param_names"]
        self.state = state
        self.param_groups = saved_groups

    def _load_value(self, p: Tensor, key: str, value, index) -> Tensor | None:
        """A fresh state tensor for `p` from a loaded value (cast to p's dtype and device)."""
        if value is None:
            return None
        if isinstance(value, Tensor):
            value = value.data
        if key in self._scalar_keys:
            if isinstance(value, (int, float)):
                return _scalar_state(float(value))
            return _wrap(np.array(backend.to_numpy(value), copy=True))
        array = value if hasattr(value, "shape") else np.asarray(value)
        if tuple(array.shape) != tuple(p.shape):
            raise ValueError(
                f"loaded state dict has a state '{key}' of shape {tuple(array.shape)} for "
                f"parameter {index} of shape {tuple(p.shape)}"
            )
        array = backend.to_device(array, p.device)
        if array.dtype.kind == "f" and p.dtype.kind == "f":
            array = array.astype(p.dtype)  # astype copies
        else:
            array = array.copy()
        return _wrap(array)


# A parameter with at least _LARGE elements is updated in flat chunks: the update's temporaries
# are then chunk-sized (they stay in the cache and reuse freed memory) instead of full-size
# arrays faulted in fresh every step (64 MB for a 4096x4096 weight, and the peak memory of the
# step). Every update is elementwise, so the chunks give the same bits as the whole-array form,
# which small parameters keep (it costs a few microseconds less). Chunks are 1 MB (float32) for
# the largest parameters (SGD on W3: 17-26 ms of CPU whole, 12 ms in 256 KB chunks, 8 ms in
# 1 MB ones) and 128 KB below that, where memory counts more than the last millisecond.
_LARGE = 1 << 16
_CHUNK_SMALL = 1 << 15
_CHUNK = 1 << 18


def _chunk_size(n: int) -> int:
    return _CHUNK if n >= 8 * _CHUNK else _CHUNK_SMALL


def _pieces(p, *arrays) -> Iterable[tuple]:
    """(p, *arrays) whole, or as matching flat chunks when p is a large contiguous NumPy array
    and every array has its shape and layout."""
    if p.size < _LARGE or type(p) is not np.ndarray or not p.flags.c_contiguous:
        return ((p, *arrays),)
    for a in arrays:
        if a.shape != p.shape or not a.flags.c_contiguous:
            return ((p, *arrays),)
    return _chunked((p, *arrays), p.size)


def _each_piece(update: Callable[..., None], p, *arrays) -> None:
    """update(p_piece, *pieces) over `_pieces(p, *arrays)`: the pieces of a large parameter
    on the CPU threads at once (retrograd.parallel), each in its own slice, so the bits are
    the same for any thread count."""
    pieces = _pieces(p, *arrays)
    if type(pieces) is tuple:
        update(*pieces[0])
        return
    pieces = list(pieces)
    threads = threads_for(p, p.nbytes * (len(arrays) + 1))
    parallel_for(len(pieces), lambda i: update(*pieces[i]), threads)


def _chunked(arrays: tuple, n: int):
    flat = [a.reshape(-1) for a in arrays]
    step = _chunk_size(n)
    for i in range(0, n, step):
        yield tuple(f[i : i + step] for f in flat)


def _effective_grad(g, p, weight_decay: float, maximize: bool):
    """-g when maximizing, plus L2 weight decay `weight_decay * p` (a new array if either)."""
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * p
    return g


def _lerp_(m, g, weight: float) -> None:
    """m += weight * (g - m), in place (PyTorch's `lerp_` for the running means)."""
    d = g - m
    d *= weight
    m += d


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
