"""Batching: rewrite a graph so that some inputs carry a new leading batch axis.

``vectorize_graph(outputs, replace={x: batched_x})`` walks the graph in
topological order and asks each op's ``vectorize_node`` rule for the batched
version of its node. A variable counts as batched when its replacement has one
more dimension than the original; nodes none of whose inputs are batched are
kept as they are. Jacobians, Hessians and vectorized scans are built on this.
"""

from __future__ import annotations

from collections.abc import Mapping

from symgrad.graph.basic import Apply, Op, Variable, as_list
from symgrad.graph.traversal import toposort


def _ndim(var: Variable) -> int:
    return getattr(var.type, "ndim", 0)


def vectorize_graph(outputs, replace: Mapping[Variable, Variable]):
    """Rebuild ``outputs`` with each key of ``replace`` swapped for its batched value.

    Every replacement must have exactly one more (leading) dimension than the
    variable it replaces. Outputs that depend on a replaced variable come back
    with that leading batch axis; the others come back unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> import symgrad.tensor as st
    >>> from symgrad.graph import vectorize_graph
    >>> x = st.dvector("x"); xs = st.dmatrix("xs")
    >>> y = st.exp(x).sum()
    >>> ys = vectorize_graph(y, {x: xs})
    >>> ys.eval({xs: np.zeros((3, 2))})
    array([2., 2., 2.])
    """
    single = not isinstance(outputs, list | tuple)
    outs = as_list(outputs)
    memo: dict[Variable, Variable] = {}
    for old, new in replace.items():
        if _ndim(new) != _ndim(old) + 1:
            raise ValueError(
                f"vectorize_graph: the replacement of {old} must add one leading batch axis "
                f"(ndim {_ndim(old) + 1}), but it has ndim {_ndim(new)}"
            )
        memo[old] = new
    for node in toposort(outs, inputs=list(memo)):
        new_inputs = [memo.get(i, i) for i in node.inputs]
        if not any(i in memo and _ndim(memo[i]) == _ndim(i) + 1 for i in node.inputs):
            if any(a is not b for a, b in zip(new_inputs, node.inputs)):
                new_outputs = node.op.make_node(*new_inputs).outputs
                memo.update(zip(node.outputs, new_outputs))
            continue
        new_outputs = as_list(node.op.vectorize_node(node, *new_inputs))
        if len(new_outputs) != len(node.outputs):
            raise RuntimeError(f"{node.op}.vectorize_node returned {len(new_outputs)} outputs, "
                               f"expected {len(node.outputs)}")
        memo.update(zip(node.outputs, new_outputs))
    result = [memo.get(o, o) for o in outs]
    return result[0] if single else result


def is_batched(old: Variable, new: Variable) -> bool:
    """True when ``new`` is ``old`` with a leading batch axis."""
    return _ndim(new) == _ndim(old) + 1


class BatchLoop(Op):
    """Generic batching fallback: run ``core_op`` once per batch row.

    Used for ops that define no batching rule of their own (user ops). It is
    correct but not fast; built-in ops all have real rules.
    """

    __props__ = ("core_op", "batched")

    def __init__(self, core_op: Op, batched: tuple[bool, ...]):
        self.core_op = core_op
        self.batched = tuple(batched)

    def make_node(self, *inputs):
        from symgrad.tensor.basic import as_tensor_variable
        from symgrad.tensor.type import TensorType

        inputs = [as_tensor_variable(i) for i in inputs]
        core_inputs = [
            TensorType(i.dtype, i.type.shape[1:])() if b else i
            for i, b in zip(inputs, self.batched)
        ]
        core_node = self.core_op.make_node(*core_inputs)
        batch = next(i.type.shape[0] for i, b in zip(inputs, self.batched) if b)
        outputs = [TensorType(o.type.dtype, (batch,) + o.type.shape)() for o in core_node.outputs]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        import numpy as np

        from symgrad.tensor.type import TensorType

        core_inputs = [
            TensorType(i.dtype, i.type.shape[1:])() if b else i
            for i, b in zip(node.inputs, self.batched)
        ]
        core_node = self.core_op.make_node(*core_inputs)
        fn = self.core_op.make_thunk_function(core_node)
        n = next(len(v) for v, b in zip(inputs, self.batched) if b)
        rows = []
        for k in range(n):
            args = [v[k] if b else v for v, b in zip(inputs, self.batched)]
            out = fn(*args)
            rows.append(out if isinstance(out, tuple) else (out,))
        for j, store in enumerate(output_storage):
            dtype = node.outputs[j].type.dtype
            if n:
                store[0] = np.stack([np.asarray(r[j]) for r in rows]).astype(dtype, copy=False)
            else:
                store[0] = np.zeros((0,), dtype=dtype)

    def pullback(self, inputs, outputs, output_grads):
        from symgrad.gradient import NotDifferentiable

        return [NotDifferentiable(self, "the generic batch loop has no derivative; give "
                                  f"{self.core_op} a vectorize_node rule")] * len(inputs)


def loop_over_batch(node: Apply, batched_inputs) -> list[Variable]:
    flags = tuple(is_batched(o, n) for o, n in zip(node.inputs, batched_inputs))
    return as_list(BatchLoop(node.op, flags)(*batched_inputs))
