"""Shapes and shape manipulation: shape, reshape, dimshuffle, concatenate, split, alloc, ...

Shapes are int64 vectors. Ops that take a target shape (Reshape, Alloc) take it
as one symbolic vector; ``_vector_values`` reads what is statically known of
such a vector (constants, ``shape(x)`` of a statically shaped x, stacks of
``shape_i`` and constants) so that output static shapes are as precise as the
inputs allow. The creation functions (zeros, arange, eye, repeat, tile, ...)
live in ``symgrad.tensor.creation`` and are re-exported here.
"""

from __future__ import annotations

import numpy as np

from symgrad.config import config
from symgrad.graph.basic import Apply, Op
from symgrad.graph.vectorize import is_batched
from symgrad.tensor.basic import as_tensor_variable, constant
from symgrad.tensor.elemwise import DimShuffle, Elemwise, SumTo, cast
from symgrad.tensor.type import TensorType, discrete_dtypes, int_dtypes, normalize_dtype
from symgrad.tensor.variable import TensorConstant

__all__ = [
    "Shape", "Shape_i", "Reshape", "Join", "Split", "Alloc", "SpecifyShape",
    "shape", "shape_i", "concatenate_shape", "reshape", "flatten", "dimshuffle", "transpose",
    "expand_dims", "squeeze", "concatenate", "stack", "split", "broadcast_to", "specify_shape",
    "alloc",
]

_DEPTH = 8  # how far _vector_values/_scalar_value look back through a shape graph


# -- helpers --------------------------------------------------------------------------------------

def _is_weak(var) -> bool:
    return isinstance(var, TensorConstant) and var.weak


def _fmt(shp) -> str:
    shp = tuple("?" if s is None else int(s) for s in shp)
    return "(" + ", ".join(map(str, shp)) + (",)" if len(shp) == 1 else ")")


def _strong(var, dtype=None):
    """``var`` with weak constants made ordinary (thunks then always get arrays), cast to dtype.

    A Python float becomes floatX unless ``dtype`` says otherwise (as in PyTensor).
    """
    if _is_weak(var):
        if dtype is None:
            dtype = config.floatX if var.dtype in ("float32", "float64") else var.dtype
        return constant(var.data, dtype=dtype)
    if dtype is not None and var.dtype != normalize_dtype(dtype):
        return cast(var, dtype)
    return var


def _upcast(tensors) -> str:
    """numpy's result dtype, where weak constants (Python numbers) only change the kind."""
    strong = [t.dtype for t in tensors if not _is_weak(t)]
    weak = [t for t in tensors if _is_weak(t)]
    if not strong:
        dt = normalize_dtype(np.result_type(*[t.dtype for t in weak]))
        return config.floatX if dt in ("float32", "float64") else dt  # Python floats: floatX
    dt = np.result_type(*strong)
    order = "biufc"
    for w in weak:
        if order.index(np.dtype(w.dtype).kind) > order.index(dt.kind):
            dt = np.result_type(dt, w.dtype)
    return normalize_dtype(dt)


def _int_scalar(v, what: str):
    v = as_tensor_variable(v)
    if v.dtype not in discrete_dtypes or v.ndim != 0:
        raise TypeError(f"{what}: expected an integer scalar, got {v} of type {v.type}")
    return _strong(v, "int64")


def _as_shape_vector(shp, what: str):
    """A shape given as an int, a tuple of ints/symbolic scalars or an int vector ->
    (int64 vector, its static length or None)."""
    if isinstance(shp, int | np.integer):
        shp = (shp,)
    if isinstance(shp, list | tuple):
        if all(isinstance(s, int | np.integer) for s in shp):
            return constant(np.array(shp, dtype="int64")), len(shp)
        return stack([_int_scalar(s, what) for s in shp]), len(shp)
    v = as_tensor_variable(shp)
    if v.dtype not in int_dtypes:
        raise TypeError(f"{what}: a shape must have an integer dtype, got {v} of type {v.type}")
    if v.ndim == 0:
        v = expand_dims(v, 0)
    if v.ndim != 1:
        raise TypeError(f"{what}: a shape must be a vector, got {v} with {v.ndim} dimensions")
    v = _strong(v, "int64")
    return v, v.type.shape[0]


