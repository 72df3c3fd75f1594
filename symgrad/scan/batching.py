"""The batching rule of Scan: one loop over batched states, not one loop per batch row.

The inner graph is batched with ``vectorize_graph``. A state becomes batched when
its initial value is, or when its step output turns out batched (found by
iterating to a fixed point). Outer sequences and buffers keep time as their
leading axis inside the loop, so the batch axis is moved to second place on the
way in and back to the front on the way out.
"""

from __future__ import annotations

from symgrad.graph.vectorize import is_batched, loop_over_batch, vectorize_graph
from symgrad.scan.build import ScanParts, SeqSpec, StateSpec, build_scan
from symgrad.tensor.type import TensorType


def _swap01(x):
    order = (1, 0) + tuple(range(2, x.ndim))
    return x.dimshuffle(order)


def _batched_placeholder(var, batch):
    new = TensorType(var.type.dtype, (batch,) + var.type.shape)()
    new.name = var.name
    return new


def scan_vectorize_node(op, node, batched_inputs):
    import symgrad.tensor as st
    from symgrad.tensor.math import second

    info = op.info
    flags = [is_batched(o, n) for o, n in zip(node.inputs, batched_inputs)]
    if flags[0]:  # a different number of steps per batch row
        return loop_over_batch(node, batched_inputs)
    n_steps, seqs, inits, nonseqs = op.split_outer_inputs(list(batched_inputs))
    _, f_seq, f_init, f_ns = op.split_outer_inputs(flags)
    reference = next(v for v, f in zip(batched_inputs, flags) if f)
    batch_static = reference.type.shape[0]
    batch_size = reference.shape[0]
    inner_seqs, inner_states, inner_ns = op.inner_seqs, op.inner_states, op.inner_nonseqs
    inner_outputs = op.inner_outputs
    ns = info.n_states

    batched_states = {k for k, f in enumerate(f_init) if f}
    while True:
        replace = {}
        new_seq_vars, new_state_vars, new_ns_vars = [], [], []
        for j, vars_ in enumerate(inner_seqs):
            new = [_batched_placeholder(v, batch_static) if f_seq[j] else v for v in vars_]
            replace.update({v: n for v, n in zip(vars_, new) if n is not v})
            new_seq_vars.append(new)
        for k, vars_ in enumerate(inner_states):
            new = [_batched_placeholder(v, batch_static) if k in batched_states else v
                   for v in vars_]
            replace.update({v: n for v, n in zip(vars_, new) if n is not v})
            new_state_vars.append(new)
        for n, var in enumerate(inner_ns):
            new = _batched_placeholder(var, batch_static) if f_ns[n] else var
            if new is not var:
                replace[var] = new
            new_ns_vars.append(new)
        new_outputs = vectorize_graph(list(inner_outputs), replace)
        grow = {k for k in range(ns) if k not in batched_states
                and is_batched(inner_outputs[k], new_outputs[k])}
        if not grow:
            break
        batched_states |= grow
    if info.as_while and is_batched(inner_outputs[-1], new_outputs[-1]):
        return loop_over_batch(node, batched_inputs)  # each row would stop at its own step

    parts = ScanParts(condition=new_outputs[-1] if info.as_while else None)
    known = {}
    for j, seq in enumerate(seqs):
        outer = _swap01(seq) if f_seq[j] else seq
        parts.seqs.append(SeqSpec(outer, info.seq_taps[j], info.seq_extents[j], new_seq_vars[j]))
    for k, init in enumerate(inits):
        out = new_outputs[k]
        if k in batched_states:
            if f_init[k]:
                init = _swap01(init)
            else:
                expanded = init.dimshuffle((0, "x") + tuple(range(1, init.ndim)))
                init = st.alloc(expanded, init.shape[0], batch_size,
                                *[init.shape[d] for d in range(1, init.ndim)])
            if not is_batched(inner_outputs[k], out):
                out = second(new_state_vars[k][0], out)
        parts.states.append(StateSpec(init, info.state_taps[k], new_state_vars[k], out,
                                      last=info.state_last[k]))
    parts.nitsots = list(new_outputs[ns:ns + info.n_nitsot])
    for n, var in enumerate(new_ns_vars):
        known[var] = nonseqs[n]
    results = build_scan(parts, n_steps, known, reverse=info.reverse,
                         infer_steps=info.infer_steps, truncate_gradient=info.truncate_gradient,
                         name=info.name)
    final = []
    for k, res in enumerate(results[:ns]):
        if k in batched_states and not info.state_last[k]:
            res = _swap01(res)
        final.append(res)
    old_nitsot = inner_outputs[ns:ns + info.n_nitsot]
    for old, res in zip(old_nitsot, results[ns:]):
        final.append(_swap01(res) if res.ndim == old.ndim + 2 else res)
    return final
