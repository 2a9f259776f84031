"""A backward pass that explains itself: the engine's own graph and numbers, step by step.

`explain(loss)` walks the graph behind `loss` (its `grad_fn` nodes and their `next_functions`),
runs the real backward pass with hooks on every node, and returns an `Explanation`: the forward
pass node by node, the loss, the backward pass in reverse topological order (each node's local
derivative rule, the incoming gradient, the chain-rule product, the places where gradients from
several paths are summed), and each parameter's gradient and update. Nothing is recomputed by a
separate formula: values are the nodes' outputs, gradients are what the engine's rules returned.

    >>> net = textbook_network()            # Matt Mazur's 2-2-2 sigmoid network
    >>> exp = explain(net.loss, params=net.params, lr=0.5, names=net.names)
    >>> print(exp.to_text())
    >>> exp.grad("w5"), exp.new_value("w5")  # 0.082167041, 0.35891648

`explain` does not touch `.grad`: it asks the engine for the gradients (as `autograd.grad` does)
and keeps the graph, so `loss.backward()` still works afterwards.
"""

from __future__ import annotations

import ast
import html
import math
from dataclasses import dataclass, field

import numpy as np

from retrograd.autograd.function import keep_values
from retrograd.tensor import Tensor

__all__ = [
    "Explanation",
    "Step",
    "Edge",
    "Leaf",
    "GradientSum",
    "ParamUpdate",
    "WorkedExample",
    "explain",
    "textbook_network",
    "network",
    "expression",
    "RULES",
]

# -- the local derivative of each op, written symbolically (keyed by the Function class name) ------
RULES = {
    "Add": "d(x+y)/dx = 1, d(x+y)/dy = 1",
    "Sub": "d(x-y)/dx = 1, d(x-y)/dy = -1",
    "Mul": "d(x*y)/dx = y, d(x*y)/dy = x",
    "Div": "d(x/y)/dx = 1/y, d(x/y)/dy = -x/y^2",
    "Neg": "d(-x)/dx = -1",
    "PowScalar": "d x^n/dx = n x^(n-1)",
    "Pow": "d x^y/dx = y x^(y-1), d x^y/dy = x^y ln(x)",
    "ScalarPow": "d b^y/dy = b^y ln(b)",
    "Square": "d x^2/dx = 2x",
    "Sqrt": "d sqrt(x)/dx = 1/(2 sqrt(x))",
    "Rsqrt": "d x^(-1/2)/dx = -1/2 x^(-3/2)",
    "Reciprocal": "d(1/x)/dx = -1/x^2",
    "Exp": "d exp(x)/dx = exp(x)",
    "Exp2": "d 2^x/dx = 2^x ln(2)",
    "Expm1": "d(exp(x)-1)/dx = exp(x)",
    "Log": "d ln(x)/dx = 1/x",
    "Log2": "d log2(x)/dx = 1/(x ln(2))",
    "Log1p": "d ln(1+x)/dx = 1/(1+x)",
    "Sigmoid": "d sigmoid(z)/dz = s(1-s)",
    "LogSigmoid": "d ln(sigmoid(z))/dz = 1 - s",
    "Tanh": "d tanh(x)/dx = 1 - t^2",
    "ReLU": "d relu(x)/dx = 1 if x > 0 else 0",
    "LeakyReLU": "d leaky_relu(x)/dx = 1 if x > 0 else slope",
    "ELU": "d elu(x)/dx = 1 if x > 0 else elu(x) + alpha",
    "Softplus": "d softplus(x)/dx = sigmoid(x)",
    "SiLU": "d x s(x)/dx = s (1 + x (1-s)),  s = sigmoid(x)",
    "GELU": "d x Phi(x)/dx = Phi(x) + x phi(x)",
    "Sin": "d sin(x)/dx = cos(x)",
    "Cos": "d cos(x)/dx = -sin(x)",
    "Tan": "d tan(x)/dx = 1 + tan(x)^2",
    "Abs": "d|x|/dx = sign(x)  (0 at 0)",
    "Maximum": "d max(x,y)/dx = 1 where x > y (1/2 at ties)",
    "Minimum": "d min(x,y)/dx = 1 where x < y (1/2 at ties)",
    "MatMul": "d(X@Y): dL/dX = g Y^T, dL/dY = X^T g",
    "Linear": "y = x W^T + b: dL/dW = g^T x, dL/dx = g W, dL/db = sum g",
    "Sum": "d sum(x)/dx_i = 1  (g is broadcast back to x's shape)",
    "Mean": "d mean(x)/dx_i = 1/N",
    "Softmax": "d s_i/dz_j = s_i (delta_ij - s_j): dL/dz = s (g - sum(g s))",
    "LogSoftmax": "dL/dz = g - softmax(z) sum(g)",
    "LogSumExp": "d logsumexp(x)/dx = softmax(x)",
    "CrossEntropy": "dL/dz = softmax(z) - onehot(y)  (/ N for the mean)",
    "SoftCrossEntropy": "dL/dz = softmax(z) - q  (q the target probabilities; / N for the mean)",
    "NLLLoss": "dL/d logp = -onehot(y)  (/ N for the mean)",
    "BinaryCrossEntropy": "dL/dp = (p - t) / (p (1 - p))",
    "BinaryCrossEntropyWithLogits": "dL/dz = sigmoid(z) - t",
    "SquaredError": "L = mean((a - b)^2): dL/da = 2(a - b)/N, dL/db = -2(a - b)/N",
    "Reshape": "a reshape: g is reshaped back",
    "Permute": "a permutation: g is permuted back",
    "BroadcastTo": "a broadcast: g is summed over the broadcast dims",
    "GetItem": "indexing: g is put back into zeros of x's shape",
    "GetItemView": "indexing: g is put back into zeros of x's shape",
    "Cat": "concatenation: g is split back into the pieces",
    "Stack": "stacking: g is split back into the pieces",
    "Clone": "d x/dx = 1",
    "Cast": "d x/dx = 1  (g is cast back to x's dtype)",
}

# ops whose Jacobian is diagonal (per element): the rule applied to ones gives d out / d input
_ELEMENTWISE = {
    "Add", "Sub", "Mul", "Div", "Neg", "PowScalar", "Pow", "ScalarPow", "Square", "Sqrt",
    "Rsqrt", "Reciprocal", "Exp", "Exp2", "Expm1", "Log", "Log2", "Log1p", "Sigmoid",
    "LogSigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "Softplus", "SiLU", "GELU", "GELUTanh",
    "Mish", "Softsign", "Hardtanh", "Hardsigmoid", "Hardswish", "Tanhshrink", "Sin", "Cos",
    "Tan", "Sinh", "Cosh", "Arcsin", "Arccos", "Arctan", "Atan2", "Erf", "Abs", "Maximum",
    "Minimum", "ClampScalar", "Clone", "Cast",
}  # fmt: skip

