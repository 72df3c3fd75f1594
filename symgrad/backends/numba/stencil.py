"""StencilSum (:mod:`symgrad.tensor.rewriting.stencil`) as one jitted loop.

The result's axis is cut at the bounds of the increments' slices into pieces, each
covered by the same increments throughout. One jitted loop serves every piece: for each
position it starts from the base value and adds each increment's program, computed from
the increment's inputs read at that position (views the runner cuts: the input's slice,
shifted to the piece). An increment that does not cover the piece reads some valid place
instead and its value is dropped (the loop's ``on`` flags), so there is one loop to
compile, not one per subset of the increments. The long piece in the middle (whose
length grows with the array's) is where the time goes; the pieces at the ends hold a few
elements each and cost a call of the kernel (about a microsecond) each.

The runner (:class:`StencilRunner`) works out the pieces and the views from the input
shapes in Python (cached per shapes): numba compiles slicing and such integer code
slower than the loop itself. Where the inputs' lengths do not match the slices exactly
(numpy would broadcast them), the call runs the op's numpy implementation instead.
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
    ``(term, input, start, stop)`` (the kernel gets a view per slot)."""
    slots, keys = {}, []
    for t, term in enumerate(op.terms):
        for m, arg in enumerate(term[4]):
            if arg[0] == "slice":
                slots[(t, m)] = len(keys)
                keys.append((t, arg[1], arg[2], arg[3]))
    return slots, keys


def stencil_source(node):
    """(module source, function name) of the kernel of a StencilSum node over one piece:
    ``fn(views..., [base], out, on..., scalars..., ones...)``: a view per slot of
    :func:`offset_slots` (the input's elements for the piece), the base's piece (an array
    base), the result's piece, a flag per increment (whether it covers the piece), the
    0-d inputs' values, and the inputs of length 1 on every axis, whole."""
    op = node.op
    inputs = node.inputs
    ndim = node.outputs[0].ndim
    dtype = np.dtype(op.dtype)
    if dtype.kind != "f":
        raise Unsupported("a stencil sum of a non-float dtype")
    slots, _ = offset_slots(op)
    params = [f"w{t}_{m}" for (t, m) in slots]
    if op.base[0] != "fill":
        params.append("bv")
    params.append("ov")
    params += [f"on{t}" for t in range(len(op.terms))]
    params += [f"s{k}" for k, i in enumerate(inputs) if i.ndim == 0]
    params += [f"x{k}" for k in _ones(op)]
    lines = [f"n{j} = ov.shape[{j}]" for j in range(ndim)]
    indent = ""
    for j in range(ndim):
        lines.append(f"{indent}for j{j} in range(n{j}):")
        indent += "    "
    index = ", ".join(f"j{j}" for j in range(ndim))
    body = []
    if op.base[0] == "fill":
        body.append(f"acc = {literal(op.base[1], dtype)}")
    else:
        body.append(f"acc = bv[{index}]")
    for t, (start, stop, program, out, args) in enumerate(op.terms):
        term_lines = []
        refs = {}
        in_dtypes = []
        used = () if program is None else program_needed(program.steps,
                                                          [program.outputs[out]])[1]
        for m, arg in enumerate(args):
            in_dtypes.append(np.dtype(inputs[arg[1]].dtype))
            if arg[0] == "scalar":
                refs[("i", m)] = f"s{arg[1]}"
            elif arg[0] == "one":
                refs[("i", m)] = f"x{arg[1]}[{', '.join(['0'] * ndim)}]"
            elif program is None or m in used:
                term_lines.append(f"e{t}_{m} = w{t}_{m}[{index}]")  # each element read once
                refs[("i", m)] = f"e{t}_{m}"
        if program is None:
            expr, value_dtype = refs[("i", 0)], in_dtypes[0]
        else:
            step_lines, exprs = program_body(program.steps, [program.outputs[out]], in_dtypes,
                                             refs, prefix=f"r{t}_")
            term_lines += step_lines
            expr, value_dtype = exprs[0], np.dtype(program.steps[program.outputs[out]][2])
        if value_dtype != dtype:
            expr = f"{_np_dtype(dtype)}({expr})"
        if _spans(start, stop):
            # covers the long middle piece: computed everywhere, kept where it applies (a
            # select, which LLVM vectorises)
            body += term_lines + [f"if on{t}:", f"    acc = acc + {expr}"]
        else:
            # covers a few elements at an end only: computed there only (on the long piece
            # its branch is never taken)
            body += [f"if on{t}:"] + ["    " + line for line in term_lines] + [
                f"    acc = acc + {expr}"]
    body.append(f"ov[{index}] = acc")
    lines += [indent + b for b in body]
    lines.append("return ov")
    module = ModuleWriter()
    name = module.root("stencil", params, lines)
    return module.source(), name


