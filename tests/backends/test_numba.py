"""The numba backend against the default backend on the same graphs (tests/backends/conftest.py).

numba compiles each graph for several seconds the first time (then loads it from the disk
cache), so the default run compiles a few compact graphs; set SYMGRAD_TEST_NUMBA_ALL=1 to
compare every graph of the shared table as well.
"""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

numba = pytest.importorskip("numba", reason="numba is not installed (pip install 'symgrad[numba]')")

import symgrad  # noqa: E402
import symgrad.tensor as st  # noqa: E402
from tests.backends.conftest import CASES, Case, compare_with_default  # noqa: E402

FULL = os.environ.get("SYMGRAD_TEST_NUMBA_ALL") == "1"


@pytest.fixture(autouse=True)
def _kernels_for_small_arrays(monkeypatch):
    # the tests' arrays are small: compile their kernels anyway (numpy runs small arrays
    # until a kernel is worth compiling; tested on its own below)
    monkeypatch.setattr("symgrad.backends.numba.KERNEL_MIN_SIZE", 0)


def _quiet_compare(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare_with_default(case, "NUMBA")


@pytest.mark.slow
def test_core_graph_matches_default():
    # elementwise with broadcasting and weak constants, a fused chain, reductions, dot,
    # basic and advanced indexing, shape ops and a gradient: one compiled segment
    x, W = st.dmatrix("x"), st.dmatrix("W")
    v = st.dvector("v")
    i = st.lvector("i")
    h = st.tanh(st.dot(x, W) + v)
    cost = st.sum(h ** 2) + st.max(x, axis=0).sum() + st.logsumexp(h[:, 1:])
    gW = symgrad.grad(cost, W)
    outs = [h, gW, st.sum(x, axis=1, keepdims=True), st.argmax(x, axis=0),
            st.softmax(x), x[i], x[:, ::-1].T, st.concatenate([x, W[:2]], axis=0),
            st.inc_subtensor(x[1:, :2], 1.5), st.cast(x > 0.5, "int32") * 3,
            st.reshape(x, (-1,)), st.cumsum(x, axis=1)]
    r = np.random.default_rng(0)
    case = Case([x, W, v, i], outs, [r.normal(size=(3, 4)), r.normal(size=(4, 4)),
                                     r.normal(size=4), np.array([2, 0, 2])], rtol=1e-6)
    f = _quiet_compare(case)
    assert f.executable.n_fallbacks == 0


@pytest.mark.slow
def test_scan_rnn_and_gradient():
    _quiet_compare(CASES["scan_rnn"]())


@pytest.mark.skipif(not FULL, reason="the whole table takes minutes to compile with numba; set "
                    "SYMGRAD_TEST_NUMBA_ALL=1")
def test_graphs_match_default(graph_case):
    name, case = graph_case
    _quiet_compare(case)


def test_fallback_warns_naming_the_op():
    from symgrad.backends.numba import NumbaFallbackWarning

    a, b = st.dmatrix("a"), st.dmatrix("b")
    out = st.einsum("ij,jk->ik", a, b)
    with pytest.warns(NumbaFallbackWarning, match="Einsum"):
        f = symgrad.function([a, b], out, mode="NUMBA")
    x, y = np.ones((2, 3)), np.ones((3, 2))
    np.testing.assert_allclose(f(x, y), x @ y)


def test_shared_updates():
    w = symgrad.shared(np.zeros(3), name="w")
    x = st.dvector("x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = symgrad.function([x], st.sum(w * x), updates=[(w, w + x)], mode="NUMBA")
    assert float(f(np.ones(3))) == 0.0
    assert float(f(np.ones(3))) == 3.0
    np.testing.assert_array_equal(w.get_value(), [2.0, 2.0, 2.0])


_CACHE_SCRIPT = textwrap.dedent("""
    import time, warnings
    import numpy as np
    import symgrad, symgrad.tensor as st
    import symgrad.backends.numba as nb
    nb.KERNEL_MIN_SIZE = 0  # (small arrays: compile the kernels anyway)
    x, W = st.dvector("x"), st.dmatrix("W")
    h = st.tanh(st.dot(W, x) + 1.0)
    t = time.perf_counter()
    f = symgrad.function([x, W], [h, symgrad.grad(st.sum(h * x), W)], mode="NUMBA")
    out = f(np.arange(3.0), np.ones((3, 3)))
    seconds = time.perf_counter() - t
    kernels = f.executable.program
    hits = sum(sum(k.fn.stats.cache_hits.values()) for k in kernels)
    misses = sum(sum(k.fn.stats.cache_misses.values()) for k in kernels)
    print(seconds, len(kernels), hits, misses, kernels[0].module.__file__)
""")


@pytest.mark.slow
def test_disk_cache_second_process_is_fast(tmp_path):
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(tmp_path))
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", _CACHE_SCRIPT], env=env, capture_output=True,
                              text=True, timeout=600, cwd=os.getcwd())
        assert proc.returncode == 0, proc.stderr
        seconds, n, hits, misses, path = proc.stdout.split()
        runs.append((float(seconds), int(n), int(hits), int(misses)))
        assert path.startswith(str(tmp_path / "numba"))
    (cold, n, cold_hits, cold_misses), (warm, n2, warm_hits, warm_misses) = runs
    assert n == n2 >= 1
    assert (cold_hits, cold_misses) == (0, n)
    # the second process loads every kernel's machine code from disk instead of compiling
    assert (warm_hits, warm_misses) == (n, 0)
    assert warm < cold, runs


