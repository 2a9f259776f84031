"""Linear algebra: matmul in every form PyTorch accepts, mm, bmm, dot, outer, einsum, tensordot,
norms.

Products run on the array library's BLAS routines (`xp.matmul`, `xp.einsum(optimize=True)`);
their gradient rules are products again, so they serve create_graph=True unchanged. Shape and
dtype errors follow PyTorch's wording, including which kernel (dot, mv, mm, bmm) reports them.
"""

from __future__ import annotations

import math

import numpy as np

from retrograd import parallel
from retrograd.autograd.forward_ad import add_tangents, replay
from retrograd.autograd.function import Function
from retrograd.backend import as_dtype, get_xp
from retrograd.ops import dual
from retrograd.ops._util import (
    as_tensor,
    canonical_dim,
    check_broadcast,
    l2_norm,
    quiet,
    quiet_block,
)
from retrograd.tensor import Tensor

__all__ = [
    "matmul",
    "mm",
    "bmm",
    "dot",
    "outer",
    "einsum",
    "tensordot",
    "linalg_norm",
    "vector_norm",
    "matrix_norm",
]

# PyTorch's spellings of dtypes in its error messages: ScalarType names ("Float") and the C++
# type names ("float") that the BLAS dispatchers print.
_SCALAR_NAMES = {
    "float16": "Half",
    "float32": "Float",
    "float64": "Double",
    "int8": "Char",
    "int16": "Short",
    "int32": "Int",
    "int64": "Long",
    "uint8": "Byte",
    "bool": "Bool",
    "complex64": "ComplexFloat",
    "complex128": "ComplexDouble",
}
_CPP_NAMES = {
    "float16": "c10::Half",
    "float32": "float",
    "float64": "double",
    "int8": "signed char",
    "int16": "short int",
    "int32": "int",
    "int64": "long int",
    "uint8": "unsigned char",
    "bool": "bool",
    "complex64": "c10::complex<float>",
    "complex128": "c10::complex<double>",
}


def _scalar_name(dtype) -> str:
    return _SCALAR_NAMES.get(str(dtype), str(dtype))


def _cpp_name(dtype) -> str:
    return _CPP_NAMES.get(str(dtype), str(dtype))


def _const(array, like):
    """`array` as a constant of the rule: a Tensor without history when `like` is a Tensor."""
    return Tensor._make(array, False, None, 0) if isinstance(like, Tensor) else array


def _as_operands(x, y) -> tuple[Tensor, Tensor]:
    """Tensors as they are; arrays and lists become Tensors (of the other operand's dtype)."""
    if isinstance(x, Tensor) and isinstance(y, Tensor):
        return x, y
    if not isinstance(x, Tensor):
        x = as_tensor(x)
        if isinstance(y, Tensor) and x.data.dtype != y.data.dtype:
            x = Tensor._make(x.data.astype(y.data.dtype), False, None, 0)
    if not isinstance(y, Tensor):
        y = as_tensor(y)
        if y.data.dtype != x.data.dtype:
            y = Tensor._make(y.data.astype(x.data.dtype), False, None, 0)
    return x, y


# -- matmul and its fixed-rank forms -------------------------------------------------------------
class MatMul(Function):
    """out = x @ y (batched, broadcast);  gx = g @ y^T,  gy = x^T @ g"""

    raw = True
    saved_uses = ((1,), (0,))  # x only for gy, y only for gx

    @quiet  # 0 * inf in a product is nan without a warning, as in PyTorch
    def forward(self, x, y):
        self.save(x, y)
        return parallel.matmul(x, y)  # (anything but two large matrices: x @ y as it is)

    def backward(self, g):
        x, y = self.saved  # only what the needed gradients use (the other may be None)
        need = self.needs_input_grad
        xshape, yshape = self._in_shapes
        xnd, ynd = len(xshape), len(yshape)
        gx = gy = None
        if xnd == 1 and ynd == 1:  # dot
            gx = g * y if need[0] else None
            gy = g * x if need[1] else None
        elif xnd == 1:  # (k) @ (..., k, n) -> (..., n)
            if need[0]:
                gx = y @ dual.expand_dims(g, (-1,))  # (..., k, 1); the engine sums the batch
                gx = dual.reshape(gx, gx.shape[:-1])
            if need[1]:
                gy = dual.expand_dims(x, (-1,)) * dual.expand_dims(g, (-2,))
        elif ynd == 1:  # (..., m, k) @ (k) -> (..., m)
            if need[0]:
                gx = dual.expand_dims(g, (-1,)) * y
            if need[1]:
                k = xshape[-1]
                # fold the batch into the rows: one matrix-vector product, no batched temporary
                xf = dual.reshape(x, (-1, k)) if xnd > 2 else x
                gy = dual.swap_last(xf) @ dual.reshape(g, (-1,))
        else:
            if need[0]:
                gx = parallel.matmul(g, dual.swap_last(y))
            if need[1]:
                if ynd == 2 and xnd > 2:  # batched input times a matrix (a linear layer)
                    k, n = yshape
                    gy = parallel.matmul(
                        dual.swap_last(dual.reshape(x, (-1, k))), dual.reshape(g, (-1, n))
                    )
                else:
                    gy = parallel.matmul(dual.swap_last(x), g)
        return gx, gy

    def jvp(self, tx, ty):
        x, y = self.saved
        xp = get_xp(x)
        return add_tangents(
            None if tx is None else xp.matmul(tx, y), None if ty is None else xp.matmul(x, ty)
        )


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _fmt(shape) -> str:
    return "x".join(str(s) for s in shape)


