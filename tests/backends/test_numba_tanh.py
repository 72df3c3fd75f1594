"""sg_tanh, the numba backend's vectorisable tanh, against an extended-precision tanh."""

import numpy as np
import pytest

numba = pytest.importorskip("numba", reason="numba is not installed (pip install 'symgrad[numba]')")

from symgrad.backends.numba.scalar import sg_tanh  # noqa: E402


def loop_of(fn):
    """A jitted loop applying the jitted scalar function ``fn`` to every element (as a
    kernel would inline it)."""
    @numba.njit
    def run(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])
        return out
    return run


_tanh_all = loop_of(sg_tanh)


def _ulps(got, want):
    """|got - want| in units of the last place of the double nearest ``want`` (a longdouble)."""
    return np.abs((got.astype(np.longdouble) - want)
                  / np.spacing(np.abs(want.astype(np.float64)))).astype(np.float64)


# the reference is numpy's longdouble tanh: exact to a few thousandths of a double's ulp where
# longdouble has extra bits (x86), within about one ulp where it is a double
_BOUND = 2.5 if np.finfo(np.longdouble).nmant > 60 else 3.5


def test_tanh_within_two_and_a_half_ulps():
    r = np.random.default_rng(0)
    x = np.concatenate([r.uniform(-1, 1, 20000), r.uniform(-0.3, 0.3, 20000),
                        r.normal(0, 6, 20000), r.uniform(-1e-6, 1e-6, 2000),
                        np.linspace(-25, 25, 20001), 10.0 ** np.arange(-300, 2, 0.5),
                        -(10.0 ** np.arange(-300, 2, 0.5)), [0.25, np.nextafter(0.25, 0)]])
    got = _tanh_all(x, np.empty_like(x))
    want = np.tanh(x.astype(np.longdouble))
    assert _ulps(got, want).max() <= _BOUND
    assert _ulps(got, want).mean() < 0.5


def test_tanh_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e308, -1e308])
    got = _tanh_all(x, np.empty_like(x))
    np.testing.assert_array_equal(got[:4], [0.0, -0.0, 1.0, -1.0])
    assert np.signbit(got[1]) and not np.signbit(got[0])
    assert np.isnan(got[4])
    np.testing.assert_array_equal(got[5:], [5e-324, -5e-324, 1.0, -1.0])
