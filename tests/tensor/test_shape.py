"""Tests of symgrad.tensor.shape (and the creation functions it re-exports)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.config import config
from symgrad.gradient import Lop, Rop, verify_grad
from symgrad.graph import vectorize_graph
from symgrad.tensor.type import TensorType
from symgrad.tensor.variable import TensorConstant
from tests.helpers import check_batching, check_static_shape, evaluate, rng


@dataclass
class Case:
    id: str
    shapes: list
    fn: object  # symbolic: fn(*vars) -> tensor
    np_fn: object  # numpy: np_fn(*arrays) -> array
    grad: bool = True
    batch: bool = True
    dtypes: tuple = ("float64", "float32", "int64")
    extra_shapes: list = field(default_factory=list)  # further input shapes to try


def _si(x, i):
    return st.shape_i(x, i)


CASES = [
    Case("reshape_flat", [(2, 3)], lambda x: st.reshape(x, (-1,)), lambda x: x.reshape(-1),
         extra_shapes=[[(4, 1, 2)], [(0, 3)]]),
    Case("reshape_2d", [(2, 3, 4)], lambda x: st.reshape(x, (4, -1)),
         lambda x: x.reshape(4, -1)),
    Case("reshape_int", [(6,)], lambda x: st.reshape(x, 6), lambda x: x.reshape(6)),
    Case("reshape_to_scalar", [(1, 1)], lambda x: st.reshape(x, ()), lambda x: x.reshape(())),
    Case("reshape_symbolic", [(2, 3)], lambda x: st.reshape(x, (_si(x, 1), _si(x, 0))),
         lambda x: x.reshape(x.shape[1], x.shape[0])),
    Case("reshape_vector", [(2, 3)],
         lambda x: st.reshape(x, st.stack([_si(x, 1), -1])), lambda x: x.reshape(3, -1)),
    Case("reshape_method", [(2, 6)], lambda x: x.reshape(3, 2, 2), lambda x: x.reshape(3, 2, 2)),
    Case("flatten", [(2, 3, 4)], lambda x: st.flatten(x), lambda x: x.reshape(-1),
         extra_shapes=[[(3,)], [(2, 0, 4)]]),
    Case("flatten_2", [(2, 3, 4)], lambda x: st.flatten(x, 2), lambda x: x.reshape(2, -1),
         extra_shapes=[[(2, 0, 4)]]),
    Case("flatten_scalar", [()], lambda x: st.flatten(x), lambda x: x.reshape(-1)),
    Case("ravel", [(2, 3)], lambda x: x.ravel(), np.ravel),
    Case("transpose", [(2, 3, 4)], lambda x: st.transpose(x), np.transpose,
         extra_shapes=[[(3,)], [(2, 3)]]),
    Case("transpose_axes", [(2, 3, 4)], lambda x: st.transpose(x, (1, -1, 0)),
         lambda x: np.transpose(x, (1, 2, 0))),
    Case("T", [(2, 3)], lambda x: x.T, lambda x: x.T),
    Case("dimshuffle", [(2, 3)], lambda x: st.dimshuffle(x, (1, "x", 0)),
         lambda x: x.T[:, None, :]),
    Case("expand_dims_0", [(2, 3)], lambda x: st.expand_dims(x, 0), lambda x: x[None]),
    Case("expand_dims_neg", [(2, 3)], lambda x: st.expand_dims(x, -1),
         lambda x: np.expand_dims(x, -1)),
    Case("expand_dims_tuple", [(2, 3)], lambda x: st.expand_dims(x, (0, 2)),
         lambda x: np.expand_dims(x, (0, 2))),
    Case("squeeze_axis", [(2, 1, 3)], lambda x: st.squeeze(x, 1), lambda x: np.squeeze(x, 1)),
    Case("squeeze_axes", [(1, 2, 1)], lambda x: st.squeeze(x, (0, -1)),
         lambda x: np.squeeze(x, (0, 2))),
    Case("concatenate_0", [(2, 3), (4, 3)], lambda x, y: st.concatenate([x, y]),
         lambda x, y: np.concatenate([x, y]), extra_shapes=[[(0, 3), (2, 3)]]),
    Case("concatenate_1", [(2, 3), (2, 1), (2, 2)], lambda x, y, z: st.concatenate([x, y, z], 1),
         lambda x, y, z: np.concatenate([x, y, z], 1)),
    Case("concatenate_neg", [(2, 3, 1), (2, 3, 2)], lambda x, y: st.concatenate([x, y], -1),
         lambda x, y: np.concatenate([x, y], -1)),
    Case("concatenate_self", [(3,)], lambda x: st.concatenate([x, x * 2, x]),
         lambda x: np.concatenate([x, x * 2, x])),
    Case("stack_0", [(2, 3), (2, 3)], lambda x, y: st.stack([x, y]),
         lambda x, y: np.stack([x, y])),
    Case("stack_1", [(2, 3), (2, 3), (2, 3)], lambda x, y, z: st.stack([x, y, z], 1),
         lambda x, y, z: np.stack([x, y, z], 1)),
    Case("stack_neg", [(2, 3), (2, 3)], lambda x, y: st.stack([x, y], -1),
         lambda x, y: np.stack([x, y], -1)),
    Case("stack_scalars", [(), ()], lambda x, y: st.stack([x, y, x]),
         lambda x, y: np.stack([x, y, x])),
    Case("as_tensor_list", [(), ()], lambda x, y: st.as_tensor_variable([[x, y], [y, x]]),
         lambda x, y: np.array([[x, y], [y, x]])),
    Case("split_0", [(6, 2)], lambda x: st.split(x, [1, 2, 3], 3)[1],
         lambda x: np.split(x, [1, 3])[1]),
    Case("split_1", [(2, 5)], lambda x: st.split(x, [2, 0, 3], 3, axis=-1)[2],
         lambda x: np.split(x, [2, 2], axis=1)[2]),
    Case("split_sum", [(5,)], lambda x: st.concatenate(st.split(x, [3, 2], 2)[::-1]),
         lambda x: np.concatenate([x[3:], x[:3]])),
    Case("broadcast_to", [(3,)], lambda x: st.broadcast_to(x, (2, 3)),
         lambda x: np.broadcast_to(x, (2, 3))),
    Case("broadcast_to_1", [(2, 1)], lambda x: st.broadcast_to(x, (3, 2, 4)),
         lambda x: np.broadcast_to(x, (3, 2, 4))),
    Case("broadcast_to_scalar", [()], lambda x: st.broadcast_to(x, (2, 2)),
         lambda x: np.broadcast_to(x, (2, 2))),
    Case("broadcast_to_shape", [(3,), (2, 3)], lambda x, y: st.broadcast_to(x, y.shape),
         lambda x, y: np.broadcast_to(x, y.shape)),
    Case("alloc", [(3,)], lambda x: st.alloc(x, 4, 2, 3),
         lambda x: np.broadcast_to(x, (4, 2, 3))),
    Case("alloc_symbolic", [(2, 1), (5,)], lambda x, y: st.alloc(x, _si(y, 0), 2, _si(y, 0)),
         lambda x, y: np.broadcast_to(x, (5, 2, 5))),
    Case("specify_shape", [(2, 3)], lambda x: st.specify_shape(x, (2, None)), lambda x: x),
    Case("repeat_0", [(2, 3)], lambda x: st.repeat(x, 2, axis=0),
         lambda x: np.repeat(x, 2, axis=0)),
    Case("repeat_1", [(2, 3)], lambda x: x.repeat(3, axis=-1), lambda x: np.repeat(x, 3, -1)),
    Case("repeat_none", [(2, 3)], lambda x: st.repeat(x, 2), lambda x: np.repeat(x, 2)),
    Case("repeat_zero", [(2, 3)], lambda x: st.repeat(x, 0, axis=1),
         lambda x: np.repeat(x, 0, axis=1)),
    Case("repeat_vector", [(2, 3)], lambda x: st.repeat(x, [1, 0, 2], axis=1),
         lambda x: np.repeat(x, [1, 0, 2], axis=1)),
    Case("repeat_vector1", [(2, 3)], lambda x: st.repeat(x, [2], axis=0),
         lambda x: np.repeat(x, [2], axis=0)),
    Case("repeat_symbolic", [(3,), (2, 2)], lambda x, y: st.repeat(x, _si(y, 0)),
         lambda x, y: np.repeat(x, y.shape[0])),
    Case("tile", [(2, 3)], lambda x: st.tile(x, (2, 2)), lambda x: np.tile(x, (2, 2))),
    Case("tile_more_reps", [(3,)], lambda x: st.tile(x, (2, 1, 2)),
         lambda x: np.tile(x, (2, 1, 2))),
    Case("tile_fewer_reps", [(2, 3)], lambda x: st.tile(x, 3), lambda x: np.tile(x, 3)),
    Case("tile_symbolic", [(2,), (3,)], lambda x, y: st.tile(x, (_si(y, 0), 1)),
         lambda x, y: np.tile(x, (y.shape[0], 1))),
    Case("full_like", [(2, 3)], lambda x: st.full_like(x, 2), lambda x: np.full_like(x, 2)),
    Case("zeros_like", [(2, 3)], lambda x: st.zeros_like(x) + x, lambda x: x),
    Case("ones_like", [(2, 3)], lambda x: st.ones_like(x), np.ones_like),
    Case("full_value", [()], lambda v: st.full((2, 3), v), lambda v: np.full((2, 3), v)),
    Case("full_vector", [(3,)], lambda v: st.full((2, 3), v), lambda v: np.full((2, 3), v)),
]

_IDS = [c.id for c in CASES]


def _values(case, dtype, shapes=None, seed=0):
    r = rng(seed)
    out = []
    for s in shapes or case.shapes:
        if dtype.startswith("int"):
            out.append(r.integers(-5, 6, size=s).astype(dtype))
        else:
            out.append(r.normal(size=s).astype(dtype))
    return out


def _vars(values, static):
    return [TensorType(v.dtype, v.shape if static else (None,) * v.ndim)(f"x{k}")
            for k, v in enumerate(values)]


@pytest.mark.parametrize("case", CASES, ids=_IDS)
@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
@pytest.mark.parametrize("static", [False, True], ids=["unknown", "static"])
def test_values_and_static_shape(case, dtype, static):
    if dtype not in case.dtypes:
        pytest.skip("dtype not meaningful")
    for shapes in [case.shapes] + case.extra_shapes:
        values = _values(case, dtype, shapes)
        xs = _vars(values, static)
        out = case.fn(*xs)
        got = evaluate(out, xs, values)
        want = case.np_fn(*values)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.asarray(want).dtype, (got.dtype, np.asarray(want).dtype)
        check_static_shape(out, got)
        if static:
            assert None not in out.type.shape, out.type


@pytest.mark.parametrize("case", [c for c in CASES if c.grad], ids=[c.id for c in CASES if c.grad])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_verify_grad(case, dtype):
    values = _values(case, dtype, seed=1)
    verify_grad(case.fn, values, rng=np.random.default_rng(3))


@pytest.mark.parametrize("case", [c for c in CASES if c.batch], ids=[c.id for c in CASES if c.batch])
def test_batching(case):
    check_batching(case.fn, _values(case, "float64", seed=2))


# -- batching with only some inputs batched -------------------------------------------------

def _check_partial(build, values, batched_flags, batch=3, static=False):
    r = rng(5)
    core = _vars(values, static)
    out = build(*core)
    bvals = [np.stack([v + r.normal(size=v.shape) for _ in range(batch)]) if f else v
             for v, f in zip(values, batched_flags)]
    new = [TensorType(b.dtype, (None,) * b.ndim)(f"b{k}") if f else c
           for k, (b, c, f) in enumerate(zip(bvals, core, batched_flags))]
    vec = vectorize_graph(out, {c: n for c, n, f in zip(core, new, batched_flags) if f})
    got = evaluate(vec, new, bvals)
    f = symgrad.function(core, out, on_unused_input="ignore")
    want = np.stack([f(*[b[k] if fl else b for b, fl in zip(bvals, batched_flags)])
                     for k in range(batch)])
    np.testing.assert_allclose(got, want)
    check_static_shape(vec, got)


PARTIAL = [
    ("concatenate_first", [(2, 3), (4, 3)], lambda x, y: st.concatenate([x, y]), (True, False)),
    ("concatenate_second", [(2, 3), (2, 1)], lambda x, y: st.concatenate([x, y], 1),
     (False, True)),
    ("stack_one", [(3,), (3,), (3,)], lambda x, y, z: st.stack([x, y, z], 1),
     (False, True, False)),
    ("alloc_value", [(3,), (4,)], lambda x, y: st.alloc(x, _si(y, 0), 3), (True, False)),
    ("alloc_shape_only", [(3,), (4,)],
     lambda x, y: st.alloc(x, _si(y, 0), 3) + st.expand_dims(y, 1), (False, True)),
    ("reshape_shape_of_unbatched", [(2, 3), (3, 2)], lambda x, y: st.reshape(x, st.shape(y)),
     (True, False)),
    ("reshape_shape_of_batched", [(2, 3), (3, 2)],
     lambda x, y: st.reshape(x, st.shape(y)) + y, (False, True)),
    ("broadcast_to_other", [(3,), (2, 3)], lambda x, y: st.broadcast_to(x, y.shape) + y,
     (True, False)),
    ("split_batched", [(5, 2)], lambda x: st.split(x, [2, 3], 2)[1], (True,)),
    ("repeat_batched", [(2, 3), (4,)], lambda x, y: st.repeat(x, _si(y, 0), axis=1),
     (True, False)),
    ("repeat_vector_batched", [(2, 3)], lambda x: st.repeat(x, [2, 0, 1], axis=1), (True,)),
    ("tile_batched", [(2, 3)], lambda x: st.tile(x, (2, 1, 3)), (True,)),
    ("specify_batched", [(2, 3)], lambda x: st.specify_shape(x, (2, 3)), (True,)),
    ("flatten_batched", [(2, 3, 4)], lambda x: st.flatten(x, 2), (True,)),
    ("squeeze_batched", [(2, 1)], lambda x: st.squeeze(x, 1), (True,)),
]


@pytest.mark.parametrize("build_id,shapes,build,flags", PARTIAL, ids=[p[0] for p in PARTIAL])
@pytest.mark.parametrize("static", [False, True], ids=["unknown", "static"])
def test_partial_batching(build_id, shapes, build, flags, static):
    values = [rng(1).normal(size=s) for s in shapes]
    _check_partial(build, values, flags, static=static)


def test_shape_batching_is_unbatched():
    x = st.dmatrix("x")
    xs = st.tensor3("xs", dtype="float64")
    for out, want in [(st.shape(x), [2, 3]), (st.shape_i(x, 1), 3)]:
        vec = vectorize_graph(out, {x: xs})
        assert vec.ndim == out.ndim
        np.testing.assert_array_equal(vec.eval({xs: np.zeros((4, 2, 3))}), want)


def test_vectorize_with_batched_shape_falls_back_to_loop():
    x = st.dvector("x")
    n = st.lscalar("n")
    out = st.alloc(x, n, 3)
    ns = st.lvector("ns")
    vec = vectorize_graph(out, {n: ns})
    with pytest.raises(ValueError):  # rows of different lengths cannot be stacked
        vec.eval({x: np.ones(3), ns: np.array([1, 2])})
    np.testing.assert_array_equal(vec.eval({x: np.ones(3), ns: np.array([2, 2])}),
                                  np.ones((2, 2, 3)))


# -- shape -------------------------------------------------------------------------------------

def test_shape_values_and_constants():
    x = st.tensor("x", dtype="float32", shape=(None, 3, 1))
    s = st.shape(x)
    assert s.type == TensorType("int64", (3,))
    np.testing.assert_array_equal(s.eval({x: np.zeros((5, 3, 1), "float32")}), [5, 3, 1])
    assert isinstance(st.shape(st.tensor("y", shape=(2, 3))), TensorConstant)
    assert isinstance(st.shape_i(x, 1), TensorConstant)
    assert st.shape_i(x, -1).data == 1
    assert st.shape_i(x, 0).eval({x: np.zeros((5, 3, 1), "float32")}) == 5
    assert st.shape(st.dscalar("z")).eval({}).shape == (0,)
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        st.shape_i(x, 3)


def test_shape_not_differentiable():
    x = st.dvector("x")
    node = st.shape(x).owner
    assert node.op.connection_pattern(node) == [False]
    y = x * st.cast(st.shape_i(x, 0), "float64")
    g = Lop(y, x, st.ones_like(y))
    np.testing.assert_allclose(g.eval({x: np.ones(4)}), np.full(4, 4.0))
    t = Rop(y, x, st.ones_like(x))
    np.testing.assert_allclose(t.eval({x: np.ones(4)}), np.full(4, 4.0))


def test_shape_indexing():
    x = st.dmatrix("x")
    assert x.shape[0].eval({x: np.zeros((4, 2))}) == 4
    np.testing.assert_array_equal(x.shape[1:].eval({x: np.zeros((4, 2))}), [2])
    # Static lengths are read through indexing of a shape.
    y = st.tensor("y", shape=(None, 3, 4))
    assert st.alloc(0.0, y.shape[1], y.shape[-1], y.shape[0]).type.shape == (3, 4, None)
    assert st.reshape(y, st.concatenate([y.shape[1:], [-1]])).type.shape == (3, 4, None)
    assert st.zeros(y.shape[::-1]).type.shape == (4, 3, None)
    out = st.reshape(y, st.concatenate([y.shape[:1], [-1]]))
    assert out.eval({y: np.zeros((2, 3, 4))}).shape == (2, 12)


def test_concatenate_shape():
    x = st.dmatrix("x")
    s = st.concatenate_shape([st.shape(x), [7]])
    assert s.type == TensorType("int64", (3,))
    np.testing.assert_array_equal(s.eval({x: np.zeros((2, 5))}), [2, 5, 7])


# -- static shape inference --------------------------------------------------------------------

@pytest.mark.parametrize("build,expected", [
    (lambda: st.reshape(st.tensor("x", shape=(2, 3)), (3, -1)), (3, 2)),
    (lambda: st.reshape(st.tensor("x", shape=(None, 3)), (3, -1)), (3, None)),
    (lambda: st.flatten(st.tensor("x", shape=(None, 3, 4)), 2), (None, 12)),
    (lambda: st.alloc(st.tensor("x", shape=(None, 3)), st.lscalar("n"), 3), (None, 3)),
    (lambda: st.alloc(st.tensor("x", shape=(4, 1)), 2, st.lscalar("n"), 5), (2, 4, 5)),
    (lambda: st.concatenate([st.tensor("x", shape=(2, None)), st.tensor("y", shape=(3, 4))]),
     (5, 4)),
    (lambda: st.concatenate([st.tensor("x", shape=(None, 2)), st.tensor("y", shape=(3, 2))]),
     (None, 2)),
    (lambda: st.stack([st.tensor("x", shape=(None, 2)), st.tensor("y", shape=(3, None))], 1),
     (3, 2, 2)),
    (lambda: st.broadcast_to(st.tensor("x", shape=(None,)), st.shape(st.dmatrix("m"))),
     (None, None)),
    (lambda: st.specify_shape(st.dmatrix("x"), (None, 4)), (None, 4)),
    (lambda: st.split(st.tensor("x", shape=(None, 5)), [2, 3], 2, axis=1)[1], (None, 3)),
    (lambda: st.repeat(st.tensor("x", shape=(None, 3)), [1, 2, 3], axis=1), (None, 6)),
    (lambda: st.repeat(st.tensor("x", shape=(2, None)), 3, axis=0), (6, None)),
    (lambda: st.tile(st.tensor("x", shape=(None, 3)), (2, 2)), (None, 6)),
    (lambda: st.squeeze(st.tensor("x", shape=(1, None, 1))), (None,)),
    (lambda: st.zeros((2, st.lscalar("n"))), (2, None)),
    (lambda: st.arange(2, 10, 3), (3,)),
    (lambda: st.arange(st.lscalar("n")), (None,)),
    (lambda: st.eye(3, 4), (3, 4)),
    (lambda: st.eye(st.lscalar("n")), (None, None)),
])
def test_static_shape_inference(build, expected):
    assert build().type.shape == expected


# -- creation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fn,np_fn", [
    (st.zeros, np.zeros), (st.ones, np.ones),
])
@pytest.mark.parametrize("dtype", [None, "float32", "int64", "bool"])
def test_zeros_ones(fn, np_fn, dtype):
    for shp in [(2, 3), 4, (), (0, 2)]:
        out = fn(shp, dtype=dtype)
        got = out.eval({})
        want = np_fn(shp, dtype=dtype or config.floatX)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
        assert out.type.shape == np.shape(want)
    with config.change_flags(floatX="float32"):
        assert fn((2,)).dtype == "float32"
    n = st.lscalar("n")
    np.testing.assert_array_equal(fn((n, 2)).eval({n: 3}), np_fn((3, 2)))


def test_full_and_like():
    np.testing.assert_array_equal(st.full((2, 2), 7).eval({}), np.full((2, 2), 7))
    assert st.full((2,), 7).dtype == "int64"
    assert st.full((2,), 7, dtype="float32").dtype == "float32"
    x = st.fmatrix("x")
    v = np.ones((2, 3), "float32")
    assert st.zeros_like(x).dtype == "float32"
    assert st.ones_like(x, dtype="int64").dtype == "int64"
    np.testing.assert_array_equal(st.full_like(x, 2.5).eval({x: v}), np.full_like(v, 2.5))
    np.testing.assert_array_equal(st.ones_like(x, dtype="int64").eval({x: v}),
                                  np.ones((2, 3), "int64"))
    with config.change_flags(floatX="float32"):  # Python floats are floatX, as in PyTensor
        assert st.full((2,), 1.5).dtype == "float32"
        assert st.alloc(0.5, 3).dtype == "float32"
        assert st.arange(0.0, 3.0).dtype == "float32"


@pytest.mark.parametrize("args,kwargs", [
    ((5,), {}), ((2, 10, 3), {}), ((0.5, 3.0, 0.5), {}), ((5, 0, -1), {}), ((10, 2), {}),
    ((1, 2, 0.25), {}), ((5,), {"dtype": "float32"}), ((0, 1, 0.1), {}),
])
def test_arange_values(args, kwargs):
    out = st.arange(*args, **kwargs)
    got = out.eval({})
    want = np.arange(*args, **kwargs)
    np.testing.assert_allclose(got, want)
    assert got.dtype == want.dtype
    check_static_shape(out, got)
    syms = [st.scalar(f"a{k}", dtype=np.asarray(a).dtype.name if isinstance(a, float)
                      else "int64") for k, a in enumerate(args)]
    out = st.arange(*syms, **kwargs)
    got = evaluate(out, syms, list(args))
    np.testing.assert_allclose(got, want)
    assert got.dtype == want.dtype


def test_arange_dtypes_and_errors():
    assert st.arange(st.iscalar("n")).dtype == "int64"
    assert st.arange(st.fscalar("a"), 5).dtype == "float32"
    assert st.arange(st.fscalar("a"), st.dscalar("b")).dtype == "float64"
    with pytest.raises(ValueError, match="step must not be zero"):
        st.arange(0, 5, 0)
    s = st.lscalar("s")
    with pytest.raises(ValueError, match="step must not be zero"):
        st.arange(0, 5, s).eval({s: 0})
    with pytest.raises(TypeError, match="must be a scalar"):
        st.arange(st.dvector("v"))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_arange_grad(dtype):
    verify_grad(lambda s: st.arange(s, 10.0, 1.0) * 1.5, [np.asarray(0.3, dtype)])
    verify_grad(lambda d: st.arange(0.0, 10.0, d) ** 2, [np.asarray(0.7, dtype)])
    n = st.lscalar("n")
    node = st.arange(n).owner
    assert node.op.connection_pattern(node) == [False, False, False]


@pytest.mark.parametrize("args,kwargs", [
    ((3,), {}), ((3, 4), {}), ((3, 4, 1), {}), ((4, 3, -2), {}), ((3,), {"dtype": "int64"}),
    ((0,), {}), ((2, None, 5), {}),
])
def test_eye(args, kwargs):
    out = st.eye(*args, **kwargs)
    want = np.eye(*args, **{"dtype": config.floatX, **kwargs})
    got = out.eval({})
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype and out.type.shape == want.shape
    syms = [st.lscalar(f"n{k}") if a is not None else None for k, a in enumerate(args)]
    out = st.eye(*syms, **kwargs)
    got = evaluate(out, [s for s in syms if s is not None], [a for a in args if a is not None])
    np.testing.assert_array_equal(got, want)
    check_static_shape(out, got)


def test_eye_arange_batched_fall_back_to_loop():
    n = st.lscalar("n")
    ns = st.lvector("ns")
    np.testing.assert_array_equal(vectorize_graph(st.eye(n), {n: ns}).eval({ns: [2, 2]}),
                                  np.stack([np.eye(2)] * 2))
    np.testing.assert_array_equal(vectorize_graph(st.arange(n, n + 3), {n: ns}).eval(
        {ns: [1, 5]}), [[1, 2, 3], [5, 6, 7]])
    with config.change_flags(floatX="float32"):
        assert st.eye(2).dtype == "float32"


def test_eye_not_differentiable():
    n = st.lscalar("n")
    node = st.eye(n).owner
    assert node.op.connection_pattern(node) == [False, False, False]
    x = st.dmatrix("x")
    y = st.eye(3) * x
    np.testing.assert_array_equal(Lop(y, x, st.ones_like(y)).eval({x: np.ones((3, 3))}),
                                  np.eye(3))


# -- other behaviours --------------------------------------------------------------------------

def test_split_outputs_and_partial_gradient():
    x = st.dvector("x")
    parts = st.split(x, [2, 1, 3], 3)
    v = np.arange(6.0)
    got = evaluate(parts, [x], [v])
    for g, w in zip(got, np.split(v, [2, 3])):
        np.testing.assert_array_equal(g, w)
    g = Lop(parts[1], x, st.ones_like(parts[1]))
    np.testing.assert_array_equal(g.eval({x: v}), [0, 0, 1, 0, 0, 0])
    n = st.lvector("n")
    parts = st.split(x, n, 2)
    got = evaluate(parts, [x, n], [v, np.array([4, 2])])
    np.testing.assert_array_equal(got[1], v[4:])
    assert len(st.split(x, [6], 1)) == 1


def test_reshape_vector_shape_and_ndim():
    x = st.dmatrix("x")
    s = st.lvector("s")
    out = st.reshape(x, s, ndim=3)
    assert out.ndim == 3
    got = evaluate(out, [x, s], [np.zeros((2, 6)), np.array([3, 2, 2])])
    assert got.shape == (3, 2, 2)
    s2 = TensorType("int64", (2,))("s2")
    assert st.reshape(x, s2).ndim == 2
    with pytest.raises(TypeError, match="pass ndim="):
        st.reshape(x, s)
    verify_grad(lambda a: st.reshape(a, st.stack([_si(a, 1), _si(a, 0)])),
                [rng(0).normal(size=(2, 3))])


def test_squeeze_none_and_runtime_check():
    x = st.tensor("x", dtype="float64", shape=(1, None, 1))
    assert st.squeeze(x).type.shape == (None,)
    assert st.squeeze(st.dmatrix("m")).ndim == 2
    y = st.dmatrix("y")
    with pytest.raises(ValueError, match="length-1"):
        st.squeeze(y, 0).eval({y: np.zeros((2, 2))})


def test_second_order_and_mixed_dtypes():
    verify_grad(lambda x: st.grad((st.repeat(x, [1, 2, 0]) ** 3).sum(), x),
                [rng(0).normal(size=3)])
    verify_grad(lambda x: st.grad((st.tile(x, (2, 2)) ** 3).sum(), x),
                [rng(0).normal(size=(2, 1))])
    verify_grad(lambda x: st.concatenate([x, st.constant([1, 2])]) * 2.0,
                [rng(0).normal(size=3)])
    verify_grad(lambda x: st.stack([x, st.cast(st.shape_i(x, 0), "float64") * x]),
                [rng(0).normal(size=3)])


def test_alloc_gradient_runtime_broadcast():
    # The value's dimension is unknown statically and 1 at run time: summed by SumTo.
    verify_grad(lambda x: st.alloc(x, 2, 3, 4), [rng(0).normal(size=(3, 1))])
    verify_grad(lambda x: st.broadcast_to(x, (3, 2)), [rng(0).normal(size=(1,))])


def test_specify_shape_checks():
    x = st.dmatrix("x")
    y = st.specify_shape(x, (3, None))
    assert y.type.shape == (3, None)
    with pytest.raises(ValueError, match=r"specify_shape: expected shape \(3, \?\), got \(2, 3\)"):
        y.eval({x: np.zeros((2, 3))})
    n = st.lscalar("n")
    z = st.specify_shape(x, (n, 3))
    assert z.type.shape == (None, 3)
    assert evaluate(z, [x, n], [np.zeros((2, 3)), 2]).shape == (2, 3)
    with pytest.raises(ValueError, match="expected shape"):
        evaluate(z, [x, n], [np.zeros((2, 3)), 5])
    assert st.specify_shape(x, (None, None)) is x


def test_tensor_method_shapes():
    x = st.dmatrix("x")
    v = rng(0).normal(size=(2, 3))
    np.testing.assert_array_equal(x.dimshuffle(1, 0).eval({x: v}), v.T)
    np.testing.assert_array_equal(x.transpose(1, 0).eval({x: v}), v.T)
    np.testing.assert_array_equal(x.reshape((3, 2)).eval({x: v}), v.reshape(3, 2))
    np.testing.assert_array_equal(x.flatten().eval({x: v}), v.ravel())


def test_weak_constants_keep_dtype():
    x = st.fvector("x")
    assert st.concatenate([x, [1.5, 2.0]]).dtype == "float64"  # as numpy: a list is an array
    assert st.stack([st.fscalar("a"), 1.0]).dtype == "float32"
    assert st.stack([st.lscalar("a"), 1.5]).dtype == "float64"
    assert st.as_tensor_variable([st.iscalar("i"), 2]).dtype == "int32"


# -- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("build,exc,match", [
    (lambda: st.reshape(st.tensor("x", shape=(2, 3)), (4,)), ValueError,
     r"shape \(2, 3\) \(size 6\) into shape \(4,\)"),
    (lambda: st.reshape(st.tensor("x", shape=(2, 3)), (4, -1)), ValueError,
     r"shape \(2, 3\) \(size 6\) into shape \(4, -1\)"),
    (lambda: st.reshape(st.dmatrix("x"), (-1, -1)), ValueError, "only specify one unknown"),
    (lambda: st.reshape(st.dmatrix("x"), (2, -3)), ValueError, "negative"),
    (lambda: st.reshape(st.dmatrix("x"), (2.0, 3)), TypeError, "integer"),
    (lambda: st.concatenate([st.dmatrix("x"), st.dvector("y")]), ValueError,
     "same number of dimensions"),
    (lambda: st.concatenate([st.tensor("x", shape=(2, 3)), st.tensor("y", shape=(2, 4))]),
     ValueError, r"differ in dimension 1"),
    (lambda: st.concatenate([st.dscalar("x"), st.dscalar("y")]), ValueError,
     "zero-dimensional"),
    (lambda: st.concatenate([st.dvector("x")], axis=1), ValueError, "out of bounds"),
    (lambda: st.concatenate([]), ValueError, "non-empty"),
    (lambda: st.stack([st.tensor("x", shape=(2,)), st.tensor("y", shape=(3,))]), ValueError,
     "same shape"),
    (lambda: st.stack([st.dmatrix("x"), st.dvector("y")]), ValueError,
     "same number of dimensions"),
    (lambda: st.split(st.tensor("x", shape=(5,)), [2, 2], 2), ValueError, "sum to 4"),
    (lambda: st.split(st.dvector("x"), [2, 2], 3), ValueError, "n_splits is 3 but 2"),
    (lambda: st.broadcast_to(st.tensor("x", shape=(3,)), (2, 4)), ValueError,
     r"cannot broadcast x of shape \(3,\) to shape \(2, 4\)"),
    (lambda: st.broadcast_to(st.dmatrix("x"), (3,)), ValueError, "more than the 1"),
    (lambda: st.alloc(0.0, 2, -1), ValueError, "negative dimensions"),
    (lambda: st.specify_shape(st.tensor("x", shape=(2, 3)), (2, 4)), ValueError,
     "does not match the specified length 4"),
    (lambda: st.specify_shape(st.dmatrix("x"), (2,)), ValueError, "2 dimensions"),
    (lambda: st.squeeze(st.tensor("x", shape=(2, 3)), 0), ValueError, "not 1"),
    (lambda: st.transpose(st.dmatrix("x"), (0, 0)), ValueError, "not a permutation"),
    (lambda: st.transpose(st.dmatrix("x"), (0, 2)), ValueError, "out of bounds"),
    (lambda: st.expand_dims(st.dmatrix("x"), 3), ValueError, "out of bounds"),
    (lambda: st.flatten(st.dmatrix("x"), 3), ValueError, "between 1 and 2"),
    (lambda: st.repeat(st.dmatrix("x"), 1.5), TypeError, "integer"),
    (lambda: st.repeat(st.dmatrix("x"), -1, axis=0), ValueError, "negative"),
    (lambda: st.repeat(st.tensor("x", shape=(2, 3)), [1, 2], axis=1), ValueError,
     "2 counts for axis 1"),
    (lambda: st.tile(st.dmatrix("x"), (2, -1)), ValueError, "negative"),
    (lambda: st.eye(-1), ValueError, "negative"),
])
def test_build_errors(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


@pytest.mark.parametrize("build,values,match", [
    (lambda x: st.reshape(x, (4,)), [np.zeros((2, 3))],
     r"cannot reshape an array of shape \(2, 3\) \(size 6\) into shape \(4,\)"),
    (lambda x: st.broadcast_to(x, (2, 4)), [np.zeros(3)],
     r"cannot broadcast a value of shape \(3,\) to shape \(2, 4\)"),
    (lambda x: st.concatenate([x, st.zeros((2, 4))], 0), [np.zeros((2, 3))],
     "dimension 1"),
    (lambda x: st.split(x, [1, 1], 2), [np.zeros(3)], "sum to the length 3"),
    (lambda x: st.alloc(x, st.shape_i(x, 0) - 3), [np.zeros(2)], "negative dimensions"),
])
def test_runtime_errors(build, values, match):
    xs = _vars(values, static=False)
    with pytest.raises(ValueError, match=match):
        evaluate(build(*xs), xs, values)
