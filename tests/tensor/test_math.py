"""Table-driven tests of every elementwise function in ``symgrad.tensor.math``.

Each entry of ``CASES`` names the function, its numpy/scipy counterpart, the domain
of each input and how it differentiates. The tests below run every entry through:
values and dtypes against numpy (shapes, broadcasting, dtypes, Python scalars),
static shapes, NaN/inf/empty inputs, ``verify_grad`` (pullback and pushforward),
the Rop/Lop dot-product identity, and the batching rule.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.special as sps

import symgrad
import symgrad.tensor as st
from symgrad.backends.python import OpRuntimeError
from symgrad.gradient import Lop, Rop, grad, verify_grad
from symgrad.graph import vectorize_graph
from symgrad.tensor import math as smath
from symgrad.tensor.elemwise import SCALAR_OPS, ShapeMismatchError
from tests.helpers import check_batching, check_static_shape, evaluate

FLOATS = ("float64", "float32")
INTS = ("int64", "int32", "int8")
ALL = FLOATS + INTS + ("bool",)


# -- input domains -------------------------------------------------------------------------------
# float range, int range (inclusive), bool values allowed ("any", "true" or "none")
DOMAINS = {
    "real": ((-2.0, 2.0), (-3, 3), "any"),
    "pos": ((0.5, 2.5), (1, 3), "true"),
    "nonneg": ((0.0, 2.5), (0, 3), "any"),
    "nonzero": ((0.5, 2.0), (1, 3), "true"),  # random sign
    "unit": ((-0.9, 0.9), (0, 0), "none"),
    "gt1": ((1.2, 3.0), (1, 3), "true"),
    "tan": ((-1.2, 1.2), (-1, 1), "any"),
    "erfcinv": ((0.1, 1.9), (1, 1), "true"),
    "expo": ((-1.5, 1.5), (0, 3), "any"),
    "order": ((0.0, 0.0), (0, 2), "any"),  # polygamma's n (an integer)
    "frac": ((0.15, 0.85), (0, 3), "any"),  # mod's x, away from the jumps
    "mod_y": ((1.5, 2.5), (1, 3), "true"),
    "round": ((-2.4, 2.4), (-3, 3), "any"),  # rounding: avoid the jumps (see sample)
    "clipx": ((-1.5, 1.5), (-3, 3), "any"),  # clip's x, away from the bounds (see sample)
    "lo": ((-0.6, -0.4), (-1, -1), "none"),  # clip bounds
    "hi": ((0.4, 0.6), (1, 1), "true"),
}


def sample(domain, shape, dtype, rng):
    (flo, fhi), (ilo, ihi), bools = DOMAINS[domain]
    if dtype == "bool":
        if bools == "true":
            return np.ones(shape, bool)
        if bools == "none":
            return np.zeros(shape, bool)
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        v = rng.integers(ilo, ihi + 1, size=shape)
        if domain == "nonzero":
            v = v * rng.choice([-1, 1], size=shape)
        return np.asarray(v).astype(dtype)
    if domain == "order":
        return rng.integers(0, 3, size=shape).astype(dtype)
    v = rng.uniform(flo, fhi, size=shape)
    if domain == "nonzero":
        v = v * rng.choice([-1.0, 1.0], size=shape)
    if domain == "clipx":
        v = rng.choice([-1.2, 0.0, 1.2], size=shape) + rng.uniform(-0.3, 0.3, size=shape)
    if domain == "round":
        # keep a distance from the integers and the half-integers
        v = np.floor(v * 2) / 2 + rng.uniform(0.1, 0.4, size=shape)
    return np.asarray(v).astype(dtype)


# -- the table ----------------------------------------------------------------------------------

@dataclass
class Case:
    name: str  # the ScalarOp's name
    fn: object  # the symgrad function
    ref: object  # the numpy/scipy counterpart
    domains: tuple  # one domain per input
    grad: str = "diff"  # "diff", "zero" (derivative zero almost everywhere) or "none"
    wrt: tuple | None = None  # inputs to differentiate (default: every input)
    nan_ok: bool = True  # the NaN/inf test applies (floats accepted)
    rtol: float = 1e-6

    @property
    def nin(self):
        return len(self.domains)

    @property
    def grad_inputs(self):
        return self.wrt if self.wrt is not None else tuple(range(self.nin))


def _add3(a, b, c):
    return np.add(np.add(a, b), c)


def _mul3(a, b, c):
    return np.multiply(np.multiply(a, b), c)


def _reciprocal(x):
    return np.true_divide(1, x)


def _polygamma(n, x):
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype("float64")
    return np.asarray(sps.polygamma(n, x)).astype(dtype)


def _clip(x, lo, hi):
    # numpy.clip's definition. (numpy.clip itself turns a Python-number x into an int64/float64
    # array before applying the ufunc, so it upcasts there; the ufunc rules are the reference.)
    return np.minimum(np.maximum(x, lo), hi)


def _second(a, b):
    # b's values in the shape of a + b, b's dtype; a Python number takes a's dtype as in a + b
    if isinstance(b, bool | int | float):
        b = np.asarray(b, dtype=np.result_type(a, b))
    return np.broadcast_to(b, np.broadcast_shapes(np.shape(a), np.shape(b)))


CASES = [
    Case("add", smath.add, np.add, ("real", "real")),
    Case("sub", smath.sub, np.subtract, ("real", "real")),
    Case("mul", smath.mul, np.multiply, ("real", "real")),
    Case("true_div", smath.true_div, np.true_divide, ("real", "nonzero")),
    Case("floor_div", smath.floor_div, np.floor_divide, ("round", "nonzero"), grad="zero"),
    Case("int_div", smath.int_div, np.floor_divide, ("round", "nonzero"), grad="zero"),
    Case("mod", smath.mod, np.mod, ("frac", "mod_y")),
    Case("pow", smath.pow, np.power, ("pos", "expo")),
    Case("neg", smath.neg, np.negative, ("real",)),
    Case("abs", smath.abs, np.absolute, ("nonzero",)),
    Case("sign", smath.sign, np.sign, ("nonzero",), grad="zero"),
    Case("sqr", smath.sqr, np.square, ("real",)),
    Case("sqrt", smath.sqrt, np.sqrt, ("pos",)),
    Case("reciprocal", smath.reciprocal, _reciprocal, ("nonzero",)),
    Case("maximum", smath.maximum, np.maximum, ("real", "real")),
    Case("minimum", smath.minimum, np.minimum, ("real", "real")),
    Case("clip", smath.clip, _clip, ("clipx", "lo", "hi")),
    Case("exp", smath.exp, np.exp, ("real",)),
    Case("exp2", smath.exp2, np.exp2, ("real",)),
    Case("expm1", smath.expm1, np.expm1, ("real",)),
    Case("log", smath.log, np.log, ("pos",)),
    Case("log2", smath.log2, np.log2, ("pos",)),
    Case("log10", smath.log10, np.log10, ("pos",)),
    Case("log1p", smath.log1p, np.log1p, ("pos",)),
    Case("sin", smath.sin, np.sin, ("real",)),
    Case("cos", smath.cos, np.cos, ("real",)),
    Case("tan", smath.tan, np.tan, ("tan",)),
    Case("arcsin", smath.arcsin, np.arcsin, ("unit",)),
    Case("arccos", smath.arccos, np.arccos, ("unit",)),
    Case("arctan", smath.arctan, np.arctan, ("real",)),
    Case("arctan2", smath.arctan2, np.arctan2, ("nonzero", "nonzero")),
    Case("sinh", smath.sinh, np.sinh, ("real",)),
    Case("cosh", smath.cosh, np.cosh, ("real",)),
    Case("tanh", smath.tanh, np.tanh, ("real",)),
    Case("arcsinh", smath.arcsinh, np.arcsinh, ("real",)),
    Case("arccosh", smath.arccosh, np.arccosh, ("gt1",)),
    Case("arctanh", smath.arctanh, np.arctanh, ("unit",)),
    Case("sigmoid", smath.sigmoid, sps.expit, ("real",)),
    Case("softplus", smath.softplus, lambda x: np.logaddexp(0, x), ("real",)),
    Case("erf", smath.erf, sps.erf, ("real",)),
    Case("erfc", smath.erfc, sps.erfc, ("real",)),
    Case("erfinv", smath.erfinv, sps.erfinv, ("unit",)),
    Case("erfcinv", smath.erfcinv, sps.erfcinv, ("erfcinv",)),
    Case("gamma", smath.gamma, sps.gamma, ("pos",)),
    Case("gammaln", smath.gammaln, sps.gammaln, ("pos",)),
    Case("digamma", smath.digamma, sps.digamma, ("pos",)),
    Case("polygamma", smath.polygamma, _polygamma, ("order", "pos"), wrt=(1,)),
    Case("floor", smath.floor, np.floor, ("round",), grad="zero"),
    Case("ceil", smath.ceil, np.ceil, ("round",), grad="zero"),
    Case("trunc", smath.trunc, np.trunc, ("round",), grad="zero"),
    Case("round", smath.round, np.round, ("round",), grad="zero"),
    Case("round_half_to_even", smath.round_half_to_even, np.round, ("round",), grad="zero"),
    Case("eq", smath.eq, np.equal, ("real", "real"), grad="none"),
    Case("neq", smath.neq, np.not_equal, ("real", "real"), grad="none"),
    Case("lt", smath.lt, np.less, ("real", "real"), grad="none"),
    Case("le", smath.le, np.less_equal, ("real", "real"), grad="none"),
    Case("gt", smath.gt, np.greater, ("real", "real"), grad="none"),
    Case("ge", smath.ge, np.greater_equal, ("real", "real"), grad="none"),
    Case("and_", smath.and_, np.bitwise_and, ("real", "real"), grad="none", nan_ok=False),
    Case("or_", smath.or_, np.bitwise_or, ("real", "real"), grad="none", nan_ok=False),
    Case("xor", smath.xor, np.bitwise_xor, ("real", "real"), grad="none", nan_ok=False),
    Case("invert", smath.invert, np.invert, ("real",), grad="none", nan_ok=False),
    Case("isnan", smath.isnan, np.isnan, ("real",), grad="none"),
    Case("isinf", smath.isinf, np.isinf, ("real",), grad="none"),
    Case("isfinite", smath.isfinite, np.isfinite, ("real",), grad="none"),
    Case("switch", smath.switch, np.where, ("real", "real", "real"), wrt=(1, 2)),
    Case("second", smath.second, _second, ("real", "real"), wrt=(1,)),
    Case("identity", smath.tensor_copy, np.copy, ("real",)),
]
CASES_BY_NAME = {c.name: c for c in CASES}
# Variadic ops, also tested with three inputs.
CASES3 = [Case("add", smath.add, _add3, ("real", "real", "real")),
          Case("mul", smath.mul, _mul3, ("real", "real", "real"))]

DIFF = [c for c in CASES if c.grad != "none"]
IDS = [c.name for c in CASES]

SHAPES1 = [(), (4,), (2, 3), (2, 3, 2)]
SHAPES2 = [((), ()), ((4,), (4,)), ((2, 3), (2, 3)), ((2, 3, 2), (2, 3, 2)),
           ((3, 1), (1, 4)), ((5,), (2, 5)), ((), (2, 3)), ((2, 3), ()), ((2, 1, 3), (4, 1)),
           ((1,), (3,))]
SHAPES3 = [((), (), ()), ((4,), (4,), (4,)), ((3, 1), (1, 4), ()), ((2, 3), (3,), (2, 1)),
           ((1, 3), (2, 1, 1), (3,))]


def shape_patterns(nin):
    return {1: [(s,) for s in SHAPES1], 2: SHAPES2, 3: SHAPES3}[nin]


def numpy_ref(case, values):
    with np.errstate(all="ignore"):
        return np.asarray(case.ref(*values))


def compile_eval(inputs, outputs, values):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return evaluate(outputs, inputs, values)


def assert_same(got, want, rtol=1e-6, what=""):
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, numpy {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, numpy {want.shape}"
    if want.dtype.kind == "f":
        tol = max(rtol, 10 * float(np.finfo(want.dtype).eps))
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def symbolic_inputs(values, static=False):
    return [st.tensor(f"x{k}", dtype=v.dtype, shape=v.shape if static else
                      tuple(1 if s == 1 else None for s in v.shape))
            for k, v in enumerate(values)]


def expect_type_error(case, dtypes):
    """Whether numpy refuses these dtypes (then symgrad must refuse too, at build time)."""
    probes = [np.ones((1,), d) for d in dtypes]
    try:
        numpy_ref(case, probes)
    except TypeError:
        return True
    return False


# -- values, dtypes, static shapes --------------------------------------------------------------

def _check_values(case, dtypes, seed=0):
    rng = np.random.default_rng(seed)
    if expect_type_error(case, dtypes):
        inputs = [st.tensor(dtype=d, shape=(None,)) for d in dtypes]
        with pytest.raises(TypeError, match=case.fn.scalar_op.name):
            case.fn(*inputs)
        return
    all_inputs, outputs, all_values, wants = [], [], [], []
    for k, shapes in enumerate(shape_patterns(case.nin)):
        values = [sample(dom, s, d, rng) for dom, s, d in zip(case.domains, shapes, dtypes)]
        inputs = symbolic_inputs(values, static=k % 2 == 0)
        out = case.fn(*inputs)
        want = numpy_ref(case, values)
        assert out.type.dtype == want.dtype.name, (case.name, dtypes, out.type, want.dtype)
        if k % 2 == 0:  # every input shape known statically: the output shape is known too
            assert out.type.shape == want.shape, (case.name, shapes, out.type)
        all_inputs += inputs
        all_values += values
        outputs.append(out)
        wants.append((shapes, want))
    got = compile_eval(all_inputs, outputs, all_values)
    for out, g, (shapes, want) in zip(outputs, got, wants):
        check_static_shape(out, g)
        assert_same(g, want, case.rtol, f"{case.name}{tuple(dtypes)} shapes {shapes}")


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_values_and_dtypes(case, dtype):
    dtypes = [dtype] * case.nin
    if case.name == "polygamma":
        dtypes[0] = "int64" if dtype in FLOATS or dtype == "bool" else dtype
    if case.name == "switch":
        dtypes[0] = "bool"
    _check_values(case, dtypes)


MIXED = [("float32", "int64"), ("int64", "float32"), ("int8", "int32"), ("float32", "float64"),
         ("bool", "int8"), ("int32", "float32"), ("int8", "float32"), ("bool", "float64")]


@pytest.mark.parametrize("dtypes", MIXED, ids=["-".join(d) for d in MIXED])
@pytest.mark.parametrize("case", [c for c in CASES if c.nin >= 2], ids=lambda c: c.name)
def test_mixed_dtypes(case, dtypes):
    dtypes = list(dtypes) + [dtypes[-1]] * (case.nin - 2)
    if case.name == "switch":
        dtypes = ["bool"] + dtypes[:2]
    if case.name == "polygamma" and dtypes[0] not in INTS:
        pytest.skip("polygamma's order is an integer")
    _check_values(case, dtypes)


@pytest.mark.parametrize("dtype", ("float64", "float32", "int32", "int8"))
@pytest.mark.parametrize("case", CASES3, ids=[c.name + "3" for c in CASES3])
def test_variadic_three_inputs(case, dtype):
    _check_values(case, [dtype] * 3)


PY_SCALARS = (2, 2.5, True)


@pytest.mark.parametrize("dtype", ("float64", "float32", "int64", "int32", "int8", "bool"))
@pytest.mark.parametrize("case", [c for c in CASES if c.nin >= 2], ids=lambda c: c.name)
def test_python_scalars_do_not_upcast(case, dtype):
    """A Python number takes the tensor's dtype as numpy 2 does (NEP 50)."""
    rng = np.random.default_rng(1)
    for pos in range(case.nin):
        if case.name == "polygamma" and pos == 1:
            continue
        for scalar in PY_SCALARS:
            if case.name == "polygamma" and isinstance(scalar, float):
                continue
            dtypes = [dtype] * case.nin
            if case.name == "switch":
                dtypes[0] = "bool"
            if case.name == "polygamma":
                dtypes[0] = "int64"
            values = [sample(dom, (2, 3), d, rng) for dom, d in zip(case.domains, dtypes)]
            args_np = list(values)
            args_np[pos] = scalar
            try:
                want = numpy_ref(case, args_np)
            except (TypeError, ValueError, OverflowError):
                with pytest.raises((TypeError, ValueError, OverflowError)):
                    inputs = symbolic_inputs(values)
                    args = list(inputs)
                    args[pos] = scalar
                    out = case.fn(*args)
                    compile_eval([i for k, i in enumerate(inputs) if k != pos], out,
                                 [v for k, v in enumerate(values) if k != pos])
                continue
            inputs = symbolic_inputs(values)
            args = list(inputs)
            args[pos] = scalar
            out = case.fn(*args)
            what = f"{case.name} with {scalar!r} at {pos}, {dtype}"
            assert out.type.dtype == want.dtype.name, (what, out.type)
            used = [i for k, i in enumerate(inputs) if k != pos]
            got = compile_eval(used, out, [v for k, v in enumerate(values) if k != pos])
            assert_same(got, want, case.rtol, what)


