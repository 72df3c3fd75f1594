"""Rewrites of reductions: sums of fills, log-sum-exp, sum(x * y) -> dot, softmax forms."""

from __future__ import annotations

import numpy as np

import symgrad.tensor.math as sm
from symgrad.graph.basic import Constant
from symgrad.rewrite.basic import node_rewriter
from symgrad.tensor.basic import constant
from symgrad.tensor.elemwise import DimShuffle, cast
from symgrad.tensor.rewriting.basic import (
    elemwise_name,
    get_dims,
    is_float,
    lazy_class,
    loaded_class,
    owner_if,
    single_client,
)

SUM = "symgrad.tensor.reduction:Sum"
SOFTMAX = "symgrad.tensor.special:Softmax"
LOG_SOFTMAX = "symgrad.tensor.special:LogSoftmax"
LOGSUMEXP = "symgrad.tensor.reduction:LogSumExp"


def _is_sum(var):
    Sum = loaded_class(SUM)
    node = var.owner
    if Sum is None or node is None or type(node.op) is not Sum:
        return None
    return node


def _one_element_constant(var):
    return isinstance(var, Constant) and var.data.size == 1


@node_rewriter([SUM], sets=("canonicalize",))
def local_sum_of_fill(fgraph, node):
    """sum(fill(a, c)) -> c * size(a) for a one-element constant c (all axes reduced)."""
    (v,) = node.inputs
    op = node.op
    out = node.outputs[0]
    if len(op.axis) != v.ndim:
        return None
    f = owner_if(v, "second")
    if f is None:
        Alloc = loaded_class("symgrad.tensor.shape:Alloc")
        if Alloc is None or v.owner is None or not isinstance(v.owner.op, Alloc):
            return None
        c = v.owner.inputs[0]
    else:
        c = f.inputs[1]
    if not _one_element_constant(c):
        return None
    from symgrad.tensor.reduction import _count

    n = _count(v, op.axis)
    cv = np.asarray(c.data).reshape(())
    if not (isinstance(n, int) and n > 0) and cv.dtype.kind in "fc" and not np.isfinite(cv):
        return None  # nan * 0 is not the sum of nothing
    value = constant(np.asarray(c.data).reshape(()), dtype=out.dtype)
    size = constant(n, dtype=out.dtype) if isinstance(n, int) else cast(n, out.dtype)
    result = value * size
    if op.keepdims:
        result = DimShuffle(0, ("x",) * out.ndim)(result)
    return [result]


@node_rewriter([SUM], sets=("canonicalize",))
def local_sum_sum(fgraph, node):
    """sum(sum(x, a1), a2) -> sum(x, a1 + a2) (the inner sum used only here)."""
    (v,) = node.inputs
    inner = _is_sum(v)
    if inner is None or not single_client(fgraph, v):
        return None
    op, iop = node.op, inner.op
    if op.keepdims != iop.keepdims or op.dtype is not None or iop.dtype is not None:
        return None
    if v.dtype != inner.inputs[0].dtype:
        return None
    x = inner.inputs[0]
    if iop.keepdims:
        axes = tuple(sorted(set(iop.axis) | set(op.axis)))
    else:
        kept = [d for d in range(x.ndim) if d not in iop.axis]
        axes = tuple(sorted(set(iop.axis) | {kept[a] for a in op.axis}))
    return [type(op)(axes, op.keepdims)(x)]


@node_rewriter([sm.log], sets=("stabilize",))
def local_logsumexp(fgraph, node):
    """log(sum(exp(x), axis)) -> logsumexp(x, axis): no overflow for large x."""
    (v,) = node.inputs
    s = _is_sum(v)
    LogSumExp = loaded_class(LOGSUMEXP)
    if s is None or LogSumExp is None or s.op.dtype is not None:
        return None
    e = owner_if(s.inputs[0], "exp")
    if e is None or not is_float(e.inputs[0]) or e.inputs[0].dtype != node.outputs[0].dtype:
        return None
    return [LogSumExp(s.op.axis, s.op.keepdims)(e.inputs[0])]


