"""Declarative rewrites: ``pattern -> replacement, if condition``.

Patterns are ordinary graphs built with the tensor operators on *pattern
variables*::

    x = pattern_var("x")
    pattern_rewrite("local_log1p", st.log(1 + x), st.log1p(x), sets=("stabilize",),
                    condition=lambda m: m.x.dtype in float_dtypes)

Matching rules:

- a pattern variable matches any variable; used twice, it must match the very
  same variable both times (``x - x``);
- a constant in a pattern matches any constant whose every element equals it
  (whatever its dtype or broadcastable shape);
- an elementwise op matches the same scalar op (in place or not); commutative
  ops try both input orders, and an associative-commutative op (add, mul) of
  more inputs than the pattern binds a bare pattern variable to "the rest"
  (``x * 1`` matches ``mul(a, 1, b)`` with ``x = a * b``);
- other ops match by equality.

The replacement is a graph over the same pattern variables (rebuilt with the
bound values), or a callable ``replacement(m) -> variable | None``. The
result is cast back to the original dtype and padded to its ndim when
needed; a replacement whose static shape is not compatible is rejected
(patterns never change a result's shape).
"""

from __future__ import annotations

import itertools

import numpy as np

from symgrad.graph.basic import Constant
from symgrad.graph.traversal import toposort
from symgrad.rewrite.basic import LocalRewrite, register

__all__ = ["pattern_var", "pattern_vars", "PatternRewrite", "pattern_rewrite", "Match",
           "fit_to"]


class _PatternSpec:
    __slots__ = ("name", "constraint")

    def __init__(self, name, constraint):
        self.name = name
        self.constraint = constraint


def pattern_var(name: str, constraint=None, ndim: int = 0, dtype: str = "float64"):
    """A pattern variable (a symbolic scalar by default) for building patterns.

    ``constraint(var) -> bool`` restricts what it matches.
    """
    from symgrad.tensor.type import TensorType

    v = TensorType(dtype, (None,) * ndim)(name)
    v.tag.pattern = _PatternSpec(name, constraint)
    return v


def pattern_vars(names: str, **kwargs):
    """Several pattern variables: ``x, y = pattern_vars("x y")``."""
    return [pattern_var(n, **kwargs) for n in names.replace(",", " ").split()]


