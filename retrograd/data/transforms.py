"""Composable transforms on NumPy arrays or Tensors: standardisation and image augmentation.

A transform called on one sample (`t(x)`) draws one set of random numbers; `t.batch(xb)` treats
the first axis as the batch and draws for every sample at once, vectorised (no Python loop).
Output type follows the input: an array gives an array, a Tensor a Tensor. Randomness comes
from the `generator` given (the default generator when None).

>>> augment = Compose([RandomShift(2, generator=g), GaussianNoise(0.05, generator=g)])
>>> xb = augment.batch(images)          # images: (N, 1, 28, 28)
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from retrograd import backend
from retrograd.backend import Generator
from retrograd.creation import from_numpy
from retrograd.tensor import Tensor

__all__ = [
    "Transform",
    "Compose",
    "ToTensor",
    "Standardize",
    "RandomCrop",
    "RandomShift",
    "RandomHorizontalFlip",
    "GaussianNoise",
]


def _unwrap(x) -> tuple[np.ndarray, bool]:
    if isinstance(x, Tensor):
        return backend.to_numpy(x.data), True
    return np.asarray(x), False


def _float(x: np.ndarray) -> np.ndarray:
    return x if x.dtype.kind == "f" else x.astype(backend.get_default_dtype())


class Transform:
    """Base class: subclasses implement `_apply(x)` on an array whose first axis is the batch."""

    def __call__(self, x):
        """Transform one sample (no batch axis)."""
        arr, is_tensor = _unwrap(x)
        out = self._apply(arr[None])[0]
        return from_numpy(np.ascontiguousarray(out)) if is_tensor else out

    def batch(self, x):
        """Transform a batch (first axis), with independent random draws per sample."""
        arr, is_tensor = _unwrap(x)
        out = self._apply(arr)
        return from_numpy(np.ascontiguousarray(out)) if is_tensor else out

    def _apply(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "generator")
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Apply transforms in order; plain callables are allowed (applied sample by sample).

    >>> Compose([ToTensor(), Standardize(0.5, 0.25)])(image)
    """

    def __init__(self, transforms) -> None:
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def batch(self, x):
        for t in self.transforms:
            if hasattr(t, "batch"):
                x = t.batch(x)
            else:  # a plain callable: sample by sample
                outs = [_unwrap(t(x[i]))[0] for i in range(len(x))]
                stacked = np.stack(outs) if outs else _unwrap(x)[0]
                x = from_numpy(stacked) if isinstance(x, Tensor) else stacked
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class ToTensor(Transform):
    """Array -> Tensor: uint8 images are scaled to [0, 1] in the default float dtype (float32),
    other floats become that dtype, integers keep theirs. The shape is kept (no HWC -> CHW)."""

    def __call__(self, x):
        return self._convert(x)

    def batch(self, x):
        return self._convert(x)

    def _convert(self, x) -> Tensor:
        arr, _ = _unwrap(x)
        if arr.dtype == np.uint8:
            arr = arr.astype(backend.get_default_dtype()) / 255
        elif arr.dtype.kind == "f":
            arr = arr.astype(backend.get_default_dtype(), copy=False)
        return from_numpy(np.ascontiguousarray(arr))


class Standardize(Transform):
    """(x - mean) / std, with mean and std broadcast against one sample (scalars, per-feature
    arrays of a sample's shape, or per-channel (C, 1, 1)). `Standardize.fit(data)` computes them.

    >>> scale = Standardize.fit(x_train)            # per feature, over the samples
    >>> x_train, x_test = scale.batch(x_train), scale.batch(x_test)
    """

    def __init__(self, mean, std) -> None:
        dtype = backend.get_default_dtype()
        self.mean = np.asarray(_unwrap(mean)[0], dtype=dtype)
        self.std = np.asarray(_unwrap(std)[0], dtype=dtype)
        if np.any(self.std <= 0):
            raise ValueError("std evaluated to zero or below, leading to division by zero")

    @classmethod
    def fit(cls, data, dim: int | tuple[int, ...] | None = 0, eps: float = 0.0) -> Standardize:
        """Mean and (population) std of `data` over `dim`, which must include the sample axis 0:
        0 per feature, None one scalar, (0, 2, 3) per channel of (N, C, H, W) images. A zero std
        (a constant feature) becomes 1, as in scikit-learn's StandardScaler."""
        arr = _float(_unwrap(data)[0]).astype(np.float64)
        dims = tuple(range(arr.ndim)) if dim is None else (dim,) if isinstance(dim, int) else dim
        dims = tuple(d % arr.ndim for d in dims)
        if 0 not in dims:
            raise ValueError(f"dim must include the sample axis 0, got {dim}")
        mean = arr.mean(axis=dims, keepdims=True)
        std = np.sqrt(((arr - mean) ** 2).mean(axis=dims, keepdims=True) + eps)
        std[std == 0] = 1.0
        if dim is None:
            return cls(mean.reshape(()), std.reshape(()))
        return cls(mean[0], std[0])

    def _apply(self, x: np.ndarray) -> np.ndarray:
        x = _float(x)
        return ((x - self.mean) / self.std).astype(x.dtype, copy=False)


def _pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    if len(v) == 2:
        return int(v[0]), int(v[1])
    raise ValueError(f"{name} should be an int or a sequence of 2 ints, got {v}")


def _check_images(x: np.ndarray, name: str) -> None:
    if x.ndim < 3:
        raise ValueError(
            f"{name} works on images (..., H, W); got a sample of shape {tuple(x.shape[1:])}"
        )


