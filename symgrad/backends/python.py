"""The default backend: one straight-line Python function per compiled graph.

``compile_fgraph`` writes the source of a function that computes the graph's
outputs with numpy calls in topological order, ``exec``s it once and returns it:

- elementwise nodes call their numpy ufunc directly (weak constants as Python
  scalars, so numpy's NEP 50 rules keep float32 float32); fused nodes become a
  few ufunc calls that write into buffers they reuse (``out=``), and nodes
  marked in-place write into their dead input's buffer; a dead buffer whose
  shape the dims analysis cannot prove is used after a run-time test of the
  open axes (``out=(buf if ... else None)``);
- large fused nodes (one or several outputs) run block by block over rows, so
  their temporaries stay in cache;
- shape vectors are Python tuples where that serves (``Shape(x)`` is
  ``x.shape``; reshape, alloc and sum-to take the tuple), basic indices with
  constant entries are written inline, ``fill(a, b)`` is ``b`` when b already
  has the result's shape;
- other ops call the function their ``make_thunk_function`` returned, bound once;
- constants are bound once, as globals of the generated function;
- every identifier is generated (``a0``, ``v3``, ``k1``, ``f2``): nothing a user
  named ever reaches the source;
- a failure inside the function is caught and the graph re-run node by node on
  the same inputs to find the failing op, which an :class:`OpRuntimeError` names
  with its input shapes (the fast path pays nothing for this);
- the function holds no state between calls, so threads may call it at once;
- an identical graph (same structure, ops, constants and types) compiled again
  in the same process reuses the generated code object.

Graphs of more than ``LOOP_THRESHOLD`` nodes (and fused programs of more than
``PROGRAM_THRESHOLD`` steps) run as a loop over prepared thunks instead, where
compiling Python source would cost more than it saves.
"""

from __future__ import annotations

import itertools
import linecache
import math
import sys
import threading
import time
from collections import OrderedDict

import numpy as np

from symgrad._lazy import loaded_attr
from symgrad.graph.basic import Constant
from symgrad.tensor.basic import python_scalar_dtype as _weak_dtype

__all__ = ["compile_fgraph", "OpRuntimeError", "Profile", "LOOP_THRESHOLD",
           "PROGRAM_THRESHOLD", "clear_cache"]

LOOP_THRESHOLD = 3000
PROGRAM_THRESHOLD = 400
KEY_NODES = 1000  # graphs up to this size reuse the code of an identical graph
_CACHE_SIZE = 512
_CODE_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()
_counter = itertools.count()


class OpRuntimeError(ValueError):
    """An op failed at run time; the message names the op and its input shapes."""


def clear_cache():
    _CODE_CACHE.clear()


def constant_value(var):
    """The runtime value of a constant (weak constants as Python scalars)."""
    if getattr(var, "weak", False):
        return var.data.reshape(()).item() if var.data.size == 1 else var.data
    return var.data


def describe_failure(node, values, exc) -> str:
    def info(v):
        arr = np.asarray(v) if not isinstance(v, np.ndarray) else v
        return f"shape {arr.shape} {arr.dtype}"

    from symgrad.printing import pp

    def label(var):
        if var.name is not None:
            return var.name
        try:
            text = pp(var)
        except Exception:  # pragma: no cover
            text = str(var)
        return text if len(text) <= 60 else text[:57] + "..."

    parts = ", ".join(f"{label(i)} ({info(v)})" for i, v in zip(node.inputs, values))
    return f"{node.op} failed on inputs {parts}: {type(exc).__name__}: {exc}"


# -- profiling ------------------------------------------------------------------------------------

class Profile:
    """Time spent per node over the calls of a function compiled with ``profile=True``."""

    def __init__(self, nodes):
        self.nodes = list(nodes)
        self.times = [0.0] * len(self.nodes)
        self.calls = 0
        self.total = 0.0

    def reset(self):
        self.times[:] = [0.0] * len(self.nodes)  # the generated code holds this list
        self.calls = 0
        self.total = 0.0

    def rows(self):
        """(seconds, fraction, op, node text) per node, slowest first."""
        total = sum(self.times) or 1.0
        out = []
        for node, t in zip(self.nodes, self.times):
            out.append((t, t / total, str(node.op), _node_text(node)))
        out.sort(key=lambda r: -r[0])
        return out

    def summary(self, file=None, n: int = 20) -> str:
        """Print (and return) a table of the ``n`` slowest nodes."""
        lines = [f"Function profile: {self.calls} calls, {self.total:.6f} s in the compiled "
                 f"code ({1e6 * self.total / max(self.calls, 1):.1f} us per call)",
                 f"{'time (s)':>10} {'%':>6} {'per call (us)':>14}  node"]
        for t, frac, _, text in self.rows()[:n]:
            per = 1e6 * t / max(self.calls, 1)
            lines.append(f"{t:10.6f} {100 * frac:6.1f} {per:14.2f}  {text}")
        if len(self.nodes) > n:
            lines.append(f"... {len(self.nodes) - n} more nodes")
        text = "\n".join(lines)
        print(text, file=file or sys.stdout)
        return text

    def __repr__(self):
        return f"<Profile {len(self.nodes)} nodes, {self.calls} calls>"


def _node_text(node) -> str:
    from symgrad.printing import pp

    try:
        text = " ".join(pp(o) for o in node.outputs)
    except Exception:  # pragma: no cover
        text = str(node)
    return text if len(text) <= 100 else text[:97] + "..."


# -- the diagnostic path -----------------------------------------------------------------------------

def _run_node_by_node(fgraph, nodes, inputs):
    """Evaluate the graph with each op's own thunk; raise OpRuntimeError at the failing node.
    Returns the values of all variables when nothing failed."""
    values = dict(zip(fgraph.inputs, inputs))
    for node in nodes:
        args = []
        for i in node.inputs:
            args.append(constant_value(i) if isinstance(i, Constant) else values[i])
        try:
            with np.errstate(all="ignore"):
                result = node.op.make_thunk_function(node)(*args)
        except Exception as exc:
            program = getattr(node.op, "program", None)
            if program is not None:
                _diagnose_program(node, program, args, exc)
            raise OpRuntimeError(describe_failure(node, args, exc)) from exc
        if len(node.outputs) == 1:
            values[node.outputs[0]] = result
        else:
            values.update(zip(node.outputs, result))
    return values


def _diagnose_program(node, program, args, exc):
    """Find the failing step of a fused node; raise OpRuntimeError naming its op."""
    from symgrad.printing import pp

    results = []
    for j, (sop, refs, dtype) in enumerate(program.steps):
        vals, labels = [], []
        for r in refs:
            if r[0] == "i":
                vals.append(args[r[1]])
                v = node.inputs[r[1]]
                labels.append(v.name if v.name is not None else pp(v)[:40])
            elif r[0] == "s":
                vals.append(results[r[1]])
                labels.append(f"(step {r[1]})")
            elif r[0] == "w":
                vals.append(r[1])
                labels.append(repr(r[1]))
            else:
                vals.append(np.asarray(r[1], dtype=r[2])[()])
                labels.append(repr(r[1]))
        try:
            with np.errstate(all="ignore"):
                out = np.asarray(sop.numpy_impl(*vals))
        except Exception as step_exc:
            parts = ", ".join(f"{lab} (shape {np.shape(v)})" for lab, v in zip(labels, vals))
            raise OpRuntimeError(
                f"{sop.name} (step {j} of {node.op}) failed on inputs {parts}: "
                f"{type(step_exc).__name__}: {step_exc}") from exc
        results.append(out if out.dtype == dtype else out.astype(dtype))