def _mm_error(a, b):
    return RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({_fmt(a)} and {_fmt(b)})")


def _dot_size_error(n, m):
    return RuntimeError(
        f"inconsistent tensor size, expected tensor [{n}] and src [{m}] to have the same number "
        f"of elements, but got {n} and {m} elements respectively"
    )


def _bmm_size_error(batch, k, got):
    return RuntimeError(
        f"Expected size for first two dimensions of batch2 tensor to be: [{batch}, {k}] but got: "
        f"[{got[0]}, {got[1]}]."
    )


def _mm_dtype_error(d1, d2):
    return RuntimeError(
        f"expected m1 and m2 to have the same dtype, but got: {_cpp_name(d1)} != {_cpp_name(d2)}"
    )


def _dot_dtype_error(d1, d2):
    return RuntimeError(
        "dot : expected both vectors to have same dtype, but found "
        f"{_scalar_name(d1)} and {_scalar_name(d2)}"
    )


def _bmm_dtype_error(d1, d2):
    return RuntimeError(f"expected scalar type {_scalar_name(d1)} but found {_scalar_name(d2)}")


def _should_fold(x: Tensor, y: Tensor) -> bool:
    """PyTorch's choice between folding the batch into one mm/mv and a bmm (it decides which
    kernel reports a shape error)."""
    a, b = x.data, y.data
    larger1 = a.ndim >= b.ndim
    if larger1:
        shape, strides, other = a.shape, a.strides, b.ndim
    else:
        shape = b.shape[:-2] + (b.shape[-1], b.shape[-2])
        strides = b.strides[:-2] + (b.strides[-1], b.strides[-2])
        other = a.ndim
    if not (len(shape) >= 3 and other <= 2):
        return False
    if (y if larger1 else x).requires_grad:
        return True
    if a.ndim == 2:
        return False
    if _prod(shape) == 0:
        return True
    return all(strides[i] == strides[i + 1] * shape[i + 1] for i in range(len(shape) - 2))


def _check_matmul(x: Tensor, y: Tensor) -> None:
    """Raise PyTorch's error for operands matmul cannot multiply (shape first, then dtype)."""
    a, b = x.data.shape, y.data.shape
    da, db = len(a), len(b)
    dx, dy = x.data.dtype, y.data.dtype
    if da == 0 or db == 0:
        raise RuntimeError(
            f"both arguments to matmul need to be at least 1D, but they are {da}D and {db}D"
        )
    if da == 1 and db == 1:
        if dx != dy:
            raise _dot_dtype_error(dx, dy)
        if a[0] != b[0]:
            raise _dot_size_error(a[0], b[0])
        return
    if da <= 2 and db <= 2:
        m1 = a if da == 2 else (1,) + a
        if db == 1:  # mv
            if a[1] != b[0]:
                raise RuntimeError(
                    f"size mismatch, got input ({a[0]}), mat ({_fmt(a)}), vec ({b[0]})"
                )
            if dx != dy:
                raise RuntimeError(
                    "addmv input tensors must have the same dtype, but got "
                    f"{_scalar_name(dy)}, {_scalar_name(dx)}, and {_scalar_name(dy)}"
                )
            return
        if m1[1] != b[0]:
            raise _mm_error(m1, b)
        if dx != dy:
            raise _mm_dtype_error(dx, dy)
        return
    if _should_fold(x, y):
        if da >= db:  # fold x's batch into its rows
            t1, t2, d1, d2 = a, b, dx, dy
        else:  # y^T folded, times x^T
            t1 = b[:-2] + (b[-1], b[-2])
            t2 = a if da == 1 else (a[1], a[0])
            d1, d2 = dy, dx
        rows, k = _prod(t1[:-1]), t1[-1]
        if len(t2) == 1:
            if k != t2[0]:
                raise RuntimeError(
                    f"size mismatch, got input ({rows}), mat ({rows}x{k}), vec ({t2[0]})"
                )
            if d1 != d2:
                raise RuntimeError(
                    "addmv input tensors must have the same dtype, but got "
                    f"{_scalar_name(d2)}, {_scalar_name(d1)}, and {_scalar_name(d2)}"
                )
            return
        if k != t2[0]:
            raise _mm_error((rows, k), t2)
        if d1 != d2:
            raise _mm_dtype_error(d1, d2)
        return
    # batched: broadcast the batch dims, then one bmm
    batch_a, batch_b = a[: max(da - 2, 0)], b[: max(db - 2, 0)]
    try:
        batch = np.broadcast_shapes(batch_a, batch_b)
    except ValueError:
        check_broadcast(
            Tensor._make(np.empty(batch_a, dtype=np.bool_), False, None, 0),
            Tensor._make(np.empty(batch_b, dtype=np.bool_), False, None, 0),
        )
        raise
    k1 = a[-1]
    k2 = b[-2] if db > 1 else b[0]
    if k1 != k2:
        raise _bmm_size_error(_prod(batch), k1, (_prod(batch), k2))
    if dx != dy:
        raise _bmm_dtype_error(dx, dy)


