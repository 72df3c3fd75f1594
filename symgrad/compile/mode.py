"""Modes: which rewrite sets run and which backend executes the result."""

from __future__ import annotations

from symgrad.config import config

PREDEFINED = {
    # name: (rewrite sets, backend)
    "FAST_RUN": (("merge", "constant_folding", "canonicalize", "stabilize", "specialize",
                  "fuse", "inplace", "dead_code"), "python"),
    "FAST_COMPILE": (("merge", "constant_folding"), "python"),
    # (JAX fuses by itself; "scaled_identity" is the one rewrite of the fuse set it needs)
    "JAX": (("merge", "constant_folding", "canonicalize", "stabilize", "specialize",
             "scaled_identity", "dead_code"), "jax"),
    # ("stencil": increments into shifted slices as one loop, see tensor/rewriting/stencil.py)
    "NUMBA": (("merge", "constant_folding", "canonicalize", "stabilize", "specialize", "fuse",
               "stencil", "dead_code"), "numba"),
}


class Mode:
    """How to compile: the rewrite sets to apply and the backend to run on.

    >>> Mode("FAST_RUN").excluding("fuse").rewrite_sets[:3]
    ('merge', 'constant_folding', 'canonicalize')
    """

    def __init__(self, base: str = "FAST_RUN", including=(), excluding=(), backend=None,
                 disabled_rewrites=(), optimizer=None, linker=None):
        if base not in PREDEFINED:
            raise ValueError(f"unknown mode {base!r}; choose one of {sorted(PREDEFINED)}")
        sets, default_backend = PREDEFINED[base]
        if optimizer == "None":
            sets = ()
        self.base = base
        self.rewrite_sets = tuple(s for s in sets if s not in set(excluding)) + tuple(
            s for s in including if s not in sets)
        self.backend = backend or (linker if isinstance(linker, str) else None) or default_backend
        self.disabled_rewrites = frozenset(disabled_rewrites) | frozenset(
            s for s in excluding if s not in sets)

    def including(self, *names) -> Mode:
        """This mode with more rewrite sets (or rewrites switched off before, back on)."""
        return Mode(self.base, including=self.rewrite_sets + names, backend=self.backend,
                    disabled_rewrites=self.disabled_rewrites - frozenset(names)
                    )._with_sets(self.rewrite_sets + names)

    def excluding(self, *names) -> Mode:
        """This mode without some rewrite sets, or individual rewrites (by name)."""
        sets = tuple(s for s in self.rewrite_sets if s not in names)
        new = Mode(self.base, backend=self.backend,
                   disabled_rewrites=self.disabled_rewrites | frozenset(names))
        return new._with_sets(sets)

    def _with_sets(self, sets) -> Mode:
        self.rewrite_sets = tuple(dict.fromkeys(sets))
        return self

    def key(self):
        return (self.rewrite_sets, self.backend, tuple(sorted(self.disabled_rewrites)))

    def __repr__(self):
        return f"Mode({self.base}, sets={self.rewrite_sets}, backend={self.backend!r})"


def get_mode(mode) -> Mode:
    if mode is None:
        mode = config.mode
    if isinstance(mode, Mode):
        return mode
    if isinstance(mode, str):
        return Mode(mode.upper() if mode.upper() in PREDEFINED else mode)
    raise TypeError(f"mode must be a name ({', '.join(PREDEFINED)}) or a Mode, got {mode!r}")
