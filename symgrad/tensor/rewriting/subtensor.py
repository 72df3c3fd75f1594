"""Rewrites of indexing: gradients of slices add into the other terms directly.

The gradient of ``x[idx]`` is ``inc_subtensor(zeros_like(x)[idx], g)``; a function of
several slices of x gets one such term per slice, added together. The rewrites here turn
``inc(zeros, a, I) + inc(zeros, b, J) + inc(zeros, c, I) + w`` into
``inc(inc(w, a + c, I), b, J)``: no zero arrays, no full-size sums, one increment per index.
(Reordering the additions changes only rounding, as flattening a sum does.)
"""

from __future__ import annotations

import numpy as np

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
from symgrad.tensor.rewriting.dims import length_dims

INC = "symgrad.tensor.subtensor:IncSubtensor"
ALLOC = "symgrad.tensor.shape:Alloc"


def _zeros(var) -> bool:
    """``var`` is fill(a, 0) or alloc(0, shape) (the zeros a gradient of an index starts from)."""
    if elemwise_name(var) == "second":
        return scalar_const(var.owner.inputs[1]) == 0
    Alloc = lazy_class(ALLOC)
    node = var.owner
    if Alloc is not None and node is not None and isinstance(node.op, Alloc):
        value = node.inputs[0]
        return scalar_const(value) == 0 or _zeros(value)
    return False


def _is_inc(var, Inc):
    """The node of an increment (not a set) computing ``var``, else None."""
    node = var.owner
    if node is None or not isinstance(node.op, Inc) or node.op.set_instead_of_inc:
        return None
    return node


def _index_key(node):
    """Increments with equal keys add into the same positions."""
    parts = [type(node.op), node.op.idx_list]
    for i in node.inputs[2:]:
        c = scalar_const(i) if isinstance(i, Constant) else None
        parts.append(("c", c) if c is not None else ("v", id(i)))
    return tuple(parts)


def _unwrap(fgraph, var, Inc, dims, target, dtype):
    """``var = inc(...inc(base, y1, i1)..., yk, ik)``: (base, [inc nodes, innermost first]),
    following increments used only by the next one and shaped like ``target``."""
    incs = []
    while True:
        node = _is_inc(var, Inc)
        if node is None or var.dtype != dtype or dims(var) != target:
            break
        if incs and not single_client(fgraph, var):
            break
        incs.append(node)
        var = node.inputs[0]
    incs.reverse()
    return var, incs


def _rebuild(base, incs):
    """``base`` with the increments applied, those into the same positions added first."""
    groups: dict = {}
    for node in incs:
        groups.setdefault(_index_key(node), []).append(node)
    result = base
    for nodes in groups.values():
        ys = [n.inputs[1] for n in nodes]
        y = ys[0] if len(ys) == 1 else sm.add(*ys)
        first = nodes[0]
        op = type(first.op)(first.op.idx_list)
        result = op(result, y, *first.inputs[2:])
    return result


def _add_of_incs(fgraph, node, Inc):
    """The replacement of the sum ``node`` whose terms are increments, or None."""
    for v in node.inputs:
        if _is_inc(v, Inc) is not None:
            break
    else:
        return None  # (before any shape analysis: most sums have no increment)
    out = node.outputs[0]
    dims = get_dims(fgraph)
    target = dims(out)
    others, incs, zero = [], [], None
    found = False
    for v in node.inputs:
        if _is_inc(v, Inc) is not None and single_client(fgraph, v):
            base, chain = _unwrap(fgraph, v, Inc, dims, target, out.dtype)
        else:
            base, chain = v, []
        if chain:
            found = True
            incs.extend(chain)
            if _zeros(base):
                zero = base if zero is None else zero
                continue
        others.append(base)
    if not found:
        return None
    if not others:
        base = zero
    else:
        base = others[0] if len(others) == 1 else sm.add(*others)
        if base.dtype != out.dtype or base.ndim != out.ndim or dims(base) != target:
            if zero is None:
                return None
            base = sm.add(zero, *others)
            if base.dtype != out.dtype:
                return None
    return _rebuild(base, incs)


@node_rewriter([sm.add], sets=("canonicalize",))
def local_inc_subtensor_of_zeros_add(fgraph, node):
    """inc(zeros, y, idx) + w -> inc(w, y, idx) when w has the full shape (one copy of w with y
    added in place, instead of a zero array, an increment and a sum); every increment of the
    sum is lifted this way and those into the same positions are merged:
    inc(z, a, I) + inc(z, b, J) + inc(z, c, I) -> inc(inc(z, a + c, I), b, J)."""
    Inc = lazy_class(INC)
    if Inc is None:
        return None
    new = _add_of_incs(fgraph, node, Inc)
    return None if new is None else [new]