_INFIX = {"Add": (" + ", 1), "Sub": (" - ", 1), "Mul": ("*", 2), "Div": (" / ", 2)}
_INFIX["MatMul"] = (" @ ", 2)
_CALLS = {"Log": "ln", "ReLU": "relu", "SiLU": "silu", "GELU": "gelu", "ELU": "elu"}
_CALLS.update({"LeakyReLU": "leaky_relu", "LogSoftmax": "log_softmax", "LogSumExp": "logsumexp"})
_CALLS.update({"CrossEntropy": "cross_entropy", "NLLLoss": "nll_loss", "Sum": "sum"})
_CALLS["SquaredError"] = "mse_loss"
# ops whose saved arrays are their inputs, in order: a constant operand can be read back
_SAVES_INPUTS = {"Mul", "Div", "Pow", "MatMul", "Linear", "Atan2", "Maximum", "Minimum"}
_SAVES_INPUTS.add("SquaredError")
_ATOM, _NEG_NUMBER = 5, 0
_MAX_EXPANDED = 72


# -- what an explanation holds ---------------------------------------------------------------------
@dataclass
class Edge:
    """One input of a node in the backward pass: what the chain rule sends along it."""

    source: str  # label of the input (a node or a leaf)
    index: int  # position among the node's inputs
    local: np.ndarray | None  # d out / d input per element (elementwise and scalar-output ops)
    product: np.ndarray | None  # the engine's rule output (before un-broadcasting)
    outgoing: np.ndarray | None  # what the engine adds into the input's gradient


@dataclass
class Step:
    """One node: its forward value and formula, and its part of the backward pass."""

    index: int
    label: str
    op: str
    formula: str  # "net_h1 = t2 + b1"
    expanded: str | None  # "w1*i1 + w2*i2 + b1" when that differs from the local formula
    value: np.ndarray | None
    rule: str
    depth: int
    inputs: list = field(default_factory=list)  # labels of every operand, constants included
    incoming: np.ndarray | None = None  # dL/d(this node's output), as the engine handed it
    edges: list = field(default_factory=list)
    note: str = ""


@dataclass
class Leaf:
    label: str
    value: np.ndarray
    grad: np.ndarray | None
    is_param: bool
    constant: bool = False  # a named input that does not require grad


@dataclass
class GradientSum:
    """A tensor used by several consumers: the engine sums what each path sends back."""

    label: str
    contributions: list  # [(consumer label, gradient)]
    total: np.ndarray | None


@dataclass
class ParamUpdate:
    name: str
    value: np.ndarray
    grad: np.ndarray | None
    new_value: np.ndarray | None  # value - lr * grad when lr was given


class Explanation:
    """The forward and backward pass of one loss, step by step, in three renderings."""

    def __init__(self, loss_label, loss, steps, leaves, sums, params, lr) -> None:
        self.loss_label = loss_label
        self.loss = loss
        self.steps = steps  # forward (topological) order
        self.leaves = leaves
        self.sums = sums
        self.params = params
        self.lr = lr

    @property
    def missing_values(self) -> list:
        """Labels of the nodes whose forward value the graph did not keep (recorded outside
        `keep_values()`, and not needed by their gradient rules)."""
        return [s.label for s in self.steps if s.value is None]

    @property
    def backward_steps(self) -> list:
        """The nodes in reverse topological order (the order of the backward pass)."""
        return self.steps[::-1]

    # -- lookups by name -------------------------------------------------------------------------
    def step(self, label: str) -> Step:
        for s in self.steps:
            if s.label == label:
                return s
        raise KeyError(f"no node named {label!r}")

    def leaf(self, label: str) -> Leaf:
        for leaf in self.leaves:
            if leaf.label == label:
                return leaf
        raise KeyError(f"no leaf named {label!r}")

    def value(self, label: str) -> float | np.ndarray:
        """The forward value of a node or leaf."""
        try:
            return _scalar(self.step(label).value)
        except KeyError:
            return _scalar(self.leaf(label).value)

    def grad(self, label: str) -> float | np.ndarray:
        """dL/d(label): the gradient the engine computed for a node's output or a leaf."""
        try:
            return _scalar(self.step(label).incoming)
        except KeyError:
            return _scalar(self.leaf(label).grad)

    def new_value(self, name: str) -> float | np.ndarray:
        """The parameter after one step of gradient descent: value - lr * grad."""
        for p in self.params:
            if p.name == name:
                return _scalar(p.new_value)
        raise KeyError(f"no parameter named {name!r}")

    def sum_at(self, label: str) -> GradientSum:
        for s in self.sums:
            if s.label == label:
                return s
        raise KeyError(f"gradients are not summed at {label!r}")

    # -- renderings ------------------------------------------------------------------------------
    def sections(self) -> list:
        """[(title, headers, rows, notes)]: the tables every rendering shows."""
        return _sections(self)

    def to_text(self, width: int = 44) -> str:
        """Fixed-width tables for a terminal."""
        out = []
        for title, headers, rows, notes in self.sections():
            out.append(title)
            out.append("=" * len(title))
            if rows:
                out.append(_text_table(headers, rows, width))
            out.extend(notes)
            out.append("")
        return "\n".join(out).rstrip() + "\n"

    def to_markdown(self) -> str:
        out = ["# Backpropagation, step by step", ""]
        for title, headers, rows, notes in self.sections():
            out += [f"## {title}", ""]
            if rows:
                out.append("| " + " | ".join(headers) + " |")
                out.append("|" + "|".join("---" for _ in headers) + "|")
                for r in rows:
                    out.append("| " + " | ".join(_md_cell(c) for c in r) + " |")
                out.append("")
            for n in notes:
                out += [n, ""]
        return "\n".join(out).rstrip() + "\n"

    def to_html(self, title: str = "Backpropagation, step by step") -> str:
        """One self-contained page: the graph as inline SVG (forward values and gradients on the
        edges), then the tables. No external scripts or stylesheets."""
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            f"<h1>{html.escape(title)}</h1>",
            "<h2>Graph</h2>",
            '<p class="legend">Edges carry the forward value of their source '
            '(<span class="fwd">blue</span>) and, backwards, the gradient sent along them '
            '(<span class="bwd">red</span>).</p>',
            '<div class="graph">',
            _svg(self),
            "</div>",
        ]
        for title_, headers, rows, notes in self.sections():
            parts.append(f"<h2>{html.escape(title_)}</h2>")
            if rows:
                parts.append("<table>")
                parts.append(
                    "<thead><tr>"
                    + "".join(f"<th>{html.escape(h)}</th>" for h in headers)
                    + "</tr></thead>"
                )
                parts.append("<tbody>")
                for r in rows:
                    parts.append(
                        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                    )
                parts.append("</tbody>")
                parts.append("</table>")
            for n in notes:
                parts.append(f"<p>{html.escape(n)}</p>")
        parts += ["</body>", "</html>"]
        return "\n".join(parts) + "\n"

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return (
            f"<Explanation {self.loss_label} = {_fmt(self.loss)}: {len(self.steps)} nodes, "
            f"{len(self.leaves)} leaves, {len(self.sums)} sums>"
        )


