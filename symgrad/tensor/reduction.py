"""Reductions: sum, prod, mean, var, std, max, min, argmax, argmin, any, all, logsumexp.

Every reduction op carries its axes normalised (a sorted tuple of non-negative
ints; ``axis=None`` means all of them) and ``keepdims``, so the batching rule
is just "shift the axes by one". Semantics follow numpy:

* ``sum``/``prod`` accumulate small integers in numpy's default integer
  (``int8 -> int64``, ``uint8 -> uint64``, ``bool -> int64``), or in ``dtype=``.
* ``max``/``min`` propagate NaN and raise on an empty reduction, as numpy does.
* at ties, the gradient of ``max``/``min`` splits the cotangent equally among
  the tied positions of each slice (a valid subgradient: non-negative, sums to 1).
* ``prod``'s pullback is the product of the *other* elements, built from
  cumulative products from both sides; it needs no division, so it is exact
  with one zero or many, and differentiating it again stays exact.
* ``logsumexp`` is computed stably (the max is subtracted first) and its
  pullback is the stable softmax ``exp(x - out)``.
"""

from __future__ import annotations

import builtins
import copy
import functools

import numpy as np
from numpy.exceptions import AxisError

from symgrad.graph.basic import Apply, Op, Variable
from symgrad.tensor.basic import as_tensor_variable, constant, get_scalar_constant_value
from symgrad.tensor.elemwise import DimShuffle, broadcast_like, cast
from symgrad.tensor.type import TensorType, discrete_dtypes, normalize_dtype

__all__ = ["sum", "prod", "mean", "var", "std", "max", "min", "argmax", "argmin", "any", "all",
           "logsumexp", "max_and_argmax"]


# -- axis handling (shared with linalg, special, sort, extra_ops) ---------------------------------

def _label(var) -> str:
    return f"{var.name!r}" if getattr(var, "name", None) else f"an unnamed {var.type}"


def normalize_axis(axis, ndim: int, fname: str, var=None) -> tuple[int, ...]:
    """``axis`` (None, int, negative int, or a sequence of them) as a sorted tuple of
    non-negative ints; None means every axis. Errors name the axis and the ndim."""
    if axis is None:
        return tuple(range(ndim))
    items = list(axis) if isinstance(axis, list | tuple) else [axis]
    out = []
    for a in items:
        if isinstance(a, Variable):
            value = get_scalar_constant_value(a)
            if value is None:
                raise TypeError(f"{fname}: axis must be a constant int, got the symbolic {a}")
            a = value
        if isinstance(a, bool) or not isinstance(a, int | np.integer):
            raise TypeError(f"{fname}: axis must be None, an int or a tuple of ints, got {axis!r}")
        a = int(a)
        if not -ndim <= a < ndim:
            what = f" of {_label(var)}" if var is not None else ""
            raise AxisError(f"{fname}: axis {a} is out of bounds for an array of dimension {ndim}"
                            f"{what} (ndim {ndim}; valid axes are {-ndim}..{ndim - 1})")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{fname}: duplicate value in axis {axis!r}")
    return tuple(sorted(out))


def normalize_one_axis(axis, ndim: int, fname: str, var=None) -> int:
    """A single axis as a non-negative int."""
    if isinstance(axis, list | tuple):
        raise TypeError(f"{fname}: axis must be a single int, got {axis!r}")
    (a,) = normalize_axis(axis, ndim, fname, var)
    return a


def reduced_static_shape(shape, axes, keepdims: bool) -> tuple:
    if keepdims:
        return tuple(1 if k in axes else s for k, s in enumerate(shape))
    return tuple(s for k, s in enumerate(shape) if k not in axes)


def with_props(op: Op, **changes) -> Op:
    """A copy of ``op`` with some props changed (used by batching rules)."""
    new = copy.copy(op)
    new.__dict__.update(changes)
    return new


def expand_reduced(g, axes, ndim: int, keepdims: bool):
    """``g`` (a reduction result over ``axes`` of an ndim-d input) with the reduced axes
    put back as length-1 axes."""
    if keepdims or not axes:
        return g
    it = iter(range(g.ndim))
    order = tuple("x" if k in axes else next(it) for k in range(ndim))
    return DimShuffle(g.ndim, order)(g)


