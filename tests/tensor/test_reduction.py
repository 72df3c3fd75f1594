"""Reductions (sum, prod, mean, var, std, max, min, argmax, argmin, any, all, logsumexp)
and the cumulative ops (cumsum, cumprod) they rely on.

Table-driven: every op x axis x keepdims x dtype against numpy, static shapes,
verify_grad (float64 and float32), batching, and the cases where PyTensor is wrong:
NaN in max/min, empty max/min, subgradients at ties, prod's derivatives with zeros,
logsumexp's gradient at large inputs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.special as sps

import symgrad
import symgrad.tensor as st
from symgrad.backends.python import OpRuntimeError
from symgrad.gradient import grad, hessian, verify_grad
from symgrad.graph import vectorize_graph
from symgrad.graph.vectorize import BatchLoop
from symgrad.tensor.extra_ops import CumOp, LinearRecurrence, Shift
from symgrad.tensor.type import TensorType
from tests.helpers import check_batching, check_static_shape, evaluate, rng


def _logsumexp(x, axis, keepdims):
    if x.size == 0:  # scipy fails on some empty inputs
        return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    return sps.logsumexp(x, axis=axis, keepdims=keepdims)


# name -> (symgrad function, numpy reference (x, axis, keepdims) -> value, differentiable)
OPS = {
    "sum": (st.sum, lambda x, a, k: np.sum(x, axis=a, keepdims=k), True),
    "prod": (st.prod, lambda x, a, k: np.prod(x, axis=a, keepdims=k), True),
    "mean": (st.mean, lambda x, a, k: np.mean(x, axis=a, keepdims=k), True),
    "var": (st.var, lambda x, a, k: np.var(x, axis=a, keepdims=k), True),
    "std": (st.std, lambda x, a, k: np.std(x, axis=a, keepdims=k), True),
    "max": (st.max, lambda x, a, k: np.max(x, axis=a, keepdims=k), True),
    "min": (st.min, lambda x, a, k: np.min(x, axis=a, keepdims=k), True),
    "any": (st.any, lambda x, a, k: np.any(x, axis=a, keepdims=k), False),
    "all": (st.all, lambda x, a, k: np.all(x, axis=a, keepdims=k), False),
    "logsumexp": (st.logsumexp, lambda x, a, k: _logsumexp(x, a, k), True),
}
ARG_OPS = {"argmax": (st.argmax, np.argmax), "argmin": (st.argmin, np.argmin)}
AXES = [None, 0, 1, -1, (0, 2), (2, 0), (0, 1, 2), ()]
DTYPES = ["float64", "float32", "int64", "int8", "uint8", "bool"]


def _sample(shape, dtype, r):
    if dtype == "bool":
        return r.random(shape) > 0.5
    if dtype.startswith(("int", "uint")):
        return r.integers(0 if dtype.startswith("u") else -3, 4, size=shape).astype(dtype)
    return r.normal(size=shape).astype(dtype)


def _run(fn, value, static=False, **kw):
    x = TensorType(value.dtype, value.shape if static else (None,) * value.ndim)("x")
    out = fn(x, **kw)
    got = evaluate(out, [x], [value])
    check_static_shape(out, got)
    return out, got


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_values_against_numpy(name, axis, keepdims):
    fn, ref, _ = OPS[name]
    value = _sample((2, 3, 4), "float64", rng(1))
    for static in (False, True):
        out, got = _run(fn, value, static, axis=axis, keepdims=keepdims)
        want = ref(value, axis, keepdims)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        assert got.shape == np.shape(want)
        assert out.dtype == np.asarray(want).dtype.name


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [None, 1, (0, 1)])
def test_dtypes_follow_numpy(name, dtype, axis):
    fn, ref, _ = OPS[name]
    value = _sample((3, 4), dtype, rng(2))
    out, got = _run(fn, value, axis=axis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = np.asarray(ref(value, axis, False))
    assert out.dtype == want.dtype.name, (out.dtype, want.dtype)
    rtol = 1e-5 if "float32" in (dtype, want.dtype.name) else 1e-12
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def test_sum_accumulator_dtype():
    x = st.tensor("x", dtype="int8", shape=(None,))
    value = np.full(300, 100, dtype="int8")
    assert st.sum(x).dtype == "int64" and st.prod(x).dtype == "int64"
    assert st.sum(st.tensor("u", dtype="uint8", shape=(None,))).dtype == "uint64"
    assert st.sum(st.tensor("b", dtype="bool", shape=(None,))).dtype == "int64"
    assert evaluate(st.sum(x), [x], [value]) == 30000  # no int8 overflow
    assert st.sum(x, dtype="float32").dtype == "float32"
    assert st.sum(st.fvector("f")).dtype == "float32"
    np.testing.assert_allclose(evaluate(st.sum(x, dtype="float32"), [x], [value]), 30000.0)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "int64", "bool"])
def test_arg_reductions(name, axis, keepdims, dtype):
    fn, ref = ARG_OPS[name]
    value = _sample((3, 4, 2), dtype, rng(3))
    out, got = _run(fn, value, axis=axis, keepdims=keepdims)
    np.testing.assert_array_equal(got, ref(value, axis=axis, keepdims=keepdims))
    assert out.dtype == "int64"


def test_argmax_several_axes_flatten_in_order():
    value = rng(4).normal(size=(3, 4, 5))
    out, got = _run(st.argmax, value, axis=(0, 2))
    want = value.transpose(1, 0, 2).reshape(4, -1).argmax(-1)
    np.testing.assert_array_equal(got, want)
    _, got = _run(st.argmin, value, axis=(1, 2), keepdims=True)
    np.testing.assert_array_equal(got, value.reshape(3, -1).argmin(-1).reshape(3, 1, 1))


def test_max_and_argmax():
    x = st.dmatrix("x")
    value = rng(5).normal(size=(3, 4))
    m, a = st.max_and_argmax(x, axis=1)
    got = evaluate([m, a], [x], [value])
    np.testing.assert_array_equal(got[0], value.max(1))
    np.testing.assert_array_equal(got[1], value.argmax(1))


@pytest.mark.parametrize("name", ["sum", "prod", "mean", "any", "all", "logsumexp", "var"])
@pytest.mark.parametrize("shape,axis", [((0,), None), ((0, 3), 0), ((0, 3), 1), ((2, 0), 1),
                                        ((2, 0), None)])
def test_empty_inputs(name, shape, axis):
    fn, ref, _ = OPS[name]
    value = np.zeros(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = np.asarray(ref(value, axis, False))
        for static in (False, True):
            out, got = _run(fn, value, static, axis=axis)
            np.testing.assert_allclose(got, want)
            assert got.shape == want.shape


@pytest.mark.parametrize("fn", [st.max, st.min, st.argmax, st.argmin])
def test_empty_max_raises_like_numpy(fn):
    value = np.zeros((0, 3))
    x = st.dmatrix("x")
    with pytest.raises(OpRuntimeError, match="empty|zero-size"):
        evaluate(fn(x, axis=0), [x], [value])
    with pytest.raises(OpRuntimeError, match="empty|zero-size"):
        evaluate(fn(x), [x], [value])
    # reducing a non-empty axis of an empty array is fine, as in numpy
    got = evaluate(fn(x, axis=1), [x], [value])
    assert got.shape == (0,)
    # statically known: the error comes when the graph is built
    xs = st.tensor("xs", dtype="float64", shape=(0, 3))
    with pytest.raises(ValueError, match="zero-size array"):
        fn(xs, axis=0)


@pytest.mark.parametrize("fn,ref", [(st.max, np.max), (st.min, np.min)])
def test_max_min_propagate_nan(fn, ref):
    value = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, -1.0]])
    for axis in (None, 0, 1):
        _, got = _run(fn, value, axis=axis)
        np.testing.assert_array_equal(got, ref(value, axis=axis))
    x = st.dvector("x")
    assert np.isnan(evaluate(fn(x), [x], [np.array([np.nan, 1.0])]))
    assert np.isnan(evaluate(fn(x), [x], [np.array([1.0, np.nan])]))


@pytest.mark.parametrize("fn,ref", [(st.argmax, np.argmax), (st.argmin, np.argmin)])
def test_argmax_nan_first(fn, ref):
    value = np.array([1.0, 5.0, np.nan, 7.0, np.nan])
    _, got = _run(fn, value)
    assert got == ref(value) == 2


@pytest.mark.parametrize("fn", [st.max, st.min])
def test_tie_gradient_is_a_subgradient(fn):
    value = np.array([[2.0, 2.0, 1.0, 2.0], [0.0, 3.0, 3.0, -1.0], [5.0, 5.0, 5.0, 5.0]])
    if fn is st.min:
        value = -value
    x = st.dmatrix("x")
    g = evaluate(grad(fn(x, axis=1).sum(), x), [x], [value])
    want = np.array([[1 / 3, 1 / 3, 0, 1 / 3], [0, 0.5, 0.5, 0], [0.25] * 4])
    np.testing.assert_allclose(g, want)
    assert (g >= 0).all()
    np.testing.assert_allclose(g.sum(axis=1), 1.0)
    # over everything: the four tied maxima of the whole matrix share the gradient
    g = evaluate(grad(fn(x), x), [x], [value])
    np.testing.assert_allclose(g, (value == (value.max() if fn is st.max else value.min())) / 4)
    # the pushforward agrees (average of the tied tangents)
    t = st.dmatrix("t")
    jvp = symgrad.gradient.Rop(fn(x, axis=1), x, t)
    tv = rng(6).normal(size=value.shape)
    np.testing.assert_allclose(evaluate(jvp, [x, t], [value, tv]), (want * tv).sum(1))


def _prod_hessian(v):
    n = v.size
    h = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                h[i, j] = np.prod(np.delete(v, [i, j]))
    return h


@pytest.mark.parametrize("value", [
    [1.5, 2.0, 0.0, 3.0], [0.0, 2.0, 0.0, 3.0], [0.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0],
    [0.7, -1.2, 2.0, 0.5], [0.0], [2.5],
])
def test_prod_gradient_and_hessian_with_zeros(value):
    v = np.array(value)
    x = st.dvector("x")
    g, h = evaluate([grad(st.prod(x), x), hessian(st.prod(x), x)], [x], [v])
    np.testing.assert_allclose(g, [np.prod(np.delete(v, i)) for i in range(v.size)])
    np.testing.assert_allclose(h, _prod_hessian(v), atol=1e-12)
    # and against finite differences of the analytic gradient
    f_g = symgrad.function([x], grad(st.prod(x), x))
    eps = 1e-6
    fd = np.stack([(f_g(v + eps * e) - f_g(v - eps * e)) / (2 * eps) for e in np.eye(v.size)])
    np.testing.assert_allclose(h, fd, atol=1e-6)
    verify_grad(st.prod, [v])
    verify_grad(lambda x: grad(st.prod(x), x), [v])


@pytest.mark.parametrize("axis", [0, 1, (0, 1), None])
def test_prod_matrix_zeros_second_order(axis):
    v = np.array([[0.0, 2.0, -1.5], [1.2, 0.0, 0.0], [0.7, 1.1, 2.0]])
    verify_grad(lambda x: st.prod(x, axis=axis), [v])
    verify_grad(lambda x: grad(st.prod(x, axis=axis).sum(), x), [v])
    x = st.dmatrix("x")
    hv = st.dmatrix("hv")
    g = grad(st.prod(x, axis=axis).sum(), x)
    hvp = grad((g * hv).sum(), x)
    f = symgrad.function([x, hv], hvp)
    direction = rng(7).normal(size=v.shape)
    f_g = symgrad.function([x], g)
    eps = 1e-6
    fd = (f_g(v + eps * direction) - f_g(v - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(f(v, direction), fd, atol=1e-6)


@pytest.mark.parametrize("name", [n for n, (_, _, d) in OPS.items() if d])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_verify_grad(name, axis, dtype, keepdims):
    fn = OPS[name][0]
    value = rng(8).normal(size=(2, 3, 4)).astype(dtype)
    if name in ("max", "min"):
        value = rng(8).permutation(24).reshape(2, 3, 4).astype(dtype) / 4  # no ties
    if name == "prod":
        value = rng(8).uniform(0.5, 1.5, size=(2, 3, 4)).astype(dtype) * np.sign(value)
    verify_grad(lambda x: fn(x, axis=axis, keepdims=keepdims), [value])


@pytest.mark.parametrize("fn", [st.var, st.std])
@pytest.mark.parametrize("ddof", [0, 1, 2])
@pytest.mark.parametrize("axis", [None, 0, (0, 1)])
def test_var_std_ddof(fn, ddof, axis):
    value = rng(9).normal(size=(4, 5))
    ref = np.var if fn is st.var else np.std
    _, got = _run(fn, value, axis=axis, ddof=ddof)
    np.testing.assert_allclose(got, ref(value, axis=axis, ddof=ddof))
    _, got = _run(fn, value, static=True, axis=axis, ddof=ddof, keepdims=True)
    np.testing.assert_allclose(got, ref(value, axis=axis, ddof=ddof, keepdims=True))
    verify_grad(lambda x: fn(x, axis=axis, ddof=ddof), [value])
    verify_grad(lambda x: fn(x, axis=axis, ddof=ddof), [value.astype("float32")])


def test_mean_dtype_argument_and_ints():
    x = st.lvector("x")
    value = np.array([1, 2, 4])
    out, got = _run(st.mean, value)
    assert out.dtype == "float64" and got == pytest.approx(7 / 3)
    out = st.mean(x, dtype="float32")
    assert out.dtype == "float32"
    np.testing.assert_allclose(evaluate(out, [x], [value]), np.mean(value, dtype="float32"))
    f = st.fvector("f")
    assert st.mean(f).dtype == "float32" and st.var(f).dtype == "float32"
    h = st.tensor("h", dtype="float16", shape=(None,))
    assert st.mean(h).dtype == "float16" and st.var(h).dtype == "float16"


def test_logsumexp_stable_and_gradient_finite():
    x = st.dvector("x")
    big = np.array([1.0, 2.0, 3.0])
    out = st.logsumexp(100 * x + 700)
    g = evaluate(grad(out, x), [x], [big])
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, 100 * sps.softmax(100 * big + 700))
    np.testing.assert_allclose(evaluate(out, [x], [big]), sps.logsumexp(100 * big + 700))
    g = evaluate(grad(0.7 * st.logsumexp(x), x), [x], [np.array([1000.0, 2.0, -1000.0])])
    np.testing.assert_allclose(g, [0.7, 0.0, 0.0])
    h = evaluate(hessian(st.logsumexp(x), x), [x], [np.array([800.0, 800.0])])
    np.testing.assert_allclose(h, [[0.25, -0.25], [-0.25, 0.25]])
    vals = evaluate(st.logsumexp(x), [x], [np.array([-np.inf, -np.inf])])
    assert vals == -np.inf
    assert evaluate(st.logsumexp(x), [x], [np.array([np.inf, 1.0])]) == np.inf
    assert np.isnan(evaluate(st.logsumexp(x), [x], [np.array([np.nan, 1.0])]))
    verify_grad(lambda x: st.logsumexp(100 * x + 700, axis=0), [big])


@pytest.mark.parametrize("name", list(OPS) + list(ARG_OPS))
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 1)])
def test_batching(name, axis):
    fn = OPS[name][0] if name in OPS else ARG_OPS[name][0]
    value = rng(10).normal(size=(3, 4))
    if name in ("any", "all"):
        value = value > 0
    got = check_batching(lambda x: fn(x, axis=axis), [value])
    core = st.dmatrix("c") if value.dtype != bool else st.matrix("c", dtype="bool")
    vec = vectorize_graph(fn(core, axis=axis), {core: TensorType(core.dtype, (None,) * 3)()})
    assert not any(isinstance(v.owner.op, BatchLoop) for v in symgrad.graph.ancestors([vec])
                   if v.owner is not None)
    assert got.shape[0] == 3


def test_batching_keepdims_and_dtype():
    check_batching(lambda x: st.sum(x, axis=1, keepdims=True), [np.ones((2, 3))])
    check_batching(lambda x: st.mean(x, axis=0, keepdims=True), [np.arange(6.0).reshape(2, 3)])
    check_batching(lambda x: st.var(x, axis=1, ddof=1), [rng(0).normal(size=(2, 3))])
    check_batching(lambda x: st.sum(x), [np.arange(6, dtype="int8")])


def test_gradient_of_batched_reduction():
    """jacobian and hessian run the pullback graphs through the batching rules."""
    x = st.dvector("x")
    v = np.array([0.3, -1.2, 2.0])
    jac = symgrad.gradient.jacobian(st.softmax(x) * st.max(x), x)
    fd = np.stack([(sps.softmax(v + 1e-6 * e) * np.max(v + 1e-6 * e)
                    - sps.softmax(v - 1e-6 * e) * np.max(v - 1e-6 * e)) / 2e-6
                   for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(evaluate(jac, [x], [v]), fd, atol=1e-6)
    h = hessian(st.logsumexp(x) + st.var(x) + st.prod(x), x)
    s = sps.softmax(v)
    want = np.diag(s) - np.outer(s, s) + 2 / 3 * (np.eye(3) - 1 / 3) + _prod_hessian(v)
    np.testing.assert_allclose(evaluate(h, [x], [v]), want, atol=1e-10)


# -- errors and signatures -------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [st.sum, st.prod, st.max, st.mean, st.var, st.argmax, st.any,
                                st.logsumexp])
def test_axis_out_of_range_names_axis_and_ndim(fn):
    x = st.dmatrix("x")
    with pytest.raises(ValueError, match=r"axis 2 .*dimension 2"):
        fn(x, axis=2)
    with pytest.raises(ValueError, match=r"axis -3 .*dimension 2"):
        fn(x, axis=-3)
    with pytest.raises(np.exceptions.AxisError):
        fn(x, axis=(0, 5))


def test_axis_errors():
    x = st.dmatrix("x")
    with pytest.raises(ValueError, match="duplicate"):
        st.sum(x, axis=(0, -2))
    with pytest.raises(TypeError, match="axis must be"):
        st.sum(x, axis=1.5)
    assert st.sum(x, axis=st.constant(1)).ndim == 1


def test_methods_and_keywords():
    x = st.dtensor3("x")
    value = rng(11).normal(size=(2, 3, 4))
    outs = [x.sum(axis=(0, 2), keepdims=True), x.prod(axis=1), x.mean(axis=-1), x.var(ddof=1),
            x.std(axis=0, keepdims=True), x.max(axis=(1,)), x.min(), x.argmax(axis=1),
            x.argmin(axis=2, keepdims=True), (x > 0).any(axis=0), (x > 0).all(), x.cumsum(axis=1),
            x.cumprod(axis=2)]
    wants = [value.sum(axis=(0, 2), keepdims=True), value.prod(axis=1), value.mean(axis=-1),
             value.var(ddof=1), value.std(axis=0, keepdims=True), value.max(axis=(1,)),
             value.min(), value.argmax(axis=1), value.argmin(axis=2, keepdims=True),
             (value > 0).any(axis=0), (value > 0).all(), value.cumsum(axis=1),
             value.cumprod(axis=2)]
    for got, want, out in zip(evaluate(outs, [x], [value]), wants, outs):
        np.testing.assert_allclose(got, want)
        check_static_shape(out, got)
    assert st.sum(x, 0, "float32", True).type.shape == (1, None, None)


def test_size_property_uses_prod_of_shape():
    x = st.dmatrix("x")
    assert evaluate(x.size, [x], [np.zeros((3, 4))]) == 12


def test_static_shapes_precise():
    x = st.tensor("x", dtype="float64", shape=(2, None, 4))
    assert st.sum(x, axis=1).type.shape == (2, 4)
    assert st.max(x, axis=(0, 2), keepdims=True).type.shape == (1, None, 1)
    assert st.mean(x, axis=-1).type.shape == (2, None)
    assert st.argmax(x).type.shape == ()
    assert st.argmax(x, keepdims=True).type.shape == (1, 1, 1)
    assert st.cumsum(x, axis=1).type.shape == (2, None, 4)


# -- cumulative ops ----------------------------------------------------------------------------

CUM = {"cumsum": (st.cumsum, np.cumsum), "cumprod": (st.cumprod, np.cumprod)}


@pytest.mark.parametrize("name", list(CUM))
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("dtype", ["float64", "float32", "int8", "bool"])
def test_cumulative_values(name, axis, dtype):
    fn, ref = CUM[name]
    value = _sample((3, 4), dtype, rng(12))
    for static in (False, True):
        out, got = _run(fn, value, static, axis=axis)
        want = ref(value, axis=axis)
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert out.dtype == want.dtype.name


@pytest.mark.parametrize("name", list(CUM))
@pytest.mark.parametrize("axis", [None, 0, 1])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cumulative_grad(name, axis, dtype):
    value = rng(13).uniform(0.5, 1.5, size=(3, 4)).astype(dtype)
    verify_grad(lambda x: CUM[name][0](x, axis=axis), [value])


@pytest.mark.parametrize("value", [[1.5, 0.0, 2.0, -1.0], [0.0, 0.0, 2.0, 3.0], [2.0, 3.0, 0.5, 0.0]])
def test_cumprod_derivatives_with_zeros(value):
    v = np.array(value)
    verify_grad(st.cumprod, [v])
    verify_grad(lambda x: grad((st.cumprod(x) * np.arange(1.0, 5.0)).sum(), x), [v])


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("mode", ["add", "mul"])
def test_cumop_reverse(mode, reverse):
    value = rng(14).uniform(0.5, 1.5, size=(3, 5))
    x = st.dmatrix("x")
    got = evaluate(CumOp(mode, 1, reverse)(x), [x], [value])
    fn = np.cumsum if mode == "add" else np.cumprod
    want = np.flip(fn(np.flip(value, 1), 1), 1) if reverse else fn(value, 1)
    np.testing.assert_allclose(got, want)
    verify_grad(lambda x: CumOp(mode, 1, reverse)(x), [value])
    check_batching(lambda x: CumOp(mode, 0, reverse)(x), [value])


@pytest.mark.parametrize("n", [5, 40, 100])
@pytest.mark.parametrize("reverse", [False, True])
def test_linear_recurrence(n, reverse):
    r = rng(15)
    a, b = r.uniform(-1.1, 1.1, size=(2, n)), r.normal(size=(2, n))
    a[0, n // 3] = 0.0
    want = np.zeros_like(b)
    order = range(n - 1, -1, -1) if reverse else range(n)
    prev = np.zeros(2)
    for i in order:
        prev = a[:, i] * prev + b[:, i]
        want[:, i] = prev
    A, B = st.dmatrix("a"), st.dmatrix("b")
    np.testing.assert_allclose(evaluate(LinearRecurrence(1, reverse)(A, B), [A, B], [a, b]), want,
                               rtol=1e-9, atol=1e-12)
    if n <= 40:
        verify_grad(lambda a, b: LinearRecurrence(1, reverse)(a, b), [a, b])
        verify_grad(lambda a, b: LinearRecurrence(1, reverse)(a, b), [a.astype("float32"),
                                                                     b.astype("float32")])
    check_batching(lambda a, b: LinearRecurrence(0, reverse)(a, b), [a[0], b[0]])


@pytest.mark.parametrize("offset", [-2, -1, 1, 3, 7])
def test_shift(offset):
    value = np.arange(12.0).reshape(3, 4)
    x = st.dmatrix("x")
    got = evaluate(Shift(1, offset, 9)(x), [x], [value])
    want = np.full_like(value, 9.0)
    for i in range(4):
        if 0 <= i - offset < 4:
            want[:, i] = value[:, i - offset]
    np.testing.assert_array_equal(got, want)
    verify_grad(lambda x: Shift(1, offset, 9)(x), [value])
    check_batching(lambda x: Shift(0, offset)(x), [value[0]])


def test_cumulative_batching():
    check_batching(lambda x: st.cumsum(x, axis=1), [np.ones((2, 3))])
    check_batching(lambda x: st.cumprod(x, axis=0), [rng(0).normal(size=(2, 3))])


def test_cumsum_axis_errors():
    x = st.dmatrix("x")
    with pytest.raises(ValueError, match="axis 2 .*dimension 2"):
        st.cumsum(x, axis=2)
    v = st.dvector("v")
    np.testing.assert_allclose(evaluate(st.extra_ops.diff(v), [v], [np.array([1.0, 4.0, 9.0])]),
                               [3.0, 5.0])


def test_infer_shape():
    x = st.dtensor3("x")
    node = st.sum(x, axis=(0, 2), keepdims=True).owner
    assert node.op.infer_shape(node, [["a", "b", "c"]]) == [(1, "b", 1)]
    node = st.max(x, axis=1).owner
    assert node.op.infer_shape(node, [["a", "b", "c"]]) == [("a", "c")]
    node = st.cumsum(x, axis=1).owner
    assert node.op.infer_shape(node, [["a", "b", "c"]]) == [["a", "b", "c"]]
    node = st.dot(st.dmatrix("a"), st.dvector("v")).owner
    assert node.op.infer_shape(node, [["n", "m"], ["m"]]) == [["n"]]
