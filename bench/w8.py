"""W8 compile scaling: N distinct terms plus their gradient, and a chain of D ``sin`` s."""

import functools

import numpy as np

from bench.harness import Case, System, jax_call, jax_lib, tensor_lib

NAME = "W8"
TITLE = "compile scaling"
SUMMARY = "first result"  # the summary compares build + compile + first call
ABOUT = ("Terms: `y = sum_i exp(a_i * x) * sin(b_i + x)` over N terms with distinct constants "
         "(a_i = 0.5 + i/N, b_i = 0.1 i), x a float64 vector of 256; outputs y and "
         "`grad(sum(y), x)`. Chain: `y = sin(sin(...sin(x)))` D times for a float64 scalar, "
         "outputs y and `grad(y, x)`: does grad + compile + call work, and how long does it take "
         "(a failure is reported as that system's result). Each system gets 120 s for build + "
         "compile + first call. PyTensor always runs in a subprocess that is killed at the "
         "timeout, with an empty compile cache (`base_compiledir` and `NUMBA_CACHE_DIR` in a "
         "fresh directory; in the other workloads its on-disk cache is warm, as on a user's "
         "second run; `--quick` keeps it warm here too). Every chain also runs in a subprocess "
         "(rows marked *subproc*, timed alone). symgrad and JAX on the terms run in-process, "
         "interleaved, under an alarm (which fires only once XLA's compiler returns to Python).")

SIZE = 256
# PyTensor keeps compiled code on disk; W8 measures compilation, so each run starts empty.
EMPTY_CACHE = {"PYTENSOR_FLAGS": "base_compiledir={tmp}/pytensor", "NUMBA_CACHE_DIR": "{tmp}/numba"}


@functools.cache
def data(size=SIZE):
    return np.random.default_rng(8).uniform(-1, 1, size)


def constants(n_terms):
    return [(0.5 + i / n_terms, 0.1 * i) for i in range(n_terms)]


def terms_tensor(family, n_terms, quick):
    def build():
        lib = tensor_lib(family)
        T = lib.T
        x = T.dvector("x")
        y = None
        for a, b in constants(n_terms):
            term = T.exp(a * x) * T.sin(b + x)
            y = term if y is None else y + term
        return lib, x, [y, lib.grad(T.sum(y), x)]

    def compile(built):
        lib, x, outs = built
        f = lib.function([x], outs)
        xv = data()
        return lambda: f(xv)

    if family == "pytensor":
        return System(family, family, build, compile, isolate=True,
                      env=None if quick else EMPTY_CACHE)
    return System(family, family, build, compile)


def terms_jax(n_terms):
    def build():
        jax, jnp = jax_lib()

        def y(x):
            total = None
            for a, b in constants(n_terms):
                term = jnp.exp(a * x) * jnp.sin(b + x)
                total = term if total is None else total + term
            return total

        return jax.jit(lambda x: (y(x), jax.grad(lambda x: jnp.sum(y(x)))(x)))

    return System("jax", "jax", build, lambda f: jax_call(f, data()))


def chain_tensor(family, depth, quick):
    def build():
        lib = tensor_lib(family)
        x = lib.T.dscalar("x")
        y = x
        for _ in range(depth):
            y = lib.T.sin(y)
        return lib, x, [y, lib.grad(y, x)]

    def compile(built):
        lib, x, outs = built
        f = lib.function([x], outs)
        return lambda: f(0.7)

    return System(family, family, build, compile, isolate=True,
                  env=EMPTY_CACHE if family == "pytensor" and not quick else None)


def chain_jax(depth):
    def build():
        jax, jnp = jax_lib()

        def y(x):
            for _ in range(depth):
                x = jnp.sin(x)
            return x

        return jax.jit(lambda x: (y(x), jax.grad(y)(x)))

    return System("jax", "jax", build, lambda f: jax_call(f, 0.7), isolate=True)


def cases(cfg):
    ns = [10] if cfg.quick else [50, 200, 800]
    data()  # made before any timing (cached)
    depths = [200] if cfg.quick else [2000, 100_000]
    peer_depth = depths[0]
    out = []
    for n in ns:
        out.append(Case(f"N={n} terms", [terms_tensor("symgrad", n, cfg.quick),
                                         terms_tensor("pytensor", n, cfg.quick),
                                         terms_jax(n)],
                        timeout=60 if cfg.quick else 120, escalates="terms"))
    for d in depths:
        systems = [chain_tensor("symgrad", d, cfg.quick)]
        if d == peer_depth:
            systems += [chain_tensor("pytensor", d, cfg.quick), chain_jax(d)]
        out.append(Case(f"chain D={d:,}", systems, failures_are_results=True,
                        timeout=60 if cfg.quick else 120, escalates="chain"))
    return out
