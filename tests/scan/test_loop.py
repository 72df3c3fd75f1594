"""The generated loop that runs a Scan: values, rows written in place, shape errors, the
step-by-step fallback, and the rewrites that take work out of the loop."""

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.backends import python as backend
from symgrad.backends.python import OpRuntimeError
from symgrad.scan import Scan, reduce, scan, until
from tests.helpers import rng


def scans(f):
    return [n for n in f.maker.fgraph.toposort() if isinstance(n.op, Scan)]


def loop_source(f):
    return [n.op.make_thunk_function(n).source for n in scans(f)]


def rnn_numpy(W, X, h0):
    hs = [h0]
    for x in X:
        hs.append(np.tanh(W @ hs[-1] + x))
    return np.array(hs[1:])


def rnn_grad_numpy(W, X, h0, gh_last):
    hs = np.vstack([h0, rnn_numpy(W, X, h0)])
    gW, gh, gX = np.zeros_like(W), gh_last, np.zeros_like(X)
    for t in range(len(X), 0, -1):
        ga = gh * (1 - hs[t] ** 2)
        gW += np.outer(ga, hs[t - 1])
        gX[t - 1] = ga
        gh = W.T @ ga
    return gW, gX, gh


@pytest.fixture(params=["generated", "stepwise"])
def loop_kind(request, monkeypatch):
    """Run a test with the generated loop and with the fallback that calls the compiled
    step once per step (for step graphs too large to write out as source)."""
    if request.param == "stepwise":
        monkeypatch.setattr(backend, "LOOP_THRESHOLD", 0)
    return request.param


def test_the_step_is_inlined_in_one_loop_function():
    x = st.dvector("x")
    out, _ = scan(lambda v, acc: acc * 0.5 + v, sequences=x, outputs_info=st.constant(0.0))
    f = symgrad.function([x], out)
    (src,) = loop_source(f)
    assert src.startswith("def _symgrad_loop(")
    assert "for t, " in src and "zip(range(steps)" in src
    np.testing.assert_allclose(f([1.0, 2.0, 4.0]), [1.0, 2.5, 5.25])


def test_rnn_values_and_gradients(loop_kind):
    W, X, h0 = st.dmatrix("W"), st.dmatrix("X"), st.dvector("h0")
    hs, _ = scan(lambda x_t, h, W: st.tanh(st.dot(W, h) + x_t), sequences=X, outputs_info=h0,
                 non_sequences=W)
    loss = hs[-1].sum()
    f = symgrad.function([W, X, h0], [hs, *symgrad.grad(loss, [W, X, h0])])
    r = rng(1)
    Wv, Xv, h0v = r.normal(size=(4, 4)) * 0.5, r.normal(size=(6, 4)), r.normal(size=4)
    got = f(Wv, Xv, h0v)
    np.testing.assert_allclose(got[0], rnn_numpy(Wv, Xv, h0v))
    gW, gX, gh0 = rnn_grad_numpy(Wv, Xv, h0v, np.ones(4))
    np.testing.assert_allclose(got[1], gW)
    np.testing.assert_allclose(got[2], gX)
    np.testing.assert_allclose(got[3], gh0)


def test_rnn_state_rows_are_computed_in_place():
    W, X, h0 = st.dmatrix("W"), st.dmatrix("X"), st.dvector("h0")
    hs, _ = scan(lambda x_t, h, W: st.tanh(st.dot(W, h) + x_t), sequences=X, outputs_info=h0,
                 non_sequences=W)
    f = symgrad.function([W, X, h0], symgrad.grad(hs[-1].sum(), W))
    forward, backward = loop_source(f)
    assert "out=w0" in forward          # tanh(... ) written into the row of the trace
    assert "out=R0_0" in backward       # the carried cotangent: dot(...) into its ring row


