"""Packages whose public names are imported on first use (PEP 562, with a module subclass).

``import symgrad`` loads only what building and compiling a tensor expression needs;
scan, printing, the linear algebra, sorting, indexing and shape modules, the backends and
the rewrites are imported when one of their names is first looked up. Each lazily
resolved value is then stored in the package's namespace, so later lookups are ordinary
attribute reads.

Some packages hold a function named like one of their submodules (``symgrad.scan``,
``symgrad.tensor.shape``, ``symgrad.tensor.sort``): the function is the public name.
Importing such a submodule makes the import system set the parent's attribute to the
module; :class:`LazyPackage` ignores that assignment, so the function stays what the name
means whichever is imported first.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


class LazyPackage(ModuleType):
    """A package module with lazily imported attributes.

    ``_lazy_names`` maps a public name to ``"module"`` (the name is a submodule) or
    ``"module:attribute"``; ``_lazy_shadowed`` holds the names a submodule must not
    replace (a function of that name is the public meaning)."""

    def __getattr__(self, name: str):
        target = self.__dict__.get("_lazy_names", {}).get(name)
        if target is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        value = getattr(module, attribute) if attribute else module
        ModuleType.__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value) -> None:
        if (isinstance(value, ModuleType) and name in self.__dict__.get("_lazy_shadowed", ())
                and value.__name__ == f"{self.__name__}.{name}"):
            return  # the import system announcing the submodule: the function keeps the name
        ModuleType.__setattr__(self, name, value)

    def __dir__(self):
        return sorted(set(self.__dict__) | set(self.__dict__.get("_lazy_names", {})))


def make_lazy(module_name: str, names: dict[str, str], shadowed=()) -> None:
    """Turn the (already executing) module ``module_name`` into a :class:`LazyPackage`."""
    module = sys.modules[module_name]
    module._lazy_names = names
    module._lazy_shadowed = frozenset(shadowed)
    module.__class__ = LazyPackage


def loaded_attr(module_name: str, name: str):
    """``module.name`` if the module is imported already, else None; never imports it.

    For asking whether a node's op is of a class: no node of a class exists before its
    module is imported, so code that only compares classes need not import the module."""
    module = sys.modules.get(module_name)
    return None if module is None else getattr(module, name, None)
