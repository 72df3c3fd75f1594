"""The JAX backend against the default backend on the same graphs (tests/backends/conftest.py)."""

import pytest

jax = pytest.importorskip("jax", reason="jax is not installed (pip install 'symgrad[jax]')")

from tests.backends.conftest import compare_with_default  # noqa: E402


def test_graphs_match_default(graph_case):
    name, case = graph_case
    compare_with_default(case, "JAX")


import os  # noqa: E402
import pickle  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

import numpy as np  # noqa: E402

import symgrad  # noqa: E402
import symgrad.tensor as st  # noqa: E402
from symgrad.backends.jax import JAXBackendError, device_function  # noqa: E402
from symgrad.compile.mode import Mode  # noqa: E402


def test_outputs_are_numpy_and_keep_float64_and_float32():
    x = st.dvector("x")
    y = st.fvector("y")
    f = symgrad.function([x, y], [x * 1e-300, y * 2.5], mode="JAX")
    a, b = f(np.full(2, 1e-5), np.ones(2, dtype="float32"))
    assert type(a) is np.ndarray and a.dtype == np.float64 and a[0] == 1e-5 * 1e-300
    assert b.dtype == np.float32


def test_fused_graph_on_the_jax_backend():
    # the default rewrites (with fusion) compiled by JAX
    x, y = st.dmatrix("x"), st.dvector("y")
    outs = [st.exp(x) * y + 2.5, st.tanh(y) * 3, st.sum(st.sin(x) * x, axis=0)]
    f = symgrad.function([x, y], outs, mode=Mode("FAST_RUN", backend="jax"))
    ref = symgrad.function([x, y], outs)
    a, b = np.random.rand(3, 4), np.random.rand(4)
    for got, want in zip(f(a, b), ref(a, b)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_shared_variable_updates_and_pickling():
    w = symgrad.shared(np.zeros(3), name="w")
    x = st.dvector("x")
    f = symgrad.function([x], st.sum(w * x), updates=[(w, w + x)], mode="JAX")
    assert float(f(np.ones(3))) == 0.0
    assert float(f(np.ones(3))) == 3.0
    np.testing.assert_array_equal(w.get_value(), [2.0, 2.0, 2.0])
    g = pickle.loads(pickle.dumps(f))
    assert float(g(np.ones(3))) == 6.0


def test_device_function_keeps_jax_arrays_and_shared_values_on_the_device():
    w = symgrad.shared(np.ones(3), name="w")
    x = st.dvector("x")
    f = symgrad.function([x], [w * x, st.sum(x)], updates=[(w, w * 2)], mode="JAX")
    run = device_function(f)
    out, total = run(jax.numpy.arange(3.0))
    assert isinstance(out, jax.Array) and isinstance(w.container[0], jax.Array)
    np.testing.assert_array_equal(np.asarray(out), [0.0, 1.0, 2.0])
    assert float(total) == 3.0
    np.testing.assert_array_equal(w.get_value(), [2.0, 2.0, 2.0])
    # the numpy-boundary function still works with the device value stored in w
    np.testing.assert_array_equal(f(np.ones(3))[0], [2.0, 2.0, 2.0])


def test_integer_inputs_deciding_shapes_become_static_arguments():
    n = st.lscalar("n")
    x = st.dvector("x")
    f = symgrad.function([n, x], [st.eye(n), st.zeros((n, 2)) + 1, x[:n] * 2], mode="JAX")
    for k in (2, 3):
        eye, z, head = f(k, np.arange(4.0))
        np.testing.assert_array_equal(eye, np.eye(k))
        assert z.shape == (k, 2)
        np.testing.assert_array_equal(head, np.arange(k) * 2.0)


def test_data_dependent_shapes_fail_when_compiling_and_name_the_op():
    x = st.dvector("x")
    with pytest.raises(JAXBackendError, match="Reshape.*depends on the values of 'x'"):
        symgrad.function([x], x.reshape((st.cast(st.sum(x), "int64"), -1)), mode="JAX")
    with pytest.raises(JAXBackendError, match="AdvancedSubtensor"):
        symgrad.function([x], x[x > 0], mode="JAX")


def test_unsupported_op_is_named():
    from symgrad.graph.basic import Apply, Op

    class Twice(Op):
        def make_node(self, x):
            return Apply(self, [x], [x.type()])

        def perform(self, node, inputs, out):
            out[0][0] = inputs[0] * 2

    x = st.dvector("x")
    with pytest.raises(JAXBackendError, match="Twice"):
        symgrad.function([x], Twice()(x), mode="JAX")


def test_scan_with_until_outputs_are_trimmed_and_misuse_is_refused():
    x = st.dscalar("x")
    doubled, _ = symgrad.scan(lambda v: (v * 2, symgrad.scan.until(v * 2 > 50)),
                              outputs_info=x, n_steps=100)
    f = symgrad.function([x], [doubled, doubled[-1]], mode="JAX")
    seq, last = f(3.0)
    np.testing.assert_array_equal(seq, [6.0, 12.0, 24.0, 48.0, 96.0])
    assert float(last) == 96.0
    with pytest.raises(JAXBackendError, match="stop condition"):
        symgrad.function([x], doubled * 2, mode="JAX")


_SHARDED = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import symgrad, symgrad.tensor as st
    from symgrad.backends.jax import device_function

    assert len(jax.devices()) == 4, jax.devices()
    x, W = st.dmatrix("x"), st.dmatrix("W")
    loss = st.sum(st.tanh(st.dot(x, W)) ** 2)
    f = symgrad.function([x, W], [st.tanh(st.dot(x, W)), symgrad.grad(loss, W)], mode="JAX")
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    xv = np.random.default_rng(0).normal(size=(8, 3))
    Wv = np.random.default_rng(1).normal(size=(3, 2))
    xs = jax.device_put(xv, NamedSharding(mesh, P("batch", None)))   # rows over 4 devices
    Ws = jax.device_put(Wv, NamedSharding(mesh, P()))                # replicated
    h, gW = device_function(f)(xs, Ws)
    assert len(h.sharding.device_set) == 4, h.sharding
    ref_h, ref_g = f(xv, Wv)
    np.testing.assert_allclose(np.asarray(h), ref_h, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(gW), ref_g, rtol=1e-12)
    print("ok", h.sharding)
""")


def test_inputs_sharded_over_several_devices():
    # XLA_FLAGS must be set before jax is imported: a fresh process
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-c", _SHARDED], capture_output=True, text=True,
                          timeout=300, env=env, cwd=os.getcwd())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ok")
