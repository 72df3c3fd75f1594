"""W7 MLP training step: tanh hidden layer, softmax cross-entropy, SGD through ``updates=``."""

import functools

import numpy as np

from bench.harness import Case, System, jax_lib, pytensor_cold, symgrad_backend_systems, tensor_lib

NAME = "W7"
TITLE = "MLP training step (SGD)"
ABOUT = ("`h = tanh(X W1 + b1)`, `logits = h W2 + b2`, loss = mean softmax cross-entropy "
         "against one-hot Y, written as `z = logits - max(logits, axis=1, keepdims=True); "
         "logp = z - log(sum(exp(z), axis=1, keepdims=True))`. symgrad and PyTensor keep the "
         "parameters in shared variables updated by `updates=[(p, p - lr * g)]`; JAX jits a "
         "step returning the new parameters; NumPy is a hand-written forward + backward step "
         "updating in place. The check compares the loss, W2 and b1 after the first step.")

LR = 0.1


@functools.cache
def data(n_in, n_hidden, n_out, batch):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((batch, n_in)) * 0.5
    Y = np.eye(n_out)[rng.integers(0, n_out, batch)]
    params = (rng.standard_normal((n_in, n_hidden)) * 0.05, np.zeros(n_hidden),
              rng.standard_normal((n_hidden, n_out)) * 0.1, np.zeros(n_out))
    return X, Y, params


def mlp_loss(T, X, Y, W1, b1, W2, b2):
    h = T.tanh(T.dot(X, W1) + b1)
    logits = T.dot(h, W2) + b2
    z = logits - T.max(logits, axis=1, keepdims=True)
    logp = z - T.log(T.sum(T.exp(z), axis=1, keepdims=True))
    return -T.mean(T.sum(Y * logp, axis=1))


def tensor_system(family, dims):
    def build():
        lib = tensor_lib(family)
        T = lib.T
        _, _, init = data(*dims)
        params = [lib.shared(p.copy(), name=n) for p, n in zip(init, ("W1", "b1", "W2", "b2"))]
        X, Y = T.dmatrix("X"), T.dmatrix("Y")
        loss = mlp_loss(T, X, Y, *params)
        grads = lib.grad(loss, params)
        return lib, X, Y, params, loss, [(p, p - LR * g) for p, g in zip(params, grads)]

    def compile(built):
        lib, X, Y, params, loss, updates = built
        step = lib.function([X, Y], loss, updates=updates)
        Xv, Yv, _ = data(*dims)
        W2, b1 = params[2], params[1]
        return lambda: (step(Xv, Yv), W2.get_value(borrow=True), b1.get_value(borrow=True))

    return System(f"{family} shared+updates", family, build, compile)


def jax_system(dims):
    def build():
        jax, jnp = jax_lib()

        def step(params, X, Y):
            # jax.numpy spells dot, max, sum, mean (axis, keepdims) as the tensor modules do
            loss, grads = jax.value_and_grad(lambda p: mlp_loss(jnp, X, Y, *p))(params)
            return loss, tuple(p - LR * g for p, g in zip(params, grads))

        return jax.jit(step)

    def compile(step):
        jax, jnp = jax_lib()
        Xv, Yv, init = data(*dims)
        state = {"params": tuple(jnp.asarray(p) for p in init)}

        def call():
            loss, state["params"] = jax.block_until_ready(step(state["params"], Xv, Yv))
            return loss, state["params"][2], state["params"][1]

        return call

    return System("jax jit step", "jax", build, compile)


def numpy_system(dims):
    def compile(_):
        Xv, Yv, init = data(*dims)
        params = [p.copy() for p in init]
        return lambda: numpy_step(params, Xv, Yv)

    return System("numpy step", "numpy", lambda: None, compile)


def numpy_step(params, X, Y):
    W1, b1, W2, b2 = params
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = -np.mean(np.sum(Y * (z - np.log(s)), axis=1))
    dz = (e / s - Y) / X.shape[0]      # rows of Y sum to one
    dh = (dz @ W2.T) * (1 - h * h)
    W2 -= LR * (h.T @ dz)
    b2 -= LR * dz.sum(axis=0)
    W1 -= LR * (X.T @ dh)
    b1 -= LR * dh.sum(axis=0)
    return loss, W2, b1


def cases(cfg):
    dims = (64, 32, 10, 32) if cfg.quick else (784, 256, 10, 256)
    data(*dims)  # made before any timing (cached)
    systems = [tensor_system("symgrad", dims),
               *symgrad_backend_systems(lambda family: tensor_system(family, dims), cfg),
               tensor_system("pytensor", dims), pytensor_cold(tensor_system("pytensor", dims), cfg),
               jax_system(dims),
               numpy_system(dims)]
    n_in, n_hidden, n_out, batch = dims
    return [Case(f"{n_in}-{n_hidden}-{n_out}, batch {batch}", systems, memory=True)]
