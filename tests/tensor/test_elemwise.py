"""The elementwise machinery: Elemwise, DimShuffle, SumTo, sum_to_shape, cast, broadcasting."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.backends.python import OpRuntimeError
from symgrad.gradient import Lop, Rop, grad, verify_grad
from symgrad.graph import vectorize_graph
from symgrad.tensor.elemwise import (
    SCALAR_OPS,
    DimShuffle,
    Elemwise,
    ShapeMismatchError,
    SumTo,
    broadcast_like,
    broadcast_static_shapes,
    cast,
    provably_same_dims,
    sum_to_shape,
)
from tests.helpers import check_batching, check_static_shape, evaluate

DTYPES = ("float64", "float32", "int64", "int32", "int8", "bool")


def values_of(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        return rng.integers(-5, 6, size=shape).astype(dtype)
    return rng.normal(size=shape).astype(dtype)


# -- DimShuffle -------------------------------------------------------------------------------------

def _numpy_dimshuffle(x, pattern):
    kept = [d for d in pattern if d != "x"]
    dropped = tuple(d for d in range(x.ndim) if d not in kept)
    y = np.squeeze(x, axis=dropped) if dropped else x
    remaining = [d for d in range(x.ndim) if d not in dropped]
    y = np.transpose(y, [remaining.index(d) for d in kept])
    return y.reshape([1 if d == "x" else x.shape[d] for d in pattern])


# (input shape, pattern)
PATTERNS = [
    ((), ()),
    ((), ("x",)),
    ((), ("x", "x")),
    ((3,), (0,)),
    ((3,), ("x", 0)),
    ((3,), (0, "x")),
    ((2, 3), (1, 0)),
    ((2, 3), (0, "x", 1)),
    ((2, 3), ("x", 1, "x", 0)),
    ((2, 3, 4), (2, 0, 1)),
    ((2, 3, 4), (1, 2, 0)),
    ((1, 3), (1,)),  # drop a length-1 axis
    ((1, 3), ("x", 1)),
    ((3, 1), (0,)),
    ((3, 1, 2), (2, "x", 0)),
    ((1, 1), ()),
    ((0, 3), (1, 0)),  # empty
    ((2, 0, 1), ("x", 1, 0)),
]
PATTERN_IDS = [f"{s}-{p}" for s, p in PATTERNS]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pattern", PATTERNS, ids=PATTERN_IDS)
def test_dimshuffle_values(shape, pattern, dtype):
    xv = values_of(shape, dtype)
    want = _numpy_dimshuffle(xv, pattern)
    for static in (True, False):
        x = st.tensor("x", dtype=dtype, shape=shape if static else
                      tuple(1 if s == 1 else None for s in shape))
        y = x.dimshuffle(pattern)
        assert y.dtype == dtype
        if static:
            assert y.type.shape == want.shape
        got = evaluate(y, [x], [xv])
        check_static_shape(y, got)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_dimshuffle_static_shape_keeps_what_is_known():
    x = st.tensor("x", shape=(None, 3, 1))
    assert x.dimshuffle(1, "x", 0).type.shape == (3, 1, None)
    assert x.dimshuffle(0, 1).type.shape == (None, 3)
    y = st.dmatrix("y")
    assert y.dimshuffle(1).type.shape == (None,)  # dropping an unknown axis: checked at run time


def test_dimshuffle_build_errors():
    x = st.dmatrix("x")
    with pytest.raises(ValueError, match="repeats an axis"):
        x.dimshuffle(0, 0)
    with pytest.raises(ValueError, match="out of range"):
        x.dimshuffle(0, 2)
    with pytest.raises(TypeError, match="expects 3 dims"):
        DimShuffle(3, (0, 1, 2))(x)
    z = st.tensor("z", shape=(2, 3))
    with pytest.raises(ValueError, match="cannot drop axis 0"):
        z.dimshuffle(1)


def test_dimshuffle_drop_checked_at_run_time():
    x = st.dmatrix("x")
    f = symgrad.function([x], x.dimshuffle(1))
    np.testing.assert_array_equal(f(np.ones((1, 3))), np.ones(3))
    with pytest.raises(OpRuntimeError, match=r"DimShuffle.*axis 0 has length 3"):
        f(np.ones((3, 3)))


def test_dimshuffle_props_and_printing():
    assert DimShuffle(2, (1, 0)) == DimShuffle(2, [1, 0])
    assert hash(DimShuffle(2, (1, 0))) == hash(DimShuffle(2, (1, 0)))
    assert DimShuffle(2, (1, 0)) != DimShuffle(2, (0, 1))
    assert str(DimShuffle(2, (1, "x", 0))) == "DimShuffle{1,x,0}"
    assert DimShuffle(1, ("x", 0)).is_expand_only and not DimShuffle(2, (1, 0)).is_expand_only
    x = st.dmatrix("x")
    assert symgrad.pp(x.T) == "x.T"
    assert symgrad.pp(x.dimshuffle("x", 0, 1)) == "x"


DIFF_PATTERNS = [(s, p) for s, p in PATTERNS if 0 not in s]


@pytest.mark.parametrize("dtype", ("float64", "float32"))
@pytest.mark.parametrize("shape,pattern", DIFF_PATTERNS, ids=[f"{s}-{p}" for s, p in DIFF_PATTERNS])
def test_dimshuffle_verify_grad(shape, pattern, dtype):
    xv = values_of(shape, dtype)
    verify_grad(lambda x: x.dimshuffle(pattern) * 1.5, [xv])
    # gradient and tangent shapes
    x = st.tensor("x", dtype=dtype, shape=tuple(1 if s == 1 else None for s in shape))
    y = x.dimshuffle(pattern)
    g = grad((y * 2).sum(), x)
    t = x.type()
    r = Rop(y, x, t)
    gv, rv = evaluate([g, r], [x, t], [xv, xv])
    assert gv.shape == xv.shape and gv.dtype == xv.dtype
    np.testing.assert_array_equal(gv, np.full(shape, 2, dtype))
    np.testing.assert_array_equal(rv, _numpy_dimshuffle(xv, pattern))


def test_dimshuffle_pullback_of_an_unknown_length_gradient():
    """The cotangent's inserted axes can be statically unknown (they are length 1)."""
    x = st.dvector("x")
    node = x.dimshuffle("x", 0).owner
    gz = st.dmatrix("gz")  # (None, None), not (1, None)
    (gx,) = node.op.pullback(node.inputs, node.outputs, [gz])
    assert gx.ndim == 1
    np.testing.assert_array_equal(evaluate(gx, [gz], [np.arange(3.0)[None]]), np.arange(3.0))