@node_rewriter([SUM], sets=("specialize",))
def local_sum_mul_to_dot(fgraph, node):
    """sum(x * y) over two vectors -> dot(x, y) (one BLAS call, no temporary)."""
    (v,) = node.inputs
    m = owner_if(v, "mul")
    Dot = lazy_class("symgrad.tensor.linalg:Dot")
    if m is None or Dot is None or v.ndim != 1 or len(m.inputs) != 2:
        return None
    if node.op.keepdims or node.op.dtype is not None or not single_client(fgraph, v):
        return None
    a, b = m.inputs
    out = node.outputs[0]
    if not (is_float(a) and a.dtype == b.dtype == out.dtype):
        return None
    if isinstance(a, Constant) or isinstance(b, Constant):
        return None
    dims = get_dims(fgraph)
    if dims(a) != dims(b):
        return None  # one of them broadcasts: not an inner product
    return [Dot()(a, b)]


def _reduced_again(denominator, axis, ndim):
    """The summed variable when ``denominator`` is sum(., axis) with the axes kept."""
    s = _is_sum(denominator)
    if s is not None:
        return s.inputs[0] if s.op.keepdims and s.op.axis == axis else None
    ds = denominator.owner
    if ds is None or not isinstance(ds.op, DimShuffle):
        return None
    s = _is_sum(ds.inputs[0])
    if s is None or s.op.keepdims or s.op.axis != axis:
        return None
    expected = []
    it = iter(range(ndim - len(axis)))
    for d in range(ndim):
        expected.append("x" if d in axis else next(it))
    return s.inputs[0] if tuple(ds.op.new_order) == tuple(expected) else None


@node_rewriter([sm.true_div], sets=("stabilize",))
def local_softmax(fgraph, node):
    """exp(x) / sum(exp(x), axis, keepdims=True) -> softmax(x, axis)."""
    num, den = node.inputs
    e = owner_if(num, "exp")
    if e is None or not is_float(num):
        return None
    for axis in _candidate_axes(den):
        if _reduced_again(den, axis, num.ndim) is num:
            x = e.inputs[0]
            Softmax = lazy_class(SOFTMAX)  # (imported only once a match is found)
            if Softmax is None or x.dtype != node.outputs[0].dtype:
                return None
            return [Softmax(axis)(x)]
    return None


def _candidate_axes(den):
    s = _is_sum(den)
    if s is not None:
        return [s.op.axis]
    if den.owner is not None and isinstance(den.owner.op, DimShuffle):
        s = _is_sum(den.owner.inputs[0])
        if s is not None:
            return [s.op.axis]
    return []


@node_rewriter([sm.log], sets=("stabilize",))
def local_log_softmax(fgraph, node):
    """log(softmax(x)) -> log_softmax(x): finite where softmax underflows to 0."""
    (v,) = node.inputs
    Softmax, LogSoftmax = loaded_class(SOFTMAX), loaded_class(LOG_SOFTMAX)
    if Softmax is None or LogSoftmax is None or v.owner is None:
        return None
    if type(v.owner.op) is not Softmax:
        return None
    return [LogSoftmax(v.owner.op.axis)(v.owner.inputs[0])]


@node_rewriter([sm.mul], sets=("stabilize",), inputs=[sm.true_div])
def local_softmax_grad(fgraph, node):
    """exp(x) * (g / sum(exp(x), keepdims)) -> g * softmax(x): the first term of the naive
    softmax's gradient, written with the softmax so that it does not overflow."""
    if not is_float(node.outputs[0]):
        return None
    inputs = node.inputs
    for ke, e in enumerate(inputs):
        if elemwise_name(e) != "exp":
            continue
        for kd, d in enumerate(inputs):
            dn = owner_if(d, "true_div")
            if dn is None or kd == ke:
                continue
            g, den = dn.inputs
            for axis in _candidate_axes(den):
                if _reduced_again(den, axis, e.ndim) is e:
                    Softmax = lazy_class(SOFTMAX)  # (imported only once a match is found)
                    if Softmax is None:
                        return None
                    rest = [i for j, i in enumerate(inputs) if j not in (ke, kd)]
                    sm_x = Softmax(axis)(e.owner.inputs[0])
                    return [sm.mul(*rest, g, sm_x)]
    return None


