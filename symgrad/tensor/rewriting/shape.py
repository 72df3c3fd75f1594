"""Shape arithmetic folded where shapes are known; no-op Alloc/Reshape/SpecifyShape/SumTo removed.

Op classes are looked up lazily (``"module:Class"`` tracks), so these rewrites are
skipped cleanly where an op does not exist.
"""

from __future__ import annotations

import numpy as np

import symgrad.tensor.math as sm
from symgrad.graph.basic import Constant
from symgrad.rewrite.basic import node_rewriter
from symgrad.tensor.basic import constant
from symgrad.tensor.elemwise import DimShuffle, Elemwise, SumTo, _pad_to_ndim
from symgrad.tensor.rewriting.basic import get_dims, lazy_class, loaded_class
from symgrad.tensor.rewriting.dims import _rules, bcast_dims, length_dims, register_rule
from symgrad.tensor.rewriting.elemwise import _plain, redirect_shape_readers, shape_sources

SHAPE = "symgrad.tensor.shape:Shape"
SHAPE_I = "symgrad.tensor.shape:Shape_i"
ALLOC = "symgrad.tensor.shape:Alloc"
RESHAPE = "symgrad.tensor.shape:Reshape"
SPECIFY = "symgrad.tensor.shape:SpecifyShape"
JOIN = "symgrad.tensor.shape:Join"


# -- dims rules for shape-taking ops: the output has the shape of the variable measured ----------

def _dims_from_shape_vector(shp, dims, any_int=True):
    """The dims a shape vector describes, when it is Shape(v), a constant, or a
    concatenation of those and of single lengths, else None. ``any_int=False``: only
    lengths read from shapes (a reshape's entries may be -1)."""
    node = shp.owner
    Shape = lazy_class(SHAPE)
    if node is not None and Shape is not None and isinstance(node.op, Shape):
        return dims(node.inputs[0])
    if isinstance(shp, Constant):
        values = [int(s) for s in np.asarray(shp.data).reshape(-1)]
        if any(s < 0 for s in values):
            return None  # reshape's -1 (inferred), or an error
        return tuple(frozenset() if s == 1 else frozenset((s,)) for s in values)
    if node is None or shp.ndim != 1:
        return None
    Join = lazy_class(JOIN)
    if Join is not None and isinstance(node.op, Join):
        out = []
        for part in node.inputs:
            d = _dims_from_shape_vector(part, dims, any_int)
            if d is None:
                return None
            out.extend(d)
        return tuple(out)
    if isinstance(node.op, DimShuffle) and node.op.new_order == ("x",):
        d = length_dims(node.inputs[0], dims)  # a length made a 1-vector
        if not any_int and any(isinstance(a, tuple) and a[0] == "len" for a in d):
            return None  # any int (reshape's -1, say), not a length read from a shape
        return (d,)
    return None


def _shape_arg_rule(index, any_int=True):
    def rule(node, in_dims, analysis, _index=index):
        d = _dims_from_shape_vector(node.inputs[_index], analysis, any_int)
        return None if d is None else [d]
    return rule


def _register_dims_rules():
    # (by name: registering a rule imports no op module; see dims.register_rule)
    _rules()
    register_rule(SumTo, _shape_arg_rule(1))
    register_rule(ALLOC, _shape_arg_rule(1, True))
    register_rule(RESHAPE, _shape_arg_rule(1, False))
    register_rule("symgrad.tensor.linalg:Dot", _dot_rule)
    register_rule("symgrad.tensor.subtensor:Subtensor", _subtensor_rule)
    register_rule("symgrad.tensor.subtensor:IncSubtensor", _first_input_rule)
    register_rule("symgrad.tensor.subtensor:AdvancedSubtensor", _advanced_subtensor_rule)
    register_rule("symgrad.tensor.reduction:Reduce", _reduce_rule)
    register_rule("symgrad.tensor.special:Softmax", _first_input_rule)
    register_rule("symgrad.tensor.special:LogSoftmax", _first_input_rule)
    register_rule("symgrad.tensor.creation:Eye", _eye_rule)
    register_rule("symgrad.tensor.creation:ARange", _arange_rule)


def _reduce_rule(node, in_dims, analysis=None):
    """A reduction: the reduced axes are gone (or length 1 with keepdims)."""
    op = node.op
    axes = set(op.axis)
    out = []
    for k, d in enumerate(in_dims[0]):
        if k not in axes:
            out.append(d)
        elif op.keepdims:
            out.append(frozenset())
    return [tuple(out)]


def _eye_rule(node, in_dims, analysis=None):
    n, m, _ = node.inputs
    return [(length_dims(n, analysis), length_dims(m, analysis))]


def _arange_rule(node, in_dims, analysis=None):
    """arange(0, n, 1) has max(n, 0) elements."""
    from symgrad.tensor.rewriting.basic import scalar_const

    start, stop, step = node.inputs
    if scalar_const(start) != 0 or scalar_const(step) != 1:
        return None
    return [(length_dims(stop, analysis),)]


