"""Rewrites of broadcasting and layout: fill/second removal, DimShuffle merging."""

from __future__ import annotations

import symgrad.tensor.math as sm
from symgrad.graph.basic import Constant
from symgrad.rewrite.basic import node_rewriter
from symgrad.tensor.elemwise import DimShuffle, Elemwise
from symgrad.tensor.rewriting.basic import elemwise_name, get_dims, single_client
from symgrad.tensor.rewriting.dims import bcast_dims


@node_rewriter([sm.second], sets=("canonicalize",))
def local_fill_remove(fgraph, node):
    """fill(a, b) -> b when b already has the fill's shape."""
    a, b = node.inputs
    out = node.outputs[0]
    if b.dtype != out.dtype or b.ndim != out.ndim:
        return None
    dims = get_dims(fgraph)
    if dims(b) == dims(out):
        return [b]
    return None


@node_rewriter([Elemwise], sets=("canonicalize",), inputs=[sm.second])
def local_fill_sink(fgraph, node):
    """E(fill(a, b), c) -> E(b, c) when the other inputs imply the shape,
    else fill(a, E(b, c)) (fills move to the top, where they often vanish)."""
    sop = node.op.scalar_op
    if sop.name == "second" or len(node.outputs) != 1:
        return None
    fills = [k for k, i in enumerate(node.inputs) if elemwise_name(i) == "second"]
    if not fills:
        return None
    out = node.outputs[0]
    dims = get_dims(fgraph)
    target = dims(out)
    for k in fills:
        f = node.inputs[k]
        a, b = f.owner.inputs
        new_inputs = list(node.inputs)
        new_inputs[k] = b
        new_dims = bcast_dims([dims(i) for i in new_inputs])
        if new_dims == target:
            return [_plain(node)(*new_inputs)]
        if single_client(fgraph, f):
            return [sm.second(a, _plain(node)(*new_inputs))]
    return None


def _plain(node):
    """The node's elementwise op, not in place (the op itself when it is not: one op object
    for many nodes is cheaper to merge and index than an equal copy per node)."""
    op = node.op
    return op if not op.inplace else Elemwise(op.scalar_op)


def _one_element_constant(var) -> bool:
    return isinstance(var, Constant) and var.data.size == 1


@node_rewriter([Elemwise], sets=("canonicalize",), inputs=[sm.second])
def local_fill_of_constants(fgraph, node):
    """E(c, fill(a, d)) -> fill(a, E(c, d)) when every other input is a one-element constant
    (``200 * fill(t, 1.0) -> fill(t, 200.0)``): E runs on the small value, not the fill."""
    sop = node.op.scalar_op
    if sop.name == "second" or len(node.outputs) != 1 or len(node.inputs) < 2:
        return None
    k = None
    for j, i in enumerate(node.inputs):
        if _one_element_constant(i):
            continue
        if k is not None or elemwise_name(i) != "second":
            return None
        k = j
    if k is None:
        return None
    a, d = node.inputs[k].owner.inputs
    new_inputs = list(node.inputs)
    new_inputs[k] = d
    out = node.outputs[0]
    inner = _plain(node)(*new_inputs)
    if inner.dtype != out.dtype:
        return None
    new = sm.second(a, inner)
    if new.dtype != out.dtype or new.ndim != out.ndim:
        return None
    return [new]


@node_rewriter([DimShuffle], sets=("canonicalize",))
def local_dimshuffle_noop(fgraph, node):
    """A DimShuffle that changes nothing is its input."""
    op = node.op
    if op.new_order == tuple(range(op.input_ndim)):
        return [node.inputs[0]]
    return None


@node_rewriter([DimShuffle], sets=("canonicalize",))
def local_dimshuffle_merge(fgraph, node):
    """DimShuffle(DimShuffle(x)) -> one DimShuffle (transposes of transposes cancel)."""
    (v,) = node.inputs
    inner = v.owner
    if inner is None or not isinstance(inner.op, DimShuffle):
        return None
    order = tuple("x" if d == "x" else inner.op.new_order[d] for d in node.op.new_order)
    x = inner.inputs[0]
    if order == tuple(range(x.ndim)):
        return [x]
    return [DimShuffle(x.ndim, order)(x)]


