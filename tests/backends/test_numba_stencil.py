"""StencilSum under the numba backend: increments into shifted slices as one loop.

Every test compares mode="NUMBA" with the default backend on random inputs, and checks
that the rewrite made the op (so the kernel, not numpy, computed the result).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("numba", reason="numba is not installed (pip install symgrad[numba])")

import symgrad  # noqa: E402
import symgrad.tensor as st  # noqa: E402
from symgrad.gradient import Rop  # noqa: E402
from symgrad.tensor.rewriting.stencil import MAX_TERMS, StencilSum  # noqa: E402


@pytest.fixture(autouse=True)
def _kernels_for_small_arrays(monkeypatch):
    monkeypatch.setattr("symgrad.backends.numba.KERNEL_MIN_SIZE", 0)


def _numba(inputs, outputs, mode="NUMBA", **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=symgrad.backends.numba.NumbaFallbackWarning)
        return symgrad.function(inputs, outputs, mode=mode, **kwargs)


def _stencils(f):
    return [n for n in f.maker.fgraph.toposort() if isinstance(n.op, StencilSum)]


def _runners(f):
    from symgrad.backends.numba.stencil import StencilRunner

    return [k for k in f.executable._fn.__globals__.values() if isinstance(k, StencilRunner)]


def _check(inputs, output, values, n_stencils=1, rtol=1e-12, atol=1e-12):
    f = _numba(inputs, output)
    ref = symgrad.function(inputs, output)
    if n_stencils is not None:
        assert len(_stencils(f)) == n_stencils
    else:
        assert _stencils(f)
    got = f(*values)
    np.testing.assert_allclose(got, ref(*values), rtol=rtol, atol=atol)
    assert all(r._fn is not None for r in _runners(f))  # the kernel ran, not numpy
    return f


def rosenbrock(x):
    return st.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000])
@pytest.mark.parametrize("how", ["rop", "grad"])
def test_rosenbrock_hessian_vector_product(n, how):
    x, v = st.dvector("x"), st.dvector("v")
    g = symgrad.grad(rosenbrock(x), x)
    hv = Rop(g, x, v) if how == "rop" else symgrad.grad(st.sum(g * v), x)
    r = np.random.default_rng(n)
    _check([x, v], hv, [r.uniform(-1.5, 1.5, n), r.normal(size=n)])


def test_hessian_vector_product_agrees_with_finite_differences():
    x, v = st.dvector("x"), st.dvector("v")
    g = symgrad.grad(rosenbrock(x), x)
    hv = _numba([x, v], Rop(g, x, v))
    grad = symgrad.function([x], g)
    r = np.random.default_rng(3)
    for _ in range(3):
        xv, vv = r.uniform(-1.5, 1.5, 40), r.normal(size=40)
        eps = 1e-6
        fd = (grad(xv + eps * vv) - grad(xv - eps * vv)) / (2 * eps)
        np.testing.assert_allclose(hv(xv, vv), fd, rtol=1e-5, atol=1e-5)


def test_float32():
    x, v = st.fvector("x"), st.fvector("v")
    g = symgrad.grad(rosenbrock(x), x)
    r = np.random.default_rng(4)
    f = _check([x, v], Rop(g, x, v), [r.uniform(-1.5, 1.5, 50).astype("float32"),
                                      r.normal(size=50).astype("float32")], rtol=1e-5, atol=1e-4)
    assert f(np.ones(5, "float32"), np.ones(5, "float32")).dtype == np.float32


@pytest.mark.parametrize("axis", [0, 1])
def test_two_dimensional_stencil_along_either_axis(axis):
    # the gradient of a second difference: three increments along one axis
    x, w = st.dmatrix("x"), st.dmatrix("w")
    if axis == 0:
        d2 = x[2:, :] - 2 * x[1:-1, :] + x[:-2, :]
    else:
        d2 = x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]
    cost = st.sum(w * st.tanh(d2) ** 2)
    r = np.random.default_rng(5)
    shape = (7, 9)
    wshape = (5, 9) if axis == 0 else (7, 7)
    _check([x, w], symgrad.grad(cost, x), [r.normal(size=shape), r.normal(size=wshape)])


def test_more_increments_than_one_op_takes():
    x = st.dvector("x")
    n_terms = MAX_TERMS + 2
    cost = sum(st.sum(st.sin(x[k:k - n_terms] * (k + 1))) for k in range(n_terms))
    r = np.random.default_rng(6)
    _check([x], symgrad.grad(cost, x), [r.normal(size=30)], n_stencils=2)


def test_increments_into_an_array_and_bounds_past_the_end():
    # a base that is an input (not zeros), a negative start, a stop past the end, a
    # scalar and a length-1 array read by the increment's program
    x, b = st.dvector("x"), st.dvector("b")
    s = st.dscalar("s")
    one = st.tensor("one", dtype="float64", shape=(1,))
    out = st.inc_subtensor(b[-4:], st.exp(x[-4:]) * s + one)
    out = st.inc_subtensor(out[:100], x * 2.0)
    r = np.random.default_rng(7)
    f = _check([x, b, s, one], out, [r.normal(size=6), r.normal(size=6), 1.5, np.array([0.25])])
    b0 = r.normal(size=6)
    before = b0.copy()
    f(r.normal(size=6), b0, 2.0, np.array([1.0]))
    np.testing.assert_array_equal(b0, before)  # the base array is not written into


def test_inputs_that_broadcast_run_with_numpy():
    # y's length is 1 at run time (numpy broadcasts it into the slice): the kernel declines
    # and numpy computes the call, with the same result as the default backend
    x, y = st.dvector("x"), st.dvector("y")
    out = st.inc_subtensor(st.zeros_like(x)[1:], st.exp(y) * 2.0)
    out = st.inc_subtensor(out[:-1], st.cos(x[1:]))
    f = _numba([x, y], out)
    ref = symgrad.function([x, y], out)
    assert len(_stencils(f)) == 1
    for yv in (np.array([0.5]), np.linspace(0, 1, 5)):
        np.testing.assert_allclose(f(np.arange(6.0), yv), ref(np.arange(6.0), yv))


def test_mismatched_lengths_raise_like_the_default_backend():
    x, y = st.dvector("x"), st.dvector("y")
    out = st.inc_subtensor(st.zeros_like(x)[1:], y * 2.0)
    out = st.inc_subtensor(out[:-1], y * 3.0)
    f = _numba([x, y], out)
    with pytest.raises(ValueError):
        f(np.zeros(6), np.zeros(3))


def test_default_mode_keeps_the_increments():
    x, v = st.dvector("x"), st.dvector("v")
    g = symgrad.grad(rosenbrock(x), x)
    f = symgrad.function([x, v], Rop(g, x, v))
    assert not _stencils(f)
    g2 = symgrad.function([x, v], Rop(g, x, v), mode=symgrad.Mode("NUMBA").excluding("stencil"))
    assert not _stencils(g2)


def test_small_arrays_run_numpy_until_the_kernel_pays(monkeypatch):
    monkeypatch.setattr("symgrad.backends.numba.KERNEL_MIN_SIZE", 4096)
    x, v = st.dvector("x"), st.dvector("v")
    g = symgrad.grad(rosenbrock(x), x)
    f = _numba([x, v], Rop(g, x, v))
    (runner,) = _runners(f)
    f(np.ones(10), np.ones(10))
    assert runner._fn is None and runner.calls == 1
    f(np.ones(5000), np.ones(5000))
    assert runner._fn is not None


def _random_chain(r, axis):
    """A chain of increments into shifted slices along ``axis`` of a 2-d base: target
    [k : -m] (open where 0) and program inputs x[k+d : -m+d] (same length for every n)."""
    x, y = st.dmatrix("x"), st.dmatrix("y")
    s = st.dscalar("s")

    def cut(v, start, stop):
        where = slice(start or None, stop or None)
        return v[where] if axis == 0 else v[:, where]

    out = st.zeros_like(x) if r.random() < 0.5 else y * 1.0
    for _ in range(int(r.integers(1, MAX_TERMS + 3))):
        k, m = int(r.integers(0, 3)), int(r.integers(0, 3))
        d1, d2 = int(r.integers(-k, m + 1)), int(r.integers(-k, m + 1))
        a, b = cut(x, k + d1, -m + d1), cut(x, k + d2, -m + d2)
        value = [st.tanh(a) * b + s, a - b * 2.0, st.exp(a * 0.1), b][int(r.integers(0, 4))]
        out = st.inc_subtensor(cut(out, k, -m), value)
    return [x, y, s], out


@pytest.mark.parametrize("seed", range(4))
def test_random_chains_match_the_default_backend(seed):
    r = np.random.default_rng(seed)
    axis = seed % 2
    inputs, out = _random_chain(r, axis)
    f = _numba(inputs, out, on_unused_input="ignore")
    ref = symgrad.function(inputs, out, mode="FAST_COMPILE", on_unused_input="ignore")
    assert _stencils(f)
    for n in (1, 2, 3, 4, 7):
        shape = (n, 3) if axis == 0 else (3, n)
        values = [r.normal(size=shape), r.normal(size=shape), 0.5]
        np.testing.assert_allclose(f(*values), ref(*values), rtol=1e-13, atol=1e-13)


def test_a_kernel_numba_cannot_compile_warns_and_runs_numpy(monkeypatch):
    from numba.core.errors import TypingError

    from symgrad.backends.numba import NumbaFallbackWarning
    from symgrad.backends.numba.stencil import StencilRunner

    x, v = st.dvector("x"), st.dvector("v")
    hv = Rop(symgrad.grad(rosenbrock(x), x), x, v)
    f = _numba([x, v], hv)
    (runner,) = _runners(f)

    def broken(*args):
        raise TypingError("cannot type this")

    monkeypatch.setattr(StencilRunner, "fn", property(lambda self: broken))
    xv, vv = np.linspace(-1, 1, 9), np.arange(9.0)
    with pytest.warns(NumbaFallbackWarning, match="StencilSum.*running it with numpy"):
        got = f(xv, vv)
    np.testing.assert_allclose(got, symgrad.function([x, v], hv)(xv, vv), rtol=1e-12)
    assert runner.failed and runner._fn is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy from now on, without a warning
        np.testing.assert_allclose(f(xv, vv), got)


def test_boundary_terms_at_either_end():
    # increments into x[:1] and x[-1:] (a few elements, skipped on the long middle piece)
    # beside a second difference's three
    x = st.dvector("x")
    lap = x[2:] - 2 * x[1:-1] + x[:-2]
    cost = (st.sum(lap ** 2) + st.sum(st.exp(st.sin(x[:1]) * 0.5))
            + st.sum(st.exp(st.cos(x[-1:]) * 0.5)))
    r = np.random.default_rng(8)
    for n in (1, 2, 3, 50):
        _check([x], symgrad.grad(cost, x), [r.normal(size=n)], n_stencils=None)