_FULL_SLICE = ("s", False, False, False)


def _advanced_subtensor_rule(node, in_dims, analysis=None):
    """x[i1, ..., ik] (integer arrays first, then whole axes): the broadcast dims of the
    index arrays, then x's remaining dims."""
    idx_list = node.op.idx_list
    k = 0
    while k < len(idx_list) and idx_list[k] == "a":
        k += 1
    if k == 0 or any(e != _FULL_SLICE for e in idx_list[k:]):
        return None
    indices = node.inputs[1:1 + k]
    if any(i.dtype == "bool" for i in indices):
        return None
    nd = max(i.ndim for i in indices)
    padded = [(frozenset(),) * (nd - i.ndim) + tuple(d) for i, d in zip(indices, in_dims[1:1 + k])]
    return [bcast_dims(padded) + tuple(in_dims[0][k:])]


def _first_input_rule(node, in_dims, analysis=None):
    return [in_dims[0]]


def _subtensor_rule(node, in_dims, analysis=None):
    """Basic slicing: x[k:] and x[:-k] both have max(n - k, 0) elements (the same atom)."""
    op = node.op
    if getattr(op, "advanced", True):
        return None
    base = in_dims[0]
    values = iter(node.inputs[1:])
    out = []
    k = 0
    for e in op.idx_list:
        if e == "n":
            out.append(frozenset())
            continue
        if e == "e" or k >= len(base):
            return None
        if e == "i":
            next(values)
            k += 1
            continue
        if not isinstance(e, tuple):
            return None
        start = _int_const(next(values)) if e[1] else 0
        stop = _int_const(next(values)) if e[2] else 0
        step = _int_const(next(values)) if e[3] else 1
        if start is None or stop is None or step != 1 or start < 0 or stop > 0:
            out.append(None)  # not a simple trim: the output's static length (or unknown)
        else:
            out.append(_trimmed(base[k], start - stop))
        k += 1
    out.extend(base[k:])
    static = _rules_static(node.outputs[0])
    return [tuple(s if d is None else d for d, s in zip(out, static))]


def _int_const(var):
    from symgrad.tensor.rewriting.basic import scalar_const

    v = scalar_const(var)
    return int(v) if isinstance(v, int | np.integer) and not isinstance(v, bool) else None


def _trimmed(dim, drop):
    """The dims set of a length ``dim`` with ``drop`` elements removed (clipped at 0)."""
    if drop == 0:
        return dim
    static = [a for a in dim if isinstance(a, int)]
    if static:
        return frozenset((max(static[0] - drop, 0),)) if static[0] - drop != 1 else frozenset()
    if not dim:  # length 1: trimming leaves 0
        return frozenset((0,))
    return frozenset((("trim", dim, drop),))


def _rules_static(var):
    from symgrad.tensor.rewriting.dims import _static_dims

    return _static_dims(var)


def _dot_rule(node, in_dims, analysis=None):
    da, db = in_dims
    return [tuple(da[:-1]) + tuple(db[1:])]


_register_dims_rules()


def _dims(fgraph):
    return get_dims(fgraph)


# -- rewrites ------------------------------------------------------------------------------------

@node_rewriter([SumTo], sets=("canonicalize",))
def local_sumto_remove(fgraph, node):
    """SumTo(g, shape(v)) -> g when g already has v's shape."""
    g, shp = node.inputs
    dims = _dims(fgraph)
    target = _dims_from_shape_vector(shp, dims)
    if target is not None and len(target) == g.ndim and dims(g) == tuple(target):
        return [g]
    return None


@node_rewriter([SHAPE], sets=("canonicalize",))
def local_shape_fold(fgraph, node):
    """Shape(v) -> a constant when v's shape is static; else Shape of an elementwise
    input with the same dims (so the intermediate need not exist for its shape)."""
    (v,) = node.inputs
    if None not in v.type.shape:
        return [constant(np.array(v.type.shape, dtype="int64"))]
    return redirect_shape_readers(fgraph, v)  # v is computed anyway: measuring it is free


@node_rewriter([SHAPE_I], sets=("canonicalize",))
def local_shape_i_fold(fgraph, node):
    """Shape_i(v) -> a constant when that length is static; else Shape_i of an elementwise
    input with the same length there."""
    (v,) = node.inputs
    k = node.op.i
    if v.type.shape[k] is not None:
        return [constant(v.type.shape[k], dtype="int64")]
    found = redirect_shape_readers(fgraph, v)
    if found:
        return found
    owner = v.owner
    if owner is None or not _only_measured(fgraph, v):
        return None
    dims = _dims(fgraph)
    dk = dims(v)[k]
    for i in shape_sources(owner):
        if i.type.ndim == v.type.ndim and dims(i)[k] == dk:
            return [node.op(i)]
    return None


def _only_measured(fgraph, v) -> bool:
    """Every client of ``v`` only reads its shape (so v need not be computed)."""
    Shape, Shape_i = lazy_class(SHAPE), lazy_class(SHAPE_I)
    for c, _ in fgraph.clients.get(v, ()):
        if c == "output" or not isinstance(c.op, (Shape, Shape_i)):
            return False
    return True


