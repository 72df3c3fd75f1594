"""W6 scan RNN: ``h_t = tanh(dot(W, h_{t-1}) + x_t)``, loss = sum(h_T), gradient w.r.t. W."""

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

NAME = "W6"
TITLE = "scan RNN, grad of sum(h_T) w.r.t. W"
ABOUT = ("symgrad `scan` and PyTensor `scan` (`sequences=X, outputs_info=h0, "
         "non_sequences=W`, then `grad(sum(h[-1]), W)`); JAX `lax.scan` under `jit`; a "
         "hand-written NumPy forward + backward loop.")

HIDDEN = 64


@functools.cache
def data(steps, hidden=HIDDEN):
    rng = np.random.default_rng(6)
    W = rng.standard_normal((hidden, hidden)) * (0.9 / np.sqrt(hidden))
    X = rng.standard_normal((steps, hidden)) * 0.5
    return W, X, np.zeros(hidden)


def tensor_system(family, steps):
    def build():
        lib = tensor_lib(family)
        T = lib.T
        W, X, h0 = T.dmatrix("W"), T.dmatrix("X"), T.dvector("h0")
        hs, updates = scan_outputs(lib.scan(lambda x_t, h, W: T.tanh(T.dot(W, h) + x_t),
                                            sequences=X, outputs_info=h0, non_sequences=W))
        gW = lib.grad(T.sum(hs[-1]), W)
        return lib, [W, X, h0], gW, updates

    def compile(built):
        lib, inputs, gW, updates = built
        f = lib.function(inputs, gW, updates=updates)
        args = data(steps)
        return lambda: f(*args)

    return System(f"{family} scan", family, build, compile)


def jax_system(steps):
    def build():
        jax, jnp = jax_lib()

        def loss(W, X, h0):
            def step(h, x_t):
                return jnp.tanh(W @ h + x_t), None

            h_last, _ = jax.lax.scan(step, h0, X)
            return jnp.sum(h_last)

        return jax.jit(jax.grad(loss))

    return System("jax lax.scan", "jax", build, lambda f: jax_call(f, *data(steps)))


def numpy_rnn_grad(W, X, h0):
    steps = X.shape[0]
    hs = np.empty((steps + 1, h0.shape[0]))
    hs[0] = h0
    for t in range(steps):
        hs[t + 1] = np.tanh(W @ hs[t] + X[t])
    gW = np.zeros_like(W)
    gh = np.ones_like(h0)
    for t in range(steps - 1, -1, -1):
        ga = gh * (1 - hs[t + 1] ** 2)
        gW += np.outer(ga, hs[t])
        gh = W.T @ ga
    return gW


def cases(cfg):
    steps = 50 if cfg.quick else 1000
    data(steps)  # made before any timing (cached)
    systems = [tensor_system("symgrad", steps),
               *symgrad_backend_systems(lambda family: tensor_system(family, steps), cfg),
               tensor_system("pytensor", steps), pytensor_cold(tensor_system("pytensor", steps), cfg),
               jax_system(steps),
               System("numpy loop", "numpy", lambda: None,
                      lambda _: (lambda: numpy_rnn_grad(*data(steps))))]
    return [Case(f"hidden {HIDDEN}, T={steps}", systems, memory=True, timeout=300)]
