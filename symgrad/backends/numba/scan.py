"""Scan in the numba backend: the step graph becomes a jitted function and the loop a jitted
helper calling it (same layout and semantics as ``symgrad.scan.loop``)."""

from __future__ import annotations

from symgrad.backends.numba.codegen import (
    FunctionWriter,
    Unsupported,
    _np_dtype,
    _tuple,
    assign_helper,
)

__all__ = ["scan_generator"]


def _inner_fgraph(op):
    cached = getattr(op, "_numba_inner_fgraph", None)
    if cached is not None:
        return cached
    from symgrad.compile.mode import Mode
    from symgrad.compile.pipeline import rewrite_graph
    from symgrad.graph.fgraph import FunctionGraph

    fgraph = FunctionGraph(op.inner_inputs, op.inner_outputs, clone=True)
    n = len(fgraph.inputs)
    fgraph = rewrite_graph(fgraph, Mode("NUMBA"), n_explicit=n, mutable=[False] * n)
    try:
        op._numba_inner_fgraph = fgraph
    except AttributeError:  # pragma: no cover
        pass
    return fgraph


def _step_function(op, module, parent):
    """The step function; the state outputs computed by an elementwise kernel are written
    straight into the row of the state's buffer (passed as extra arguments). Returns
    (name, constants, which states are written in place)."""
    fgraph = _inner_fgraph(op)
    fw = FunctionWriter(module, parent=parent)
    fw.lean_steps = fw.lean_scans = parent.lean_scans
    # the inputs the step reads (graph outputs included): the others are not passed (a row
    # view per step less to compile and to make)
    used = [bool(fgraph.clients.get(var)) for var in fgraph.inputs]
    for var, use in zip(fgraph.inputs, used):
        if use:
            name = fw.fresh("a")
            fw.params.append(name)
            fw.names[var] = name
    n_states = op.info.n_states
    outs = fgraph.outputs
    candidates = []
    for k in range(n_states):
        o = outs[k]
        if (o.owner is not None and o.type.ndim > 0 and outs.count(o) == 1
                and type(o.owner.op).__name__ in ("Elemwise", "FusedElemwise")):
            candidates.append(k)
    dest_params = {}
    for k in candidates:
        dest_params[k] = fw.fresh("dst")
        fw.destinations[outs[k]] = dest_params[k]
    for node in fgraph.toposort():
        try:
            fw.node(node)
        except Unsupported as exc:
            raise Unsupported(f"its step function uses {node.op}: {exc}") from None
    in_place = [k for k in candidates if outs[k] in fw.written_in_place]
    for k in candidates:  # the parameter is passed either way
        fw.params.append(dest_params[k])
    name = fw.function("step", fgraph.outputs)
    return name, fw.const_params, candidates, in_place, used


