"""Rewrites of the arithmetic elementwise ops: canonical forms, stable forms, fast forms.

Safety rule: no rewrite here changes a result on NaN, inf or empty inputs.
``x - x -> 0``, ``x * 0 -> 0``, ``x / x -> 1`` and ``eq(x, x) -> True`` only
apply to integer (finite) operands, or everywhere under ``config.fast_math``.
"""

from __future__ import annotations

import math as _math

import numpy as np

import symgrad.tensor.math as sm
from symgrad.graph.basic import Constant
from symgrad.rewrite.basic import node_rewriter
from symgrad.rewrite.pattern import P, pattern_rewrite, pattern_var
from symgrad.tensor.basic import constant
from symgrad.tensor.basic import python_scalar_dtype as _weak_dtype
from symgrad.tensor.elemwise import Elemwise, cast
from symgrad.tensor.rewriting.basic import (
    elemwise_name,
    fast_math,
    is_float,
    known_finite,
    owner_if,
    scalar_const,
    single_client,
)
from symgrad.tensor.type import ALL_DTYPES, TensorType
from symgrad.tensor.variable import TensorConstant

x = pattern_var("x")
y = pattern_var("y")


def _float(m) -> bool:
    return is_float(m.out)


def _finite_or_fast(name="x"):
    def cond(m):
        return fast_math() or known_finite(m[name])
    return cond


def _const_like(value, like, out):
    """``value`` (of ``out``'s dtype) broadcast to the shape of ``like``."""
    return sm.second(like, constant(value, dtype=out.dtype))


# -- canonicalize: identities ------------------------------------------------------------------------

pattern_rewrite("local_mul_one", x * 1, x)
pattern_rewrite("local_add_zero", x + 0, x)
pattern_rewrite("local_sub_zero", x - 0, x)
pattern_rewrite("local_zero_sub", 0 - x, lambda m: -m.x)
pattern_rewrite("local_div_one", x / 1, x)
pattern_rewrite("local_pow_one", x ** 1, x)
pattern_rewrite("local_pow_zero", x ** 0, lambda m: _const_like(1, m.x, m.out))
pattern_rewrite("local_neg_neg", sm.neg(sm.neg(x)), x)
pattern_rewrite("local_sub_neg", x - (-y), lambda m: m.x + m.y)
pattern_rewrite("local_add_neg", x + (-y), lambda m: m.x - m.y,
                condition=lambda m: len(m.node.inputs) == 2)
pattern_rewrite("local_sub_self", x - x, lambda m: _const_like(0, m.x, m.out),
                condition=_finite_or_fast())
pattern_rewrite("local_div_self", x / x, lambda m: _const_like(1, m.x, m.out),
                condition=lambda m: fast_math())
pattern_rewrite("local_eq_self", sm.eq(x, x), lambda m: _const_like(True, m.x, m.out),
                condition=_finite_or_fast())
pattern_rewrite("local_neq_self", sm.neq(x, x), lambda m: _const_like(False, m.x, m.out),
                condition=_finite_or_fast())
pattern_rewrite("local_le_self", sm.le(x, x), lambda m: _const_like(True, m.x, m.out),
                condition=_finite_or_fast())
pattern_rewrite("local_ge_self", sm.ge(x, x), lambda m: _const_like(True, m.x, m.out),
                condition=_finite_or_fast())
pattern_rewrite("local_lt_self", sm.lt(x, x), lambda m: _const_like(False, m.x, m.out),
                condition=_finite_or_fast())
pattern_rewrite("local_gt_self", sm.gt(x, x), lambda m: _const_like(False, m.x, m.out),
                condition=_finite_or_fast())
pattern_rewrite("local_log_exp", sm.log(sm.exp(x)), x, condition=_float, sets=("stabilize",))


def _reciprocal_const(m):
    c = scalar_const(m.y)
    if c is None or not is_float(m.out) or isinstance(c, bool):
        return None
    with np.errstate(all="ignore"):
        inv = np.asarray(1, dtype=m.out.dtype) / np.asarray(c, dtype=m.out.dtype)
    if not np.isfinite(inv) or inv == 0 or isinstance(c, complex):
        return None
    return m.x * constant(inv, dtype=m.out.dtype)


pattern_rewrite("local_div_by_const", x / pattern_var("y", lambda v: isinstance(v, Constant)),
                _reciprocal_const)


# -- canonicalize: n-ary products and sums -----------------------------------------------------------

def _flattenable(fgraph, var, name, dtype, out):
    if var is out or elemwise_name(var) != name or var.dtype != dtype:
        return False
    if not single_client(fgraph, var):
        return False
    return all(i.dtype == dtype or isinstance(i, Constant) for i in var.owner.inputs)


_DTYPE_NAMES = {np.dtype(d): d for d in ALL_DTYPES}


