"""Derivatives of Scan: the pullback is a scan running the other way, the pushforward a
scan carrying tangents. Both are built with :func:`build_scan`, so they can be
differentiated, batched and rewritten again like any other scan.

Pullback (backpropagation through time). For a state with taps ``-m`` the reverse
scan carries one accumulator ``D_m`` per tap: ``D_m`` at step ``t`` is what step
``t`` of the forward loop contributes to the cotangent of the state value it read
``m`` steps back. The reverse loop reads ``D_m`` back with tap ``-m``, so the full
cotangent of the state produced at step ``t`` is

    cotangent of the output row + sum over m of D_m (from step t + m)

which is what the inner pullback needs. The ``D_m`` left at the end (the first ``m``
steps) are the cotangents of the initial rows. Sequences get one mapped output per
tap (placed back at their rows), non-sequences a summing state that keeps only its
last value.
"""

from __future__ import annotations

from symgrad.scan.build import ScanParts, SeqSpec, StateSpec, build_scan
from symgrad.scan.op import Scan
from symgrad.tensor.type import TensorType, discrete_dtypes


def _is_float(var) -> bool:
    return var.type.dtype not in discrete_dtypes


def _row(var):
    """A fresh placeholder for one row of ``var``."""
    return TensorType(var.type.dtype, var.type.shape[1:])()


def _full_trace_outputs(op, inputs, outputs):
    """The outputs of ``op`` on ``inputs`` with every state keeping its whole trace."""
    info = op.info
    if not any(info.state_last):
        return list(outputs)
    full = Scan(op.inner_inputs, op.inner_outputs,
                info.replace(state_last=(False,) * info.n_states))
    return list(full.make_node(*inputs).outputs)


def _zeros_rows(init, m):
    """Zeros shaped like the first ``m`` rows of ``init``."""
    import symgrad.tensor as st

    if init.type.shape[0] == m:
        return st.zeros_like(init)
    return st.zeros_like(init[:m])


def _add_rows(total, like, start, rows, n_rows):
    """``total`` (or zeros shaped like ``like``) plus ``rows`` placed at ``start``."""
    import symgrad.tensor as st

    if isinstance(start, int) and start == 0 and like.type.shape[0] == n_rows:
        return rows if total is None else total + rows
    if total is None:
        total = st.zeros_like(like)
    return st.inc_subtensor(total[start:start + n_rows], rows)


def _is_zeros(var) -> bool:
    """``var`` is zeros by construction: a zero constant, ``fill(x, 0)`` or ``alloc(0, ...)``."""
    from symgrad.tensor.basic import is_constant_value

    if is_constant_value(var, 0):
        return True
    owner = var.owner
    if owner is None:
        return False
    sop = getattr(owner.op, "scalar_op", None)
    if sop is not None and sop.name == "second":
        return is_constant_value(owner.inputs[1], 0)
    if type(owner.op).__name__ == "Alloc":
        return is_constant_value(owner.inputs[0], 0)
    return False


def _basic_inc(var):
    """``(base, increment, index entries)`` when ``var`` is a basic ``inc_subtensor``."""
    from symgrad.tensor.subtensor import IncSubtensor

    owner = var.owner
    if owner is None or type(owner.op) is not IncSubtensor or owner.op.set_instead_of_inc:
        return None
    x, y, *index = owner.inputs
    return x, y, owner.op._entries(x, index)


def _last_row_only(g, span):
    """The last row of ``g`` (the cotangent of a state's whole buffer) when every other row
    is zero by construction, else None: the form the gradient of ``outputs[-1]`` takes,
    ``inc(zeros, inc(zeros[span:], row, -1), span:)``."""
    from symgrad.tensor.basic import get_scalar_constant_value

    def full(entries):
        return all(kind == "s" and val == (None, None, None) for kind, val in entries)

    got = _basic_inc(g)
    if got is not None and _is_zeros(got[0]):
        base, inner, entries = got
        kind, val = entries[0]
        if kind == "s" and val[1:] == (None, None) and val[0] is not None and \
                get_scalar_constant_value(val[0]) == span and full(entries[1:]):
            got = _basic_inc(inner)
            if got is None or not _is_zeros(got[0]):
                return None
    if got is None or not _is_zeros(got[0]):
        return None
    base, row, entries = got
    kind, val = entries[0]
    if kind != "i" or get_scalar_constant_value(val) != -1 or not full(entries[1:]):
        return None
    return row


