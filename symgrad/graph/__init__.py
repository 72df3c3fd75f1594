"""The backend-neutral graph IR: variables, apply nodes, ops, traversal, FunctionGraph."""

from symgrad.graph.basic import Apply, Constant, Op, Tag, Type, Variable
from symgrad.graph.fgraph import FunctionGraph, InconsistencyError, MissingInputError
from symgrad.graph.traversal import (
    ancestors,
    apply_nodes_between,
    clone,
    clone_get_equiv,
    clone_replace,
    graph_inputs,
    graph_replace,
    io_toposort,
    toposort,
)
from symgrad.graph.vectorize import vectorize_graph

__all__ = [
    "Apply", "Constant", "Op", "Tag", "Type", "Variable", "FunctionGraph",
    "InconsistencyError", "MissingInputError", "ancestors", "apply_nodes_between", "clone",
    "clone_get_equiv", "clone_replace", "graph_inputs", "graph_replace", "io_toposort",
    "toposort", "vectorize_graph",
]