def _make_diagnose(fgraph, nodes):
    def diagnose(exc, inputs):
        if isinstance(exc, OpRuntimeError):
            raise exc
        _run_node_by_node(fgraph, nodes, inputs)
        raise exc  # not reproduced node by node: report the original error
    return diagnose


# -- planning the generated code ------------------------------------------------------------------

_LITERAL_TYPES = (bool, int, float)


def _literal(value):
    """Python source for a finite Python scalar, or None."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return repr(value) if abs(value) < 2 ** 62 else None
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return None


class _Emitter:
    """Builds the source lines and the globals of one generated function."""

    def __init__(self, fgraph, nodes, profile):
        from symgrad.tensor.rewriting.dims import Dims

        self.fgraph = fgraph
        self.nodes = nodes
        self.profile = profile
        self.lines: list[str] = []
        self.glb: dict = {"__builtins__": {}, "Exception": Exception}
        self.names: dict = {}
        self.const_names: dict = {}
        self.func_names: dict = {}
        self.keep: list = []
        self.n_local = 0
        self.dims = Dims()
        self.indent = 2
        self.dest_used = False
        self.fast_sigmoid = False  # exp-based sigmoid (only where overflow warnings are off)
        # In a generated loop: the variables that do not change from step to step, and the
        # lines computing things from them once, before the loop (see ``hoist``).
        # int64 shape vectors known as a Python tuple expression (``Shape(x)`` is
        # ``x.shape``): consumers that take a tuple use it, the others an array made of it
        self.shape_tuples: dict = {}
        self.shape_ints: dict = {}  # 0-d lengths known as a Python int expression
        self.invariant: set = set()
        self.prelude: list[str] = []
        self.hoisted: dict = {}

    # names ---------------------------------------------------------------------------
    def local(self) -> str:
        self.n_local += 1
        return f"v{self.n_local}"

    def bind(self, obj, prefix="f") -> str:
        key = id(obj)
        name = self.func_names.get(key)
        if name is None:
            name = f"{prefix}{len(self.glb)}"
            self.func_names[key] = name
            self.glb[name] = obj
            self.keep.append(obj)  # ids stay unique while the emitter lives
        return name

    def constant(self, c) -> str:
        name = self.const_names.get(c)
        if name is None:
            name = f"k{len(self.glb)}"
            self.const_names[c] = name
            value = constant_value(c)
            if not getattr(c, "weak", False) and isinstance(value, np.ndarray) and value.ndim == 0:
                value = value[()]
            self.glb[name] = value
        return name

    def expr(self, var) -> str:
        if isinstance(var, Constant):
            if getattr(var, "weak", False) and var.data.size == 1:
                lit = _literal(var.data.reshape(()).item())
                if lit is not None:
                    return lit
            return self.constant(var)
        return self.names[var]

    # code -------------------------------------------------------------------------
    def emit(self, line: str):
        self.lines.append("    " * self.indent + line)

    def hoist(self, var, func, prefix="h") -> str:
        """Source for ``func(value of var)``: a name computed once before the loop when
        ``var`` is loop-invariant, else the call itself."""
        fname = self.bind(func, "f")
        if var not in self.invariant:
            return f"{fname}({self.expr(var)})"
        key = (var, fname)
        name = self.hoisted.get(key)
        if name is None:
            name = self.hoisted[key] = f"{prefix}{len(self.hoisted)}"
            self.prelude.append(f"{name} = {fname}({self.expr(var)})")
        return name


def _ufunc_form(sop):
    """(ufunc, leading constant args, chained) for a scalar op numpy runs as a ufunc, or None."""
    name = sop.name
    if name == "add":
        return np.add, (), True
    if name == "mul":
        return np.multiply, (), True
    if name == "softplus":
        return np.logaddexp, (0,), False
    impl = sop.numpy_impl
    if isinstance(impl, np.ufunc):
        return impl, (), False
    return None


def _recipe_sigmoid(em, x, dest, target):
    """1 / (1 + exp(-x)), in place (exp may overflow to inf: the result is then 0)."""
    em.dest_used = dest is not None
    neg, exp, add, rec = (em.bind(u, "u") for u in (np.negative, np.exp, np.add, np.reciprocal))
    em.emit(f"{target} = {neg}({x}" + (f", out={dest})" if dest else ")"))
    em.emit(f"{exp}({target}, out={target})")
    em.emit(f"{add}({target}, 1, out={target})")
    em.emit(f"{rec}({target}, out={target})")


def _recipe_softplus(em, x, dest, target):
    """max(x, 0) + log1p(exp(-|x|)): numpy's logaddexp(0, x), several times faster."""
    em.dest_used = dest is not None
    mx, ab, neg, exp, l1p, add = (em.bind(u, "u") for u in (
        np.maximum, np.absolute, np.negative, np.exp, np.log1p, np.add))
    m = em.local()
    em.emit(f"{m} = {mx}({x}, 0)")
    em.emit(f"{target} = {ab}({x}" + (f", out={dest})" if dest else ")"))
    em.emit(f"{neg}({target}, out={target})")
    em.emit(f"{exp}({target}, out={target})")
    em.emit(f"{l1p}({target}, out={target})")
    em.emit(f"{add}({target}, {m}, out={target})")


_RECIPES = {"sigmoid": _recipe_sigmoid, "softplus": _recipe_softplus}

# Non-ufunc implementations known to return a fresh array.
_FRESH_CALLABLES = {"clip", "switch", "identity"}


def _probe_of(kind_value):
    """The dtype probe of one argument: a dtype string (strong) or a Python scalar (weak)."""
    from symgrad.tensor.elemwise import _weak_probe

    kind, value = kind_value
    if kind == "weak":
        return _weak_probe(value)
    return value


def _predict(sop, probes):
    from symgrad.tensor.elemwise import _probe_dtype

    try:
        return _probe_dtype(sop, tuple(probes))
    except Exception:
        return None


class _Arg:
    """One argument of an elementwise step: its source text, dtype probe, dims and buffer."""

    __slots__ = ("text", "probe", "dims", "ref")

    def __init__(self, text, probe, dims, ref=None):
        self.text = text
        self.probe = probe
        self.dims = dims
        self.ref = ref


_FLOAT_LITERAL_OPS = frozenset({"add", "sub", "mul", "maximum", "minimum"})
_FLOAT_LITERAL_DTYPES = frozenset({"float16", "float32", "float64"})


