"""Graph drawings: the autograd graph behind a tensor as Graphviz DOT, with no dependency.

    >>> g = draw_graph(loss, model=model)          # one node per op, parameters by their names
    >>> g.save("graph.dot")                         # plain text, always available
    >>> g.render("graph.svg")                       # needs Graphviz (the `dot` program)

Gradient norms (`show_grad=True`) are taken from a backward pass run by the engine with hooks
on every node when the graph is still there (it is not freed, and `.grad` is not touched);
otherwise from the leaves' `.grad` and the retained gradients of non-leaf tensors.

Large models stay readable by collapsing each child module into one node. The graph does not
remember which module made a node, so the forward pass runs inside `record_modules(model)`:

    >>> with record_modules(model):                 # or: with draw_graph.record(model):
    ...     loss = F.mse_loss(model(x), y)
    >>> draw_graph(loss, collapse_modules=model)    # one node per child module
    >>> draw_graph(loss, model=model, cluster_modules=model)  # every op, boxed by module
"""

from __future__ import annotations

import shutil
import subprocess
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrograd.tensor import Tensor

__all__ = ["Graph", "GraphNode", "ModuleScopes", "draw_graph", "record_modules"]

_FILL = {"op": "#dfe9f5", "param": "#c9e7c2", "leaf": "#eeeeee", "module": "#fbe3c2"}
_ROOT_FILL = "#f7c6a3"
_INSTALL = (
    "rendering needs Graphviz: install the `dot` program (apt install graphviz, brew install "
    "graphviz, or conda install graphviz) and optionally the Python package (pip install "
    "graphviz); or write the DOT text with .save('graph.dot') and render it elsewhere"
)


@dataclass
class GraphNode:
    id: str
    label: str  # lines joined by "\n"
    kind: str  # "op", "param", "leaf" or "module"
    root: bool = False


class Graph:
    """Nodes, edges (input -> consumer) and optional clusters; writes DOT, renders with Graphviz."""

    def __init__(self, nodes: list, edges: list, clusters: dict | None = None) -> None:
        self.nodes = nodes
        self.edges = edges
        self.clusters = clusters or {}  # cluster label -> [node ids]

    def __len__(self) -> int:
        return len(self.nodes)

    def labels(self) -> list[str]:
        return [n.label for n in self.nodes]

    def to_dot(self) -> str:
        lines = [
            "digraph retrograd {",
            '  graph [rankdir=TB, fontname="Helvetica", fontsize=10];',
            '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
            '  edge [color="#555555", arrowsize=0.7];',
        ]
        for n in self.nodes:
            fill = _ROOT_FILL if n.root else _FILL[n.kind]
            lines.append(f'  {n.id} [label="{_escape(n.label)}", fillcolor="{fill}"];')
        for k, (label, ids) in enumerate(self.clusters.items()):
            lines.append(f"  subgraph cluster_{k} {{")
            lines.append(f'    label="{_escape(label)}"; style="rounded,dashed"; color="#888888";')
            lines.extend(f"    {i};" for i in ids)
            lines.append("  }")
        lines.extend(f"  {a} -> {b};" for a, b in self.edges)
        lines.append("}")
        return "\n".join(lines) + "\n"

    def save(self, path) -> Path:
        """Write the DOT text to `path` (no dependency)."""
        path = Path(path)
        path.write_text(self.to_dot())
        return path

    def render(self, path, format: str | None = None) -> Path:
        """Draw the graph to an image (svg, png, pdf) with Graphviz: the `graphviz` Python
        package when it is installed, else the `dot` program directly."""
        path = Path(path)
        fmt = (format or path.suffix.lstrip(".")).lower()
        if fmt not in ("svg", "png", "pdf", "jpg", "jpeg", "gif"):
            raise ValueError(f"cannot render to {fmt!r}: use .svg, .png or .pdf (or .save DOT)")
        path.write_bytes(_run_dot(self.to_dot(), fmt))
        return path

    def __repr__(self) -> str:
        return f"<Graph: {len(self.nodes)} nodes, {len(self.edges)} edges>"


