"""Shared variables: symbolic inputs that carry their own value between calls."""

from __future__ import annotations

import numpy as np

from symgrad.tensor.type import TensorType
from symgrad.tensor.variable import TensorVariable


class SharedVariable(TensorVariable):
    """A tensor whose value lives with it; functions read it and may update it.

    >>> import numpy as np, symgrad
    >>> w = symgrad.shared(np.zeros(2), name="w")
    >>> step = symgrad.function([], [], updates=[(w, w + 1)])
    >>> _ = step(); _ = step()
    >>> w.get_value()
    array([2., 2.])
    """

    __slots__ = ("container",)

    def __init__(self, type, value, name=None, strict=False, allow_downcast=None):
        super().__init__(type, None, None, name)
        self.container = [type.filter(value, strict=strict, allow_downcast=allow_downcast,
                                      name=name)]

    def get_value(self, borrow: bool = False, return_internal_type: bool = False):
        value = self.container[0]
        return value if borrow else value.copy()

    def set_value(self, value, borrow: bool = False):
        new = self.type.filter(value, name=self.name)
        if not borrow and new is value:
            new = new.copy()
        self.container[0] = new

    @property
    def value(self):
        return self.get_value()

    def clone(self):
        # A clone shares the storage: it is the same shared variable in another graph.
        new = SharedVariable.__new__(SharedVariable)
        TensorVariable.__init__(new, self.type, None, None, self.name)
        new.container = self.container
        new.tag = self.tag.copy()
        return new

    def __reduce__(self):
        return (_rebuild_shared, (self.type, self.container[0], self.name))


def _rebuild_shared(type, value, name):
    return SharedVariable(type, value, name)


def shared(value, name: str | None = None, strict: bool = False, allow_downcast=None,
           borrow: bool = False, shape=None):
    """A shared variable holding ``value`` (an array or a Python number).

    Its static shape is unknown in every dimension (so set_value may change it)
    unless ``shape`` says otherwise.
    """
    arr = np.asarray(value)
    if arr.dtype == object:
        raise TypeError(f"shared() needs numeric data, got {type(value).__name__}")
    if not borrow or not isinstance(value, np.ndarray):
        arr = np.array(arr)
    static = tuple(shape) if shape is not None else (None,) * arr.ndim
    return SharedVariable(TensorType(arr.dtype, static), arr, name=name, strict=strict,
                          allow_downcast=allow_downcast)