# -- explain --------------------------------------------------------------------------------------
def explain(loss: Tensor, params=None, lr: float | None = None, names=None) -> Explanation:
    """Run the backward pass of a scalar `loss` and explain every step with the engine's numbers.

    params: the parameters to update (a dict name -> tensor, (name, tensor) pairs, a Module, or
    a list of tensors); all leaves requiring grad when None. lr: show `w - lr * g` for each.
    names: {name: tensor} for intermediate values and constant inputs, so formulas read
    `net_h1 = w1*i1 + w2*i2 + b1` instead of `t3 = t1 + t2`.

    >>> x = retrograd.tensor(2.0, requires_grad=True); y = retrograd.tensor(3.0, requires_grad=True)
    >>> print(explain(x * y + x.exp(), names={"x": x, "y": y}).to_text())
    """
    from retrograd.autograd import grad as autograd_grad

    if not isinstance(loss, Tensor) or loss.grad_fn is None:
        raise ValueError(
            "explain needs a tensor computed from tensors that require grad (it has no grad_fn)"
        )
    param_pairs = _param_pairs(params)
    nodes, leaves = _walk(loss)
    labels = _Labels(names, param_pairs, leaves, loss)

    records = {}  # id(node) -> (incoming, rule outputs), captured by a post hook on every node
    hooks = []
    retains = [(n, n._retains) for n in nodes if n._retains is not None]
    for n, _ in retains:  # retain_grad() tensors keep their .grad as it was
        n._retains = None
    for n in nodes:
        hook = _capture(records, n)
        n.register_hook(hook)
        hooks.append((n, hook))
    try:
        leaf_grads = autograd_grad(loss, leaves, retain_graph=True, allow_unused=True)
    except RuntimeError as e:
        if "second time" in str(e):
            raise RuntimeError(
                "explain needs the graph of the loss: call explain(loss) before loss.backward(), "
                "or pass retain_graph=True to backward"
            ) from e
        raise
    finally:
        for n, hook in hooks:
            n._post_hooks.remove(hook)
            if not n._post_hooks:
                n._post_hooks = None
        for n, r in retains:
            n._retains = r
    leaf_grads = [None if g is None else _np(g.data) for g in leaf_grads]

    # a node keeps its output only when its rule reads it (or under keep_values()); the
    # loss, the tensors the caller named and the outputs a consumer saved (unchanged since)
    # still hold theirs
    held = {id(loss.grad_fn): loss.data} if loss._out_nr == 0 else {}
    for t in (names or {}).values():
        if isinstance(t, Tensor) and t.grad_fn is not None and t._out_nr == 0:
            held.setdefault(id(t.grad_fn), t.data)
    for n in nodes:
        for counter, expected, t in n._versions or ():
            if t is not None and counter[0] == expected and t.grad_fn is not None:
                if t._out_nr == 0:
                    held.setdefault(id(t.grad_fn), t.data)
    steps = _steps(nodes, records, labels, held)
    leaf_rows = _leaf_rows(leaves, leaf_grads, labels, param_pairs)
    sums = _gradient_sums(nodes, leaves, leaf_grads, steps, labels)
    updates = _updates(param_pairs, leaves, leaf_grads, lr, labels)
    return Explanation(
        labels.node(loss.grad_fn), _np(loss.data), steps, leaf_rows, sums, updates, lr
    )


def _capture(records, node):
    def hook(grads, g):
        incoming = [_np(x) if x is not None else None for x in g] if node._n_out > 1 else _np(g)
        records[id(node)] = (incoming, tuple(None if x is None else _np(x) for x in grads))

    return hook


def _walk(loss):
    """Nodes in forward (topological) order and leaves in first-visit order: an iterative
    depth-first post-order over `next_functions`, so deep graphs need no recursion."""
    nodes, leaves = [], []
    seen = set()
    stack = [(loss.grad_fn, False)]
    while stack:
        n, done = stack.pop()
        if done:
            nodes.append(n)
            continue
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, Tensor):
            leaves.append(n)
            continue
        stack.append((n, True))
        for nxt in reversed(n.next_functions):
            if nxt is not None and id(nxt) not in seen:
                stack.append((nxt, False))
    return nodes, leaves


def _param_pairs(params) -> list:
    if params is None:
        return []
    if hasattr(params, "named_parameters"):
        return list(params.named_parameters())
    if isinstance(params, dict):
        return list(params.items())
    pairs = []
    for i, p in enumerate(params):
        pairs.append(p if isinstance(p, tuple) else (getattr(p, "name", None) or f"p{i}", p))
    return pairs