def _scalar_constant(value, dtype=None, weak=False):
    """``constant(value, dtype=..., weak=...)`` for a value just computed here (a 0-d result
    of numpy or a Python number), without constant()'s general conversions."""
    try:
        arr = np.array(value, dtype=dtype)  # a private copy
    except (TypeError, ValueError, OverflowError):
        arr = None
    name = None if arr is None else _DTYPE_NAMES.get(arr.dtype)
    if name is None or arr.ndim != 0:
        if dtype is None:
            dtype = np.asarray(value).dtype
        return constant(value, dtype=dtype, weak=weak)
    arr.setflags(write=False)
    return TensorConstant(TensorType(name, ()), arr, weak=weak)


def _combine(consts, op):
    """The product/sum of size-1 constants, weak when they all are."""
    weak = all(getattr(c, "weak", False) for c in consts)
    vals = [np.asarray(c.data).reshape(()) for c in consts]
    if weak:
        acc = vals[0].item()
        for v in vals[1:]:
            acc = op(acc, v.item())
        return _scalar_constant(acc, dtype=_weak_dtype(acc), weak=True)
    with np.errstate(all="ignore"):
        acc = vals[0].item() if getattr(consts[0], "weak", False) else vals[0]
        for c, v in zip(consts[1:], vals[1:]):
            acc = op(acc, v.item() if getattr(c, "weak", False) else v)
    return _scalar_constant(acc)


def _canonical_nary(fgraph, node, name, neutral, absorbing, op):
    out = node.outputs[0]
    dt = out.dtype
    clients = fgraph.clients.get(out, ())
    if len(clients) == 1 and clients[0][0] != "output":
        parent = clients[0][0].outputs[0]
        if elemwise_name(parent) == name and _flattenable(fgraph, out, name, parent.dtype, parent):
            return None  # the consumer flattens this whole chain at once (linear, not quadratic)
    floaty = is_float(out)
    factors, consts = [], []
    flips = 0
    changed = False
    stack = list(reversed(node.inputs))
    while stack:
        v = stack.pop()
        if _flattenable(fgraph, v, name, dt, out):
            stack.extend(reversed(v.owner.inputs))
            changed = True
            continue
        if name == "mul" and floaty and elemwise_name(v) == "neg" and v.dtype == dt \
                and v.owner.inputs[0].dtype == dt and single_client(fgraph, v):
            flips += 1
            stack.append(v.owner.inputs[0])
            changed = True
            continue
        if isinstance(v, TensorConstant) and v.data.size == 1:
            consts.append(v)
            continue
        factors.append(v)
    if flips % 2:
        consts.append(constant(-1, weak=True))
    if len(consts) > 1:
        c = _combine(consts, op)
        changed = True
    elif consts:
        c = consts[0]
    else:
        c = None
    if c is not None:
        cv = np.asarray(c.data).reshape(()).item()
        if cv == neutral and factors:
            c = None
            changed = True
        elif absorbing is not None and cv == absorbing and (
                fast_math() or all(known_finite(f) for f in factors)):
            res = constant(absorbing, dtype=dt)
            for f in factors:
                res = sm.second(f, res)
            return [res]
    if c is not None and c is not node.inputs[0]:
        changed = True  # constants first: 2 * x, whatever was written
    if not changed and len(node.inputs) > 1:
        return None
    parts = ([c] if c is not None else []) + factors
    if not parts:
        return None
    if len(parts) == 1:
        return [parts[0]]
    fn = sm.mul if name == "mul" else sm.add
    return [fn(*parts)]


@node_rewriter([sm.mul], sets=("canonicalize",))
def local_mul_canonicalize(fgraph, node):
    """Flatten products, collect their constants first (2*x*3 -> 6*x), drop 1s, absorb
    negations into the constant; x*0 -> 0 only for integer x (or fast_math)."""
    import operator

    return _canonical_nary(fgraph, node, "mul", 1, 0, operator.mul)


@node_rewriter([sm.add], sets=("canonicalize",))
def local_add_canonicalize(fgraph, node):
    """Flatten sums, collect their constants (x+1+2 -> 3+x), drop 0s."""
    import operator

    return _canonical_nary(fgraph, node, "add", 0, None, operator.add)


@node_rewriter([sm.neg], sets=("canonicalize",))
def local_neg_to_mul(fgraph, node):
    """-(a*b*...) -> (-1)*a*b*..., so the sign joins the product's constant."""
    (v,) = node.inputs
    if elemwise_name(v) != "mul" or not is_float(v) or len(v.owner.inputs) < 2:
        return None
    if not single_client(fgraph, v) or v.dtype != node.outputs[0].dtype:
        return None
    return [sm.mul(constant(-1, weak=True), *v.owner.inputs)]


