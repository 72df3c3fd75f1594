"""Backends turn a rewritten FunctionGraph into something callable.

Each backend module provides ``compile_fgraph(fgraph) -> callable(*input_values) -> list``.
"""

from __future__ import annotations

import importlib

BACKENDS = {"python": "symgrad.backends.python", "jax": "symgrad.backends.jax",
            "numba": "symgrad.backends.numba"}


def get_backend(name: str):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    return importlib.import_module(BACKENDS[name])