@node_rewriter([DimShuffle], sets=("canonicalize",))
def local_dimshuffle_lift(fgraph, node):
    """DimShuffle(E(a, b)) -> E(DimShuffle(a), DimShuffle(b)) when E is used only here,
    so layout changes sink to the inputs and elementwise chains stay fusable."""
    (v,) = node.inputs
    inner = v.owner
    if inner is None or type(inner.op) is not Elemwise or not single_client(fgraph, v):
        return None
    if inner.op.scalar_op.name == "second":
        return None
    op = node.op
    kept = [d for d in op.new_order if d != "x"]
    if kept != sorted(kept):
        return None  # a transpose: keep elementwise work on the original layout
    try:
        new_inputs = [DimShuffle(i.ndim, op.new_order)(i) for i in inner.inputs]
    except ValueError:
        return None
    return [Elemwise(inner.op.scalar_op)(*new_inputs)]


def _only_for_shape(fgraph, var) -> bool:
    """Every client of ``var`` reads only its shape: fills (first input) and shape ops."""
    for c, k in fgraph.clients.get(var, ()):
        if c == "output":
            return False
        if type(c.op) is Elemwise and c.op.scalar_op.name == "second" and k == 0:
            continue
        if type(c.op).__name__ in ("Shape", "Shape_i"):
            continue
        return False
    return True


def shape_sources(node):
    """Inputs of ``node`` that may have the shape of its (first) output: the operands of an
    elementwise op, the array an increment writes into."""
    op = node.op
    if type(op) is Elemwise or type(op).__name__ == "FusedElemwise":
        return [u for u in node.inputs if not isinstance(u, Constant)]
    if type(op).__name__ in ("IncSubtensor", "AdvancedIncSubtensor"):
        return [node.inputs[0]]
    return []


def redirect_shape_readers(fgraph, a):
    """When ``a`` is computed only for its shape: {output of each reader of a: the same
    reader of an input u of a's op with a's shape}, so that a need not be computed; else None.
    (Redirecting every reader at once: the others are not revisited when one goes.)"""
    owner = a.owner
    if owner is None:
        return None
    dims = get_dims(fgraph)
    if not _only_for_shape(fgraph, a):
        return _read_shape_of_a_root(fgraph, a, dims)
    da = dims(a)
    for u in shape_sources(owner):
        if u.ndim != a.ndim or u.dtype != a.dtype and not _shape_only_clients(fgraph, a):
            continue
        if dims(u) != da:
            continue
        out = {}
        for c, _ in fgraph.clients.get(a, ()):
            if type(c.op) is Elemwise:
                new = sm.second(u, c.inputs[1])
                if new.dtype != c.outputs[0].dtype:
                    return None
            else:
                new = c.op(u)
            out[c.outputs[0]] = new
        return out
    return None


def _read_shape_of_a_root(fgraph, a, dims):
    """The shape readers of ``a`` (computed anyway) read it from an input of the graph with
    its shape instead, so that ``a`` has fewer clients (it may then be overwritten in place)."""
    da = dims(a)
    roots = [u for u in shape_sources(a.owner)
             if u.owner is None and u.ndim == a.ndim and dims(u) == da]
    if not roots:
        return None
    u = roots[0]
    out = {}
    for c, k in fgraph.clients.get(a, ()):
        if c == "output":
            continue
        if type(c.op) is Elemwise and c.op.scalar_op.name == "second" and k == 0:
            new = sm.second(u, c.inputs[1])
            if new.dtype == c.outputs[0].dtype:
                out[c.outputs[0]] = new
        elif type(c.op).__name__ in ("Shape", "Shape_i"):
            out[c.outputs[0]] = c.op(u)
    return out or None


def _shape_only_clients(fgraph, a) -> bool:
    """No fill reads ``a`` (a fill takes its dtype from both inputs; a shape does not)."""
    return all(type(c.op) is not Elemwise for c, _ in fgraph.clients.get(a, ()))


@node_rewriter([sm.second], sets=("canonicalize",))
def local_fill_shape_source(fgraph, node):
    """fill(E(u, ...), b) -> fill(u, b) when E's result is needed for nothing but its shape
    (so it need not be computed) and u has that shape, or broadcasting u and b gives the
    fill's shape. E is an elementwise op or an increment (inc(u, y, idx) has u's shape)."""
    a, b = node.inputs
    found = redirect_shape_readers(fgraph, a)
    if found:
        return found
    owner = a.owner
    if owner is None or b.ndim != a.ndim or not _only_for_shape(fgraph, a):
        return None
    dims = get_dims(fgraph)
    target = dims(node.outputs[0])
    db = dims(b)
    for u in shape_sources(owner):
        if u.ndim == a.ndim and bcast_dims([dims(u), db]) == target:
            new = sm.second(u, b)
            if new.dtype == node.outputs[0].dtype:
                return [new]
    return None
