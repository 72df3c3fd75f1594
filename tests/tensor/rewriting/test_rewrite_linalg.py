"""Products with an identity (the Jacobians built by batching over one): O(n^2), exact."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.config import config
from symgrad.tensor.rewriting.linalg import _ScaledIdentityDot

RNG = np.random.default_rng(11)


def op_names(f):
    return [type(n.op).__name__ for n in f.maker.fgraph.toposort()]


def both(expr, inputs, values):
    """FAST_RUN's and FAST_COMPILE's values (NaN positions included)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        fast = symgrad.function(inputs, expr, on_unused_input="ignore")(*values)
        ref = symgrad.function(inputs, expr, mode="FAST_COMPILE", on_unused_input="ignore")(*values)
    return fast, ref


def assert_same_as(f, expr, inputs, values):
    """``f`` (compiled elsewhere) gives FAST_COMPILE's values, NaN positions included."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        ref = symgrad.function(inputs, expr, mode="FAST_COMPILE", on_unused_input="ignore")(*values)
        got = np.asarray(f(*values))
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=0, equal_nan=True)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))


def assert_same(expr, inputs, values):
    fast, ref = both(expr, inputs, values)
    np.testing.assert_allclose(fast, ref, rtol=1e-13, atol=0, equal_nan=True)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))


def nonfinite_cases(n):
    W = RNG.normal(size=(n, n))
    x = RNG.normal(size=n)
    cases = [(W, x)]
    for i, j, v in ((0, 1, np.inf), (1, 1, -np.inf), (2, 0, np.nan)):
        Wb = W.copy()
        Wb[i, j] = v
        cases.append((Wb, x))
    Wb = W.copy()
    Wb[1, 2] = Wb[3, 2] = np.inf  # two in one column
    cases.append((Wb, x))
    xb = x.copy()
    xb[0] = np.inf
    cases.append((W, xb))
    return cases


def test_jacobian_of_a_layer_is_a_scaled_copy_not_a_matrix_product():
    W, x = st.dmatrix("W"), st.dvector("x")
    J = symgrad.gradient.jacobian(st.tanh(st.dot(W, x)), x)
    f = symgrad.function([W, x], J)
    names = op_names(f)
    assert names.count("Dot") == 1 and "_ScaledIdentityDot" in names  # only dot(W, x)
    Wv, xv = RNG.normal(size=(5, 5)), RNG.normal(size=5)
    y = np.tanh(Wv @ xv)
    np.testing.assert_allclose(f(Wv, xv), (1 - y * y)[:, None] * Wv, rtol=1e-13)
    for Wv, xv in nonfinite_cases(5):
        assert_same(J, [W, x], [Wv, xv])
    for n in (0, 1, 2):
        assert_same(J, [W, x], [RNG.normal(size=(n, n)), RNG.normal(size=n)])


def test_scan_recipe_for_the_jacobian_reaches_the_same_graph():
    W, x = st.dmatrix("W"), st.dvector("x")
    y = st.tanh(st.dot(W, x))
    J, _ = symgrad.scan(lambda i, y, x: symgrad.grad(y[i], x), sequences=st.arange(y.shape[0]),
                        non_sequences=[y, x])
    f = symgrad.function([W, x], J)
    names = op_names(f)
    assert "AdvancedIncSubtensor" not in names and "Eye" not in names
    assert names.count("Dot") == 1 and "_ScaledIdentityDot" in names
    for Wv, xv in nonfinite_cases(5):
        assert_same(J, [W, x], [Wv, xv])
    for n in (1, 2):
        assert_same(J, [W, x], [RNG.normal(size=(n, n)), RNG.normal(size=n)])


def test_one_hot_rows_become_the_identity():
    n = st.lscalar("n")
    zeros = st.zeros((n, n))
    rows = st.arange(n)
    for onehot in (st.inc_subtensor(zeros[rows, rows], 1.0),
                   st.set_subtensor(zeros[rows, rows], 1.0)):
        f = symgrad.function([n], onehot)
        assert "AdvancedIncSubtensor" not in op_names(f)
        for k in (0, 1, 4):
            np.testing.assert_array_equal(f(k), np.eye(k))
    m = st.lscalar("m")  # not provably square: kept (it may raise)
    f = symgrad.function([n, m], st.inc_subtensor(st.zeros((n, m))[st.arange(n), st.arange(n)], 1.0))
    assert "AdvancedIncSubtensor" in op_names(f)
    np.testing.assert_array_equal(f(2, 3), np.eye(2, 3))


@pytest.mark.parametrize("w_ndim", [1, 2])
def test_scaled_identity_product_is_exact_on_inf_and_nan(w_ndim):
    r = st.tensor("r", dtype="float64", shape=(1, None))
    W = st.tensor("W", dtype="float64", shape=(None,) * w_ndim)
    k = st.shape_i(W, 0)
    expr = st.dot(st.eye(k) * st.specify_shape(r, (1, k)), W)
    f = symgrad.function([r, W], expr)
    assert "_ScaledIdentityDot" in op_names(f) and "Dot" not in op_names(f)
    shape = (4, 3) if w_ndim == 2 else (4,)
    base_w, base_r = RNG.normal(size=shape), RNG.normal(size=(1, 4))
    cases = [(base_r, base_w)]
    for where in ((0,), (2,), (3,)):
        for v in (np.inf, -np.inf, np.nan, 0.0):
            rb = base_r.copy()
            rb[(0,) + where] = v
            cases.append((rb, base_w))
            wb = base_w.copy()
            wb[where] = np.inf if v == 0.0 else v
            cases.append((base_r, wb))
            cases.append((np.zeros((1, 4)), wb))
    two = base_w.copy()
    two[(0,) + (1,) * (w_ndim - 1)] = two[(2,) + (1,) * (w_ndim - 1)] = np.inf
    cases.append((base_r, two))
    cases.append((np.zeros((1, 0)), np.zeros((0, 3) if w_ndim == 2 else (0,))))
    cases.append((base_r[:, :1], base_w[:1]))
    for rv, wv in cases:
        assert_same(expr, [r, W], [rv, wv])
    # a row of one element broadcasts along the identity
    c = st.tensor("c", dtype="float64", shape=(1, 1))
    expr = st.dot(st.eye(k) * c, W)
    assert "_ScaledIdentityDot" in op_names(symgrad.function([c, W], expr))
    for cv in (np.array([[2.0]]), np.array([[np.inf]]), np.array([[0.0]])):
        assert_same(expr, [c, W], [cv, base_w])
        assert_same(expr, [c, W], [cv, two])


def test_identity_times_a_matrix_is_the_matrix():
    W = st.dmatrix("W")
    expr = st.dot(st.eye(st.shape_i(W, 0)), W)
    f = symgrad.function([W], expr)
    assert "Dot" not in op_names(f)
    wv = RNG.normal(size=(3, 2))
    np.testing.assert_array_equal(f(wv), wv)
    wv[1, 0] = np.inf
    assert_same(expr, [W], [wv])


def test_fast_math_writes_the_plain_product():
    W, x = st.dmatrix("W"), st.dvector("x")
    J = symgrad.gradient.jacobian(st.tanh(st.dot(W, x)), x)
    with config.change_flags(fast_math=True):
        f = symgrad.function([W, x], J)
    names = op_names(f)
    assert "_ScaledIdentityDot" not in names and names.count("Dot") == 1
    Wv, xv = RNG.normal(size=(4, 4)), RNG.normal(size=4)
    y = np.tanh(Wv @ xv)
    np.testing.assert_allclose(f(Wv, xv), (1 - y * y)[:, None] * Wv, rtol=1e-13)


def test_scaled_identity_op_has_the_derivatives_and_batching_of_the_product():
    from symgrad.gradient import verify_grad
    from symgrad.graph.vectorize import vectorize_graph

    def build(r, w):
        return _ScaledIdentityDot()(st.shape_i(w, 0), r, w)

    rv, wv = RNG.normal(size=(1, 3)), RNG.normal(size=(3, 2))
    verify_grad(build, [rv, wv], rng=np.random.default_rng(0))
    r, w = st.dmatrix("r"), st.dmatrix("w")
    rb, wb = st.tensor3("rb"), st.tensor3("wb")
    batched = vectorize_graph(build(r, w), {r: rb, w: wb})
    rs, ws = RNG.normal(size=(2, 1, 3)), RNG.normal(size=(2, 3, 2))
    got = symgrad.function([rb, wb], batched)(rs, ws)
    np.testing.assert_allclose(got, [np.eye(3) * rs[k] @ ws[k] for k in range(2)], rtol=1e-13)


def test_jax_backend_runs_the_scaled_identity_product_exactly():
    pytest.importorskip("jax")
    W, x = st.dmatrix("W"), st.dvector("x")
    J = symgrad.gradient.jacobian(st.tanh(st.dot(W, x)), x)
    f = symgrad.function([W, x], J, mode="JAX")
    assert "_ScaledIdentityDot" in op_names(f) and "Dot" in op_names(f)  # only dot(W, x)
    Wv, xv = RNG.normal(size=(4, 4)), RNG.normal(size=4)
    y = np.tanh(Wv @ xv)
    np.testing.assert_allclose(np.asarray(f(Wv, xv)), (1 - y * y)[:, None] * Wv, rtol=1e-12)
    # Non-finite inputs: the same values as the JAX program of the product itself (XLA
    # simplifies products with a scaled identity under jit, so its NaN pattern can differ
    # from numpy's there; JAX's own jit does the same)
    from symgrad.compile.mode import Mode

    product = symgrad.function([W, x], J, mode=Mode("JAX").excluding("scaled_identity"))
    assert "_ScaledIdentityDot" not in op_names(product)
    for Wv, xv in nonfinite_cases(4):
        ref = np.asarray(product(Wv, xv))
        got = np.asarray(f(Wv, xv))
        np.testing.assert_allclose(got, ref, rtol=1e-12, equal_nan=True)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))


def test_numba_backend_runs_the_scaled_identity_product():
    pytest.importorskip("numba")
    W, x = st.dmatrix("W"), st.dvector("x")
    J = symgrad.gradient.jacobian(st.tanh(st.dot(W, x)), x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy glue by design: no fallback warning
        f = symgrad.function([W, x], J, mode="NUMBA")
    assert "_ScaledIdentityDot" in op_names(f)
    for Wv, xv in nonfinite_cases(4):
        assert_same_as(f, J, [W, x], [Wv, xv])
    Wv, xv = RNG.normal(size=(4, 4)), RNG.normal(size=4)
    y = np.tanh(Wv @ xv)
    np.testing.assert_allclose(np.asarray(f(Wv, xv)), (1 - y * y)[:, None] * Wv, rtol=1e-12)


def test_hessian_of_a_quadratic_form_has_no_matrix_product_with_the_identity():
    # W4: the hessian's identity reaches the products through reshape(eye(prod(shape(x))),
    # ...); the rewrites see through it, so no O(n^3) product with eye remains.
    x, A = st.dvector("x"), st.dmatrix("A")
    cost = st.sum(x ** 2 * st.sin(x)) + st.dot(x, st.dot(A, x))
    H = symgrad.gradient.hessian(cost, x)
    f = symgrad.function([x, A], H)
    nodes = f.maker.fgraph.toposort()
    eye_dots = [n for n in nodes if type(n.op).__name__ == "Dot"
                and any(i.owner is not None and type(i.owner.op).__name__ in ("Eye", "Reshape",
                                                                           "second")
                        for i in n.inputs)]
    assert not eye_dots
    xv, Av = RNG.normal(size=7), RNG.normal(size=(7, 7))
    want = np.diag(2 * np.sin(xv) + 4 * xv * np.cos(xv) - xv ** 2 * np.sin(xv)) + Av + Av.T
    np.testing.assert_allclose(f(xv, Av), want, rtol=1e-12, atol=1e-12)
    Av[2, 3] = np.inf
    assert_same(H, [x, A], [xv, Av])


def test_identity_times_a_matrix_of_unproven_rows_still_checks_the_lengths():
    x, W = st.dvector("x"), st.dmatrix("W")
    expr = st.dot(st.eye(st.shape_i(x, 0)), W) + x
    f = symgrad.function([x, W], expr)
    assert "Dot" not in op_names(f)
    xv, wv = RNG.normal(size=3), RNG.normal(size=(3, 3))
    np.testing.assert_allclose(f(xv, wv), wv + xv)
    with pytest.raises(ValueError, match="align|shape|match"):
        f(xv, RNG.normal(size=(4, 3)))
