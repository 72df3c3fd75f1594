"""sort and argsort, and the gather/scatter-along-axis ops behind sort's derivative."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.gradient import grad, verify_grad
from symgrad.graph import ancestors, vectorize_graph
from symgrad.graph.vectorize import BatchLoop
from symgrad.tensor.sort import ArgSort, ScatterAlongAxis, Sort, TakeAlongAxis
from symgrad.tensor.type import TensorType
from tests.helpers import check_batching, check_static_shape, evaluate, rng


def _sample(shape, dtype, r):
    if dtype == "bool":
        return r.random(shape) > 0.5
    if dtype.startswith("int"):
        return r.integers(-50, 50, size=shape).astype(dtype)
    return r.normal(size=shape).astype(dtype)


def _run(fn, value, static=False, **kw):
    x = TensorType(value.dtype, value.shape if static else (None,) * value.ndim)("x")
    out = fn(x, **kw)
    got = evaluate(out, [x], [value])
    check_static_shape(out, got)
    return out, got


@pytest.mark.parametrize("axis", [-1, 0, 1, 2, None])
@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "int8", "bool"])
@pytest.mark.parametrize("shape", [(2, 3, 4), (3, 0, 2)])
def test_sort_and_argsort_values(axis, dtype, shape):
    value = _sample(shape, dtype, rng(0))
    for static in (False, True):
        out, got = _run(st.sort, value, static, axis=axis)
        np.testing.assert_array_equal(got, np.sort(value, axis=axis))
        assert out.dtype == dtype
        out, got = _run(st.argsort, value, static, axis=axis)
        assert out.dtype == "int64"
        if dtype.startswith("float"):  # no ties: the permutation is unique
            np.testing.assert_array_equal(got, np.argsort(value, axis=axis))
        else:
            np.testing.assert_array_equal(np.take_along_axis(value.ravel() if axis is None else value,
                                                             got, axis=-1 if axis is None else axis),
                                          np.sort(value, axis=axis))


def test_nan_sorts_last_and_methods():
    value = np.array([[3.0, np.nan, 1.0, -2.0], [np.nan, 0.0, np.nan, 5.0]])
    x = st.dmatrix("x")
    got = evaluate([x.sort(), x.argsort(), st.sort(x, axis=0), st.argsort(x, kind="stable")],
                   [x], [value])
    np.testing.assert_array_equal(got[0], np.sort(value))
    np.testing.assert_array_equal(got[1], np.argsort(value))
    np.testing.assert_array_equal(got[2], np.sort(value, axis=0))
    np.testing.assert_array_equal(got[3], np.argsort(value, kind="stable"))


@pytest.mark.parametrize("axis", [-1, 0, None])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sort_verify_grad(axis, dtype):
    value = rng(1).permutation(12).reshape(3, 4).astype(dtype) / 3
    verify_grad(lambda x: st.sort(x, axis=axis), [value])
    verify_grad(lambda x: st.sort(x, axis=axis)[..., :2] * 3.0, [value])


def test_sort_gradient_goes_back_to_original_positions():
    value = np.array([3.0, 1.0, 2.0])
    x = st.dvector("x")
    g = evaluate(grad((st.sort(x) * np.array([10.0, 20.0, 30.0])).sum(), x), [x], [value])
    np.testing.assert_array_equal(g, [30.0, 10.0, 20.0])
    # ties: each sorted slot's cotangent goes to exactly one of the tied elements
    g = evaluate(grad((st.sort(x) * np.array([10.0, 20.0, 30.0])).sum(), x), [x],
                 [np.array([1.0, 1.0, 0.0])])
    assert sorted(g) == [10.0, 20.0, 30.0] and g[2] == 10.0
    # second derivative of a sort is zero (piecewise linear)
    h = evaluate(symgrad.gradient.hessian((st.sort(x) ** 2 * np.array([1.0, 2, 3])).sum(), x),
                 [x], [value])
    np.testing.assert_allclose(h, np.diag([6.0, 2.0, 4.0]))


def test_argsort_is_not_differentiable_but_usable():
    x = st.dvector("x")
    idx = st.argsort(x)
    assert idx.dtype == "int64"
    cost = (x * st.cast(idx, "float64")).sum()
    g = evaluate(grad(cost, x), [x], [np.array([3.0, 1.0, 2.0])])
    np.testing.assert_array_equal(g, [1.0, 2.0, 0.0])  # argsort contributes nothing
    t = st.dvector("t")
    jvp = symgrad.gradient.Rop(idx, x, t)
    np.testing.assert_array_equal(evaluate(jvp, [x, t], [np.ones(3), np.ones(3)]), np.zeros(3))


@pytest.mark.parametrize("op", [st.sort, st.argsort])
@pytest.mark.parametrize("axis", [-1, 0, None])
def test_batching(op, axis):
    check_batching(lambda x: op(x, axis=axis), [rng(2).normal(size=(3, 4))])
    core = st.dmatrix("c")
    vec = vectorize_graph(op(core, axis=axis), {core: st.dtensor3("b")})
    assert not any(v.owner is not None and isinstance(v.owner.op, BatchLoop)
                   for v in ancestors([vec]))


def test_jacobian_of_sort():
    v = np.array([0.5, -1.0, 2.0, 0.1])
    x = st.dvector("x")
    jac = evaluate(symgrad.gradient.jacobian(st.sort(x), x), [x], [v])
    np.testing.assert_array_equal(jac, np.eye(4)[np.argsort(v)])


# -- gather / scatter along an axis ----------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1])
def test_take_along_axis(axis):
    r = rng(3)
    value = r.normal(size=(3, 4))
    idx = r.integers(-3, 3, size=(5, 4) if axis == 0 else (3, 6))
    x, i = st.dmatrix("x"), st.lmatrix("i")
    out = TakeAlongAxis(axis)(x, i)
    got = evaluate(out, [x, i], [value, idx])
    np.testing.assert_array_equal(got, np.take_along_axis(value, idx, axis=axis))
    check_static_shape(out, got)
    verify_grad(lambda x: TakeAlongAxis(axis)(x, idx), [value])  # repeated indices add up
    verify_grad(lambda x: TakeAlongAxis(axis)(x, idx), [value.astype("float32")])
    check_batching(lambda x, i: TakeAlongAxis(axis)(x, i), [value, idx])


def test_take_along_axis_broadcasts_and_batches_mixed():
    r = rng(4)
    value = r.normal(size=(1, 5))
    idx = r.integers(0, 5, size=(3, 2))
    x = st.tensor("x", dtype="float64", shape=(1, None))
    out = TakeAlongAxis(1)(x, idx)
    assert out.type.shape == (3, 2)
    verify_grad(lambda x: TakeAlongAxis(1)(x, idx), [value])
    core_x, core_i = st.dvector("x"), st.lvector("i")
    xs, is_ = st.dmatrix("xs"), st.lmatrix("is")
    xv, iv = r.normal(size=(4, 6)), r.integers(0, 6, size=(4, 3))
    for rep, vals, ins in [({core_x: xs}, [xv, iv[0]], [xs, core_i]),
                           ({core_i: is_}, [xv[0], iv], [core_x, is_])]:
        vec = vectorize_graph(TakeAlongAxis(0)(core_x, core_i), rep)
        got = evaluate(vec, ins, vals)
        want = np.stack([np.take_along_axis(xv[k] if core_x in rep else xv[0],
                                            iv[k] if core_i in rep else iv[0], 0)
                         for k in range(4)])
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("unique", [False, True])
def test_scatter_along_axis(unique):
    r = rng(5)
    like = np.zeros((3, 4))
    idx = np.stack([r.permutation(4) for _ in range(3)]) if unique else r.integers(0, 4, (3, 6))
    vals = r.normal(size=idx.shape)
    l, i, v = st.dmatrix("l"), st.lmatrix("i"), st.dmatrix("v")
    out = ScatterAlongAxis(1, unique)(l, i, v)
    got = evaluate(out, [l, i, v], [like, idx, vals])
    want = np.zeros((3, 4))
    for a in range(idx.shape[0]):
        for b in range(idx.shape[1]):
            want[a, idx[a, b]] += vals[a, b]
    np.testing.assert_allclose(got, want)
    verify_grad(lambda v: ScatterAlongAxis(1, unique)(like, idx, v), [vals])
    check_batching(lambda l, i, v: ScatterAlongAxis(1, unique)(l, i, v), [like, idx, vals])


def test_errors():
    x = st.dmatrix("x")
    with pytest.raises(ValueError, match="axis 2 .*dimension 2"):
        st.sort(x, axis=2)
    with pytest.raises(ValueError, match="axis -3 .*dimension 2"):
        st.argsort(x, axis=-3)
    with pytest.raises(ValueError, match="out of range"):
        Sort(0)(st.dscalar("s"))
    with pytest.raises(TypeError, match="integers"):
        TakeAlongAxis(0)(x, st.dmatrix("f"))
    assert ArgSort(0, "stable") != ArgSort(0, "quicksort")
    s = st.dscalar("s")
    np.testing.assert_array_equal(evaluate(st.sort(s, axis=None), [s], [np.array(2.0)]), [2.0])