def _float_literals(args, texts, dtype):
    """Small integer literals as float literals (``1 - x`` as ``1.0 - x``) where every other
    operand has the result's float dtype: the same result (numpy's weak scalars), and
    numpy takes a float scalar much faster than an int it must convert."""
    lits = [k for k, a in enumerate(args) if isinstance(a.probe, tuple) and a.text.lstrip(
        "-").isdigit() and abs(int(a.text)) < (1 << 24)]
    if not lits or any(a.probe != dtype for k, a in enumerate(args) if k not in lits):
        return texts
    return [t + ".0" if k in lits else t for k, t in enumerate(texts)]


def _emit_step(em, sop, args, dtype, ndim, dims, dest, target):
    """Emit one elementwise op into local ``target``; returns whether the result is fresh.

    ``dest`` is the name of a dead buffer (same dims and dtype) to write into, or None.
    """
    form = _ufunc_form(sop)
    texts = [a.text for a in args]
    if sop.name in _FLOAT_LITERAL_OPS and dtype in _FLOAT_LITERAL_DTYPES:
        texts = _float_literals(args, texts, dtype)
    if ndim > 0 and dtype in ("float32", "float64") and len(args) == 1 and args[0].probe == dtype:
        recipe = _RECIPES.get(sop.name)
        if recipe is not None and (sop.name != "sigmoid" or em.fast_sigmoid):
            recipe(em, texts[0], dest, target)
            return True
    if form is not None:
        ufunc, lead, chained = form
        uname = em.bind(ufunc, "u")
        lead_txt = [repr(v) for v in lead]
        if chained and len(args) > 2:
            from symgrad.tensor.rewriting.dims import bcast_dims

            probe = args[0].probe
            pdims = args[0].dims
            partial = []
            ok = True
            for a in args[1:]:
                d = _predict(sop, (probe, a.probe))
                if d is None:
                    ok = False
                    break
                probe = d
                pdims = bcast_dims([pdims, a.dims])
                partial.append((d, pdims))
            if ok and partial[-1][0] == dtype:
                if dest is not None and all(d == dtype for d, _ in partial):
                    em.dest_used = True
                    em.emit(f"{target} = {uname}({texts[0]}, {texts[1]}, out={dest})")
                    for t in texts[2:]:
                        em.emit(f"{uname}({target}, {t}, out={target})")
                    return True
                em.emit(f"{target} = {uname}({texts[0]}, {texts[1]})")
                for (prev_d, prev_dims), (d, pd), t in zip(partial, partial[1:], texts[2:]):
                    # the buffer holds the previous partial result: reuse it when it fits
                    if ndim > 0 and d == prev_d and pd == prev_dims:
                        em.emit(f"{uname}({target}, {t}, out={target})")
                    else:
                        em.emit(f"{target} = {uname}({target}, {t})")
                return True
        elif chained and len(args) == 1:
            em.emit(f"{target} = {texts[0]}")
            return False
        predicted = _predict(sop, [a.probe for a in args])
        if predicted == dtype and (not chained or len(args) == 2):
            call = ", ".join(lead_txt + texts)
            if dest is not None:
                em.dest_used = True
                em.emit(f"{target} = {uname}({call}, out={dest})")
            else:
                em.emit(f"{target} = {uname}({call})")
            return True
    # generic: the scalar op's own implementation, then the Elemwise cast rule
    fname = em.bind(sop.numpy_impl, "f")
    em.emit(f"{target} = {fname}({', '.join(texts)})")
    predicted = _predict(sop, [a.probe for a in args])
    if predicted != dtype:
        aname = em.bind(_asarray_as(dtype), "f")
        em.emit(f"{target} = {aname}({target})")
        return ndim > 0
    return ndim > 0 and sop.name in _FRESH_CALLABLES


_AS_CACHE: dict = {}


def _asarray_as(dtype):
    fn = _AS_CACHE.get(dtype)
    if fn is None:
        dt = np.dtype(dtype)

        def fn(x, _dt=dt, _asarray=np.asarray):
            x = _asarray(x)
            return x if x.dtype == _dt else x.astype(_dt)
        _AS_CACHE[dtype] = fn
    return fn


def _input_probe(var):
    if isinstance(var, Constant) and getattr(var, "weak", False):
        return ("weak", var.type.dtype)
    return ("strong", var.type.dtype)


def _emit_elemwise(em, node):
    op = node.op
    out = node.outputs[0]
    dtype = out.type.dtype
    ndim = out.type.ndim
    if op.scalar_op.name == "second" and _emit_fill_alias(em, node):
        return
    # (the dims analysis is asked only where it is used: chains of 3+ operands, in place)
    if len(node.inputs) > 2:
        args = [_Arg(em.expr(i), _probe_of(_input_probe(i)), em.dims(i)) for i in node.inputs]
    else:
        args = [_Arg(em.expr(i), _probe_of(_input_probe(i)), None) for i in node.inputs]
    dest = None
    if op.inplace and ndim > 0:
        _, k = op.inplace[0]
        inp = node.inputs[k]
        form = _ufunc_form(op.scalar_op)
        if (form is not None and inp.type.dtype == dtype and not isinstance(inp, Constant)
                and em.dims(inp) == em.dims(out)
                and _predict(op.scalar_op, [a.probe for a in args]) == dtype
                and (not form[2] or len(args) <= 2)):
            dest = em.expr(inp)
    target = em.local()
    em.names[out] = target
    _emit_step(em, op.scalar_op, args, dtype, ndim, None, dest, target)


def _emit_fill_alias(em, node):
    """``fill(a, b)`` is ``b`` itself when ``b`` already has the result's shape and dtype
    (tested at run time unless the dims analysis proves it): no copy. Safe because the
    in-place pass never counts a fill's result as a buffer of its own (``second`` is not
    fresh), and a function output that aliases an input is copied at the boundary."""
    a, b = node.inputs
    out = node.outputs[0]
    if (out.type.ndim == 0 or isinstance(b, Constant) or b.type.dtype != out.type.dtype
            or b.type.ndim != out.type.ndim or a.type.ndim != out.type.ndim):
        return False
    if any(o is out for o in em.fgraph.outputs):
        return False
    bt = em.expr(b)
    target = em.local()
    em.names[out] = target
    if em.dims(b) == em.dims(out):
        em.emit(f"{target} = {bt}")
        return True
    fname = em.bind(node.op.scalar_op.numpy_impl, "f")
    at = em.expr(a)
    # the result has b's shape where each axis of a is 1 or b's length: tested on the axes
    # the dims analysis leaves open
    da, db = em.dims(a), em.dims(b)
    if isinstance(a, Constant):
        tests = [f"{bt}.shape[{k}] == {n}" for k, n in enumerate(np.shape(a.data)) if n != 1]
    else:
        tests = [f"{at}.shape[{k}] == {bt}.shape[{k}]" for k, (x, y) in enumerate(zip(da, db))
                 if x and x != y]
    if not tests:
        em.emit(f"{target} = {bt}")
    else:
        em.emit(f"{target} = {bt} if {' and '.join(tests)} else {fname}({at}, {bt})")
    return True


