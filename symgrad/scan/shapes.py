"""Shape inference for Scan: the output shapes of a loop without running it."""

from __future__ import annotations

from symgrad.graph.basic import Constant
from symgrad.graph.traversal import ancestors


def _broadcast_dim(dims, maximum):
    """The length of a broadcast dimension from the inputs' lengths (ints or int scalars).

    A valid program's lengths there are all 1 or one common n, so n = max of them."""
    known = [d for d in dims if not (isinstance(d, int) and d == 1)]
    if not known:
        return 1
    static = [d for d in known if isinstance(d, int)]
    if static:
        return static[0]
    out = known[0]
    for d in known[1:]:
        if d is not out:
            out = maximum(out, d)
    return out


def _inner_shapes(op, outer_row_shapes):
    """Symbolic shapes of the step graph's outputs, given the shapes of its inputs (lists of
    outer int scalars or ints); raises NotImplementedError where an op has no rule."""
    from symgrad.tensor.elemwise import Elemwise
    from symgrad.tensor.math import maximum

    shapes = dict(zip(op.inner_inputs, outer_row_shapes))
    for node in op.fgraph.toposort():
        if all(None not in o.type.shape for o in node.outputs):
            for o in node.outputs:
                shapes[o] = [int(d) for d in o.type.shape]
            continue
        ins = []
        for i in node.inputs:
            if i not in shapes:
                if isinstance(i, Constant) or None not in i.type.shape:
                    shapes[i] = [int(d) for d in i.type.shape]
                else:  # pragma: no cover - a closed step graph has no other inputs
                    raise NotImplementedError(f"scan shape: no shape for {i}")
            ins.append(shapes[i])
        if isinstance(node.op, Elemwise):
            out = [_broadcast_dim(ds, maximum) for ds in zip(*ins)]
            outs = [out] * len(node.outputs)
        else:
            rule = getattr(node.op, "infer_shape", None)
            if rule is None:
                raise NotImplementedError(f"scan shape: {node.op} has no shape rule")
            outs = rule(node, ins)
        for o, shp in zip(node.outputs, outs):
            # a static length beats a symbolic one; the rule may know less than the type
            shapes[o] = [int(s) if s is not None else d for s, d in zip(o.type.shape, shp)]
    return shapes


def infer_scan_shapes(op, node, input_shapes):
    """See :meth:`symgrad.scan.op.Scan.infer_shape`."""
    from symgrad.tensor.basic import as_tensor_variable
    from symgrad.tensor.elemwise import cast
    from symgrad.tensor.math import minimum

    info = op.info
    if info.as_while:
        raise NotImplementedError("scan shape: a loop with a stop condition has a runtime length")
    n_steps_shape, seq_shapes, init_shapes, nonseq_shapes = op.split_outer_inputs(input_shapes)
    if info.infer_steps:
        n_steps = None
        for shp, extent in zip(seq_shapes, info.seq_extents):
            rows = shp[0] - extent if extent else shp[0]
            n_steps = rows if n_steps is None else minimum(n_steps, rows)
    else:
        n_steps = node.inputs[0]
    row_shapes = []
    for shp, offsets in zip(seq_shapes, info.seq_taps):
        row_shapes += [list(shp[1:])] * len(offsets)
    for shp, taps in zip(init_shapes, info.state_taps):
        row_shapes += [list(shp[1:])] * len(taps)
    row_shapes += [list(shp) for shp in nonseq_shapes]

    out = []
    for k, shp in enumerate(init_shapes):
        if info.state_last[k]:
            out.append(list(shp[1:]))
        else:
            out.append([n_steps + info.spans[k]] + list(shp[1:]))
    if info.n_nitsot:
        inner = _inner_shapes(op, row_shapes)
        inner_vars = set(op.fgraph.variables)
        for o in op.inner_nitsot_outputs:
            dims = inner[o]
            symbolic = [d for d in dims if not isinstance(d, int)]
            if symbolic and any(v in inner_vars for v in ancestors(
                    [as_tensor_variable(d) for d in symbolic])):
                raise NotImplementedError("scan shape: a mapped output's shape depends on "
                                          "values computed in the step")
            out.append([n_steps] + list(dims))

    def as_int64(d):
        d = as_tensor_variable(d)
        return d if d.dtype == "int64" else cast(d, "int64")

    return [[d if isinstance(d, int) else as_int64(d) for d in shp] for shp in out]