def test_python_scalar_examples():
    assert (st.fmatrix() * 2.5).dtype == "float32"
    assert (st.imatrix() + 1).dtype == "int32"
    assert (st.bmatrix() * 2).dtype == "int8"
    assert (st.imatrix() * 2.5).dtype == "float64"
    assert (st.fmatrix() / 2).dtype == "float32"
    assert (2 ** st.fvector()).dtype == "float32"
    assert (st.fvector() ** 2).dtype == "float32"
    assert (st.imatrix() / 2).dtype == "float64"
    assert st.maximum(st.fvector(), 0).dtype == "float32"
    assert st.switch(st.bvector() > 0, st.fvector(), 0.0).dtype == "float32"
    assert st.clip(st.fvector(), 0, 1.5).dtype == "float32"
    assert st.fill(st.fvector(), 1.5).dtype == "float32"
    assert st.fill(st.ivector(), 2).dtype == "int32"
    assert st.fill(st.ivector(), 1.5).dtype == "float64"
    # numpy arrays are not weak: they upcast like numpy arrays do
    assert (st.fvector() * np.float64(2.5)).dtype == "float64"
    assert (st.fvector() * np.ones(3)).dtype == "float64"


# -- NaN, inf, empty ---------------------------------------------------------------------------

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 1e308, -1e-310, 3.0])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_nan_inf(case, dtype):
    if not case.nan_ok:
        pytest.skip("bitwise: numpy refuses floats")
    n = len(SPECIAL)
    values = []
    for k in range(case.nin):
        if case.name == "polygamma" and k == 0:
            values.append(np.array([0, 1, 2] * 4, "int64")[:n].reshape(n, 1))
        elif case.name == "switch" and k == 0:
            values.append((np.arange(n) % 2 == 0).reshape(n, 1))
        else:
            # every pair of special values meets once: a column against a row
            with np.errstate(over="ignore"):
                v = SPECIAL.astype(dtype)  # 1e308 becomes inf in float32
            values.append(v.reshape(n, 1) if k == 0 else v.reshape((1,) * (k == 1) + (n,)))
    inputs = symbolic_inputs(values)
    out = case.fn(*inputs)
    want = numpy_ref(case, values)
    got = compile_eval(inputs, out, values)
    check_static_shape(out, got)
    assert_same(got, want, case.rtol, f"{case.name} on special values ({dtype})")


