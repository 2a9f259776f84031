"""Saliency and attribution: which parts of an input a model's output depends on.

    >>> from retrograd import interpret
    >>> model.eval()
    >>> maps = interpret.saliency(model, images)                 # |d out[target] / d x|
    >>> attr, delta = interpret.integrated_gradients(model, images, steps=100)
    >>> interpret.saliency_grid(model, images, labels, "saliency.png")

Every function takes any callable `model` mapping a batch `x` of shape (N, ...) to outputs of
shape (N, C) (or (N,), or (N, ...) read flat per sample) and a `target`: None for each sample's
predicted class (the argmax at x), one class index for all, or N indices. The gradient is the
engine's own, taken with `retrograd.autograd.grad` (the parameters' `.grad` are not touched).
Put the model in eval mode first when it has dropout or batch norm.

- `saliency`: the vanilla gradient |d out_target / d x| (Simonyan et al., 2014);
- `gradient_x_input`: x * d out_target / d x (Shrikumar et al., 2016);
- `smoothgrad`: the saliency averaged over copies of x with Gaussian noise of standard deviation
  `noise` * (max(x) - min(x)) per sample (Smilkov et al., 2017);
- `integrated_gradients`: (x - baseline) times the gradient averaged along the straight path from
  the baseline to x, with the trapezoid rule (Sundararajan et al., 2017). Completeness: the
  attributions of a sample sum to out(x) - out(baseline); `delta` is the difference, which
  shrinks as `steps` grows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from retrograd.autograd import grad as _autograd_grad
from retrograd.autograd.grad_mode import enable_grad, no_grad
from retrograd.backend import Generator, device_of, get_xp, to_device, to_numpy
from retrograd.creation import as_tensor, randn
from retrograd.tensor import Tensor

__all__ = [
    "Attribution",
    "saliency",
    "gradient_x_input",
    "smoothgrad",
    "integrated_gradients",
    "attribute",
    "METHODS",
    "saliency_grid",
    "digits_cnn",
    "DigitsCNN",
    "train_digits_cnn",
    "digits_saliency",
]

METHODS = ("saliency", "gradient_x_input", "smoothgrad", "integrated_gradients")
_CHUNK = 512  # samples per forward pass in smoothgrad and integrated_gradients


class Attribution(NamedTuple):
    """Integrated gradients: attributions (x's shape) and the completeness delta per sample,
    sum(attributions) - (out(x) - out(baseline))."""

    attributions: Tensor
    delta: Tensor


# -- the gradient of the selected output -----------------------------------------------------------
def _as_input(x) -> Tensor:
    x = x if isinstance(x, Tensor) else as_tensor(x)
    if x.dtype.kind not in "fc":
        raise TypeError(f"attribution needs a floating-point input, got {x.dtype}")
    if x.ndim == 0:
        raise ValueError("x must be a batch: shape (N, ...)")
    return x.detach()


def _flat_output(out: Tensor, n: int) -> Tensor:
    if out.ndim == 0:
        if n != 1:
            raise ValueError(f"the model returned a scalar for a batch of {n} samples")
        return out.reshape(1, 1)
    if out.shape[0] != n:
        raise ValueError(
            f"the model's output has {out.shape[0]} rows for a batch of {n} samples; "
            "attribution needs one row of outputs per sample"
        )
    return out.reshape(n, -1)


def _targets(target, scores: np.ndarray) -> np.ndarray:
    """Target indices, one per sample (scores: (N, K) output values)."""
    n, k = scores.shape
    if target is None:
        idx = scores.argmax(axis=1)
    elif isinstance(target, (int, np.integer)):
        idx = np.full(n, int(target))
    else:
        idx = np.asarray(to_numpy(target.data) if isinstance(target, Tensor) else target)
        idx = idx.astype(np.int64).reshape(-1)
        if idx.shape[0] != n:
            raise ValueError(f"target has {idx.shape[0]} entries for a batch of {n} samples")
    if idx.size and (idx.min() < -k or idx.max() >= k):
        raise IndexError(f"target {idx.tolist()} is out of range for {k} outputs per sample")
    return idx % k if k else idx


def _grad_at(model, x: Tensor, idx: np.ndarray | None, target=None):
    """(d sum_i out[i, idx_i] / d x, out[i, idx_i] as float64, idx) for a batch x."""
    xr = x.detach().requires_grad_(True)
    with enable_grad():
        out = _flat_output(model(xr), x.shape[0])
    values = to_numpy(out.data).astype(np.float64)
    if idx is None:
        idx = _targets(target, values)
    rows = np.arange(x.shape[0])
    mask = np.zeros(values.shape, dtype=out.dtype)
    mask[rows, idx] = 1
    xp = get_xp(out.data)
    seed = Tensor(to_device(mask, device_of(out.data)))
    if not out.requires_grad:  # the output does not depend on anything differentiable
        return Tensor(xp.zeros_like(xr.data)), values[rows, idx], idx
    (g,) = _autograd_grad(out, xr, grad_outputs=seed, allow_unused=True)
    if g is None:
        g = Tensor(xp.zeros_like(xr.data))
    return g.detach(), values[rows, idx], idx


def _chunked_grads(model, inputs: Tensor, idx: np.ndarray, copies: int, n: int):
    """Gradients and selected outputs for `copies` stacked batches of n samples each, evaluated
    in forward passes of at most _CHUNK samples; returns arrays of shape (copies, n, ...) and
    (copies, n)."""
    per = max(1, _CHUNK // max(n, 1))
    grads, values = [], []
    for start in range(0, copies, per):
        stop = min(copies, start + per)
        batch = inputs[start * n : stop * n]
        g, v, _ = _grad_at(model, batch, np.tile(idx, stop - start))
        grads.append(g.data.reshape((stop - start, n) + tuple(inputs.shape[1:])))
        values.append(v.reshape(stop - start, n))
    xp = get_xp(grads[0])
    return xp.concatenate(grads, axis=0), np.concatenate(values, axis=0)


def _repeat(x: Tensor, copies: int) -> Tensor:
    xp = get_xp(x.data)
    return Tensor(xp.concatenate([x.data] * copies, axis=0))


# -- the methods -----------------------------------------------------------------------------------
def saliency(model, x, target=None, absolute: bool = True) -> Tensor:
    """Vanilla gradient saliency |d out_target / d x| (the raw gradient with absolute=False).

    >>> maps = saliency(model, images)            # (N, C, H, W), one map per image
    """
    x = _as_input(x)
    g, _, _ = _grad_at(model, x, None, target)
    return abs(g) if absolute else g


def gradient_x_input(model, x, target=None) -> Tensor:
    """Gradient x input: x * d out_target / d x (signed)."""
    x = _as_input(x)
    g, _, _ = _grad_at(model, x, None, target)
    return g * x


def smoothgrad(
    model,
    x,
    target=None,
    n_samples: int = 25,
    noise: float = 0.15,
    generator: Generator | None = None,
    absolute: bool = True,
) -> Tensor:
    """SmoothGrad: the saliency averaged over `n_samples` noisy copies of x, the noise's standard
    deviation `noise` * (max - min) of each sample. The target (when None: the prediction) is
    read at the clean input. Pass a seeded `generator` for repeatable maps.

    >>> maps = smoothgrad(model, images, generator=retrograd.Generator().manual_seed(0))
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    x = _as_input(x)
    n = x.shape[0]
    _, _, idx = _grad_at(model, x, None, target)
    xp = get_xp(x.data)
    flat = x.data.reshape(n, -1)
    spread = (flat.max(axis=1) - flat.min(axis=1)).reshape((n,) + (1,) * (x.ndim - 1))
    # copies are stacked copy-major: rows k*n .. k*n + n - 1 hold the k-th noisy copy of x
    sigma = xp.concatenate([noise * spread] * n_samples, axis=0)
    eps = randn(n_samples * n, *x.shape[1:], generator=generator, dtype=x.dtype).data
    eps = to_device(eps, device_of(x.data))
    noisy = (_repeat(x, n_samples).data + eps * sigma).astype(x.dtype)
    grads, _ = _chunked_grads(model, Tensor(noisy), idx, n_samples, n)
    maps = xp.abs(grads) if absolute else grads
    return Tensor(maps.mean(axis=0).astype(x.dtype))


def integrated_gradients(model, x, target=None, baseline=None, steps: int = 50) -> Attribution:
    """Integrated gradients along the straight path from `baseline` (default zeros) to x, the
    path integral by the trapezoid rule on `steps` intervals. Returns (attributions, delta),
    delta = sum(attributions) - (out(x) - out(baseline)) per sample (completeness).

    >>> attr, delta = integrated_gradients(model, images, steps=200)
    >>> ok = abs(delta) <= 0.01 * abs(out_x - out_baseline)
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    x = _as_input(x)
    n = x.shape[0]
    xp = get_xp(x.data)
    if baseline is None:
        base = xp.zeros_like(x.data)
    else:
        b = baseline.data if isinstance(baseline, Tensor) else xp.asarray(baseline)
        base = xp.broadcast_to(xp.asarray(b, dtype=x.dtype), x.shape)
    _, _, idx = _grad_at(model, x, None, target)
    # float64 alphas: the interpolation points do not drift with float32 arithmetic
    alphas = np.linspace(0.0, 1.0, steps + 1)
    diff = x.data - base
    path = xp.concatenate([(base + float(a) * diff).astype(x.dtype) for a in alphas], axis=0)
    grads, values = _chunked_grads(model, Tensor(path), idx, steps + 1, n)
    weights = np.full(steps + 1, 1.0 / steps)
    weights[0] = weights[-1] = 0.5 / steps
    w = xp.asarray(weights.reshape((steps + 1,) + (1,) * x.ndim))
    mean_grad = (grads.astype(np.float64) * w).sum(axis=0)
    attributions = diff.astype(np.float64) * mean_grad
    total = to_numpy(attributions.reshape(n, -1).sum(axis=1))
    delta = total - (values[-1] - values[0])
    return Attribution(Tensor(attributions.astype(x.dtype)), Tensor(delta.astype(np.float64)))


def attribute(model, x, method: str = "saliency", target=None, **kwargs) -> Tensor:
    """One of METHODS by name; integrated gradients gives its attributions (not the delta)."""
    if method == "saliency":
        return saliency(model, x, target, **kwargs)
    if method == "gradient_x_input":
        return gradient_x_input(model, x, target)
    if method == "smoothgrad":
        return smoothgrad(model, x, target, **kwargs)
    if method == "integrated_gradients":
        return integrated_gradients(model, x, target, **kwargs).attributions
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


# -- pictures --------------------------------------------------------------------------------------
_TITLES = {
    "saliency": "saliency",
    "gradient_x_input": "grad x input",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "integ. grads",
}
CELL_WIDTH, CELL_HEIGHT = 1.2, 1.3  # inches per image in saliency_grid


def _as_images(a: np.ndarray, image_shape) -> np.ndarray:
    """(N, H, W) or (N, H, W, 3) for display from (N, D), (N, H, W) or (N, C, H, W)."""
    if image_shape is not None:
        a = a.reshape((a.shape[0],) + tuple(image_shape))
    if a.ndim == 2:
        side = int(round(np.sqrt(a.shape[1])))
        if side * side != a.shape[1]:
            raise ValueError(
                f"cannot show inputs of {a.shape[1]} features as images: pass image_shape"
            )
        a = a.reshape(a.shape[0], side, side)
    if a.ndim == 4:
        a = a[:, 0] if a.shape[1] == 1 else np.moveaxis(a, 1, -1)
    if a.ndim not in (3, 4):
        raise ValueError(f"cannot show inputs of shape {a.shape[1:]} as images")
    return a


def _as_maps(a: np.ndarray, image_shape) -> np.ndarray:
    """Attribution magnitudes per pixel: |a|, the maximum over colour channels."""
    a = np.abs(_as_images(a, image_shape))
    return a.max(axis=-1) if a.ndim == 4 else a


def saliency_grid(
    model,
    images,
    labels=None,
    path="saliency.png",
    target=None,
    methods=("saliency",),
    class_names=None,
    ncols: int | None = None,
    image_shape=None,
    generator: Generator | None = None,
    dpi: int = 100,
    steps: int = 50,
):
    """Write a PNG grid: each image (titled with its label and the model's prediction) above its
    attribution maps, one row per method in `methods` (see METHODS). Images (N, C, H, W),
    (N, H, W) or flat (N, D) with `image_shape`; `ncols` images per row (default min(N, 10)).
    The canvas is ncols * CELL_WIDTH by groups * (1 + len(methods)) * CELL_HEIGHT inches at `dpi`.

    >>> saliency_grid(model, x[:10], y[:10], "grid.png", methods=METHODS)
    """
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; choose one of {METHODS}")
    x = _as_input(images)
    n = x.shape[0]
    if n == 0:
        raise ValueError("saliency_grid needs at least one image")
    with no_grad():
        scores = to_numpy(_flat_output(model(x), n).data)
    preds = scores.argmax(axis=1)
    maps = {}
    for m in methods:
        if m == "smoothgrad":
            a = smoothgrad(model, x, target, generator=generator)
        elif m == "integrated_gradients":
            a = integrated_gradients(model, x, target, steps=steps).attributions
        else:
            a = attribute(model, x, m, target)
        maps[m] = _as_maps(to_numpy(a.data), image_shape)
    pictures = _as_images(to_numpy(x.data).astype(np.float64), image_shape)
    label_list = None
    if labels is not None:
        label_list = np.asarray(to_numpy(labels.data) if isinstance(labels, Tensor) else labels)
        label_list = label_list.reshape(-1).tolist()

    from retrograd.diagnostics.monitor import _pyplot, _save

    plt = _pyplot()
    ncols = min(n, 10) if ncols is None else max(1, int(ncols))
    groups = -(-n // ncols)
    rows_per = 1 + len(methods)
    fig, axes = plt.subplots(
        groups * rows_per,
        ncols,
        figsize=(ncols * CELL_WIDTH, groups * rows_per * CELL_HEIGHT),
        squeeze=False,
    )
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)

    def name(c) -> str:
        return str(class_names[c]) if class_names is not None else str(c)

    for i in range(n):
        group, col = divmod(i, ncols)
        top = group * rows_per
        ax = axes[top, col]
        img = pictures[i]
        if img.ndim == 3:  # colour: scale into [0, 1] for display
            lo, hi = img.min(), img.max()
            ax.imshow((img - lo) / (hi - lo) if hi > lo else img * 0, interpolation="nearest")
        else:
            ax.imshow(img, cmap="gray", interpolation="nearest")
        title = f"pred {name(preds[i])}"
        color = "black"
        if label_list is not None:
            title = f"label {name(label_list[i])}\n" + title
            color = "black" if int(label_list[i]) == int(preds[i]) else "red"
        ax.set_title(title, fontsize=8, color=color)
        for r, m in enumerate(methods, 1):
            ax = axes[top + r, col]
            ax.imshow(maps[m][i], cmap="hot", interpolation="nearest")
            if col == 0:
                ax.set_ylabel(_TITLES[m], fontsize=8)
    fig.tight_layout(pad=0.3)
    _save(fig, path, dpi)
    return path


# -- the digits CNN --------------------------------------------------------------------------------
def digits_cnn(generator: Generator | None = None):
    """A small CNN for the 8x8 digits: two 3x3 conv + ReLU + 2x2 max-pool stages, then linear."""
    from retrograd import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, generator=generator),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, generator=generator),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, 10, generator=generator),
    )


@dataclass
class DigitsCNN:
    """A trained (or loaded) digits CNN, its test split and test accuracy."""

    model: object
    test: object  # TensorDataset of (N, 1, 8, 8) images and labels
    accuracy: float
    trained: bool  # False when loaded from the checkpoint
    checkpoint: str | None
    epochs: int


def _accuracy(model, dataset) -> float:
    x, y = dataset.tensors
    with no_grad():
        pred = model(x).argmax(-1)
    return float((to_numpy(pred.data) == to_numpy(y.data)).mean())


def train_digits_cnn(
    epochs: int = 10,
    seed: int = 0,
    lr: float = 3e-3,
    batch_size: int = 64,
    checkpoint=None,
    retrain: bool = False,
) -> DigitsCNN:
    """Train digits_cnn on scikit-learn's digits (Adam), or load it from `checkpoint` when that
    file exists (and not `retrain`); a fresh model is saved to `checkpoint` when one is given.
    Ten epochs take a couple of seconds and reach about 97% test accuracy."""
    from retrograd.data import DataLoader
    from retrograd.data.datasets import load_digits
    from retrograd.io import load, save
    from retrograd.nn import functional as F
    from retrograd.optim import Adam

    train, test = load_digits(flatten=False, seed=seed)
    gen = Generator().manual_seed(seed)
    model = digits_cnn(gen)
    path = os.fspath(checkpoint) if checkpoint is not None else None
    if path is not None and os.path.exists(path) and not retrain:
        state, meta = load(path, with_metadata=True)
        model.load_state_dict(state)
        model.eval()
        return DigitsCNN(model, test, _accuracy(model, test), False, path, meta.get("epochs", 0))
    optimizer = Adam(model.parameters(), lr=lr)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=gen)
    model.train()
    for _ in range(epochs):
        for inputs, labels in loader:
            loss = F.cross_entropy(model(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    acc = _accuracy(model, test)
    if path is not None:
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        save(
            model.state_dict(),
            path,
            {"model": "digits-cnn", "epochs": epochs, "seed": seed, "test_acc": acc},
        )
    return DigitsCNN(model, test, acc, True, path, epochs)


def digits_saliency(
    path="saliency.png",
    n: int = 10,
    methods=METHODS,
    epochs: int = 10,
    seed: int = 0,
    checkpoint=None,
    retrain: bool = False,
    dpi: int = 100,
) -> DigitsCNN:
    """Train (or load) the digits CNN and write a saliency grid of `n` test images (one per class
    first) to `path`; returns the DigitsCNN (model, test split, accuracy)."""
    result = train_digits_cnn(epochs, seed, checkpoint=checkpoint, retrain=retrain)
    x, y = result.test.tensors
    labels = to_numpy(y.data)
    order = []
    for digit in range(10):  # one of each class first, then the rest in order
        hits = np.flatnonzero(labels == digit)
        if hits.size:
            order.append(int(hits[0]))
    order += [i for i in range(len(labels)) if i not in set(order)]
    pick = order[: max(1, min(n, len(order)))]
    saliency_grid(
        result.model,
        x[pick],
        y[pick],
        path,
        methods=methods,
        generator=Generator().manual_seed(seed),
        dpi=dpi,
    )
    return result
