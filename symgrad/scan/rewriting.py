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
    return _rebuild(node, inner_inputs, inner_outputs, keep_states, keep_nitsot)[0]


def _rebuild(node, inner_inputs, inner_outputs, keep_states=None, keep_nitsot=None,
             extra_nitsots=(), extra_seqs=(), keep_seqs=False):
    """:func:`rebuild`, with ``extra_nitsots`` (inner variables) appended as new mapped
    outputs and ``extra_seqs`` (``(outer, inner)`` pairs: step t reads ``outer[t]``) as new
    sequences; returns ``({old output: new output}, [outer output of each extra nitsot])``.
    ``keep_seqs``: the sequences no step reads stay inputs (their lengths are checked)."""
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
    kept_outputs += list(extra_nitsots)
    needed = set(ancestors(kept_outputs + ([condition] if condition is not None else [])))
    parts = ScanParts(condition=condition)
    for j, seq in enumerate(seqs):
        used = [(o, v) for o, v in zip(info.seq_taps[j], inner_seqs[j]) if v in needed]
        if not used:
            if not info.infer_steps and not keep_seqs:
                continue  # the number of steps does not depend on it
            used = [(info.seq_taps[j][0], inner_seqs[j][0])]
        parts.seqs.append(SeqSpec(seq, tuple(o for o, _ in used), info.seq_extents[j],
                                  [v for _, v in used]))
    for outer, var in extra_seqs:
        if var in needed:
            parts.seqs.append(SeqSpec(outer, (0,), 0, [var]))
    for k in keep_states:
        parts.states.append(StateSpec(inits[k], info.state_taps[k], inner_states[k],
                                      out_states[k], last=info.state_last[k]))
    parts.nitsots = [out_nitsot[j] for j in keep_nitsot] + list(extra_nitsots)
    results = build_scan(parts, None if info.infer_steps else n_steps,
                         dict(zip(inner_ns, nonseqs)), reverse=info.reverse,
                         infer_steps=info.infer_steps, truncate_gradient=info.truncate_gradient,
                         name=info.name)
    old = [node.outputs[k] for k in keep_states] + [node.outputs[n_states + j]
                                                    for j in keep_nitsot]
    n_kept = len(old)
    return dict(zip(old, results[:n_kept])), results[n_kept:]


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
    mapping = rebuild(node, op.inner_inputs, op.inner_outputs, keep_states, keep_nitsot)
    if op.__dict__.get("_inner_rewritten") and mapping:
        _mark(next(iter(mapping.values())).owner.op, "_inner_rewritten")  # a part of it
    return mapping


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


# -- sums over the steps, computed after the loop -------------------------------------------------

_FLOATS = ("float16", "float32", "float64", "complex64", "complex128")


def _scalar_name(var):
    """The scalar op name of an Elemwise node producing ``var``, else None."""
    from symgrad.tensor.elemwise import Elemwise

    owner = var.owner
    if owner is None or not isinstance(owner.op, Elemwise) or len(owner.outputs) != 1:
        return None
    return owner.op.scalar_op.name


def _undimshuffle(f, order):
    """``x`` when ``f`` is ``x.dimshuffle(order)``, else None."""
    from symgrad.tensor.elemwise import DimShuffle

    owner = f.owner
    if owner is not None and isinstance(owner.op, DimShuffle) and owner.op.new_order == order:
        return owner.inputs[0]
    return None


def _outer_factors(term, dtype):
    """``(column vector, row vector)`` when ``term`` (a matrix) is the outer product
    ``col[:, None] * row[None, :]`` (times 0-d factors, folded into the column); else None."""
    if term.ndim != 2 or _scalar_name(term) != "mul":
        return None
    cols, rows, scalars = [], [], []
    for f in term.owner.inputs:
        if f.type.dtype != dtype:
            return None
        d0, d1 = f.type.shape
        if d0 == 1 and d1 == 1:
            s = _undimshuffle(f, ("x", "x"))
            scalars.append(s if s is not None else f[0, 0])
        elif d1 == 1 and d0 != 1:
            v = _undimshuffle(f, (0, "x"))
            cols.append(v if v is not None else f[:, 0])
        elif d0 == 1 and d1 != 1:
            v = _undimshuffle(f, ("x", 0))
            rows.append(v if v is not None else f[0])
        else:
            return None
    if len(cols) != 1 or len(rows) != 1:
        return None
    col = cols[0]
    for s in scalars:
        col = col * s
    return col, rows[0]