@pytest.mark.parametrize("case", CASES + CASES3, ids=IDS + ["add3", "mul3"])
def test_empty(case):
    dtypes = ["int64" if case.name in ("and_", "or_", "xor", "invert") else "float64"] * case.nin
    if case.name == "polygamma":
        dtypes[0] = "int64"
    if case.name == "switch":
        dtypes[0] = "bool"
    patterns = {1: [((0,),), ((0, 3),), ((2, 0, 1),)],
                2: [((0,), (0,)), ((0, 3), (1, 3)), ((0,), ()), ((2, 0), (2, 1))],
                3: [((0,), (0,), ()), ((0, 3), (1, 3), (3,))]}[case.nin]
    for shapes in patterns:
        values = [np.zeros(s, d) for s, d in zip(shapes, dtypes)]
        for static in (False, True):
            inputs = symbolic_inputs(values, static=static)
            out = case.fn(*inputs)
            want = numpy_ref(case, values)
            if static:
                assert out.type.shape == want.shape
            got = compile_eval(inputs, out, values)
            check_static_shape(out, got)
            assert_same(got, want, what=f"{case.name} on empty {shapes}")


def test_softplus_and_sigmoid_are_stable():
    x = st.dvector("x")
    v = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    got_sp, got_sg = compile_eval([x], [st.softplus(x), st.sigmoid(x)], [v])
    np.testing.assert_allclose(got_sp, np.logaddexp(0, v))
    np.testing.assert_allclose(got_sg, sps.expit(v))
    assert np.all(np.isfinite(got_sp)) and np.all(np.isfinite(got_sg))


