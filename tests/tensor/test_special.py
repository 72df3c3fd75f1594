"""softmax, log_softmax and logsumexp: values against scipy, stability, derivatives,
batching, PyTensor's import paths."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sps

import symgrad
import symgrad.tensor as st
from symgrad.gradient import grad, hessian, verify_grad
from symgrad.tensor import special
from symgrad.tensor.type import TensorType
from tests.helpers import check_batching, check_static_shape, evaluate, rng

FUNCS = {"softmax": (special.softmax, sps.softmax), "log_softmax": (special.log_softmax,
                                                                     sps.log_softmax)}
AXES = [-1, 0, 1, None, (0, 2)]


def _run(fn, value, static=False, **kw):
    x = TensorType(value.dtype, value.shape if static else (None,) * value.ndim)("x")
    out = fn(x, **kw)
    got = evaluate(out, [x], [value])
    check_static_shape(out, got)
    return out, got


@pytest.mark.parametrize("name", list(FUNCS))
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_values(name, axis, dtype):
    fn, ref = FUNCS[name]
    value = rng(0).normal(size=(2, 3, 4)).astype(dtype)
    for static in (False, True):
        out, got = _run(fn, value, static, axis=axis)
        assert out.dtype == dtype
        np.testing.assert_allclose(got, ref(value.astype("float64"), axis=axis),
                                   rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)


@pytest.mark.parametrize("name", list(FUNCS))
def test_int_input_and_empty(name):
    fn, ref = FUNCS[name]
    out, got = _run(fn, np.array([[1, 2, 3]], dtype="int64"))
    assert out.dtype == "float64"
    np.testing.assert_allclose(got, ref(np.array([[1.0, 2, 3]]), axis=-1))
    _, got = _run(fn, np.zeros((0, 3)))
    assert got.shape == (0, 3)
    _, got = _run(fn, np.zeros((3, 0)))
    assert got.shape == (3, 0)


@pytest.mark.parametrize("name", list(FUNCS))
def test_stable_at_large_inputs(name):
    fn, ref = FUNCS[name]
    value = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1001.0, -999.0]])
    _, got = _run(fn, value)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref(value, axis=-1))
    x = st.dmatrix("x")
    g = evaluate(grad((fn(x) * np.arange(6.0).reshape(2, 3)).sum(), x), [x], [value])
    assert np.isfinite(g).all()
    _, got = _run(fn, np.array([-np.inf, 0.0, 1.0]))
    np.testing.assert_allclose(got, ref(np.array([-np.inf, 0.0, 1.0])))


@pytest.mark.parametrize("name", list(FUNCS))
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_verify_grad(name, axis, dtype):
    fn = FUNCS[name][0]
    value = rng(1).normal(size=(2, 3, 4)).astype(dtype)
    verify_grad(lambda x: fn(x, axis=axis), [value])


@pytest.mark.parametrize("name", list(FUNCS))
def test_second_derivatives(name):
    fn, ref = FUNCS[name]
    v = np.array([0.3, -1.0, 2.0])
    x = st.dvector("x")
    w = np.array([1.0, -2.0, 0.5])
    h = evaluate(hessian((fn(x) * w).sum(), x), [x], [v])
    f = symgrad.function([x], grad((fn(x) * w).sum(), x))
    eps = 1e-6
    fd = np.stack([(f(v + eps * e) - f(v - eps * e)) / (2 * eps) for e in np.eye(3)])
    np.testing.assert_allclose(h, fd, atol=1e-6)
    verify_grad(lambda x: grad((fn(x) * w).sum(), x), [v])


@pytest.mark.parametrize("name", list(FUNCS))
@pytest.mark.parametrize("axis", [-1, 0, None])
def test_batching(name, axis):
    fn = FUNCS[name][0]
    check_batching(lambda x: fn(x, axis=axis), [rng(2).normal(size=(3, 4))])
    check_batching(lambda x: st.logsumexp(x, axis=axis), [rng(2).normal(size=(3, 4))])


def test_jacobian_of_softmax():
    v = np.array([0.1, 0.5, -0.3])
    x = st.dvector("x")
    jac = evaluate(symgrad.gradient.jacobian(special.softmax(x), x), [x], [v])
    s = sps.softmax(v)
    np.testing.assert_allclose(jac, np.diag(s) - np.outer(s, s))
    jac = evaluate(symgrad.gradient.jacobian(special.log_softmax(x), x), [x], [v])
    np.testing.assert_allclose(jac, np.eye(3) - s[None, :])


def test_paths_and_reexport():
    from symgrad.tensor.reduction import logsumexp

    assert special.logsumexp is logsumexp
    assert st.softmax is special.softmax and st.log_softmax is special.log_softmax
    assert set(special.__all__) == {"softmax", "log_softmax", "logsumexp"}
    x = st.dvector("x")
    np.testing.assert_allclose(evaluate(special.logsumexp(x), [x], [np.array([1.0, 2.0])]),
                               sps.logsumexp([1.0, 2.0]))


def test_axis_errors():
    x = st.dmatrix("x")
    with pytest.raises(ValueError, match="axis 2 .*dimension 2"):
        special.softmax(x, axis=2)
    with pytest.raises(ValueError, match="axis -3 .*dimension 2"):
        special.log_softmax(x, axis=-3)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int64", "bool"])
def test_discrete_inputs_give_float64(dtype):
    value = np.array([[0, 1, 1], [1, 0, 1]], dtype=dtype)
    for fn, ref in [(special.softmax, sps.softmax), (special.log_softmax, sps.log_softmax),
                    (special.logsumexp, sps.logsumexp)]:
        out, got = _run(fn, value, axis=-1)
        assert out.dtype == "float64"
        np.testing.assert_allclose(got, ref(value.astype("float64"), axis=-1))
