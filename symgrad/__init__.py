"""symgrad: symbolic tensor expressions with exact derivatives, compiled to fast code.

>>> import symgrad
>>> import symgrad.tensor as st
>>> x = st.dscalar("x")
>>> f = symgrad.function([x], symgrad.grad(x ** 2, x))
>>> f(4.0)
array(8.)
"""

from symgrad.config import config
from symgrad import tensor
from symgrad import gradient
from symgrad.gradient import grad, Lop, Rop, jacobian, hessian
from symgrad.compile import In, Out, function, shared, Mode
from symgrad.printing import pp, dprint
from symgrad import printing
from symgrad.scan import scan

__version__ = "0.1.0"

__all__ = ["config", "tensor", "gradient", "grad", "Lop", "Rop", "jacobian", "hessian", "In",
           "Out", "function", "shared", "Mode", "pp", "dprint", "printing", "scan"]