class _Labels:
    """Names for nodes, leaves and constants: the user's names first, then t1, t2, ..."""

    def __init__(self, names, param_pairs, leaves, loss) -> None:
        self.by_id = {}
        self.constants = {}  # id -> (name, tensor) of named tensors that do not require grad
        self.used_constants = {}  # name -> value, named constants that appear in formulas
        for name, t in param_pairs:
            self.by_id[id(t)] = name
        for name, t in (names or {}).items():
            if not isinstance(t, Tensor):
                continue
            if t.grad_fn is not None:
                self.by_id.setdefault(id(t.grad_fn), name)
            elif t.requires_grad:
                self.by_id.setdefault(id(t), name)
            else:
                self.constants[id(t)] = (name, t)
        self._taken = set(self.by_id.values()) | {name for name, _ in self.constants.values()}
        for i, leaf in enumerate(leaves):
            if id(leaf) not in self.by_id:
                self.by_id[id(leaf)] = self._fresh(getattr(leaf, "name", None) or f"leaf{i + 1}")
        self.user_named = set(self.by_id)
        if id(loss.grad_fn) not in self.by_id:
            self.by_id[id(loss.grad_fn)] = self._fresh("L")
            self.user_named.add(id(loss.grad_fn))
        self._next = 0
        self._n_const = 0

    def _fresh(self, name: str) -> str:
        """`name`, or name' (name'', ...) when a user's name already has it."""
        while name in self._taken:
            name += "'"
        self._taken.add(name)
        return name

    def node(self, n) -> str:
        if id(n) not in self.by_id:
            while f"t{self._next + 1}" in self._taken:
                self._next += 1
            self._next += 1
            self.by_id[id(n)] = self._fresh(f"t{self._next}")
        return self.by_id[id(n)]

    def named(self, n) -> bool:
        return id(n) in self.user_named

    def constant(self, tensor, value) -> tuple[str, int]:
        """(text, precedence) for a constant operand: its name, or its number when scalar."""
        if tensor is not None and id(tensor) in self.constants:
            name, t = self.constants[id(tensor)]
            self.used_constants[name] = _np(t.data)
            return name, _ATOM
        if value is not None:
            match = self._by_value(value)
            if match is not None:
                return match, _ATOM
            if np.size(value) == 1:
                v = float(np.asarray(value).reshape(()))
                return _short(v), (_NEG_NUMBER if v < 0 else _ATOM)
        self._n_const += 1
        name = self._fresh(f"c{self._n_const}")
        if value is not None:
            self.used_constants[name] = np.asarray(value)
        return name, _ATOM

    def _by_value(self, value):
        """A named constant with this value (for ops that keep no copy of their inputs)."""
        found = []
        for name, t in self.constants.values():
            a = _np(t.data)
            if a.shape == np.shape(value) and np.allclose(a, value, rtol=1e-9, atol=1e-12):
                found.append((name, a))
        if len(found) == 1:
            self.used_constants[found[0][0]] = found[0][1]
            return found[0][0]
        return None


def _steps(nodes, records, labels, held=None) -> list:
    consumers = {}
    for n in nodes:
        for nxt in n.next_functions:
            if nxt is not None:
                consumers[id(nxt)] = consumers.get(id(nxt), 0) + 1
    expr = {}  # id(node) -> (expanded text, precedence)
    depth = {}
    steps = []
    for i, n in enumerate(nodes):
        label = labels.node(n)
        op = type(n).__name__
        operands, expanded, d = [], [], 0
        consts = _constant_values(n)
        for k, nxt in enumerate(n.next_functions):
            if nxt is None:
                text, prec = labels.constant(*consts[k])
                operands.append((text, prec))
                expanded.append((text, prec))
                continue
            d = max(d, depth.get(id(nxt), 0))
            if isinstance(nxt, Tensor):
                item = (labels.by_id[id(nxt)], _ATOM)
                operands.append(item)
                expanded.append(item)
                continue
            operands.append((labels.node(nxt), _ATOM))
            inline = not labels.named(nxt) and consumers.get(id(nxt)) == 1
            expanded.append(expr[id(nxt)] if inline else (labels.node(nxt), _ATOM))
        depth[id(n)] = d + 1
        local, prec = _formula(n, operands)
        full, full_prec = _formula(n, expanded)
        if len(full) > _MAX_EXPANDED:
            full, full_prec = local, prec
        expr[id(n)] = (full, full_prec)
        incoming, rule_out = records.get(id(n), (None, None))
        step = Step(
            index=i + 1,
            label=label,
            op=op,
            formula=f"{label} = {local}",
            expanded=full if full != local else None,
            value=_node_value(n, held),
            rule=_rule_text(n),
            depth=d + 1,
            inputs=[o[0] for o in operands],
            incoming=incoming,
            note=_note(n),
        )
        step.edges = _edges(n, rule_out, labels, incoming)
        steps.append(step)
    return steps


def _edges(n, rule_out, labels, incoming=None) -> list:
    from retrograd.autograd.engine import sum_to_shape

    local = _local_derivatives(n, incoming)
    edges = []
    for k, nxt in enumerate(n.next_functions):
        if nxt is None:
            continue
        source = labels.by_id[id(nxt)] if isinstance(nxt, Tensor) else labels.node(nxt)
        product = rule_out[k] if rule_out is not None and k < len(rule_out) else None
        outgoing = product
        if product is not None and product.shape != n._in_shapes[k]:
            outgoing = sum_to_shape(product, n._in_shapes[k])  # as the engine does
        lk = local[k] if local is not None and k < len(local) else None
        edges.append(Edge(source, k, lk, product, outgoing))
    return edges


def _local_derivatives(n, incoming=None):
    """d out / d input for each input, by the node's own rule applied to ones: exact when the
    Jacobian is diagonal (elementwise ops) or has one row (a scalar output). The ones take the
    output's shape and dtype, from the output when the node kept it, else from the gradient the
    engine handed the node (the same shape and dtype)."""
    out = getattr(n, "_out", None)
    if out is None:
        out = incoming
    if not n.raw or n._n_out != 1 or out is None or not hasattr(out, "shape"):
        return None
    if type(n).__name__ not in _ELEMENTWISE and out.size != 1:
        return None
    from retrograd.backend import get_xp

    ones = get_xp(out).ones(out.shape, dtype=out.dtype)
    try:
        with np.errstate(all="ignore"):
            grads = n.backward(ones)
    except Exception:  # a rule that needs more than an array: no local value shown
        return None
    grads = grads if isinstance(grads, tuple) else (grads,)
    return [None if g is None else _np(g) for g in grads]


def _constant_values(n) -> list:
    """(tensor or None, value or None) for each operand that is not a graph input."""
    k_inputs = len(n.next_functions)
    result = [(None, None)] * k_inputs
    if all(nxt is not None for nxt in n.next_functions):
        return result
    op = type(n).__name__
    packed = n._saved
    if op in _SAVES_INPUTS and isinstance(packed, tuple):
        for k, nxt in enumerate(n.next_functions):
            if nxt is None and k < len(packed):
                p = packed[k]
                if isinstance(p, Tensor):
                    result[k] = (p, _np(p.data))
                elif hasattr(p, "shape"):
                    result[k] = (None, _np(p))
        return result
    if op in ("Add", "Sub") and k_inputs == 2 and getattr(n, "_out", None) is not None:
        # Add and Sub keep no inputs: the constant is read off the output and the other operand
        out = _np(n._out)
        shapes = n._in_shapes
        for k in range(2):
            other = n.next_functions[1 - k]
            if n.next_functions[k] is None and other is not None and shapes[k] == out.shape:
                ov = _np(other.data) if isinstance(other, Tensor) else _node_value(other)
                if ov is None:
                    continue
                if op == "Add":
                    value = out - ov
                else:
                    value = out + ov if k == 0 else ov - out
                result[k] = (None, value)
    return result


