"""What ``import symgrad`` loads, lazily resolved names, and import-order independence.

Structural checks only (which modules a fresh interpreter has loaded), never timings.
"""

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import symgrad
import symgrad.tensor as st

ROOT = Path(__file__).resolve().parents[1]

HEAVY = ("scipy", "jax", "jaxlib", "numba", "llvmlite", "pytensor")
# Loaded on first use only: none of them by `import symgrad`.
LAZY_SUBMODULES = (
    "symgrad.scan", "symgrad.printing", "symgrad.gradient", "symgrad.compile",
    "symgrad.rewrite", "symgrad.backends", "symgrad.tensor.shape", "symgrad.tensor.creation",
    "symgrad.tensor.reduction", "symgrad.tensor.linalg", "symgrad.tensor.subtensor",
    "symgrad.tensor.sort", "symgrad.tensor.special", "symgrad.tensor.extra_ops",
    "symgrad.tensor.rewriting", "symgrad.tensor.fusion", "symgrad.graph.fgraph",
    "symgrad.graph.traversal", "symgrad.graph.vectorize",
)
# Op modules a scalar graph never needs, not even to be compiled.
UNUSED_BY_SCALAR_GRAPH = (
    "symgrad.scan", "symgrad.printing", "symgrad.tensor.shape", "symgrad.tensor.creation",
    "symgrad.tensor.reduction", "symgrad.tensor.linalg", "symgrad.tensor.subtensor",
    "symgrad.tensor.sort", "symgrad.tensor.special", "symgrad.tensor.extra_ops",
    "symgrad.backends.jax", "symgrad.backends.numba", "symgrad.graph.vectorize",
)


def run_fresh(*parts: str) -> str:
    """Run the code ``parts`` (each dedented) in a fresh interpreter on this checkout; its
    stdout."""
    code = "\n".join(textwrap.dedent(p) for p in parts)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


LOADED = """
import json, sys
def loaded(names):
    return sorted(m for m in sys.modules if m in names or m.split(".")[0] in names)
"""


def test_import_symgrad_loads_no_heavy_or_lazy_module():
    out = run_fresh(LOADED, f"""
        import symgrad
        print(json.dumps([loaded({HEAVY!r}), loaded({LAZY_SUBMODULES!r})]))
    """)
    heavy, lazy = json.loads(out)
    assert heavy == []
    assert lazy == []


def test_compiling_a_scalar_graph_imports_only_what_it_uses():
    out = run_fresh(LOADED, f"""
        import symgrad, symgrad.tensor as st
        x = st.dscalar("x")
        f = symgrad.function([x], symgrad.grad(x ** 2, x))
        assert f(4.0) == 8.0
        print(json.dumps([loaded({HEAVY!r}), loaded({UNUSED_BY_SCALAR_GRAPH!r})]))
    """)
    heavy, unused = json.loads(out)
    assert heavy == []
    assert unused == []


def test_compiling_a_vector_graph_imports_only_what_it_uses():
    # sums and shapes, but no dot, indexing, sort, softmax, creation function or loop
    unused = ("symgrad.scan", "symgrad.printing", "symgrad.tensor.creation",
              "symgrad.tensor.linalg", "symgrad.tensor.subtensor", "symgrad.tensor.sort",
              "symgrad.tensor.special", "symgrad.tensor.extra_ops")
    out = run_fresh(LOADED, f"""
        import symgrad, symgrad.tensor as st
        x, y = st.dvector("x"), st.dvector("y")
        f = symgrad.function([x, y], symgrad.grad(st.exp(x * y).sum(), x))
        assert abs(f([1.0], [2.0])[0] - 2 * 2.718281828459045 ** 2) < 1e-12
        print(json.dumps([loaded({HEAVY!r}), loaded({unused!r}),
                          "symgrad.tensor.reduction" in sys.modules]))
    """)
    heavy, unused_loaded, used = json.loads(out)
    assert heavy == [] and unused_loaded == [] and used


def test_every_public_name_resolves():
    for name in symgrad.__all__:
        assert getattr(symgrad, name) is not None, name
    for name in st.__all__:
        assert getattr(st, name) is not None, name
    for name in symgrad.graph.__all__:
        assert getattr(symgrad.graph, name) is not None, name
    assert set(symgrad.__all__) <= set(dir(symgrad))
    assert set(st.__all__) <= set(dir(st))
    with pytest.raises(AttributeError, match="no_such_name"):
        st.no_such_name  # noqa: B018
    with pytest.raises(AttributeError, match="no_such_name"):
        symgrad.no_such_name  # noqa: B018