def _scalar_value(v, depth: int = 0):
    """The int value of a 0-d integer variable when statically known, else None."""
    if isinstance(v, TensorConstant):
        return int(v.data.reshape(-1)[0]) if v.data.size == 1 else None
    node = v.owner
    if node is None or depth > _DEPTH or v.dtype not in discrete_dtypes:
        return None
    op = node.op
    if isinstance(op, Shape_i):
        return node.inputs[0].type.shape[op.i]
    if isinstance(op, DimShuffle) and v.ndim == 0:
        return _scalar_value(node.inputs[0], depth + 1)
    if isinstance(op, Elemwise) and v.ndim == 0:
        name = op.scalar_op.name
        vals = [_scalar_value(i, depth + 1) for i in node.inputs]
        if None in vals:
            return None
        if name.startswith("cast") or name == "identity":
            return vals[0]
        fns = {"mul": np.prod, "add": np.sum, "sub": lambda a: a[0] - a[1],
               "floor_div": lambda a: a[0] // a[1] if a[1] else None}
        if name in fns:
            r = fns[name](vals)
            return None if r is None else int(r)
    if _is_subtensor(op, node) and op.idx_list == ("i",):  # shape(x)[k]
        k = _scalar_value(node.inputs[1], depth + 1)
        vals = _vector_values(node.inputs[0], depth + 1)
        if k is not None and vals is not None and -len(vals) <= k < len(vals):
            return vals[k]
    return None


def _is_subtensor(op, node) -> bool:
    from symgrad.tensor.subtensor import Subtensor

    return (type(op) is Subtensor and node.inputs[0].ndim == 1 and len(op.idx_list) == 1)


def _vector_values(v, depth: int = 0):
    """For a 1-d int vector of static length n: a list of n ints-or-None; else None."""
    n = v.type.shape[0] if v.ndim == 1 else None
    if n is None:
        return None
    if isinstance(v, TensorConstant):
        return [int(a) for a in v.data]
    node = v.owner
    if node is not None and depth <= _DEPTH:
        op = node.op
        if isinstance(op, Shape):
            return list(node.inputs[0].type.shape)
        if isinstance(op, Join) and op.axis == 0:
            parts = [_vector_values(p, depth + 1) for p in node.inputs]
            if None not in parts:
                return [e for p in parts for e in p]
        if isinstance(op, DimShuffle) and node.inputs[0].ndim == 0:
            return [_scalar_value(node.inputs[0], depth + 1)]
        if isinstance(op, Elemwise) and op.scalar_op.name.startswith("cast"):
            return _vector_values(node.inputs[0], depth + 1)
        if _is_subtensor(op, node) and isinstance(op.idx_list[0], tuple):  # shape(x)[a:b:c]
            given = iter(node.inputs[1:])
            bounds = [_scalar_value(next(given), depth + 1) if f else None
                      for f in op.idx_list[0][1:]]
            vals = _vector_values(node.inputs[0], depth + 1)
            if vals is not None and all(b is not None or not f
                                        for b, f in zip(bounds, op.idx_list[0][1:])):
                vals = vals[slice(*bounds)]
                if len(vals) == n:
                    return vals
    return [None] * n


def _batch_size(xs):
    return expand_dims(shape_i(xs, 0), 0)


def _with_batch(x, b):
    """Unbatched ``x`` broadcast to a leading batch axis of length ``b`` (an int64 (1,) vector)."""
    return Alloc()(x, concatenate([b, shape(x)]))


class _ThunkOp(Op):
    def perform(self, node, inputs, output_storage):
        out = self.make_thunk_function(node)(*inputs)
        if len(node.outputs) == 1:
            output_storage[0][0] = out
        else:
            for store, o in zip(output_storage, out):
                store[0] = o


# -- shape ----------------------------------------------------------------------------------------

class Shape(_ThunkOp):
    """``shape(x)``: the int64 vector of x's dimensions (not differentiable)."""

    __props__ = ()

    def make_node(self, x):
        x = as_tensor_variable(x)
        return Apply(self, [x], [TensorType("int64", (x.ndim,))()])

    def make_thunk_function(self, node):
        return lambda x: np.array(np.shape(x), dtype=np.int64)

    def infer_shape(self, node, input_shapes):
        return [[node.inputs[0].ndim]]

    def connection_pattern(self, node):
        return [False]

    def pullback(self, inputs, outputs, output_grads):
        return [None]

    def pushforward(self, inputs, outputs, tangents):
        return [None]

    def vectorize_node(self, node, xs):
        return [_shape_from(xs, 1)]


class Shape_i(_ThunkOp):
    """``shape_i(x, i)``: the length of dimension i as an int64 scalar."""

    __props__ = ("i",)

    def __init__(self, i: int):
        self.i = int(i)

    def make_node(self, x):
        x = as_tensor_variable(x)
        if not 0 <= self.i < x.ndim:
            raise ValueError(f"shape_i: axis {self.i} is out of range for {x} with {x.ndim} dims")
        return Apply(self, [x], [TensorType("int64", ())()])

    def make_thunk_function(self, node):
        i = self.i
        return lambda x: np.array(np.shape(x)[i], dtype=np.int64)

    def connection_pattern(self, node):
        return [False]

    def pullback(self, inputs, outputs, output_grads):
        return [None]

    def pushforward(self, inputs, outputs, tangents):
        return [None]

    def vectorize_node(self, node, xs):
        return [shape_i(xs, self.i + 1)]


def _shape_from(x, start: int):
    """The int64 vector ``shape(x)[start:]`` built from shape_i (static entries as constants)."""
    if x.ndim <= start:
        return constant(np.zeros(0, dtype="int64"))
    if start == 0:
        return shape(x)
    return stack([shape_i(x, k) for k in range(start, x.ndim)])


def shape(x):
    """The shape of ``x`` as an int64 vector (a constant when statically known)."""
    x = as_tensor_variable(x)
    if None not in x.type.shape:
        return constant(np.array(x.type.shape, dtype="int64"))
    return Shape()(x)


def shape_i(x, i, fgraph=None):
    """The length of dimension ``i`` of ``x`` as an int64 scalar (a constant when known)."""
    x = as_tensor_variable(x)
    i = int(i)
    if not -x.ndim <= i < x.ndim:
        raise ValueError(f"shape_i: axis {i} is out of range for {x} with {x.ndim} dims")
    i %= x.ndim
    if x.type.shape[i] is not None:
        return constant(x.type.shape[i], dtype="int64")
    return Shape_i(i)(x)


def concatenate_shape(parts):
    """Concatenate int vectors (shape pieces) into one int64 vector."""
    return concatenate([_as_shape_vector(p, "concatenate_shape")[0] for p in parts])


# -- reshape --------------------------------------------------------------------------------------

class Reshape(_ThunkOp):
    """``reshape(x, shape)`` to ``ndim`` dimensions; the shape vector may hold one -1."""

    __props__ = ("ndim",)
    view_map = {0: [0]}

    def __init__(self, ndim: int):
        self.ndim = int(ndim)

    def make_node(self, x, shp):
        x = _strong(as_tensor_variable(x))
        shp, n = _as_shape_vector(shp, "reshape")
        if n is not None and n != self.ndim:
            raise ValueError(f"reshape: the new shape has {n} entries but ndim is {self.ndim}")
        entries = [None] * self.ndim if n is None else _vector_values(shp)
        if entries.count(-1) > 1:
            raise ValueError(f"reshape: can only specify one unknown dimension (-1), got "
                             f"{_fmt(entries)}")
        if any(e is not None and e < -1 for e in entries):
            raise ValueError(f"reshape: invalid shape {_fmt(entries)} (negative dimension)")
        size = None if None in x.type.shape else int(np.prod(x.type.shape, dtype=np.int64))
        others = [e for e in entries if e != -1]
        if size is not None and None not in others:
            known = int(np.prod(others, dtype=np.int64))
            if (-1 in entries and (known == 0 or size % known)) or (
                    -1 not in entries and known != size):
                raise ValueError(f"reshape: cannot reshape {x} of shape {_fmt(x.type.shape)} "
                                 f"(size {size}) into shape {_fmt(entries)}")
            if -1 in entries:
                entries[entries.index(-1)] = size // known
        out = [None if e == -1 else e for e in entries]
        return Apply(self, [x, shp], [TensorType(x.dtype, out)()])

    def make_thunk_function(self, node):
        def run(x, shp):
            target = tuple(int(s) for s in shp)
            try:
                return np.reshape(x, target)
            except ValueError:
                raise ValueError(f"reshape: cannot reshape an array of shape {np.shape(x)} "
                                 f"(size {np.size(x)}) into shape {target}") from None
        return run

    def connection_pattern(self, node):
        return [True, False]

    def pullback(self, inputs, outputs, output_grads):
        x, _ = inputs
        (gz,) = output_grads
        if gz is None or x.dtype in discrete_dtypes:
            return [None, None]
        return [Reshape(x.ndim)(gz, shape(x)), None]

    def pushforward(self, inputs, outputs, tangents):
        t = tangents[0]
        return [None if t is None else self(t, inputs[1])]

    def vectorize_node(self, node, xs, shp):
        if is_batched(node.inputs[1], shp):
            return Op.vectorize_node(self, node, xs, shp)
        return [Reshape(self.ndim + 1)(xs, concatenate([_batch_size(xs), shp]))]


def reshape(x, newshape, ndim=None):
    """``x`` reshaped (numpy's reshape; one entry may be -1).

    ``newshape`` is an int, a tuple of ints / symbolic int scalars, or a symbolic
    int vector; for a vector of statically unknown length pass ``ndim``.
    """
    x = as_tensor_variable(x)
    vec, n = _as_shape_vector(newshape, "reshape")
    if n is None:
        if ndim is None:
            raise TypeError(f"reshape: the new shape {vec} has a statically unknown length; "
                            "pass ndim= (the number of dimensions of the result)")
        n = int(ndim)
    elif ndim is not None and int(ndim) != n:
        raise ValueError(f"reshape: ndim={ndim} but the new shape has {n} entries")
    return Reshape(n)(x, vec)


def flatten(x, ndim=1):
    """Keep the first ``ndim - 1`` dimensions of ``x`` and collapse the rest into one."""
    x = as_tensor_variable(x)
    ndim = int(ndim)
    if not 1 <= ndim <= max(x.ndim, 1):
        raise ValueError(f"flatten: ndim must be between 1 and {max(x.ndim, 1)} for {x} "
                         f"with {x.ndim} dims, got {ndim}")
    if x.ndim == ndim:
        return x
    rest = x.type.shape[ndim - 1:]
    if None not in rest:
        last = int(np.prod(rest, dtype=np.int64))
    else:
        from symgrad.tensor.math import mul

        last = mul(*[shape_i(x, k) for k in range(ndim - 1, x.ndim)])
    return Reshape(ndim)(x, [shape_i(x, k) for k in range(ndim - 1)] + [last])


# -- axes -----------------------------------------------------------------------------------------

def _norm_axis(axis, ndim: int, what: str) -> int:
    a = int(axis)
    if not -ndim <= a < ndim:
        raise ValueError(f"{what}: axis {axis} is out of bounds for a tensor of dimension "
                         f"{ndim}")
    return a % ndim


def dimshuffle(x, pattern):
    """Reorder axes and insert ('x') or drop (length-1) ones: ``dimshuffle(x, (1, 'x', 0))``."""
    x = as_tensor_variable(x)
    return DimShuffle(x.ndim, tuple(pattern))(x)


def transpose(x, axes=None):
    """numpy's transpose: reverse the axes, or permute them by ``axes``."""
    x = as_tensor_variable(x)
    if axes is None:
        axes = tuple(range(x.ndim - 1, -1, -1))
    axes = tuple(_norm_axis(a, x.ndim, "transpose") for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes "
                         f"of {x}")
    if axes == tuple(range(x.ndim)):
        return x
    return DimShuffle(x.ndim, axes)(x)


def expand_dims(x, axis):
    """numpy's expand_dims: insert length-1 axes at positions ``axis`` (int or tuple)."""
    x = as_tensor_variable(x)
    axes = axis if isinstance(axis, list | tuple) else (axis,)
    out_ndim = x.ndim + len(axes)
    axes = [_norm_axis(a, out_ndim, "expand_dims") for a in axes]
    if len(set(axes)) != len(axes):
        raise ValueError(f"expand_dims: repeated axis in {axis}")
    it = iter(range(x.ndim))
    return DimShuffle(x.ndim, tuple("x" if k in axes else next(it) for k in range(out_ndim)))(x)


def squeeze(x, axis=None):
    """Remove length-1 axes: the given ones, or (axis=None) those statically known to be 1."""
    x = as_tensor_variable(x)
    if axis is None:
        axes = [k for k, s in enumerate(x.type.shape) if s == 1]
    else:
        axes = [_norm_axis(a, x.ndim, "squeeze")
                for a in (axis if isinstance(axis, list | tuple) else (axis,))]
        for a in axes:
            if x.type.shape[a] not in (None, 1):
                raise ValueError(f"squeeze: cannot select axis {a} of {x} to squeeze out: its "
                                 f"length is {x.type.shape[a]}, not 1")
    if not axes:
        return x
    return DimShuffle(x.ndim, tuple(k for k in range(x.ndim) if k not in axes))(x)


# -- concatenate / stack / split ------------------------------------------------------------------

def _check_same_ndim(tensors, what):
    if len({t.ndim for t in tensors}) > 1:
        listing = ", ".join(f"{t} ({t.ndim} dims)" for t in tensors)
        raise ValueError(f"{what}: all inputs must have the same number of dimensions, got "
                         f"{listing}")


class Join(_ThunkOp):
    """``concatenate(tensors, axis)`` (axis normalised, non-negative)."""

    __props__ = ("axis",)

    def __init__(self, axis: int):
        self.axis = int(axis)

    def make_node(self, *tensors):
        if not tensors:
            raise ValueError("concatenate needs at least one tensor")
        tensors = [as_tensor_variable(t) for t in tensors]
        _check_same_ndim(tensors, "concatenate")
        ndim = tensors[0].ndim
        if ndim == 0:
            raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated; "
                             "use stack")
        if not 0 <= self.axis < ndim:
            raise ValueError(f"concatenate: axis {self.axis} is out of bounds for tensors of "
                             f"dimension {ndim}")
        dtype = _upcast(tensors)
        tensors = [_strong(t, dtype) if _is_weak(t) else t for t in tensors]
        out = []
        for k in range(ndim):
            dims = [t.type.shape[k] for t in tensors]
            if k == self.axis:
                out.append(None if None in dims else sum(dims))
                continue
            known = {d for d in dims if d is not None}
            if len(known) > 1:
                raise ValueError(f"concatenate: input shapes "
                                 f"{', '.join(_fmt(t.type.shape) for t in tensors)} differ in "
                                 f"dimension {k} (only axis {self.axis} may differ)")
            out.append(known.pop() if known else None)
        return Apply(self, tensors, [TensorType(dtype, out)()])

    def make_thunk_function(self, node):
        axis, dtype = self.axis, np.dtype(node.outputs[0].dtype)
        return lambda *xs: np.concatenate(xs, axis=axis, dtype=dtype)

    def pullback(self, inputs, outputs, output_grads):
        (gz,) = output_grads
        if gz is None:
            return [None] * len(inputs)
        if len(inputs) == 1:
            parts = [gz]
        else:
            sizes = stack([shape_i(t, self.axis) for t in inputs])
            parts = Split(len(inputs), self.axis).make_node(gz, sizes).outputs
        return [None if t.dtype in discrete_dtypes else p for t, p in zip(inputs, parts)]

    def pushforward(self, inputs, outputs, tangents):
        if all(t is None for t in tangents):
            return [None]
        from symgrad.tensor.creation import zeros_like

        dtype = outputs[0].dtype
        return [self(*[zeros_like(x, dtype=dtype) if t is None else t
                       for x, t in zip(inputs, tangents)])]

    def vectorize_node(self, node, *new):
        ref = next(n for o, n in zip(node.inputs, new) if is_batched(o, n))
        b = _batch_size(ref)
        parts = [n if is_batched(o, n) else _with_batch(n, b) for o, n in zip(node.inputs, new)]
        return [Join(self.axis + 1)(*parts)]