@node_rewriter([INC], sets=("canonicalize",))
def local_inc_subtensor_merge(fgraph, node):
    """inc(inc(x, a, I), b, I) -> inc(x, a + b, I) (also with other increments between them);
    and an increment whose only client is a sum: that sum's rewrite, run from here (the sum
    is not revisited when an increment below it changes)."""
    Inc = lazy_class(INC)
    out = node.outputs[0]
    if node.op.set_instead_of_inc:
        return None
    clients = fgraph.clients.get(out, ())
    if len(clients) == 1 and clients[0][0] != "output":
        c = clients[0][0]
        if elemwise_name(c.outputs[0]) == "add":
            new = _add_of_incs(fgraph, c, Inc)
            if new is not None:
                return {c.outputs[0]: new}
        parent = c.outputs[0] if isinstance(c.op, Inc) and clients[0][1] == 0 else None
        if parent is not None and _is_inc(parent, Inc) is not None:
            return None  # the outermost increment of the chain merges it
    dims = get_dims(fgraph)
    base, chain = _unwrap(fgraph, out, Inc, dims, dims(out), out.dtype)
    if len({_index_key(n) for n in chain}) == len(chain):
        return None
    return [_rebuild(base, chain)]


# -- one-hot rows: the identity ----------------------------------------------------------------------

ADV_INC = "symgrad.tensor.subtensor:AdvancedIncSubtensor"
ARANGE = "symgrad.tensor.creation:ARange"


def _arange_from_zero(var):
    """``var`` is arange(0, n, 1)."""
    ARange = lazy_class(ARANGE)
    node = var.owner
    if ARange is None or node is None or not isinstance(node.op, ARange):
        return False
    start, _, step = node.inputs
    return scalar_const(start) == 0 and scalar_const(step) == 1


def _is_ones(var) -> bool:
    if isinstance(var, Constant):
        return var.data.size > 0 and bool(np.all(var.data == 1))
    if elemwise_name(var) == "second":
        return scalar_const(var.owner.inputs[1]) == 1
    return False


@node_rewriter([ADV_INC], sets=("canonicalize",))
def local_one_hot_rows_to_eye(fgraph, node):
    """inc(zeros((n, n)), 1, (arange(n), arange(n))) -> eye(n): the one-hot rows that a loop
    of gradients of y[i], batched, writes (also a set instead of an increment)."""
    from symgrad.tensor.creation import Eye
    from symgrad.tensor.shape import shape_i

    out = node.outputs[0]
    if node.op.idx_list != ("a", "a") or out.ndim != 2:
        return None
    x, y, rows, cols = node.inputs
    if not (_zeros(x) and _is_ones(y) and _arange_from_zero(rows) and _arange_from_zero(cols)):
        return None
    dims = get_dims(fgraph)
    (n,) = dims(rows)
    if dims(cols) != (n,) or dims(x) != (n, n) or y.ndim > 1:
        return None
    if y.ndim == 1 and dims(y)[0] not in (n, frozenset()):
        return None
    stop = rows.owner.inputs[1]
    known = stop.ndim == 0 and not any(isinstance(a, tuple) and a[0] == "len"
                                      for a in length_dims(stop, dims))
    length = stop if known else shape_i(rows, 0)  # a length read from a shape is >= 0
    return [Eye(out.dtype)(length, length, 0)]


# -- slices of elementwise results ------------------------------------------------------------------

SUBTENSOR = "symgrad.tensor.subtensor:Subtensor"


@node_rewriter([SUBTENSOR], sets=("canonicalize",))
def local_subtensor_of_elemwise(fgraph, node):
    """E(a, b)[idx] -> E(a[idx], b[idx]) when the slice is all that is used of E's result
    and a, b have its shape (one-element operands stay as they are): E then runs on the
    slice only. fill(a, c)[idx] -> fill(a[idx], c) is one case."""
    from symgrad.tensor.elemwise import Elemwise

    Subtensor = lazy_class(SUBTENSOR)
    v = node.inputs[0]
    inner = v.owner
    if type(node.op) is not Subtensor or inner is None or type(inner.op) is not Elemwise:
        return None
    if len(inner.outputs) != 1 or not single_client(fgraph, v):
        return None
    dims = get_dims(fgraph)
    dv = dims(v)
    idx = node.inputs[1:]
    new_inputs = []
    for i in inner.inputs:
        if i.ndim == v.ndim and dims(i) == dv and i.dtype == i.dtype:
            new_inputs.append(node.op(i, *idx))
        elif isinstance(i, Constant) and i.data.size == 1:
            new_inputs.append(_index_constant(i, node))
            if new_inputs[-1] is None:
                return None
        else:
            return None
    new = Elemwise(inner.op.scalar_op)(*new_inputs)
    out = node.outputs[0]
    if new.dtype != out.dtype or new.ndim != out.ndim:
        return None
    return [new]


def _index_constant(c, node):
    """A one-element constant with the number of dims the indexed result has."""
    from symgrad.tensor.basic import constant

    ndim = node.outputs[0].ndim
    data = np.asarray(c.data).reshape((1,) * ndim)
    return constant(data, dtype=c.dtype, weak=getattr(c, "weak", False))