def _matmul_ok(x: Tensor, y: Tensor) -> bool:
    a, b = x.data, y.data
    if a.ndim == 0 or b.ndim == 0 or a.dtype != b.dtype:
        return False
    if a.shape[-1] != (b.shape[-2] if b.ndim > 1 else b.shape[0]):
        return False
    if a.ndim > 2 and b.ndim > 2:
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            return False
    return True


def matmul(x, y) -> Tensor:
    """Matrix product with PyTorch semantics (1-D, 2-D, batched, broadcast batch)."""
    x, y = _as_operands(x, y)
    if not _matmul_ok(x, y):
        _check_matmul(x, y)
    out = MatMul.apply(x, y)
    xnd, ynd = x.data.ndim, y.data.ndim
    if out.grad_fn is not None and (xnd > 2 or ynd > 2 or (xnd == 1 and ynd == 2)):
        # PyTorch's matmul is here a product followed by a view (squeeze, _unsafe_view):
        # dot, mv and mm alone are single nodes
        out.grad_fn.top_saves = False
    return out


def mm(x, y) -> Tensor:
    """Product of two matrices (2-D only; use matmul to broadcast)."""
    x, y = _as_operands(x, y)
    if x.data.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if y.data.ndim != 2:
        raise RuntimeError("mat2 must be a matrix")
    if x.data.shape[1] != y.data.shape[0]:
        raise _mm_error(x.data.shape, y.data.shape)
    if x.data.dtype != y.data.dtype:
        raise _mm_dtype_error(x.data.dtype, y.data.dtype)
    return MatMul.apply(x, y)


def bmm(x, y) -> Tensor:
    """Batched product of (b, n, m) and (b, m, p) tensors (3-D only, no broadcasting)."""
    x, y = _as_operands(x, y)
    if x.data.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if y.data.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    a, b = x.data.shape, y.data.shape
    if (b[0], b[1]) != (a[0], a[2]):
        raise _bmm_size_error(a[0], a[2], b)
    if x.data.dtype != y.data.dtype:
        raise _bmm_dtype_error(x.data.dtype, y.data.dtype)
    return MatMul.apply(x, y)


def dot(x, y) -> Tensor:
    """Inner product of two 1-D tensors of the same size."""
    x, y = _as_operands(x, y)
    if x.data.ndim != 1 or y.data.ndim != 1:
        raise RuntimeError(
            f"1D tensors expected, but got {x.data.ndim}D and {y.data.ndim}D tensors"
        )
    if x.data.dtype != y.data.dtype:
        raise _dot_dtype_error(x.data.dtype, y.data.dtype)
    if x.data.shape[0] != y.data.shape[0]:
        raise _dot_size_error(x.data.shape[0], y.data.shape[0])
    return MatMul.apply(x, y)


def outer(x, y) -> Tensor:
    """Outer product of two 1-D tensors: out[i, j] = x[i] * y[j] (dtypes promote)."""
    from retrograd.ops.elementwise import mul
    from retrograd.ops.movement import unsqueeze

    x, y = as_tensor(x), as_tensor(y)
    if x.data.ndim != 1:
        raise RuntimeError(f"outer: Expected 1-D argument self, but got {x.data.ndim}-D")
    if y.data.ndim != 1:
        raise RuntimeError(f"outer: Expected 1-D argument vec2, but got {y.data.ndim}-D")
    with quiet_block():  # float32 overflow to inf, 0 * inf: quietly, as PyTorch
        return mul(unsqueeze(x, 1), y)


# -- einsum --------------------------------------------------------------------------------------
_LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # PyTorch's label order
_ELLIPSIS = "..."


def _einsum_arrays(equation: str, *arrays):
    xp = get_xp(arrays[0])
    # optimize=True contracts pairwise through BLAS (tensordot/matmul); one operand needs none
    out = xp.einsum(equation, *arrays, optimize=len(arrays) > 1)
    out = xp.asarray(out)
    if len(arrays) == 1 and not out.flags.owndata:
        out = out.copy()  # einsum returns views for transposes and diagonals; outputs own memory
    return out


def _einsum_dual(equation: str, operands: list):
    """einsum on arrays (plain backward) or Tensors (create_graph): one rule for both."""
    if any(isinstance(o, Tensor) for o in operands):
        tensors = [
            o if isinstance(o, Tensor) else Tensor._make(o, False, None, 0) for o in operands
        ]
        return Einsum.apply(*tensors, equation=equation)
    return _einsum_arrays(equation, *operands)