CHUNK = 1 << 14          # elements per block in the blocked loop of a fused node
BLOCKED_STEPS = 100      # longer programs of several outputs: no blocked copy (source size)
CHUNK_THRESHOLD = 1 << 15  # outputs at least this large run block by block


def _emit_fused(em, node, dest=None):
    """``dest``: the name of an array the (single) output is written into.

    Large outputs are computed block by block (rows of the first axis, about ``CHUNK``
    elements at a time) so that the program's temporaries stay in cache; several outputs
    are filled in the same loop."""
    op = node.op
    prog = op.program
    if len(prog.steps) > PROGRAM_THRESHOLD:
        _emit_generic(em, node)
        return
    ndim = max(o.type.ndim for o in node.outputs)
    plan = _chunk_plan(em, node) if ndim > 0 and (len(node.outputs) == 1 or (
        dest is None and len(prog.steps) <= BLOCKED_STEPS)) else None
    if plan is None:
        texts = _emit_program(em, node, [em.expr(i) for i in node.inputs], dest)
        for o, t in zip(node.outputs, texts):
            em.names[o] = t if dest is None else dest
        return
    ref, sliced, checks = plan
    ref_text = em.expr(node.inputs[ref])
    targets = [em.local() for _ in node.outputs] if dest is None else [dest]
    for o, t in zip(node.outputs, targets):
        em.names[o] = t
    cond = f"{ref_text}.size < {CHUNK_THRESHOLD}"
    for k, axis in checks:
        cond += f" or {em.expr(node.inputs[k])}.shape[{axis}] != {ref_text}.shape[{axis}]"
    em.emit(f"if {cond}:")
    em.indent += 1
    texts = _emit_program(em, node, [em.expr(i) for i in node.inputs], dest)
    if dest is None:
        if len(targets) == 1:
            em.emit(f"{targets[0]} = {texts[0]}")
        else:
            em.emit(f"{', '.join(targets)} = {', '.join(texts)}")
    em.indent -= 1
    em.emit("else:")
    em.indent += 1
    if dest is None:
        last_read = {}
        for j, (_, refs, _) in enumerate(prog.steps):
            for r in refs:
                if r[0] == "i":
                    last_read[r[1]] = j
        # buffers the outputs may take: the in-place input, dead fresh inputs
        spare = [k for _, k in op.inplace] + sorted(_dead_fresh_inputs(em, node))
        empty = None
        def may_take(k, j):
            # input k's block is read for the last time before step j writes the output
            # block, or by step j itself, when j is one ufunc call or k is read by the first
            # call of j's chain (a chain writes its first partial result into the output)
            if last_read.get(k, -1) < j:
                return True
            if last_read.get(k, -1) > j:
                return False
            sop, refs, _ = prog.steps[j]
            form = _ufunc_form(sop)
            if form is None or not form[2] or len(refs) <= 2:
                return True
            return not any(r[0] == "i" and r[1] == k for r in refs[2:])

        for idx, (o, t) in enumerate(zip(node.outputs, targets)):
            k = next((k for k in spare if k in sliced and may_take(k, prog.outputs[idx])
                      and node.inputs[k].type.dtype == o.type.dtype), None)
            if k is not None:
                spare.remove(k)
                em.emit(f"{t} = {em.expr(node.inputs[k])}")
            else:
                if empty is None:
                    empty = em.bind(np.empty, "f")
                em.emit(f"{t} = {empty}({ref_text}.shape, {o.type.dtype!r})")
    n0, rows, start, stop = em.local(), em.local(), em.local(), em.local()
    em.emit(f"{n0} = {ref_text}.shape[0]")
    em.glb.setdefault("max", max)
    em.glb.setdefault("range", range)
    em.emit(f"{rows} = max(1, {CHUNK} // max(1, {ref_text}.size // max(1, {n0})))")
    uses_sigmoid = any(sop.name == "sigmoid" for sop, _, _ in prog.steps)
    if uses_sigmoid:
        es = em.bind(np.errstate, "f")
        em.emit(f"with {es}(over='ignore'):")
        em.indent += 1
    em.emit(f"for {start} in range(0, {n0}, {rows}):")
    em.indent += 1
    em.emit(f"{stop} = {start} + {rows}")
    chunk_inputs = []
    for k, i in enumerate(node.inputs):
        text = em.expr(i)
        if k in sliced:
            c = em.local()
            em.emit(f"{c} = {text}[{start}:{stop}]")
            text = c
        chunk_inputs.append(text)
    em.fast_sigmoid = True
    try:
        _emit_program(em, node, chunk_inputs, [f"{t}[{start}:{stop}]" for t in targets])
    finally:
        em.fast_sigmoid = False
    em.indent -= 2 + uses_sigmoid


def _chunk_plan(em, node):
    """``(reference input, inputs to slice by rows, (input, axis) pairs whose length must
    equal the reference's at run time)`` when the node can run block by block, else None.

    Every output must have the reference's shape. An input's axis is left alone where the
    dims analysis proves it 1 or the reference's length, else checked at run time (a
    failed check runs the whole-array code). Inputs of length 1 along the first axis are
    passed whole (broadcast to every block); the others are sliced."""
    outs = node.outputs
    od = em.dims(outs[0])
    if not od or not od[0] or any(em.dims(o) != od for o in outs[1:]):
        return None
    if any(o.type.dtype not in ("float32", "float64", "complex64", "complex128")
           for o in outs):
        return None
    if len(set(node.op.program.outputs)) != len(outs):
        return None
    ins = node.inputs
    dims = [em.dims(i) for i in ins]
    ref = next((k for k, i in enumerate(ins) if not isinstance(i, Constant) and dims[k] == od),
               None)
    if ref is None:
        # an input with no axis known to be 1 where the output's is not: checked at run time
        ref = next((k for k, i in enumerate(ins) if not isinstance(i, Constant) and all(
            d or not o for d, o in zip(dims[k], od))), None)
        if ref is None:
            return None
    rd = dims[ref]
    sliced, checks = set(), []
    for k, i in enumerate(ins):
        d = dims[k]
        if isinstance(i, Constant):
            if any(d):
                return None
            continue
        for axis, (a, b) in enumerate(zip(d, rd)):
            if a and a != b:
                checks.append((k, axis))
        if d[0]:
            sliced.add(k)
    # every output must have the reference's length on every axis where it is not 1
    for deps in node.op.output_dependencies():
        for axis, b in enumerate(rd):
            if b and not any(dims[k][axis] for k in deps):
                return None
        if not any(k in sliced for k in deps):
            return None
    return ref, sliced, checks


def _strong_float_literals(args, dtype):
    """A float constant of the result's dtype among operands that all have that dtype is
    written as a Python float literal: numpy converts it to that dtype exactly (it came
    from it), so the result is the same, and a Python float is cheaper to take than a
    numpy scalar."""
    if any(a.probe != dtype for a in args):
        return
    for k, a in enumerate(args):
        if a.ref and a.ref[0] == "c":
            v = float(a.ref[1])
            if math.isfinite(v) and (v != 0 or not math.copysign(1.0, v) < 0):
                args[k] = _Arg(repr(v), a.probe, a.dims)