def concatenate(tensors, axis=0):
    """numpy's concatenate of a list of tensors along ``axis``."""
    if not isinstance(tensors, list | tuple) or not tensors:
        raise ValueError("concatenate needs a non-empty list of tensors")
    tensors = [as_tensor_variable(t) for t in tensors]
    _check_same_ndim(tensors, "concatenate")
    if tensors[0].ndim == 0:
        raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated; use stack")
    axis = _norm_axis(axis, tensors[0].ndim, "concatenate")
    if len(tensors) == 1:
        return tensors[0]
    return Join(axis)(*tensors)


def stack(tensors, axis=0):
    """numpy's stack: join tensors of one shape along a new axis."""
    if not isinstance(tensors, list | tuple) or not tensors:
        raise ValueError("stack needs a non-empty list of tensors")
    tensors = [as_tensor_variable(t) for t in tensors]
    _check_same_ndim(tensors, "stack")
    for k in range(tensors[0].ndim):
        known = {t.type.shape[k] for t in tensors} - {None}
        if len(known) > 1:
            raise ValueError(f"stack: all inputs must have the same shape, got "
                             f"{', '.join(_fmt(t.type.shape) for t in tensors)}")
    axis = _norm_axis(axis, tensors[0].ndim + 1, "stack")
    dtype = _upcast(tensors)
    parts = [expand_dims(_strong(t, dtype) if _is_weak(t) else t, axis) for t in tensors]
    return Join(axis)(*parts)


