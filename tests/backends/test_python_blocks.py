"""The Python backend's blocked loops for large fused nodes (one or several outputs) and
its copy-free ``fill``: values against NumPy on both the blocked and the whole-array path."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.backends import python as backend

BIG = 3 * backend.CHUNK_THRESHOLD + 17  # several blocks and a short last one


def _source(f):
    return f.executable.source


def test_several_outputs_fill_their_buffers_block_by_block():
    x, v = st.dvectors("x", "v")
    t = st.exp(x) * v
    f = symgrad.function([x, v], [t * 2 + 1, st.tanh(t) - x])
    assert "for " in _source(f)
    rng = np.random.default_rng(0)
    for n in (BIG, 10):
        xv, vv = rng.standard_normal(n), rng.standard_normal(n)
        a, b = f(xv, vv)
        tv = np.exp(xv) * vv
        np.testing.assert_allclose(a, tv * 2 + 1)
        np.testing.assert_allclose(b, np.tanh(tv) - xv)


def test_an_input_of_unproven_shape_is_checked_at_run_time():
    x, v = st.dvectors("x", "v")
    f = symgrad.function([x, v], [st.exp(x) * v + 1, x * v])
    xv = np.linspace(-1, 1, BIG)
    one = np.array([0.5])  # broadcasts: the blocked loop must not slice it
    a, b = f(xv, one)
    np.testing.assert_allclose(a, np.exp(xv) * 0.5 + 1)
    np.testing.assert_allclose(b, xv * 0.5)
    with pytest.raises(ValueError):
        f(xv, np.ones(5))


def test_matrix_blocks_with_row_and_column_operands():
    m = st.dmatrix("m")
    row, col = st.row("row"), st.col("col")
    f = symgrad.function([m, row, col], [st.exp(m) * row + col, st.tanh(m * col)])
    rng = np.random.default_rng(1)
    for rows, cols in ((BIG // 50, 50), (3, 4), (BIG, 1)):
        mv = rng.standard_normal((rows, cols))
        rv, cv = rng.standard_normal((1, cols)), rng.standard_normal((rows, 1))
        a, b = f(mv, rv, cv)
        np.testing.assert_allclose(a, np.exp(mv) * rv + cv)
        np.testing.assert_allclose(b, np.tanh(mv * cv))


def test_in_place_fused_node_in_blocks():
    a, b = st.dmatrices("a", "b")
    d = st.dot(a, b)
    f = symgrad.function([a, b], st.exp(d) * 0.5 + d)
    rng = np.random.default_rng(2)
    av, bv = rng.standard_normal((BIG // 64, 8)) * 0.3, rng.standard_normal((8, 64)) * 0.3
    dv = av @ bv
    np.testing.assert_allclose(f(av, bv), np.exp(dv) * 0.5 + dv)


def test_fill_reuses_its_operand_without_a_copy_and_still_broadcasts():
    x, v = st.dvectors("x", "v")
    filled = st.fill(x, v)
    f = symgrad.function([x, v], [filled[1:] * 2, filled[::2]])
    assert "a1 if a0.shape[0] == a1.shape[0] else" in _source(f)  # no copy when shapes agree
    xv, vv = np.arange(6.0), np.arange(6.0) + 10
    a, b = f(xv, vv)
    np.testing.assert_array_equal(a, vv[1:] * 2)
    np.testing.assert_array_equal(b, vv[::2])
    b[...] = -1  # an output viewing the caller's array is a copy
    np.testing.assert_array_equal(vv, np.arange(6.0) + 10)
    a, b = f(xv, np.array([3.0]))
    np.testing.assert_array_equal(a, np.full(5, 6.0))
    np.testing.assert_array_equal(b, np.full(3, 3.0))


def test_rosenbrock_hessian_vector_product_in_blocks():
    from scipy.optimize import rosen_hess_prod

    x, v = st.dvectors("x", "v")
    f = st.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    g = symgrad.grad(f, x)
    hv_grad = symgrad.function([x, v], symgrad.grad(st.sum(g * v), x))
    hv_rop = symgrad.function([x, v], symgrad.Rop(g, x, v))
    rng = np.random.default_rng(5)
    for n in (BIG, 7):
        xv, vv = rng.uniform(-1.5, 1.5, n), rng.standard_normal(n)
        ref = rosen_hess_prod(xv, vv)
        np.testing.assert_allclose(hv_grad(xv, vv), ref, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(hv_rop(xv, vv), ref, rtol=1e-12, atol=1e-9)


def test_dead_fresh_operand_reused_when_shapes_agree_at_run_time():
    a, b, w = st.dmatrices("a", "b", "w")
    f = symgrad.function([a, b, w], w - 0.1 * st.dot(a.T, b))
    src = _source(f)
    assert ".shape[0] == " in src and "else None)" in src  # out= chosen at run time
    rng = np.random.default_rng(3)
    for rows in (3, BIG // 40):
        av, bv = rng.standard_normal((5, rows)), rng.standard_normal((5, 40))
        for wv in (rng.standard_normal((rows, 40)), rng.standard_normal((1, 40))):
            np.testing.assert_allclose(f(av, bv, wv), wv - 0.1 * av.T @ bv)
            # the caller's arrays are untouched
            assert np.all(np.isfinite(av)) and wv.shape[1] == 40


def test_chained_product_with_broadcast_operands_and_a_dead_buffer():
    x = st.dvector("x")
    y = st.exp(x.dimshuffle("x", 0, "x"))
    c1 = st.constant(np.arange(2.0).reshape(2, 1, 1) + 1)
    c2 = st.constant(np.arange(5.0).reshape(1, 1, 5))
    f = symgrad.function([x], y * c1 * c2)
    xv = np.array([0.1, 0.2])
    np.testing.assert_allclose(f(xv), np.exp(xv)[None, :, None] * (np.arange(2.0).reshape(
        2, 1, 1) + 1) * np.arange(5.0).reshape(1, 1, 5))


def test_jacobian_scaled_identity_product_inline_and_its_exact_path():
    w, x = st.dmatrix("w"), st.dvector("x")
    f = symgrad.function([w, x], symgrad.gradient.jacobian(st.tanh(st.dot(w, x)), x))
    src = _source(f)
    assert "[0]) if a0.shape[0] ==" in src and ".reshape(" in src
    rng = np.random.default_rng(4)
    for rows, cols in ((6, 4), (1, 3)):
        wv, xv = rng.standard_normal((rows, cols)) / 3, rng.standard_normal(cols)
        y = np.tanh(wv @ xv)
        np.testing.assert_allclose(f(wv, xv), (1 - y * y)[:, None] * wv)
    wv, xv = rng.standard_normal((6, 6)) / 3, rng.standard_normal(6)
    # an inf in W: the matrix product's NaNs (0 * inf), not the shortcut's product
    bad = wv.copy()
    bad[2, 3] = np.inf
    d = np.diag(1 - np.tanh(bad @ xv) ** 2)
    with np.errstate(invalid="ignore"):
        expected = d @ bad
        got = f(bad, xv)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got).sum() > 1  # the shortcut alone would give one NaN at most


def test_shape_vectors_as_tuples_and_as_arrays():
    x, y = st.dvector("x"), st.dmatrix("y")
    sx, sy = st.shape(x), st.shape(y)
    joined = st.concatenate([sx, sy])
    f = symgrad.function([x, y], [sx, sy[1], joined, st.reshape(y, st.concatenate([sy[1:],
                                                                                   sy[:1]]))])
    xv, yv = np.zeros(3), np.arange(8.0).reshape(2, 4)
    a, b, c, d = f(xv, yv)
    assert a.dtype == b.dtype == c.dtype == np.int64 and b.ndim == 0
    np.testing.assert_array_equal(a, [3])
    assert int(b) == 4
    np.testing.assert_array_equal(c, [3, 2, 4])
    np.testing.assert_array_equal(d, yv.reshape(4, 2))
    g = symgrad.function([x, y], y.reshape(st.concatenate([sx, sx])))
    np.testing.assert_array_equal(g(np.zeros(3), np.arange(9.0).reshape(1, 9)),
                                  np.arange(9.0).reshape(3, 3))
    with pytest.raises(ValueError):
        g(np.zeros(2), yv)


def test_a_dead_buffer_is_not_taken_by_a_smaller_broadcast_result():
    a, b = st.dmatrices("a", "b")
    r = st.row("r")
    d = st.dot(a, b)
    s1 = st.exp(d) * 2
    s2 = r + 1
    f = symgrad.function([a, b, r], [s1 * s2, s2 * 3])
    rng = np.random.default_rng(6)
    av, bv, rv = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal((1, 5))
    p, q = f(av, bv, rv)
    assert q.shape == (1, 5)
    np.testing.assert_allclose(p, np.exp(av @ bv) * 2 * (rv + 1))
    np.testing.assert_allclose(q, (rv + 1) * 3)


@pytest.mark.parametrize("value", [0.0, -0.0, 2.5])
def test_alloc_of_a_constant(value):
    x = st.dmatrix("x")
    a = st.alloc(np.float64(value), x.shape[0], x.shape[1])
    f = symgrad.function([x], [a, a + x])
    xv = np.arange(6.0).reshape(2, 3)
    p, q = f(xv)
    np.testing.assert_array_equal(p, np.full((2, 3), value))
    assert np.all(np.signbit(p) == np.signbit(value)) and p.flags.writeable
    np.testing.assert_array_equal(q, xv + value)


def test_alloc_with_a_negative_length_names_the_op():
    n = st.lscalar("n")
    f = symgrad.function([n], st.alloc(np.float64(1.5), n, 2))
    np.testing.assert_array_equal(f(3), np.full((3, 2), 1.5))
    with pytest.raises(ValueError, match="negative"):
        f(-1)


def test_constant_basic_indices_inline_as_views():
    x, m = st.dvector("x"), st.dmatrix("m")
    outs = [x[1:] * 2, x[::2] + 0 * x[::2], m[0] * 1.5, m[1, 2] + 1, m[:, None, 1:3] * 2, x[-1] * 3]
    f = symgrad.function([x, m], outs)
    assert "a0[1:, ...]" in _source(f)
    xv, mv = np.arange(5.0), np.arange(12.0).reshape(3, 4)
    expected = [xv[1:] * 2, xv[::2], mv[0] * 1.5, mv[1, 2] + 1, mv[:, None, 1:3] * 2, xv[-1] * 3]
    for got, want in zip(f(xv, mv), expected):
        assert isinstance(got, np.ndarray) and got.shape == np.shape(want)
        np.testing.assert_array_equal(got, want)
    g = symgrad.function([x], x[4])
    with pytest.raises(backend.OpRuntimeError, match="Subtensor"):
        g(np.arange(3.0))


def test_strong_float_constants_as_literals_keep_dtype_and_bits():
    x = st.fvector("x")
    c32 = st.constant(np.float32(0.1))
    c64 = st.constant(np.float64(0.1))
    f = symgrad.function([x], [st.exp(x) * c32 + c32, st.exp(x) * c64 - 1])
    xv = np.linspace(-1, 1, 7, dtype=np.float32)
    a, b = f(xv)
    assert a.dtype == np.float32 and b.dtype == np.float64
    np.testing.assert_array_equal(a, np.exp(xv) * np.float32(0.1) + np.float32(0.1))
    np.testing.assert_array_equal(b, np.exp(xv) * np.float64(0.1) - 1)
    assert "0.10000000149011612" in _source(f)  # the float32 constant, exactly


def test_jacobian_scaled_identity_product_in_row_blocks():
    w, x = st.dmatrix("w"), st.dvector("x")
    f = symgrad.function([w, x], symgrad.gradient.jacobian(st.tanh(st.dot(w, x)), x))
    rng = np.random.default_rng(7)
    n = 300  # 90,000 elements: made block by block
    wv, xv = rng.standard_normal((n, n)) / np.sqrt(n), rng.standard_normal(n)
    y = np.tanh(wv @ xv)
    np.testing.assert_allclose(f(wv, xv), (1 - y * y)[:, None] * wv)
    wv[250, 7] = np.nan  # in a late block: the exact path's NaNs, not a partial result
    with np.errstate(invalid="ignore"):
        got = f(wv, xv)
        d = 1 - np.tanh(wv @ xv) ** 2
        expected = (np.eye(n) * d) @ wv  # what dot(eye(n) * d, W) means
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got[~np.isnan(got)], expected[~np.isnan(expected)])


def test_fill_of_a_row_by_a_matrix_is_the_matrix():
    r, m = st.row("r"), st.dmatrix("m")
    f = symgrad.function([r, m], st.dot(st.fill(r, m), m))
    assert "a1 if a0.shape[1] == a1.shape[1] else" in _source(f)
    rv, mv = np.ones((1, 3)), np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(f(rv, mv), mv @ mv)
    col = np.arange(3.0).reshape(3, 1)  # broadcast by the row: a (3, 3) result (a copy)
    np.testing.assert_array_equal(f(rv, col), np.broadcast_to(col, (3, 3)) @ col)


def test_a_fresh_operand_read_late_in_a_sum_chain_is_not_overwritten_first():
    # out = a*b + c*d + dot(A, B) (+ ...): the sum is one chained step whose first call
    # writes the output block; the dot result, read by a later call of that chain, must not
    # be the output's buffer (found in the Hessian scan recipe at n >= 182).
    A, B = st.dmatrices("A", "B")
    r, s = st.dvectors("r", "s")
    f = symgrad.function([A, B, r, s], (r * s) + st.exp(r) * s + st.dot(A, B) + r)
    n = 200  # n * n >= CHUNK_THRESHOLD: the blocked path
    assert n * n >= backend.CHUNK_THRESHOLD
    rng = np.random.default_rng(5)
    Av, Bv = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    rv, sv = rng.standard_normal(n), rng.standard_normal(n)
    np.testing.assert_allclose(f(Av, Bv, rv, sv), rv * sv + np.exp(rv) * sv + Av @ Bv + rv,
                               rtol=1e-12, atol=1e-12)