@pytest.mark.parametrize("shape,pattern", DIFF_PATTERNS, ids=[f"{s}-{p}" for s, p in DIFF_PATTERNS])
def test_dimshuffle_dot_product_identity(shape, pattern):
    rng = np.random.default_rng(1)
    x = st.tensor("x", dtype="float64", shape=shape)
    y = x.dimshuffle(pattern)
    v, u = x.type(), y.type()
    r, lop = Rop(y, x, v), Lop(y, x, u)
    vv, uv = rng.normal(size=shape), rng.normal(size=y.type.shape)
    rv, lv = evaluate([r, lop], [x, v, u], [vv, vv, uv])
    assert rv.shape == uv.shape and lv.shape == vv.shape
    np.testing.assert_allclose(np.sum(rv * uv), np.sum(vv * lv), rtol=1e-12)


@pytest.mark.parametrize("shape,pattern", PATTERNS, ids=PATTERN_IDS)
def test_dimshuffle_batching(shape, pattern):
    xv = values_of(shape, "float64")
    check_batching(lambda x: x.dimshuffle(pattern), [xv])


def test_dimshuffle_second_derivative():
    verify_grad(lambda x: grad((st.exp(x.T) * x.T).sum(), x), [values_of((2, 3), "float64")])


# -- Elemwise: broadcasting machinery ----------------------------------------------------------------

def test_broadcast_static_shapes():
    assert broadcast_static_shapes("op", [(3, 1), (1, 4)]) == (3, 4)
    assert broadcast_static_shapes("op", [(None, 1), (1, 4)]) == (None, 4)
    assert broadcast_static_shapes("op", [(None, 1), (1, 1)]) == (None, 1)
    assert broadcast_static_shapes("op", [(1, 1), (1, 1)]) == (1, 1)
    assert broadcast_static_shapes("op", [(None, 5), (None, None)]) == (None, 5)
    assert broadcast_static_shapes("op", [(0, 3), (1, 3)]) == (0, 3)
    assert broadcast_static_shapes("op", [(), ()]) == ()
    with pytest.raises(ShapeMismatchError, match=r"op: shapes \(3, \?\) and \(2, 4\) cannot "
                                                 r"broadcast \(dimension 0: \[2, 3\]\)"):
        broadcast_static_shapes("op", [(3, None), (2, 4)])
    with pytest.raises(ShapeMismatchError, match=r"\(0,\) and \(3,\)"):
        broadcast_static_shapes("op", [(0,), (3,)])


