"""StencilSum (:mod:`symgrad.tensor.rewriting.stencil`) as one jitted loop.

The result's axis is cut at the bounds of the increments' slices into pieces, each
covered by the same increments throughout. One loop serves every piece: for each
position it starts from the base value and adds each increment's program, computed from
its inputs read at that position shifted by the input's slice start minus the
increment's slice start. An increment that does not cover the piece reads its inputs
at some valid place instead and its value is dropped (a select, which LLVM vectorises),
so there is one loop to compile, not one per subset of the increments. The long piece in
the middle (whose length grows with the array's) is where the time goes; the pieces at
the ends hold a few elements each.

The runner (:class:`StencilRunner`) works out the pieces and the offsets from the input
shapes in Python (cached per shapes: numba compiles such integer code slower than the
loop). Where the inputs' lengths do not match the slices exactly (numpy would broadcast
them), the call runs the op's numpy implementation instead.
"""

from __future__ import annotations

import warnings

import numpy as np

from symgrad.backends.numba.codegen import (
    ModuleWriter,
    Unsupported,
    _np_dtype,
    program_body,
    program_needed,
)
from symgrad.backends.numba.scalar import literal

__all__ = ["stencil_source", "StencilRunner", "offset_slots"]


def offset_slots(op):
    """The sliced args of ``op``'s terms: ``{(term, arg): slot}`` and, per slot,
    ``(term, input, start, stop)`` (the kernel gets an offset per slot and piece)."""
    slots, keys = {}, []
    for t, term in enumerate(op.terms):
        for m, arg in enumerate(term[4]):
            if arg[0] == "slice":
                slots[(t, m)] = len(keys)
                keys.append((t, arg[1], arg[2], arg[3]))
    return slots, keys


def stencil_source(node):
    """(module source, function name) of the kernel ``fn(inputs..., out, offsets, pieces)``
    of a StencilSum node. ``pieces`` (int64, a row per piece): its start, its stop and the
    increments covering it (bit t: term t). ``offsets`` (int64, a row per piece): for each
    slot of :func:`offset_slots`, where the input is read relative to the piece."""
    op = node.op
    inputs = node.inputs
    ndim = node.outputs[0].ndim
    dtype = np.dtype(op.dtype)
    if dtype.kind != "f":
        raise Unsupported("a stencil sum of a non-float dtype")
    params = [f"x{k}" for k in range(len(inputs))] + ["out", "offsets", "pieces"]
    lines = [f"n{j} = x0.shape[{j}]" for j in range(ndim)]
    for k, i in enumerate(inputs):
        if i.ndim == 0:
            lines.append(f"s{k} = x{k}[()]")
    lines += ["for c in range(pieces.shape[0]):", "    p = pieces[c, 0]", "    q = pieces[c, 1]",
              "    m = pieces[c, 2]"]
    for t in range(len(op.terms)):
        lines.append(f"    on{t} = (m & {1 << t}) != 0")
    lines += ["    " + line for line in _loop(op, inputs, ndim, dtype)]
    lines.append("return out")
    module = ModuleWriter()
    name = module.root("stencil", params, lines)
    return module.source(), name


def _loop(op, inputs, ndim, dtype):
    """The loop over the piece [p, q) of the axis. It reads views that start at the piece:
    an index that is the loop's own is never negative, where numba's negative-index check
    on a shifted index would keep LLVM from vectorising."""
    axis = op.axis

    def view(name, shift):
        cut = f"p + {shift}:q + {shift}" if shift else "p:q"
        return f"{name}[{', '.join([':'] * axis + [cut])}]"

    slots, _ = offset_slots(op)
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
    views = []
    for t, (_, _, program, out, args) in enumerate(op.terms):
        refs = {}
        in_dtypes = []
        used = () if program is None else program_needed(program.steps,
                                                          [program.outputs[out]])[1]
        for m, arg in enumerate(args):
            var = inputs[arg[1]]
            in_dtypes.append(np.dtype(var.dtype))
            if arg[0] == "scalar":
                refs[("i", m)] = f"s{arg[1]}"
            elif arg[0] == "one":
                refs[("i", m)] = f"x{arg[1]}[{', '.join(['0'] * ndim)}]"
            elif program is None or m in used:
                # each element read once (numba lowers every indexing on its own)
                name = f"w{t}_{m}"
                views.append(f"{name} = {view(f'x{arg[1]}', f'offsets[c, {slots[(t, m)]}]')}")
                body.append(f"e{t}_{m} = {name}[{index}]")
                refs[("i", m)] = f"e{t}_{m}"
        if program is None:
            expr = refs[("i", 0)]
        else:
            step_lines, exprs = program_body(program.steps, [program.outputs[out]], in_dtypes,
                                             refs, prefix=f"r{t}_")
            body += step_lines
            expr = exprs[0]
        body += [f"if on{t}:", f"    acc = acc + {_np_dtype(dtype)}({expr})"]
    body.append(f"ov[{index}] = acc")
    return views + lines + [indent + b for b in body]


