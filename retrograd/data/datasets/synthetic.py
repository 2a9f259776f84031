"""Small synthetic datasets that need no files: toy problems to watch a network learn.

Each returns a `TensorDataset` of (X, y): X float32 (the default float dtype), y int64 class
labels (float32 targets of shape (N, 1) for regression). The same `seed` gives the same data;
pass `generator` instead to draw from a retrograd (or NumPy) Generator, or neither to draw from
the default generator (seeded by `retrograd.manual_seed`).

>>> x, y = two_moons(200, noise=0.1, seed=0).tensors
"""

from __future__ import annotations

import math

import numpy as np

from retrograd import backend
from retrograd.backend import Generator
from retrograd.creation import from_numpy
from retrograd.data.dataset import TensorDataset

__all__ = ["xor", "two_moons", "circles", "spirals", "gaussian_blobs", "regression_curve"]


def _rng(seed: int | None, generator) -> np.random.Generator:
    if seed is not None and generator is not None:
        raise ValueError("pass either seed or generator, not both")
    if generator is not None:
        if isinstance(generator, Generator):
            return generator.numpy
        if isinstance(generator, np.random.Generator):
            return generator
        raise TypeError(f"generator must be a retrograd Generator, got {type(generator).__name__}")
    if seed is not None:
        return np.random.default_rng(seed)
    return backend.rng(None)


def _check(n_samples: int, noise: float) -> None:
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        raise TypeError(f"n_samples must be an int, got {type(n_samples).__name__}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise}")


