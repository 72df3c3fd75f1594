"""The numba backend against the default backend on the same graphs (tests/backends/conftest.py)."""

import warnings

import pytest

numba = pytest.importorskip("numba", reason="numba is not installed (pip install 'symgrad[numba]')")

from tests.backends.conftest import compare_with_default  # noqa: E402


def test_graphs_match_default(graph_case):
    name, case = graph_case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compare_with_default(case, "NUMBA")
