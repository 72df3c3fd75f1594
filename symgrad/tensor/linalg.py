"""Products of tensors: dot, matmul (``@``), tensordot, outer, einsum.

* ``Dot``: ``np.dot`` for 1-d and 2-d operands (BLAS directly). ``dot`` of a 0-d
  operand is a multiplication; of n-d operands, a tensordot (numpy's rule).
* ``MatMul``: ``np.matmul`` with broadcast batch dimensions and 1-d promotion.
* ``TensorDot``: ``np.tensordot`` over explicit axis lists.
* ``Einsum``: ``np.einsum`` for explicit subscripts (used where a batch axis is
  shared by both operands of a tensordot).

Derivatives are graphs of these same ops and transpositions. Batching rules never
loop: a batched dot becomes a 2-d dot or a batched matmul (see ``Dot.vectorize_node``).
"""

from __future__ import annotations

import string

import numpy as np

from symgrad.graph.basic import Apply, Op
from symgrad.tensor.basic import as_tensor_variable
from symgrad.tensor.elemwise import DimShuffle, SumTo, broadcast_like, broadcast_static_shapes
from symgrad.tensor.reduction import (
    _label,
    normalize_axis,
    probe_dtype,
    sum_to_static,
)
from symgrad.tensor.reduction import sum as _sum
from symgrad.tensor.type import TensorType, discrete_dtypes

__all__ = ["dot", "matmul", "tensordot", "outer", "einsum"]


def _fmt(shape) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + (
        ",)" if len(shape) == 1 else ")")


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _transpose(x, perm):
    perm = tuple(perm)
    if perm == tuple(range(x.ndim)):
        return x
    return DimShuffle(x.ndim, perm)(x)


def _swap_last2(x):
    n = x.ndim
    return _transpose(x, tuple(range(n - 2)) + (n - 1, n - 2))


def _drop(x, axis):
    """Drop a length-1 axis."""
    return DimShuffle(x.ndim, tuple(k for k in range(x.ndim) if k != axis))(x)


def _insert(x, axis):
    """Insert a length-1 axis at ``axis`` (of the result)."""
    order = list(range(x.ndim))
    order.insert(axis, "x")
    return DimShuffle(x.ndim, tuple(order))(x)


def _outer1(u, v):
    return DimShuffle(1, (0, "x"))(u) * DimShuffle(1, ("x", 0))(v)


def _not_aligned(fname, a, b, da, db):
    return ValueError(
        f"{fname}: shapes {_fmt(a.type.shape)} and {_fmt(b.type.shape)} are not aligned: "
        f"dimension {da} of the first ({a.type.shape[da]}) != dimension {db} of the second "
        f"({b.type.shape[db]})")


# -- Dot (1-d and 2-d) ----------------------------------------------------------------------------

class Dot(Op):
    """``np.dot`` of 1-d/2-d operands: inner product, matrix-vector or matrix-matrix."""

    __props__ = ()

    def make_node(self, a, b):
        a, b = as_tensor_variable(a), as_tensor_variable(b)
        if a.ndim not in (1, 2) or b.ndim not in (1, 2):
            raise TypeError(f"Dot takes 1-d or 2-d operands, got {a.ndim}-d and {b.ndim}-d; use "
                            "symgrad.tensor.dot for other cases")
        da, db = a.ndim - 1, 0
        sa, sb = a.type.shape[da], b.type.shape[db]
        if sa is not None and sb is not None and sa != sb:
            raise _not_aligned("dot", a, b, da, db)
        shape = a.type.shape[:-1] + b.type.shape[1:]
        return Apply(self, [a, b], [TensorType(probe_dtype("dot", a.dtype, b.dtype), shape)()])

    def make_thunk_function(self, node):
        dtype = np.dtype(node.outputs[0].type.dtype)
        if node.outputs[0].ndim == 0:
            def run(a, b):
                return np.asarray(np.dot(a, b), dtype=dtype)
        else:
            def run(a, b):
                out = np.dot(a, b)
                return out if out.dtype == dtype else out.astype(dtype)
        return run


    def infer_shape(self, node, input_shapes):
        sa, sb = input_shapes
        return [list(sa[:-1]) + list(sb[1:])]

    def pullback(self, inputs, outputs, output_grads):
        (a, b), (g,) = inputs, output_grads
        if g is None:
            return [None, None]
        if (a.ndim, b.ndim) == (1, 1):
            ga, gb = g * b, g * a
        elif (a.ndim, b.ndim) == (2, 1):
            ga, gb = _outer1(g, b), dot(g, a)
        elif (a.ndim, b.ndim) == (1, 2):
            ga, gb = dot(b, g), _outer1(a, g)
        else:
            ga, gb = dot(g, _swap_last2(b)), dot(_swap_last2(a), g)
        return [None if a.dtype in discrete_dtypes else ga,
                None if b.dtype in discrete_dtypes else gb]

    def pushforward(self, inputs, outputs, tangents):
        (a, b), (ta, tb) = inputs, tangents
        return [_add(None if ta is None else dot(ta, b), None if tb is None else dot(a, tb))]

    def vectorize_node(self, node, a, b):
        oa, ob = node.inputs
        ba, bb = a.ndim > oa.ndim, b.ndim > ob.ndim
        na, nb = oa.ndim, ob.ndim
        if ba and not bb:
            return [dot(a, b) if na == 1 else matmul(a, b)]
        if bb and not ba:
            if nb == 1:
                return [dot(b, a if na == 1 else _swap_last2(a))]
            return [matmul(a, b)]
        # both batched: a shared batch axis
        if (na, nb) == (1, 1):
            return [_sum(a * b, axis=1)]
        if (na, nb) == (2, 1):
            return [_drop(matmul(a, _insert(b, 2)), 2)]
        if (na, nb) == (1, 2):
            return [_drop(matmul(_insert(a, 1), b), 1)]
        return [matmul(a, b)]


