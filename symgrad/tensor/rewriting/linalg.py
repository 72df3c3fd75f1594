"""Rewrites of products: dot chains evaluated in their cheapest order."""

from __future__ import annotations

import numpy as np

import symgrad.tensor.math as sm
from symgrad.graph.basic import Op
from symgrad.rewrite.basic import global_rewriter, node_rewriter
from symgrad.rewrite.engine import apply_replacements
from symgrad.tensor.elemwise import DimShuffle, cast
from symgrad.tensor.rewriting.basic import (
    fast_math,
    get_dims,
    is_float,
    lazy_class,
    loaded_class,
    owner_if,
    scalar_const,
    single_client,
)
from symgrad.tensor.rewriting.dims import DIMS_RULES, _rules

DOT = "symgrad.tensor.linalg:Dot"


def _cost(a_shape, b_shape):
    """Multiplications of dot(a, b) from static shapes, or None when unknown."""
    dims = list(a_shape) + list(b_shape[1:])
    if None in dims:
        return None
    n = 1
    for d in dims:
        n *= d
    return n


def _out_shape(a_shape, b_shape):
    return tuple(a_shape[:-1]) + tuple(b_shape[1:])


@node_rewriter([DOT], sets=("specialize",))
def local_dot_chain_order(fgraph, node):
    """dot(dot(A, B), C) <-> dot(A, dot(B, C)), whichever multiplies less: always the
    matrix-vector order for a vector at either end; by static shapes otherwise."""
    Dot = lazy_class(DOT)
    a, b = node.inputs
    if a.owner is not None and isinstance(a.owner.op, Dot) and single_client(fgraph, a):
        A, B = a.owner.inputs
        C = b
        left_first = True
    elif b.owner is not None and isinstance(b.owner.op, Dot) and single_client(fgraph, b):
        A = a
        B, C = b.owner.inputs
        left_first = False
    else:
        return None
    if len({A.dtype, B.dtype, C.dtype, node.outputs[0].dtype}) != 1:
        return None  # keep the intermediate's dtype promotions as written
    sa, sb, sc = A.type.shape, B.type.shape, C.type.shape
    if left_first and C.ndim == 1 and A.ndim == 2 and B.ndim == 2:
        return [Dot()(A, Dot()(B, C))]
    if not left_first and A.ndim == 1 and B.ndim == 2 and C.ndim == 2:
        return [Dot()(Dot()(A, B), C)]
    c_left = _cost(sa, sb)
    c_right = _cost(sb, sc)
    if c_left is None or c_right is None:
        return None
    cost_left = c_left + _cost(_out_shape(sa, sb), sc)
    cost_right = c_right + _cost(sa, _out_shape(sb, sc))
    if left_first and cost_right < cost_left:
        return [Dot()(A, Dot()(B, C))]
    if not left_first and cost_left < cost_right:
        return [Dot()(Dot()(A, B), C)]
    return None


# -- products with an identity ------------------------------------------------------------------------
#
# A Jacobian built by batching a pullback over the rows of an identity multiplies that identity
# (scaled by a row vector) with a matrix: dot(eye(n) * r, W), O(n^3). It is r[:, None] * W,
# except on NaN and inf: every zero of the identity times an inf or NaN (of r, or anywhere in
# W's column) gives NaN in the matrix product. The rewrite keeps that: an entry is NaN where
# another row than its own has a non-finite value in its column (or fast_math says no inf).

EYE = "symgrad.tensor.creation:Eye"
_rules()


def _is_eye(var, dims):
    """``var`` is eye(n, n, 0) (provably square)."""
    Eye = lazy_class(EYE)
    node = var.owner
    if Eye is None or node is None or not isinstance(node.op, Eye):
        return False
    n, m, k = node.inputs
    if scalar_const(k) != 0:
        return False
    d = dims(var)
    return n is m or d[0] == d[1]