def _n_run(op, full_outputs):
    """The number of steps actually run, from the outputs' lengths."""
    info = op.info
    if info.n_states:
        return full_outputs[0].shape[0] - info.spans[0]
    return full_outputs[info.n_states].shape[0]


def _reuse_stored_outputs(op, parts, full, grads):
    """Read the step outputs that the pullback needs (tanh's derivative uses tanh's
    value) from the forward loop's outputs instead of computing them again."""
    from symgrad.graph.traversal import ancestors, clone_replace

    info = op.info
    present = [g for g in grads if g is not None]
    if not present:
        return grads
    needed = set(ancestors(present))
    replace = {}
    for k, out in enumerate(op.inner_state_outputs):
        if out.owner is not None and out in needed:
            holder = out.type()
            offset = 0 if info.reverse else info.spans[k]
            parts.seqs.append(SeqSpec(full[k], (offset,), info.spans[k], [holder]))
            replace[out] = holder
    for j, out in enumerate(op.inner_nitsot_outputs):
        if out.owner is not None and out in needed and out not in replace:
            holder = out.type()
            parts.seqs.append(SeqSpec(full[info.n_states + j], (0,), 0, [holder]))
            replace[out] = holder
    if not replace:
        return grads
    new = clone_replace(present, replace)
    it = iter(new)
    return [None if g is None else next(it) for g in grads]