def _ones(op):
    """The inputs read as arrays of length 1 on every axis."""
    return sorted({a[1] for term in op.terms for a in term[4] if a[0] == "one"})


def _spans(start, stop) -> bool:
    """Whether a slice covers the middle of an axis however long it is (its start counted
    from the beginning, its stop from the end)."""
    return (start is None or start >= 0) and (stop is None or stop < 0)


class StencilRunner:
    """Calls a StencilSum's kernel once per piece: numpy (the op's own implementation) for
    small arrays until the kernel pays for its compiling, for inputs that do not match the
    slices exactly (numpy's broadcasting), and where numba fails to compile the kernel
    (with a warning)."""

    def __init__(self, node):
        from symgrad.backends import numba as nb

        self.node = node
        self.source, self.name = stencil_source(node)  # raises Unsupported
        self.numpy = node.op.make_thunk_function(node)
        op = node.op
        self.dtype = np.dtype(op.dtype)
        self.axis = op.axis
        self.fill = op.base[0] == "fill"
        self.terms = [slice(t[0], t[1]) for t in op.terms]
        self.slots = offset_slots(op)[1]
        self.arrays = frozenset(k for k, i in enumerate(node.inputs) if i.ndim > 0)
        self.scalars = [k for k, i in enumerate(node.inputs) if i.ndim == 0]
        self.ones = _ones(op)
        self.layouts: dict = {}
        self._fn = None  # the kernel, once it has run (numpy runs the node before)
        self._dispatcher = None
        self.calls = 0
        self.failed = False
        self._nb = nb

    def layout(self, shapes):
        """For inputs of these shapes, one ``(slot indices, piece index, on flags)`` per
        piece (the numpy index of each slot's view and of the piece in the result), or
        None where an input's length differs from its increment's slice (or another axis
        from the result's), or an input is shorter than a piece its increment does not
        cover."""
        axis = self.axis
        shape = shapes[0]
        n = shape[axis]
        lead = (slice(None),) * axis
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
        pieces = []
        for p, q in zip(cuts, cuts[1:]):
            if p >= q:
                continue
            on = tuple(a <= p and q <= b for a, b in ranges)
            views = []
            for (t, k, _, _), u in zip(self.slots, starts):
                if on[t]:
                    shift = u - ranges[t][0]
                elif q - p <= shapes[k][axis]:
                    shift = -p  # read at 0 .. q-p, and dropped
                else:
                    return None
                views.append(lead + (slice(p + shift, q + shift),))
            pieces.append((views, lead + (slice(p, q),), on))
        return pieces

    pooled = ()  # (no buffers kept between calls: the result is the caller's)

    @property
    def fn(self):
        """The kernel's jitted function (its module loaded from the disk cache on first use;
        compiled on its first call)."""
        if self._dispatcher is None:
            self._dispatcher = getattr(self._nb._load_module(self.source), self.name)
        return self._dispatcher

    def _load(self):
        from numba.core.errors import NumbaError

        return self.fn, NumbaError

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
        pieces = self.layouts.get(shapes, False)
        if pieces is False:
            if len(self.layouts) > 64:
                self.layouts.clear()
            pieces = self.layouts[shapes] = self.layout(shapes)
        if pieces is None:
            return self.numpy(*args)
        first = arrays[0]
        out = np.empty(first.shape, dtype=self.dtype)
        extra = [arrays[k][()] for k in self.scalars] + [arrays[k] for k in self.ones]
        sources = [arrays[k] for _, k, _, _ in self.slots]
        for views, here, on in pieces:
            ins = [src[v] for src, v in zip(sources, views)]
            if not self.fill:
                ins.append(first[here])
            fn(*ins, out[here], *on, *extra)
        return out