class Einsum(Function):
    """out = einsum(eq, x_1..x_n);  gx_k = einsum(eq with x_k swapped for g), diagonals of x_k
    written through identity matrices and its lone indices broadcast"""

    raw = True

    @quiet
    def forward(self, *xs, equation):
        self.equation = equation
        self.shapes = tuple(x.shape for x in xs)
        if len(xs) > 1:  # one operand's gradient needs only its shape
            self.save(*xs)
        return _einsum_arrays(equation, *xs)

    def backward(self, g):
        lhs, out_sub = self.equation.split("->")
        subs = lhs.split(",")
        xs = self.saved if len(subs) > 1 else (None,)
        sizes = {}
        for sub, shape in zip(subs, self.shapes):
            sizes.update(zip(sub, shape))
        grads = []
        for k, need in enumerate(self.needs_input_grad):
            grads.append(
                _einsum_grad(k, subs, out_sub, xs, sizes, self.shapes[k], g) if need else None
            )
        return tuple(grads)

    def jvp(self, *tangents):
        if len(tangents) == 1:
            return replay(self, *tangents)
        # multilinear: the sum over operands of the product with that operand's tangent
        xs = self.saved
        return add_tangents(
            *(
                None if t is None else _einsum_arrays(self.equation, *xs[:k], t, *xs[k + 1 :])
                for k, t in enumerate(tangents)
            )
        )


def _einsum_grad(k, subs, out_sub, xs, sizes, shape, g):
    """Gradient of operand k: contract g with the other operands onto k's subscripts."""
    used = set("".join(subs) + out_sub)
    fresh = (c for c in _LABELS if c not in used)
    target, seen = [], set()
    operands = [(s, x) for j, (s, x) in enumerate(zip(subs, xs)) if j != k]
    operands.append((out_sub, g))
    data = dual.data(g)
    xp = get_xp(data)
    for c in subs[k]:
        if c in seen:  # a repeated index (a diagonal): d/dx_ii spreads onto the diagonal
            f = next(fresh)
            target.append(f)
            operands.append((c + f, xp.eye(sizes[c], dtype=data.dtype)))
        else:
            seen.add(c)
            target.append(c)
    present = set("".join(s for s, _ in operands))
    kept = "".join(c for c in target if c in present)
    in_subs = [s for s, _ in operands]
    if len(operands) == 1 and in_subs[0] == kept:
        gk = operands[0][1]
    else:
        gk = _einsum_dual(",".join(in_subs) + "->" + kept, [o for _, o in operands])
    if len(kept) < len(target):  # indices only x_k has are summed in the forward: broadcast back
        gk = dual.reshape(gk, tuple(n if c in present else 1 for n, c in zip(shape, target)))
        gk = dual.broadcast_to(gk, shape)
    return gk


def _sublist_equation(args) -> tuple[str, tuple]:
    """einsum(op1, [0, 1], op2, [1, 2], [0, 2]) as an equation string (PyTorch's mapping:
    0-25 are A-Z, 26-51 are a-z, Ellipsis is '...')."""

    def term(sublist) -> str:
        out = []
        for n in sublist:
            if n is Ellipsis:
                out.append(_ELLIPSIS)
            elif isinstance(n, (int, np.integer)) and 0 <= n < 52:
                out.append(_LABELS[n])
            else:
                raise ValueError(
                    "einsum(): subscript in subscript list is not within the valid range [0, 52)"
                )
        return "".join(out)

    operands = args[0::2]
    sublists = args[1::2]
    equation = ",".join(term(s) for s in sublists)
    if len(args) % 2 == 1:  # an odd count: the last entry is the output's sublist
        operands, equation = operands[:-1], equation + "->" + term(args[-1])
    return equation, tuple(operands)


def _parse_einsum(equation: str, n_ops: int):
    """Labels per operand (with "..." entries) and the output labels or None, checked as
    PyTorch checks them."""
    arrow = equation.find("->")
    lhs = equation if arrow < 0 else equation[:arrow]
    terms = [[]]
    found_ell = False
    i = 0
    while i < len(lhs):
        c = lhs[i]
        if c == " ":
            pass
        elif c == ".":
            op = len(terms) - 1
            if found_ell:
                raise RuntimeError(
                    f"einsum(): found '.' for operand {op} for which an ellipsis was already found"
                )
            if not (i + 2 < len(lhs) and lhs[i + 1] == "." and lhs[i + 2] == "."):
                raise RuntimeError(
                    f"einsum(): found '.' for operand {op} that is not part of any ellipsis"
                )
            i += 2
            terms[-1].append(_ELLIPSIS)
            found_ell = True
        elif c == ",":
            terms.append([])
            if len(terms) > n_ops:
                raise RuntimeError(
                    "einsum(): fewer operands were provided than specified in the equation"
                )
            found_ell = False
        elif c in _LABELS:
            terms[-1].append(c)
        else:
            raise RuntimeError(
                f"einsum(): invalid subscript given at index {i} in the equation string, "
                "subscripts must be in [a-zA-Z]"
            )
        i += 1
    if len(terms) != n_ops:
        raise RuntimeError("einsum(): more operands were provided than specified in the equation")
    if arrow < 0:
        return terms, None
    rhs = equation[arrow + 2 :]
    out = []
    found_ell = False
    i = 0
    while i < len(rhs):
        c = rhs[i]
        if c == " ":
            pass
        elif c == ".":
            if found_ell:
                raise RuntimeError(
                    "einsum(): found '.' for output but an ellipsis (...) was already found"
                )
            if not (i + 2 < len(rhs) and rhs[i + 1] == "." and rhs[i + 2] == "."):
                raise RuntimeError(
                    "einsum(): found '.' for output that is not part of any ellipsis (...)"
                )
            i += 2
            out.append(_ELLIPSIS)
            found_ell = True
        elif c in _LABELS:
            out.append(c)
        else:
            raise RuntimeError(
                f"einsum(): invalid subscript given at index {len(lhs) + 2 + i} in the equation "
                "string, subscripts must be in [a-zA-Z]"
            )
        i += 1
    return terms, out


