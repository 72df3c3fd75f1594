"""The Python loop that runs a Scan node: preallocated outputs, the step's code inlined.

:func:`make_loop` writes one Python function (with the python backend's code
generator) whose body is ``for t in range(steps):`` around the step graph's code:
no call per step, no argument tuples. The rows each step reads come from iterators
over the sequences and the state buffers (a view per step, made in C), or, for a
state that keeps only its last value, from its ring of rows. Step graphs too large
to be compiled as source run the old way: one call of the compiled step per step.

Results are written nitsots first, then the states whose whole trace is kept, then the
states that keep only their last value (whose ring row is the very row the step read):
a value that may be a view of a ring row is copied before another ring row is written,
so ``reduce(lambda a, b: [b, a], ...)`` swaps.
"""

from __future__ import annotations

import numpy as np

from symgrad.graph.basic import Constant
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


def _fresh(var) -> bool:
    """Whether the step computes ``var`` into memory of its own (never a view of an input)."""
    from symgrad.tensor.elemwise import Elemwise
    from symgrad.tensor.fusion import FusedElemwise

    if isinstance(var, Constant):
        return True
    owner = var.owner
    if owner is None:
        return False
    op = owner.op
    if isinstance(op, Elemwise | FusedElemwise):
        return not op.inplace
    return type(op).__name__ == "Dot"


class _Setup:
    """What one call needs before the loop: the number of steps and the state buffers."""

    __slots__ = ("steps", "buffers", "row_shapes", "rings")


def make_loop(op, node, inner_fgraph, inner_fn=None):
    """A callable ``run(n_steps, *outer_values) -> tuple of outputs`` for ``node``.

    ``inner_fgraph`` is the rewritten step graph; ``inner_fn``, when given, its compiled
    form, called once per step (the fallback for step graphs too large to inline).
    """
    info = op.info
    n_seqs, n_states = info.n_seqs, info.n_states
    spans = info.spans
    extents = info.seq_extents
    reverse = info.reverse
    as_while = info.as_while
    infer = info.infer_steps
    state_dtypes = [np.dtype(v[0].type.dtype) for v in op.inner_states]
    nitsot_types = [o.type for o in op.inner_nitsot_outputs]
    last = info.state_last
    seq_vars = node.inputs[1:1 + n_seqs]
    init_vars = node.inputs[1 + n_seqs:1 + n_seqs + n_states]
    name = info.name or "scan"

    def setup(n_steps, seqs, inits):
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
        # A state's buffer: its initial rows then one per step (the initial rows last when
        # reversed); a state that keeps only its last value lives in a ring of span rows.
        s = _Setup()
        s.steps = steps
        s.buffers, s.row_shapes, s.rings = [], [], []
        for k, init in enumerate(inits):
            init = np.asarray(init)
            span = spans[k]
            if init.shape[0] < span:
                raise ScanError(
                    f"{name}: the initial value of {_label(init_vars[k], f'state {k}')} has "
                    f"{init.shape[0]} rows, but its taps {list(info.state_taps[k])} need {span}")
            if last[k]:
                buf = np.empty((span,) + init.shape[1:], dtype=state_dtypes[k])
                buf[...] = init[:span]
                s.rings.append(_rows(buf, span))
            else:
                buf = np.empty((span + steps,) + init.shape[1:], dtype=state_dtypes[k])
                if reverse:
                    buf[steps:] = init[:span]
                else:
                    buf[:span] = init[:span]
                s.rings.append(None)
            s.buffers.append(buf)
            s.row_shapes.append(init.shape[1:])
        return s

    def finish(s, n_run, nitsots):
        steps = s.steps
        results = []
        for k, buf in enumerate(s.buffers):
            if last[k]:
                span = spans[k]
                newest = 0 if reverse else (span + n_run - 1) % span
                results.append(s.rings[k][newest].copy())
            elif as_while and n_run < steps:
                results.append(buf[:spans[k] + n_run])
            else:
                results.append(buf)
        for j, store in enumerate(nitsots):
            if store is None:
                shape = tuple(0 if d is None else d for d in nitsot_types[j].shape)
                store = np.empty((steps,) + shape, dtype=nitsot_types[j].dtype)
            elif as_while and n_run < steps:
                store = store[:n_run]
            results.append(store)
        return tuple(results) if len(results) != 1 else results[0]

    def bad_state_shape(t, k, value, row_shape):
        raise ScanError(
            f"{name}: at step {t} the step function returned shape {np.shape(value)} for "
            f"state {k}, but its initial value has rows of shape {row_shape}; a recurrent "
            f"output must keep its shape")

    def bad_nitsot_shape(t, j, value, row_shape):
        raise ScanError(
            f"{name}: at step {t} the step function returned shape {np.shape(value)} for "
            f"output {n_states + j}, but shape {row_shape} at step 0; every step must return "
            f"the same shape")

    def new_store(j, value, steps):
        return np.empty((steps,) + tuple(_shape(value)), dtype=nitsot_types[j].dtype)

    errors = (bad_state_shape, bad_nitsot_shape, new_store)
    if inner_fn is not None:
        return _stepwise_loop(op, setup, finish, inner_fn, errors)
    return _generated_loop(op, inner_fgraph, setup, finish, errors)


