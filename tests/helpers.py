"""Shared test helpers."""

from __future__ import annotations

import numpy as np

import symgrad
from symgrad.graph import vectorize_graph
from symgrad.tensor.type import TensorType


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def evaluate(outputs, inputs, values, mode=None):
    """Compile ``outputs`` from ``inputs`` and call with ``values``."""
    f = symgrad.function(list(inputs), outputs, on_unused_input="ignore", mode=mode)
    return f(*values)


def check_static_shape(var, value):
    """The static shape of ``var`` must agree with the runtime ``value``."""
    value = np.asarray(value)
    assert var.type.ndim == value.ndim, (var.type, value.shape)
    for s, v in zip(var.type.shape, value.shape):
        assert s is None or s == v, (var.type, value.shape)


def check_batching(build, values, batch=3, seed=0):
    """``build(*vars) -> out``; vectorizing over a leading batch axis of every input
    must equal applying ``build`` row by row."""
    r = rng(seed)
    values = [np.asarray(v) for v in values]
    core = [TensorType(v.dtype, (None,) * v.ndim)(f"x{k}") for k, v in enumerate(values)]
    out = build(*core)
    batched_vals = [np.stack([v + r.normal(size=v.shape).astype(v.dtype) * 0.1
                              if v.dtype.kind == "f" else v for _ in range(batch)])
                    for v in values]
    batched = [TensorType(v.dtype, (None,) * v.ndim)(f"xs{k}") for k, v in enumerate(batched_vals)]
    vec = vectorize_graph(out, dict(zip(core, batched)))
    got = evaluate(vec, batched, batched_vals)
    f = symgrad.function(core, out, on_unused_input="ignore")
    want = np.stack([f(*[b[k] for b in batched_vals]) for k in range(batch)])
    if vec.type.ndim == out.type.ndim:  # the rule kept it unbatched (e.g. a shape)
        want = want[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)
    return got