@pytest.mark.parametrize("shapes", [
    [(3, 1), (1, 4)], [(5,), (2, 5)], [(), (2, 3)], [(2, 3), ()], [(2, 1, 3), (4, 1)],
    [(1,), (3,)], [(0, 3), (1, 3)], [(2, 1), (2, 1)], [(1, 1, 1), ()],
])
def test_elemwise_output_shape(shapes):
    want = np.broadcast_shapes(*shapes)
    vals = [values_of(s, "float64", seed=k) for k, s in enumerate(shapes)]
    for static in ("known", "unknown", "mixed"):
        xs = []
        for k, s in enumerate(shapes):
            if static == "known" or (static == "mixed" and k == 0):
                xs.append(st.tensor(f"x{k}", shape=s))
            else:
                xs.append(st.tensor(f"x{k}", shape=(None,) * len(s)))
        out = st.add(*xs)
        if static == "known":
            assert out.type.shape == want
        got = evaluate(out, xs, vals)
        check_static_shape(out, got)
        np.testing.assert_array_equal(got, np.add(*vals))


def test_runtime_broadcast_error_names_op_and_shapes():
    x, y = st.dmatrix("x"), st.dmatrix("y")
    f = symgrad.function([x, y], st.mul(st.exp(x), y))
    # (after fusion the failing op is named by its expression: Fused{(exp(i0) * i1)})
    with pytest.raises(OpRuntimeError, match=r"(mul|\*).*\(3, 4\).*\(2, 4\)"):
        f(np.ones((3, 4)), np.ones((2, 4)))
    v = st.dvector("v")
    f = symgrad.function([x, v], x - v)
    with pytest.raises(OpRuntimeError, match=r"sub.*\(3, 4\).*\(1, 5\)"):
        f(np.ones((3, 4)), np.ones(5))


def test_static_error_names_op_and_shapes_as_given():
    with pytest.raises(ShapeMismatchError, match=r"true_div: shapes \(4,\) and \(2, 5\)"):
        st.tensor(shape=(4,)) / st.tensor(shape=(2, 5))
    with pytest.raises(ShapeMismatchError, match=r"switch: shapes \(2,\) and \(3,\) and \(\)"):
        st.switch(st.tensor(shape=(2,), dtype="bool"), st.tensor(shape=(3,)), 0.0)


def test_elemwise_pads_with_dimshuffle_and_constants_stay_constants():
    x = st.dmatrix("x")
    v = st.dvector("v")
    out = x + v
    assert isinstance(out.owner.inputs[1].owner.op, DimShuffle)
    out = x + 2.5
    c = out.owner.inputs[1]
    assert isinstance(c, st.TensorConstant) and c.weak and c.ndim == 2
    out = x + np.ones(3)
    assert isinstance(out.owner.inputs[1], st.TensorConstant)
    assert not out.owner.inputs[1].weak


def test_elemwise_props_and_str():
    a = Elemwise(SCALAR_OPS["exp"])
    assert a == st.exp(st.dvector()).owner.op
    assert hash(a) == hash(Elemwise(SCALAR_OPS["exp"]))
    assert a != Elemwise(SCALAR_OPS["log"])
    assert str(a) == "exp"
    assert str(Elemwise(SCALAR_OPS["exp"], inplace=((0, 0),))) == "exp_inplace"
    assert a != Elemwise(SCALAR_OPS["exp"], inplace=((0, 0),))


def test_elemwise_inplace_flag_computes_the_same():
    x = st.dvector("x")
    node = Elemwise(SCALAR_OPS["exp"], inplace=((0, 0),))(x).owner
    xv = np.array([0.0, 1.0])
    np.testing.assert_allclose(node.op.make_thunk_function(node)(xv.copy()), np.exp(xv))


def test_scalar_outputs_come_back_as_arrays():
    x = st.dscalar("x")
    for out in (st.exp(x), st.round(x), x + 1, st.sign(x), x > 0):
        got = evaluate(out, [x], [1.5])
        assert isinstance(got, np.ndarray) and got.shape == ()


