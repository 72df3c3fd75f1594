"""Reading graphs: ``pp`` (infix expression) and ``dprint`` (indented tree).

Both walk the graph with loops, never recursion, so deep graphs print too.
"""

from __future__ import annotations

import sys

from symgrad.graph.basic import Constant, Variable

__all__ = ["pp", "pprint", "dprint", "debugprint"]


def _leaf(var: Variable) -> str:
    if isinstance(var, Constant):
        return repr(var)
    if var.name is not None:
        return var.name
    return f"<{var.type}>"


def _format_node(node, args: list[str], out_index: int) -> str:
    op = node.op
    custom = getattr(op, "pp_format", None)
    if custom is not None:
        text = custom(node, args)
        if text is not None:
            return text if len(node.outputs) == 1 else f"{text}[{out_index}]"
    from symgrad.tensor.elemwise import DimShuffle, Elemwise

    if isinstance(op, Elemwise):
        sop = op.scalar_op
        if sop.name == "second":
            return f"fill({args[0]}, {args[1]})"
        if sop.symbol is not None:
            if len(args) == 1:
                return f"({sop.symbol}{args[0]})"
            return "(" + f" {sop.symbol} ".join(args) + ")"
        return f"{sop.name}({', '.join(args)})"
    if isinstance(op, DimShuffle):
        if op.is_expand_only:
            k = len(op.new_order) - op.input_ndim
            if all(d == "x" for d in op.new_order[:k]):
                return args[0]  # leading axes only: numpy's broadcasting says the same
            index = ", ".join("None" if d == "x" else ":" for d in op.new_order)
            return f"{args[0]}[{index}]"
        if op.new_order == (1, 0):
            return f"{args[0]}.T"
    text = f"{op}({', '.join(args)})"
    return text if len(node.outputs) == 1 else f"{text}[{out_index}]"


def pp(var) -> str:
    """The expression of ``var`` in infix form.

    >>> import symgrad.tensor as st
    >>> a, b, c = st.dscalars("a", "b", "c")
    >>> pp(a * b - c)
    '((a * b) - c)'
    """
    from symgrad.compile.function import Function
    from symgrad.graph.fgraph import FunctionGraph

    if isinstance(var, Function):
        var = var.maker.fgraph
    if isinstance(var, FunctionGraph):
        return "\n".join(pp(o) for o in var.outputs)
    if isinstance(var, list | tuple):
        return "\n".join(pp(v) for v in var)
    if not isinstance(var, Variable):
        raise TypeError(f"pp needs a symbolic variable, got {type(var).__name__}")
    # Expand with an explicit stack into a flat list of pieces: linear in the
    # size of the printed text, whatever the depth of the graph.
    templates: dict = {}
    pieces: list[str] = []
    stack: list = [var]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            pieces.append(item)
            continue
        if item.owner is None:
            pieces.append(_leaf(item))
            continue
        key = (item.owner, item.index)
        template = templates.get(key)
        if template is None:
            template = templates[key] = _template(item.owner, item.index)
        for part in reversed(template):
            stack.append(part if isinstance(part, str) else item.owner.inputs[part])
    return "".join(pieces)


def _template(node, out_index: int) -> list:
    """The node's format as text pieces and input positions (ints)."""
    marks = [f"\x00{k}\x00" for k in range(len(node.inputs))]
    text = _format_node(node, marks, out_index)
    parts: list = []
    for k, chunk in enumerate(text.split("\x00")):
        if k % 2 == 0:
            if chunk:
                parts.append(chunk)
        else:
            parts.append(int(chunk))
    return parts


pprint = pp


_MAX_INDENT = 60


def _ids():
    n = 0
    while True:
        label, k = "", n
        while True:
            label = chr(ord("A") + k % 26) + label
            k = k // 26 - 1
            if k < 0:
                break
        yield label
        n += 1


def dprint(obj, file=None, print_type: bool = True, depth: int = -1) -> str | None:
    """Print a graph as an indented tree: each node's op, type and a short id.

    A node already shown is printed again by its id only. ``obj`` may be a
    variable, a list of them, a compiled function or a FunctionGraph. With
    ``file="str"`` the text is returned instead of printed.

    >>> import symgrad.tensor as st
    >>> x = st.dvector("x")
    >>> y = st.exp(x)
    >>> dprint(y + y)
    add [id A] float64[?]
     ├─ exp [id B] float64[?]
     │  └─ x [id C] float64[?]
     └─ exp [id B] float64[?] ...
    """
    from symgrad.compile.function import Function
    from symgrad.graph.fgraph import FunctionGraph

    if isinstance(obj, Function):
        obj = obj.maker.fgraph
    if isinstance(obj, FunctionGraph):
        roots = list(obj.outputs)
    elif isinstance(obj, list | tuple):
        roots = list(obj)
    elif isinstance(obj, Variable):
        roots = [obj]
    else:
        raise TypeError(f"dprint needs a variable, list, Function or FunctionGraph, got "
                        f"{type(obj).__name__}")
    names = _ids()
    ids: dict = {}
    shown: set = set()
    lines: list[str] = []

    def label(var):
        key = var.owner if var.owner is not None else var
        if key not in ids:
            ids[key] = next(names)
        if var.owner is not None:
            head = str(var.owner.op)
            if len(var.owner.outputs) > 1:
                head += f".{var.index}"
        elif isinstance(var, Constant):
            head = repr(var)
        else:
            head = var.name if var.name is not None else "<input>"
        parts = [head, f"[id {ids[key]}]"]
        if print_type and hasattr(var.type, "short"):
            parts.append(var.type.short())
        if var.owner is not None and var.name is not None:
            parts.append(repr(var.name))
        return " ".join(parts)

    for root in roots:
        stack = [(root, "", "", 0)]
        while stack:
            var, prefix_first, prefix_rest, level = stack.pop()
            key = var.owner
            line = prefix_first + label(var)
            if key is not None and key in shown:
                lines.append(line + " ...")
                continue
            lines.append(line)
            if key is None or (0 <= depth <= level):
                continue
            shown.add(key)
            children = key.inputs
            deep = level >= _MAX_INDENT  # beyond this, stop indenting (deep chains)
            for k in range(len(children) - 1, -1, -1):
                last = k == len(children) - 1
                first = prefix_rest + ("" if deep else (" └─ " if last else " ├─ "))
                rest = prefix_rest + ("" if deep else ("   " if last else " │ "))
                stack.append((children[k], first, rest, level + 1))
    text = "\n".join(lines)
    if file == "str":
        return text
    print(text, file=file or sys.stdout)
    return None


debugprint = dprint
