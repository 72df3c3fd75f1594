"""The Python loop that runs a Scan node: preallocated outputs, one inner call per step."""

from __future__ import annotations

import numpy as np

from symgrad.scan.op import ScanError


def _label(var, what):
    return f"{what} ({var.name!r})" if getattr(var, "name", None) else what


def _rows(array, n):
    """Views of the first ``n`` rows of ``array`` (0-d arrays, not scalars, for a vector)."""
    if array.ndim > 1:
        return list(array[:n])
    return [array[i, ...] for i in range(n)]


def _shape(value):
    shape = getattr(value, "shape", None)
    return shape if shape is not None else np.shape(value)


def make_loop(op, node, inner_fn):
    """A callable ``run(n_steps, *outer_values) -> tuple of outputs`` for ``node``."""
    info = op.info
    n_seqs, n_states, n_nitsot = info.n_seqs, info.n_states, info.n_nitsot
    spans = info.spans
    extents = info.seq_extents
    reverse = info.reverse
    as_while = info.as_while
    infer = info.infer_steps
    # (sequence index, row offset) for each inner sequence input, in order.
    seq_reads = [(j, o) for j, offsets in enumerate(info.seq_taps) for o in offsets]
    # (state index, tap) for each inner state input.
    state_reads = [(k, tap) for k, taps in enumerate(info.state_taps) for tap in taps]
    state_dtypes = [np.dtype(v[0].type.dtype) for v in op.inner_states]
    nitsot_types = [o.type for o in op.inner_nitsot_outputs]
    last = info.state_last
    seq_vars = node.inputs[1:1 + n_seqs]
    init_vars = node.inputs[1 + n_seqs:1 + n_seqs + n_states]
    name = info.name or "scan"

    def run(n_steps, *args):
        seqs = args[:n_seqs]
        inits = args[n_seqs:n_seqs + n_states]
        nonseqs = list(args[n_seqs + n_states:])
        lengths = [np.shape(s)[0] if np.ndim(s) else 0 for s in seqs]
        if infer:
            if not seqs:
                raise ScanError(f"{name}: no sequences to take the number of steps from")
            steps = min(L - e for L, e in zip(lengths, extents))
            if steps < 0:
                j = min(range(n_seqs), key=lambda i: lengths[i] - extents[i])
                raise ScanError(
                    f"{name}: {_label(seq_vars[j], f'sequence {j}')} has {lengths[j]} rows, but "
                    f"its taps need at least {extents[j]} more rows than the number of steps")
        else:
            steps = int(n_steps)
            if steps < 0:
                raise ScanError(f"{name}: n_steps must be >= 0, got {steps}")
            for j, (L, e) in enumerate(zip(lengths, extents)):
                if L < steps + e:
                    taps = "" if e == 0 else f" (its taps reach {e} rows past the current step)"
                    raise ScanError(
                        f"{name}: {_label(seq_vars[j], f'sequence {j}')} is too short: it has "
                        f"{L} rows, but n_steps={steps} needs {steps + e}{taps}")
        # One list of row views per state, indexed like its full buffer (initial rows
        # first, or last when reversed). A state that keeps only its last value lives
        # in a ring of span rows: its list repeats the ring's views.
        buffers, state_rows, row_shapes = [], [], []
        for k, init in enumerate(inits):
            init = np.asarray(init)
            span = spans[k]
            if init.shape[0] < span:
                raise ScanError(
                    f"{name}: the initial value of {_label(init_vars[k], f'state {k}')} has "
                    f"{init.shape[0]} rows, but its taps {list(info.state_taps[k])} need {span}")
            base = steps if reverse else 0
            size = span if last[k] else span + steps
            buf = np.empty((size,) + init.shape[1:], dtype=state_dtypes[k])
            rows = _rows(buf, size)
            if last[k]:
                rows = [rows[i % span] for i in range(span + steps)]
            for j in range(span):
                rows[base + j][...] = init[j]
            buffers.append(buf)
            state_rows.append(rows)
            row_shapes.append(init.shape[1:])
        # Row views, taken once: indexing a Python list is much cheaper than an array.
        seq_rows = [_rows(s, steps + e) for s, e in zip(seqs, extents)]
        reads = [(seq_rows[j], o) for j, o in seq_reads]
        if reverse:
            reads += [(state_rows[k], -tap) for k, tap in state_reads]
            writes = [0] * n_states
        else:
            reads += [(state_rows[k], spans[k] + tap) for k, tap in state_reads]
            writes = list(spans)
        nitsots = [None] * n_nitsot
        n_run = steps
        for r in range(steps):
            t = steps - 1 - r if reverse else r
            values = [rows[t + d] for rows, d in reads]
            values += nonseqs
            outs = inner_fn(*values)
            for k in range(n_states):
                value = outs[k]
                if _shape(value) != row_shapes[k]:
                    raise ScanError(
                        f"{name}: at step {t} the step function returned shape "
                        f"{np.shape(value)} for state {k}, but its initial value has rows of "
                        f"shape {row_shapes[k]}; a recurrent output must keep its shape")
                state_rows[k][t + writes[k]][...] = value
            for j in range(n_nitsot):
                value = outs[n_states + j]
                store = nitsots[j]
                if store is None:
                    store = nitsots[j] = np.empty((steps,) + np.shape(value),
                                                  dtype=nitsot_types[j].dtype)
                elif _shape(value) != store.shape[1:]:
                    raise ScanError(
                        f"{name}: at step {t} the step function returned shape "
                        f"{np.shape(value)} for output {n_states + j}, but shape "
                        f"{store.shape[1:]} at step 0; every step must return the same shape")
                store[t] = value
            if as_while and outs[-1]:
                n_run = r + 1
                break
        results = []
        for k, buf in enumerate(buffers):
            if last[k]:
                newest = 0 if reverse else spans[k] + n_run - 1
                results.append(state_rows[k][newest].copy())
            elif as_while and n_run < steps:
                results.append(buf[:spans[k] + n_run])
            else:
                results.append(buf)
        for j, store in enumerate(nitsots):
            if store is None:
                shape = tuple(0 if s is None else s for s in nitsot_types[j].shape)
                store = np.empty((steps,) + shape, dtype=nitsot_types[j].dtype)
            elif as_while and n_run < steps:
                store = store[:n_run]
            results.append(store)
        return tuple(results) if len(results) != 1 else results[0]

    return run
