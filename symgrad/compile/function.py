"""function(): compile symbolic inputs -> outputs (+ shared-variable updates) into a callable."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from symgrad.compile.io import In, Out
from symgrad.compile.mode import Mode, get_mode
from symgrad.compile.sharedvalue import SharedVariable
from symgrad.graph.basic import Constant, Variable
from symgrad.graph.fgraph import FunctionGraph, MissingInputError
from symgrad.graph.traversal import ancestors, clone_replace

__all__ = ["function", "Function", "UnusedInputError", "MissingInputError", "eval_variable"]


class UnusedInputError(ValueError):
    """An input that the outputs do not use (raised unless on_unused_input='ignore')."""


def _label(var: Variable) -> str:
    return repr(var.name) if var.name is not None else f"an unnamed {var.type}"


class FunctionMaker:
    """What a compiled function was made from (``f.maker.fgraph`` is the rewritten graph)."""

    def __init__(self, fgraph: FunctionGraph, inputs: list[In], outputs: list[Out], mode: Mode):
        self.fgraph = fgraph
        self.inputs = inputs
        self.outputs = outputs
        self.mode = mode


def _normalize_updates(updates) -> list[tuple[SharedVariable, Variable]]:
    if updates is None:
        return []
    pairs = list(updates.items()) if isinstance(updates, Mapping) else list(updates)
    result = []
    seen = set()
    from symgrad.tensor.basic import as_tensor_variable

    for pair in pairs:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise TypeError(f"updates must be (shared_variable, new_expression) pairs, got {pair!r}")
        var, expr = pair
        if not isinstance(var, SharedVariable):
            raise TypeError(f"update target {_label(var)} is not a shared variable; only "
                            "shared variables can be updated")
        if var in seen:
            raise ValueError(f"shared variable {_label(var)} is updated twice")
        seen.add(var)
        expr = as_tensor_variable(expr)
        if expr.type != var.type:
            if expr.type.dtype != var.type.dtype:
                from symgrad.tensor.elemwise import cast

                if np.can_cast(expr.type.dtype, var.type.dtype, "same_kind"):
                    expr = cast(expr, var.type.dtype)
                else:
                    raise TypeError(
                        f"the update of shared variable {_label(var)} has dtype "
                        f"{expr.type.dtype}, but the variable is {var.type.dtype}; cast it"
                    )
            if expr.type.ndim != var.type.ndim:
                raise TypeError(f"the update of shared variable {_label(var)} has "
                                f"{expr.type.ndim} dims, but the variable has {var.type.ndim}")
        result.append((var, expr))
    return result


def function(inputs, outputs=None, updates=None, givens=None, mode=None, name=None,
             on_unused_input="raise", allow_input_downcast=None, profile=False,
             no_default_updates=False, trust_input=False):
    """Compile a callable computing ``outputs`` from ``inputs``.

    Parameters
    ----------
    inputs : list of variables or :class:`In`
    outputs : a variable (one array comes back), a list (a list comes back), or None
    updates : (shared_variable, expression) pairs, applied together after the outputs
    givens : {variable: replacement} substituted in the graph before compiling
    mode : 'FAST_RUN' (default), 'FAST_COMPILE', 'JAX', 'NUMBA' or a :class:`Mode`
    on_unused_input : 'raise', 'warn' or 'ignore'
    allow_input_downcast : accept lossy input casts (e.g. float64 data for a float32 input)

    Examples
    --------
    >>> import symgrad, symgrad.tensor as st
    >>> a, b = st.dscalars("a", "b")
    >>> f = symgrad.function([a, b], [a + b, a * b])
    >>> f(2, 3)
    [array(5.), array(6.)]
    """
    if isinstance(inputs, Variable | In):
        raise TypeError("function(inputs, ...): inputs must be a list, e.g. function([x], y)")
    if on_unused_input not in ("raise", "warn", "ignore"):
        raise ValueError(f"on_unused_input must be 'raise', 'warn' or 'ignore', "
                         f"got {on_unused_input!r}")
    mode = get_mode(mode)
    in_specs = [i if isinstance(i, In) else In(i) for i in inputs]
    for k, spec in enumerate(in_specs):
        v = spec.variable
        if isinstance(v, Constant):
            raise TypeError(f"input {k} is a constant ({v}); constants cannot be inputs")
        if v.owner is not None:
            raise TypeError(
                f"input {k} ({_label(v)}) is computed from other variables ({v.owner.op}); "
                "function inputs must be root variables. Use givens to substitute a value "
                "for an intermediate result."
            )
    seen = {}
    for k, spec in enumerate(in_specs):
        if spec.variable in seen:
            raise ValueError(f"input {_label(spec.variable)} is given twice (positions "
                             f"{seen[spec.variable]} and {k})")
        seen[spec.variable] = k

    single = outputs is not None and not isinstance(outputs, list | tuple)
    out_specs = [] if outputs is None else [
        o if isinstance(o, Out) else Out(o) for o in (outputs if not single else [outputs])]
    from symgrad.tensor.basic import as_tensor_variable

    out_vars = [as_tensor_variable(o.variable) for o in out_specs]
    update_pairs = _normalize_updates(updates)
    for spec in in_specs:
        if spec.update is not None:
            update_pairs += _normalize_updates([(spec.variable, spec.update)])

    if givens:
        pairs = list(givens.items()) if isinstance(givens, Mapping) else list(givens)
        replace = {}
        for old, new in pairs:
            new = as_tensor_variable(new)
            if getattr(old.type, "ndim", None) != getattr(new.type, "ndim", None):
                raise TypeError(f"givens: {_label(old)} ({old.type}) cannot be replaced by "
                                f"{new} ({new.type})")
            replace[old] = new
        rebuilt = clone_replace(out_vars + [e for _, e in update_pairs], replace)
        out_vars = rebuilt[: len(out_vars)]
        update_pairs = [(v, e) for (v, _), e in zip(update_pairs, rebuilt[len(out_vars):])]

    from symgrad import _malloc
    from symgrad.compile.pipeline import compile_graph, no_gc

    _malloc.tune()  # (once per process)

    # no cyclic garbage collection while the graph is copied and compiled: it allocates
    # many small objects and frees few, and full collections over a large graph cost
    # more than the whole compilation
    with no_gc():
        all_outputs = out_vars + [e for _, e in update_pairs]
        explicit = [s.variable for s in in_specs]
        used = ancestors(all_outputs)
        graph_roots = [v for v in used if v.owner is None]
        shared_inputs = []
        for v in graph_roots:
            if isinstance(v, SharedVariable) and v not in seen:
                shared_inputs.append(v)
        for var, _ in update_pairs:
            if var not in seen and var not in shared_inputs:
                shared_inputs.append(var)

        _check_unused(in_specs, used, on_unused_input)
        fgraph = FunctionGraph(explicit + shared_inputs, all_outputs, clone=True)
        executable, fgraph = compile_graph(fgraph, mode, n_explicit=len(explicit),
                                           mutable=[s.mutable for s in in_specs], profile=profile)
        maker = FunctionMaker(fgraph, in_specs, out_specs, mode)
        fn = Function(maker, executable, single, shared_inputs, update_pairs,
                      allow_input_downcast, name, outputs is None)
        return fn


def _check_unused(in_specs, used, on_unused_input):
    """``used``: every variable the outputs depend on (``ancestors`` of the outputs)."""
    if on_unused_input == "ignore":
        return
    used_set = set(used)
    derivative_points = set()
    for v in used:
        tag = getattr(v, "_tag", None)  # never create a tag just to look (clone copies tags)
        if tag is not None:
            derivative_points.update(getattr(tag, "derivative_wrt", ()))
    for k, spec in enumerate(in_specs):
        v = spec.variable
        if v in used_set or v in derivative_points:
            continue
        message = (f"input {k} ({_label(v)}) is not used by the outputs. Remove it, or pass "
                   "on_unused_input='ignore' (or 'warn') to function().")
        if on_unused_input == "raise":
            raise UnusedInputError(message)
        import warnings

        warnings.warn(message, stacklevel=3)


class Function:
    """A compiled function. Call it with values for its inputs (positionally or by name)."""

    def __init__(self, maker, executable, single, shared_inputs, update_pairs,
                 allow_input_downcast, name, no_outputs):
        self.maker = maker
        self.executable = executable
        self.single = single
        self.shared_inputs = shared_inputs
        self.update_targets = [v for v, _ in update_pairs]
        self.n_outputs = len(maker.outputs)
        self.allow_input_downcast = allow_input_downcast
        self.name = name
        self.no_outputs = no_outputs
        specs = maker.inputs
        self.input_types = [s.variable.type for s in specs]
        self.input_names = [s.name for s in specs]
        self.defaults = [s.value for s in specs]
        self._name_to_pos = {n: k for k, n in enumerate(self.input_names) if n is not None}
        self._positional_only_fast = all(d is None for d in self.defaults)
        self.profile = getattr(executable, "profile", None)
        self._borrow = [o.borrow for o in maker.outputs]
        # per input: (dtype, ndim, shape fully unknown, is a float64 scalar) for the fast path
        self._fast_in = [(np.dtype(t.dtype), t.ndim, all(s is None for s in t.shape),
                          t.dtype == "float64" and t.ndim == 0) for t in self.input_types]

    @property
    def inputs(self):
        return self.maker.inputs

    @property
    def outputs(self):
        return self.maker.outputs

    def _convert(self, k, value):
        t = self.input_types[k]
        return t.filter(value, allow_downcast=self.allow_input_downcast,
                        name=_label_name(self.input_names[k], k))

    def _arguments(self, args, kwargs):
        n = len(self.input_types)
        if len(args) > n:
            raise TypeError(f"{self._describe()} takes {n} argument{'s' * (n != 1)} "
                            f"({', '.join(map(str, self.input_names))}), got {len(args)}")
        values = list(args) + [_MISSING] * (n - len(args))
        for key, value in kwargs.items():
            if key not in self._name_to_pos:
                raise TypeError(f"{self._describe()} got an unknown keyword argument {key!r}; "
                                f"its inputs are named {[m for m in self.input_names if m]}")
            pos = self._name_to_pos[key]
            if values[pos] is not _MISSING:
                raise TypeError(f"{self._describe()} got two values for input {key!r}")
            values[pos] = value
        for k, v in enumerate(values):
            if v is _MISSING:
                if self.defaults[k] is None:
                    raise TypeError(f"{self._describe()} is missing a value for input {k} "
                                    f"({_label_name(self.input_names[k], k)}); it takes "
                                    f"{n} argument{'s' * (n != 1)}")
                values[k] = self.defaults[k]
        return values

    def _describe(self):
        return f"function {self.name!r}" if self.name else "the compiled function"

    def __call__(self, *args, **kwargs):
        if kwargs or len(args) != len(self.input_types) or not self._positional_only_fast:
            args = self._arguments(args, kwargs)
        values = []
        for k, v in enumerate(args):  # fast path: arrays of the right dtype, Python floats
            dt, nd, free, f64 = self._fast_in[k]
            if type(v) is np.ndarray and v.dtype is dt and v.ndim == nd and free:
                values.append(v)
            elif f64 and type(v) is float:
                values.append(np.asarray(v))
            else:
                values.append(self._convert(k, v))
        for v in self.shared_inputs:
            values.append(v.container[0])
        results = self.executable(*values)
        n = self.n_outputs
        outputs = []
        for k in range(n):
            r = results[k]
            if not isinstance(r, np.ndarray):
                r = np.asarray(r)
            elif not self._borrow[k] and _aliases_input(r, values):
                r = r.copy()
            outputs.append(r)
        if self.update_targets:
            new_values = results[n:]
            for var, value in zip(self.update_targets, new_values):
                value = np.asarray(value)
                if value.dtype.name != var.type.dtype:
                    value = value.astype(var.type.dtype)
                var.container[0] = value
        if self.no_outputs:
            return []
        return outputs[0] if self.single else outputs

    def __reduce__(self):
        fg = self.maker.fgraph
        n_explicit = len(self.input_types)
        containers = [getattr(v, "container", None) for v in fg.inputs]
        positions = [next(k for k, c in enumerate(containers) if c is t.container)
                     for t in self.update_targets]
        return (_rebuild_function, (
            fg.inputs, fg.outputs, positions, n_explicit, [s.name for s in self.maker.inputs],
            self.defaults, self.n_outputs, self.single, self.no_outputs, self.maker.mode,
            self.allow_input_downcast, self.name))

    def __repr__(self):
        return f"<symgrad Function {self.name or ''} {self.input_names} -> {self.n_outputs} outputs>"


_MISSING = object()


def _aliases_input(result: np.ndarray, values) -> bool:
    """True when ``result`` is, or is a view into, one of the call's input arrays
    (the caller's data or a shared variable's storage): such outputs are copied."""
    if result.base is None:
        return any(result is v for v in values)
    return any(isinstance(v, np.ndarray) and np.may_share_memory(result, v) for v in values)


def _label_name(name, k):
    return repr(name) if name is not None else f"#{k}"


def _rebuild_function(inputs, outputs, positions, n_explicit, names, defaults, n_outputs, single,
                      no_outputs, mode, allow_input_downcast, name):
    explicit = [In(v, name=nm, value=d) for v, nm, d in zip(inputs[:n_explicit], names, defaults)]
    shared_inputs = list(inputs[n_explicit:])
    out_vars = outputs[:n_outputs]
    update_exprs = outputs[n_outputs:]
    targets = [inputs[p] for p in positions]
    fgraph = FunctionGraph(inputs, outputs, clone=False)
    from symgrad.compile.pipeline import compile_graph

    executable, fgraph = compile_graph(fgraph, Mode("FAST_COMPILE", backend=mode.backend),
                                       n_explicit=n_explicit, mutable=[False] * n_explicit)
    maker = FunctionMaker(fgraph, explicit, [Out(o) for o in out_vars], mode)
    return Function(maker, executable, single, shared_inputs,
                    list(zip(targets, update_exprs)), allow_input_downcast, name, no_outputs)


_EVAL_CACHE: dict = {}


def eval_variable(var, inputs_to_values: dict, **kwargs):
    """Compute ``var`` for the given input values (compiles once per set of inputs)."""
    keys = list(inputs_to_values)
    for k in keys:
        if not isinstance(k, Variable):
            raise TypeError(f"eval() needs a dict from symbolic variables to values, got key {k!r}")
    cache_key = (id(var), tuple(id(k) for k in keys))
    entry = _EVAL_CACHE.get(cache_key)
    if entry is None or entry[0] is not var:
        f = function(keys, var, on_unused_input="ignore", **kwargs)
        entry = (var, keys, f)
        if len(_EVAL_CACHE) > 256:
            _EVAL_CACHE.clear()
        _EVAL_CACHE[cache_key] = entry
    return entry[2](*[inputs_to_values[k] for k in keys])
