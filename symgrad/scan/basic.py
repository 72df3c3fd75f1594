"""scan(), map, reduce, foldl, foldr and until: PyTensor's loop builders.

``scan(fn, sequences, outputs_info, non_sequences, n_steps)`` calls ``fn`` once on
placeholder variables to get the graph of one step, then wraps that graph in a
:class:`~symgrad.scan.op.Scan` node. ``fn`` receives, in this order: one argument
per tap of each sequence, one per tap of each recurrent output, then the
non-sequences (the outer variables themselves, so ``grad(y[i], x)`` inside the step
sees how ``y`` depends on ``x``). Outer variables used without being passed
(closures) become non-sequences automatically.

A loop without recurrent state (a map) is not a loop at all: its step graph is
batched over the sequence with the ops' batching rules, so ``scan`` over
``arange(n)`` costs a few vectorized operations. Pass ``vectorize=False`` to keep
a real loop.
"""

from __future__ import annotations

import numpy as np

from symgrad.gradient import DisconnectedInputError
from symgrad.graph.basic import Constant, Variable
from symgrad.graph.traversal import clone_replace, graph_inputs
from symgrad.scan.build import ScanParts, SeqSpec, StateSpec, build_scan
from symgrad.scan.op import ScanError

__all__ = ["scan", "map", "reduce", "foldl", "foldr", "until", "ScanError",
           "ScanGradientError", "ScanUpdates"]


class until:
    """A stop condition: return ``until(cond)`` from the step function (with the
    outputs) to end the loop after the first step where ``cond`` is true.

    >>> import symgrad, symgrad.tensor as st
    >>> x = st.dscalar("x")
    >>> doubled, _ = symgrad.scan(lambda v: (v * 2, symgrad.scan.until(v * 2 > 50)),
    ...                           outputs_info=x, n_steps=100)
    >>> symgrad.function([x], doubled)(3.0)
    array([ 6., 12., 24., 48., 96.])
    """

    def __init__(self, condition):
        from symgrad.tensor.basic import as_tensor_variable

        condition = as_tensor_variable(condition)
        if condition.ndim != 0:
            raise TypeError(f"until(): the condition must be a scalar, got {condition.type}")
        self.condition = condition


class ScanUpdates(dict):
    """The shared-variable updates a scan returns (pass them to ``function(updates=...)``)."""


# -- parsing the arguments ------------------------------------------------------------------------

def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, list | tuple):
        return list(x)
    return [x]


def _tap_list(taps, what) -> list[int]:
    taps = _as_list(taps)
    if not taps:
        raise ValueError(f"scan: {what} has an empty list of taps")
    out = []
    for t in taps:
        if isinstance(t, bool) or not isinstance(t, int | np.integer):
            raise TypeError(f"scan: the taps of {what} must be integers, got {t!r}")
        out.append(int(t))
    if len(set(out)) != len(out):
        raise ValueError(f"scan: the taps of {what} must be distinct, got {out}")
    return out


def _row_type(var, what):
    from symgrad.tensor.type import TensorType

    if var.ndim == 0:
        raise ScanError(f"scan: {what} is a scalar, but it needs a leading (time) axis to "
                        "take rows from")
    return TensorType(var.dtype, var.type.shape[1:])


def _tap_name(base, tap):
    if base is None:
        return None
    return f"{base}[t]" if tap == 0 else f"{base}[t{tap:+d}]"