def _softmax_denominator(var, e):
    """The axis when ``var`` is sum(e, axis, keepdims=True) (or its expanded form), else None."""
    for axis in _candidate_axes(var):
        if _reduced_again(var, axis, e.ndim) is e:
            return axis
    return None


def _is_square_of(var, s) -> bool:
    """``var`` is s * s, sqr(s) or s ** 2."""
    m = owner_if(var, "mul")
    if m is not None and len(m.inputs) == 2 and m.inputs[0] is s and m.inputs[1] is s:
        return True
    q = owner_if(var, "sqr")
    if q is not None and q.inputs[0] is s:
        return True
    p = owner_if(var, "pow")
    if p is not None and p.inputs[0] is s:
        from symgrad.tensor.rewriting.basic import scalar_const

        return scalar_const(p.inputs[1]) == 2
    return False


def _without_factor(var, factor):
    """``var`` divided by its factor ``factor`` (var is factor, or a product with it), else None."""
    if var is factor:
        return []
    m = owner_if(var, "mul")
    if m is None or factor not in m.inputs:
        return None
    rest = list(m.inputs)
    rest.remove(factor)
    return rest


@node_rewriter([sm.mul], sets=("stabilize",), inputs=[sm.add])
def local_naive_softmax_grad(fgraph, node):
    """The gradient of exp(x) / sum(exp(x), keepdims) written by hand, in the stable form:
    exp(x) * (g / s + sum(c * g * exp(x) / (s * s), keepdims)) with s = sum(exp(x)) ->
    softmax(x) * (g + sum(c * g * softmax(x), keepdims)) (no exp(x) that overflows)."""
    out = node.outputs[0]
    if loaded_class(SUM) is None or not is_float(out):
        return None  # (each stable term has a sum: none exists before reduction is imported)
    inputs = node.inputs
    for ke, e in enumerate(inputs):
        if elemwise_name(e) != "exp" or e.dtype != out.dtype:
            continue
        for ka, a in enumerate(inputs):
            if ka == ke or elemwise_name(a) != "add":
                continue
            new = _stable_softmax_terms(e, a, out)
            if new is not None:
                rest = [i for j, i in enumerate(inputs) if j not in (ke, ka)]
                return [sm.mul(*rest, new) if rest else new]
    return None


def _stable_softmax_terms(e, a, out):
    """e * a with every e / s of a's terms written as softmax(x), or None (special's
    Softmax is imported only once a term matches)."""
    Sum = lazy_class(SUM)
    x = e.owner.inputs[0]
    axis = None
    soft = None
    terms = []
    stabilized = 0
    for t in a.owner.inputs:
        d = owner_if(t, "true_div")
        if d is not None:  # g / s
            ax = _softmax_denominator(d.inputs[1], e)
            if ax is not None and (axis is None or ax == axis):
                axis = ax
                soft = lazy_class(SOFTMAX)(axis)(x) if soft is None else soft
                terms.append(sm.mul(d.inputs[0], soft))
                stabilized += 1
                continue
        s_node = _is_sum(t)
        if s_node is not None and s_node.op.keepdims and s_node.op.dtype is None:
            inner = owner_if(s_node.inputs[0], "true_div")
            if inner is not None:
                q, den = inner.inputs
                rest = _without_factor(q, e)
                sq = den.owner if elemwise_name(den) in ("mul", "sqr", "pow") else None
                s = sq.inputs[0] if sq is not None else None
                ax = None if s is None else _softmax_denominator(s, e)
                if rest is not None and ax is not None and ax == s_node.op.axis \
                        and (axis is None or ax == axis) and _is_square_of(den, s):
                    axis = ax  # e * sum(r * e / s^2) = softmax * sum(r * softmax)
                    soft = lazy_class(SOFTMAX)(axis)(x) if soft is None else soft
                    summed = Sum(ax, True)(sm.mul(*rest, soft) if rest else soft)
                    terms.append(sm.mul(soft, summed))
                    stabilized += 1
                    continue
        terms.append(sm.mul(t, e))
    if not stabilized:
        return None
    new = terms[0] if len(terms) == 1 else sm.add(*terms)
    if new.dtype != out.dtype:
        return None
    return new