def scan_pullback(op, inputs, outputs, output_grads):
    import symgrad.tensor as st
    from symgrad.gradient import backprop

    info = op.info
    n_in = len(inputs)
    if all(g is None for g in output_grads):
        return [None] * n_in
    ns = info.n_states
    spans = info.spans
    reverse = info.reverse
    truncate = info.truncate_gradient
    if truncate != -1 and reverse:  # pragma: no cover - reverse scans are built untruncated
        raise NotImplementedError("truncate_gradient on a reverse scan")
    full = _full_trace_outputs(op, inputs, outputs)
    _, seqs, inits, nonseqs = op.split_outer_inputs(inputs)
    bufs = full[:ns]
    g_states = list(output_grads[:ns])
    g_nitsot = list(output_grads[ns:])
    inner_seqs, inner_states, inner_ns = op.inner_seqs, op.inner_states, op.inner_nonseqs
    out_states, out_nitsot = op.inner_state_outputs, op.inner_nitsot_outputs

    parts = ScanParts()
    known = dict(zip(inner_ns, nonseqs))
    # What the forward step read: the sequences' rows and the states' past values.
    for j, seq in enumerate(seqs):
        parts.seqs.append(SeqSpec(seq, info.seq_taps[j], info.seq_extents[j], inner_seqs[j]))
    for k, buf in enumerate(bufs):
        taps = info.state_taps[k]
        offsets = tuple(-t for t in taps) if reverse else tuple(spans[k] + t for t in taps)
        parts.seqs.append(SeqSpec(buf, offsets, spans[k], inner_states[k]))

    float_states = [k for k in range(ns) if _is_float(out_states[k])]
    # A cotangent that is zero but for the buffer's last row (the gradient of
    # ``outputs[-1]``) enters the backward loop as the initial carry, not as a sequence.
    last_rows = {}
    if not reverse and truncate == -1:
        for k in float_states:
            g = g_states[k]
            if g is None or info.state_last[k] or -1 not in info.state_taps[k]:
                continue
            row = _last_row_only(g, spans[k])
            if row is None:
                continue
            like = bufs[k][-1]
            if row.type.dtype != like.type.dtype:
                continue
            if row.type.shape != like.type.shape:
                row = st.second(like, row)  # broadcast as the increment did
            last_rows[k] = row
    bp_outputs, bp_cotangents = [], []
    carries: dict[tuple[int, int], object] = {}   # (state, tap) -> placeholder of D_m
    for k in float_states:
        terms = []
        g = g_states[k]
        if g is not None and not info.state_last[k] and k not in last_rows:
            holder = _row(g)
            parts.seqs.append(SeqSpec(g, (0 if reverse else spans[k],), spans[k], [holder]))
            terms.append(holder)
        for tap in info.state_taps[k]:
            holder = inner_states[k][0].type()
            carries[(k, tap)] = holder
            terms.append(holder)
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        bp_outputs.append(out_states[k])
        bp_cotangents.append(total)
    for j, g in enumerate(g_nitsot):
        if g is None or not _is_float(out_nitsot[j]):
            continue
        holder = _row(g)
        parts.seqs.append(SeqSpec(g, (0,), 0, [holder]))
        bp_outputs.append(out_nitsot[j])
        bp_cotangents.append(holder)

    diff_seq_vars = [v for j in range(len(seqs)) if _is_float(seqs[j]) for v in inner_seqs[j]]
    state_vars = [v for k in float_states for v in inner_states[k]]
    diff_ns = [v for v, outer in zip(inner_ns, nonseqs) if _is_float(outer)]
    wrt = diff_seq_vars + state_vars + diff_ns
    grads, _ = backprop(bp_outputs, bp_cotangents, wrt)
    grads = _reuse_stored_outputs(op, parts, full, grads)
    grad_of = dict(zip(wrt, grads))

    # D_m states: what each step sends back to the state value m steps before it.
    carry_keys = []
    for k in float_states:
        for tap, var in zip(info.state_taps[k], inner_states[k]):
            m = -tap
            g = grad_of.get(var)
            new = g if g is not None else st.zeros_like(var)
            if info.state_last[k] and tap == -1 and g_states[k] is not None:
                last_g = g_states[k]
                init = last_g.dimshuffle(("x",) + tuple(range(last_g.ndim)))
            elif tap == -1 and k in last_rows:
                row = last_rows[k]
                init = row.dimshuffle(("x",) + tuple(range(row.ndim)))
            else:
                init = _zeros_rows(inits[k], m)
            keep_last = m == 1 and truncate == -1
            parts.states.append(StateSpec(init, (tap,), [carries[(k, tap)]], new, last=keep_last))
            carry_keys.append((k, tap, keep_last))
    # Sequence cotangents: one mapped output per tap.
    seq_keys = []
    for j in range(len(seqs)):
        if not _is_float(seqs[j]):
            continue
        for o, var in zip(info.seq_taps[j], inner_seqs[j]):
            g = grad_of.get(var)
            if g is not None:
                parts.nitsots.append(g)
                seq_keys.append((j, o))
    # Non-sequence cotangents: summed over the steps.
    ns_keys = []
    for n, var in enumerate(inner_ns):
        g = grad_of.get(var)
        if g is None or not _is_float(nonseqs[n]):
            continue
        acc = var.type()
        init = st.zeros_like(nonseqs[n])
        init = init.dimshuffle(("x",) + tuple(range(init.ndim)))
        parts.states.append(StateSpec(init, (-1,), [acc], acc + g, last=True))
        ns_keys.append(n)

    if not parts.states and not parts.nitsots:
        return [None] * n_in
    name = f"grad_of_{info.name or 'scan'}"
    if truncate == -1:
        start = 0
        results = build_scan(parts, None, known, reverse=not reverse, infer_steps=True,
                             name=name)
    else:
        n_run = _n_run(op, full)
        k_steps = st.minimum(n_run, truncate)
        start = n_run - k_steps
        for spec in parts.seqs:
            spec.outer = spec.outer[start:]
        results = build_scan(parts, k_steps, known, reverse=True, infer_steps=False, name=name)

    n_carry = len(carry_keys)
    carry_out = results[:n_carry]
    ns_out = results[n_carry:n_carry + len(ns_keys)]
    seq_out = results[n_carry + len(ns_keys):]

    grads_in = [None] * n_in
    n_seqs = len(seqs)
    for (j, o), d in zip(seq_keys, seq_out):
        pos = 1 + j
        grads_in[pos] = _add_rows(grads_in[pos], seqs[j], start + o, d, d.shape[0])
    for k in float_states:
        pos = 1 + n_seqs + k
        span = spans[k]
        total = None
        g = g_states[k]
        if g is not None and not info.state_last[k] and k not in last_rows:
            # (with a last-row cotangent these rows are zero, or, after no step at all,
            # the last row itself: the carry brings it back)
            total = _add_rows(None, inits[k], 0, g[-span:] if reverse else g[:span], span)
        for (kk, tap, keep_last), d in zip(carry_keys, carry_out):
            if kk != k:
                continue
            m = -tap
            if truncate != -1:
                # Rows of the forward buffer that steps start.. sent cotangents to.
                adjoint = st.inc_subtensor(
                    st.zeros_like(bufs[k])[start + span - m:start + span - m + k_steps],
                    d[:k_steps])
                total = _add_rows(total, inits[k], 0, adjoint[:span], span)
                continue
            if keep_last:
                rows = d.dimshuffle(("x",) + tuple(range(d.ndim)))
            else:
                rows = d[-m:] if reverse else d[:m]
            total = _add_rows(total, inits[k], 0 if reverse else span - m, rows, m)
        grads_in[pos] = total
    for n, acc in zip(ns_keys, ns_out):
        grads_in[1 + n_seqs + ns + n] = acc
    return grads_in


