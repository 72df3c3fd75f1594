"""The fusion pass: connected elementwise nodes become one FusedElemwise.

Starting from each elementwise node (outputs first), a cluster absorbs the
elementwise node producing one of its inputs when every client of that input is
already in the cluster, so the cluster stays convex and computes one output.
Constants of one element are written into the program. A single elementwise
node is left alone (it already is one loop).
"""

from __future__ import annotations

from symgrad.graph.basic import Constant
from symgrad.rewrite.basic import global_rewriter
from symgrad.rewrite.engine import apply_replacements
from symgrad.tensor.elemwise import Elemwise
from symgrad.tensor.fusion import FusedElemwise, Program

MAX_INPUTS = 1024  # keep programs (and their printed form) of a sane size


def _fusable(node) -> bool:
    op = node.op
    return (type(op) is Elemwise and not op.inplace and len(node.outputs) == 1
            and hasattr(node.outputs[0].type, "dtype"))


def _embed(c):
    """The program arg for a one-element constant, or None to keep it an input."""
    data = c.data
    if getattr(data, "size", 0) != 1:
        return None
    value = data.reshape(()).item()
    if getattr(c, "weak", False):
        return ("w", value)
    return ("c", value, str(data.dtype))


def _build(cluster, order):
    members = sorted(cluster, key=order.__getitem__)
    member_set = set(members)
    step_of = {}
    inputs: list = []
    input_pos: dict = {}
    steps = []
    for node in members:
        args = []
        for i in node.inputs:
            if i.owner in member_set:
                args.append(("s", step_of[i]))
                continue
            if isinstance(i, Constant):
                emb = _embed(i)
                if emb is not None:
                    args.append(emb)
                    continue
            if i not in input_pos:
                input_pos[i] = len(inputs)
                inputs.append(i)
            args.append(("i", input_pos[i]))
        step_of[node.outputs[0]] = len(steps)
        steps.append((node.op.scalar_op, args, node.outputs[0].type.dtype))
    return Program(len(inputs), steps, [len(steps) - 1]), inputs


@global_rewriter(sets=("fuse",), name="elemwise_fusion")
def elemwise_fusion(fgraph, context):
    """Fuse chains of elementwise ops into FusedElemwise nodes."""
    nodes = fgraph.toposort()
    order = {n: k for k, n in enumerate(nodes)}
    assigned: set = set()
    clients = fgraph.clients
    fused = 0
    for root in reversed(nodes):
        if root in assigned or not _fusable(root) or root not in fgraph.apply_nodes:
            continue
        cluster = {root}
        count: dict = {}
        work = [root]
        leaves = set()
        while work:
            n = work.pop()
            for inp in n.inputs:
                p = inp.owner
                if p is None or p in cluster or p in assigned or not _fusable(p):
                    if not isinstance(inp, Constant):
                        leaves.add(inp)
                    continue
                c = count.get(inp, 0) + 1
                count[inp] = c
                if c == len(clients[inp]) and len(leaves) < MAX_INPUTS:
                    cluster.add(p)
                    work.append(p)
                    leaves.discard(inp)
                else:
                    leaves.add(inp)
        assigned |= cluster
        if len(cluster) < 2:
            continue
        program, inputs = _build(cluster, order)
        if not inputs or len(inputs) > MAX_INPUTS:
            continue
        new = FusedElemwise(program)(*inputs)
        if apply_replacements(fgraph, root, [new], "elemwise_fusion", context):
            fused += 1
    if context is not None:
        context.stats["elemwise_fusion"] += fused
    return fused
