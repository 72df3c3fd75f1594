"""The elementwise functions: one ScalarOp record each, with its derivative beside it.

Partials are written with the public tensor operators, so derivatives of
derivatives work and the rewriter sees ordinary graphs.
"""

from __future__ import annotations

import math as _math

import numpy as np

from symgrad.tensor.basic import as_tensor_variable, constant
from symgrad.tensor.elemwise import Elemwise, ScalarOp, cast, register_scalar_op, times_cotangent
from symgrad.tensor.type import discrete_dtypes

__all__ = []  # filled by _define


def _c(value):
    """A weak constant: takes the dtype of whatever it meets."""
    return constant(value, weak=True, dtype="float64" if isinstance(value, float) else None)


def _like(cond, x):
    """A boolean condition as 0/1 in x's float dtype."""
    dtype = x.dtype if x.dtype not in discrete_dtypes else "float64"
    return cast(cond, dtype)


def _define(name, impl, nin=1, partials=None, pullback=None, pushforward=None, symbol=None,
            differentiable=True, public=None, output_dtype=None, **flags):
    sop = register_scalar_op(ScalarOp(name, impl, nin, partials=partials, pullback=pullback,
                                      pushforward=pushforward, symbol=symbol,
                                      differentiable=differentiable,
                                      output_dtype=output_dtype, **flags))
    op = Elemwise(sop)

    def fn(*inputs):
        return op(*inputs)

    fn.__name__ = public or name
    fn.__qualname__ = fn.__name__
    fn.__doc__ = (f"Elementwise ``{name}`` with numpy broadcasting "
                  f"(numpy: ``{impl if isinstance(impl, str) else name}``).")
    fn.op = op
    fn.scalar_op = sop
    __all__.append(fn.__name__)
    return fn


def _sum_tangents(tangents):
    total = None
    for t in tangents:
        if t is not None:
            total = t if total is None else total + t
    return total


# -- arithmetic --------------------------------------------------------------------------------

def _add_impl(*xs):
    out = xs[0]
    for x in xs[1:]:
        out = np.add(out, x)
    return out



add = _define("add", _add_impl, -1, symbol="+", commutative=True, associative=True,
        pullback=lambda ins, z, gz: [gz] * len(ins),
        pushforward=lambda ins, z, ts: _sum_tangents(ts))
sub = _define("sub", "numpy.subtract", 2, symbol="-",
        pullback=lambda ins, z, gz: [gz, -gz],
        pushforward=lambda ins, z, ts: (ts[0] if ts[1] is None else
                                        -ts[1] if ts[0] is None else ts[0] - ts[1]))


def _mul_impl(*xs):
    out = xs[0]
    for x in xs[1:]:
        out = np.multiply(out, x)
    return out


def _mul_others(ins, k):
    others = [x for j, x in enumerate(ins) if j != k]
    out = others[0]
    for x in others[1:]:
        out = out * x
    return out


def _mul_pullback(ins, z, gz, needed=None):
    return [times_cotangent(gz, _mul_others(ins, k)) if needed is None or needed[k] else None
            for k in range(len(ins))]


_mul_pullback.takes_needed = True  # (Elemwise.pullback passes which inputs are needed)


def _mul_pushforward(ins, z, ts):
    return _sum_tangents(t * _mul_others(ins, k) if t is not None else None
                         for k, t in enumerate(ts))



mul = _define("mul", _mul_impl, -1, symbol="*", commutative=True, associative=True,
        pullback=_mul_pullback, pushforward=_mul_pushforward)
true_div = _define("true_div", "numpy.true_divide", 2, symbol="/",
        pullback=lambda ins, z, gz: [gz / ins[1], -(gz * ins[0]) / (ins[1] * ins[1])],
        partials=lambda ins, z: [1 / ins[1], -ins[0] / (ins[1] * ins[1])])
floor_div = _define("floor_div", "numpy.floor_divide", 2, symbol="//", partials=lambda ins, z: [None, None])
int_div = _define("int_div", "numpy.floor_divide", 2, partials=lambda ins, z: [None, None])
mod = _define("mod", "numpy.mod", 2, symbol="%",
        partials=lambda ins, z: [_c(1), -floor_div(ins[0], ins[1])])


def _pow_pullback(ins, z, gz):
    x, y = ins
    # Written as in the tutorial so that pp(grad(x ** 2, x)) reads the same.
    return [gz * y * x ** (y - 1), gz * log(x) * z]


