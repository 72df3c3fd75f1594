"""Rewrites of Scan nodes, registered with the compiler's rewrite engine.

- ``scan_remove_unused_outputs``: outputs nobody reads are not computed; a recurrent
  output stays while a kept output depends on it.
- ``scan_push_out_invariants``: the step graph is rewritten (canonicalize, stabilize,
  specialize) and whatever no longer depends on the step (e.g. a shape that used to be
  read from a step result) is computed once, outside the loop.
- ``scan_merge_last_value``: a loop that keeps only its last value and the same loop
  keeping its whole trace (built for a derivative) run once: the last value is read
  from the trace.

A loop without recurrent state is vectorized when ``scan()`` builds it (see
:mod:`symgrad.scan.basic`), not here: ``scan(..., vectorize=False)`` asks for a loop.
"""

from __future__ import annotations

from symgrad.graph.traversal import ancestors
from symgrad.rewrite.basic import node_rewriter
from symgrad.scan.build import ScanParts, SeqSpec, StateSpec, build_scan
from symgrad.scan.op import Scan

SCAN = "symgrad.scan.op:Scan"


def rebuild(node, inner_inputs, inner_outputs, keep_states=None, keep_nitsot=None):
    """The outputs of a Scan like ``node`` whose step graph is ``inner_inputs ->
    inner_outputs`` (laid out as the op's), keeping only some outputs.

    Returns ``{old output: new output}`` for the kept outputs.
    """
    op, info = node.op, node.op.info
    n_states, n_nitsot = info.n_states, info.n_nitsot
    keep_states = list(range(n_states)) if keep_states is None else sorted(keep_states)
    keep_nitsot = list(range(n_nitsot)) if keep_nitsot is None else sorted(keep_nitsot)
    n_steps, seqs, inits, nonseqs = op.split_outer_inputs(node.inputs)
    n_seq_in = info.n_inner_seq_inputs
    n_state_in = info.n_inner_state_inputs
    inner_seqs = _group(inner_inputs[:n_seq_in], [len(o) for o in info.seq_taps])
    inner_states = _group(inner_inputs[n_seq_in:n_seq_in + n_state_in],
                          [len(t) for t in info.state_taps])
    inner_ns = inner_inputs[n_seq_in + n_state_in:]
    out_states = inner_outputs[:n_states]
    out_nitsot = inner_outputs[n_states:n_states + n_nitsot]
    condition = inner_outputs[-1] if info.as_while else None

    kept_outputs = [out_states[k] for k in keep_states] + [out_nitsot[j] for j in keep_nitsot]
    needed = set(ancestors(kept_outputs + ([condition] if condition is not None else [])))
    parts = ScanParts(condition=condition)
    for j, seq in enumerate(seqs):
        used = [(o, v) for o, v in zip(info.seq_taps[j], inner_seqs[j]) if v in needed]
        if not used:
            if not info.infer_steps:
                continue  # the number of steps does not depend on it
            used = [(info.seq_taps[j][0], inner_seqs[j][0])]
        parts.seqs.append(SeqSpec(seq, tuple(o for o, _ in used), info.seq_extents[j],
                                  [v for _, v in used]))
    for k in keep_states:
        parts.states.append(StateSpec(inits[k], info.state_taps[k], inner_states[k],
                                      out_states[k], last=info.state_last[k]))
    parts.nitsots = [out_nitsot[j] for j in keep_nitsot]
    results = build_scan(parts, None if info.infer_steps else n_steps,
                         dict(zip(inner_ns, nonseqs)), reverse=info.reverse,
                         infer_steps=info.infer_steps, truncate_gradient=info.truncate_gradient,
                         name=info.name)
    old = [node.outputs[k] for k in keep_states] + [node.outputs[n_states + j]
                                                    for j in keep_nitsot]
    return dict(zip(old, results))


def _group(flat, sizes):
    out, k = [], 0
    for n in sizes:
        out.append(list(flat[k:k + n]))
        k += n
    return out


