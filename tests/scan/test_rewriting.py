"""What the Scan rewrites do to compiled graphs (structure), and that values stay right."""

import numpy as np

import symgrad
import symgrad.tensor as st
from symgrad.scan import Scan, ScanInfo, reduce, scan
from tests.helpers import rng


def compiled_scans(f):
    return [n for n in f.maker.fgraph.toposort() if isinstance(n.op, Scan)]


def test_unused_mapped_output_is_dropped():
    x = st.dvector("x")
    (sq, cube), _ = scan(lambda v: [v ** 2, v ** 3], sequences=x, vectorize=False)
    f = symgrad.function([x], sq)
    (node,) = compiled_scans(f)
    assert node.op.info.n_nitsot == 1
    np.testing.assert_allclose(f([1.0, 2.0]), [1.0, 4.0])


def test_unused_state_is_dropped_unless_a_kept_output_reads_it():
    x = st.dvector("x")
    (a, b, c), _ = scan(lambda v, a, b: [a + v, b * 2 + a, v * 10], sequences=x,
                        outputs_info=[st.constant(0.0), st.constant(1.0), None])
    only_c = symgrad.function([x], c)
    (node,) = compiled_scans(only_c)
    assert node.op.info.n_states == 0 and node.op.info.n_nitsot == 1
    only_b = symgrad.function([x], b)  # b reads a: both stay, c goes
    (node,) = compiled_scans(only_b)
    assert node.op.info.n_states == 2 and node.op.info.n_nitsot == 0
    np.testing.assert_allclose(only_b([1.0, 2.0, 3.0]), [2.0, 5.0, 13.0])


def test_invariants_of_a_hand_built_scan_are_pushed_out():
    # A Scan built directly (not through scan()) with exp(W) inside the step.
    W = st.dvector("W")
    h = st.dvector("h")
    Wi = st.dvector("Wi")
    info = ScanInfo(state_taps=((-1,),), state_last=(False,), n_nonseqs=1)
    op = Scan([h, Wi], [h * st.exp(Wi)], info)
    h0 = st.dmatrix("h0")
    out = op(st.constant(3, dtype="int64"), h0, W)
    f = symgrad.function([h0, W], out)
    (node,) = compiled_scans(f)
    inner_names = {getattr(n.op, "scalar_op", None) and n.op.scalar_op.name
                   for n in node.op.fgraph.apply_nodes}
    assert "exp" not in inner_names
    got = f(np.ones((1, 2)), [0.0, np.log(2.0)])
    np.testing.assert_allclose(got, [[1, 1], [1, 2], [1, 4], [1, 8]])


def test_last_value_loop_reuses_the_full_trace_of_its_derivative():
    x, a = st.dvector("x"), st.dscalar("a")
    total, _ = reduce(lambda v, acc, a: acc * a + st.sin(v), sequences=x,
                      outputs_info=st.constant(0.0), non_sequences=a)
    g = symgrad.grad(total, a)
    f = symgrad.function([x, a], [total, g])
    forward = [n for n in compiled_scans(f) if not n.op.info.reverse]
    assert len(forward) == 1  # not one loop for the value and another for the derivative
    xv = np.array([1.0, 2.0, 3.0])
    acc, d = 0.0, 0.0
    for v in xv:
        acc, d = acc * 0.5 + np.sin(v), d * 0.5 + acc
    value, grad = f(xv, 0.5)
    np.testing.assert_allclose([value, grad], [acc, d])


def test_backward_loop_of_the_rnn_keeps_only_what_it_needs():
    W, X, h0 = st.dmatrix("W"), st.dmatrix("X"), st.dvector("h0")
    hs, _ = scan(lambda x_t, h, W: st.tanh(st.dot(W, h) + x_t), sequences=X, outputs_info=h0,
                 non_sequences=W)
    gW = symgrad.grad(hs[-1].sum(), W)
    f = symgrad.function([W, X, h0], gW)
    forward, backward = compiled_scans(f)
    assert backward.op.info.reverse
    # the cotangent of X is not computed; the gradient of W is not summed in the loop: the
    # loop stacks one vector per step (a mapped output) and one dot after it sums them
    assert backward.op.info.n_nitsot == 1 and backward.outputs[-1].ndim == 2
    assert backward.op.info.n_states == 1
    # dot(W, h) is not computed again for its shape: W.shape[0] is read once, outside
    dots = [n for n in backward.op.fgraph.apply_nodes if type(n.op).__name__ == "Dot"]
    assert len(dots) == 1
    r = rng(20)
    Wv, Xv = r.normal(size=(3, 3)) * 0.5, r.normal(size=(5, 3))
    hs_v = [np.zeros(3)]
    for t in range(5):
        hs_v.append(np.tanh(Wv @ hs_v[-1] + Xv[t]))
    gW_v, gh = np.zeros((3, 3)), np.ones(3)
    for t in range(5, 0, -1):
        ga = gh * (1 - hs_v[t] ** 2)
        gW_v += np.outer(ga, hs_v[t - 1])
        gh = Wv.T @ ga
    np.testing.assert_allclose(f(Wv, Xv, np.zeros(3)), gW_v)


