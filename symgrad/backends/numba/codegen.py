"""Source generation for the numba backend.

A graph becomes Python source: one ``@njit(cache=True)`` function per segment of
numba-compilable nodes, plus helper functions (one explicit loop per elementwise node
or fused elementwise node, reductions, scan loops and their step functions). Each op
class maps to a generator in :data:`GENERATORS` (:func:`register`); a generator
returns source lines, or raises :class:`Unsupported` (the node then runs with the
Python backend's implementation, with a warning).

Values of 0-d tensors are numba scalars inside the generated code; other tensors are
arrays.
"""

from __future__ import annotations

import ast
import importlib
import keyword
import math
import re

import numpy as np

from symgrad.backends.numba.scalar import NoTemplate, cast_expression, literal, scalar_expression
from symgrad.graph.basic import Constant

__all__ = ["register", "Unsupported", "GENERATORS", "FunctionWriter", "ModuleWriter"]

GENERATORS: dict[type, object] = {}


class Unsupported(Exception):
    """This node has no numba code (the message says why)."""


def register(*op_classes):
    """Register ``gen(op, node, w: NodeWriter) -> list of source lines`` for these classes."""
    def deco(fn):
        for cls in op_classes:
            GENERATORS[cls] = fn
        return fn
    return deco


def lookup(op):
    for cls in type(op).__mro__:
        if cls in GENERATORS:
            return GENERATORS[cls]
    return None


def _dt(var) -> np.dtype:
    return np.dtype(var.type.dtype)


def _ndim(var) -> int:
    return var.type.ndim


def _np_dtype(dtype) -> str:
    return f"np.{np.dtype(dtype).name}"


def _tuple(items) -> str:
    items = list(items)
    if len(items) == 1:
        return f"({items[0]},)"
    return "(" + ", ".join(items) + ")"


# -- writers -------------------------------------------------------------------------------------

_KEEP = frozenset(keyword.kwlist) | {
    "range", "min", "max", "abs", "len", "bool", "int", "float", "complex", "ValueError",
    "IndexError", "np", "math", "njit", "_jit", "sg_sigmoid", "sg_sigmoid32", "sg_digamma",
    "sg_erfinv", "sg_erfcinv", "sg_tanh", "sg_exp"}
_IDENT = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
_TOKEN = re.compile(r"(?<![\w.])[A-Za-z_]\w*|[()\[\]]")
_CALL = re.compile(r"^(\s*)(.+?) = (\w+)\((.*)\)$")
_KWARG = re.compile(r"\s*=(?!=)")
_NAME = re.compile(r"^[A-Za-z_]\w*$")
# the targets of an assignment (plain or augmented) or of a for loop
_ASSIGN = re.compile(
    r"^\s*(?:for\s+(.+?)\s+in\b|([^'=!<>]+?)\s*(?:[-+*/%&|^@]|//|\*\*|<<|>>)?=(?!=))")


_MARK = "\x01"  # stands for an inlining prefix (never in generated code)
_MARKED = re.compile(_MARK + r"(\w+)")


def _call_args(text: str, line: str) -> list[str]:
    """The arguments of a call, ``text`` being what its parentheses hold: split at the
    commas outside brackets (through ``ast`` where a string literal might hold one)."""
    if "'" in text or '"' in text:
        return [ast.unparse(a) for a in ast.parse(line.strip()).body[0].value.args]
    args, depth, start = [], 0, 0
    for k, c in enumerate(text):
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[start:k].strip())
            start = k + 1
    last = text[start:].strip()
    if last:
        args.append(last)
    return args


def _rename_line(line: str, prefix: str, keep=frozenset()) -> str:
    """Prefix every local name of ``line`` (not attributes, keyword arguments, globals, or
    text inside '...' strings)."""
    parts = line.split("'")
    depth = 0
    for k in range(0, len(parts), 2):
        text = parts[k]
        out, pos = [], 0
        for m in _TOKEN.finditer(text):
            name = m.group(0)
            if name in "([":
                depth += 1
                continue
            if name in ")]":
                depth -= 1
                continue
            if name in _KEEP or name in keep or (
                    depth > 0 and _KWARG.match(text, m.end()) is not None):
                continue
            out.append(text[pos:m.start()])
            out.append(prefix)
            pos = m.start()
        out.append(text[pos:])
        parts[k] = "".join(out)
    return "'".join(parts)