def test_reciprocal_of_integers_is_a_float():
    x = st.ivector("x")
    got = compile_eval([x], st.reciprocal(x), [np.array([2, -4, 1], "int32")])
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [0.5, -0.25, 1.0])


def test_round_is_half_to_even():
    x = st.dvector("x")
    v = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    np.testing.assert_array_equal(compile_eval([x], st.round(x), [v]), np.round(v))
    np.testing.assert_array_equal(compile_eval([x], st.round_half_to_even(x), [v]), np.round(v))


def test_constants_fold_with_numpy_semantics():
    a = st.constant(np.array([1.0, 2.0], "float32"))
    assert (a * 2.5).eval().dtype == np.float32
    assert st.add(2, 3).eval() == 5
    assert st.true_div(1, 4).eval() == 0.25


# -- shape errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [c for c in CASES if c.nin >= 2], ids=lambda c: c.name)
def test_static_shape_mismatch_raises_at_build(case):
    name = case.fn.scalar_op.name
    dtypes = ["int64" if case.name in ("and_", "or_", "xor", "polygamma") else "float64"] * case.nin
    if case.name == "switch":
        dtypes[0] = "bool"
    shapes = [(3, 4), (2, 4)] + [()] * (case.nin - 2)
    inputs = [st.tensor(dtype=d, shape=s) for d, s in zip(dtypes, shapes)]
    with pytest.raises(ShapeMismatchError, match=rf"{name}.*\(3, 4\).*\(2, 4\)"):
        case.fn(*inputs)
    # different ndims: the message shows the shapes as given
    inputs = [st.tensor(dtype=d, shape=s) for d, s in zip(dtypes, [(4,), (2, 5)] + shapes[2:])]
    with pytest.raises(ShapeMismatchError, match=rf"{name}.*\(4,\).*\(2, 5\)"):
        case.fn(*inputs)