class _FreeBuffers:
    """Dead buffers of a fused program, found by (dims, dtype) in constant time."""

    __slots__ = ("exact", "loose")

    def __init__(self):
        self.exact: dict = {}   # (dims, dtype) -> [entry]
        self.loose: dict = {}   # (ndim, dtype) -> [entry]; entry = [name, dims, alive]

    def add(self, name, dims, dtype):
        entry = [name, dims, True]
        self.exact.setdefault((dims, dtype), []).append(entry)
        self.loose.setdefault((len(dims), dtype), []).append(entry)

    @staticmethod
    def _take(entries, forbidden):
        if not entries:
            return None
        while entries and not entries[-1][2]:
            entries.pop()
        for k in range(len(entries) - 1, -1, -1):
            e = entries[k]
            if e[2] and e[0] not in forbidden:
                e[2] = False
                del entries[k]
                return e
        return None

    def take_exact(self, dims, dtype, forbidden=()):
        e = self._take(self.exact.get((dims, dtype)), forbidden)
        return None if e is None else e[0]

    def take_any(self, ndim, dtype, forbidden=()):
        e = self._take(self.loose.get((ndim, dtype)), forbidden)
        return None if e is None else (e[0], e[1])


def _emit_program(em, node, in_texts, final_dest):
    """Emit the steps of a fused node over the given input texts; the output texts.

    ``final_dest``: an expression (e.g. an output slice) the single output is written to,
    or a list of such expressions, one per output.
    """
    from symgrad.tensor.rewriting.dims import bcast_dims

    op = node.op
    prog = op.program
    ndim = max(o.type.ndim for o in node.outputs)
    in_args = [_Arg(t, _probe_of(_input_probe(i)), em.dims(i), ("i", k))
               for k, (t, i) in enumerate(zip(in_texts, node.inputs))]
    inplace_inputs = {k for _, k in op.inplace} if final_dest is None else set()
    if final_dest is None and ndim > 0:
        inplace_inputs |= _dead_fresh_inputs(em, node)
    last = prog.last_uses()
    outputs = set(prog.outputs)
    dest_of: dict = {}
    if isinstance(final_dest, str):
        dest_of[prog.outputs[0]] = [final_dest]
    elif final_dest is not None:
        for j, d in zip(prog.outputs, final_dest):
            dest_of.setdefault(j, []).append(d)
    results: list[_Arg] = []
    fresh: list[bool] = []
    free = _FreeBuffers()  # dead buffers
    one = frozenset()
    if isinstance(final_dest, str) and final_dest.isidentifier() and len(prog.outputs) == 1:
        # A whole array to write into: earlier steps of the output's shape may use it too.
        step_dims = []
        for _, refs, _ in prog.steps:
            ds = [in_args[r[1]].dims if r[0] == "i" else step_dims[r[1]] if r[0] == "s"
                  else tuple(one for _ in range(ndim)) for r in refs]
            step_dims.append(bcast_dims(ds) if ds else ())
        (o,) = prog.outputs
        sop, refs, dtype = prog.steps[o]
        form = _ufunc_form(sop)
        if form is not None and not (form[2] and len(refs) > 2):
            free.add(final_dest, step_dims[o], dtype)
    for j, (sop, refs, dtype) in enumerate(prog.steps):
        args = []
        for r in refs:
            kind = r[0]
            if kind == "i":
                args.append(in_args[r[1]])
            elif kind == "s":
                args.append(results[r[1]])
            elif kind == "w":
                lit = _literal(r[1])
                text = lit if lit is not None else em.bind(r[1], "k")
                args.append(_Arg(text, _probe_of(("weak", _weak_dtype(r[1]))),
                                 tuple(one for _ in range(ndim))))
            else:
                value = np.asarray(r[1], dtype=r[2])[()]
                args.append(_Arg(em.bind(value, "k"), r[2], tuple(one for _ in range(ndim)),
                                 ("c", value)))
        if dtype in ("float32", "float64") and any(a.ref and a.ref[0] == "c" for a in args):
            _strong_float_literals(args, dtype)
        dims = bcast_dims([a.dims for a in args]) if args else ()
        # buffers read for the last time here may take the result (ufuncs allow it)
        for ref in last[j]:
            if ref[0] == "s" and ref[1] not in outputs and fresh[ref[1]]:
                res = results[ref[1]]
                free.add(res.text, res.dims, prog.steps[ref[1]][2])
            elif ref[0] == "i" and ref[1] in inplace_inputs:
                a = in_args[ref[1]]
                free.add(a.text, a.dims, node.inputs[ref[1]].type.dtype)
        form = _ufunc_form(sop)
        dest = None
        dests = dest_of.get(j)
        if dests is not None:
            dest = dests[0]
            target = em.local()
        else:
            checked = None
            if ndim > 0 and (form is not None or sop.name in _RECIPES):
                forbidden = {a.text for a in args[2:]} if form is not None and form[2] else ()
                dest = free.take_exact(dims, dtype, forbidden)
                if dest is None and not (form is not None and form[2] and len(args) > 2):
                    # a dead buffer whose shape the dims analysis cannot prove: used when
                    # the operands it must match have its shape at run time
                    found = free.take_any(len(dims), dtype, forbidden)
                    if found is not None:
                        name, fd = found
                        tests = [f"{a.text}.shape[{k}] == {name}.shape[{k}]"
                                 for a in args if a.text != name
                                 for k, (x, y) in enumerate(zip(a.dims, fd)) if x and x != y]
                        covered = all(not y or any(a.dims[k] for a in args)
                                      for k, y in enumerate(fd))
                        if tests and covered:
                            checked = f"({name} if {' and '.join(tests)} else None)"
                        else:
                            free.add(name, fd, dtype)  # nothing to check it against
            target = dest if dest is not None else em.local()
            if checked is not None:
                dest = checked
        em.dest_used = False
        is_fresh = _emit_step(em, sop, args, dtype, ndim, dims, dest, target)
        if dests is not None:
            for k, d in enumerate(dests):
                if k or not em.dest_used:
                    em.emit(f"{d}{'[...]' if d.isidentifier() else ''} = {target}")
        results.append(_Arg(target, dtype, dims, ("s", j)))
        fresh.append(is_fresh)
    return [results[oi].text for oi in prog.outputs]


def _dead_fresh_inputs(em, node):
    """Inputs of ``node`` whose buffer it may overwrite once it has read them: arrays this
    call allocated (see ``produces_fresh``) that nothing else reads, passed once."""
    from symgrad.tensor.rewriting.inplace import produces_fresh

    clients = em.fgraph.clients
    found = set()
    for k, i in enumerate(node.inputs):
        if isinstance(i, Constant) or i.owner is None or i.type.ndim == 0:
            continue
        if sum(1 for j in node.inputs if j is i) != 1:
            continue
        if any(c is not node for c, _ in clients.get(i, ((None, 0),))):
            continue
        if produces_fresh(i):
            found.add(k)
    return found


def _shape_tuple(shape):
    """A shape vector as a tuple of Python ints (compares fast with ``ndarray.shape``)."""
    try:
        return tuple(shape.tolist())
    except AttributeError:
        return tuple(int(d) for d in shape)