def _sequences(sequences, go_backwards):
    from symgrad.tensor.basic import as_tensor_variable

    specs = []
    for j, seq in enumerate(_as_list(sequences)):
        what = f"sequence {j}"
        if isinstance(seq, dict):
            unknown = set(seq) - {"input", "taps"}
            if unknown:
                raise ValueError(f"scan: unknown keys {sorted(unknown)} in {what}; a sequence "
                                 "dict has 'input' and 'taps'")
            if "input" not in seq:
                raise ValueError(f"scan: {what} is a dict without 'input'")
            var = seq["input"]
            taps = _tap_list(seq["taps"] if seq.get("taps") is not None else [0], what)
        else:
            var, taps = seq, [0]
        var = as_tensor_variable(var)
        row = _row_type(var, what)
        low, high = min(min(taps), 0), max(max(taps), 0)
        if go_backwards:
            offsets = tuple(high - k for k in taps)
            outer = var[::-1]
        else:
            offsets = tuple(k - low for k in taps)
            outer = var
        inner = [row(_tap_name(var.name, k)) for k in taps]
        specs.append(SeqSpec(outer, offsets, high - low, inner))
    return specs


class _Output:
    """One entry of outputs_info."""

    def __init__(self, index, initial=None, taps=None):
        self.index = index
        self.initial = initial
        self.taps = taps            # None: a mapped output
        self.inner: list[Variable] = []
        self.init_buffer = None
        self.row = None

    @property
    def recurrent(self):
        return self.taps is not None


def _outputs_info(outputs_info):
    from symgrad.tensor.basic import as_tensor_variable

    if outputs_info is None:
        entries = []
    elif isinstance(outputs_info, list | tuple):
        entries = list(outputs_info)
    else:
        entries = [outputs_info]
    outs = []
    for i, entry in enumerate(entries):
        what = f"outputs_info[{i}]"
        if entry is None:
            outs.append(_Output(i))
            continue
        if isinstance(entry, dict):
            unknown = set(entry) - {"initial", "taps", "inplace"}
            if unknown:
                raise ValueError(f"scan: unknown keys {sorted(unknown)} in {what}; use "
                                 "'initial' and 'taps'")
            initial = entry.get("initial")
            taps = entry.get("taps")
            if initial is None:
                if taps is not None:
                    raise ValueError(f"scan: {what} has taps but no 'initial'; a recurrent "
                                     "output needs initial values for its taps")
                outs.append(_Output(i))
                continue
            taps = _tap_list(taps if taps is not None else [-1], what)
        else:
            initial, taps = entry, [-1]
        for t in taps:
            if t >= 0:
                raise ValueError(
                    f"scan: tap {t} of {what} is out of range: an output's taps look into "
                    f"the past and must be negative (-1 is the previous step), got {taps}")
        out = _Output(i, as_tensor_variable(initial), taps)
        init = out.initial
        span = -min(taps)
        if taps == [-1]:
            out.row = init.type
            out.init_buffer = init.dimshuffle(("x",) + tuple(range(init.ndim)))
        else:
            out.row = _row_type(init, f"the initial value of {what} (taps {taps})")
            rows = init.type.shape[0]
            if rows is not None and rows < span:
                raise ValueError(
                    f"scan: taps {taps} of {what} are out of range: tap {min(taps)} needs "
                    f"{span} initial rows, but 'initial' has {rows}")
            out.init_buffer = init
        out.inner = [out.row(_tap_name(init.name, t)) for t in taps]
        outs.append(out)
    return outs


def _parse_step_result(result):
    """``(outputs, updates, condition)`` from whatever the step function returned."""

    def is_output(x):
        return isinstance(x, Variable) or (isinstance(x, int | float | np.ndarray | np.number)
                                           and not isinstance(x, bool))

    def is_outputs(x):
        return is_output(x) or (isinstance(x, list | tuple) and all(is_output(e) for e in x))

    def is_updates(x):
        if isinstance(x, dict):
            return True
        return isinstance(x, list | tuple) and len(x) > 0 and all(
            isinstance(e, list | tuple) and len(e) == 2 and isinstance(e[0], Variable)
            for e in x)

    if result is None:
        return [], {}, None
    if isinstance(result, until):
        return [], {}, result.condition
    if is_outputs(result):
        return _as_list(result), {}, None
    if is_updates(result):
        return [], dict(result), None
    if isinstance(result, list | tuple):
        items = list(result)
        condition = None
        if items and isinstance(items[-1], until):
            condition = items.pop().condition
        outputs, updates = [], {}
        if len(items) == 1:
            if is_updates(items[0]):
                updates = dict(items[0])
            elif is_outputs(items[0]):
                outputs = _as_list(items[0])
            else:
                items = None
        elif len(items) == 2 and is_outputs(items[0]) and is_updates(items[1]):
            outputs, updates = _as_list(items[0]), dict(items[1])
        elif len(items) == 0:
            pass
        else:
            items = None
        if items is not None:
            return outputs, updates, condition
    raise ValueError(
        "scan: cannot read the step function's return value "
        f"{result!r}; return the outputs (a variable or a list), optionally followed by a "
        "dict of shared-variable updates and/or an until(condition), in that order")


