"""function(), shared variables, In/Out and modes."""

from symgrad.compile.function import Function, UnusedInputError, function
from symgrad.compile.io import In, Out
from symgrad.compile.mode import Mode, get_mode
from symgrad.compile.sharedvalue import SharedVariable, shared
from symgrad.graph.fgraph import MissingInputError

__all__ = ["Function", "UnusedInputError", "function", "In", "Out", "Mode", "get_mode",
           "SharedVariable", "shared", "MissingInputError"]