def _emit_sum_to(em, node):
    """``SumTo``: nothing to do when the shapes already agree (tested inline)."""
    x, shape = node.inputs
    if x.type.ndim == 0:
        _emit_generic(em, node)
        return
    if isinstance(shape, Constant):
        tup = repr(_shape_tuple(np.asarray(shape.data)))
    elif shape in em.shape_tuples:
        tup = em.shape_tuples[shape]
    else:
        tup = em.hoist(shape, _shape_tuple, "s")
    fname = em.bind(node.op.make_thunk_function(node), "f")
    xt = em.expr(x)
    target = em.local()
    em.names[node.outputs[0]] = target
    em.emit(f"{target} = {xt} if {xt}.shape == {tup} else {fname}({xt}, {em.expr(shape)})")


def _emit_dimshuffle(em, node):
    """``DimShuffle`` as indexing (``x[:, None]``, ``x[0, :]``) and ``transpose``: a view."""
    op = node.op
    x = node.inputs[0]
    if op.input_ndim == 0 or any(x.type.shape[d] != 1 for d in op.drop):
        _emit_generic(em, node)  # a 0-d value may be a Python scalar; a drop to check
        return
    text = em.expr(x)
    kept = sorted(op.transposition)
    order = [kept.index(p) for p in op.transposition]
    out_ndim = len(op.new_order)
    if order != sorted(order):
        if op.drop:
            text += "[" + ", ".join("0" if d in op.drop else ":"
                                     for d in range(op.input_ndim)) + "]"
        text += f".transpose({tuple(order)!r})"
        if "x" in op.new_order:
            text += "[" + ", ".join("None" if d == "x" else ":" for d in op.new_order) + "]"
    else:
        items, nxt = [], 0
        for d in op.new_order:
            if d == "x":
                items.append("None")
                continue
            while nxt < d:
                items.append("0")  # a dropped (length-1) axis
                nxt += 1
            items.append(":")
            nxt = d + 1
        items += ["0"] * (op.input_ndim - nxt)
        while items and items[-1] == ":":
            items.pop()
        if out_ndim == 0:
            items.append("...")  # a 0-d array, not a numpy scalar
        if items:
            text += "[" + ", ".join(items) + "]"
    target = em.local()
    em.names[node.outputs[0]] = target
    em.emit(f"{target} = {text}")


def _dot_inline(node) -> bool:
    out = node.outputs[0]
    a, b = node.inputs
    return out.type.ndim > 0 and a.type.dtype == b.type.dtype == out.type.dtype


def _emit_dot(em, node, dest=None):
    """``Dot`` as ``np.dot`` itself (same dtypes in and out: nothing to cast)."""
    if not _dot_inline(node):
        _emit_generic(em, node)
        return
    a, b = node.inputs
    dot = em.bind(np.dot, "u")
    out = node.outputs[0]
    if dest is not None:
        em.names[out] = dest
        em.emit(f"{dot}({em.expr(a)}, {em.expr(b)}, out={dest})")
        return
    target = em.local()
    em.names[out] = target
    em.emit(f"{target} = {dot}({em.expr(a)}, {em.expr(b)})")


def can_emit_into(node) -> bool:
    """Whether :func:`emit_node_into` can write ``node``'s output into a given array."""
    from symgrad.tensor.elemwise import Elemwise
    from symgrad.tensor.fusion import FusedElemwise
    Dot = loaded_attr("symgrad.tensor.linalg", "Dot")  # (None: no Dot node exists)

    op = node.op
    if len(node.outputs) != 1 or node.outputs[0].type.ndim == 0:
        return False
    kind = type(op)
    if kind is Elemwise:
        return hasattr(node.outputs[0].type, "dtype")
    if kind is FusedElemwise:
        return len(op.program.steps) <= PROGRAM_THRESHOLD and len(op.program.outputs) == 1
    return kind is Dot and _dot_inline(node)


def emit_node_into(em, node, dest):
    """Emit ``node`` so that its single output is written into the array named ``dest``
    (of the output's shape and dtype, C-contiguous; no input of the node): with ``out=``
    where numpy allows it, else computed and copied. Check :func:`can_emit_into` first."""
    from symgrad.tensor.elemwise import Elemwise
    Dot = loaded_attr("symgrad.tensor.linalg", "Dot")  # (None: no Dot node exists)

    kind = type(node.op)
    if kind is Dot:
        _emit_dot(em, node, dest)
    elif kind is Elemwise:
        out = node.outputs[0]
        args = [_Arg(em.expr(i), _probe_of(_input_probe(i)), em.dims(i)) for i in node.inputs]
        target = em.local()
        em.dest_used = False
        _emit_step(em, node.op.scalar_op, args, out.type.dtype, out.type.ndim, em.dims(out),
                   dest, target)
        if not em.dest_used:
            em.emit(f"{dest}[...] = {target}")
        em.names[out] = dest
    else:
        _emit_fused(em, node, dest)


try:
    from numpy._core.multiarray import c_einsum as _c_einsum  # einsum minus its wrapper
except ImportError:  # pragma: no cover
    _c_einsum = np.einsum