def test_reduce_can_swap_its_states(loop_kind):
    # The states keep only their last value: each lives in one row, which the step reads
    # and then overwrites. Swapping them must not read a row already overwritten.
    x = st.dvector("x")
    (a, b), _ = reduce(lambda x_t, a, b: [b, a], sequences=x,
                       outputs_info=[st.constant(1.0), st.constant(2.0)])
    f = symgrad.function([x], [a, b])
    np.testing.assert_allclose(f([0.0, 0.0, 0.0]), [2.0, 1.0])
    (a, b, c), _ = reduce(lambda x_t, a, b, c: [b, c, a + x_t], sequences=x,
                          outputs_info=[st.constant(1.0), st.constant(2.0), st.constant(3.0)])
    g = symgrad.function([x], [a, b, c])
    np.testing.assert_allclose(g([10.0, 20.0]), [3.0, 11.0, 22.0])


def test_a_state_returned_as_a_mapped_output_is_its_value_before_the_step(loop_kind):
    x = st.dvector("x")
    (acc, before), _ = scan(lambda x_t, acc: [acc + x_t, acc * 1], sequences=x,
                            outputs_info=[st.constant(0.0), None])
    out, _ = reduce(lambda x_t, acc: acc + x_t, sequences=x, outputs_info=st.constant(0.0))
    f = symgrad.function([x], [acc, before, out])
    got = f([1.0, 2.0, 3.0])
    np.testing.assert_allclose(got[0], [1.0, 3.0, 6.0])
    np.testing.assert_allclose(got[1], [0.0, 1.0, 3.0])
    assert float(got[2]) == 6.0