def _divided_by(var, p):
    """The factors of ``var`` once divided by p, when var is n / p, 1 / p, reciprocal(p), or a
    product with one of those; else None."""
    name = elemwise_name(var)
    if name == "true_div" and var.owner.inputs[1] is p:
        n = var.owner.inputs[0]
        return [] if _one(n) else [n]
    if name == "reciprocal" and var.owner.inputs[0] is p:
        return []
    if name == "mul":
        ins = list(var.owner.inputs)
        for k, f in enumerate(ins):
            inner = _divided_by(f, p) if elemwise_name(f) != "mul" else None
            if inner is not None:
                return ins[:k] + inner + ins[k + 1:]
    return None


def _one(var) -> bool:
    from symgrad.tensor.rewriting.basic import scalar_const

    return isinstance(var, Constant) and scalar_const(var) == 1


@node_rewriter([sm.mul], sets=("stabilize",), inputs=[SOFTMAX])
def local_softmax_over_softmax(fgraph, node):
    """softmax(x) * (g / softmax(x)) -> g (NaN where softmax(x) is NaN): where softmax
    underflows to 0, 0 * (g / 0) is NaN, not g (the gradient of log(softmax(x)))."""
    Softmax = loaded_class(SOFTMAX)
    out = node.outputs[0]
    if Softmax is None or not is_float(out):
        return None
    inputs = node.inputs
    for kp, p in enumerate(inputs):
        if p.owner is None or type(p.owner.op) is not Softmax or p.dtype != out.dtype:
            continue
        for kr, r in enumerate(inputs):
            if kr == kp:
                continue
            rest = _divided_by(r, p)
            if rest is None:
                continue
            others = [i for j, i in enumerate(inputs) if j not in (kp, kr)] + rest
            value = sm.mul(*others) if len(others) > 1 else (
                others[0] if others else constant(1, dtype=out.dtype))
            new = sm.switch(sm.isnan(p), constant(np.nan, dtype=out.dtype), value)
            if new.dtype != out.dtype or new.ndim != out.ndim:
                return None
            return [new]
    return None


# A reduction over axes of static length 1 reads one element: the element itself (in the
# output dtype). Not LogSumExp (inf - inf inside) nor Argmax/Argmin (indices, not values).
_SINGLE_ELEMENT_REDUCTIONS = ("Sum", "Prod", "Max", "Min", "Any", "All")


@node_rewriter(["symgrad.tensor.reduction:Reduce"], sets=("canonicalize",))
def local_reduce_length_one_axes(fgraph, node):
    """reduce(x, axes) -> x without those axes where every reduced axis has length 1;
    where only some have, the others are reduced (e.g. prod(shape(v)) of a vector v is
    its length)."""
    op = node.op
    if type(op).__name__ not in _SINGLE_ELEMENT_REDUCTIONS:
        return None
    (x,) = node.inputs
    out = node.outputs[0]
    ones = [a for a in op.axis if x.type.shape[a] == 1]
    if not ones:
        return None
    rest = [a for a in op.axis if a not in ones]
    if op.keepdims:
        if rest:
            return None
        result = x
    else:
        kept = [a for a in range(x.ndim) if a not in ones]
        result = DimShuffle(x.ndim, tuple(kept))(x)
        if rest:
            from symgrad.tensor.reduction import with_props

            result = with_props(op, axis=tuple(kept.index(a) for a in rest))(result)
    if result.dtype != out.dtype:
        result = cast(result, out.dtype)
    return [result]
