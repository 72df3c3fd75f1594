"""The tensor language: types, constructors and every tensor op.

Mirrors ``pytensor.tensor``: ``import symgrad.tensor as st`` then ``st.dmatrix("x")``,
``st.exp(x)``, ``st.grad(cost, x)``.
"""

from symgrad.tensor.type import (
    CONSTRUCTORS as _CONSTRUCTORS,
    TensorType,
    tensor,
)
from symgrad.tensor.variable import TensorConstant, TensorVariable
from symgrad.tensor.basic import as_tensor, as_tensor_variable, constant, get_scalar_constant_value
from symgrad.tensor.elemwise import DimShuffle, Elemwise, ScalarOp, cast
from symgrad.tensor.math import *
from symgrad.tensor.shape import *
from symgrad.tensor.reduction import *
from symgrad.tensor.linalg import *
from symgrad.tensor.subtensor import *
from symgrad.tensor.sort import *
from symgrad.tensor.special import *
from symgrad.tensor.extra_ops import *

globals().update(_CONSTRUCTORS)


def __getattr__(name):
    # grad lives in symgrad.gradient, which imports this package; resolve it late.
    if name in ("grad", "jacobian", "hessian", "Rop", "Lop"):
        import symgrad.gradient as _gradient

        return getattr(_gradient, name)
    raise AttributeError(f"module 'symgrad.tensor' has no attribute {name!r}")