def sum_to_static(g, var):
    """Sum ``g`` over its leading extra axes and over the axes where ``var`` is statically 1
    (static broadcasting only)."""
    if g.ndim > var.ndim:
        g = sum(g, axis=tuple(range(g.ndim - var.ndim)))
    axes = tuple(k for k, (v, s) in enumerate(zip(var.type.shape, g.type.shape))
                 if v == 1 and s != 1)
    if axes:
        g = sum(g, axis=axes, keepdims=True)
    return g


def pad_batch(var, ndim: int):
    """An unbatched operand with leading length-1 axes, for a batched op of ``ndim`` dims."""
    if var.ndim >= ndim:
        return var
    return DimShuffle(var.ndim, ("x",) * (ndim - var.ndim) + tuple(range(var.ndim)))(var)


@functools.lru_cache(maxsize=512)
def _probe(kind: str, dtypes: tuple) -> str:
    args = [np.ones((1,) * (2 if kind == "matmul" else 1), dtype=d) for d in dtypes]
    with np.errstate(all="ignore"):
        if kind == "sum":
            out = np.add.reduce(args[0])
        elif kind == "prod":
            out = np.multiply.reduce(args[0])
        elif kind == "exp":
            out = np.exp(args[0])
        elif kind == "dot":
            out = np.dot(*args)
        elif kind == "matmul":
            out = np.matmul(*args)
        else:  # pragma: no cover
            raise ValueError(kind)
    return normalize_dtype(np.asarray(out).dtype)


def probe_dtype(kind: str, *dtypes) -> str:
    """The dtype numpy gives for ``kind`` applied to arrays of these dtypes."""
    return _probe(kind, tuple(dtypes))


def float_dtype(dtype: str) -> str:
    """Float and complex dtypes stay; integers and bool become float64 (as scipy's
    logsumexp/softmax and numpy's mean do)."""
    return dtype if dtype not in discrete_dtypes else "float64"


# -- the reduction ops ----------------------------------------------------------------------------

class Reduce(Op):
    """Base of the reductions: ``axis`` (sorted tuple of ints) and ``keepdims``."""

    __props__ = ("axis", "keepdims")
    fname = "reduce"
    empty_raises = False

    def __init__(self, axis, keepdims=False):
        self.axis = tuple(int(a) for a in axis)
        self.keepdims = bool(keepdims)

    def __str__(self):
        props = [f"axis={self.axis}"] + (["keepdims=True"] if self.keepdims else [])
        extra = getattr(self, "dtype", None)
        if extra is not None:
            props.append(f"dtype={extra}")
        return f"{type(self).__name__}{{{', '.join(props)}}}"

    def output_dtype(self, x) -> str:
        return x.dtype

    def make_node(self, x):
        x = as_tensor_variable(x)
        for a in self.axis:
            if not 0 <= a < x.ndim:
                raise AxisError(f"{self.fname}: axis {a} is out of bounds for an array of "
                                f"dimension {x.ndim} ({_label(x)})")
        if self.empty_raises and builtins.any(x.type.shape[a] == 0 for a in self.axis):
            raise ValueError(f"{self.fname}: zero-size array to a reduction with no identity "
                             f"({_label(x)} has length 0 along a reduced axis {self.axis}); "
                             "numpy raises here too")
        shape = reduced_static_shape(x.type.shape, self.axis, self.keepdims)
        return Apply(self, [x], [TensorType(self.output_dtype(x), shape)()])

    def numpy_fn(self):
        raise NotImplementedError

    def make_thunk_function(self, node):
        fn = self.numpy_fn()
        axis, keepdims = self.axis, self.keepdims
        dtype = np.dtype(node.outputs[0].type.dtype)

        def run(x):
            out = np.asarray(fn(x, axis=axis, keepdims=keepdims))
            return out if out.dtype == dtype else out.astype(dtype)
        return run


    def vectorize_node(self, node, x):
        return [with_props(self, axis=tuple(a + 1 for a in self.axis))(x)]

    def infer_shape(self, node, input_shapes):
        (shape,) = input_shapes
        return [reduced_static_shape(list(shape), self.axis, self.keepdims)]

    def _expand(self, g, x):
        return expand_reduced(g, self.axis, x.ndim, self.keepdims)


