"""StencilSum (:mod:`symgrad.tensor.rewriting.stencil`) as one jitted loop.

The result's axis is cut at the bounds of the increments' slices; each piece is covered
by the same set of increments throughout, so it gets a loop of its own written for that
set (one variant per subset of the increments, chosen at run time per piece), with no
branch inside: LLVM vectorises it. A loop computes, for each position, the base value
plus each increment's program on its inputs read at that position shifted by the
input's slice start minus the increment's slice start.

Where the inputs' lengths do not match the slices exactly (numpy would broadcast them),
the kernel raises ``ValueError(MISMATCH)`` and that call runs the op's numpy
implementation instead.
"""

from __future__ import annotations

import warnings

import numpy as np

from symgrad.backends.numba.codegen import ModuleWriter, Unsupported, _np_dtype, program_body
from symgrad.backends.numba.scalar import literal

__all__ = ["stencil_source", "StencilRunner", "MISMATCH"]

MISMATCH = "symgrad: stencil inputs do not match their slices"


def _bound(c, n, default):
    """Source of a slice bound ``c`` (an int or None) normalised for a length ``n``."""
    if c is None:
        return default
    if c >= 0:
        return f"min({c}, {n})"
    return f"max({n} - {-c}, 0)"


def stencil_source(node):
    """(module source, function name) of the kernel ``fn(inputs..., out)`` of a StencilSum
    node."""
    op = node.op
    inputs = node.inputs
    ndim = node.outputs[0].ndim
    axis = op.axis
    dtype = np.dtype(op.dtype)
    if dtype.kind != "f":
        raise Unsupported("a stencil sum of a non-float dtype")
    params = [f"x{k}" for k in range(len(inputs))]
    lines = [f"n{j} = x0.shape[{j}]" for j in range(ndim)]
    for k, i in enumerate(inputs):
        if i.ndim == 0:
            lines.append(f"s{k} = x{k}[()]")
    n_axis = f"n{axis}"
    offsets = {}  # (term, arg index) -> the offset variable
    for t, (start, stop, _, _, args) in enumerate(op.terms):
        lines.append(f"a{t} = {_bound(start, n_axis, '0')}")
        lines.append(f"b{t} = max({_bound(stop, n_axis, n_axis)}, a{t})")
        for m, arg in enumerate(args):
            if arg[0] != "slice":
                continue
            k, s, e = arg[1], arg[2], arg[3]
            length = f"x{k}.shape[{axis}]"
            lines.append(f"u = {_bound(s, length, '0')}")
            lines.append(f"v = max({_bound(e, length, length)}, u)")
            checks = [f"v - u != b{t} - a{t}"] + [f"x{k}.shape[{j}] != n{j}"
                                                   for j in range(ndim) if j != axis]
            lines.append(f"if {' or '.join(checks)}:")
            lines.append(f"    raise ValueError('{MISMATCH}')")
            offsets[(t, m)] = f"o{t}_{m}"
            lines.append(f"o{t}_{m} = u - a{t}")
    n_terms = len(op.terms)
    # the cut points: 0, the result's length and every slice's bounds
    lines.append(f"pts = np.empty({2 * n_terms + 2}, dtype=np.int64)")
    lines.append("pts[0] = 0")
    lines.append(f"pts[1] = {n_axis}")
    for t in range(n_terms):
        lines.append(f"pts[{2 * t + 2}] = a{t}")
        lines.append(f"pts[{2 * t + 3}] = b{t}")
    lines.append("pts.sort()")
    lines.append(f"for c in range({2 * n_terms + 1}):")
    lines.append("    p = pts[c]")
    lines.append("    q = pts[c + 1]")
    lines.append("    if p >= q:")
    lines.append("        continue")
    lines.append("    m = 0")
    for t in range(n_terms):
        lines.append(f"    if a{t} <= p and q <= b{t}:")
        lines.append(f"        m += {1 << t}")
    for mask in range(1 << n_terms):
        lines.append(f"    {'if' if mask == 0 else 'elif'} m == {mask}:")
        lines += ["        " + line for line in _loop(op, inputs, ndim, axis, dtype, mask,
                                                        offsets)]
    lines.append("return out")
    module = ModuleWriter()
    name = module.root("stencil", params + ["out"], lines)
    return module.source(), name