def _einsum_dtype(tensors) -> np.dtype:
    """The common dtype: floating beats integer, otherwise NumPy's promotion."""
    dtypes = [t.data.dtype for t in tensors]
    floats = [d for d in dtypes if d.kind in "fc"]
    return np.result_type(*(floats or dtypes))


def einsum(equation, *operands) -> Tensor:
    """Einstein summation, PyTorch's way: 'ij,jk->ik', diagonals ('ii->i'), ellipsis
    broadcasting ('...ij,...jk->...ik'), implicit output ('ij,jk'), size-1 broadcasting."""
    from retrograd.ops.elementwise import cast
    from retrograd.ops.movement import broadcast_to

    if not isinstance(equation, str):
        equation, operands = _sublist_equation((equation,) + operands)
    elif len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError(
            "einsum(): must specify the equation string and at least one operand, or at least "
            "one operand and its subscripts list"
        )
    tensors = [as_tensor(o) for o in operands]
    terms, out_terms = _parse_einsum(equation, len(tensors))
    count, ell_labels = _count_labels(terms, tensors)
    out = _output_labels(out_terms, count, ell_labels)
    subs, size = _operand_labels(terms, tensors, ell_labels)

    dtype = _einsum_dtype(tensors)
    ready = []
    for sub, t in zip(subs, tensors):
        if t.data.dtype != dtype:
            t = cast(t, dtype)  # differentiable between floating dtypes
        target = tuple(size.get(c, 1) for c in sub)
        if target != t.data.shape:  # a size-1 dim meets a larger one: broadcast (a view)
            t = broadcast_to(t, target)
        ready.append(t)
    return Einsum.apply(*ready, equation=",".join(subs) + "->" + "".join(out))


def _count_labels(terms, tensors) -> tuple[dict, list]:
    """How often each label occurs, and the labels standing for the ellipsis dims (checking
    each operand's number of dims)."""
    count: dict = {}
    ell = 0
    for i, (term, t) in enumerate(zip(terms, tensors)):
        nd = t.data.ndim
        n = sum(1 for c in term if c != _ELLIPSIS)
        for c in term:
            if c != _ELLIPSIS:
                count[c] = count.get(c, 0) + 1
        if _ELLIPSIS in term:
            ell = max(ell, nd - n)
            if n > nd:
                raise RuntimeError(
                    f"einsum(): the number of subscripts in the equation ({n}) is more than the "
                    f"number of dimensions ({nd}) for operand {i}"
                )
        elif n != nd:
            raise RuntimeError(
                f"einsum(): the number of subscripts in the equation ({n}) does not match the "
                f"number of dimensions ({nd}) for operand {i} and no ellipsis was given"
            )
    ell_labels = [c for c in _LABELS if c not in count][:ell]
    if len(ell_labels) < ell:
        raise RuntimeError("einsum(): too many subscripts in the equation (at most 52)")
    return count, ell_labels


def _output_labels(out_terms, count, ell_labels) -> list:
    """The output's labels: explicit, or implicit (the ellipsis, then the labels seen once)."""
    if out_terms is None:
        return ell_labels + [c for c in _LABELS if count.get(c) == 1]
    out, seen = [], set()
    for c in out_terms:
        if c == _ELLIPSIS:
            out.extend(ell_labels)
            continue
        if c in seen:
            raise RuntimeError(
                f"einsum(): output subscript {c} appears more than once in the output"
            )
        if c not in count:
            raise RuntimeError(
                f"einsum(): output subscript {c} does not appear in the equation for any input "
                "operand"
            )
        seen.add(c)
        out.append(c)
    return out