def test_thunks_return_arrays():
    """0-d results are 0-d arrays, not numpy scalars (buffers may be reused with out=)."""
    for fn, args in ((st.exp, [st.dscalar()]), (st.add, [st.dscalar(), st.dscalar()]),
                     (st.round, [st.dscalar()]), (st.gt, [st.dscalar(), 1.0]),
                     (lambda a: st.cast(a, "float32"), [st.dscalar()])):
        out = fn(*args)
        node = out.owner
        thunk = node.op.make_thunk_function(node)
        vals = [np.array(0.5) for i in node.inputs if not isinstance(i, st.TensorConstant)]
        consts = {k: i.data for k, i in enumerate(node.inputs) if isinstance(i, st.TensorConstant)}
        it = iter(vals)
        res = thunk(*[consts[k] if k in consts else next(it) for k in range(len(node.inputs))])
        assert type(res) is np.ndarray and res.shape == () and res.dtype == out.dtype


def test_thunk_output_dtype_is_the_static_dtype():
    """The runtime dtype always equals the declared one, for every input dtype combination."""
    for name in ("add", "true_div", "pow", "exp", "maximum", "reciprocal", "polygamma"):
        op = Elemwise(SCALAR_OPS[name])
        for d in DTYPES:
            nin = 1 if name in ("exp", "reciprocal") else 2
            dtypes = ["int64", d] if name == "polygamma" else [d] * nin
            xs = [st.tensor(dtype=t, shape=(None,)) for t in dtypes]
            try:
                out = op(*xs)
            except TypeError:
                continue
            vals = [np.abs(values_of((3,), t, seed=k)) + (t != "bool") for k, t in enumerate(dtypes)]
            with np.errstate(all="ignore"):
                got = evaluate(out, xs, vals)
            assert got.dtype == out.dtype, (name, d)


# -- batching of Elemwise ------------------------------------------------------------------------

def test_elemwise_batching_mixed():
    x, y = st.dmatrix("x"), st.dvector("y")
    out = st.exp(x) * y + 2.0
    xs = st.tensor3("xs")
    ys = st.dmatrix("ys")
    rng = np.random.default_rng(0)
    xv, yv = rng.normal(size=(2, 3)), rng.normal(size=3)
    xsv, ysv = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 3))
    f = symgrad.function([x, y], out)
    got = evaluate(vectorize_graph(out, {x: xs}), [xs, y], [xsv, yv])
    np.testing.assert_allclose(got, np.stack([f(a, yv) for a in xsv]))
    got = evaluate(vectorize_graph(out, {y: ys}), [x, ys], [xv, ysv])
    np.testing.assert_allclose(got, np.stack([f(xv, b) for b in ysv]))
    got = evaluate(vectorize_graph(out, {x: xs, y: ys}), [xs, ys], [xsv, ysv])
    np.testing.assert_allclose(got, np.stack([f(a, b) for a, b in zip(xsv, ysv)]))
    check_batching(lambda a, b: st.maximum(a, b) / (b * b + 1), [xv, yv])


# -- SumTo and sum_to_shape ----------------------------------------------------------------------

@pytest.mark.parametrize("xshape,target", [
    ((3, 4), (3, 1)), ((3, 4), (1, 4)), ((3, 4), (1, 1)), ((3, 4), (3, 4)), ((2, 3, 4), (2, 1, 4)),
    ((0, 4), (1, 4)), ((), ()),
])
def test_sum_to(xshape, target):
    xv = values_of(xshape, "float64")
    x = st.tensor("x", shape=(None,) * len(xshape))
    s = st.tensor("s", dtype="int64", shape=(len(target),)) if len(target) else None
    shape_var = s if s is not None else st.constant(np.zeros(0, "int64"))
    out = SumTo()(x, shape_var)
    assert out.type.shape == (None,) * len(target)
    ins, vals = ([x, s], [xv, np.array(target, "int64")]) if s is not None else ([x], [xv])
    got = evaluate(out, ins, vals)
    axes = tuple(k for k, (a, b) in enumerate(zip(xshape, target)) if a != b)
    np.testing.assert_allclose(got, xv.sum(axis=axes, keepdims=True))
    assert got.shape == target


def test_sum_to_errors_and_derivatives():
    x = st.dmatrix("x")
    with pytest.raises(ValueError, match="SumTo: x has 2 dims, target shape has 1"):
        SumTo()(x, st.constant(np.array([3], "int64")))
    with pytest.raises(TypeError, match="SumTo: the target shape needs a static length"):
        SumTo()(x, st.lvector("s"))
    node = SumTo()(x, x.shape).owner
    assert node.op.connection_pattern(node) == [True, False]
    target = st.constant(np.array([3, 1], "int64"))
    xv = values_of((3, 4), "float64")
    verify_grad(lambda a: SumTo()(a, target) * 2.0, [xv])
    # batching, with the batched input first
    y = st.dmatrix("y")
    check_batching(lambda a, b: SumTo()(a * 2.0, b.shape), [xv, np.ones((3, 1))])
    ys = st.tensor3("ys")
    out = SumTo()(x, y.shape)
    vec = vectorize_graph(out, {x: ys})
    got = evaluate(vec, [ys, y], [np.ones((2, 3, 4)), np.ones((3, 1))])
    np.testing.assert_array_equal(got, np.full((2, 3, 1), 4.0))


