"""Function transforms, torch.func style: grad, vjp, jvp, jacobian, hessian, hvp.

    >>> from retrograd import func
    >>> f = lambda x: (x * x * x).sum()
    >>> func.grad(f)(retrograd.tensor([1.0, 2.0]))           # 3 x^2
    tensor([ 3., 12.])
    >>> func.grad(func.grad(lambda x: x * x * x))(retrograd.tensor(2.0))   # 6 x
    tensor(12.)

A transform calls `func` on fresh copies of the differentiated inputs that require grad (the
caller's tensors are left as they are), under grad mode whatever the caller's mode, and
differentiates with `retrograd.autograd.grad`. Transforms nest: an input that already requires
grad (because an enclosing transform, or the caller, differentiates it) is copied with `clone`,
which keeps it connected, and the inner gradient is then taken with `create_graph=True`, so
`grad(grad(f))` is the second derivative. Results that nothing outside the transform can
differentiate are returned detached, as torch.func does.

jvp and jacfwd use native forward mode (`retrograd.autograd.forward_ad`): one pass computes the
values and their tangents, each primitive applying its own JVP rule. Where the result must itself
be differentiable (grad mode on and a primal or tangent requiring grad) or `func` runs a
reverse-mode transform on the way (jvp of grad: Hessian-vector products), jvp falls back to the
exact double-vjp trick: with u a dummy cotangent, vjp(u) = J^T u is linear in u, and
J t = d/du <J^T u, t>. (A plain `autograd.grad` or `backward()` call inside a native jvp sees
tangents as constants: wrap such code in `func.grad`/`func.vjp` instead.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from retrograd.autograd import forward_ad
from retrograd.autograd.grad_mode import _state, enable_grad, is_grad_enabled
from retrograd.autograd.tape import _one_hot, _stack, _zeros, tree_flatten, tree_unflatten
from retrograd.tensor import Tensor

__all__ = [
    "grad",
    "grad_and_value",
    "value_and_grad",
    "vjp",
    "jvp",
    "jacobian",
    "jacfwd",
    "jacrev",
    "hessian",
    "hvp",
]


# -- public transforms --------------------------------------------------------------------------


def _split_aux(out, has_aux: bool, api: str):
    """(output, aux) of a function called with has_aux=True; (out, None) otherwise."""
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise RuntimeError(
            f"{api}: output of function f should be a tuple: (output, aux) if has_aux is True"
        )
    return out


def grad(func: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """The gradient of scalar-valued `func` w.r.t. the arguments `argnums`.

    >>> grad(lambda x, y: (x * y).sum(), argnums=(0, 1))(x, y)   # (y, x)
    Returns grads (a Tensor, or a tuple for a tuple argnums), or (grads, aux) with has_aux.
    """

    def grad_fn(*args, **kwargs):
        g, value, aux = _grad_and_value(func, argnums, has_aux, args, kwargs)
        return (g, aux) if has_aux else g

    return grad_fn


def grad_and_value(func: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """torch.func.grad_and_value: returns (grads, value), or (grads, (value, aux)) with has_aux."""

    def grad_and_value_fn(*args, **kwargs):
        g, value, aux = _grad_and_value(func, argnums, has_aux, args, kwargs)
        return (g, (value, aux)) if has_aux else (g, value)

    return grad_and_value_fn


def value_and_grad(func: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """JAX's order: returns (value, grads), or ((value, aux), grads) with has_aux.

    >>> loss, g = value_and_grad(lambda w: (w * w).sum())(w)
    """

    def value_and_grad_fn(*args, **kwargs):
        g, value, aux = _grad_and_value(func, argnums, has_aux, args, kwargs)
        return ((value, aux), g) if has_aux else (value, g)

    return value_and_grad_fn


def vjp(func: Callable, *primals, has_aux: bool = False):
    """(func(*primals), vjp_fn), where vjp_fn(cotangents) gives one J^T v per primal.

    >>> out, vjp_fn = vjp(lambda x: x * x, x)
    >>> (gx,) = vjp_fn(retrograd.ones_like(out))   # 2 x
    With has_aux, func returns (output, aux) and vjp returns (output, vjp_fn, aux).
    """
    outer = is_grad_enabled()
    own: dict = {}
    with enable_grad():
        diff = _differentiable(primals, own, outer)
        out = func(*diff)
        out, aux = _split_aux(out, has_aux, "vjp(f, *primals)")
        flat_out, out_spec = tree_flatten(out)
        _check_outputs(flat_out, "vjp(f, *primals)")
        flat_in, in_spec = tree_flatten(diff)
    outside = outer and _reaches_outside(flat_out, own)

    def vjp_fn(cotangents, retain_graph: bool = True, create_graph: bool | None = None):
        flat_ct, ct_spec = tree_flatten(cotangents)
        if ct_spec != out_spec:
            raise RuntimeError(
                "Expected pytree structure of cotangents to be the same as pytree structure of "
                f"outputs to the function. cotangents: {_spec_str(ct_spec)}, primal output: "
                f"{_spec_str(out_spec)}"
            )
        _check_tensor_list(flat_ct, "vjp_fn(cotangents)", "cotangents")
        graph = create_graph
        if graph is None:
            graph = is_grad_enabled() and (outside or any(c.requires_grad for c in flat_ct))
        grads = _vjp_flat(flat_out, flat_in, flat_ct, graph, retain_graph)
        return _export(tree_unflatten(in_spec, grads), own, is_grad_enabled())

    result = (_export(out, own, outer), vjp_fn)
    return (*result, _export(aux, own, outer)) if has_aux else result


def jvp(func: Callable, primals: tuple, tangents: tuple, *, has_aux: bool = False):
    """(func(*primals), J tangents): the forward-mode derivative along `tangents`.

    >>> out, jv = jvp(lambda x: x * x, (x,), (v,))   # jv = 2 x v
    Native forward mode: one pass computes values and tangents. Differentiable results (grad
    mode on and a primal or tangent requiring grad) and reverse transforms inside `func` use the
    double-vjp trick instead. With has_aux: (output, jvp_out, aux).
    """
    api = "jvp(f, primals, tangents)"
    if not isinstance(primals, tuple):
        raise RuntimeError(
            f"{api}: Expected primals to be a tuple. E.g. it should be valid to call f(*primals)."
        )
    flat_p, p_spec = tree_flatten(primals)
    flat_t, t_spec = tree_flatten(tangents)
    if p_spec != t_spec:
        raise RuntimeError(
            f"{api}: Expected primals and tangents to have the same python structure. For "
            "example, if primals is a tuple of 3 tensors, tangents also must be. Got primals "
            f"with structure {_spec_str(p_spec)} and tangents with structure {_spec_str(t_spec)}"
        )
    _check_tensor_list(flat_p, api, "primals")
    _check_tensor_list(flat_t, api, "tangents")
    _check_same_shapes(flat_p, flat_t, api)
    out, jv, aux = _jvp_any(func, flat_p, p_spec, flat_t, has_aux, api)
    return (out, jv, aux) if has_aux else (out, jv)


class _ReverseInsideForward(Exception):
    """A reverse-mode transform ran inside a native jvp: redo it by double vjp."""


_native = threading.local()  # .active: a native jvp is running in this thread


def _jvp_any(func, flat_p, p_spec, flat_t, has_aux, api):
    """(output tree, tangent tree, aux) natively when possible (tangents may be None: zero)."""
    differentiable = is_grad_enabled() and any(
        t is not None and t.requires_grad for t in flat_p + flat_t
    )
    if not differentiable and not _state.forward_ad:
        try:
            return _jvp_native(func, flat_p, p_spec, flat_t, has_aux, api)
        except _ReverseInsideForward:
            pass
    flat_t = [_zeros(p.shape, p) if t is None else t for p, t in zip(flat_p, flat_t)]
    return _jvp_by_double_vjp(func, tree_unflatten(p_spec, flat_p), flat_t, has_aux, api)


def _jvp_native(func, flat_p, p_spec, flat_t, has_aux, api):
    _native.active = True
    try:
        with forward_ad.dual_level():
            duals = [p if t is None else forward_ad.make_dual(p, t) for p, t in zip(flat_p, flat_t)]
            out = func(*tree_unflatten(p_spec, duals))
            out, aux = _split_aux(out, has_aux, api)
            flat_out, out_spec = tree_flatten(out)
            _check_outputs(flat_out, api)
            tangents = [o._fw_tangent for o in flat_out]
    finally:
        _native.active = False
    jv = [
        _zeros(o.shape, o) if t is None else Tensor._make(t, False, None, 0)
        for o, t in zip(flat_out, tangents)
    ]
    return out, tree_unflatten(out_spec, jv), aux


def _jvp_by_double_vjp(func, primals, flat_t, has_aux, api):
    outer = is_grad_enabled()
    own: dict = {}
    with enable_grad():
        diff = _differentiable(primals, own, outer)
        out = func(*diff)
        out, aux = _split_aux(out, has_aux, api)
        flat_out, out_spec = tree_flatten(out)
        _check_outputs(flat_out, api)
        flat_in, _ = tree_flatten(diff)
        reach = _reaches_outside(flat_out, own)
        graph = outer and (reach or any(t.requires_grad for t in flat_t))
        jv = _jvp_flat(flat_out, flat_in, flat_t, graph, graph or reach, own)
    return (
        _export(out, own, outer),
        _export(tree_unflatten(out_spec, jv), own, outer),
        _export(aux, own, outer),
    )


def jacfwd(func: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """The Jacobian of `func` w.r.t. `argnums` by forward mode (one JVP per input element).

    Shapes as `jacrev`: O + I for each (output, input) pair. Cheaper than jacrev when the inputs
    have fewer elements than the outputs. With has_aux: (jacobian, aux).
    """

    def jacfwd_fn(*args, **kwargs):
        api = "jacfwd(f, ...)(*args)"
        idx = _wrap_argnums(argnums, len(args))
        diff = args[idx] if isinstance(idx, int) else tuple(args[i] for i in idx)
        flat_in, in_spec = tree_flatten(diff)
        for t in flat_in:
            if not isinstance(t, Tensor):
                raise ValueError(f"Thing passed to transform API must be Tensor, got {type(t)}")

        def call(*flat):
            new = list(args)
            tree = tree_unflatten(in_spec, list(flat))
            if isinstance(idx, int):
                new[idx] = tree
            else:
                for i, v in zip(idx, tree):
                    new[i] = v
            out = func(*new, **kwargs)
            if has_aux and not (isinstance(out, tuple) and len(out) == 2):
                raise RuntimeError(
                    f"{api}: output of function f should be a tuple: (output, aux) if has_aux "
                    "is True"
                )
            return out

        spec = tree_flatten(tuple(flat_in))[1]
        columns = [[] for _ in flat_in]  # per input: per element, the flat output tangents
        first = None
        for k, x in enumerate(flat_in):
            for j in range(x.numel()):
                basis = _zeros(x.shape, x)
                basis.data.reshape(-1)[j] = 1
                tangents = [None] * len(flat_in)
                tangents[k] = basis
                result = _jvp_any(call, flat_in, spec, tangents, has_aux, api)
                first = first or result
                columns[k].append(tree_flatten(result[1])[0])
        if first is None:  # no input elements: one pass for the outputs' shapes
            first = _jvp_any(call, flat_in, spec, [None] * len(flat_in), has_aux, api)
        out, _, aux = first
        flat_out, out_spec = tree_flatten(out)
        per_output = []
        for i, o in enumerate(flat_out):
            jacs = [_assemble([c[i] for c in cols], o, x) for cols, x in zip(columns, flat_in)]
            per_output.append(tree_unflatten(in_spec, jacs))
        result = tree_unflatten(out_spec, per_output)
        return (result, aux) if has_aux else result

    return jacfwd_fn


def _assemble(cols: list, out: Tensor, x: Tensor) -> Tensor:
    """d out / d x (shape out.shape + x.shape) from its columns (one per element of x)."""
    shape = tuple(out.shape) + tuple(x.shape)
    if not cols:
        return _zeros(shape, out)
    if any(c.requires_grad for c in cols):
        from retrograd import ops

        stacked = _stack(cols, (len(cols), *out.shape), out)  # (x elements, *out.shape)
        moved = ops.movedim(stacked, 0, -1)
        return ops.reshape(moved, shape)
    from retrograd.backend import get_xp

    xp = get_xp(out.data)
    data = xp.stack([c.data for c in cols], axis=-1).reshape(shape)
    return Tensor._make(data, False, None, 0)


def jacobian(func: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """The Jacobian of `func` w.r.t. `argnums` by reverse mode (one vjp per output element).

    For output shape O and input shape I the result has shape O + I; a tuple argnums gives a
    tuple per output, a tuple output gives a tuple of those. With has_aux: (jacobian, aux).
    """

    def jacobian_fn(*args, **kwargs):
        outer = is_grad_enabled()
        own: dict = {}
        with enable_grad():
            args, diff = _prepare(args, argnums, own, outer)
            out = func(*args, **kwargs)
            out, aux = _split_aux(out, has_aux, "jacrev(f, ...)(*args)")
            flat_out, out_spec = tree_flatten(out)
            _check_outputs(flat_out, "jacrev(f, ...)(*args)")
            flat_in, in_spec = tree_flatten(diff)
            graph = outer and _reaches_outside(flat_out, own)
            per_output = []
            for o in flat_out:
                jacs = _jacobian_rows(o, flat_in, graph)
                per_output.append(tree_unflatten(in_spec, jacs))
        result = _export(tree_unflatten(out_spec, per_output), own, outer)
        return (result, _export(aux, own, outer)) if has_aux else result

    return jacobian_fn


def jacrev(func: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """torch.func.jacrev: the same as `jacobian` (reverse mode)."""
    return jacobian(func, argnums, has_aux)


def hessian(func: Callable, argnums: int | tuple = 0) -> Callable:
    """The Hessian of scalar-valued `func`: the Jacobian of its Jacobian (shape I + I)."""
    return jacobian(jacobian(func, argnums), argnums)


def hvp(func: Callable, primals: tuple, tangents: tuple):
    """(func(*primals), H tangents): Hessian-vector product of scalar-valued `func`, exact.

    >>> out, (hv,) = hvp(lambda x: (x * x * x).sum(), (x,), (v,))   # hv = 6 x v
    """
    api = "hvp(f, primals, tangents)"
    if not isinstance(primals, tuple):
        raise RuntimeError(
            f"{api}: Expected primals to be a tuple. E.g. it should be valid to call f(*primals)."
        )
    flat_p, p_spec = tree_flatten(primals)
    flat_t, t_spec = tree_flatten(tangents)
    if p_spec != t_spec:
        raise RuntimeError(
            f"{api}: Expected primals and tangents to have the same python structure. Got "
            f"primals with structure {_spec_str(p_spec)} and tangents with structure "
            f"{_spec_str(t_spec)}"
        )
    _check_tensor_list(flat_p, api, "primals")
    _check_tensor_list(flat_t, api, "tangents")
    _check_same_shapes(flat_p, flat_t, api)
    from retrograd.autograd import grad as autograd_grad

    outer = is_grad_enabled()
    own: dict = {}
    with enable_grad():
        diff = _differentiable(primals, own, outer)
        out = func(*diff)
        _check_scalar(out, api)
        flat_in, in_spec = tree_flatten(diff)
        reach = _reaches_outside([out], own)
        graph = outer and (reach or any(t.requires_grad for t in flat_t))
        result = [None] * len(flat_in)
        if out.requires_grad:
            gs = autograd_grad(
                out, flat_in, create_graph=True, retain_graph=True, allow_unused=True
            )
            pairs = [(g, t) for g, t in zip(gs, flat_t) if g is not None and g.requires_grad]
            if pairs:
                result = list(
                    autograd_grad(
                        [g for g, _ in pairs],
                        flat_in,
                        grad_outputs=[t for _, t in pairs],
                        create_graph=graph,
                        retain_graph=graph or reach,
                        allow_unused=True,
                    )
                )
        hv = [_zeros(x.shape, x) if h is None else h for h, x in zip(result, flat_in)]
    return _export(out, own, outer), _export(tree_unflatten(in_spec, hv), own, outer)


# -- the shared machinery -----------------------------------------------------------------------
def _grad_and_value(func, argnums, has_aux, args, kwargs):
    from retrograd.autograd import grad as autograd_grad

    api = "grad_and_value(f)(*args)"
    outer = is_grad_enabled()
    own: dict = {}
    with enable_grad():
        args, diff = _prepare(args, argnums, own, outer)
        output = func(*args, **kwargs)
        output, aux = _split_aux(output, has_aux, api)
        _check_scalar(output, api)
        flat_in, in_spec = tree_flatten(diff)
        reach = _reaches_outside([output], own)
        graph = outer and reach
        grads = [None] * len(flat_in)
        if output.requires_grad:
            # the graph may be freed only when every node of it was made by this call
            grads = autograd_grad(
                output, flat_in, retain_graph=reach, create_graph=graph, allow_unused=True
            )
        grads = [_zeros(x.shape, x) if g is None else g for g, x in zip(grads, flat_in)]
    return (
        _export(tree_unflatten(in_spec, grads), own, outer),
        _export(output, own, outer),
        _export(aux, own, outer),
    )


def _prepare(args: tuple, argnums, own: dict, outer: bool):
    """Replace the differentiated arguments by differentiable copies; return (args, diff)."""
    idx = _wrap_argnums(argnums, len(args))
    new = list(args)
    for i in (idx,) if isinstance(idx, int) else idx:
        new[i] = _differentiable(args[i], own, outer)
    diff = new[idx] if isinstance(idx, int) else tuple(new[i] for i in idx)
    return tuple(new), diff


def _wrap_argnums(argnums, n: int):
    def one(a):
        if not isinstance(a, int) or isinstance(a, bool):
            raise RuntimeError(f"argnum must be int, got: {type(a)}")
        if -n <= a < n:
            return a % n
        raise RuntimeError(f"Got argnum={a}, but only {n} positional inputs")

    if isinstance(argnums, int) and not isinstance(argnums, bool):
        return one(argnums)
    if isinstance(argnums, tuple):
        if len(argnums) == 0:
            raise RuntimeError("argnums must be non-empty")
        idx = tuple(one(a) for a in argnums)
        if len(set(idx)) != len(idx):
            raise RuntimeError(f"argnums elements must be unique, got {idx}")
        return idx
    raise RuntimeError(f"argnums must be int or Tuple[int, ...], got: {type(argnums)}")


def _differentiable(tree, own: dict, outer: bool):
    """Fresh copies requiring grad of the Tensors in `tree` (connected ones when nested)."""
    from retrograd.ops import clone

    if getattr(_native, "active", False):
        raise _ReverseInsideForward
    flat, spec = tree_flatten(tree)
    copies = []
    for t in flat:
        if not isinstance(t, Tensor):
            raise ValueError(f"Thing passed to transform API must be Tensor, got {type(t)}")
        if outer and t.requires_grad:
            # someone outside differentiates t: stay connected to it
            copies.append(clone(t))
        else:
            c = t.detach().requires_grad_(True)
            own[id(c)] = c
            copies.append(c)
    return tree_unflatten(spec, copies)


def _reaches_outside(roots, own: dict) -> bool:
    """Whether the graph of `roots` reaches a leaf requiring grad that this call did not make."""
    stack = []
    for t in roots:
        if not isinstance(t, Tensor) or not t.requires_grad:
            continue
        if t.grad_fn is None:
            if id(t) not in own:
                return True
        else:
            stack.append(t.grad_fn)
    seen = set(stack)
    while stack:
        node = stack.pop()
        for nxt in node.next_functions:
            if nxt is None:
                continue
            if isinstance(nxt, Tensor):
                if id(nxt) not in own:
                    return True
            elif nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def _export(tree, own: dict, outer: bool):
    """Detach the Tensors of `tree` that nothing outside this transform can differentiate."""
    if tree is None:
        return None
    flat, spec = tree_flatten(tree)
    out = []
    for t in flat:
        if isinstance(t, Tensor) and t.requires_grad:
            if not (outer and _reaches_outside([t], own)):
                t = t.detach()
        out.append(t)
    return tree_unflatten(spec, out)


def _vjp_flat(outs, ins, cotangents, create_graph: bool, retain_graph: bool) -> list:
    from retrograd.autograd import grad as autograd_grad

    pairs = [(o, c) for o, c in zip(outs, cotangents) if o.requires_grad]
    result = [None] * len(ins)
    if pairs:
        result = autograd_grad(
            [o for o, _ in pairs],
            ins,
            grad_outputs=[c for _, c in pairs],
            retain_graph=retain_graph or create_graph,
            create_graph=create_graph,
            allow_unused=True,
        )
    return [_zeros(x.shape, x) if g is None else g for g, x in zip(result, ins)]


def _jvp_flat(outs, ins, tangents, create_graph: bool, retain_graph: bool, own: dict) -> list:
    """J t for each output by double vjp: J t = d/du <J^T u, t> (J^T u is linear in u)."""
    from retrograd.autograd import grad as autograd_grad

    diff = [i for i, o in enumerate(outs) if o.requires_grad]
    result = [None] * len(outs)
    if diff:
        dummies = []
        for i in diff:
            u = _zeros(outs[i].shape, outs[i]).requires_grad_(True)
            own[id(u)] = u
            dummies.append(u)
        gs = autograd_grad(
            [outs[i] for i in diff],
            ins,
            grad_outputs=dummies,
            create_graph=True,
            retain_graph=True,
            allow_unused=True,
        )
        pairs = [(g, t) for g, t in zip(gs, tangents) if g is not None and g.requires_grad]
        if pairs:
            jv = autograd_grad(
                [g for g, _ in pairs],
                dummies,
                grad_outputs=[t for _, t in pairs],
                create_graph=create_graph,
                retain_graph=retain_graph,
                allow_unused=True,
            )
            for i, j in zip(diff, jv):
                result[i] = j
    return [_zeros(o.shape, o) if j is None else j for j, o in zip(result, outs)]


def _jacobian_rows(out: Tensor, ins: list, create_graph: bool) -> list:
    """d out / d x for each x in ins, shape out.shape + x.shape (zeros where unconnected)."""
    from retrograd.autograd import grad as autograd_grad

    n = out.numel()
    rows = [[] for _ in ins]
    if out.requires_grad:
        for k in range(n):
            gs = autograd_grad(
                out,
                ins,
                grad_outputs=_one_hot(out, k),
                retain_graph=True,
                create_graph=create_graph,
                allow_unused=True,
            )
            for r, g in zip(rows, gs):
                r.append(g)
    jacs = []
    for x, r in zip(ins, rows):
        shape = tuple(out.shape) + tuple(x.shape)
        if not r or all(g is None for g in r):
            jacs.append(_zeros(shape, x))
            continue
        filled = [_zeros(x.shape, x) if g is None else g for g in r]
        jacs.append(_stack(filled, (n, *x.shape), x).reshape(shape))
    return jacs


# -- argument checks (torch.func's wording) ---------------------------------------------------
def _check_scalar(output, api: str) -> None:
    if not isinstance(output, Tensor):
        raise RuntimeError(f"{api}: Expected f(*args) to return a Tensor, got {type(output)}")
    if output.ndim != 0:
        raise RuntimeError(
            f"{api}: Expected f(*args) to return a scalar Tensor, got tensor with "
            f"{output.ndim} dims. Maybe you wanted to use the vjp or jacrev APIs instead?"
        )


def _check_outputs(flat_out: list, api: str) -> None:
    if len(flat_out) == 0 or (len(flat_out) == 1 and flat_out[0] is None):
        raise RuntimeError(
            f"{api}: Expected f to be a function that has non-empty output (got output = "
            f"{flat_out})"
        )
    for o in flat_out:
        if not isinstance(o, Tensor):
            raise RuntimeError(
                f"{api}: expected f(*primals) to return only tensors, got unsupported type "
                f"{type(o)}"
            )
        if o.dtype.kind not in "fc":
            raise RuntimeError(
                "vjp(f, ...): All outputs of f must be floating-point or complex Tensors, got "
                f"Tensor with dtype retrograd.{o.dtype}"
            )


def _check_tensor_list(flat: list, api: str, argname: str) -> None:
    if len(flat) == 0:
        raise RuntimeError(f"{api}: Expected {argname} to contain at least one Tensor.")
    for t in flat:
        if not isinstance(t, Tensor):
            raise RuntimeError(f"{api}: Expected {argname} to only contain Tensors, got {type(t)}")


def _check_same_shapes(primals: list, tangents: list, api: str) -> None:
    for p, t in zip(primals, tangents):
        if p.shape != t.shape:
            raise RuntimeError(
                f"{api}: Expected primals and tangents to have the same shape, got a primal "
                f"of shape {tuple(p.shape)} and a tangent of shape {tuple(t.shape)}"
            )


def _spec_str(spec) -> str:
    if spec is None:
        return "*"
    kind, typ, meta, children = spec
    inner = ", ".join(_spec_str(c) for c in children)
    if kind == "dict":
        return "{" + ", ".join(f"{k!r}: {_spec_str(c)}" for k, c in zip(meta, children)) + "}"
    if kind == "list":
        return "[" + inner + "]"
    return "(" + inner + ("," if len(children) == 1 else "") + ")"