def _operand_labels(terms, tensors, ell_labels) -> tuple[list, dict]:
    """Each operand's subscripts with the ellipsis spelled out, and each label's size (size-1
    dims broadcast, as in PyTorch)."""
    size: dict = {}
    subs = []
    for i, (term, t) in enumerate(zip(terms, tensors)):
        shape = t.data.shape
        labels = []
        for c in term:
            if c == _ELLIPSIS:
                width = len(shape) - (len(term) - 1)  # right-aligned with the widest ellipsis
                labels.extend(ell_labels[len(ell_labels) - width :] if width else [])
            else:
                labels.append(c)
        first = {}
        for d, c in enumerate(labels):
            s = shape[d]
            if c in first:
                if s != shape[first[c]]:
                    raise RuntimeError(
                        f"einsum(): subscript {c} is repeated for operand {i} but the sizes "
                        f"don't match, {s} != {shape[first[c]]}"
                    )
                continue
            first[c] = d
            prev = size.get(c, 1)
            if s != 1 and prev != 1 and prev != s:
                if c in ell_labels:
                    raise RuntimeError(
                        f"einsum(): dimension {d} covered by ellipsis in operand {i}has size {s} "
                        f"which does not broadcast with previously seen ellipsis with size {prev} "
                        "for the respective dimension"
                    )
                raise RuntimeError(
                    f"einsum(): subscript {c} has size {s} for operand {i} which does not "
                    f"broadcast with previously seen size {prev}"
                )
            if s != 1:
                size[c] = s
        subs.append("".join(labels))
    return subs, size


def _dim_list(dims, ndim: int) -> list:
    """dims as non-negative ints in the given order; a repeat is PyTorch's error."""
    out = []
    for d in dims:
        c = canonical_dim(int(d), ndim)
        if c in out:
            raise RuntimeError(f"dim {c} appears multiple times in the list of dims")
        out.append(c)
    return out


# -- tensordot -----------------------------------------------------------------------------------
def tensordot(a, b, dims=2) -> Tensor:
    """Contract dims of a with dims of b: an int n (a's last n with b's first n) or two lists."""
    from retrograd.ops.movement import permute, reshape
    from retrograd.ops.reduce import sum as _sum

    a, b = as_tensor(a), as_tensor(b)
    if isinstance(dims, Tensor):  # PyTorch reads a one-element tensor as an int
        dims = int(dims.data.item()) if dims.data.size == 1 else dims.data.tolist()
    if isinstance(dims, (int, np.integer)) and not isinstance(dims, bool):
        n = int(dims)
        if n < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={n}")
        if n > min(a.data.ndim, b.data.ndim):
            raise RuntimeError(f"tensordot expects dims < ndim_a or ndim_b, but got dims={n}")
        dims_a, dims_b = list(range(-n, 0)), list(range(n))
    elif isinstance(dims, (list, tuple)):
        dims_a, dims_b = dims
        for pos, (name, d) in enumerate((("dims_self", dims_a), ("dims_other", dims_b))):
            if not isinstance(d, (list, tuple)):
                raise TypeError(
                    f"tensordot(): argument '{name}' (position {pos + 3}) must be tuple of ints, "
                    f"not {type(d).__name__}"
                )
        dims_a, dims_b = [int(d) for d in dims_a], [int(d) for d in dims_b]
    else:
        raise RuntimeError(
            "tensordot expects dims to be int or tuple[list[int], list[int]] or list[list[int]] "
            f"containing two lists, but got dims={dims}"
        )
    if len(dims_a) != len(dims_b):
        raise RuntimeError("both dimension lists should have same length")
    if a.data.dtype != b.data.dtype:
        raise RuntimeError("both inputs should have same dtype")
    sa, sb = a.data.shape, b.data.shape
    for da, db in zip(dims_a, dims_b):
        s1 = sa[canonical_dim(da, len(sa))]
        s2 = sb[canonical_dim(db, len(sb))]
        if s2 == 1 and s1 != 1:  # a broadcast contraction sums the other side right away
            a = _sum(a, da, True)
        elif s1 == 1 and s2 != 1:
            b = _sum(b, db, True)
        elif s1 != s2:
            raise RuntimeError(
                f"contracted dimensions need to match, but first has size {s1} in dim {da} and "
                f"second has size {s2} in dim {db}"
            )
    ca, cb = _dim_list(dims_a, len(sa)), _dim_list(dims_b, len(sb))
    free_a = [d for d in range(len(sa)) if d not in ca]
    free_b = [d for d in range(len(sb)) if d not in cb]
    sa, sb = a.data.shape, b.data.shape
    csize = _prod(sa[d] for d in ca)
    out_shape = tuple(sa[d] for d in free_a) + tuple(sb[d] for d in free_b)
    am = reshape(permute(a, *free_a, *ca), (_prod(sa[d] for d in free_a), csize))
    bm = reshape(permute(b, *cb, *free_b), (csize, _prod(sb[d] for d in free_b)))
    return reshape(MatMul.apply(am, bm), out_shape)


# -- norms ---------------------------------------------------------------------------------------
class _AbsPow(Function):
    """out = |x|**p;  gx = g * p * sign(x) * |x|**(p-1)  (0 where x == 0)"""

    raw = True

    def forward(self, x, p):
        self.p = p
        self.save(x)
        with quiet_block():
            return get_xp(x).abs(x) ** p

    def backward(self, g):
        (x,) = self.saved
        xd = dual.data(x)
        xp = get_xp(xd)
        zero = xd == 0
        coef = _const(self.p * xp.sign(xd), x)  # sign'(x) = 0: a constant of the rule
        return g * coef * _abs_pow(x + _const(zero.astype(xd.dtype), x), self.p - 1)

    def jvp(self, t):
        return self.backward(t)  # a diagonal Jacobian: J t = J^T t


