"""softmax, log_softmax (stable, own ops) and logsumexp (from reduction).

``symgrad.tensor.special.softmax`` is PyTensor's path. Both ops subtract the
maximum before exponentiating, so large inputs do not overflow, and their
derivative rules are the usual closed forms written with the output:

* softmax: ``s * (g - sum(g * s, axis, keepdims))``
* log_softmax: ``g - exp(out) * sum(g, axis, keepdims)``
"""

from __future__ import annotations

import numpy as np

from symgrad.graph.basic import Apply, Op
from symgrad.tensor.basic import as_tensor_variable
from symgrad.tensor.reduction import float_dtype, logsumexp, normalize_axis, with_props
from symgrad.tensor.reduction import sum as _sum
from symgrad.tensor.type import TensorType, discrete_dtypes

__all__ = ["softmax", "log_softmax", "logsumexp"]


def _shifted(x, axis, dtype):
    """x minus its max over axis (the max replaced by 0 where it is not finite)."""
    x = np.asarray(x, dtype=dtype)
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0).astype(dtype, copy=False)
    return x - m


class _AxisOp(Op):
    __props__ = ("axis",)

    def __init__(self, axis):
        self.axis = tuple(int(a) for a in axis)

    def make_node(self, x):
        x = as_tensor_variable(x)
        for a in self.axis:
            if not 0 <= a < x.ndim:
                raise ValueError(f"{type(self).__name__}: axis {a} is out of range for {x} with "
                                 f"{x.ndim} dimensions")
        return Apply(self, [x], [TensorType(float_dtype(x.dtype), x.type.shape)()])


    def vectorize_node(self, node, x):
        return [with_props(self, axis=tuple(a + 1 for a in self.axis))(x)]

    def infer_shape(self, node, input_shapes):
        return [input_shapes[0]]


class Softmax(_AxisOp):
    """``exp(x) / sum(exp(x), axis)``, computed as scipy.special.softmax (max subtracted)."""

    def make_thunk_function(self, node):
        axis = self.axis
        dtype = np.dtype(node.outputs[0].type.dtype)

        def run(x):
            e = np.exp(_shifted(x, axis, dtype))
            return e / np.sum(e, axis=axis, keepdims=True)
        return run

    def pullback(self, inputs, outputs, output_grads):
        (x,), (g,) = inputs, output_grads
        if g is None or x.dtype in discrete_dtypes:
            return [None]
        s = outputs[0]
        return [s * (g - _sum(g * s, axis=self.axis, keepdims=True))]

    def pushforward(self, inputs, outputs, tangents):
        (x,), (t,) = inputs, tangents
        if t is None or x.dtype in discrete_dtypes:
            return [None]
        s = outputs[0]
        return [s * (t - _sum(t * s, axis=self.axis, keepdims=True))]


class LogSoftmax(_AxisOp):
    """``x - logsumexp(x, axis, keepdims=True)``, computed stably."""

    def make_thunk_function(self, node):
        axis = self.axis
        dtype = np.dtype(node.outputs[0].type.dtype)

        def run(x):
            z = _shifted(x, axis, dtype)
            with np.errstate(divide="ignore"):
                return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
        return run

    def pullback(self, inputs, outputs, output_grads):
        from symgrad.tensor.math import exp

        (x,), (g,) = inputs, output_grads
        if g is None or x.dtype in discrete_dtypes:
            return [None]
        return [g - exp(outputs[0]) * _sum(g, axis=self.axis, keepdims=True)]

    def pushforward(self, inputs, outputs, tangents):
        from symgrad.tensor.math import exp

        (x,), (t,) = inputs, tangents
        if t is None or x.dtype in discrete_dtypes:
            return [None]
        return [t - _sum(exp(outputs[0]) * t, axis=self.axis, keepdims=True)]


def softmax(x, axis=-1):
    """The softmax over ``axis`` (None: all axes), numerically stable.

    >>> import symgrad.tensor as st
    >>> x = st.dvector("x")
    >>> softmax(x).eval({x: [1000.0, 1000.0]})
    array([0.5, 0.5])
    """
    x = as_tensor_variable(x)
    return Softmax(normalize_axis(axis, x.ndim, "softmax", x))(x)


def log_softmax(x, axis=-1):
    """``log(softmax(x, axis))``, numerically stable."""
    x = as_tensor_variable(x)
    return LogSoftmax(normalize_axis(axis, x.ndim, "log_softmax", x))(x)



