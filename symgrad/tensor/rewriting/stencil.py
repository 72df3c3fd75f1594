"""Stencil sums: an array built by adding elementwise results into shifted slices, as one op.

The gradient of an expression over shifted slices of an array (``x[1:] - x[:-1]``, the
finite differences of physics models and of the Rosenbrock function) is a chain of
increments into a zero array::

    g = zeros_like(x); g[:-1] += a(x[:-1], x[1:]); g[1:] += b(x[:-1], x[1:])

where ``a`` and ``b`` are elementwise (often two outputs of one fused node). Run as written,
that is one pass to zero the result, one to compute ``a`` and ``b`` into temporaries, and
one read-modify-write pass per increment. :class:`StencilSum` is the whole chain as one
op: for every position of the result it starts from the base (a constant, or an array) and
adds each increment whose slice covers that position, computing the increment's
elementwise program right there from its inputs read at shifted positions. The numba
backend runs it as one loop (:mod:`symgrad.backends.numba.stencil`).

The rewrite (:func:`stencil_increments`, rewrite set ``"stencil"``, in ``mode="NUMBA"``)
applies where every increment adds (not sets) into a slice with constant bounds and step
1 along one and the same axis, and the chain's intermediate arrays have no other use. An
increment's value is inlined when it is computed by an elementwise (or fused) node whose
results nothing else reads, and whose array inputs are constant slices along that axis
(or whole arrays, or arrays of ones on every axis), and, where several increments read
that node (each would compute it at its own positions), when its program is cheap
arithmetic; otherwise it is read as an array (the node computed once, by its own kernel).
"""

from __future__ import annotations

import numpy as np

from symgrad.graph.basic import Apply, Constant, Op
from symgrad.rewrite.basic import global_rewriter
from symgrad.rewrite.engine import apply_replacements
from symgrad.tensor.rewriting.basic import loaded_class, scalar_const
from symgrad.tensor.type import TensorType

__all__ = ["StencilSum", "stencil_increments", "MAX_TERMS"]

INC = "symgrad.tensor.subtensor:IncSubtensor"
SUB = "symgrad.tensor.subtensor:Subtensor"
FUSED = "symgrad.tensor.fusion:FusedElemwise"
ELEMWISE = "symgrad.tensor.elemwise:Elemwise"

# Increments per StencilSum (its numba loop computes or skips each one at every position):
# a longer chain becomes several StencilSums, each the base of the next.
MAX_TERMS = 8


def _axis_slice(axis: int, start, stop):
    return (slice(None),) * axis + (slice(start, stop),)


