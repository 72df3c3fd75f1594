"""The default backend: run each node's numpy implementation in topological order."""

from __future__ import annotations

import numpy as np

from symgrad.graph.basic import Constant


class OpRuntimeError(ValueError):
    """An op failed at run time; the message names the op and its input shapes."""


def constant_value(var):
    """The runtime value of a constant.

    Always the array: Elemwise thunks substitute Python scalars for weak
    constants themselves; other ops need the real shape.
    """
    return var.data


def describe_failure(node, values, exc) -> str:
    def info(v):
        arr = np.asarray(v) if not isinstance(v, np.ndarray) else v
        return f"shape {arr.shape} {arr.dtype}"

    parts = ", ".join(f"{i} ({info(v)})" for i, v in zip(node.inputs, values))
    return f"{node.op} failed on inputs {parts}: {exc}"


def compile_fgraph(fgraph):
    """A callable computing fgraph.outputs from values of fgraph.inputs."""
    slots: dict = {}
    for k, var in enumerate(fgraph.inputs):
        slots[var] = k
    constants = []
    program = []
    n = len(fgraph.inputs)
    for node in fgraph.toposort():
        for i in node.inputs:
            if i not in slots and isinstance(i, Constant):
                slots[i] = n
                constants.append((n, constant_value(i)))
                n += 1
        in_idx = [slots[i] for i in node.inputs]
        out_idx = []
        for o in node.outputs:
            slots[o] = n
            out_idx.append(n)
            n += 1
        program.append((node, node.op.make_thunk_function(node), in_idx, out_idx))
    output_idx = []
    for o in fgraph.outputs:
        if o not in slots:
            slots[o] = n
            constants.append((n, constant_value(o)))
            n += 1
        output_idx.append(slots[o])
    size = n

    def run(*inputs):
        storage = [None] * size
        storage[: len(inputs)] = inputs
        for k, v in constants:
            storage[k] = v
        for node, thunk, in_idx, out_idx in program:
            args = [storage[k] for k in in_idx]
            try:
                result = thunk(*args)
            except Exception as exc:
                raise OpRuntimeError(describe_failure(node, args, exc)) from exc
            if len(out_idx) == 1:
                storage[out_idx[0]] = result
            else:
                for k, r in zip(out_idx, result):
                    storage[k] = r
        return [storage[k] for k in output_idx]

    return run
