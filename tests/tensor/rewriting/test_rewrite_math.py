"""Each standard rewrite: what it produces (structure) and that values do not change."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.compile.mode import Mode
from symgrad.config import config
from symgrad.printing import pp

NOFUSE = Mode("FAST_RUN").excluding("fuse", "inplace")
RNG = np.random.default_rng(42)


def rewritten(expr, inputs, mode=NOFUSE):
    f = symgrad.function(inputs, expr, mode=mode, on_unused_input="ignore")
    return f, pp(f.maker.fgraph.outputs[0])


def same_values(expr, inputs, values, rtol=1e-12, atol=0.0):
    """FAST_RUN (fused and not) and FAST_COMPILE agree, NaN and inf included."""
    ref = symgrad.function(inputs, expr, mode="FAST_COMPILE", on_unused_input="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = ref(*values)
        for mode in (NOFUSE, "FAST_RUN"):
            got = symgrad.function(inputs, expr, mode=mode, on_unused_input="ignore")(*values)
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
            assert np.asarray(got).dtype == np.asarray(want).dtype
            assert np.shape(got) == np.shape(want)


SPECIALS = np.array([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 1e300, -1e-300])


# -- canonicalize ---------------------------------------------------------------------------------

@pytest.mark.parametrize("build, want", [
    (lambda x: x * 1, "x"),
    (lambda x: 1 * x, "x"),
    (lambda x: x + 0, "x"),
    (lambda x: 0 + x, "x"),
    (lambda x: x - 0, "x"),
    (lambda x: x / 1, "x"),
    (lambda x: x ** 1, "x"),
    (lambda x: st.neg(st.neg(x)), "x"),
    (lambda x: 0 - x, "(-x)"),
    (lambda x: 2 * x * 3, "(6 * x)"),
    (lambda x: (x * 2) * (3 * x), "(6 * x * x)"),
    (lambda x: x + 1 + 2, "(3 + x)"),
    (lambda x: x / 4.0, "(0.25 * x)"),
    (lambda x: -(x * 2), "(-2 * x)"),
    (lambda x: (-x) * (-(x + 1)), "(x * (1 + x))"),
])
def test_canonical_forms(build, want):
    x = st.dvector("x")
    expr = build(x)
    _, text = rewritten(expr, [x])
    assert text == want
    same_values(expr, [x], [SPECIALS])


def test_log_exp():
    x = st.dvector("x")
    _, text = rewritten(st.log(st.exp(x)), [x])
    assert text == "x"
    naive, stable = naive_and_stable(st.log(st.exp(x)), [x], [np.array([1000.0, np.nan, 2.0])])
    assert np.isinf(naive[0])
    np.testing.assert_array_equal(stable, [1000.0, np.nan, 2.0])


def test_pow_zero_keeps_shape_and_dtype():
    x = st.dmatrix("x")
    f, text = rewritten(x ** 0, [x])
    assert "**" not in text
    v = np.array([[np.nan, np.inf], [0.0, -1.0]])
    out = f(v)
    assert out.shape == (2, 2) and out.dtype == np.float64
    np.testing.assert_array_equal(out, np.ones((2, 2)))  # nan ** 0 == 1 in numpy too
    same_values(x ** 0, [x], [v])
    i = st.ivector("i")
    same_values(i ** 0, [i], [np.array([0, 3], dtype="int32")])


def test_flattening_and_one_nary_node():
    x, y, z = st.dvectors("x", "y", "z")
    expr = ((x * y) * z) * 2.0
    f, text = rewritten(expr, [x, y, z])
    assert text == "(2.0 * x * y * z)"
    assert len(f.maker.fgraph.apply_nodes) == 1
    vals = [RNG.normal(size=4) for _ in range(3)]
    same_values(expr, [x, y, z], vals, rtol=1e-15)


def test_flattening_keeps_a_shared_product():
    x, y = st.dvectors("x", "y")
    p = x * y
    f, _ = rewritten([p * 2, p * 3], [x, y])
    # p is used twice: computed once, not flattened into both
    assert sum(1 for n in f.maker.fgraph.apply_nodes if n.op.scalar_op.name == "mul") == 3


def test_flattening_respects_narrower_dtypes():
    a = st.fvector("a")
    b = st.dvector("b")
    expr = (a * a) * b  # a * a is computed in float32 first
    f, text = rewritten(expr, [a, b])
    av = np.array([1.0 + 2 ** -12], dtype="float32")
    want = (av * av).astype("float64") * 1.0
    np.testing.assert_array_equal(f(av, np.ones(1)), want)


def test_float32_stays_float32_with_weak_constants():
    x = st.fvector("x")
    expr = 2 * x * 3.5 + 1
    f, text = rewritten(expr, [x])
    assert text == "(1 + (7.0 * x))"
    assert f(np.ones(2, dtype="float32")).dtype == np.float32


# -- NaN/inf safety ---------------------------------------------------------------------------------

@pytest.mark.parametrize("build, safe_text", [
    (lambda x: x - x, "(x - x)"),
    (lambda x: x * 0, "(0 * x)"),
    (lambda x: x / x, "(x / x)"),
    (lambda x: st.eq(x, x), "eq(x, x)"),
])
def test_unsafe_identities_are_not_applied_to_floats(build, safe_text):
    x = st.dvector("x")
    expr = build(x)
    f, text = rewritten(expr, [x])
    assert text == safe_text
    v = np.array([1.0, np.nan, np.inf, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = symgrad.function([x], expr, mode="FAST_COMPILE")(v)
        np.testing.assert_array_equal(f(v), want)
        assert np.isnan(f(v)).any() or not np.all(f(v))


@pytest.mark.parametrize("build, value", [
    (lambda x: x - x, 0),
    (lambda x: x * 0, 0),
    (lambda x: st.eq(x, x), True),
    (lambda x: st.lt(x, x), False),
])
def test_unsafe_identities_apply_to_integers(build, value):
    i = st.lvector("i")
    expr = build(i)
    f, text = rewritten(expr, [i])
    assert "i" not in text.replace("fill", "") or text.startswith("fill(")
    out = f(np.array([3, -4, 0]))
    np.testing.assert_array_equal(out, np.full(3, value))
    assert out.dtype == expr.dtype


def test_int_division_by_itself_is_not_folded():
    i = st.lvector("i")
    f, text = rewritten(i / i, [i])
    assert text == "(i / i)"  # 0 / 0 is nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(f(np.array([0, 2]))[0])


def test_fast_math_allows_them():
    x = st.dvector("x")
    with config.change_flags(fast_math=True):
        f, text = rewritten([x - x, x / x, x * 0], [x])
    assert "x - x" not in pp(f.maker.fgraph.outputs[0])
    np.testing.assert_array_equal(f(np.array([1.0, 2.0]))[0], [0.0, 0.0])


# -- fills, shapes, dimshuffles, casts ----------------------------------------------------------------

def test_fill_removed_where_the_shape_is_implied():
    x = st.dmatrix("x")
    expr = st.second(x, 2.0) * x
    _, text = rewritten(expr, [x])
    assert "fill" not in text
    same_values(expr, [x], [RNG.normal(size=(2, 3))])


def test_fill_kept_where_it_sets_the_shape():
    x = st.dmatrix("x")
    expr = st.second(x, 2.0) * 3.0
    f, text = rewritten(expr, [x])
    assert text == "fill(x, 6.0)"
    assert f(np.zeros((2, 3))).shape == (2, 3)
    same_values(expr, [x], [np.zeros((2, 3))])


def test_fill_of_a_broadcast_operand_kept():
    r, x = st.drow("r"), st.dmatrix("x")
    expr = st.second(x, r) + r  # the fill broadcasts r to x's shape: needed
    f, text = rewritten(expr, [r, x])
    assert f(np.ones((1, 3)), np.zeros((4, 3))).shape == (4, 3)
    same_values(expr, [r, x], [np.ones((1, 3)), np.zeros((4, 3))])


def test_sum_to_removed_when_shapes_match():
    x = st.dmatrix("x")
    g = symgrad.grad(st.sum(st.exp(x) * st.sin(x)), x)
    f, text = rewritten(g, [x])
    assert "SumTo" not in text and "Shape" not in text
    same_values(g, [x], [RNG.normal(size=(3, 2))])


def test_sum_to_kept_when_it_reduces():
    x, r = st.dmatrix("x"), st.dmatrix("r")
    g = symgrad.grad(st.sum(x * r), r)  # r may broadcast: SumTo stays
    f, text = rewritten(g, [x, r])
    np.testing.assert_allclose(f(np.ones((3, 2)), np.ones((1, 2))), [[3.0, 3.0]])
    np.testing.assert_allclose(f(np.ones((3, 2)), np.ones((3, 2))), np.ones((3, 2)))


def test_shape_of_static_var_is_a_constant():
    from symgrad.tensor.shape import Shape

    x = st.tensor("x", dtype="float64", shape=(2, 3))
    expr = Shape()(x)
    f, text = rewritten(expr, [x])
    assert not f.maker.fgraph.apply_nodes
    np.testing.assert_array_equal(f(np.zeros((2, 3))), [2, 3])


def test_shape_of_an_elementwise_result_reads_the_input():
    from symgrad.tensor.shape import Shape

    x = st.dmatrix("x")
    expr = Shape()(st.exp(x) + 1)
    f, text = rewritten(expr, [x])
    assert text == "Shape(x)"
    np.testing.assert_array_equal(f(np.zeros((4, 5))), [4, 5])


def test_sum_of_fill():
    x = st.dmatrix("x")
    expr = st.sum(st.second(x, 3.0))
    f, text = rewritten(expr, [x])
    assert "Sum" not in text
    np.testing.assert_allclose(f(np.zeros((4, 5))), 60.0)
    np.testing.assert_allclose(f(np.zeros((0, 5))), 0.0)
    same_values(expr, [x], [np.zeros((2, 3))])
    # nan * 0 is not the sum of nothing: kept for a nan fill of unknown size
    expr = st.sum(st.second(x, np.nan))
    f, _ = rewritten(expr, [x])
    assert f(np.zeros((0, 5))) == 0.0


def test_mean_of_fill_with_static_shape_folds():
    x = st.tensor("x", dtype="float64", shape=(2, 3))
    expr = st.mean(st.second(x, 1.5))
    f, text = rewritten(expr, [x])
    assert not f.maker.fgraph.apply_nodes
    assert f(np.zeros((2, 3))) == 1.5


def test_dimshuffles_merged_and_removed():
    x = st.dmatrix("x")
    expr = x.T.T
    _, text = rewritten(expr, [x])
    assert text == "x"
    expr = x.dimshuffle("x", 1, 0).dimshuffle(2, 1, 0)
    f, text = rewritten(expr, [x])
    assert len(f.maker.fgraph.apply_nodes) == 1
    same_values(expr, [x], [RNG.normal(size=(2, 3))])


def test_no_op_cast_and_reshape_removed():
    x = st.dmatrix("x")
    expr = st.cast(st.cast(x, "float64"), "float64")
    _, text = rewritten(expr, [x])
    assert text == "x"
    i = st.ivector("i")
    expr = st.cast(st.cast(i, "int64"), "float64")  # widening then cast: one cast
    f, text = rewritten(expr, [i])
    assert len(f.maker.fgraph.apply_nodes) == 1
    expr = st.reshape(x, x.shape)
    _, text = rewritten(expr, [x])
    assert text == "x"


def test_alloc_removed_where_implied():
    x = st.dmatrix("x")
    expr = st.alloc(x, x.shape[0], x.shape[1]) * 2
    f, text = rewritten(expr, [x])
    same_values(expr, [x], [RNG.normal(size=(2, 3))])


# -- the tutorial ---------------------------------------------------------------------------------

def test_tutorial_gradient_is_two_x():
    x = st.dscalar("x")
    f = symgrad.function([x], symgrad.grad(x ** 2, x))
    assert pp(f.maker.fgraph.outputs[0]) == "(2.0 * x)"
    assert len(f.maker.fgraph.apply_nodes) == 1
    node = next(iter(f.maker.fgraph.apply_nodes))
    assert node.op.scalar_op.name == "mul"
    assert f(4.0) == 8.0


def test_logistic_gradient_is_one_fused_node():
    x = st.dmatrix("x")
    g = symgrad.grad(st.sum(1 / (1 + st.exp(-x))), x)
    f = symgrad.function([x], g)
    assert len(f.maker.fgraph.apply_nodes) == 1
    v = RNG.normal(size=(5, 4)) * 10
    s = 1 / (1 + np.exp(-v))
    np.testing.assert_allclose(f(v), s * (1 - s), rtol=1e-12)
    f2 = symgrad.function([x], g, mode=NOFUSE)
    assert len(f2.maker.fgraph.apply_nodes) <= 6


# -- stabilize: the naive form fails at extreme inputs, the rewritten one does not ---------------

def naive_and_stable(expr, inputs, values):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        naive = symgrad.function(inputs, expr, mode="FAST_COMPILE")(*values)
        stable = symgrad.function(inputs, expr)(*values)
    return naive, stable


def test_log1p():
    x = st.dvector("x")
    expr = x / st.log(1 + x)
    _, text = rewritten(st.log(1 + x), [x])
    assert text == "log1p(x)"
    naive, stable = naive_and_stable(expr, [x], [np.array([1e-20])])
    assert np.isinf(naive[0]) or np.isnan(naive[0])
    np.testing.assert_allclose(stable, [1.0])


def test_expm1():
    x = st.dvector("x")
    expr = 1 / (st.exp(x) - 1)
    _, text = rewritten(st.exp(x) - 1, [x])
    assert text == "expm1(x)"
    naive, stable = naive_and_stable(expr, [x], [np.array([1e-20])])
    assert np.isinf(naive[0])
    np.testing.assert_allclose(stable, [1e20])


def test_log_sigmoid():
    x = st.dvector("x")
    expr = st.log(st.sigmoid(x))
    _, text = rewritten(expr, [x])
    assert text == "(-softplus((-x)))"
    naive, stable = naive_and_stable(expr, [x], [np.array([-1000.0, 0.0])])
    assert np.isinf(naive[0])
    np.testing.assert_allclose(stable, [-1000.0, -np.log(2)])


def test_log_one_minus_sigmoid():
    x = st.dvector("x")
    expr = st.log(1 - st.sigmoid(x))
    _, text = rewritten(expr, [x])
    assert text == "(-softplus(x))"
    naive, stable = naive_and_stable(expr, [x], [np.array([1000.0])])
    assert np.isinf(naive[0])
    np.testing.assert_allclose(stable, [-1000.0])


def test_naive_logistic_becomes_sigmoid_and_log_of_it_is_finite():
    x = st.dvector("x")
    expr = st.log(1 / (1 + st.exp(-x)))
    _, text = rewritten(1 / (1 + st.exp(-x)), [x])
    assert text == "sigmoid(x)"
    naive, stable = naive_and_stable(expr, [x], [np.array([-1000.0])])
    assert np.isinf(naive[0])
    np.testing.assert_allclose(stable, [-1000.0])


def test_softplus_naive_and_its_gradient():
    x = st.dvector("x")
    expr = st.log(1 + st.exp(x))
    _, text = rewritten(expr, [x])
    assert text == "softplus(x)"
    naive, stable = naive_and_stable(expr, [x], [np.array([1000.0, -1000.0])])
    assert np.isinf(naive[0])
    np.testing.assert_allclose(stable, [1000.0, 0.0])
    g = symgrad.grad(st.sum(expr), x)
    naive, stable = naive_and_stable(g, [x], [np.array([1000.0, -1000.0, 0.0])])
    assert np.isnan(naive[0])
    np.testing.assert_allclose(stable, [1.0, 0.0, 0.5])


def test_sigmoid_gradient_stable():
    x = st.dvector("x")
    g = symgrad.grad(st.sum(1 / (1 + st.exp(-x))), x)
    naive, stable = naive_and_stable(g, [x], [np.array([-1000.0, 40.0, 0.0])])
    assert np.isnan(naive[0])
    np.testing.assert_allclose(stable, [0.0, np.exp(-40.0), 0.25], rtol=1e-12)
    g2 = symgrad.grad(st.sum(st.sigmoid(x)), x)  # the op's own derivative: z * (1 - z)
    naive, stable = naive_and_stable(g2, [x], [np.array([40.0])])
    assert naive[0] == 0.0  # 1 - sigmoid(40) rounds to 0
    np.testing.assert_allclose(stable, [np.exp(-40.0)], rtol=1e-12)


def test_logsumexp():
    x = st.dmatrix("x")
    expr = st.log(st.sum(st.exp(x), axis=1))
    f, text = rewritten(expr, [x])
    assert "LogSumExp" in text
    v = np.array([[1000.0, 1000.0], [-1000.0, -1000.0]])
    naive, stable = naive_and_stable(expr, [x], [v])
    assert np.isinf(naive).all()
    np.testing.assert_allclose(stable, [1000 + np.log(2), -1000 + np.log(2)])
    v = RNG.normal(size=(3, 4))
    same_values(expr, [x], [v])


def test_softmax_forms():
    x = st.dmatrix("x")
    e = st.exp(x)
    naive = e / st.sum(e, axis=1, keepdims=True)
    f, text = rewritten(naive, [x])
    assert text.startswith("Softmax")
    v = np.array([[1000.0, 0.0], [1.0, 2.0]])
    nv, sv = naive_and_stable(naive, [x], [v])
    assert np.isnan(nv).any()
    np.testing.assert_allclose(sv, [[1.0, 0.0], [1 / (1 + np.e), np.e / (1 + np.e)]])
    expr = st.log(st.special.softmax(x, axis=1))
    f, text = rewritten(expr, [x])
    assert text.startswith("LogSoftmax")
    nv, sv = naive_and_stable(expr, [x], [v])
    assert np.isinf(nv).any()
    np.testing.assert_allclose(sv[0], [0.0, -1000.0])


def test_softmax_gradient_stable():
    x = st.dvector("x")
    w = st.constant(np.array([1.0, 2.0, 3.0]))
    cost = st.sum(st.special.softmax(x) * w)
    g = symgrad.grad(cost, x)
    v = np.array([1000.0, 0.0, -1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = symgrad.function([x], g)(v)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, [0.0, 0.0, 0.0], atol=1e-300)


# -- specialize -----------------------------------------------------------------------------------

@pytest.mark.parametrize("build, want", [
    (lambda x: x ** 2, "sqr(x)"),
    (lambda x: x ** -1, "reciprocal(x)"),
    (lambda x: x ** 3, "(x * sqr(x))"),
    (lambda x: x ** 4, "sqr(sqr(x))"),
    (lambda x: x ** -2, "reciprocal(sqr(x))"),
    (lambda x: 1 / x, "reciprocal(x)"),
    (lambda x: x * -1, "(-x)"),
])
def test_specialized_forms(build, want):
    x = st.dvector("x")
    expr = build(x)
    _, text = rewritten(expr, [x])
    assert text == want
    same_values(expr, [x], [SPECIALS[:-2]], rtol=1e-15)
    same_values(expr, [x], [RNG.normal(size=5)], rtol=1e-14)


def test_sqrt_only_where_it_equals_pow():
    x = st.dvector("x")
    _, text = rewritten(x ** 0.5, [x])
    assert text == "(x ** 0.5)"  # pow(-inf, 0.5) is inf but sqrt(-inf) is nan
    _, text = rewritten(st.exp(x) ** 0.5, [x])
    assert text == "sqrt(exp(x))"
    with config.change_flags(fast_math=True):
        _, text = rewritten(x ** 0.5, [x])
    assert text == "sqrt(x)"
    same_values(x ** 0.5, [x], [SPECIALS])


def test_int_powers_stay_integers():
    i = st.lvector("i")
    f, text = rewritten(i ** 3, [i])
    np.testing.assert_array_equal(f(np.array([2, -3])), [8, -27])
    f, text = rewritten(i ** -1, [i])
    assert "reciprocal" not in text


def test_sum_of_product_becomes_dot():
    x = st.dvector("x")
    expr = st.sum(x * st.sin(x))
    f, text = rewritten(expr, [x])
    assert text == "Dot(x, sin(x))"
    a = RNG.normal(size=5)
    np.testing.assert_allclose(f(a), a @ np.sin(a))
    p, q = st.dvector("p", shape=(5,)), st.dvector("q", shape=(5,))
    f, text = rewritten(st.sum(p * q), [p, q])
    assert text == "Dot(p, q)"
    # two vectors of unknown lengths may broadcast (length 1): not an inner product
    y = st.dvector("y")
    f, text = rewritten(st.sum(x * y), [x, y])
    assert "Dot" not in text
    np.testing.assert_allclose(f(np.ones(3), np.ones(1)), 3.0)


def test_dot_chain_order():
    A = st.dmatrix("A")
    B = st.dmatrix("B")
    v = st.dvector("v")
    expr = st.dot(st.dot(A, B), v)
    f, text = rewritten(expr, [A, B, v])
    assert text == "Dot(A, Dot(B, v))"
    a, b, c = RNG.normal(size=(3, 4)), RNG.normal(size=(4, 5)), RNG.normal(size=5)
    np.testing.assert_allclose(f(a, b, c), a @ b @ c)
    P = st.tensor("P", dtype="float64", shape=(100, 2))
    Q = st.tensor("Q", dtype="float64", shape=(2, 100))
    R = st.tensor("R", dtype="float64", shape=(100, 2))
    f, text = rewritten(st.dot(st.dot(P, Q), R), [P, Q, R])
    assert text == "Dot(P, Dot(Q, R))"  # 100*2*2 + 100*2*2 beats 100*2*100 + 100*100*2


def test_slices_trimmed_alike_have_the_same_length():
    x = st.dvector("x")
    d = x[1:] - x[:-1] ** 2
    g = symgrad.grad(st.sum(d ** 2), x)
    f, text = rewritten(g, [x])
    assert "SumTo" not in text
    v = RNG.normal(size=6)
    same_values(g, [x], [v], rtol=1e-12)
    same_values(g, [x], [v[:1]])  # empty slices
    same_values(g, [x], [v[:0]])


def test_fill_reads_its_shape_from_a_cheap_variable():
    x = st.dvector("x")
    body = st.exp(x) * st.sin(x)  # only the gradient's fill needs it: not computed
    g = symgrad.grad(st.sum(body), x)
    f, _ = rewritten(symgrad.grad(st.sum(st.sqr(x[1:] - x[:-1])), x), [x])
    assert "fill((Subtensor" not in pp(f.maker.fgraph.outputs[0])
    same_values(g, [x], [RNG.normal(size=4)])


def test_gradient_of_slices_adds_into_the_other_terms():
    x = st.dvector("x")
    cost = st.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)  # Rosenbrock
    g = symgrad.grad(cost, x)
    f, text = rewritten(g, [x])
    stats = f.maker.fgraph.rewrite_stats
    assert stats["local_inc_subtensor_of_zeros_add"] + stats["local_inc_subtensor_merge"] >= 1
    assert text.count("IncSubtensor") == 2  # one increment per slice
    assert text.count("fill(x, 0.0)") == 1  # one zero array, not one per slice
    for n in (0, 1, 2, 7):
        same_values(g, [x], [RNG.normal(size=n)], rtol=1e-12)


def _softmax_np(v, axis):
    z = np.exp(v - v.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("cost_name", ["weighted", "square", "log"])
@pytest.mark.parametrize("ndim", [1, 2])
def test_naive_softmax_gradient_is_stable(cost_name, ndim):
    x = st.dvector("x") if ndim == 1 else st.dmatrix("x")
    axis = ndim - 1
    w = st.constant(np.array([1.0, 2.0, -0.5]))
    e = st.exp(x)
    s = e / st.sum(e, axis=axis, keepdims=True)  # written by hand
    cost = {"weighted": lambda: st.sum(s * w), "square": lambda: st.sum(s ** 2),
            "log": lambda: st.sum(st.log(s) * w)}[cost_name]()
    g = symgrad.grad(cost, x)
    f = symgrad.function([x], [s, g])
    big = np.array([1000.0, 0.0, -5.0])
    v = big if ndim == 1 else np.stack([big, [0.5, -1.0, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        naive = symgrad.function([x], g, mode="FAST_COMPILE")(v)
        got_s, got_g = f(v)
    assert np.isnan(naive).any()  # the hand-written form overflows
    p = _softmax_np(v, axis)
    wv = np.array([1.0, 2.0, -0.5])
    G = {"weighted": wv + 0 * p, "square": 2 * p, "log": None}[cost_name]
    if cost_name == "log":
        want = wv - p * wv.sum()
    else:
        want = p * (G - (G * p).sum(axis=axis, keepdims=True))
    np.testing.assert_allclose(got_s, p, rtol=1e-12)
    np.testing.assert_allclose(got_g, want, rtol=1e-9, atol=1e-300)
    moderate = RNG.normal(size=v.shape)
    same_values(g, [x], [moderate], rtol=1e-9, atol=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nan_in = v.copy()
        nan_in[..., 1] = np.nan
        assert np.isnan(f(nan_in)[1]).all(axis=-1).all()


def test_naive_softmax_gradient_has_no_overflowing_exp():
    x = st.dmatrix("x")
    e = st.exp(x)
    s = e / st.sum(e, axis=1, keepdims=True)
    g = symgrad.grad(st.sum(s * st.constant(np.array([1.0, 2.0]))), x)
    f, text = rewritten(g, [x])
    assert "exp" not in text and "Softmax" in text


def test_reductions_over_length_one_axes_are_the_element():
    x = st.TensorType("int8", (1, None))("x")
    m = st.TensorType("float64", (None, 1, None))("m")
    v = st.dvector("v")
    outs = [st.sum(x, axis=0), st.prod(x, axis=0), st.max(m, axis=1), st.min(m, axis=1,
            keepdims=True), st.sum(m, axis=(0, 1)), st.any(m, axis=1),
            st.prod(st.shape(v))]
    f = symgrad.function([x, m, v], outs)
    names = [type(n.op).__name__ for n in f.maker.fgraph.toposort()]
    assert names.count("Sum") == 1  # only the sum over axes (0, 1) keeps a reduction (axis 0)
    assert not {"Prod", "Max", "Min", "Any"} & set(names)
    xv = np.array([[1, -2, 3]], dtype="int8")
    mv = np.arange(6.0).reshape(2, 1, 3) - 2.5
    vv = np.zeros(5)
    got = f(xv, mv, vv)
    want = [xv.sum(0), xv.prod(0), mv.max(1), mv.min(1, keepdims=True), mv.sum((0, 1)),
            mv.any(1), 5]
    for g, w in zip(got, want):
        assert np.asarray(g).dtype == np.asarray(w).dtype or np.asarray(g).dtype == "int64"
        np.testing.assert_array_equal(g, w)
    assert got[0].dtype == np.int64  # numpy's accumulator dtype for int8 sums
