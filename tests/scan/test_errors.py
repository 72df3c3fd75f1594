"""Bad input to scan: each a clear error, asserted by message."""

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.gradient import DisconnectedInputError
from symgrad.scan import ScanError, ScanGradientError, scan, until


def test_the_tutorial_pitfall_explains_and_shows_the_arange_recipe():
    x = st.dvector("x")
    y = x ** 2
    y.name = "y"
    with pytest.raises(ScanGradientError) as info:
        scan(lambda y_i, x: symgrad.grad(y_i, x), sequences=y, non_sequences=x)
    message = str(info.value)
    assert "y[t]" in message  # names the sequence element
    assert "new variable" in message and "does not depend" in message
    assert "sequences=arange(y.shape[0]), non_sequences=[y, x]" in message
    assert "grad(y[i], x)" in message
    assert isinstance(info.value, DisconnectedInputError)  # still the gradient's error type


def test_wrong_number_of_outputs():
    x = st.dvector("x")
    with pytest.raises(ScanError, match="returned 2 outputs, but outputs_info has 1 entry"):
        scan(lambda v, h: [h + v, h * v], sequences=x, outputs_info=st.constant(0.0))
    with pytest.raises(ScanError, match="returned 1 output, but outputs_info has 2 entries"):
        scan(lambda v, h: h + v, sequences=x, outputs_info=[st.constant(0.0), None])


def test_initial_state_shape_differs_from_the_step_output():
    x = st.dmatrix("x")
    h0 = st.constant(np.zeros(3))
    with pytest.raises(ScanError, match=r"initial state outputs_info\[0\] has shape \(3,\), "
                                        r"but the step function's output 0 has shape \(4,\)"):
        scan(lambda v, h: st.ones(4) * h.sum(), sequences=x, outputs_info=h0)
    with pytest.raises(ScanError, match="has 0 dimensions, but its initial state"):
        scan(lambda v, h: h.sum(), sequences=x, outputs_info=h0)


def test_initial_state_shape_differs_at_run_time():
    x, h0 = st.dmatrix("x"), st.dvector("h0")
    out, _ = scan(lambda v, h: h[:2] * 1 + v, sequences=x, outputs_info=h0)
    f = symgrad.function([x, h0], out)
    with pytest.raises(Exception, match=r"returned shape \(2,\) for state 0, but its initial "
                                        r"value has rows of shape \(3,\)"):
        f(np.ones((4, 2)), np.ones(3))


def test_integer_initial_state_with_a_float_step_output():
    x = st.dvector("x")
    with pytest.raises(ScanError, match="has dtype float64, but its initial state "
                                        r"outputs_info\[0\] has dtype int64"):
        scan(lambda v, h: h + v, sequences=x, outputs_info=0)


def test_sequence_shorter_than_n_steps():
    x = st.dvector("x")
    x.name = "x"
    out, _ = scan(lambda v: v * 2, sequences=x, n_steps=5, vectorize=False)
    f = symgrad.function([x], out)
    with pytest.raises(Exception, match=r"sequence 0 \('x'\) is too short: it has 3 rows, "
                                        "but n_steps=5 needs 5"):
        f([1.0, 2.0, 3.0])
    taps, _ = scan(lambda a, b: a + b, sequences=dict(input=x, taps=[0, 2]), n_steps=3)
    with pytest.raises(Exception, match="it has 4 rows, but n_steps=3 needs 5 "
                                        r"\(its taps reach 2 rows past the current step\)"):
        symgrad.function([x], taps)([1.0, 2.0, 3.0, 4.0])


def test_sequence_shorter_than_its_taps():
    x = st.dvector("x")
    out, _ = scan(lambda a, b: a + b, sequences=dict(input=x, taps=[-2, 1]))
    with pytest.raises(Exception, match="has 2 rows, but its taps need at least 3 more rows"):
        symgrad.function([x], out)([1.0, 2.0])