def _scaled_rows(w, r, _es=np.errstate, _dot=np.dot, _zeros=np.zeros, _empty=np.empty,
                 _ein=_c_einsum, _range=range):
    """``r[:, None] * w`` for a matrix w and a vector r of its rows, or None when that has
    an inf or NaN (tested in one BLAS pass: ``a @ 0`` is all zeros unless a holds an inf or
    NaN; nothing can overflow). einsum's product loop beats the broadcasting multiply
    (same values); a large result is made in blocks of rows, each tested while in cache."""
    rows, cols = w.shape
    z = _zeros(cols, w.dtype)
    with _es(invalid="ignore"):
        if w.size < 65536:
            out = _ein("ij,i->ij", w, r)
            return None if _dot(out, z).any() else out
        out = _empty((rows, cols), w.dtype)
        step = max(1, 32768 // max(cols, 1))
        for s in _range(0, rows, step):
            o = out[s:s + step]
            _ein("ij,i->ij", w[s:s + step], r[s:s + step], out=o)
            if _dot(o, z).any():
                return None
    return out


def _emit_scaled_identity_dot(em, node):
    """``dot(eye(n) * r, W)`` (the rewrites' ``_ScaledIdentityDot``) as ``r[:, None] * W``
    (``_scaled_rows``), with the op's own exact path when the shapes differ or the product
    is not finite."""
    n, *rows, w = node.inputs
    out = node.outputs[0]
    dtype = out.type.dtype
    if (len(rows) != 1 or rows[0].type.ndim != 2 or w.type.ndim != 2
            or rows[0].type.dtype != dtype or w.type.dtype != dtype
            or dtype not in ("float32", "float64") or isinstance(rows[0], Constant)):
        _emit_generic(em, node)
        return
    fname = em.bind(node.op.make_thunk_function(node), "f")
    scaled = em.bind(_scaled_rows, "f")
    nt, rt, wt = em.expr(n), em.expr(rows[0]), em.expr(w)
    ni = em.shape_ints.get(n, nt)  # compared as a Python int where it is one
    target = em.local()
    em.names[out] = target
    em.emit(f"{target} = {scaled}({wt}, {rt}[0]) if {wt}.shape[0] == {ni} == "
            f"{rt}.shape[1] else None")
    em.emit(f"if {target} is None:")
    em.emit(f"    {target} = {fname}({nt}, {rt}, {wt})")


def _shape_text(em, shp):
    """A shape vector as source text of a tuple or list: a literal for a constant, the
    tuple expression it was emitted as, else the array's ``tolist()``."""
    if isinstance(shp, Constant):
        return repr(_shape_tuple(np.asarray(shp.data).reshape(-1)))
    if shp in em.shape_tuples:
        return em.shape_tuples[shp]
    return f"{em.expr(shp)}.tolist()"


def _emit_reshape(em, node):
    """``Reshape`` as the array's own ``reshape`` (a constant shape as a literal tuple)."""
    x, shp = node.inputs
    if x.type.ndim == 0 or isinstance(x, Constant):
        _emit_generic(em, node)
        return
    st = _shape_text(em, shp)
    target = em.local()
    em.names[node.outputs[0]] = target
    em.emit(f"{target} = {em.expr(x)}.reshape({st})")


def _set_shape_tuple(em, var, tup):
    em.shape_tuples[var] = tup
    arr = em.bind(np.array, "f")
    i64 = em.bind(np.dtype(np.int64), "k")
    em.names[var] = f"{arr}({tup}, {i64})"


def _emit_shape(em, node):
    """``Shape(x)``: nothing emitted; ``x.shape`` where a tuple serves, else an array of it."""
    x = node.inputs[0]
    out = node.outputs[0]
    if x.type.ndim == 0 or isinstance(x, Constant) or out.type.dtype != "int64":
        _emit_generic(em, node)
        return
    xt = em.expr(x)
    _set_shape_tuple(em, out, f"{xt}.shape" if xt.isidentifier() else f"({xt}).shape")


def _emit_join(em, node):
    """``Join{axis=0}`` of shape vectors: the concatenated tuple (nothing emitted)."""
    out = node.outputs[0]
    if (node.op.axis != 0 or out.type.dtype != "int64"
            or not all(i in em.shape_tuples for i in node.inputs)):
        _emit_generic(em, node)
        return
    _set_shape_tuple(em, out, "(" + " + ".join(em.shape_tuples[i] for i in node.inputs) + ")")


def _emit_subtensor(em, node):
    """An entry of a shape vector (``x.shape[k]``) as a 0-d int64 array, like Subtensor."""
    src = node.inputs[0]
    if (src in em.shape_tuples and node.op.idx_list == ("i",) and len(node.inputs) == 2
            and isinstance(node.inputs[1], Constant) and node.outputs[0].type.ndim == 0):
        k = int(np.asarray(node.inputs[1].data).reshape(()))
        arr = em.bind(np.array, "f")
        i64 = em.bind(np.dtype(np.int64), "k")
        target = em.local()
        em.names[node.outputs[0]] = target
        em.emit(f"{target} = {arr}({em.shape_tuples[src]}[{k}], {i64})")
        em.shape_ints[node.outputs[0]] = f"{em.shape_tuples[src]}[{k}]"
        return
    index = _constant_index_text(node)
    if index is None or src.type.ndim == 0 or isinstance(src, Constant):
        _emit_generic(em, node)
        return
    target = em.local()
    em.names[node.outputs[0]] = target
    em.emit(f"{target} = {em.expr(src)}[{index}]")


def _constant_index_text(node):
    """Source of a basic index whose entries are all constants (``1:, 0, None, ...``),
    ending in ``...`` so that numpy returns a view (a 0-d one for a single element)."""
    op = node.op
    if getattr(op, "advanced", True) or type(op).__name__ != "Subtensor":
        return None
    vals = node.inputs[1:]
    if not all(isinstance(v, Constant) for v in vals):
        return None
    vals = iter(vals)
    parts = []
    for e in op.idx_list:
        if isinstance(e, tuple):
            bounds = []
            for has in e[1:]:
                bounds.append(repr(int(next(vals).data)) if has else "")
            text = ":".join(bounds[:2]) + (f":{bounds[2]}" if bounds[2] else "")
            parts.append(text)
        elif e == "i":
            v = next(vals).data
            if v.dtype.kind not in "iu" or v.ndim != 0:
                return None
            parts.append(repr(int(v)))
        elif e == "n":
            parts.append("None")
        else:
            return None
    parts.append("...")
    return ", ".join(parts)


def _emit_alloc(em, node):
    """``Alloc`` of a constant scalar: ``np.zeros`` (pages the kernel zeroes lazily) or
    ``np.full``, of a shape tuple."""
    value, shp = node.inputs
    out = node.outputs[0]
    if not isinstance(value, Constant) or value.data.size != 1 or out.type.ndim == 0:
        _emit_generic(em, node)
        return
    st = _shape_text(em, shp)
    dt = em.bind(np.dtype(out.type.dtype), "k")
    v = np.asarray(value.data, dtype=out.type.dtype).reshape(())
    target = em.local()
    em.names[out] = target
    if v == 0 and not np.signbit(v):
        em.emit(f"{target} = {em.bind(np.zeros, 'f')}({st}, {dt})")
    else:
        em.emit(f"{target} = {em.bind(np.full, 'f')}({st}, {em.bind(v[()], 'k')}, {dt})")


def _emit_generic(em, node):
    fname = em.bind(node.op.make_thunk_function(node), "f")
    args = ", ".join(em.expr(i) for i in node.inputs)
    if len(node.outputs) == 1:
        target = em.local()
        em.names[node.outputs[0]] = target
        em.emit(f"{target} = {fname}({args})")
    else:
        targets = []
        for o in node.outputs:
            t = em.local()
            em.names[o] = t
            targets.append(t)
        em.emit(f"{', '.join(targets)}, = {fname}({args})")


# -- structural key ------------------------------------------------------------------------------

def _structural_key(fgraph, nodes, profile):
    refs: dict = {}
    parts: list = [("profile", bool(profile))]
    for k, i in enumerate(fgraph.inputs):
        refs[i] = ("i", k)
        parts.append(i.type)
    for n, node in enumerate(nodes):
        ins = []
        for i in node.inputs:
            r = refs.get(i)
            if r is None:
                if isinstance(i, Constant):
                    r = ("c", i.signature())
                else:
                    return None
            ins.append(r)
        parts.append((node.op, tuple(ins), tuple(o.type for o in node.outputs)))
        for j, o in enumerate(node.outputs):
            refs[o] = ("n", n, j)
    outs = []
    for o in fgraph.outputs:
        r = refs.get(o)
        if r is None:
            r = ("c", o.signature()) if isinstance(o, Constant) else ("?", id(o))
        outs.append(r)
    parts.append(tuple(outs))
    key = tuple(parts)
    try:
        hash(key)
    except TypeError:
        return None
    return key


# -- compiling ------------------------------------------------------------------------------------

_SPECIAL: dict = {}


def _special_emitters():
    # (an op's module is imported before any node of it exists: only those are looked up,
    # so emitting code imports no op module)
    if len(_SPECIAL) < len(_SPECIAL_BY_NAME):
        for module, name, emit in _SPECIAL_BY_NAME:
            cls = loaded_attr(module, name)
            if cls is not None:
                _SPECIAL[cls] = emit
    return _SPECIAL


_SPECIAL_BY_NAME = (
    ("symgrad.tensor.rewriting.linalg", "_ScaledIdentityDot", _emit_scaled_identity_dot),
    ("symgrad.tensor.shape", "Reshape", _emit_reshape),
    ("symgrad.tensor.shape", "Shape", _emit_shape),
    ("symgrad.tensor.shape", "Alloc", _emit_alloc),
    ("symgrad.tensor.shape", "Join", _emit_join),
    ("symgrad.tensor.subtensor", "Subtensor", _emit_subtensor),
)


def emit_nodes(em, nodes, profile=None, into=None):
    """Emit the code of ``nodes`` (in order) at the emitter's indentation; the names of
    the graph's inputs must already be in ``em.names``.

    ``into``: ``{node: (destination name, before)}``: that node's output is written into
    the named array (see :func:`emit_node_into`), after ``before(em, node)`` ran.
    """
    from symgrad.tensor.elemwise import DimShuffle, Elemwise, SumTo
    from symgrad.tensor.fusion import FusedElemwise
    Dot = loaded_attr("symgrad.tensor.linalg", "Dot")  # (None: no Dot node exists)

    for n, node in enumerate(nodes):
        op = node.op
        kind = type(op)
        if into and node in into:
            dest, before = into[node]
            before(em, node)
            emit_node_into(em, node, dest)
        elif kind is Elemwise and len(node.outputs) == 1 and hasattr(
                node.outputs[0].type, "dtype"):
            _emit_elemwise(em, node)
        elif kind is FusedElemwise:
            _emit_fused(em, node)
        elif kind is DimShuffle:
            _emit_dimshuffle(em, node)
        elif kind is SumTo:
            _emit_sum_to(em, node)
        elif kind is Dot:
            _emit_dot(em, node)
        else:
            special = _special_emitters().get(kind)
            if special is not None:
                special(em, node)
            else:
                _emit_generic(em, node)
        if profile:
            em.emit("_t1 = _pc()")
            em.emit(f"_T[{n}] += _t1 - _t0")
            em.emit("_t0 = _t1")


def output_texts(em, outputs):
    """Source expressions for the graph's outputs (constants as fresh copies)."""
    outs = []
    copy_name = None
    for o in outputs:
        if isinstance(o, Constant):
            if copy_name is None:
                copy_name = em.bind(np.array, "f")
            outs.append(f"{copy_name}({em.constant(o)})")
        else:
            outs.append(em.names[o])
    return outs


def exec_source(source, glb, key=None):
    """``exec`` generated source with globals ``glb`` (reusing the code object compiled
    for an identical ``key`` before); returns ``(namespace, whether it was cached)``."""
    with _CACHE_LOCK:
        code = _CODE_CACHE.get(key) if key is not None else None
        if code is not None:
            _CODE_CACHE.move_to_end(key)
    hit = code is not None
    if code is None:
        filename = f"<symgrad-generated-{next(_counter)}>"
        code = compile(source, filename, "exec")
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        if key is not None:
            with _CACHE_LOCK:
                _CODE_CACHE[key] = code
                if len(_CODE_CACHE) > _CACHE_SIZE:
                    _CODE_CACHE.popitem(last=False)
    exec(code, glb)
    return glb, hit


def compile_fgraph(fgraph, profile=False):
    """A callable computing ``fgraph.outputs`` (a list) from values of ``fgraph.inputs``."""
    nodes = fgraph.toposort()
    if len(nodes) > LOOP_THRESHOLD:
        return _compile_loop(fgraph, nodes, profile)

    em = _Emitter(fgraph, nodes, profile)
    params = []
    for k, i in enumerate(fgraph.inputs):
        name = f"a{k}"
        em.names[i] = name
        params.append(name)
    prof = Profile(nodes) if profile else None
    if profile:
        em.glb["_pc"] = time.perf_counter
        em.glb["_T"] = prof.times
        em.emit("_t0 = _pc()")
        em.emit("_ts = _t0")
    emit_nodes(em, nodes, profile)
    outs = output_texts(em, fgraph.outputs)
    if profile:
        em.glb["_P"] = prof
        em.emit("_P.total += _pc() - _ts")
        em.emit("_P.calls += 1")
    em.emit(f"return [{', '.join(outs)}]")
    em.glb["_diagnose"] = _make_diagnose(fgraph, nodes)
    signature = ", ".join(params)
    source = (f"def _symgrad_fn({signature}):\n    try:\n" + "\n".join(em.lines)
              + f"\n    except Exception as _e:\n        _diagnose(_e, ({signature}"
              + ("," if len(params) == 1 else "") + "))\n        raise\n")
    # (large graphs are rarely compiled twice; their key would cost a tenth of the time)
    key = _structural_key(fgraph, nodes, profile) if len(nodes) <= KEY_NODES else None
    key = None if key is None else (key, source)
    glb, hit = exec_source(source, em.glb, key)
    fn = glb["_symgrad_fn"]
    fn.source = source
    fn.cached = hit
    if profile:
        fn.profile = prof
    return fn


def _compile_loop(fgraph, nodes, profile):
    """The fallback for very large graphs: a loop over prepared thunks."""
    slots: dict = {}
    for k, var in enumerate(fgraph.inputs):
        slots[var] = k
    constants = []
    program = []
    n = len(fgraph.inputs)
    for node in nodes:
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
        program.append((node.op.make_thunk_function(node), in_idx,
                        out_idx[0] if len(out_idx) == 1 else out_idx))
    output_idx = []
    for o in fgraph.outputs:
        if o not in slots:
            slots[o] = n
            constants.append((n, np.array(constant_value(o))))
            n += 1
        output_idx.append(slots[o])
    size = n
    diagnose = _make_diagnose(fgraph, nodes)
    prof = Profile(nodes) if profile else None
    pc = time.perf_counter

    def run(*inputs):
        storage = [None] * size
        storage[: len(inputs)] = inputs
        for k, v in constants:
            storage[k] = v
        try:
            t0 = pc() if prof is not None else 0.0
            start = t0
            for k, (thunk, in_idx, out) in enumerate(program):
                result = thunk(*[storage[j] for j in in_idx])
                if type(out) is int:
                    storage[out] = result
                else:
                    for j, r in zip(out, result):
                        storage[j] = r
                if prof is not None:
                    t1 = pc()
                    prof.times[k] += t1 - t0
                    t0 = t1
            if prof is not None:
                prof.total += pc() - start
                prof.calls += 1
        except Exception as exc:
            diagnose(exc, inputs)
            raise
        return [storage[k] for k in output_idx]

    run.source = None
    run.cached = False
    if profile:
        run.profile = prof
    return run
