"""The tensor language: types, constructors and every tensor op.

Mirrors ``pytensor.tensor``: ``import symgrad.tensor as st`` then ``st.dmatrix("x")``,
``st.exp(x)``, ``st.grad(cost, x)``.

The types, the constructors and the elementwise functions are loaded with the package;
shape and creation functions, reductions, indexing, linear algebra, sorting and the
special functions are imported from their modules on first use (see :mod:`symgrad._lazy`).
"""

from symgrad._lazy import make_lazy

# Public names that live in modules loaded on first use, by module. Where two modules
# export a name, the later one here wins (``logsumexp`` is special's).
_LAZY_MODULES = {
    "shape": ("Shape", "Shape_i", "Reshape", "Join", "Split", "Alloc", "SpecifyShape", "shape",
              "shape_i", "concatenate_shape", "reshape", "flatten", "dimshuffle", "transpose",
              "expand_dims", "squeeze", "concatenate", "stack", "split", "broadcast_to",
              "specify_shape", "alloc"),
    "creation": ("ARange", "Eye", "Repeat", "RepeatGrad", "zeros", "ones", "full", "zeros_like",
                 "ones_like", "full_like", "arange", "eye", "repeat", "tile"),
    "reduction": ("sum", "prod", "mean", "var", "std", "max", "min", "argmax", "argmin", "any",
                  "all", "max_and_argmax"),
    "linalg": ("dot", "matmul", "tensordot", "outer", "einsum"),
    "subtensor": ("getitem", "set_subtensor", "inc_subtensor", "take", "Subtensor",
                  "AdvancedSubtensor", "IncSubtensor", "AdvancedIncSubtensor"),
    "sort": ("sort", "argsort"),
    "special": ("softmax", "log_softmax", "logsumexp"),
    "extra_ops": ("cumsum", "cumprod", "diff"),
}
# Submodules reachable as attributes (``st.linalg``); ``shape`` and ``sort`` name functions.
_SUBMODULES = ("type", "variable", "basic", "elemwise", "math", "shape", "creation", "reduction",
               "linalg", "subtensor", "sort", "special", "extra_ops", "fusion", "rewriting")
_GRADIENT = ("grad", "jacobian", "hessian", "Rop", "Lop")  # st.grad is symgrad.grad

_names = {sub: f"symgrad.tensor.{sub}" for sub in _SUBMODULES}
for _module, _exported in _LAZY_MODULES.items():
    _names.update({n: f"symgrad.tensor.{_module}:{n}" for n in _exported})
_names.update({n: f"symgrad.gradient:{n}" for n in _GRADIENT})
make_lazy(__name__, _names, shadowed=("shape", "sort"))
del _module, _exported, _names

from symgrad.tensor.type import (  # noqa: E402
    CONSTRUCTORS as _CONSTRUCTORS,
    TensorType,
    tensor,
)
from symgrad.tensor.variable import TensorConstant, TensorVariable  # noqa: E402
from symgrad.tensor.basic import (  # noqa: E402
    as_tensor,
    as_tensor_variable,
    constant,
    get_scalar_constant_value,
)
from symgrad.tensor.elemwise import DimShuffle, Elemwise, ScalarOp, cast  # noqa: E402
from symgrad.tensor.math import *  # noqa: E402, F403
from symgrad.tensor.math import __all__ as _math_all  # noqa: E402

globals().update(_CONSTRUCTORS)

__all__ = sorted({"TensorType", "tensor", "TensorConstant", "TensorVariable", "as_tensor",
                  "as_tensor_variable", "constant", "get_scalar_constant_value", "DimShuffle",
                  "Elemwise", "ScalarOp", "cast", *_math_all, *_CONSTRUCTORS, *_GRADIENT,
                  *(n for names in _LAZY_MODULES.values() for n in names)})