def _pitfall_error(exc, seq_specs):
    names = ", ".join(v.name or "an element" for s in seq_specs for v in s.inner)
    return ScanGradientError(
        "scan: the step function took a gradient with respect to a variable that the cost "
        "does not depend on inside the loop. Each sequence element passed to the step "
        f"function ({names}) is a new variable standing for one row of the sequence; it is "
        "not computed from the non-sequences, so e.g. grad(y_i, x) is disconnected even "
        "though y depends on x outside the loop. Loop over indices and index inside the "
        "step instead:\n"
        "    scan(lambda i, y, x: grad(y[i], x), sequences=arange(y.shape[0]), "
        "non_sequences=[y, x])\n"
        "(symgrad.gradient.jacobian(y, x) computes the same thing directly).\n"
        f"The gradient's own message: {exc}")


class ScanGradientError(DisconnectedInputError):
    """grad() inside a step function asked for a derivative the loop cannot give."""


def _fit_output(out, spec, what):
    """Cast a recurrent output to its state's dtype; check dimensions and static shape."""
    from symgrad.tensor.elemwise import cast

    row = spec.row
    if out.ndim != row.ndim:
        raise ScanError(
            f"scan: the step function's {what} has {out.ndim} dimensions, but its initial "
            f"state (outputs_info[{spec.index}]) has shape {row.shape}: {row.ndim} dimensions; "
            "a recurrent output must have the shape of its initial state")
    for d, (a, b) in enumerate(zip(out.type.shape, row.shape)):
        if a is not None and b is not None and a != b:
            raise ScanError(
                f"scan: the initial state outputs_info[{spec.index}] has shape {row.shape}, "
                f"but the step function's {what} has shape {out.type.shape} (dimension {d}); "
                "a recurrent output must have the shape of its initial state")
    if out.dtype != row.dtype:
        if np.can_cast(out.dtype, row.dtype, "same_kind"):
            out = cast(out, row.dtype)
        else:
            raise ScanError(
                f"scan: the step function's {what} has dtype {out.dtype}, but its initial "
                f"state outputs_info[{spec.index}] has dtype {row.dtype}; give an initial "
                f"value of dtype {out.dtype} (e.g. st.cast(h0, '{out.dtype}'))")
    return out


# -- scan -----------------------------------------------------------------------------------------

