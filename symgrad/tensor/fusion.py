"""FusedElemwise: a chain of elementwise ops run as one node (a small scalar program).

The fusion rewrite (``symgrad.tensor.rewriting.fusion``) replaces connected
elementwise nodes by one FusedElemwise; the Python backend runs it as a few
numpy calls writing into reused buffers (``out=``), so intermediates are not
allocated one per op.

A program is a tuple of steps ``(scalar_op, args, dtype)``; an arg is
``("i", k)`` (input k), ``("s", j)`` (the result of step j), ``("w", value)``
(a weak Python scalar) or ``("c", value, dtype)`` (a strong scalar constant).
``outputs`` lists the steps whose results the node returns. Each step casts to
its dtype exactly as the Elemwise it came from, so fused and unfused graphs
compute the same values.
"""

from __future__ import annotations

import numpy as np

from symgrad.graph.basic import Apply, Op
from symgrad.tensor.basic import as_tensor_variable
from symgrad.tensor.basic import python_scalar_dtype as _weak_dtype
from symgrad.tensor.type import TensorType

__all__ = ["FusedElemwise", "Program"]


class Program:
    """The scalar program of a FusedElemwise (immutable, hashable)."""

    __slots__ = ("n_inputs", "steps", "outputs", "_hash")

    def __init__(self, n_inputs: int, steps, outputs):
        self.n_inputs = int(n_inputs)
        self.steps = tuple((sop, tuple(args), str(dtype)) for sop, args, dtype in steps)
        self.outputs = tuple(int(o) for o in outputs)
        self._hash = hash((self.n_inputs, self.steps, self.outputs))

    def __eq__(self, other):
        return (isinstance(other, Program) and self._hash == other._hash
                and self.n_inputs == other.n_inputs and self.steps == other.steps
                and self.outputs == other.outputs)

    def __hash__(self):
        return self._hash

    def __repr__(self):
        return f"Program({self.text()})"

    def last_uses(self):
        """For each step, the refs (("i", k) / ("s", j)) read for the last time there."""
        last = {}
        for j, (_, args, _) in enumerate(self.steps):
            for a in args:
                if a[0] in ("i", "s"):
                    last[a] = j
        per_step = [[] for _ in self.steps]
        for ref, j in last.items():
            per_step[j].append(ref)
        return per_step

    def text(self, names=None, limit: int | None = None) -> str:
        """The program as an expression over ``names`` (default i0, i1, ...)."""
        names = names or [f"i{k}" for k in range(self.n_inputs)]
        uses = {}
        for _, args, _ in self.steps:
            for a in args:
                if a[0] == "s":
                    uses[a[1]] = uses.get(a[1], 0) + 1
        for o in self.outputs:
            uses[o] = uses.get(o, 0) + 2
        exprs: list[str] = []
        lets: list[str] = []
        for j, (sop, args, _) in enumerate(self.steps):
            parts = []
            for a in args:
                if a[0] == "i":
                    parts.append(names[a[1]])
                elif a[0] == "s":
                    parts.append(exprs[a[1]])
                else:
                    parts.append(_const_text(a[1]))
            e = _format(sop, parts)
            if uses.get(j, 0) > 1 and j not in self.outputs:
                lets.append(f"t{j} = {e}")
                e = f"t{j}"
            exprs.append(e)
            if limit is not None and sum(len(s) for s in lets) > limit:
                return "; ".join(lets)[:limit] + "..."
        outs = ", ".join(exprs[o] for o in self.outputs)
        text = "; ".join(lets + [outs])
        if limit is not None and len(text) > limit:
            return text[:limit] + "..."
        return text


def _const_text(value) -> str:
    from symgrad.tensor.variable import format_constant

    return format_constant(value)


def _format(sop, parts) -> str:
    if sop.name == "second":
        return f"fill({parts[0]}, {parts[1]})"
    if sop.symbol is not None:
        if len(parts) == 1:
            return f"({sop.symbol}{parts[0]})"
        return "(" + f" {sop.symbol} ".join(parts) + ")"
    return f"{sop.name}({', '.join(parts)})"


def _arg_value(a, values, results):
    kind = a[0]
    if kind == "i":
        return values[a[1]]
    if kind == "s":
        return results[a[1]]
    if kind == "w":
        return a[1]
    return np.asarray(a[1], dtype=a[2])[()]


