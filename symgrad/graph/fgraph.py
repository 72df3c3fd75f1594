"""FunctionGraph: a graph with explicit inputs and outputs that can be edited in place.

It keeps, for every variable, the list of its clients ``(node, input_index)``
(with ``("output", i)`` for the graph's i-th output), and ``replace`` keeps
them consistent. The rewrite engine works on this structure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from symgrad.graph.basic import Apply, Constant, Variable
from symgrad.graph.traversal import toposort


class MissingInputError(Exception):
    """A graph needs a variable that is neither an input nor a constant."""


class InconsistencyError(Exception):
    """A replacement would break the graph (wrong type, or a cycle)."""


OUTPUT = "output"


class FunctionGraph:
    """A mutable graph from ``inputs`` to ``outputs``.

    Parameters
    ----------
    inputs, outputs
        The graph's boundary. Every root variable of the outputs must be an
        input or a Constant (else MissingInputError names it).
    clone
        Copy the graph first (the default), so edits never touch the caller's graph.

    Examples
    --------
    >>> import symgrad.tensor as st
    >>> from symgrad.graph import FunctionGraph
    >>> x = st.dvector("x")
    >>> fg = FunctionGraph([x], [st.exp(x) + 1])
    >>> len(fg.apply_nodes)
    2
    """

    def __init__(self, inputs: Sequence[Variable], outputs: Sequence[Variable], clone: bool = True):
        self.apply_nodes: set[Apply] = set()
        self.variables: set[Variable] = set()
        self.clients: dict[Variable, list[tuple]] = {}
        self.listeners: list[Callable] = []
        self._order: list[Apply] | None = None  # the last toposort, until the next edit
        if clone:
            # copy and import in one pass over the caller's graph
            equiv = {i: i.clone() for i in inputs}
            self.inputs: list[Variable] = [equiv[i] for i in inputs]
            for inp in self.inputs:
                self._add_variable(inp)
            self._clone_import(outputs, equiv)
            outputs = [equiv.get(o, o) for o in outputs]
            self.equiv = equiv
        else:
            self.equiv = {v: v for v in list(inputs) + list(outputs)}
            self.inputs = list(inputs)
            for inp in self.inputs:
                if inp.owner is not None:
                    raise ValueError(f"graph input {inp} has an owner; inputs must be roots")
                self._add_variable(inp)
            input_set = set(self.inputs)
            for node in toposort(outputs, self.inputs):
                for i in node.inputs:
                    if i.owner is None and i not in input_set and not isinstance(i, Constant):
                        raise MissingInputError(_missing_message(i))
                self._import_node(node)
        self.outputs: list[Variable] = list(outputs)
        input_set = set(self.inputs)
        for k, out in enumerate(self.outputs):
            if out.owner is None and out not in input_set and not isinstance(out, Constant):
                raise MissingInputError(_missing_message(out))
            self._add_variable(out)
            self.clients[out].append((OUTPUT, k))

    # -- bookkeeping ----------------------------------------------------------------
    def _add_variable(self, var: Variable) -> None:
        if var not in self.variables:
            self.variables.add(var)
            self.clients.setdefault(var, [])

    def _import_node(self, node: Apply) -> None:
        if node in self.apply_nodes:
            return
        self.apply_nodes.add(node)
        for k, i in enumerate(node.inputs):
            self._add_variable(i)
            self.clients[i].append((node, k))
        for o in node.outputs:
            self._add_variable(o)

    def _clone_import(self, outputs, equiv) -> None:
        """Copy the nodes between ``equiv``'s keys (the inputs) and ``outputs`` into this
        graph; ``equiv`` maps every copied variable to its copy (constants are shared)."""
        clients = self.clients
        variables = self.variables
        nodes = self.apply_nodes
        new_apply = Apply.__new__
        for node in toposort(outputs, set(equiv)):
            new_inputs = []
            for i in node.inputs:
                n = equiv.get(i)
                if n is None:
                    if not isinstance(i, Constant):
                        raise MissingInputError(_missing_message(i))
                    n = i
                    if n not in variables:
                        variables.add(n)
                        clients[n] = []
                new_inputs.append(n)
            new_outputs = [o.clone() for o in node.outputs]
            # (the node was checked when it was made: no need to check its copy again)
            new = new_apply(Apply)
            new.op = node.op
            new.inputs = new_inputs
            new.outputs = new_outputs
            new._tag = None
            for k, o in enumerate(new_outputs):
                o.owner = new
                o.index = k
            nodes.add(new)
            for k, n in enumerate(new_inputs):
                clients[n].append((new, k))
            for o, n in zip(node.outputs, new_outputs):
                equiv[o] = n
                variables.add(n)
                clients[n] = []

    def import_graph(self, outputs: Sequence[Variable]) -> None:
        """Add the nodes producing ``outputs`` that the graph does not have yet."""
        if all(o in self.variables for o in outputs):
            return
        self._order = None
        for node in toposort(outputs, self.variables):  # a set: not copied, O(new nodes)
            for i in node.inputs:
                if (i.owner is None and i not in self.variables
                        and not isinstance(i, Constant)):
                    raise MissingInputError(_missing_message(i))
            self._import_node(node)
            for fn in self.listeners:
                fn("import", node)
        for var in outputs:
            if var.owner is None:
                if var not in self.variables and not isinstance(var, Constant):
                    raise MissingInputError(_missing_message(var))
                self._add_variable(var)

    def _remove_client(self, var: Variable, client: tuple) -> None:
        """Drop one client; prune nodes nobody uses any more (a loop, not recursion)."""
        all_clients = self.clients
        nodes = self.apply_nodes
        work = [(var, client)]
        while work:
            v, c = work.pop()
            clients = all_clients[v]
            clients.remove(c)
            if clients:
                continue
            node = v.owner
            if node is None or node not in nodes:
                continue
            outputs = node.outputs
            if len(outputs) > 1 and any(all_clients[o] for o in outputs):
                continue
            nodes.discard(node)
            for o in outputs:
                self.variables.discard(o)
                del all_clients[o]
            for fn in self.listeners:
                fn("prune", node)
            for k, i in enumerate(node.inputs):
                work.append((i, (node, k)))

    # -- editing ----------------------------------------------------------------------
    def change_input(self, node, index: int, new: Variable, reason: str | None = None) -> None:
        self._order = None
        if isinstance(node, str):  # OUTPUT
            old = self.outputs[index]
            if old is new:
                return
            self.import_graph([new])
            self.outputs[index] = new
        else:
            old = node.inputs[index]
            if old is new:
                return
            if new not in self.variables:
                self.import_graph([new])
            node.inputs[index] = new
        self.clients[new].append((node, index))
        self._remove_client(old, (node, index))
        for fn in self.listeners:
            fn("change_input", node, index, old, new, reason)

    def replace(self, old: Variable, new: Variable, reason: str | None = None,
                check_type: bool = True) -> None:
        """Make every client of ``old`` use ``new`` instead."""
        if old is new:
            return
        if old not in self.variables:
            return
        if check_type and old.type != new.type and not old.type.is_super(new.type):
            raise InconsistencyError(
                f"cannot replace {old} ({old.type}) by {new} ({new.type})"
                + (f" in rewrite {reason}" if reason else "")
            )
        self.import_graph([new])
        for client in list(self.clients.get(old, ())):
            self.change_input(client[0], client[1], new, reason)

    def replace_all(self, pairs, reason: str | None = None) -> None:
        for old, new in pairs:
            self.replace(old, new, reason)

    def toposort(self) -> list[Apply]:
        """The nodes in an order where each comes after those computing its inputs (a new
        list; the order is remembered until the graph is edited, as passes ask in turn)."""
        if self._order is None:
            self._order = toposort(self.outputs, self.inputs)
        return list(self._order)

    def clone(self) -> FunctionGraph:
        return FunctionGraph(self.inputs, self.outputs, clone=True)

    def __repr__(self) -> str:
        return f"FunctionGraph({self.inputs} -> {self.outputs}, {len(self.apply_nodes)} nodes)"


def _missing_message(var: Variable) -> str:
    name = var.name if var.name is not None else f"an unnamed {var.type}"
    return (f"the graph needs input {name!s}, which is not among the function's inputs; "
            "add it to the inputs list (or use givens to substitute it)")
