"""The public derivative API: grad, Lop, Rop, jacobian, hessian, HVPs, modifiers, verify_grad."""

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad import function
from symgrad.gradient import (
    DisconnectedInputError,
    GradientError,
    Lop,
    NullTypeGradError,
    Rop,
    grad,
    grad_clip,
    grad_scale,
    hessian,
    hessian_vector_product,
    jacobian,
    stop_gradient,
    verify_grad,
    zero_grad,
)
from symgrad.graph import Apply, Op

rng = np.random.default_rng(1)


def numeric_jacobian(fn, x, eps=1e-6):
    x = np.asarray(x, dtype=float)
    y0 = np.asarray(fn(x))
    J = np.zeros(y0.shape + x.shape)
    for idx in np.ndindex(*x.shape):
        d = np.zeros_like(x)
        d[idx] = eps
        J[(Ellipsis,) + idx] = (np.asarray(fn(x + d)) - np.asarray(fn(x - d))) / (2 * eps)
    return J


# -- grad ---------------------------------------------------------------------------------------

def test_tutorial_printed_gradient():
    x = st.dscalar("x")
    assert symgrad.pp(grad(x ** 2, x)) == "((fill((x ** 2), 1.0) * 2) * (x ** (2 - 1)))"


def test_grad_reachable_everywhere():
    assert symgrad.grad is grad and st.grad is grad and symgrad.gradient.grad is grad


def test_grad_requires_scalar_cost():
    x = st.dvector("x")
    with pytest.raises(TypeError, match=r"cost must be a scalar \(0-d\).*TensorType\(float64"):
        grad(x ** 2, x)


def test_grad_list_keeps_order():
    a, b = st.dscalars("a", "b")
    ga, gb = grad(a ** 2 * b ** 3, [a, b])
    out = function([a, b], [ga, gb])(2.0, 3.0)
    np.testing.assert_allclose(out, [2 * 2.0 * 27.0, 4.0 * 3 * 9.0])


def test_disconnected_input_raises_names_it():
    x, w = st.dscalars("x", "w")
    with pytest.raises(DisconnectedInputError, match="'w'"):
        grad(x ** 2, [x, w])
    with pytest.warns(UserWarning, match="'w'"):
        gx, gw = grad(x ** 2, [x, w], disconnected_inputs="warn")
    gx, gw = grad(x ** 2, [x, w], disconnected_inputs="ignore")
    assert function([x, w], gw, on_unused_input="ignore")(1.0, 2.0) == 0.0
    gx, gw = grad(x ** 2, [x, w], disconnected_inputs="ignore", return_disconnected="none")
    assert gw is None


def test_repeated_use_sums_and_broadcast_reduces():
    x = st.dvector("x")
    c = st.dmatrix("c")
    cost = (x * x + x).sum() + (c * x).sum()
    g = function([x, c], grad(cost, x))
    xv, cv = np.array([1.0, 2.0]), np.ones((3, 2))
    np.testing.assert_allclose(g(xv, cv), 2 * xv + 1 + 3)


def test_runtime_broadcasting_gradient_has_input_shape():
    x, y = st.dmatrices("x", "y")
    gx = function([x, y], grad((x * y).sum(), x))
    out = gx(np.ones((3, 1)), np.arange(12.0).reshape(3, 4))
    np.testing.assert_allclose(out, np.arange(12.0).reshape(3, 4).sum(axis=1, keepdims=True))


def test_higher_order_grad():
    x = st.dscalar("x")
    y = st.sin(x) * x
    g1 = grad(y, x)
    g2 = grad(g1, x)
    g3 = grad(g2, x)
    f = function([x], [g1, g2, g3])
    v = 0.7
    np.testing.assert_allclose(f(v), [
        np.cos(v) * v + np.sin(v),
        -np.sin(v) * v + 2 * np.cos(v),
        -np.cos(v) * v - 3 * np.sin(v),
    ])


def test_known_grads_and_consider_constant():
    x = st.dvector("x")
    h = st.exp(x)
    v = st.dvector("v")
    g = grad(None, x, known_grads={h: v})
    np.testing.assert_allclose(function([x, v], g)([0.0, 1.0], [1.0, 2.0]),
                               np.exp([0.0, 1.0]) * [1.0, 2.0])
    cost = (h * x).sum()
    g_const = grad(cost, x, consider_constant=[h])
    np.testing.assert_allclose(function([x], g_const)([0.0, 1.0]), np.exp([0.0, 1.0]))


