"""In and Out: wrappers that give function inputs names and defaults, and outputs borrow flags."""

from __future__ import annotations

from symgrad.graph.basic import Variable


class In:
    """A function input with options.

    Parameters
    ----------
    variable : the symbolic input.
    name : keyword name for the call (defaults to the variable's name).
    value : a default value, used when the caller leaves the argument out.
    mutable : the function may overwrite the caller's array (lets in-place rewrites use it).
    borrow : accepted for PyTensor compatibility.

    >>> import symgrad, symgrad.tensor as st
    >>> x, y = st.dscalars("x", "y")
    >>> f = symgrad.function([x, symgrad.In(y, value=1.0)], x + y)
    >>> f(2.0), f(2.0, 5.0), f(2.0, y=3.0)
    (array(3.), array(7.), array(5.))
    """

    def __init__(self, variable: Variable, name: str | None = None, value=None, update=None,
                 mutable: bool = False, borrow: bool = False, strict: bool = False,
                 allow_downcast: bool | None = None, implicit: bool = False):
        if not isinstance(variable, Variable):
            raise TypeError(f"In() needs a symbolic variable, got {type(variable).__name__}")
        self.variable = variable
        self.name = name if name is not None else variable.name
        self.value = value
        self.has_default = value is not None
        self.update = update
        self.mutable = mutable
        self.borrow = borrow
        self.strict = strict
        self.allow_downcast = allow_downcast
        self.implicit = implicit

    def __repr__(self):
        return f"In({self.variable})"


class Out:
    """A function output; ``borrow=True`` allows returning internal storage without a copy."""

    def __init__(self, variable: Variable, borrow: bool = False):
        self.variable = variable
        self.borrow = borrow

    def __repr__(self):
        return f"Out({self.variable})"