def scan_generator(op, node, w):
    info = op.info
    step, consts, dest_states, in_place, used = _step_function(op, w.module, w.fw)
    n_seqs, n_states, n_nitsot = info.n_seqs, info.n_states, info.n_nitsot
    spans, last, reverse = info.spans, info.state_last, info.reverse
    seq_reads = [(j, o) for j, offsets in enumerate(info.seq_taps) for o in offsets]
    state_reads = [(k, tap) for k, taps in enumerate(info.state_taps) for tap in taps]
    state_types = [v[0].type for v in op.inner_states]
    nit_types = [o.type for o in op.inner_nitsot_outputs]
    seqs = [f"s{j}" for j in range(n_seqs)]
    inits = [f"h{k}" for k in range(n_states)]
    nons = [f"n{j}" for j in range(info.n_nonseqs)]
    cs = [f"c{j}" for j in range(len(consts))]
    lines = []
    if info.infer_steps:
        if not seqs:
            raise Unsupported("a scan without sequences to take its length from")
        terms = [f"s{j}.shape[0] - {e}" for j, e in enumerate(info.seq_extents)]
        lines.append(f"steps = {terms[0]}")
        for t in terms[1:]:
            lines.append(f"steps = min(steps, {t})")
        lines += ["if steps < 0:", "    raise ValueError('scan: a sequence is too short')"]
    else:
        lines += ["steps = np.int64(n_steps)", "if steps < 0:",
                  "    raise ValueError('scan: n_steps must be >= 0')"]
        for j, e in enumerate(info.seq_extents):
            lines += [f"if s{j}.shape[0] < steps + {e}:",
                      "    raise ValueError('scan: a sequence is too short for n_steps')"]
    # A state whose outputs are only its last value lives in a ring of span + 1 rows (the row
    # written at a step is never one its taps read); others in the full buffer.
    def row_index(k, expr):
        return f"({expr}) % {spans[k] + 1}" if last[k] else expr

    for k in range(n_states):
        t = state_types[k]
        span = spans[k]
        row = [f"h{k}.shape[{d + 1}]" for d in range(t.ndim)]
        length = f"{span + 1}" if last[k] else f"{span} + steps"
        lines += [f"if h{k}.shape[0] < {span}:",
                  "    raise ValueError('scan: an initial state has too few rows for its taps')",
                  f"b{k} = np.empty({_tuple([length] + row)}, dtype={_np_dtype(t.dtype)})"]
        if last[k]:
            lines.append(f"for q in range({span}):")
            pos = row_index(k, "steps + q" if reverse else "q")
            if t.ndim == 0:
                lines.append(f"    b{k}[{pos}] = h{k}[q]")
            else:
                lines.append(f"    w{k} = {assign_helper(w.module, t.ndim, t.ndim)}(b{k}[{pos}], "
                             f"h{k}[q])")
        else:
            copy = assign_helper(w.module, t.ndim + 1, t.ndim + 1)
            target = f"b{k}[steps:]" if reverse else f"b{k}[:{span}]"
            lines.append(f"w{k} = {copy}({target}, h{k}[:{span}])")
    for j, t in enumerate(nit_types):
        placeholder = ["0"] + [str(s) if s is not None else "0" for s in t.shape]
        lines.append(f"m{j} = np.empty({_tuple(placeholder)}, dtype={_np_dtype(t.dtype)})")
    lines.append("n_run = steps")
    lines.append("for r in range(steps):")
    body = ["t = steps - 1 - r" if reverse else "t = r"]
    args = [f"s{j}[t + {o}]" for j, o in seq_reads]
    for k, tap in state_reads:
        pos = f"t - ({tap})" if reverse else f"{spans[k]} + t + ({tap})"
        args.append(f"b{k}[{row_index(k, pos)}]")
    args += nons
    args = [a for a, use in zip(args, used) if use]
    for k in dest_states:
        args.append(f"b{k}[{row_index(k, 't' if reverse else f'{spans[k]} + t')}]")
    args += cs
    n_out = n_states + n_nitsot + int(info.as_while)
    outs = [f"o{m}" for m in range(n_out)]
    body.append(f"{', '.join(outs)}{',' if n_out == 1 else ''} = {step}({', '.join(args)})")
    for k in range(n_states):
        pos = row_index(k, "t" if reverse else f"{spans[k]} + t")
        if k in in_place:
            continue
        if state_types[k].ndim == 0:
            body.append(f"b{k}[{pos}] = o{k}")
        else:
            copy = assign_helper(w.module, state_types[k].ndim, state_types[k].ndim)
            body.append(f"x{k} = {copy}(b{k}[{pos}], o{k})")
    for j, t in enumerate(nit_types):
        o = f"o{n_states + j}"
        shape = _tuple(["steps"] + [f"{o}.shape[{d}]" for d in range(t.ndim)])
        body += ["if r == 0:", f"    m{j} = np.empty({shape}, dtype={_np_dtype(t.dtype)})"]
        if t.ndim == 0:
            body.append(f"m{j}[t] = {o}")
        else:
            body.append(f"y{j} = {assign_helper(w.module, t.ndim, t.ndim)}(m{j}[t], {o})")
    if info.as_while:
        body += [f"if o{n_out - 1}:", "    n_run = r + 1", "    break"]
    lines += ["    " + b for b in body]
    results = []
    for k in range(n_states):
        buf = f"b{k}"
        if last[k]:
            pos = row_index(k, "0" if reverse else f"{spans[k]} + n_run - 1")
            lines.append(f"l{k} = {buf}[{pos}]" + (".copy()" if state_types[k].ndim else ""))
            results.append(f"l{k}")
            continue
        if info.as_while:
            lines.append(f"{buf} = {buf}[:{spans[k]} + n_run]")
        results.append(buf)
    for j in range(n_nitsot):
        if info.as_while:
            lines.append(f"m{j} = m{j}[:n_run]")
        results.append(f"m{j}")
    lines.append(f"return {_tuple(results)}")
    params = ["n_steps"] + seqs + inits + nons + cs
    name = w.module.helper("scan", params, lines)
    call_args = list(w.inputs) + [w.fw.ref(c) for c in consts]
    outs_text = ", ".join(w.out_names) + ("," if len(w.out_names) == 1 else "")
    return [f"{outs_text} = {name}({', '.join(call_args)})"]