def test_gradient_dtype_follows_input():
    x = st.fvector("x")
    g = grad((x ** 2 * 2.5).sum(), x)
    assert g.dtype == "float32"
    assert function([x], g)([1.0, 2.0]).dtype == np.float32


def test_integer_cost_gives_zero_or_disconnected():
    x = st.dvector("x")
    g = grad(st.cast(x > 0, "float64").sum(), x)
    np.testing.assert_allclose(function([x], g)([1.0, -1.0]), [0.0, 0.0])


# -- modifiers ------------------------------------------------------------------------------------

def test_gradient_modifiers():
    x = st.dscalar("x")
    y = x ** 2
    with pytest.raises(DisconnectedInputError):
        grad(stop_gradient(y), x)
    assert function([x], grad(zero_grad(y) + x, x))(3.0) == 1.0
    assert function([x], grad(grad_scale(y, 0.5), x))(3.0) == 3.0
    assert function([x], grad(grad_clip(y, -1.0, 1.0), x))(3.0) == 6.0  # clipped cotangent 1
    assert function([x], grad(grad_clip(y, -1.0, 1.0) * 5, x))(3.0) == 6.0  # 5 clipped to 1
    assert function([x], stop_gradient(y))(3.0) == 9.0


# -- Lop / Rop -------------------------------------------------------------------------------------

def test_tutorial_rop_with_unused_wrt_input():
    W, V = st.dmatrices("W", "V")
    x = st.dvector("x")
    JV = Rop(st.dot(x, W), W, V)
    f = function([W, V, x], JV)  # PyTensor raises UnusedInputError here
    np.testing.assert_allclose(f([[1, 1], [1, 1]], [[2, 2], [2, 2]], [0, 1]), [2.0, 2.0])


def test_unrelated_unused_input_still_raises():
    W, V = st.dmatrices("W", "V")
    x, z = st.dvectors("x", "z")
    JV = Rop(st.dot(x, W), W, V)
    with pytest.raises(symgrad.compile.UnusedInputError, match="'z'"):
        function([W, V, x, z], JV)


def test_tutorial_lop():
    W = st.dmatrix("W")
    v, x = st.dvectors("v", "x")
    VJ = Lop(st.dot(x, W), W, v)
    np.testing.assert_allclose(function([v, x], VJ)([2, 2], [0, 1]), [[0, 0], [2, 2]])


def test_rop_lop_shape_errors():
    x = st.dvector("x")
    with pytest.raises(ValueError, match="eval_points.*shape of wrt"):
        Rop(st.exp(x), x, st.dmatrix("v"))
    with pytest.raises(ValueError, match="eval_points.*shape of f"):
        Lop(st.exp(x), x, st.dmatrix("v"))


def test_rop_lop_duality_on_composite():
    x = st.dvector("x")
    W = st.dmatrix("W")
    f = st.tanh(st.dot(W, x)) * st.exp(x[0])
    u, v = st.dvectors("u", "v")
    lhs = (Rop(f, x, v) * u).sum()
    rhs = (Lop(f, x, u) * v).sum()
    fn = function([x, W, u, v], [lhs, rhs])
    a, b = fn(rng.normal(size=3), rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=3))
    np.testing.assert_allclose(a, b)


def test_hessian_vector_products_both_ways():
    x, v = st.dvectors("x", "v")
    gy = grad(st.sum(x ** 2), x)
    vH = grad(st.sum(gy * v), x)
    Hv = Rop(gy, x, v)
    np.testing.assert_allclose(function([x, v], vH)([4, 4], [2, 2]), [4, 4])
    np.testing.assert_allclose(function([x, v], Hv)([4, 4], [2, 2]), [4, 4])
    hvp = hessian_vector_product(st.sum(st.sin(x) * x ** 2), x, v)
    xv, vv = rng.normal(size=4), rng.normal(size=4)
    H = numeric_jacobian(lambda z: np.cos(z) * z ** 2 + 2 * z * np.sin(z), xv)
    np.testing.assert_allclose(function([x, v], hvp)(xv, vv), H @ vv, rtol=1e-6)