def test_infer_step_shapes():
    from symgrad.graph.fgraph import FunctionGraph
    from symgrad.scan.rewriting import infer_step_shapes

    W, h = st.dmatrix("W"), st.dvector("h")
    y = st.dot(W, h)
    fg = FunctionGraph([W, h], [y.shape, y.shape[0] * 2, st.exp(y).shape])
    assert infer_step_shapes(fg) == 2  # the two Shape(dot) nodes
    assert "Dot" not in symgrad.pp(fg.outputs[0]) + symgrad.pp(fg.outputs[1])
    assert "Dot" in symgrad.pp(fg.outputs[2])  # an Elemwise has no shape rule: left alone
    f = symgrad.function(fg.inputs, list(fg.outputs), mode="FAST_COMPILE")
    got = f(np.ones((3, 2)), np.ones(2))
    np.testing.assert_array_equal(got[0], [3])
    assert got[1] == 6


def test_scan_without_rewrites_still_runs():
    x = st.dvector("x")
    (sq, _), _ = scan(lambda v: [v ** 2, v ** 3], sequences=x, vectorize=False)
    f = symgrad.function([x], sq, mode="FAST_COMPILE")
    (node,) = compiled_scans(f)
    assert node.op.info.n_nitsot == 2
    np.testing.assert_allclose(f([1.0, 2.0]), [1.0, 4.0])


def _shape_rows(op_node):
    from symgrad.tensor.shape import shape_i

    return op_node.op.infer_shape(op_node, [[shape_i(i, k) for k in range(i.ndim)]
                                            for i in op_node.inputs])


def test_scan_infer_shape_matches_the_computed_outputs():
    W, X, h0 = st.dmatrix("W"), st.dmatrix("X"), st.dvector("h0")
    (hs, ys), _ = scan(lambda x, h, W: [st.tanh(st.dot(W, h) + x), st.outer(x, h).sum(0)],
                       sequences=X, outputs_info=[h0, None], non_sequences=W)
    node = ys.owner
    assert isinstance(node.op, Scan)
    shapes = _shape_rows(node)
    f = symgrad.function([W, X, h0], [st.stack(list(s)) for s in shapes] + list(node.outputs),
                         on_unused_input="ignore")
    r = rng(3)
    res = f(r.standard_normal((4, 4)), r.standard_normal((6, 4)), r.standard_normal(4))
    n_out = len(shapes)
    for shp, value in zip(res[:n_out], res[n_out:]):
        assert tuple(shp) == value.shape


def test_measuring_a_loop_output_does_not_run_the_loop():
    W, X = st.dmatrix("W"), st.dmatrix("X")
    ys, _ = scan(lambda x, W: st.tanh(st.dot(W, x)), sequences=X, non_sequences=W,
                 vectorize=False)
    f = symgrad.function([W, X], [ys.shape, ys.shape[1]])
    assert not compiled_scans(f)
    shp, cols = f(np.ones((2, 4)), np.ones((5, 4)))
    assert tuple(shp) == (5, 2) and cols == 2
    # a step whose output shape depends on step values has no rule: the loop runs
    x = st.dvector("x")
    zs, _ = scan(lambda v: st.arange(st.cast(v, "int64")), sequences=x, vectorize=False)
    g = symgrad.function([x], zs.shape)
    assert compiled_scans(g)
    assert tuple(g([3.0, 3.0])) == (2, 3)


def test_a_loop_with_a_stop_condition_has_no_shape_rule():
    from symgrad.scan import until

    x0 = st.dscalar("x0")
    xs, _ = scan(lambda x: (x * 2, until(x > 10)), outputs_info=x0, n_steps=20)
    f = symgrad.function([x0], xs.shape)
    assert compiled_scans(f)
    assert tuple(f(1.0)) == (5,)
