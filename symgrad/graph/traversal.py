"""Graph traversal and substitution, all as loops (never recursion).

A chain of 100,000 nodes is as safe here as a chain of ten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from symgrad.graph.basic import Apply, Constant, Variable, as_list


def ancestors(outputs: Iterable[Variable], blockers: Iterable[Variable] = ()) -> list[Variable]:
    """Every variable that ``outputs`` depend on (themselves included), stopping at blockers."""
    blocked = set(blockers)
    seen: set[Variable] = set()
    order: list[Variable] = []
    stack = list(outputs)[::-1]
    while stack:
        var = stack.pop()
        if var in seen:
            continue
        seen.add(var)
        order.append(var)
        if var.owner is not None and var not in blocked:
            stack.extend(reversed(var.owner.inputs))
    return order


def graph_inputs(outputs: Iterable[Variable], blockers: Iterable[Variable] = ()) -> list[Variable]:
    """The root variables (no owner, or blocked) that ``outputs`` depend on, in discovery order."""
    blocked = set(blockers)
    return [v for v in ancestors(outputs, blocked) if v.owner is None or v in blocked]


def toposort(outputs: Iterable[Variable], inputs: Iterable[Variable] = ()) -> list[Apply]:
    """The Apply nodes needed to compute ``outputs`` from ``inputs``, in an order
    where every node comes after the nodes producing its inputs.

    Variables in ``inputs`` are treated as given: their owners are not visited.
    """
    given = inputs if isinstance(inputs, set | frozenset) else set(inputs)
    order: list[Apply] = []
    done: set[Apply] = set()
    # Iterative post-order DFS: a node is emitted once all its input owners are.
    stack: list[tuple[Apply, bool]] = []
    for out in outputs:
        if out.owner is None or out in given or out.owner in done:
            continue
        stack.append((out.owner, False))
        while stack:
            node, expanded = stack.pop()
            if node in done:
                continue
            if expanded:
                done.add(node)
                order.append(node)
                continue
            stack.append((node, True))
            for inp in reversed(node.inputs):
                owner = inp.owner
                if owner is not None and inp not in given and owner not in done:
                    stack.append((owner, False))
    return order


def apply_nodes_between(inputs: Iterable[Variable], outputs: Iterable[Variable]) -> list[Apply]:
    """The nodes that lie on some path from ``inputs`` to ``outputs``, in topological order."""
    inputs = list(inputs)
    nodes = toposort(outputs)
    depends: set[Variable] = set(inputs)
    between = []
    for node in nodes:
        if any(i in depends for i in node.inputs):
            between.append(node)
            depends.update(node.outputs)
    return between


def variables_depending_on(inputs: Iterable[Variable], nodes: Sequence[Apply]) -> set[Variable]:
    """The variables among ``nodes``' outputs (and ``inputs``) that depend on ``inputs``.

    ``nodes`` must be in topological order.
    """
    depends: set[Variable] = set(inputs)
    for node in nodes:
        if any(i in depends for i in node.inputs):
            depends.update(node.outputs)
    return depends


def clone_replace(
    outputs,
    replace: Mapping[Variable, Variable] | Sequence[tuple[Variable, Variable]] | None = None,
    copy_inputs: bool = False,
):
    """Rebuild ``outputs`` with some variables substituted.

    ``replace`` maps old variables to new ones. Every node between the replaced
    variables and the outputs is rebuilt through its op's ``make_node``, so the
    types are re-inferred; nodes that depend on no replaced variable are shared
    with the original graph (they are immutable). Returns a list if ``outputs``
    is a list or tuple, else one variable.
    """
    single = not isinstance(outputs, list | tuple)
    outs = as_list(outputs)
    if replace is None:
        replace = {}
    mapping: dict[Variable, Variable] = dict(replace.items() if isinstance(replace, Mapping)
                                              else replace)
    memo = _rebuild(outs, mapping, clone_all=copy_inputs)
    result = [memo.get(o, o) for o in outs]
    return result[0] if single else result


graph_replace = clone_replace


def clone(inputs: Sequence[Variable], outputs: Sequence[Variable], copy_inputs: bool = True):
    """Copy the graph between ``inputs`` and ``outputs``; returns (new_inputs, new_outputs).

    Every Apply node is copied (constants are shared); inputs are copied too
    unless ``copy_inputs`` is False.
    """
    mapping = {i: (i.clone() if copy_inputs else i) for i in inputs}
    memo = _rebuild(list(outputs), mapping, clone_all=True)
    return [memo.get(i, i) for i in inputs], [memo.get(o, o) for o in outputs]


def clone_get_equiv(inputs: Sequence[Variable], outputs: Sequence[Variable],
                    copy_inputs: bool = True) -> dict[Variable, Variable]:
    """Like :func:`clone` but returns the whole old -> new map."""
    mapping = {i: (i.clone() if copy_inputs else i) for i in inputs}
    return _rebuild(list(outputs), mapping, clone_all=True)


def _rebuild(outputs: list[Variable], mapping: dict[Variable, Variable], clone_all: bool):
    """Rebuild the graph of ``outputs`` under ``mapping``; returns the full memo.

    With ``clone_all``, every node is copied (same op, cloned output variables,
    no type re-inference); otherwise only nodes depending on a mapped variable
    are rebuilt, through ``make_node``.
    """
    memo: dict[Variable, Variable] = dict(mapping)
    for node in toposort(outputs, inputs=list(mapping)):
        new_inputs = [memo.get(i, i) for i in node.inputs]
        if clone_all:
            for i in node.inputs:
                if i.owner is None and i not in memo and not isinstance(i, Constant):
                    memo[i] = i
            new_outputs = [o.clone() for o in node.outputs]
            Apply(node.op, new_inputs, new_outputs)
            new_node_outputs = new_outputs
        else:
            if all(a is b for a, b in zip(new_inputs, node.inputs)):
                continue
            new_node = node.op.make_node(*new_inputs)
            new_node_outputs = new_node.outputs
            for old, new in zip(node.outputs, new_node_outputs):
                if old.name is not None and new.name is None:
                    new.name = old.name
        memo.update(zip(node.outputs, new_node_outputs))
    return memo


def io_toposort(inputs: Sequence[Variable], outputs: Sequence[Variable]) -> list[Apply]:
    """PyTensor's name: the nodes computing ``outputs`` from ``inputs``, in order."""
    return toposort(outputs, inputs)


def is_in_ancestors(var: Variable, target: Variable) -> bool:
    """True when ``target`` is among the ancestors of ``var``."""
    return target in set(ancestors([var]))
