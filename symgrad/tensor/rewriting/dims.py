"""Which dimensions are provably equal: a small symbolic shape analysis.

Each dimension of a tensor is described by a frozenset of *atoms*:

- the empty set: length 1 (a broadcastable dimension);
- ``{n}`` for a static length n > 1;
- ``{(var, k)}``: "the runtime length of dimension k of var" for unknown lengths.

Broadcasting dims is the union of their sets (a static length absorbs the
unknown ones: they must equal it or be 1 at run time). Two dims with equal
sets are equal at run time, so ``fill(a, b) -> b`` is safe when the dims of b
equal the dims of the fill. The facts stay true while the graph is rewritten
(rewrites keep values), so results are memoised per variable.
"""

from __future__ import annotations

import sys

__all__ = ["Dims", "dims_of", "same_dims", "bcast_dims", "length_dims", "DIMS_RULES"]

_ONE = frozenset()


def _simplify(atoms: frozenset) -> frozenset:
    static = [a for a in atoms if isinstance(a, int)]
    if static:
        return frozenset(static[:1]) if len(set(static)) == 1 else frozenset(static)
    return atoms


def bcast_dims(dims_list):
    """The dims of the broadcast of several dims tuples of equal length."""
    if len(dims_list) == 1:
        return dims_list[0]
    out = []
    for ds in zip(*dims_list):
        first = ds[0]
        if all(d == first for d in ds):
            out.append(first)
        else:
            out.append(_simplify(frozenset().union(*ds)))
    return tuple(out)


def _static_dims(var):
    out = []
    for k, s in enumerate(var.type.shape):
        if s == 1:
            out.append(_ONE)
        elif s is not None:
            out.append(frozenset((int(s),)))
        else:
            out.append(frozenset(((var, k),)))
    return tuple(out)


def _elemwise_rule(node, in_dims, analysis=None):
    d = bcast_dims(in_dims)
    return [d] * len(node.outputs)


def _dimshuffle_rule(node, in_dims, analysis=None):
    (d,) = in_dims
    return [tuple(_ONE if k == "x" else d[k] for k in node.op.new_order)]


def _passthrough_rule(node, in_dims, analysis=None):
    return [in_dims[0]]


DIMS_RULES: dict = {}  # op class -> rule(node, input_dims, analysis) -> [dims per output] | None
# "module:Class" -> rule, for op modules not imported yet: no node of such a class can exist
# before its module is imported, so the rule is moved to DIMS_RULES once it is.
_PENDING_RULES: dict = {}
_N_MODULES = [0]  # len(sys.modules) when _PENDING_RULES was last looked at


def register_rule(op_class, rule) -> None:
    """The dims rule of ``op_class``: a class, or ``"module:Class"`` (which does not import
    the module). The first rule registered for a class is kept."""
    if isinstance(op_class, str):
        module = sys.modules.get(op_class.partition(":")[0])
        cls = None if module is None else getattr(module, op_class.partition(":")[2], None)
        if cls is None:
            _PENDING_RULES.setdefault(op_class, rule)
            return
        op_class = cls
    DIMS_RULES.setdefault(op_class, rule)


def _resolve_pending() -> bool:
    """Move the rules of the classes imported since the last look; True when any moved."""
    _N_MODULES[0] = len(sys.modules)
    moved = False
    for spec in list(_PENDING_RULES):
        module, _, attr = spec.partition(":")
        cls = getattr(sys.modules.get(module), attr, None)
        if cls is not None:
            DIMS_RULES.setdefault(cls, _PENDING_RULES.pop(spec))
            moved = True
    return moved


def _rules():
    if not DIMS_RULES:
        from symgrad.tensor.elemwise import DimShuffle, Elemwise

        DIMS_RULES[Elemwise] = _elemwise_rule
        DIMS_RULES[DimShuffle] = _dimshuffle_rule
        try:
            from symgrad.tensor.fusion import FusedElemwise

            DIMS_RULES[FusedElemwise] = _fused_rule
        except ImportError:  # pragma: no cover
            pass
        register_rule("symgrad.tensor.shape:SpecifyShape", _specify_rule)
    if _PENDING_RULES and len(sys.modules) != _N_MODULES[0]:
        _resolve_pending()
    return DIMS_RULES


def _fused_rule(node, in_dims, analysis=None):
    deps = node.op.output_dependencies()
    out = []
    for o, dep in zip(node.outputs, deps):
        if not dep:
            out.append(_static_dims(o))
        else:
            out.append(bcast_dims([in_dims[i] for i in dep]))
    return out