def _run_dot(source: str, fmt: str) -> bytes:
    try:
        import graphviz
    except ImportError:
        graphviz = None
    if graphviz is not None:
        try:
            return graphviz.Source(source).pipe(format=fmt)
        except graphviz.ExecutableNotFound as e:
            raise RuntimeError(_INSTALL) from e
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(_INSTALL)
    done = subprocess.run([dot, f"-T{fmt}"], input=source.encode(), capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"dot failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# -- recording which module made which node --------------------------------------------------------
_RECORDINGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> last ModuleScopes


class ModuleScopes:
    """Which module's forward created each graph node, recorded with forward hooks.

    Use as a context manager around the forward pass; the latest recording of a model is also
    found by `draw_graph(..., collapse_modules=model)`.
    """

    def __init__(self, model) -> None:
        self._model = weakref.ref(model)
        self._node_scope: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._param_scope = {}  # id(param) -> (module name, param)
        self.types = {}  # module name -> class name
        self._handles = []
        self._stack = []

    @property
    def model(self):
        """The recorded model (None once it is gone)."""
        return self._model()

    def __enter__(self) -> ModuleScopes:
        model = self._model()
        for name, module in model.named_modules():
            if not name:
                continue
            self.types[name] = type(module).__name__
            for _, p in module.named_parameters(recurse=False):
                self._param_scope.setdefault(id(p), (name, p))
            self._handles.append(module.register_forward_pre_hook(self._pre_hook))
            self._handles.append(module.register_forward_hook(self._make_post_hook(name)))
        _RECORDINGS[model] = self
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._stack = []  # a forward that raised leaves its boundary behind

    def _pre_hook(self, module, args):
        # the nodes that made this module's inputs are its boundary: the walk stops there
        self._stack.append({id(t.grad_fn) for t in _tensors(args) if t.grad_fn is not None})

    def _make_post_hook(self, name: str):
        def hook(module, args, output):
            boundary = self._stack.pop() if self._stack else set()
            self._claim(name, output, boundary)

        return hook

    def _claim(self, name: str, output, boundary: set) -> None:
        """Give `name` every node between the module's inputs and its output; nodes that an
        inner module claimed keep their (longer) name, and the walk stops at nodes another
        module made before this one ran."""
        stack = [t.grad_fn for t in _tensors(output) if t.grad_fn is not None]
        seen = set()
        while stack:
            n = stack.pop()
            if id(n) in seen or id(n) in boundary:
                continue
            seen.add(id(n))
            owner = self._node_scope.get(n)
            if owner is None:
                self._node_scope[n] = name
            elif owner != name and not owner.startswith(name + "."):
                continue
            stack.extend(x for x in n.next_functions if x is not None and not isinstance(x, Tensor))

    def module_of(self, node, depth: int = 1) -> str | None:
        """The module (its first `depth` name components) whose forward made `node`."""
        name = self._node_scope.get(node)
        return None if name is None else ".".join(name.split(".")[:depth])

    def module_of_param(self, tensor, depth: int = 1) -> str | None:
        entry = self._param_scope.get(id(tensor))
        if entry is None or entry[1] is not tensor:
            return None
        return ".".join(entry[0].split(".")[:depth])


def record_modules(model) -> ModuleScopes:
    """Record which child module creates each node during the forward passes in this context."""
    return ModuleScopes(model)


def _tensors(obj):
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _tensors(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _tensors(x)


# -- drawing ---------------------------------------------------------------------------------------
def draw_graph(
    tensor: Tensor,
    params=None,
    model=None,
    show_grad: bool = False,
    collapse_modules=None,
    cluster_modules=None,
    depth: int = 1,
) -> Graph:
    """The graph that computed `tensor`: one node per op (name and output shape), leaves
    labelled by their parameter names (from `params` — a dict, (name, tensor) pairs or a
    Module — or `model`), gradient norms on the nodes when `show_grad`.

    collapse_modules: a Module (whose forward ran inside `record_modules(model)`) or a
    ModuleScopes: each child module (names cut to `depth` components) becomes one node.
    cluster_modules: the same, but every op is kept and boxed by module.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"draw_graph expects a Tensor, got {type(tensor).__name__}")
    names = _names(params if params is not None else model)
    scopes = collapse_modules if collapse_modules is not None else cluster_modules
    if scopes is not None and not isinstance(scopes, ModuleScopes):
        scopes = _recording(scopes)
    if scopes is not None and not names:
        names = _names(scopes.model)
    nodes, leaves = _walk(tensor)
    known = _known_shapes(tensor, nodes)
    norms = _grad_norms(tensor, nodes, leaves) if show_grad else {}

    gnodes, ids = [], {}
    for i, leaf in enumerate(leaves):
        ids[id(leaf)] = f"p{i}" if id(leaf) in names else f"x{i}"
        label = names.get(id(leaf)) or getattr(leaf, "name", None) or "leaf"
        lines = [label, _shape(leaf.data.shape)] + _norm_line(norms.get(id(leaf)))
        kind = "param" if id(leaf) in names else "leaf"
        gnodes.append(GraphNode(ids[id(leaf)], "\n".join(lines), kind, root=leaf is tensor))
    for i, n in enumerate(nodes):
        ids[id(n)] = f"n{i}"
        lines = [type(n).__name__, _shape(_out_shape(n, known))] + _norm_line(norms.get(id(n)))
        gnodes.append(GraphNode(ids[id(n)], "\n".join(lines), "op", root=n is tensor.grad_fn))
    edges = []
    for n in nodes:
        for nxt in n.next_functions:
            if nxt is not None:
                edges.append((ids[id(nxt)], ids[id(n)]))
    graph = Graph(gnodes, edges)  # x*x keeps both edges: two paths, summed in backward
    if scopes is None:
        return graph
    groups = {}  # node id -> module name
    for n in nodes:
        g = scopes.module_of(n, depth)
        if g is not None:
            groups[ids[id(n)]] = g
    for leaf in leaves:
        g = scopes.module_of_param(leaf, depth)
        if g is not None:
            groups[ids[id(leaf)]] = g
    if collapse_modules is not None:
        return _collapse(graph, groups, scopes, nodes, ids, norms, known)
    clusters = {}
    for node in _ops_first(graph.nodes):
        g = groups.get(node.id)
        if g is not None:
            clusters.setdefault(f"{g}: {scopes.types.get(g, '?')}", []).append(node.id)
    graph.clusters = clusters
    return graph


def _collapse(
    graph: Graph, groups: dict, scopes: ModuleScopes, nodes, ids, norms, known=None
) -> Graph:
    by_id = {n.id: n for n in graph.nodes}
    members = {}
    for node in _ops_first(graph.nodes):
        g = groups.get(node.id)
        if g is not None:
            members.setdefault(g, []).append(node)
    last_op = {}  # module -> its last node in forward order (its output)
    for n in nodes:
        g = groups.get(ids[id(n)])
        if g is not None:
            last_op[g] = n
    new_id = {}
    out_nodes = []
    for k, (g, items) in enumerate(members.items()):
        mid = f"m{k}"
        ops = [i for i in items if i.kind == "op"]
        lines = [f"{g}: {scopes.types.get(g, '?')}", f"{len(ops)} op{'s' if len(ops) != 1 else ''}"]
        if g in last_op:
            lines.append("out " + _shape(_out_shape(last_op[g], known)))
            norm = norms.get(id(last_op[g]))
            lines += [] if norm is None else [f"|grad out| = {norm:.3g}"]
        lines += [i.label.replace("\n", " ") for i in items if i.kind != "op"]
        root = any(i.root for i in items)
        out_nodes.append(GraphNode(mid, "\n".join(lines), "module", root=root))
        for i in items:
            new_id[i.id] = mid
    for node in graph.nodes:
        if node.id not in new_id:
            new_id[node.id] = node.id
            out_nodes.append(by_id[node.id])
    edges = []
    for a, b in graph.edges:
        a2, b2 = new_id[a], new_id[b]
        if a2 != b2:
            edges.append((a2, b2))
    return Graph(out_nodes, list(dict.fromkeys(edges)))


def _ops_first(nodes) -> list:
    """Op nodes (in forward order) before leaves: modules then appear in the order they ran."""
    return [n for n in nodes if n.kind == "op"] + [n for n in nodes if n.kind != "op"]


def _recording(model) -> ModuleScopes:
    scopes = _RECORDINGS.get(model) if hasattr(model, "named_modules") else None
    if scopes is None:
        raise ValueError(
            "collapsing modules needs to know which module made each node: run the forward pass "
            "inside `with record_modules(model):` (or `with draw_graph.record(model):`) first"
        )
    return scopes


def _names(source) -> dict:
    """id(tensor) -> parameter name."""
    if source is None:
        return {}
    if hasattr(source, "named_parameters"):
        pairs = source.named_parameters()
    elif isinstance(source, dict):
        pairs = source.items()
    else:
        pairs = source
    return {id(t): name for name, t in pairs}


def _walk(tensor):
    """Op nodes in forward (topological) order and the leaves, without recursion."""
    if tensor.grad_fn is None:
        return [], [tensor]
    nodes, leaves, seen = [], [], set()
    stack = [(tensor.grad_fn, False)]
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
        stack.extend((x, False) for x in reversed(n.next_functions) if x is not None)
    return nodes, leaves


def _out_shape(n, known=None):
    out = getattr(n, "_out", None)
    if out is not None:
        return out.shape
    meta = n.__dict__.get("_out_meta")
    if meta:
        return meta[0][0] if meta[0] is not None else None
    return None if known is None else known.get(id(n))


def _known_shapes(tensor, nodes) -> dict:
    """{id(node): shape of its output 0} read off its consumers' input shapes (and the root):
    a node keeps its output array only when its rule needs it (or under keep_values)."""
    known = {id(tensor.grad_fn): tensor.data.shape} if tensor._out_nr == 0 else {}
    for n in nodes:
        nrs = n._in_nrs
        for k, nxt in enumerate(n.next_functions):
            if nxt is not None and not isinstance(nxt, Tensor) and not (nrs and nrs[k]):
                known.setdefault(id(nxt), n._in_shapes[k])
    return known


def _shape(shape) -> str:
    return "?" if shape is None else str(tuple(shape))


def _norm_line(norm) -> list:
    return [] if norm is None else [f"|grad| = {norm:.3g}"]


def _norm(a) -> float:
    if hasattr(a, "get") and not isinstance(a, np.ndarray):
        a = a.get()
    return float(np.sqrt(np.sum(np.square(np.asarray(a, dtype=np.float64)))))


def _grad_norms(tensor, nodes, leaves) -> dict:
    """id(node or leaf) -> norm of the gradient of `tensor` with respect to its output."""
    if tensor.grad_fn is not None and tensor.requires_grad and tensor.numel() == 1:
        norms = _captured_norms(tensor, nodes, leaves)
        if norms is not None:
            return norms
    norms = {}
    for leaf in leaves:
        if leaf.grad is not None:
            norms[id(leaf)] = _norm(leaf.grad.data)
    for n in nodes:  # tensors that retained their gradient
        for ref in (n._retains or {}).values():
            t = ref()
            if t is not None and t.grad is not None:
                norms[id(n)] = _norm(t.grad.data)
    return norms


def _captured_norms(tensor, nodes, leaves):
    """Run the engine's backward with a hook on every node (graph kept, `.grad` untouched)."""
    from retrograd.autograd import grad as autograd_grad

    norms = {}
    hooks = []

    def make(n):
        def hook(grads, g):
            parts = g if n._n_out > 1 else [g]
            norms[id(n)] = float(np.sqrt(sum(_norm(p) ** 2 for p in parts if p is not None)))

        return hook

    retains = [(n, n._retains) for n in nodes if n._retains is not None]
    for n, _ in retains:  # retain_grad() tensors keep their .grad as it was
        n._retains = None
    for n in nodes:
        h = make(n)
        n.register_hook(h)
        hooks.append((n, h))
    try:
        grads = autograd_grad(tensor, leaves, retain_graph=True, allow_unused=True)
    except RuntimeError:  # the graph was freed by an earlier backward
        return None
    finally:
        for n, h in hooks:
            n._post_hooks.remove(h)
            if not n._post_hooks:
                n._post_hooks = None
        for n, r in retains:
            n._retains = r
    for leaf, g in zip(leaves, grads):
        if g is not None:
            norms[id(leaf)] = _norm(g.data)
    return norms


draw_graph.record = record_modules  # `with draw_graph.record(model):` reads as it should
