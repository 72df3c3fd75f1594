"""Fusion of elementwise chains and in-place reuse of dead buffers, and their safety."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.compile.mode import Mode
from symgrad.printing import dprint, pp
from symgrad.tensor.elemwise import Elemwise
from symgrad.tensor.fusion import FusedElemwise, Program

RNG = np.random.default_rng(3)


def fused_nodes(f):
    return [n for n in f.maker.fgraph.apply_nodes if isinstance(n.op, FusedElemwise)]


# -- fusion ---------------------------------------------------------------------------------------

def test_chain_becomes_one_node():
    x, y = st.dmatrices("x", "y")
    expr = st.tanh(st.exp(x) * y + 1) - x
    f = symgrad.function([x, y], expr)
    assert len(f.maker.fgraph.apply_nodes) == 1
    (node,) = fused_nodes(f)
    assert len(node.op.program.steps) == 5
    a, b = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))
    np.testing.assert_allclose(f(a, b), np.tanh(np.exp(a) * b + 1) - a, rtol=1e-14)


def test_single_elementwise_op_is_not_fused():
    x = st.dvector("x")
    f = symgrad.function([x], st.exp(x))
    (node,) = f.maker.fgraph.apply_nodes
    assert type(node.op) is Elemwise


def test_shared_intermediates_make_a_multi_output_node():
    x = st.dvector("x")
    e = st.exp(x)
    f = symgrad.function([x], [e * 2, st.sin(e) + 1, e])
    (node,) = f.maker.fgraph.apply_nodes
    assert isinstance(node.op, FusedElemwise) and len(node.outputs) == 3
    a = RNG.normal(size=5)
    got = f(a)
    np.testing.assert_allclose(got[0], np.exp(a) * 2)
    np.testing.assert_allclose(got[1], np.sin(np.exp(a)) + 1)
    np.testing.assert_allclose(got[2], np.exp(a))


def test_fusion_stays_convex():
    # sum(e) feeds back into the chain that computes e: two fused pieces, no cycle
    x = st.dvector("x")
    e = st.exp(x) * 2
    expr = st.sin(e) * st.sum(e) + e
    f = symgrad.function([x], expr)
    a = RNG.normal(size=4)
    ea = np.exp(a) * 2
    np.testing.assert_allclose(f(a), np.sin(ea) * ea.sum() + ea, rtol=1e-14)
    assert len(f.maker.fgraph.toposort()) == len(f.maker.fgraph.apply_nodes)


def test_fused_op_prints_readably():
    x, y = st.dvectors("x", "y")
    f = symgrad.function([x, y], st.exp(x) * y + 1)
    assert pp(f.maker.fgraph.outputs[0]) == "Fused{(1 + (exp(x) * y))}"
    text = dprint(f, file="str")
    assert text.startswith("Fused{(1 + (exp(i0) * i1))}")


def test_fused_op_derivatives_expand_the_program():
    from symgrad.gradient import verify_grad

    x, y = st.dvectors("x", "y")
    expr = st.sin(st.exp(x) * y)
    f = symgrad.function([x, y], expr)
    (node,) = fused_nodes(f)
    op = node.op
    verify_grad(lambda a, b: op(a, b), [RNG.normal(size=3), RNG.normal(size=3)])


def test_program_equality_and_hash():
    from symgrad.tensor.elemwise import SCALAR_OPS

    p1 = Program(1, [(SCALAR_OPS["exp"], [("i", 0)], "float64")], [0])
    p2 = Program(1, [(SCALAR_OPS["exp"], [("i", 0)], "float64")], [0])
    assert p1 == p2 and hash(p1) == hash(p2)
    assert FusedElemwise(p1) == FusedElemwise(p2)


def test_fused_values_match_unfused_on_specials():
    x, y = st.dvectors("x", "y")
    expr = st.log1p(st.abs(x)) * st.tanh(y) - st.exp(-x) / (1 + y * y)
    specials = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e308])
    a, b = np.meshgrid(specials, specials)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = symgrad.function([x, y], expr, mode="FAST_COMPILE")(a.ravel(), b.ravel())
        got = symgrad.function([x, y], expr)(a.ravel(), b.ravel())
    np.testing.assert_allclose(got, want, rtol=1e-14, equal_nan=True)


@pytest.mark.parametrize("shape", [(0,), (3, 0), (5,), (300, 700)])
def test_fused_values_on_empty_small_and_blocked_sizes(shape):
    x = st.tensor("x", dtype="float64", shape=(None,) * len(shape))
    expr = st.sigmoid(x) * st.softplus(-x) + st.exp(x * 0.5)
    f = symgrad.function([x], expr)
    a = RNG.normal(size=shape) * 20
    s = 1 / (1 + np.exp(-a))
    np.testing.assert_allclose(f(a), s * np.logaddexp(0, -a) + np.exp(a * 0.5), rtol=1e-12)
    assert f(a).shape == shape


def test_broadcasting_inside_a_fused_node():
    c, r = st.dcol("c"), st.drow("r")
    expr = st.exp(c) * st.sin(r) + c
    f = symgrad.function([c, r], expr)
    a, b = RNG.normal(size=(400, 1)), RNG.normal(size=(1, 500))
    np.testing.assert_allclose(f(a, b), np.exp(a) * np.sin(b) + a, rtol=1e-14)


def test_float32_fused():
    x = st.fmatrix("x")
    expr = st.sigmoid(x) * 2.0 + x * x
    f = symgrad.function([x], expr)
    a = RNG.normal(size=(400, 400)).astype("float32")
    out = f(a)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (2 / (1 + np.exp(-a)) + a * a), rtol=1e-5)


# -- in-place --------------------------------------------------------------------------------------

def inplace_nodes(f):
    return [n for n in f.maker.fgraph.apply_nodes
            if isinstance(n.op, Elemwise | FusedElemwise) and n.op.inplace]


def test_dead_intermediate_is_overwritten():
    x, y = st.dmatrices("x", "y")
    expr = st.exp(st.dot(x, y))  # the dot's result is dead after exp
    f = symgrad.function([x, y], expr)
    (node,) = inplace_nodes(f)
    assert node.op.inplace == ((0, 0),)
    assert "out=" in f.executable.source
    a, b = RNG.normal(size=(3, 4)), RNG.normal(size=(4, 2))
    np.testing.assert_allclose(f(a, b), np.exp(a @ b))


def test_never_overwrites_a_function_input():
    x = st.dmatrix("x")
    f = symgrad.function([x], st.exp(x))
    assert not inplace_nodes(f)
    a = RNG.normal(size=(3, 3))
    before = a.copy()
    f(a)
    np.testing.assert_array_equal(a, before)


def test_overwrites_a_mutable_input_when_allowed():
    x = st.dmatrix("x")
    f = symgrad.function([symgrad.In(x, mutable=True)], st.exp(x))
    assert inplace_nodes(f)
    a = RNG.normal(size=(3, 3))
    want = np.exp(a)
    out = f(a)
    np.testing.assert_allclose(out, want)
    np.testing.assert_allclose(a, want)  # the caller's array was reused


def test_never_overwrites_a_constant():
    x = st.dvector("x")
    c = st.constant(np.arange(4.0))
    f = symgrad.function([x], st.exp(c * 2) + x)  # folded: exp(c*2) is a constant
    for _ in range(2):
        np.testing.assert_allclose(f(np.zeros(4)), np.exp(np.arange(4.0) * 2))


def test_never_overwrites_shared_storage():
    w = symgrad.shared(np.arange(3.0), name="w")
    x = st.dvector("x")
    f = symgrad.function([x], st.exp(w) * x)
    for _ in range(2):
        np.testing.assert_allclose(f(np.ones(3)), np.exp(np.arange(3.0)))
    np.testing.assert_array_equal(w.get_value(), np.arange(3.0))


def test_never_overwrites_a_value_read_later():
    x, y = st.dmatrices("x", "y")
    d = st.dot(x, y)
    expr = [st.exp(d), st.sin(d)]  # d has two readers: no in-place
    f = symgrad.function([x, y], expr)
    a, b = RNG.normal(size=(2, 2)), RNG.normal(size=(2, 2))
    got = f(a, b)
    np.testing.assert_allclose(got[0], np.exp(a @ b))
    np.testing.assert_allclose(got[1], np.sin(a @ b))


def test_never_overwrites_a_view():
    x, y = st.dmatrices("x", "y")
    t = st.dot(x, y).T  # a view of the dot's result
    f = symgrad.function([x, y], [st.exp(t), st.dot(x, y)])
    a, b = RNG.normal(size=(2, 3)), RNG.normal(size=(3, 2))
    got = f(a, b)
    np.testing.assert_allclose(got[0], np.exp((a @ b).T))
    np.testing.assert_allclose(got[1], a @ b)


def test_never_overwrites_an_output():
    x, y = st.dmatrices("x", "y")
    d = st.dot(x, y)
    f = symgrad.function([x, y], [d, st.exp(d)])
    assert not inplace_nodes(f)
    a, b = RNG.normal(size=(2, 2)), RNG.normal(size=(2, 2))
    got = f(a, b)
    np.testing.assert_allclose(got[0], a @ b)


def test_no_inplace_when_the_shape_may_differ():
    x, y, z = st.dmatrices("x", "y", "z")
    d = st.dot(x, y)
    f = symgrad.function([x, y, z], st.exp(d) + z)  # z may be larger than d (broadcast)
    a, b = np.ones((1, 2)), np.ones((2, 1))
    np.testing.assert_allclose(f(a, b, np.zeros((3, 1))), np.full((3, 1), np.exp(2.0)))


def test_excluding_inplace():
    x, y = st.dmatrices("x", "y")
    f = symgrad.function([x, y], st.exp(st.dot(x, y)), mode=Mode("FAST_RUN").excluding("inplace"))
    assert not inplace_nodes(f)


def test_two_groups_that_feed_each_other_are_not_both_fused():
    # exp(x[0]) feeds the vector chain, and a sum of the vector chain feeds exp's group:
    # each group is convex, but fusing both would make them depend on each other
    x = st.dvector("x")
    W = st.dmatrix("W")
    f = st.tanh(st.dot(W, x)) * st.exp(x[0])
    u, v = st.dvectors("u", "v")
    lhs = (symgrad.Rop(f, x, v) * u).sum()
    rhs = (symgrad.Lop(f, x, u) * v).sum()
    fn = symgrad.function([x, W, u, v], [lhs, rhs])
    assert len(fn.maker.fgraph.toposort()) == len(fn.maker.fgraph.apply_nodes)
    args = RNG.normal(size=3), RNG.normal(size=(4, 3)), RNG.normal(size=4), RNG.normal(size=3)
    a, b = fn(*args)
    np.testing.assert_allclose(a, b)


# -- increments in place ---------------------------------------------------------------------------

def inplace_increments(f):
    return [n for n in f.maker.fgraph.apply_nodes if getattr(n.op, "destroy_map", None)]


def test_increments_of_a_gradient_write_into_one_fresh_zero_array():
    x = st.dvector("x")
    g = symgrad.grad(st.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2), x)
    f = symgrad.function([x], g)
    incs = inplace_increments(f)
    assert len(incs) == 2  # both increments, no copies
    assert any(type(n.op).__name__ == "Alloc" for n in f.maker.fgraph.apply_nodes)
    a = RNG.normal(size=6)
    want = symgrad.function([x], g, mode="FAST_COMPILE")(a)
    for _ in range(2):  # the zeros are allocated anew on each call
        np.testing.assert_allclose(f(a), want, rtol=1e-13)
    for n in (0, 1, 2):
        np.testing.assert_allclose(f(a[:n]), symgrad.function([x], g, mode="FAST_COMPILE")(a[:n]))


def test_increments_never_overwrite_an_input_a_constant_or_a_value_read_later():
    x, y = st.dvectors("x", "y")
    c = st.constant(np.arange(4.0))
    e = st.exp(x)
    outs = [st.inc_subtensor(x[1:], y), st.inc_subtensor(c[1:], y),
            st.inc_subtensor(e[1:], y) * e, st.set_subtensor(e[:2], 0.0)]
    f = symgrad.function([x, y], outs)
    assert not inplace_increments(f)
    a, b = RNG.normal(size=4), RNG.normal(size=3)
    before = a.copy()
    for _ in range(2):
        got = f(a, b)
        np.testing.assert_allclose(got[0], np.r_[a[0], a[1:] + b])
        np.testing.assert_allclose(got[1], np.r_[0.0, np.arange(1.0, 4.0) + b])
        np.testing.assert_allclose(got[2], np.r_[np.exp(a[0]), np.exp(a[1:]) + b] * np.exp(a))
        np.testing.assert_allclose(got[3], np.r_[0.0, 0.0, np.exp(a[2:])])
    np.testing.assert_array_equal(a, before)


def test_increment_overwrites_a_fresh_intermediate_and_a_mutable_input():
    x, y = st.dvectors("x", "y")
    f = symgrad.function([x, y], st.inc_subtensor(st.exp(x)[1:], y))
    assert len(inplace_increments(f)) == 1
    a, b = RNG.normal(size=4), RNG.normal(size=3)
    np.testing.assert_allclose(f(a, b), np.r_[np.exp(a[0]), np.exp(a[1:]) + b])
    fm = symgrad.function([symgrad.In(x, mutable=True), y], st.set_subtensor(x[1:], y))
    assert len(inplace_increments(fm)) == 1
    data = a.copy()
    np.testing.assert_allclose(fm(data, b), np.r_[a[0], b])