class StencilRunner:
    """Calls a StencilSum's kernel: numpy (the op's own implementation) for small arrays
    until the kernel pays for its compiling, for inputs that do not match the slices
    exactly (numpy's broadcasting), and where numba fails to compile the kernel (with a
    warning)."""

    def __init__(self, node):
        from symgrad.backends import numba as nb

        self.node = node
        self.source, self.name = stencil_source(node)  # raises Unsupported
        self.numpy = node.op.make_thunk_function(node)
        op = node.op
        self.dtype = np.dtype(op.dtype)
        self.axis = op.axis
        self.terms = [slice(t[0], t[1]) for t in op.terms]
        self.slots = offset_slots(op)[1]
        self.arrays = frozenset(k for k, i in enumerate(node.inputs) if i.ndim > 0)
        self.layouts: dict = {}
        self._fn = None
        self.calls = 0
        self.failed = False
        self._nb = nb

    def layout(self, shapes):
        """(offsets, pieces) for inputs of these shapes (see :func:`stencil_source`), or None
        where an input's length differs from its increment's slice (or another axis from
        the result's), or an input is shorter than a piece its increment does not cover."""
        axis = self.axis
        shape = shapes[0]
        n = shape[axis]
        ranges = []
        for where in self.terms:
            a, b, _ = where.indices(n)
            ranges.append((a, max(a, b)))
        starts = []  # per slot: where the input's slice starts
        for t, k, start, stop in self.slots:
            src = shapes[k]
            if len(src) != len(shape) or any(src[j] != shape[j] for j in range(len(shape))
                                             if j != axis):
                return None
            u, v, _ = slice(start, stop).indices(src[axis])
            a, b = ranges[t]
            if max(v - u, 0) != b - a:
                return None
            starts.append(u)
        cuts = sorted({0, n, *(x for r in ranges for x in r)})
        pieces, offsets = [], []
        for p, q in zip(cuts, cuts[1:]):
            if p >= q:
                continue
            on = [a <= p and q <= b for a, b in ranges]
            row = []
            for (t, k, _, _), u in zip(self.slots, starts):
                if on[t]:
                    row.append(u - ranges[t][0])
                elif q - p <= shapes[k][axis]:
                    row.append(-p)  # read at 0 .. q-p, and dropped
                else:
                    return None
            pieces.append((p, q, sum(1 << t for t, o in enumerate(on) if o)))
            offsets.append(row)
        return (np.array(offsets, dtype=np.int64).reshape(len(pieces), len(self.slots)),
                np.array(pieces, dtype=np.int64).reshape(-1, 3))

    def _load(self):
        from numba.core.errors import NumbaError

        module = self._nb._load_module(self.source)
        return getattr(module, self.name), NumbaError

    def __call__(self, *args):
        if self._fn is None:
            if self.failed or (np.size(args[0]) < self._nb.KERNEL_MIN_SIZE
                               and self.calls < self._nb.KERNEL_MIN_CALLS):
                self.calls += 1
                return self.numpy(*args)
            fn, numba_error = self._load()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=self._nb.numba.NumbaWarning)
                try:
                    result = self._run(fn, args)
                except (numba_error, RecursionError) as exc:
                    self.failed = True
                    warnings.warn(f"numba could not compile {self.node.op}: "
                                  f"{str(exc).splitlines()[0]}; running it with numpy",
                                  self._nb.NumbaFallbackWarning, stacklevel=3)
                    return self.numpy(*args)
            self._fn = fn
            return result
        return self._run(self._fn, args)

    def _run(self, fn, args):
        arrays = [a if type(a) is np.ndarray else np.asarray(a) for a in args]
        shapes = tuple(a.shape if k in self.arrays else () for k, a in enumerate(arrays))
        found = self.layouts.get(shapes, False)
        if found is False:
            if len(self.layouts) > 64:
                self.layouts.clear()
            found = self.layouts[shapes] = self.layout(shapes)
        if found is None:
            return self.numpy(*args)
        out = np.empty(arrays[0].shape, dtype=self.dtype)
        return fn(*arrays, out, *found)
