"""The stencil rewrite (increments into shifted slices -> StencilSum), without numba: the
op's numpy implementation run by the Python backend must equal the graph it replaced."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.backends import python as pyb
from symgrad.graph.fgraph import FunctionGraph
from symgrad.tensor.rewriting.stencil import StencilSum, stencil_increments


def rewritten(inputs, outputs):
    fg = FunctionGraph(inputs, outputs)
    n = stencil_increments(fg, None)
    return fg, n


def n_stencils(fg):
    return sum(isinstance(n.op, StencilSum) for n in fg.toposort())


def run(fg, values):
    return pyb.compile_fgraph(fg)(*values)


def rosenbrock(x):
    return st.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


@pytest.mark.parametrize("n", [1, 2, 9])
def test_rosenbrock_gradient_becomes_one_stencil_with_the_same_values(n):
    x = st.dvector("x")
    g = symgrad.grad(rosenbrock(x), x)
    fg, done = rewritten([x], [g])
    # (not rewritten by the other sets first: each slice's gradient is a chain of its own)
    assert done >= 1 and n_stencils(fg) == done
    xv = np.random.default_rng(n).normal(size=n)
    np.testing.assert_allclose(run(fg, [xv])[0], symgrad.function([x], g)(xv), rtol=1e-13)


def test_values_that_broadcast_keep_numpys_meaning():
    x, y = st.dvector("x"), st.dvector("y")
    out = st.inc_subtensor(st.zeros_like(x)[1:], y * 2.0)
    out = st.inc_subtensor(out[:-1], st.exp(x[1:]))
    fg, done = rewritten([x, y], [out])
    assert done == 1
    ref = symgrad.function([x, y], out, mode="FAST_COMPILE")
    for yv in (np.array([3.0]), np.arange(4.0)):
        np.testing.assert_allclose(run(fg, [np.arange(5.0), yv])[0], ref(np.arange(5.0), yv))


def test_what_is_left_alone():
    x, y = st.dvector("x"), st.dvector("y")
    k = st.lscalar("k")
    base = st.zeros_like(x)
    cases = {
        # a set, not an increment
        "set": st.set_subtensor(st.inc_subtensor(base[1:], y)[:-1], y),
        # a symbolic bound
        "symbolic": st.inc_subtensor(st.inc_subtensor(base[k:], y)[:-1], y),
        # a step
        "step": st.inc_subtensor(st.inc_subtensor(base[::2], y)[::2], y),
        # one increment of an array computed elsewhere: nothing to gain
        "single": st.inc_subtensor(x[1:], y),
    }
    for name, out in cases.items():
        fg, done = rewritten([x, y, k], [out])
        if name == "set":
            # the increment below the set still becomes one (fill + inc)
            assert n_stencils(fg) <= 1, name
            assert any(type(n.op).__name__ == "IncSubtensor" and n.op.set_instead_of_inc
                       for n in fg.toposort()), name
        else:
            assert done == 0 and n_stencils(fg) == 0, name


def test_an_intermediate_read_elsewhere_ends_the_chain():
    x, y = st.dvector("x"), st.dvector("y")
    mid = st.inc_subtensor(st.zeros_like(x)[1:], y)
    out = st.inc_subtensor(mid[:-1], y)
    fg, done = rewritten([x, y], [out, mid])
    values = [np.arange(5.0), np.ones(4)]
    got = run(fg, values)
    np.testing.assert_allclose(got[0], [1, 2, 2, 2, 1])
    np.testing.assert_allclose(got[1], [0, 1, 1, 1, 1])
    # the upper increment reads `mid`, which is also an output: it stays an array
    for node in fg.toposort():
        if isinstance(node.op, StencilSum) and node.op.base[0] == "array":
            assert node.inputs[0] is fg.outputs[1]


def test_elementwise_inputs_of_other_shapes_are_read_as_arrays():
    # a program input of static shape (1, None) broadcasts along one axis only: the value is
    # read as an array (not inlined), and the results still agree
    x = st.dmatrix("x")
    r = st.tensor("r", dtype="float64", shape=(1, None))
    out = st.inc_subtensor(st.zeros_like(x)[1:], st.exp(r) * x[:-1])
    out = st.inc_subtensor(out[:-1], x[1:])
    fg, done = rewritten([x, r], [out])
    assert done == 1
    (node,) = [n for n in fg.toposort() if isinstance(n.op, StencilSum)]
    assert node.op.terms[0][2] is None  # read as an array
    xv, rv = np.arange(12.0).reshape(4, 3), np.ones((1, 3))
    ref = symgrad.function([x, r], out, mode="FAST_COMPILE")
    np.testing.assert_allclose(run(fg, [xv, rv])[0], ref(xv, rv))


def test_an_expensive_node_read_by_several_increments_is_computed_once():
    # tanh's derivative feeds the three increments of a second difference's gradient:
    # inlined, each increment would compute it again at its own positions
    x = st.dvector("x")
    lap = x[2:] - 2 * x[1:-1] + x[:-2]
    from symgrad.compile.mode import Mode
    from symgrad.rewrite import apply_mode_rewrites

    fg = FunctionGraph([x], [symgrad.grad(st.sum(st.tanh(lap) ** 2), x)])
    apply_mode_rewrites(fg, Mode("NUMBA"))
    (node,) = [n for n in fg.toposort() if isinstance(n.op, StencilSum)]
    assert all(term[2] is None for term in node.op.terms)  # read as arrays
    xv = np.random.default_rng(3).normal(size=12)
    ref = symgrad.function([x], symgrad.grad(st.sum(st.tanh(lap) ** 2), x), mode="FAST_COMPILE")
    np.testing.assert_allclose(run(fg, [xv])[0], ref(xv), rtol=1e-12)
    # cheap arithmetic read by two increments (Rosenbrock's) is inlined
    fg2 = FunctionGraph([x], [symgrad.grad(rosenbrock(x), x)])
    apply_mode_rewrites(fg2, Mode("NUMBA"))
    (node2,) = [n for n in fg2.toposort() if isinstance(n.op, StencilSum)]
    assert all(term[2] is not None for term in node2.op.terms)
