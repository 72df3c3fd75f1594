"""Elementwise ops, broadcasting (DimShuffle) and the reduction of gradients to an input's shape.

Every elementwise function is an ``Elemwise`` op around a ``ScalarOp``: a small
record with the numpy implementation and the derivative of the output with
respect to each input (``partials``). From the partials alone the framework
derives the pullback (``gz * d_i``, summed back over broadcast axes), the
pushforward (``sum_i d_i * t_i``) and the batching rule (elementwise ops batch
by broadcasting). An op that needs a special form (pow, for the tutorial's
printed gradient) gives ``pullback`` explicitly.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from symgrad.graph.basic import Apply, Constant, Op
from symgrad.tensor.basic import as_tensor_variable, constant
from symgrad.tensor.type import TensorType, discrete_dtypes, normalize_dtype
from symgrad.tensor.variable import TensorConstant, TensorVariable


class ShapeMismatchError(ValueError):
    """Shapes that cannot broadcast, detected while building a graph."""


@dataclass(frozen=True, eq=False)
class ScalarOp:
    """The description of one elementwise function.

    name      : the op's name (also its identity).
    impl      : "module.attr" of the numpy implementation, resolved on first use,
                or a callable.
    nin       : number of inputs, or -1 for variadic (add, mul).
    partials  : ``partials(inputs, output) -> [d_out/d_input_i or None]``, graphs
                built with tensor ops; None means a zero derivative.
    pullback  : optional ``pullback(inputs, output, gz) -> [grad_i]`` overriding
                the one derived from partials.
    pushforward : optional ``pushforward(inputs, output, tangents) -> tangent``.
    symbol    : infix symbol for printing ("+"), if any.
    output_dtype : optional function of input dtypes; default asks numpy.
    differentiable : False for ops whose derivative is undefined (raise on use).
    """

    name: str
    impl: str | Callable
    nin: int = 1
    partials: Callable | None = None
    pullback: Callable | None = None
    pushforward: Callable | None = None
    symbol: str | None = None
    output_dtype: Callable | None = None
    differentiable: bool = True
    commutative: bool = False
    associative: bool = False
    extra: dict = field(default_factory=dict)

    def __eq__(self, other):
        return isinstance(other, ScalarOp) and self.name == other.name

    def __hash__(self):
        return hash(("ScalarOp", self.name))

    def __repr__(self):
        return self.name

    def __reduce__(self):
        # Records hold lambdas; pickle them by name and look them up again.
        return (scalar_op_by_name, (self.name,))

    @functools.cached_property
    def numpy_impl(self) -> Callable:
        if callable(self.impl):
            return self.impl
        module, _, attr = self.impl.rpartition(".")
        return getattr(importlib.import_module(module), attr)

    def result_dtype(self, inputs) -> str:
        dtypes = [i.dtype for i in inputs]
        if self.output_dtype is not None:
            return normalize_dtype(self.output_dtype(*dtypes))
        return _probe_dtype(self, tuple(
            (_weak_probe(i.dtype) if _is_weak(i) else i.dtype) for i in inputs))


SCALAR_OPS: dict[str, ScalarOp] = {}


def scalar_op_by_name(name: str) -> ScalarOp:
    if name not in SCALAR_OPS and name.startswith("cast{"):
        return cast_scalar_op(name[5:-1])
    if name not in SCALAR_OPS:
        import symgrad.tensor  # noqa: F401  (registers the standard table)
    return SCALAR_OPS[name]


def register_scalar_op(op: ScalarOp) -> ScalarOp:
    SCALAR_OPS[op.name] = op
    return op


def _is_weak(var) -> bool:
    return isinstance(var, TensorConstant) and var.weak


_WEAK_VALUES = {"bool": True, "int": 1, "float": 1.0, "complex": 1.0 + 0j}


def _weak_probe(dtype: str) -> tuple:
    # A tag, not the value itself: 1, 1.0 and True are equal as cache keys.
    kind = np.dtype(dtype).kind
    return ("weak", {"b": "bool", "i": "int", "u": "int", "f": "float", "c": "complex"}[kind])


@functools.lru_cache(maxsize=4096)
def _probe_dtype(scalar_op: ScalarOp, probes: tuple) -> str:
    """Ask numpy which dtype this function gives for these input dtypes."""
    args = [np.ones((1,), dtype=p) if isinstance(p, str) else _WEAK_VALUES[p[1]] for p in probes]
    with np.errstate(all="ignore"):
        try:
            out = scalar_op.numpy_impl(*args)
        except TypeError as exc:
            kinds = ", ".join(p if isinstance(p, str) else f"Python {p[1]}" for p in probes)
            raise TypeError(f"{scalar_op.name} is not defined for inputs of dtype {kinds}: "
                            f"{exc}") from None
    return normalize_dtype(np.asarray(out).dtype)


def broadcast_static_shapes(op_name: str, shapes) -> tuple:
    """The static output shape of broadcasting ``shapes`` (all of equal length)."""
    out = []
    for k, dims in enumerate(zip(*shapes)):
        # (plain loops: this runs for every node built, and allocations here cost GC time)
        known = None
        unknown = False
        for d in dims:
            if d is None:
                unknown = True
            elif d != 1:
                if known is None:
                    known = d
                elif d != known:
                    lengths = sorted({d for d in dims if d is not None and d != 1})
                    raise ShapeMismatchError(
                        f"{op_name}: shapes {' and '.join(_fmt(s) for s in shapes)} cannot "
                        f"broadcast (dimension {k}: {lengths})")
        out.append(known if known is not None else (None if unknown else 1))
    return tuple(out)


def _fmt(shape) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + (
        ",)" if len(shape) == 1 else ")")


def _pad_to_ndim(var, ndim: int):
    """Add leading broadcastable axes so ``var`` has ``ndim`` dimensions."""
    if var.ndim == ndim:
        return var
    if isinstance(var, TensorConstant):
        data = np.asarray(var.data)
        data = data.reshape((1,) * (ndim - data.ndim) + data.shape)
        if not data.flags.writeable and data.dtype == _np_dtype(var.dtype):
            # a view of a constant's read-only data is as private as a copy
            return TensorConstant(TensorType(var.dtype, data.shape), data, weak=var.weak)
        return constant(data, dtype=var.dtype, weak=var.weak)
    return _expand_op(var.ndim, ndim)(var)


@functools.lru_cache(maxsize=64)
def _np_dtype(name: str) -> np.dtype:
    return np.dtype(name)


@functools.lru_cache(maxsize=64)
def _expand_op(ndim: int, to_ndim: int):
    """The DimShuffle adding ``to_ndim - ndim`` leading broadcastable axes (ops are values)."""
    return DimShuffle(ndim, ("x",) * (to_ndim - ndim) + tuple(range(ndim)))


class Elemwise(Op):
    """Apply a ScalarOp elementwise with numpy broadcasting.

    ``inplace`` is a tuple of (output, input) pairs: the output overwrites that
    input's buffer (set only by the in-place rewrite).
    """

    __props__ = ("scalar_op", "inplace")

    def __init__(self, scalar_op: ScalarOp, inplace: tuple = ()):
        self.scalar_op = scalar_op
        self.inplace = tuple(inplace)

    def __str__(self):
        return self.scalar_op.name + ("_inplace" if self.inplace else "")

    def make_node(self, *inputs):
        sop = self.scalar_op
        if sop.nin >= 0 and len(inputs) != sop.nin:
            raise TypeError(f"{sop.name} takes {sop.nin} inputs, got {len(inputs)}")
        # (the hot path of building and rewriting graphs: no generic helpers per input)
        inputs = [i if isinstance(i, _TENSOR_CLASSES) else
                  _weak_float(i) if i.__class__ is float else as_tensor_variable(i)
                  for i in inputs]
        given = [i.type.shape for i in inputs]
        ndim = max(map(len, given))
        first = given[0]
        same = True
        for g in given:
            if g != first:
                same = False
                break
        if same:
            shape = first  # nothing to pad, nothing that could fail to broadcast
        else:
            if any(len(g) != ndim for g in given):
                inputs = [_pad_to_ndim(i, ndim) for i in inputs]
            try:
                shape = broadcast_static_shapes(sop.name, [i.type.shape for i in inputs])
            except ShapeMismatchError as exc:
                if all(len(g) == ndim for g in given):
                    raise
                # name the shapes as given, not as padded with leading 1s
                raise ShapeMismatchError(
                    f"{sop.name}: shapes {' and '.join(_fmt(g) for g in given)} cannot "
                    f"broadcast ({str(exc).rpartition('(')[2]}") from None
        dtype = _result_dtype(sop, inputs)
        ttype = _TYPES.get((dtype, shape))
        if ttype is None:
            ttype = TensorType(dtype, shape)
            if len(_TYPES) > 4096:
                _TYPES.clear()
            _TYPES[(dtype, shape)] = ttype
        return Apply(self, inputs, [TensorVariable(ttype)])

    def make_thunk_function(self, node):
        impl = self.scalar_op.numpy_impl
        dtype = np.dtype(node.outputs[0].type.dtype)
        weak = {k: i.data.reshape(()).item() for k, i in enumerate(node.inputs) if _is_weak(i)}
        nin = len(node.inputs)

        if not weak:
            def run(*values):
                out = impl(*values)
                if out.dtype != dtype:
                    out = out.astype(dtype)
                # ufuncs give numpy scalars for 0-d inputs; results are always arrays
                return out if type(out) is np.ndarray else np.asarray(out)
        else:
            ndim = node.outputs[0].type.ndim

            def run(*values):
                args = [weak.get(k, values[k]) for k in range(nin)]
                out = np.asarray(impl(*args))
                if out.ndim != ndim:  # every array input was a weak scalar
                    out = out.reshape((1,) * (ndim - out.ndim) + out.shape)
                return out if out.dtype == dtype else out.astype(dtype)
        return run


    # -- derivatives -----------------------------------------------------------------
    def _partials(self, inputs, output):
        sop = self.scalar_op
        if not sop.differentiable:
            from symgrad.gradient import NotDifferentiable

            return [NotDifferentiable(self, f"{sop.name} has no derivative")] * len(inputs)
        if sop.partials is None:
            return [None] * len(inputs)
        return sop.partials(inputs, output)

    def pullback(self, inputs, outputs, output_grads, needed=None):
        """``needed`` (optional, one bool per input; see ``symgrad.gradient``): the inputs
        whose gradient the caller uses; the others get None and no graph is built for them
        (the gradient of ``a`` in ``a * x`` when only ``x``'s is asked for)."""
        (gz,) = output_grads
        out = outputs[0]
        if gz is None or out.dtype in discrete_dtypes:
            return [None] * len(inputs)
        if needed is None:
            needed = (True,) * len(inputs)
        sop = self.scalar_op
        if sop.pullback is not None and sop.differentiable:
            if getattr(sop.pullback, "takes_needed", False):
                raw = sop.pullback(inputs, out, gz, needed)
            else:
                raw = sop.pullback(inputs, out, gz)
        else:
            raw = []
            for d, need in zip(self._partials(inputs, out), needed):
                if d is None or not need or not isinstance(d, _TensorLike):
                    raw.append(d if need else None)
                else:
                    raw.append(times_cotangent(gz, d))
        grads = []
        for inp, g, need in zip(inputs, raw, needed):
            if not need:
                grads.append(None)
                continue
            if inp.dtype in discrete_dtypes or g is None or not isinstance(g, _TensorLike):
                grads.append(None if inp.dtype in discrete_dtypes else g)
                continue
            grads.append(sum_to_shape(g, inp, out))
        return grads

    pullback.takes_needed = True

    def pushforward(self, inputs, outputs, tangents):
        out = outputs[0]
        if out.dtype in discrete_dtypes:
            return [None]
        # integer inputs are disconnected (their pullback is None): no tangent flows from them
        tangents = [None if i.dtype in discrete_dtypes else t for i, t in zip(inputs, tangents)]
        if all(t is None for t in tangents):
            return [None]
        if self.scalar_op.pushforward is not None:
            # A rule such as add's returns the tangents' sum, which can be smaller than the
            # output (x + y with only x's (3, 1) tangent, y of shape (1, 4)).
            total = self.scalar_op.pushforward(inputs, out, tangents)
            if total is None or len(inputs) == 1:
                return [total]
            return [broadcast_like(total, out)]
        total = None
        for d, t in zip(self._partials(inputs, out), tangents):
            if t is None:
                continue
            if d is None:
                continue
            if not isinstance(d, _TensorLike):
                from symgrad.gradient import raise_not_differentiable

                raise_not_differentiable(d)
            term = d * t
            total = term if total is None else total + term
        if total is None:
            return [None]
        return [broadcast_like(total, out)]

    def vectorize_node(self, node, *batched_inputs):
        ndim = node.outputs[0].ndim + 1
        padded = [_pad_to_ndim(b, ndim) for b in batched_inputs]
        return [self(*padded)]


class _TensorLikeMeta(type):
    def __instancecheck__(cls, obj):
        return hasattr(obj, "type") and hasattr(obj.type, "dtype")


class _TensorLike(metaclass=_TensorLikeMeta):
    """isinstance(x, _TensorLike): x is a tensor variable (not a marker)."""


_TENSOR_CLASSES = (TensorVariable, TensorConstant)
_TYPES: dict = {}  # (dtype, shape) -> TensorType: types are values, one instance serves all
_DTYPES: dict = {}  # (scalar op, (input dtype, weak)...) -> output dtype


_F64_SCALAR = TensorType("float64", ())


def _weak_float(value: float) -> TensorConstant:
    """``as_tensor_variable(value)`` for a Python float (a weak float64 constant, every digit
    kept), made directly: ``x * 0.5`` is written often."""
    data = np.array(value, dtype=np.float64)
    data.setflags(write=False)
    return TensorConstant(_F64_SCALAR, data, weak=True)


def _result_dtype(sop, inputs) -> str:
    """``sop.result_dtype(inputs)``, memoised on the input dtypes and weakness."""
    kinds = [(i.type.dtype, isinstance(i, TensorConstant) and i.weak) for i in inputs]
    if len(kinds) > 3 and sop.output_dtype is None and kinds.count(kinds[0]) == len(kinds):
        # n identical inputs promote like three in numpy (a 20,000-term product is probed
        # with three one-element arrays, not 20,000)
        kinds = kinds[:3]
        inputs = inputs[:3]
    key = (sop, tuple(kinds))
    dtype = _DTYPES.get(key)
    if dtype is None:
        dtype = sop.result_dtype(inputs)
        if sop.output_dtype is None:  # numpy's answer; a rule may read the config (floatX)
            _DTYPES[key] = dtype
    return dtype


def _as_tensors_with_weak_scalars(inputs):
    """Inputs as tensors; Python numbers become weak constants that never upcast."""
    return [as_tensor_variable(i) for i in inputs]


# -- broadcasting helpers -------------------------------------------------------------------

def provably_same_dims(var, reference) -> tuple[bool, ...]:
    """For each dim, whether ``var`` (broadcast against others into ``reference``) is
    known to have the same length as ``reference`` there."""
    if reference.owner is not None and isinstance(reference.owner.op, Elemwise):
        siblings = reference.owner.inputs
    else:
        siblings = [var]
    result = []
    for k, (v, r) in enumerate(zip(var.type.shape, reference.type.shape)):
        if v is not None and v == r:
            result.append(True)
            continue
        if v == 1:
            result.append(r == 1)
            continue
        # var's dim k is unknown (or >1): equal to the output when every other operand is 1 there
        # or is the very same variable.
        result.append(all(s is var or s.type.shape[k] == 1 for s in siblings))
    return tuple(result)


_ANALYSIS = threading.local()


@contextlib.contextmanager
def shape_analysis():
    """While derivatives are built: one analysis of which dimensions are provably equal
    (:mod:`symgrad.tensor.rewriting.dims`), shared by every ``sum_to_shape`` and
    ``broadcast_like``, so that no SumTo or fill is built where the shapes are the same
    (the rewriter would only delete it again). Nested uses share the outer one."""
    if getattr(_ANALYSIS, "dims", None) is not None:
        yield _ANALYSIS.dims
        return
    import symgrad.tensor.rewriting  # noqa: F401  (registers the rules of every op)
    from symgrad.tensor.rewriting.dims import Dims

    _ANALYSIS.dims = Dims()
    try:
        yield _ANALYSIS.dims
    finally:
        _ANALYSIS.dims = None


def _provably_equal(a, b) -> tuple[bool, ...] | None:
    """Per trailing dimension of ``a``: equal to ``b``'s there (None: no analysis active)."""
    dims = getattr(_ANALYSIS, "dims", None)
    if dims is None:
        return None
    try:
        da, db = dims(a), dims(b)
    except Exception:  # pragma: no cover - an analysis failure only costs a SumTo
        return None
    if da is None or db is None or len(db) < len(da):
        return None
    db = db[len(db) - len(da):]
    return tuple(x == y for x, y in zip(da, db))


def _is_ones(var) -> bool:
    """Whether ``var`` is provably all ones: a one-element constant 1, seen through
    DimShuffles and fills (``second(a, 1.0)``, the cotangent that ``grad`` of a sum starts
    from). A loop over a short chain, not a recursion."""
    while True:
        owner = var.owner
        if owner is None:
            data = getattr(var, "data", None)
            if not isinstance(var, Constant) or getattr(data, "size", 0) != 1:
                return False
            try:
                return bool(np.asarray(data).reshape(()) == 1)
            except (TypeError, ValueError):  # pragma: no cover - an exotic constant
                return False
        op = owner.op
        if isinstance(op, DimShuffle):
            var = owner.inputs[0]
        elif isinstance(op, Elemwise) and op.scalar_op.name == "second":
            var = owner.inputs[1]
        else:
            return False


def times_cotangent(gz, d):
    """``gz * d`` in a pullback; just ``d`` when ``gz`` is provably all ones with ``d``'s
    type and shape (the shape analysis of derivative building proves the shapes equal):
    the product would be removed again by the rewriter (fill sinking, then x * 1 -> x),
    and a sum's gradient multiplies such ones into every term."""
    if (gz.type == d.type and _is_ones(gz)):
        equal = _provably_equal(d, gz)
        if equal is not None and all(equal):
            return d
    return gz * d


def sum_to_shape(g, inp, out=None):
    """Sum the gradient ``g`` of a broadcast result back to the shape of ``inp``."""
    if g.type.shape == inp.type.shape and None not in g.type.shape:
        return g  # the common scalar and static case, first
    if g.ndim > inp.ndim:
        g = g.sum(axis=tuple(range(g.ndim - inp.ndim)))
    reference = out if out is not None else g
    same = provably_same_dims(inp, reference) if out is not None else (False,) * inp.ndim
    static_axes = tuple(k for k, (i, gs) in enumerate(zip(inp.type.shape, g.type.shape))
                        if i == 1 and gs != 1)
    if static_axes:
        g = g.sum(axis=static_axes, keepdims=True)
    if all(same[k] or inp.type.shape[k] == 1 for k in range(inp.ndim)):
        return g
    if g.type.shape == inp.type.shape and None not in g.type.shape:
        return g
    equal = _provably_equal(inp, reference)
    if equal is not None and all(e or same[k] or inp.type.shape[k] == 1
                                 for k, e in enumerate(equal)):
        return g
    return SumTo()(g, inp.shape)


def broadcast_like(value, like):
    """``value`` broadcast to the shape of ``like`` (a no-op when provably the same)."""
    if value.type.shape == like.type.shape and None not in like.type.shape:
        return value
    if value.ndim == like.ndim:
        equal = _provably_equal(value, like)
        if equal is not None and all(equal):
            return value
    from symgrad.tensor.math import second

    return second(like, value)


class SumTo(Op):
    """Sum ``x`` over the axes where ``shape`` has length 1 and x does not (runtime broadcasting)."""

    __props__ = ()

    def make_node(self, x, shape):
        x = as_tensor_variable(x)
        shape = as_tensor_variable(shape)
        if shape.ndim != 1 or shape.type.shape[0] is None:
            raise TypeError(f"SumTo: the target shape needs a static length (a vector such as "
                            f"x.shape), got {shape} of type {shape.type}")
        ndim = int(shape.type.shape[0])
        if ndim != x.ndim:
            raise ValueError(f"SumTo: x has {x.ndim} dims, target shape has {ndim}")
        return Apply(self, [x, shape], [TensorType(x.dtype, (None,) * ndim)()])

    def make_thunk_function(self, node):
        def run(x, shape):
            if x.shape == tuple(shape):
                return x
            axes = tuple(k for k, (a, b) in enumerate(zip(x.shape, shape)) if a != b)
            return np.sum(x, axis=axes, keepdims=True)
        return run


    def connection_pattern(self, node):
        return [True, False]

    def pullback(self, inputs, outputs, output_grads):
        from symgrad.tensor.shape import broadcast_to

        return [broadcast_to(output_grads[0], inputs[0].shape), None]

    def pushforward(self, inputs, outputs, tangents):
        t = tangents[0]
        return [None if t is None else self(t, inputs[1])]

    def vectorize_node(self, node, x, shape):
        from symgrad.graph.vectorize import is_batched
        from symgrad.tensor.shape import concatenate_shape

        if is_batched(node.inputs[1], shape):
            shape = shape[0]  # a batch of target shapes: the rows of one batch share it
        if not is_batched(node.inputs[0], x):
            return [self(x, shape)]  # only the target was batched: the result is the same
        return [self(x, concatenate_shape([x.shape[:1], shape]))]


# -- DimShuffle ----------------------------------------------------------------------------------

class DimShuffle(Op):
    """Reorder, drop (length-1) and insert ('x') axes: ``x.dimshuffle(1, 'x', 0)``."""

    __props__ = ("input_ndim", "new_order")

    def __init__(self, input_ndim: int, new_order):
        self.input_ndim = int(input_ndim)
        self.new_order = tuple(new_order)
        kept = [d for d in self.new_order if d != "x"]
        if len(set(kept)) != len(kept):
            raise ValueError(f"dimshuffle pattern {self.new_order} repeats an axis")
        for d in kept:
            if not isinstance(d, int) or not 0 <= d < self.input_ndim:
                raise ValueError(f"dimshuffle pattern {self.new_order}: axis {d!r} out of range "
                                 f"for {self.input_ndim} dimensions")
        self.drop = tuple(d for d in range(self.input_ndim) if d not in kept)
        self.transposition = tuple(kept)

    def __str__(self):
        return f"DimShuffle{{{','.join(map(str, self.new_order))}}}"

    def make_node(self, x):
        x = as_tensor_variable(x)
        if x.ndim != self.input_ndim:
            raise TypeError(f"DimShuffle{self.new_order} expects {self.input_ndim} dims, "
                            f"got {x} with {x.ndim}")
        for d in self.drop:
            if x.type.shape[d] not in (1, None):
                raise ValueError(f"dimshuffle cannot drop axis {d} of {x} (length "
                                 f"{x.type.shape[d]}); only length-1 axes can be dropped")
        shape = tuple(1 if d == "x" else x.type.shape[d] for d in self.new_order)
        return Apply(self, [x], [TensorType(x.dtype, shape)()])

    @property
    def is_expand_only(self) -> bool:
        return [d for d in self.new_order if d != "x"] == list(range(self.input_ndim))

    def make_thunk_function(self, node):
        drop, perm = self.drop, self.transposition
        new_shape_template = self.new_order

        def run(x):
            x = np.asarray(x)
            if drop:
                for d in drop:
                    if x.shape[d] != 1:
                        raise ValueError(f"dimshuffle: axis {d} has length {x.shape[d]}, "
                                         "only length-1 axes can be dropped")
                x = np.squeeze(x, axis=drop)
                remaining = [d for d in range(x.ndim + len(drop)) if d not in drop]
                order = [remaining.index(p) for p in perm]
            else:
                order = list(perm)
            if order != list(range(len(order))):
                x = x.transpose(order)
            shape = list(x.shape)
            it = iter(shape)
            new_shape = [1 if d == "x" else next(it) for d in new_shape_template]
            return x.reshape(new_shape)
        return run


    def infer_shape(self, node, input_shapes):
        (ishape,) = input_shapes
        return [[1 if d == "x" else ishape[d] for d in self.new_order]]

    def pullback(self, inputs, outputs, output_grads):
        (x,) = inputs
        (gz,) = output_grads
        if gz is None or x.dtype in discrete_dtypes:
            return [None]
        # Undo: drop the inserted axes (sum over them, they are length 1), then transpose back.
        kept_positions = [k for k, d in enumerate(self.new_order) if d != "x"]
        inserted = [k for k, d in enumerate(self.new_order) if d == "x"]
        g = gz
        if inserted:
            g = g.sum(axis=tuple(inserted)) if any(
                gz.type.shape[k] != 1 for k in inserted) else DimShuffle(
                gz.ndim, tuple(kept_positions))(gz)
        # g now has axes in order self.transposition (the kept input axes).
        order = []
        for d in range(self.input_ndim):
            if d in self.drop:
                order.append("x")
            else:
                order.append(self.transposition.index(d))
        return [DimShuffle(g.ndim, tuple(order))(g)]

    def pushforward(self, inputs, outputs, tangents):
        (t,) = tangents
        return [None if t is None else self(t)]

    def vectorize_node(self, node, x):
        order = (0,) + tuple("x" if d == "x" else d + 1 for d in self.new_order)
        return [DimShuffle(self.input_ndim + 1, order)(x)]


def cast(x, dtype):
    """``x`` converted to ``dtype`` (numpy's astype)."""
    x = as_tensor_variable(x)
    dtype = normalize_dtype(dtype)
    if x.dtype == dtype:
        return x
    return Elemwise(cast_scalar_op(dtype))(x)


@functools.cache
def cast_scalar_op(dtype: str) -> ScalarOp:
    target = np.dtype(dtype)

    def impl(x):
        return np.asarray(x).astype(target)

    def partials(inputs, output):
        (x,) = inputs
        if dtype in discrete_dtypes:
            return [None]
        return [constant(1, dtype=dtype, weak=True)]

    def pullback(inputs, output, gz):
        (x,) = inputs
        if x.dtype in discrete_dtypes or dtype in discrete_dtypes:
            return [None]
        return [cast(gz, x.dtype)]

    def pushforward(inputs, output, tangents):
        (t,) = tangents
        return None if t is None or dtype in discrete_dtypes else cast(t, dtype)

    return register_scalar_op(ScalarOp(
        f"cast{{{dtype}}}", impl, 1, partials=partials, pullback=pullback,
        pushforward=pushforward,
        output_dtype=lambda _d: dtype, extra={"dtype": dtype},
    ))