def scan_pushforward(op, inputs, outputs, tangents):
    import symgrad.tensor as st
    from symgrad.gradient import pushforward_graph

    info = op.info
    n_out = len(outputs)
    _, seqs, inits, nonseqs = op.split_outer_inputs(inputs)
    _, t_seqs, t_inits, t_ns = op.split_outer_inputs(list(tangents))
    t_seqs = [t if t is not None and _is_float(s) else None for s, t in zip(seqs, t_seqs)]
    t_inits = [t if t is not None and _is_float(s) else None for s, t in zip(inits, t_inits)]
    t_ns = [t if t is not None and _is_float(s) else None for s, t in zip(nonseqs, t_ns)]
    if all(t is None for t in t_seqs + t_inits + t_ns):
        return [None] * n_out
    inner_seqs, inner_states, inner_ns = op.inner_seqs, op.inner_states, op.inner_nonseqs
    out_states, out_nitsot = op.inner_state_outputs, op.inner_nitsot_outputs
    ns = info.n_states

    seq_tan = {j: [v.type() for v in inner_seqs[j]] for j, t in enumerate(t_seqs)
               if t is not None}
    ns_tan = {n: inner_ns[n].type() for n, t in enumerate(t_ns) if t is not None}
    active = {k for k, t in enumerate(t_inits) if t is not None}
    while True:  # a state carries a tangent once anything it depends on does
        state_tan = {k: [v.type() for v in inner_states[k]] for k in sorted(active)}
        wrt, tan = [], []
        for j, holders in seq_tan.items():
            wrt += inner_seqs[j]
            tan += holders
        for k, holders in state_tan.items():
            wrt += inner_states[k]
            tan += holders
        for n, holder in ns_tan.items():
            wrt.append(inner_ns[n])
            tan.append(holder)
        out_tan = pushforward_graph(list(out_states) + list(out_nitsot), wrt, tan)
        grow = {k for k in range(ns) if k not in active and out_tan[k] is not None
                and _is_float(out_states[k])}
        if not grow:
            break
        active |= grow

    parts = ScanParts(condition=op.inner_condition)
    known = dict(zip(inner_ns, nonseqs))
    known.update({holder: t_ns[n] for n, holder in ns_tan.items()})
    for j, seq in enumerate(seqs):
        parts.seqs.append(SeqSpec(seq, info.seq_taps[j], info.seq_extents[j], inner_seqs[j]))
    for j, holders in seq_tan.items():
        parts.seqs.append(SeqSpec(t_seqs[j], info.seq_taps[j], info.seq_extents[j], holders))
    for k in range(ns):
        parts.states.append(StateSpec(inits[k], info.state_taps[k], inner_states[k],
                                      out_states[k], last=info.state_last[k]))
    tangent_states = sorted(active)
    for k in tangent_states:
        init = t_inits[k] if t_inits[k] is not None else st.zeros_like(inits[k])
        out = out_tan[k] if out_tan[k] is not None else st.zeros_like(out_states[k])
        parts.states.append(StateSpec(init, info.state_taps[k], state_tan[k], out,
                                      last=info.state_last[k]))
    nitsot_keys = []
    for j in range(info.n_nitsot):
        t = out_tan[ns + j]
        if t is not None and _is_float(out_nitsot[j]):
            parts.nitsots.append(t)
            nitsot_keys.append(j)
    n_steps = inputs[0]
    results = build_scan(parts, None if info.infer_steps else n_steps, known,
                         reverse=info.reverse, infer_steps=info.infer_steps,
                         truncate_gradient=info.truncate_gradient,
                         name=f"tangent_of_{info.name or 'scan'}")
    out = [None] * n_out
    for k, res in zip(tangent_states, results[ns:ns + len(tangent_states)]):
        out[k] = res
    for j, res in zip(nitsot_keys, results[ns + len(tangent_states):]):
        out[ns + j] = res
    return out