def _crop(x: np.ndarray, top: np.ndarray, left: np.ndarray, h: int, w: int) -> np.ndarray:
    """out[n] = x[n, ..., top[n]:top[n]+h, left[n]:left[n]+w] for every n in one gather."""
    n = x.shape[0]
    flat = x.reshape(n, -1, *x.shape[-2:])
    windows = sliding_window_view(flat, (h, w), axis=(2, 3))  # (N, C, H-h+1, W-w+1, h, w)
    out = windows[np.arange(n), :, top, left]  # advanced indices first: (N, C, h, w)
    return out.reshape(*x.shape[:-2], h, w)


_PAD_MODES = ("constant", "edge", "reflect", "symmetric")


class RandomCrop(Transform):
    """Crop a random (h, w) window of each image, after optional padding on all sides.

    `padding`: int (all sides), (left/right, top/bottom) or (left, top, right, bottom), as in
    torchvision; `padding_mode`: constant (with `fill`), edge, reflect or symmetric.
    """

    def __init__(
        self,
        size,
        padding=None,
        fill: float = 0,
        padding_mode: str = "constant",
        generator: Generator | None = None,
    ) -> None:
        self.size = _pair(size, "size")
        if padding is None:
            padding = 0
        if isinstance(padding, (int, np.integer)):
            padding = (int(padding),) * 4
        elif len(padding) == 2:
            padding = (padding[0], padding[1], padding[0], padding[1])
        elif len(padding) != 4:
            raise ValueError(
                f"padding should be an int or a sequence of 2 or 4 ints, got {padding}"
            )
        if any(p < 0 for p in padding):
            raise ValueError(f"padding must be non-negative, got {padding}")
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"padding_mode should be one of {_PAD_MODES}, got {padding_mode!r}")
        self.padding = tuple(int(p) for p in padding)  # left, top, right, bottom
        self.fill = fill
        self.padding_mode = padding_mode
        self.generator = generator

    def _pad(self, x: np.ndarray) -> np.ndarray:
        left, top, right, bottom = self.padding
        if not any(self.padding):
            return x
        widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
        if self.padding_mode == "constant":
            return np.pad(x, widths, mode="constant", constant_values=self.fill)
        return np.pad(x, widths, mode=self.padding_mode)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        _check_images(x, type(self).__name__)
        x = self._pad(x)
        h, w = self.size
        ph, pw = x.shape[-2:]
        if h > ph or w > pw:
            raise ValueError(
                f"Required crop size {(h, w)} is larger than input image size {(ph, pw)}"
            )
        rng = backend.rng(self.generator)
        top = rng.integers(0, ph - h + 1, size=x.shape[0])
        left = rng.integers(0, pw - w + 1, size=x.shape[0])
        return _crop(x, top, left, h, w)


class RandomShift(Transform):
    """Translate each image by a random whole number of pixels in [-max_shift, max_shift] along
    each axis (max_shift: int or (max_dy, max_dx)); uncovered pixels get `fill`."""

    def __init__(self, max_shift, fill: float = 0, generator: Generator | None = None) -> None:
        self.max_shift = _pair(max_shift, "max_shift")
        if min(self.max_shift) < 0:
            raise ValueError(f"max_shift must be non-negative, got {max_shift}")
        self.fill = fill
        self.generator = generator

    def _apply(self, x: np.ndarray) -> np.ndarray:
        _check_images(x, "RandomShift")
        my, mx = self.max_shift
        if my == mx == 0:
            return x.copy()
        h, w = x.shape[-2:]
        widths = [(0, 0)] * (x.ndim - 2) + [(my, my), (mx, mx)]
        padded = np.pad(x, widths, mode="constant", constant_values=self.fill)
        rng = backend.rng(self.generator)
        # a window starting at my + dy shows the image moved by -dy: the shift is symmetric
        top = rng.integers(0, 2 * my + 1, size=x.shape[0])
        left = rng.integers(0, 2 * mx + 1, size=x.shape[0])
        return _crop(padded, top, left, h, w)


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right (the last axis) with probability p."""

    def __init__(self, p: float = 0.5, generator: Generator | None = None) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"p should be a probability in [0, 1], got {p}")
        self.p = p
        self.generator = generator

    def _apply(self, x: np.ndarray) -> np.ndarray:
        _check_images(x, "RandomHorizontalFlip")
        flip = backend.rng(self.generator).random(x.shape[0]) < self.p
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out


class GaussianNoise(Transform):
    """x + N(mean, std^2) noise of x's float dtype, optionally clipped to (low, high)."""

    def __init__(
        self,
        std: float,
        mean: float = 0.0,
        clip: tuple[float, float] | None = None,
        generator: Generator | None = None,
    ) -> None:
        if std < 0:
            raise ValueError(f"std must be non-negative, got {std}")
        self.std = std
        self.mean = mean
        self.clip = clip
        self.generator = generator

    def _apply(self, x: np.ndarray) -> np.ndarray:
        x = _float(x)
        draw_dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
        noise = backend.rng(self.generator).standard_normal(x.shape, dtype=draw_dtype)
        out = (x + (noise * self.std + self.mean).astype(x.dtype, copy=False)).astype(
            x.dtype, copy=False
        )
        if self.clip is not None:
            out = np.clip(out, self.clip[0], self.clip[1]).astype(x.dtype, copy=False)
        return out
