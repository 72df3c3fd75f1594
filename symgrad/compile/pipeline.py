"""The compile pipeline: rewrite a FunctionGraph for a mode, then hand it to a backend."""

from __future__ import annotations

from symgrad.backends import get_backend


def rewrite_graph(fgraph, mode, n_explicit=None, mutable=None):
    """Apply the mode's rewrite sets to ``fgraph`` in place (no-op until the rewriter lands)."""
    try:
        from symgrad.rewrite import apply_mode_rewrites
    except ImportError:
        return fgraph
    return apply_mode_rewrites(fgraph, mode, n_explicit=n_explicit, mutable=mutable)


def compile_graph(fgraph, mode, n_explicit=None, mutable=None, profile=False):
    """Returns ``(executable, rewritten_fgraph)``."""
    fgraph = rewrite_graph(fgraph, mode, n_explicit=n_explicit, mutable=mutable)
    backend = get_backend(mode.backend)
    if profile:
        return backend.compile_fgraph(fgraph, profile=True), fgraph
    return backend.compile_fgraph(fgraph), fgraph
