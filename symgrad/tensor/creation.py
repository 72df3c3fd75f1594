"""Creating tensors (zeros, ones, full, *_like, arange, eye) and repeating them (repeat, tile).

Re-exported by ``symgrad.tensor.shape``. zeros/ones/full are ``alloc`` of a
constant; the ``*_like`` functions are ``fill(x, value)`` (connected to x with a
zero derivative, as in PyTensor); tile and repeat with a scalar count are
built from dimshuffle + alloc + reshape, so their derivatives and batching
rules come from those ops.
"""

from __future__ import annotations

import numpy as np

from symgrad.graph.basic import Apply
from symgrad.graph.vectorize import is_batched
from symgrad.tensor.basic import as_tensor_variable, constant
from symgrad.tensor.elemwise import DimShuffle, cast
from symgrad.tensor.shape import (
    Alloc,
    Reshape,
    _fmt,
    _int_scalar,
    _norm_axis,
    _scalar_value,
    _strong,
    _ThunkOp,
    _upcast,
    _vector_values,
    flatten,
    reshape,
    shape_i,
)
from symgrad.tensor.type import TensorType, discrete_dtypes, int_dtypes, normalize_dtype
from symgrad.tensor.variable import TensorConstant

__all__ = [
    "ARange", "Eye", "Repeat", "RepeatGrad",
    "zeros", "ones", "full", "zeros_like", "ones_like", "full_like", "arange", "eye",
    "repeat", "tile",
]


# -- filled tensors -------------------------------------------------------------------------------

def full(shape, fill_value, dtype=None):
    """numpy's full: a tensor of ``shape`` filled with ``fill_value`` (may be symbolic)."""
    value = as_tensor_variable(fill_value)
    if dtype is not None:
        value = _strong(value, normalize_dtype(dtype))
    return Alloc()(value, shape)


def zeros(shape, dtype=None):
    """numpy's zeros (dtype defaults to floatX)."""
    return full(shape, constant(0, dtype=normalize_dtype(dtype)))


def ones(shape, dtype=None):
    """numpy's ones (dtype defaults to floatX)."""
    return full(shape, constant(1, dtype=normalize_dtype(dtype)))


def full_like(x, fill_value, dtype=None):
    """A tensor shaped like ``x`` filled with ``fill_value`` (dtype defaults to x's)."""
    from symgrad.tensor.math import second

    x = as_tensor_variable(x)
    dtype = normalize_dtype(dtype) if dtype is not None else x.dtype
    return second(x, _strong(as_tensor_variable(fill_value), dtype))


def zeros_like(x, dtype=None):
    """Zeros shaped like ``x`` (dtype defaults to x's)."""
    x = as_tensor_variable(x)
    return full_like(x, constant(0, dtype=dtype or x.dtype), dtype)


def ones_like(x, dtype=None):
    """Ones shaped like ``x`` (dtype defaults to x's)."""
    x = as_tensor_variable(x)
    return full_like(x, constant(1, dtype=dtype or x.dtype), dtype)


# -- arange ---------------------------------------------------------------------------------------

class ARange(_ThunkOp):
    """``arange(start, stop, step)`` with numpy's semantics and a fixed output dtype."""

    __props__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = normalize_dtype(dtype)

    def make_node(self, start, stop, step):
        ins = [_strong(as_tensor_variable(v)) for v in (start, stop, step)]
        for name, v in zip(("start", "stop", "step"), ins):
            if v.ndim != 0:
                raise TypeError(f"arange: {name} must be a scalar, got {v} of type {v.type}")
        length = None
        if all(isinstance(v, TensorConstant) for v in ins):
            vals = [v.data.item() for v in ins]
            if vals[2] == 0:
                raise ValueError("arange: step must not be zero")
            length = len(np.arange(*vals))
        return Apply(self, ins, [TensorType(self.dtype, (length,))()])

    def make_thunk_function(self, node):
        dtype = np.dtype(self.dtype)

        def run(start, stop, step):
            if step == 0:
                raise ValueError("arange: step must not be zero")
            return np.arange(start, stop, step, dtype=dtype)
        return run

    def connection_pattern(self, node):
        return [v.dtype not in discrete_dtypes and self.dtype not in discrete_dtypes
                for v in node.inputs]

    def pullback(self, inputs, outputs, output_grads):
        (gz,) = output_grads
        if gz is None or self.dtype in discrete_dtypes:
            return [None, None, None]
        import symgrad.tensor as st

        n = shape_i(outputs[0], 0)
        grads = [st.sum(gz), None, st.sum(gz * arange(n, dtype=self.dtype))]
        return [None if v.dtype in discrete_dtypes else g for v, g in zip(inputs, grads)]

    def pushforward(self, inputs, outputs, tangents):
        t0, _, t2 = tangents
        if self.dtype in discrete_dtypes or (t0 is None and t2 is None):
            return [None]
        from symgrad.tensor.math import second

        out = outputs[0]
        total = None if t0 is None else second(out, cast(t0, self.dtype))
        if t2 is not None:
            term = cast(t2, self.dtype) * arange(shape_i(out, 0), dtype=self.dtype)
            total = term if total is None else total + term
        return [total]


