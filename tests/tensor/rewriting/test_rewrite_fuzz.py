"""Rewrite soundness fuzzing: random elementwise expressions (and their gradients) compiled
with every rewrite (FAST_RUN) against merge/folding only (FAST_COMPILE), NaN and inf included.

The only difference allowed is where a stabilizing rewrite turns an overflow of the naive
form (a non-finite value from finite inputs) into a finite one.
"""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import symgrad
import symgrad.tensor as st

UNARY = ["neg", "exp", "log", "sin", "tanh", "sigmoid", "sqr", "abs", "log1p", "expm1",
         "softplus", "sqrt", "cos", "reciprocal"]
BINARY = ["add", "sub", "mul", "true_div", "maximum"]
CONSTS = [0.0, 1.0, -1.0, 2.0, 0.5, 3.0]
SPECIAL = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf]


def expressions(depth):
    leaf = hs.one_of(hs.sampled_from(["x", "y"]), hs.sampled_from(CONSTS))
    if depth == 0:
        return leaf
    sub = expressions(depth - 1)
    return hs.one_of(
        leaf,
        hs.tuples(hs.sampled_from(UNARY), sub),
        hs.tuples(hs.sampled_from(BINARY), sub, sub),
        hs.tuples(hs.just("pow"), sub, hs.sampled_from([0, 1, 2, 3, -1, -2, 0.5])),
        hs.tuples(hs.just("sigmoid_form"), sub),
        hs.tuples(hs.just("log1p_form"), sub),
    )


def build(tree, x, y):
    """The expression, built without recursion over the (small) tree."""
    stack = [(tree, False)]
    values: list = []
    while stack:
        node, done = stack.pop()
        if not isinstance(node, tuple):
            values.append(x if node == "x" else y if node == "y" else node)
            continue
        name, *args = node
        if not done:
            stack.append((node, True))
            for a in reversed(args if name != "pow" else args[:1]):
                stack.append((a, False))
            continue
        n = len(args) if name != "pow" else 1
        operands = [values.pop() for _ in range(n)][::-1]
        operands = [st.as_tensor_variable(o) if not hasattr(o, "type") else o for o in operands]
        if name == "pow":
            values.append(operands[0] ** args[1])
        elif name == "sigmoid_form":
            values.append(1 / (1 + st.exp(-operands[0])))
        elif name == "log1p_form":
            values.append(st.log(1 + operands[0]))
        else:
            values.append(getattr(st, name)(*operands))
    (out,) = values
    return st.as_tensor_variable(out)


finite = hs.integers(-500, 500).map(lambda k: k / 100)
element = hs.one_of(finite, finite, finite, hs.sampled_from(SPECIAL))
vectors = hs.lists(element, min_size=4, max_size=4).map(np.array)
# derivatives at +-inf are limits (the stable logistic derivative is 0 there, the naive one
# inf/inf = nan): gradients are fuzzed on finite values and NaN
no_inf = hs.one_of(finite, finite, finite, hs.sampled_from([0.0, -0.0, 1.0, np.nan]))
vectors_no_inf = hs.lists(no_inf, min_size=4, max_size=4).map(np.array)


def compare(expr, inputs, values):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = symgrad.function(inputs, expr, mode="FAST_COMPILE", on_unused_input="ignore")
        got_f = symgrad.function(inputs, expr, mode="FAST_RUN", on_unused_input="ignore")
        want = np.asarray(ref(*values), dtype="float64")
        got = np.asarray(got_f(*values), dtype="float64")
    assert got.shape == want.shape
    used = set(symgrad.graph.ancestors([expr]))
    want_b, got_b, *vals = np.broadcast_arrays(
        want, got, *[v for i, v in zip(inputs, values) if i in used])
    # (only the inputs the expression uses: a NaN in an unused one changes nothing)
    inputs_finite = np.all([np.isfinite(v) for v in vals], axis=0) if vals else True
    stabilized = inputs_finite & ~np.isfinite(want_b)  # naive overflow: may now be finite
    ok = np.isclose(got_b, want_b, rtol=1e-6, atol=1e-9, equal_nan=True) | stabilized
    assert ok.all(), (symgrad.pp(expr), values, want, got)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=expressions(3), xv=vectors, yv=vectors)
def test_rewrites_keep_values(tree, xv, yv):
    x, y = st.dvectors("x", "y")
    expr = build(tree, x, y)
    compare(expr, [x, y], [xv, yv])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=expressions(3), xv=vectors_no_inf, yv=vectors_no_inf)
def test_rewrites_keep_gradient_values(tree, xv, yv):
    x, y = st.dvectors("x", "y")
    expr = build(tree, x, y)
    if expr.ndim != 1 or not (symgrad.graph.ancestors([expr]) and x in set(
            symgrad.graph.ancestors([expr]))):
        return
    cost = st.sum(expr * st.constant(np.array([1.0, -2.0, 0.5, 3.0])))
    g = symgrad.grad(cost, x)
    compare(g, [x, y], [xv, yv])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=expressions(2), xv=vectors)
def test_rewrites_keep_float32(tree, xv):
    x, y = st.fvectors("x", "y")
    expr = build(tree, x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = xv.astype("float32")
        r1 = symgrad.function([x, y], expr, mode="FAST_COMPILE", on_unused_input="ignore")(a, a)
        r2 = symgrad.function([x, y], expr, on_unused_input="ignore")(a, a)
    assert np.asarray(r1).dtype == np.asarray(r2).dtype