def test_sum_to_shape():
    g = st.tensor("g", shape=(3, 4))
    # statically known: a plain sum with keepdims, no SumTo
    inp = st.tensor("a", shape=(3, 1))
    r = sum_to_shape(g, inp)
    assert r.type.shape == (3, 1) and not isinstance(r.owner.op, SumTo)
    # a lower-dimensional input: the leading axes are summed away
    inp = st.tensor("b", shape=(4,))
    r = sum_to_shape(g, inp)
    assert r.type.shape == (4,)
    np.testing.assert_allclose(evaluate(r, [g], [np.ones((3, 4))]), np.full(4, 3.0))
    # unknown statically: SumTo at run time
    inp = st.dmatrix("c")
    r = sum_to_shape(g, inp)
    assert r.ndim == 2
    got = evaluate(r, [g, inp], [np.ones((3, 4)), np.ones((1, 4))])
    np.testing.assert_allclose(got, np.full((1, 4), 3.0))


def test_provably_same_dims():
    x, y = st.dmatrix("x"), st.tensor("y", shape=(None, 1))
    out = x + y
    assert provably_same_dims(x, out) == (False, True)
    assert provably_same_dims(y, out) == (False, False)  # a 1 against an unknown length
    out = x * x
    assert provably_same_dims(x, out) == (True, True)
    z = st.tensor("z", shape=(3, 4))
    assert provably_same_dims(z, z + st.tensor("w", shape=(3, 4))) == (True, True)


def test_broadcast_like():
    x = st.tensor("x", shape=(3, 4))
    c = st.tensor("c", shape=(3, 4))
    assert broadcast_like(c, x) is c
    v = st.dvector("v")
    b = broadcast_like(v, x)
    assert b.type.shape == (3, 4)
    got = evaluate(b, [x, v], [np.zeros((3, 4)), np.arange(4.0)])
    np.testing.assert_array_equal(got, np.broadcast_to(np.arange(4.0), (3, 4)))


def test_gradient_of_input_broadcast_at_run_time():
    """x of static type (?, ?) given a (3, 1) array, added to a (3, 4) array."""
    x, y = st.dmatrix("x"), st.dmatrix("y")
    out = (x + y) * y
    gx, gy = grad(out.sum(), [x, y])
    t = st.dmatrix("t")
    r = Rop(out, x, t)
    xv, yv = values_of((3, 1), "float64"), values_of((3, 4), "float64", 1)
    got_x, got_y, got_r = evaluate([gx, gy, r], [x, y, t], [xv, yv, xv])
    assert got_x.shape == (3, 1) and got_y.shape == (3, 4) and got_r.shape == (3, 4)
    np.testing.assert_allclose(got_x, yv.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(got_y, xv + 2 * yv)
    np.testing.assert_allclose(got_r, xv * yv)
    # a vector against a matrix
    v = st.dvector("v")
    gv = grad((x * v).sum(), v)
    got = evaluate(gv, [x, v], [yv, np.ones(4)])
    np.testing.assert_allclose(got, yv.sum(axis=0))
    got = evaluate(gv, [x, v], [xv, np.ones(4)])  # v broadcasts against x's (3, 1)
    np.testing.assert_allclose(got, np.full(4, xv.sum()))


def test_gradient_of_runtime_broadcast_second_order():
    x, y = st.dmatrix("x"), st.dmatrix("y")
    xv, yv = values_of((3, 1), "float64"), values_of((3, 4), "float64", 1)
    gx = grad(st.exp(x * y).sum(), x)
    f = symgrad.function([x, y], gx)
    gxy = grad((gx * gx).sum(), y)
    got = evaluate(gxy, [x, y], [xv, yv])
    eps = 1e-6
    num = np.zeros_like(yv)
    for i in np.ndindex(yv.shape):
        p, m = yv.copy(), yv.copy()
        p[i] += eps
        m[i] -= eps
        num[i] = (np.sum(f(xv, p) ** 2) - np.sum(f(xv, m) ** 2)) / (2 * eps)
    np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-8)


