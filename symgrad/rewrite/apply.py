"""Running a mode's rewrite sets over a FunctionGraph, in phases.

Phases, in order (each only when the mode includes its set):

1. ``merge``: identical nodes and equal constants become one;
2. ``canonicalize`` (with ``constant_folding`` and merging on the fly);
3. ``stabilize`` (canonicalize's rewrites run too, to keep the graph canonical);
4. ``specialize`` (with canonicalize's rewrites);
5. any other local set the mode includes by name;
6. ``fuse`` then ``inplace``: whole-graph passes;
7. ``dead_code``.

A mode that has ``constant_folding`` but no local phase (``FAST_COMPILE``)
runs a folding-only worklist.
"""

from __future__ import annotations

import time

from symgrad.rewrite.basic import registry
from symgrad.rewrite.engine import (
    RewriteContext,
    dead_code_pass,
    merge_pass,
    run_local_rewrites,
)

__all__ = ["apply_mode_rewrites", "LOCAL_PHASES", "GLOBAL_PHASES"]

LOCAL_PHASES = ("canonicalize", "stabilize", "specialize")
GLOBAL_PHASES = ("fuse", "inplace")
_STRUCTURAL = ("merge", "constant_folding", "dead_code")

_PHASE_SETS = {
    "canonicalize": ("canonicalize",),
    "stabilize": ("canonicalize", "stabilize"),
    "specialize": ("canonicalize", "specialize"),
}

_loaded = False


def _load_rewrites():
    global _loaded
    if not _loaded:
        import symgrad.tensor.rewriting  # noqa: F401  (registers the tensor rewrites)

        _loaded = True


_SELECTED: dict = {}


def _select_local(sets: tuple, disabled: frozenset) -> tuple:
    """``registry.select_local``, remembered until the registry changes."""
    key = (sets, disabled, registry._version)
    found = _SELECTED.get(key)
    if found is None:
        if len(_SELECTED) > 256:
            _SELECTED.clear()
        found = _SELECTED[key] = tuple(registry.select_local(sets, disabled))
    return found


def apply_mode_rewrites(fgraph, mode, n_explicit=None, mutable=None):
    """Rewrite ``fgraph`` in place for ``mode``; returns it.

    Timings per phase and counts per rewrite are left in ``fgraph.rewrite_stats``.
    """
    sets = tuple(getattr(mode, "rewrite_sets", ()) or ())
    if not sets:
        return fgraph
    _load_rewrites()
    context = RewriteContext(fgraph, mode, n_explicit, mutable)
    disabled = context.disabled
    times = {}

    def on(name):
        return name in sets and name not in disabled

    merge = on("merge")
    fold = on("constant_folding")
    extra = [s for s in sets if s not in LOCAL_PHASES + GLOBAL_PHASES + _STRUCTURAL]
    if merge and not any(on(p) for p in LOCAL_PHASES + tuple(extra)) and not fold:
        # (a worklist merges as it visits every node, so only a merge-only mode needs this)
        t = time.perf_counter()
        merge_pass(fgraph, context)
        times["merge"] = time.perf_counter() - t
    ran_local = False
    ran_sets: set = set()
    for phase in LOCAL_PHASES + tuple(extra):
        if not on(phase):
            continue
        phase_sets = [s for s in _PHASE_SETS.get(phase, (phase,)) if on(s)]
        rewrites = _select_local(tuple(phase_sets), disabled)
        if not rewrites and phase in extra:
            continue
        initial = None
        if ran_local:
            # the graph is a fixed point of the sets already run: untouched nodes only
            # need this phase's new rewrites on their first visit
            initial = [r for r in rewrites if not (r.sets & ran_sets)]
        t = time.perf_counter()
        before = sum(context.stats.values())
        run_local_rewrites(fgraph, rewrites, context=context, merge=merge, fold=fold,
                           initial=initial)
        if merge and initial is not None and sum(context.stats.values()) != before:
            merge_pass(fgraph, context)  # new nodes may equal untouched ones
        times[phase] = time.perf_counter() - t
        ran_local = True
        ran_sets.update(phase_sets)
    if fold and not ran_local:
        t = time.perf_counter()
        run_local_rewrites(fgraph, [], context=context, merge=merge, fold=True)
        times["constant_folding"] = time.perf_counter() - t
    for phase in GLOBAL_PHASES + tuple(extra):
        if not on(phase):
            continue
        for rw in sorted(registry.global_.values(), key=lambda r: r.name):
            if phase in rw.sets and rw.name not in disabled and not (rw.sets & disabled):
                t = time.perf_counter()
                rw(fgraph, context)
                times[rw.name] = time.perf_counter() - t
    if on("dead_code"):
        dead_code_pass(fgraph, context)
    fgraph.rewrite_stats = context.stats
    fgraph.rewrite_times = times
    return fgraph