def _quiet_function(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return symgrad.function(*args, mode="NUMBA", **kwargs)


def test_identical_nodes_of_two_graphs_share_one_kernel():
    x, y = st.dvector("x"), st.dvector("y")
    f = _quiet_function([x, y], st.tanh(x) * y + 1.0)
    g = _quiet_function([y, x], [st.sum(x), st.tanh(x) * y + 1.0])
    (kf,) = f.executable.program
    (kg,) = g.executable.program
    xv, yv = np.linspace(-1, 1, 5), np.arange(5.0)
    np.testing.assert_allclose(f(xv, yv), np.tanh(xv) * yv + 1)
    signatures = len(kf.fn.signatures)
    np.testing.assert_allclose(g(yv, xv)[1], np.tanh(xv) * yv + 1)
    assert kf.fn is kg.fn  # one dispatcher: compiled once, in the first graph's call
    assert len(kg.fn.signatures) == signatures


def test_reused_buffers_never_reach_earlier_results():
    # the fused kernel's outputs are intermediates (read by increments): their arrays serve
    # the next call, which must not change what an earlier call returned
    x, v = st.dvector("x"), st.dvector("v")
    y = st.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    hv = symgrad.gradient.Rop(symgrad.grad(y, x), x, v)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # (without the stencil rewrite, which would make the whole graph one loop)
        f = symgrad.function([x, v], hv, mode=symgrad.Mode("NUMBA").excluding("stencil"))
    assert any(r.pooled for r in f.executable.program)
    ref = symgrad.function([x, v], hv)
    r = np.random.default_rng(1)
    calls = [(r.normal(size=n), r.normal(size=n)) for n in (50, 50, 7, 50)]
    results = [f(*c) for c in calls]
    for c, res in zip(calls, results):
        np.testing.assert_allclose(res, ref(*c), rtol=1e-12)


def test_fused_outputs_of_different_shapes():
    # one loop computes both outputs where their shapes agree; where a's row broadcasts,
    # the outputs differ in shape and each gets its own loop
    a, b = st.dmatrix("a"), st.dmatrix("b")
    e = st.exp(a)
    f = _quiet_function([a, b], [e * 2, e * b + 1])
    r = np.random.default_rng(2)
    B = r.normal(size=(4, 3))
    for A in (r.normal(size=(4, 3)), r.normal(size=(1, 3)), r.normal(size=(4, 3))):
        o1, o2 = f(A, B)
        np.testing.assert_allclose(o1, np.exp(A) * 2)
        np.testing.assert_allclose(o2, np.exp(A) * B + 1)


def test_increments_update_fresh_arrays_in_place_never_inputs():
    x = st.dvector("x")
    y = st.inc_subtensor((x * 2)[1:], 1.0)   # x * 2 is fresh: updated in place
    z = st.inc_subtensor(x[:2], 5.0)          # x is the caller's: copied
    f = _quiet_function([x], [y, z])
    xv = np.arange(4.0)
    before = xv.copy()
    y1, z1 = f(xv)
    np.testing.assert_array_equal(xv, before)
    np.testing.assert_array_equal(y1, [0.0, 3.0, 5.0, 7.0])
    np.testing.assert_array_equal(z1, [5.0, 6.0, 2.0, 3.0])
    y2, _ = f(xv)
    np.testing.assert_array_equal(y1, [0.0, 3.0, 5.0, 7.0])
    assert y2 is not y1


def test_broadcasting_inputs_and_fused_outputs_of_different_shapes_after_it():
    # a kernel has no broadcasting loop: broadcast inputs arrive as views; a later call where
    # the outputs' shapes differ must still give each output its own shape
    a, b = st.dmatrix("a"), st.dmatrix("b")
    c = st.constant(np.arange(3.0).reshape(1, 3))
    e = st.exp(a)
    f = _quiet_function([a, b], [e * 2 + c, e * b + 1])
    r = np.random.default_rng(3)
    for A, B in ((r.normal(size=(4, 3)), r.normal(size=(1, 3))),
                 (r.normal(size=(1, 3)), r.normal(size=(4, 3))),
                 (r.normal(size=(4, 1)), r.normal(size=(4, 3))),
                 (r.normal(size=(4, 3)), r.normal(size=(4, 3)))):
        o1, o2 = f(A, B)
        np.testing.assert_allclose(o1, np.exp(A) * 2 + np.arange(3.0))
        np.testing.assert_allclose(o2, np.exp(A) * B + 1)


def test_fused_outputs_of_different_static_shapes():
    # the reductions' means and the centred values of a variance: a fused node may mix
    # outputs of shape (2, 1, 4) and (2, 3, 4)
    x = st.dtensor3("x")
    outs = [st.mean(x, axis=1, keepdims=True), st.var(x, axis=1, keepdims=True),
            st.std(x, axis=1), st.sum(x, axis=1, keepdims=True) / 3.0 - x]
    f = _quiet_function([x], outs)
    X = np.random.default_rng(4).uniform(0.2, 1.2, (2, 3, 4))
    want = [X.mean(axis=1, keepdims=True), X.var(axis=1, keepdims=True), X.std(axis=1),
            X.sum(axis=1, keepdims=True) / 3.0 - X]
    for got, w in zip(f(X), want):
        assert got.shape == w.shape
        np.testing.assert_allclose(got, w, rtol=1e-12)


def test_scan_step_with_an_input_that_broadcasts_at_run_time():
    # x_t has length 1 at run time: the lean step (no broadcasting code) raises, and the
    # kernel is made again with a step whose loop copies x_t to the state's length first
    X, h0 = st.dmatrix("X"), st.dvector("h0")
    hs = symgrad.scan(lambda x_t, h: st.tanh(h * x_t + 0.5), sequences=X, outputs_info=h0)
    hs = hs[0] if isinstance(hs, tuple) else hs
    f = _quiet_function([X, h0], hs)
    ref = symgrad.function([X, h0], hs)
    (scan,) = [k for k in f.executable.program if type(k.node.op).__name__ == "Scan"]
    r = np.random.default_rng(5)
    for shape, lean in (((6, 4), True), ((6, 1), False), ((6, 4), False), ((6, 1), False)):
        args = (r.normal(size=shape), r.normal(size=4))
        np.testing.assert_allclose(f(*args), ref(*args), rtol=1e-12)
        assert scan.kernel.lean_steps is lean


def test_kernel_output_read_by_numpy_code_is_not_reused():
    # sqrt runs as numpy code, which may write its result into the dead kernel output it
    # reads: that array is then the function's output and must not serve the next call
    x = st.dvector("x")
    y = st.sqrt(st.exp(x) * 2.0 + 1.0)
    f = _quiet_function([x], [y, st.sum(st.exp(x) * 2.0 + 1.0)])
    r = np.random.default_rng(6)
    x1, x2 = r.normal(size=50), r.normal(size=50)
    y1, _ = f(x1)
    f(x2)
    np.testing.assert_allclose(y1, np.sqrt(np.exp(x1) * 2.0 + 1.0))


def test_small_arrays_run_numpy_until_a_kernel_pays(monkeypatch):
    monkeypatch.setattr("symgrad.backends.numba.KERNEL_MIN_SIZE", 1000)
    monkeypatch.setattr("symgrad.backends.numba.KERNEL_MIN_CALLS", 3)
    x, y = st.dvector("x"), st.dvector("y")
    f = _quiet_function([x, y], st.exp(x) * y + 2.5)
    (kernel,) = f.executable.program
    r = np.random.default_rng(7)
    small = (r.normal(size=10), r.normal(size=10))
    for _ in range(3):
        np.testing.assert_allclose(f(*small), np.exp(small[0]) * small[1] + 2.5)
    assert not kernel.compiled
    np.testing.assert_allclose(f(*small), np.exp(small[0]) * small[1] + 2.5)
    assert kernel.compiled  # the fourth call
    g = _quiet_function([x, y], st.exp(x) * y - 2.5)
    (other,) = g.executable.program
    large = (r.normal(size=2000), r.normal(size=2000))
    np.testing.assert_allclose(g(*large), np.exp(large[0]) * large[1] - 2.5)
    assert other.compiled


def test_scan_steps_with_every_kind_of_dot():
    # matrix-matrix and matrix-vector products (np.dot into a given output), vector-matrix
    # and vector-vector ones (loops) inside a step
    W, X, H0 = st.dmatrix("W"), st.dmatrix("X"), st.dmatrix("H0")

    def step(x_t, H, W):
        v = st.tanh(st.dot(W, x_t))
        return st.tanh(st.dot(H, W) + st.dot(v, W) * st.dot(v, x_t))

    Hs = symgrad.scan(step, sequences=X, outputs_info=H0, non_sequences=W)
    Hs = Hs[0] if isinstance(Hs, tuple) else Hs
    loss = st.sum(Hs[-1])
    outs = [Hs, symgrad.grad(loss, W)]
    f = _quiet_function([W, X, H0], outs)
    ref = symgrad.function([W, X, H0], outs)
    r = np.random.default_rng(8)
    args = (r.normal(size=(5, 5)) * 0.3, r.normal(size=(7, 5)), r.normal(size=(3, 5)))
    for got, want in zip(f(*args), ref(*args)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