pow = _define("pow", "numpy.power", 2, symbol="**", pullback=_pow_pullback,
        partials=lambda ins, z: [ins[1] * ins[0] ** (ins[1] - 1), log(ins[0]) * z])
neg = _define("neg", "numpy.negative", 1, symbol="-",
        pullback=lambda ins, z, gz: [-gz],
        pushforward=lambda ins, z, ts: -ts[0])
abs = _define("abs", "numpy.absolute", 1, partials=lambda ins, z: [sign(ins[0])])
sign = _define("sign", "numpy.sign", 1, partials=lambda ins, z: [None])
sqr = _define("sqr", "numpy.square", 1, partials=lambda ins, z: [_c(2) * ins[0]])
sqrt = _define("sqrt", "numpy.sqrt", 1, partials=lambda ins, z: [_c(0.5) / z])


def _reciprocal_impl(x):
    # 1 / x: integers give floats (numpy.reciprocal would truncate 1/2 to 0).
    return np.true_divide(1, x)


reciprocal = _define("reciprocal", _reciprocal_impl, 1, partials=lambda ins, z: [-(z * z)])
maximum = _define("maximum", "numpy.maximum", 2, commutative=True,
        partials=lambda ins, z: [_like(ge(ins[0], ins[1]), z), _like(lt(ins[0], ins[1]), z)])
minimum = _define("minimum", "numpy.minimum", 2, commutative=True,
        partials=lambda ins, z: [_like(le(ins[0], ins[1]), z), _like(gt(ins[0], ins[1]), z)])


def _clip_impl(x, lo, hi):
    return np.minimum(np.maximum(x, lo), hi)


def _clip_partials(ins, z):
    # z = minimum(maximum(x, lo), hi), with maximum's and minimum's tie rules; when lo > hi
    # the result is hi (numpy), so lo's derivative is zero there.
    x, lo, hi = ins
    return [
        _like(and_(ge(x, lo), le(x, hi)), z),
        _like(and_(lt(x, lo), le(lo, hi)), z),
        _like(or_(gt(x, hi), gt(lo, hi)), z),
    ]


_clip3 = _define("clip", _clip_impl, 3, partials=_clip_partials)


def clip(x, a_min, a_max):
    """numpy.clip: ``minimum(maximum(x, a_min), a_max)``; a bound of None is left out."""
    if a_min is None and a_max is None:
        return tensor_copy(x)
    if a_min is None:
        return minimum(x, a_max)
    if a_max is None:
        return maximum(x, a_min)
    return _clip3(x, a_min, a_max)


clip.op = _clip3.op
clip.scalar_op = _clip3.scalar_op


# -- exponentials and logarithms --------------------------------------------------------------

exp = _define("exp", "numpy.exp", partials=lambda ins, z: [z])
exp2 = _define("exp2", "numpy.exp2", partials=lambda ins, z: [z * _c(_math.log(2.0))])
expm1 = _define("expm1", "numpy.expm1", partials=lambda ins, z: [z + _c(1)])
log = _define("log", "numpy.log", partials=lambda ins, z: [_c(1) / ins[0]])
log2 = _define("log2", "numpy.log2", partials=lambda ins, z: [_c(1 / _math.log(2.0)) / ins[0]])
log10 = _define("log10", "numpy.log10", partials=lambda ins, z: [_c(1 / _math.log(10.0)) / ins[0]])
log1p = _define("log1p", "numpy.log1p", partials=lambda ins, z: [_c(1) / (ins[0] + _c(1))])

# -- trigonometry and hyperbolic functions ------------------------------------------------------

sin = _define("sin", "numpy.sin", partials=lambda ins, z: [cos(ins[0])])
cos = _define("cos", "numpy.cos", partials=lambda ins, z: [-sin(ins[0])])
tan = _define("tan", "numpy.tan", partials=lambda ins, z: [_c(1) + z * z])
arcsin = _define("arcsin", "numpy.arcsin", partials=lambda ins, z: [_c(1) / sqrt(_c(1) - ins[0] * ins[0])])
arccos = _define("arccos", "numpy.arccos",
        partials=lambda ins, z: [-(_c(1) / sqrt(_c(1) - ins[0] * ins[0]))])
