"""scan's argument forms against plain numpy loops."""

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.scan import Scan, foldl, foldr, map, reduce, scan, until
from tests.helpers import rng


def compile_fn(inputs, outputs, updates=None):
    return symgrad.function(inputs, outputs, updates=updates, on_unused_input="ignore")


def scan_nodes(f):
    return [n for n in f.maker.fgraph.apply_nodes if isinstance(n.op, Scan)]


def test_accumulate_sequence_with_initial_value():
    x = st.dvector("x")
    out, updates = scan(lambda x_t, acc: acc + x_t, sequences=x, outputs_info=st.constant(0.0))
    assert dict(updates) == {}
    np.testing.assert_allclose(compile_fn([x], out)([1.0, 2.0, 3.0]), [1.0, 3.0, 6.0])


def test_rnn_matches_numpy_loop():
    W, X, h0 = st.dmatrix("W"), st.dmatrix("X"), st.dvector("h0")
    hs, _ = scan(lambda x_t, h, W: st.tanh(st.dot(W, h) + x_t), sequences=X, outputs_info=h0,
                 non_sequences=W)
    r = rng(1)
    Wv, Xv, hv = r.normal(size=(4, 4)) * 0.5, r.normal(size=(6, 4)), r.normal(size=4)
    want, h = [], hv
    for t in range(6):
        h = np.tanh(Wv @ h + Xv[t])
        want.append(h)
    got = compile_fn([W, X, h0], hs)(Wv, Xv, hv)
    np.testing.assert_allclose(got, want)
    assert hs.type.shape == (None, None)


def test_sequence_taps_and_several_output_taps():
    x, h0 = st.dvector("x"), st.dvector("h0")
    out, _ = scan(lambda xm2, x0, xp1, hm3, hm1: xm2 + 2 * x0 + 3 * xp1 + hm3 * hm1,
                  sequences=dict(input=x, taps=[-2, 0, 1]),
                  outputs_info=dict(initial=h0, taps=[-3, -1]))
    xv = np.arange(1.0, 9.0)
    hv = np.array([0.5, -0.25, 1.0])
    f = compile_fn([x, h0], out)
    got = f(xv, hv)
    buf = list(hv)
    for t in range(len(xv) - 3):  # taps -2..1 leave len - 3 steps
        xs = xv[t:t + 4]
        buf.append(xs[0] + 2 * xs[2] + 3 * xs[3] + buf[-3] * buf[-1])
    np.testing.assert_allclose(got, buf[3:])


def test_taps_all_positive_or_all_negative():
    x = st.dvector("x")
    ahead, _ = scan(lambda a, b: a * b, sequences=dict(input=x, taps=[1, 2]))
    behind, _ = scan(lambda a: a * 10, sequences=dict(input=x, taps=[-2]))
    xv = np.arange(1.0, 6.0)
    np.testing.assert_allclose(compile_fn([x], ahead)(xv), xv[1:-1] * xv[2:])
    # PyTensor counts tap 0 as used: taps=[-2] gives len - 2 steps starting at x[0].
    np.testing.assert_allclose(compile_fn([x], behind)(xv), xv[:-2] * 10)


def test_initial_buffer_longer_than_the_taps_need():
    h0 = st.dvector("h0")
    fib, _ = scan(lambda a, b: a + b, outputs_info=dict(initial=h0, taps=[-2, -1]), n_steps=5)
    np.testing.assert_allclose(compile_fn([h0], fib)([1.0, 1.0, 99.0]), [2, 3, 5, 8, 13])


def test_mapped_and_recurrent_outputs_mixed_in_order():
    x = st.dvector("x")
    sq, acc, double = scan(lambda x_t, a: (x_t ** 2, a + x_t, 2 * a), sequences=x,
                           outputs_info=[None, st.constant(0.0), None])[0]
    f = compile_fn([x], [sq, acc, double])
    got = f([1.0, 2.0, 3.0])
    np.testing.assert_allclose(got[0], [1, 4, 9])
    np.testing.assert_allclose(got[1], [1, 3, 6])
    np.testing.assert_allclose(got[2], [0, 2, 6])


def test_several_sequences_shortest_wins_and_closures():
    x, y = st.dvector("x"), st.dvector("y")
    c = st.dscalar("c")  # used inside fn without being passed
    out, _ = scan(lambda a, b: a * b + c, sequences=[x, y], vectorize=False)
    f = compile_fn([x, y, c], out)
    np.testing.assert_allclose(f([1.0, 2.0, 3.0], [4.0, 5.0], 0.5), [4.5, 10.5])
    # (compiled as it is: otherwise the whole step runs over all rows before the loop)
    kept = symgrad.function([x, y, c], out, mode=symgrad.Mode().excluding(
        "scan_batch_sequence_work"))
    np.testing.assert_allclose(kept([1.0, 2.0, 3.0], [4.0, 5.0], 0.5), [4.5, 10.5])
    node, = scan_nodes(kept)
    assert node.op.info.n_nonseqs == 1


