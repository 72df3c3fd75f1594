"""Fuzzing of the Python backend's blocked loops and buffer reuse: random elementwise
expressions over inputs and over freshly computed operands (whose buffers fused code may
take), several outputs, compiled with tiny block sizes so that 4-element vectors run block
by block; values against the unrewritten FAST_COMPILE function."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import symgrad
import symgrad.tensor as st
from symgrad.backends import python as backend
from tests.tensor.rewriting.test_rewrite_fuzz import build, expressions, finite


@pytest.fixture
def tiny_blocks(monkeypatch):
    monkeypatch.setattr(backend, "CHUNK_THRESHOLD", 1)
    monkeypatch.setattr(backend, "CHUNK", 2)


vectors = hs.lists(finite, min_size=4, max_size=4).map(np.array)
leaf_pairs = hs.tuples(hs.integers(0, 3), hs.integers(0, 3))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(trees=hs.tuples(expressions(3), expressions(2)), leaves=hs.tuples(leaf_pairs, leaf_pairs),
       xv=vectors, yv=vectors)
def test_blocked_fused_code_keeps_values(tiny_blocks, trees, leaves, xv, yv):
    x, y = st.dvectors("x", "y")
    M = st.dmatrix("M")
    # dot results are fresh buffers nothing else reads: the fused code may write into them
    operands = [x, y, st.dot(M, x), st.dot(M, y)]
    exprs = [build(t, operands[a], operands[b]) for t, (a, b) in zip(trees, leaves)]
    # sums of several terms with a fresh operand among the last: one chained step
    outs = [exprs[0] + exprs[1] + operands[3], exprs[1] * exprs[0] * operands[2]]
    Mv = np.arange(16.0).reshape(4, 4) / 10 - 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = symgrad.function([x, y, M], outs, mode="FAST_COMPILE", on_unused_input="ignore")
        fast = symgrad.function([x, y, M], outs, on_unused_input="ignore")
        want, got = ref(xv, yv, Mv), fast(xv, yv, Mv)
    for g, w in zip(got, want):
        g, w = np.broadcast_arrays(np.asarray(g, "float64"), np.asarray(w, "float64"))
        # a stabilizing rewrite may make a naive overflow finite
        fine = np.isclose(g, w, rtol=1e-6, atol=1e-9, equal_nan=True) | ~np.isfinite(w)
        assert fine.all(), (symgrad.pp(outs[0]), g, w)


def test_the_tiny_blocks_reach_the_blocked_loop(tiny_blocks):
    x, M = st.dvector("x"), st.dmatrix("M")
    z = st.dot(M, x)
    f = symgrad.function([x, M], [st.exp(x) * z + z, st.sin(z) - x])
    assert "for " in f.executable.source
