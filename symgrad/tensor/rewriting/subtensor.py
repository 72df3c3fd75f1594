"""Rewrites of indexing: gradients of slices add into the other terms directly."""

from __future__ import annotations

import symgrad.tensor.math as sm
from symgrad.graph.basic import Constant
from symgrad.rewrite.basic import node_rewriter
from symgrad.tensor.rewriting.basic import (
    elemwise_name,
    get_dims,
    lazy_class,
    scalar_const,
    single_client,
)

INC = "symgrad.tensor.subtensor:IncSubtensor"


def _zeros(var) -> bool:
    """``var`` is fill(a, 0) (the zeros a gradient of an index starts from)."""
    if elemwise_name(var) != "second":
        return False
    return scalar_const(var.owner.inputs[1]) == 0


@node_rewriter([sm.add], sets=("canonicalize",))
def local_inc_subtensor_of_zeros_add(fgraph, node):
    """inc(zeros, y, idx) + w -> inc(w, y, idx) when w has the full shape: one copy of w
    with y added in place, instead of a zero array, an increment and a sum."""
    Inc = lazy_class(INC)
    if Inc is None:
        return None
    out = node.outputs[0]
    dims = get_dims(fgraph)
    inputs = node.inputs
    for k, v in enumerate(inputs):
        inc = v.owner
        if inc is None or not isinstance(inc.op, Inc) or inc.op.set_instead_of_inc:
            continue
        if not _zeros(inc.inputs[0]) or not single_client(fgraph, v) or v.dtype != out.dtype:
            continue
        dv = dims(v)
        if dv != dims(out):
            continue
        for j, w in enumerate(inputs):
            if j == k or isinstance(w, Constant) or w.dtype != v.dtype or w.ndim != v.ndim:
                continue
            if dims(w) != dv:
                continue
            new = inc.op(w, *inc.inputs[1:])
            rest = [i for n, i in enumerate(inputs) if n not in (k, j)]
            return [sm.add(new, *rest) if rest else new]
    return None