def scan(fn, sequences=None, outputs_info=None, non_sequences=None, n_steps=None,
         truncate_gradient=-1, go_backwards=False, name=None, strict=False, return_list=False,
         mode=None, profile=False, allow_gc=None, *, vectorize=True):
    """Apply ``fn`` step by step over sequences and recurrent outputs (PyTensor's scan).

    Parameters
    ----------
    fn : callable
        The step function. Arguments, in order: each tap of each sequence, each tap
        of each recurrent output, then the non-sequences. It returns the outputs (a
        variable or a list), optionally followed by a dict of shared-variable
        updates, and/or an :class:`until` condition.
    sequences : variable, dict(input=, taps=) or a list of them
        Iterated over their first axis. ``taps=[-1, 0, 1]`` passes three rows.
    outputs_info : None, initial value, dict(initial=, taps=) or a list of them
        One entry per output: None for an output that is not fed back, an initial
        value for tap -1, or ``dict(initial=h0, taps=[-2, -1])`` where ``h0`` has a
        leading axis holding the ``2`` values before the first step.
    non_sequences : variables passed unchanged to every step.
    n_steps : int or integer scalar; defaults to the length of the sequences.
    truncate_gradient : backpropagate through at most this many steps (-1: all).
    go_backwards : iterate the sequences from the end.
    strict : refuse outer variables used in ``fn`` without being passed.
    return_list : always return a list of outputs.
    vectorize : run a loop without recurrent state as batched operations (default).

    Returns
    -------
    (outputs, updates)
        ``outputs`` is one variable (one output) or a list; recurrent outputs hold the
        values after each step (not the initial ones). ``updates`` maps shared
        variables updated by ``fn`` to their values after the last step.

    Examples
    --------
    >>> import numpy as np, symgrad, symgrad.tensor as st
    >>> x = st.dvector("x")
    >>> partial_sums, _ = symgrad.scan(lambda x_t, acc: acc + x_t, sequences=x,
    ...                                outputs_info=st.constant(0.0))
    >>> symgrad.function([x], partial_sums)([1.0, 2.0, 3.0])
    array([1., 3., 6.])
    """
    return _scan(fn, sequences, outputs_info, non_sequences, n_steps, truncate_gradient,
                 go_backwards, name, strict, return_list, vectorize=vectorize)