# -- MatMul ---------------------------------------------------------------------------------------

class MatMul(Op):
    """``np.matmul``: batch dimensions broadcast; a 1-d operand is promoted and the
    promoted axis dropped from the result."""

    __props__ = ()

    def make_node(self, a, b):
        a, b = as_tensor_variable(a), as_tensor_variable(b)
        for k, v in enumerate((a, b)):
            if v.ndim == 0:
                raise ValueError(f"matmul: input operand {k} ({_label(v)}) is 0-d and does not "
                                 "have enough dimensions; use mul for scalars")
        sa = ((1,) if a.ndim == 1 else ()) + a.type.shape
        sb = b.type.shape + ((1,) if b.ndim == 1 else ())
        if sa[-1] is not None and sb[-2] is not None and sa[-1] != sb[-2]:
            raise ValueError(
                f"matmul: shapes {_fmt(a.type.shape)} and {_fmt(b.type.shape)} do not match in "
                f"the contracted dimension ({sa[-1]} != {sb[-2]})")
        nbatch = max(len(sa), len(sb)) - 2
        pa = (1,) * (nbatch + 2 - len(sa)) + sa[:-2]
        pb = (1,) * (nbatch + 2 - len(sb)) + sb[:-2]
        batch = broadcast_static_shapes("matmul", [pa, pb]) if nbatch else ()
        shape = batch + (() if a.ndim == 1 else (sa[-2],)) + (() if b.ndim == 1 else (sb[-1],))
        dtype = probe_dtype("matmul", a.dtype, b.dtype)
        return Apply(self, [a, b], [TensorType(dtype, shape)()])

    def make_thunk_function(self, node):
        dtype = np.dtype(node.outputs[0].type.dtype)

        def run(a, b):
            out = np.asarray(np.matmul(a, b))
            return out if out.dtype == dtype else out.astype(dtype)
        return run


    def pullback(self, inputs, outputs, output_grads):
        (a, b), (g,) = inputs, output_grads
        if g is None:
            return [None, None]
        A = _insert(a, 0) if a.ndim == 1 else a
        B = _insert(b, 1) if b.ndim == 1 else b
        G = g
        if a.ndim == 1:
            G = _insert(G, G.ndim - (0 if b.ndim == 1 else 1))
        if b.ndim == 1:
            G = _insert(G, G.ndim)
        ga = gb = None
        if a.dtype not in discrete_dtypes:
            ga = _reduce_batch(matmul(G, _swap_last2(B)), A, B)
            ga = _drop(ga, 0) if a.ndim == 1 else ga
        if b.dtype not in discrete_dtypes:
            gb = _reduce_batch(matmul(_swap_last2(A), G), B, A)
            gb = _drop(gb, 1) if b.ndim == 1 else gb
        return [ga, gb]

    def pushforward(self, inputs, outputs, tangents):
        (a, b), (ta, tb) = inputs, tangents
        return [_add(None if ta is None else matmul(ta, b), None if tb is None else matmul(a, tb))]

    def vectorize_node(self, node, a, b):
        oa, ob = node.inputs
        ba, bb = a.ndim > oa.ndim, b.ndim > ob.ndim
        core_batch = max(max(oa.ndim, 2), max(ob.ndim, 2)) - 2
        drop_row = drop_col = False
        if ba:
            if oa.ndim == 1:
                a = _insert(a, 1)  # (B, 1, n)
                drop_row = True
            a = _pad_after_batch(a, 1 + core_batch + 2)
        if bb:
            if ob.ndim == 1:
                b = _insert(b, 2)  # (B, n, 1)
                drop_col = True
            b = _pad_after_batch(b, 1 + core_batch + 2)
        out = matmul(a, b)
        if drop_col:
            out = _drop(out, out.ndim - 1)
        if drop_row:  # the row axis is last when b is a vector, else second to last
            out = _drop(out, out.ndim - (1 if ob.ndim == 1 else 2))
        return [out]