@node_rewriter([SCAN], sets=("specialize",), name="scan_sum_after_loop")
def scan_sum_after_loop(fgraph, node):
    """A state that only adds a term at every step (``acc_t = acc_{t-1} + term_t``, keeping
    its last value; the accumulated gradient of a non-sequence) is summed after the loop:

    - an outer product ``a_t[:, None] * b_t[None, :]`` sums to ``dot(A.T, B)``, with ``A``
      and ``B`` the stacked vectors (a sequence is used as it is);
    - a term of at most one dimension (besides axes of length 1) is stacked and summed
      over the steps.

    No ``(n, m)`` temporary per step, and one matrix product instead of ``T`` outer
    products. Terms of other forms stay in the loop.
    """
    import symgrad.tensor as st

    op, info = node.op, node.op.info
    if info.truncate_gradient != -1:
        return None
    inner = op.fgraph
    clients = inner.clients
    n_seq_in = info.n_inner_seq_inputs
    seq_of = {}  # inner sequence input -> (sequence index, row offset)
    k_in = 0
    for j, offsets in enumerate(info.seq_taps):
        for o in offsets:
            seq_of[op.inner_inputs[k_in]] = (j, o)
            k_in += 1
    assert k_in == n_seq_in
    plans = {}  # state -> [("outer", col, row) | ("stack", term)]
    outputs = list(op.inner_outputs)
    for k in range(info.n_states):
        if not info.state_last[k] or info.state_taps[k] != (-1,):
            continue
        acc = op.inner_states[k][0]
        out = op.inner_state_outputs[k]
        dtype = acc.type.dtype
        if dtype not in _FLOATS or out.type.dtype != dtype or _scalar_name(out) != "add":
            continue
        add = out.owner
        if [c for c, _ in clients.get(acc, ())] != [add] or outputs.count(out) != 1 or \
                any(c != "output" for c, _ in clients.get(out, ())):
            continue
        terms = [i for i in add.inputs if i is not acc]
        if len(terms) != len(add.inputs) - 1:
            continue
        plan = []
        for term in terms:
            if term.type.dtype != dtype or term.ndim != acc.ndim or any(
                    a == 1 and b != 1 for a, b in zip(acc.type.shape, term.type.shape)):
                plan = None
                break
            factors = _outer_factors(term, dtype)
            if factors is not None:
                plan.append(("outer",) + factors)
            elif sum(d != 1 for d in term.type.shape) <= 1:
                plan.append(("stack", term))  # at most a vector per step
            else:
                plan = None
                break
        if plan:
            plans[k] = plan
    if not plans:
        return None

    # The vectors and terms to stack: mapped outputs, or the sequence they are a row of.
    extra = []
    reads = []   # per plan entry: list of ("nitsot", index into extra) | ("seq", j, offset)

    def source(var, allow_seq=True):
        if allow_seq and var in seq_of:
            return ("seq",) + seq_of[var]
        if var not in extra:
            extra.append(var)
        return ("nitsot", extra.index(var))

    for k, plan in plans.items():
        for entry in plan:
            if entry[0] == "outer":
                a = source(entry[1])
                b = source(entry[2], allow_seq=a[0] != "seq")
                reads.append((k, "outer", a, b))
            else:
                reads.append((k, "stack", source(entry[1], allow_seq=False), entry[1]))
    keep_states = [k for k in range(info.n_states) if k not in plans]
    mapping, stacked = _rebuild(node, op.inner_inputs, op.inner_outputs,
                                keep_states=keep_states, extra_nitsots=extra)
    _mark(next(iter(stacked)).owner.op, "_inner_rewritten")
    _, seqs, inits, _ = op.split_outer_inputs(node.inputs)
    n_run = stacked[0].shape[0]

    def value(src, dims):
        """The stacked rows; after no step at all, with the rows' shape ``dims`` (a loop
        that never ran cannot tell the shape of what it would have stacked)."""
        if src[0] == "seq":
            _, j, o = src
            return seqs[j][o:o + n_run]
        rows = stacked[src[1]]
        ran = st.gt(rows.shape[0], 0)
        shape = [rows.shape[0]] + [
            d if isinstance(d, int) else st.switch(ran, rows.shape[1 + i], d)
            for i, d in enumerate(dims)]
        return rows.reshape(shape)

    totals = {}
    for entry in reads:
        k = entry[0]
        acc_shape = inits[k].shape
        if entry[1] == "outer":
            total = st.dot(value(entry[2], [acc_shape[1]]).T, value(entry[3], [acc_shape[2]]))
        else:
            term = entry[3]
            dims = [1 if d == 1 else acc_shape[1 + i] for i, d in enumerate(term.type.shape)]
            total = st.sum(value(entry[2], dims), axis=0, dtype=inits[k].type.dtype)
        totals[k] = total if k not in totals else totals[k] + total
    for k, total in totals.items():
        mapping[node.outputs[k]] = inits[k][0] + total
    return mapping


# -- work on the sequences alone, done for all steps at once --------------------------------------