def test_non_sequences_are_passed_as_the_outer_variables():
    # grad inside the step needs y's dependence on x: the tutorial's Jacobian recipe.
    x = st.dvector("x")
    y = x ** 2
    seen = []

    def step(i, y_, x_):
        seen.append((y_, x_))
        return symgrad.grad(y_[i], x_)

    J, updates = scan(step, sequences=st.arange(y.shape[0]), non_sequences=[y, x])
    assert seen == [(y, x)]
    f = symgrad.function([x], J, updates=updates)
    np.testing.assert_allclose(f([4.0, 4.0]), [[8.0, 0.0], [0.0, 8.0]])


@pytest.mark.parametrize("vectorize", [True, False])
def test_tutorial_hessian_recipe_both_paths(vectorize):
    x = st.dvector("x")
    cost = (x ** 3).sum()
    gy = symgrad.grad(cost, x)
    H, updates = scan(lambda i, gy, x: symgrad.grad(gy[i], x), sequences=st.arange(gy.shape[0]),
                      non_sequences=[gy, x], vectorize=vectorize)
    f = symgrad.function([x], H, updates=updates)
    np.testing.assert_allclose(f([1.0, 2.0, 3.0]), np.diag([6.0, 12.0, 18.0]))
    assert bool(scan_nodes(f)) is not vectorize


def test_map_vectorized_has_no_loop_and_matches_loop():
    x = st.dmatrix("x")
    W = st.dmatrix("W")
    fn = lambda row, W: st.tanh(st.dot(W, row)).sum()  # noqa: E731
    vec, _ = map(fn, sequences=x, non_sequences=W)
    loop, _ = scan(fn, sequences=x, non_sequences=W, vectorize=False)
    f = compile_fn([x, W], [vec, loop])
    assert len(scan_nodes(compile_fn([x, W], vec))) == 0
    assert len(scan_nodes(compile_fn([x, W], loop))) == 1
    r = rng(2)
    xv, Wv = r.normal(size=(5, 3)), r.normal(size=(2, 3))
    a, b = f(xv, Wv)
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, np.tanh(xv @ Wv.T).sum(axis=1))


def test_vectorized_map_of_a_step_that_ignores_the_sequence():
    x = st.dvector("x")
    c = st.dvector("c")
    out, _ = map(lambda v, c: c * 2, sequences=x, non_sequences=c)
    np.testing.assert_allclose(compile_fn([x, c], out)([1.0, 2.0, 3.0], [1.0, 5.0]),
                               [[2.0, 10.0]] * 3)


def test_vectorized_map_over_several_sequences_of_different_lengths():
    x, y = st.dvector("x"), st.dvector("y")
    out, _ = map(lambda a, b: a - b, sequences=[x, y])
    np.testing.assert_allclose(compile_fn([x, y], out)([5.0, 6.0, 7.0], [1.0, 2.0]), [4.0, 4.0])


def test_go_backwards():
    x, h0 = st.dvector("x"), st.dscalar("h0")
    out, _ = scan(lambda x_t, h: h * 10 + x_t, sequences=x, outputs_info=h0, go_backwards=True)
    np.testing.assert_allclose(compile_fn([x, h0], out)([1.0, 2.0, 3.0], 0.0), [3, 32, 321])
    taps, _ = scan(lambda a, b: a * 10 + b, sequences=dict(input=x, taps=[-1, 0]),
                   go_backwards=True, vectorize=False)
    # reversed: pairs (x[t-1], x[t]) from the end
    np.testing.assert_allclose(compile_fn([x], taps)([1.0, 2.0, 3.0]), [23, 12])


def test_n_steps_constant_symbolic_and_zero():
    x0 = st.dvector("x0")
    n = st.lscalar("n")
    out, _ = scan(lambda h: h * 2, outputs_info=x0, n_steps=n)
    f = compile_fn([x0, n], out)
    np.testing.assert_allclose(f([1.0, 3.0], 3), [[2, 6], [4, 12], [8, 24]])
    assert f([1.0, 3.0], 0).shape == (0, 2)
    fixed, _ = scan(lambda h: h * 2, outputs_info=x0, n_steps=4)
    assert fixed.type.shape == (4, None)
    assert compile_fn([x0], fixed)([1.0, 1.0]).shape == (4, 2)
    # n_steps shorter than the sequence: only the first rows are used
    x = st.dvector("x")
    part, _ = scan(lambda v: v + 1, sequences=x, n_steps=2, vectorize=False)
    np.testing.assert_allclose(compile_fn([x], part)([1.0, 2.0, 3.0]), [2.0, 3.0])


