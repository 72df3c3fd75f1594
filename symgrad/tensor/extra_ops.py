"""Cumulative sums and products, and the two small ops their derivatives are made of.

* ``CumOp(mode, axis, reverse)``: ``np.cumsum``/``np.cumprod`` along one axis, from
  the start or (``reverse``) from the end.
* ``Shift(axis, offset, fill)``: ``out[i] = x[i - offset]`` along ``axis``, ``fill``
  where that falls outside.
* ``LinearRecurrence(axis, reverse)``: ``y[i] = a[i] * y[i-1] + b[i]`` (``y[-1] = 0``),
  or from the end when ``reverse``.

The pullback of cumsum is a reverse cumsum. The pullback of cumprod is
``exclusive_cumprod(x) * (reverse recurrence of g with coefficients x shifted)``: a
graph of products and sums only, never a division, so it is exact with zeros in the
input (one or many), and so are the derivatives of that graph (the recurrence's own
rules are recurrences and shifts again). ``prod``'s pullback is built from these.
"""

from __future__ import annotations

import numpy as np

from symgrad.graph.basic import Apply, Op
from symgrad.tensor.basic import as_tensor_variable
from symgrad.tensor.elemwise import broadcast_static_shapes
from symgrad.tensor.reduction import (
    _label,
    normalize_one_axis,
    pad_batch,
    probe_dtype,
    sum_to_static,
    with_props,
)
from symgrad.tensor.type import TensorType, discrete_dtypes

__all__ = ["cumsum", "cumprod", "diff"]


def _check_axis(op_name, axis, x):
    if x.ndim == 0 or not 0 <= axis < x.ndim:
        raise ValueError(f"{op_name}: axis {axis} is out of range for {_label(x)} with "
                         f"{x.ndim} dimensions")


def _flip(x, axis):
    return np.flip(x, axis)


class CumOp(Op):
    """Cumulative sum (``mode='add'``) or product (``'mul'``) along ``axis``."""

    __props__ = ("mode", "axis", "reverse")

    def __init__(self, mode: str, axis: int, reverse: bool = False):
        if mode not in ("add", "mul"):
            raise ValueError(f"CumOp mode must be 'add' or 'mul', got {mode!r}")
        self.mode = mode
        self.axis = int(axis)
        self.reverse = bool(reverse)

    def __str__(self):
        name = "cumsum" if self.mode == "add" else "cumprod"
        return f"{name}{{axis={self.axis}{', reverse' if self.reverse else ''}}}"

    def make_node(self, x):
        x = as_tensor_variable(x)
        _check_axis(str(self), self.axis, x)
        dtype = probe_dtype("sum" if self.mode == "add" else "prod", x.dtype)
        return Apply(self, [x], [TensorType(dtype, x.type.shape)()])

    def make_thunk_function(self, node):
        fn = np.cumsum if self.mode == "add" else np.cumprod
        axis, reverse = self.axis, self.reverse
        dtype = np.dtype(node.outputs[0].type.dtype)

        def run(x):
            x = np.asarray(x)
            if reverse:
                out = np.flip(fn(np.flip(x, axis), axis=axis, dtype=dtype), axis)
            else:
                out = fn(x, axis=axis, dtype=dtype)
            return out
        return run


    def pullback(self, inputs, outputs, output_grads):
        (x,), (g,) = inputs, output_grads
        if g is None or x.dtype in discrete_dtypes:
            return [None]
        axis = self.axis
        if self.mode == "add":
            return [CumOp("add", axis, not self.reverse)(g)]
        y = outputs[0]
        step = -1 if not self.reverse else 1
        # d y_i / d x_j = (product of x over i's range without j):
        #   exclusive cumprod up to j  *  sum over i of g_i * prod of x strictly between j and i.
        before = Shift(axis, -step, 1)(y)
        between = LinearRecurrence(axis, not self.reverse)(Shift(axis, step, 0)(x), g)
        return [before * between]

    def pushforward(self, inputs, outputs, tangents):
        (x,), (t,) = inputs, tangents
        if t is None or x.dtype in discrete_dtypes:
            return [None]
        if self.mode == "add":
            return [self(t)]
        y = outputs[0]
        step = 1 if not self.reverse else -1
        # ty_i = x_i * ty_{i-1} + t_i * y_{i-1}   (y_{-1} = 1)
        return [LinearRecurrence(self.axis, self.reverse)(x, t * Shift(self.axis, step, 1)(y))]

    def vectorize_node(self, node, x):
        return [with_props(self, axis=self.axis + 1)(x)]

    def infer_shape(self, node, input_shapes):
        return [input_shapes[0]]


