"""dot, matmul (@), tensordot, outer, einsum: values and dtypes against numpy, static
shapes, verify_grad, batching rules (every batched/unbatched combination, never a
loop), and error messages."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.backends.python import OpRuntimeError
from symgrad.gradient import verify_grad
from symgrad.graph import ancestors, vectorize_graph
from symgrad.graph.vectorize import BatchLoop
from symgrad.tensor.linalg import Dot, Einsum, MatMul
from symgrad.tensor.type import TensorType
from tests.helpers import check_batching, check_static_shape, evaluate, rng


def _var(value, static=False, name="v"):
    value = np.asarray(value)
    return TensorType(value.dtype, value.shape if static else (None,) * value.ndim)(name)


def _check(fn, ref, values, rtol=1e-10):
    for static in (False, True):
        vars_ = [_var(v, static, f"x{k}") for k, v in enumerate(values)]
        out = fn(*vars_)
        got = evaluate(out, vars_, values)
        want = np.asarray(ref(*values))
        check_static_shape(out, got)
        assert got.shape == want.shape
        assert out.dtype == want.dtype.name, (out.dtype, want.dtype)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    return out


def _no_loop(out):
    return not any(v.owner is not None and isinstance(v.owner.op, BatchLoop)
                   for v in ancestors([out]))


DOT_SHAPES = [
    ((), ()), ((), (3,)), ((2, 3), ()), ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)),
    ((2, 3), (3, 4)), ((2, 3, 4), (4,)), ((4,), (2, 4, 5)), ((2, 3, 4), (4, 5)),
    ((3, 4), (2, 4, 5)), ((2, 3, 4), (5, 4, 2)), ((0, 3), (3, 4)), ((2, 0), (0, 4)),
    ((0,), (0,)),
]


@pytest.mark.parametrize("sa,sb", DOT_SHAPES)
def test_dot_values(sa, sb):
    r = rng(0)
    _check(st.dot, np.dot, [r.normal(size=sa), r.normal(size=sb)])


@pytest.mark.parametrize("da,db", [("float32", "float32"), ("float32", "float64"),
                                   ("int64", "int64"), ("int32", "float32"), ("bool", "bool"),
                                   ("int8", "int64")])
@pytest.mark.parametrize("sa,sb", [((3,), (3,)), ((2, 3), (3, 4)), ((2, 3, 4), (4,))])
def test_dot_dtypes(da, db, sa, sb):
    r = rng(1)
    a = (r.normal(size=sa) * 3).astype(da)
    b = (r.normal(size=sb) * 3).astype(db)
    _check(st.dot, np.dot, [a, b], rtol=1e-5)
    _check(st.matmul, np.matmul, [a, b], rtol=1e-5)


def test_dot_2d_uses_the_direct_op():
    a, b, v = st.dmatrix("a"), st.dmatrix("b"), st.dvector("v")
    for out in (st.dot(a, b), st.dot(a, v), st.dot(v, b), st.dot(v, v), a.dot(v)):
        assert isinstance(out.owner.op, Dot)


MATMUL_SHAPES = [
    ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
    ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)), ((1, 2, 3), (5, 3, 4)), ((6, 1, 2, 3), (5, 3, 4)),
    ((5, 2, 3), (3,)), ((3,), (5, 3, 4)), ((0, 2, 3), (3, 4)), ((2, 0), (0, 3)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_values(sa, sb):
    r = rng(2)
    _check(st.matmul, np.matmul, [r.normal(size=sa), r.normal(size=sb)])
    _check(lambda a, b: a @ b, np.matmul, [r.normal(size=sa), r.normal(size=sb)])


@pytest.mark.parametrize("axes,sa,sb", [
    (2, (2, 3, 4), (3, 4, 5)), (1, (2, 3), (3, 4)), (0, (2, 3), (4,)), (([0], [1]), (2, 3), (4, 2)),
    (([2, 0], [0, 1]), (2, 3, 4), (4, 2, 5)), ((1, 0), (3, 4), (4, 2)), (([], []), (2,), (3,)),
    (([-1], [-2]), (2, 3), (5, 3, 4)),
])
def test_tensordot_values(axes, sa, sb):
    r = rng(3)
    _check(lambda a, b: st.tensordot(a, b, axes=axes), lambda a, b: np.tensordot(a, b, axes=axes),
           [r.normal(size=sa), r.normal(size=sb)])


@pytest.mark.parametrize("sa,sb", [((3,), (4,)), ((2, 2), (3,)), ((), (3,)), ((0,), (2,))])
def test_outer_values(sa, sb):
    r = rng(4)
    _check(st.outer, np.outer, [r.normal(size=sa), r.normal(size=sb)])
    _check(st.outer, np.outer, [np.arange(np.prod(sa, dtype=int)).reshape(sa).astype("int32"),
                                np.ones(sb, "float32")])


@pytest.mark.parametrize("subs,shapes", [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("bij,bjk->bik", [(5, 2, 3), (5, 3, 4)]),
    ("i,i->", [(3,), (3,)]), ("ij->ji", [(2, 3)]), ("ij,k->ikj", [(2, 3), (4,)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]), ("ij->i", [(2, 3)]), ("ij,j->j", [(2, 3), (3,)]),
])
def test_einsum(subs, shapes):
    r = rng(5)
    values = [r.normal(size=s) for s in shapes]
    _check(lambda *ops: st.einsum(subs, *ops), lambda *ops: np.einsum(subs, *ops), values)
    verify_grad(lambda *ops: st.einsum(subs, *ops), values)
    check_batching(lambda *ops: st.einsum(subs, *ops), values)
    if len(values) == 2:
        x = _var(values[0], name="x")
        xs = TensorType("float64", (None,) * (x.ndim + 1))("xs")
        out = vectorize_graph(st.einsum(subs, x, values[1]), {x: xs})
        batch = r.normal(size=(3,) + shapes[0])
        want = np.stack([np.einsum(subs, row, values[1]) for row in batch])
        np.testing.assert_allclose(evaluate(out, [xs], [batch]), want)


# -- derivatives ------------------------------------------------------------------------------------

GRAD_CASES = [
    ("dot", st.dot, [(3,), (3,)]), ("dot", st.dot, [(2, 3), (3,)]), ("dot", st.dot, [(3,), (3, 4)]),
    ("dot", st.dot, [(2, 3), (3, 4)]), ("dot", st.dot, [(2, 3, 4), (5, 4, 2)]),
    ("dot", st.dot, [(), (3, 2)]), ("dot", st.dot, [(2, 3, 4), (4,)]),
    ("matmul", st.matmul, [(5, 2, 3), (5, 3, 4)]), ("matmul", st.matmul, [(1, 2, 3), (5, 3, 4)]),
    ("matmul", st.matmul, [(5, 2, 3), (3, 4)]), ("matmul", st.matmul, [(3,), (5, 3, 4)]),
    ("matmul", st.matmul, [(5, 2, 3), (3,)]), ("matmul", st.matmul, [(3,), (3,)]),
    ("matmul", st.matmul, [(6, 1, 2, 3), (5, 3, 4)]),
    ("tensordot", lambda a, b: st.tensordot(a, b, axes=([2, 0], [0, 1])), [(2, 3, 4), (4, 2, 5)]),
    ("tensordot", lambda a, b: st.tensordot(a, b, axes=1), [(2, 3), (3, 4, 2)]),
    ("tensordot", lambda a, b: st.tensordot(a, b, axes=0), [(2,), (3, 2)]),
    ("outer", st.outer, [(3,), (4,)]), ("outer", st.outer, [(2, 2), (3,)]),
]


@pytest.mark.parametrize("name,fn,shapes", GRAD_CASES, ids=lambda c: str(c))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_verify_grad(name, fn, shapes, dtype):
    r = rng(6)
    verify_grad(fn, [r.normal(size=s).astype(dtype) for s in shapes])


def test_grad_with_mixed_dtypes_and_broadcast_batch():
    r = rng(7)
    a = st.tensor("a", dtype="float32", shape=(1, 2, 3))
    b = st.tensor("b", dtype="float64", shape=(5, 3, 4))
    ga, gb = symgrad.gradient.grad(st.matmul(a, b).sum(), [a, b])
    assert ga.dtype == "float32" and ga.type.shape == (1, 2, 3)
    av, bv = r.normal(size=(1, 2, 3)).astype("float32"), r.normal(size=(5, 3, 4))
    got = evaluate([ga, gb], [a, b], [av, bv])
    np.testing.assert_allclose(got[0], (np.ones((5, 2, 4)) @ bv.transpose(0, 2, 1))
                               .sum(0, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(got[1], np.broadcast_to(av.transpose(0, 2, 1) @ np.ones((1, 2, 4)),
                                                       (5, 3, 4)), rtol=1e-5)


def test_second_derivatives():
    r = rng(8)
    x = st.dvector("x")
    A = r.normal(size=(3, 3))
    h = symgrad.gradient.hessian(st.dot(x, st.dot(A, x)), x)
    np.testing.assert_allclose(evaluate(h, [x], [r.normal(size=3)]), A + A.T)
    h = symgrad.gradient.hessian(st.matmul(x, st.matmul(A, x)) ** 2, x)
    xv = r.normal(size=3)
    s = A + A.T
    want = 2 * np.outer(s @ xv, s @ xv) + 2 * (xv @ A @ xv) * s
    np.testing.assert_allclose(evaluate(h, [x], [xv]), want)


# -- batching ------------------------------------------------------------------------------------

def _batched_check(fn, values, flags, batch=3):
    """Batch the operands marked in ``flags``; compare with a Python loop over rows."""
    r = rng(9)
    core = [_var(v, name=f"c{k}") for k, v in enumerate(values)]
    out = fn(*core)
    bvals = [np.stack([v + r.normal(size=v.shape) for _ in range(batch)]) if f else v
             for v, f in zip(values, flags)]
    bvars = [_var(bv, name=f"b{k}") if f else c
             for k, (bv, c, f) in enumerate(zip(bvals, core, flags))]
    replace = {c: b for c, b, f in zip(core, bvars, flags) if f}
    vec = vectorize_graph(out, replace)
    assert _no_loop(vec), "the batching rule fell back to a loop"
    got = evaluate(vec, bvars, bvals)
    f = symgrad.function(core, out)
    want = np.stack([f(*[bv[k] if fl else bv for bv, fl in zip(bvals, flags)])
                     for k in range(batch)])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    check_static_shape(vec, got)
    return vec


FLAGS = [(True, False), (False, True), (True, True)]


@pytest.mark.parametrize("sa,sb", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4))])
@pytest.mark.parametrize("flags", FLAGS)
def test_dot_batching_all_combinations(sa, sb, flags):
    r = rng(10)
    vec = _batched_check(st.dot, [r.normal(size=sa), r.normal(size=sb)], flags)
    ops = {type(v.owner.op).__name__ for v in ancestors([vec]) if v.owner is not None}
    assert ops & {"Dot", "MatMul", "Sum", "Elemwise"}


def test_dot_batching_rules_pick_fast_ops():
    x, W = st.dvector("x"), st.dmatrix("W")
    xs = st.dmatrix("xs")
    out = vectorize_graph(st.dot(x, W), {x: xs})
    assert isinstance(out.owner.op, Dot) and out.ndim == 2  # (B, n) . (n, m): a 2-d dot
    As = st.dtensor3("As")
    out = vectorize_graph(st.dot(W, x), {W: As})
    assert isinstance(out.owner.op, MatMul)


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES[:12])
@pytest.mark.parametrize("flags", FLAGS)
def test_matmul_batching_all_combinations(sa, sb, flags):
    r = rng(11)
    _batched_check(st.matmul, [r.normal(size=sa), r.normal(size=sb)], flags)


@pytest.mark.parametrize("axes,sa,sb", [(1, (2, 3), (3, 4)), (([2, 0], [0, 1]), (2, 3, 4), (4, 2, 5)),
                                        (0, (2,), (3,))])
@pytest.mark.parametrize("flags", FLAGS)
def test_tensordot_batching(axes, sa, sb, flags):
    r = rng(12)
    _batched_check(lambda a, b: st.tensordot(a, b, axes=axes), [r.normal(size=sa),
                                                                r.normal(size=sb)], flags)


@pytest.mark.parametrize("sa,sb", [((2, 3, 4), (5, 4, 2)), ((2, 3, 4), (4,)), ((3,), (2, 3, 4))])
@pytest.mark.parametrize("flags", FLAGS)
def test_nd_dot_batching(sa, sb, flags):
    r = rng(13)
    _batched_check(st.dot, [r.normal(size=sa), r.normal(size=sb)], flags)


def test_outer_batching():
    r = rng(14)
    for flags in FLAGS:
        _batched_check(st.outer, [r.normal(size=3), r.normal(size=4)], flags)


def test_jacobian_through_dot_and_matmul():
    """jacobian batches the pullback over an identity: needs the batching rules of the
    derivative graphs."""
    r = rng(15)
    A = st.dmatrix("A")
    x = st.dvector("x")
    av, xv = r.normal(size=(3, 4)), r.normal(size=4)
    jac = symgrad.gradient.jacobian(st.tanh(st.dot(A, x)), [A, x])
    got = evaluate(jac, [A, x], [av, xv])
    d = 1 - np.tanh(av @ xv) ** 2
    np.testing.assert_allclose(got[1], d[:, None] * av)
    want_a = np.zeros((3, 3, 4))
    for i in range(3):
        want_a[i, i] = d[i] * xv
    np.testing.assert_allclose(got[0], want_a)
    B = st.dtensor3("B")
    jac = symgrad.gradient.jacobian(st.matmul(B, x).sum(axis=0), x)
    bv = r.normal(size=(2, 3, 4))
    np.testing.assert_allclose(evaluate(jac, [B, x], [bv, xv]), bv.sum(0))


# -- errors --------------------------------------------------------------------------------------

def test_dot_shape_mismatch_names_both_shapes():
    a = st.tensor("a", dtype="float64", shape=(3, 4))
    b = st.tensor("b", dtype="float64", shape=(5,))
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(5,\)"):
        st.dot(a, b)
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(5, 2\)"):
        st.dot(a, st.tensor("c", dtype="float64", shape=(5, 2)))
    with pytest.raises(ValueError, match=r"\(2, 3, 4\) and \(6, 5, 2\)"):
        st.dot(st.tensor("d", dtype="float64", shape=(2, 3, 4)),
               st.tensor("e", dtype="float64", shape=(6, 5, 2)))
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(5,\)"):
        st.matmul(a, b)
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(5,\)"):
        st.tensordot(a, b, axes=1)
    # at run time, numpy's message names the shapes too
    x, y = st.dmatrix("x"), st.dvector("y")
    with pytest.raises(OpRuntimeError, match=r"\(3, ?4\).*\(5,\)"):
        evaluate(st.dot(x, y), [x, y], [np.zeros((3, 4)), np.zeros(5)])


def test_other_errors():
    with pytest.raises(ValueError, match="0-d"):
        st.matmul(st.dscalar("s"), st.dvector("v"))
    with pytest.raises(ValueError, match="cannot broadcast"):
        st.matmul(st.tensor("a", dtype="float64", shape=(2, 3, 4)),
                  st.tensor("b", dtype="float64", shape=(5, 4, 3)))
    with pytest.raises(ValueError, match="out of range"):
        st.tensordot(st.dmatrix("a"), st.dmatrix("b"), axes=3)
    with pytest.raises(ValueError, match="axis 4 .*dimension 2"):
        st.tensordot(st.dmatrix("a"), st.dmatrix("b"), axes=([4], [0]))
    with pytest.raises(ValueError, match="explicit output"):
        st.einsum("ij,jk", st.dmatrix("a"), st.dmatrix("b"))
    with pytest.raises(ValueError, match="index 'j' has sizes 3 and 4"):
        Einsum("ij,jk->ik")(st.tensor("a", dtype="float64", shape=(2, 3)),
                            st.tensor("b", dtype="float64", shape=(4, 5)))


def test_static_shapes():
    a = st.tensor("a", dtype="float64", shape=(None, 3))
    b = st.tensor("b", dtype="float64", shape=(3, 7))
    assert st.dot(a, b).type.shape == (None, 7)
    assert st.matmul(st.tensor("c", dtype="float64", shape=(5, 1, 2, 3)), b).type.shape == (
        5, 1, 2, 7)
    assert st.tensordot(a, b, axes=1).type.shape == (None, 7)
    assert st.outer(st.tensor("u", dtype="float64", shape=(4,)), a[0]).type.shape == (4, 3)
    for sa, sb in itertools.product([(3,), (2, 3)], [(3,), (3, 4)]):
        out = st.dot(st.tensor("p", dtype="float64", shape=sa),
                     st.tensor("q", dtype="float64", shape=sb))
        assert out.type.shape == np.dot(np.zeros(sa), np.zeros(sb)).shape