# -- jacobian / hessian -------------------------------------------------------------------------

def test_tutorial_jacobian_and_hessian():
    x = st.dvector("x")
    np.testing.assert_allclose(function([x], jacobian(x ** 2, x))([4, 4]), [[8, 0], [0, 8]])
    np.testing.assert_allclose(function([x], hessian((x ** 2).sum(), x))([4, 4]),
                               [[2, 0], [0, 2]])


@pytest.mark.parametrize("wrt_shape", [(), (3,), (2, 3)])
@pytest.mark.parametrize("expr_kind", ["scalar", "vector", "matrix"])
def test_jacobian_shapes_against_finite_differences(wrt_shape, expr_kind):
    x = st.tensor("x", dtype="float64", shape=(None,) * len(wrt_shape))
    A = np.arange(1.0, 7.0).reshape(2, 3) / 5
    if expr_kind == "scalar":
        expr = (st.sin(x) * x).sum()
        ref = lambda v: np.sum(np.sin(v) * v)  # noqa: E731
    elif expr_kind == "vector":
        expr = st.tanh(x).flatten() * 2
        ref = lambda v: np.tanh(v).ravel() * 2  # noqa: E731
    else:
        expr = st.exp(x).flatten()[None, :] * st.constant(A[:, :1])
        ref = lambda v: np.exp(v).ravel()[None, :] * A[:, :1]  # noqa: E731
    J = jacobian(expr, x)
    xv = rng.normal(size=wrt_shape)
    got = function([x], J)(xv)
    want = numeric_jacobian(ref, xv)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_jacobian_forward_and_reverse_agree():
    W = st.dmatrix("W")
    x = st.tensor("x", dtype="float64", shape=(3,))
    small_out = st.tanh(st.dot(W, x))  # out size unknown: reverse
    big = st.tensor("b", dtype="float64", shape=(2,))
    expr = st.outer(st.exp(big), st.arange(5.0)).flatten()  # static-known wrt is smaller
    Wv, xv = rng.normal(size=(4, 3)), rng.normal(size=3)
    Jr = function([W, x], jacobian(small_out, x))(Wv, xv)
    np.testing.assert_allclose(Jr, numeric_jacobian(lambda v: np.tanh(Wv @ v), xv), rtol=1e-6)
    bv = rng.normal(size=2)
    Jf = function([big], jacobian(expr, big))(bv)
    want = numeric_jacobian(lambda v: np.outer(np.exp(v), np.arange(5.0)).ravel(), bv)
    np.testing.assert_allclose(Jf, want, rtol=1e-6)


def test_jacobian_list_of_wrt_mixed():
    a = st.dscalar("a")
    v = st.dvector("v")
    expr = st.sin(v) * a
    Ja, Jv = jacobian(expr, [a, v])
    av, vv = 0.3, rng.normal(size=3)
    fa, fv = function([a, v], [Ja, Jv])(av, vv)
    np.testing.assert_allclose(fa, np.sin(vv))
    np.testing.assert_allclose(fv, np.diag(np.cos(vv) * av))


@pytest.mark.parametrize("wrt_shape", [(), (4,), (2, 3)])
def test_hessian_scalar_vector_matrix_wrt(wrt_shape):
    x = st.tensor("x", dtype="float64", shape=(None,) * len(wrt_shape))
    cost = (x ** 2 * st.sin(x)).sum() + (x * x).sum() ** 2
    H = hessian(cost, x)
    xv = rng.normal(size=wrt_shape)
    got = function([x], H)(xv)

    def g(v):
        return 2 * v * np.sin(v) + v ** 2 * np.cos(v) + 4 * np.sum(v * v) * v

    want = numeric_jacobian(g, xv)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # hessian == jacobian of grad
    J = jacobian(grad(cost, x), x)
    np.testing.assert_allclose(function([x], J)(xv), got, rtol=1e-9, atol=1e-12)