class StencilSum(Op):
    """``base`` plus increments into slices along ``axis`` (see the module's text).

    Inputs: input 0 is the base array (``base == ("array",)``) or, for ``("fill", value)``,
    the array whose shape the result has (filled with ``value``); then the arrays and
    scalars the terms read. ``terms``: one ``(start, stop, program, out, args)`` per
    increment, in the order they add up: the increment goes into ``result[..., start:stop]``
    (along ``axis``; None: open) and its value is output ``out`` of ``program`` (a fused
    elementwise :class:`~symgrad.tensor.fusion.Program`) evaluated on ``args``, or, where
    ``program`` is None, ``args[0]`` itself. Each arg is ``("slice", input, start, stop)``:
    the input sliced along ``axis``; ``("one", input)``: an array of length 1 on every axis;
    or ``("scalar", input)``: a 0-d input.
    """

    __props__ = ("axis", "dtype", "base", "terms")

    def __init__(self, axis: int, dtype: str, base: tuple, terms: tuple):
        self.axis = int(axis)
        self.dtype = str(dtype)
        self.base = tuple(base)
        self.terms = tuple(terms)

    def __str__(self):
        parts = []
        for start, stop, _, _, _ in self.terms:
            parts.append(f"{'' if start is None else start}:{'' if stop is None else stop}")
        base = "array" if self.base[0] == "array" else f"fill {self.base[1]!r}"
        return f"StencilSum{{axis={self.axis}, {base}, +[{', '.join(parts)}]}}"

    __repr__ = __str__

    def make_node(self, *inputs):
        from symgrad.tensor.basic import as_tensor_variable

        inputs = [as_tensor_variable(i) for i in inputs]
        return Apply(self, inputs, [TensorType(self.dtype, inputs[0].type.shape)()])

    def make_thunk_function(self, node):
        """numpy: the increments one after another, as the chain it replaced (numpy's
        broadcasting included): the reference the numba loop falls back to."""
        from symgrad.tensor.fusion import FusedElemwise

        axis, dtype, base = self.axis, np.dtype(self.dtype), self.base
        terms = []
        for start, stop, program, out, args in self.terms:
            run = None if program is None else FusedElemwise(program).make_thunk_function(None)
            single = program is None or len(program.outputs) == 1
            terms.append((_axis_slice(axis, start, stop), run, out, single, args))

        def run_stencil(first, *_):
            values = (first,) + _
            if base[0] == "fill":
                result = np.full(np.shape(first), base[1], dtype=dtype)
            else:
                result = np.array(first, dtype=dtype)
            for where, fn, out, single, args in terms:
                ins = []
                for a in args:
                    v = values[a[1]]
                    ins.append(np.asarray(v)[_axis_slice(axis, a[2], a[3])]
                               if a[0] == "slice" else v)
                if fn is None:
                    value = ins[0]
                else:
                    value = fn(*ins)
                    if not single:
                        value = value[out]
                result[where] += value
            return result
        return run_stencil

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = self.make_thunk_function(node)(*inputs)

    # -- derivatives and batching: through the chain of increments the op stands for -------
    def expand(self, inputs):
        """The op as the graph it replaced (a fill or the base, then one inc_subtensor per
        term) on ``inputs``; returns the result."""
        import symgrad.tensor as st
        from symgrad.tensor.fusion import FusedElemwise

        first = inputs[0]
        if self.base[0] == "fill":
            result = st.fill(first, st.constant(self.base[1], dtype=self.dtype))
        else:
            result = st.cast(first, self.dtype) if first.dtype != self.dtype else first
        for start, stop, program, out, args in self.terms:
            ins = []
            for a in args:
                v = inputs[a[1]]
                ins.append(v[_axis_slice(self.axis, a[2], a[3])] if a[0] == "slice" else v)
            if program is None:
                value = ins[0]
            else:
                value = FusedElemwise(program)(*ins)
                if isinstance(value, (list, tuple)):
                    value = value[out]
            result = st.inc_subtensor(result[_axis_slice(self.axis, start, stop)], value)
        return result

    def pullback(self, inputs, outputs, output_grads):
        from symgrad.gradient import backprop

        (g,) = output_grads
        if g is None:
            return [None] * len(inputs)
        grads, _ = backprop([self.expand(inputs)], [g], list(inputs))
        return grads

    def pushforward(self, inputs, outputs, tangents):
        from symgrad.gradient import pushforward_graph

        known = [(i, t) for i, t in zip(inputs, tangents) if t is not None]
        if not known:
            return [None]
        return pushforward_graph([self.expand(inputs)], [i for i, _ in known],
                                 [t for _, t in known])

    def vectorize_node(self, node, *batched_inputs):
        from symgrad.graph.vectorize import vectorize_graph

        return vectorize_graph([self.expand(node.inputs)], dict(zip(node.inputs,
                                                                    batched_inputs)))

    def infer_shape(self, fgraph, node, input_shapes):
        return [input_shapes[0]]


# -- the rewrite -----------------------------------------------------------------------------

def _const_bound(var):
    """A slice bound: None stays None; a constant integer, its value; else False."""
    if var is None:
        return None
    if isinstance(var, Constant) and np.asarray(var.data).ndim == 0 and np.asarray(
            var.data).dtype.kind in "iu":
        return int(var.data)
    return False


