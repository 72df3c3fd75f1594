"""Rewrites of products: dot chains evaluated in their cheapest order."""

from __future__ import annotations

from symgrad.rewrite.basic import node_rewriter
from symgrad.tensor.rewriting.basic import lazy_class, single_client

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