class Split(_ThunkOp):
    """``split(x, sizes, n_splits, axis)``: n_splits outputs with the given lengths along axis."""

    __props__ = ("n_splits", "axis")
    view_map = {}

    def __init__(self, n_splits: int, axis: int):
        self.n_splits = int(n_splits)
        self.axis = int(axis)

    def make_node(self, x, splits):
        x = _strong(as_tensor_variable(x))
        splits, n = _as_shape_vector(splits, "split")
        if x.ndim == 0:
            raise ValueError("split: cannot split a zero-dimensional tensor")
        if not 0 <= self.axis < x.ndim:
            raise ValueError(f"split: axis {self.axis} is out of bounds for {x} with "
                             f"{x.ndim} dims")
        if n is not None and n != self.n_splits:
            raise ValueError(f"split: n_splits is {self.n_splits} but {n} sizes were given")
        sizes = _vector_values(splits) or [None] * self.n_splits
        total = x.type.shape[self.axis]
        if None not in sizes and total is not None and sum(sizes) != total:
            raise ValueError(f"split: the sizes {sizes} sum to {sum(sizes)} but axis "
                             f"{self.axis} of {x} has length {total}")
        outs = []
        for s in sizes:
            shp = list(x.type.shape)
            shp[self.axis] = s
            outs.append(TensorType(x.dtype, shp)())
        return Apply(self, [x, splits], outs)

    def make_thunk_function(self, node):
        n, axis = self.n_splits, self.axis

        def run(x, splits):
            splits = np.asarray(splits)
            if len(splits) != n:
                raise ValueError(f"split: expected {n} sizes, got {len(splits)}")
            if np.any(splits < 0) or splits.sum() != x.shape[axis]:
                raise ValueError(f"split: the sizes {splits.tolist()} must be non-negative and "
                                 f"sum to the length {x.shape[axis]} of axis {axis}")
            return tuple(np.split(x, np.cumsum(splits)[:-1], axis=axis))
        return run

    def connection_pattern(self, node):
        return [True, False]

    def pullback(self, inputs, outputs, output_grads):
        x = inputs[0]
        if x.dtype in discrete_dtypes or all(g is None for g in output_grads):
            return [None, None]
        from symgrad.tensor.creation import zeros_like

        parts = [zeros_like(o) if g is None else g for o, g in zip(outputs, output_grads)]
        return [concatenate(parts, axis=self.axis), None]

    def pushforward(self, inputs, outputs, tangents):
        t = tangents[0]
        if t is None:
            return [None] * self.n_splits
        return self.make_node(t, inputs[1]).outputs

    def vectorize_node(self, node, xs, splits):
        if is_batched(node.inputs[1], splits):
            return Op.vectorize_node(self, node, xs, splits)
        return Split(self.n_splits, self.axis + 1).make_node(xs, splits).outputs


