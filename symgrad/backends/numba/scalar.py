"""Scalar code for the numba backend: one template per ScalarOp name, and the special
functions numba lacks (digamma, erfinv, erfcinv, a stable sigmoid), compiled with
``cache=True``.

A template takes the argument expressions (strings) and the input dtypes and returns a
scalar expression in numba's nopython subset; the code generator casts the result to the
node's output dtype.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic

__all__ = ["SCALAR_TEMPLATES", "register_scalar", "scalar_expression", "NoTemplate"]

_JIT = {"cache": True, "error_model": "numpy", "nogil": True}


class NoTemplate(LookupError):
    """A ScalarOp without numba code."""


# -- special functions -------------------------------------------------------------------------

@njit(**_JIT)
def sg_digamma(x):
    if math.isnan(x):
        return math.nan
    if x == math.floor(x) and x <= 0:
        return math.nan
    result = 0.0
    if x < 0:
        # reflection: psi(1 - x) - psi(x) = pi / tan(pi x)
        result = -math.pi / math.tan(math.pi * x)
        x = 1.0 - x
    while x < 6.0:
        result -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    series = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (
        -1.0 / 132 + f * (691.0 / 32760 + f * (-1.0 / 12)))))))
    return result + math.log(x) - 0.5 / x + series


@njit(**_JIT)
def sg_erfinv(y):
    if math.isnan(y) or y < -1.0 or y > 1.0:
        return math.nan
    if y == 1.0:
        return math.inf
    if y == -1.0:
        return -math.inf
    # Giles' single-precision approximation, then Newton steps on erf (quadratic convergence)
    w = -math.log((1.0 - y) * (1.0 + y))
    if w < 5.0:
        w -= 2.5
        p = 2.81022636e-08
        p = 3.43273939e-07 + p * w
        p = -3.5233877e-06 + p * w
        p = -4.39150654e-06 + p * w
        p = 0.00021858087 + p * w
        p = -0.00125372503 + p * w
        p = -0.00417768164 + p * w
        p = 0.246640727 + p * w
        p = 1.50140941 + p * w
    else:
        w = math.sqrt(w) - 3.0
        p = -0.000200214257
        p = 0.000100950558 + p * w
        p = 0.00134934322 + p * w
        p = -0.00367342844 + p * w
        p = 0.00573950773 + p * w
        p = -0.0076224613 + p * w
        p = 0.00943887047 + p * w
        p = 1.00167406 + p * w
        p = 2.83297682 + p * w
    x = p * y
    c = 2.0 / math.sqrt(math.pi)
    for _ in range(3):
        err = math.erf(x) - y
        x -= err / (c * math.exp(-x * x))
    return x


@njit(**_JIT)
def sg_erfcinv(y):
    if math.isnan(y) or y < 0.0 or y > 2.0:
        return math.nan
    if y == 0.0:
        return math.inf
    if y == 2.0:
        return -math.inf
    if 0.0625 < y < 1.9375:
        return sg_erfinv(1.0 - y)
    # tails: Newton on erfc itself, so tiny y keeps its precision
    small = y if y < 1.0 else 2.0 - y
    x = sg_erfinv(1.0 - small) if small > 1e-300 else 26.0
    if not (x < 27.0):
        x = 26.0
    c = 2.0 / math.sqrt(math.pi)
    for _ in range(50):
        err = math.erfc(x) - small
        step = err / (c * math.exp(-x * x))
        x += step
        if abs(step) <= 1e-15 * abs(x):
            break
    return x if y < 1.0 else -x


# -- tanh ----------------------------------------------------------------------------------------
# libm's tanh is a call per element (about 40 ns) that LLVM cannot vectorise; in an RNN it is
# most of the step. sg_tanh is arithmetic and selects only, inlined into the caller's loop,
# where LLVM vectorises it; its error is under 2.5 ulp (glibc's: 2), its mean 0.35 ulp
# (tests/backends/test_numba_tanh.py).


@intrinsic
def _pow2i(typingctx, k):
    """2.0 ** k for an int64 k in [-1022, 1023]: the double's bits, made directly (a shift
    and a bit cast, which LLVM vectorises; math.ldexp is a call per element)."""
    if not isinstance(k, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        kv = context.cast(builder, args[0], signature.args[0], types.int64)
        i64 = ir.IntType(64)
        bits = builder.shl(builder.add(kv, ir.Constant(i64, 1023)), ir.Constant(i64, 52))
        return builder.bitcast(bits, ir.DoubleType())
    return types.float64(k), codegen


def _horner(coefficients, var):
    """sum(coefficients[n] * var**n) by Horner's rule: one long dependency chain, but the
    least code (sg_tanh is inlined into scan steps, where Estrin's form cost a third of a
    second more to compile per scan; its run time gain there is a few microseconds)."""
    text = repr(coefficients[-1])
    for c in reversed(coefficients[:-1]):
        text = f"({text} * {var} + {c!r})"
    return text


def _estrin(coefficients, var):
    """(lines, expression) of sum(coefficients[n] * var**n) by Estrin's scheme: pairs, then
    pairs of pairs by var_2 = var**2, var_4 = var**4, ...: short dependency chains (Horner's
    is one long one)."""
    terms = [repr(c) for c in coefficients]
    power, lines, level = var, [], 1
    while len(terms) > 1:
        terms = [f"({terms[j]} + {terms[j + 1]} * {power})" if j + 1 < len(terms) else terms[j]
                 for j in range(0, len(terms), 2)]
        if len(terms) > 1:
            level *= 2
            lines.append(f"{var}_{level} = {power} * {power}")
            power = f"{var}_{level}"
    return lines, terms[0]


# expm1(r) = r + r^2 Q(r) for 0 <= r < ln 2: 18 Taylor terms (the 19th is below 2^-60)
_EXPM1_TAYLOR = [1.0 / math.factorial(n) for n in range(1, 19)]
# tanh(a) = e / (e + 2), e = expm1(2a): no cancellation anywhere (e ~ 2a for small a)
_TANH_SOURCE = f"""
def sg_tanh(x):
    a = abs(x)
    # e = expm1(y) = 2^k (expm1(r) + 1) - 1 where y = 2a = k ln2 + r, 0 <= r < ln2
    y = 2.0 * (a if a < 20.0 else 20.0)
    k = np.floor(y * {1 / math.log(2)!r})
    r = (y - k * 0.693147180369123816490) - k * 1.90821492927058770002e-10
    q = r + (r * r) * {_horner(_EXPM1_TAYLOR[1:], "r")}  # (r + a small correction)
    s = _pow2i(np.int64(k))  # 2^k, exactly (0 <= k < 64)
    e = s * q + (s - 1.0)
    t = math.copysign(e / (e + 2.0), x)
    return x if x != x else t
