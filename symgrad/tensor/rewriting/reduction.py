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
    owner_if,
    single_client,
)

SUM = "symgrad.tensor.reduction:Sum"
SOFTMAX = "symgrad.tensor.special:Softmax"
LOG_SOFTMAX = "symgrad.tensor.special:LogSoftmax"
LOGSUMEXP = "symgrad.tensor.reduction:LogSumExp"


def _is_sum(var):
    Sum = lazy_class(SUM)
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
        Alloc = lazy_class("symgrad.tensor.shape:Alloc")
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
    LogSumExp = lazy_class(LOGSUMEXP)
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
    Softmax = lazy_class(SOFTMAX)
    e = owner_if(num, "exp")
    if Softmax is None or e is None or not is_float(num):
        return None
    for axis in _candidate_axes(den):
        if _reduced_again(den, axis, num.ndim) is num:
            x = e.inputs[0]
            if x.dtype != node.outputs[0].dtype:
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
    Softmax, LogSoftmax = lazy_class(SOFTMAX), lazy_class(LOG_SOFTMAX)
    if Softmax is None or LogSoftmax is None or v.owner is None:
        return None
    if type(v.owner.op) is not Softmax:
        return None
    return [LogSoftmax(v.owner.op.axis)(v.owner.inputs[0])]


@node_rewriter([sm.mul], sets=("stabilize",))
def local_softmax_grad(fgraph, node):
    """exp(x) * (g / sum(exp(x), keepdims)) -> g * softmax(x): the first term of the naive
    softmax's gradient, written with the softmax so that it does not overflow."""
    Softmax = lazy_class(SOFTMAX)
    if Softmax is None or not is_float(node.outputs[0]):
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
                    rest = [i for j, i in enumerate(inputs) if j not in (ke, kd)]
                    sm_x = Softmax(axis)(e.owner.inputs[0])
                    return [sm.mul(*rest, g, sm_x)]
    return None