class _Sign(Function):
    """out = sign(x);  gx = 0 (kept in the graph so second derivatives are zeros, as PyTorch's)"""

    raw = True

    def forward(self, x):
        return get_xp(x).sign(x)

    def backward(self, g):
        return g * 0

    def jvp(self, t):
        return None


def _sign(x):
    return _Sign.apply(x) if isinstance(x, Tensor) else get_xp(x).sign(x)


def _abs_pow(x, p):
    """|x|**p on arrays, or differentiably (to any order) on Tensors."""
    if isinstance(x, Tensor):
        return _AbsPow.apply(x, p=p)
    with quiet_block():
        return get_xp(x).abs(x) ** p


def _keep(v, ndim, dims, keepdim):
    """A reduced value with the reduced dims restored as size 1 (it then broadcasts)."""
    if keepdim or ndim == 0:
        return v
    if dims is None:
        return dual.reshape(v, (1,) * ndim)
    return dual.expand_dims(v, dims)


class VectorNorm(Function):
    """out = (sum |x|**p)**(1/p) over dims;  gx = g * sign(x) * |x|**(p-1) / out**(p-1)
    (p = 2: g * x / out; p = inf: g * sign(x), split evenly among the maxima)"""

    raw = True

    @quiet
    def forward(self, x, ord, dims, keepdim):
        xp = get_xp(x)
        self.ord, self.dims, self.keepdim = ord, dims, keepdim
        a = xp.abs(x)
        if ord == 2:
            out = l2_norm(xp, a, dims, keepdim)
        elif ord == 1:
            out = a.sum(axis=dims, keepdims=keepdim)
        elif ord == math.inf:
            out = a.max(axis=dims, keepdims=keepdim)
        elif ord == -math.inf:
            out = a.min(axis=dims, keepdims=keepdim)
        elif ord == 0:
            out = (x != 0).sum(axis=dims, keepdims=keepdim).astype(x.dtype)
        else:
            with quiet_block():
                out = (a**ord).sum(axis=dims, keepdims=keepdim) ** (1.0 / ord)
        out = xp.asarray(out, dtype=x.dtype)
        self.save(x, out)
        return out

    def backward(self, g):
        x, out = self.saved
        p, dims = self.ord, self.dims
        xd = dual.data(x)
        xp = get_xp(xd)
        g = _keep(g, xd.ndim, dims, self.keepdim)
        out = _keep(out, xd.ndim, dims, self.keepdim)
        od = dual.data(out)
        if p == 0:  # a count: no gradient flows (PyTorch's is undefined, not zeros)
            return None
        if p == 1:
            return g * _sign(x)
        if p in (math.inf, -math.inf):
            hit = xp.abs(xd) == od  # ties share the gradient evenly, as PyTorch's amax does
            count = hit.sum(axis=dims, keepdims=True).astype(xd.dtype)
            return g * (_sign(x) * _const(hit / count, x))
        zero_out = _const((od == 0).astype(od.dtype), out)
        if p == 2:
            return x * (g / (out + zero_out))  # 0 where the norm is 0
        if p < 1:
            nz = xd != 0
            scaled = _const(xp.sign(xd) * nz, x) * _abs_pow(
                x + _const((~nz).astype(xd.dtype), x), p - 1
            )
            return scaled * g * _abs_pow(out, 1 - p)
        scaled = _sign(x) * _abs_pow(x, p - 1)
        keep = _const((od != 0).astype(od.dtype), out)
        return scaled * (g / _abs_pow(out + zero_out, p - 1) * keep)

    def jvp(self, t):
        # every element of x feeds one output: J has one nonzero per column, J^T 1, so
        # J t = sum over dims of t * J^T 1
        x, out = self.saved
        d = self.backward(get_xp(out).ones(out.shape, dtype=out.dtype))
        if d is None:
            return None  # ord 0: a count
        with quiet_block():
            return (t * d).sum(axis=self.dims, keepdims=self.keepdim)


def _check_floating(x: Tensor, fn: str) -> None:
    if x.data.dtype.kind not in "fc":
        raise RuntimeError(
            f"{fn}: Expected a floating point or complex tensor as input. "
            f"Got {_scalar_name(x.data.dtype)}"
        )


def _with_dtype(x: Tensor, dtype, fn: str) -> Tensor:
    from retrograd.ops.elementwise import cast

    if dtype is None:
        return x
    dtype = as_dtype(dtype)
    if dtype.kind not in "fc":
        raise RuntimeError(
            f"{fn}: dtype should be floating point or complex, but got {_scalar_name(dtype)}"
        )
    if np.promote_types(x.data.dtype, dtype) != dtype:
        raise RuntimeError(
            f"{fn}: the dtype of the input ({_scalar_name(x.data.dtype)}) should be convertible "
            f"without narrowing to the specified dtype ({_scalar_name(dtype)})"
        )
    return cast(x, dtype)


def _ord_str(ord) -> str:
    if isinstance(ord, float) and math.isfinite(ord) and ord.is_integer():
        return str(int(ord))
    return str(ord)