def _specify_rule(node, in_dims, analysis=None):
    """Static lengths, and a symbolic length ``shape_i(w, k)`` is dimension k of w (the
    check at run time makes it so); any other symbolic length is an atom of its own."""
    out = []
    lengths = iter(node.inputs[1:])
    for s, d, m in zip(node.outputs[0].type.shape, in_dims[0], node.op.mask):
        n = next(lengths) if m else None
        if s is not None:
            out.append(_ONE if s == 1 else frozenset((s,)))
        elif n is None:
            out.append(d)
        else:
            out.append(length_dims(n, analysis))
    return [tuple(out)]


def length_dims(n, analysis):
    """The dims set of a dimension of length ``max(n, 0)`` for the int scalar ``n``: a
    length read from another variable's shape is that variable's dim."""
    from symgrad.graph.basic import Constant

    if isinstance(n, Constant):
        try:
            v = max(int(n.data.reshape(())), 0)
        except (TypeError, ValueError):
            return frozenset((("len", n),))
        return _ONE if v == 1 else frozenset((v,))
    node = n.owner
    if node is not None and analysis is not None:
        name = type(node.op).__name__
        if name == "Shape_i":
            return analysis(node.inputs[0])[node.op.i]
        if name == "DimShuffle" and node.op.new_order == ():
            src = node.inputs[0]  # the one element of a length-1 vector
            if src.owner is not None and type(src.owner.op).__name__ == "Shape" \
                    and src.ndim == 1 and src.type.shape[0] == 1:
                return analysis(src.owner.inputs[0])[0]
        if name == "Subtensor" and node.op.idx_list == ("i",) and len(node.inputs) == 2:
            src, k = node.inputs
            if src.owner is not None and type(src.owner.op).__name__ == "Shape" \
                    and isinstance(k, Constant):
                w = src.owner.inputs[0]
                d = analysis(w)
                try:
                    return d[int(k.data.reshape(()))]
                except (IndexError, TypeError, ValueError):
                    pass
    return frozenset((("len", n),))


class Dims:
    """The memoised analysis for one graph (cheap to create)."""

    def __init__(self):
        self.memo: dict = {}
        self.rules = _rules()
        self._by_class: dict = {}  # op class -> rule (None: none), once found

    def __call__(self, var):
        memo = self.memo
        got = memo.get(var)
        if got is not None:
            return got
        if not hasattr(var.type, "shape"):
            return None
        stack = [var]
        while stack:
            v = stack[-1]
            if v in memo:
                stack.pop()
                continue
            node = v.owner
            rule = None if node is None else self._rule(node.op)
            if rule is None:
                memo[v] = _static_dims(v)
                stack.pop()
                continue
            missing = [i for i in node.inputs if i not in memo and hasattr(i.type, "shape")]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            try:
                outs = rule(node, [memo.get(i) for i in node.inputs], self)
            except Exception:
                outs = None
            for o, d in zip(node.outputs, outs or [None] * len(node.outputs)):
                if not hasattr(o.type, "shape"):
                    continue
                if d is None or len(d) != o.type.ndim:
                    d = _static_dims(o)
                else:
                    d = _refine(d, o)
                memo[o] = d
        return memo[var]

    def _rule(self, op):
        cls = type(op)
        try:
            return self._by_class[cls]
        except KeyError:
            pass
        for c in cls.__mro__:
            r = self.rules.get(c)
            if r is not None:
                self._by_class[cls] = r
                return r
        if _PENDING_RULES and len(sys.modules) != _N_MODULES[0] and _resolve_pending():
            return self._rule(op)  # its module was imported since
        # (a rule still waiting for its module cannot be this class's: the class exists, so
        # its module and its bases' are imported, and were resolved just above)
        self._by_class[cls] = None
        return None

    def alias(self, old, new):
        """``new`` replaced ``old``: it has the same dims."""
        if new not in self.memo and old in self.memo:
            self.memo[new] = self.memo[old]


def _refine(dims, var):
    """Static facts of the output override the rule's sets."""
    out = []
    for d, s in zip(dims, var.type.shape):
        if s == 1:
            out.append(_ONE)
        elif s is not None:
            out.append(frozenset((int(s),)))
        else:
            out.append(d)
    return tuple(out)


def dims_of(context, var):
    """The dims of ``var`` using the analysis cached on the rewrite ``context`` (or fresh)."""
    if context is None:
        return Dims()(var)
    d = context.cache.get("dims")
    if d is None:
        d = context.cache["dims"] = Dims()
    return d(var)


def same_dims(a, b, analysis=None) -> bool:
    """True when ``a`` and ``b`` provably have the same runtime shape."""
    if a.type.ndim != b.type.ndim:
        return False
    an = analysis or Dims()
    return an(a) == an(b)