class Sum(Reduce):
    """``np.sum``; ``dtype`` None means numpy's accumulator rule."""

    __props__ = ("axis", "keepdims", "dtype")
    fname = "sum"
    numpy_fn = staticmethod(np.sum)

    def __init__(self, axis, keepdims=False, dtype=None):
        super().__init__(axis, keepdims)
        self.dtype = None if dtype is None else normalize_dtype(dtype)

    def output_dtype(self, x):
        return self.dtype if self.dtype is not None else probe_dtype(self.fname, x.dtype)

    def make_thunk_function(self, node):
        axis, keepdims = self.axis, self.keepdims
        dtype = np.dtype(node.outputs[0].type.dtype)
        explicit = self.dtype is not None
        reduce = self.numpy_fn

        def run(x):
            out = np.asarray(reduce(x, axis=axis, keepdims=keepdims,
                                    dtype=dtype if explicit else None))
            return out if out.dtype == dtype else out.astype(dtype)
        return run

    def pullback(self, inputs, outputs, output_grads):
        (x,), (g,) = inputs, output_grads
        if g is None or x.dtype in discrete_dtypes:
            return [None]
        if g.dtype != x.dtype:
            g = cast(g, x.dtype)
        return [broadcast_like(self._expand(g, x), x)]

    def pushforward(self, inputs, outputs, tangents):
        (_x,), (t,) = inputs, tangents
        if t is None or outputs[0].dtype in discrete_dtypes:
            return [None]
        return [self(t)]


class Prod(Sum):
    """``np.prod``; its pullback is ``g * (product of the other elements)``, division-free."""

    fname = "prod"
    numpy_fn = staticmethod(np.prod)

    def pullback(self, inputs, outputs, output_grads):
        (x,), (g,) = inputs, output_grads
        if g is None or x.dtype in discrete_dtypes:
            return [None]
        if g.dtype != x.dtype:
            g = cast(g, x.dtype)
        return [self._expand(g, x) * exclusive_product(x, self.axis)]

    def pushforward(self, inputs, outputs, tangents):
        (x,), (t,) = inputs, tangents
        if t is None or x.dtype in discrete_dtypes:
            return [None]
        out = sum(t * exclusive_product(x, self.axis), axis=self.axis, keepdims=self.keepdims)
        return [cast(out, outputs[0].dtype)]


def exclusive_product(x, axes):
    """For each element, the product of the *other* elements of its slice over ``axes``
    (same shape as x). Built from cumulative products from both sides (no division), so
    it is exact with zeros and its own derivatives are too.

    Over several axes a1 < ... < am, the other elements of a slice split by the first
    axis at which they differ from the element: group t is the product, along a_t
    except the element's own position, of the products over a_{t+1..m}.
    """
    from symgrad.tensor.extra_ops import exclusive_cumprod_both

    result = None
    inner = x
    for k in reversed(axes):
        term = exclusive_cumprod_both(inner, k)
        result = term if result is None else result * term
        inner = prod(inner, axis=k, keepdims=True)
    if result is None:  # no axes: the product of nothing else is 1
        return broadcast_like(constant(1, dtype=x.dtype), x)
    return result


class Max(Reduce):
    """``np.max``: NaN propagates; an empty reduction raises; ties share the gradient."""

    fname = "max"
    empty_raises = True

    def numpy_fn(self):
        return np.max

    def _mask_and_count(self, x, out, keepdims=True):
        from symgrad.tensor.math import eq

        mask = cast(eq(x, expand_reduced(out, self.axis, x.ndim, self.keepdims)), x.dtype)
        return mask, sum(mask, axis=self.axis, keepdims=keepdims)

    def pullback(self, inputs, outputs, output_grads):
        (x,), (g,) = inputs, output_grads
        if g is None or x.dtype in discrete_dtypes:
            return [None]
        mask, count = self._mask_and_count(x, outputs[0])
        return [mask * (self._expand(g, x) / count)]

    def pushforward(self, inputs, outputs, tangents):
        (x,), (t,) = inputs, tangents
        if t is None or x.dtype in discrete_dtypes:
            return [None]
        mask, count = self._mask_and_count(x, outputs[0], self.keepdims)
        return [sum(t * mask, axis=self.axis, keepdims=self.keepdims) / count]


class Min(Max):
    fname = "min"

    def numpy_fn(self):
        return np.min


class Any(Reduce):
    fname = "any"

    def output_dtype(self, x):
        return "bool"

    def numpy_fn(self):
        return np.any

    def pullback(self, inputs, outputs, output_grads):
        return [None]

    def pushforward(self, inputs, outputs, tangents):
        return [None]


class All(Any):
    fname = "all"

    def numpy_fn(self):
        return np.all


