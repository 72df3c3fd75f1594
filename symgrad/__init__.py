"""symgrad: symbolic tensor expressions with exact derivatives, compiled to fast code.

>>> import symgrad
>>> import symgrad.tensor as st
>>> x = st.dscalar("x")
>>> f = symgrad.function([x], symgrad.grad(x ** 2, x))
>>> f(4.0)
array(8.)

``import symgrad`` loads the configuration and the core of :mod:`symgrad.tensor`; every
other name (``grad``, ``function``, ``scan``, ``pp``, the submodules) imports its module on
first use (see :mod:`symgrad._lazy`), so a short script pays only for what it uses.
"""

from symgrad._lazy import make_lazy

make_lazy(__name__, {
    "gradient": "symgrad.gradient",
    "grad": "symgrad.gradient:grad",
    "Lop": "symgrad.gradient:Lop",
    "Rop": "symgrad.gradient:Rop",
    "jacobian": "symgrad.gradient:jacobian",
    "hessian": "symgrad.gradient:hessian",
    "compile": "symgrad.compile",
    "In": "symgrad.compile.io:In",
    "Out": "symgrad.compile.io:Out",
    "function": "symgrad.compile.function:function",
    "shared": "symgrad.compile.sharedvalue:shared",
    "Mode": "symgrad.compile.mode:Mode",
    "printing": "symgrad.printing",
    "pp": "symgrad.printing:pp",
    "dprint": "symgrad.printing:dprint",
    "scan": "symgrad.scan:scan",
    "graph": "symgrad.graph",
    "rewrite": "symgrad.rewrite",
    "backends": "symgrad.backends",
}, shadowed=("scan",))

from symgrad.config import config  # noqa: E402
from symgrad import tensor  # noqa: E402

__version__ = "0.1.0"

__all__ = ["config", "tensor", "gradient", "grad", "Lop", "Rop", "jacobian", "hessian", "In",
           "Out", "function", "shared", "Mode", "pp", "dprint", "printing", "scan"]
