"""Helpers shared by the tensor rewrites."""

from __future__ import annotations

import sys

import numpy as np

from symgrad.config import config
from symgrad.graph.basic import Constant
from symgrad.tensor.rewriting.dims import Dims
from symgrad.tensor.type import complex_dtypes, discrete_dtypes, float_dtypes

__all__ = ["elemwise_name", "owner_if", "is_float", "is_int", "scalar_const", "const_equals",
           "single_client", "get_dims", "fast_math", "known_finite", "lazy_class",
           "loaded_class"]


def elemwise_name(var) -> str | None:
    """The scalar op name when ``var`` is computed by an Elemwise, else None."""
    node = var.owner
    if node is None:
        return None
    sop = getattr(node.op, "scalar_op", None)
    if sop is None or type(node.op).__name__ != "Elemwise":
        return None
    return sop.name


def owner_if(var, name: str):
    """``var.owner`` when it is an Elemwise of scalar op ``name``, else None."""
    return var.owner if elemwise_name(var) == name else None


def is_float(var) -> bool:
    return var.type.dtype in float_dtypes or var.type.dtype in complex_dtypes


def is_int(var) -> bool:
    return var.type.dtype in discrete_dtypes


def scalar_const(var, default=None):
    """The Python value of a constant with exactly one element, else ``default``."""
    if isinstance(var, Constant):
        data = var.data
        if getattr(data, "size", None) == 1:
            return np.asarray(data).reshape(()).item()
    return default


def const_equals(var, value) -> bool:
    """True when ``var`` is a constant whose every element equals ``value`` (non-empty)."""
    if not isinstance(var, Constant):
        return False
    arr = np.asarray(var.data)
    if arr.size == 0:
        return False
    if arr.size == 1:
        return bool(arr.reshape(()).item() == value)
    return bool(np.all(arr == value))


def single_client(fgraph, var) -> bool:
    """``var`` is used exactly once, by a node (not as a graph output)."""
    clients = fgraph.clients.get(var, ())
    return len(clients) == 1 and clients[0][0] != "output"


def get_dims(fgraph) -> Dims:
    """The dims analysis for ``fgraph`` (memoised on it)."""
    d = fgraph.__dict__.get("_symgrad_dims")
    if d is None:
        d = fgraph.__dict__["_symgrad_dims"] = Dims()
        memo = d.memo

        def forget_changed(event, node, *args):
            # A node whose input was replaced keeps its output variables: what was found
            # for them stays true but may now be less precise than the new input allows.
            if event == "change_input" and not isinstance(node, str):
                for o in node.outputs:
                    memo.pop(o, None)

        fgraph.listeners.append(forget_changed)
    return d


def fast_math() -> bool:
    return bool(config.fast_math)


def known_finite(var) -> bool:
    """``var`` can hold no NaN or inf (integer and boolean dtypes)."""
    return var.type.dtype in discrete_dtypes


def loaded_class(spec: str):
    """The class named ``"module:Class"`` if its module is imported, else None. For asking
    whether a node's op is one: no node of a class exists before its module is imported,
    so, unlike :func:`lazy_class`, this never imports the module."""
    module, _, attr = spec.partition(":")
    loaded = sys.modules.get(module)
    return None if loaded is None else getattr(loaded, attr, None)


_CLASS_CACHE: dict = {}


def lazy_class(spec: str):
    """The class named ``"module:Class"``, or None when it does not exist (yet)."""
    if spec in _CLASS_CACHE:
        return _CLASS_CACHE[spec]
    import importlib

    module, _, attr = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr, None)
    except ImportError:
        cls = None
    if cls is not None:
        _CLASS_CACHE[spec] = cls
    return cls
