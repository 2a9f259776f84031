"""Drawings of the autograd graph (Graphviz DOT, no dependency): `retrograd.viz.draw_graph`.

>>> from retrograd.viz import draw_graph
>>> draw_graph(loss, model=model).save("graph.dot")
"""

from retrograd.diagnostics.graph import Graph, ModuleScopes, draw_graph, record_modules

__all__ = ["Graph", "ModuleScopes", "draw_graph", "record_modules"]
