"""function(): calling conventions, inputs, shared variables, updates, givens, errors, pickling."""

import pickle

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad import In, Out, function, shared
from symgrad.compile import UnusedInputError
from symgrad.graph import MissingInputError


def test_one_output_gives_array_list_gives_list():
    x = st.dscalar("x")
    f = function([x], x * 2)
    out = f(4)
    assert isinstance(out, np.ndarray) and out.shape == () and out == 8.0
    g = function([x], [x * 2, x + 1])
    assert isinstance(g(1.0), list) and len(g(1.0)) == 2


def test_scalars_come_back_as_0d_arrays_with_dtype():
    x = st.dscalar("x")
    out = function([x], x ** 2)(4)
    assert repr(out) == "array(16.)" and out.dtype == np.float64


def test_inputs_accept_lists_and_python_scalars():
    x = st.dmatrix("x")
    np.testing.assert_allclose(function([x], x + 1)([[1, 2], [3, 4]]), [[2, 3], [4, 5]])


def test_lossy_cast_refused_unless_allowed():
    x = st.fvector("x")
    f = function([x], x * 2)
    with pytest.raises(TypeError, match=r"input 'x'.*float32.*float64.*allow_input_downcast"):
        f(np.array([1.0, 2.0]))
    g = function([x], x * 2, allow_input_downcast=True)
    assert g(np.array([1.0, 2.0])).dtype == np.float32
    # Python floats may become float32 (numpy's rule for Python scalars)
    assert f([1.5, 2.5]).dtype == np.float32


def test_integer_input_refuses_floats():
    i = st.ivector("i")
    f = function([i], i + 1)
    with pytest.raises(TypeError, match="int32"):
        f([1.5])
    assert f([1, 2]).dtype == np.int32


def test_wrong_number_of_arguments():
    x, y = st.dscalars("x", "y")
    f = function([x, y], x + y)
    with pytest.raises(TypeError, match="takes 2 arguments.*got 3"):
        f(1, 2, 3)
    with pytest.raises(TypeError, match="missing a value for input 1 \\('y'\\)"):
        f(1)


def test_wrong_ndim_names_input():
    x = st.dmatrix("x")
    f = function([x], x * 2)
    with pytest.raises(TypeError, match=r"input 'x'.*2 dimensions.*1 dimensions"):
        f([1.0, 2.0])


def test_unknown_keyword():
    x = st.dscalar("x")
    f = function([x], x * 2)
    with pytest.raises(TypeError, match="unknown keyword argument 'z'"):
        f(1.0, z=2)


def test_runtime_broadcast_failure_names_op_and_shapes():
    x, y = st.dvectors("x", "y")
    f = function([x, y], x + y)
    with pytest.raises(ValueError, match=r"add.*\(3,\).*\(4,\)"):
        f(np.ones(3), np.ones(4))


def test_missing_input_is_named():
    x, w = st.dscalars("x", "w")
    with pytest.raises(MissingInputError, match="w"):
        function([x], x * w)


def test_unused_input_raises_by_default():
    x, y = st.dscalars("x", "y")
    with pytest.raises(UnusedInputError, match="input 1 \\('y'\\) is not used"):
        function([x, y], x * 2)
    f = function([x, y], x * 2, on_unused_input="ignore")
    assert f(1.0, 5.0) == 2.0
    with pytest.warns(UserWarning, match="not used"):
        function([x, y], x * 2, on_unused_input="warn")


def test_in_defaults_and_keywords():
    x, y, w = st.dscalars("x", "y", "w")
    f = function([x, In(y, value=1), In(w, value=2, name="w_by_name")], (x + y) * w)
    assert f(33) == 68
    assert f(33, 2) == 70
    assert f(33, 0, 1) == 33
    assert f(33, w_by_name=1) == 34
    assert f(33, w_by_name=1, y=0) == 33
    with pytest.raises(TypeError, match="two values"):
        f(33, 1, y=2)