def _scan(fn, sequences, outputs_info, non_sequences, n_steps, truncate_gradient, go_backwards,
          name, strict, return_list, vectorize=True, last_only=False):
    from symgrad.compile.sharedvalue import SharedVariable
    from symgrad.tensor.basic import as_tensor_variable

    if not callable(fn):
        raise TypeError(f"scan: fn must be callable, got {type(fn).__name__}")
    if not isinstance(truncate_gradient, int | np.integer) or (
            truncate_gradient != -1 and truncate_gradient <= 0):
        raise ValueError(f"scan: truncate_gradient must be -1 (no truncation) or a positive "
                         f"number of steps, got {truncate_gradient!r}")
    seq_specs = _sequences(sequences, go_backwards)
    outs = _outputs_info(outputs_info)
    non_seqs = [v if isinstance(v, Variable) else as_tensor_variable(v)
                for v in _as_list(non_sequences)]
    if n_steps is None:
        if not seq_specs:
            raise ValueError("scan: give n_steps or at least one sequence (the number of "
                             "steps cannot be known otherwise)")
        steps_var = None
    else:
        if isinstance(n_steps, int | np.integer) and not isinstance(n_steps, bool) \
                and n_steps < 0:
            raise ValueError(f"scan: n_steps must be >= 0, got {n_steps}")
        steps_var = as_tensor_variable(n_steps)
        if steps_var.ndim != 0 or steps_var.dtype[:3] not in ("int", "uin"):
            raise TypeError(f"scan: n_steps must be an integer scalar, got {steps_var.type}")

    args = [v for s in seq_specs for v in s.inner]
    args += [v for o in outs if o.recurrent for v in o.inner]
    args += non_seqs
    try:
        result = fn(*args)
    except DisconnectedInputError as exc:
        if seq_specs and not isinstance(exc, ScanGradientError):
            raise _pitfall_error(exc, seq_specs) from exc
        raise
    outputs, updates, condition = _parse_step_result(result)

    if outs and len(outputs) != len(outs):
        raise ScanError(
            f"scan: the step function returned {len(outputs)} output"
            f"{'s' * (len(outputs) != 1)}, but outputs_info has {len(outs)} entr"
            f"{'ies' if len(outs) != 1 else 'y'}; give one outputs_info entry per output "
            "(None for an output that is not fed back)")
    if not outs:
        outs = [_Output(i) for i in range(len(outputs))]
    outputs = [as_tensor_variable(o) for o in outputs]
    for k, (o, spec) in enumerate(zip(outputs, outs)):
        if spec.recurrent:
            outputs[k] = _fit_output(o, spec, f"output {k}")

    # Shared variables updated by the step are recurrent states that keep their last value.
    shared_states = []
    replace = {}
    for var, expr in updates.items():
        if not isinstance(var, SharedVariable):
            raise TypeError(f"scan: the step function returned an update for {var}, which is "
                            "not a shared variable")
        spec = _Output(-1, var, [-1])
        spec.row = var.type
        spec.init_buffer = var.dimshuffle(("x",) + tuple(range(var.ndim)))
        spec.inner = [var.type(_tap_name(var.name, -1))]
        expr = as_tensor_variable(expr)
        if expr.dtype != var.dtype:
            from symgrad.tensor.elemwise import cast

            expr = cast(expr, var.dtype)
        shared_states.append((var, spec, expr))
        replace[var] = spec.inner[0]
    if condition is not None and condition.dtype != "bool":
        from symgrad.tensor.math import neq

        condition = neq(condition, 0)
    if replace:
        everything = outputs + [e for _, _, e in shared_states] + (
            [condition] if condition is not None else [])
        everything = clone_replace(everything, replace)
        outputs = everything[:len(outputs)]
        shared_states = [(v, s, e) for (v, s, _), e in
                         zip(shared_states, everything[len(outputs):])]
        if condition is not None:
            condition = everything[-1]

    if strict:
        _check_strict(outputs + [e for _, _, e in shared_states], args, non_seqs, condition)

    states = [o for o in outs if o.recurrent]
    mapped = [k for k, o in enumerate(outs) if not o.recurrent]
    if (vectorize and not states and not shared_states and condition is None
            and steps_var is None and truncate_gradient == -1 and not last_only):
        vectorized = _vectorized_map(seq_specs, [outputs[k] for k in mapped])
        if vectorized is not None:
            return _assemble(vectorized, ScanUpdates(), return_list)

    parts = ScanParts(
        seqs=seq_specs,
        states=[StateSpec(o.init_buffer, tuple(o.taps), o.inner, outputs[o.index],
                          last=last_only and -1 in o.taps) for o in states]
        + [StateSpec(s.init_buffer, (-1,), s.inner, e, last=True) for _, s, e in shared_states],
        nitsots=[outputs[k] for k in mapped],
        condition=condition,
    )
    results = build_scan(parts, steps_var, infer_steps=steps_var is None,
                         truncate_gradient=truncate_gradient, name=name)
    n_user_states = len(states)
    final = [None] * len(outs)
    for o, res, spec in zip(states, results, parts.states):
        if spec.last:
            final[o.index] = res
        else:
            final[o.index] = res[-min(o.taps):]
    for k, res in zip(mapped, results[len(parts.states):]):
        final[k] = res
    new_updates = ScanUpdates()
    for (var, _, _), res in zip(shared_states, results[n_user_states:len(parts.states)]):
        new_updates[var] = res
    return _assemble(final, new_updates, return_list)


def _assemble(outputs, updates, return_list):
    if return_list:
        return list(outputs), updates
    if not outputs:
        return None, updates
    if len(outputs) == 1:
        return outputs[0], updates
    return list(outputs), updates


def _check_strict(outputs, args, non_seqs, condition):
    from symgrad.compile.sharedvalue import SharedVariable

    allowed = set(args) | set(non_seqs)
    roots = graph_inputs(outputs + ([condition] if condition is not None else []),
                         blockers=allowed)
    missing = [r for r in roots if r not in allowed and not isinstance(r, Constant)]
    if missing:
        names = ", ".join(repr(v.name) if v.name else str(v.type) for v in missing)
        kind = "shared variable" if all(isinstance(v, SharedVariable) for v in missing) \
            else "variable"
        raise ScanError(f"scan(strict=True): the step function uses the outer {kind}(s) "
                        f"{names} without receiving them; pass them in non_sequences")


