"""The numba backend: the rewritten graph as generated, jitted Python (``mode="NUMBA"``).

Every elementwise node (a single Elemwise or a FusedElemwise from the fusion rewrite)
becomes one explicit loop over the broadcast shape; reductions, cumulative ops,
sorting, SumTo and scan loops are generated loops too; shape ops, indexing and dot
call numpy inside nopython code. Consecutive compilable nodes form one ``@njit``
function (a *segment*). A node numba cannot run (see :data:`codegen.GENERATORS`)
runs with the Python backend's implementation between segments, and compiling
warns with :class:`NumbaFallbackWarning` naming the op.

The generated source is written to ``$SYMGRAD_CACHE_DIR/numba`` (default
``~/.cache/symgrad/numba``) under a name derived from its text (so from the graph's
structure and dtypes), and its functions are jitted with ``cache=True``: a second
process compiling the same graph loads the machine code from disk.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

try:
    import numba
except ImportError as _exc:  # pragma: no cover - exercised only without numba
    raise ImportError("mode='NUMBA' needs numba: pip install numba (or symgrad[numba])") from _exc

from symgrad.backends.numba import codegen
from symgrad.backends.numba.codegen import FunctionWriter, ModuleWriter, Unsupported, register
from symgrad.graph.basic import Constant

__all__ = ["compile_fgraph", "register", "NumbaFallbackWarning", "cache_dir", "NumbaFunction"]

codegen.register_builtin()


class NumbaFallbackWarning(UserWarning):
    """A node runs with the Python backend's implementation (numba cannot compile it)."""


def cache_dir() -> Path:
    """Where generated modules and numba's cache live."""
    base = os.environ.get("SYMGRAD_CACHE_DIR")
    if base:
        return Path(base) / "numba"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg or Path.home() / ".cache") / "symgrad" / "numba"


_MODULES: dict[str, object] = {}


def _load_module(source: str):
    key = hashlib.sha256((source + numba.__version__ + sys.version).encode()).hexdigest()[:24]
    module = _MODULES.get(key)
    if module is not None:
        return module
    name = f"symgrad_numba_{key}"
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.py"
        if not path.exists() or path.read_text() != source:
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                fh.write(source)
            os.replace(tmp, path)
    except OSError:  # read-only home: compile in a temporary directory (no disk cache)
        directory = Path(tempfile.mkdtemp(prefix="symgrad_numba_"))
        path = directory / f"{name}.py"
        path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _MODULES[key] = module
    return module


# -- planning ----------------------------------------------------------------------------------------

class _Segment:
    def __init__(self, module_writer):
        self.fw = FunctionWriter(module_writer)
        self.fw.auto_inputs = []
        self.nodes = []
        self.name = None
        self.outputs = []
        self.size = 0   # lines of source once helpers are inlined

    @property
    def inputs(self):
        return self.fw.auto_inputs


# The most source lines (helpers inlined) one jitted function gets: numba compiles a large
# function more slowly than several small ones (and very large ones overflow its recursion).
SEGMENT_LINES = 300


def _plan(fgraph):
    """Split the graph into numba segments and fallback nodes."""
    module = ModuleWriter()
    steps = []
    current = None
    for node in fgraph.toposort():
        reason = None
        if codegen.lookup(node.op) is None:
            reason = "numba has no implementation of it"
        else:
            if current is None:
                seg = _Segment(module)
                seg.fw.clients = fgraph.clients
                seg.fw.graph_outputs = frozenset(fgraph.outputs)
            else:
                seg = current
            before = len(seg.fw.lines)
            try:
                seg.fw.node(node)
            except Unsupported as exc:
                reason = str(exc)
            else:
                seg.nodes.append(node)
                seg.size += len(module.inline(seg.fw.lines[before:]))
                if current is None:
                    current = seg
                    steps.append(seg)
                if seg.size > SEGMENT_LINES:
                    current = None  # numba's compile time grows faster than the function
                continue
        warnings.warn(f"the numba backend runs {node.op} with the Python backend's "
                      f"implementation ({reason}); it is slower and splits the compiled code",
                      NumbaFallbackWarning, stacklevel=6)
        steps.append(node)
        current = None
    # what each segment must return: values used after it, and graph outputs
    needed_later: dict = {}
    for k, step in enumerate(steps):
        used = step.inputs if isinstance(step, _Segment) else step.inputs
        for v in used:
            needed_later.setdefault(v, set()).add(k)
    outputs = set(fgraph.outputs)
    for k, step in enumerate(steps):
        if not isinstance(step, _Segment):
            continue
        produced = [o for n in step.nodes for o in n.outputs]
        step.outputs = [o for o in produced
                        if o in outputs or any(j > k for j in needed_later.get(o, ()))]
        step.name = step.fw.function("segment", step.outputs, root=True)
    return module, steps


# -- running -----------------------------------------------------------------------------------------

def _is_scalar(var) -> bool:
    return getattr(var.type, "ndim", None) == 0


