"""TensorVariable and TensorConstant: the operators and methods users write with."""

from __future__ import annotations

import numpy as np

from symgrad.graph.basic import Constant, Variable


def _T():
    # The op functions live in modules that import this one; fetch them late.
    import symgrad.tensor as T

    return T


class _TensorMethods:
    """Operators and numpy-like methods shared by TensorVariable and TensorConstant."""

    __slots__ = ()

    # -- static facts -------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return self.type.ndim

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def broadcastable(self):
        return self.type.broadcastable

    @property
    def shape(self):
        return _T().shape(self)

    @property
    def size(self):
        return _T().prod(self.shape) if self.ndim else _T().constant(1, dtype="int64")

    @property
    def T(self):
        return _T().transpose(self)

    # -- arithmetic ------------------------------------------------------------------------------
    def __add__(self, other):
        return _T().add(self, other)

    def __radd__(self, other):
        return _T().add(other, self)

    def __sub__(self, other):
        return _T().sub(self, other)

    def __rsub__(self, other):
        return _T().sub(other, self)

    def __mul__(self, other):
        return _T().mul(self, other)

    def __rmul__(self, other):
        return _T().mul(other, self)

    def __truediv__(self, other):
        return _T().true_div(self, other)

    def __rtruediv__(self, other):
        return _T().true_div(other, self)

    def __floordiv__(self, other):
        return _T().floor_div(self, other)

    def __rfloordiv__(self, other):
        return _T().floor_div(other, self)

    def __mod__(self, other):
        return _T().mod(self, other)

    def __rmod__(self, other):
        return _T().mod(other, self)

    def __pow__(self, other):
        return _T().pow(self, other)

    def __rpow__(self, other):
        return _T().pow(other, self)

    def __neg__(self):
        return _T().neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _T().abs(self)

    def __matmul__(self, other):
        return _T().matmul(self, other)

    def __rmatmul__(self, other):
        return _T().matmul(other, self)

    # -- comparisons and logic ----------------------------------------------------------------
    def __lt__(self, other):
        return _T().lt(self, other)

    def __le__(self, other):
        return _T().le(self, other)

    def __gt__(self, other):
        return _T().gt(self, other)

    def __ge__(self, other):
        return _T().ge(self, other)

    def __and__(self, other):
        return _T().and_(self, other)

    def __rand__(self, other):
        return _T().and_(other, self)

    def __or__(self, other):
        return _T().or_(self, other)

    def __ror__(self, other):
        return _T().or_(other, self)

    def __xor__(self, other):
        return _T().xor(self, other)

    def __rxor__(self, other):
        return _T().xor(other, self)

    def __invert__(self):
        return _T().invert(self)

    def __bool__(self):
        raise TypeError(
            "a symbolic tensor has no truth value; use symgrad.tensor.switch/where for "
            "conditionals, or eq()/neq() to compare (== is identity, as in PyTensor)"
        )

    def __iter__(self):
        raise TypeError("a symbolic tensor cannot be iterated; index it (x[i]) or use scan")

    def __len__(self):
        raise TypeError("len() of a symbolic tensor is unknown; use x.shape[0]")

    # -- indexing ------------------------------------------------------------------------------
    def __getitem__(self, index):
        return _T().getitem(self, index)

    # -- reductions -----------------------------------------------------------------------------
    def sum(self, axis=None, dtype=None, keepdims=False, acc_dtype=None):
        return _T().sum(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def prod(self, axis=None, dtype=None, keepdims=False, acc_dtype=None):
        return _T().prod(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, keepdims=False, acc_dtype=None):
        return _T().mean(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def var(self, axis=None, ddof=0, keepdims=False):
        return _T().var(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def std(self, axis=None, ddof=0, keepdims=False):
        return _T().std(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return _T().max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return _T().min(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, keepdims=False):
        return _T().argmax(self, axis=axis, keepdims=keepdims)

    def argmin(self, axis=None, keepdims=False):
        return _T().argmin(self, axis=axis, keepdims=keepdims)

    def any(self, axis=None, keepdims=False):
        return _T().any(self, axis=axis, keepdims=keepdims)

    def all(self, axis=None, keepdims=False):
        return _T().all(self, axis=axis, keepdims=keepdims)

    def cumsum(self, axis=None):
        return _T().cumsum(self, axis=axis)

    def cumprod(self, axis=None):
        return _T().cumprod(self, axis=axis)

    # -- shape ----------------------------------------------------------------------------------
    def dot(self, other):
        return _T().dot(self, other)

    def reshape(self, *shape, ndim=None):
        if len(shape) == 1 and not isinstance(shape[0], int | np.integer):
            shape = shape[0]
        return _T().reshape(self, shape, ndim=ndim)

    def flatten(self, ndim=1):
        return _T().flatten(self, ndim)

    def ravel(self):
        return _T().flatten(self, 1)

    def dimshuffle(self, *pattern):
        if len(pattern) == 1 and isinstance(pattern[0], list | tuple):
            pattern = tuple(pattern[0])
        return _T().dimshuffle(self, pattern)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], list | tuple):
            axes = tuple(axes[0])
        return _T().transpose(self, axes or None)

    def squeeze(self, axis=None):
        return _T().squeeze(self, axis)

    def astype(self, dtype):
        return _T().cast(self, dtype)

    def clip(self, a_min, a_max):
        return _T().clip(self, a_min, a_max)

    def copy(self, name=None):
        out = _T().tensor_copy(self)
        out.name = name
        return out

    def sort(self, axis=-1):
        return _T().sort(self, axis)

    def argsort(self, axis=-1):
        return _T().argsort(self, axis)

    def repeat(self, repeats, axis=None):
        return _T().repeat(self, repeats, axis)

    def nonzero(self):  # pragma: no cover - data-dependent shapes are not offered
        raise NotImplementedError("nonzero has a data-dependent shape; use a boolean mask index")

    # -- evaluation -----------------------------------------------------------------------------
    def eval(self, inputs_to_values=None, **kwargs):
        """Compile (once, cached) and compute this variable's value.

        >>> import symgrad.tensor as st
        >>> x = st.dscalar("x")
        >>> (x * 2).eval({x: 3.0})
        array(6.)
        """
        from symgrad.compile.function import eval_variable

        return eval_variable(self, inputs_to_values or {}, **kwargs)


class TensorVariable(_TensorMethods, Variable):
    """A symbolic tensor: the result of an op, or a graph input."""

    __slots__ = ()

    def __repr__(self):
        if self.name is not None or self.owner is None:
            return Variable.__repr__(self)
        if _small_graph(self, 40):
            from symgrad.printing import pp

            text = pp(self)
            if len(text) <= 80:
                return text
        return f"<output of {self.owner.op}: {self.type}>"


def _small_graph(var, limit: int) -> bool:
    """True when ``var`` has at most ``limit`` ancestor nodes (a bounded walk)."""
    seen = set()
    stack = [var]
    while stack:
        v = stack.pop()
        if v.owner is None or v.owner in seen:
            continue
        seen.add(v.owner)
        if len(seen) > limit:
            return False
        stack.extend(v.owner.inputs)
    return True


class TensorConstant(_TensorMethods, Constant):
    """A tensor with a fixed value.

    ``weak`` marks constants made from Python numbers: like numpy's Python
    scalars, they do not upcast the tensors they combine with
    (``float32 tensor * 2.5`` stays float32).
    """

    __slots__ = ("weak",)

    def __init__(self, type, data, name=None, weak=False):
        super().__init__(type, data, name)
        self.weak = weak

    def signature(self):
        return (self.type, self.weak) + (super().signature(),)

    @property
    def value(self):
        return self.data

    def __repr__(self):
        if self.name is not None:
            return self.name
        return format_constant(self.data)


def format_constant(data) -> str:
    arr = np.asarray(data)
    if arr.size == 1:
        v = arr.reshape(()).item()
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
            return f"{v:.1f}"
        return repr(v)
    if arr.size <= 6:
        return np.array2string(arr, separator=", ").replace("\n", "")
    return f"TensorConstant{{{arr.dtype}, shape={arr.shape}}}"
