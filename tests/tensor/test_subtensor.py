"""Indexing: getitem (basic and advanced), set_subtensor, inc_subtensor, take."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.gradient import jacobian, verify_grad
from symgrad.graph import vectorize_graph
from symgrad.tensor.subtensor import (
    AdvancedIncSubtensor,
    AdvancedSubtensor,
    IncSubtensor,
    Subtensor,
)
from symgrad.tensor.type import TensorType
from tests.helpers import check_batching, check_static_shape, evaluate, rng

S = slice
M3 = np.array([True, False, True, True])  # a mask over an axis of length 4
M34 = np.arange(12).reshape(3, 4) % 3 == 0

# Index expressions on an array of shape (3, 4, 5).
INDICES = [
    1, -1, (1, 2), (-1, -2, 3), (0, 1, 2),
    S(1, 3), S(None, None, 2), S(None, None, -1), S(3, 0, -2), S(-2, None), S(0, 0),
    (S(1, 3), 2), (S(None), S(None), S(None, None, -2)), (S(1, None), -1, S(4, 0, -3)),
    None, (None, 1), (1, None, S(1, 3)), (Ellipsis, 1), (1, Ellipsis), (Ellipsis, None),
    (Ellipsis,), (), (S(None), Ellipsis, None, 2),
    [0, 2], [-1, 0, 0], [[0, 1], [2, 2]], [],
    (S(None), [1, 1, 3]), ([0, 1], [2, 3]), ([[0], [1]], [1, 2, 3]),
    ([0, 1], S(None), [2, 3]), (1, S(None), [2, 3]), (S(None), 1, [2, 3]),
    ([2, 0], S(1, 3)), (S(None), [0, 3], 4), (None, [0, 1], [2, 3]), ([0, 1], None, [2, 3]),
    (S(None), [0], Ellipsis, [1]), ([0], Ellipsis, [1]), (Ellipsis, [[1, 0]]),
    (S(None, None, -1), [[1, 0]], S(None, None, 2)),
    (S(None), M3), (M34,), (M34, S(1, 3)), (S(1, 2), M3, [0, 4, 4]), (2, M3), (np.True_,),
    (np.False_, 1), (M34, None),
]


def _symbolize(index):
    """Replace every int and int array in an index (also slice bounds) by a symbolic input."""
    if not isinstance(index, tuple):
        index = (index,)
    inputs, values = [], []

    def sym(v):
        if v is None or v is Ellipsis or isinstance(v, bool | np.bool_):
            return v
        arr = np.asarray(v)
        if arr.dtype == np.float64 and arr.size == 0:
            arr = arr.astype("int64")
        var = TensorType(arr.dtype, (None,) * arr.ndim)(f"i{len(inputs)}")
        inputs.append(var)
        values.append(arr)
        return var

    out = []
    for item in index:
        if isinstance(item, slice):
            out.append(slice(sym(item.start), sym(item.stop), sym(item.step)))
        else:
            out.append(sym(item))
    return tuple(out), inputs, values


@pytest.mark.parametrize("index", INDICES, ids=[repr(i) for i in INDICES])
@pytest.mark.parametrize("symbolic", [False, True])
def test_getitem_matches_numpy(index, symbolic):
    value = rng(1).normal(size=(3, 4, 5))
    want = value[index]
    for static in [(3, 4, 5), (None, None, None)]:
        x = st.tensor("x", dtype="float64", shape=static)
        if symbolic:
            sym_index, inputs, values = _symbolize(index)
            out = x[sym_index]
        else:
            inputs, values = [], []
            out = x[index]
        got = evaluate(out, [x, *inputs], [value, *values])
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
        check_static_shape(out, got)
        if static[0] is not None and not symbolic:
            assert out.type.shape == want.shape, (index, out.type)


@pytest.mark.parametrize("dtype", ["int32", "bool", "float32"])
def test_getitem_dtypes(dtype):
    value = (rng(2).normal(size=(4, 3)) * 5).astype(dtype)
    x = st.tensor("x", dtype=dtype, shape=(None, None))
    for index in [(1, S(None, None, -1)), ([0, 0, 3],), (value.astype(bool).any(1),)]:
        got = evaluate(x[index], [x], [value])
        np.testing.assert_array_equal(got, value[index])
        assert got.dtype == value.dtype


def test_index_kinds_choose_ops():
    x = st.dmatrix("x")
    assert isinstance(x[1:, 0].owner.op, Subtensor)
    assert not isinstance(x[1:, 0].owner.op, AdvancedSubtensor)
    assert isinstance(x[[0, 1]].owner.op, AdvancedSubtensor)
    assert isinstance(x[x > 0].owner.op, AdvancedSubtensor)
    # equal structure -> equal ops, whatever the (symbolic) index values
    i, j = st.lscalars("i", "j")
    assert x[i, 1:].owner.op == x[j, 2:].owner.op
    assert hash(x[i, 1:].owner.op) == hash(x[j, 2:].owner.op)
    assert x[i].owner.op != x[:, i].owner.op


def test_static_shapes():
    x = st.tensor("x", dtype="float64", shape=(10, None, 7))
    assert x[1:3].type.shape == (2, None, 7)
    assert x[::-3].type.shape == (4, None, 7)
    assert x[-4:, 0].type.shape == (4, 7)
    assert x[None, 2, ..., None].type.shape == (1, None, 7, 1)
    assert x[[0, 1, 1]].type.shape == (3, None, 7)
    assert x[:, :, [[0], [1]]].type.shape == (10, None, 2, 1)
    assert x[[0, 1], :, [2, 3]].type.shape == (2, None)
    assert x[np.arange(10) % 2 == 0].type.shape == (5, None, 7)
    assert x[x[:, 0, 0] > 0].type.shape == (None, None, 7)
    i = st.lscalar("i")
    assert x[i:].type.shape == (None, None, 7)
    assert x[i].type.shape == (None, 7)
    assert x[:, i:i].type.shape == (10, None, 7)


def test_subtensor_is_a_view_and_inputs_are_not_modified():
    x = st.dvector("x")
    node = x[1:].owner
    value = np.arange(4.0)
    out = node.op.make_thunk_function(node)(value, *[i.data for i in node.inputs[1:]])
    assert np.shares_memory(out, value)
    for build in [lambda: st.set_subtensor(x[1:], 5.0), lambda: st.inc_subtensor(x[[0, 0]], 1.0),
                  lambda: st.set_subtensor(x[x > 1], 0.0), lambda: st.inc_subtensor(x[2], 3.0)]:
        before = value.copy()
        symgrad.function([x], build())(value)
        np.testing.assert_array_equal(value, before)


def test_inplace_prop_writes_into_input():
    x = st.dvector("x")
    out = st.inc_subtensor(x[[0, 0, 2]], 1.0)
    node = out.owner
    assert node.op.inplace is False
    op = AdvancedIncSubtensor(node.op.idx_list, inplace=True)
    assert op.destroy_map == {0: [0]} and node.op.destroy_map == {}
    fn = op.make_thunk_function(op.make_node(*node.inputs))
    value = np.zeros(3)
    res = fn(value, 1.0, np.array([0, 0, 2]))
    assert res is value
    np.testing.assert_array_equal(value, [2.0, 0.0, 1.0])
    assert st.set_subtensor(x[1:], 0.0, inplace=True).owner.op.inplace


# -- set / inc -------------------------------------------------------------------------------

def _np_set(a, index, y):
    a = a.copy()
    a[index] = y
    return a


def _np_inc(a, index, y):
    a = a.copy()
    np.add.at(a, index, y)
    return a


SET_CASES = [
    (S(1, 3), (2, 4, 5)), (S(1, 3), (4, 5)), (S(1, 3), ()), ((1, 2), (5,)), ((1, 2, 3), ()),
    ((S(None), 1), (1, 5)), ((None, 1), (4, 1)), ((Ellipsis, S(None, None, -2)), (3,)),
    ([0, 0, 2], (3, 4, 5)), ([0, 0, 2], (4, 1)), ((S(None), [3, 1, 3]), (3, 3, 5)),
    (([0, 2, 0], S(None), [4, 4, 4]), (3, 4)), ((1, S(None), [1, 1]), (2, 4)),
    ((S(None), M3), (3, 3, 5)), ((M34,), (5,)), ((M34, 2), ()), ([[0, 1], [1, 1]], (5,)),
]


@pytest.mark.parametrize("index,yshape", SET_CASES, ids=[repr(c) for c in SET_CASES])
def test_set_inc_match_numpy(index, yshape):
    r = rng(3)
    a = r.normal(size=(3, 4, 5))
    yv = r.normal(size=yshape)
    x = st.dtensor3("x")
    y = st.tensor("y", dtype="float64", shape=(None,) * len(yshape))
    sym_index, inputs, values = _symbolize(index)
    for idx, ins, vals in [(index, [], []), (sym_index, inputs, values)]:
        s, i = st.set_subtensor(x[idx], y), st.inc_subtensor(x[idx], y)
        got_s, got_i = evaluate([s, i], [x, y, *ins], [a, yv, *vals])
        np.testing.assert_allclose(got_s, _np_set(a, index, yv))
        np.testing.assert_allclose(got_i, _np_inc(a, index, yv))
        check_static_shape(s, got_s)


def test_inc_repeats_add_every_occurrence_and_set_keeps_last():
    x = st.dvector("x")
    iv = st.lvector("iv")
    f = symgrad.function([x, iv], [st.inc_subtensor(x[iv], [1.0, 2.0, 3.0]),
                                   st.set_subtensor(x[iv], [1.0, 2.0, 3.0])])
    inc, set_ = f(np.zeros(4), np.array([1, 1, -3]))
    np.testing.assert_array_equal(inc, [0.0, 6.0, 0.0, 0.0])
    np.testing.assert_array_equal(set_, [0.0, 3.0, 0.0, 0.0])


def test_set_inc_dtypes():
    xi = st.lvector("xi")
    out = st.set_subtensor(xi[0], 2.7)  # numpy's assignment casts
    assert out.dtype == "int64"
    np.testing.assert_array_equal(out.eval({xi: np.zeros(2, "int64")}), [2, 0])
    assert st.inc_subtensor(xi[0], 2).dtype == "int64"
    with pytest.raises(TypeError, match="same_kind"):
        st.inc_subtensor(xi[0], st.dscalar("d"))
    xf = st.fvector("xf")
    assert st.inc_subtensor(xf[1:], st.dvector("dv")).dtype == "float32"


# -- take ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("indices", [2, [0, 2, 2], [[1, 0], [2, -1]]])
def test_take(axis, indices):
    a = rng(4).normal(size=(3, 4))
    x = st.dmatrix("x")
    out = st.take(x, indices, axis=axis)
    got = evaluate(out, [x], [a])
    np.testing.assert_array_equal(got, np.take(a, indices, axis=axis))
    check_static_shape(out, got)


def test_take_modes_and_symbolic_indices():
    a = np.arange(5.0)
    x, iv = st.dvector("x"), st.lvector("iv")
    ind = np.array([-7, 1, 9])
    for mode in ("wrap", "clip"):
        got = evaluate(st.take(x, iv, mode=mode), [x, iv], [a, ind])
        np.testing.assert_array_equal(got, np.take(a, ind, mode=mode))
    with pytest.raises(ValueError, match="axis 2 is out of bounds"):
        st.take(x, 0, axis=2)


# -- derivatives ---------------------------------------------------------------------------------

GRAD_INDICES = [
    1, (S(1, None), -1), S(None, None, -2), (None, 1, S(1, 3)), (Ellipsis, 2),
    [0, 0, 2], (S(None), [3, 1, 3]), ([0, 2, 0], S(None), [4, 4, 1]), (S(None), M3),
    ([[0], [1]], [1, 2]), (1, S(None), [2, 2]),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("index", GRAD_INDICES, ids=[repr(i) for i in GRAD_INDICES])
def test_verify_grad_getitem(index, dtype):
    a = rng(5).normal(size=(3, 4, 5)).astype(dtype)
    verify_grad(lambda x: x[index] * 1.5, [a])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("index,yshape", [
    (S(1, 3), (2, 4, 5)), (S(1, 3), (1, 5)), ((1, 2), (1,)), ((None, 1), (4, 1)),
    ([0, 0, 2], (3, 4, 5)), ([0, 0, 2], (1, 5)), ((S(None), [3, 1, 3]), (3, 1, 5)),
    (([0, 2, 0], S(None), [4, 4, 4]), (3, 4)), ((S(None), M3), (5,)), ((M34,), (4, 5)),
])
@pytest.mark.parametrize("fn", ["set", "inc"])
def test_verify_grad_set_inc(fn, index, yshape, dtype):
    r = rng(6)
    a = r.normal(size=(3, 4, 5)).astype(dtype)
    b = r.normal(size=yshape).astype(dtype)
    op = st.set_subtensor if fn == "set" else st.inc_subtensor
    verify_grad(lambda x, y: op(x[index], y) ** 2, [a, b])


@pytest.mark.parametrize("fn", ["set", "inc"])
def test_verify_grad_symbolic_repeated_indices(fn):
    r = rng(7)
    iv = st.lvector("iv")
    ind = np.array([2, 0, 2, -1, 1])
    op = st.set_subtensor if fn == "set" else st.inc_subtensor
    a, b = r.normal(size=(4, 3)), r.normal(size=(5, 3))
    x, y = st.dmatrix("x"), st.dmatrix("y")
    out = op(x[iv], y) ** 2
    cost = (out * r.normal(size=(4, 3))).sum()
    gx, gy = symgrad.grad(cost, [x, y])
    f = symgrad.function([x, y, iv], [cost, gx, gy])
    _, gxv, gyv = f(a, b, ind)
    eps = 1e-6
    for k, (val, g) in enumerate([(a, gxv), (b, gyv)]):
        num = np.zeros_like(val)
        for pos in np.ndindex(val.shape):
            plus, minus = [a.copy(), b.copy()], [a.copy(), b.copy()]
            plus[k][pos] += eps
            minus[k][pos] -= eps
            num[pos] = (f(*plus, ind)[0] - f(*minus, ind)[0]) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_verify_grad_take(dtype):
    a = rng(8).normal(size=(3, 4)).astype(dtype)
    verify_grad(lambda x: st.take(x, [3, 3, 0], axis=1), [a])
    verify_grad(lambda x: st.take(x, [[5, 5], [11, 0]]), [a])


def test_index_inputs_are_not_connected():
    x, i = st.dvector("x"), st.lscalar("i")
    with pytest.raises(symgrad.gradient.DisconnectedInputError):
        symgrad.grad(x[i], i)
    assert x[i].owner.op.connection_pattern(x[i].owner) == [True, False]
    node = st.inc_subtensor(x[i], 1.0).owner
    assert node.op.connection_pattern(node) == [True, True, False]


def test_rop_of_indexing():
    x, t = st.dvector("x"), st.dvector("t")
    a, tv = np.arange(4.0), np.ones(4) * 0.5
    r = symgrad.Rop(st.set_subtensor(x[[1, 1]], x[0] ** 2), x, t)
    np.testing.assert_allclose(evaluate(r, [x, t], [a, tv]), [0.5, 0.0, 0.5, 0.5])


# -- batching -----------------------------------------------------------------------------------

def test_check_batching_helper():
    v = rng(9).normal(size=(3, 4))
    check_batching(lambda x: x[1:, [0, 2, 2]], [v])
    check_batching(lambda x: x[[0, 2], 1:3], [v])
    check_batching(lambda x: x[[0, 2], :, None][:, [1, 1]], [v])
    check_batching(lambda x: x[[0, 1], None, [2, 3]], [v])  # separated: advanced dims first
    check_batching(lambda x: x[np.array([True, False, True])], [v])
    check_batching(lambda x, y: st.set_subtensor(x[1:, 2], y), [v, v[1:, 0]])
    check_batching(lambda x, y: st.inc_subtensor(x[[0, 0], :, None], y), [v, v[:1, :, None]])
    check_batching(lambda x, y: st.inc_subtensor(x[[0, 2], None, [1, 1]], y), [v, v[:2, :1]])


def _loop_check(build, core_inputs, batched_flags, values, batch=3, seed=10):
    """Vectorize ``build`` over the inputs flagged in batched_flags; compare with a loop."""
    r = rng(seed)
    out = build(*core_inputs)
    replace, rows, call_vars, call_vals = {}, [], [], []
    for var, flag, val in zip(core_inputs, batched_flags, values):
        if flag:
            vals = val(r, batch) if callable(val) else np.stack([val] * batch)
            bvar = TensorType(var.dtype, (None,) * (var.ndim + 1))(f"{var.name}_b")
            replace[var] = bvar
            call_vars.append(bvar)
            call_vals.append(vals)
            rows.append(vals)
        else:
            vals = val(r, None) if callable(val) else val
            call_vars.append(var)
            call_vals.append(vals)
            rows.append(None)
    vec = vectorize_graph(out, replace)
    got = evaluate(vec, call_vars, call_vals)
    f = symgrad.function(core_inputs, out, on_unused_input="ignore")
    want = np.stack([f(*[v[k] if flag else v for v, flag in zip(call_vals, batched_flags)])
                     for k in range(batch)])
    np.testing.assert_allclose(got, want)
    return vec


def _ints(low, high, shape=()):
    return lambda r, b: r.integers(low, high, size=shape if b is None else (b, *shape))


def _floats(shape):
    return lambda r, b: r.normal(size=shape if b is None else (b, *shape))


@pytest.mark.parametrize("flags", [(False, True), (True, False), (True, True)])
@pytest.mark.parametrize("case", [
    ("x[i]", lambda x, i: x[i], (4, 3), ()),
    ("x[:, i]", lambda x, i: x[:, i], (4, 3), ()),
    ("x[1:, i, None]", lambda x, i: x[1:, i, None], (4, 3), ()),
    ("x[iv]", lambda x, i: x[i], (4, 3), (2,)),
    ("x[None, :, iv]", lambda x, i: x[None, :, i], (4, 3), (2, 2)),
    ("x[iv, :, [0, 1]]", lambda x, i: x[i, :, [0, 1]], (4, 3, 2), (2,)),
    ("x[1:, iv, 1:]", lambda x, i: x[1:, i, 1:], (4, 3, 2), (2, 2)),
    ("x[i, :, iv]", lambda x, i: x[i[0], :, i], (4, 3, 2), (2,)),
])
def test_batched_index_getitem(case, flags):
    _, build, xshape, ishape = case
    n = min(xshape)
    x = TensorType("float64", (None,) * len(xshape))("x")
    i = TensorType("int64", (None,) * len(ishape))("i")
    vec = _loop_check(build, [x, i], flags, [_floats(xshape), _ints(-n, n, ishape)])
    if flags[1] and "v" not in case[0]:  # batched int scalar -> advanced, no loop
        assert not any(type(a.op).__name__ == "BatchLoop"
                       for a in symgrad.graph.traversal.toposort([vec]))


@pytest.mark.parametrize("flags", [
    (True, False, False), (False, True, False), (False, False, True), (True, True, False),
    (True, False, True), (False, True, True), (True, True, True)])
@pytest.mark.parametrize("case", [
    ("set x[i]", True, lambda x, y, i: (x[i], y), (4, 3), (3,), ()),
    ("inc x[i]", False, lambda x, y, i: (x[i], y), (4, 3), (1,), ()),
    ("inc x[:, i]", False, lambda x, y, i: (x[:, i], y), (4, 3), (4,), ()),
    ("inc x[1:, i, None]", False, lambda x, y, i: (x[1:, i, None], y), (4, 3), (3, 1), ()),
    ("inc x[iv]", False, lambda x, y, i: (x[i], y), (4, 3), (3,), (5,)),
    ("set x[iv] ", True, lambda x, y, i: (x[i], y), (4, 3), (5, 3), (5,)),
    ("inc x[iv, :, [0, 1]]", False, lambda x, y, i: (x[i, :, [0, 1]], y), (4, 3, 2), (2, 3), (2,)),
    ("inc x[1:, iv, 1:]", False, lambda x, y, i: (x[1:, i, 1:], y), (4, 3, 2), (1,), (2, 2)),
    ("set x[i, :, iv]", True, lambda x, y, i: (x[i[0], :, i], y), (4, 3, 2), (3,), (2,)),
])
def test_batched_set_inc(case, flags):
    _, set_, build, xshape, yshape, ishape = case
    n = min(xshape)
    x = TensorType("float64", (None,) * len(xshape))("x")
    y = TensorType("float64", (None,) * len(yshape))("y")
    i = TensorType("int64", (None,) * len(ishape))("i")
    fn = st.set_subtensor if set_ else st.inc_subtensor

    def full(x, y, i):
        region, yy = build(x, y, i)
        return fn(region, yy)

    _loop_check(full, [x, y, i], flags,
                [_floats(xshape), _floats(yshape), _ints(-n, n, ishape)])


def test_batched_slice_bounds_fall_back_to_loop():
    x, k = st.dvector("x"), st.lscalar("k")
    _loop_check(lambda x, k: x[k:k + 2] * 2, [x, k], (False, True),
                [np.arange(5.0), _ints(0, 4)])


# -- Jacobians ------------------------------------------------------------------------------------

def _numeric_jacobian(f, a, eps=1e-6):
    out = np.asarray(f(a))
    jac = np.zeros(out.shape + a.shape)
    for pos in np.ndindex(a.shape):
        d = np.zeros_like(a)
        d[pos] = eps
        jac[(Ellipsis,) + pos] = (np.asarray(f(a + d)) - np.asarray(f(a - d))) / (2 * eps)
    return jac


@pytest.mark.parametrize("index", [[0, 2, 2, -1], S(1, None), (S(None), [1, 1]), 1,
                                   (M3[:3],), (None, S(None, None, -1))])
def test_jacobian_of_indexing(index):
    a = rng(11).normal(size=(3, 2)) if isinstance(index, tuple) and len(index) == 2 and \
        index[0] == S(None) else rng(11).normal(size=(3,))
    x = TensorType("float64", (None,) * a.ndim)("x")
    expr = x[index] ** 2
    J = symgrad.function([x], jacobian(expr, x))
    f = symgrad.function([x], expr)
    np.testing.assert_allclose(J(a), _numeric_jacobian(f, a), rtol=1e-6, atol=1e-8)


def test_jacobian_of_set_subtensor():
    a = rng(12).normal(size=(4,))
    x = st.dvector("x")
    expr = st.set_subtensor(x[[1, 3]], x[:2] ** 3) * x
    J = symgrad.function([x], jacobian(expr, x))
    f = symgrad.function([x], expr)
    np.testing.assert_allclose(J(a), _numeric_jacobian(f, a), rtol=1e-6, atol=1e-8)


def test_forward_jacobian_and_hessian():
    a = np.array([0.5, 1.5, -0.7])
    xs = st.tensor("xs", dtype="float64", shape=(3,))  # static size: forward-mode Jacobian
    expr = st.inc_subtensor(xs[[0, 0]], xs[1:] ** 2) * xs[::-1]
    J = symgrad.function([xs], jacobian(expr, xs))
    np.testing.assert_allclose(J(a), _numeric_jacobian(symgrad.function([xs], expr), a),
                               rtol=1e-6, atol=1e-8)
    x = st.dvector("x")
    cost = ((x[[0, 0, 1]] ** 3).sum() + (x[1:] * x[:-1]).sum()
            + st.set_subtensor(x[2], x[0] * x[1]).prod())
    H = symgrad.function([x], symgrad.gradient.hessian(cost, x))
    g = symgrad.function([x], symgrad.grad(cost, x))
    np.testing.assert_allclose(H(a), _numeric_jacobian(g, a), rtol=1e-6, atol=1e-8)


def test_list_of_symbolic_scalars_index():
    x, i, j = st.dvector("x"), st.lscalar("i"), st.lscalar("j")
    np.testing.assert_array_equal(evaluate(x[[i, j, i]], [x, i, j], [np.arange(3.0), 2, 0]),
                                  [2.0, 0.0, 2.0])


def test_jacobian_rows_by_batching_an_index():
    """The tutorial recipe: grad(y[i], x) for i = arange(n), vectorized over i."""
    x = st.dvector("x")
    y = st.tanh(x) * x[::-1]
    i = st.lscalar("i")
    row = symgrad.grad(y[i], x)
    rows = vectorize_graph(row, {i: st.arange(y.shape[0])})
    assert not any(type(a.op).__name__ == "BatchLoop"
                   for a in symgrad.graph.traversal.toposort([rows]))
    a = rng(13).normal(size=(5,))
    np.testing.assert_allclose(evaluate(rows, [x], [a]),
                               _numeric_jacobian(symgrad.function([x], y), a), rtol=1e-6)


def test_jacobian_by_scan_recipe():
    scan = pytest.importorskip("symgrad.scan").scan
    x = st.dvector("x")
    y = x ** 2 * x[0]
    try:
        J, _ = scan(lambda i, y, x: symgrad.grad(y[i], x), sequences=st.arange(y.shape[0]),
                    non_sequences=[y, x])
    except NotImplementedError:  # pragma: no cover - scan not written yet
        pytest.skip("scan is not available yet")
    a = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(evaluate(J, [x], [a]),
                               _numeric_jacobian(symgrad.function([x], y), a), rtol=1e-6)


# -- errors -------------------------------------------------------------------------------------

def test_errors():
    x = st.dmatrix("x")
    with pytest.raises(IndexError, match="too many indices.*ndim 2"):
        x[0, 1, 2]
    with pytest.raises(IndexError, match="too many indices.*ndim 2"):
        x[M34, 0]
    with pytest.raises(TypeError, match="integers or booleans"):
        x[1.0]
    with pytest.raises(TypeError, match="integers or booleans"):
        x[st.dvector("f")]
    with pytest.raises(TypeError, match="integers or booleans"):
        x[[0.5, 1.0]]
    with pytest.raises(TypeError, match="slice indices must be integer"):
        x[st.dscalar("f"):]
    with pytest.raises(TypeError, match="slice indices must be integers"):
        x[0.5:]
    with pytest.raises(IndexError, match="single ellipsis"):
        x[..., ...]
    with pytest.raises(ValueError, match="slice step cannot be zero"):
        st.tensor("c", dtype="float64", shape=(3,))[::0]
    with pytest.raises(IndexError, match="index 5 is out of bounds for axis 1 with size 4"):
        st.tensor("c", dtype="float64", shape=(3, 4))[:, 5]
    with pytest.raises(IndexError, match="boolean index did not match"):
        st.tensor("c", dtype="float64", shape=(3, 4))[M3]
    with pytest.raises(IndexError, match="shape mismatch"):
        x[[0, 1], [0, 1, 2]]
    with pytest.raises(TypeError, match="result of indexing"):
        st.set_subtensor(x, 1.0)
    with pytest.raises(TypeError, match="result of indexing"):
        st.inc_subtensor(x * 2, 1.0)
    with pytest.raises(ValueError, match="cannot broadcast"):
        st.set_subtensor(x[0], st.dmatrix("y"))
    with pytest.raises(ValueError, match="cannot broadcast"):
        st.set_subtensor(st.tensor("c", dtype="float64", shape=(3, 4))[1:], np.ones(3))


@pytest.mark.parametrize("build,message", [
    (lambda x, i: x[i], "index 7 is out of bounds for axis 0 with size 3"),
    (lambda x, i: x[:, i], "index 7 is out of bounds for axis 1 with size 4"),
    (lambda x, i: x[[0, i]], "index 7 is out of bounds for axis 0 with size 3"),
    (lambda x, i: st.inc_subtensor(x[[1, i]], 1.0), "index 7 is out of bounds"),
    (lambda x, i: st.set_subtensor(x[1, i], 1.0), "index 7 is out of bounds"),
])
def test_runtime_out_of_bounds(build, message):
    x, i = st.dmatrix("x"), st.lscalar("i")
    f = symgrad.function([x, i], build(x, i))
    with pytest.raises(Exception, match=message):
        f(np.zeros((3, 4)), 7)


def test_runtime_mask_mismatch():
    x = st.dvector("x")
    m = st.tensor("m", dtype="bool", shape=(None,))
    f = symgrad.function([x, m], x[m])
    with pytest.raises(Exception, match="boolean index did not match"):
        f(np.zeros(3), np.ones(4, bool))


def test_str():
    x, i = st.dmatrix("x"), st.lscalar("i")
    assert str(x[i, 1:].owner.op) == "Subtensor{int, start:}"
    assert str(st.set_subtensor(x[[0]], 1.0).owner.op) == "AdvancedIncSubtensor{array, :, set}"
    assert isinstance(st.inc_subtensor(x[i], 1.0).owner.op, IncSubtensor)