def _per_class(n_samples: int, k: int) -> list[int]:
    """n_samples split as evenly as possible over k classes (the first ones get the remainder)."""
    return [n_samples // k + (1 if i < n_samples % k else 0) for i in range(k)]


def _finish(x, y, rng, noise: float, shuffle: bool, float_y: bool = False) -> TensorDataset:
    if shuffle:
        order = rng.permutation(len(x))
        x, y = x[order], y[order]
    if noise:
        x = x + rng.normal(scale=noise, size=x.shape)
    dtype = backend.get_default_dtype()
    y = y.astype(dtype) if float_y else y.astype(np.int64)
    return TensorDataset(from_numpy(np.ascontiguousarray(x, dtype=dtype)), from_numpy(y))


def xor(
    n_samples: int = 200,
    noise: float = 0.1,
    seed: int | None = None,
    generator=None,
    shuffle: bool = True,
) -> TensorDataset:
    """Points around the corners of the unit square, labelled x0 XOR x1.

    >>> x, y = xor(4, noise=0, shuffle=False).tensors   # the truth table
    >>> x.tolist(), y.tolist()
    ([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], [0, 1, 1, 0])
    """
    _check(n_samples, noise)
    rng = _rng(seed, generator)
    corner = np.arange(n_samples) % 4
    x = np.stack([corner // 2, corner % 2], axis=1).astype(np.float64)
    y = (corner // 2) ^ (corner % 2)
    return _finish(x, y, rng, noise, shuffle)


def two_moons(
    n_samples: int = 200,
    noise: float = 0.1,
    seed: int | None = None,
    generator=None,
    shuffle: bool = True,
) -> TensorDataset:
    """Two interleaving half circles, as scikit-learn's make_moons (class 0 the upper moon)."""
    _check(n_samples, noise)
    rng = _rng(seed, generator)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    x = np.concatenate(
        [
            np.stack([np.cos(t_out), np.sin(t_out)], axis=1),
            np.stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5], axis=1),
        ]
    )
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    return _finish(x, y, rng, noise, shuffle)


def circles(
    n_samples: int = 200,
    noise: float = 0.05,
    factor: float = 0.5,
    seed: int | None = None,
    generator=None,
    shuffle: bool = True,
) -> TensorDataset:
    """A circle of radius `factor` (class 1) inside one of radius 1 (class 0), as scikit-learn's
    make_circles (whose default factor is 0.8)."""
    _check(n_samples, noise)
    if not 0 <= factor < 1:
        raise ValueError(f"factor has to be between 0 and 1, got {factor}")
    rng = _rng(seed, generator)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    x = np.concatenate(
        [
            np.stack([np.cos(t_out), np.sin(t_out)], axis=1),
            factor * np.stack([np.cos(t_in), np.sin(t_in)], axis=1),
        ]
    )
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    return _finish(x, y, rng, noise, shuffle)


def spirals(
    n_samples: int = 300,
    n_arms: int = 2,
    noise: float = 0.05,
    turns: float = 1.0,
    seed: int | None = None,
    generator=None,
    shuffle: bool = True,
) -> TensorDataset:
    """`n_arms` interleaved spirals from the origin out to radius 1, each winding `turns` times;
    the label is the arm."""
    _check(n_samples, noise)
    if n_arms < 1:
        raise ValueError(f"n_arms must be at least 1, got {n_arms}")
    rng = _rng(seed, generator)
    xs, ys = [], []
    for arm, m in enumerate(_per_class(n_samples, n_arms)):
        r = np.linspace(0.0, 1.0, m)
        theta = 2 * np.pi * (arm / n_arms + turns * r)
        xs.append(np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1))
        ys.append(np.full(m, arm, np.int64))
    return _finish(np.concatenate(xs), np.concatenate(ys), rng, noise, shuffle)


def gaussian_blobs(
    n_samples: int = 300,
    centers=3,
    n_features: int = 2,
    noise: float = 1.0,
    center_box: tuple[float, float] = (-10.0, 10.0),
    seed: int | None = None,
    generator=None,
    shuffle: bool = True,
) -> TensorDataset:
    """Isotropic Gaussian clusters of std `noise`, one class each, as scikit-learn's make_blobs.
    `centers`: how many (drawn uniformly in `center_box`), or an array (k, n_features)."""
    _check(n_samples, noise)
    rng = _rng(seed, generator)
    if isinstance(centers, (int, np.integer)):
        if centers < 1:
            raise ValueError(f"centers must be at least 1, got {centers}")
        centers = rng.uniform(center_box[0], center_box[1], size=(int(centers), n_features))
    else:
        centers = np.asarray(centers, dtype=np.float64)
        if centers.ndim != 2:
            raise ValueError(f"centers must be an int or an array (k, n_features), got {centers}")
    counts = _per_class(n_samples, len(centers))
    x = np.repeat(centers, counts, axis=0)
    y = np.repeat(np.arange(len(centers)), counts)
    return _finish(x, y, rng, noise, shuffle)


_CURVES = {
    # kind: (function, default x range)
    "sin": (np.sin, (-math.pi, math.pi)),
    "linear": (lambda x: 2.0 * x + 1.0, (-1.0, 1.0)),
    "cubic": (lambda x: x**3 - x, (-1.5, 1.5)),
}


def regression_curve(
    n_samples: int = 200,
    noise: float = 0.1,
    kind: str = "sin",
    x_range: tuple[float, float] | None = None,
    seed: int | None = None,
    generator=None,
) -> TensorDataset:
    """x uniform in `x_range`, y = f(x) + N(0, noise^2), both of shape (N, 1).

    kind: "sin" (sin x on [-pi, pi]), "linear" (2x + 1 on [-1, 1]) or "cubic" (x^3 - x on
    [-1.5, 1.5]).
    """
    _check(n_samples, noise)
    if kind not in _CURVES:
        raise ValueError(f"kind must be one of {sorted(_CURVES)}, got {kind!r}")
    fn, default_range = _CURVES[kind]
    low, high = default_range if x_range is None else x_range
    rng = _rng(seed, generator)
    x = rng.uniform(low, high, size=(n_samples, 1))
    y = fn(x)
    if noise:
        y = y + rng.normal(scale=noise, size=y.shape)
    dtype = backend.get_default_dtype()
    return TensorDataset(from_numpy(x.astype(dtype)), from_numpy(y.astype(dtype)))