class ModuleWriter:
    """The generated module: helper bodies are inlined textually into the jitted *root*
    functions (one numba compilation per root: separate jitted helpers would each cost a
    compilation and then be optimized again inside their callers)."""

    def __init__(self):
        self.chunks: list[str] = []
        self.bodies: dict[str, tuple] = {}
        self._by_text: dict[str, str] = {}
        self._n = 0
        self._inlined = 0
        self._renamed: dict[str, tuple] = {}
        self._assigned_cache: dict[str, frozenset] = {}

    def helper(self, prefix: str, params: list[str], body: list[str]) -> str:
        """Record a helper ``def NAME(params): body`` (its last line returns); returns NAME."""
        key = prefix + "|" + ",".join(params) + "\n" + "\n".join(body)
        name = self._by_text.get(key)
        if name is not None:
            return name
        name = f"{prefix}_{self._n}"
        self._n += 1
        self._by_text[key] = name
        self.bodies[name] = (list(params), list(body))
        return name

    def root(self, prefix: str, params: list[str], body: list[str]) -> str:
        """Emit a jitted function with every helper call in ``body`` inlined; returns its name."""
        name = f"{prefix}_{self._n}"
        self._n += 1
        text = ["@_jit", f"def {name}({', '.join(params)}):"]
        text += ["    " + line for line in self.inline(body)] or ["    pass"]
        self.chunks.append("\n".join(text))
        return name

    def inline(self, lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            m = _CALL.match(line)
            if m is None or m.group(3) not in self.bodies:
                out.append(line)
                continue
            indent, targets, name = m.group(1), m.group(2), m.group(3)
            args = _call_args(m.group(4), line)
            params, body = self.bodies[name]
            self._inlined += 1
            prefix = f"_{self._inlined}_"
            renamed = self._renamed.get(name)
            if renamed is None:  # the body's names prefixed once, with a placeholder
                last = body[-1]
                if not last.startswith("return "):
                    raise AssertionError(f"helper {name} does not end with a return: {last!r}")
                renamed = self._renamed[name] = (
                    [_rename_line(b, _MARK, self.bodies) for b in body[:-1]],
                    _rename_line(last[len("return "):], _MARK, self.bodies))
            # a parameter the body never assigns, passed a plain name, is that name (an
            # alias less: numba lowers each array assignment with reference counting)
            expanded, alias = [], {}
            assigned = self._assigned(name)
            for p, a in zip(params, args):
                if _NAME.match(a) and p not in assigned:
                    alias[p] = a
                else:
                    expanded.append(f"{prefix}{p} = {a}")
            lines_in = renamed[0] + [f"{targets} = {renamed[1]}"]
            if alias:
                def local(m, alias=alias, prefix=prefix):
                    return alias.get(m.group(1)) or prefix + m.group(1)
                expanded += [_MARKED.sub(local, b) for b in lines_in]
            else:
                expanded += [b.replace(_MARK, prefix) for b in lines_in]
            out += [indent + e for e in self.inline(expanded)]
        return out

    def _assigned(self, name: str) -> frozenset:
        """The parameters of helper ``name`` its body assigns (or loops over)."""
        found = self._assigned_cache.get(name)
        if found is None:
            params, body = self.bodies[name]
            names = set()
            for line in body:
                m = _ASSIGN.match(line)
                if m is not None:  # (a subscript target rebinds no name)
                    targets = (m.group(1) or m.group(2)).replace("(", " ").replace(")", " ")
                    names.update(t.strip() for t in targets.split(","))
            found = self._assigned_cache[name] = frozenset(names) & frozenset(params)
        return found

    def source(self) -> str:
        header = ("import math\nimport numpy as np\nfrom numba import njit\n"
                  "from symgrad.backends.numba.scalar import sg_sigmoid, sg_sigmoid32, "
                  "sg_digamma, sg_erfinv, sg_erfcinv, sg_tanh, sg_exp\n\n"
                  "_jit = njit(cache=True, error_model='numpy', nogil=True)\n\n")
        return header + "\n\n".join(self.chunks) + "\n"


class FunctionWriter:
    """Source of one function computing ``outputs`` from ``inputs`` (no fallbacks)."""

    def __init__(self, module: ModuleWriter, parent=None):
        self.module = module
        self.names: dict = {}
        self.params: list[str] = []
        self.lines: list[str] = []
        self.const_params: list = []      # array constants passed in as parameters (last)
        self.const_names: list[str] = []
        self._n = 0
        self.parent = parent
        self.auto_inputs: list | None = None
        # outputs an elementwise kernel may write into a given array (a scan state's row)
        self.destinations: dict = {}
        self.written_in_place: set = set()
        # the graph's clients (None: unknown, never update in place) and outputs
        self.clients = None
        self.graph_outputs = frozenset()
        self.consumed: set = set()   # arrays already given away to be overwritten
        # elementwise outputs that may be written into a buffer the caller passes in
        self.pool = False
        self.pool_outputs: list = []
        self.one_loop = False  # several outputs of a fused node in one loop (where it can)
        # elementwise loops without a broadcasting variant (the caller broadcasts the inputs)
        self.caller_broadcasts = False
        # elementwise loops of this scan step without a broadcasting variant: inputs of
        # different shapes raise ValueError(STEP_BROADCASTS); lean_scans: the steps of the
        # scans written here are lean (see Kernel)
        self.lean_steps = False
        self.lean_scans = False

    def fresh(self, prefix="t") -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def add_input(self, var) -> str:
        name = self.fresh("a")
        self.params.append(name)
        if _ndim(var) == 0:
            v = self.fresh("v")
            self.lines.append(f"{v} = {name}[()]")
            self.names[var] = v
        else:
            self.names[var] = name
        return name

    def ref(self, var) -> str:
        """The expression for ``var`` (a literal for a 0-d constant); with ``auto_inputs``, a
        variable computed elsewhere becomes a new parameter."""
        name = self.names.get(var)
        if name is not None:
            return name
        if self.auto_inputs is not None and not isinstance(var, Constant):
            self.auto_inputs.append(var)
            self.add_input(var)
            return self.names[var]
        if isinstance(var, Constant):
            data = np.asarray(var.data)
            if data.ndim == 0:
                return literal(data.item(), data.dtype)
            name = self.fresh("c")
            self.const_names.append(name)
            self.const_params.append(var)
            self.names[var] = name
            return name
        raise KeyError(var)

    def node(self, node) -> None:
        gen = lookup(node.op)
        if gen is None:
            raise Unsupported(f"no numba code for {node.op}")
        w = NodeWriter(self, node)
        lines = gen(node.op, node, w)
        self.lines.extend(lines)
        for o, name in zip(node.outputs, w.out_names):
            self.names[o] = name

    def function(self, prefix, outputs, root=False) -> str:
        """Add the function to the module (a jitted root, or a helper to inline); returns its
        name."""
        outs = []
        for o in outputs:
            outs.append(self.ref(o))
        body = list(self.lines) + [f"return {_tuple(outs) if outs else '()'}"]
        add = self.module.root if root else self.module.helper
        return add(prefix, self.params + self.const_names, body)


class NodeWriter:
    """What a generator sees: input expressions, output names, helpers."""

    def __init__(self, fw: FunctionWriter, node):
        self.fw = fw
        self.node = node
        self.inputs = [fw.ref(i) for i in node.inputs]
        self.out_names = [fw.fresh("v") for _ in node.outputs]

    @property
    def module(self):
        return self.fw.module

    def fresh(self, prefix="t"):
        return self.fw.fresh(prefix)

    def out(self, k=0) -> str:
        return self.out_names[k]


# -- elementwise ------------------------------------------------------------------------------------

def assign_helper(module, ndim, src_ndim, op="="):
    """A helper ``assign(dst, src)``: ``dst[...] op src`` with src (``src_ndim`` dims, 0 for a
    scalar) broadcast against the ``ndim``-d dst, as explicit loops; returns dst."""
    off = ndim - src_ndim
    lines = []
    for j in range(src_ndim):
        lines += [f"m{j} = 1 if src.shape[{j}] != 1 else 0",
                  f"if m{j} and src.shape[{j}] != dst.shape[{j + off}]:",
                  "    raise ValueError('could not broadcast the value to the shape of the "
                  "target')"]
    indent = ""
    for j in range(ndim):
        lines.append(f"{indent}for i{j} in range(dst.shape[{j}]):")
        indent += "    "
    didx = ", ".join(f"i{j}" for j in range(ndim))
    sidx = ", ".join(f"i{j + off} * m{j}" for j in range(src_ndim))
    src = f"src[{sidx}]" if src_ndim else "src"
    if ndim == 0:
        raise ValueError("assign_helper needs an array target")
    lines.append(f"{indent}dst[{didx}] {op} {src}")
    lines.append("return dst")
    return module.helper(f"assign{ndim}_{src_ndim}", ["dst", "src"], lines)


def assign(w, dst, dst_ndim, src, src_ndim, op="="):
    """Source lines for ``dst[...] op src`` (broadcast), dst an array expression."""
    if dst_ndim == 0:
        raise Unsupported("assigning into a 0-d view")
    name = assign_helper(w.module, dst_ndim, src_ndim, op)
    return [f"{w.fresh('_')} = {name}({dst}, {src})"]


def full(w, out, shape_exprs, value, value_ndim, dtype):
    """Lines making ``out``: an array of ``shape_exprs`` filled with ``value`` (broadcast)."""
    return [f"{out} = np.empty({_tuple(shape_exprs)}, dtype={_np_dtype(dtype)})"] + assign(
        w, out, len(shape_exprs), value, value_ndim)


def _weak_literal(var, others_dtypes):
    value = var.data.reshape(()).item()
    if others_dtypes:
        dtype = np.result_type(*others_dtypes, value)
    else:
        dtype = var.data.dtype
    return literal(value, dtype), np.dtype(dtype)


# the message of the error a one-loop kernel of several outputs raises when an output's shape
# is smaller than the loop's (see elementwise_kernel's out_deps)
SHAPES_DIFFER = "symgrad: output shapes differ"
# the message of the error a kernel compiled without a broadcasting loop raises when an input
# broadcasts (its caller then passes the inputs broadcast: np.broadcast_to views)
INPUTS_BROADCAST = "symgrad: inputs broadcast"
OTHER_SHAPE = "symgrad: an output array of another shape"
# the message of the error a scan's step compiled without broadcasting code raises when the
# inputs of one of its elementwise loops broadcast (the caller then compiles the scan again,
# with that code: copying a broadcasting input costs a third of the scan's compile time)
STEP_BROADCASTS = "symgrad: inputs of a scan step broadcast"


def elementwise_kernel(module, ndim, arrays, static_shapes, body, results, out_dtypes,
                       destinations=(), reuse=None, out_deps=None, pool=False,
                       caller_broadcasts=False, in_dtypes=None, broadcast_raises=False):
    """A helper looping over the broadcast shape of ``arrays`` (each of ``ndim`` dims).

    ``body(read) -> (lines, result_exprs)``: ``read(k)`` is the element expression of array
    ``k``. Returns the helper's name; it takes the arrays, the scalars, then one destination
    array per output listed in ``destinations`` (written in place of a new array), and
    returns the output arrays (a tuple when several).

    When no array broadcasts (the usual case) the loop reads every array at the loop's own
    index (a loop LLVM vectorises); otherwise a second loop broadcasts. ``out_deps``: for
    each output, the arrays it depends on; the helper raises ``OutputShapesDiffer`` when an
    output's own broadcast shape is smaller than the loop's (ValueError(SHAPES_DIFFER); its
    caller then computes the outputs one loop each). With ``pool``, the helper takes one more
    array per output (after the destinations): written into when it has the output's shape
    (a buffer of an earlier call), else a new array is made. With ``caller_broadcasts`` there
    is no broadcasting loop: an input that broadcasts raises ValueError(INPUTS_BROADCAST).
    ``in_dtypes``: the arrays' dtypes (typed literally in the code that copies an input that
    broadcasts). With ``broadcast_raises`` the helper has no broadcasting code at all: arrays
    of different shapes raise ValueError(STEP_BROADCASTS).
    """
    n = len(arrays)
    if caller_broadcasts and not destinations:
        return _flat_kernel(module, ndim, n, static_shapes, body, results, len(out_dtypes))
    destinations = set(destinations)
    params = [f"x{k}" for k in range(n)] + list(results) + [
        f"dst{m}" for m in range(len(out_dtypes)) if m in destinations]
    if pool:
        params += [f"buf{m}" for m in range(len(out_dtypes))]
    lines = []
    dims = [f"d{j}" for j in range(ndim)]
    if broadcast_raises:
        return _lean_kernel(module, ndim, n, static_shapes, body, params, out_dtypes,
                            destinations, reuse)
    for j in range(ndim):
        lines.append(f"d{j} = 1")
        for k in range(n):
            if static_shapes[k][j] == 1:
                continue
            lines.append(f"s = x{k}.shape[{j}]")
            lines.append("if s != 1:")
            lines.append(f"    if d{j} != 1 and d{j} != s:")
            lines.append("        raise ValueError('elementwise: shapes do not broadcast')")
            lines.append(f"    d{j} = s")
    if out_deps is not None:
        for deps in out_deps:
            if set(deps) >= set(range(n)):
                continue
            for j in range(ndim):
                if any(static_shapes[k][j] not in (None, 1) for k in deps):
                    continue
                ones = " and ".join(f"x{k}.shape[{j}] == 1" for k in deps
                                    if static_shapes[k][j] != 1) or "True"
                lines.append(f"if d{j} != 1 and {ones}:")
                lines.append(f"    raise ValueError('{SHAPES_DIFFER}')")
    shape = _tuple(dims)
    full = [f"x{k}.shape[{j}] == d{j}" for k in range(n) for j in range(ndim)
            if static_shapes[k][j] != 1]
    if caller_broadcasts and full:
        lines.append(f"if not ({' and '.join(full)}):")
        lines.append(f"    raise ValueError('{INPUTS_BROADCAST}')")
    outs = [f"o{m}" for m in range(len(out_dtypes))]
    for m, dt in enumerate(out_dtypes):
        if m in destinations:
            lines += [f"if dst{m}.shape != {shape}:",
                      "    raise ValueError('scan: the step function returned a value of another "
                      "shape than its state')",
                      f"o{m} = dst{m}"]
        elif m == 0 and reuse is not None:  # a dead input of the output's shape: write into it
            lines += [f"if x{reuse}.shape == {shape}:", f"    o{m} = x{reuse}", "else:",
                      f"    o{m} = np.empty({shape}, dtype={_np_dtype(dt)})"]
        elif pool:
            lines += [f"if buf{m}.shape == {shape}:", f"    o{m} = buf{m}", "else:",
                      f"    o{m} = np.empty({shape}, dtype={_np_dtype(dt)})"]
        else:
            lines.append(f"o{m} = np.empty({shape}, dtype={_np_dtype(dt)})")
    flags = []
    for k in range(n):
        for j in range(ndim):
            if static_shapes[k][j] == 1 or caller_broadcasts:
                continue
            lines.append(f"m{k}_{j} = 1 if x{k}.shape[{j}] != 1 else 0")
            flags.append(f"d{j} == 1 or m{k}_{j} == 1")
    index = ", ".join(f"i{j}" for j in range(ndim))

    def loops(read):
        out, indent = [], ""
        for j in range(ndim):
            out.append(f"{indent}for i{j} in range(d{j}):")
            indent += "    "
        nd_lines, nd_exprs = body(read)
        out += [indent + line for line in nd_lines]
        for m, e in enumerate(nd_exprs):
            out.append(f"{indent}o{m}[{index}] = {e}")
        return out

    def read_direct(k):
        return f"x{k}[{', '.join('0' if static_shapes[k][j] == 1 else f'i{j}' for j in range(ndim))}]"

    if flags and ndim:
        # an input that broadcasts is first copied to the full shape (rare: the loop's body,
        # compiled once, always reads every input at the loop's own index)
        lines.append(f"if not ({' and '.join(f'({f})' for f in flags)}):")
        copy = assign_helper(module, ndim, ndim)
        for k in range(n):
            if all(static_shapes[k][j] == 1 for j in range(ndim)):
                continue
            full = _tuple([f"d{j}" if static_shapes[k][j] != 1 else "1" for j in range(ndim)])
            dtype = _np_dtype(in_dtypes[k]) if in_dtypes else f"x{k}.dtype"
            lines.append(f"    x{k} = {copy}(np.empty({full}, dtype={dtype}), x{k})")
    lines += loops(read_direct)
    lines.append(f"return {_tuple(outs) if len(outs) > 1 else outs[0]}")
    return module.helper("ew", params, lines)


def _lean_kernel(module, ndim, n, static_shapes, body, params, out_dtypes, destinations,
                 reuse):
    """elementwise_kernel's helper with no broadcasting code (``broadcast_raises``): the loop's
    shape is the first array's; another shape raises ValueError(STEP_BROADCASTS)."""
    lines, dims, checks = [], [], []
    for j in range(ndim):
        first = next((k for k in range(n) if static_shapes[k][j] != 1), None)
        dims.append("1" if first is None else f"x{first}.shape[{j}]")
        checks += [f"x{k}.shape[{j}] != {dims[j]}" for k in range(n)
                   if k != first and static_shapes[k][j] != 1]
    for m in range(len(out_dtypes)):
        if m in destinations:
            checks += [f"dst{m}.shape[{j}] != {dims[j]}" for j in range(ndim)]
    if checks:
        lines += [f"if {' or '.join(checks)}:", f"    raise ValueError('{STEP_BROADCASTS}')"]
    shape = _tuple(dims)
    outs = []
    for m, dt in enumerate(out_dtypes):
        outs.append(f"o{m}")
        if m in destinations:
            lines.append(f"o{m} = dst{m}")
        elif m == 0 and reuse is not None and all(
                static_shapes[reuse][j] != 1 or dims[j] == "1" for j in range(ndim)):
            lines.append(f"o{m} = x{reuse}")  # a dead input (of the loop's shape)
        else:
            lines.append(f"o{m} = np.empty({shape}, dtype={_np_dtype(dt)})")
    lines += _loop_nest(ndim, dims, static_shapes, body, outs)
    lines.append(f"return {_tuple(outs) if len(outs) > 1 else outs[0]}")
    return module.helper("ew", params, lines)


def _loop_nest(ndim, dims, static_shapes, body, outs):
    """The loops over ``dims`` computing ``body`` (see elementwise_kernel) and storing its
    results into the arrays named ``outs``; input k is read as ``x{k}`` (index 0 on its
    axes of static length 1)."""
    lines, indent = [], ""
    for j in range(ndim):
        lines.append(f"{indent}for i{j} in range({dims[j]}):")
        indent += "    "

    def read(k):
        return f"x{k}[{', '.join('0' if static_shapes[k][j] == 1 else f'i{j}' for j in range(ndim))}]"

    nd_lines, nd_exprs = body(read)
    index = ", ".join(f"i{j}" for j in range(ndim))
    lines += [indent + line for line in nd_lines]
    lines += [f"{indent}{o}[{index}] = {e}" for o, e in zip(outs, nd_exprs)]
    return lines


def _flat_kernel(module, ndim, n, static_shapes, body, results, n_out):
    """The elementwise loop of a top-level kernel: the caller broadcasts the inputs and
    passes the output arrays (``buf0``...), so the loop only checks that every shape is the
    same (a few comparisons: compiling np.empty and the broadcasting arithmetic costs more
    than the loop)."""
    params = [f"x{k}" for k in range(n)] + list(results) + [f"buf{m}" for m in range(n_out)]
    lines, same = [], []
    for j in range(ndim):
        ref = next((k for k in range(n) if static_shapes[k][j] != 1), None)
        lines.append(f"d{j} = x{ref}.shape[{j}]" if ref is not None else f"d{j} = 1")
        same += [f"x{k}.shape[{j}] == d{j}" for k in range(n)
                 if k != ref and static_shapes[k][j] != 1]
    if same:
        lines += [f"if not ({' and '.join(same)}):",
                  f"    raise ValueError('{INPUTS_BROADCAST}')"]
    fits = [f"buf{m}.shape[{j}] == d{j}" for m in range(n_out) for j in range(ndim)]
    lines += [f"if not ({' and '.join(fits)}):",
              f"    raise ValueError('{OTHER_SHAPE}')"]
    outs = [f"buf{m}" for m in range(n_out)]
    lines += _loop_nest(ndim, [f"d{j}" for j in range(ndim)], static_shapes, body, outs)
    lines.append(f"return {_tuple(outs) if n_out > 1 else outs[0]}")
    return module.helper("ew", params, lines)


def program_needed(steps, out_steps) -> tuple[set, set]:
    """The steps the returned ``out_steps`` depend on, and the input positions they read."""
    needed, used, work = set(), set(), list(out_steps)
    while work:
        j = work.pop()
        if j in needed:
            continue
        needed.add(j)
        for a in steps[j][1]:
            if a[0] == "s":
                work.append(a[1])
            elif a[0] == "i":
                used.add(a[1])
    return needed, used


def program_body(steps, out_steps, in_dtypes, refs, needed=None, prefix="r"):
    """The source lines of a scalar program (steps as in :func:`_scalar_program`) and the
    expressions of its ``out_steps``. ``refs`` maps ("i", k) to input k's expression; the
    steps' results are named ``{prefix}{j}``; only the ``needed`` steps are written."""
    if needed is None:
        needed = program_needed(steps, out_steps)[0]
    refs = dict(refs)
    lines = []
    step_dtypes = []
    for j, (sop, args, dtype) in enumerate(steps):
        if j not in needed:
            step_dtypes.append(np.dtype(dtype))
            continue
        exprs, dts = [], []
        strong = [(in_dtypes[a[1]] if a[0] == "i" else step_dtypes[a[1]] if a[0] == "s"
                   else np.dtype(a[2]) if a[0] == "c" else None) for a in args]
        strong_dts = [d for d in strong if d is not None]
        for a, d in zip(args, strong):
            if a[0] in ("i", "s"):
                exprs.append(refs[a])
                dts.append(d)
            elif a[0] == "c":
                exprs.append(literal(a[1], a[2]))
                dts.append(np.dtype(a[2]))
            else:
                value = a[1]
                dt = np.result_type(*strong_dts, value) if strong_dts else np.asarray(
                    value).dtype
                exprs.append(literal(value, dt))
                dts.append(np.dtype(dt))
        try:
            expr = scalar_expression(sop, exprs, dts, dtype)
        except NoTemplate:
            raise Unsupported(f"no numba code for the elementwise function {sop.name!r}"
                              ) from None
        name = f"{prefix}{j}"
        lines.append(f"{name} = {expr}")
        refs[("s", j)] = name
        step_dtypes.append(np.dtype(dtype))
    return lines, [refs[("s", j)] for j in out_steps]


def _scalar_program(node, steps, out_steps, w, out_deps=None):
    """Generate an elementwise node from a scalar program.

    steps: list of (scalar_op, args, dtype) with args ("i", k) | ("s", j) | ("w", value) |
    ("c", value, dtype); out_steps: the steps returned (in the node's output order).
    """
    inputs = node.inputs
    ndim = max((_ndim(o) for o in node.outputs), default=0)
    # the inputs the returned steps depend on (an output's shape broadcasts only those)
    needed, used = program_needed(steps, out_steps)
    array_pos = [k for k, i in enumerate(inputs) if _ndim(i) > 0 and k in used]
    scalar_pos = [k for k, i in enumerate(inputs) if _ndim(i) == 0 and k in used]
    in_dtypes = [_dt(i) for i in inputs]

    def body(read):
        refs = {("i", k): read(array_pos.index(k)) for k in array_pos}
        refs.update({("i", k): f"p{k}" for k in scalar_pos})
        return program_body(steps, out_steps, in_dtypes, refs, needed)

    out_dtypes = [_dt(o) for o in node.outputs]
    if ndim == 0 or not array_pos:
        lines, exprs = body(None)
        results = []
        for m, e in enumerate(exprs):
            if ndim == 0:
                results.append(e)
                continue
            lines.append(f"o{m} = np.empty({_tuple(['1'] * ndim)}, dtype={_np_dtype(out_dtypes[m])})")
            lines.append(f"o{m}[{', '.join(['0'] * ndim)}] = {e}")
            results.append(f"o{m}")
        lines.append(f"return {_tuple(results) if len(results) > 1 else results[0]}")
        name = w.module.helper("sc", [f"p{k}" for k in scalar_pos], lines)
        call = f"{name}({', '.join(w.inputs[k] for k in scalar_pos)})"
        return [f"{', '.join(w.out_names)} = {call}"]
    static = [inputs[k].type.shape for k in array_pos]
    dests = {m: w.fw.destinations[o] for m, o in enumerate(node.outputs)
             if o in w.fw.destinations and _ndim(o) == ndim}
    reuse = None
    if 0 not in dests:
        for pos, k in enumerate(array_pos):
            if (_ndim(inputs[k]) == ndim and _dt(inputs[k]) == out_dtypes[0]
                    and _may_overwrite(w.fw, inputs[k])):
                reuse = pos
                w.fw.consumed.add(inputs[k])
                break
    if out_deps is not None:
        out_deps = [[array_pos.index(k) for k in deps if k in array_pos] for deps in out_deps]
    pool = (w.fw.pool or w.fw.caller_broadcasts) and not dests
    name = elementwise_kernel(w.module, ndim, array_pos, static, body,
                              [f"p{k}" for k in scalar_pos], out_dtypes, destinations=dests,
                              reuse=reuse, out_deps=out_deps, pool=pool,
                              caller_broadcasts=w.fw.caller_broadcasts,
                              in_dtypes=[in_dtypes[k] for k in array_pos],
                              broadcast_raises=w.fw.lean_steps and not pool and out_deps is None)
    for o in [node.outputs[m] for m in dests]:
        w.fw.written_in_place.add(o)
    args = [w.inputs[k] for k in array_pos] + [w.inputs[k] for k in scalar_pos] + [
        dests[m] for m in sorted(dests)]
    if pool:  # buffers the kernel's caller passes in (see elementwise_kernel)
        bufs = [w.fw.fresh("buf") for _ in node.outputs]
        w.fw.params += bufs
        w.fw.pool_outputs.extend(node.outputs)
        args += bufs
    call = f"{name}({', '.join(args)})"
    if len(node.outputs) == 1:
        return [f"{w.out()} = {call}"]
    return [f"{', '.join(w.out_names)} = {call}"]


def _elemwise(op, node, w):
    args = []
    for k, i in enumerate(node.inputs):
        if isinstance(i, Constant) and getattr(i, "weak", False):
            args.append(("w", i.data.reshape(()).item()))
        else:
            args.append(("i", k))
    steps = [(op.scalar_op, args, node.outputs[0].type.dtype)]
    return _scalar_program(node, steps, [0], w)


def _fused(op, node, w):
    prog = op.program
    deps = op.output_dependencies()
    differ = len(prog.outputs) > 1 and len({tuple(sorted(d)) for d in deps}) > 1
    if differ and getattr(w.fw, "one_loop", False):
        # one loop computing every output, which fails where their shapes differ
        return _scalar_program(node, prog.steps, list(prog.outputs), w,
                               out_deps=[sorted(d) for d in deps])
    if differ:
        # outputs of different shapes: one loop per output
        lines = []
        for m, out_step in enumerate(prog.outputs):
            sub = _SingleOutput(node, m)
            sub_w = NodeWriter.__new__(NodeWriter)
            sub_w.fw, sub_w.node, sub_w.inputs = w.fw, sub, w.inputs
            sub_w.out_names = [w.out_names[m]]
            lines += _scalar_program(sub, prog.steps, [out_step], sub_w)
        return lines
    return _scalar_program(node, prog.steps, list(prog.outputs), w)


class _SingleOutput:
    def __init__(self, node, m):
        self.inputs = node.inputs
        self.outputs = [node.outputs[m]]
        self.op = node.op


# -- shape-like ops ----------------------------------------------------------------------------

def _dimshuffle(op, node, w):
    x = w.inputs[0]
    out = w.out()
    in_nd = op.input_ndim
    out_nd = len(op.new_order)
    if in_nd == 0:
        return full(w, out, ["1"] * out_nd, x, 0, _dt(node.inputs[0]))
    lines = []
    for d in op.drop:
        lines.append(f"if {x}.shape[{d}] != 1:")
        lines.append("    raise ValueError('dimshuffle: only length-1 axes can be dropped')")
    if out_nd == 0:
        lines.append(f"{out} = {x}[{', '.join(['0'] * in_nd)}]")
        return lines
    kept = [d for d in op.new_order if d != "x"]
    if kept == sorted(kept):  # no transposition: index with 0 (drops) and None (new axes)
        idx = []
        for d in op.new_order:
            if d == "x":
                idx.append("None")
            else:
                while len([i for i in idx if i != "None"]) < d:
                    idx.append("0")
                idx.append(":")
        while len([i for i in idx if i != "None"]) < in_nd:
            idx.append("0")
        lines.append(f"{out} = {x}[{', '.join(idx)}]")
        return lines
    if in_nd == 2 and out_nd == 2:
        lines.append(f"{out} = {x}.T")
        return lines
    shape = _tuple(["1" if d == "x" else f"{x}.shape[{d}]" for d in op.new_order])
    strides = _tuple(["0" if d == "x" else f"{x}.strides[{d}]" for d in op.new_order])
    lines.append(f"{out} = np.lib.stride_tricks.as_strided({x}, {shape}, {strides})")
    return lines


def _shape_tuple(expr, n):
    return _tuple([f"{expr}[{k}]" for k in range(n)])


def _reshape(op, node, w):
    x, shp = w.inputs
    out = w.out()
    in_nd = _ndim(node.inputs[0])
    if op.ndim == 0:
        if in_nd == 0:
            return [f"{out} = {x}"]
        return [f"if {x}.size != 1:", "    raise ValueError('reshape: cannot reshape to ()')",
                f"{out} = {x}.ravel()[0]"]
    if in_nd == 0:
        shape = [f"{shp}[{k}] if {shp}[{k}] != -1 else 1" for k in range(op.ndim)]
        return full(w, out, shape, x, 0, _dt(node.inputs[0]))
    return [f"{out} = np.ascontiguousarray({x}).reshape({_shape_tuple(shp, op.ndim)})"]


def _shape(op, node, w):
    x = w.inputs[0]
    n = _ndim(node.inputs[0])
    if n == 0:
        return [f"{w.out()} = np.empty(0, dtype=np.int64)"]
    return [f"{w.out()} = np.array({_tuple([f'{x}.shape[{k}]' for k in range(n)])}, "
            "dtype=np.int64)"]


def _shape_i(op, node, w):
    return [f"{w.out()} = np.int64({w.inputs[0]}.shape[{op.i}])"]


def _reduced_size(op, node, w):
    x = w.inputs[0]
    terms = [f"{x}.shape[{a}]" for a in op.axis] or ["1"]
    return [f"{w.out()} = np.int64({' * '.join(terms)})"]


def _join(op, node, w):
    dt = _dt(node.outputs[0])
    nd = _ndim(node.outputs[0])
    ax = op.axis
    first = w.inputs[0]
    total = " + ".join(f"{e}.shape[{ax}]" for e in w.inputs)
    shape = [total if j == ax else f"{first}.shape[{j}]" for j in range(nd)]
    out = w.out()
    lines = [f"{out} = np.empty({_tuple(shape)}, dtype={_np_dtype(dt)})"]
    pos = w.fresh("p")
    lines.append(f"{pos} = 0")
    lead = ":, " * ax
    for e in w.inputs:
        view = w.fresh()
        lines.append(f"{view} = {out}[{lead}{pos}:{pos} + {e}.shape[{ax}]]")
        lines += assign(w, view, nd, e, nd)
        lines.append(f"{pos} = {pos} + {e}.shape[{ax}]")
    return lines


def _split(op, node, w):
    x, splits = w.inputs
    lines = [f"if {splits}.shape[0] != {op.n_splits}:",
             "    raise ValueError('split: wrong number of sizes')"]
    pos = w.fresh("p")
    lines.append(f"{pos} = 0")
    lead = ":, " * op.axis
    for k in range(op.n_splits):
        lines.append(f"{w.out(k)} = {x}[{lead}{pos}:{pos} + {splits}[{k}]]")
        lines.append(f"{pos} = {pos} + {splits}[{k}]")
    total, q = w.fresh("n"), w.fresh("q")
    lines[2:2] = [f"{total} = 0", f"for {q} in range({op.n_splits}):",
                  f"    if {splits}[{q}] < 0:",
                  "        raise ValueError('split: sizes must be non-negative')",
                  f"    {total} += {splits}[{q}]",
                  f"if {total} != {x}.shape[{op.axis}]:",
                  "    raise ValueError('split: the sizes must sum to the axis length')"]
    return lines


def _alloc(op, node, w):
    v, shp = w.inputs
    n = _ndim(node.outputs[0])
    out = w.out()
    if n == 0:
        return [f"{out} = {v}"]
    return full(w, out, [f"{shp}[{k}]" for k in range(n)], v, _ndim(node.inputs[0]),
                _dt(node.outputs[0]))


def _specify_shape(op, node, w):
    x, *dims = w.inputs
    lines = []
    it = iter(dims)
    for k, m in enumerate(op.mask):
        if m:
            lines.append(f"if {x}.shape[{k}] != {next(it)}:")
            lines.append("    raise ValueError('specify_shape: the shape does not match')")
    lines.append(f"{w.out()} = {x}")
    return lines


def _arange(op, node, w):
    start, stop, step = w.inputs
    dt = _np_dtype(op.dtype)
    n, i = w.fresh("n"), w.fresh("i")
    return [f"if {step} == 0:", "    raise ValueError('arange: step must not be zero')",
            f"{n} = max(np.int64(np.ceil(({stop} - {start}) / {step})), 0)",
            f"{w.out()} = np.empty({n}, dtype={dt})",
            f"for {i} in range({n}):",
            f"    {w.out()}[{i}] = {start} + {i} * {step}"]


def _eye(op, node, w):
    n, m, k = w.inputs
    out, i = w.out(), w.fresh("i")
    dt = _dt(node.outputs[0])
    return full(w, out, [n, m], literal(0, dt), 0, dt) + [
        f"for {i} in range({n}):",
        f"    if 0 <= {i} + {k} < {m}:",
        f"        {out}[{i}, {i} + {k}] = {literal(1, dt)}"]


def _identity(op, node, w):
    return [f"{w.out()} = {w.inputs[0]}"]


def _sum_to(op, node, w):
    n = _ndim(node.inputs[0])
    dt = _dt(node.outputs[0])
    # the same shape: x itself (no copy); else sum over the axes where s has length 1
    same = " and ".join(f"s[{j}] == x.shape[{j}]" for j in range(n)) or "True"
    lines = [f"m{j} = 1 if s[{j}] == x.shape[{j}] else 0" for j in range(n)]
    idx = ", ".join(f"i{j}" for j in range(n))
    oidx = ", ".join(f"i{j} * m{j}" for j in range(n))
    shape = _tuple([f"x.shape[{j}] if m{j} else 1" for j in range(n)])
    lines.append(f"if {same}:")
    lines.append("    out = x")
    lines.append("else:")
    lines.append(f"    out = np.empty({shape}, dtype={_np_dtype(dt)})")
    lines.append(f"    out = {assign_helper(w.module, n, 0)}(out, {literal(0, dt)})")
    indent = "    "
    for j in range(n):
        lines.append(f"{indent}for i{j} in range(x.shape[{j}]):")
        indent += "    "
    lines.append(f"{indent}out[{oidx}] += x[{idx}]")
    lines.append("return out")
    helper = w.module.helper("sumto", ["x", "s"], lines)
    return [f"{w.out()} = {helper}({w.inputs[0]}, {w.inputs[1]})"]


# -- reductions ------------------------------------------------------------------------------------

def _init_value(kind, dtype):
    dt = np.dtype(dtype)
    if kind in ("sum", "any"):
        return literal(0, dt)
    if kind in ("prod", "all"):
        return literal(1, dt)
    if kind == "max":
        if dt.kind == "f":
            return literal(-np.inf, dt)
        if dt.kind == "b":
            return "False"
        return literal(np.iinfo(dt).min, dt)
    if kind == "min":
        if dt.kind == "f":
            return literal(np.inf, dt)
        if dt.kind == "b":
            return "True"
        return literal(np.iinfo(dt).max, dt)
    raise ValueError(kind)


def reduce_helper(module, kind, ndim, axes, keepdims, in_dtype, out_dtype):
    """A helper reducing an ndim array over ``axes`` in memory order."""
    axes = tuple(axes)

    def fill(name, shape, value, dtype, nd):
        return [f"{name} = np.empty({shape}, dtype={_np_dtype(dtype)})",
                f"{name} = {assign_helper(module, nd, 0)}({name}, {value})"]

    kept = [j for j in range(ndim) if j not in axes]
    acc_dt = np.dtype(out_dtype)
    lines = [f"d{j} = x.shape[{j}]" for j in range(ndim)]
    red_size = " * ".join(f"d{j}" for j in axes) or "1"
    if kind in ("max", "min", "argmax", "argmin"):
        lines.append(f"if {red_size} == 0:")
        lines.append(f"    raise ValueError('{kind}: zero-size reduction with no identity')")
    in_dt = np.dtype(in_dtype)
    conv = (lambda e: e) if in_dt == acc_dt or kind in ("max", "min", "any", "all") else (
        lambda e: cast_expression(e, acc_dt))
    idx = ", ".join(f"i{j}" for j in range(ndim))
    kidx = ", ".join(f"i{j}" for j in kept)
    scalar_acc = not kept
    acc_ref = "acc" if scalar_acc else f"acc[{kidx}]"
    kshape = _tuple([f"d{j}" for j in kept]) if kept else "()"
    if kind in ("argmax", "argmin"):
        val_dt = in_dt
        init = _init_value("max" if kind == "argmax" else "min", val_dt)
        if scalar_acc:
            lines += [f"best = {init}", "arg = 0", "first = True"]
            best_ref, arg_ref, first_ref = "best", "arg", "first"
        else:
            nk = len(kept)
            lines += fill("best", kshape, init, val_dt, nk) + fill("arg", kshape, "0", "int64", nk)
            lines += fill("first", kshape, "True", "bool", nk)
            best_ref, arg_ref, first_ref = f"best[{kidx}]", f"arg[{kidx}]", f"first[{kidx}]"
        # flat position within the reduced axes (C order of those axes)
        pos_terms = []
        for a in axes:
            stride = " * ".join(f"d{b}" for b in axes if b > a) or "1"
            pos_terms.append(f"i{a} * {stride}")
        pos = " + ".join(pos_terms) or "0"
        cmp = ">" if kind == "argmax" else "<"
        indent = ""
        for j in range(ndim):
            lines.append(f"{indent}for i{j} in range(d{j}):")
            indent += "    "
        isnan_v = "v != v" if val_dt.kind == "f" else "False"
        isnan_b = f"{best_ref} != {best_ref}" if val_dt.kind == "f" else "False"
        lines += [f"{indent}v = x[{idx}]",
                  f"{indent}if {first_ref} or (not ({isnan_b}) and (v {cmp} {best_ref} or "
                  f"({isnan_v}))):",
                  f"{indent}    {best_ref} = v",
                  f"{indent}    {arg_ref} = {pos}",
                  f"{indent}    {first_ref} = False"]
        result = "arg"
    else:
        init = _init_value(kind if kind != "lse" else "sum", acc_dt)
        if kind == "lse":
            lines += _lse_lines(ndim, axes, kept, acc_dt, kshape, kidx, idx, fill)
            result = "out"
        else:
            if scalar_acc:
                lines.append(f"acc = {init}")
            else:
                lines += fill("acc", kshape, init, acc_dt, len(kept))
            indent = ""
            for j in range(ndim):
                lines.append(f"{indent}for i{j} in range(d{j}):")
                indent += "    "
            v = conv(f"x[{idx}]")
            if kind == "sum":
                lines.append(f"{indent}{acc_ref} += {v}")
            elif kind == "prod":
                lines.append(f"{indent}{acc_ref} *= {v}")
            elif kind == "any":
                lines.append(f"{indent}if {v} != 0:")
                lines.append(f"{indent}    {acc_ref} = True")
            elif kind == "all":
                lines.append(f"{indent}if {v} == 0:")
                lines.append(f"{indent}    {acc_ref} = False")
            else:
                cmp = ">" if kind == "max" else "<"
                nan = " or v != v" if in_dt.kind == "f" else ""
                lines.append(f"{indent}v = {v}")
                lines.append(f"{indent}if v {cmp} {acc_ref}{nan}:")
                lines.append(f"{indent}    {acc_ref} = v")
            result = "acc"
    if keepdims:
        full = _tuple(["1" if j in axes else f"d{j}" for j in range(ndim)])
        if scalar_acc:
            lines += fill("kd", full, result, out_dtype, ndim)
            lines.append("return kd")
        else:
            lines.append(f"return {result}.reshape({full})")
    else:
        lines.append(f"return {result}")
    return module.helper(f"red_{kind}", ["x"], lines)


def _lse_lines(ndim, axes, kept, dt, kshape, kidx, idx, fill):
    scalar = not kept
    ref = (lambda a: a) if scalar else (lambda a: f"{a}[{kidx}]")
    lines = []
    if scalar:
        lines += [f"m = {literal(-np.inf, dt)}", f"s = {literal(0, dt)}"]
    else:
        lines += fill("m", kshape, literal(-np.inf, dt), dt, len(kept))
        lines += fill("s", kshape, literal(0, dt), dt, len(kept))
    loops = []
    indent = ""
    for j in range(ndim):
        loops.append(f"{indent}for i{j} in range(d{j}):")
        indent += "    "
    kloops, kindent = [], ""
    for j in kept:
        kloops.append(f"{kindent}for i{j} in range(d{j}):")
        kindent += "    "
    lines += loops
    lines += [f"{indent}v = {cast_expression(f'x[{idx}]', dt)}",
              f"{indent}if v > {ref('m')} or v != v:", f"{indent}    {ref('m')} = v"]
    lines += kloops + [f"{kindent}if not np.isfinite({ref('m')}):",
                       f"{kindent}    {ref('m')} = {literal(0, dt)}"]
    lines += loops
    lines.append(f"{indent}{ref('s')} += np.exp({cast_expression(f'x[{idx}]', dt)} - {ref('m')})")
    if scalar:
        lines.append("out = np.log(s) + m")
    else:
        lines.append(f"out = np.empty({kshape}, dtype={_np_dtype(dt)})")
        lines += kloops + [f"{kindent}{ref('out')} = np.log({ref('s')}) + {ref('m')}"]
    return lines


def _reduce_gen(kind):
    def gen(op, node, w):
        x = node.inputs[0]
        nd = _ndim(x)
        if nd == 0:
            if kind in ("argmax", "argmin"):
                return [f"{w.out()} = np.int64(0)"]
            return [f"{w.out()} = {cast_expression(w.inputs[0], _dt(node.outputs[0]))}"]
        name = reduce_helper(w.module, kind, nd, op.axis, op.keepdims, _dt(x),
                             _dt(node.outputs[0]))
        return [f"{w.out()} = {name}({w.inputs[0]})"]
    return gen


def _softmax_gen(log):
    def gen(op, node, w):
        x = node.inputs[0]
        nd = _ndim(x)
        dt = _dt(node.outputs[0])
        if nd == 0:
            return [f"{w.out()} = {literal(0 if log else 1, dt)}"]
        mx = reduce_helper(w.module, "max", nd, op.axis, True, _dt(x), _dt(x))
        sm = reduce_helper(w.module, "sum", nd, op.axis, True, dt, dt)
        xs = x.type.shape
        ks = tuple(1 if j in op.axis else s for j, s in enumerate(xs))
        zero = literal(0, dt)

        def shifted(read):  # x - max (the max replaced by 0 where it is not finite)
            mv = cast_expression(read(1), dt)
            return [f"mv = {mv}", "if not np.isfinite(mv):", f"    mv = {zero}",
                    f"z = {cast_expression(read(0), dt)} - mv"], ["np.exp(z)" if not log else "z"]
        k1 = elementwise_kernel(w.module, nd, [0, 1], [xs, ks], shifted, [], [dt])
        m, a, b = w.fresh(), w.fresh(), w.fresh()
        lines = [f"{m} = {mx}({w.inputs[0]})", f"{a} = {k1}({w.inputs[0]}, {m})"]
        if log:
            k2 = elementwise_kernel(w.module, nd, [0], [xs], lambda r: ([], [f"np.exp({r(0)})"]),
                                    [], [dt])
            k3 = elementwise_kernel(w.module, nd, [0, 1], [xs, ks],
                                    lambda r: ([], [f"{r(0)} - np.log({r(1)})"]), [], [dt])
            lines += [f"{b} = {sm}({k2}({a}))", f"{w.out()} = {k3}({a}, {b})"]
        else:
            k3 = elementwise_kernel(w.module, nd, [0, 1], [xs, ks],
                                    lambda r: ([], [f"{r(0)} / {r(1)}"]), [], [dt])
            lines += [f"{b} = {sm}({a})", f"{w.out()} = {k3}({a}, {b})"]
        return lines
    return gen


# -- linear algebra ------------------------------------------------------------------------------

def _dot(op, node, w):
    a, b = node.inputs
    dt = _dt(node.outputs[0])
    if dt.kind not in "fc" or _ndim(a) > 2 or _ndim(b) > 2:
        raise Unsupported("numba's np.dot takes float matrices and vectors only")
    ea, eb = [e if _dt(v) == dt else f"{e}.astype({_np_dtype(dt)})"
              for v, e in zip((a, b), w.inputs)]
    if _ndim(a) == 0 or _ndim(b) == 0:
        return [f"{w.out()} = {ea} * {eb}"]
    if dt.kind == "f" and _ndim(a) == 1:
        # a vector-matrix or vector-vector product as loops: numba's np.dot costs about half
        # a second of compiling per kind of product, and BLAS is no faster on such loops
        # (a matrix-vector product keeps BLAS: a row's dot product does not vectorise
        # without reassociating as BLAS does)
        name = _dot_helper(w.module, _ndim(a), _ndim(b), dt)
        return [f"{w.out()} = {name}({ea}, {eb})"]
    if _ndim(a) == 1:  # (complex vectors)
        return [f"{w.out()} = np.dot({ea}, {eb})"]
    # np.dot with its output given: numba compiles half the code of np.dot(a, b)
    ta, tb, out = w.fresh(), w.fresh(), w.out()
    shape = [f"{ta}.shape[0]"] + ([f"{tb}.shape[1]"] if _ndim(b) == 2 else [])
    return [f"{ta} = {ea}", f"{tb} = {eb}",
            f"{out} = np.empty({_tuple(shape)}, dtype={_np_dtype(dt)})",
            f"np.dot({ta}, {tb}, {out})"]


def _dot_helper(module, nd_a, nd_b, dt):
    """``dot(a, b)`` for (vector, matrix) or (vector, vector) operands, as loops LLVM
    vectorises: a sweep over the matrix's rows, or four partial sums."""
    zero = literal(0, dt)
    check = ["raise ValueError('dot: shapes not aligned')"]
    if (nd_a, nd_b) == (1, 2):
        lines = ["n = b.shape[1]", "if a.shape[0] != b.shape[0]:", "    " + check[0],
                 f"out = np.empty((n,), dtype={_np_dtype(dt)})",
                 "for j in range(n):", f"    out[j] = {zero}",
                 "for i in range(a.shape[0]):", "    ai = a[i]",
                 "    for j in range(n):", "        out[j] += ai * b[i, j]",
                 "return out"]
        return module.helper("vm", ["a", "b"], lines)

    def row_sums(rows, m):
        """Lines adding up ``row[j] * v[j]`` for each of ``rows`` (expressions indexing a
        row with ``{}``) into s{r}: four partial sums each, then the leftover tail."""
        out = [f"p{r}_{q} = {zero}" for r in range(len(rows)) for q in range(4)]
        out.append(f"for j in range(0, {m} - {m} % 4, 4):")
        out += [f"    v{q} = v[j + {q}]" for q in range(4)]
        out += [f"    p{r}_{q} += {row.format(f'j + {q}')} * v{q}"
                for r, row in enumerate(rows) for q in range(4)]
        out += [f"s{r} = (p{r}_0 + p{r}_1) + (p{r}_2 + p{r}_3)" for r in range(len(rows))]
        out.append(f"for j in range({m} - {m} % 4, {m}):")
        out += [f"    s{r} += {row.format('j')} * v[j]" for r, row in enumerate(rows)]
        return out
    if (nd_a, nd_b) == (1, 1):
        lines = ["v = b", "if a.shape[0] != v.shape[0]:", "    " + check[0]]
        lines += row_sums(["a[{}]"], "a.shape[0]")
        lines.append("return s0")
        return module.helper("vv", ["a", "b"], lines)
    raise ValueError(f"no dot loop for operands of {nd_a} and {nd_b} dimensions")


def _matmul(op, node, w):
    a, b = node.inputs
    if _ndim(a) > 2 or _ndim(b) > 2:
        raise Unsupported("batched matmul")
    return _dot(op, node, w)


def _tensordot(op, node, w):
    a, b = node.inputs
    dt = _dt(node.outputs[0])
    if dt.kind not in "fc":
        raise Unsupported("numba's np.dot takes floats only")
    axes_a, axes_b = list(op.axes_a), list(op.axes_b)
    free_a = [k for k in range(_ndim(a)) if k not in axes_a]
    free_b = [k for k in range(_ndim(b)) if k not in axes_b]
    ea, eb = [e if _dt(v) == dt else f"{e}.astype({_np_dtype(dt)})"
              for v, e in zip((a, b), w.inputs)]
    ta, tb, ra, rb, r = (w.fresh() for _ in range(5))

    def prod(expr, axes):
        return " * ".join(f"{expr}.shape[{k}]" for k in axes) or "1"

    lines = [f"{ta} = np.ascontiguousarray({_permuted(ea, free_a + axes_a)})"
             if _ndim(a) else f"{ta} = {ea}",
             f"{tb} = np.ascontiguousarray({_permuted(eb, axes_b + free_b)})"
             if _ndim(b) else f"{tb} = {eb}",
             f"{ra} = {ta}.reshape(({prod(ea, free_a)}, {prod(ea, axes_a)}))",
             f"{rb} = {tb}.reshape(({prod(eb, axes_b)}, {prod(eb, free_b)}))",
             f"{r} = np.dot({ra}, {rb})"]
    out_shape = [f"{ea}.shape[{k}]" for k in free_a] + [f"{eb}.shape[{k}]" for k in free_b]
    if out_shape:
        lines.append(f"{w.out()} = {r}.reshape({_tuple(out_shape)})")
    else:
        lines.append(f"{w.out()} = {r}[0, 0]")
    return lines


def _permuted(x, perm):
    """A view of ``x`` with its axes permuted (as_strided: numba's transpose(axes) is slow to
    compile)."""
    if list(perm) == list(range(len(perm))):
        return x
    if list(perm) == [1, 0]:
        return f"{x}.T"
    shape = _tuple([f"{x}.shape[{d}]" for d in perm])
    strides = _tuple([f"{x}.strides[{d}]" for d in perm])
    return f"np.lib.stride_tricks.as_strided({x}, {shape}, {strides})"


# -- indexing --------------------------------------------------------------------------------------

def _index_expr(op, node, w, first):
    """The index expression of a Subtensor-like node, or Unsupported."""
    vals = iter(w.inputs[first:])
    var_iter = iter(node.inputs[first:])
    parts = []
    n_adv = 0
    lines = []
    x = node.inputs[0]
    axis = 0
    for e in op.idx_list:
        if isinstance(e, tuple):
            bounds = []
            for has in e[1:]:
                if has:
                    next(var_iter)
                    bounds.append(next(vals))
                else:
                    bounds.append("")
            parts.append(":".join(bounds) if bounds[2] else f"{bounds[0]}:{bounds[1]}")
            axis += 1
        elif e == "i":
            v = next(vals)
            next(var_iter)
            n = f"{w.inputs[0]}.shape[{axis}]"
            lines.append(f"if {v} < -{n} or {v} >= {n}:")
            lines.append("    raise IndexError('index out of bounds')")
            parts.append(v)
            axis += 1
        elif e == "a":
            var = next(var_iter)
            v = next(vals)
            if var.ndim != 1:
                raise Unsupported("numba indexes with one-dimensional arrays only")
            n_adv += 1
            if var.dtype == "bool":
                parts.append(v)
            else:
                n = f"{w.inputs[0]}.shape[{axis}]"
                q = w.fresh("q")
                lines.append(f"for {q} in range({v}.shape[0]):")
                lines.append(f"    if {v}[{q}] < -{n} or {v}[{q}] >= {n}:")
                lines.append("        raise IndexError('index out of bounds')")
                parts.append(v)
            axis += 1
        elif e == "n":
            parts.append("None")
        else:
            raise Unsupported("an Ellipsis between advanced indices")
    if n_adv > 1:
        raise Unsupported("numba allows one advanced index")
    if n_adv and "None" in parts:
        raise Unsupported("numba cannot mix newaxis with an advanced index")
    del x
    if not parts:
        return lines, "..."
    return lines, ", ".join(parts) + ("," if len(parts) == 1 else "")


def _subtensor(op, node, w):
    if _ndim(node.inputs[0]) == 0:
        raise Unsupported("indexing a scalar")
    lines, idx = _index_expr(op, node, w, 1)
    out = w.out()
    lines.append(f"{out} = {w.inputs[0]}[{idx}]")
    return lines


def _inc_subtensor(op, node, w):
    x, y = node.inputs[:2]
    if _ndim(x) == 0:
        raise Unsupported("indexing a scalar")
    lines, idx = _index_expr(op, node, w, 2)
    out = w.out()
    if _may_overwrite(w.fw, x):
        w.fw.consumed.add(x)
        lines.append(f"{out} = {w.inputs[0]}")
    else:
        lines.append(f"{out} = {w.inputs[0]}.copy()")
    sym = "=" if op.set_instead_of_inc else "+="
    adv = [k for k, e in enumerate(op.idx_list) if e == "a"]
    ey = w.inputs[1]
    sub_op = op._sub_op()
    region_nd = sub_op.make_node(x, *node.inputs[2:]).outputs[0].ndim
    if not adv:
        if region_nd == 0:
            lines.append(f"{out}[{idx}] {sym} {ey}")
            return lines
        region = w.fresh()
        lines.append(f"{region} = {out}[{idx}]")
        return lines + assign(w, region, region_nd, ey, _ndim(y), sym)
    # one advanced index: a loop over it (repeated indices add up; the last one set wins)
    (p,) = adv
    ivar = node.inputs[2 + _index_input_position(op, p)]
    ie = w.inputs[2 + _index_input_position(op, p)]
    others = [e for k, e in enumerate(op.idx_list) if k != p]
    if any(e != ("s", False, False, False) for e in others):
        raise Unsupported("advanced increments mixed with other indices")
    if ivar.dtype == "bool":
        t = w.fresh()
        lines.append(f"{t} = np.nonzero({ie})[0]")
        ie = t
    k = w.fresh("k")
    lead = ":, " * p
    ynd = _ndim(y)
    # y broadcasts against the region (len(ie), rest...) laid out with the index axis at p
    rnd = _ndim(x)
    lines.append(f"for {k} in range({ie}.shape[0]):")
    row_nd = rnd - 1
    if ynd == 0:
        ysel = ey
        ysel_nd = 0
    else:
        # the index axis of the region is axis p; y's axes align to the right
        ypos = p - (rnd - ynd)
        if ypos < 0:
            ysel, ysel_nd = ey, ynd
        else:
            ysel = w.fresh()
            yi = f"{k} if {ey}.shape[{ypos}] != 1 else 0"
            lines.append(f"    {ysel} = {ey}[{':, ' * ypos}{yi}]")
            ysel_nd = ynd - 1
    if row_nd == 0:
        lines.append(f"    {out}[{ie}[{k}]] {sym} {ysel}")
        return lines
    row = w.fresh()
    lines.append(f"    {row} = {out}[{lead}{ie}[{k}]]")
    lines += ["    " + line for line in assign(w, row, row_nd, ysel, ysel_nd, sym)]
    return lines


_FRESH_RESULTS = ("Elemwise", "FusedElemwise", "Alloc", "IncSubtensor", "AdvancedIncSubtensor",
                  "Join", "CumOp")


def _may_overwrite(fw, var) -> bool:
    """Whether ``var`` is a fresh array made earlier in this function that nothing else reads
    (so an increment may update it in place instead of copying it)."""
    clients = fw.clients
    if clients is None or var.owner is None or var in fw.graph_outputs:
        return False
    if var not in fw.names or var in fw.destinations or var in fw.written_in_place:
        return False
    if fw.auto_inputs is not None and var in fw.auto_inputs:  # computed by an earlier step
        return False
    if var in fw.consumed:
        return False
    if type(var.owner.op).__name__ not in _FRESH_RESULTS:
        return False
    return len(clients.get(var, ())) == 1


def _index_input_position(op, entry):
    """Position (among the index inputs) of idx_list entry ``entry``."""
    k = 0
    for j, e in enumerate(op.idx_list):
        if j == entry:
            return k
        if isinstance(e, tuple):
            k += sum(e[1:])
        elif e in ("i", "a"):
            k += 1
    raise IndexError(entry)


# -- cumulative ops and sorting --------------------------------------------------------------------

def _axis_loops(ndim, axis, reverse=False, shape="x"):
    lines, indent = [], ""
    for j in range(ndim):
        if j == axis and reverse:
            lines.append(f"{indent}for i{j} in range({shape}.shape[{j}] - 1, -1, -1):")
        else:
            lines.append(f"{indent}for i{j} in range({shape}.shape[{j}]):")
        indent += "    "
    return lines, indent


def _cumop(op, node, w):
    nd = _ndim(node.inputs[0])
    dt = _dt(node.outputs[0])
    ax = op.axis
    loops, indent = _axis_loops(nd, ax, op.reverse)
    idx = ", ".join(f"i{j}" for j in range(nd))
    prev = ", ".join((f"i{j} + 1" if op.reverse else f"i{j} - 1") if j == ax else f"i{j}"
                     for j in range(nd))
    first = f"x.shape[{ax}] - 1" if op.reverse else "0"
    sym = "+" if op.mode == "add" else "*"
    body = [f"out = np.empty(x.shape, dtype={_np_dtype(dt)})"] + loops + [
        f"{indent}v = {cast_expression(f'x[{idx}]', dt)}",
        f"{indent}if i{ax} == {first}:",
        f"{indent}    out[{idx}] = v",
        f"{indent}else:",
        f"{indent}    out[{idx}] = out[{prev}] {sym} v",
        "return out"]
    name = w.module.helper("cum", ["x"], body)
    return [f"{w.out()} = {name}({w.inputs[0]})"]


def _shift(op, node, w):
    nd = _ndim(node.inputs[0])
    dt = _dt(node.outputs[0])
    ax, off = op.axis, op.offset
    loops, indent = _axis_loops(nd, ax)
    idx = ", ".join(f"i{j}" for j in range(nd))
    src = ", ".join(f"i{j} - {off}" if j == ax else f"i{j}" for j in range(nd))
    fill = literal(op.fill, dt) if not isinstance(op.fill, bool) else literal(int(op.fill), dt)
    body = [f"out = np.empty(x.shape, dtype={_np_dtype(dt)})", f"n = x.shape[{ax}]"] + loops + [
        f"{indent}if 0 <= i{ax} - {off} < n:",
        f"{indent}    out[{idx}] = x[{src}]",
        f"{indent}else:",
        f"{indent}    out[{idx}] = {fill}",
        "return out"]
    name = w.module.helper("shift", ["x"], body)
    return [f"{w.out()} = {name}({w.inputs[0]})"]


def _recurrence(op, node, w):
    a, b = node.inputs
    nd = _ndim(node.outputs[0])
    dt = _dt(node.outputs[0])
    ax = op.axis
    sa, sb = a.type.shape, b.type.shape
    lines = []
    dims = []
    for j in range(nd):
        lines.append(f"d{j} = max(a.shape[{j}], b.shape[{j}])")
        lines.append(f"ma{j} = 1 if a.shape[{j}] != 1 else 0")
        lines.append(f"mb{j} = 1 if b.shape[{j}] != 1 else 0")
        dims.append(f"d{j}")
    del sa, sb
    lines.append(f"out = np.empty({_tuple(dims)}, dtype={_np_dtype(dt)})")
    loops, indent = [], ""
    for j in range(nd):
        if j == ax and op.reverse:
            loops.append(f"{indent}for i{j} in range(d{j} - 1, -1, -1):")
        else:
            loops.append(f"{indent}for i{j} in range(d{j}):")
        indent += "    "
    idx = ", ".join(f"i{j}" for j in range(nd))
    ia = ", ".join(f"i{j} * ma{j}" for j in range(nd))
    ib = ", ".join(f"i{j} * mb{j}" for j in range(nd))
    prev = ", ".join((f"i{j} + 1" if op.reverse else f"i{j} - 1") if j == ax else f"i{j}"
                     for j in range(nd))
    first = f"d{ax} - 1" if op.reverse else "0"
    lines += loops + [
        f"{indent}bv = {cast_expression(f'b[{ib}]', dt)}",
        f"{indent}if i{ax} == {first}:",
        f"{indent}    out[{idx}] = bv",
        f"{indent}else:",
        f"{indent}    out[{idx}] = {cast_expression(f'a[{ia}]', dt)} * out[{prev}] + bv",
        "return out"]
    name = w.module.helper("recur", ["a", "b"], lines)
    return [f"{w.out()} = {name}({w.inputs[0]}, {w.inputs[1]})"]


def _sort_gen(arg):
    def gen(op, node, w):
        nd = _ndim(node.inputs[0])
        ax = op.axis
        perm = [j for j in range(nd) if j != ax] + [ax]
        inv = [perm.index(j) for j in range(nd)]
        outer = nd - 1
        lines = [f"y = np.ascontiguousarray({_permuted('x', perm)})" if nd > 1
                 else "y = x.copy()"]
        lines.append(f"r = y.reshape((-1, y.shape[{nd - 1}]))" if nd > 1 else
                     "r = y.reshape((1, y.shape[0]))")
        dt = "np.int64" if arg else "y.dtype"
        lines.append(f"o = np.empty(r.shape, dtype={dt})")
        lines.append("for k in range(r.shape[0]):")
        if arg:
            lines.append("    o[k] = np.argsort(r[k], kind='mergesort')")
        else:
            lines.append("    o[k] = np.sort(r[k])")
        if nd > 1:
            lines.append(f"o2 = o.reshape({_tuple([f'y.shape[{j}]' for j in range(nd)])})")
            lines.append(f"return np.ascontiguousarray({_permuted('o2', inv)})")
        else:
            lines.append("return o.reshape(x.shape)")
        del outer
        name = w.module.helper("argsort" if arg else "sort", ["x"], lines)
        return [f"{w.out()} = {name}({w.inputs[0]})"]
    return gen


# -- registration ----------------------------------------------------------------------------------

def _mod(name):
    return importlib.import_module(f"symgrad.tensor.{name}")


def register_builtin():
    elemwise, shape, creation = _mod("elemwise"), _mod("shape"), _mod("creation")
    reduction, special, linalg = _mod("reduction"), _mod("special"), _mod("linalg")
    sub, extra, sort = _mod("subtensor"), _mod("extra_ops"), _mod("sort")
    register(elemwise.Elemwise)(_elemwise)
    register(elemwise.DimShuffle)(_dimshuffle)
    register(elemwise.SumTo)(_sum_to)
    register(shape.Shape)(_shape)
    register(shape.Shape_i)(_shape_i)
    register(reduction.ReducedSize)(_reduced_size)
    register(shape.Reshape)(_reshape)
    register(shape.Join)(_join)
    register(shape.Split)(_split)
    register(shape.Alloc)(_alloc)
    register(shape.SpecifyShape)(_specify_shape)
    register(creation.ARange)(_arange)
    register(creation.Eye)(_eye)
    for cls, kind in ((reduction.Sum, "sum"), (reduction.Prod, "prod"), (reduction.Max, "max"),
                      (reduction.Min, "min"), (reduction.Any, "any"), (reduction.All, "all"),
                      (reduction.Argmax, "argmax"), (reduction.Argmin, "argmin"),
                      (reduction.LogSumExp, "lse")):
        register(cls)(_reduce_gen(kind))
    register(special.Softmax)(_softmax_gen(False))
    register(special.LogSoftmax)(_softmax_gen(True))
    register(linalg.Dot)(_dot)
    register(linalg.MatMul)(_matmul)
    register(linalg.TensorDot)(_tensordot)
    register(sub.Subtensor)(_subtensor)
    register(sub.IncSubtensor)(_inc_subtensor)
    register(extra.CumOp)(_cumop)
    register(extra.Shift)(_shift)
    register(extra.LinearRecurrence)(_recurrence)
    register(sort.Sort)(_sort_gen(False))
    register(sort.ArgSort)(_sort_gen(True))
    from symgrad.gradient import GradientModifier

    register(GradientModifier)(_identity)
    try:
        from symgrad.tensor.fusion import FusedElemwise
    except ImportError:  # pragma: no cover - before the fusion op exists
        pass
    else:
        register(FusedElemwise)(_fused)
    try:
        from symgrad.scan.op import Scan
    except ImportError:  # pragma: no cover
        pass
    else:
        from symgrad.backends.numba.scan import scan_generator

        register(Scan)(scan_generator)


del math