# -- the generated loop ----------------------------------------------------------------------------

def _generated_loop(op, fgraph, setup, finish, errors):
    from symgrad.backends import python as pyb

    info = op.info
    n_seqs, n_states, n_nitsot = info.n_seqs, info.n_states, info.n_nitsot
    spans, reverse, last = info.spans, info.reverse, info.state_last
    bad_state_shape, bad_nitsot_shape, new_store = errors
    nodes = fgraph.toposort()
    inputs = fgraph.inputs
    outputs = fgraph.outputs
    clients = fgraph.clients
    used = [bool(clients.get(v)) or v in outputs for v in inputs]

    em = pyb._Emitter(fgraph, nodes, False)
    glb = em.glb
    glb.update(range=range, zip=zip, _bad_state=bad_state_shape, _bad_nitsot=bad_nitsot_shape,
               _new_store=new_store, _shape=_shape)
    params = ["steps"]
    loop_vars = []     # names bound by the for statement (besides t)
    iterables = []     # per loop var: ("seq", j, offset) | ("state", k, tap)
    pre_lines = []     # per step, before the body: reads by index
    ring_params = []   # (k, param name): the rows of a ring, a list
    # Inner inputs: sequence rows, state rows, non-sequences.
    k_in = 0
    for j, offsets in enumerate(info.seq_taps):
        for o in offsets:
            var = inputs[k_in]
            name = f"a{k_in}"
            em.names[var] = name
            if used[k_in]:
                loop_vars.append(name)
                iterables.append(("seq", j, o))
            k_in += 1
    ring_names = {}
    for k, taps in enumerate(info.state_taps):
        for tap in taps:
            var = inputs[k_in]
            name = f"a{k_in}"
            em.names[var] = name
            if used[k_in]:
                if not last[k]:
                    loop_vars.append(name)
                    iterables.append(("state", k, tap))
                else:
                    ring = ring_names.setdefault(k, f"R{k}")
                    if spans[k] == 1:
                        pre_lines.append(None)  # the ring's one row, bound once (below)
                        em.names[var] = f"{ring}_0"
                    else:
                        d = (-tap) if reverse else (spans[k] + tap)
                        pre_lines.append(f"{name} = {ring}[(t + {d}) % {spans[k]}]")
            k_in += 1
    nonseq_vars = inputs[k_in:]
    for n, var in enumerate(nonseq_vars):
        name = f"a{k_in + n}"
        em.names[var] = name
        em.invariant.add(var)
    for k in range(n_states):
        if last[k]:
            ring_names.setdefault(k, f"R{k}")
    for k in sorted(ring_names):
        ring_params.append((k, ring_names[k]))

    params += [f"q{i}" for i in range(len(iterables))]
    params += [f"B{k}" for k in range(n_states) if not last[k]]
    params += [name for _, name in ring_params]
    params += [em.names[v] for v in nonseq_vars]

    # States whose new value the step computes straight into the buffer row (out=): a
    # row of a kept trace (which no step reads before the next), or the one row of a ring
    # once nothing reads the old value any more.
    order = {n: i for i, n in enumerate(nodes)}
    into = {}
    direct = set()
    for k in range(n_states):
        var = outputs[k]
        producer = var.owner
        if producer is None or producer in into or outputs.count(var) != 1 or \
                var.type.dtype != op.inner_states[k][0].type.dtype or not pyb.can_emit_into(producer) or \
                any(c != "output" for c, _ in clients.get(var, ())):
            continue
        if not last[k]:
            dest = f"w{k}"
        else:
            ring_var = op.inner_states[k][0]
            ring_var = inputs[op.inner_inputs.index(ring_var)]
            if spans[k] != 1 or ring_var in producer.inputs or not all(
                    c != "output" and order[c] < order[producer] and _consumes(c)
                    for c, _ in clients.get(ring_var, ())):
                continue
            dest = f"R{k}_0"
        checked = [] if type(producer.op).__name__ == "Dot" else [
            i for i in producer.inputs if not isinstance(i, Constant)
            and i.type.ndim == var.type.ndim]
        if type(producer.op).__name__ != "Dot" and not checked:
            continue
        into[producer] = (dest, _shape_check(k, checked))
        direct.add(k)
    write_iters = [k for k in sorted(direct) if not last[k]]

    body_indent = 3
    em.indent = body_indent
    for line in pre_lines:
        if line is not None:
            em.emit(line)
    pyb.emit_nodes(em, nodes, into=into)
    out_texts = pyb.output_texts(em, outputs)

    def shape_of(var, text):
        if var.type.ndim > 0 or (var.owner is not None and type(var.owner.op).__name__
                                 in ("Elemwise", "FusedElemwise", "Dot")):
            return f"{text}.shape"  # an array, or a numpy scalar
        return f"_shape({text})"

    # Writes: nitsots, then full traces, then rings.
    for j in range(n_nitsot):
        var = outputs[n_states + j]
        text = out_texts[n_states + j]
        em.emit(f"if N{j} is None:")
        em.emit(f"    N{j} = _new_store({j}, {text}, steps)")
        em.emit(f"    M{j} = N{j}.shape[1:]")
        em.emit(f"elif {shape_of(var, text)} != M{j}:")
        em.emit(f"    _bad_nitsot(t, {j}, {text}, M{j})")
        em.emit(f"N{j}[t] = {text}")
    rings = [k for k in range(n_states) if last[k]]
    for k in range(n_states):
        if last[k] or k in direct:
            continue
        var, text = outputs[k], out_texts[k]
        em.emit(f"if {shape_of(var, text)} != S{k}:")
        em.emit(f"    _bad_state(t, {k}, {text}, S{k})")
        w = "t" if reverse else f"t + {spans[k]}"
        em.emit(f"B{k}[{w}] = {text}")
    copy_first = len(rings) > 1
    rings = [k for k in rings if k not in direct]
    ring_texts = {}
    for k in rings:
        var, text = outputs[k], out_texts[k]
        em.emit(f"if {shape_of(var, text)} != S{k}:")
        em.emit(f"    _bad_state(t, {k}, {text}, S{k})")
        if copy_first and not _fresh(var):
            c = em.local()
            copier = em.bind(np.array, "f")
            em.emit(f"{c} = {copier}({text})")
            text = c
        ring_texts[k] = text
    for k in rings:
        if spans[k] == 1:
            em.emit(f"R{k}_0[...] = {ring_texts[k]}")
        else:
            em.emit(f"R{k}[t % {spans[k]}][...] = {ring_texts[k]}")
    if info.as_while:
        em.emit(f"if {out_texts[-1]}:")
        em.emit("    n_run = t + 1")
        em.emit("    break")

    # Assemble: signature, setup lines, the for statement, the body.
    head = []
    for j in range(n_nitsot):
        head.append(f"N{j} = None")
        head.append(f"M{j} = None")
    for k, name in ring_params:
        if spans[k] == 1:
            head.append(f"{name}_0 = {name}[0]")
    head.append("n_run = steps")
    head.append("t = None")
    head += [f"{name} = None" for name in loop_vars]
    head += [line.split(" = ")[0] + " = None" for line in pre_lines if line is not None]
    rng = "range(steps - 1, -1, -1)" if reverse else "range(steps)"
    loop_vars += [f"w{k}" for k in write_iters]
    iterables += [("write", k, None) for k in write_iters]
    n_reads = len(iterables) - len(write_iters)
    params[1 + n_reads:1 + n_reads] = [f"q{i}" for i in range(n_reads, len(iterables))]
    if loop_vars:
        target = ", ".join(["t"] + loop_vars)
        source_iter = f"zip({rng}, {', '.join(f'q{i}' for i in range(len(iterables)))})"
    else:
        target, source_iter = "t", rng
    lines = [f"def _symgrad_loop({', '.join(params)}, S):"]
    lines += ["    " + h for h in head]
    lines += [f"    S{k} = S[{k}]" for k in range(n_states)]
    lines += ["    try:"]
    lines += ["        " + p for p in em.prelude]
    lines += [f"        for {target} in {source_iter}:"]
    lines += em.lines
    lines += ["    except Exception as _e:",
              f"        _diagnose(_e, [{', '.join(_input_text(em, v) for v in inputs)}], t, S)",
              "        raise",
              f"    return [n_run{''.join(f', N{j}' for j in range(n_nitsot))}]"]
    source = "\n".join(lines) + "\n"
    for v, u in zip(inputs, used):
        if not u:
            glb[em.names[v]] = None  # never read: the diagnosis passes None for it
    glb["_diagnose"] = _loop_diagnose(fgraph, nodes, used, bad_state_shape, bad_nitsot_shape)
    ns, _ = pyb.exec_source(source, glb, ("scan-loop", source))
    loop_fn = ns["_symgrad_loop"]

    def run(n_steps, *args):
        seqs = args[:n_seqs]
        s = setup(n_steps, seqs, args[n_seqs:n_seqs + n_states])
        steps = s.steps
        its = []
        for kind, a, b in iterables:
            if kind == "seq":
                rows = np.asarray(seqs[a])[b:b + steps]
            elif kind == "write":
                start = 0 if reverse else spans[a]
                rows = s.buffers[a][start:start + steps]
            else:
                buf = s.buffers[a]
                start = -b if reverse else spans[a] + b
                rows = buf[start:start + steps]
            its.append(rows[::-1] if reverse else rows)
        call = [steps] + its
        call += [buf for k, buf in enumerate(s.buffers) if not last[k]]
        call += [s.rings[k] for k, _ in ring_params]
        call += args[n_seqs + n_states:]
        call.append(s.row_shapes)
        n_run, *nitsots = loop_fn(*call)
        return finish(s, n_run, nitsots)

    run.source = source
    return run