def arange(start, stop=None, step=1, dtype=None):
    """numpy's arange; the bounds may be symbolic scalars (int inputs give int64)."""
    if stop is None:
        start, stop = 0, start
    ins = [as_tensor_variable(v) for v in (start, stop, step)]
    if dtype is None:
        if all(v.dtype in discrete_dtypes for v in ins):
            dtype = "int64"
        else:
            dtype = _upcast(ins)
    return ARange(dtype)(*ins)


# -- eye ------------------------------------------------------------------------------------------

class Eye(_ThunkOp):
    """``eye(n, m, k)``: ones on the k-th diagonal of an n x m matrix."""

    __props__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = normalize_dtype(dtype)

    def make_node(self, n, m, k):
        ins = [_int_scalar(v, "eye") for v in (n, m, k)]
        n_val, m_val = _scalar_value(ins[0]), _scalar_value(ins[1])
        for v in (n_val, m_val):
            if v is not None and v < 0:
                raise ValueError(f"eye: negative dimensions are not allowed, got {v}")
        return Apply(self, ins, [TensorType(self.dtype, (n_val, m_val))()])

    def make_thunk_function(self, node):
        dtype = np.dtype(self.dtype)
        return lambda n, m, k: np.eye(int(n), int(m), int(k), dtype=dtype)

    def connection_pattern(self, node):
        return [False, False, False]

    def pullback(self, inputs, outputs, output_grads):
        return [None, None, None]

    def pushforward(self, inputs, outputs, tangents):
        return [None]


def eye(n, m=None, k=0, dtype=None):
    """numpy's eye (dtype defaults to floatX); ``n``, ``m``, ``k`` may be symbolic ints."""
    return Eye(normalize_dtype(dtype))(n, n if m is None else m, k)


# -- repeat ---------------------------------------------------------------------------------------

def _segment_sum(g, repeats, axis):
    """Sum consecutive runs of lengths ``repeats`` of ``g`` along ``axis``."""
    gm = np.moveaxis(np.asarray(g), axis, 0)
    out = np.zeros((len(repeats),) + gm.shape[1:], dtype=gm.dtype)
    np.add.at(out, np.repeat(np.arange(len(repeats)), repeats), gm)
    return np.moveaxis(out, 0, axis)


class _RepeatBase(_ThunkOp):
    __props__ = ("axis",)

    def __init__(self, axis: int):
        self.axis = int(axis)

    def _check(self, x, repeats):
        x = _strong(as_tensor_variable(x))
        repeats = as_tensor_variable(repeats)
        if repeats.dtype not in int_dtypes or repeats.ndim != 1:
            raise TypeError(f"repeat: repeats must be an integer vector, got {repeats} of "
                            f"type {repeats.type}")
        if not 0 <= self.axis < x.ndim:
            raise ValueError(f"repeat: axis {self.axis} is out of bounds for {x} with "
                             f"{x.ndim} dims")
        return x, _strong(repeats, "int64")

    def connection_pattern(self, node):
        return [True, False]

    def vectorize_node(self, node, xs, repeats):
        if is_batched(node.inputs[1], repeats):
            return _ThunkOp.vectorize_node(self, node, xs, repeats)
        return [type(self)(self.axis + 1)(xs, repeats)]

    def pushforward(self, inputs, outputs, tangents):
        t = tangents[0]
        return [None if t is None else self(t, inputs[1])]


class Repeat(_RepeatBase):
    """numpy's repeat along ``axis`` with one count per element (a vector)."""

    def make_node(self, x, repeats):
        x, repeats = self._check(x, repeats)
        counts = _vector_values(repeats)
        n = x.type.shape[self.axis]
        if counts is not None and n is not None and len(counts) not in (1, n):
            raise ValueError(f"repeat: {len(counts)} counts for axis {self.axis} of {x} of "
                             f"length {n}")
        out = list(x.type.shape)
        out[self.axis] = None if counts is None or None in counts else int(sum(counts))
        return Apply(self, [x, repeats], [TensorType(x.dtype, out)()])

    def make_thunk_function(self, node):
        axis = self.axis
        return lambda x, repeats: np.repeat(x, repeats, axis=axis)

    def pullback(self, inputs, outputs, output_grads):
        (gz,) = output_grads
        if gz is None or inputs[0].dtype in discrete_dtypes:
            return [None, None]
        return [RepeatGrad(self.axis)(gz, inputs[1]), None]