def test_taps_and_going_backwards(loop_kind):
    v = st.dvector("v")
    fib, _ = scan(lambda older, old: older + old, outputs_info=dict(initial=v, taps=[-2, -1]),
                  n_steps=6)
    x = st.dvector("x")
    back, _ = scan(lambda prev, cur, nxt, acc: acc * 10 + prev + cur + nxt,
                   sequences=dict(input=x, taps=[-1, 0, 1]), outputs_info=st.constant(0.0),
                   go_backwards=True)
    f = symgrad.function([v, x], [fib, back])
    got = f([1.0, 1.0], [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(got[0], [2, 3, 5, 8, 13, 21])
    # backwards: the windows around rows 2 then 1
    np.testing.assert_allclose(got[1], [9.0, 96.0])


def test_ring_of_several_rows(loop_kind):
    # a last-value state with taps -3 and -1 keeps a ring of three rows
    h = st.dvector("h")
    out, _ = scan(lambda a, c: a + c * 2, outputs_info=dict(initial=h, taps=[-3, -1]),
                  n_steps=7)
    tot, _ = reduce(lambda i, a, c: a + c * 2, sequences=st.arange(7),
                    outputs_info=dict(initial=h, taps=[-3, -1]))
    f = symgrad.function([h], [out, tot])
    seq = [1.0, 2.0, 3.0]
    for _ in range(7):
        seq.append(seq[-3] + seq[-1] * 2)
    got = f([1.0, 2.0, 3.0])
    np.testing.assert_allclose(got[0], seq[3:])
    np.testing.assert_allclose(got[1], seq[-1])


def test_until_stops_the_generated_loop(loop_kind):
    v = st.dscalar("v")
    out, _ = scan(lambda a: (a * 2, until(a * 2 > 50)), outputs_info=v, n_steps=100)
    total, _ = scan(lambda a, s: ([a * 2, s + a], until(a * 2 > 50)),
                    outputs_info=[v, st.constant(0.0)], n_steps=100)
    f = symgrad.function([v], [out, total[1]])
    got = f(3.0)
    np.testing.assert_allclose(got[0], [6, 12, 24, 48, 96])
    np.testing.assert_allclose(got[1], [3, 9, 21, 45, 93])


def test_a_state_that_changes_shape_is_refused(loop_kind):
    x = st.dvector("x")
    h0 = st.dvector("h0")
    # elementwise, written straight into the row: a smaller result must not broadcast
    out, _ = scan(lambda x_t, h: h[:1] * 2 + x_t, sequences=x, outputs_info=h0)
    f = symgrad.function([x, h0], out)
    with pytest.raises(Exception, match=r"returned shape \(1,\) for state 0, but its initial "
                                        r"value has rows of shape \(2,\)"):
        f([1.0, 2.0], [1.0, 1.0])
    # a larger one neither
    M = st.dmatrix("M")
    grow, _ = scan(lambda x_t, h, M: st.dot(M, h) + x_t, sequences=x, outputs_info=h0,
                   non_sequences=M)
    g = symgrad.function([x, h0, M], grow)
    with pytest.raises(Exception, match=r"returned shape \(3,\) for state 0"):
        g([1.0, 2.0], [1.0, 1.0], np.ones((3, 2)))
    np.testing.assert_allclose(g([1.0], [1.0, 1.0], np.ones((2, 2))), [[3.0, 3.0]])


def test_a_mapped_output_that_changes_shape_is_refused(loop_kind):
    n = st.lvector("n")
    out, _ = scan(lambda k: st.zeros((k,)), sequences=n, vectorize=False)
    f = symgrad.function([n], out)
    with pytest.raises(Exception, match=r"returned shape \(3,\) for output 0, but shape "
                                        r"\(2,\) at step 0"):
        f([2, 3])


def test_a_failing_op_in_the_step_is_named(loop_kind):
    x = st.dmatrix("x")
    M = st.dmatrix("M")
    out, _ = scan(lambda x_t, M: st.dot(M, x_t), sequences=x, non_sequences=M,
                  vectorize=False)
    f = symgrad.function([x, M], out)
    with pytest.raises(OpRuntimeError, match="Dot"):
        f(np.ones((2, 3)), np.ones((2, 2)))


def test_no_steps():
    x = st.dmatrix("x")
    h0 = st.dvector("h0")
    out, _ = scan(lambda x_t, h: h * 2 + x_t.sum(), sequences=x, outputs_info=h0)
    m, _ = scan(lambda x_t: x_t * 2, sequences=x, vectorize=False)
    f = symgrad.function([x, h0], [out, m])
    got = f(np.ones((0, 3)), np.ones(2))
    assert got[0].shape == (0, 2) and got[1].shape[0] == 0


# -- sums over the steps, after the loop ------------------------------------------------------------

def test_accumulated_outer_products_become_one_dot():
    W, X, h0 = st.dmatrix("W"), st.dmatrix("X"), st.dvector("h0")
    hs, _ = scan(lambda x_t, h, W: st.tanh(st.dot(W, h) + x_t), sequences=X, outputs_info=h0,
                 non_sequences=W)
    f = symgrad.function([W, X, h0], symgrad.grad((hs[-1] ** 2).sum(), W))
    _, backward = scans(f)
    # no matrix is carried from step to step: the loop stacks vectors, a dot sums them
    assert all(v.ndim == 1 for v in backward.op.inner_states[0])
    assert backward.op.info.n_states == 1
    from symgrad.graph.traversal import ancestors

    assert any(type(n.op).__name__ == "Dot" and backward.outputs[-1] in ancestors(n.inputs)
               for n in f.maker.fgraph.apply_nodes)
    r = rng(3)
    Wv, Xv, h0v = r.normal(size=(3, 3)) * 0.5, r.normal(size=(5, 3)), r.normal(size=3)
    hT = rnn_numpy(Wv, Xv, h0v)[-1]
    np.testing.assert_allclose(f(Wv, Xv, h0v), rnn_grad_numpy(Wv, Xv, h0v, 2 * hT)[0])


@pytest.mark.parametrize("backwards", [False, True])
def test_sum_after_loop_forms(backwards):
    # acc + c * outer(tanh(x_t), y_t) + x_t[:, None] (an outer product and a broadcast
    # term), and a scalar accumulator: both summed after the loop
    X, Y = st.dmatrix("X"), st.dmatrix("Y")
    c = st.dscalar("c")

    def step(x_t, y_t, A, s, c):
        return [A + c * st.outer(st.tanh(x_t), y_t) + x_t[:, None], s + (x_t[:2] * y_t).sum()]

    (A, s), _ = reduce(step, sequences=[X, Y], outputs_info=[st.zeros((3, 2)) + 1.0,
                                                             st.constant(0.5)],
                       non_sequences=c, go_backwards=backwards)
    f = symgrad.function([X, Y, c], [A, s])
    (node,) = scans(f)
    assert node.op.info.n_states == 0  # both sums are taken after the loop
    r = rng(4)
    Xv, Yv = r.normal(size=(4, 3)), r.normal(size=(4, 2))
    want_A = 1.0 + sum(0.7 * np.outer(np.tanh(x), y) + x[:, None] for x, y in zip(Xv, Yv))
    want_s = 0.5 + sum((x[:2] * y).sum() for x, y in zip(Xv, Yv))
    got_A, got_s = f(Xv, Yv, 0.7)
    np.testing.assert_allclose(got_A, want_A)
    np.testing.assert_allclose(got_s, want_s)
    # the whole trace is asked for too: the sums stay in the loop, same values
    (A_all, _), _ = scan(step, sequences=[X, Y], outputs_info=[st.zeros((3, 2)) + 1.0,
                                                               st.constant(0.5)],
                         non_sequences=c, go_backwards=backwards)
    np.testing.assert_allclose(symgrad.function([X, Y, c], A_all[-1])(Xv, Yv, 0.7), want_A)


def test_sum_after_a_loop_that_stops():
    v = st.dvector("v")

    def step(a, acc):
        nxt = a * 2
        return [nxt, acc + st.outer(a, a)], until(nxt.sum() > 40)

    (a, acc), _ = scan(step, outputs_info=[v, st.zeros((2, 2))], n_steps=50)
    f = symgrad.function([v], acc[-1])
    want, cur = np.zeros((2, 2)), np.array([1.0, 2.0])
    while True:
        want = want + np.outer(cur, cur)
        cur = cur * 2
        if cur.sum() > 40:
            break
    np.testing.assert_allclose(f([1.0, 2.0]), want)


# -- work on the sequences alone ---------------------------------------------------------------------

def test_sequence_work_runs_before_the_loop():
    W, X, h0 = st.dmatrix("W"), st.dmatrix("X"), st.dvector("h0")
    hs, _ = scan(lambda x_t, h, W: st.tanh(st.dot(W, h) + x_t), sequences=X, outputs_info=h0,
                 non_sequences=W)
    f = symgrad.function([W, X, h0], symgrad.grad(hs[-1].sum(), W))
    _, backward = scans(f)
    inner_ops = [str(n.op) for n in backward.op.fgraph.apply_nodes]
    # (1 - h_t ** 2) is computed for all t at once: one elementwise op is left in the step
    assert sum(op in ("mul", "sub", "add") for op in inner_ops) == 1, inner_ops


def test_input_projection_runs_before_the_loop():
    U, W, X, h0 = st.dmatrix("U"), st.dmatrix("W"), st.dmatrix("X"), st.dvector("h0")
    hs, _ = scan(lambda x_t, h, U, W: st.tanh(st.dot(W, h) + st.dot(U, st.exp(x_t))),
                 sequences=X, outputs_info=h0, non_sequences=[U, W])
    f = symgrad.function([U, W, X, h0], hs)
    (node,) = scans(f)
    assert sum(type(n.op).__name__ == "Dot" for n in node.op.fgraph.apply_nodes) == 1
    assert not any(str(n.op) == "exp" for n in node.op.fgraph.apply_nodes)
    r = rng(5)
    Uv, Wv = r.normal(size=(3, 2)), r.normal(size=(3, 3)) * 0.5
    Xv, h0v = r.normal(size=(4, 2)), r.normal(size=3)
    hs_v = [h0v]
    for x in Xv:
        hs_v.append(np.tanh(Wv @ hs_v[-1] + Uv @ np.exp(x)))
    np.testing.assert_allclose(f(Uv, Wv, Xv, h0v), hs_v[1:])


def test_sequence_work_of_a_loop_that_stops_stays_in_it():
    x = st.dvector("x")
    def step(x_t, acc):
        new = acc + st.log(x_t)
        return new, until(new > 1.5)

    out, _ = scan(step, sequences=x, outputs_info=st.constant(0.0))
    f = symgrad.function([x], out)
    (node,) = scans(f)
    assert any(str(n.op) == "log" for n in node.op.fgraph.apply_nodes)
    with np.errstate(invalid="raise"):  # log(-1) after the stop is never computed
        np.testing.assert_allclose(f([np.e, np.e, -1.0]), [1.0, 2.0])


def test_sequences_of_different_lengths_with_sequence_work():
    x, y = st.dvector("x"), st.dvector("y")
    out, _ = scan(lambda a, b, acc: acc + st.exp(a) * b, sequences=[x, y],
                  outputs_info=st.constant(0.0))
    f = symgrad.function([x, y], out)
    np.testing.assert_allclose(f([0.0, 0.0, 0.0], [1.0, 2.0]), [1.0, 3.0])
    n = st.lscalar("n")
    short, _ = scan(lambda a, b, acc: acc + st.exp(a) * b, sequences=[x, y],
                    outputs_info=st.constant(0.0), n_steps=n)
    g = symgrad.function([x, y, n], short)
    np.testing.assert_allclose(g([0.0, 0.0, 0.0], [1.0, 2.0], 1), [1.0])
    with pytest.raises(Exception, match=r"sequence 1 \('y'\) is too short: it has 2 rows"):
        g([0.0, 0.0, 0.0], [1.0, 2.0], 3)


def test_the_last_row_cotangent_is_the_initial_carry():
    W, X, h0 = st.dmatrix("W"), st.dmatrix("X"), st.dvector("h0")
    hs, _ = scan(lambda x_t, h, W: st.tanh(st.dot(W, h) + x_t), sequences=X, outputs_info=h0,
                 non_sequences=W)
    gh0 = symgrad.grad((hs[-1] * st.arange(3)).sum(), h0)
    f = symgrad.function([W, X, h0], gh0)
    _, backward = scans(f)
    # the backward loop reads no sequence of zeros with one row set
    assert not any(type(n.op).__name__ == "IncSubtensor" for n in f.maker.fgraph.apply_nodes)
    r = rng(6)
    Wv, Xv, h0v = r.normal(size=(3, 3)) * 0.5, r.normal(size=(4, 3)), r.normal(size=3)
    np.testing.assert_allclose(f(Wv, Xv, h0v), rnn_grad_numpy(Wv, Xv, h0v, np.arange(3.0))[2])
    # a cotangent on other rows too still flows through the sequence
    both = symgrad.function([W, X, h0], symgrad.grad(hs[-1].sum() + hs[1].sum(), h0))
    hs_v = rnn_numpy(Wv, Xv, h0v)
    eps, base = 1e-6, hs_v[-1].sum() + hs_v[1].sum()
    num = [(rnn_numpy(Wv, Xv, h0v + eps * np.eye(3)[i])[[1, -1]].sum() - base) / eps
           for i in range(3)]
    np.testing.assert_allclose(both(Wv, Xv, h0v), num, rtol=1e-4)
    del backward


def test_sums_after_a_loop_of_no_steps():
    X = st.dmatrix("X")
    A, _ = reduce(lambda x_t, A: A + st.outer(st.tanh(x_t), x_t), sequences=X,
                  outputs_info=st.zeros((3, 3)) + 1.0)
    v, _ = reduce(lambda x_t, v: v + st.tanh(x_t), sequences=X,
                  outputs_info=st.zeros((3,)) + 1.0)
    f = symgrad.function([X], [A, v])
    assert all(n.op.info.n_states == 0 for n in scans(f))
    got = f(np.ones((0, 3)))
    np.testing.assert_array_equal(got[0], np.ones((3, 3)))
    np.testing.assert_array_equal(got[1], np.ones(3))
    got = f(np.ones((2, 3)))
    np.testing.assert_allclose(got[1], 1 + 2 * np.tanh(1.0))