def _vectorized_map(seq_specs, outputs):
    """The outputs of a map computed with the batching rules, or None to keep a loop."""
    from symgrad.graph.traversal import apply_nodes_between
    from symgrad.graph.vectorize import BatchLoop, vectorize_graph

    if not outputs or any(s.offsets != (0,) or s.extent != 0 for s in seq_specs):
        return None
    seqs = [s.outer for s in seq_specs]
    if len(seqs) > 1:
        lengths = {s.type.shape[0] for s in seqs}
        if len(lengths) != 1 or None in lengths:
            import symgrad.tensor as st

            n = seqs[0].shape[0]
            for s in seqs[1:]:
                n = st.minimum(n, s.shape[0])
            seqs = [s[:n] for s in seqs]
    replace = {s.inner[0]: outer for s, outer in zip(seq_specs, seqs)}
    try:
        batched = vectorize_graph(list(outputs), replace)
    except Exception:  # an op without a usable batching rule: loop instead
        return None
    if any(isinstance(node.op, BatchLoop)
           for node in apply_nodes_between(list(replace.values()), batched)):
        return None
    result = []
    for out, b in zip(outputs, batched):
        if b.ndim == out.ndim:  # the output does not depend on the sequence
            import symgrad.tensor as st

            b = st.alloc(b, seqs[0].shape[0], *[b.shape[d] for d in range(b.ndim)])
        result.append(b)
    return result


# -- map, reduce, fold ----------------------------------------------------------------------------

def map(fn, sequences, non_sequences=None, truncate_gradient=-1, go_backwards=False, mode=None,
        name=None, return_list=False):
    """``fn`` applied to each element of the sequences: ``scan`` without recurrent outputs.

    >>> import symgrad, symgrad.tensor as st
    >>> x = st.dvector("x")
    >>> squares, _ = symgrad.scan.map(lambda v: v ** 2, sequences=x)
    >>> symgrad.function([x], squares)([1.0, 2.0, 3.0])
    array([1., 4., 9.])
    """
    return scan(fn, sequences=sequences, outputs_info=None, non_sequences=non_sequences,
                truncate_gradient=truncate_gradient, go_backwards=go_backwards, name=name,
                return_list=return_list)


def reduce(fn, sequences, outputs_info, non_sequences=None, go_backwards=False, mode=None,
           name=None):
    """Like ``scan`` but returns only the values after the last step.

    >>> import symgrad, symgrad.tensor as st
    >>> x = st.dvector("x")
    >>> total, _ = symgrad.scan.reduce(lambda v, acc: acc + v, sequences=x,
    ...                                outputs_info=st.constant(0.0))
    >>> symgrad.function([x], total)([1.0, 2.0, 3.0])
    array(6.)
    """
    outputs, updates = _scan(fn, sequences, outputs_info, non_sequences, None, -1, go_backwards,
                             name, False, True, vectorize=True, last_only=True)
    finals = []
    for k, out in enumerate(outputs):
        taps = _reduced_taps(outputs_info, k)
        finals.append(out if taps is not None and -1 in taps else out[-1])
    return (finals[0] if len(finals) == 1 else finals), updates


def _reduced_taps(outputs_info, k):
    entries = outputs_info if isinstance(outputs_info, list | tuple) else [outputs_info]
    if k >= len(entries) or entries[k] is None:
        return None
    entry = entries[k]
    if isinstance(entry, dict):
        if entry.get("initial") is None:
            return None
        return _as_list(entry.get("taps") if entry.get("taps") is not None else [-1])
    return [-1]


def foldl(fn, sequences, outputs_info, non_sequences=None, mode=None, name=None):
    """``reduce`` from the first element to the last."""
    return reduce(fn, sequences, outputs_info, non_sequences, go_backwards=False, name=name)


def foldr(fn, sequences, outputs_info, non_sequences=None, mode=None, name=None):
    """``reduce`` from the last element to the first."""
    return reduce(fn, sequences, outputs_info, non_sequences, go_backwards=True, name=name)