def _formula(n, operands) -> tuple[str, int]:
    op = type(n).__name__
    if op in _INFIX and len(operands) == 2:
        sym, p = _INFIX[op]
        (a, pa), (b, pb) = operands
        left = a if pa >= p else f"({a})"
        right = b if pb > p or (pb == p and op not in ("Sub", "Div", "MatMul")) else f"({b})"
        return f"{left}{sym}{right}", p
    if op == "Neg":
        a, pa = operands[0]
        return (f"-{a}" if pa >= 3 else f"-({a})"), 3
    if op in ("PowScalar", "Square"):
        a, pa = operands[0]
        e = _short(n.exponent) if op == "PowScalar" else "2"
        return (f"{a}^{e}" if pa >= _ATOM else f"({a})^{e}"), 4
    if op == "Pow" and len(operands) == 2:
        (a, pa), (b, pb) = operands
        left = a if pa >= _ATOM else f"({a})"
        return f"{left}^{b if pb >= _ATOM else f'({b})'}", 4
    if op == "ScalarPow":
        b, pb = operands[0]
        return f"{_short(n.base)}^{b if pb >= _ATOM else f'({b})'}", 4
    if op == "Linear":
        x, w = operands[0][0], operands[1][0]
        if len(operands) == 3:
            return f"{x} @ {w}^T + {operands[2][0]}", 1
        return f"{x} @ {w}^T", 2
    args = ", ".join(o[0] for o in operands)
    if op == "Sum":
        dims = getattr(n, "dims", None)
        if dims is not None and len(dims) < len(n._in_shapes[0]):
            args += f", dim={dims[0] if len(dims) == 1 else dims}"
    if op in ("CrossEntropy", "NLLLoss", "BinaryCrossEntropy"):
        args += ", target"
    name = _CALLS.get(op, op.lower())
    return f"{name}({args})", _ATOM


def _rule_text(n) -> str:
    op = type(n).__name__
    if op in RULES:
        rule = RULES[op]
        if op == "PowScalar":
            e = n.exponent
            rule += f";  n = {_short(e)}: {_short(e)} x^{_short(e - 1)}"
        if op == "Mul" and n.next_functions[0] is not None:
            if n.next_functions[0] is n.next_functions[1]:
                rule += ";  x*x: both edges reach x and are summed: 2x"
        return rule
    doc = (type(n).__doc__ or "").strip().splitlines()
    return f"{op}: {doc[0]}" if doc else f"{op}: the engine's rule for {op}"


def _note(n) -> str:
    """Named compositions: squared differences and the mean squared error."""
    if _squared_difference(n):
        return "squared difference (a - b)^2: d/da = 2(a - b), d/db = -2(a - b)"
    op = type(n).__name__
    if op == "SquaredError":  # mse_loss as one fused node
        return {
            "mean": "mean squared error (MSE): dL/da = 2(a - b)/N",
            "sum": "sum of squared errors: dL/da = 2(a - b)",
        }.get(n.reduction, "squared difference (a - b)^2: d/da = 2(a - b), d/db = -2(a - b)")
    inner = n.next_functions[0] if n.next_functions else None
    if op == "Div" and n.next_functions[1] is None and _is(inner, "Sum"):
        if _squared_difference(inner.next_functions[0]):
            return "mean squared error (MSE): dL/da = 2(a - b)/N"
    if op == "Mean" and _squared_difference(inner):
        return "mean squared error (MSE): dL/da = 2(a - b)/N"
    if op == "Mul" and inner is None and _squared_difference(n.next_functions[1]):
        tensor, half = _constant_values(n)[0]
        if half is not None and np.size(half) == 1 and float(half) == 0.5:
            return "half squared error 1/2 (a - b)^2: dE/da = a - b"
    if op == "Sum" and _squared_difference(inner):
        return "sum of squared errors: dL/da = 2(a - b)"
    return ""


def _is(n, op: str) -> bool:
    return n is not None and not isinstance(n, Tensor) and type(n).__name__ == op


def _squared_difference(n) -> bool:
    if n is None or isinstance(n, Tensor):
        return False
    op = type(n).__name__
    first = n.next_functions[0]
    if op == "Mul" and first is not None and first is n.next_functions[1]:
        return _is(first, "Sub")
    if op == "PowScalar" and n.exponent == 2 or op == "Square":
        return _is(first, "Sub")
    return False


def _node_value(n, held=None):
    out = getattr(n, "_out", None)
    if out is None and held:
        out = held.get(id(n))
    return None if out is None else _np(out)


def _leaf_rows(leaves, grads, labels, param_pairs) -> list:
    param_ids = {id(t) for _, t in param_pairs}
    rows = [
        Leaf(labels.by_id[id(t)], _np(t.data), g, not param_pairs or id(t) in param_ids)
        for t, g in zip(leaves, grads)
    ]
    order = {id(t): i for i, (_, t) in enumerate(param_pairs)}
    rank = [order.get(id(t), len(order) + i) for i, t in enumerate(leaves)]
    rows = [r for _, r in sorted(zip(rank, rows), key=lambda x: x[0])]
    for name, value in labels.used_constants.items():
        rows.append(Leaf(name, value, None, False, constant=True))
    return rows


def _gradient_sums(nodes, leaves, leaf_grads, steps, labels) -> list:
    contributions = {}
    for n, step in zip(nodes, steps):
        edges = iter(step.edges)
        for nxt in n.next_functions:
            if nxt is None:
                continue
            edge = next(edges)
            contributions.setdefault(id(nxt), []).append((step.label, edge.outgoing))
    totals = {id(t): g for t, g in zip(leaves, leaf_grads)}
    totals.update({id(n): s.incoming for n, s in zip(nodes, steps)})
    sums = []
    for obj in list(leaves) + list(nodes):
        parts = contributions.get(id(obj), [])
        if len(parts) > 1:
            label = labels.by_id[id(obj)] if isinstance(obj, Tensor) else labels.node(obj)
            sums.append(GradientSum(label, parts, totals.get(id(obj))))
    return sums