class Shift(Op):
    """``out[i] = x[i - offset]`` along ``axis``; positions with no source get ``fill``."""

    __props__ = ("axis", "offset", "fill")

    def __init__(self, axis: int, offset: int, fill=0):
        self.axis = int(axis)
        self.offset = int(offset)
        self.fill = fill

    def make_node(self, x):
        x = as_tensor_variable(x)
        _check_axis("shift", self.axis, x)
        return Apply(self, [x], [TensorType(x.dtype, x.type.shape)()])

    def make_thunk_function(self, node):
        axis, off, fill = self.axis, self.offset, self.fill
        dtype = np.dtype(node.outputs[0].type.dtype)

        def run(x):
            x = np.asarray(x)
            n = x.shape[axis]
            out = np.empty(x.shape, dtype=dtype)
            lead = (slice(None),) * axis
            k = min(abs(off), n)
            if off >= 0:
                out[lead + (slice(k, None),)] = x[lead + (slice(0, n - k),)]
                out[lead + (slice(0, k),)] = fill
            else:
                out[lead + (slice(0, n - k),)] = x[lead + (slice(k, None),)]
                out[lead + (slice(n - k, None),)] = fill
            return out
        return run


    def pullback(self, inputs, outputs, output_grads):
        (x,), (g,) = inputs, output_grads
        if g is None or x.dtype in discrete_dtypes:
            return [None]
        return [Shift(self.axis, -self.offset, 0)(g)]

    def pushforward(self, inputs, outputs, tangents):
        (t,) = tangents
        return [None if t is None else Shift(self.axis, self.offset, 0)(t)]

    def vectorize_node(self, node, x):
        return [with_props(self, axis=self.axis + 1)(x)]

    def infer_shape(self, node, input_shapes):
        return [input_shapes[0]]