def _input_text(em, var):
    return em.names[var]


def _loop_diagnose(fgraph, nodes, used, bad_state_shape, bad_nitsot_shape):
    """On a failure inside the loop: ScanErrors go through; others are reproduced node by
    node on the current step's inputs, to name the op that failed, or, when the step runs,
    to report a result of the wrong shape (which writing it into its row refused)."""
    from symgrad.backends.python import OpRuntimeError, _run_node_by_node

    def diagnose(exc, values, t, row_shapes):
        if isinstance(exc, ScanError | OpRuntimeError) or any(
                v is None for v, u in zip(values, used) if u):
            return
        got = _run_node_by_node(fgraph, nodes, values)
        for k, shape in enumerate(row_shapes):
            out = fgraph.outputs[k]
            value = out.data if isinstance(out, Constant) else got[out]
            if _shape(value) != tuple(shape):
                bad_state_shape(t, k, value, tuple(shape))
    return diagnose


def _consumes(node) -> bool:
    """Whether ``node`` only reads its inputs (its outputs are never views of them)."""
    from symgrad.tensor.elemwise import Elemwise
    from symgrad.tensor.fusion import FusedElemwise

    op = node.op
    if isinstance(op, Elemwise | FusedElemwise):
        return not op.inplace
    return type(op).__name__ == "Dot"