class NumbaFunction:
    """The executable of a graph compiled by the numba backend."""

    def __init__(self, fgraph):
        self.fgraph = fgraph
        module_writer, steps = _plan(fgraph)
        self.source = module_writer.source()
        self.module = _load_module(self.source) if any(
            isinstance(s, _Segment) for s in steps) else None
        slots = {v: k for k, v in enumerate(fgraph.inputs)}
        n = len(slots)
        constants = []

        def slot(v):
            nonlocal n
            if v not in slots:
                slots[v] = n
                if isinstance(v, Constant):
                    constants.append((n, v.data))
                n += 1
            return slots[v]

        program = []
        for step in steps:
            if isinstance(step, _Segment):
                fn = getattr(self.module, step.name)
                in_slots = [slot(v) for v in step.inputs]
                scalar_in = [k for k, v in enumerate(step.inputs) if _is_scalar(v)]
                consts = [np.asarray(c.data) for c in step.fw.const_params]
                out_slots = [slot(v) for v in step.outputs]
                scalar_out = [(k, np.dtype(v.type.dtype)) for k, v in enumerate(step.outputs)
                              if _is_scalar(v)]
                program.append(_SegmentRunner(self, step, fn, in_slots, scalar_in, consts,
                                              out_slots, scalar_out))
            else:
                in_slots = [slot(v) for v in step.inputs]
                out_slots = [slot(v) for v in step.outputs]
                program.append(_NodeRunner(step, in_slots, out_slots))
        self.out_slots = [slot(v) for v in fgraph.outputs]
        self.size = n
        self.constants = constants
        self.program = program
        self.n_fallbacks = sum(not isinstance(s, _Segment) for s in steps)
        self.profile = None

    def __call__(self, *inputs):
        storage = [None] * self.size
        storage[:len(inputs)] = inputs
        for k, v in self.constants:
            storage[k] = v
        for step in self.program:
            step(storage)
        return [storage[k] for k in self.out_slots]


class _NodeRunner:
    def __init__(self, node, in_slots, out_slots):
        self.node = node
        self.thunk = node.op.make_thunk_function(node)
        self.in_slots = in_slots
        self.out_slots = out_slots

    def __call__(self, storage):
        args = [storage[k] for k in self.in_slots]
        try:
            result = self.thunk(*args)
        except Exception as exc:
            from symgrad.backends.python import OpRuntimeError, describe_failure

            raise OpRuntimeError(describe_failure(self.node, args, exc)) from exc
        if len(self.out_slots) == 1:
            storage[self.out_slots[0]] = result
        else:
            for k, r in zip(self.out_slots, result):
                storage[k] = r


class _SegmentRunner:
    def __init__(self, owner, segment, fn, in_slots, scalar_in, consts, out_slots, scalar_out):
        self.owner = owner
        self.segment = segment
        self.fn = fn
        self.in_slots = in_slots
        self.scalar_in = scalar_in
        self.consts = consts
        self.out_slots = out_slots
        self.scalar_out = scalar_out
        self.compiled_signatures = 0

    def __call__(self, storage):
        args = [storage[k] for k in self.in_slots]
        for k in self.scalar_in:
            if not isinstance(args[k], np.ndarray):
                args[k] = np.asarray(args[k])
        args += self.consts
        fn = self.fn
        if len(fn.signatures) == self.compiled_signatures:
            results = self._first_call(args)
        else:
            results = fn(*args)
        if self.scalar_out:
            results = list(results)
            for k, dtype in self.scalar_out:
                results[k] = np.asarray(results[k], dtype=dtype)
        for k, r in zip(self.out_slots, results):
            storage[k] = r

    def _first_call(self, args):
        """A call that may compile: numba's own warnings are silenced, and a failure to
        compile falls back to the Python backend for this segment (with a warning)."""
        from numba.core.errors import NumbaError

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=numba.NumbaWarning)
            try:
                results = self.fn(*args)
            except (NumbaError, RecursionError) as exc:
                ops = sorted({str(n.op) for n in self.segment.nodes})[:5]
                warnings.warn(f"numba could not compile a segment of {len(self.segment.nodes)} "
                              f"nodes ({', '.join(ops)}, ...): {str(exc).splitlines()[0]}; "
                              "running it with the Python backend", NumbaFallbackWarning,
                              stacklevel=4)
                self.fn = self._python_segment()
                self.compiled_signatures = -1
                return self.fn(*args)
        self.compiled_signatures = len(self.fn.signatures)
        return results

    def _python_segment(self):
        seg = self.segment
        program = [(n, n.op.make_thunk_function(n)) for n in seg.nodes]
        inputs, outputs = list(seg.inputs), list(seg.outputs)

        class _Interpreted:
            signatures = ()

            def __call__(self, *args):
                env = dict(zip(inputs, args))
                for node, thunk in program:
                    values = [env[i] if i in env else i.data for i in node.inputs]
                    result = thunk(*values)
                    if len(node.outputs) == 1:
                        env[node.outputs[0]] = result
                    else:
                        env.update(zip(node.outputs, result))
                return [env[o] if o in env else o.data for o in outputs]
        return _Interpreted()


def compile_fgraph(fgraph, profile=False):
    """Compile ``fgraph`` into generated numba code; returns a :class:`NumbaFunction`."""
    if profile:
        warnings.warn("the numba backend does not profile per op", stacklevel=3)
    return NumbaFunction(fgraph)