def _pad_after_batch(x, ndim):
    if x.ndim >= ndim:
        return x
    extra = ndim - x.ndim
    return DimShuffle(x.ndim, (0,) + ("x",) * extra + tuple(range(1, x.ndim)))(x)


def _reduce_batch(g, var, other):
    """Sum the batch-broadcast gradient ``g`` (matmul result) back to ``var``'s shape."""
    extra = g.ndim - var.ndim
    if extra:
        g = _sum(g, axis=tuple(range(extra)))
    nb = var.ndim - 2
    other_off = other.ndim - 2 - nb  # other's batch axis aligned with var's axis k is k + other_off
    static_axes, runtime = [], False
    for k in range(nb):
        v = var.type.shape[k]
        o = other.type.shape[k + other_off] if 0 <= k + other_off < other.ndim - 2 else 1
        if v == 1:
            if g.type.shape[k] != 1:
                static_axes.append(k)
        elif v is None and o != 1:
            runtime = True
    if static_axes:
        g = _sum(g, axis=tuple(static_axes), keepdims=True)
    if runtime:
        from symgrad.tensor import shape as _shape

        g = SumTo()(g, _shape(var))
    return g


# -- TensorDot ------------------------------------------------------------------------------------

class TensorDot(Op):
    """``np.tensordot(a, b, axes=(axes_a, axes_b))``: output axes are a's free axes then b's."""

    __props__ = ("axes_a", "axes_b")

    def __init__(self, axes_a, axes_b):
        self.axes_a = tuple(int(x) for x in axes_a)
        self.axes_b = tuple(int(x) for x in axes_b)
        if len(self.axes_a) != len(self.axes_b):
            raise ValueError(f"tensordot: axes {self.axes_a} and {self.axes_b} differ in length")

    def make_node(self, a, b):
        a, b = as_tensor_variable(a), as_tensor_variable(b)
        for x, axes in ((a, self.axes_a), (b, self.axes_b)):
            for ax in axes:
                if not 0 <= ax < x.ndim:
                    raise ValueError(f"tensordot: axis {ax} is out of range for {_label(x)} with "
                                     f"{x.ndim} dimensions")
        for da, db in zip(self.axes_a, self.axes_b):
            sa, sb = a.type.shape[da], b.type.shape[db]
            if sa is not None and sb is not None and sa != sb:
                raise _not_aligned("tensordot", a, b, da, db)
        shape = tuple(s for k, s in enumerate(a.type.shape) if k not in self.axes_a) + tuple(
            s for k, s in enumerate(b.type.shape) if k not in self.axes_b)
        return Apply(self, [a, b], [TensorType(probe_dtype("dot", a.dtype, b.dtype), shape)()])

    def make_thunk_function(self, node):
        dtype = np.dtype(node.outputs[0].type.dtype)
        axes = (list(self.axes_a), list(self.axes_b))

        def run(a, b):
            out = np.asarray(np.tensordot(a, b, axes=axes))
            return out if out.dtype == dtype else out.astype(dtype)
        return run


    def pullback(self, inputs, outputs, output_grads):
        (a, b), (g,) = inputs, output_grads
        if g is None:
            return [None, None]
        a_free = [k for k in range(a.ndim) if k not in self.axes_a]
        b_free = [k for k in range(b.ndim) if k not in self.axes_b]
        nfa = len(a_free)
        ga = gb = None
        if a.dtype not in discrete_dtypes:
            t = TensorDot(range(nfa, g.ndim), b_free)(g, b)
            t_axes = a_free + [self.axes_a[self.axes_b.index(k)] for k in sorted(self.axes_b)]
            ga = _transpose(t, [t_axes.index(k) for k in range(a.ndim)])
        if b.dtype not in discrete_dtypes:
            t = TensorDot(a_free, range(nfa))(a, g)
            t_axes = [self.axes_b[self.axes_a.index(k)] for k in sorted(self.axes_a)] + b_free
            gb = _transpose(t, [t_axes.index(k) for k in range(b.ndim)])
        return [ga, gb]

    def pushforward(self, inputs, outputs, tangents):
        (a, b), (ta, tb) = inputs, tangents
        return [_add(None if ta is None else self(ta, b), None if tb is None else self(a, tb))]

    def infer_shape(self, node, input_shapes):
        sa, sb = input_shapes
        return [[s for k, s in enumerate(sa) if k not in self.axes_a]
                + [s for k, s in enumerate(sb) if k not in self.axes_b]]

    def vectorize_node(self, node, a, b):
        oa, ob = node.inputs
        ba, bb = a.ndim > oa.ndim, b.ndim > ob.ndim
        if ba and not bb:
            return [TensorDot([k + 1 for k in self.axes_a], self.axes_b)(a, b)]
        if bb and not ba:
            out = TensorDot(self.axes_a, [k + 1 for k in self.axes_b])(a, b)
            nfa = oa.ndim - len(self.axes_a)
            perm = [nfa] + [k for k in range(out.ndim) if k != nfa]
            return [_transpose(out, perm)]
        letters = iter(string.ascii_letters)
        batch = next(letters)
        la = [next(letters) for _ in range(oa.ndim)]
        lb = [next(letters) for _ in range(ob.ndim)]
        for da, db in zip(self.axes_a, self.axes_b):
            lb[db] = la[da]
        lout = [batch] + [la[k] for k in range(oa.ndim) if k not in self.axes_a] + [
            lb[k] for k in range(ob.ndim) if k not in self.axes_b]
        subs = f"{batch}{''.join(la)},{batch}{''.join(lb)}->{''.join(lout)}"
        return [einsum(subs, a, b)]


