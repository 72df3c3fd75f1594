"""The Scan op: a loop whose body is an inner graph, run once per step.

Layout of one Scan node (``ScanInfo`` holds the static part):

outer inputs
    ``[n_steps, *sequences, *initial_buffers, *non_sequences]``
inner inputs (the step function's arguments)
    ``[one per sequence tap, one per state tap, one per non-sequence]``
inner outputs
    ``[one per state, one per mapped output (nit-sot), stop condition if as_while]``
outer outputs
    ``[one per state, one per mapped output]``

A **sequence** ``s`` with row offsets ``(o1, o2, ...)`` gives step ``t`` the rows
``s[t + o1], s[t + o2], ...``; it needs ``n_steps + extent`` rows. A **state** with
taps ``(-m1, -m2, ...)`` gives step ``t`` its own values ``m1, m2, ...`` steps back.
Its initial buffer holds the ``span = max(m)`` values before the first step (oldest
first), and its outer output is the whole buffer: the ``span`` initial rows followed
by one row per step (or, with ``state_last``, only the most recent value). A
**mapped output** has one row per step. A **non-sequence** is the same every step.

``reverse`` runs the steps from ``n_steps - 1`` down to 0, the mirror image of a
forward loop: step ``t`` still reads ``s[t + o]``, writes row ``t`` of each output,
and its state buffer keeps the initial rows at the end (``init[0]`` is the most
recent). Derivatives of a forward scan are reverse scans and vice versa.

``as_while``: the last inner output is a boolean; the loop stops after the first step
where it is true, and outputs have the length actually run.

``infer_steps``: ``n_steps`` is ``min(len(s) - extent(s))`` over the sequences (the
``n_steps`` input is ignored).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from symgrad.graph.basic import Apply, Constant, Op, Variable
from symgrad.graph.fgraph import FunctionGraph, MissingInputError
from symgrad.graph.traversal import toposort


class ScanError(ValueError):
    """A scan was given inputs (or a step function) that do not fit together."""


@dataclass(frozen=True)
class ScanInfo:
    seq_taps: tuple[tuple[int, ...], ...] = ()
    seq_extents: tuple[int, ...] = ()
    state_taps: tuple[tuple[int, ...], ...] = ()
    state_last: tuple[bool, ...] = ()
    n_nitsot: int = 0
    n_nonseqs: int = 0
    as_while: bool = False
    reverse: bool = False
    infer_steps: bool = False
    truncate_gradient: int = -1
    name: str | None = None

    def __post_init__(self):
        if len(self.seq_taps) != len(self.seq_extents):
            raise ValueError("ScanInfo: one extent per sequence")
        for offsets, extent in zip(self.seq_taps, self.seq_extents):
            if not offsets or min(offsets) < 0 or max(offsets) > extent:
                raise ValueError(f"ScanInfo: bad sequence offsets {offsets} (extent {extent})")
        if len(self.state_last) != len(self.state_taps):
            raise ValueError("ScanInfo: one state_last flag per state")
        for taps, last in zip(self.state_taps, self.state_last):
            if not taps or max(taps) >= 0 or len(set(taps)) != len(taps):
                raise ValueError(f"ScanInfo: state taps must be distinct negatives, got {taps}")
            if last and -1 not in taps:
                raise ValueError("ScanInfo: a state that keeps only its last value needs tap -1")
        if self.as_while and self.reverse:
            raise ValueError("ScanInfo: a reverse scan cannot have a stop condition")

    # -- derived counts ---------------------------------------------------------------------
    @property
    def n_seqs(self) -> int:
        return len(self.seq_taps)

    @property
    def n_states(self) -> int:
        return len(self.state_taps)

    @property
    def spans(self) -> tuple[int, ...]:
        return tuple(-min(taps) for taps in self.state_taps)

    @property
    def n_inner_seq_inputs(self) -> int:
        return sum(len(o) for o in self.seq_taps)

    @property
    def n_inner_state_inputs(self) -> int:
        return sum(len(t) for t in self.state_taps)

    @property
    def n_inner_inputs(self) -> int:
        return self.n_inner_seq_inputs + self.n_inner_state_inputs + self.n_nonseqs

    @property
    def n_inner_outputs(self) -> int:
        return self.n_states + self.n_nitsot + int(self.as_while)

    @property
    def n_outer_inputs(self) -> int:
        return 1 + self.n_seqs + self.n_states + self.n_nonseqs

    def replace(self, **changes) -> ScanInfo:
        return dataclasses.replace(self, **changes)


def _group(flat, sizes):
    out, k = [], 0
    for n in sizes:
        out.append(list(flat[k:k + n]))
        k += n
    return out


class Scan(Op):
    """A symbolic loop; build it with :func:`symgrad.scan.scan`, not directly."""

    __props__ = ("info", "signature")

    def __init__(self, inner_inputs, inner_outputs, info: ScanInfo):
        if len(inner_inputs) != info.n_inner_inputs:
            raise ValueError(f"Scan: {len(inner_inputs)} inner inputs, info says "
                             f"{info.n_inner_inputs}")
        if len(inner_outputs) != info.n_inner_outputs:
            raise ValueError(f"Scan: {len(inner_outputs)} inner outputs, info says "
                             f"{info.n_inner_outputs}")
        self.info = info
        self.fgraph = FunctionGraph(list(inner_inputs), list(inner_outputs), clone=True)
        self.inner_inputs = self.fgraph.inputs
        self.inner_outputs = self.fgraph.outputs
        self.signature = GraphSignature(self.inner_inputs, self.inner_outputs)

    def __str__(self):
        return f"Scan{{{self.info.name or 'scan_fn'}}}"

    __repr__ = __str__

    # -- grouped views of the inner graph ---------------------------------------------------
    @property
    def inner_seqs(self) -> list[list[Variable]]:
        n = self.info.n_inner_seq_inputs
        return _group(self.inner_inputs[:n], [len(o) for o in self.info.seq_taps])

    @property
    def inner_states(self) -> list[list[Variable]]:
        start = self.info.n_inner_seq_inputs
        n = self.info.n_inner_state_inputs
        return _group(self.inner_inputs[start:start + n], [len(t) for t in self.info.state_taps])

    @property
    def inner_nonseqs(self) -> list[Variable]:
        return self.inner_inputs[self.info.n_inner_inputs - self.info.n_nonseqs:]

    @property
    def inner_state_outputs(self) -> list[Variable]:
        return self.inner_outputs[:self.info.n_states]

    @property
    def inner_nitsot_outputs(self) -> list[Variable]:
        ns = self.info.n_states
        return self.inner_outputs[ns:ns + self.info.n_nitsot]

    @property
    def inner_condition(self) -> Variable | None:
        return self.inner_outputs[-1] if self.info.as_while else None

    def split_outer_inputs(self, inputs):
        """``(n_steps, sequences, initial_buffers, non_sequences)``."""
        info = self.info
        s, k = info.n_seqs, info.n_states
        return inputs[0], list(inputs[1:1 + s]), list(inputs[1 + s:1 + s + k]), \
            list(inputs[1 + s + k:])

    # -- building -------------------------------------------------------------------------------
    def make_node(self, *inputs):
        from symgrad.tensor.basic import as_tensor_variable, get_scalar_constant_value
        from symgrad.tensor.elemwise import cast
        from symgrad.tensor.type import TensorType

        info = self.info
        if len(inputs) != info.n_outer_inputs:
            raise TypeError(f"{self} takes {info.n_outer_inputs} inputs, got {len(inputs)}")
        inputs = [as_tensor_variable(i) for i in inputs]
        n_steps = inputs[0]
        if n_steps.ndim != 0 or n_steps.dtype[:3] not in ("int", "uin"):
            raise TypeError(f"scan: n_steps must be an integer scalar, got {n_steps} of type "
                            f"{n_steps.type}")
        if n_steps.dtype != "int64":
            n_steps = cast(n_steps, "int64")
        _, seqs, inits, nonseqs = self.split_outer_inputs(inputs)
        for j, (seq, inner) in enumerate(zip(seqs, self.inner_seqs)):
            _check_fits(seq, inner[0].type, 1, f"sequence {j}")
        for k, (init, inner) in enumerate(zip(inits, self.inner_states)):
            _check_fits(init, inner[0].type, 1, f"the initial buffer of state {k}")
            span = info.spans[k]
            if init.type.shape[0] is not None and init.type.shape[0] < span:
                raise ScanError(f"scan: the initial buffer of state {k} has "
                                f"{init.type.shape[0]} rows, but its taps "
                                f"{list(info.state_taps[k])} need {span}")
        for n, (ns, inner) in enumerate(zip(nonseqs, self.inner_nonseqs)):
            _check_fits(ns, inner.type, 0, f"non-sequence {n}")

        steps = None
        if not info.infer_steps and not info.as_while:
            value = get_scalar_constant_value(n_steps)
            if value is not None:
                steps = int(value)
        outputs = []
        for k, inner in enumerate(self.inner_states):
            row = inner[0].type
            if info.state_last[k]:
                outputs.append(TensorType(row.dtype, row.shape)())
            else:
                length = None if steps is None else steps + info.spans[k]
                outputs.append(TensorType(row.dtype, (length,) + row.shape)())
        for out in self.inner_nitsot_outputs:
            outputs.append(TensorType(out.type.dtype, (steps,) + out.type.shape)())
        return Apply(self, [n_steps, *seqs, *inits, *nonseqs], outputs)

    def connection_pattern(self, node):
        return [False] + [True] * (len(node.inputs) - 1)

    # -- evaluation -----------------------------------------------------------------------------
    def compile_inner(self):
        """Compile the step function (once per outer compile): ``(callable, rewritten fgraph)``."""
        from symgrad.backends.python import compile_fgraph

        fgraph = self.rewrite_inner()
        return compile_fgraph(fgraph), fgraph

    def rewrite_inner(self):
        """The step graph, rewritten by the current mode (for the python backend)."""
        from symgrad.compile.mode import Mode, get_mode
        from symgrad.compile.pipeline import no_gc, rewrite_graph

        mode = get_mode(None)
        inner_mode = Mode(mode.base, backend="python") if mode.backend != "python" else mode
        fgraph = FunctionGraph(self.inner_inputs, self.inner_outputs, clone=True)
        n = len(fgraph.inputs)
        with no_gc():
            return rewrite_graph(fgraph, inner_mode, n_explicit=n, mutable=self.mutable_inputs())

    def mutable_inputs(self) -> list[bool]:
        """Which step inputs the step may overwrite: the oldest tap of a state that keeps
        only its last value (the loop writes the new value into that very row next)."""
        info = self.info
        flags = [False] * info.n_inner_seq_inputs
        for taps, last in zip(info.state_taps, info.state_last):
            flags += [last and tap == min(taps) for tap in taps]
        return flags + [False] * info.n_nonseqs

    def make_thunk_function(self, node):
        from symgrad.backends.python import LOOP_THRESHOLD, compile_fgraph
        from symgrad.scan.loop import make_loop

        inner_fgraph = self.rewrite_inner()
        inner_fn = None
        if len(inner_fgraph.apply_nodes) > LOOP_THRESHOLD:
            inner_fn = compile_fgraph(inner_fgraph)  # too large to inline as source
        run = make_loop(self, node, inner_fgraph, inner_fn)
        run.inner_fgraph = inner_fgraph  # the rewritten step graph, for inspection
        return run

    def perform(self, node, inputs, output_storage):
        results = self.make_thunk_function(node)(*inputs)
        for store, value in zip(output_storage, results):
            store[0] = value

    # -- shapes ---------------------------------------------------------------------------------
    def infer_shape(self, node, input_shapes):
        """Output shapes from the outer inputs' shapes, without running the loop.

        A state's buffer has ``n_steps + span`` rows of its initial rows' shape (one row
        with ``state_last``); a mapped output has ``n_steps`` rows of the shape the step
        graph gives it, propagated through the step graph from the inner inputs' shapes.
        A loop with a stop condition has a length known only once it ran: no rule."""
        from symgrad.scan.shapes import infer_scan_shapes

        return infer_scan_shapes(self, node, input_shapes)

    # -- derivatives and batching -----------------------------------------------------------------
    def pullback(self, inputs, outputs, output_grads):
        from symgrad.scan.derivatives import scan_pullback

        return scan_pullback(self, inputs, outputs, output_grads)

    def pushforward(self, inputs, outputs, tangents):
        from symgrad.scan.derivatives import scan_pushforward

        return scan_pushforward(self, inputs, outputs, tangents)

    def vectorize_node(self, node, *batched_inputs):
        from symgrad.scan.batching import scan_vectorize_node

        return scan_vectorize_node(self, node, batched_inputs)


def _check_fits(outer, inner_type, extra_dims, what):
    """``outer`` (with ``extra_dims`` leading axes) must hold values of ``inner_type``."""
    if outer.dtype != inner_type.dtype:
        raise TypeError(f"scan: {what} has dtype {outer.dtype}, but the step function was "
                        f"built for {inner_type.dtype}")
    if outer.ndim != inner_type.ndim + extra_dims:
        raise TypeError(f"scan: {what} has {outer.ndim} dimensions, but the step function was "
                        f"built for {inner_type.ndim + extra_dims}")
    for d, (a, b) in enumerate(zip(outer.type.shape[extra_dims:], inner_type.shape)):
        if a is not None and b is not None and a != b:
            raise ScanError(f"scan: {what} has static shape {outer.type.shape}, but the step "
                            f"function was built for rows of shape {inner_type.shape} "
                            f"(dimension {d + extra_dims})")


class GraphSignature:
    """A hashable structural description of an inner graph: equal graphs, equal signatures.

    Two Scan ops whose inner graphs compute the same thing from the same input types
    compare equal, so duplicate loops can be merged.
    """

    __slots__ = ("key", "_hash")

    def __init__(self, inputs, outputs):
        ref: dict[Variable, tuple] = {v: ("in", k) for k, v in enumerate(inputs)}
        entries = [tuple(v.type for v in inputs)]
        for n, node in enumerate(toposort(outputs, inputs)):
            args = []
            for i in node.inputs:
                if i in ref:
                    args.append(ref[i])
                elif isinstance(i, Constant):
                    args.append(("const",) + tuple(i.signature()))
                else:  # pragma: no cover - FunctionGraph guarantees closed graphs
                    raise MissingInputError(f"inner graph needs {i}")
            entries.append((node.op, tuple(args), tuple(o.type for o in node.outputs)))
            for k, o in enumerate(node.outputs):
                ref[o] = ("node", n, k)
        outs = []
        for o in outputs:
            if o in ref:
                outs.append(ref[o])
            else:
                outs.append(("const",) + tuple(o.signature()))
        entries.append(tuple(outs))
        self.key = tuple(entries)
        self._hash = hash(self.key)

    def __eq__(self, other):
        return isinstance(other, GraphSignature) and (
            self is other or (self._hash == other._hash and self.key == other.key))

    def __hash__(self):
        return self._hash

    def __repr__(self):
        return f"<graph of {len(self.key) - 2} nodes>"