def _blocked_scan(a, b, axis):
    """y[i] = a[i] * y[i-1] + b[i] (y[-1] = 0) along ``axis``, exactly (no division).

    The axis is cut into ~sqrt(n) blocks of ~sqrt(n): a sequential pass inside all
    blocks at once, a sequential pass over the block ends, then one vectorised fix-up,
    so about 2 sqrt(n) small numpy steps instead of n.
    """
    n = a.shape[axis]
    if n == 0:
        return np.array(b)
    A = np.moveaxis(a, axis, -1)
    B = np.moveaxis(b, axis, -1)
    lead = A.shape[:-1]
    bs = int(np.ceil(np.sqrt(n)))
    nb = -(-n // bs)
    pad = nb * bs - n
    if pad:
        A = np.concatenate([A, np.ones(lead + (pad,), A.dtype)], axis=-1)
        B = np.concatenate([B, np.zeros(lead + (pad,), B.dtype)], axis=-1)
    A = np.ascontiguousarray(A).reshape(lead + (nb, bs))
    Y = np.array(B).reshape(lead + (nb, bs))
    P = A.copy()  # running product of a inside each block
    for i in range(1, bs):
        Y[..., i] += A[..., i] * Y[..., i - 1]
        P[..., i] *= P[..., i - 1]
    if nb > 1:
        ends = Y[..., -1].copy()
        p_end = P[..., -1]
        for k in range(1, nb):
            ends[..., k] += p_end[..., k] * ends[..., k - 1]
        prev = ends[..., :-1, None]
        term = P[..., 1:, :] * prev
        np.copyto(term, 0, where=(prev == 0))  # exact 0 even where a running product overflowed
        Y[..., 1:, :] += term
    Y = Y.reshape(lead + (nb * bs,))[..., :n]
    return np.moveaxis(Y, -1, axis)


class LinearRecurrence(Op):
    """``y[i] = a[i] * y[i-1] + b[i]`` along ``axis`` with ``y[-1] = 0`` (``a[0]`` unused);
    with ``reverse``: ``y[i] = a[i] * y[i+1] + b[i]`` from the end. ``a`` and ``b``
    broadcast (statically)."""

    __props__ = ("axis", "reverse")

    def __init__(self, axis: int, reverse: bool = False):
        self.axis = int(axis)
        self.reverse = bool(reverse)

    def make_node(self, a, b):
        a, b = as_tensor_variable(a), as_tensor_variable(b)
        if a.ndim != b.ndim:
            raise ValueError(f"LinearRecurrence: a and b need the same ndim, got {a.type} and "
                             f"{b.type}")
        _check_axis("LinearRecurrence", self.axis, a)
        shape = broadcast_static_shapes("LinearRecurrence", [a.type.shape, b.type.shape])
        dtype = np.result_type(np.dtype(a.dtype), np.dtype(b.dtype)).name
        return Apply(self, [a, b], [TensorType(dtype, shape)()])

    def make_thunk_function(self, node):
        axis, reverse = self.axis, self.reverse
        dtype = np.dtype(node.outputs[0].type.dtype)

        def run(a, b):
            a, b = np.broadcast_arrays(np.asarray(a, dtype=dtype), np.asarray(b, dtype=dtype))
            if reverse:
                a, b = np.flip(a, axis), np.flip(b, axis)
            out = _blocked_scan(a, b, axis)
            return np.flip(out, axis) if reverse else out
        return run


    def _prev(self, v, fill=0):
        """v[i-1] (or v[i+1] when reverse), ``fill`` at the start."""
        return Shift(self.axis, -1 if self.reverse else 1, fill)(v)

    def pullback(self, inputs, outputs, output_grads):
        (a, b), (g,) = inputs, output_grads
        if g is None:
            return [None, None]
        y = outputs[0]
        # adjoint: u_j = g_j + a_{j+1} u_{j+1}: the opposite recurrence with a shifted back
        u = LinearRecurrence(self.axis, not self.reverse)(
            Shift(self.axis, 1 if self.reverse else -1, 0)(a), g)
        ga = None if a.dtype in discrete_dtypes else sum_to_static(u * self._prev(y), a)
        gb = None if b.dtype in discrete_dtypes else sum_to_static(u, b)
        return [ga, gb]

    def pushforward(self, inputs, outputs, tangents):
        (a, _b), (ta, tb) = inputs, tangents
        if ta is None and tb is None:
            return [None]
        drive = tb
        if ta is not None:
            term = ta * self._prev(outputs[0])
            drive = term if drive is None else drive + term
        return [self(a, drive)]

    def vectorize_node(self, node, a, b):
        ndim = node.outputs[0].ndim + 1
        return [with_props(self, axis=self.axis + 1)(pad_batch(a, ndim), pad_batch(b, ndim))]


def exclusive_cumprod_both(x, axis):
    """For each position, the product of the other elements along ``axis``:
    (product of those before) * (product of those after). No division."""
    before = Shift(axis, 1, 1)(CumOp("mul", axis)(x))
    after = Shift(axis, -1, 1)(CumOp("mul", axis, reverse=True)(x))
    return before * after


def _flatten(x):
    if x.ndim == 1:
        return x
    from symgrad.tensor import flatten

    return flatten(x, 1)


def cumsum(x, axis=None):
    """Cumulative sum along ``axis`` (None: of the flattened array), as ``np.cumsum``."""
    x = as_tensor_variable(x)
    if axis is None:
        return CumOp("add", 0)(_flatten(x))
    return CumOp("add", normalize_one_axis(axis, x.ndim, "cumsum", x))(x)


def cumprod(x, axis=None):
    """Cumulative product along ``axis`` (None: flattened), as ``np.cumprod``.

    Its derivatives are exact for any input, zeros included (no division)."""
    x = as_tensor_variable(x)
    if axis is None:
        return CumOp("mul", 0)(_flatten(x))
    return CumOp("mul", normalize_one_axis(axis, x.ndim, "cumprod", x))(x)


def diff(x, n=1, axis=-1):
    """n-th discrete difference along ``axis``, as ``np.diff``."""
    x = as_tensor_variable(x)
    axis = normalize_one_axis(axis, x.ndim, "diff", x)
    if n < 0:
        raise ValueError(f"diff: order n must be non-negative, got {n}")
    lead = (slice(None),) * axis
    for _ in range(n):
        x = x[lead + (slice(1, None),)] - x[lead + (slice(None, -1),)]
    return x
