"""W1 tutorial scalar: ``gy = grad(x ** 2, x)`` for a float64 scalar x.

Compile time in a warm process (median over fresh graphs), the per-call overhead
of ``f(4.0)``, and the cold start of a fresh interpreter.
"""

from bench.harness import (
    Case,
    ColdCase,
    System,
    jax_call,
    jax_lib,
    pytensor_cold,
    symgrad_backend_systems,
    tensor_lib,
)

NAME = "W1"
TITLE = "tutorial scalar, grad(x ** 2, x)"
ABOUT = ("Per-call overhead of `f(4.0)` is the *median* column; build+compile and first call "
         "are medians over fresh graphs (a new variable, graph and function each time). "
         "Cold start: `python -c` that imports, builds, compiles and calls once; *process wall* "
         "includes interpreter start-up. Every system reads compiled bytecode, as after an "
         "installation (one untimed process per system writes it first). PyTensor's numba "
         "cache on disk is left as a user would have it (warm after its first use); the "
         "*pytensor-cold* row of the first table compiles from an empty cache.")


def tensor_system(family):
    def build():
        lib = tensor_lib(family)
        x = lib.T.dscalar("x")
        return lib, x, lib.grad(x ** 2, x)

    def compile(built):
        lib, x, gy = built
        f = lib.function([x], gy)
        return lambda: f(4.0)

    return System(family, family, build, compile)


def jax_system():
    def build():
        jax, _ = jax_lib()
        return jax.jit(jax.grad(lambda x: x ** 2))

    return System("jax", "jax", build, lambda f: jax_call(f, 4.0))


def numpy_system():
    import numpy as np

    return System("numpy (2*x)", "numpy", build=lambda: None,
                  compile=lambda _: (lambda: np.multiply(2.0, 4.0)),
                  note="hand-written; the floor of a Python call")


COLD_TENSOR = """
import json, time
t0 = time.perf_counter()
import {lib}
import {lib}.tensor as T
t1 = time.perf_counter()
x = T.dscalar("x")
gy = {lib}.grad(x ** 2, x)
t2 = time.perf_counter()
f = {lib}.function([x], gy)
t3 = time.perf_counter()
value = float(f(4.0))
t4 = time.perf_counter()
print("BENCH " + json.dumps({{"import_s": t1 - t0, "build_s": t2 - t1, "compile_s": t3 - t2,
                             "first_s": t4 - t3, "value": value}}))
"""

COLD_JAX = """
import json, time
t0 = time.perf_counter()
import jax
jax.config.update("jax_enable_x64", True)
t1 = time.perf_counter()
f = jax.jit(jax.grad(lambda x: x ** 2))
t2 = time.perf_counter()
value = float(jax.block_until_ready(f(4.0)))
t3 = time.perf_counter()
print("BENCH " + json.dumps({"import_s": t1 - t0, "build_s": t2 - t1, "compile_s": 0.0,
                             "first_s": t3 - t2, "value": value}))
"""


def cases(cfg):
    fresh = 5 if cfg.quick else 20
    systems = [tensor_system("symgrad"), *symgrad_backend_systems(tensor_system, cfg, cold=False),
               tensor_system("pytensor"), pytensor_cold(tensor_system("pytensor"), cfg),
               jax_system(), numpy_system()]
    return [
        Case(f"f(4.0), {fresh} fresh graphs", systems, fresh_graphs=fresh, timeout=60),
        ColdCase("cold start", {
            "symgrad": ("symgrad", COLD_TENSOR.format(lib="symgrad")),
            "pytensor": ("pytensor", COLD_TENSOR.format(lib="pytensor")),
            "jax": ("jax", COLD_JAX),
        }, expected=8.0, runs=3, timeout=120),
    ]