def split(x, splits_size, n_splits, axis=0):
    """Split ``x`` along ``axis`` into ``n_splits`` pieces of lengths ``splits_size``."""
    x = as_tensor_variable(x)
    if x.ndim == 0:
        raise ValueError("split: cannot split a zero-dimensional tensor")
    axis = _norm_axis(axis, x.ndim, "split")
    return list(Split(int(n_splits), axis).make_node(x, splits_size).outputs)


# -- alloc / broadcast_to / specify_shape ---------------------------------------------------------

class Alloc(_ThunkOp):
    """A new array of the given shape filled with ``value`` broadcast (alloc, broadcast_to)."""

    __props__ = ()

    def make_node(self, value, shp):
        value = _strong(as_tensor_variable(value))
        shp, ndim = _as_shape_vector(shp, "alloc")
        if ndim is None:
            raise TypeError(f"alloc: the shape {shp} has a statically unknown length")
        if value.ndim > ndim:
            raise ValueError(f"alloc/broadcast_to: {value} has {value.ndim} dimensions, more "
                             f"than the {ndim} of the target shape")
        entries = _vector_values(shp)
        vshape = (1,) * (ndim - value.ndim) + value.type.shape
        if any(s is not None and s < 0 for s in entries):
            raise ValueError(f"alloc/broadcast_to: negative dimensions are not allowed: "
                             f"{_fmt(entries)}")
        out = []
        for k, (v, s) in enumerate(zip(vshape, entries)):
            if v is not None and s is not None and v not in (1, s):
                raise ValueError(f"alloc/broadcast_to: cannot broadcast {value} of shape "
                                 f"{_fmt(value.type.shape)} to shape {_fmt(entries)} "
                                 f"(dimension {k})")
            out.append(s if s is not None else (v if v != 1 else None))
        return Apply(self, [value, shp], [TensorType(value.dtype, out)()])

    def make_thunk_function(self, node):
        def run(value, shp):
            target = tuple(int(s) for s in shp)
            if any(s < 0 for s in target):
                raise ValueError(f"alloc/broadcast_to: negative dimensions are not allowed: "
                                 f"{target}")
            try:
                return np.broadcast_to(value, target).copy()
            except ValueError:
                raise ValueError(f"alloc/broadcast_to: cannot broadcast a value of shape "
                                 f"{np.shape(value)} to shape {target}") from None
        return run

    def connection_pattern(self, node):
        return [True, False]

    def pullback(self, inputs, outputs, output_grads):
        value, _ = inputs
        (gz,) = output_grads
        if gz is None or value.dtype in discrete_dtypes:
            return [None, None]
        import symgrad.tensor as st

        out = outputs[0]
        lead = out.ndim - value.ndim
        g = gz
        if lead:
            g = st.sum(g, axis=tuple(range(lead)))
        vshape, oshape = value.type.shape, out.type.shape[lead:]
        axes = tuple(k for k in range(value.ndim) if vshape[k] == 1 and oshape[k] != 1)
        if axes:
            g = st.sum(g, axis=axes, keepdims=True)
        if any(v is None and o != 1 for v, o in zip(vshape, oshape)):
            g = SumTo()(g, shape(value))
        return [g, None]

    def pushforward(self, inputs, outputs, tangents):
        t = tangents[0]
        return [None if t is None else self(t, inputs[1])]

    def vectorize_node(self, node, value, shp):
        if is_batched(node.inputs[1], shp):
            return Op.vectorize_node(self, node, value, shp)
        v, n = node.inputs[0].ndim, node.outputs[0].ndim
        padded = DimShuffle(v + 1, (0,) + ("x",) * (n - v) + tuple(range(1, v + 1)))(value)
        return [Alloc()(padded, concatenate([_batch_size(value), shp]))]


