"""W2 logistic gradient: ``grad(sum(1 / (1 + exp(-x))), x)`` for a float64 matrix x."""

import functools

import numpy as np

from bench.harness import Case, System, jax_call, jax_lib, pytensor_cold, symgrad_backend_systems, tensor_lib

NAME = "W2"
TITLE = "logistic gradient, grad(sum(1 / (1 + exp(-x))), x)"
ABOUT = ("Memory-bound elementwise work. NumPy is the hand-written `s = 1/(1+exp(-x)); "
         "s*(1-s)`; numba is an `@njit(fastmath=False)` loop over the elements, the practical "
         "limit for one thread.")


@functools.cache
def data(n):
    return np.random.default_rng(2).standard_normal((n, n))


def tensor_system(family, n):
    def build():
        lib = tensor_lib(family)
        T = lib.T
        x = T.dmatrix("x")
        return lib, x, lib.grad(T.sum(1 / (1 + T.exp(-x))), x)

    def compile(built):
        lib, x, g = built
        f = lib.function([x], g)
        xv = data(n)
        return lambda: f(xv)

    return System(family, family, build, compile)


def jax_system(n):
    def build():
        jax, jnp = jax_lib()
        return jax.jit(jax.grad(lambda x: jnp.sum(1 / (1 + jnp.exp(-x)))))

    return System("jax", "jax", build, lambda f: jax_call(f, data(n)))


def numpy_logistic_grad(x):
    s = 1 / (1 + np.exp(-x))
    return s * (1 - s)


def numba_system(n):
    def build():
        from numba import njit

        @njit(fastmath=False)
        def logistic_grad(x):
            out = np.empty_like(x)
            for i in range(x.shape[0]):
                for j in range(x.shape[1]):
                    s = 1.0 / (1.0 + np.exp(-x[i, j]))
                    out[i, j] = s * (1.0 - s)
            return out

        return logistic_grad

    return System("numba loop", "numba", build, lambda f: (lambda: f(data(n))))


def cases(cfg):
    n = 200 if cfg.quick else 2000
    data(n)  # made before any timing (cached): no system pays for making its inputs
    systems = [tensor_system("symgrad", n),
               *symgrad_backend_systems(lambda family: tensor_system(family, n), cfg),
               tensor_system("pytensor", n), pytensor_cold(tensor_system("pytensor", n), cfg),
               jax_system(n),
               System("numpy", "numpy", lambda: None,
                      lambda _: (lambda: numpy_logistic_grad(data(n)))),
               numba_system(n)]
    return [Case(f"x {n}x{n}", systems, memory=True)]