def _scaled_eye(fgraph, var):
    """(eye, [row factors]) when var is eye(n) or eye(n) * r1 * ... with rows r_i of shape
    (1, ?) that do not enlarge it; else None."""
    dims = get_dims(fgraph)
    if _is_eye(var, dims):
        return var, []
    node = owner_if(var, "mul")
    if node is None or var.ndim != 2:
        return None
    eyes = [i for i in node.inputs if _is_eye(i, dims)]
    if len(eyes) != 1:
        return None
    rows = [i for i in node.inputs if i is not eyes[0]]
    if any(r.ndim != 2 or r.type.shape[0] != 1 for r in rows):
        return None
    if dims(var) != dims(eyes[0]):
        return None
    return eyes[0], rows


def _rows_as_column(rows, w):
    order = (1, "x") if w.ndim == 2 else (1,)
    return [DimShuffle(2, order)(r) for r in rows]


def _match_scaled_eye_dot(fgraph, node, prove_lengths=True):
    """(eye, rows, W) for dot(eye(n) * rows..., W) where the shapes provably agree (with
    ``prove_lengths=False``, W's rows may be any number: for a replacement that checks it
    at run time and computes the product itself, raising as it does, when it differs)."""
    a, w = node.inputs
    out = node.outputs[0]
    found = _scaled_eye(fgraph, a)
    if found is None or w.ndim not in (1, 2) or not is_float(out):
        return None
    eye, rows = found
    dims = get_dims(fgraph)
    if prove_lengths and dims(w)[0] != dims(eye)[1]:
        return None  # the product would raise; a broadcast would not
    return eye, rows, w


@node_rewriter([DOT], sets=("specialize",))
def local_dot_scaled_eye_fast_math(fgraph, node):
    """Under fast_math: dot(eye(n) * r, W) -> r[:, None] * W and dot(eye(n), W) -> W (with
    inf or NaN in W or r, the product with the identity's zeros would give NaN)."""
    if not fast_math():
        return None
    found = _match_scaled_eye_dot(fgraph, node)
    if found is None:
        return None
    _, rows, w = found
    out = node.outputs[0]
    cols = _rows_as_column(rows, w)
    fast = sm.mul(*cols, w) if cols else w
    return [fast if fast.dtype == out.dtype else cast(fast, out.dtype)]


def scaled_identity_parts(xp, n, rows, w, wdim, dtype):
    """``(fast, exact)`` for ``dot(eye(n) * rows..., w)`` with the array library ``xp``
    (numpy or jax.numpy): ``fast`` is ``rows[:, None] * w`` (None where the lengths do not
    fit, so that only the product applies), ``exact()`` computes the product itself. They
    agree wherever ``fast`` is finite; the caller checks that."""
    scale = None
    for r in rows:
        scale = r if scale is None else scale * r

    def exact():
        a = xp.eye(n, dtype=dtype)
        return xp.dot(a if scale is None else a * scale, w).astype(dtype)

    if w.shape[0] != n or (scale is not None and scale.shape[1] not in (1, n)):
        return None, exact  # the product raises (or broadcasts) as it does
    if scale is None:
        fast = w.astype(dtype)  # a copy: the result never aliases w
    else:
        col = scale.reshape(-1, 1) if wdim == 2 else scale.reshape(-1)
        fast = (col * w).astype(dtype, copy=False)
    return (fast if fast.shape[0] == n else None), exact


