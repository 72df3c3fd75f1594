"""sort, argsort, and the gather/scatter ops along an axis that sort's derivative uses.

* ``Sort(axis)``: ``np.sort``; pullback scatters the cotangent back through the
  argsort permutation (``ScatterAlongAxis``), pushforward gathers the tangent
  (``TakeAlongAxis``).
* ``ArgSort(axis, kind)``: ``np.argsort`` (int64); not differentiable (a piecewise
  constant function: its derivative is zero).
* ``TakeAlongAxis(axis)``: ``np.take_along_axis``; its pullback is
  ``ScatterAlongAxis``, a scatter-add into zeros, whose pullback is a gather again.
"""

from __future__ import annotations

import numpy as np

from symgrad.graph.basic import Apply, Op
from symgrad.tensor.basic import as_tensor_variable
from symgrad.tensor.reduction import (
    _label,
    normalize_one_axis,
    pad_batch,
    sum_to_static,
    with_props,
)
from symgrad.tensor.type import TensorType, discrete_dtypes, int_dtypes

__all__ = ["sort", "argsort"]


def _check(name, axis, x):
    if x.ndim == 0 or not 0 <= axis < x.ndim:
        raise ValueError(f"{name}: axis {axis} is out of range for {_label(x)} with {x.ndim} "
                         "dimensions")


class _AxisOp(Op):
    """Base of the ops here that work along one axis."""


class Sort(_AxisOp):
    """``np.sort(x, axis)``."""

    __props__ = ("axis", "kind")

    def __init__(self, axis: int, kind: str = "quicksort"):
        self.axis = int(axis)
        self.kind = kind

    def make_node(self, x):
        x = as_tensor_variable(x)
        _check("sort", self.axis, x)
        return Apply(self, [x], [x.type()])

    def make_thunk_function(self, node):
        axis, kind = self.axis, self.kind
        return lambda x: np.sort(x, axis=axis, kind=kind)

    def _perm(self, x):
        return ArgSort(self.axis, "stable")(x)

    def pullback(self, inputs, outputs, output_grads):
        (x,), (g,) = inputs, output_grads
        if g is None or x.dtype in discrete_dtypes:
            return [None]
        return [ScatterAlongAxis(self.axis, unique=True)(x, self._perm(x), g)]

    def pushforward(self, inputs, outputs, tangents):
        (x,), (t,) = inputs, tangents
        if t is None or x.dtype in discrete_dtypes:
            return [None]
        return [TakeAlongAxis(self.axis)(t, self._perm(x))]

    def vectorize_node(self, node, x):
        return [with_props(self, axis=self.axis + 1)(x)]

    def infer_shape(self, node, input_shapes):
        return [input_shapes[0]]


class ArgSort(_AxisOp):
    """``np.argsort(x, axis, kind)`` as int64."""

    __props__ = ("axis", "kind")

    def __init__(self, axis: int, kind: str = "quicksort"):
        self.axis = int(axis)
        self.kind = kind

    def make_node(self, x):
        x = as_tensor_variable(x)
        _check("argsort", self.axis, x)
        return Apply(self, [x], [TensorType("int64", x.type.shape)()])

    def make_thunk_function(self, node):
        axis, kind = self.axis, self.kind
        return lambda x: np.argsort(x, axis=axis, kind=kind).astype(np.int64, copy=False)

    def pullback(self, inputs, outputs, output_grads):
        return [None]

    def pushforward(self, inputs, outputs, tangents):
        return [None]

    def vectorize_node(self, node, x):
        return [with_props(self, axis=self.axis + 1)(x)]

    def infer_shape(self, node, input_shapes):
        return [input_shapes[0]]


def _bcast_dim(name, dims):
    known = {d for d in dims if d is not None and d != 1}
    if len(known) > 1:
        raise ValueError(f"{name}: shapes cannot broadcast (lengths {sorted(known)})")
    if known:
        return known.pop()
    return 1 if all(d == 1 for d in dims) else None


class TakeAlongAxis(_AxisOp):
    """``np.take_along_axis(x, indices, axis)``; other axes broadcast."""

    __props__ = ("axis",)

    def __init__(self, axis: int):
        self.axis = int(axis)

    def make_node(self, x, idx):
        x, idx = as_tensor_variable(x), as_tensor_variable(idx)
        if idx.dtype not in int_dtypes:
            raise TypeError(f"take_along_axis: indices must be integers, got {idx.type}")
        if idx.ndim != x.ndim:
            raise ValueError(f"take_along_axis: indices ({idx.ndim}-d) and x ({x.ndim}-d) need "
                             "the same number of dimensions")
        _check("take_along_axis", self.axis, x)
        shape = tuple(i if k == self.axis else _bcast_dim("take_along_axis", (s, i))
                      for k, (s, i) in enumerate(zip(x.type.shape, idx.type.shape)))
        return Apply(self, [x, idx], [TensorType(x.dtype, shape)()])

    def make_thunk_function(self, node):
        axis = self.axis
        return lambda x, idx: np.take_along_axis(np.asarray(x), idx, axis=axis)

    def connection_pattern(self, node):
        return [True, False]

    def pullback(self, inputs, outputs, output_grads):
        (x, idx), (g,) = inputs, output_grads
        if g is None or x.dtype in discrete_dtypes:
            return [None, None]
        return [sum_to_static(ScatterAlongAxis(self.axis)(x, idx, g), x), None]

    def pushforward(self, inputs, outputs, tangents):
        (_x, idx), (t, _) = inputs, tangents
        return [None if t is None else self(t, idx)]

    def vectorize_node(self, node, x, idx):
        ndim = node.outputs[0].ndim + 1
        return [TakeAlongAxis(self.axis + 1)(pad_batch(x, ndim), pad_batch(idx, ndim))]