arctan = _define("arctan", "numpy.arctan", partials=lambda ins, z: [_c(1) / (_c(1) + ins[0] * ins[0])])
arctan2 = _define("arctan2", "numpy.arctan2", 2, partials=lambda ins, z: [
    ins[1] / (ins[0] * ins[0] + ins[1] * ins[1]),
    -ins[0] / (ins[0] * ins[0] + ins[1] * ins[1]),
])
sinh = _define("sinh", "numpy.sinh", partials=lambda ins, z: [cosh(ins[0])])
cosh = _define("cosh", "numpy.cosh", partials=lambda ins, z: [sinh(ins[0])])
tanh = _define("tanh", "numpy.tanh", partials=lambda ins, z: [_c(1) - z * z])
arcsinh = _define("arcsinh", "numpy.arcsinh",
        partials=lambda ins, z: [_c(1) / sqrt(ins[0] * ins[0] + _c(1))])
arccosh = _define("arccosh", "numpy.arccosh",
        partials=lambda ins, z: [_c(1) / sqrt(ins[0] * ins[0] - _c(1))])
arctanh = _define("arctanh", "numpy.arctanh", partials=lambda ins, z: [_c(1) / (_c(1) - ins[0] * ins[0])])

# -- special functions (scipy, imported on first use) -------------------------------------------


def _softplus_impl(x):
    # log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)).
    x = np.asarray(x)
    out = np.logaddexp(0, x)
    return out


def _sigmoid_impl(x):
    # scipy.special.expit's values and dtypes (float32 and longdouble stay, the rest become
    # float64, complex is refused) without importing scipy: a logistic model compiles
    # without scipy's import time. 1 / (1 + exp(-x)) is accurate everywhere (no
    # cancellation; exp overflowing to inf gives the right 0).
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"sigmoid is not defined for dtype {x.dtype}")
    # float32 is computed in float64 and rounded once (a correctly rounded result, mostly)
    work = np.longdouble if x.dtype == np.longdouble else np.float64
    with np.errstate(over="ignore"):
        out = np.exp(np.negative(np.array(x, dtype=work, ndmin=1)))
    out += 1
    np.reciprocal(out, out=out)
    if x.dtype == np.float32:
        out = out.astype(np.float32)
    out = out.reshape(x.shape)
    return out if out.ndim else out[()]


sigmoid = _define("sigmoid", _sigmoid_impl, partials=lambda ins, z: [z * (_c(1) - z)])
softplus = _define("softplus", _softplus_impl, partials=lambda ins, z: [sigmoid(ins[0])])
erf = _define("erf", "scipy.special.erf",
        partials=lambda ins, z: [_c(2 / _math.sqrt(_math.pi)) * exp(-(ins[0] * ins[0]))])
erfc = _define("erfc", "scipy.special.erfc",
        partials=lambda ins, z: [_c(-2 / _math.sqrt(_math.pi)) * exp(-(ins[0] * ins[0]))])
erfinv = _define("erfinv", "scipy.special.erfinv",
        partials=lambda ins, z: [_c(_math.sqrt(_math.pi) / 2) * exp(z * z)])
erfcinv = _define("erfcinv", "scipy.special.erfcinv",
        partials=lambda ins, z: [_c(-_math.sqrt(_math.pi) / 2) * exp(z * z)])
gamma = _define("gamma", "scipy.special.gamma", partials=lambda ins, z: [z * digamma(ins[0])])
gammaln = _define("gammaln", "scipy.special.gammaln", partials=lambda ins, z: [digamma(ins[0])])
digamma = _define("digamma", "scipy.special.digamma",
        partials=lambda ins, z: [polygamma(_c(1), ins[0])])


def _polygamma_impl(n, x):
    import scipy.special

    return scipy.special.polygamma(n, x)


polygamma = _define("polygamma", _polygamma_impl, 2,
        partials=lambda ins, z: [None, polygamma(ins[0] + _c(1), ins[1])],
        output_dtype=lambda n, x: x if x not in discrete_dtypes else "float64")

# -- rounding (zero derivative) -------------------------------------------------------------

floor = _define("floor", "numpy.floor", partials=lambda ins, z: [None])
ceil = _define("ceil", "numpy.ceil", partials=lambda ins, z: [None])
trunc = _define("trunc", "numpy.trunc", partials=lambda ins, z: [None])
round = _define("round", "numpy.round", partials=lambda ins, z: [None], public="round")
round_half_to_even = _define("round_half_to_even", "numpy.round", partials=lambda ins, z: [None])