@pytest.mark.parametrize("case", [c for c in CASES if c.nin >= 2], ids=lambda c: c.name)
def test_runtime_shape_mismatch_names_op_and_shapes(case):
    dtypes = ["int64" if case.name in ("and_", "or_", "xor", "polygamma") else "float64"] * case.nin
    if case.name == "switch":
        dtypes[0] = "bool"
    shapes = [(3, 4), (2, 4)] + [(1, 1)] * (case.nin - 2)
    values = [np.ones(s, d) for s, d in zip(shapes, dtypes)]
    inputs = [st.tensor(f"v{k}", dtype=d, shape=(None, None)) for k, d in enumerate(dtypes)]
    out = case.fn(*inputs)
    f = symgrad.function(inputs, out)
    with pytest.raises(OpRuntimeError) as info:
        f(*values)
    msg = str(info.value)
    assert case.fn.scalar_op.name in msg
    assert "(3, 4)" in msg and "(2, 4)" in msg, msg


def test_wrong_number_of_inputs():
    with pytest.raises(TypeError, match="exp takes 1 inputs, got 2"):
        st.exp(st.dvector(), st.dvector())
    with pytest.raises(TypeError, match="true_div takes 2"):
        st.true_div(st.dvector())


# -- registry: every registered elementwise op has a numeric test ---------------------------------

def test_every_scalar_op_is_in_the_table():
    import symgrad.tensor  # noqa: F401  (every module registers its ops on import)

    tested = set(CASES_BY_NAME)
    missing = sorted(name for name in SCALAR_OPS
                     if name not in tested and not name.startswith("cast{"))
    assert not missing, f"elementwise ops with no entry in tests/tensor/test_math.py: {missing}"
    for case in CASES:
        assert case.fn.scalar_op.name == case.name
        assert SCALAR_OPS[case.name] is case.fn.scalar_op


def test_aliases():
    assert st.fill is st.second and st.where is st.switch
    assert st.true_divide is st.true_div and st.power is st.pow
    assert st.absolute is st.abs and st.expit is st.sigmoid
    x = st.dvector("x")
    v = np.array([-1.0, 0.5, 3.0])
    np.testing.assert_allclose(compile_eval([x], st.log_sigmoid(x), [v]), np.log(sps.expit(v)))


# -- derivatives --------------------------------------------------------------------------------