def test_negative_n_steps():
    x0 = st.dscalar("x0")
    with pytest.raises(ValueError, match="n_steps must be >= 0, got -2"):
        scan(lambda h: h, outputs_info=x0, n_steps=-2)
    n = st.lscalar("n")
    out, _ = scan(lambda h: h * 2, outputs_info=x0, n_steps=n)
    with pytest.raises(Exception, match="n_steps must be >= 0, got -1"):
        symgrad.function([x0, n], out)(1.0, -1)


def test_output_taps_out_of_range():
    x, h0 = st.dvector("x"), st.dvector("h0")
    with pytest.raises(ValueError, match=r"tap 0 of outputs_info\[0\] is out of range: an "
                                         "output's taps look into the past and must be negative"):
        scan(lambda v, h: h + v, sequences=x, outputs_info=dict(initial=h0, taps=[0]))
    short = st.constant(np.zeros(2))
    with pytest.raises(ValueError, match=r"taps \[-3, -1\] of outputs_info\[0\] are out of "
                                         "range: tap -3 needs 3 initial rows, but 'initial' "
                                         "has 2"):
        scan(lambda a, b: a + b, outputs_info=dict(initial=short, taps=[-3, -1]), n_steps=2)


def test_initial_buffer_too_short_at_run_time():
    h0 = st.dvector("h0")
    out, _ = scan(lambda a, b: a + b, outputs_info=dict(initial=h0, taps=[-3, -1]), n_steps=2)
    with pytest.raises(Exception, match=r"has 2 rows, but its taps \[-3, -1\] need 3"):
        symgrad.function([h0], out)([1.0, 2.0])


def test_bad_taps_and_keys():
    x = st.dvector("x")
    with pytest.raises(ValueError, match="taps of sequence 0 must be distinct"):
        scan(lambda a, b: a, sequences=dict(input=x, taps=[0, 0]))
    with pytest.raises(TypeError, match="must be integers"):
        scan(lambda a: a, sequences=dict(input=x, taps=[0.5]))
    with pytest.raises(ValueError, match="unknown keys"):
        scan(lambda a: a, sequences=dict(input=x, tap=[0]))
    with pytest.raises(ValueError, match="has taps but no 'initial'"):
        scan(lambda a: a, sequences=x, outputs_info=dict(taps=[-1]))
    with pytest.raises(ScanError, match="sequence 0 is a scalar"):
        scan(lambda a: a, sequences=st.dscalar("s"))


def test_no_sequences_and_no_n_steps():
    with pytest.raises(ValueError, match="give n_steps or at least one sequence"):
        scan(lambda h: h * 2, outputs_info=st.dscalar("h"))


def test_bad_n_steps_type():
    with pytest.raises(TypeError, match="n_steps must be an integer scalar"):
        scan(lambda h: h * 2, outputs_info=st.dscalar("h"), n_steps=st.dscalar("n"))


def test_unreadable_step_result():
    x = st.dvector("x")
    with pytest.raises(ValueError, match="cannot read the step function's return value"):
        scan(lambda v: ("nonsense", v), sequences=x)
    with pytest.raises(TypeError, match="not a shared variable"):
        scan(lambda v: (v, {x: v}), sequences=x)
    with pytest.raises(TypeError, match="fn must be callable"):
        scan(3, sequences=x)


def test_until_needs_a_scalar():
    x = st.dvector("x")
    with pytest.raises(TypeError, match="the condition must be a scalar"):
        scan(lambda v: (v, until(x > 0)), sequences=x)


def test_strict_refuses_closures():
    x, c = st.dvector("x"), st.dscalar("c")
    with pytest.raises(ScanError, match=r"strict=True.*'c' without receiving"):
        scan(lambda v: v * c, sequences=x, strict=True)


def test_bad_truncate_gradient():
    x = st.dvector("x")
    with pytest.raises(ValueError, match="truncate_gradient must be -1"):
        scan(lambda v: v, sequences=x, truncate_gradient=0)