@node_rewriter([sm.true_div], sets=("canonicalize",))
def local_div_neg(fgraph, node):
    """(-a) / b -> -(a / b) and a / (-b) -> -(a / b), for floats."""
    a, b = node.inputs
    out = node.outputs[0]
    if not is_float(out):
        return None
    na, nb = owner_if(a, "neg"), owner_if(b, "neg")
    if na is not None and single_client(fgraph, a):
        return [-(sm.true_div(na.inputs[0], b))]
    if nb is not None and single_client(fgraph, b):
        return [-(sm.true_div(a, nb.inputs[0]))]
    return None


# -- casts --------------------------------------------------------------------------------------------

def _cast_target(node):
    sop = node.op.scalar_op
    return sop.extra.get("dtype") if sop.name.startswith("cast{") else None


@node_rewriter([f"cast{{{d}}}" for d in ALL_DTYPES], sets=("canonicalize",))
def local_cast_canonicalize(fgraph, node):
    """Drop no-op casts; cast(cast(x, wider), d) -> cast(x, d)."""
    target = _cast_target(node)
    if target is None:
        return None
    (v,) = node.inputs
    if v.dtype == target:
        return [v]
    inner = v.owner
    if inner is not None and type(inner.op) is Elemwise and _cast_target(inner) is not None:
        src = inner.inputs[0]
        if np.can_cast(src.dtype, v.dtype, "safe"):
            return [cast(src, target)]
    return None


# -- stabilize -------------------------------------------------------------------------------------

pattern_rewrite("local_log1p", sm.log(1 + x), sm.log1p(x), sets=("stabilize",),
                condition=_float)
pattern_rewrite("local_log1m", sm.log(1 - x), lambda m: sm.log1p(-m.x), sets=("stabilize",),
                condition=_float)
pattern_rewrite("local_expm1", sm.exp(x) - 1, sm.expm1(x), sets=("stabilize",),
                condition=_float)
pattern_rewrite("local_expm1_add", sm.exp(x) + (-1), sm.expm1(x), sets=("stabilize",),
                condition=_float)
pattern_rewrite("local_log_sigmoid", sm.log(P.sigmoid(x)), lambda m: -sm.softplus(-m.x),
                sets=("stabilize",), condition=_float)
pattern_rewrite("local_log1m_sigmoid", sm.log(1 - P.sigmoid(x)), lambda m: -sm.softplus(m.x),
                sets=("stabilize",), condition=_float)
pattern_rewrite("local_log1p_neg_sigmoid", sm.log1p(-P.sigmoid(x)),
                lambda m: -sm.softplus(m.x), sets=("stabilize",), condition=_float)
pattern_rewrite("local_1m_sigmoid", 1 - P.sigmoid(x), lambda m: sm.sigmoid(-m.x),
                sets=("stabilize",), condition=_float)
pattern_rewrite("local_softplus", sm.log(1 + sm.exp(x)), lambda m: sm.softplus(m.x), sets=("stabilize",),
                condition=_float)
pattern_rewrite("local_softplus_log1p", sm.log1p(sm.exp(x)), lambda m: sm.softplus(m.x),
                sets=("stabilize",), condition=_float)
pattern_rewrite("local_sigmoid_from_div", x / (1 + sm.exp(y)), lambda m: m.x * sm.sigmoid(-m.y),
                sets=("stabilize",), condition=_float)
pattern_rewrite("local_exp_over_1p_exp", sm.exp(x) / (1 + sm.exp(x)), lambda m: sm.sigmoid(m.x),
                sets=("stabilize",), condition=_float)
pattern_rewrite("local_sigmoid_neg_neg", P.sigmoid(sm.neg(sm.neg(x))), lambda m: sm.sigmoid(m.x),
                sets=("stabilize",), condition=_float)


def _is_one_plus_exp(var):
    """``t`` when var is 1 + exp(t), else None."""
    a = owner_if(var, "add")
    if a is None or len(a.inputs) != 2:
        return None
    for k in (0, 1):
        if scalar_const(a.inputs[k]) == 1:
            e = owner_if(a.inputs[1 - k], "exp")
            if e is not None:
                return e.inputs[0]
    return None


@node_rewriter([sm.true_div], sets=("stabilize",))
def local_div_1p_exp_factor(fgraph, node):
    """a / (b * (1 + exp(t))) -> (a * sigmoid(-t)) / b: the factor is a sigmoid."""
    num, den = node.inputs
    out = node.outputs[0]
    if not is_float(out):
        return None
    m = owner_if(den, "mul")
    if m is None:
        return None
    for k, f in enumerate(m.inputs):
        t = _is_one_plus_exp(f)
        if t is not None and f.dtype == out.dtype:
            rest = [i for j, i in enumerate(m.inputs) if j != k]
            new_num = num * sm.sigmoid(-t)
            return [sm.true_div(new_num, rest[0] if len(rest) == 1 else sm.mul(*rest))]
    return None