def _slice_of(op, index_inputs, ndim):
    """(axis, start, stop) of a basic index that slices one axis with constant bounds and
    step 1 and takes every other axis whole (axis None: the whole array), else None."""
    from symgrad.tensor.subtensor import _complete, _from_idx_list

    try:
        entries = _complete(_from_idx_list(op.idx_list, index_inputs), ndim)
    except (TypeError, ValueError):
        return None
    if len(entries) != ndim:
        return None
    found = None
    for k, (kind, val) in enumerate(entries):
        if kind != "s":
            return None
        start, stop, step = (_const_bound(b) for b in val)
        if start is False or stop is False or step not in (None, 1):
            return None
        if start in (None, 0) and stop is None:
            continue  # the whole axis
        if found is not None:
            return None
        found = (k, start, stop)
    return found or (None, None, None)


class _Chain:
    """A chain of increments being turned into one StencilSum."""

    def __init__(self, ndim):
        self.ndim = ndim
        self.axis = None
        self.inputs: list = []
        self.position: dict = {}

    def take_axis(self, axis) -> bool:
        if axis is None or self.axis in (None, axis):
            self.axis = axis if axis is not None else self.axis
            return True
        return False

    def input(self, var) -> int:
        k = self.position.get(var)
        if k is None:
            k = self.position[var] = len(self.inputs)
            self.inputs.append(var)
        return k


def _increment_slice(node, Inc, ndim):
    """(axis, start, stop) of an IncSubtensor node that adds into a constant slice, or None."""
    op = node.op
    if type(op) is not Inc or op.set_instead_of_inc or op.advanced:
        return None
    x, y = node.inputs[0], node.inputs[1]
    if x.ndim != ndim or y.ndim != ndim or x.dtype != y.dtype:
        return None
    return _slice_of(op, node.inputs[2:], ndim)


def _program_of(node, Fused, Elemwise):
    """The scalar program of an elementwise or fused node (a 1-step program for an
    Elemwise), or None."""
    from symgrad.tensor.fusion import Program

    if type(node.op) is Fused:
        return node.op.program
    if type(node.op) is Elemwise and len(node.outputs) == 1:
        args = []
        for k, i in enumerate(node.inputs):
            if isinstance(i, Constant) and getattr(i, "weak", False) and i.data.size == 1:
                args.append(("w", i.data.reshape(()).item()))
            else:
                args.append(("i", k))
        return Program(len(node.inputs), [(node.op.scalar_op, args, node.outputs[0].dtype)],
                       [0])
    return None


# scalar ops a loop computes in a cycle or a few (no call, no long polynomial)
_CHEAP_OPS = frozenset({"add", "sub", "mul", "neg", "sqr", "true_div", "reciprocal", "abs",
                        "identity", "second", "maximum", "minimum", "switch", "eq", "neq",
                        "lt", "le", "gt", "ge", "sign"})


def _cheap(program) -> bool:
    """Whether every step of a fused program is cheap arithmetic (see _CHEAP_OPS)."""
    return all(sop.name in _CHEAP_OPS or sop.name.startswith("cast{")
               for sop, _, _ in program.steps)


def _inline_args(chain, node, program, Sub, ndim):
    """The args of ``node``'s program inputs (see StencilSum), or None when one cannot be
    read at a shifted position."""
    args = []
    for k, i in enumerate(node.inputs):
        used = any(a[0] == "i" and a[1] == k for _, step_args, _ in program.steps
                   for a in step_args)
        if i.ndim == 0:
            args.append(("scalar", chain.input(i)) if used else ("scalar", -1))
            continue
        if i.ndim != ndim:
            return None
        if all(s == 1 for s in i.type.shape):
            args.append(("one", chain.input(i)))
            continue
        if 1 in i.type.shape:
            return None  # broadcasts along some axes: read it as an array instead
        owner = i.owner
        if owner is not None and type(owner.op) is Sub:
            found = _slice_of(owner.op, owner.inputs[1:], ndim)
            if found is not None and chain.take_axis(found[0]):
                args.append(("slice", chain.input(owner.inputs[0]), found[1], found[2]))
                continue
        args.append(("slice", chain.input(i), None, None))
    return args


