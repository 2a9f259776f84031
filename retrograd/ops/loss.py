"""Fused loss primitives: cross entropy from logits, negative log-likelihood, and binary cross
entropy from probabilities and from logits, with PyTorch's `torch.nn.functional` interface.

Each loss is one primitive where fusing pays: `cross_entropy` is log_softmax and nll in one node
(the forward shifts by the max; the gradient is (softmax - target) * g / normaliser, the target
written at the picked classes instead of an N x C one-hot), `binary_cross_entropy_with_logits` is
max(x, 0) - x t + log1p(exp(-|x|)), finite for any finite logit. The rules use operators, indexing
and `dual`, and fall back to differentiable ops when fed Tensors, so second derivatives work.

Class weights, `weight` and `pos_weight` are constants, as in PyTorch (except the class weights of
probability targets, which PyTorch differentiates too).
"""

from __future__ import annotations

import math
import warnings

from numpy import broadcast_shapes  # shape arithmetic only

from retrograd import backend
from retrograd.autograd.forward_ad import (
    add_tangents,
    elementwise_jvp,
    primal_inputs,
    primal_output,
    replay,
)
from retrograd.autograd.function import Function
from retrograd.autograd.grad_mode import is_grad_enabled
from retrograd.backend import get_xp
from retrograd.ops import dual
from retrograd.ops._util import _mismatch, as_tensor, quiet, quiet_block
from retrograd.tensor import Tensor

__all__ = [
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
]


def _quiet():
    """No NumPy warnings where inf/nan/0 is the intended value (log 0, 0/0, exp underflow)."""
    return quiet_block()


_BCE_EPS = 1e-12  # PyTorch's floor of x (1 - x) in the binary cross entropy gradient


# -- arguments -------------------------------------------------------------------------------------
def _legacy_reduction(size_average: bool | None, reduce: bool | None, stacklevel: int = 4) -> str:
    """The reduction meant by the deprecated size_average / reduce flags (PyTorch's warning)."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    name = "mean" if size_average and reduce else ("sum" if reduce else "none")
    warnings.warn(
        f"size_average and reduce args will be deprecated, please use reduction='{name}' instead.",
        UserWarning,
        stacklevel=stacklevel,  # the caller of the loss (past _reduction and the loss itself)
    )
    return name


def _reduction(reduction: str, size_average=None, reduce=None) -> str:
    """'none' | 'mean' | 'sum', from the reduction argument or the legacy flags."""
    if size_average is not None or reduce is not None:
        return _legacy_reduction(size_average, reduce)
    if reduction == "elementwise_mean":
        warnings.warn(
            "reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead.",
            UserWarning,
            stacklevel=3,
        )
        return "mean"
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _torch_dtype(dtype) -> str:
    names = {
        "float32": "Float",
        "float64": "Double",
        "float16": "Half",
        "int64": "Long",
        "int32": "Int",
        "int16": "Short",
        "int8": "Char",
        "uint8": "Byte",
        "bool": "Bool",
    }
    return names.get(str(dtype), str(dtype))


def _floating(x) -> Tensor:
    x = as_tensor(x)
    if x.data.dtype.kind != "f":
        from retrograd.ops.elementwise import cast

        x = cast(x, backend.get_default_dtype())
    return x


def _refuse_grad(value: Tensor, fn: str, arg: str) -> None:
    """PyTorch's error for an argument it does not differentiate that requires grad."""
    if value.requires_grad and is_grad_enabled():
        raise RuntimeError(
            f"The function '{fn}' is not differentiable with respect to argument '{arg}'. "
            "This input cannot have requires_grad True."
        )


