"""The rewrite engine: declarative and functional local rewrites, named sets, a worklist
that runs them to a fixed point, and the passes (merge, constant folding, dead code).

The tensor rewrites themselves live in :mod:`symgrad.tensor.rewriting`.
"""

from symgrad.rewrite.apply import apply_mode_rewrites
from symgrad.rewrite.basic import (
    GlobalRewrite,
    LocalRewrite,
    RewriteRegistry,
    global_rewriter,
    node_rewriter,
    register,
    registry,
)
from symgrad.rewrite.engine import (
    RewriteCheckError,
    RewriteContext,
    RewriteError,
    constant_folding_pass,
    dead_code_pass,
    merge_pass,
    run_local_rewrites,
)
from symgrad.rewrite.pattern import (
    Match,
    PatternRewrite,
    fit_to,
    pattern_rewrite,
    pattern_var,
    pattern_vars,
)

__all__ = [
    "apply_mode_rewrites", "GlobalRewrite", "LocalRewrite", "RewriteRegistry",
    "global_rewriter", "node_rewriter", "register", "registry", "RewriteCheckError",
    "RewriteContext", "RewriteError", "constant_folding_pass", "dead_code_pass", "merge_pass",
    "run_local_rewrites", "Match", "PatternRewrite", "fit_to", "pattern_rewrite",
    "pattern_var", "pattern_vars", "rewrite_graph",
]


def rewrite_graph(outputs, mode="FAST_RUN", include=(), exclude=()):
    """Rewrite the graph of ``outputs`` (a variable or list) and return the new outputs.

    >>> import symgrad.tensor as st
    >>> from symgrad.printing import pp
    >>> x = st.dscalar("x")
    >>> pp(rewrite_graph(x * 1 + 0))
    'x'
    """
    from symgrad.compile.mode import get_mode
    from symgrad.graph.basic import as_list
    from symgrad.graph.fgraph import FunctionGraph
    from symgrad.graph.traversal import clone_get_equiv, graph_inputs

    single = not isinstance(outputs, list | tuple)
    outs = as_list(outputs)
    m = get_mode(mode)
    if include:
        m = m.including(*include)
    if exclude:
        m = m.excluding(*exclude)
    from symgrad.graph.basic import Constant

    inputs = [v for v in graph_inputs(outs) if not isinstance(v, Constant)]
    equiv = clone_get_equiv(inputs, outs, copy_inputs=False)  # never edit the caller's nodes
    fg = FunctionGraph(inputs, [equiv.get(o, o) for o in outs], clone=False)
    apply_mode_rewrites(fg, m)
    return fg.outputs[0] if single else list(fg.outputs)