def test_hessian_of_list():
    a, b = st.dvectors("a", "b")
    cost = (a ** 2 * b).sum()
    Ha, Hb = hessian(cost, [a, b])
    av, bv = rng.normal(size=3), rng.normal(size=3)
    ha, hb = function([a, b], [Ha, Hb])(av, bv)
    np.testing.assert_allclose(ha, np.diag(2 * bv))
    np.testing.assert_allclose(hb, np.zeros((3, 3)))


def test_hessian_requires_scalar():
    x = st.dvector("x")
    with pytest.raises(TypeError, match="scalar"):
        hessian(x * 2, x)


# -- deep graphs -------------------------------------------------------------------------------

@pytest.mark.slow
def test_grad_and_rop_of_100k_chain():
    x = st.dscalar("x")
    y = x
    n = 100_000
    for _ in range(n):
        y = st.sin(y)
    g = grad(y, x)
    t = Rop(y, x, st.dscalar("t"))
    assert g.owner is not None and t.owner is not None
    # value check on a shorter prefix of the same machinery
    z = x
    for _ in range(1000):
        z = st.sin(z)
    f = function([x], grad(z, x), mode="FAST_COMPILE")
    val, d = 0.5, 1.0
    for _ in range(1000):
        d *= np.cos(val)
        val = np.sin(val)
    np.testing.assert_allclose(f(0.5), d)


# -- non-differentiable ops, verify_grad ----------------------------------------------------------

class WrongGrad(Op):
    def make_node(self, x):
        x = st.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = inputs[0] ** 2

    def grad(self, inputs, output_grads):
        return [output_grads[0] * 3 * inputs[0]]  # wrong: should be 2x


def test_verify_grad_reports_wrong_rule():
    with pytest.raises(GradientError, match=r"pullback disagrees.*input 0.*analytic.*numeric"):
        verify_grad(lambda x: WrongGrad()(x), [rng.normal(size=3)])


def test_verify_grad_passes_good_rules():
    verify_grad(lambda x, y: st.exp(x) * st.sin(y), [rng.normal(size=(2, 3)), rng.normal(size=(2, 3))])
    verify_grad(lambda x: st.tanh(x) ** 2, [rng.normal(size=4).astype("float32")])


def test_null_gradient_error_names_op():
    class Opaque(Op):
        def make_node(self, x):
            x = st.as_tensor_variable(x)
            return Apply(self, [x], [x.type()])

        def perform(self, node, inputs, output_storage):
            output_storage[0][0] = inputs[0]

    x = st.dvector("x")
    with pytest.raises(NullTypeGradError, match="Opaque"):
        grad(Opaque()(x).sum(), x)


# -- construction: no SumTo where the shapes are provably equal ------------------------------------

def _op_names(outputs):
    from symgrad.graph.traversal import toposort

    return [type(n.op).__name__ for n in toposort(outputs if isinstance(outputs, list) else [outputs])]


def test_gradient_builds_no_sum_to_where_shapes_are_provably_equal():
    x = st.dvector("x")
    y = None
    for i in range(5):
        term = st.exp((0.5 + i) * x) * st.sin(0.1 * i + x)
        y = term if y is None else y + term
    g = grad(st.sum(y), x)
    names = _op_names(g)
    assert "SumTo" not in names and "Shape" not in names
    xv = rng.normal(size=4)
    want = sum((0.5 + i) * np.exp((0.5 + i) * xv) * np.sin(0.1 * i + xv)
               + np.exp((0.5 + i) * xv) * np.cos(0.1 * i + xv) for i in range(5))
    np.testing.assert_allclose(function([x], g, mode="FAST_COMPILE")(xv), want, rtol=1e-12)
    # slices trimmed alike (the Rosenbrock terms)
    r = st.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    assert "SumTo" not in _op_names(grad(r, x))


def test_gradient_keeps_sum_to_where_an_operand_may_broadcast():
    x, w = st.dvectors("x", "w")
    gx, gw = grad(st.sum(st.exp(x) * w), [x, w])
    assert "SumTo" in _op_names([gx, gw])
    f = function([x, w], [gx, gw], mode="FAST_COMPILE")
    a, b = rng.normal(size=3), rng.normal(size=1)  # w broadcasts
    got = f(a, b)
    np.testing.assert_allclose(got[0], np.exp(a) * b)
    np.testing.assert_allclose(got[1], [np.sum(np.exp(a))])
    got = f(b, a)  # x broadcasts
    np.testing.assert_allclose(got[0], [np.sum(np.exp(b) * a)])