# -- cast ------------------------------------------------------------------------------------------

SPECIALS = np.array([0.0, -0.0, 1.5, -2.5, 3.0, 127.0, np.nan, np.inf, -np.inf])


@pytest.mark.parametrize("target", DTYPES)
@pytest.mark.parametrize("source", DTYPES)
def test_cast_values(source, target):
    xv = values_of((2, 3), source)
    x = st.tensor("x", dtype=source, shape=(None, 3))
    y = cast(x, target)
    if source == target:
        assert y is x
        return
    assert y.dtype == target and y.type.shape == (None, 3)
    assert y.owner.op.scalar_op.name == f"cast{{{target}}}"
    assert f"cast{{{target}}}" in SCALAR_OPS
    got = evaluate(y, [x], [xv])
    np.testing.assert_array_equal(got, xv.astype(target))
    assert got.dtype == np.dtype(target)
    assert x.astype(target).owner.op == y.owner.op
    if source in ("float64", "float32"):
        sv = SPECIALS.astype(source)
        with np.errstate(all="ignore"):
            want = sv.astype(target)
        v = st.tensor("v", dtype=source, shape=(None,))
        with np.errstate(all="ignore"):
            got = evaluate(cast(v, target), [v], [sv])
        np.testing.assert_array_equal(got, want)
    # empty
    e = evaluate(y, [x], [np.zeros((0, 3), source)])
    assert e.shape == (0, 3) and e.dtype == np.dtype(target)
    check_batching(lambda a: cast(a, target), [xv])


def test_cast_of_python_numbers_and_lists():
    assert cast(2.5, "float32").dtype == "float32"
    np.testing.assert_array_equal(cast([1.7, -1.2], "int32").eval(), np.array([1, -1], "int32"))


@pytest.mark.parametrize("source,target", [("float64", "float32"), ("float32", "float64")])
def test_cast_gradients(source, target):
    xv = values_of((2, 3), source)
    verify_grad(lambda x: cast(x, target) * 2.0, [xv])
    x = st.tensor("x", dtype=source, shape=(None, None))
    g = grad(cast(x, target).sum(), x)
    assert g.dtype == source
    t = x.type()
    r = Rop(cast(x, target), x, t)
    assert r.dtype == target


@pytest.mark.parametrize("target", ("int64", "int8", "bool"))
def test_cast_to_discrete_has_zero_gradient(target):
    x = st.dmatrix("x")
    cost = cast(cast(x * 3.0, target), "float64").sum() + x.sum()
    g = grad(cost, x)
    np.testing.assert_array_equal(evaluate(g, [x], [np.ones((2, 2))]), np.ones((2, 2)))
    t = st.dmatrix("t")
    r = Rop(cast(cast(x, target), "float64"), x, t)
    np.testing.assert_array_equal(evaluate(r, [x, t], [np.ones((2, 2)), np.ones((2, 2))]),
                                  np.zeros((2, 2)))


def test_grad_with_respect_to_an_integer_input():
    i = st.lvector("i")
    x = st.dvector("x")
    cost = (cast(i, "float64") * x).sum()
    gi = grad(cost, i)  # connected through the cast, but an integer has no gradient: zeros
    got = evaluate(gi, [i, x], [np.array([1, 2]), np.array([0.5, 0.5])])
    np.testing.assert_array_equal(got, np.zeros(2))
    gx = grad(cost, x)
    np.testing.assert_array_equal(evaluate(gx, [i, x], [np.array([1, 2]), np.ones(2)]), [1, 2])


def test_sum_to_batching_of_the_target_shape_only():
    x = st.dmatrix("x")
    s = st.tensor("s", dtype="int64", shape=(2,))
    ss = st.tensor("ss", dtype="int64", shape=(None, 2))
    out = SumTo()(x, s)
    vec = vectorize_graph(out, {s: ss})
    xv = values_of((3, 4), "float64")
    got = evaluate(vec, [x, ss], [xv, np.array([[3, 1], [3, 1]])])
    np.testing.assert_allclose(got, xv.sum(axis=1, keepdims=True))
    xs = st.tensor3("xs")
    vec = vectorize_graph(out, {s: ss, x: xs})
    got = evaluate(vec, [xs, ss], [np.stack([xv, 2 * xv]), np.array([[1, 4], [1, 4]])])
    np.testing.assert_allclose(got, np.stack([xv, 2 * xv]).sum(axis=1, keepdims=True))