def test_lazy_names_are_the_module_objects():
    import importlib

    from symgrad.tensor import _LAZY_MODULES

    for module_name, names in _LAZY_MODULES.items():
        module = importlib.import_module(f"symgrad.tensor.{module_name}")
        # the table lists what the module exports (reduction's logsumexp is special's; shape
        # re-exports creation's names, listed under creation)
        expected = set(module.__all__) - {"logsumexp"} if module_name == "reduction" else (
            set(module.__all__) - set(_LAZY_MODULES["creation"]) if module_name == "shape"
            else set(module.__all__))
        assert set(names) == expected, module_name
        for name in names:
            assert getattr(st, name) is getattr(module, name), (module_name, name)
    from symgrad.tensor.creation import __all__ as creation_all
    from symgrad.tensor.shape import __all__ as shape_all

    assert set(creation_all) <= set(shape_all)  # shape re-exports creation
    from symgrad.tensor.shape import zeros

    assert zeros is st.zeros
    assert st.grad is symgrad.grad is symgrad.gradient.grad
    assert st.logsumexp is importlib.import_module("symgrad.tensor.special").logsumexp
    assert isinstance(st.linalg, types.ModuleType) and st.linalg.dot is st.dot
    assert isinstance(st.rewriting, types.ModuleType)
    assert symgrad.rewrite.rewrite_graph is not None
    assert symgrad.function is symgrad.compile.function
    assert symgrad.pp is symgrad.printing.pp
    assert symgrad.graph.toposort is symgrad.graph.traversal.toposort
    assert symgrad.graph.FunctionGraph is importlib.import_module("symgrad.graph.fgraph").FunctionGraph


def test_functions_named_like_their_modules_keep_the_name():
    # symgrad.scan, st.shape and st.sort are functions, whichever is imported first
    out = run_fresh("""
        import sys
        import symgrad.scan
        from symgrad.tensor.shape import Reshape
        import symgrad.tensor.sort
        import symgrad, symgrad.tensor as st
        print(callable(symgrad.scan), symgrad.scan is sys.modules["symgrad.scan.basic"].scan,
              type(st.shape).__name__, type(st.sort).__name__)
    """)
    assert out.split() == ["True", "True", "function", "function"]
    assert symgrad.scan.map is sys.modules["symgrad.scan.basic"].map
    x = st.dvector("x")
    assert st.shape(x).ndim == 1 and st.sort(x).ndim == 1


@pytest.mark.parametrize("first", ["symgrad.tensor.creation", "symgrad.tensor.shape",
                                   "symgrad.tensor.special", "symgrad.scan.op",
                                   "symgrad.tensor.rewriting.shape", "symgrad.backends.python"])
def test_any_module_may_be_imported_first(first):
    out = run_fresh(f"""
        import {first}
        import symgrad.tensor as st
        print(st.zeros((2,)).eval().tolist(), st.shape.__name__)
    """)
    assert out.split() == ["[0.0,", "0.0]", "shape"]


def test_star_import_gives_every_public_name():
    namespace: dict = {}
    exec("from symgrad.tensor import *", namespace)
    assert set(st.__all__) <= set(namespace)
    assert namespace["dot"] is st.dot and namespace["dscalar"] is st.dscalar


# -- rewriting does not depend on what was imported before ---------------------------------------

GRAPHS = """
import numpy as np
import symgrad, symgrad.tensor as st
x, y = st.dvector("x"), st.dvector("y")
m = st.dmatrix("m")
e = st.exp(m)
graphs = [
    st.sum(x * st.exp(x)),                           # sum(x * y) -> dot: imports linalg
    symgrad.grad(st.sum(x * st.exp(x)) ** 2, x),
    st.sum(x * y),
    e / st.sum(e, axis=1, keepdims=True),            # -> softmax: imports special
    st.log(st.sum(st.exp(x))),                       # -> logsumexp
    symgrad.grad(st.sum(st.log(e / st.sum(e, axis=1, keepdims=True))), m),
]
for g in graphs:
    f = symgrad.function([v for v in (x, y, m) if v in symgrad.graph.graph_inputs([g])], g)
    symgrad.dprint(f)
"""


def test_compiled_graphs_do_not_depend_on_import_order():
    eager = run_fresh("""
        import symgrad.tensor as st
        for name in st.__all__:
            getattr(st, name)
        import symgrad.tensor.rewriting
    """, GRAPHS)
    lazy = run_fresh(GRAPHS)
    assert "Dot" in lazy and "Softmax" in lazy
    assert lazy == eager


def test_rewrite_tracks_and_dims_rules_of_modules_imported_later():
    from symgrad.rewrite.basic import LocalRewrite
    from symgrad.rewrite.engine import _Index
    from symgrad.tensor.rewriting import dims

    name = "_symgrad_test_late_module"
    assert name not in sys.modules
    rw = LocalRewrite("late", lambda fgraph, node: None, tracks=f"{name}:LateOp")
    dims.register_rule(f"{name}:LateOp", dims._passthrough_rule)
    index = _Index([rw])
    module = types.ModuleType(name)

    class LateOp:
        pass

    module.LateOp = LateOp
    sys.modules[name] = module
    try:
        assert index.for_op(LateOp()) == (rw,)
        assert dims.Dims()._rule(LateOp()) is dims._passthrough_rule
    finally:
        del sys.modules[name]
        dims.DIMS_RULES.pop(LateOp, None)


def test_a_logistic_model_compiles_without_scipy():
    # 1 / (1 + exp(-x)) becomes sigmoid when stabilized; sigmoid must not load scipy
    out = run_fresh(LOADED, f"""
        import symgrad, symgrad.tensor as st
        x = st.dmatrix("x")
        g = symgrad.grad(st.sum(1 / (1 + st.exp(-x))), x)
        f = symgrad.function([x], [st.sigmoid(x), g])
        s, d = f([[0.0, -800.0]])
        assert s.tolist() == [[0.5, 0.0]] and d.tolist() == [[0.25, 0.0]], (s, d)
        print(json.dumps(loaded({HEAVY!r})))
    """)
    assert json.loads(out) == []