def _batches_cheaply(node, pure, dims) -> bool:
    """Whether ``node`` (reading step-varying inputs only through ``pure`` values) is
    worth running once over all the steps: an elementwise op whose result is no larger
    than one of its step-varying inputs, or a product of such a vector with a fixed
    matrix."""
    from symgrad.tensor.elemwise import Elemwise
    from symgrad.tensor.linalg import Dot

    op = node.op
    if isinstance(op, Elemwise) and len(node.outputs) == 1:
        out = dims(node.outputs[0])
        return out is not None and any(i in pure and dims(i) == out for i in node.inputs)
    if isinstance(op, Dot):
        a, b = node.inputs
        return (a in pure and a.ndim == 1 and b not in pure and b.ndim == 2) or \
            (b in pure and b.ndim == 1 and a not in pure and a.ndim == 2)
    return False


@node_rewriter([SCAN], sets=("specialize",), name="scan_batch_sequence_work")
def scan_batch_sequence_work(fgraph, node):
    """Elementwise work (and products with fixed matrices) on the sequences alone runs
    once, over all the steps, before the loop; the loop reads its result as a new sequence.

    In the backward loop of ``tanh`` RNN, ``1 - h_t ** 2`` is computed for every ``t`` at
    once: one array operation instead of two per step. Loops with a stop condition keep
    their work (the steps after the stop must not run).
    """
    import symgrad.tensor as st
    from symgrad.graph.basic import Constant
    from symgrad.graph.traversal import clone_replace
    from symgrad.graph.vectorize import vectorize_graph
    from symgrad.tensor.rewriting.dims import Dims

    op, info = node.op, node.op.info
    if info.as_while or not info.n_seqs:
        return None
    inner = op.fgraph
    n_seq_in = info.n_inner_seq_inputs
    seq_in = op.inner_inputs[:n_seq_in]
    nonseqs_in = op.inner_nonseqs
    invariant = set(nonseqs_in)
    pure = set(seq_in)      # computed from sequence rows and fixed values only
    varying = set(op.inner_inputs[:n_seq_in + info.n_inner_state_inputs])
    dims = Dims()
    computed = set()        # pure values that a batched node computes
    for n in inner.toposort():
        ins = n.inputs
        if not any(i in varying for i in ins):
            continue
        if all(i in pure or i in invariant or isinstance(i, Constant) for i in ins) and \
                _batches_cheaply(n, pure, dims):
            pure.update(n.outputs)
            computed.update(n.outputs)
        varying.update(n.outputs)
    if not computed:
        return None
    outputs = set(op.inner_outputs)
    boundary = []
    for n in inner.toposort():
        for o in n.outputs:
            if o not in computed:
                continue
            users = [c for c, _ in inner.clients.get(o, ()) if c != "output"]
            if o in outputs or any(not all(u in computed for u in c.outputs) for c in users):
                boundary.append(o)
    if not boundary:
        return None
    _, seqs, _, nonseqs = op.split_outer_inputs(node.inputs)
    # The rows the steps read (never more than the sequences have: a sequence too short
    # for n_steps is reported by the loop, which keeps every sequence as an input).
    n_steps = None if info.infer_steps else node.inputs[0]
    for seq, extent in zip(seqs, info.seq_extents):
        length = seq.shape[0] - extent
        n_steps = length if n_steps is None else st.minimum(n_steps, length)
    n_steps = st.maximum(n_steps, 0)
    rows = {}
    k = 0
    for j, offsets in enumerate(info.seq_taps):
        for o in offsets:
            rows[seq_in[k]] = seqs[j][o:o + n_steps]
            k += 1
    fixed = clone_replace(boundary, dict(zip(nonseqs_in, nonseqs)))
    batched = vectorize_graph(fixed, rows)
    holders = [b.type() for b in boundary]
    new_outputs = clone_replace(list(op.inner_outputs), dict(zip(boundary, holders)))
    mapping, _ = _rebuild(node, op.inner_inputs, new_outputs,
                          extra_seqs=list(zip(batched, holders)), keep_seqs=True)
    _mark(next(iter(mapping.values())).owner.op, "_inner_rewritten")
    return mapping


@node_rewriter(["symgrad.tensor.shape:Shape", "symgrad.tensor.shape:Shape_i"],
               sets=("canonicalize",), name="scan_output_shape")
def scan_output_shape(fgraph, node):
    """The shape of a loop's output from its inputs' shapes (``Scan.infer_shape``): a
    function that only measures a loop's output does not run the loop, and a derivative
    that allocates zeros like it need not wait for it."""
    (v,) = node.inputs
    owner = v.owner
    if owner is None or not isinstance(owner.op, Scan) or owner.op.info.as_while:
        return None
    from symgrad.tensor.basic import as_tensor_variable, constant
    from symgrad.tensor.shape import Shape_i, shape_i, stack

    try:
        shapes = owner.op.infer_shape(owner, [[shape_i(i, k) for k in range(i.ndim)]
                                              for i in owner.inputs])
    except NotImplementedError:
        return None
    dims = [as_tensor_variable(d) if not isinstance(d, int) else
            constant(d, dtype="int64") for d in shapes[v.index]]
    new = dims[node.op.i] if isinstance(node.op, Shape_i) else stack(dims)
    if v in ancestors([new]):
        return None
    return [new]
