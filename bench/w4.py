"""W4 Hessian of ``sum(x ** 2 * sin(x)) + dot(x, dot(A, x))``, A an input matrix."""

import functools

import numpy as np

from bench.harness import (
    Case,
    System,
    jax_call,
    jax_lib,
    pytensor_cold,
    scan_outputs,
    symgrad_backend_systems,
    tensor_lib,
)

NAME = "W4"
TITLE = "Hessian of sum(x**2 * sin(x)) + dot(x, dot(A, x))"
ABOUT = ("symgrad `gradient.hessian` and the tutorial's scan recipe (`scan(lambda i, gy, x: "
         "grad(gy[i], x), sequences=arange(gy.shape[0]), non_sequences=[gy, x])`); PyTensor "
         "`hessian` (its default); JAX `hessian` under `jit`; NumPy: the closed form "
         "`diag(2 sin x + 4 x cos x - x**2 sin x) + A + A.T`.")


@functools.cache
def data(n):
    rng = np.random.default_rng(4)
    return rng.standard_normal(n), rng.standard_normal((n, n))


def tensor_system(family, n, how):
    def build():
        lib = tensor_lib(family)
        T = lib.T
        x, A = T.dvector("x"), T.dmatrix("A")
        cost = T.sum(x ** 2 * T.sin(x)) + T.dot(x, T.dot(A, x))
        if how == "scan":
            gy = lib.grad(cost, x)
            H, updates = scan_outputs(lib.scan(lambda i, gy, x: lib.grad(gy[i], x),
                                               sequences=T.arange(gy.shape[0]),
                                               non_sequences=[gy, x]))
            return lib, x, A, H, updates
        return lib, x, A, lib.gradient.hessian(cost, x), None

    def compile(built):
        lib, x, A, H, updates = built
        f = lib.function([x, A], H, updates=updates)
        xv, Av = data(n)
        return lambda: f(xv, Av)

    return System(f"{family} {'scan recipe' if how == 'scan' else 'hessian'}", family, build,
                  compile)


def jax_system(n):
    def build():
        jax, jnp = jax_lib()
        return jax.jit(jax.hessian(lambda x, A: jnp.sum(x ** 2 * jnp.sin(x)) + x @ (A @ x)))

    return System("jax hessian", "jax", build, lambda f: jax_call(f, *data(n)))


def numpy_hessian(x, A):
    d = 2 * np.sin(x) + 4 * x * np.cos(x) - x * x * np.sin(x)
    return np.diag(d) + A + A.T


def cases(cfg):
    n = 20 if cfg.quick else 200
    data(n)  # made before any timing (cached)
    systems = [tensor_system("symgrad", n, None), tensor_system("symgrad", n, "scan"),
               *symgrad_backend_systems(lambda family: tensor_system(family, n, None), cfg,
                                        cold=False),
               tensor_system("pytensor", n, None), pytensor_cold(tensor_system("pytensor", n, None), cfg),
               jax_system(n),
               System("numpy (closed form)", "numpy", lambda: None,
                      lambda _: (lambda: numpy_hessian(*data(n))))]
    return [Case(f"n={n}", systems)]
