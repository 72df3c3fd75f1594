"""The generated-code Python backend: source, errors, hostile names, threads, profile, cache."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.backends import python as backend
from symgrad.backends.python import OpRuntimeError
from symgrad.compile.mode import Mode


def test_one_straight_line_function():
    x, y = st.dvectors("x", "y")
    f = symgrad.function([x, y], [st.exp(x) + y, x * y], mode="FAST_COMPILE")
    src = f.executable.source
    assert src.startswith("def _symgrad_fn(a0, a1):")
    assert "for " not in src  # straight line (no loop for small graphs)
    np.testing.assert_allclose(f(np.ones(2), np.ones(2))[0], np.e + 1)


def test_weak_constants_keep_float32():
    x = st.fvector("x")
    f = symgrad.function([x], x * 2.5 + 1)
    out = f(np.ones(3, dtype="float32"))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 3.5)
    assert "2.5" in f.executable.source  # a Python scalar in the source


def test_strong_constants_bound_once_not_in_source():
    x = st.dvector("x")
    big = np.arange(1000.0)
    f = symgrad.function([x], x + st.constant(big))
    assert "999" not in f.executable.source
    np.testing.assert_allclose(f(np.zeros(1000)), big)


@pytest.mark.parametrize("name", ["x'); import os; ('", "__import__", "a0", "_symgrad_fn",
                                  "def f():\n    raise SystemExit", "np", "k0", "v1"])
def test_hostile_names_are_never_in_the_source(name, monkeypatch):
    import os

    called = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    def build(label):
        x = st.dvector(label)
        y = st.dvector("y")
        out = st.exp(x) * y
        out.name = label + "_out"
        return x, y, out, symgrad.function([x, y], out)

    x, y, out, f = build(name)
    # names never reach the source: it is the same as with an ordinary name
    assert f.executable.source == build("plain")[3].executable.source
    np.testing.assert_allclose(f(np.zeros(2), np.ones(2)), [1.0, 1.0])
    assert not called
    g = symgrad.function([symgrad.In(x, name="xx"), y], out)
    np.testing.assert_allclose(g(xx=np.zeros(2), y=np.ones(2)), [1.0, 1.0])


def test_generated_code_has_no_builtins():
    x = st.dvector("x")
    f = symgrad.function([x], st.exp(x))
    assert f.executable.__globals__["__builtins__"] == {}


# -- runtime errors ---------------------------------------------------------------------------------

def test_error_names_the_op_and_shapes():
    x, y = st.dvectors("x", "y")
    f = symgrad.function([x, y], st.exp(x) + y)
    with pytest.raises(OpRuntimeError) as info:
        f(np.ones(2), np.ones(3))
    msg = str(info.value)
    assert "add" in msg and "(2,)" in msg and "(3,)" in msg and "y" in msg


def test_error_inside_a_fused_node():
    x, y = st.dmatrices("x", "y")
    f = symgrad.function([x, y], st.sin(st.exp(x) * y) + 1)
    assert any("Fused" in str(n.op) for n in f.maker.fgraph.apply_nodes)
    with pytest.raises(OpRuntimeError, match=r"Fused.*\(2, 2\).*\(3, 3\)"):
        f(np.ones((2, 2)), np.ones((3, 3)))


def test_error_from_another_op():
    x = st.dvector("x")
    f = symgrad.function([x], st.reshape(x, (2, 3)))
    with pytest.raises(OpRuntimeError, match=r"Reshape.*\(5,\)"):
        f(np.ones(5))


def test_error_path_costs_nothing_on_success():
    x = st.dscalar("x")
    f = symgrad.function([x], x * 2)
    assert "try:" in f.executable.source
    assert f(3.0) == 6.0


# -- threads ----------------------------------------------------------------------------------------

def test_concurrent_calls_get_their_own_results():
    x = st.dmatrix("x")
    expr = st.tanh(st.exp(-x * x) * 3 + st.sin(x)) ** 2
    f = symgrad.function([x], expr)
    big = [np.full((400, 300), float(k)) for k in range(8)]  # takes the blocked path too
    small = [np.full((3, 2), float(k)) for k in range(8)]
    want_big = [np.tanh(np.exp(-b * b) * 3 + np.sin(b)) ** 2 for b in big]
    want_small = [np.tanh(np.exp(-b * b) * 3 + np.sin(b)) ** 2 for b in small]
    errors = []

    def work(k):
        try:
            for _ in range(5):
                np.testing.assert_allclose(f(big[k]), want_big[k], rtol=1e-12)
                np.testing.assert_allclose(f(small[k]), want_small[k], rtol=1e-12)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# -- profile ------------------------------------------------------------------------------------------

def test_profile_records_time_per_node():
    x = st.dvector("x")
    f = symgrad.function([x], [st.exp(x).sum(), st.sin(x) * 2], profile=True)
    for _ in range(3):
        f(np.ones(1000))
    prof = f.profile
    assert prof.calls == 3
    assert len(prof.times) == len(f.maker.fgraph.apply_nodes)
    assert all(t > 0 for t in prof.times)
    buf = io.StringIO()
    text = prof.summary(file=buf)
    assert "3 calls" in text and "Sum" in text
    assert buf.getvalue().strip() == text.strip()


def test_profile_of_a_large_graph_loop_path(monkeypatch):
    monkeypatch.setattr(backend, "LOOP_THRESHOLD", 0)
    x = st.dvector("x")
    f = symgrad.function([x], st.exp(x).sum(), profile=True)
    f(np.ones(4))
    assert f.profile.calls == 1 and f.executable.source is None


# -- cache -------------------------------------------------------------------------------------------

def test_identical_graph_reuses_the_generated_code():
    def build():
        x = st.dvector("x")
        return symgrad.function([x], st.exp(x) * 2 + st.sin(x) * 3.25)

    f1 = build()
    f2 = build()
    assert f2.executable.cached
    x = st.dvector("x")
    assert not symgrad.function([x], st.exp(x) * 2.123456 + 1).executable.cached
    assert f1.executable.__code__ is f2.executable.__code__
    np.testing.assert_allclose(f1(np.ones(2)), f2(np.ones(2)))
    x = st.dvector("x")
    f3 = symgrad.function([x], st.exp(x) * 2 + st.sin(x) * 3.5)  # another constant
    assert f3.executable.__code__ is not f1.executable.__code__
    np.testing.assert_allclose(f3(np.zeros(1)), [2.0])


# -- big graphs ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_hundred_thousand_deep_chain_compiles_and_runs():
    x = st.dscalar("x")
    y = x
    for _ in range(100_000):
        y = st.sin(y)
    f = symgrad.function([x], y)
    v = 0.5
    for _ in range(100_000):
        v = np.sin(v)
    np.testing.assert_allclose(f(0.5), v)


def test_loop_path_matches_generated(monkeypatch):
    x, y = st.dvectors("x", "y")
    expr = [st.exp(x) * y, (x + 1).sum()]
    f = symgrad.function([x, y], expr)
    monkeypatch.setattr(backend, "LOOP_THRESHOLD", 0)
    g = symgrad.function([x, y], expr)
    a, b = np.arange(3.0), np.ones(3)
    for u, v in zip(f(a, b), g(a, b)):
        np.testing.assert_allclose(u, v)
    with pytest.raises(OpRuntimeError, match="mul"):
        g(np.ones(2), np.ones(3))


def test_constant_output_is_a_fresh_writable_array():
    x = st.dvector("x")
    f = symgrad.function([x], [st.constant(np.arange(3.0)), x], on_unused_input="ignore")
    out = f(np.ones(2))[0]
    out[0] = 10.0
    np.testing.assert_array_equal(f(np.ones(2))[0], [0.0, 1.0, 2.0])


def test_scalar_call_overhead_is_small():
    import timeit

    x = st.dscalar("x")
    f = symgrad.function([x], symgrad.grad(x ** 2, x))
    n = 20000
    per_call = min(timeit.repeat(lambda: f(4.0), number=n, repeat=3)) / n
    assert per_call < 50e-6  # a generous bound for loaded CI machines (~2 us unloaded)


def test_modes_pick_the_backend():
    m = Mode("FAST_RUN", backend="python")
    assert m.backend == "python"
    with pytest.raises(ValueError, match="unknown backend"):
        x = st.dvector("x")
        symgrad.function([x], x, mode=Mode("FAST_RUN", backend="nope"))


# -- ops written inline -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, order", [
    ((3,), (0, "x")), ((3,), ("x", 0)), ((1,), ()), ((1, 3), (1,)), ((3, 1), (0,)),
    ((2, 3), (1, 0)), ((2, 1, 3), (2, "x", 0)), ((1, 1), ()), ((1, 1), ("x",)),
    ((2, 3, 4), (2, 0, 1)), ((1, 3, 1), ("x", 1, "x"))])
def test_dimshuffle_is_a_view_written_inline(shape, order):
    from symgrad.tensor.elemwise import DimShuffle

    x = st.tensor("x", dtype="float64", shape=shape)
    y = DimShuffle(len(shape), order)(x)
    f = symgrad.function([x], y, mode="FAST_COMPILE")
    assert "f" not in f.executable.source.split("v1 = ")[1].split("\n")[0]  # no call
    v = np.random.default_rng(0).normal(size=shape)
    want = DimShuffle(len(shape), order).make_thunk_function(y.owner)(v)
    got = f(v)
    assert type(got) is np.ndarray and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_dimshuffle_of_an_unknown_length_still_checks_it():
    x = st.dmatrix("x")
    f = symgrad.function([x], x.dimshuffle(1), mode="FAST_COMPILE")
    np.testing.assert_array_equal(f(np.ones((1, 2))), [1.0, 1.0])
    with pytest.raises(OpRuntimeError, match="only length-1 axes can be dropped"):
        f(np.ones((2, 2)))


def test_sum_to_is_a_shape_test_inline():
    from symgrad.tensor.elemwise import SumTo

    x, s = st.dmatrix("x"), st.lvector("s")
    s2 = st.tensor("s2", dtype="int64", shape=(2,))
    f = symgrad.function([x, s2], SumTo()(x, s2), mode="FAST_COMPILE")
    assert ".shape == " in f.executable.source
    v = np.arange(6.0).reshape(2, 3)
    assert f(v, [2, 3]) is not None
    np.testing.assert_array_equal(f(v, [2, 3]), v)
    np.testing.assert_array_equal(f(v, [1, 3]), v.sum(axis=0, keepdims=True))
    del s


def test_dot_is_numpy_dot_when_no_cast_is_needed():
    a, b = st.dmatrix("a"), st.dvector("b")
    f = symgrad.function([a, b], st.dot(a, b))
    assert "= u" in f.executable.source.split("try:")[1]
    np.testing.assert_allclose(f(np.eye(2), [1.0, 2.0]), [1.0, 2.0])
    i = st.lvector("i")
    g = symgrad.function([a, i], st.dot(a, i))  # int and float: the op's own rule
    assert g(np.eye(2), [1, 2]).dtype == np.float64


def test_small_int_literals_in_float_arithmetic_are_float_literals():
    x, k = st.dvector("x"), st.lvector("k")
    f = symgrad.function([x, k], [1 - x, k * 3, st.maximum(x, 0)])
    src = f.executable.source
    assert "1.0" in src and "0.0" in src and "(3, a1)" in src  # not for the integer vector
    got = f([0.5, -2.0], [1, 2])
    np.testing.assert_array_equal(got[0], [0.5, 3.0])
    assert got[1].dtype == np.int64
    y = st.fvector("y")
    assert symgrad.function([y], 1 - y)(np.ones(2, "float32")).dtype == np.float32