"""


def _define(source, name):
    namespace = {"np": np, "math": math, "_pow2i": _pow2i}
    exec(compile(source, f"<symgrad {name}>", "exec"), namespace)
    return njit(error_model="numpy", nogil=True, inline="always")(namespace[name])


sg_tanh = _define(_TANH_SOURCE, "sg_tanh")


def _tanh(a, d):
    if np.dtype(d[0]).kind == "c":
        return f"np.tanh({a[0]})"
    if np.dtype(d[0]) == np.float64:
        return f"sg_tanh({a[0]})"
    return f"sg_tanh(np.float64({a[0]}))"  # (float32: rounded once, from the float64 result)


# -- exp -----------------------------------------------------------------------------------------
# libm's exp is a call per element too (numpy's own is vectorised, so the default backend
# beat numba on exp-heavy loops). sg_exp: x = k ln2 + r with |r| <= ln2/2, exp(r) by its
# Taylor series (14 terms: the next is below 2^-57 of the result), then times 2^k built
# exactly from powers of two in two halves (each within the normal range, so only the last
# product rounds, and only for a subnormal result). Selects only: LLVM vectorises it.

_EXP_TAYLOR = [1.0 / math.factorial(n) for n in range(2, 15)]
_EXP_LINES, _EXP_Q = _estrin(_EXP_TAYLOR, "r")
_EXP_SOURCE = f"""
def sg_exp(x):
    y = x if x < 709.8 else 709.8
    y = y if y > -745.2 else -745.2
    k = np.floor(y * {1 / math.log(2)!r} + 0.5)
    r = (y - k * 0.693147180369123816490) - k * 1.90821492927058770002e-10
{chr(10).join("    " + line for line in _EXP_LINES)}
    p = 1.0 + (r + r_2 * {_EXP_Q})
    ki = np.int64(k)
    k1 = ki >> 1
    e = (p * _pow2i(k1)) * _pow2i(ki - k1)
    e = e if x < 709.782712893384 else np.inf
    e = e if x > -745.1332191019412 else 0.0
    return x if x != x else e