# -- comparisons and logic (boolean outputs: no derivative flows) -----------------------------

eq = _define("eq", "numpy.equal", 2, commutative=True)
neq = _define("neq", "numpy.not_equal", 2, commutative=True)
lt = _define("lt", "numpy.less", 2, symbol="<")
le = _define("le", "numpy.less_equal", 2, symbol="<=")
gt = _define("gt", "numpy.greater", 2, symbol=">")
ge = _define("ge", "numpy.greater_equal", 2, symbol=">=")
and_ = _define("and_", "numpy.bitwise_and", 2, symbol="&", public="and_", commutative=True)
or_ = _define("or_", "numpy.bitwise_or", 2, symbol="|", public="or_", commutative=True)
xor = _define("xor", "numpy.bitwise_xor", 2, symbol="^", commutative=True)
invert = _define("invert", "numpy.invert", 1, symbol="~")
isnan = _define("isnan", "numpy.isnan", 1)
isinf = _define("isinf", "numpy.isinf", 1)
isfinite = _define("isfinite", "numpy.isfinite", 1)

# -- selection and broadcasting ----------------------------------------------------------------


def _switch_impl(c, a, b):
    return np.where(c, a, b)


def _switch_pullback(ins, z, gz):
    c, a, b = ins
    zero = _c(0)
    return [None, switch(c, gz, zero), switch(c, zero, gz)]


def _switch_pushforward(ins, z, ts):
    c, a, b = ins
    _, ta, tb = ts
    if ta is None and tb is None:
        return None
    zero = _c(0)
    return switch(c, zero if ta is None else ta, zero if tb is None else tb)


switch = _define("switch", _switch_impl, 3, pullback=_switch_pullback, pushforward=_switch_pushforward)


def _second_impl(a, b):
    a = np.asarray(a)
    if isinstance(b, bool | int | float | complex):
        # a Python number (weak constant) takes a's dtype as in a + b (numpy 2's rules):
        # fill(float32 x, 2.5) is float32
        b = np.asarray(b, dtype=np.result_type(a, b))
    b = np.asarray(b)
    # a fresh, writable array like every elementwise result (broadcast_to gives a read-only view)
    return np.array(np.broadcast_to(b, np.broadcast_shapes(a.shape, b.shape)))


def _second_pushforward(ins, z, ts):
    return None if ts[1] is None else second(ins[0], ts[1])


second = _define("second", _second_impl, 2, pullback=lambda ins, z, gz: [None, gz],
        pushforward=_second_pushforward)
tensor_copy = _define("identity", "numpy.copy", 1, pullback=lambda ins, z, gz: [gz],
        pushforward=lambda ins, z, ts: ts[0], public="tensor_copy")

# -- public aliases ------------------------------------------------------------------------------
fill = second
where = switch
true_divide = divide = true_div
floor_divide = floor_div
power = pow
negative = neg
absolute = abs_ = abs
expit = sigmoid
square = sqr
bitwise_and, bitwise_or, bitwise_xor = and_, or_, xor
equal, not_equal, less, less_equal, greater, greater_equal = eq, neq, lt, le, gt, ge


def log_sigmoid(x):
    """log(sigmoid(x)), computed stably as -softplus(-x)."""
    return -softplus(-as_tensor_variable(x))


__all__ += ["fill", "where", "true_divide", "divide", "floor_divide", "power", "negative",
            "absolute", "expit", "log_sigmoid", "square", "bitwise_and", "bitwise_or",
            "bitwise_xor", "equal", "not_equal", "less", "less_equal", "greater",
            "greater_equal", "cast"]


def __getattr__(name):
    # PyTensor's tensor.math also holds reductions and products (sum, max, dot, ...);
    # they live in their own modules here and are resolved on first use.
    if name in ("sum", "prod", "mean", "var", "std", "max", "min", "argmax", "argmin", "any",
                "all", "logsumexp", "cumsum", "cumprod", "dot", "matmul", "tensordot", "outer",
                "max_and_argmax", "einsum"):
        import symgrad.tensor as T

        return getattr(T, name)
    # (asked for __path__ by every ``from symgrad.tensor.math import x`` in a function: no
    # import statement on this path)
    raise AttributeError(f"module 'symgrad.tensor.math' has no attribute {name!r}")