def _loop(op, inputs, ndim, axis, dtype, mask, offsets):
    """The loop over the piece [p, q) of the axis covered by the increments in ``mask``: over
    views that start at the piece (an index the loop's own, never negative: numba's
    negative-index check on a shifted index would keep LLVM from vectorising)."""
    def view(name, shift):
        cut = f"p + {shift}:q + {shift}" if shift else "p:q"
        return f"{name}[{', '.join([':'] * axis + [cut])}]"

    lines = [f"ov = {view('out', None)}"]
    if op.base[0] != "fill":
        lines.append(f"bv = {view('x0', None)}")
    indent = ""
    for j in range(ndim):
        bounds = "q - p" if j == axis else f"n{j}"
        lines.append(f"{indent}for j{j} in range({bounds}):")
        indent += "    "
    index = ", ".join(f"j{j}" for j in range(ndim))
    body = []
    if op.base[0] == "fill":
        body.append(f"acc = {literal(op.base[1], dtype)}")
    else:
        body.append(f"acc = bv[{index}]")
    for t, (_, _, program, out, args) in enumerate(op.terms):
        if not mask & (1 << t):
            continue
        refs = {}
        in_dtypes = []
        for m, arg in enumerate(args):
            var = inputs[arg[1]]
            in_dtypes.append(np.dtype(var.dtype))
            if arg[0] == "scalar":
                refs[("i", m)] = f"s{arg[1]}"
            elif arg[0] == "one":
                refs[("i", m)] = f"x{arg[1]}[{', '.join(['0'] * ndim)}]"
            else:
                lines.insert(0, f"w{t}_{m} = {view(f'x{arg[1]}', offsets[(t, m)])}")
                refs[("i", m)] = f"w{t}_{m}[{index}]"
        if program is None:
            expr = refs[("i", 0)]
        else:
            step_lines, exprs = program_body(program.steps, [program.outputs[out]], in_dtypes,
                                             refs, prefix=f"r{t}_")
            body += step_lines
            expr = exprs[0]
        body.append(f"acc = acc + {_np_dtype(dtype)}({expr})")
    body.append(f"ov[{index}] = acc")
    return lines + [indent + b for b in body]


class StencilRunner:
    """Calls a StencilSum's kernel: numpy (the op's own implementation) for small arrays
    until the kernel pays for its compiling, for inputs that do not match the slices, and
    where numba fails to compile the kernel (with a warning)."""

    def __init__(self, node):
        from symgrad.backends import numba as nb

        self.node = node
        self.source, self.name = stencil_source(node)  # raises Unsupported
        self.numpy = node.op.make_thunk_function(node)
        self.dtype = np.dtype(node.op.dtype)
        self._fn = None
        self.calls = 0
        self.failed = False
        self._nb = nb

    def _load(self):
        from numba.core.errors import NumbaError

        module = self._nb._load_module(self.source)
        fn = getattr(module, self.name)
        return fn, NumbaError

    def __call__(self, *args):
        first = args[0]
        if self._fn is None:
            if self.failed or (np.size(first) < self._nb.KERNEL_MIN_SIZE
                               and self.calls < self._nb.KERNEL_MIN_CALLS):
                self.calls += 1
                return self.numpy(*args)
            fn, numba_error = self._load()
            out = np.empty(np.shape(first), dtype=self.dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=self._nb.numba.NumbaWarning)
                try:
                    return self._run(fn, args, out)
                except (numba_error, RecursionError) as exc:
                    self.failed = True
                    warnings.warn(f"numba could not compile {self.node.op}: "
                                  f"{str(exc).splitlines()[0]}; running it with numpy",
                                  self._nb.NumbaFallbackWarning, stacklevel=3)
                    return self.numpy(*args)
                finally:
                    if not self.failed:
                        self._fn = fn
        return self._run(self._fn, args, np.empty(np.shape(first), dtype=self.dtype))

    def _run(self, fn, args, out):
        arrays = [np.asarray(a) for a in args]
        try:
            return fn(*arrays, out)
        except ValueError as exc:
            if str(exc) == MISMATCH:
                return self.numpy(*args)
            raise
