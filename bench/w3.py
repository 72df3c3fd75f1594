"""W3 Jacobian of ``tanh(dot(W, x))`` with respect to x, W an n x n input matrix."""

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

NAME = "W3"
TITLE = "Jacobian of tanh(dot(W, x)) w.r.t. x"
ABOUT = ("symgrad `gradient.jacobian` (batched, no loop) and the tutorial's scan recipe "
         "(`scan(lambda i, y, x: grad(y[i], x), sequences=arange(y.shape[0]), "
         "non_sequences=[y, x])`); PyTensor `jacobian` with `vectorize=False` (scan) and "
         "`vectorize=True`; JAX `jacrev` / `jacfwd` under `jit`; NumPy: `(1 - y**2)[:, None] * W`.")


@functools.cache
def data(n):
    rng = np.random.default_rng(3)
    return rng.standard_normal((n, n)) / np.sqrt(n), rng.standard_normal(n)


def tensor_system(family, n, how):
    def build():
        lib = tensor_lib(family)
        T = lib.T
        W, x = T.dmatrix("W"), T.dvector("x")
        y = T.tanh(T.dot(W, x))
        if how == "scan":
            J, updates = scan_outputs(lib.scan(lambda i, y, x: lib.grad(y[i], x),
                                               sequences=T.arange(y.shape[0]),
                                               non_sequences=[y, x]))
            return lib, W, x, J, updates
        kwargs = {} if how is None else {"vectorize": how}
        return lib, W, x, lib.gradient.jacobian(y, x, **kwargs), None

    def compile(built):
        lib, W, x, J, updates = built
        f = lib.function([W, x], J, updates=updates)
        Wv, xv = data(n)
        return lambda: f(Wv, xv)

    name = {None: f"{family} jacobian", "scan": f"{family} scan recipe",
            False: f"{family} jacobian vectorize=False",
            True: f"{family} jacobian vectorize=True"}[how]
    return System(name, family, build, compile)


def jax_system(n, how):
    def build():
        jax, jnp = jax_lib()
        jac = {"jacrev": jax.jacrev, "jacfwd": jax.jacfwd}[how]
        return jax.jit(jac(lambda W, x: jnp.tanh(W @ x), argnums=1))

    return System(f"jax {how}", "jax", build, lambda f: jax_call(f, *data(n)))


def numpy_jacobian(W, x):
    y = np.tanh(W @ x)
    return (1 - y * y)[:, None] * W


def cases(cfg):
    sizes = [20] if cfg.quick else [100, 500]
    for n in sizes:
        data(n)  # made before any timing (cached)
    out = []
    for n in sizes:
        systems = [tensor_system("symgrad", n, None), tensor_system("symgrad", n, "scan"),
                   *symgrad_backend_systems(lambda family, n=n: tensor_system(family, n, None), cfg,
                                            cold=False),
                   tensor_system("pytensor", n, False), tensor_system("pytensor", n, True),
                   pytensor_cold(tensor_system("pytensor", n, False), cfg),
                   pytensor_cold(tensor_system("pytensor", n, True), cfg),
                   jax_system(n, "jacrev"), jax_system(n, "jacfwd"),
                   System("numpy", "numpy", lambda: None,
                          lambda _, n=n: (lambda: numpy_jacobian(*data(n))))]
        out.append(Case(f"n={n}", systems))
    return out
