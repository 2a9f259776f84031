"""Checkpoints: model, optimizer and scheduler state plus RNG states and run metadata, in one
safetensors file (arrays) with JSON metadata. Written atomically; loading never runs code."""

from __future__ import annotations

import json

import numpy as np

from retrograd.backend import Generator, default_generator
from retrograd.io import FormatError, load_file, save_file
from retrograd.tensor import Tensor

_META = "retrograd.checkpoint"


def _flatten_state(prefix: str, value, arrays: dict):
    """Arrays out of a nested state (dicts/lists of Tensors, arrays and JSON values)."""
    if isinstance(value, Tensor) or isinstance(value, np.ndarray):
        key = f"{prefix}"
        arrays[key] = value.data if isinstance(value, Tensor) else value
        return {"__array__": key}
    if isinstance(value, dict):
        return {
            "__dict__": [
                [_json_key(k), _flatten_state(f"{prefix}/{k}", v, arrays)] for k, v in value.items()
            ]
        }
    if isinstance(value, (list, tuple)):
        return {
            "__list__": [_flatten_state(f"{prefix}/{i}", v, arrays) for i, v in enumerate(value)],
            "tuple": isinstance(value, tuple),
        }
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value


def _json_key(k):
    if isinstance(k, (str, int, float, bool)) or k is None:
        return k
    raise TypeError(f"state key {k!r} is not JSON-serialisable")


def _unflatten_state(value, arrays: dict):
    if isinstance(value, dict) and "__array__" in value:
        key = value["__array__"]
        if key not in arrays:
            raise FormatError(f"checkpoint metadata names a missing array '{key}'")
        return Tensor._make(arrays[key], False, None, 0)
    if isinstance(value, dict) and "__dict__" in value:
        return {k: _unflatten_state(v, arrays) for k, v in value["__dict__"]}
    if isinstance(value, dict) and "__list__" in value:
        items = [_unflatten_state(v, arrays) for v in value["__list__"]]
        return tuple(items) if value.get("tuple") else items
    return value


def save_checkpoint(path, model=None, optimizer=None, scheduler=None, **extra) -> None:
    """Save everything a run needs to resume bitwise: weights, optimizer and scheduler state,
    the default generator's state, and any JSON-serialisable extras (epoch, history, config)."""
    arrays: dict = {}
    meta: dict = {"extra": extra, "rng": default_generator.get_state()}
    if model is not None:
        meta["model"] = _flatten_state("model", dict(model.state_dict()), arrays)
    if optimizer is not None:
        meta["optimizer"] = _flatten_state("optimizer", optimizer.state_dict(), arrays)
    if scheduler is not None:
        meta["scheduler"] = _flatten_state("scheduler", scheduler.state_dict(), arrays)
    save_file(arrays, path, {_META: json.dumps(meta, default=_json_default)})


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def load_checkpoint(path, model=None, optimizer=None, scheduler=None, restore_rng: bool = True):
    """Load a checkpoint into the given objects (each all-or-nothing); returns the extras.

    The whole file is parsed and its structure checked before anything is modified; a malformed
    or hostile file raises `FormatError`.
    """
    arrays, metadata = load_file(path)
    if _META not in metadata:
        raise FormatError(f"{path} is not a retrograd checkpoint (no '{_META}' metadata)")
    try:
        meta = json.loads(metadata[_META])
    except (ValueError, RecursionError) as e:  # ValueError: also int() of a 5000-digit number
        raise FormatError(f"checkpoint metadata is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise FormatError("checkpoint metadata is not a JSON object")
    extra = meta.get("extra", {})
    if not isinstance(extra, dict):
        raise FormatError("checkpoint metadata: 'extra' is not a JSON object")
    try:
        states = {
            k: _unflatten_state(meta[k], arrays)
            for k in ("model", "optimizer", "scheduler")
            if k in meta
        }
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError) as e:
        raise FormatError(f"checkpoint metadata has the wrong structure: {e!r}") from None
    rng = meta.get("rng") if restore_rng else None
    if rng is not None:
        try:  # on a scratch generator first: a bad state must not reach the default one
            Generator().set_state(rng)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
            raise FormatError(f"checkpoint holds an invalid generator state: {e!r}") from None
    if model is not None:
        if "model" not in states:
            raise FormatError("checkpoint holds no model state")
        model.load_state_dict(states["model"])
    if optimizer is not None and "optimizer" in states:
        optimizer.load_state_dict(states["optimizer"])
    if scheduler is not None and "scheduler" in states:
        scheduler.load_state_dict(states["scheduler"])
    if rng is not None:
        default_generator.set_state(rng)
    extra["_states"] = states
    return extra