def _negation_of(a, b) -> bool:
    """a is provably -b."""
    na = owner_if(a, "neg")
    if na is not None and na.inputs[0] is b:
        return True
    nb = owner_if(b, "neg")
    if nb is not None and nb.inputs[0] is a:
        return True
    ca, cb = scalar_const(a), scalar_const(b)
    return ca is not None and cb is not None and ca == -cb


@node_rewriter([sm.mul], sets=("stabilize",), inputs=[sm.sigmoid])
def local_exp_times_sigmoid(fgraph, node):
    """exp(t) * sigmoid(-t) -> sigmoid(t) inside a product (the gradient of the
    logistic function, written naively, multiplies exp(-x) by a sigmoid)."""
    out = node.outputs[0]
    if not is_float(out):
        return None
    inputs = node.inputs
    exps = [(k, v.owner.inputs[0]) for k, v in enumerate(inputs) if elemwise_name(v) == "exp"]
    if not exps:
        return None
    sigs = [(k, v.owner.inputs[0]) for k, v in enumerate(inputs)
            if elemwise_name(v) == "sigmoid"]
    for ke, t in exps:
        for ks, s in sigs:
            if _negation_of(t, s) and inputs[ke].dtype == out.dtype:
                rest = [i for j, i in enumerate(inputs) if j not in (ke, ks)]
                return [sm.mul(*rest, sm.sigmoid(t)) if rest else sm.sigmoid(t)]
    return None


# -- specialize -----------------------------------------------------------------------------------

def _pow_value(m):
    return scalar_const(m.y)


def _nonneg(var) -> bool:
    """``var`` is provably >= +0 (and never -0 or -inf): exp, sqr, abs, sigmoid, ..."""
    return elemwise_name(var) in ("exp", "sqr", "abs", "sigmoid", "softplus", "cosh", "exp2")


_cy = pattern_var("y", lambda v: isinstance(v, Constant) and v.data.size == 1)


def _specialize_pow(m):
    p = _pow_value(m)
    if p is None or isinstance(p, bool) or isinstance(p, complex):
        return None
    xv = m.x
    floaty = is_float(m.out)
    if p == 2:
        return sm.sqr(xv)
    if p == 0.5 and floaty and (fast_math() or _nonneg(xv)):
        return sm.sqrt(xv)
    if p == -1 and floaty:
        return sm.reciprocal(xv)
    if float(p).is_integer() and 2 <= abs(p) <= 8 and (floaty or p > 0):
        n = int(abs(p))
        result = _power_by_squaring(xv, n)
        return sm.reciprocal(result) if p < 0 else result
    return None


def _power_by_squaring(v, n):
    result = None
    base = v
    while n:
        if n & 1:
            result = base if result is None else result * base
        n >>= 1
        if n:
            base = sm.sqr(base)
    return result


pattern_rewrite("local_pow_specialize", x ** _cy, _specialize_pow, sets=("specialize",))
pattern_rewrite("local_mul_minus_one", x * (-1), lambda m: -m.x, sets=("specialize",),
                condition=lambda m: len(m.node.inputs) == 2)
pattern_rewrite("local_one_div", 1 / x, lambda m: sm.reciprocal(m.x), sets=("specialize",),
                condition=_float)
pattern_rewrite("local_exp_log_base", sm.exp(x * _math.log(2.0)), sm.exp2(x),
                sets=("specialize",), condition=_float)


def _sigmoid_product(fgraph, node):
    """sigmoid(x) * sigmoid(-x) -> e / (1 + e)**2 with e = exp(-|x|): one exp instead of
    two, and no overflow (the derivative of the logistic function)."""
    out = node.outputs[0]
    if not is_float(out):
        return None
    inputs = node.inputs
    sigs = [(k, v.owner.inputs[0]) for k, v in enumerate(inputs)
            if elemwise_name(v) == "sigmoid" and v.dtype == out.dtype]
    for a in range(len(sigs)):
        for b in range(a + 1, len(sigs)):
            (ka, ta), (kb, tb) = sigs[a], sigs[b]
            if _negation_of(ta, tb):
                base = ta if owner_if(ta, "neg") is None else tb
                e = sm.exp(-sm.abs(base))
                term = e / sm.sqr(1 + e)
                rest = [i for j, i in enumerate(inputs) if j not in (ka, kb)]
                return [sm.mul(*rest, term) if rest else term]
    return None


node_rewriter([sm.mul], sets=("specialize",), name="local_sigmoid_times_sigmoid_neg",
              inputs=[sm.sigmoid])(
    _sigmoid_product)
