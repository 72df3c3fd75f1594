"""The graphs every backend is compared on (against the default mode).

A test that takes a ``graph_case`` argument runs once per entry of :data:`CASES`
(``pytest_generate_tests`` below). Each case builds one function with many outputs,
so that backends with a slow compiler (numba) compile few functions.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.tensor.elemwise import SCALAR_OPS, Elemwise


@dataclasses.dataclass
class Case:
    inputs: list
    outputs: list
    values: list
    rtol: float = 1e-7
    atol: float = 1e-10
    updates: list | None = None


def _rng(seed=0):
    return np.random.default_rng(seed)


CASES: dict[str, object] = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


# -- elementwise ------------------------------------------------------------------------------

_UNARY_DOMAIN = {"arccosh": lambda x: x + 1.0, "erfcinv": lambda x: x * 1.5}
_INT_ONLY = {"invert"}


@case
def elemwise_unary():
    x = st.dmatrix("x")
    n = st.lmatrix("n")
    outs = []
    for name, sop in sorted(SCALAR_OPS.items()):
        if sop.nin != 1 or name.startswith("cast{"):
            continue
        if name in _INT_ONLY:
            outs.append(Elemwise(sop)(n))
        else:
            outs.append(Elemwise(sop)(_UNARY_DOMAIN.get(name, lambda v: v)(x)))
    r = _rng(1)
    return Case([x, n], outs, [r.uniform(0.1, 0.9, (3, 4)), r.integers(-5, 5, (3, 4))], rtol=1e-6)


@case
def elemwise_binary():
    x, y = st.dmatrix("x"), st.dvector("y")
    i, j = st.lmatrix("i"), st.lvector("j")
    b = st.tensor("b", dtype="bool", shape=(None, None))
    c = st.tensor("c", dtype="bool", shape=(None,))
    outs = []
    for name, sop in sorted(SCALAR_OPS.items()):
        if sop.nin not in (2, -1) or name.startswith("cast{"):
            continue
        op = Elemwise(sop)
        if name in ("and_", "or_", "xor"):
            outs += [op(i, j), op(b, c)]
        elif name == "polygamma":
            outs.append(op(st.constant(np.array([0, 1, 2, 1])), y))
        elif name in ("int_div",):
            outs.append(op(i, j))
        elif sop.nin == -1:
            outs.append(op(x, y, x))
        else:
            outs += [op(x, y)]
            if name in ("floor_div", "mod", "pow", "maximum", "eq", "lt"):
                outs.append(op(i, j))
    outs += [st.clip(x, 0.3, y), st.switch(b, x, y), st.switch(x > 0.5, x, 0.0)]
    r = _rng(2)
    jv = r.integers(1, 4, 4)
    return Case([x, y, i, j, b, c], outs, [
        r.uniform(0.5, 2.0, (3, 4)), r.uniform(0.5, 2.0, 4), r.integers(-6, 6, (3, 4)), jv,
        r.uniform(size=(3, 4)) > 0.5, r.uniform(size=4) > 0.5], rtol=1e-6)


@case
def dtypes_and_weak_constants():
    f = st.fmatrix("f")
    i = st.ivector("i")
    u = st.tensor("u", dtype="uint8", shape=(None,))
    outs = [f * 2.5, f + 1, i + 1, i * 1.5, i / 2, st.cast(f, "int32"), st.cast(i, "float32"),
            st.cast(f > 0.5, "float64"), u + 3, st.sqrt(i), f ** 2, 2.0 ** f, st.exp(f),
            st.cast(f, "bool"), st.sum(i), st.mean(f, axis=0), st.cast(u, "int16") - 300]
    r = _rng(3)
    return Case([f, i, u], outs, [r.uniform(size=(2, 3)).astype("float32"),
                                  r.integers(0, 9, 3).astype("int32"),
                                  r.integers(0, 255, 3).astype("uint8")], rtol=2e-6)


# -- reductions and friends ------------------------------------------------------------------

@case
def reductions():
    x = st.dtensor3("x")
    m = st.lmatrix("m")
    outs = []
    for fn in (st.sum, st.prod, st.max, st.min, st.mean, st.var, st.std, st.logsumexp,
               st.argmax, st.argmin):
        for axis in (None, 0, 1, (0, 2), -1):
            outs.append(fn(x, axis=axis))
        outs.append(fn(x, axis=1, keepdims=True))
    outs += [st.any(x > 0.5, axis=1), st.all(x > 0.1), st.sum(m, axis=0), st.prod(m),
             st.max(m, axis=1), st.var(x, axis=2, ddof=1)]
    outs += [st.softmax(x, axis=-1), st.log_softmax(x, axis=1), st.softmax(x, axis=None),
             st.cumsum(x, axis=1), st.cumprod(x, axis=2), st.diff(x, axis=0)]
    r = _rng(4)
    return Case([x, m], outs, [r.uniform(0.2, 1.2, (2, 3, 4)), r.integers(-3, 4, (3, 4))])


@case
def linalg_and_sort():
    a, b = st.dmatrix("a"), st.dmatrix("b")
    v, w = st.dvector("v"), st.dvector("w")
    t = st.dtensor3("t")
    outs = [st.dot(a, b), st.dot(a, v), st.dot(v, b.T), st.dot(v, w), st.matmul(t, b),
            st.matmul(v[:3], t), st.matmul(t, w), st.tensordot(t, b, axes=[[2], [0]]),
            st.einsum("ij,jk->ik", a, b), st.einsum("bij,j->bi", t, w), st.outer(v, w), a @ b,
            st.sort(a, axis=0), st.sort(t, axis=-1), st.argsort(a, axis=1), st.argsort(v)]
    r = _rng(5)
    return Case([a, b, v, w, t], outs, [r.normal(size=(3, 4)), r.normal(size=(4, 4)),
                                        r.normal(size=4), r.normal(size=4),
                                        r.normal(size=(2, 3, 4))])


# -- shapes and indexing ---------------------------------------------------------------------

@case
def shape_ops():
    x = st.dmatrix("x")
    v = st.dvector("v")
    n = st.lscalar("n")
    outs = [x.reshape((-1,)), x.reshape((2, -1)), st.flatten(x),
            x.T, x.dimshuffle(1, "x", 0), st.concatenate([x, x * 2], axis=1),
            st.stack([v, v + 1]), *st.split(v, [1, 3], 2), st.broadcast_to(v, (3, 4)),
            st.zeros((2, 3)), st.ones_like(x), st.full((2,), 7.0), st.arange(5),
            st.arange(1, 2, 0.25), st.eye(3, 4, 1), st.repeat(v, 2), st.repeat(x, [1, 0, 2], axis=0),
            st.tile(v, (2, 2)), st.expand_dims(v, 0), st.squeeze(x[:1]), st.shape(x),
            st.specify_shape(v, (4,)) * 2, st.zeros((n, 2)), st.arange(n) * 2, st.eye(n),
            x.reshape((n, -1)), st.alloc(v, n, 4), st.shape(x)[0] * 3, x.sum()]
    r = _rng(6)
    return Case([x, v, n], outs, [r.normal(size=(3, 4)), r.normal(size=4), np.int64(3)])


@case
def indexing():
    x = st.dmatrix("x")
    t = st.dtensor3("t")
    i = st.lscalar("i")
    idx = st.lvector("idx")
    y = st.dvector("y")
    mask = np.array([True, False, True])
    outs = [x[1], x[-1, 2:], x[:, ::2], x[::-1], x[None, 1:3, None], x[i], x[i, i + 1],
            x[idx], x[:, idx], x[idx, idx], t[..., 1], t[:, idx, 1:], t[idx, :, idx],
            x[mask], x[1:][:, [0, 0, 3]],
            st.set_subtensor(x[1:, 2], 5.0), st.inc_subtensor(x[:, 1], y[:3]),
            st.inc_subtensor(x[idx], 1.0), st.set_subtensor(x[idx, 0], y[:3]),
            st.inc_subtensor(x[i:], 2.0), st.take(y, idx), st.take(x, idx, axis=1),
            st.set_subtensor(x[::-1, 1:3], 7.0), st.inc_subtensor(x[-1, ::-2], y[:2]),
            st.inc_subtensor(t[1:, 1:-1:2, -1], y[:1]), st.set_subtensor(t[..., 0], x)]
    r = _rng(7)
    return Case([x, t, i, idx, y], outs, [r.normal(size=(3, 4)), r.normal(size=(3, 4, 4)),
                                          np.int64(1), np.array([0, 2, 2]), r.normal(size=4)])


# -- derivatives -------------------------------------------------------------------------------

@case
def gradients():
    x, W = st.dvector("x"), st.dmatrix("W")
    b = st.dvector("b")
    h = st.tanh(st.dot(W, x) + b)
    cost = st.sum(st.softmax(h) * st.log1p(st.exp(h))) + st.sum(W ** 2) * 0.1
    gx, gW, gb = symgrad.grad(cost, [x, W, b])
    J = symgrad.jacobian(st.softmax(h), x)
    H = symgrad.hessian(st.sum(st.sin(x) * st.prod(x) + st.logsumexp(x * x)), x)
    v = st.dvector("v")
    Rv = symgrad.Rop(h, x, v)
    Lv = symgrad.Lop(h, W, b)
    sort_grad = symgrad.grad(st.sum(st.sort(x) * st.arange(4)), x)
    cum_grad = symgrad.grad(st.sum(st.cumprod(x) * b), x)
    max_grad = symgrad.grad(st.max(W, axis=0).sum() + st.std(W), W)
    idx_grad = symgrad.grad(st.sum(W[[0, 0, 2], 1:] ** 2), W)
    r = _rng(8)
    return Case([x, W, b, v], [gx, gW, gb, J, H, Rv, Lv, sort_grad, cum_grad, max_grad, idx_grad],
                [r.normal(size=4), r.normal(size=(4, 4)) * 0.5, r.normal(size=4),
                 r.normal(size=4)], rtol=1e-6)


# -- scan --------------------------------------------------------------------------------------

@case
def scan_rnn():
    W, X, h0 = st.dmatrix("W"), st.dmatrix("X"), st.dvector("h0")
    hs, _ = symgrad.scan(lambda x_t, h, W: st.tanh(st.dot(W, h) + x_t), sequences=X,
                         outputs_info=h0, non_sequences=W)
    cost = st.sum(hs[-1]) + st.sum(hs ** 2) * 0.01
    gW, gh0 = symgrad.grad(cost, [W, h0])
    fib, _ = symgrad.scan(lambda a, b: a + b, outputs_info=dict(initial=h0[:2], taps=[-2, -1]),
                          n_steps=6)
    rev, _ = symgrad.scan(lambda x_t, acc: acc * 0.5 + x_t, sequences=X, outputs_info=h0,
                          go_backwards=True)
    mapped, _ = symgrad.scan(lambda x_t: st.sum(x_t ** 2), sequences=X, vectorize=False)
    r = _rng(9)
    return Case([W, X, h0], [hs, gW, gh0, fib, rev, mapped],
                [r.normal(size=(3, 3)) * 0.5, r.normal(size=(5, 3)), r.normal(size=3)],
                rtol=1e-6)


@case
def scan_until():
    x = st.dscalar("x")
    doubled, _ = symgrad.scan(lambda v: (v * 2, symgrad.scan.until(v * 2 > 50)),
                              outputs_info=x, n_steps=100)
    return Case([x], [doubled, doubled[-1], doubled[1:], doubled[2:][-1]], [np.float64(3.0)])


def pytest_generate_tests(metafunc):
    if "graph_case" in metafunc.fixturenames:
        metafunc.parametrize("graph_case", list(CASES), indirect=True)


@pytest.fixture
def graph_case(request):
    return request.param, CASES[request.param]()


def compare_with_default(case_value, mode, **kwargs):
    """Compile ``case_value`` with ``mode`` and the default mode; outputs must agree."""
    c = case_value
    f = symgrad.function(c.inputs, c.outputs, mode=mode, on_unused_input="ignore", **kwargs)
    ref = symgrad.function(c.inputs, c.outputs, on_unused_input="ignore")
    got, want = f(*c.values), ref(*c.values)
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype, (k, c.outputs[k], g.dtype, w.dtype)
        assert g.shape == w.shape, (k, c.outputs[k], g.shape, w.shape)
        if w.dtype.kind in "fc":
            np.testing.assert_allclose(g, w, rtol=c.rtol, atol=c.atol,
                                       err_msg=f"output {k}: {c.outputs[k]}")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"output {k}: {c.outputs[k]}")
    return f
