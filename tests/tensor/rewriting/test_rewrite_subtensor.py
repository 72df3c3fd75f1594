"""Rewrites of gradient graphs of slices: increments into zeros, SumTo, fills, Rop's tangents.

Each rewrite: the structure it produces, and values equal to the unrewritten graph's
(FAST_COMPILE) on ordinary values, NaN, inf and empty or length-1 arrays.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.compile.mode import Mode
from symgrad.printing import pp

NOFUSE = Mode("FAST_RUN").excluding("fuse", "inplace")
RNG = np.random.default_rng(7)
SPECIALS = np.array([0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 1e300])


def rewritten(expr, inputs, mode=NOFUSE):
    f = symgrad.function(inputs, expr, mode=mode, on_unused_input="ignore")
    return f, pp(f.maker.fgraph.outputs[0])


def ops(f):
    return [type(n.op).__name__ for n in f.maker.fgraph.toposort()]


def same_values(expr, inputs, values, rtol=1e-12):
    ref = symgrad.function(inputs, expr, mode="FAST_COMPILE", on_unused_input="ignore")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        want = ref(*values)
        for mode in (NOFUSE, "FAST_RUN"):
            got = symgrad.function(inputs, expr, mode=mode, on_unused_input="ignore")(*values)
            np.testing.assert_allclose(got, want, rtol=rtol, equal_nan=True)
            assert np.shape(got) == np.shape(want)


def rosenbrock(x):
    return st.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


# -- sums of increments ----------------------------------------------------------------------------

def test_increments_into_zeros_added_become_one_chain_with_one_increment_per_index():
    x, a, b, c, w = st.dvectors("x", "a", "b", "c", "w")
    z = st.zeros_like(x)
    terms = (st.inc_subtensor(z[:-1], a) + st.inc_subtensor(z[1:], b)
             + st.inc_subtensor(z[:-1], c))
    expr = terms + st.sin(x) * w
    f, text = rewritten(terms + st.sin(x), [x, a, b, c])
    assert ops(f).count("IncSubtensor") == 2
    assert "fill" not in text and "0.0" not in text  # sin(x) is the base: no zero array
    f, text = rewritten(expr, [x, a, b, c, w])  # w may broadcast x: sin(x) * w is added last
    assert ops(f).count("IncSubtensor") == 2
    for n in (1, 2, 6):
        vals = [RNG.normal(size=n) for _ in range(5)]
        vals[1][: min(n - 1, 3)] = SPECIALS[3:3 + min(n - 1, 3)]
        vals[1], vals[2], vals[3] = vals[1][:n - 1], vals[2][:n - 1], vals[3][:n - 1]
        same_values(expr, [x, a, b, c, w], vals)


def test_increments_without_a_full_size_term_keep_one_zero_array():
    x, a, b = st.dvectors("x", "a", "b")
    z = st.zeros_like(x)
    expr = st.inc_subtensor(z[:-1], a) + st.inc_subtensor(z[1:], b)
    f, text = rewritten(expr, [x, a, b])
    assert ops(f).count("IncSubtensor") == 2 and "add" not in text
    for n in (1, 2, 5):
        same_values(expr, [x, a, b], [RNG.normal(size=n), SPECIALS[:n - 1], RNG.normal(size=n - 1)])


def test_a_term_that_broadcasts_is_not_used_as_the_base():
    x, a = st.dvectors("x", "a")
    w = st.tensor("w", dtype="float64", shape=(1,))
    z = st.zeros_like(x)
    expr = st.inc_subtensor(z[1:], a) + w
    same_values(expr, [x, a, w], [RNG.normal(size=4), RNG.normal(size=3), np.array([np.inf])])
    same_values(expr, [x, a, w], [RNG.normal(size=1), RNG.normal(size=0), np.array([2.0])])


def test_sets_are_not_lifted_or_merged():
    x, a, b, w = st.dvectors("x", "a", "b", "w")
    expr = st.set_subtensor(st.set_subtensor(x[1:], a)[1:], b) + w
    f, _ = rewritten(expr, [x, a, b, w])
    assert ops(f).count("IncSubtensor") == 2
    same_values(expr, [x, a, b, w], [RNG.normal(size=4), RNG.normal(size=3), SPECIALS[:3],
                                      RNG.normal(size=4)])


def test_increments_of_the_same_positions_merged():
    x, a, b, c = st.dvectors("x", "a", "b", "c")
    inner = st.inc_subtensor(st.inc_subtensor(x[:-1], a)[2:], b)
    expr = st.inc_subtensor(inner[:-1], c)
    f, text = rewritten(expr, [x, a, b, c])
    assert ops(f).count("IncSubtensor") == 2
    assert "(a + c)" in text or "(c + a)" in text
    same_values(expr, [x, a, b, c], [RNG.normal(size=5), SPECIALS[:4], RNG.normal(size=3),
                                      RNG.normal(size=4)])


def test_increment_used_twice_is_not_merged_into_its_clients():
    x, a, b = st.dvectors("x", "a", "b")
    inner = st.inc_subtensor(x[:-1], a)
    expr = st.inc_subtensor(inner[:-1], b) + inner
    same_values(expr, [x, a, b], [RNG.normal(size=4), RNG.normal(size=3), RNG.normal(size=3)])


# -- fills ---------------------------------------------------------------------------------------

def test_constant_times_fill_of_constant_is_a_fill():
    x = st.dvector("x")
    expr = 200 * st.fill(st.exp(x), 1.0) - 3.0
    f, text = rewritten(expr, [x])
    assert text == "fill(x, 197.0)"
    same_values(expr, [x], [SPECIALS])
    same_values(expr, [x], [SPECIALS[:0]])


def test_fill_reads_its_shape_through_increments_and_broadcasts():
    x, v = st.dvectors("x", "v")
    g = symgrad.grad(rosenbrock(x), x)
    expr = st.fill(g * v, v)  # only the shape of g * v is needed: g is not computed
    f, text = rewritten(expr, [x, v])
    assert text == "fill(x, v)"
    same_values(expr, [x, v], [RNG.normal(size=5), RNG.normal(size=5)])
    same_values(expr, [x, v], [RNG.normal(size=5), RNG.normal(size=1)])
    same_values(expr, [x, v], [RNG.normal(size=1), RNG.normal(size=4)])


# -- Hessian-vector products of slices --------------------------------------------------------------

def _rosen_hess_prod(x, p):
    from scipy.optimize import rosen_hess_prod

    return rosen_hess_prod(x, p)


def test_rop_of_a_gradient_of_slices_has_no_sum_to_and_one_increment_per_slice():
    x, v = st.dvectors("x", "v")
    Hv = symgrad.Rop(symgrad.grad(rosenbrock(x), x), x, v)
    f, text = rewritten(Hv, [x, v])
    names = ops(f)
    assert "SumTo" not in names and names.count("IncSubtensor") == 2
    assert text.count("fill(") == 1  # one zero array
    for n in (2, 3, 10):
        xv, vv = RNG.uniform(-1.5, 1.5, n), RNG.normal(size=n)
        np.testing.assert_allclose(symgrad.function([x, v], Hv)(xv, vv), _rosen_hess_prod(xv, vv),
                                   rtol=1e-12)
        same_values(Hv, [x, v], [xv, vv])
    vv = np.array([1.0, np.nan, np.inf, -np.inf, 0.0])
    same_values(Hv, [x, v], [SPECIALS[:5], vv])


def test_rop_checks_the_shape_of_the_eval_point():
    x, v = st.dvectors("x", "v")
    Hv = symgrad.Rop(symgrad.grad(rosenbrock(x), x), x, v)
    f = symgrad.function([x, v], Hv)
    with pytest.raises(ValueError, match="specify_shape"):
        f(np.ones(5), np.ones(1))


def test_rop_of_a_linear_function_does_not_read_the_point():
    W, V = st.dmatrices("W", "V")
    x = st.dvector("x")
    JV = symgrad.Rop(st.dot(x, W), W, V)
    f = symgrad.function([V, x], JV)  # W is not needed (not even its shape)
    np.testing.assert_allclose(f([[2, 2], [2, 2]], [0, 1]), [2.0, 2.0])


def test_grad_of_grad_times_v_of_slices():
    x, v = st.dvectors("x", "v")
    g = symgrad.grad(rosenbrock(x), x)
    Hv = symgrad.grad(st.sum(g * v), x)
    f, _ = rewritten(Hv, [x, v])
    names = ops(f)
    assert names.count("IncSubtensor") == 2  # g itself is not computed, only its shape read
    for n in (2, 3, 10):
        xv, vv = RNG.uniform(-1.5, 1.5, n), RNG.normal(size=n)
        np.testing.assert_allclose(symgrad.function([x, v], Hv)(xv, vv), _rosen_hess_prod(xv, vv),
                                   rtol=1e-12)
        same_values(Hv, [x, v], [xv, vv])
    same_values(Hv, [x, v], [RNG.normal(size=4), RNG.normal(size=1)])  # v broadcasts
    same_values(Hv, [x, v], [SPECIALS[:5], np.array([1.0, np.nan, np.inf, 0.0, -1.0])])


def test_specify_shape_with_a_symbolic_length_is_kept_and_checked():
    x = st.dmatrix("x")
    n = st.lscalar("n")
    y = st.specify_shape(x, (n, None))
    f = symgrad.function([x, n], y * 2)
    np.testing.assert_allclose(f(np.ones((2, 3)), 2), 2 * np.ones((2, 3)))
    with pytest.raises(ValueError, match="specify_shape"):
        f(np.ones((2, 3)), 3)


# -- slices of elementwise results ---------------------------------------------------------------

def test_slice_of_an_elementwise_result_slices_its_operands():
    x, y = st.dvectors("x", "y")
    m = st.dmatrix("m")
    cases = [
        (st.exp(x)[:3], [x], "exp(Subtensor{:stop}(x, 3))"),
        ((st.exp(x) * st.sin(x) + 2)[1:], [x], None),
        (st.fill(y, 3.0)[:-1], [y], "fill(Subtensor{:stop}(y, -1), 3.0)"),
        (st.exp(m)[1, 1:], [m], "exp(Subtensor{int, start:}(m, 1, 1))"),
    ]
    for expr, ins, want in cases:
        _, text = rewritten(expr, ins)
        if want is not None:
            assert text == want
        assert not text.startswith("Subtensor")
    vals = {1: np.array([np.inf, -np.inf, np.nan, 0.0, 2.0]), 2: RNG.normal(size=(3, 4))}
    for expr, ins, _ in cases:
        same_values(expr, ins, [vals[i.ndim] for i in ins])
        same_values(expr, ins, [vals[i.ndim][:1] if i.ndim == 1 else vals[2][:2, :1] for i in ins])


def test_slice_is_not_pushed_into_operands_that_may_broadcast_or_are_used_elsewhere():
    x, y = st.dvectors("x", "y")
    _, text = rewritten((x * y)[1:], [x, y])
    assert text.startswith("Subtensor")
    same_values((x * y)[1:], [x, y], [RNG.normal(size=4), RNG.normal(size=1)])
    e = st.exp(x)
    f, _ = rewritten([e[1:], e], [x])
    assert sum(type(n.op).__name__ == "Elemwise" for n in f.maker.fgraph.apply_nodes) == 1