def grad_point(case, shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    values = []
    for k, (dom, s) in enumerate(zip(case.domains, shapes)):
        if k in case.grad_inputs:
            values.append(sample(dom, s, dtype, rng))
        elif case.name == "switch":
            values.append(rng.random(s) < 0.5)
        else:
            values.append(sample(dom, s, "int64", rng))
    return values


def make_fun(case, values):
    """fun(*differentiated inputs) with the other inputs fixed as constants."""
    def fun(*xs):
        it = iter(xs)
        args = [next(it) if k in case.grad_inputs else st.constant(v)
                for k, v in enumerate(values)]
        return case.fn(*args)
    return fun


GRAD_SHAPES = {1: [((2, 3),), ((),)],
               2: [((2, 3), (2, 3)), ((3, 1), (1, 4)), ((4,), (3, 4)), ((), (2, 2))],
               3: [((2, 3), (2, 3), (2, 3)), ((3, 1), (1, 4), ()), ((4,), (3, 4), (3, 1))]}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", DIFF, ids=[c.name for c in DIFF])
def test_verify_grad(case, dtype):
    for shapes in GRAD_SHAPES[case.nin]:
        values = grad_point(case, shapes, dtype)
        pt = [v for k, v in enumerate(values) if k in case.grad_inputs]
        kw = {}
        if dtype == "float32":
            kw = dict(abs_tol=5e-2, rel_tol=5e-2)
        verify_grad(make_fun(case, values), pt, rng=np.random.default_rng(0), **kw)
        check_derivative_shapes(case, values, static=dtype == "float64")


def check_derivative_shapes(case, values, static):
    """Each input's gradient has the input's shape; the tangent from each single input has
    the output's shape (verify_grad's inner products would broadcast a wrong shape away)."""
    wrt_vals = [v for k, v in enumerate(values) if k in case.grad_inputs]
    xs = symbolic_inputs(wrt_vals, static=static)
    out = make_fun(case, values)(*xs)
    want_shape = np.broadcast_shapes(*[np.shape(v) for v in values])
    gs = grad(out.sum(), xs)
    tangents = [x.type() for x in xs]
    rops = [Rop(out, x, t) for x, t in zip(xs, tangents)]
    got = compile_eval(xs + tangents, gs + rops, wrt_vals + wrt_vals)
    for g_sym, g, v in zip(gs, got, wrt_vals):
        assert g.shape == v.shape and g.dtype == v.dtype, (case.name, g.shape, v.shape)
        check_static_shape(g_sym, g)
    for r_sym, r in zip(rops, got[len(gs):]):
        assert r.shape == want_shape and r.dtype == out.dtype, (case.name, r.shape, want_shape)
        check_static_shape(r_sym, r)


@pytest.mark.parametrize("case", CASES3, ids=["add3", "mul3"])
def test_verify_grad_three_inputs(case):
    values = grad_point(case, ((3, 1), (1, 4), ()), "float64")
    verify_grad(case.fn, values)


@pytest.mark.parametrize("case", [c for c in CASES if c.grad == "zero"], ids=lambda c: c.name)
def test_zero_derivative_ops_give_zero_gradients(case):
    values = grad_point(case, [(2, 3)] * case.nin, "float64")
    inputs = symbolic_inputs(values)
    cost = case.fn(*inputs).sum()
    gs = grad(cost, inputs)
    got = compile_eval(inputs, gs, values)
    for g, v in zip(got, values):
        assert g.shape == v.shape
        np.testing.assert_array_equal(g, np.zeros_like(v))
    # forward mode too
    tangents = [i.type() for i in inputs]
    r = Rop(case.fn(*inputs), inputs, tangents)
    got = compile_eval(inputs + tangents, r, values + values)
    np.testing.assert_array_equal(got, np.zeros((2, 3)))


@pytest.mark.parametrize("case", [c for c in CASES if c.grad == "none"], ids=lambda c: c.name)
def test_boolean_outputs_through_a_cast_give_zero_gradients(case):
    dtype = "int64" if case.name in ("and_", "or_", "xor", "invert") else "float64"
    values = grad_point(case, [(2, 3)] * case.nin, "float64")
    values = [v.astype(dtype) for v in values]
    inputs = symbolic_inputs(values)
    cost = st.cast(case.fn(*inputs), "float64").sum()
    if dtype == "int64":
        gs = grad(cost, inputs)
        for g in gs:
            assert g.dtype == symgrad.config.floatX
        return
    gs = grad(cost, inputs)
    got = compile_eval(inputs, gs, values)
    for g, v in zip(got, values):
        np.testing.assert_array_equal(g, np.zeros_like(v))
    tangents = [i.type() for i in inputs]
    r = Rop(st.cast(case.fn(*inputs), "float64"), inputs, tangents)
    np.testing.assert_array_equal(compile_eval(inputs + tangents, r, values + values),
                                  np.zeros((2, 3)))


def test_integer_inputs_are_disconnected():
    x = st.dvector("x")
    i = st.lvector("i")
    for fn in (st.mul, st.add, st.pow, st.true_div, st.maximum):
        out = fn(x, i)
        node = out.owner
        gz = st.dvector("gz")
        gx, gi = node.op.pullback(node.inputs, node.outputs, [gz])
        assert gi is None
        assert gx is not None
        # the float input still gets its gradient
        g = grad(out.sum(), x)
        assert g.dtype == "float64"
    # forward mode agrees: no tangent flows from an integer input
    v = st.lvector("v")
    for fn in (st.mul, st.add, st.sub, st.maximum, st.true_div, st.arctan2,
               lambda a, b: st.cast(b, "float64") * a):
        r = Rop(fn(x, i), i, v)
        got = compile_eval([x, i, v], r, [np.ones(2), np.array([1, 2]), np.array([5, 5])])
        np.testing.assert_array_equal(got, np.zeros(2))
    # polygamma's order
    out = st.polygamma(i, x)
    node = out.owner
    assert node.op.pullback(node.inputs, node.outputs, [st.dvector()])[0] is None


def test_gradient_of_runtime_broadcast():
    """x of static shape (?, ?) given a (3, 1) array, added to a (3, 4) array."""
    x = st.dmatrix("x")
    y = st.dmatrix("y")
    for fn in (st.add, st.mul, st.sub, st.true_div, st.pow, st.maximum, st.arctan2):
        out = fn(x, y)
        gx, gy = grad(out.sum(), [x, y])
        xv = np.random.default_rng(0).uniform(0.5, 1.5, size=(3, 1))
        yv = np.random.default_rng(1).uniform(0.5, 1.5, size=(3, 4))
        got_x, got_y = compile_eval([x, y], [gx, gy], [xv, yv])
        assert got_x.shape == (3, 1), fn
        assert got_y.shape == (3, 4), fn
        # and the other way round
        got_x, got_y = compile_eval([x, y], [gx, gy], [yv, xv])
        assert got_x.shape == (3, 4) and got_y.shape == (3, 1), fn
    # values: d/dx sum(x * y) = y summed over the broadcast axis
    gx = grad((x * y).sum(), x)
    got = compile_eval([x, y], gx, [xv, yv])
    np.testing.assert_allclose(got, yv.sum(axis=1, keepdims=True))


@pytest.mark.parametrize("case", [c for c in DIFF if c.nin == 2 and c.grad_inputs == (0, 1)],
                         ids=lambda c: c.name)
def test_verify_grad_runtime_broadcast(case):
    """Inputs whose broadcast pattern is unknown statically."""
    values = grad_point(case, [(3, 1), (3, 4)], "float64")
    x = st.dmatrix("x")
    y = st.dmatrix("y")
    out = case.fn(x, y)
    proj = np.random.default_rng(3).normal(size=(3, 4))
    gx, gy = grad((out * proj).sum(), [x, y])
    got_x, got_y = compile_eval([x, y], [gx, gy], values)
    assert got_x.shape == (3, 1) and got_y.shape == (3, 4)
    # against finite differences
    f = symgrad.function([x, y], (out * proj).sum())
    eps = 1e-6
    for k, got in enumerate((got_x, got_y)):
        num = np.zeros_like(values[k])
        for idx in np.ndindex(values[k].shape):
            plus = [v.copy() for v in values]
            minus = [v.copy() for v in values]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            num[idx] = (f(*plus) - f(*minus)) / (2 * eps)
        np.testing.assert_allclose(got, num, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", DIFF, ids=[c.name for c in DIFF])
def test_rop_lop_dot_product_identity(case):
    """<Rop(f, x, v), u> == <v, Lop(f, x, u)>."""
    rng = np.random.default_rng(5)
    shapes = GRAD_SHAPES[case.nin][1 if case.nin > 1 else 0]
    values = grad_point(case, shapes, "float64")
    wrt_vals = [v for k, v in enumerate(values) if k in case.grad_inputs]
    fun = make_fun(case, values)
    xs = [st.tensor(f"x{k}", dtype="float64", shape=v.shape) for k, v in enumerate(wrt_vals)]
    out = fun(*xs)
    vs = [x.type() for x in xs]
    u = out.type()
    r = Rop(out, xs, vs)
    lops = Lop(out, xs, u)
    v_vals = [rng.normal(size=v.shape) for v in wrt_vals]
    u_val = rng.normal(size=np.broadcast_shapes(*[v.shape for v in values]))
    got = compile_eval(xs + vs + [u], [r] + list(lops), wrt_vals + v_vals + [u_val])
    r_val, l_vals = got[0], got[1:]
    assert r_val.shape == u_val.shape
    assert all(a.shape == b.shape for a, b in zip(l_vals, v_vals))
    lhs = float(np.sum(r_val * u_val))
    rhs = sum(float(np.sum(a * b)) for a, b in zip(v_vals, l_vals))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-12)


# -- batching ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES + CASES3, ids=IDS + ["add3", "mul3"])
def test_batching(case):
    dtypes = ["int64" if case.name in ("and_", "or_", "xor", "invert") else "float64"] * case.nin
    if case.name == "polygamma":
        dtypes[0] = "int64"
    if case.name == "switch":
        dtypes[0] = "bool"
    rng = np.random.default_rng(2)
    for shapes in shape_patterns(case.nin)[:5]:
        values = [sample(dom, s, d, rng) for dom, s, d in zip(case.domains, shapes, dtypes)]
        check_batching(case.fn, values)
        # batch only one input; the others stay unbatched
        for b in range(case.nin):
            core = symbolic_inputs(values)
            out = case.fn(*core)
            batched_val = np.stack([values[b]] * 3)
            if dtypes[b] == "float64":
                batched_val = batched_val + rng.uniform(0, 0.05, size=batched_val.shape)
            xs = st.tensor("xs", dtype=dtypes[b], shape=(None,) * batched_val.ndim)
            vec = vectorize_graph(out, {core[b]: xs})
            others = [c for k, c in enumerate(core) if k != b]
            other_vals = [v for k, v in enumerate(values) if k != b]
            got = compile_eval(others + [xs], vec, other_vals + [batched_val])
            f = symgrad.function(core, out)
            want = np.stack([f(*[batched_val[r] if k == b else v for k, v in enumerate(values)])
                             for r in range(3)])
            assert_same(got, want, what=f"{case.name} batching input {b} of {shapes}")


# -- higher order ------------------------------------------------------------------------------

HIGHER = {
    "exp": (st.exp, "real"),
    "tanh": (st.tanh, "real"),
    "sigmoid": (st.sigmoid, "real"),
    "pow": (lambda x: x ** 3.5 + st.pow(x, x), "pos"),
    "true_div": (lambda x: 1.0 / (x + 2.0) + x / (x * x + 1.0), "pos"),
    "log1p": (st.log1p, "pos"),
    "softplus": (st.softplus, "real"),
    "arctan2": (lambda x: st.arctan2(x, x * x + 1.0), "real"),
}


@pytest.mark.parametrize("name", sorted(HIGHER))
def test_second_and_third_derivatives(name):
    fn, dom = HIGHER[name]
    rng = np.random.default_rng(7)
    pt = sample(dom, (4,), "float64", rng)

    def d1(x):
        return grad(fn(x).sum(), x)

    def d2(x):
        return grad(d1(x).sum(), x)

    verify_grad(d1, [pt])  # checks the second derivative
    verify_grad(d2, [pt], abs_tol=1e-3, rel_tol=1e-3)  # the third
    # against finite differences of the lower-order gradient function
    x = st.dvector("x")
    f1 = symgrad.function([x], d1(x))
    f2 = symgrad.function([x], d2(x))
    eps = 1e-5
    np.testing.assert_allclose(f2(pt), (f1(pt + eps) - f1(pt - eps)) / (2 * eps), rtol=1e-5,
                               atol=1e-7)
    f3 = symgrad.function([x], grad(d2(x).sum(), x))
    np.testing.assert_allclose(f3(pt), (f2(pt + eps) - f2(pt - eps)) / (2 * eps), rtol=1e-4,
                               atol=1e-6)


def test_tutorial_printed_gradient():
    x = st.dscalar("x")
    assert symgrad.pp(grad(x ** 2, x)) == "((fill((x ** 2), 1.0) * 2) * (x ** (2 - 1)))"
    f = symgrad.function([x], grad(x ** 2, x))
    assert f(3.0) == 6.0


def test_float32_gradients_stay_float32():
    x = st.fvector("x")
    for fn in (lambda x: x ** 2, lambda x: st.exp(x) * 2.5, lambda x: x / 3, st.sigmoid,
               lambda x: st.maximum(x, 0.0), lambda x: st.clip(x, -1, 1)):
        g = grad(fn(x).sum(), x)
        assert g.dtype == "float32"
        assert Rop(fn(x), x, x.type()).dtype == "float32"


def test_verify_grad_rejects_a_wrong_rule():
    """The checker itself: a deliberately wrong derivative is caught."""
    from symgrad.gradient import GradientError

    with pytest.raises(GradientError, match="pullback"):
        verify_grad(lambda x: st.sin(x) + symgrad.gradient.grad_scale(x, 2.0), [np.ones(3)])


def test_message_for_undefined_ops_dtype():
    with pytest.raises(TypeError, match=re.escape("and_ is not defined for inputs of dtype")):
        st.and_(st.dvector(), st.dvector())


def test_clip_gradient_when_lower_bound_exceeds_upper():
    """numpy gives hi wherever lo > hi; the derivative follows."""
    x, lo, hi = st.dvectors("x", "lo", "hi")
    xv = np.array([0.0, 3.0, -3.0, 0.2])
    lov = np.array([1.0, 1.0, 1.0, -1.0])
    hiv = np.array([0.5, 0.5, 0.5, 1.0])
    out = st.clip(x, lo, hi)
    np.testing.assert_array_equal(compile_eval([x, lo, hi], out, [xv, lov, hiv]),
                                  np.clip(xv, lov, hiv))
    gx, glo, ghi = compile_eval([x, lo, hi], grad(out.sum(), [x, lo, hi]), [xv, lov, hiv])
    np.testing.assert_array_equal(gx, [0, 0, 0, 1])
    np.testing.assert_array_equal(glo, [0, 0, 0, 0])
    np.testing.assert_array_equal(ghi, [1, 1, 1, 0])
    verify_grad(st.clip, [xv, lov, hiv])


def test_clip_with_a_missing_bound():
    x = st.bvector("x")
    v = np.array([1, 5, -3], "int8")
    for lo, hi in ((None, 2), (0, None), (None, None), (0, 2)):
        out = st.clip(x, lo, hi)
        got = compile_eval([x], out, [v])
        want = np.clip(v, lo, hi)
        assert got.dtype == want.dtype == out.dtype
        np.testing.assert_array_equal(got, want)
    assert x.clip(None, 2).dtype == "int8"


def test_python_float_keeps_its_precision_under_float32_floatx():
    with symgrad.config.change_flags(floatX="float32"):
        x = st.dvector("x")
        got = compile_eval([x], x * 0.1, [np.array([1.0, 3.0])])
        np.testing.assert_array_equal(got, np.array([1.0, 3.0]) * 0.1)
        assert (st.fvector() * 0.1).dtype == "float32"


def test_fill_returns_a_fresh_array():
    x, y = st.dmatrix("x"), st.dvector("y")
    yv = np.arange(3.0)
    got = compile_eval([x, y], st.fill(x, y), [np.ones((2, 3)), yv])
    assert got.flags.writeable and not np.shares_memory(got, yv)
    np.testing.assert_array_equal(got, [yv, yv])
