"""The backend-neutral graph IR: variables, apply nodes, ops, traversal, FunctionGraph.

The names are imported from their modules on first use (see :mod:`symgrad._lazy`):
``import symgrad`` needs only :mod:`symgrad.graph.basic`.
"""

from symgrad._lazy import make_lazy

_MODULES = {
    "basic": ("Apply", "Constant", "Op", "Tag", "Type", "Variable"),
    "fgraph": ("FunctionGraph", "InconsistencyError", "MissingInputError"),
    "traversal": ("ancestors", "apply_nodes_between", "clone", "clone_get_equiv",
                  "clone_replace", "graph_inputs", "graph_replace", "io_toposort", "toposort"),
    "vectorize": ("vectorize_graph",),
}

__all__ = [name for names in _MODULES.values() for name in names]

make_lazy(__name__, {
    **{sub: f"symgrad.graph.{sub}" for sub in _MODULES},
    **{name: f"symgrad.graph.{sub}:{name}" for sub, names in _MODULES.items() for name in names},
})