def _constant(value, like: Tensor, fn: str, arg: str):
    """An optional constant (class weights, pos_weight) as an array of like's dtype.

    PyTorch does not differentiate these, and refuses inputs that require grad there."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        _refuse_grad(value, fn, arg)
        value = value.data
    xp = get_xp(like.data)
    return xp.asarray(value).astype(like.data.dtype, copy=False)


def _class_weight(weight, x: Tensor, n_classes: int, fn: str):
    w = _constant(weight, x, fn, "weight")
    if w is not None and w.size != n_classes:
        raise RuntimeError(
            f"weight tensor should be defined either for all {n_classes} classes or no classes "
            f"but got weight tensor of shape: {list(w.shape)}"
        )
    return None if w is None else w.reshape(n_classes)


def _class_targets(x: Tensor, target: Tensor):
    """Checks input/target shapes as PyTorch's nll_loss_nd; returns (x, target, class axis)."""
    shape, tshape = x.data.shape, target.data.shape
    if x.data.ndim == 0:
        raise ValueError("Expected 1 or more dimensions (got 0)")
    if target.data.dtype.kind not in "iu":
        raise RuntimeError(
            f"expected target dtype to be Long or Byte, but got {_torch_dtype(target.data.dtype)}"
        )
    if x.data.ndim != 1 and (target.data.ndim == 0 or shape[0] != tshape[0]):
        got = tshape[0] if target.data.ndim else 0
        raise ValueError(
            f"Expected input batch_size ({shape[0]}) to match target batch_size ({got})."
        )
    if x.data.ndim <= 2:
        if target.data.ndim > 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        if x.data.ndim == 1 and target.data.ndim == 1:  # one sample, its target as a list of one
            if tshape[0] != 1:
                raise ValueError(
                    f"For 1D input, 1D target must have size 1, but got target size: {tshape[0]}"
                )
            target = target.reshape(())
    elif x.data.ndim == 4 and target.data.ndim != 3:
        raise RuntimeError(
            "only batches of spatial targets supported (3D tensors) but got targets of "
            f"dimension: {target.data.ndim}"
        )
    elif tshape[1:] != shape[2:]:
        if x.data.ndim == 4:
            raise RuntimeError(f"size mismatch (got input: {list(shape)} , target: {list(tshape)}")
        raise RuntimeError(f"Expected target size {[shape[0], *shape[2:]]}, got {list(tshape)}")
    return x, target, (1 if x.data.ndim > 1 else 0)


def _check_bounds(t, keep, n_classes: int) -> None:
    bad = keep & ((t < 0) | (t >= n_classes))
    if bad.any():
        raise IndexError(f"Target {int(t[bad].reshape(-1)[0])} is out of bounds.")


# -- array helpers ---------------------------------------------------------------------------------
def _shift_of(x, axis: int):
    """Each row's max along axis (kept as a dim): the shift that keeps exp() in range, and makes
    the largest log-probability exact. Not finite, it gives a row of NaN, as PyTorch's
    log_softmax does (a row holding +inf used to keep finite gradients beside its NaN: now NaN
    throughout, as in PyTorch). Along the last axis of a 2-D array it is the element argmax
    picks, max's value (NaN and inf included) in half its time or less: NumPy's max reduces
    each short row in its own inner loop (W5's 2048 x 65 logits: 91 us; argmax and a gather:
    49 us)."""
    xp = get_xp(x)
    if axis == 1 and x.ndim == 2 and x.shape[1] > 0:
        return x[xp.arange(x.shape[0]), x.argmax(axis=1)][:, None]
    return x.max(axis=axis, keepdims=True)


def _row_sums(e, axis: int):
    """e's sums along axis, kept as a dim. Along the last axis with einsum's summing loop
    (W5's 2048 x 65: 15.5 against 57 us for NumPy's sum(axis=1), which reduces each short row in
    its own inner loop; a product with a vector of ones ran 10, but OpenBLAS threads gemv and
    its spinning threads then slowed the pool's next loops: W6 148 against 84 ms a step)."""
    xp = get_xp(e)
    if axis != e.ndim - 1 or e.ndim == 1:
        return e.sum(axis=axis, keepdims=True)
    return xp.einsum("...j->...", e)[..., None]


def _log_softmax_array(x, axis: int):
    xp = get_xp(x)
    if x.size == 0:
        return x.copy()
    with _quiet():
        shifted = x - _shift_of(x, axis)
        return shifted - xp.log(_row_sums(xp.exp(shifted), axis))


def _picks(t, axis: int):
    """The index tuple picking element [i, t[i, ...], ...] of an array with classes on `axis`:
    broadcast aranges for the other dims, no one-hot."""
    xp = get_xp(t)
    if axis == 0:
        return (t,)
    nd = t.ndim
    index = []
    for d in range(nd):
        shape = [1] * nd
        shape[d] = t.shape[d]
        index.append(xp.arange(t.shape[d]).reshape(shape))
    index.insert(1, t)
    return tuple(index)