# -- Einsum ---------------------------------------------------------------------------------------

def _parse_subscripts(subscripts: str, nops: int):
    s = subscripts.replace(" ", "")
    if "->" not in s:
        raise ValueError(f"einsum: give explicit output subscripts ('ij,jk->ik'), got {subscripts!r}")
    if "." in s:
        raise NotImplementedError("einsum: ellipsis ('...') subscripts are not supported")
    ins, out = s.split("->")
    ins = ins.split(",")
    if len(ins) != nops:
        raise ValueError(f"einsum: {subscripts!r} names {len(ins)} operands, got {nops}")
    for term in ins + [out]:
        if len(set(term)) != len(term):
            raise NotImplementedError(f"einsum: repeated index within one operand ({term!r}) is "
                                      "not supported")
        if not all(c in string.ascii_letters for c in term):
            raise ValueError(f"einsum: invalid subscript {term!r}")
    for c in out:
        if not any(c in t for t in ins):
            raise ValueError(f"einsum: output index {c!r} appears in no operand")
    return tuple(ins), out


class Einsum(Op):
    """``np.einsum`` with explicit output subscripts and no repeated index within an operand."""

    __props__ = ("subscripts",)

    def __init__(self, subscripts: str):
        self.subscripts = subscripts.replace(" ", "")

    def make_node(self, *operands):
        operands = [as_tensor_variable(o) for o in operands]
        ins, out = _parse_subscripts(self.subscripts, len(operands))
        sizes: dict = {}
        for term, op in zip(ins, operands):
            if len(term) != op.ndim:
                raise ValueError(f"einsum: subscript {term!r} has {len(term)} indices but "
                                 f"{_label(op)} has {op.ndim} dimensions")
            for c, s in zip(term, op.type.shape):
                if s is None or s == 1:
                    continue
                if sizes.get(c, s) != s:
                    raise ValueError(f"einsum: index {c!r} has sizes {sizes[c]} and {s} in "
                                     f"{self.subscripts!r}")
                sizes[c] = s
        shape = []
        for c in out:
            dims = [op.type.shape[t.index(c)] for t, op in zip(ins, operands) if c in t]
            if c in sizes:
                shape.append(sizes[c])
            elif all(d == 1 for d in dims):
                shape.append(1)
            else:
                shape.append(None)
        shape = tuple(shape)
        dtype = np.result_type(*[np.dtype(o.dtype) for o in operands]).name
        return Apply(self, operands, [TensorType(dtype, shape)()])

    def make_thunk_function(self, node):
        subs = self.subscripts
        dtype = np.dtype(node.outputs[0].type.dtype)
        optimize = len(node.inputs) > 2

        def run(*ops):
            out = np.asarray(np.einsum(subs, *ops, optimize=optimize))
            return out if out.dtype == dtype else out.astype(dtype)
        return run


    def pullback(self, inputs, outputs, output_grads):
        (g,) = output_grads
        if g is None:
            return [None] * len(inputs)
        ins, out = _parse_subscripts(self.subscripts, len(inputs))
        grads = []
        for k, (term, x) in enumerate(zip(ins, inputs)):
            if x.dtype in discrete_dtypes:
                grads.append(None)
                continue
            others = [(t, v) for j, (t, v) in enumerate(zip(ins, inputs)) if j != k]
            avail = set(out).union(*[set(t) for t, _ in others])
            target = "".join(c for c in term if c in avail)
            subs = ",".join([out] + [t for t, _ in others]) + "->" + target
            gk = Einsum(subs)(g, *[v for _, v in others])
            if len(target) != len(term):  # indices summed only within x: broadcast back
                order = []
                it = iter(range(gk.ndim))
                for c in term:
                    order.append(next(it) if c in avail else "x")
                gk = broadcast_like(DimShuffle(gk.ndim, tuple(order))(gk), x)
            grads.append(sum_to_static(gk, x))
        return grads

    def pushforward(self, inputs, outputs, tangents):
        total = None
        for k, t in enumerate(tangents):
            if t is None:
                continue
            ops = list(inputs)
            ops[k] = t
            total = _add(total, self(*ops))
        return [total]

    def vectorize_node(self, node, *operands):
        ins, out = _parse_subscripts(self.subscripts, len(operands))
        used = set("".join(ins))
        batch = next(c for c in string.ascii_letters if c not in used)
        new_ins = [batch + t if o.ndim > i.ndim else t
                   for t, o, i in zip(ins, operands, node.inputs)]
        return [Einsum(",".join(new_ins) + "->" + batch + out)(*operands)]