def test_rop_builds_no_fill_where_the_tangent_has_the_shape():
    x, v = st.dvectors("x", "v")
    t = Rop(st.sin(x) * st.exp(x), x, v)
    from symgrad.graph.traversal import toposort

    assert "second" not in [str(n.op) for n in toposort([t])]
    xv, vv = rng.normal(size=3), rng.normal(size=3)
    np.testing.assert_allclose(function([x, v], t)(xv, vv),
                               (np.cos(xv) * np.exp(xv) + np.sin(xv) * np.exp(xv)) * vv)


def test_pullback_builds_nothing_for_operands_whose_gradient_is_not_needed():
    # The gradients of the constants in a*x and b+x would be reductions of a vector to a
    # scalar; grad wrt x alone must not build them (Elemwise.pullback takes ``needed``).
    from symgrad.graph.traversal import toposort
    from symgrad.tensor.reduction import Sum

    x = st.dvector("x")
    y = st.sum(st.exp(2.5 * x) * st.sin(0.3 + x))
    g = grad(y, x)
    assert not [n for n in toposort([g]) if isinstance(n.op, Sum) and n.outputs[0] is not y]
    xv = rng.uniform(-1, 1, 5)
    expected = np.exp(2.5 * xv) * (2.5 * np.sin(0.3 + xv) + np.cos(0.3 + xv))
    np.testing.assert_allclose(function([x], g)(xv), expected, rtol=1e-12)
    # both operands needed: both gradients, as before
    a = st.dscalar("a")
    ga, gx = grad(st.sum(a * x), [a, x])
    va, vx = function([a, x], [ga, gx])(2.0, xv)
    np.testing.assert_allclose(va, xv.sum())
    np.testing.assert_allclose(vx, np.full(5, 2.0))


def test_pullback_without_needed_keeps_its_old_signature():
    # an op whose pullback does not declare ``takes_needed`` is called as before
    class Twice(Op):
        def make_node(self, v):
            return Apply(self, [v], [v.type()])

        def perform(self, node, inputs, outputs):
            outputs[0][0] = 2 * inputs[0]

        def pullback(self, inputs, outputs, output_grads):
            return [2 * output_grads[0]]

    x = st.dvector("x")
    g = grad(st.sum(Twice()(x) * 3.0), x)
    np.testing.assert_allclose(function([x], g)(np.ones(3)), np.full(3, 6.0))


def test_a_sums_all_ones_cotangent_is_not_multiplied_in_where_shapes_are_provably_equal():
    # grad(sum(y)) starts from fill(y, 1); each term's pullback would build fill * d, which the
    # rewriter removes again: it is skipped where the shape analysis proves d has y's shape.
    from symgrad.graph.traversal import toposort
    from symgrad.tensor.elemwise import Elemwise

    x = st.dvector("x")
    y = st.exp(0.5 * x) * st.sin(0.1 + x)
    g = grad(st.sum(y), x)
    seconds = [n for n in toposort([g]) if isinstance(n.op, Elemwise)
               and n.op.scalar_op.name == "second"]
    assert not seconds
    xv = rng.uniform(-1, 1, 6)
    expected = np.exp(0.5 * xv) * (0.5 * np.sin(0.1 + xv) + np.cos(0.1 + xv))
    np.testing.assert_array_equal(function([x], g, mode="FAST_RUN")(xv),
                                  function([x], g, mode="FAST_COMPILE")(xv))
    np.testing.assert_allclose(function([x], g)(xv), expected, rtol=1e-12)


def test_all_ones_cotangent_keeps_its_shape_where_it_is_not_provably_the_operands():
    # x * y with y of runtime length 1: d/dx is y broadcast to x's shape, not y itself
    x, y = st.dvector("x"), st.dvector("y")
    gx, gy = grad(st.sum(x * y), [x, y])
    vx, vy = function([x, y], [gx, gy])(np.array([1.0, 2.0, 3.0]), np.array([2.0]))
    np.testing.assert_array_equal(vx, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(vy, [6.0])