def _along(v, axis: int, ndim: int):
    """A per-class vector shaped to broadcast against an array with classes on `axis`."""
    return dual.reshape(v, (v.shape[0],) + (1,) * (ndim - axis - 1))


def _expand_g(g, reduction: str, axis: int):
    """The incoming gradient, broadcastable against the input (classes on `axis`)."""
    return dual.expand_dims(g, (axis,)) if reduction == "none" else g


def _scatter(values, shape, index):
    """A zero array of `shape` holding `values` at `index` (indices are distinct)."""
    if isinstance(values, Tensor):
        return dual.pad_into(values, shape, index)
    out = get_xp(values).zeros(shape, dtype=values.dtype)
    out[index] = values
    return out


def _divide(total, denom):
    """total / denom, nan without a warning where denom is 0 (a mean of nothing)."""
    with _quiet():
        return total / denom


# -- cross entropy from logits, class-index targets ------------------------------------------------
class CrossEntropy(Function):
    """out = reduce(-sum_c q_c log_softmax(x)_c),  q = (1-e) w_t onehot(t) + e w / C (0 where t is
    ignored);  gx = g * (sum_c q_c * softmax(x) - q) / normaliser"""

    raw = True

    def forward(self, x, target, weight, ignore_index, smoothing, reduction):
        xp = get_xp(x)
        axis = 1 if x.ndim > 1 else 0
        n_classes = x.shape[axis]
        self.sums = None
        if (
            x.ndim == 2
            and target.ndim == 1
            and weight is None
            and not smoothing
            and reduction == "mean"
            and x.shape[0] > 0
            and n_classes > 0
        ):
            out = self._mean_of_rows(xp, x, target, ignore_index, n_classes)
            if out is not None:
                return out
        keep = target != ignore_index
        _check_bounds(target, keep, n_classes)
        t = xp.where(keep, target, 0)
        index = _picks(t, axis)
        logp = _log_softmax_array(x, axis)
        keepf = keep.astype(x.dtype)
        w_t = keepf if weight is None else weight[t] * keepf
        # ignored samples pick class 0 as a placeholder: zero them whatever its log-probability;
        # -inf logits elsewhere give nan (0 * -inf) without a warning, as in PyTorch
        with _quiet():
            loss = xp.where(keep, -(w_t * logp[index]), 0)
            if smoothing:
                loss = loss * (1 - smoothing)
                wl = logp if weight is None else logp * _along(weight, axis, x.ndim)
                loss = loss - xp.where(keep, (smoothing / n_classes) * wl.sum(axis=axis), 0)
        # per-sample sum of q (the softmax coefficient of the gradient)
        total_q = w_t
        if smoothing:
            w_sum = float(n_classes) if weight is None else weight.sum()
            total_q = (1 - smoothing) * w_t + (smoothing / n_classes) * w_sum * keepf
        self.axis, self.smoothing, self.reduction = axis, smoothing, reduction
        self.index, self.weight, self.keepf = index, weight, keepf
        denom = None
        if reduction == "mean":
            denom = w_t.sum()
            out = _divide(loss.sum(), denom)
        elif reduction == "sum":
            out = loss.sum()
        else:
            out = loss
        self.denom = denom
        self.save(x, logp, w_t, total_q)
        return xp.asarray(out)

    def _mean_of_rows(self, xp, x, target, ignore_index, n_classes):
        """The common case, (N, C) logits and N targets none of them ignored, mean over the
        samples: the general form's results with fewer array calls, the log-softmax never
        written out (only the picked entries and each row's log-sum-exp), and exp(x - shift)
        kept with its row sums so that the backward's softmax is one product, not another exp.
        Forward (+ backward) on W2's 128 x 10: 22.9 (49.9) us, W5's 2048 x 65: 191 (296) us;
        before this: 29.2 (56.2) and 328 (517). None when a target is out of range or ignored
        (the general form says which)."""
        lo = int(target.min())
        if lo < 0:  # (indexing would wrap it)
            return None
        if ignore_index >= lo and ignore_index <= int(target.max()):  # (never for -100)
            return None
        index = (xp.arange(x.shape[0]), target)
        with _quiet():
            # shifted by the row max, so that the largest log-probability is exact (with no
            # shift, log(sum exp) - x_t cancels: an error of ulp(x_t) for a confident class)
            e = x - _shift_of(x, 1)
            try:
                picked = e[index]
            except IndexError:  # a target >= C
                return None
            xp.exp(e, out=e)
            sums = _row_sums(e, 1)
            loss = xp.log(sums[:, 0]) - picked  # -log_softmax(x)[i, t_i]
        keepf = xp.ones(x.shape[0], dtype=x.dtype)
        denom = x.dtype.type(x.shape[0])  # the general form's sum of the kept samples' weights
        self.axis, self.smoothing, self.reduction = 1, 0.0, "mean"
        self.index, self.weight, self.keepf, self.denom = index, None, keepf, denom
        self.sums = sums  # backward: softmax = e / sums, no exp() again
        self.save(x, e, keepf, keepf)
        return xp.asarray(_divide(loss.sum(), denom))

    def backward(self, g):
        x, logp, w_t, total_q = self.saved
        axis, eps = self.axis, self.smoothing
        if self.denom is not None:
            with _quiet():  # nothing counted: the loss is nan, its gradient 0 (as in PyTorch)
                g = g * (1 / self.denom if self.denom != 0 else 0)
        if isinstance(x, Tensor):
            from retrograd.ops.reduce import softmax

            p = softmax(x, axis)
        else:
            with _quiet():  # exp of very negative log-probabilities underflows to 0
                p = get_xp(logp).exp(logp) if self.sums is None else logp  # (the short path: e)
        coef = dual.expand_dims(g * total_q, (axis,))
        if self.sums is not None and not isinstance(x, Tensor):
            with _quiet():
                coef = coef / self.sums
        gx = p * coef
        if eps:
            n_classes = x.shape[axis]
            smooth = dual.expand_dims(g * self.keepf * (eps / n_classes), (axis,))
            if self.weight is not None:
                smooth = smooth * _along(self.weight, axis, x.ndim)
            gx = gx - smooth
        picked = g * w_t * (1 - eps) if eps else g * w_t
        if isinstance(gx, Tensor):
            return gx - _scatter(picked, x.shape, self.index), None
        gx[self.index] -= picked  # distinct positions: one class per sample
        return gx, None

    def jvp(self, tx, tt):
        # every logit feeds one sample's loss: J has one nonzero per column, J^T 1, so
        # J t = the per-sample (or total) sum of t * J^T 1
        gx, _ = self.backward(get_xp(tx).ones(primal_output(self).shape, dtype=tx.dtype))
        with _quiet():
            return (tx * gx).sum(axis=self.axis if self.reduction == "none" else None)