# -- public functions -----------------------------------------------------------------------------

def dot(a, b):
    """``np.dot``: 0-d times anything multiplies; 1-d/2-d use BLAS; n-d contracts the last
    axis of ``a`` with the second-to-last of ``b`` (or its only axis)."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        from symgrad.tensor.math import mul

        return mul(a, b)
    if a.ndim <= 2 and b.ndim <= 2:
        return Dot()(a, b)
    db = b.ndim - 2 if b.ndim >= 2 else 0
    sa, sb = a.type.shape[-1], b.type.shape[db]
    if sa is not None and sb is not None and sa != sb:
        raise _not_aligned("dot", a, b, a.ndim - 1, db)
    return TensorDot([a.ndim - 1], [db])(a, b)


def matmul(a, b):
    """``np.matmul`` (the ``@`` operator): batched matrix products with broadcasting."""
    return MatMul()(a, b)


def tensordot(a, b, axes=2):
    """``np.tensordot``: ``axes`` an int N (last N of a with first N of b) or a pair of
    axis sequences."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    if isinstance(axes, int | np.integer):
        n = int(axes)
        if n < 0 or n > a.ndim or n > b.ndim:
            raise ValueError(f"tensordot: axes={n} is out of range for operands of {a.ndim} and "
                             f"{b.ndim} dimensions")
        axes_a, axes_b = list(range(a.ndim - n, a.ndim)), list(range(n))
    else:
        try:
            axes_a, axes_b = axes
        except (TypeError, ValueError):
            raise ValueError(f"tensordot: axes must be an int or a pair of sequences, got "
                             f"{axes!r}") from None
        axes_a = [axes_a] if isinstance(axes_a, int | np.integer) else list(axes_a)
        axes_b = [axes_b] if isinstance(axes_b, int | np.integer) else list(axes_b)
        if len(axes_a) != len(axes_b):
            raise ValueError(f"tensordot: axes {axes_a} and {axes_b} differ in length")
        axes_a = [normalize_axis(x, a.ndim, "tensordot", a)[0] for x in axes_a]
        axes_b = [normalize_axis(x, b.ndim, "tensordot", b)[0] for x in axes_b]
    return TensorDot(axes_a, axes_b)(a, b)


def outer(a, b):
    """``np.outer``: the outer product of the flattened operands (a 2-d result)."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    if a.ndim != 1 or b.ndim != 1:
        from symgrad.tensor import flatten

        a = a if a.ndim == 1 else flatten(a, 1)
        b = b if b.ndim == 1 else flatten(b, 1)
    return _outer1(a, b)


def einsum(subscripts, *operands):
    """``np.einsum`` with explicit output subscripts (``'bij,bjk->bik'``)."""
    return Einsum(subscripts)(*operands)

