"""The JAX backend against the default backend on the same graphs (tests/backends/conftest.py)."""

import pytest

jax = pytest.importorskip("jax", reason="jax is not installed (pip install 'symgrad[jax]')")

from tests.backends.conftest import compare_with_default  # noqa: E402


def test_graphs_match_default(graph_case):
    name, case = graph_case
    compare_with_default(case, "JAX")
