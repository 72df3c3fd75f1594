"""Turning Python values into tensor variables: as_tensor_variable, constant."""

from __future__ import annotations

import numbers

import numpy as np

from symgrad.config import config
from symgrad.graph.basic import Variable
from symgrad.tensor.type import TensorType, normalize_dtype
from symgrad.tensor.variable import TensorConstant, TensorVariable

_PY_SCALARS = (bool, int, float, complex)


def _default_dtype(value) -> str:
    """The dtype of a constant from a Python value: floatX for floats, int64 for ints.

    It never depends on the magnitude (PyTensor makes 3.0 float32 but 0.1 float64).
    """
    if isinstance(value, np.generic):  # numpy scalars keep their dtype (np.float64 is a float)
        return normalize_dtype(value.dtype)
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, numbers.Integral):
        return "int64"
    if isinstance(value, numbers.Real):
        return config.floatX
    if isinstance(value, numbers.Complex):
        return "complex128"
    arr = np.asarray(value)
    if arr.dtype.kind == "f" and not isinstance(value, np.ndarray | np.generic):
        return config.floatX  # a list of Python floats
    if arr.dtype.kind == "i" and not isinstance(value, np.ndarray | np.generic):
        return "int64"
    return normalize_dtype(arr.dtype)


def constant(value, name: str | None = None, ndim: int | None = None, dtype=None,
             weak: bool = False) -> TensorConstant:
    """A tensor constant.

    >>> constant(3.0).dtype, constant(0.1).dtype
    ('float64', 'float64')
    >>> constant([1, 2]).type
    TensorType(int64, shape=(2,))
    """
    if isinstance(value, TensorConstant) and dtype is None and ndim is None:
        return value
    if isinstance(value, Variable):
        raise TypeError(f"constant() needs a value, got the symbolic variable {value}")
    dt = normalize_dtype(dtype) if dtype is not None else _default_dtype(value)
    arr = np.asarray(value)
    if arr.dtype == object:
        raise TypeError(f"cannot make a tensor constant from {type(value).__name__}: {value!r}")
    arr = np.array(arr, dtype=dt)  # always a private copy
    if ndim is not None:
        if arr.ndim > ndim:
            squeezable = arr.shape[: arr.ndim - ndim]
            if any(s != 1 for s in squeezable):
                raise ValueError(f"constant of shape {arr.shape} cannot have ndim {ndim}")
            arr = arr.reshape(arr.shape[arr.ndim - ndim:])
        arr = arr.reshape((1,) * (ndim - arr.ndim) + arr.shape)
    arr.setflags(write=False)
    return TensorConstant(TensorType(dt, arr.shape), arr, name=name, weak=weak)


def as_tensor_variable(x, name: str | None = None, ndim: int | None = None,
                       dtype=None) -> TensorVariable:
    """Return ``x`` as a tensor variable: variables pass through, values become constants.

    >>> as_tensor_variable([[1.0, 2.0]]).type
    TensorType(float64, shape=(1, 2))
    """
    if isinstance(x, TensorVariable | TensorConstant):
        if ndim is not None and x.ndim != ndim:
            raise TypeError(f"{x} has {x.ndim} dimensions, expected {ndim}")
        if dtype is not None and x.dtype != normalize_dtype(dtype):
            from symgrad.tensor.elemwise import cast

            return cast(x, dtype)
        return x
    if isinstance(x, Variable):
        if hasattr(x.type, "dtype"):  # a shared variable or another tensor-like
            return x
        raise TypeError(f"{x} of type {x.type} is not a tensor")
    if isinstance(x, list | tuple) and any(isinstance(e, Variable) for e in _walk(x)):
        from symgrad.tensor.shape import stack

        return stack([as_tensor_variable(e) for e in x])
    weak = isinstance(x, _PY_SCALARS) and not isinstance(x, np.generic)
    if weak and dtype is None and isinstance(x, float):
        # A weak constant takes the dtype of what it meets; store every digit of it
        # (rounding 0.1 to floatX=float32 would change float64 results).
        dtype = "float64"
    return constant(x, name=name, ndim=ndim, dtype=dtype, weak=weak)


as_tensor = as_tensor_variable


def _walk(seq):
    stack = list(seq)
    while stack:
        e = stack.pop()
        if isinstance(e, list | tuple):
            stack.extend(e)
        else:
            yield e


def python_scalar_dtype(value) -> str:
    """The dtype a Python number has when it stands alone (bool, int64, float64, complex128)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, complex):
        return "complex128"
    return "float64"


def get_scalar_constant_value(var, default=None):
    """The Python value of a single-element constant (after broadcasting), else ``default``."""
    if isinstance(var, TensorConstant) and var.data.size == 1:
        return var.data.reshape(()).item()
    if isinstance(var, _PY_SCALARS):
        return var
    return default


def is_constant_value(var, value) -> bool:
    """True when ``var`` is a constant whose every element equals ``value``."""
    if not isinstance(var, TensorConstant):
        return False
    data = var.data
    return data.size > 0 and bool(np.all(data == value))