class Argmax(Reduce):
    """``np.argmax`` over one axis, or over several (flattened in order), int64."""

    fname = "argmax"
    empty_raises = True
    numpy_name = "argmax"

    def output_dtype(self, x):
        return "int64"

    def make_thunk_function(self, node):
        axis, keepdims = self.axis, self.keepdims
        name = self.numpy_name
        ndim = node.inputs[0].ndim

        if len(axis) == 1:
            (a,) = axis

            def run(x):
                x = np.asarray(x)
                return np.asarray(getattr(np, name)(x, axis=a, keepdims=keepdims), dtype=np.int64)
            return run
        kept = [k for k in range(ndim) if k not in axis]
        perm = kept + list(axis)

        def run(x):
            x = np.asarray(x)
            if builtins.any(x.shape[a] == 0 for a in axis):
                raise ValueError(f"attempt to get {name} of an empty sequence")
            kept_shape = [x.shape[k] for k in kept]
            flat = x.transpose(perm).reshape(kept_shape + [-1])
            out = getattr(np, name)(flat, axis=-1).astype(np.int64)
            if keepdims:
                out = out.reshape([1 if k in axis else x.shape[k] for k in range(ndim)])
            return np.asarray(out)
        return run

    def pullback(self, inputs, outputs, output_grads):
        return [None]

    def pushforward(self, inputs, outputs, tangents):
        return [None]


class Argmin(Argmax):
    fname = "argmin"
    numpy_name = "argmin"


class LogSumExp(Reduce):
    """``log(sum(exp(x)))`` over ``axis``, computed stably; integer inputs give float64
    (as scipy.special.logsumexp)."""

    fname = "logsumexp"

    def output_dtype(self, x):
        return float_dtype(x.dtype)

    def make_thunk_function(self, node):
        axis, keepdims = self.axis, self.keepdims
        dtype = np.dtype(node.outputs[0].type.dtype)

        def run(x):
            x = np.asarray(x, dtype=dtype)
            m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
            m = np.where(np.isfinite(m), m, 0).astype(dtype, copy=False)
            with np.errstate(divide="ignore"):
                out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
            if not keepdims:
                out = out.reshape([s for k, s in enumerate(out.shape) if k not in axis])
            return np.asarray(out, dtype=dtype)
        return run

    def _softmax(self, x, out):
        from symgrad.tensor.math import exp

        xf = cast(x, out.dtype)
        return exp(xf - expand_reduced(out, self.axis, x.ndim, self.keepdims))

    def pullback(self, inputs, outputs, output_grads):
        (x,), (g,) = inputs, output_grads
        if g is None or x.dtype in discrete_dtypes:
            return [None]
        return [self._expand(g, x) * self._softmax(x, outputs[0])]

    def pushforward(self, inputs, outputs, tangents):
        (x,), (t,) = inputs, tangents
        if t is None or x.dtype in discrete_dtypes:
            return [None]
        return [sum(t * self._softmax(x, outputs[0]), axis=self.axis, keepdims=self.keepdims)]


class ReducedSize(Op):
    """The number of elements of ``x`` over ``axis`` (an int64 scalar); depends only on the
    shape of x."""

    __props__ = ("axis",)

    def __init__(self, axis):
        self.axis = tuple(axis)

    def make_node(self, x):
        x = as_tensor_variable(x)
        return Apply(self, [x], [TensorType("int64", ())()])

    def make_thunk_function(self, node):
        axis = self.axis

        def run(x):
            shape = np.shape(x)
            n = 1
            for a in axis:
                n *= shape[a]
            return np.asarray(n, dtype=np.int64)
        return run


    def connection_pattern(self, node):
        return [False]

    def pullback(self, inputs, outputs, output_grads):
        return [None]

    def pushforward(self, inputs, outputs, tangents):
        return [None]

    def vectorize_node(self, node, x):
        return [ReducedSize(tuple(a + 1 for a in self.axis))(x)]

    def infer_shape(self, node, input_shapes):
        return [()]


def _count(x, axes):
    """The number of reduced elements: a Python int when static, else an int64 scalar."""
    dims = [x.type.shape[a] for a in axes]
    if builtins.all(d is not None for d in dims):
        n = 1
        for d in dims:
            n *= d
        return n
    return ReducedSize(axes)(x)


# -- public functions --------------------------------------------------------------------------

def _reduce(cls, fname, x, axis, keepdims, **kwargs):
    x = as_tensor_variable(x)
    axes = normalize_axis(axis, x.ndim, fname, x)
    return cls(axes, keepdims, **kwargs)(x)