@global_rewriter(sets=("stencil",), name="stencil_increments")
def stencil_increments(fgraph, context):
    """Chains of increments into constant slices -> StencilSum (the numba backend runs it as
    one loop; see the module's text)."""
    if context is not None and getattr(context.mode, "backend", "numba") != "numba":
        return 0
    Inc = loaded_class(INC)
    if Inc is None:
        return 0
    Sub, Fused, Elemwise = loaded_class(SUB), loaded_class(FUSED), loaded_class(ELEMWISE)
    clients = fgraph.clients
    done = 0
    for node in reversed(fgraph.toposort()):  # from the outputs: a chain's last increment first
        if type(node.op) is not Inc or node not in fgraph.apply_nodes:
            continue
        new = _rewrite_chain(fgraph, node, Inc, Sub, Fused, Elemwise, clients)
        if new is not None and apply_replacements(fgraph, node, [new], "stencil_increments",
                                                  context):
            done += 1
    if context is not None:
        context.stats["stencil_increments"] += done
    return done


def _only_client(clients, var, node) -> bool:
    users = clients.get(var, ())
    return len(users) == 1 and users[0][0] is node


def _rewrite_chain(fgraph, top, Inc, Sub, Fused, Elemwise, clients):
    out = top.outputs[0]
    ndim = out.ndim
    if ndim == 0 or np.dtype(out.dtype).kind != "f":
        return None
    chain = _Chain(ndim)
    incs = []  # from the top down
    node = top
    while len(incs) < MAX_TERMS:
        found = _increment_slice(node, Inc, ndim)
        if found is None or not chain.take_axis(found[0]):
            break
        incs.append((node, found[1], found[2]))
        below = node.inputs[0]
        if below.owner is None or not _only_client(clients, below, node):
            break
        node = below.owner
    if not incs:
        return None
    base_var = incs[-1][0].inputs[0]
    base_node = base_var.owner
    base = ("array",)
    if (base_node is not None and type(base_node.op) is Elemwise
            and base_node.op.scalar_op.name == "second"
            and _only_client(clients, base_var, incs[-1][0])):
        shape_src, value = base_node.inputs
        fill = scalar_const(value)
        if (fill is not None and shape_src.ndim == ndim and value.ndim <= ndim
                and all(s == 1 for s in value.type.shape)
                and np.dtype(base_var.dtype).kind == "f"):
            base = ("fill", float(fill))
            base_var = shape_src
    chain.input(base_var)
    # the fused nodes whose every result goes into this chain's increments
    inc_nodes = {n for n, _, _ in incs}
    # how many increments read each node's results: a node read by several is computed once
    # per increment (at its own shifted positions) when inlined, worth it for cheap arithmetic
    # only (a transcendental function computed three times costs more than the temporaries)
    readers: dict = {}
    for node, _, _ in incs:
        owner = node.inputs[1].owner
        readers[owner] = readers.get(owner, 0) + 1
    terms, inlined = [], 0
    for node, start, stop in reversed(incs):  # in the order they add up
        y = node.inputs[1]
        owner = y.owner
        term = None
        program = None if owner is None else _program_of(owner, Fused, Elemwise)
        if program is not None and readers[owner] > 1 and not _cheap(program):
            program = None
        if (program is not None and all(np.dtype(o.dtype).kind == "f" for o in owner.outputs)
                and all(u[0] in inc_nodes and u[1] == 1
                        for o in owner.outputs for u in clients.get(o, ()))):
            saved = (chain.axis, list(chain.inputs), dict(chain.position))
            args = _inline_args(chain, owner, program, Sub, ndim)
            if args is not None:
                term = (start, stop, program, owner.outputs.index(y), tuple(args))
                inlined += 1
            else:
                chain.axis, chain.inputs, chain.position = saved
        if term is None:
            term = (start, stop, None, 0, (("slice", chain.input(y), None, None),))
        terms.append(term)
    if base[0] == "array" and not inlined and len(terms) < 2:
        return None  # one increment of an array: nothing to gain
    axis = 0 if chain.axis is None else chain.axis
    # a scalar input a program never reads: any index (its value is not used)
    terms = [(s, e, p, o, tuple(("scalar", 0) if a == ("scalar", -1) else a for a in args))
             for s, e, p, o, args in terms]
    op = StencilSum(axis, out.dtype, base, tuple(terms))
    new = op(*chain.inputs)
    if new.type != out.type:
        return None
    return new