def alloc(value, *shape_):
    """A tensor of shape ``shape_`` (int scalars, or one tuple / int vector) filled with value."""
    if len(shape_) == 1 and (isinstance(shape_[0], list | tuple)
                             or getattr(shape_[0], "ndim", 0) == 1):
        shape_ = shape_[0]
    return Alloc()(value, tuple(shape_) if isinstance(shape_, list) else shape_)


def broadcast_to(x, shape):
    """numpy's broadcast_to (a fresh array): ``shape`` is a tuple or an int vector."""
    return Alloc()(x, shape)


class SpecifyShape(_ThunkOp):
    """``x`` checked at run time to have the given lengths where ``mask`` is True."""

    __props__ = ("mask",)
    view_map = {0: [0]}

    def __init__(self, mask):
        self.mask = tuple(bool(m) for m in mask)

    def make_node(self, x, *dims):
        x = _strong(as_tensor_variable(x))
        if len(self.mask) != x.ndim:
            raise ValueError(f"specify_shape: {x} has {x.ndim} dimensions but the specified "
                             f"shape has {len(self.mask)} entries")
        dims = [_int_scalar(d, "specify_shape") for d in dims]
        if len(dims) != sum(self.mask):
            raise ValueError(f"specify_shape: expected {sum(self.mask)} lengths, got {len(dims)}")
        it = iter(dims)
        out = []
        for k, (m, s) in enumerate(zip(self.mask, x.type.shape)):
            val = _scalar_value(next(it)) if m else None
            if val is not None and s is not None and val != s:
                raise ValueError(f"specify_shape: {x} has static shape {_fmt(x.type.shape)}, "
                                 f"which does not match the specified length {val} of "
                                 f"dimension {k}")
            out.append(val if val is not None else s)
        return Apply(self, [x, *dims], [TensorType(x.dtype, out)()])

    def make_thunk_function(self, node):
        mask = self.mask

        def run(x, *dims):
            it = iter(dims)
            want = tuple(int(next(it)) if m else None for m in mask)
            got = np.shape(x)
            if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
                raise ValueError(f"specify_shape: expected shape {_fmt(want)}, got {got}")
            return x
        return run

    def connection_pattern(self, node):
        return [True] + [False] * (len(node.inputs) - 1)

    def pullback(self, inputs, outputs, output_grads):
        (gz,) = output_grads
        nones = [None] * (len(inputs) - 1)
        if gz is None or inputs[0].dtype in discrete_dtypes:
            return [None, *nones]
        return [self(gz, *inputs[1:]), *nones]

    def pushforward(self, inputs, outputs, tangents):
        t = tangents[0]
        return [None if t is None else self(t, *inputs[1:])]

    def vectorize_node(self, node, xs, *dims):
        if any(is_batched(o, n) for o, n in zip(node.inputs[1:], dims)):
            return Op.vectorize_node(self, node, xs, *dims)
        return [SpecifyShape((False,) + self.mask)(xs, *dims)]


def specify_shape(x, shape):
    """``x``, checked at run time to have ``shape`` (a tuple of ints, symbolic ints or None)."""
    x = as_tensor_variable(x)
    if isinstance(shape, int | np.integer):
        shape = (shape,)
    if not isinstance(shape, list | tuple):
        raise TypeError(f"specify_shape: shape must be a tuple of ints/None, got {shape!r}")
    if len(shape) != x.ndim:
        raise ValueError(f"specify_shape: {x} has {x.ndim} dimensions but the shape "
                         f"{tuple(shape)} has {len(shape)} entries")
    mask = tuple(s is not None for s in shape)
    if not any(mask):
        return x
    return SpecifyShape(mask)(x, *[s for s in shape if s is not None])


# The creation functions are re-exported from here, resolved on first use: creation.py
# imports this module, so either may be imported first.
_CREATION_NAMES = ("ARange", "Eye", "Repeat", "RepeatGrad", "zeros", "ones", "full",
                   "zeros_like", "ones_like", "full_like", "arange", "eye", "repeat", "tile")
__all__ += _CREATION_NAMES


def __getattr__(name):
    if name in _CREATION_NAMES:
        from symgrad.tensor import creation

        return getattr(creation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