def sum(x, axis=None, dtype=None, keepdims=False, acc_dtype=None):
    """Sum over ``axis`` (None: all), as ``np.sum`` (small ints accumulate in int64).

    >>> import symgrad.tensor as st, numpy as np
    >>> x = st.matrix("x", dtype="int8")
    >>> st.sum(x, axis=0).dtype
    'int64'
    """
    return _reduce(Sum, "sum", x, axis, keepdims, dtype=dtype)


def prod(x, axis=None, dtype=None, keepdims=False, acc_dtype=None, no_zeros_in_input=False):
    """Product over ``axis``, as ``np.prod``; its derivatives are exact with zeros."""
    return _reduce(Prod, "prod", x, axis, keepdims, dtype=dtype)


def max(x, axis=None, keepdims=False):
    """Maximum over ``axis``, as ``np.max`` (NaN propagates; empty raises)."""
    return _reduce(Max, "max", x, axis, keepdims)


def min(x, axis=None, keepdims=False):
    """Minimum over ``axis``, as ``np.min`` (NaN propagates; empty raises)."""
    return _reduce(Min, "min", x, axis, keepdims)


def any(x, axis=None, keepdims=False):
    """Whether any element over ``axis`` is true (bool)."""
    return _reduce(Any, "any", x, axis, keepdims)


def all(x, axis=None, keepdims=False):
    """Whether all elements over ``axis`` are true (bool)."""
    return _reduce(All, "all", x, axis, keepdims)


def argmax(x, axis=None, keepdims=False):
    """Index of the maximum (int64), as ``np.argmax``; several axes count in C order."""
    return _reduce(Argmax, "argmax", x, axis, keepdims)


def argmin(x, axis=None, keepdims=False):
    """Index of the minimum (int64), as ``np.argmin``."""
    return _reduce(Argmin, "argmin", x, axis, keepdims)


def max_and_argmax(x, axis=None, keepdims=False):
    """``[max(x, axis), argmax(x, axis)]``."""
    return [max(x, axis, keepdims), argmax(x, axis, keepdims)]


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x), axis))``, stable for large inputs; its gradient is the softmax.

    >>> import symgrad.tensor as st
    >>> x = st.dvector("x")
    >>> float(logsumexp(x).eval({x: [1000.0, 1000.0]}))  # doctest: +ELLIPSIS
    1000.693...
    """
    return _reduce(LogSumExp, "logsumexp", x, axis, keepdims)


def _float_work_dtypes(x, dtype):
    """(accumulation dtype, result dtype) of numpy's mean/var for x."""
    if dtype is not None:
        dtype = normalize_dtype(dtype)
        return dtype, dtype
    if x.dtype in discrete_dtypes:
        return "float64", "float64"
    if x.dtype == "float16":
        return "float32", "float16"
    return x.dtype, x.dtype


def _divide_by(s, n, dtype):
    if isinstance(n, int | float):
        return s / constant(n, dtype=dtype)
    return s / cast(n, dtype)


def mean(x, axis=None, dtype=None, keepdims=False, acc_dtype=None):
    """Arithmetic mean over ``axis``, as ``np.mean`` (ints give float64)."""
    x = as_tensor_variable(x)
    axes = normalize_axis(axis, x.ndim, "mean", x)
    acc, out = _float_work_dtypes(x, dtype)
    s = Sum(axes, keepdims, acc)(x)
    work = acc if acc not in discrete_dtypes else "float64"
    return cast(_divide_by(cast(s, work), _count(x, axes), work), out)


def var(x, axis=None, ddof=0, keepdims=False, corrected=False):
    """Variance over ``axis`` with ``ddof`` delta degrees of freedom, as ``np.var``."""
    x = as_tensor_variable(x)
    axes = normalize_axis(axis, x.ndim, "var", x)
    acc, out = _float_work_dtypes(x, None)
    xf = cast(x, acc)
    d = xf - mean(xf, axis=axes, keepdims=True)
    ss = sum(d * d, axis=axes, keepdims=keepdims)
    n = _count(x, axes)
    if isinstance(n, int):
        denom = builtins.max(n - ddof, 0)
    else:
        from symgrad.tensor.math import maximum

        denom = maximum(cast(n, acc) - ddof, 0)
    return cast(_divide_by(ss, denom, acc), out)


def std(x, axis=None, ddof=0, keepdims=False, corrected=False):
    """Standard deviation over ``axis``, as ``np.std``."""
    from symgrad.tensor.math import sqrt

    return sqrt(var(x, axis=axis, ddof=ddof, keepdims=keepdims, corrected=corrected))