def _shape_check(k, checked):
    """Before a state's value is computed into its row: one elementwise operand must have
    the row's shape (numpy would broadcast smaller operands into the row silently)."""
    def before(em, node):
        if not checked:
            return  # np.dot(..., out=row) checks the shape itself
        texts = [em.expr(i) for i in checked]
        cond = " and ".join(f"{t}.shape != S{k}" for t in texts)
        bcast = em.bind(_broadcast_value, "f")
        em.emit(f"if {cond}:")
        em.emit(f"    _bad_state(t, {k}, {bcast}({', '.join(texts)}), S{k})")
    return before


def _broadcast_value(*values):
    """Something of the shape the operands broadcast to (to report it)."""
    return np.broadcast_to(0, np.broadcast(*values).shape)


# -- the fallback: one call of the compiled step per step ---------------------------------------------

def _stepwise_loop(op, setup, finish, inner_fn, errors):
    info = op.info
    n_seqs, n_states, n_nitsot = info.n_seqs, info.n_states, info.n_nitsot
    spans, reverse, last = info.spans, info.reverse, info.state_last
    bad_state_shape, bad_nitsot_shape, new_store = errors
    seq_reads = [(j, o) for j, offsets in enumerate(info.seq_taps) for o in offsets]
    state_reads = [(k, tap) for k, taps in enumerate(info.state_taps) for tap in taps]
    as_while = info.as_while
    rings = [k for k in range(n_states) if last[k]]
    order = [k for k in range(n_states) if not last[k]] + rings

    def run(n_steps, *args):
        seqs = args[:n_seqs]
        s = setup(n_steps, seqs, args[n_seqs:n_seqs + n_states])
        steps = s.steps
        nonseqs = list(args[n_seqs + n_states:])
        state_rows = []
        for k, buf in enumerate(s.buffers):
            if last[k]:
                ring = s.rings[k]
                state_rows.append([ring[i % spans[k]] for i in range(spans[k] + steps)])
            else:
                state_rows.append(_rows(buf, len(buf)))
        seq_rows = [_rows(np.asarray(sq), steps + e) for sq, e in zip(seqs, info.seq_extents)]
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
            for j in range(n_nitsot):
                value = outs[n_states + j]
                store = nitsots[j]
                if store is None:
                    store = nitsots[j] = new_store(j, value, steps)
                elif _shape(value) != store.shape[1:]:
                    bad_nitsot_shape(t, j, value, store.shape[1:])
                store[t] = value
            staged = []
            for k in order:
                value = outs[k]
                if _shape(value) != s.row_shapes[k]:
                    bad_state_shape(t, k, value, s.row_shapes[k])
                if last[k] and len(rings) > 1:
                    value = np.array(value)
                staged.append((k, value))
            for k, value in staged:
                state_rows[k][t + writes[k]][...] = value
            if as_while and outs[-1]:
                n_run = r + 1
                break
        return finish(s, n_run, nitsots)

    return run
