"""Rewrites and the registry they live in.

A *local* rewrite looks at one Apply node and proposes replacements for its
outputs: ``fn(fgraph, node) -> None | [new_output, ...] | {old_var: new_var}``.
It declares the ops it concerns (``tracks``) so that the engine only calls it on
matching nodes, a unique ``name`` (to switch it off) and the named ``sets`` it
belongs to (``canonicalize``, ``stabilize``, ``specialize``, ...).

A *global* rewrite is a pass over the whole graph: ``fn(fgraph, context)``.

Tracks may be given as:

- an op class (``DimShuffle``), matching nodes whose op is an instance of it;
- an elementwise function (``st.mul``) or an ``Elemwise`` op or ``ScalarOp``:
  matching Elemwise nodes around that scalar op (any ``inplace``);
- the string ``"module:Class"`` of an op class that may not exist yet (the
  rewrite is skipped cleanly while it does not). Naming a track this way never
  imports the module: until something imports it, no node of the class can exist,
  and the engine's index resolves the name once the module is loaded;
- None: every node.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

__all__ = [
    "LocalRewrite", "GlobalRewrite", "RewriteRegistry", "registry", "register",
    "node_rewriter", "global_rewriter", "node_key", "resolve_track",
]


class LocalRewrite:
    """One node-level rewrite (see the module docstring)."""

    __slots__ = ("name", "fn", "tracks", "sets", "doc", "inputs")

    def __init__(self, name: str, fn: Callable, tracks=None, sets: Iterable[str] = (),
                 doc: str | None = None, inputs=None):
        self.name = name
        self.fn = fn
        self.tracks = _as_tracks(tracks)
        self.sets = frozenset(sets)
        self.doc = doc if doc is not None else (getattr(fn, "__doc__", None) or "")
        # tracks of which at least one input's owner must be, for the rewrite to be tried
        # (the rewrite promises to do nothing otherwise): () means no such condition
        self.inputs = _as_tracks(inputs)

    def __call__(self, fgraph, node):
        return self.fn(fgraph, node)

    def __repr__(self):
        return f"LocalRewrite({self.name}, sets={sorted(self.sets)})"


def _as_tracks(tracks) -> tuple:
    if isinstance(tracks, list | tuple):
        return tuple(tracks)
    return () if tracks is None else (tracks,)


class GlobalRewrite:
    """A pass over the whole graph: ``fn(fgraph, context)``."""

    __slots__ = ("name", "fn", "sets", "doc")

    def __init__(self, name: str, fn: Callable, sets: Iterable[str] = (), doc: str | None = None):
        self.name = name
        self.fn = fn
        self.sets = frozenset(sets)
        self.doc = doc if doc is not None else (getattr(fn, "__doc__", None) or "")

    def __call__(self, fgraph, context):
        return self.fn(fgraph, context)

    def __repr__(self):
        return f"GlobalRewrite({self.name}, sets={sorted(self.sets)})"


_MISSING = object()


def resolve_track(track):
    """The index key of one track; None for every node; a ``"module:Class"`` string
    itself while that module is not imported (yet), or not done importing."""
    if track is None:
        return None
    if isinstance(track, str):
        if ":" in track:
            module, _, attr = track.partition(":")
            loaded = sys.modules.get(module)
            cls = _MISSING if loaded is None else getattr(loaded, attr, _MISSING)
            return track if cls is _MISSING else cls
        return ("elemwise", track)  # a scalar op name
    if isinstance(track, type):
        return track
    sop = getattr(track, "scalar_op", None)  # an Elemwise op or an elementwise function
    if sop is not None:
        return ("elemwise", sop.name)
    from symgrad.tensor.elemwise import ScalarOp

    if isinstance(track, ScalarOp):
        return ("elemwise", track.name)
    return type(track)  # an op instance: any op of its class


def node_key(op):
    """The elementwise index key of ``op``, or None when it is not an Elemwise."""
    sop = getattr(op, "scalar_op", None)
    if sop is not None and type(op).__name__ == "Elemwise":
        return ("elemwise", sop.name)
    return None


class RewriteRegistry:
    """All registered rewrites, by name."""

    def __init__(self):
        self.local: dict[str, LocalRewrite] = {}
        self.global_: dict[str, GlobalRewrite] = {}
        self._version = 0
        self._loaded = False

    def add(self, rewrite):
        if isinstance(rewrite, GlobalRewrite):
            self.global_[rewrite.name] = rewrite
        else:
            self.local[rewrite.name] = rewrite
        self._version += 1
        return rewrite

    def remove(self, name: str) -> None:
        self.local.pop(name, None)
        self.global_.pop(name, None)
        self._version += 1

    def _load(self):
        """The tensor rewrites register themselves on import; load them on first look-up."""
        if not self._loaded:
            self._loaded = True
            import symgrad.tensor.rewriting  # noqa: F401

    def __getitem__(self, name):
        self._load()
        if name in self.local:
            return self.local[name]
        return self.global_[name]

    def __contains__(self, name):
        self._load()
        return name in self.local or name in self.global_

    def names(self, set_name: str | None = None) -> list[str]:
        self._load()
        every = list(self.local.values()) + list(self.global_.values())
        return sorted(r.name for r in every if set_name is None or set_name in r.sets)

    def select_local(self, sets: Iterable[str], disabled: frozenset) -> list[LocalRewrite]:
        sets = set(sets)
        return [r for r in self.local.values()
                if r.sets & sets and r.name not in disabled and not (r.sets & disabled)]


registry = RewriteRegistry()


def register(rewrite):
    """Add a LocalRewrite or GlobalRewrite to the registry; returns it."""
    return registry.add(rewrite)


def node_rewriter(tracks=None, *, sets=("canonicalize",), name: str | None = None, inputs=None):
    """Decorator: register ``fn(fgraph, node)`` as a local rewrite.

    ``inputs``: tracks (as for ``tracks``) of which some input of the node must be an
    output, for the rewrite to be tried at all; a rewrite that looks for, say, a ``fill``
    among the inputs declares it, and the engine does not call it on the many nodes that
    have none.

    >>> import symgrad.tensor as st
    >>> @node_rewriter([st.neg], sets=("canonicalize",), name="doc_example_neg")
    ... def doc_example_neg(fgraph, node):
    ...     return None
    >>> registry["doc_example_neg"].sets
    frozenset({'canonicalize'})
    >>> registry.remove("doc_example_neg")
    """
    def deco(fn):
        rw = LocalRewrite(name or fn.__name__, fn, tracks, sets, inputs=inputs)
        register(rw)
        fn.rewrite = rw
        return fn
    return deco


def global_rewriter(*, sets, name: str | None = None):
    """Decorator: register ``fn(fgraph, context)`` as a whole-graph pass."""
    def deco(fn):
        rw = GlobalRewrite(name or fn.__name__, fn, sets)
        register(rw)
        fn.rewrite = rw
        return fn
    return deco