class FusedElemwise(Op):
    """Several elementwise ops as one node. ``inplace``: (output, input) pairs, as Elemwise."""

    __props__ = ("program", "inplace")

    def __init__(self, program: Program, inplace: tuple = ()):
        self.program = program
        self.inplace = tuple(inplace)

    def __str__(self):
        return "Fused{" + self.program.text(limit=80) + "}" + ("_inplace" if self.inplace else "")

    __repr__ = __str__

    def pp_format(self, node, args):
        return "Fused{" + self.program.text(list(args)) + "}"

    def output_dependencies(self):
        """For each output, the input positions it depends on (a loop per output; memoised:
        the program is immutable)."""
        deps = self.__dict__.get("_deps")
        if deps is None:
            deps = self.__dict__["_deps"] = tuple(tuple(d) for d in self._output_dependencies())
        return deps

    def _output_dependencies(self):
        steps = self.program.steps
        deps = []
        for o in self.program.outputs:
            found = set()
            seen = {o}
            stack = [o]
            while stack:
                j = stack.pop()
                for a in steps[j][1]:
                    if a[0] == "i":
                        found.add(a[1])
                    elif a[0] == "s" and a[1] not in seen:
                        seen.add(a[1])
                        stack.append(a[1])
            deps.append(sorted(found))
        return deps

    def make_node(self, *inputs):
        from symgrad.tensor.elemwise import _pad_to_ndim, broadcast_static_shapes

        prog = self.program
        if len(inputs) != prog.n_inputs:
            raise TypeError(f"{self}: expected {prog.n_inputs} inputs, got {len(inputs)}")
        inputs = [as_tensor_variable(i) for i in inputs]
        ndim = max((i.ndim for i in inputs), default=0)
        inputs = [_pad_to_ndim(i, ndim) for i in inputs]
        outputs = []
        for o, dep in zip(prog.outputs, self.output_dependencies()):
            shapes = [inputs[k].type.shape for k in dep] or [(1,) * ndim]
            shape = broadcast_static_shapes("fused elemwise", shapes)
            outputs.append(TensorType(prog.steps[o][2], shape)())
        return Apply(self, inputs, outputs)

    def make_thunk_function(self, node):
        steps = [(sop.numpy_impl, args, np.dtype(dt)) for sop, args, dt in self.program.steps]
        outs = self.program.outputs
        single = len(outs) == 1

        def run(*values):
            results = []
            for impl, args, dt in steps:
                r = np.asarray(impl(*[_arg_value(a, values, results) for a in args]))
                if r.dtype != dt:
                    r = r.astype(dt)
                results.append(r)
            if single:
                return results[outs[0]]
            return tuple(results[o] for o in outs)
        return run

    def perform(self, node, inputs, output_storage):
        r = self.make_thunk_function(node)(*inputs)
        if len(node.outputs) == 1:
            output_storage[0][0] = r
        else:
            for s, v in zip(output_storage, r):
                s[0] = v

    # -- derivatives: expand the program into ordinary elementwise ops ----------------------
    def expand(self, inputs):
        """The program as a graph of Elemwise ops on ``inputs``; returns the outputs."""
        from symgrad.tensor.basic import constant
        from symgrad.tensor.elemwise import Elemwise

        results = []
        for sop, args, _ in self.program.steps:
            vals = []
            for a in args:
                if a[0] == "i":
                    vals.append(inputs[a[1]])
                elif a[0] == "s":
                    vals.append(results[a[1]])
                elif a[0] == "w":
                    vals.append(constant(a[1], weak=True, dtype=_weak_dtype(a[1])))
                else:
                    vals.append(constant(a[1], dtype=a[2]))
            results.append(Elemwise(sop)(*vals))
        return [results[o] for o in self.program.outputs]

    def pullback(self, inputs, outputs, output_grads):
        from symgrad.gradient import backprop

        expanded = self.expand(inputs)
        pairs = [(e, g) for e, g in zip(expanded, output_grads) if g is not None]
        if not pairs:
            return [None] * len(inputs)
        grads, _ = backprop([e for e, _ in pairs], [g for _, g in pairs], list(inputs))
        return grads

    def pushforward(self, inputs, outputs, tangents):
        from symgrad.gradient import pushforward_graph

        expanded = self.expand(inputs)
        known = [(i, t) for i, t in zip(inputs, tangents) if t is not None]
        if not known:
            return [None] * len(outputs)
        return pushforward_graph(expanded, [i for i, _ in known], [t for _, t in known])

    def vectorize_node(self, node, *batched_inputs):
        from symgrad.tensor.elemwise import _pad_to_ndim

        ndim = max(o.ndim for o in node.outputs) + 1
        return self.make_node(*[_pad_to_ndim(b, ndim) for b in batched_inputs]).outputs