def test_out_borrow_and_copy_semantics():
    x = st.dvector("x")
    f = function([x], x)
    a = np.array([1.0, 2.0])
    r = f(a)
    r[0] = 99
    assert a[0] == 1.0
    view = function([x], x[1:])(a)
    view[0] = 99
    assert a[1] == 2.0
    w = shared(np.array([1.0, 2.0]), name="w")
    wv = function([], w[::-1])()
    wv[0] = 99
    assert w.get_value()[1] == 2.0
    g = function([x], Out(x * 2, borrow=True))
    np.testing.assert_allclose(g(a), [2.0, 4.0])


def test_shared_get_set_and_updates():
    state = shared(0, name="state")
    inc = st.iscalar("inc")
    acc = function([inc], state, updates=[(state, state + inc)])
    assert acc(1) == 0
    assert acc(300) == 1
    assert state.get_value() == 301
    state.set_value(-1)
    assert acc(3) == -1 and state.get_value() == 2


def test_updates_are_computed_from_old_values_and_applied_together():
    a = shared(np.array(1.0), name="a")
    b = shared(np.array(10.0), name="b")
    f = function([], [a, b], updates=[(a, b), (b, a)])
    f()
    assert a.get_value() == 10.0 and b.get_value() == 1.0


def test_failed_call_does_not_half_apply_updates():
    a = shared(np.zeros(2), name="a")
    b = shared(np.zeros(2), name="b")
    x = st.dvector("x")
    f = function([x], [], updates=[(a, a + 1), (b, b + x)])
    f([1.0, 1.0])
    with pytest.raises(ValueError):
        f([1.0, 2.0, 3.0])  # b + x fails after a + 1 could have been computed
    np.testing.assert_allclose(a.get_value(), [1.0, 1.0])
    np.testing.assert_allclose(b.get_value(), [1.0, 1.0])


def test_update_of_non_shared_is_refused():
    x = st.dscalar("x")
    with pytest.raises(TypeError, match="not a shared variable"):
        function([x], x, updates=[(x, x + 1)])


def test_update_dtype_mismatch_named():
    s = shared(np.int32(0), name="s")
    with pytest.raises(TypeError, match="'s'.*float64.*int32"):
        function([], [], updates=[(s, s * 1.5)])


def test_shared_get_value_copies_unless_borrow():
    w = shared(np.ones(3), name="w")
    v = w.get_value()
    v[0] = 5
    assert w.get_value()[0] == 1
    assert w.get_value(borrow=True) is w.get_value(borrow=True)


def test_givens_substitute():
    x, y = st.dscalars("x", "y")
    s = shared(np.array(2.0), name="s")
    out = x * s
    f = function([y], out, givens={x: y + 1})
    assert f(1.0) == 4.0


def test_pickle_roundtrip_gives_identical_results():
    x = st.dmatrix("x")
    w = shared(np.array([[1.0, 2.0], [3.0, 4.0]]), name="w")
    f = function([x], [st.exp(x) * w + 1], updates=[(w, w * 2)])
    g = pickle.loads(pickle.dumps(f))
    data = np.array([[0.1, 0.2], [0.3, 0.4]])
    np.testing.assert_allclose(f(data)[0], g(data)[0])
    np.testing.assert_allclose(f(data)[0], g(data)[0])  # both updated their own w


def test_function_exposes_fgraph():
    x = st.dscalar("x")
    f = function([x], x * 2)
    assert f.maker.fgraph.outputs[0].type.ndim == 0
    assert len(f.maker.fgraph.inputs) == 1


def test_eval_method():
    x = st.dvector("x")
    np.testing.assert_allclose((x * 3).eval({x: [1.0, 2.0]}), [3.0, 6.0])


def test_inputs_must_be_roots_and_a_list():
    x = st.dscalar("x")
    with pytest.raises(TypeError, match="must be a list"):
        function(x, x * 2)
    with pytest.raises(TypeError, match="root variables"):
        function([x * 2], x)
    with pytest.raises(ValueError, match="given twice"):
        function([x, x], x)


def test_hostile_names_are_harmless():
    x = st.dscalar("x'); import os; ('")
    y = st.dscalar("__import__")
    f = function([x, y], x + y)
    assert f(1.0, 2.0) == 3.0
    assert symgrad.pp(x + y) == "(x'); import os; (' + __import__)"
