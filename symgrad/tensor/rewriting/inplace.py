"""The in-place pass: an elementwise node overwrites an input nobody else needs.

``Elemwise(inplace=((0, k),))`` (and the same prop on FusedElemwise) tells the
backend to write the result into input k's buffer instead of allocating. It is
set only when, for that input:

- this node is its only client (no other op reads it later, it is not an output);
- it is a buffer this function call allocated itself: the fresh result of an
  elementwise, fused or other whitelisted op, never a view of something else,
  a constant, a function input (unless ``In(mutable=True)``) or a shared
  variable's storage;
- it provably has the output's shape (the dims analysis) and dtype, and is not a
  0-d value (numpy returns scalars there, which cannot be written to).
"""

from __future__ import annotations

from symgrad.graph.basic import Constant
from symgrad.rewrite.basic import global_rewriter
from symgrad.rewrite.engine import apply_replacements
from symgrad.tensor.elemwise import Elemwise
from symgrad.tensor.fusion import FusedElemwise
from symgrad.tensor.rewriting.basic import get_dims

# Ops known to return a new, writable array (never a view of an input).
FRESH_OP_CLASSES = {"Dot", "MatMul", "Alloc", "Join"}
# Elementwise scalar ops whose numpy implementation may return a view or an input.
NOT_FRESH_SCALAR_OPS = {"second"}


def produces_fresh(var) -> bool:
    """``var``'s runtime value is an array freshly allocated by its producer."""
    node = var.owner
    while node is not None and _is_inc(node.op) and node.op.inplace:
        node = node.inputs[0].owner  # an increment in place returns the array it was given
    if node is None:
        return False
    op = node.op
    if _is_inc(op):
        return True  # a copy of its first input, then the increment
    if type(op) is Elemwise:
        sop = op.scalar_op
        if sop.name in NOT_FRESH_SCALAR_OPS:
            return False
        if sop.name in ("add", "mul") and len(node.inputs) < 2:
            return False
        return True
    if type(op) is FusedElemwise:
        step = op.program.steps[op.program.outputs[var.index]]
        return step[0].name not in NOT_FRESH_SCALAR_OPS
    if getattr(op, "view_map", None) or getattr(op, "destroy_map", None):
        return False
    return type(op).__name__ in FRESH_OP_CLASSES


@global_rewriter(sets=("inplace",), name="elemwise_inplace")
def elemwise_inplace(fgraph, context):
    """Mark elementwise nodes that may overwrite a dead input buffer."""
    n_explicit = context.n_explicit if context is not None else len(fgraph.inputs)
    mutable = context.mutable if context is not None else []
    writable_inputs = {fgraph.inputs[k] for k in range(min(n_explicit, len(mutable)))
                       if mutable[k]}
    dims = get_dims(fgraph)
    clients = fgraph.clients
    done = 0
    for node in fgraph.toposort():
        op = node.op
        if type(op) not in (Elemwise, FusedElemwise) or op.inplace:
            continue
        if len(node.outputs) != 1:
            continue
        out = node.outputs[0]
        if out.type.ndim == 0:
            continue
        for k, inp in enumerate(node.inputs):
            if isinstance(inp, Constant) or inp.type.dtype != out.type.dtype:
                continue
            if inp.owner is None:
                if inp not in writable_inputs:
                    continue
            elif not produces_fresh(inp):
                continue
            if any(c is not node for c, _ in clients.get(inp, ())):
                continue
            if inp.type.ndim != out.type.ndim or dims(inp) != dims(out):
                continue
            if type(op) is Elemwise:
                new_op = Elemwise(op.scalar_op, inplace=((0, k),))
            else:
                new_op = FusedElemwise(op.program, inplace=((0, k),))
            new = new_op.make_node(*node.inputs).outputs[0]
            dims.alias(out, new)
            if apply_replacements(fgraph, node, [new], "elemwise_inplace", context):
                done += 1
            break
    if context is not None:
        context.stats["elemwise_inplace"] += done
    return done


def _is_inc(op) -> bool:
    return type(op).__name__ in ("IncSubtensor", "AdvancedIncSubtensor")


def _constant_fill(var):
    """``(value, shape source)`` when var is fill(a, c) for a one-element constant c."""
    node = var.owner
    if node is None or type(node.op) is not Elemwise or node.op.scalar_op.name != "second":
        return None
    a, c = node.inputs
    if not isinstance(c, Constant) or c.data.size != 1 or c.dtype != var.dtype:
        return None
    return c, a


@global_rewriter(sets=("inplace",), name="incsubtensor_inplace")
def incsubtensor_inplace(fgraph, context):
    """Increments and sets write into their first input when nothing else reads it and this
    call allocated it (a constant fill, the zeros of a gradient, is allocated for it)."""
    n_explicit = context.n_explicit if context is not None else len(fgraph.inputs)
    mutable = context.mutable if context is not None else []
    writable_inputs = {fgraph.inputs[k] for k in range(min(n_explicit, len(mutable)))
                       if mutable[k]}
    clients = fgraph.clients
    done = 0
    for node in fgraph.toposort():
        op = node.op
        if not _is_inc(op) or op.inplace or node not in fgraph.apply_nodes:
            continue
        x = node.inputs[0]
        if isinstance(x, Constant) or x.type.ndim == 0:
            continue
        if any(c is not node or k != 0 for c, k in clients.get(x, ())):
            continue
        fill = _constant_fill(x)
        if fill is not None:
            value, like = fill
            from symgrad.tensor.shape import alloc, shape

            x = alloc(value.data.reshape(()), shape(like))
            if x.type.ndim != node.inputs[0].type.ndim or x.dtype != node.inputs[0].dtype:
                continue
        elif x.owner is None:
            if x not in writable_inputs:
                continue
        elif not produces_fresh(x):
            continue
        new_op = type(op)(op.idx_list, set_instead_of_inc=op.set_instead_of_inc, inplace=True)
        new = new_op.make_node(x, *node.inputs[1:]).outputs[0]
        if apply_replacements(fgraph, node, [new], "incsubtensor_inplace", context):
            done += 1
    if context is not None:
        context.stats["incsubtensor_inplace"] += done
    return done