class RepeatGrad(_RepeatBase):
    """The adjoint of Repeat: sums each run of ``repeats[i]`` entries along ``axis``."""

    def make_node(self, g, repeats):
        g, repeats = self._check(g, repeats)
        out = list(g.type.shape)
        out[self.axis] = repeats.type.shape[0]
        return Apply(self, [g, repeats], [TensorType(g.dtype, out)()])

    def make_thunk_function(self, node):
        axis = self.axis

        def run(g, repeats):
            if np.sum(repeats) != np.shape(g)[axis]:
                raise ValueError(f"repeat gradient: counts {list(repeats)} do not sum to the "
                                 f"length {np.shape(g)[axis]} of axis {axis}")
            return _segment_sum(g, repeats, axis)
        return run

    def pullback(self, inputs, outputs, output_grads):
        (gz,) = output_grads
        if gz is None or inputs[0].dtype in discrete_dtypes:
            return [None, None]
        return [Repeat(self.axis)(gz, inputs[1]), None]


def repeat(x, repeats, axis=None):
    """numpy's repeat; ``repeats`` is an int, a symbolic int scalar or an int vector."""
    x = as_tensor_variable(x)
    if axis is None:
        x, axis = flatten(x, 1), 0
    axis = _norm_axis(axis, x.ndim, "repeat")
    r = as_tensor_variable(repeats)
    if r.dtype not in int_dtypes or r.ndim > 1:
        raise TypeError(f"repeat: repeats must be an integer scalar or vector, got {r} of "
                        f"type {r.type}")
    if r.ndim == 1 and r.type.shape[0] == 1:
        r = constant(r.data.reshape(())) if isinstance(r, TensorConstant) else reshape(r, ())
    if r.ndim == 1:
        return Repeat(axis)(x, r)
    r = _strong(r, "int64")
    count = _scalar_value(r)
    if count is not None and count < 0:
        raise ValueError(f"repeat: repeats may not be negative, got {count}")
    if count == 1:
        return x
    from symgrad.tensor.math import mul

    # x[..., :, None, ...] broadcast to (..., n, r, ...) then merged: each element r times.
    pattern = tuple(range(axis + 1)) + ("x",) + tuple(range(axis + 1, x.ndim))
    dims = [shape_i(x, k) for k in range(x.ndim)]
    wide = Alloc()(DimShuffle(x.ndim, pattern)(x), dims[:axis + 1] + [r] + dims[axis + 1:])
    n = x.type.shape[axis]
    merged = n * count if n is not None and count is not None else mul(dims[axis], r)
    return Reshape(x.ndim)(wide, dims[:axis] + [merged] + dims[axis + 1:])


def tile(x, reps):
    """numpy's tile; ``reps`` is an int or a tuple of ints / symbolic int scalars."""
    x = as_tensor_variable(x)
    if isinstance(reps, int | np.integer):
        reps = (reps,)
    if not isinstance(reps, list | tuple):
        raise TypeError(f"tile: reps must be an int or a tuple, got {reps!r}")
    reps = [int(r) if isinstance(r, int | np.integer) else _int_scalar(r, "tile") for r in reps]
    for r in reps:
        if isinstance(r, int) and r < 0:
            raise ValueError(f"tile: negative repetitions are not allowed: {_fmt(reps)}")
    d = max(x.ndim, len(reps))
    reps = [1] * (d - len(reps)) + reps
    if x.ndim < d:
        x = DimShuffle(x.ndim, ("x",) * (d - x.ndim) + tuple(range(x.ndim)))(x)
    if all(isinstance(r, int) and r == 1 for r in reps):
        return x
    from symgrad.tensor.math import mul

    pattern, wide_shape, out_shape = [], [], []
    for k, r in enumerate(reps):
        s = shape_i(x, k)
        if not (isinstance(r, int) and r == 1):
            pattern.append("x")
            wide_shape.append(r)
        pattern.append(k)
        wide_shape.append(s)
        known_s = x.type.shape[k]
        if isinstance(r, int) and known_s is not None:
            out_shape.append(r * known_s)
        else:
            out_shape.append(s if isinstance(r, int) and r == 1 else mul(s, r))
    wide = Alloc()(DimShuffle(d, tuple(pattern))(x), wide_shape)
    return Reshape(d)(wide, out_shape)
