"""The compile pipeline: rewrite a FunctionGraph for a mode, then hand it to a backend."""

from __future__ import annotations

import contextlib
import gc

from symgrad.backends import get_backend


@contextlib.contextmanager
def no_gc():
    """Pause the cyclic garbage collector: compiling allocates many small objects, and a
    full collection over a large graph in the middle of it costs more than it frees."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def rewrite_graph(fgraph, mode, n_explicit=None, mutable=None):
    """Apply the mode's rewrite sets to ``fgraph`` in place."""
    try:
        from symgrad.rewrite import apply_mode_rewrites
    except ImportError:  # pragma: no cover - the rewriter is part of symgrad
        return fgraph
    return apply_mode_rewrites(fgraph, mode, n_explicit=n_explicit, mutable=mutable)


def compile_graph(fgraph, mode, n_explicit=None, mutable=None, profile=False):
    """Returns ``(executable, rewritten_fgraph)``."""
    with no_gc():
        fgraph = rewrite_graph(fgraph, mode, n_explicit=n_explicit, mutable=mutable)
        backend = get_backend(mode.backend)
        if profile:
            return backend.compile_fgraph(fgraph, profile=True), fgraph
        return backend.compile_fgraph(fgraph), fgraph
