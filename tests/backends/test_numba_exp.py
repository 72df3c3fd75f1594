"""sg_exp, the numba backend's vectorisable exp, against an extended-precision exp."""

import numpy as np
import pytest

numba = pytest.importorskip("numba", reason="numba is not installed (pip install 'symgrad[numba]')")

from symgrad.backends.numba.scalar import sg_exp  # noqa: E402
from tests.backends.test_numba_tanh import _BOUND, _ulps, loop_of  # noqa: E402

_exp_all = loop_of(sg_exp)


def test_exp_within_two_and_a_half_ulps_where_normal():
    r = np.random.default_rng(1)
    x = np.concatenate([r.uniform(-1, 1, 20000), r.normal(0, 30, 20000),
                        r.uniform(-708, 709.7, 20000), r.uniform(-1e-8, 1e-8, 2000),
                        np.linspace(-700, 709, 20001), [0.5 * np.log(2), -0.5 * np.log(2),
                                                        np.log(2), 709.78, -708.39]])
    got = _exp_all(x, np.empty_like(x))
    want = np.exp(x.astype(np.longdouble))
    assert _ulps(got, want).max() <= _BOUND
    assert _ulps(got, want).mean() < 0.5


def test_exp_subnormal_results_and_special_values():
    x = np.linspace(-745.0, -708.5, 5001)
    got = _exp_all(x, np.empty_like(x))
    want = np.exp(x)
    # below 2^-1022 a result holds fewer bits: within one unit of the smallest subnormal
    assert np.max(np.abs(got - want)) <= 2 * 5e-324
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 709.79, -745.2, 1e308, -1e308])
    got = _exp_all(special, np.empty_like(special))
    np.testing.assert_array_equal(got[:4], [1.0, 1.0, np.inf, 0.0])
    assert np.isnan(got[4])
    np.testing.assert_array_equal(got[5:], [np.inf, 0.0, np.inf, 0.0])