def _updates(param_pairs, leaves, leaf_grads, lr, labels) -> list:
    grads = {id(t): g for t, g in zip(leaves, leaf_grads)}
    pairs = param_pairs or [(labels.by_id[id(t)], t) for t in leaves]
    out = []
    for name, t in pairs:
        g = grads.get(id(t))
        value = _np(t.data)
        new = value - lr * g if lr is not None and g is not None else None
        out.append(ParamUpdate(name, value, g, new))
    return out


# -- the tables ------------------------------------------------------------------------------------
def _sections(e: Explanation) -> list:
    leaves = [
        (
            lf.label,
            "constant" if lf.constant else ("parameter" if lf.is_param else "input"),
            _shape(lf.value),
            _fmt(lf.value),
        )
        for lf in e.leaves
    ]
    forward = []
    for s in e.steps:
        formula = s.formula + (f" = {s.expanded}" if s.expanded else "")
        forward.append((s.index, s.label, s.op, formula, _fmt(s.value)))
    notes_fwd = [f"{s.label}: {s.note}" for s in e.steps if s.note]
    missing = e.missing_values
    if missing:
        notes_fwd.append(
            f"Values not kept: {', '.join(missing)} (shown as -). A node keeps its output only "
            "when its gradient rule needs it; record the forward inside "
            "`with retrograd.diagnostics.keep_values():` to see every value."
        )
    loss = [(e.loss_label, _fmt(e.loss))]
    backward = []
    for k, s in enumerate(e.backward_steps, 1):
        head = [k, s.label, s.rule, _fmt(s.incoming)]
        if s.incoming is None:
            backward.append(head + ["", "(no gradient reached this node)", ""])
            continue
        if not s.edges:
            backward.append(head + ["", "", ""])
        for j, edge in enumerate(s.edges):
            row = head if j == 0 else ["", "", "", ""]
            backward.append(row + [edge.source, _fmt(edge.local), _chain(s, edge)])
    sums = []
    for gs in e.sums:
        for j, (src, g) in enumerate(gs.contributions):
            sums.append((gs.label if j == 0 else "", f"from {src}", _fmt(g)))
        total = " + ".join(_signed(g) for _, g in gs.contributions)
        sums.append(("", "sum", f"{total} = {_fmt(gs.total)}"))
    params = []
    for p in e.params:
        row = [p.name, _fmt(p.value), _fmt(p.grad)]
        if e.lr is not None:
            if p.new_value is None:
                row.append("(no gradient: unchanged)")
            else:
                row.append(
                    f"{_fmt(p.value, short=True)} - {_short(e.lr)} * {_signed(p.grad)}"
                    f" = {_fmt(p.new_value)}"
                )
        params.append(row)
    param_headers = ["parameter", "value", "dL/dparam"]
    if e.lr is not None:
        param_headers.append(f"update w - lr*g (lr = {_short(e.lr)})")
    return [
        ("Inputs and parameters", ["name", "role", "shape", "value"], leaves, []),
        ("Forward pass", ["#", "node", "op", "formula", "value"], forward, notes_fwd),
        ("Loss", ["loss", "value"], loss, []),
        (
            "Backward pass (reverse topological order)",
            ["#", "node", "local derivative rule", "incoming dL/dnode", "input", "local value",
             "chain rule: incoming * local = outgoing"],
            backward,
            ["Each node receives dL/d(its output) and multiplies it by its local derivative; "
             "the product is sent back to the input (summed over broadcast dims)."],
        ),
        (
            "Gradients summed from several paths",
            ["tensor", "path", "gradient"],
            sums,
            [] if sums else ["Every tensor here is used once: no sums."],
        ),
        ("Parameter gradients and updates", param_headers, params, []),
    ]  # fmt: skip


def _chain(s: Step, edge: Edge) -> str:
    if edge.product is None:
        return "(no gradient for this input)"
    summed = ""
    if edge.outgoing is not None and edge.outgoing.shape != edge.product.shape:
        summed = f" -> summed to {_shape(edge.outgoing)}: {_fmt(edge.outgoing, short=True)}"
    if edge.local is not None:
        return f"{_signed(s.incoming)} * {_signed(edge.local)} = {_fmt(edge.product)}{summed}"
    return f"rule(g) = {_fmt(edge.product)}{summed}"


def _text_table(headers, rows, width: int) -> str:
    cells = [[str(h) for h in headers]] + [[_clip(str(c), width) for c in r] for r in rows]
    # the last column holds the chain rule and updates: it may run longer, and is never padded
    cells = [r[:-1] + [_clip(str(f[-1]), 2 * width)] for r, f in zip(cells, [headers, *rows])]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for j, r in enumerate(cells):
        line = "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths[:-1])) + "  " + r[-1]
        lines.append(line.rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    """Arrays are cut to `width` characters; formulas and rules (which read as text) to twice."""
    limit = width if text.startswith("[") or text.startswith("rule(g)") else 2 * width
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _md_cell(c) -> str:
    return str(c).replace("|", "\\|").replace("*", "\\*") if str(c) else " "


# -- numbers ---------------------------------------------------------------------------------------
def _np(a):
    """A NumPy copy of an array (CuPy arrays come to the host)."""
    if isinstance(a, Tensor):
        a = a.data
    if hasattr(a, "get") and not isinstance(a, np.ndarray):
        a = a.get()
    return np.array(a, copy=True)


def _scalar(a):
    if a is None:
        return None
    return float(a) if np.size(a) == 1 and np.ndim(a) == 0 else a


def _short(v) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.6g}"


def _fmt(a, short: bool = False) -> str:
    """9 significant digits for a scalar (6 when short); a one-line array, truncated."""
    if a is None:
        return "-"
    if isinstance(a, list):  # the slots of a node with several outputs
        return "(" + "; ".join(_fmt(x, short) for x in a) + ")"
    a = np.asarray(a)
    if a.size == 1:
        v = a.reshape(()).item()
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        digits = (6 if short else 9) if a.dtype.itemsize >= 8 else (5 if short else 7)
        return f"{v:.{digits}g}"
    body = np.array2string(
        a,
        precision=4 if short else 6,
        threshold=8,
        edgeitems=2,
        max_line_width=10**6,
        separator=", ",
    )
    return " ".join(body.split())


def _signed(a) -> str:
    """A short number, in parentheses when negative (so that `a * (-b)` reads right)."""
    text = _fmt(a, short=True)
    return f"({text})" if text.startswith("-") else text


def _shape(a) -> str:
    return "()" if a is None else str(tuple(np.shape(a)))