@node_rewriter([ALLOC], sets=("canonicalize",))
def local_alloc_remove(fgraph, node):
    """Alloc(v, shape) -> v when v already has that shape (and dtype)."""
    value = node.inputs[0]
    out = node.outputs[0]
    if value.dtype != out.dtype or value.ndim > out.ndim:
        return None
    dims = _dims(fgraph)
    padded = _pad_to_ndim(value, out.ndim)
    if dims(padded) == dims(out):
        return [padded]
    return None


@node_rewriter([Elemwise], sets=("canonicalize",), inputs=[ALLOC])
def local_alloc_sink(fgraph, node):
    """E(alloc(v, shape), y) -> E(v, y) when the other inputs imply the shape."""
    Alloc = loaded_class(ALLOC)
    if Alloc is None or node.op.scalar_op.name == "second":
        return None
    allocs = [k for k, i in enumerate(node.inputs)
              if i.owner is not None and isinstance(i.owner.op, Alloc)]
    if not allocs:
        return None
    out = node.outputs[0]
    dims = _dims(fgraph)
    target = dims(out)
    for k in allocs:
        i = node.inputs[k]
        value = i.owner.inputs[0]
        if value.dtype != i.dtype:
            continue
        new_inputs = list(node.inputs)
        new_inputs[k] = _pad_to_ndim(value, i.ndim)
        if bcast_dims([dims(j) for j in new_inputs]) == target:
            return [_plain(node)(*new_inputs)]
    return None


@node_rewriter([RESHAPE], sets=("canonicalize",))
def local_reshape_noop(fgraph, node):
    """Reshape(x, shape(x)) -> x (any reshape to the shape it already has)."""
    x, shp = node.inputs
    out = node.outputs[0]
    if x.ndim != out.ndim:
        return None
    dims = _dims(fgraph)
    target = _dims_from_shape_vector(shp, dims, any_int=False)
    if target is not None and dims(x) == tuple(target):
        return [x]
    return None


@node_rewriter([RESHAPE], sets=("canonicalize",))
def local_reshape_reshape(fgraph, node):
    """Reshape(Reshape(x, s1), s2) -> Reshape(x, s2)."""
    x, shp = node.inputs
    Reshape = lazy_class(RESHAPE)
    if x.owner is None or not isinstance(x.owner.op, Reshape):
        return None
    return [node.op(x.owner.inputs[0], shp)]


@node_rewriter([SPECIFY], sets=("canonicalize",))
def local_specify_shape_remove(fgraph, node):
    """SpecifyShape(x, ...) -> x when x's static shape already says it all (a check against
    a symbolic length stays: it is a runtime check, and tells the dims analysis that the
    lengths are equal)."""
    x = node.inputs[0]
    out = node.outputs[0]
    if x.type != out.type:
        return None
    lengths = iter(node.inputs[1:])
    for m, s in zip(node.op.mask, x.type.shape):
        if m and not isinstance(next(lengths), Constant) and s is None:
            return None
    return [x]


@node_rewriter([DimShuffle], sets=("canonicalize",))
def local_dimshuffle_of_fill(fgraph, node):
    """DimShuffle(fill(a, c)) with a one-element constant c -> fill(DimShuffle(a), c)."""
    (v,) = node.inputs
    if v.owner is None or type(v.owner.op) is not Elemwise:
        return None
    if v.owner.op.scalar_op.name != "second":
        return None
    a, c = v.owner.inputs
    if not isinstance(c, Constant) or c.data.size != 1:
        return None
    return [sm.second(node.op(a), constant(c.data.reshape(()), dtype=c.dtype))]


@node_rewriter([DimShuffle], sets=("canonicalize",))
def local_length_of_a_vector(fgraph, node):
    """DimShuffle{}(Shape(v)) -> Shape_i(v, 0) for a vector v: its length as a scalar, in
    the form the shape analysis reads as "v's length" (reductions of one-element shape
    vectors end up here, e.g. prod(shape(v)) in a Jacobian's reshape)."""
    (s,) = node.inputs
    Shape = lazy_class(SHAPE)
    if node.op.new_order != () or s.owner is None or Shape is None or \
            not isinstance(s.owner.op, Shape) or s.owner.inputs[0].ndim != 1:
        return None
    from symgrad.tensor.shape import shape_i

    return [shape_i(s.owner.inputs[0], 0)]


@node_rewriter([RESHAPE], sets=("canonicalize",))
def local_reshape_scalar_to_ones(fgraph, node):
    """Reshape(s, (1, ..., 1)) of a scalar s -> DimShuffle{x,...,x}(s) (a view either way;
    the shape analysis reads the DimShuffle form)."""
    x, shp = node.inputs
    if x.ndim != 0 or not isinstance(shp, Constant) or \
            not np.all(np.asarray(shp.data) == 1):
        return None
    return [DimShuffle(0, ("x",) * node.outputs[0].ndim)(x)]