class Match:
    """The bindings of a successful match: ``m.x`` or ``m["x"]``, plus ``m.node``, ``m.fgraph``."""

    def __init__(self, bindings, node, fgraph):
        self.bindings = bindings
        self.node = node
        self.fgraph = fgraph

    def __getitem__(self, name):
        return self.bindings[name]

    def __getattr__(self, name):
        try:
            return self.__dict__["bindings"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def out(self):
        return self.node.outputs[0]


# -- compiling a pattern graph into a small tree --------------------------------------------------

def _compile_pattern(var):
    """A tree of tuples: ("var", name, constraint) | ("const", value) | ("op", ...)."""
    memo = {}
    leaves = [v for v in _template_vars(var)
              if v.owner is None or getattr(v.tag, "pattern", None) is not None]
    for v in leaves:
        spec = getattr(v.tag, "pattern", None)
        if spec is not None:
            memo[v] = ("var", spec.name, spec.constraint)
        elif isinstance(v, Constant):
            data = np.asarray(v.data)
            memo[v] = ("const", data.reshape(()).item() if data.size == 1 else data)
        else:
            raise TypeError(f"pattern input {v} is neither a pattern variable nor a constant")
    for node in toposort([var], inputs=leaves):
        op = node.op
        sop = getattr(op, "scalar_op", None)
        for v in node.outputs:
            if sop is not None:
                memo[v] = ("elemwise", sop, bool(sop.commutative),
                           bool(sop.commutative and sop.associative),
                           tuple(memo[i] for i in node.inputs), v.index)
            else:
                memo[v] = ("op", op, tuple(memo[i] for i in node.inputs), v.index)
    return memo[var]


_SCALAR_CACHE: dict = {}
_NOT_SCALAR = object()


def _const_scalar(var):
    """The single value of a one-element constant (cached: constants are immutable)."""
    e = _SCALAR_CACHE.get(id(var))
    if e is not None and e[0] is var:
        return e[1]
    data = var.data
    try:
        value = np.asarray(data).reshape(()).item() if np.size(data) == 1 else _NOT_SCALAR
    except Exception:  # pragma: no cover - exotic constants
        value = _NOT_SCALAR
    if len(_SCALAR_CACHE) > 50000:
        _SCALAR_CACHE.clear()
    _SCALAR_CACHE[id(var)] = (var, value)
    return value


def _const_matches(var, value) -> bool:
    if not isinstance(var, Constant):
        return False
    v = _const_scalar(var)
    if v is not _NOT_SCALAR:
        return bool(v == value)
    try:
        arr = np.asarray(var.data)
        return arr.size > 0 and bool(np.all(arr == value))
    except Exception:  # pragma: no cover - exotic constants
        return False


class _Rest:
    """The remaining inputs of an associative-commutative node bound to one variable."""

    __slots__ = ("op", "inputs")

    def __init__(self, op, inputs):
        self.op = op
        self.inputs = inputs


def _match(pat, var, b: dict) -> dict | None:
    """Match ``var`` against ``pat`` extending bindings ``b``; the new bindings or None."""
    kind = pat[0]
    if kind == "var":
        name = pat[1]
        if name in b:
            return b if b[name] is var else None
        if pat[2] is not None and not pat[2](var):
            return None
        nb = dict(b)
        nb[name] = var
        return nb
    if kind == "const":
        return b if _const_matches(var, pat[1]) else None
    owner = var.owner
    if owner is None:
        return None
    if kind == "elemwise":
        _, sop, commutative, ac, subs, index = pat
        op = owner.op
        if getattr(op, "scalar_op", None) != sop or type(op).__name__ != "Elemwise":
            return None
        if var.index != index:
            return None
        inputs = owner.inputs
        k = len(subs)
        n = len(inputs)
        if n == k:
            if not commutative:
                return _match_seq(subs, inputs, b)
            if n == 2:
                r = _match_seq(subs, inputs, b)
                return r if r is not None else _match_seq(subs, (inputs[1], inputs[0]), b)
            orders = itertools.permutations(range(n)) if n <= 4 else [tuple(range(n))]
            for perm in orders:
                r = _match_seq(subs, [inputs[p] for p in perm], b)
                if r is not None:
                    return r
            return None
        if ac and n > k:
            return _match_rest(subs, inputs, op, b)
        return None
    _, op, subs, index = pat
    if owner.op != op or var.index != index or len(owner.inputs) != len(subs):
        return None
    return _match_seq(subs, owner.inputs, b)


def _match_seq(subs, inputs, b):
    for sp, inp in zip(subs, inputs):
        b = _match(sp, inp, b)
        if b is None:
            return None
    return b


def _match_rest(subs, inputs, op, b):
    """k sub-patterns, one of them a free variable, against n > k inputs."""
    rest_positions = [j for j, sp in enumerate(subs) if sp[0] == "var" and sp[1] not in b]
    if len(rest_positions) != 1:
        return None
    rest_pat = subs[rest_positions[0]]
    others = [sp for j, sp in enumerate(subs) if j != rest_positions[0]]
    n = len(inputs)
    if len(others) == 1:
        # one sub-pattern to place: only inputs of the right kind can match it
        kind = others[0][0]
        if kind == "const":
            candidates = [(j,) for j in range(n) if isinstance(inputs[j], Constant)]
        elif kind in ("elemwise", "op"):
            candidates = [(j,) for j in range(n) if inputs[j].owner is not None]
        else:
            candidates = [(j,) for j in range(n)]
    elif n > 8:
        candidates = itertools.islice(itertools.permutations(range(n), len(others)), 512)
    else:
        candidates = itertools.permutations(range(n), len(others))
    for chosen in candidates:
        r = _match_seq(others, [inputs[c] for c in chosen], b)
        if r is None:
            continue
        rest = [inputs[j] for j in range(n) if j not in chosen]
        value = rest[0] if len(rest) == 1 else _Rest(op, rest)
        if rest_pat[2] is not None and not isinstance(value, _Rest) and not rest_pat[2](value):
            continue
        r = dict(r)
        r[rest_pat[1]] = value
        return r
    return None


# -- building the replacement ------------------------------------------------------------------

def _materialize(b: dict) -> dict:
    out = {}
    for k, v in b.items():
        if isinstance(v, _Rest):
            from symgrad.tensor.elemwise import Elemwise

            v = Elemwise(v.op.scalar_op)(*v.inputs)
        out[k] = v
    return out


def _instantiate(template, b: dict):
    memo = {}
    for v in _template_vars(template):
        spec = getattr(v.tag, "pattern", None)
        if spec is not None:
            memo[v] = b[spec.name]
    if template in memo:
        return memo[template]
    for node in toposort([template], inputs=list(memo)):
        new_inputs = [memo.get(i, i) for i in node.inputs]
        new_node = node.op.make_node(*new_inputs)
        memo.update(zip(node.outputs, new_node.outputs))
    return memo[template]


def _template_vars(template):
    seen = set()
    stack = [template]
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        yield v
        if v.owner is not None and getattr(v.tag, "pattern", None) is None:
            stack.extend(v.owner.inputs)


def fit_to(new, old):
    """``new`` made to have ``old``'s type (cast, padded), or None when it cannot be."""
    if new is None:
        return None
    if new.type == old.type:
        return new
    ot, nt = old.type, new.type
    if not hasattr(nt, "dtype") or not hasattr(ot, "dtype"):
        return None
    if nt.ndim > ot.ndim:
        return None
    if nt.ndim < ot.ndim:
        from symgrad.tensor.elemwise import _pad_to_ndim

        new = _pad_to_ndim(new, ot.ndim)
        nt = new.type
    if nt.dtype != ot.dtype:
        from symgrad.tensor.elemwise import cast

        new = cast(new, ot.dtype)
        nt = new.type
    if nt == ot or ot.is_super(nt):
        return new
    return None


_DOC_SLOT = LocalRewrite.__dict__["doc"]


class PatternRewrite(LocalRewrite):
    """A local rewrite from a pattern, a replacement and an optional condition."""

    __slots__ = ("pattern", "replacement", "condition", "compiled", "needs_const")

    def __init__(self, name, pattern, replacement, condition=None, sets=("canonicalize",)):
        compiled = _compile_pattern(pattern)
        if compiled[0] not in ("elemwise", "op"):
            raise TypeError(f"pattern {name}: the head of a pattern must be an op")
        if compiled[0] == "elemwise":
            tracks = (compiled[1],)
        else:
            tracks = (type(compiled[1]),)
        subs = compiled[4] if compiled[0] == "elemwise" else compiled[2]
        # Every sub-pattern is matched against one of the head's inputs: where one is an
        # elementwise function, some input must be its output, a condition the worklist
        # checks from its index before calling the rewrite (most nodes fail it).
        needs_owner = tuple(dict.fromkeys(sp[1] for sp in subs if sp[0] == "elemwise"))
        super().__init__(name, self._apply, tracks, sets, doc="", inputs=needs_owner or None)
        _DOC_SLOT.__set__(self, None)  # written on first use (printing is not imported before)
        self.pattern = pattern
        self.replacement = replacement
        self.condition = condition
        self.compiled = compiled
        self.needs_const = any(sp[0] == "const" for sp in subs)

    @property
    def doc(self) -> str:
        """``pattern -> replacement``, printed."""
        doc = _DOC_SLOT.__get__(self)
        if doc is None:
            doc = f"{_describe(self.pattern)} -> {_describe(self.replacement)}"
            _DOC_SLOT.__set__(self, doc)
        return doc

    @doc.setter
    def doc(self, value: str) -> None:
        _DOC_SLOT.__set__(self, value)

    def _apply(self, fgraph, node):
        pat = self.compiled
        index = pat[-1]
        if index >= len(node.outputs):
            return None
        if self.needs_const:
            for i in node.inputs:
                if isinstance(i, Constant):
                    break
            else:
                return None
        out = node.outputs[index]
        b = _match(pat, out, {})
        if b is None:
            return None
        m = Match(_materialize(b), node, fgraph)
        if self.condition is not None and not self.condition(m):
            return None
        if callable(self.replacement) and not hasattr(self.replacement, "type"):
            new = self.replacement(m)
        else:
            new = _instantiate(self.replacement, m.bindings)
        if new is None:
            return None
        new = fit_to(new, out)
        if new is None or new is out:
            return None
        return {out: new}


def _describe(graph) -> str:
    if callable(graph) and not hasattr(graph, "type"):
        return getattr(graph, "__name__", "<function>")
    try:
        from symgrad.printing import pp

        return pp(graph)
    except Exception:  # pragma: no cover
        return repr(graph)


def pattern_rewrite(name, pattern, replacement, condition=None, sets=("canonicalize",)):
    """Create and register a :class:`PatternRewrite`; returns it.

    >>> import symgrad.tensor as st
    >>> x = pattern_var("x")
    >>> rw = pattern_rewrite("doc_example_log_exp", st.log(st.exp(x)), x, sets=("doc",))
    >>> rw.doc
    'log(exp(x)) -> x'
    >>> from symgrad.rewrite import registry; registry.remove("doc_example_log_exp")
    """
    return register(PatternRewrite(name, pattern, replacement, condition, sets))


class _PatternOps:
    """``P.sigmoid(x)``: a pattern node for an elementwise function, built without asking
    numpy (or scipy) for its dtype, so that defining patterns imports nothing."""

    def __getattr__(self, name):
        import symgrad.tensor as st

        fn = getattr(st, name)
        op = getattr(fn, "op", None)
        if op is None:
            raise AttributeError(f"{name} is not an elementwise function")

        def build(*args):
            from symgrad.graph.basic import Apply
            from symgrad.tensor.basic import as_tensor_variable
            from symgrad.tensor.type import TensorType

            inputs = [as_tensor_variable(a) for a in args]
            return Apply(op, inputs, [TensorType("float64", ())()]).outputs[0]
        return build


P = _PatternOps()
__all__.append("P")