class _ScaledIdentityDot(Op):
    """``dot(eye(n) * r1 * ... * rk, W)`` for rows r_i of shape (1, n) (or (1, 1)), computed as
    ``r[:, None] * W`` in O(n^2): the same values whenever that result is finite (the terms of
    the matrix product that it skips are then all zeros). Otherwise (an inf or NaN in r or W,
    whose product with the identity's zeros is NaN) the matrix product itself is computed.

    Inputs: n (int scalar), the rows, W. Made by the python backend's rewrites only.
    """

    __props__ = ()

    def make_node(self, n, *rows_and_w):
        from symgrad.graph.basic import Apply
        from symgrad.tensor.basic import as_tensor_variable
        from symgrad.tensor.type import TensorType

        n = as_tensor_variable(n)
        *rows, w = [as_tensor_variable(v) for v in rows_and_w]
        dtype = w.dtype
        for r in rows:
            dtype = np.result_type(dtype, r.dtype).name
        shape = (None,) + tuple(w.type.shape[1:])
        return Apply(self, [n, *rows, w], [TensorType(dtype, shape)()])

    def make_thunk_function(self, node):
        dtype = np.dtype(node.outputs[0].type.dtype)
        wdim = node.inputs[-1].ndim

        def run(n, *rows_and_w):
            *rows, w = rows_and_w
            fast, exact = scaled_identity_parts(np, int(n), rows, w, wdim, dtype)
            if fast is not None:
                with np.errstate(all="ignore"):
                    total = np.add.reduce(fast, axis=None)
                if np.isfinite(total):
                    return fast
            return exact()  # inf or NaN somewhere (or lengths that differ): the product
        return run

    def infer_shape(self, node, input_shapes):
        return [[node.inputs[0]] + list(input_shapes[-1][1:])]

    # Derivatives and batching: those of the expression it stands for.
    @staticmethod
    def expand(n, *rows_and_w):
        from symgrad.tensor.creation import Eye
        from symgrad.tensor.linalg import Dot

        *rows, w = rows_and_w
        a = Eye(w.dtype)(n, n, 0)
        if rows:
            a = sm.mul(a, *rows)
        return Dot()(a, w)

    def connection_pattern(self, node):
        return [False] + [True] * (len(node.inputs) - 1)

    def pullback(self, inputs, outputs, output_grads):
        from symgrad.gradient import Lop

        (g,) = output_grads
        if g is None:
            return [None] * len(inputs)
        wrt = list(inputs[1:])
        grads = Lop(self.expand(*inputs), wrt, g, disconnected_inputs="ignore")
        return [None, *grads]

    def pushforward(self, inputs, outputs, tangents):
        from symgrad.gradient import pushforward_graph

        ins = list(inputs[1:])
        given = [(i, t) for i, t in zip(ins, tangents[1:]) if t is not None]
        if not given:
            return [None]
        (t,) = pushforward_graph([self.expand(*inputs)], [i for i, _ in given],
                                 [t for _, t in given])
        return [t]

    def vectorize_node(self, node, *batched):
        from symgrad.graph.vectorize import is_batched, vectorize_graph

        flags = [is_batched(o, b) for o, b in zip(node.inputs, batched)]
        core_inputs = [o if f else b for o, b, f in zip(node.inputs, batched, flags)]
        core = self.expand(*core_inputs)
        return [vectorize_graph(core, {o: b for o, b, f in zip(node.inputs, batched, flags) if f})]


def _scaled_identity_rule(node, in_dims, analysis=None):
    return [in_dims[-1]]


DIMS_RULES.setdefault(_ScaledIdentityDot, _scaled_identity_rule)


@global_rewriter(sets=("fuse", "scaled_identity"), name="dot_scaled_identity")
def dot_scaled_identity(fgraph, context):
    """dot(eye(n) * r, W) -> r[:, None] * W in O(n^2), dot(eye(n), W) -> W (the python, JAX
    and numba backends; exact, see _ScaledIdentityDot). Runs before fusion, which would hide the eye."""
    if context is None or getattr(context.mode, "backend", "python") not in (
            "python", "jax", "numba"):
        return 0  # backends with a rule for _ScaledIdentityDot (numba runs it as numpy glue)
    Dot = loaded_class(DOT)
    done = 0
    for node in fgraph.toposort():
        if type(node.op) is not Dot or node not in fgraph.apply_nodes:
            continue
        found = _match_scaled_eye_dot(fgraph, node, prove_lengths=False)
        if found is None:
            continue
        eye, rows, w = found
        out = node.outputs[0]
        new = _ScaledIdentityDot()(eye.owner.inputs[0], *rows, w)
        if new.dtype != out.dtype or new.ndim != out.ndim:
            continue
        get_dims(fgraph).alias(out, new)
        if apply_replacements(fgraph, node, [new], "dot_scaled_identity", context):
            done += 1
    context.stats["dot_scaled_identity"] += done
    return done