def test_until_stops_after_the_first_true_condition():
    x = st.dscalar("x")
    out, _ = scan(lambda v: (v * 2, until(v * 2 > 50)), outputs_info=x, n_steps=100)
    f = compile_fn([x], [out, out[-1]])
    got, last = f(3.0)
    np.testing.assert_allclose(got, [6, 12, 24, 48, 96])
    assert last == 96
    got, _ = f(100.0)
    np.testing.assert_allclose(got, [200.0])


def test_until_with_sequences_and_mapped_outputs():
    x = st.dvector("x")
    out, _ = scan(lambda v, acc: ([acc + v, v * 10], until(acc + v > 4)), sequences=x,
                  outputs_info=[st.constant(0.0), None])
    acc, tens = compile_fn([x], out)([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(acc, [1, 3, 6])
    np.testing.assert_allclose(tens, [10, 20, 30])
    acc, tens = compile_fn([x], out)([1.0, 1.0])  # never true: runs over the whole sequence
    np.testing.assert_allclose(acc, [1, 2])


def test_until_alone_and_as_until_object():
    x = st.dscalar("x")
    counter = symgrad.shared(np.int64(0), name="counter")
    out, updates = scan(lambda v: ([v + 1], {counter: counter + 1}, until(v + 1 >= 3)),
                        outputs_info=x, n_steps=10)
    f = symgrad.function([x], out, updates=updates)
    np.testing.assert_allclose(f(0.0), [1, 2, 3])
    assert counter.get_value() == 3


def test_shared_variable_updates():
    x = st.dvector("x")
    total = symgrad.shared(np.float64(0.0), name="total")
    W = symgrad.shared(np.ones(2), name="W")
    out, updates = scan(lambda v: (v * W.sum(), {total: total + v}), sequences=x)
    assert list(updates) == [total]
    f = symgrad.function([x], out, updates=updates)
    np.testing.assert_allclose(f([1.0, 2.0, 3.0]), [2.0, 4.0, 6.0])
    assert total.get_value() == 6.0
    f([1.0])
    assert total.get_value() == 7.0


def test_step_returning_only_updates():
    s = symgrad.shared(np.zeros(2), name="s")
    out, updates = scan(lambda: {s: s + 1.0}, n_steps=4)
    assert out is None
    symgrad.function([], [], updates=updates)()
    np.testing.assert_allclose(s.get_value(), [4.0, 4.0])


def test_return_list_and_list_outputs():
    x = st.dvector("x")
    out, _ = scan(lambda v: v * 2, sequences=x, return_list=True)
    assert isinstance(out, list) and len(out) == 1
    out, _ = scan(lambda v: [v * 2], sequences=x)
    assert not isinstance(out, list)


def test_reduce_foldl_foldr():
    x = st.dvector("x")
    total, _ = reduce(lambda v, acc: acc + v ** 2, sequences=x, outputs_info=st.constant(0.0))
    left, _ = foldl(lambda v, acc: acc * 10 + v, sequences=x, outputs_info=st.constant(0.0))
    right, _ = foldr(lambda v, acc: acc * 10 + v, sequences=x, outputs_info=st.constant(0.0))
    both, _ = reduce(lambda v, a: [a + v, v * 2], sequences=x,
                     outputs_info=[st.constant(0.0), None])
    f = compile_fn([x], [total, left, right] + both)
    got = f([1.0, 2.0, 3.0])
    np.testing.assert_allclose(got[:3], [14.0, 123.0, 321.0])
    np.testing.assert_allclose(got[3:], [6.0, 6.0])
    assert total.type.ndim == 0


def test_scan_attributes_and_top_level_name():
    assert symgrad.scan is scan
    assert symgrad.scan.until is until and symgrad.scan.map is map
    x = st.dvector("x")
    out, _ = symgrad.scan.reduce(lambda v, acc: acc + v, sequences=x,
                                 outputs_info=st.constant(0.0))
    assert compile_fn([x], out)([1.0, 2.0]) == 3.0


def test_strict_accepts_passed_variables():
    x, c = st.dvector("x"), st.dscalar("c")
    out, _ = scan(lambda v, c: v * c, sequences=x, non_sequences=c, strict=True)
    np.testing.assert_allclose(compile_fn([x, c], out)([1.0, 2.0], 3.0), [3.0, 6.0])


def test_loop_invariants_move_out_of_the_loop():
    x, W = st.dvector("x"), st.dmatrix("W")
    out, _ = scan(lambda v, h: st.tanh(st.dot(st.exp(W).T, h) + v), sequences=x,
                  outputs_info=st.zeros(2))
    node = out.owner.inputs[0].owner
    assert isinstance(node.op, Scan)
    # every inner node depends on the step's inputs: exp(W).T is computed once, outside
    op = node.op
    varying = set(op.inner_inputs[:2])
    for inner in op.fgraph.toposort():
        assert any(i in varying for i in inner.inputs), inner
        varying.update(inner.outputs)
    assert op.info.n_nonseqs == 1
    hoisted = node.inputs[-1]
    assert hoisted.owner is not None and "exp" in symgrad.pp(hoisted)
    r = rng(3)
    Wv = r.normal(size=(2, 2))
    got = compile_fn([x, W], out)([0.1, 0.2], Wv)
    h = np.zeros(2)
    for v in [0.1, 0.2]:
        h = np.tanh(np.exp(Wv).T @ h + v)
    np.testing.assert_allclose(got[-1], h)


def test_nested_scan():
    X = st.dmatrix("X")

    def row_cumsum(row):
        out, _ = scan(lambda v, acc: acc + v, sequences=row, outputs_info=st.constant(0.0))
        return out

    out, _ = scan(row_cumsum, sequences=X, vectorize=False)
    xv = rng(4).normal(size=(3, 4))
    np.testing.assert_allclose(compile_fn([X], out)(xv), np.cumsum(xv, axis=1))


def test_integer_and_float32_states():
    n = st.lscalar("n")
    count, _ = scan(lambda c: c + 1, outputs_info=st.constant(0, dtype="int64"), n_steps=n)
    assert count.dtype == "int64"
    np.testing.assert_array_equal(compile_fn([n], count)(3), [1, 2, 3])
    x = st.fvector("x")
    acc, _ = scan(lambda v, a: a + v, sequences=x, outputs_info=st.constant(0.0, dtype="float32"))
    got = compile_fn([x], acc)(np.array([1, 2], dtype="float32"))
    assert got.dtype == np.float32


def test_output_cast_to_the_state_dtype_when_safe():
    x = st.fvector("x")
    # a float64 step result for a float32 state is cast back (same kind)
    acc, _ = scan(lambda v, a: a + st.cast(v, "float64"), sequences=x,
                  outputs_info=st.constant(0.0, dtype="float32"))
    assert acc.dtype == "float32"


def test_jacobian_vectorize_false_uses_scan():
    x = st.dvector("x")
    y = st.sin(x) * x
    J = symgrad.gradient.jacobian(y, x, vectorize=False)
    xv = np.array([0.3, -1.2, 2.0])
    np.testing.assert_allclose(compile_fn([x], J)(xv), np.diag(np.cos(xv) * xv + np.sin(xv)))
    W = st.dmatrix("W")
    Jw = symgrad.gradient.jacobian(st.dot(W, x), [W, x], vectorize=False)
    Wv = rng(5).normal(size=(2, 3))
    a, b = compile_fn([W, x], Jw)(Wv, xv)
    assert a.shape == (2, 2, 3)
    np.testing.assert_allclose(b, Wv)


def test_scan_node_structure_and_printing():
    x = st.dvector("x")
    out, _ = scan(lambda v, h: h + v, sequences=x, outputs_info=st.constant(0.0), name="cumsum")
    node = out.owner.inputs[0].owner
    assert str(node.op) == "Scan{cumsum}"
    assert "Scan{cumsum}" in symgrad.pp(out)
    # equal loops are equal ops (so duplicate loops can merge)
    out2, _ = scan(lambda v, h: h + v, sequences=x, outputs_info=st.constant(0.0), name="cumsum")
    assert out2.owner.inputs[0].owner.op == node.op
    assert hash(out2.owner.inputs[0].owner.op) == hash(node.op)


def test_reduce_with_several_taps_keeps_a_ring_of_values():
    f0 = st.dvector("f0")
    x = st.dvector("x")
    last, _ = reduce(lambda v, a, b: a + b + v, sequences=x,
                     outputs_info=dict(initial=f0, taps=[-2, -1]))
    f = compile_fn([x, f0], last)
    buf = [1.0, 1.0]
    for v in [0.5, 0.25, 2.0, 1.0, 3.0]:
        buf.append(buf[-2] + buf[-1] + v)
    np.testing.assert_allclose(f([0.5, 0.25, 2.0, 1.0, 3.0], [1.0, 1.0]), buf[-1])
    np.testing.assert_allclose(f(np.zeros(0), [1.0, 7.0]), 7.0)  # no steps: the newest initial
    (node,) = scan_nodes(f)
    assert node.op.info.state_last == (True,)


def test_compiled_scan_pickles():
    import pickle

    x = st.dvector("x")
    out, _ = scan(lambda v, h: h * 0.5 + v, sequences=x, outputs_info=st.constant(0.0))
    f = symgrad.function([x], [out, symgrad.grad(out.sum(), x)])
    g = pickle.loads(pickle.dumps(f))
    for a, b in zip(f([1.0, 2.0, 3.0]), g([1.0, 2.0, 3.0])):
        np.testing.assert_allclose(a, b)
