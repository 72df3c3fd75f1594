"""Turning a step graph into a Scan node: closures become inputs, invariants move out.

Every Scan (the user's, and the ones built for derivatives and batching) goes
through :func:`build_scan`. It takes inner outputs that may refer to outer
variables directly (closures) and to placeholders standing for outer values
(``known``), and makes the inner graph closed: every maximal sub-expression that
does not change from step to step is computed once, outside the loop, and enters
the loop as a non-sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from symgrad.graph.basic import Constant, Variable
from symgrad.graph.traversal import clone_replace, toposort
from symgrad.scan.op import Scan, ScanInfo


@dataclass
class SeqSpec:
    """An outer sequence; step t reads rows ``t + o`` for o in ``offsets`` into ``inner``."""

    outer: Variable
    offsets: tuple[int, ...]
    extent: int
    inner: list[Variable]


@dataclass
class StateSpec:
    """A recurrent output: ``init`` holds the span rows before step 0 (oldest first)."""

    init: Variable
    taps: tuple[int, ...]
    inner: list[Variable]
    output: Variable
    last: bool = False


@dataclass
class ScanParts:
    seqs: list[SeqSpec] = field(default_factory=list)
    states: list[StateSpec] = field(default_factory=list)
    nitsots: list[Variable] = field(default_factory=list)
    condition: Variable | None = None


def loop_invariants(inner_outputs, varying):
    """The maximal sub-expressions of ``inner_outputs`` that do not depend on ``varying``.

    Returns ``(invariants, varying_set)``: the non-constant variables used by a
    step-dependent node (or returned directly) that are themselves step-independent.
    """
    varying = set(varying)
    nodes = toposort(inner_outputs, inputs=varying)
    for node in nodes:
        if any(i in varying for i in node.inputs):
            varying.update(node.outputs)
    found: dict[Variable, None] = {}
    for node in nodes:
        if node.outputs[0] in varying:
            for i in node.inputs:
                if i not in varying and not isinstance(i, Constant):
                    found.setdefault(i)
    for o in inner_outputs:
        if o not in varying and not isinstance(o, Constant):
            found.setdefault(o)
    return list(found), varying


def build_scan(parts: ScanParts, n_steps, known=None, *, reverse=False, infer_steps=False,
               truncate_gradient=-1, name=None) -> list[Variable]:
    """Build the Scan node for ``parts``; returns its outer outputs (states, then mapped).

    ``known`` maps placeholder variables used in the inner outputs to the outer
    values they stand for; any other non-constant root is an outer variable used
    directly (a closure). Both become non-sequences, after the loop-invariant
    sub-expressions around them are moved out of the loop.
    """
    from symgrad.tensor.basic import as_tensor_variable, constant

    known = dict(known or {})
    inner_outputs = [s.output for s in parts.states] + list(parts.nitsots)
    if parts.condition is not None:
        inner_outputs.append(parts.condition)
    seq_vars = [v for s in parts.seqs for v in s.inner]
    state_vars = [v for s in parts.states for v in s.inner]
    invariants, _ = loop_invariants(inner_outputs, seq_vars + state_vars)

    placeholders: dict[Variable, Variable] = {}   # outer value -> inner placeholder
    replace: dict[Variable, Variable] = {}
    for var in invariants:
        if var in known:
            outer = known[var]
        elif var.owner is None:
            outer = var
        else:
            outer = clone_replace(var, known)
        holder = placeholders.get(outer)
        if holder is None:
            holder = placeholders[outer] = var.type()
            holder.name = var.name if var.name is not None else getattr(outer, "name", None)
        replace[var] = holder
    if replace:
        inner_outputs = clone_replace(inner_outputs, replace)

    info = ScanInfo(
        seq_taps=tuple(tuple(s.offsets) for s in parts.seqs),
        seq_extents=tuple(int(s.extent) for s in parts.seqs),
        state_taps=tuple(tuple(s.taps) for s in parts.states),
        state_last=tuple(bool(s.last) for s in parts.states),
        n_nitsot=len(parts.nitsots),
        n_nonseqs=len(placeholders),
        as_while=parts.condition is not None,
        reverse=reverse,
        infer_steps=infer_steps,
        truncate_gradient=int(truncate_gradient),
        name=name,
    )
    op = Scan(seq_vars + state_vars + list(placeholders.values()), inner_outputs, info)
    if n_steps is None:
        n_steps = constant(-1, dtype="int64")
    outer_inputs = [as_tensor_variable(n_steps)] + [s.outer for s in parts.seqs] + \
        [s.init for s in parts.states] + list(placeholders)
    return list(op.make_node(*outer_inputs).outputs)
