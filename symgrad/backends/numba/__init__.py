"""The numba backend (``mode="NUMBA"``): jitted kernels for the loops, numpy for the rest.

The graph runs as the default backend's generated Python (its emitter, reused), except
that each loop node becomes a call of a jitted *kernel* (:class:`Kernel`): a fused
elementwise node over float arrays (one pass computing all its outputs), a scan (the
loop with its step function inside), or a node of a class given numba code with
:func:`register`. Shape ops, indexing, BLAS dot, reductions and single elementwise
functions run as numpy calls. A node numba has no code for runs with the Python
backend's implementation, and compiling warns with :class:`NumbaFallbackWarning`
naming the op.

A kernel's source depends only on its node, never on the rest of the graph, and is
written to ``$SYMGRAD_CACHE_DIR/numba`` (default ``~/.cache/symgrad/numba``) under a name
derived from its text; it is jitted with ``cache=True``. Identical nodes of different
graphs, and of later processes, reuse the compiled kernel.
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


def _code_stamp() -> str:
    """The text of the functions generated code calls (scalar.py): a cached kernel compiled
    against an older version of them is not reused."""
    text = Path(codegen.__file__).with_name("scalar.py").read_bytes()
    return hashlib.sha256(text).hexdigest()[:16]


_STAMP = _code_stamp() + numba.__version__ + sys.version


def _load_module(source: str):
    key = hashlib.sha256((source + _STAMP).encode()).hexdigest()[:24]
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

_BUILTIN: dict = dict(codegen.GENERATORS)

# The op classes whose nodes become numba kernels; every other node runs as numpy code in
# the generated Python glue (numpy's shape ops, indexing, BLAS dot, vectorised reductions
# and single elementwise functions, one pass each, need no compiling). Classes registered
# with :func:`register` after import become kernels too.
_KERNEL_CLASS_NAMES = frozenset({"FusedElemwise", "Scan", "LinearRecurrence"})
# Ops with no numba code whose numpy glue is the fast way anyway (no fallback warning): the
# rewrites' exact row scaling standing for dot(eye(n) * r, W).
_NUMPY_GLUE_CLASS_NAMES = frozenset({"_ScaledIdentityDot"})


def _is_kernel(node) -> bool:
    op = node.op
    cls = type(op)
    if codegen.GENERATORS.get(cls) is not _BUILTIN.get(cls, None):
        return True  # a generator registered by the user
    name = cls.__name__
    if name not in _KERNEL_CLASS_NAMES:
        return False
    if name == "FusedElemwise":
        # loops over float arrays (one pass instead of one per step); integer and 0-d
        # programs (shape arithmetic) are cheaper as numpy calls than as compiled kernels
        return (any(getattr(o.type, "ndim", 0) > 0 and np.dtype(o.type.dtype).kind in "fc"
                    for o in node.outputs)
                and any(getattr(i.type, "ndim", 0) > 0 for i in node.inputs))
    return True


class Kernel:
    """The generated source of one node as a jitted function of its own.

    The source depends only on the node's op, input types and constants (never on where
    the node sits in a graph), so an identical node in another graph, or in another process,
    reuses the compiled kernel (the module is keyed by its source, see :func:`_load_module`).
    """

    def __init__(self, node, one_loop=True, lean_steps=True):
        module = ModuleWriter()
        fw = FunctionWriter(module)
        fw.one_loop = one_loop
        # scan steps without code for inputs that broadcast (a third of a scan's compile
        # time); where one does, the runner makes the kernel again with it
        fw.lean_scans = self.lean_steps = lean_steps
        self.one_loop = one_loop
        fw.pool = True
        # without a broadcasting loop (half the code to compile): the runner passes broadcast
        # views instead; the loop-per-output form of a fused node broadcasts by itself
        fw.caller_broadcasts = one_loop
        self.params = []
        for i in node.inputs:
            if isinstance(i, Constant) or i in fw.names:
                continue
            fw.add_input(i)
            self.params.append(i)
        fw.node(node)  # raises Unsupported
        self.name = fw.function("kernel", node.outputs, root=True)
        self.consts = [np.asarray(c.data) for c in fw.const_params]
        # the outputs (in parameter order) that may be written into a buffer passed in
        self.buf_outputs = list(fw.pool_outputs)
        # a flat kernel: its caller passes every output array (and broadcasts the inputs)
        self.flat = fw.caller_broadcasts and self.buf_outputs == list(node.outputs)
        # for each output, the positions of the parameters it depends on (a fused node whose
        # outputs do not all depend on every input); else None
        self.out_deps = None
        deps = getattr(node.op, "output_dependencies", None)
        if deps is not None and len(node.outputs) > 1:
            position = {v: k for k, v in enumerate(self.params)}
            const_position = {v: k for k, v in enumerate(fw.const_params)}
            out_deps = [(sorted({position[node.inputs[j]] for j in d
                                 if node.inputs[j] in position}),
                         sorted({const_position[node.inputs[j]] for j in d
                                 if node.inputs[j] in const_position})) for d in deps()]
            every = (list(range(len(self.params))), list(range(len(self.consts))))
            if any(d != every for d in out_deps):
                self.out_deps = out_deps
        self.source = module.source()
        self.node = node


def _plan(fgraph):
    """Decide for each node: a numba kernel (a :class:`Kernel`) or Python glue (None)."""
    plan = []
    for node in fgraph.toposort():
        reason = None
        if type(node.op).__name__ == "StencilSum":
            from symgrad.backends.numba.stencil import StencilRunner

            try:
                plan.append((node, StencilRunner(node)))
                continue
            except Unsupported as exc:
                reason = str(exc)
        elif codegen.lookup(node.op) is None:
            if type(node.op).__name__ not in _NUMPY_GLUE_CLASS_NAMES:
                reason = "numba has no implementation of it"
        elif _is_kernel(node):
            try:
                plan.append((node, Kernel(node)))
                continue
            except Unsupported as exc:
                reason = str(exc)
        if reason is not None:
            warnings.warn(f"the numba backend runs {node.op} with the Python backend's "
                          f"implementation ({reason}); it is slower than compiled code",
                          NumbaFallbackWarning, stacklevel=6)
        plan.append((node, None))
    return plan


# -- running -----------------------------------------------------------------------------------------

class NumbaFunction:
    """The executable of a graph compiled by the numba backend: generated Python (the default
    backend's code generator) that calls one jitted kernel per loop node."""

    def __init__(self, fgraph):
        from symgrad.backends import python as pyb

        self.fgraph = fgraph
        plan = _plan(fgraph)
        nodes = [n for n, _ in plan]
        em = pyb._Emitter(fgraph, nodes, None)
        params = []
        for k, i in enumerate(fgraph.inputs):
            em.names[i] = f"a{k}"
            params.append(f"a{k}")
        program = []
        sources = []
        n_fallbacks = 0
        clients = fgraph.clients
        outputs = set(fgraph.outputs)
        owned = set()  # fresh arrays that only their one client reads: updated in place
        returns = []
        kernel_nodes = {node for node, kernel in plan if isinstance(kernel, Kernel)}
        for node, kernel in plan:
            if kernel is not None and not isinstance(kernel, Kernel):  # a StencilRunner
                program.append(kernel)
                sources.append(kernel.source)
                fname = em.bind(kernel, "n")
                target = em.names[node.outputs[0]] = em.local()
                em.emit(f"{target} = {fname}({', '.join(em.expr(i) for i in node.inputs)})")
                out = node.outputs[0]
                if out not in outputs and len(clients.get(out, ())) == 1:
                    owned.add(out)  # a fresh array
                continue
            if kernel is None:
                n_fallbacks += codegen.lookup(node.op) is None or _is_kernel(node)
                fn = _inplace_increment(node, owned)
                if fn is None and not _makes_fresh_array(node):
                    pyb.emit_nodes(em, [node])
                    continue
                # the node's own function (fresh arrays), or its in-place form
                fname = em.bind(fn or node.op.make_thunk_function(node), "f")
                target = em.local()
                em.names[node.outputs[0]] = target
                em.emit(f"{target} = {fname}({', '.join(em.expr(i) for i in node.inputs)})")
                out = node.outputs[0]
                if out not in outputs and len(clients.get(out, ())) == 1:
                    owned.add(out)
                continue
            runner = _KernelRunner(kernel, [o for o in node.outputs
                                            if _poolable(o, clients, kernel_nodes)])
            program.append(runner)
            sources.append(kernel.source)
            fname = em.bind(runner, "n")
            args = ", ".join(em.expr(i) for i in kernel.params)
            targets = []
            for o in node.outputs:
                targets.append(em.local())
                em.names[o] = targets[-1]
            em.emit(f"{', '.join(targets)}, = {fname}({args})")
            if runner.pooled:
                returns.append(f"{fname}.give({', '.join(em.names[o] for o in runner.pooled)})")
            if type(node.op).__name__ in ("Elemwise", "FusedElemwise"):  # fresh arrays
                owned.update(o for o in node.outputs
                             if o not in outputs and len(clients.get(o, ())) == 1)
        for line in returns:  # intermediate buffers, for the next call
            em.emit(line)
        outs = pyb.output_texts(em, fgraph.outputs)
        em.emit(f"return [{', '.join(outs)}]")
        em.glb["_diagnose"] = pyb._make_diagnose(fgraph, nodes)
        signature = ", ".join(params)
        glue = (f"def _symgrad_numba_fn({signature}):\n    try:\n" + "\n".join(em.lines)
                + f"\n    except Exception as _e:\n        _diagnose(_e, ({signature}"
                + ("," if len(params) == 1 else "") + "))\n        raise\n")
        glb, _ = pyb.exec_source(glue, em.glb)
        self.glue_source = glue
        self.source = "\n\n".join(sources)
        self._fn = glb["_symgrad_numba_fn"]
        self.program = program
        self.n_fallbacks = n_fallbacks
        self.profile = None

    def __call__(self, *inputs):
        return self._fn(*inputs)


# Ops that read an array's values without keeping it or a view of it (with the positions of
# those inputs; None: every input)
_CONSUMERS = {"Elemwise": None, "FusedElemwise": None, "Sum": None, "Prod": None, "Max": None,
              "Min": None, "Dot": None, "MatMul": None, "TensorDot": None, "LogSumExp": None,
              "IncSubtensor": (1,), "Scan": None}


def _poolable(var, clients, kernel_nodes) -> bool:
    """Whether ``var``'s array is dead once the function returns: no output, and read only by
    ops that keep neither it nor a view of it (its buffer then serves the next call)."""
    users = clients.get(var, ())
    if not users or getattr(var.type, "ndim", 0) == 0:
        return False
    for node, k in users:
        if not hasattr(node, "op"):
            return False  # a graph output
        name = type(node.op).__name__
        if name in ("Elemwise", "FusedElemwise") and node not in kernel_nodes:
            return False  # the Python backend's code may write its result into a dead input
        allowed = _CONSUMERS.get(name, ())
        if allowed is not None and k not in allowed:
            return False
    return True


# An elementwise kernel is compiled when it first meets an array of KERNEL_MIN_SIZE elements,
# or on its KERNEL_MIN_CALLS-th call: before, numpy runs the node (compiling a kernel costs
# a fifth of a second; numpy on a few thousand elements, microseconds).
KERNEL_MIN_SIZE = 4096
KERNEL_MIN_CALLS = 64
# A program of SMALL_PROGRAM_OPS operations or fewer (numpy: as many passes) gains little from
# one fused pass: its kernel waits for arrays SMALL_PROGRAM_FACTOR times larger (numpy's
# temporaries out of cache) or for the KERNEL_MIN_CALLS-th call
SMALL_PROGRAM_OPS = 2
SMALL_PROGRAM_FACTOR = 64


class _KernelRunner:
    """Calls a kernel's jitted function: 0-d inputs and results as 0-d arrays (of the
    result's dtype); a kernel numba fails to compile runs the node's Python implementation
    instead (with a warning). A flat kernel gets its output arrays from here, and its
    inputs broadcast (numpy views) once one has broadcast.

    The arrays of ``pooled`` outputs (intermediates nothing keeps) come back through
    :meth:`give` at the end of a call and are written into by the next call: a large new
    array costs page faults on every call, more than the loop itself.
    """

    def __init__(self, kernel, pooled=()):
        self.kernel = kernel
        self.node = kernel.node
        self.pooled = [o for o in kernel.buf_outputs if o in set(pooled)]
        self.module = self._fn = None  # loaded when first needed (see fn)
        self.consts = kernel.consts
        self.scalar_in = [k for k, v in enumerate(kernel.params) if _is_scalar(v)]
        self.scalar_out = [(k, np.dtype(o.type.dtype)) for k, o in enumerate(self.node.outputs)
                           if _is_scalar(o)]
        self.ndim = max((getattr(o.type, "ndim", 0) for o in self.node.outputs), default=0)
        self.broadcasting = False  # whether to pass inputs broadcast (see _broadcast)
        self.compiled = False
        self.calls = 0  # calls run by numpy (small arrays) before the kernel was compiled
        program = getattr(self.node.op, "program", None)
        self.small = program is not None and len(program.steps) <= SMALL_PROGRAM_OPS
        self._numpy = None
        self._setup()

    def _setup(self):
        kernel = self.kernel
        outs = kernel.buf_outputs
        self.flat = kernel.flat
        self.empty = [np.empty((0,) * o.type.ndim, dtype=o.type.dtype) for o in outs]
        self.out_dtypes = [np.dtype(o.type.dtype) for o in outs]
        self.slots = [[] for _ in outs]
        pos = {o: k for k, o in enumerate(outs)}
        self.give_slots = [pos[o] for o in self.pooled if o in pos]
        # a flat kernel's output shape: for each axis, the parameter whose length it is
        # (the first whose static length is not 1), or the length itself
        every = (range(len(kernel.params)), range(len(self.consts)))
        self.axis_refs = self._axis_refs(*every) if self.flat else []
        # the outputs of a fused node that depend on some of its inputs only: their own
        # shapes, checked against the loop's (where one differs, a loop per output)
        self.out_axis_refs = [self._axis_refs(*deps) for deps in kernel.out_deps or ()
                              ] if self.flat else []

    def _axis_refs(self, params, consts):
        """For each axis of the output: ("p", k) where its length is parameter k's (the first
        whose static length is not 1), else ("n", the length)."""
        nd, refs = self.ndim, []
        types = [self.kernel.params[k].type for k in params]
        for j in range(nd):
            ref = next((("p", k) for k, t in zip(params, types)
                        if t.ndim == nd and t.shape[j] != 1), None)
            if ref is None:
                ref = ("n", next((self.consts[k].shape[j] for k in consts
                                  if self.consts[k].ndim == nd and self.consts[k].shape[j] != 1),
                                 1))
            refs.append(ref)
        return refs

    def give(self, *arrays):
        """Keep these output arrays (the call is over) for the next call to write into
        (arrays of their own: numpy's implementation might have returned a view)."""
        for k, a in zip(self.give_slots, arrays):
            slot = self.slots[k]
            if not slot and a.flags.owndata and a.flags.writeable:
                slot.append(a)

    def _buffers(self, shape=None):
        """The output arrays to pass: a flat kernel's outputs of ``shape`` (an array of an
        earlier call where one came back), else the buffers a kernel may write into."""
        out = list(self.empty)
        for k in self.give_slots:
            try:
                out[k] = self.slots[k].pop()  # (atomic: two threads never share a buffer)
            except IndexError:
                pass
        if shape is not None:
            for k, a in enumerate(out):
                if a.shape != shape:
                    out[k] = np.empty(shape, dtype=self.out_dtypes[k])
        return out

    def __call__(self, *args):
        if self.scalar_in:
            args = list(args)
            for k in self.scalar_in:
                if not isinstance(args[k], np.ndarray):
                    args[k] = np.asarray(args[k])
        if not self.compiled and self.flat and self.calls < KERNEL_MIN_CALLS:
            # small arrays: numpy until the kernel pays for its compiling (tiered)
            if max((a.size for a in args if isinstance(a, np.ndarray)), default=0) < (
                    KERNEL_MIN_SIZE * (SMALL_PROGRAM_FACTOR if self.small else 1)):
                self.calls += 1
                if self._numpy is None:
                    self._numpy = self._python_node()
                return self._numpy(*args)
        shape = None
        if self.broadcasting:
            broadcast = self._broadcast(args)
            if broadcast is None:  # outputs of different shapes
                self._split()
                return self(*args)
            args, shape = broadcast
        elif self.flat:
            shape = tuple(args[r[1]].shape[j] if r[0] == "p" else r[1]
                          for j, r in enumerate(self.axis_refs))
            for refs in self.out_axis_refs:
                if tuple(args[r[1]].shape[j] if r[0] == "p" else r[1]
                         for j, r in enumerate(refs)) != shape:
                    self._split()  # outputs of different shapes
                    return self(*args)
        try:
            if self.compiled:
                results = self._fn(*args, *self._buffers(shape), *self.consts)
            else:
                results = self._first_call(args, shape)
        except ValueError as exc:
            message = str(exc)
            if message == codegen.SHAPES_DIFFER:
                self._split()
            elif message == codegen.STEP_BROADCASTS and self.kernel.lean_steps:
                self._remake(one_loop=self.kernel.one_loop, lean_steps=False)
            elif message in (codegen.INPUTS_BROADCAST, codegen.OTHER_SHAPE) and (
                    not self.broadcasting):
                self.broadcasting = True  # from now on, broadcast views of the inputs
            else:
                raise
            return self(*args)
        if not isinstance(results, tuple):
            results = (results,)
        if self.scalar_out:
            results = list(results)
            for k, dtype in self.scalar_out:
                results[k] = np.asarray(results[k], dtype=dtype)
        return results

    def _broadcast(self, args):
        """The array inputs as views of the broadcast shape (the kernel has no broadcasting
        loop; numba compiles it once more for such strided views), and that shape; None
        where the outputs of a fused node have different shapes."""
        nd = self.ndim
        shapes = [a.shape for a in args if isinstance(a, np.ndarray) and a.ndim == nd]
        shape = np.broadcast_shapes(*shapes, *(c.shape for c in self.consts if c.ndim == nd))
        for deps, const_deps in self.kernel.out_deps or ():
            own = [args[k].shape for k in deps if isinstance(args[k], np.ndarray)
                   and args[k].ndim == nd]
            own += [self.consts[k].shape for k in const_deps if self.consts[k].ndim == nd]
            if np.broadcast_shapes(*own) != shape:
                return None
        return [np.broadcast_to(a, shape) if isinstance(a, np.ndarray) and a.ndim == nd
                and a.shape != shape else a for a in args], (shape if self.flat else None)

    @property
    def fn(self):
        """The kernel's jitted function (its module is written to the disk cache and imported
        on first use: a kernel that numpy runs never is)."""
        if self._fn is None:
            self.module = _load_module(self.kernel.source)
            self._fn = getattr(self.module, self.kernel.name)
        return self._fn

    def _first_call(self, args, shape):
        """A call that may compile: numba's own warnings are silenced, and a failure to
        compile falls back to the Python backend for this node (with a warning)."""
        from numba.core.errors import NumbaError

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=numba.NumbaWarning)
            try:
                results = self.fn(*args, *self._buffers(shape), *self.consts)
            except (NumbaError, RecursionError) as exc:
                warnings.warn(f"numba could not compile {self.node.op}: "
                              f"{str(exc).splitlines()[0]}; running it with the Python backend",
                              NumbaFallbackWarning, stacklevel=4)
                self._fn = self._python_node()
                self.consts = []
                self.compiled = True
                return self._fn(*args)
        self.compiled = True
        return results

    def _split(self):
        """Switch to the kernel computing each output in a loop of its own (the outputs of a
        fused node have different shapes)."""
        self._remake(one_loop=False, lean_steps=self.kernel.lean_steps)

    def _remake(self, one_loop, lean_steps):
        """Switch to another form of the kernel (see Kernel's arguments)."""
        kernel = Kernel(self.node, one_loop=one_loop, lean_steps=lean_steps)
        self.kernel, self.module, self._fn = kernel, None, None
        self.consts = kernel.consts
        self.compiled = False
        self.broadcasting = False  # (that form has broadcasting loops)
        self._setup()

    def _python_node(self):
        from symgrad.backends.python import constant_value

        node = self.node
        thunk = node.op.make_thunk_function(node)
        params = self.kernel.params
        single = len(node.outputs) == 1

        def run(*args):  # (the buffers passed last are not used)
            env = dict(zip(params, args))
            result = thunk(*[env[i] if i in env else constant_value(i) for i in node.inputs])
            return (result,) if single else tuple(result)
        return run


def _makes_fresh_array(node) -> bool:
    """A node whose own function returns a new array (a fill; an increment copies its input)."""
    name = type(node.op).__name__
    if name == "Elemwise":
        return node.op.scalar_op.name == "second" and node.outputs[0].type.ndim > 0
    return name == "IncSubtensor"


def _inplace_increment(node, owned):
    """The in-place form's function of an increment (or set) into an array that nothing else
    reads, or None."""
    op = node.op
    if (type(op).__name__ != "IncSubtensor" or node.inputs[0] not in owned
            or "inplace" not in getattr(op, "__props__", ()) or op.inplace):
        return None
    props = {p: getattr(op, p) for p in op.__props__}
    props["inplace"] = True
    return type(op)(**props).make_thunk_function(node)


def _is_scalar(var) -> bool:
    return getattr(var.type, "ndim", None) == 0


def compile_fgraph(fgraph, profile=False):
    """Compile ``fgraph`` into generated numba code; returns a :class:`NumbaFunction`."""
    if profile:
        warnings.warn("the numba backend does not profile per op", stacklevel=3)
    return NumbaFunction(fgraph)