def vector_norm(x, ord=2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """The p-norm (sum |x|**ord)**(1/ord) over dim (all elements when None); ord may be any
    number, inf, -inf or 0 (count of nonzeros)."""
    if isinstance(ord, str):
        raise TypeError("linalg_vector_norm(): argument 'ord' must be Number, not str")
    x = as_tensor(x)
    _check_floating(x, "linalg.vector_norm")
    x = _with_dtype(x, dtype, "linalg.vector_norm")
    nd = x.data.ndim
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        dims = None
    else:
        dims = tuple(sorted(_dim_list([dim] if isinstance(dim, (int, np.integer)) else dim, nd)))
        if nd == 0:
            dims = None
    ord = float(ord)
    if (ord < 0 or ord == math.inf) and x.data.size == 0:
        if dims is None:
            raise RuntimeError(
                f"linalg.vector_norm cannot compute the {_ord_str(ord)} norm on an empty tensor "
                "because the operation does not have an identity"
            )
        for d in dims:
            if x.data.shape[d] == 0:
                raise RuntimeError(
                    f"linalg.vector_norm cannot compute the {_ord_str(ord)} norm on the dimension "
                    f"{d}because this dimension is empty and the operation does not have an "
                    "identity"
                )
    return VectorNorm.apply(x, ord=ord, dims=dims, keepdim=bool(keepdim))


def _is_matrix_ord(ord) -> bool:
    if isinstance(ord, str):
        return ord in ("fro", "nuc")
    if isinstance(ord, bool) or not isinstance(ord, (int, float, np.number)):
        return False
    return ord in (2, -2, 1, -1, math.inf, -math.inf)


def matrix_norm(x, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None) -> Tensor:
    """A matrix norm over the two dims: 'fro', 1 / -1 (max / min column sum of |x|),
    inf / -inf (max / min row sum); batched over the other dims."""
    from retrograd.ops.movement import reshape
    from retrograd.ops.reduce import sum as _sum

    x = as_tensor(x)
    _check_floating(x, "linalg.matrix_norm")
    nd = x.data.ndim
    if nd < 2:
        raise RuntimeError(
            "linalg.matrix_norm: The input tensor A must have at least 2 dimensions."
        )
    dims = [dim] if isinstance(dim, (int, np.integer)) else list(dim)
    if len(dims) != 2:
        raise RuntimeError(
            "linalg.matrix_norm: dim must be a 2-tuple. Got " + " ".join(str(d) for d in dims)
        )
    d0, d1 = canonical_dim(dims[0], nd), canonical_dim(dims[1], nd)
    if d0 == d1:
        raise RuntimeError(
            f"linalg.matrix_norm: dims must be different. Got ({dims[0]}, {dims[1]})"
        )
    if not _is_matrix_ord(ord):
        raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")
    x = _with_dtype(x, dtype, "linalg.matrix_norm")
    if ord == "fro":
        return vector_norm(x, 2, (d0, d1), keepdim)
    if ord in ("nuc", 2, -2):
        raise NotImplementedError(
            f"linalg.matrix_norm: ord={ord!r} needs singular values, which are not implemented"
        )
    # 1 / -1: max/min over columns of the column sums; inf / -inf: the same over rows
    sum_dim, red_dim = (d1, d0) if abs(ord) == math.inf else (d0, d1)
    s = vector_norm(x, 1, sum_dim, True)
    if s.data.shape[red_dim] == 0:
        if ord < 0:
            shown = red_dim - (1 if not keepdim and sum_dim < red_dim else 0)
            raise IndexError(f"amin(): Expected reduction dim {shown} to have non-zero size.")
        out = _sum(s, red_dim, True)  # PyTorch's amax gives 0 here
    else:
        out = vector_norm(s, math.inf if ord > 0 else -math.inf, red_dim, True)
    if keepdim:
        return out
    shape = tuple(n for i, n in enumerate(x.data.shape) if i not in (d0, d1))
    return reshape(out, shape)


def linalg_norm(x, ord=None, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """retrograd.linalg.norm: a vector norm (dim an int, or x 1-D) or a matrix norm (dim a
    2-tuple, or x 2-D with ord given); ord=None is the 2-norm of all elements / Frobenius."""
    x = as_tensor(x)
    if dim is not None:
        dims = [dim] if isinstance(dim, (int, np.integer)) else list(dim)
        if len(dims) not in (1, 2):
            raise RuntimeError(
                f"linalg.norm: If dim is specified, it must be of length 1 or 2. Got {dims}"
            )
    elif ord is not None and x.data.ndim not in (1, 2):
        raise RuntimeError(
            "linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. "
            f"Got {x.data.ndim}D."
        )
    if isinstance(ord, str):
        return matrix_norm(x, ord, (0, 1) if dim is None else dim, keepdim, dtype=dtype)
    if ord is not None and (
        (dim is not None and len(dims) == 2) or (dim is None and x.data.ndim == 2)
    ):
        return matrix_norm(x, ord, (0, 1) if dim is None else dims, keepdim, dtype=dtype)
    return vector_norm(x, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