def infer_step_shapes(fgraph) -> int:
    """Replace ``Shape(v)`` / ``Shape_i(v)`` by the shape ``v``'s op infers from its inputs'
    shapes (``infer_shape``), repeatedly; returns the number of replacements.

    In a step graph this turns e.g. the shape of ``dot(W, h_prev)`` (which a gradient
    needs to sum a broadcast back) into ``W.shape[0]``: no step computation, so it
    leaves the loop instead of computing the product again at every step.
    """
    from symgrad.tensor.basic import as_tensor_variable
    from symgrad.tensor.elemwise import cast
    from symgrad.tensor.shape import Shape, Shape_i, shape_i, stack

    def as_int64(d):
        d = as_tensor_variable(d)
        return d if d.dtype == "int64" else cast(d, "int64")

    done = 0
    changed = True
    while changed:
        changed = False
        for node in fgraph.toposort():
            if not isinstance(node.op, Shape | Shape_i):
                continue
            owner = node.inputs[0].owner
            infer = getattr(owner.op, "infer_shape", None) if owner is not None else None
            if infer is None or node.outputs[0] not in fgraph.variables:
                continue
            try:
                shapes = infer(owner, [[shape_i(i, k) for k in range(i.ndim)]
                                       for i in owner.inputs])
                dims = [as_int64(d) for d in shapes[node.inputs[0].index]]
                if isinstance(node.op, Shape_i):
                    new = dims[node.op.i]
                elif dims:
                    new = stack(dims)
                else:
                    continue
            except Exception:  # an op whose shape rule does not apply here
                continue
            if new.type.ndim != node.outputs[0].type.ndim or \
                    node.inputs[0] in ancestors([new]):
                continue  # a rule stated through the value itself gains nothing
            fgraph.replace(node.outputs[0], new, reason="infer_step_shapes", check_type=False)
            done += 1
            changed = True
    return done


def _mark(op, flag):
    op.__dict__[flag] = True


@node_rewriter([SCAN], sets=("canonicalize",), name="scan_remove_unused_outputs")
def scan_remove_unused_outputs(fgraph, node):
    """Drop outputs with no clients (and recurrent states only they needed)."""
    op, info = node.op, node.op.info
    used = [bool(fgraph.clients.get(o)) for o in node.outputs]
    if all(used) or not any(used):
        return None
    inner_states = op.inner_states
    keep_states = {k for k in range(info.n_states) if used[k]}
    keep_nitsot = {j for j in range(info.n_nitsot) if used[info.n_states + j]}
    roots = [op.inner_state_outputs[k] for k in keep_states] + [
        op.inner_nitsot_outputs[j] for j in keep_nitsot]
    if info.as_while:
        roots.append(op.inner_condition)
    while True:  # a kept output may read other states
        needed = set(ancestors(roots))
        grow = {k for k in range(info.n_states) if k not in keep_states
                and any(v in needed for v in inner_states[k])}
        if not grow:
            break
        keep_states |= grow
        roots += [op.inner_state_outputs[k] for k in grow]
    if len(keep_states) == info.n_states and len(keep_nitsot) == info.n_nitsot:
        return None
    return rebuild(node, op.inner_inputs, op.inner_outputs, keep_states, keep_nitsot)


@node_rewriter([SCAN], sets=("canonicalize",), name="scan_push_out_invariants")
def scan_push_out_invariants(fgraph, node):
    """Rewrite the step graph, then move what became step-independent out of the loop."""
    op = node.op
    if op.__dict__.get("_inner_rewritten"):
        return None
    from symgrad.compile.mode import Mode
    from symgrad.graph.fgraph import FunctionGraph
    from symgrad.rewrite.apply import apply_mode_rewrites

    _mark(op, "_inner_rewritten")
    inner = FunctionGraph(op.inner_inputs, op.inner_outputs, clone=True)
    mode = Mode("FAST_RUN").excluding("fuse", "inplace")
    apply_mode_rewrites(inner, mode)
    if infer_step_shapes(inner):
        apply_mode_rewrites(inner, mode)
    replacements = rebuild(node, inner.inputs, inner.outputs)
    new_node = next(iter(replacements.values())).owner
    if new_node.op == op and list(new_node.inputs) == list(node.inputs):
        return None
    _mark(new_node.op, "_inner_rewritten")
    return replacements


@node_rewriter([SCAN], sets=("canonicalize",), name="scan_merge_last_value")
def scan_merge_last_value(fgraph, node):
    """Read a last-value-only loop's results from the same loop's full trace, if present."""
    op, info = node.op, node.op.info
    if not any(info.state_last):
        return None
    full_op = Scan(op.inner_inputs, op.inner_outputs,
                   info.replace(state_last=(False,) * info.n_states))
    twin = None
    for client, _ in fgraph.clients.get(node.inputs[-1] if node.inputs else None, ()) or ():
        if client != "output" and client is not node and isinstance(client.op, Scan) \
                and client.op == full_op and list(client.inputs) == list(node.inputs):
            twin = client
            break
    if twin is None:
        return None
    out = {}
    for k, (old, new) in enumerate(zip(node.outputs, twin.outputs)):
        if k < info.n_states and info.state_last[k]:
            new = new[0] if info.reverse else new[-1]
        out[old] = new
    return out
