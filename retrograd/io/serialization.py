"""`retrograd.save` / `retrograd.load`: dicts of tensors plus JSON metadata, in safetensors."""

from __future__ import annotations

import json

from retrograd.io.safetensors import FormatError, load_file, save_file
from retrograd.tensor import Tensor

_META_KEY = "retrograd"


def save(tensors: dict, path, metadata: dict | None = None) -> None:
    """Save a dict of Tensors (a state_dict) and JSON-serialisable metadata, atomically.

    >>> retrograd.save(model.state_dict(), "model.safetensors", {"epoch": 3})
    """
    meta = {_META_KEY: json.dumps(metadata if metadata is not None else {})}
    save_file(dict(tensors), path, meta)


def load(path, with_metadata: bool = False, check_finite: bool = False):
    """Load what `save` wrote: a dict of Tensors (and the metadata when asked).

    Raises `retrograd.io.FormatError` for any malformed or hostile file (and, with
    check_finite=True, for a floating tensor holding NaN or Inf); never runs code.
    """
    arrays, meta = load_file(path, check_finite=check_finite)
    try:
        metadata = json.loads(meta.get(_META_KEY, "{}"))
    except (ValueError, RecursionError) as e:  # ValueError: also int() of a 5000-digit number
        raise FormatError(f"metadata is not valid JSON: {e}") from None
    tensors = {k: Tensor._make(v, False, None, 0) for k, v in arrays.items()}
    return (tensors, metadata) if with_metadata else tensors
