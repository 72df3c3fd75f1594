"""W5 Hessian-vector product of the Rosenbrock function."""

import functools

import numpy as np

from bench.harness import Case, System, jax_call, jax_lib, pytensor_cold, symgrad_backend_systems, tensor_lib

NAME = "W5"
TITLE = "Hessian-vector product of Rosenbrock"
ABOUT = ("`f = sum(100*(x[1:]-x[:-1]**2)**2 + (1-x[:-1])**2)`. The tutorial's two ways: "
         "`grad(sum(grad(f, x) * v), x)` (reverse-over-reverse) and `Rop(grad(f, x), x, v)`; "
         "JAX `jvp` of `grad` under `jit`; NumPy: `scipy.optimize.rosen_hess_prod`.")


@functools.cache
def data(n):
    rng = np.random.default_rng(5)
    return rng.uniform(-1.5, 1.5, n), rng.standard_normal(n)


def rosenbrock(T, x):
    return T.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def tensor_system(family, n, how):
    def build():
        lib = tensor_lib(family)
        T = lib.T
        x, v = T.dvector("x"), T.dvector("v")
        gy = lib.grad(rosenbrock(T, x), x)
        if how == "grad":
            Hv = lib.grad(T.sum(gy * v), x)
        else:
            Hv = lib.Rop(gy, x, v)
        return lib, x, v, Hv

    def compile(built):
        lib, x, v, Hv = built
        f = lib.function([x, v], Hv)
        xv, vv = data(n)
        return lambda: f(xv, vv)

    label = "grad(sum(g*v))" if how == "grad" else "Rop(g, x, v)"
    return System(f"{family} {label}", family, build, compile)


def jax_system(n):
    def build():
        jax, jnp = jax_lib()

        def rosen(x):
            return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

        return jax.jit(lambda x, v: jax.jvp(jax.grad(rosen), (x,), (v,))[1])

    return System("jax jvp(grad)", "jax", build, lambda f: jax_call(f, *data(n)))


def scipy_system(n):
    def build():
        from scipy.optimize import rosen_hess_prod

        return rosen_hess_prod

    return System("numpy rosen_hess_prod", "scipy", build,
                  lambda fn: (lambda: fn(*data(n))), note="scipy.optimize, hand-written NumPy")


def cases(cfg):
    n = 1000 if cfg.quick else 100_000
    data(n)  # made before any timing (cached)
    systems = [tensor_system("symgrad", n, "grad"), tensor_system("symgrad", n, "rop"),
               *symgrad_backend_systems(lambda family: tensor_system(family, n, "grad"), cfg),
               *symgrad_backend_systems(lambda family: tensor_system(family, n, "rop"), cfg),
               tensor_system("pytensor", n, "grad"), tensor_system("pytensor", n, "rop"),
               pytensor_cold(tensor_system("pytensor", n, "grad"), cfg),
               pytensor_cold(tensor_system("pytensor", n, "rop"), cfg),
               jax_system(n), scipy_system(n)]
    return [Case(f"n={n:,}", systems, memory=True)]