"""


sg_exp = _define(_EXP_SOURCE, "sg_exp")


# sigmoid: exp(-|x|) (so nothing overflows) and one division, with selects only (vectorised
# like sg_exp); float32 is computed in float64 and rounded once
_SIGMOID_SOURCE = """
def sg_sigmoid(x):
    e = sg_exp(-abs(x))
    return (1.0 if x >= 0 else e) / (1.0 + e)
"""


def _define_sigmoid():
    namespace = {"np": np, "sg_exp": sg_exp}
    exec(compile(_SIGMOID_SOURCE, "<symgrad sg_sigmoid>", "exec"), namespace)
    inner = njit(error_model="numpy", nogil=True, inline="always")(namespace["sg_sigmoid"])

    @njit(error_model="numpy", nogil=True, inline="always")
    def sg_sigmoid32(x):
        return np.float32(inner(np.float64(x)))
    return inner, sg_sigmoid32


sg_sigmoid, sg_sigmoid32 = _define_sigmoid()


def _exp(a, d):
    dt = np.dtype(d[0])
    if dt == np.float64:
        return f"sg_exp({a[0]})"
    if dt.kind == "f" or dt.kind in "iub":
        # (float32: rounded once, from the float64 result; integers: numpy's float64 exp)
        return f"sg_exp(np.float64({a[0]}))"
    return f"np.exp({a[0]})"


# -- templates -----------------------------------------------------------------------------------

def _np(name):
    return lambda a, d: f"np.{name}({', '.join(a)})"


def _binop(sym):
    return lambda a, d: "(" + f" {sym} ".join(a) + ")"


def _is_float(dt) -> bool:
    return np.dtype(dt).kind in "fc"


def _invert(a, d):
    return f"(not {a[0]})" if np.dtype(d[0]).kind == "b" else f"(~{a[0]})"


def _isnan_like(name):
    def t(a, d):
        if not _is_float(d[0]):
            return "True" if name == "isfinite" else "False"
        return f"np.{name}({a[0]})"
    return t


def _sigmoid(a, d):
    return f"sg_sigmoid32({a[0]})" if np.dtype(d[0]) == np.float32 else f"sg_sigmoid({a[0]})"


def _math(name):
    return lambda a, d: f"math.{name}({a[0]})"


def _bool_logic(sym, word):
    def t(a, d):
        if all(np.dtype(x).kind == "b" for x in d):
            return f"({a[0]} {word} {a[1]})" if word != "!=" else f"({a[0]} != {a[1]})"
        return f"({a[0]} {sym} {a[1]})"
    return t


SCALAR_TEMPLATES = {
    "add": _binop("+"), "sub": _binop("-"), "mul": _binop("*"), "true_div": _binop("/"),
    "floor_div": _binop("//"), "int_div": _binop("//"), "mod": _binop("%"),
    "pow": lambda a, d: f"({a[0]} ** {a[1]})", "neg": lambda a, d: f"(-{a[0]})",
    "abs": lambda a, d: f"abs({a[0]})", "sign": _np("sign"), "sqr": lambda a, d: f"({a[0]} * {a[0]})",
    "sqrt": _np("sqrt"), "reciprocal": lambda a, d: f"(1.0 / {a[0]})",
    "maximum": _np("maximum"), "minimum": _np("minimum"),
    "clip": lambda a, d: f"np.minimum(np.maximum({a[0]}, {a[1]}), {a[2]})",
    "exp": _exp, "exp2": _np("exp2"), "expm1": _np("expm1"), "log": _np("log"),
    "log2": _np("log2"), "log10": _np("log10"), "log1p": _np("log1p"),
    "sin": _np("sin"), "cos": _np("cos"), "tan": _np("tan"), "arcsin": _np("arcsin"),
    "arccos": _np("arccos"), "arctan": _np("arctan"), "arctan2": _np("arctan2"),
    "sinh": _np("sinh"), "cosh": _np("cosh"), "tanh": _tanh, "arcsinh": _np("arcsinh"),
    "arccosh": _np("arccosh"), "arctanh": _np("arctanh"),
    "sigmoid": _sigmoid, "softplus": lambda a, d: f"np.logaddexp(0.0, {a[0]})",
    "erf": _math("erf"), "erfc": _math("erfc"), "erfinv": lambda a, d: f"sg_erfinv({a[0]})",
    "erfcinv": lambda a, d: f"sg_erfcinv({a[0]})", "gamma": _math("gamma"),
    "gammaln": _math("lgamma"), "digamma": lambda a, d: f"sg_digamma({a[0]})",
    "floor": _np("floor"), "ceil": _np("ceil"), "trunc": _np("trunc"), "round": _np("rint"),
    "round_half_to_even": _np("rint"),
    "eq": _binop("=="), "neq": _binop("!="), "lt": _binop("<"), "le": _binop("<="),
    "gt": _binop(">"), "ge": _binop(">="),
    "and_": _bool_logic("&", "and"), "or_": _bool_logic("|", "or"), "xor": _bool_logic("^", "!="),
    "invert": _invert, "isnan": _isnan_like("isnan"), "isinf": _isnan_like("isinf"),
    "isfinite": _isnan_like("isfinite"),
    "switch": lambda a, d: f"({a[1]} if {a[0]} else {a[2]})",
    "second": lambda a, d: a[1], "identity": lambda a, d: a[0],
}


def register_scalar(name: str, template=None):
    """Register ``template(arg_exprs, arg_dtypes) -> expression`` for the ScalarOp ``name``.

    Helper functions it calls must be importable names made available with
    :func:`symgrad.backends.numba.codegen.register_global`.
    """
    if template is None:
        return lambda t: register_scalar(name, t)
    SCALAR_TEMPLATES[name] = template
    return template


def cast_expression(expr: str, dtype) -> str:
    """``expr`` converted to ``dtype`` (numpy's astype rules for the usual cases)."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return f"({expr} != 0)"
    return f"np.{dt.name}({expr})"


# ScalarOps whose numba expression on floats of one dtype has that dtype already
_SAME_FLOAT_TYPE = frozenset({"add", "sub", "mul", "true_div", "neg", "sqr", "abs", "identity",
                              "second", "switch", "maximum", "minimum"})


def scalar_expression(scalar_op, args, dtypes, out_dtype) -> str:
    """The expression of ``scalar_op`` on ``args``, cast to ``out_dtype``."""
    name = scalar_op.name
    if name.startswith("cast{"):
        return cast_expression(args[0], out_dtype)
    template = SCALAR_TEMPLATES.get(name)
    if template is None:
        raise NoTemplate(name)
    if name in ("add", "mul") and len(args) > 2:
        expr = "(" + (" + " if name == "add" else " * ").join(args) + ")"
    else:
        expr = template(list(args), [np.dtype(x) for x in dtypes])
    if (np.dtype(out_dtype).kind == "f" and all(np.dtype(x) == out_dtype for x in dtypes)
            and (name in _SAME_FLOAT_TYPE or (name == "tanh" and out_dtype == np.float64))):
        return expr  # numba's float arithmetic keeps the dtype: no cast to type and compile
    if np.dtype(out_dtype).kind == "b":
        if name in ("eq", "neq", "lt", "le", "gt", "ge", "isnan", "isinf", "isfinite"):
            return expr
        if all(np.dtype(x).kind == "b" for x in dtypes) and name in (
                "and_", "or_", "xor", "invert", "switch", "second", "identity"):
            return expr
    return cast_expression(expr, out_dtype)


def literal(value, dtype) -> str:
    """A scalar constant as numba source, typed ``dtype``."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return "True" if bool(value) else "False"
    if dt.kind == "f":
        v = float(value)
        if math.isnan(v):
            text = "np.nan"
        elif math.isinf(v):
            text = "np.inf" if v > 0 else "-np.inf"
        else:
            text = repr(v)
        return text if dt == np.float64 else f"np.{dt.name}({text})"  # (floats are float64)
    if dt.kind in "iu":
        return f"np.{dt.name}({int(value)})"
    if dt.kind == "c":
        return f"np.{dt.name}(complex({complex(value).real!r}, {complex(value).imag!r}))"
    raise TypeError(f"no literal for dtype {dt}")