class ScatterAlongAxis(_AxisOp):
    """The transpose of ``TakeAlongAxis``: zeros shaped like ``like`` (along ``axis``; other
    axes broadcast with the indices and values), with ``values`` added at ``indices``.
    ``unique`` promises the indices never repeat within a slice (a permutation), which
    allows a plain assignment."""

    __props__ = ("axis", "unique")

    def __init__(self, axis: int, unique: bool = False):
        self.axis = int(axis)
        self.unique = bool(unique)

    def make_node(self, like, idx, values):
        like, idx, values = (as_tensor_variable(v) for v in (like, idx, values))
        if idx.dtype not in int_dtypes:
            raise TypeError(f"scatter_along_axis: indices must be integers, got {idx.type}")
        if not like.ndim == idx.ndim == values.ndim:
            raise ValueError("scatter_along_axis: like, indices and values need the same ndim")
        _check("scatter_along_axis", self.axis, like)
        shape = tuple(
            s if k == self.axis else _bcast_dim("scatter_along_axis", (s, i, v))
            for k, (s, i, v) in enumerate(zip(like.type.shape, idx.type.shape, values.type.shape)))
        return Apply(self, [like, idx, values], [TensorType(values.dtype, shape)()])

    def make_thunk_function(self, node):
        axis, unique = self.axis, self.unique
        dtype = np.dtype(node.outputs[0].type.dtype)

        def run(like, idx, values):
            like, values = np.asarray(like), np.asarray(values)
            others = np.broadcast_shapes(*[
                tuple(1 if k == axis else s for k, s in enumerate(a.shape))
                for a in (like, idx, values)])
            idx_shape = list(others)
            idx_shape[axis] = idx.shape[axis]
            idx = np.broadcast_to(idx, idx_shape)
            values = np.broadcast_to(values, idx_shape)
            out_shape = list(others)
            out_shape[axis] = like.shape[axis]
            out = np.zeros(out_shape, dtype=dtype)
            if unique:
                np.put_along_axis(out, idx, values, axis)
            else:
                index = list(np.ogrid[tuple(slice(n) for n in idx_shape)])
                index[axis] = idx
                np.add.at(out, tuple(index), values)
            return out
        return run

    def connection_pattern(self, node):
        return [False, False, True]

    def pullback(self, inputs, outputs, output_grads):
        (_like, idx, values), (g,) = inputs, output_grads
        if g is None or values.dtype in discrete_dtypes:
            return [None, None, None]
        return [None, None, sum_to_static(TakeAlongAxis(self.axis)(g, idx), values)]

    def pushforward(self, inputs, outputs, tangents):
        (like, idx, _values), (_, _, t) = inputs, tangents
        return [None if t is None else self(like, idx, t)]

    def vectorize_node(self, node, like, idx, values):
        ndim = node.outputs[0].ndim + 1
        return [with_props(self, axis=self.axis + 1)(
            pad_batch(like, ndim), pad_batch(idx, ndim), pad_batch(values, ndim))]


def _flat(x):
    if x.ndim == 1:
        return x
    from symgrad.tensor import flatten

    return flatten(x, 1)


def sort(a, axis=-1, kind=None, order=None):
    """A sorted copy along ``axis`` (None: flattened), as ``np.sort``; NaN sorts last.

    Differentiable: the cotangent goes back to each element's original position."""
    if order is not None:
        raise NotImplementedError("sort: order= (structured arrays) is not supported")
    a = as_tensor_variable(a)
    kind = kind or "quicksort"
    if axis is None:
        return Sort(0, kind)(_flat(a))
    return Sort(normalize_one_axis(axis, a.ndim, "sort", a), kind)(a)


def argsort(a, axis=-1, kind=None, order=None):
    """Indices that sort ``a`` along ``axis`` (None: flattened), int64, as ``np.argsort``."""
    if order is not None:
        raise NotImplementedError("argsort: order= (structured arrays) is not supported")
    a = as_tensor_variable(a)
    kind = kind or "quicksort"
    if axis is None:
        return ArgSort(0, kind)(_flat(a))
    return ArgSort(normalize_one_axis(axis, a.ndim, "argsort", a), kind)(a)