# -- the graph as SVG ------------------------------------------------------------------------------
_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-family:monospace}"
    "th{background:#f0f0f0}.fwd{color:#1f4e9a}.bwd{color:#b22222}"
    ".graph{overflow-x:auto;border:1px solid #ddd}"
)
_BOX_W, _BOX_H, _COL, _ROW = 128, 38, 250, 84


def _order_columns(columns: dict, steps: list) -> None:
    """Fewer crossing edges: sort each column by the mean position of its neighbours (the
    barycenter heuristic), sweeping from the loss back to the leaves and forward again."""
    sources = {s.label: [edge.source for edge in s.edges] for s in steps}
    consumers = {}
    for s in steps:
        for edge in s.edges:
            consumers.setdefault(edge.source, []).append(s.label)

    def y_of() -> dict:
        y = {}
        for items in columns.values():
            for i, item in enumerate(items):
                y[item.label] = (i + 0.5) / len(items)
        return y

    depths = sorted(columns)
    for _ in range(2):
        for sweep, neighbours in ((depths[::-1], consumers), (depths, sources)):
            for d in sweep:
                y = y_of()

                def key(item, y=y, neighbours=neighbours):
                    near = [y[n] for n in neighbours.get(item.label, ()) if n in y]
                    return sum(near) / len(near) if near else y[item.label]

                columns[d].sort(key=key)


def _svg(e: Explanation) -> str:
    """Nodes laid out by depth (leaves on the left, the loss on the right); each edge labelled
    with the forward value of its source and the gradient sent back along it."""
    # a leaf sits in the column just before its first consumer, so its edges stay short
    first_use = {}
    for s in e.steps:
        for edge in s.edges:
            first_use[edge.source] = min(first_use.get(edge.source, s.depth), s.depth)
    columns = {}
    for lf in e.leaves:
        if not lf.constant:
            columns.setdefault(max(first_use.get(lf.label, 1) - 1, 0), []).append(lf)
    for s in e.steps:
        columns.setdefault(s.depth, []).append(s)
    _order_columns(columns, e.steps)
    pos = {}
    height = max(len(c) for c in columns.values()) * _ROW + 40
    width = (max(columns) + 1) * _COL + 40
    for d, items in columns.items():
        top = (height - len(items) * _ROW) / 2
        for i, item in enumerate(items):
            pos[item.label] = (20 + d * _COL, top + i * _ROW + (_ROW - _BOX_H) / 2)
    values = {lf.label: lf.value for lf in e.leaves}
    values.update({s.label: s.value for s in e.steps})
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="11">',
        "<style>text.v{paint-order:stroke;stroke:#fff;stroke-width:3px}</style>",
        "<defs>",
        '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker>',
        "</defs>",
    ]
    used = {}
    for s in e.steps:
        for edge in s.edges:
            if edge.source not in pos:
                continue
            x1, y1 = pos[edge.source]
            x2, y2 = pos[s.label]
            x1, y1, y2 = x1 + _BOX_W, y1 + _BOX_H / 2, y2 + _BOX_H / 2
            out.append(
                f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#888" '
                'marker-end="url(#arrow)"/>'
            )
            # labels of edges leaving the same tensor are staggered so that they do not collide
            j = used.get(edge.source, 0)
            used[edge.source] = j + 1
            f = 0.42 + 0.3 * (j % 2)
            mx, my = x1 + f * (x2 - x1), y1 + f * (y2 - y1)
            fwd = html.escape(_fmt(values.get(edge.source), short=True)[:18])
            bwd = html.escape(_fmt(edge.outgoing, short=True)[:18])
            out.append(
                f'<text class="v" x="{mx:.0f}" y="{my - 3:.0f}" fill="#1f4e9a" '
                f'text-anchor="middle">{fwd}</text>'
            )
            out.append(
                f'<text class="v" x="{mx:.0f}" y="{my + 10:.0f}" fill="#b22222" '
                f'text-anchor="middle">{bwd}</text>'
            )
    for label, (x, y) in pos.items():
        fill = "#dcefd8" if label in {lf.label for lf in e.leaves} else "#dfe9f5"
        if label == e.loss_label:
            fill = "#f9e0c7"
        op = next((s.op for s in e.steps if s.label == label), "leaf")
        out.append(
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{_BOX_W}" height="{_BOX_H}" rx="6" '
            f'fill="{fill}" stroke="#555"/>'
        )
        out.append(
            f'<text x="{x + _BOX_W / 2:.0f}" y="{y + 15:.0f}" text-anchor="middle" '
            f'font-weight="bold">{html.escape(label[:18])}</text>'
        )
        out.append(
            f'<text x="{x + _BOX_W / 2:.0f}" y="{y + 30:.0f}" text-anchor="middle">'
            f"{html.escape(op)}</text>"
        )
    out.append("</svg>")
    return "\n".join(out)


# -- worked examples -------------------------------------------------------------------------------
@dataclass
class WorkedExample:
    """A loss with its parameters, names and learning rate, ready for `explain`."""

    loss: Tensor
    params: dict
    names: dict
    lr: float | None = None

    def explain(self) -> Explanation:
        return explain(self.loss, params=self.params, lr=self.lr, names=self.names)


_ACTIVATIONS = ("sigmoid", "tanh", "relu", "identity")


def network(
    sizes,
    inputs,
    targets,
    weights=None,
    biases=None,
    activation: str = "sigmoid",
    lr: float | None = 0.5,
    seed: int = 0,
) -> WorkedExample:
    """A fully connected network built from scalar ops, so every unit shows in the explanation.

    sizes: units per layer, inputs first (e.g. (2, 2, 2)). weights: w1, w2, ... in Mazur's order
    (unit by unit, input by input); drawn uniformly from [-1, 1) with `seed` when None. biases:
    one per layer, shared by its units (as in the textbook); 0.5 when None. The loss is the
    squared error E = sum 1/2 (target - out)^2.
    """
    from retrograd.creation import tensor

    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or len(inputs) != sizes[0] or len(targets) != sizes[-1]:
        raise ValueError(
            f"sizes {sizes} need {sizes[0]} inputs and {sizes[-1]} targets, got "
            f"{len(inputs)} and {len(targets)}"
        )
    n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if weights is None:
        weights = np.random.default_rng(seed).uniform(-1.0, 1.0, n_weights).tolist()
    if biases is None:
        biases = [0.5] * (len(sizes) - 1)
    if len(weights) != n_weights or len(biases) != len(sizes) - 1:
        raise ValueError(
            f"sizes {sizes} need {n_weights} weights and {len(sizes) - 1} biases, got "
            f"{len(weights)} and {len(biases)}"
        )

    def leaf(v, grad: bool) -> Tensor:
        return tensor(float(v), dtype="float64", requires_grad=grad)

    with keep_values():  # a worked example shows every forward value
        return _network(sizes, inputs, targets, weights, biases, activation, lr, leaf)