# -- cross entropy from logits, probability targets ------------------------------------------------
class SoftCrossEntropy(Function):
    """out = reduce(-sum_c w_c q_c log_softmax(x)_c),  q = (1-e) t + e / C;
    gx = g (sum_c w_c q_c softmax(x) - w q) / n,  gt = -g (1-e) w log_softmax(x) / n,
    gw = -sum g q log_softmax(x) / n  (n: the number of samples for 'mean', else 1)"""

    raw = True

    def forward(self, x, target, *weight, smoothing, reduction):
        axis = 1 if x.ndim > 1 else 0
        n_classes = x.shape[axis]
        self.axis, self.smoothing, self.reduction = axis, smoothing, reduction
        self.n = (x.size // n_classes if n_classes else 0) if reduction == "mean" else 1
        logp = _log_softmax_array(x, axis)
        q = target * (1 - smoothing) + smoothing / n_classes if smoothing else target
        if weight:
            q = q * _along(weight[0], axis, x.ndim)
        with _quiet():
            loss = -(q * logp).sum(axis=axis)
            if reduction == "mean":
                loss = _divide(loss.sum(), self.n)
            elif reduction == "sum":
                loss = loss.sum()
        self.save(x, target, *weight, logp)
        return get_xp(x).asarray(loss)

    def backward(self, g):
        x, target, *weight, logp = self.saved
        axis, eps = self.axis, self.smoothing
        n_classes = x.shape[axis]
        if self.n != 1:
            g = g * (1 / self.n if self.n else 0)
        g = _expand_g(g, self.reduction, axis)
        if isinstance(x, Tensor):
            from retrograd.ops.reduce import log_softmax, softmax

            p, logp = softmax(x, axis), log_softmax(x, axis)
        else:
            with _quiet():
                p = get_xp(logp).exp(logp)
        w = _along(weight[0], axis, x.ndim) if weight else None
        q = target * (1 - eps) + eps / n_classes if eps else target
        wq = q * w if weight else q
        need = self.needs_input_grad
        gx = g * (dual.sum(wq, axis, True) * p - wq) if need[0] else None
        gt = None
        if need[1]:
            gt = -(g * logp)
            gt = gt * w if weight else gt
            gt = gt * (1 - eps) if eps else gt
        if not weight:
            return gx, gt
        gw = None
        if need[2]:
            others = tuple(d for d in range(x.ndim) if d != axis)
            gw = -dual.sum(g * q * logp, others) if others else -(g * q * logp)
        return gx, gt, gw

    def jvp(self, tx, tt, *tw):
        x, target, *weight, logp = self.saved
        axis, eps = self.axis, self.smoothing
        xp = get_xp(x)
        w = _along(weight[0], axis, x.ndim) if weight else None
        q = target * (1 - eps) + eps / x.shape[axis] if eps else target
        terms = []
        with _quiet():
            if tx is not None:  # d log_softmax = t - sum(softmax * t)
                wq = q * w if weight else q
                terms.append(wq * (tx - (xp.exp(logp) * tx).sum(axis=axis, keepdims=True)))
            if tt is not None:
                dq = tt * (1 - eps) if eps else tt
                terms.append((dq * w if weight else dq) * logp)
            if tw and tw[0] is not None:
                terms.append(q * _along(tw[0], axis, x.ndim) * logp)
            total = add_tangents(*terms)
            if total is None:
                return None
            loss = -total.sum(axis=axis)
            if self.reduction == "none":
                return loss
            loss = loss.sum()
            if self.n != 1:  # 'mean': over the samples (none: 0, as the rule)
                loss = loss * (1 / self.n if self.n else 0)
            return loss


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross entropy between logits (classes on dim 1) and class indices or class probabilities.

    >>> cross_entropy(logits, labels)                       # logits (N, C), labels (N,) int
    >>> cross_entropy(logits, probs, label_smoothing=0.1)   # probs (N, C)
    """
    reduction = _reduction(reduction, size_average, reduce)
    x, target = input, as_tensor(target)
    if x.data.dtype.kind != "f":
        raise NotImplementedError(
            '"log_softmax_lastdim_kernel_impl" not implemented for '
            f"'{_torch_dtype(x.data.dtype)}'"
        )
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing:g}")
    eps = float(label_smoothing)
    if x.data.shape == target.data.shape:
        if target.data.dtype.kind != "f":
            raise RuntimeError(
                "Expected floating point type for target with class probabilities, got "
                f"{_torch_dtype(target.data.dtype)}"
            )
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        n_classes = x.data.shape[1 if x.data.ndim > 1 else 0]
        if target.data.dtype != x.data.dtype:
            target = target.to(x.data.dtype)
        ws = ()
        if weight is not None:
            w = as_tensor(weight)
            if w.data.size != n_classes:
                raise RuntimeError(
                    f"weight tensor should be defined either for all {n_classes} classes or no "
                    f"classes but got weight tensor of shape: {list(w.data.shape)}"
                )
            ws = (w.reshape(n_classes).to(x.data.dtype),)
        return SoftCrossEntropy.apply(x, target, *ws, smoothing=eps, reduction=reduction)
    x, target, axis = _class_targets(x, target)
    w = _class_weight(weight, x, x.data.shape[axis], "nll_loss_forward")
    return CrossEntropy.apply(
        x, target, weight=w, ignore_index=ignore_index, smoothing=eps, reduction=reduction
    )


# -- negative log-likelihood -----------------------------------------------------------------------
class NLLLoss(Function):
    """out = reduce(-w_t x[t]) (0 where t is ignored);  gx = -g w_t / normaliser at [t], else 0"""

    raw = True

    def forward(self, x, target, weight, ignore_index, reduction):
        xp = get_xp(x)
        axis = 1 if x.ndim > 1 else 0
        keep = target != ignore_index
        _check_bounds(target, keep, x.shape[axis])
        t = xp.where(keep, target, 0)
        self.index = _picks(t, axis)
        keepf = keep.astype(x.dtype)
        w_t = keepf if weight is None else weight[t] * keepf
        with _quiet():
            loss = xp.where(keep, -(w_t * x[self.index]), 0)
        self.reduction, self.denom = reduction, None
        if reduction == "mean":
            self.denom = w_t.sum()
            loss = _divide(loss.sum(), self.denom)
        elif reduction == "sum":
            loss = loss.sum()
        self.shape = x.shape
        self.save(w_t)
        return xp.asarray(loss)

    def backward(self, g):
        (w_t,) = self.saved
        if self.denom is not None:
            with _quiet():
                g = g * (1 / self.denom if self.denom != 0 else 0)
        return _scatter(-(g * w_t), self.shape, self.index), None

    def jvp(self, tx, tt):
        return replay(self, tx, primal_inputs(self)[1])  # linear in x (target: indices)


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of class indices given log-probabilities (classes on dim 1)."""
    reduction = _reduction(reduction, size_average, reduce)
    x, target, axis = _class_targets(input, as_tensor(target))
    w = _class_weight(weight, x, x.data.shape[axis], "nll_loss_forward")
    return NLLLoss.apply(x, target, weight=w, ignore_index=ignore_index, reduction=reduction)


# -- binary cross entropy --------------------------------------------------------------------------
class BinaryCrossEntropy(Function):
    """out = -w (t max(log x, -100) + (1 - t) max(log(1 - x), -100));
    gx = g w (x - t) / max(x (1 - x), 1e-12),  gt = g w (log(1 - x) - log x)"""

    raw = True

    def forward(self, x, target, weight):
        xp = get_xp(x)
        with _quiet():
            log_x = xp.maximum(xp.log(x), -100)
            log_1mx = xp.maximum(xp.log1p(-x), -100)
        loss = (target - 1) * log_1mx - target * log_x
        if weight is not None:
            loss = loss * weight
        self.weight = weight
        self.save(x, target)
        return loss

    def backward(self, g):
        x, target = self.saved
        if self.weight is not None:
            g = g * self.weight
        need = self.needs_input_grad
        gx = gt = None
        if isinstance(x, Tensor):
            from retrograd.ops.elementwise import clamp, log, log1p

            if need[0]:
                gx = g * (x - target) / clamp(x * (1 - x), min=_BCE_EPS)
            if need[1]:
                gt = g * (log1p(-x) - log(x))
            return gx, gt
        xp = get_xp(x)
        with _quiet():
            if need[0]:
                gx = g * (x - target) / xp.maximum(x * (1 - x), _BCE_EPS)
            if need[1]:
                gt = g * (xp.log1p(-x) - xp.log(x))
        return gx, gt

    def jvp(self, tx, tt):
        with _quiet():
            return elementwise_jvp(self, (tx, tt))


def _check_broadcasts_to(v, shape: tuple) -> None:
    """v (weight, pos_weight) must broadcast to the input's shape; PyTorch's errors otherwise."""
    try:
        full = broadcast_shapes(v.shape, shape)
    except ValueError:
        a, b, dim = _mismatch(v.shape, shape)
        raise RuntimeError(
            f"The size of tensor a ({a}) must match the size of tensor b ({b}) at non-singleton "
            f"dimension {dim}"
        ) from None
    if full != shape:
        raise RuntimeError(
            f"output with shape {list(shape)} doesn't match the broadcast shape {list(full)}"
        )


def _check_same_size(input: Tensor, target: Tensor, message: str) -> None:
    if input.data.shape != target.data.shape:
        shape = f"torch.Size({list(target.data.shape)})"
        raise ValueError(message.format(target=shape, input=f"torch.Size({list(input.shape)})"))


def binary_cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """-w (t log(x) + (1 - t) log(1 - x)) for probabilities x, logs clamped at -100 as PyTorch."""
    reduction = _reduction(reduction, size_average, reduce)
    x, target = _floating(input), as_tensor(target)
    _check_same_size(
        x,
        target,
        "Using a target size ({target}) that is different to the input size ({input}) is "
        "deprecated. Please ensure they have the same size.",
    )
    xd = x.data
    if not bool(((xd >= 0) & (xd <= 1)).all()):
        raise RuntimeError("all elements of input should be between 0 and 1")
    target = target if target.data.dtype == xd.dtype else target.to(xd.dtype)
    w = _constant(weight, x, "binary_cross_entropy", "weight")
    if w is not None:
        w = get_xp(w).broadcast_to(w, xd.shape)
    return _reduce(BinaryCrossEntropy.apply(x, target, weight=w), reduction)


class BinaryCrossEntropyWithLogits(Function):
    """out = w ((1 - t) x + lw softplus(-x)),  lw = 1 + (pw - 1) t;
    gx = g w (lw sigmoid(x) - pw t),  gt = g w ((pw - 1) softplus(-x) - x)"""

    raw = True

    @quiet  # exp(-|x|) underflows to 0 for large |x|; x = -inf gives -inf + inf = nan
    def forward(self, x, target, weight, pos_weight):
        xp = get_xp(x)
        softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)
        if pos_weight is None:
            loss = (1 - target) * x + softplus_neg
        else:
            loss = (1 - target) * x + (1 + (pos_weight - 1) * target) * softplus_neg
        if weight is not None:
            loss = loss * weight
        self.weight, self.pos_weight = weight, pos_weight
        self.save(x, target)
        return loss

    def backward(self, g):
        x, target = self.saved
        pw = self.pos_weight
        if self.weight is not None:
            g = g * self.weight
        need = self.needs_input_grad
        gx = gt = None
        if need[0]:
            with _quiet():  # sigmoid's exp(-|x|) underflows to 0 for large |x|
                s = dual.sigmoid(x)
            gx = g * (s - target) if pw is None else g * ((1 + (pw - 1) * target) * s - pw * target)
        if need[1]:
            gt = -(g * x)
            if pw is not None:
                if isinstance(x, Tensor):
                    from retrograd.ops.activation import logsigmoid

                    softplus_neg = -logsigmoid(x)
                else:
                    xp = get_xp(x)
                    with _quiet():
                        softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)
                gt = gt + g * (pw - 1) * softplus_neg
        return gx, gt

    def jvp(self, tx, tt):
        with _quiet():
            return elementwise_jvp(self, (tx, tt))


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """Binary cross entropy of sigmoid(input), computed stably from the logits:
    max(x, 0) - x t + log1p(exp(-|x|)), with pos_weight scaling the positive term."""
    reduction = _reduction(reduction, size_average, reduce)
    x, target = _floating(input), as_tensor(target)
    _check_same_size(x, target, "Target size ({target}) must be the same as input size ({input})")
    xd = x.data
    target = target if target.data.dtype == xd.dtype else target.to(xd.dtype)
    fn = "binary_cross_entropy_with_logits"
    w = _constant(weight, x, fn, "weight")
    pw = _constant(pos_weight, x, fn, "pos_weight")
    for v in (w, pw):
        if v is not None:
            _check_broadcasts_to(v, xd.shape)
    loss = BinaryCrossEntropyWithLogits.apply(x, target, weight=w, pos_weight=pw)
    return _reduce(loss, reduction)


