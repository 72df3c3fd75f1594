"""The JAX backend: the whole rewritten graph traced into one function compiled with ``jax.jit``.

``function(..., mode="JAX")`` (or ``Mode(backend="jax")``) selects it. Each op class
maps to a *maker* in a dispatch table (:func:`register`); Elemwise nodes are looked
up a second time by their ScalarOp name (:data:`SCALAR_FUNCS`). A maker receives
the op and the Apply node once, at compile time, and returns the function that the
traced program calls with JAX values.

Static values. JAX compiles for fixed shapes, so values that decide a shape (the
target of ``reshape``/``alloc``, ``arange`` bounds, slice bounds, boolean masks,
the number of scan steps, ...) must be known while tracing. The backend finds them
at compile time: a node whose output such a position needs is evaluated with its
numpy implementation during tracing (the inputs are then constants, shapes of
traced arrays, or static arguments), and ``shape(x)`` of a traced array is read
from its static shape. An integer function input (at most one dimension) that a
shape depends on becomes a static argument of ``jax.jit`` (one compilation per
distinct value). Anything else (a shape computed from float data, a boolean mask
of traced values) raises :class:`JAXBackendError` naming the op, at compile time.

Boundary. The compiled function takes and returns numpy arrays (outputs are
``np.asarray`` of the JAX results: on the CPU, read-only views without a copy).
:func:`device_function` gives a callable that keeps JAX arrays (on a GPU, or
sharded over several devices) as they are, for inputs, outputs and shared
variables alike.

Importing this module turns on ``jax_enable_x64`` so that float64 stays float64.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

try:
    import jax
    import jax.numpy as jnp
    from jax import lax
except ImportError as _exc:  # pragma: no cover - exercised only without jax
    raise ImportError("mode='JAX' needs jax: pip install 'jax[cpu]' (or symgrad[jax])") from _exc

from symgrad.graph.basic import Constant

jax.config.update("jax_enable_x64", True)

__all__ = ["compile_fgraph", "register", "register_scalar", "device_function", "JAXBackendError",
           "JAXFunction", "SCALAR_FUNCS"]


class JAXBackendError(NotImplementedError):
    """A graph the JAX backend cannot compile (the message names the op and why)."""


# -- the dispatch tables ----------------------------------------------------------------------------

_MAKERS: dict[type, object] = {}
_STATIC: dict[type, object] = {}
_ALWAYS_STATIC: set[type] = set()


def register(*op_classes, static=None, always_static=False):
    """Register ``maker(op, node) -> fn(*input_values)`` for these op classes.

    ``static(node) -> positions`` names the inputs that must be known while tracing
    (shapes, axes, counts); ``always_static`` marks ops whose result depends only on
    static shapes (their maker returns numpy values).
    """
    def deco(maker):
        for cls in op_classes:
            _MAKERS[cls] = maker
            if static is not None:
                _STATIC[cls] = static
            if always_static:
                _ALWAYS_STATIC.add(cls)
        return maker
    return deco


def _lookup(table, op):
    for cls in type(op).__mro__:
        if cls in table:
            return table[cls]
    return None


def _static_positions(node) -> tuple:
    fn = _lookup(_STATIC, node.op)
    return tuple(fn(node)) if fn is not None else ()


def _is_always_static(op) -> bool:
    return any(cls in _ALWAYS_STATIC for cls in type(op).__mro__)


def _describe(op) -> str:
    return f"{op} (class {type(op).__module__}.{type(op).__qualname__})"


def _funcify(node):
    maker = _lookup(_MAKERS, node.op)
    if maker is None:
        raise JAXBackendError(
            f"the JAX backend has no implementation of {_describe(node.op)}; register one "
            "with symgrad.backends.jax.register(OpClass) or use another mode")
    return maker(node.op, node)


# -- elementwise functions --------------------------------------------------------------------------

def _variadic(fn):
    def run(*xs):
        out = xs[0]
        for x in xs[1:]:
            out = fn(out, x)
        return out
    return run


def _second(a, b):
    shape = jnp.broadcast_shapes(jnp.shape(a), jnp.shape(b))
    return jnp.broadcast_to(b, shape)


def _erfcinv(y):
    from jax.scipy.special import ndtri

    return -ndtri(y / 2) / np.sqrt(2.0)


def _polygamma(n, x):
    from jax.scipy.special import polygamma

    return polygamma(jnp.asarray(n).astype(jnp.int64) if not isinstance(n, int) else n, x)


def _jss(name):
    def run(*xs):
        import jax.scipy.special as jss

        return getattr(jss, name)(*xs)
    run.__name__ = name
    return run


def _true_div(a, b):
    return jnp.true_divide(a, b)


SCALAR_FUNCS: dict[str, object] = {
    "add": _variadic(jnp.add), "sub": jnp.subtract, "mul": _variadic(jnp.multiply),
    "true_div": _true_div, "floor_div": jnp.floor_divide, "int_div": jnp.floor_divide,
    "mod": jnp.mod, "pow": jnp.power, "neg": jnp.negative, "abs": jnp.abs, "sign": jnp.sign,
    "sqr": jnp.square, "sqrt": jnp.sqrt, "reciprocal": lambda x: jnp.true_divide(1, x),
    "maximum": jnp.maximum, "minimum": jnp.minimum,
    "clip": lambda x, lo, hi: jnp.minimum(jnp.maximum(x, lo), hi),
    "exp": jnp.exp, "exp2": jnp.exp2, "expm1": jnp.expm1, "log": jnp.log, "log2": jnp.log2,
    "log10": jnp.log10, "log1p": jnp.log1p,
    "sin": jnp.sin, "cos": jnp.cos, "tan": jnp.tan, "arcsin": jnp.arcsin, "arccos": jnp.arccos,
    "arctan": jnp.arctan, "arctan2": jnp.arctan2, "sinh": jnp.sinh, "cosh": jnp.cosh,
    "tanh": jnp.tanh, "arcsinh": jnp.arcsinh, "arccosh": jnp.arccosh, "arctanh": jnp.arctanh,
    "sigmoid": lambda x: jax.nn.sigmoid(x), "softplus": lambda x: jnp.logaddexp(0, x),
    "erf": _jss("erf"), "erfc": _jss("erfc"), "erfinv": _jss("erfinv"), "erfcinv": _erfcinv,
    "gamma": _jss("gamma"), "gammaln": _jss("gammaln"), "digamma": _jss("digamma"),
    "polygamma": _polygamma,
    "floor": jnp.floor, "ceil": jnp.ceil, "trunc": jnp.trunc, "round": jnp.round,
    "round_half_to_even": jnp.round,
    "eq": jnp.equal, "neq": jnp.not_equal, "lt": jnp.less, "le": jnp.less_equal,
    "gt": jnp.greater, "ge": jnp.greater_equal, "and_": jnp.bitwise_and, "or_": jnp.bitwise_or,
    "xor": jnp.bitwise_xor, "invert": jnp.invert, "isnan": jnp.isnan, "isinf": jnp.isinf,
    "isfinite": jnp.isfinite, "switch": jnp.where, "second": _second,
    "identity": lambda x: x,
}


def register_scalar(name: str, fn=None):
    """Register the JAX function of the ScalarOp named ``name`` (usable as a decorator)."""
    if fn is None:
        return lambda f: register_scalar(name, f)
    SCALAR_FUNCS[name] = fn
    return fn


def scalar_function(scalar_op):
    """The JAX function of a ScalarOp (casts are generated), or a JAXBackendError."""
    name = scalar_op.name
    if name in SCALAR_FUNCS:
        return SCALAR_FUNCS[name]
    if name.startswith("cast{"):
        dtype = np.dtype(name[5:-1])
        return lambda x: jnp.asarray(x).astype(dtype)
    raise JAXBackendError(
        f"the JAX backend has no implementation of the elementwise function {name!r}; register "
        "one with symgrad.backends.jax.register_scalar(name, fn)")


def _weak_values(node):
    from symgrad.tensor.elemwise import _is_weak

    return {k: i.data.reshape(()).item() for k, i in enumerate(node.inputs) if _is_weak(i)}


def _fix(out, dtype, ndim):
    out = jnp.asarray(out)
    if out.dtype != dtype:
        out = out.astype(dtype)
    if out.ndim != ndim:
        out = out.reshape((1,) * (ndim - out.ndim) + out.shape)
    return out


def elemwise_function(node, fn=None):
    """``fn`` applied to a node's inputs with symgrad's dtype rules (weak Python scalars)."""
    fn = fn or scalar_function(node.op.scalar_op)
    dtype = np.dtype(node.outputs[0].type.dtype)
    ndim = node.outputs[0].type.ndim
    weak = _weak_values(node)
    nin = len(node.inputs)
    if not weak:
        return lambda *xs: _fix(fn(*xs), dtype, ndim)

    def run(*xs):
        return _fix(fn(*[weak.get(k, xs[k]) for k in range(nin)]), dtype, ndim)
    return run


def _register_tensor_ops():
    import importlib

    def mod(name):  # (symgrad.tensor's attributes shadow some module names: shape, sort)
        return importlib.import_module(f"symgrad.tensor.{name}")

    creation, elemwise, extra_ops, linalg = (mod(n) for n in ("creation", "elemwise", "extra_ops",
                                                             "linalg"))
    reduction, shape, sort, special, sub = (mod(n) for n in ("reduction", "shape", "sort",
                                                            "special", "subtensor"))

    @register(elemwise.Elemwise)
    def _elemwise(op, node):
        return elemwise_function(node)

    @register(elemwise.DimShuffle)
    def _dimshuffle(op, node):
        drop, perm, order = op.drop, op.transposition, op.new_order
        remaining = [d for d in range(op.input_ndim) if d not in drop]
        axes = [remaining.index(p) for p in perm]

        def run(x):
            x = jnp.asarray(x)
            if drop:
                x = jnp.squeeze(x, axis=drop)
            if axes != list(range(len(axes))):
                x = jnp.transpose(x, axes)
            it = iter(x.shape)
            return x.reshape([1 if d == "x" else next(it) for d in order])
        return run

    @register(elemwise.SumTo, static=lambda node: (1,))
    def _sum_to(op, node):
        def run(x, shape):
            target = tuple(int(s) for s in shape)
            if jnp.shape(x) == target:
                return x
            axes = tuple(k for k, (a, b) in enumerate(zip(jnp.shape(x), target)) if a != b)
            return jnp.sum(x, axis=axes, keepdims=True)
        return run

    # -- shape ops: static results read from static shapes
    @register(shape.Shape, always_static=True)
    def _shape(op, node):
        return lambda x: np.array(np.shape(x), dtype=np.int64)

    @register(shape.Shape_i, always_static=True)
    def _shape_i(op, node):
        i = op.i
        return lambda x: np.array(np.shape(x)[i], dtype=np.int64)

    @register(reduction.ReducedSize, always_static=True)
    def _reduced_size(op, node):
        axis = op.axis
        return lambda x: np.array(math.prod(np.shape(x)[a] for a in axis), dtype=np.int64)

    @register(shape.Reshape, static=lambda node: (1,))
    def _reshape(op, node):
        return lambda x, shp: jnp.reshape(x, tuple(int(s) for s in shp))

    @register(shape.Join)
    def _join(op, node):
        axis, dtype = op.axis, np.dtype(node.outputs[0].type.dtype)
        return lambda *xs: jnp.concatenate([jnp.asarray(x, dtype) for x in xs], axis=axis)

    @register(shape.Split, static=lambda node: (1,))
    def _split(op, node):
        axis = op.axis

        def run(x, splits):
            cuts = np.cumsum(np.asarray(splits))[:-1]
            return tuple(jnp.split(x, [int(c) for c in cuts], axis=axis))
        return run

    @register(shape.Alloc, static=lambda node: (1,))
    def _alloc(op, node):
        dtype = np.dtype(node.outputs[0].type.dtype)
        return lambda v, shp: jnp.broadcast_to(jnp.asarray(v, dtype), tuple(int(s) for s in shp))

    @register(shape.SpecifyShape)
    def _specify_shape(op, node):
        mask = op.mask

        def run(x, *dims):
            it = iter(dims)
            for k, m in enumerate(mask):
                if not m:
                    continue
                d = next(it)
                if isinstance(d, np.ndarray | np.generic | int) and int(d) != jnp.shape(x)[k]:
                    raise ValueError(f"specify_shape: dimension {k} has length "
                                     f"{jnp.shape(x)[k]}, expected {int(d)}")
            return x
        return run

    @register(creation.ARange, static=lambda node: (0, 1, 2))
    def _arange(op, node):
        dtype = np.dtype(op.dtype)

        def run(start, stop, step):
            if step == 0:
                raise ValueError("arange: step must not be zero")
            return jnp.asarray(np.arange(start, stop, step, dtype=dtype))
        return run

    @register(creation.Eye, static=lambda node: (0, 1, 2))
    def _eye(op, node):
        dtype = np.dtype(op.dtype)
        return lambda n, m, k: jnp.eye(int(n), int(m), int(k), dtype=dtype)

    @register(creation.Repeat, static=lambda node: (1,))
    def _repeat(op, node):
        axis = op.axis

        def run(x, repeats):
            r = np.asarray(repeats)
            total = int(r.sum()) if r.ndim else int(r) * jnp.shape(x)[axis]
            return jnp.repeat(x, r, axis=axis, total_repeat_length=total)
        return run

    @register(creation.RepeatGrad, static=lambda node: (1,))
    def _repeat_grad(op, node):
        axis = op.axis

        def run(g, repeats):
            r = np.asarray(repeats)
            if int(r.sum()) != jnp.shape(g)[axis]:
                raise ValueError(f"repeat gradient: counts {list(r)} do not sum to the length "
                                 f"{jnp.shape(g)[axis]} of axis {axis}")
            ids = np.repeat(np.arange(len(r)), r)
            out = jax.ops.segment_sum(jnp.moveaxis(g, axis, 0), ids, num_segments=len(r))
            return jnp.moveaxis(out, 0, axis)
        return run

    # -- reductions
    simple = {reduction.Max: jnp.max, reduction.Min: jnp.min, reduction.Any: jnp.any,
              reduction.All: jnp.all}

    @register(reduction.Reduce)
    def _reduce(op, node):
        fn = next((simple[cls] for cls in type(op).__mro__ if cls in simple), None)
        if fn is None:
            raise JAXBackendError(f"the JAX backend has no implementation of {_describe(op)}")
        axis, keepdims = op.axis, op.keepdims
        dtype = np.dtype(node.outputs[0].type.dtype)
        return lambda x: jnp.asarray(fn(x, axis=axis, keepdims=keepdims)).astype(dtype)

    @register(reduction.Sum)
    def _sum(op, node):
        fn = jnp.prod if isinstance(op, reduction.Prod) else jnp.sum
        axis, keepdims = op.axis, op.keepdims
        dtype = np.dtype(node.outputs[0].type.dtype)
        acc = dtype if op.dtype is not None else None
        return lambda x: fn(x, axis=axis, keepdims=keepdims, dtype=acc).astype(dtype)

    @register(reduction.Argmax)
    def _argmax(op, node):
        fn = jnp.argmin if isinstance(op, reduction.Argmin) else jnp.argmax
        axis, keepdims = op.axis, op.keepdims
        ndim = node.inputs[0].ndim
        if len(axis) == 1:
            return lambda x: fn(x, axis=axis[0], keepdims=keepdims).astype(np.int64)
        kept = [k for k in range(ndim) if k not in axis]
        perm = kept + list(axis)

        def run(x):
            shape = jnp.shape(x)
            flat = jnp.transpose(x, perm).reshape([shape[k] for k in kept] + [-1])
            out = fn(flat, axis=-1).astype(np.int64)
            if keepdims:
                out = out.reshape([1 if k in axis else shape[k] for k in range(ndim)])
            return out
        return run

    def _shift_max(x, axis, dtype):
        x = jnp.asarray(x, dtype)
        m = jnp.max(x, axis=axis, keepdims=True, initial=-np.inf)
        return x - jnp.where(jnp.isfinite(m), m, 0).astype(dtype), m

    @register(reduction.LogSumExp)
    def _logsumexp(op, node):
        axis, keepdims = op.axis, op.keepdims
        dtype = np.dtype(node.outputs[0].type.dtype)

        def run(x):
            z, m = _shift_max(x, axis, dtype)
            m = jnp.where(jnp.isfinite(m), m, 0).astype(dtype)
            out = jnp.log(jnp.sum(jnp.exp(z), axis=axis, keepdims=True)) + m
            return out if keepdims else jnp.squeeze(out, axis=axis)
        return run

    @register(special.Softmax)
    def _softmax(op, node):
        axis, dtype = op.axis, np.dtype(node.outputs[0].type.dtype)

        def run(x):
            e = jnp.exp(_shift_max(x, axis, dtype)[0])
            return e / jnp.sum(e, axis=axis, keepdims=True)
        return run

    @register(special.LogSoftmax)
    def _log_softmax(op, node):
        axis, dtype = op.axis, np.dtype(node.outputs[0].type.dtype)

        def run(x):
            z = _shift_max(x, axis, dtype)[0]
            return z - jnp.log(jnp.sum(jnp.exp(z), axis=axis, keepdims=True))
        return run

    # -- linear algebra
    def _typed(fn, node):
        dtype = np.dtype(node.outputs[0].type.dtype)
        return lambda *xs: jnp.asarray(fn(*xs)).astype(dtype)

    register(linalg.Dot)(lambda op, node: _typed(jnp.dot, node))
    register(linalg.MatMul)(lambda op, node: _typed(jnp.matmul, node))
    register(linalg.TensorDot)(lambda op, node: _typed(
        lambda a, b: jnp.tensordot(a, b, axes=(list(op.axes_a), list(op.axes_b))), node))
    register(linalg.Einsum)(lambda op, node: _typed(
        lambda *xs: jnp.einsum(op.subscripts, *xs), node))

    from symgrad.tensor.rewriting.linalg import _ScaledIdentityDot, scaled_identity_parts

    @register(_ScaledIdentityDot, static=lambda node: (0,))
    def _scaled_identity_dot(op, node):
        # rows[:, None] * W in O(n^2); the product itself (run only then, under lax.cond)
        # where that result is not finite: the same values
        dtype = np.dtype(node.outputs[0].type.dtype)
        wdim = node.inputs[-1].ndim

        def run(n, *rows_and_w):
            *rows, w = rows_and_w
            fast, exact = scaled_identity_parts(jnp, int(n), rows, w, wdim, dtype)
            if fast is None:
                return exact()
            return jax.lax.cond(jnp.isfinite(jnp.sum(fast)), lambda: fast, exact)
        return run

    # -- sorting and gather/scatter along an axis
    @register(sort.Sort)
    def _sort(op, node):
        axis = op.axis
        return lambda x: jnp.sort(x, axis=axis)

    @register(sort.ArgSort)
    def _argsort(op, node):
        axis = op.axis
        return lambda x: jnp.argsort(x, axis=axis, stable=True).astype(np.int64)

    @register(sort.TakeAlongAxis)
    def _take_along(op, node):
        axis = op.axis
        return lambda x, idx: jnp.take_along_axis(jnp.asarray(x), jnp.asarray(idx), axis=axis)

    @register(sort.ScatterAlongAxis)
    def _scatter_along(op, node):
        axis = op.axis
        dtype = np.dtype(node.outputs[0].type.dtype)

        def run(like, idx, values):
            shapes = [jnp.shape(a) for a in (like, idx, values)]
            others = jnp.broadcast_shapes(*[
                tuple(1 if k == axis else s for k, s in enumerate(sh)) for sh in shapes])
            idx_shape = list(others)
            idx_shape[axis] = shapes[1][axis]
            idx = jnp.broadcast_to(idx, idx_shape)
            values = jnp.broadcast_to(jnp.asarray(values, dtype), idx_shape)
            out_shape = list(others)
            out_shape[axis] = shapes[0][axis]
            index = [lax.broadcasted_iota(np.int64, idx_shape, k) for k in range(len(idx_shape))]
            index[axis] = idx
            return jnp.zeros(out_shape, dtype).at[tuple(index)].add(values)
        return run

    # -- cumulative ops
    @register(extra_ops.CumOp)
    def _cumop(op, node):
        fn = jnp.cumsum if op.mode == "add" else jnp.cumprod
        axis, reverse = op.axis, op.reverse
        dtype = np.dtype(node.outputs[0].type.dtype)

        def run(x):
            if reverse:
                return jnp.flip(fn(jnp.flip(x, axis), axis=axis, dtype=dtype), axis)
            return fn(x, axis=axis, dtype=dtype)
        return run

    @register(extra_ops.Shift)
    def _shift(op, node):
        axis, off, fill = op.axis, op.offset, op.fill
        dtype = np.dtype(node.outputs[0].type.dtype)

        def run(x):
            x = jnp.asarray(x, dtype)
            n = x.shape[axis]
            k = min(abs(off), n)
            pad_shape = list(x.shape)
            pad_shape[axis] = k
            pad = jnp.full(pad_shape, fill, dtype)
            if off >= 0:
                return jnp.concatenate([pad, lax.slice_in_dim(x, 0, n - k, axis=axis)], axis)
            return jnp.concatenate([lax.slice_in_dim(x, k, n, axis=axis), pad], axis)
        return run

    @register(extra_ops.LinearRecurrence)
    def _recurrence(op, node):
        axis, reverse = op.axis, op.reverse
        dtype = np.dtype(node.outputs[0].type.dtype)

        def combine(left, right):
            a1, b1 = left
            a2, b2 = right
            return a1 * a2, a2 * b1 + b2

        def run(a, b):
            a, b = jnp.broadcast_arrays(jnp.asarray(a, dtype), jnp.asarray(b, dtype))
            return lax.associative_scan(combine, (a, b), reverse=reverse, axis=axis)[1]
        return run

    # -- indexing
    def _index_plan(op):
        """(static positions among the index inputs, builder(vals) -> index tuple)."""
        plan, static, k = [], [], 0
        for e in op.idx_list:
            if isinstance(e, tuple):
                flags = e[1:]
                plan.append(("s", flags))
                for has in flags:
                    if has:
                        static.append(k)
                        k += 1
            elif e in ("i", "a"):
                plan.append((e, None))
                k += 1
            else:
                plan.append((e, None))

        def build(vals):
            out, j = [], 0
            for kind, flags in plan:
                if kind == "s":
                    bounds = []
                    for has in flags:
                        bounds.append(int(vals[j]) if has else None)
                        j += has
                    out.append(slice(*bounds))
                elif kind in ("i", "a"):
                    v = vals[j]
                    j += 1
                    if isinstance(v, np.ndarray) and v.ndim == 0 and kind == "i":
                        v = int(v)
                    out.append(v)
                elif kind == "n":
                    out.append(None)
                else:
                    out.append(Ellipsis)
            return tuple(out)
        return static, build

    def _index_static(node, first):
        static, _ = _index_plan(node.op)
        pos = [first + k for k in static]
        for k, v in enumerate(node.inputs[first:]):
            if v.dtype == "bool":
                pos.append(first + k)
        return pos

    @register(sub.Subtensor, static=lambda node: _index_static(node, 1))
    def _subtensor(op, node):
        _, build = _index_plan(op)
        return lambda x, *vals: jnp.asarray(x)[build(vals)]

    @register(sub.IncSubtensor, static=lambda node: _index_static(node, 2))
    def _inc_subtensor(op, node):
        _, build = _index_plan(op)
        set_ = op.set_instead_of_inc
        dtype = np.dtype(node.outputs[0].type.dtype)

        advanced = op.advanced

        def run(x, y, *vals):
            idx = build(vals)
            y = jnp.asarray(y, dtype)
            if not advanced:
                padded = _padded_update(jnp.asarray(x), y, idx, set_)
                if padded is not None:
                    return padded
            ref = jnp.asarray(x).at[idx]
            return ref.set(y) if set_ else ref.add(y)
        return run


def _padded_update(x, y, idx, set_):
    """``x`` with ``x[idx]`` increased by (or set to) ``y``, for a basic index of static slices
    and integers: ``x + pad(y)`` (or a select), which XLA fuses with its neighbours (a
    scatter would not be). None when the index is not of that kind."""
    shape = jnp.shape(x)
    entries = [e for e in idx if e is not Ellipsis]
    if len(entries) > len(shape) or any(e is None for e in entries):
        return None
    config, region, flips, int_axes = [], [], [], []
    for axis, n in enumerate(shape):
        e = entries[axis] if axis < len(entries) else slice(None)
        if isinstance(e, slice):
            start, stop, step = e.indices(n)
            count = len(range(start, stop, step))
            if count == 0:
                return x
            if step < 0:
                flips.append(len(region))
                start, step = start + (count - 1) * step, -step
            last = start + (count - 1) * step
            config.append((start, n - 1 - last, step - 1))
            region.append(count)
        elif isinstance(e, int | np.integer):
            i = int(e) + n if int(e) < 0 else int(e)
            if not 0 <= i < n:
                return None
            config.append((i, n - 1 - i, 0))
            int_axes.append(axis)
        else:  # a traced integer index
            return None
    y = jnp.broadcast_to(y, region)
    if flips:
        y = jnp.flip(y, axis=flips)
    if int_axes:
        y = jnp.expand_dims(y, int_axes)
    zero = jnp.zeros((), x.dtype)
    if not set_:
        return x + lax.pad(y, zero, config)
    mask = lax.pad(jnp.ones(y.shape, bool), jnp.zeros((), bool), config)
    return jnp.where(mask, lax.pad(y, zero, config), x)


def _fused_function(op, node):
    """A FusedElemwise: its scalar program, step by step, each step cast to its dtype."""
    steps = []
    for sop, args, dtype in op.program.steps:
        steps.append((scalar_function(sop), args, np.dtype(dtype)))
    outs = op.program.outputs
    ndims = [o.type.ndim for o in node.outputs]

    def run(*xs):
        results = []
        for fn, args, dtype in steps:
            vals = []
            for a in args:
                if a[0] == "i":
                    vals.append(xs[a[1]])
                elif a[0] == "s":
                    vals.append(results[a[1]])
                elif a[0] == "w":
                    vals.append(a[1])
                else:
                    vals.append(np.asarray(a[1], dtype=a[2]))
            out = jnp.asarray(fn(*vals))
            results.append(out if out.dtype == dtype else out.astype(dtype))
        out = [results[o] for o in outs]
        out = [r if r.ndim == nd else r.reshape((1,) * (nd - r.ndim) + r.shape)
               for r, nd in zip(out, ndims)]
        return out[0] if len(out) == 1 else tuple(out)
    return run


def _register_other_ops():
    from symgrad.gradient import GradientModifier
    from symgrad.graph.vectorize import BatchLoop

    register(GradientModifier)(lambda op, node: (lambda x: x))
    try:
        from symgrad.tensor.fusion import FusedElemwise
    except ImportError:  # pragma: no cover - before the fusion op exists
        pass
    else:
        register(FusedElemwise)(_fused_function)

    @register(BatchLoop)
    def _batch_loop(op, node):
        from symgrad.tensor.type import TensorType

        core_inputs = [TensorType(i.dtype, i.type.shape[1:])() if b else i
                       for i, b in zip(node.inputs, op.batched)]
        core_node = op.core_op.make_node(*core_inputs)
        if _static_positions(core_node):
            raise JAXBackendError(f"the JAX backend cannot batch {_describe(op.core_op)}: it "
                                  "needs static inputs")
        fn = _funcify(core_node)
        nout = len(node.outputs)

        def core(*xs):
            out = fn(*xs)
            return out if nout > 1 else (out,)
        vm = jax.vmap(core, in_axes=[0 if b else None for b in op.batched])
        return lambda *xs: vm(*xs) if nout > 1 else vm(*xs)[0]


# -- scan ---------------------------------------------------------------------------------------------

class _Ragged:
    """An array whose leading axis is padded: only its first ``length`` rows are valid (the
    outputs of a scan with a stop condition, whose length is known only after running)."""

    __slots__ = ("array", "length")

    def __init__(self, array, length):
        self.array = array
        self.length = length


def _scan_static(node):
    """n_steps, and the non-sequences that decide shapes inside the step function."""
    op = node.op
    info = op.info
    inner = _inner_program(op)
    first_nonseq = info.n_inner_seq_inputs + info.n_inner_state_inputs
    outer_first = 1 + info.n_seqs + info.n_states
    positions = [] if info.infer_steps else [0]
    positions += [outer_first + k - first_nonseq for k in sorted(inner.static_inputs)]
    return positions


def _inner_program(op):
    cached = getattr(op, "_jax_inner_program", None)
    if cached is not None:
        return cached
    from symgrad.compile.mode import Mode
    from symgrad.compile.pipeline import rewrite_graph
    from symgrad.graph.fgraph import FunctionGraph

    fgraph = FunctionGraph(op.inner_inputs, op.inner_outputs, clone=True)
    n = len(fgraph.inputs)
    fgraph = rewrite_graph(fgraph, Mode("JAX"), n_explicit=n, mutable=[False] * n)
    info = op.info
    first_nonseq = info.n_inner_seq_inputs + info.n_inner_state_inputs
    program = _Program(fgraph, what=f"the step function of {op}", allow_static_args=False,
                       passed_static=range(first_nonseq, n))
    try:
        op._jax_inner_program = program
    except AttributeError:  # pragma: no cover
        pass
    return program


def _register_scan():
    try:
        from symgrad.scan.op import Scan
    except ImportError:  # pragma: no cover
        return

    @register(Scan, static=_scan_static)
    def _scan(op, node):
        inner = _inner_program(op)
        info = op.info
        if info.as_while:
            return _while_scan(op, node, inner)
        return _lax_scan(op, node, inner)


def _scan_layout(op, node):
    info = op.info
    seq_reads = [(j, o) for j, offsets in enumerate(info.seq_taps) for o in offsets]
    state_reads = [(k, tap) for k, taps in enumerate(info.state_taps) for tap in taps]
    state_dtypes = [np.dtype(v[0].type.dtype) for v in op.inner_states]
    return seq_reads, state_reads, state_dtypes


def _n_steps(info, n_steps, seqs):
    if info.infer_steps:
        if not seqs:
            raise ValueError(f"{info.name or 'scan'}: no sequences to take the number of steps "
                             "from")
        steps = min(jnp.shape(s)[0] - e for s, e in zip(seqs, info.seq_extents))
    else:
        steps = int(n_steps)
    if steps < 0:
        raise ValueError(f"{info.name or 'scan'}: the number of steps is negative ({steps})")
    for j, (s, e) in enumerate(zip(seqs, info.seq_extents)):
        if jnp.shape(s)[0] < steps + e:
            raise ValueError(f"{info.name or 'scan'}: sequence {j} has {jnp.shape(s)[0]} rows, "
                             f"but {steps} steps need {steps + e}")
    return steps


def _lax_scan(op, node, inner):
    info = op.info
    n_seqs, n_states, n_nitsot = info.n_seqs, info.n_states, info.n_nitsot
    spans, last, reverse = info.spans, info.state_last, info.reverse
    seq_reads, state_reads, state_dtypes = _scan_layout(op, node)
    row_ndims = [v[0].type.ndim for v in op.inner_states]

    def run(n_steps, *args):
        seqs = [jnp.asarray(s) for s in args[:n_seqs]]
        inits = args[n_seqs:n_seqs + n_states]
        nonseqs = list(args[n_seqs + n_states:])
        steps = _n_steps(info, n_steps, seqs)
        xs = [lax.slice_in_dim(seqs[j], o, o + steps, axis=0) for j, o in seq_reads]
        windows = []
        for k, init in enumerate(inits):
            w = jnp.asarray(init, state_dtypes[k])
            if w.shape[0] < spans[k]:
                raise ValueError(f"{info.name or 'scan'}: the initial value of state {k} has "
                                 f"{w.shape[0]} rows, but its taps need {spans[k]}")
            w = w[:spans[k]]
            windows.append(w[0] if spans[k] == 1 else w)

        def read(k, tap, w):
            if spans[k] == 1:
                return w
            return w[-tap - 1] if reverse else w[spans[k] + tap]

        def body(carry, x):
            values = list(x) + [read(k, tap, carry[k]) for k, tap in state_reads] + nonseqs
            outs = inner(*values)
            new = []
            for k in range(n_states):
                v = jnp.asarray(outs[k]).astype(state_dtypes[k])
                if v.ndim != row_ndims[k]:
                    v = v.reshape(jnp.shape(carry[k])[-row_ndims[k]:] if row_ndims[k] else ())
                if spans[k] == 1:
                    new.append(v)
                elif reverse:
                    new.append(jnp.concatenate([v[None], carry[k][:-1]], axis=0))
                else:
                    new.append(jnp.concatenate([carry[k][1:], v[None]], axis=0))
            ys = [new[k] if spans[k] == 1 else (new[k][0] if reverse else new[k][-1])
                  for k in range(n_states) if not last[k]]
            ys += [jnp.asarray(o) for o in outs[n_states:n_states + n_nitsot]]
            return tuple(new), tuple(ys)

        final, ys = lax.scan(body, tuple(windows), tuple(xs), length=steps, reverse=reverse)
        results, it = [], iter(ys)
        for k in range(n_states):
            w = final[k]
            if last[k]:
                results.append(w if spans[k] == 1 else (w[0] if reverse else w[-1]))
                continue
            init = jnp.asarray(inits[k], state_dtypes[k])[:spans[k]]
            y = next(it)
            results.append(jnp.concatenate([y, init] if reverse else [init, y], axis=0))
        results += list(it)
        return tuple(results) if len(results) != 1 else results[0]
    return run


def _while_scan(op, node, inner):
    info = op.info
    n_seqs, n_states, n_nitsot = info.n_seqs, info.n_states, info.n_nitsot
    spans, last = info.spans, info.state_last
    seq_reads, state_reads, state_dtypes = _scan_layout(op, node)
    nitsot_dtypes = [np.dtype(o.type.dtype) for o in op.inner_nitsot_outputs]

    def run(n_steps, *args):
        seqs = [jnp.asarray(s) for s in args[:n_seqs]]
        inits = args[n_seqs:n_seqs + n_states]
        nonseqs = list(args[n_seqs + n_states:])
        steps = _n_steps(info, n_steps, seqs)
        bufs = []
        for k, init in enumerate(inits):
            init = jnp.asarray(init, state_dtypes[k])[:spans[k]]
            buf = jnp.zeros((spans[k] + steps,) + init.shape[1:], state_dtypes[k])
            bufs.append(buf.at[:spans[k]].set(init))

        def inner_values(r, bufs):
            values = [lax.dynamic_index_in_dim(seqs[j], r + o, keepdims=False)
                      for j, o in seq_reads]
            values += [lax.dynamic_index_in_dim(bufs[k], spans[k] + r + tap, keepdims=False)
                       for k, tap in state_reads]
            return values + nonseqs

        shapes = jax.eval_shape(lambda b: inner(*inner_values(0, b)), bufs)
        nits = [jnp.zeros((steps,) + tuple(s.shape), nitsot_dtypes[j])
                for j, s in enumerate(shapes[n_states:n_states + n_nitsot])]

        def cond(carry):
            r, done = carry[0], carry[1]
            return jnp.logical_and(r < steps, jnp.logical_not(done))

        def body(carry):
            r, _, bufs, nits = carry
            outs = inner(*inner_values(r, bufs))
            bufs = [b.at[spans[k] + r].set(jnp.asarray(outs[k]).astype(state_dtypes[k]))
                    for k, b in enumerate(bufs)]
            nits = [b.at[r].set(jnp.asarray(outs[n_states + j]).astype(nitsot_dtypes[j]))
                    for j, b in enumerate(nits)]
            return r + 1, jnp.asarray(outs[-1]).astype(bool), bufs, nits

        r, _, bufs, nits = lax.while_loop(cond, body, (jnp.int64(0), jnp.bool_(False), bufs, nits))
        results = []
        for k, buf in enumerate(bufs):
            if last[k]:
                results.append(lax.dynamic_index_in_dim(buf, spans[k] + r - 1, keepdims=False))
            else:
                results.append(_Ragged(buf, spans[k] + r))
        results += [_Ragged(b, r) for b in nits]
        return tuple(results) if len(results) != 1 else results[0]
    return run


def _ragged_outputs(node) -> list:
    """Which outputs of ``node`` are _Ragged values."""
    try:
        from symgrad.scan.op import Scan
    except ImportError:  # pragma: no cover
        return []
    if isinstance(node.op, Scan) and node.op.info.as_while:
        info = node.op.info
        return [o for k, o in enumerate(node.outputs)
                if k >= info.n_states or not info.state_last[k]]
    return []


def _ragged_consumer(node, k):
    """``fn(ragged, *index_values)`` computing ``node`` (a basic index on the ragged axis 0:
    ``[k:]`` with a constant k >= 0, or ``[i]`` with a constant i < 0) and whether its result
    is ragged too; None when the node cannot take a ragged value."""
    from symgrad.tensor.subtensor import Subtensor, _index_builder

    op = node.op
    if k != 0 or type(op) is not Subtensor or not op.idx_list:
        return None
    first, rest = op.idx_list[0], op.idx_list[1:]
    build = _index_builder(rest, basic=True)
    if isinstance(first, tuple):
        n_first = sum(first[1:])
        bounds = node.inputs[1:1 + n_first]
        if first[2] or first[3] or not all(isinstance(b, Constant) for b in bounds):
            return None
        start = int(bounds[0].data) if first[1] else 0
        if start < 0:
            return None

        def slice_rows(r, *vals):
            arr = r.array[start:]
            return _Ragged(arr[(slice(None),) + build(vals[n_first:])], r.length - start)
        return slice_rows, True
    if first == "i":
        index = node.inputs[1]
        if not isinstance(index, Constant) or int(index.data) >= 0:
            return None
        i = int(index.data)

        def take_row(r, *vals):
            row = lax.dynamic_index_in_dim(r.array, r.length + i, keepdims=False)
            return row[build(vals[1:])]
        return take_row, False
    return None


# -- the program -------------------------------------------------------------------------------------

class _StaticArg:
    """A function input passed to jax.jit as a static (hashable) argument."""

    __slots__ = ("value", "_key")

    def __init__(self, value):
        self.value = np.asarray(value)
        self._key = (self.value.dtype.str, self.value.shape, self.value.tobytes())

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, _StaticArg) and self._key == other._key


def _label(var, fgraph_inputs) -> str:
    if var.name:
        return repr(var.name)
    try:
        return f"input {fgraph_inputs.index(var)}"
    except ValueError:
        return f"an unnamed {var.type}"


class _Program:
    """A graph as a Python function of JAX values (traced by jax.jit or lax.scan)."""

    def __init__(self, fgraph, what="the compiled function", allow_static_args=True,
                 passed_static=()):
        """``passed_static``: input positions whose values the caller can give as static
        (numpy) values; those a shape needs are listed in ``self.static_inputs``."""
        self.passed_static = frozenset(passed_static)
        self.static_inputs = set()
        self.inputs = list(fgraph.inputs)
        self.outputs = list(fgraph.outputs)
        topo = fgraph.toposort()
        self.static_args, static_nodes = self._static_analysis(topo, what, allow_static_args)
        ragged = self._ragged_analysis(topo)
        slots = {v: k for k, v in enumerate(self.inputs)}
        constants = {}
        steps = []
        n = len(self.inputs)
        for node in topo:
            for i in node.inputs:
                if i not in slots and isinstance(i, Constant):
                    slots[i] = n
                    constants[n] = i.data
                    n += 1
            in_idx = [slots[i] for i in node.inputs]
            out_idx = []
            for o in node.outputs:
                slots[o] = n
                out_idx.append(n)
                n += 1
            if node in static_nodes:
                fn = node.op.make_thunk_function(node)
            elif node in ragged:
                fn = ragged[node]
            else:
                fn = _funcify(node)
            steps.append((node, fn, in_idx, out_idx))
        out_idx = []
        for o in self.outputs:
            if o not in slots:
                slots[o] = n
                constants[n] = o.data
                n += 1
            out_idx.append(slots[o])
        self.size = n
        self.constants = list(constants.items())
        self.steps = steps
        self.out_idx = out_idx
        self.ragged_outputs = [k for k, o in enumerate(self.outputs) if o in self._ragged_vars]
        if self.ragged_outputs and not allow_static_args:
            raise JAXBackendError(
                f"the JAX backend cannot compile {what}: it returns the result of a scan with a "
                "stop condition (until), whose length is known only after the loop ran")

    def _static_analysis(self, topo, what, allow_static_args):
        input_pos = {v: k for k, v in enumerate(self.inputs)}
        work = []
        for node in topo:
            for k in _static_positions(node):
                work.append((node.inputs[k], node, k))
        seen, static_args, static_nodes = set(), set(), set()
        while work:
            var, user, k = work.pop()
            if var in seen:
                continue
            seen.add(var)
            if isinstance(var, Constant):
                continue
            if var.owner is None:
                pos = input_pos.get(var)
                dtype = getattr(var.type, "dtype", "float64")
                if pos in self.passed_static:
                    self.static_inputs.add(pos)
                    continue
                if (allow_static_args and pos is not None and var.type.ndim <= 1
                        and (dtype.startswith(("int", "uint")) or dtype == "bool")):
                    static_args.add(pos)
                    continue
                raise JAXBackendError(
                    f"the JAX backend cannot compile {what}: {_describe(user.op)} needs its input "
                    f"{k} ({user.inputs[k]}) to be known when compiling (JAX compiles for fixed "
                    f"shapes), but it depends on the values of {_label(var, self.inputs)} "
                    f"({var.type}). JAX cannot express data-dependent shapes; use mode='FAST_RUN' "
                    "or give that value as a constant")
            node = var.owner
            if _is_always_static(node.op):
                continue
            static_nodes.add(node)
            work.extend((i, user, k) for i in node.inputs)
        return tuple(sorted(static_args)), static_nodes

    def _ragged_analysis(self, topo):
        ragged_vars = set()
        consumers = {}
        for node in topo:
            for k, i in enumerate(node.inputs):
                if i not in ragged_vars:
                    continue
                found = _ragged_consumer(node, k)
                if found is None:
                    raise JAXBackendError(
                        f"the JAX backend cannot compile {_describe(node.op)} applied to the "
                        "result of a scan with a stop condition (until): that result's length "
                        "is known only after the loop ran, and JAX needs fixed shapes. Return "
                        "it from the function directly (or take [k:] or [-1] of it first), or "
                        "use mode='FAST_RUN'")
                consumers[node], keeps = found
                if keeps:
                    ragged_vars.update(node.outputs)
            ragged_vars.update(_ragged_outputs(node))
        self._ragged_vars = ragged_vars
        return consumers

    def __call__(self, *values):
        storage = [None] * self.size
        storage[:len(values)] = values
        for k, v in self.constants:
            storage[k] = v
        for _node, fn, in_idx, out_idx in self.steps:
            result = fn(*[storage[k] for k in in_idx])
            if len(out_idx) == 1:
                storage[out_idx[0]] = result
            else:
                for k, r in zip(out_idx, result):
                    storage[k] = r
        return [storage[k] for k in self.out_idx]


# -- compile_fgraph -------------------------------------------------------------------------------

def _donation_supported() -> bool:
    try:
        return jax.default_backend() != "cpu"
    except Exception:  # pragma: no cover
        return False


class JAXFunction:
    """The executable of a graph compiled by the JAX backend.

    Calling it with numpy values returns numpy arrays (what ``Function`` expects).
    ``jitted`` is the ``jax.jit`` function of all graph inputs (explicit inputs, then
    shared variables' values) returning JAX arrays.
    """

    def __init__(self, fgraph, profile=False):
        self.fgraph = fgraph
        self.program = _Program(fgraph)
        self.static_argnums = self.program.static_args
        self.n_inputs = len(fgraph.inputs)
        self.profile = None
        self._jitted = {}

    def jit(self, donate_argnums=(), **jit_kwargs):
        """The jitted program (cached per set of options)."""
        key = (tuple(donate_argnums), tuple(sorted((k, repr(v)) for k, v in jit_kwargs.items())))
        fn = self._jitted.get(key)
        if fn is None:
            program = self.program
            static = set(self.static_argnums)
            ragged = program.ragged_outputs

            def traced(*args):
                values = [a.value if k in static else a for k, a in enumerate(args)]
                outs = program(*values)
                for k in ragged:
                    outs[k] = (outs[k].array, outs[k].length)
                return outs

            fn = jax.jit(traced, static_argnums=self.static_argnums,
                         donate_argnums=tuple(donate_argnums), **jit_kwargs)
            self._jitted[key] = fn
        return fn

    @property
    def jitted(self):
        return self.jit()

    def _args(self, values):
        if not self.static_argnums:
            return values
        values = list(values)
        for k in self.static_argnums:
            values[k] = _StaticArg(values[k])
        return values

    def call_device(self, values, jitted=None):
        outs = (jitted or self.jitted)(*self._args(values))
        for k in self.program.ragged_outputs:
            arr, length = outs[k]
            outs[k] = arr[:int(length)]
        return outs

    def __call__(self, *values):
        outs = self.jitted(*self._args(values))
        if self.program.ragged_outputs:
            for k in self.program.ragged_outputs:
                arr, length = outs[k]
                outs[k] = np.asarray(arr)[:int(length)]
        return [np.asarray(o) for o in outs]


def compile_fgraph(fgraph, profile=False):
    """Compile ``fgraph`` with ``jax.jit``; returns a :class:`JAXFunction`."""
    if profile:
        warnings.warn("the JAX backend does not profile per op; use jax.profiler instead",
                      stacklevel=3)
    return JAXFunction(fgraph)


def device_function(f, donate_shared=None, **jit_kwargs):
    """A callable running the compiled function ``f`` (made with mode="JAX") on JAX arrays.

    Inputs are passed to ``jax.jit`` as they are (numpy arrays, or JAX arrays on a GPU
    or sharded over devices); outputs are JAX arrays, left where JAX computed them;
    updated shared variables hold JAX arrays afterwards, so a training loop stays on
    the device. ``jit_kwargs`` (e.g. ``in_shardings``, ``out_shardings``) are passed
    to ``jax.jit``. ``donate_shared`` donates the buffers of updated shared variables
    (the old values are replaced anyway); by default it is on except on the CPU,
    where XLA does not use donations.
    """
    executable = getattr(f, "executable", None)
    if not isinstance(executable, JAXFunction):
        raise TypeError("device_function needs a function compiled with mode='JAX' (or "
                        f"Mode(backend='jax')), got {f!r}")
    n_explicit = len(f.input_types)
    targets = f.update_targets
    shared_pos = {id(v.container): n_explicit + k for k, v in enumerate(f.shared_inputs)}
    if donate_shared is None:
        donate_shared = _donation_supported()
    donate = sorted(shared_pos[id(v.container)] for v in targets
                    if id(v.container) in shared_pos) if donate_shared else []
    donate = [k for k in donate if k not in executable.static_argnums]
    jitted = executable.jit(donate_argnums=donate, **jit_kwargs)
    dtypes = [np.dtype(t.dtype) for t in f.input_types]
    n_out = f.n_outputs

    def run(*args):
        if len(args) != n_explicit:
            raise TypeError(f"the device function takes {n_explicit} arguments, got {len(args)}")
        values = [a if isinstance(a, jax.Array) else np.asarray(a, dtype=d)
                  for a, d in zip(args, dtypes)]
        values += [v.container[0] for v in f.shared_inputs]
        outs = executable.call_device(values, jitted)
        for var, value in zip(targets, outs[n_out:]):
            var.container[0] = value
        outs = outs[:n_out]
        if f.no_outputs:
            return []
        return outs[0] if f.single else outs

    run.jitted = jitted
    return run


_register_tensor_ops()
_register_other_ops()
_register_scan()