def _network(sizes, inputs, targets, weights, biases, activation, lr, leaf) -> WorkedExample:

    names, params = {}, {}
    units = []
    for k, v in enumerate(inputs, 1):
        units.append(leaf(v, False))
        names[f"i{k}"] = units[-1]
    w_iter = iter(weights)
    n_w = 0
    for layer in range(1, len(sizes)):
        last = layer == len(sizes) - 1
        prefix = "o" if last else ("h" if len(sizes) == 3 else f"h{layer}_")
        b = leaf(biases[layer - 1], True)
        params[f"b{layer}"] = b
        names[f"b{layer}"] = b
        new_units = []
        for j in range(1, sizes[layer] + 1):
            net = None
            for x in units:
                n_w += 1
                w = leaf(next(w_iter), True)
                params[f"w{n_w}"] = w
                names[f"w{n_w}"] = w
                net = w * x if net is None else net + w * x
            net = net + b
            names[f"net_{prefix}{j}"] = net
            out = _activate(net, activation)
            if out is not net:
                names[f"out_{prefix}{j}"] = out
            new_units.append(out)
        units = new_units
    total = None
    for j, (out, t) in enumerate(zip(units, targets), 1):
        target = leaf(t, False)
        names[f"target_o{j}"] = target
        err = 0.5 * (target - out) ** 2
        names[f"E_o{j}"] = err
        total = err if total is None else total + err
    names["E_total"] = total
    # parameters in the textbook's order: weights first, then biases
    ordered = {k: v for k, v in params.items() if k.startswith("w")}
    ordered.update({k: v for k, v in params.items() if k.startswith("b")})
    return WorkedExample(total, ordered, names, lr)


def _activate(x: Tensor, activation: str) -> Tensor:
    if activation == "sigmoid":
        return x.sigmoid()
    if activation == "tanh":
        return x.tanh()
    if activation == "relu":
        return x.relu()
    return x


def textbook_network() -> WorkedExample:
    """Matt Mazur's "A Step by Step Backpropagation Example": 2 inputs, 2 sigmoid hidden units,
    2 sigmoid outputs, E = sum 1/2 (target - out)^2, learning rate 0.5 (float64).

    Known numbers: E_total 0.298371109, out_o1 0.75136507, out_h1 0.593269992,
    dE/dw5 0.082167041 (new w5 0.35891648), dE/dw1 0.000438568 (new w1 0.149780716).
    """
    return network(
        (2, 2, 2),
        inputs=(0.05, 0.10),
        targets=(0.01, 0.99),
        weights=(0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55),
        biases=(0.35, 0.60),
        activation="sigmoid",
        lr=0.5,
    )


# -- expressions typed by a user ------------------------------------------------------------------
_FUNCTIONS = ("exp", "log", "sigmoid", "tanh", "relu", "sin", "cos", "sqrt", "abs", "sum", "mean")
_BINOPS = {ast.Add: "__add__", ast.Sub: "__sub__", ast.Mult: "__mul__", ast.Div: "__truediv__"}
_BINOPS.update({ast.Pow: "__pow__", ast.MatMult: "__matmul__"})


def expression(source: str, values: dict, lr: float | None = None) -> WorkedExample:
    """Build a scalar expression such as "(x*y + exp(x)).sum()" from a safe subset of Python:
    numbers, the variables in `values` (numbers or lists, float64 leaves requiring grad),
    + - * / ** @, unary minus, and the functions exp, log, sigmoid, tanh, relu, sin, cos,
    sqrt, abs, sum, mean (called as f(x) or x.f()). Nothing else is evaluated.

    >>> ex = expression("x*y + exp(x)", {"x": 2.0, "y": 3.0})
    >>> print(explain(ex.loss, names=ex.names).to_text())
    """
    from retrograd.creation import tensor

    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"cannot parse the expression {source!r}: {e.msg}") from e
    leaves = {
        k: tensor(np.asarray(v, dtype=np.float64), dtype="float64", requires_grad=True)
        for k, v in values.items()
    }

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            if isinstance(node.value, bool):
                raise ValueError("booleans are not numbers here")
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in leaves:
                raise ValueError(f"unknown variable {node.id!r} (give its value)")
            return leaves[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = ev(node.left), ev(node.right)
            if not isinstance(left, Tensor) and not isinstance(right, Tensor):
                return _number_op(node.op, left, right)
            method = _BINOPS[type(node.op)]
            if isinstance(left, Tensor):
                return getattr(left, method)(right)
            return getattr(right, "__r" + method[2:])(left)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Call) and not node.keywords:
            if isinstance(node.func, ast.Name) and len(node.args) == 1:
                _check_function(node.func.id)
                return _call(node.func.id, ev(node.args[0]))
            if isinstance(node.func, ast.Attribute) and not node.args:
                _check_function(node.func.attr)
                return _call(node.func.attr, ev(node.func.value))
        raise ValueError(f"not allowed in an expression: {ast.unparse(node)!r}")

    with keep_values():  # a worked example shows every forward value
        result = ev(tree)
    if not isinstance(result, Tensor) or result.grad_fn is None:
        raise ValueError("the expression must use at least one variable")
    if result.numel() != 1:
        raise ValueError(
            f"the expression gives shape {tuple(result.shape)}: wrap it in sum(...) for a scalar"
        )
    names = dict(leaves)
    names["f"] = result
    return WorkedExample(result, dict(leaves), names, lr)


def _number_op(op, a: float, b: float) -> float:
    if isinstance(op, ast.Add):
        return a + b
    if isinstance(op, ast.Sub):
        return a - b
    if isinstance(op, ast.Mult):
        return a * b
    if isinstance(op, ast.Div):
        return a / b
    if isinstance(op, ast.Pow):
        return a**b
    raise ValueError("@ needs tensors")


def _check_function(name: str) -> None:
    if name not in _FUNCTIONS:
        raise ValueError(f"unknown function {name!r}; allowed: {', '.join(_FUNCTIONS)}")


def _call(name: str, x):
    if not isinstance(x, Tensor):
        from retrograd.creation import tensor

        x = tensor(x, dtype="float64")
    return getattr(x, name)()