# -- mean squared error ----------------------------------------------------------------------------
class SquaredError(Function):
    """out = reduce((x - t)^2);  gx = 2 g (x - t) / n,  gt = -gx  (n: the count under "mean")

    One node instead of sub, mul and mean (nn.functional.mse_loss routes here when input and
    target have one shape and dtype): the same values and gradient bits as those three, at about
    half their cost. Only x and t are saved (version-checked, as PyTorch's MseLossBackward saves
    them); the difference is recomputed in backward rather than held, and under create_graph it
    is rebuilt from the Tensors so that the gradient stays differentiable.
    """

    raw = True

    @quiet
    def forward(self, x, target, reduction):
        d = x - target
        loss = d * d
        self.save(x, target)
        self.n, self.reduction = None, reduction
        if reduction == "mean":
            self.n = n = loss.size
            s = loss.sum()
            return s / n if n else s * math.nan  # the mean of nothing is nan, as ops.mean
        if reduction == "sum":
            return loss.sum()
        return loss

    def backward(self, g):
        x, target = self.saved
        n = self.n
        if n is not None:
            g = g / n if n else g * math.nan
        if isinstance(x, Tensor):
            gx = g * (x - target)
            gx = gx * 2
        else:
            gx = g * (x - target)
            gx *= 2  # exact: the bits of (g d) + (g d), what sub, mul and mean gave
        return gx, (-gx if self.needs_input_grad[1] else None)

    def jvp(self, tx, tt):
        x, target = self.saved
        d = x - target
        t = add_tangents(tx, None if tt is None else -tt)
        if t is None:
            return None
        t = t * d
        t = t + t
        n = self.n
        if n is not None:
            s = t.sum()
            return s / n if n else s * math.nan
        return t.sum() if self.reduction == "sum" else t
