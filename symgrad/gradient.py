"""Derivatives: grad, Lop, Rop, jacobian, hessian, hessian_vector_product, verify_grad.

Reverse mode walks the graph once in reverse topological order calling each
op's ``pullback``; forward mode walks it once forward calling ``pushforward``.
Both are loops over a toposort, so a 100,000-deep chain is fine. Jacobians and
Hessians are one pullback (or pushforward) graph batched over the rows of an
identity matrix with the ops' batching rules, not a loop over rows.

Zero and "does not depend" are both spelled None inside rules; the op's
``connection_pattern`` (default: every input connected) tells them apart. A
rule that cannot give a derivative returns a :class:`NotDifferentiable` marker,
which becomes an error only if a derivative is actually needed through it.
"""

from __future__ import annotations

import contextlib
import gc
import warnings
from collections.abc import Sequence

import numpy as np

from symgrad.graph.basic import Apply, Op, Variable, as_list
from symgrad.graph.traversal import clone_replace, toposort

__all__ = [
    "grad", "Lop", "Rop", "jacobian", "hessian", "hessian_vector_product", "verify_grad",
    "stop_gradient", "disconnected_grad", "zero_grad", "grad_scale", "grad_clip",
    "DisconnectedInputError", "NullTypeGradError", "NotDifferentiable", "GradientError",
]


class DisconnectedInputError(ValueError):
    """The cost does not depend on a variable that a derivative was asked for."""


class NullTypeGradError(TypeError):
    """A derivative is needed through an op that cannot be differentiated."""


class GradientError(AssertionError):
    """verify_grad found a rule that disagrees with finite differences."""


class NotDifferentiable:
    """A rule's answer for an input it cannot differentiate; raises only if it is needed."""

    __slots__ = ("op", "reason")

    def __init__(self, op, reason: str = ""):
        self.op = op
        self.reason = reason

    def __repr__(self):
        return f"NotDifferentiable({self.op}: {self.reason})"


def raise_not_differentiable(marker: NotDifferentiable, what: str = "") -> None:
    raise NullTypeGradError(
        f"cannot differentiate through op {marker.op}{what}: {marker.reason}. "
        "Wrap the part that should not be differentiated in stop_gradient() if its "
        "derivative is not needed."
    )


def _is_discrete(var) -> bool:
    return var.type.dtype in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
                              "uint32", "uint64")


def _connection_pattern(node: Apply) -> list[bool]:
    fn = getattr(node.op, "connection_pattern", None)
    if fn is None:
        return [True] * len(node.inputs)
    return list(fn(node))


def _var_label(var: Variable, position: int | None = None) -> str:
    name = repr(var.name) if var.name is not None else f"an unnamed {var.type}"
    return name if position is None else f"{name} (position {position} of wrt)"


def _sum_terms(terms):
    if len(terms) == 1:
        return terms[0]
    add = _ADD[0]
    if add is None:
        # (fetched once: a ``from ... import`` in this hot path costs microseconds per call)
        from symgrad.tensor.math import add
        _ADD[0] = add
    return add(*terms)


_ADD: list = [None]


def _fit_to(value, like):
    """Cast a derivative to ``like``'s float dtype (float32 stays float32)."""
    if value.type.dtype == like.type.dtype or _is_discrete(like):
        return value
    from symgrad.tensor.elemwise import cast

    return cast(value, like.type.dtype)


def _zeros_like(var):
    from symgrad.tensor import zeros_like

    if _is_discrete(var):
        from symgrad.config import config

        return zeros_like(var, dtype=config.floatX)
    return zeros_like(var)


@contextlib.contextmanager
def _building():
    """While a derivative graph is built: the shape analysis that spares SumTo nodes (see
    ``symgrad.tensor.elemwise.shape_analysis``), and no cyclic garbage collection (a
    derivative allocates many small objects and frees none; full collections over a large
    graph in the middle of it cost more than the whole construction)."""
    from symgrad.tensor.elemwise import shape_analysis

    enabled = gc.isenabled()
    gc.disable()
    try:
        with shape_analysis():
            yield
    finally:
        if enabled:
            gc.enable()


_TAKES_NEEDED: dict[type, bool] = {}


def _takes_needed(op) -> bool:
    """Whether ``op``'s pullback accepts ``needed=`` (one bool per input: the gradients the
    caller uses; it may return None for the others instead of building them). A pullback
    declares it with the attribute ``takes_needed = True``; an override in a subclass that
    does not declare it is called with the ordinary signature."""
    cls = type(op)
    known = _TAKES_NEEDED.get(cls)
    if known is None:
        known = _TAKES_NEEDED[cls] = bool(getattr(getattr(cls, "pullback", None),
                                                  "takes_needed", False))
    return known


def backprop(outputs: Sequence[Variable], cotangents: Sequence[Variable | None],
             wrt: Sequence[Variable], consider_constant: Sequence[Variable] = ()):
    """The core of reverse mode: cotangents of ``wrt`` given cotangents of ``outputs``.

    Returns ``(grads, connected)``: for each wrt, the summed cotangent (or None
    where nothing flowed) and whether it is connected to the outputs at all.
    """
    with _building():
        return _backprop(outputs, cotangents, wrt, consider_constant)


def _backprop(outputs, cotangents, wrt, consider_constant):
    stop = set(consider_constant)
    wrt_set = set(wrt)
    nodes = toposort(list(outputs), inputs=list(wrt_set | stop))
    depends: set[Variable] = set(w for w in wrt if w not in stop or w in wrt_set)
    for node in nodes:
        if any(i in depends and i not in stop for i in node.inputs):
            depends.update(node.outputs)
    contributions: dict[Variable, list] = {}
    connected: set[Variable] = set()
    for out, cot in zip(outputs, cotangents):
        connected.add(out)
        if cot is not None:
            contributions.setdefault(out, []).append(cot)

    for node in reversed(nodes):
        if not any(o in connected for o in node.outputs):
            continue
        relevant = [i in depends and i not in stop for i in node.inputs]
        if not any(relevant):
            continue
        output_grads = []
        for o in node.outputs:
            terms = contributions.get(o)
            if not terms or _is_discrete(o):
                output_grads.append(None)
            else:
                output_grads.append(_sum_terms(terms))
        pattern = _connection_pattern(node)
        if all(g is None for g in output_grads):
            for inp, rel, conn in zip(node.inputs, relevant, pattern):
                if rel and conn:
                    connected.add(inp)
            continue
        op = node.op
        if _takes_needed(op):
            input_grads = op.pullback(node.inputs, node.outputs, output_grads, needed=relevant)
        else:
            input_grads = op.pullback(node.inputs, node.outputs, output_grads)
        if len(input_grads) != len(node.inputs):
            raise ValueError(f"{node.op}.pullback returned {len(input_grads)} gradients for "
                             f"{len(node.inputs)} inputs")
        for inp, g, rel, conn in zip(node.inputs, input_grads, relevant, pattern):
            if not rel:
                continue
            if isinstance(g, NotDifferentiable):
                raise_not_differentiable(g, f" (needed for input {_var_label(inp)})")
            if g is None:
                if conn:
                    connected.add(inp)
                continue
            connected.add(inp)
            if _is_discrete(inp):
                continue
            if g.type.ndim != inp.type.ndim:
                raise ValueError(f"{node.op}.pullback gave a gradient of ndim {g.type.ndim} for "
                                 f"input {inp} of ndim {inp.type.ndim}")
            contributions.setdefault(inp, []).append(_fit_to(g, inp))

    grads = []
    for w in wrt:
        terms = contributions.get(w)
        grads.append(_sum_terms(terms) if terms else None)
    return grads, [w in connected for w in wrt]


def _handle_disconnected(wrt, grads, connected, disconnected_inputs, return_disconnected,
                         what="the cost"):
    if disconnected_inputs not in ("raise", "warn", "ignore"):
        raise ValueError("disconnected_inputs must be 'raise', 'warn' or 'ignore', "
                         f"got {disconnected_inputs!r}")
    if return_disconnected not in ("zero", "none", "disconnected", "None"):
        raise ValueError("return_disconnected must be 'zero', 'none' or 'disconnected', "
                         f"got {return_disconnected!r}")
    result = []
    for k, (w, g, conn) in enumerate(zip(wrt, grads, connected)):
        if g is not None:
            result.append(g)
            continue
        if not conn:
            message = (f"{what} does not depend on {_var_label(w, k)}: its gradient is "
                       "undefined. Pass disconnected_inputs='ignore' (or 'warn') to get zeros.")
            if disconnected_inputs == "raise":
                raise DisconnectedInputError(message)
            if disconnected_inputs == "warn":
                warnings.warn(message, stacklevel=3)
            if return_disconnected != "zero":
                result.append(None)
                continue
        result.append(_zeros_like(w))
    return result


def _mark_derivative(results, wrt):
    """Record that ``results`` are derivatives at the point ``wrt`` (see function())."""
    for r in results:
        if isinstance(r, Variable) and r.owner is not None:
            prev = getattr(r.tag, "derivative_wrt", ())
            r.tag.derivative_wrt = tuple(prev) + tuple(wrt)


def _check_wrt(wrt_list, fname):
    for k, w in enumerate(wrt_list):
        if not isinstance(w, Variable):
            raise TypeError(f"{fname}: wrt[{k}] must be a symbolic variable, got "
                            f"{type(w).__name__} {w!r}")


def grad(cost, wrt, consider_constant=None, disconnected_inputs="raise",
         return_disconnected="zero", known_grads=None, null_gradients="raise"):
    """The gradient of a scalar ``cost`` with respect to ``wrt`` (a variable or a list).

    Examples
    --------
    >>> import symgrad
    >>> import symgrad.tensor as st
    >>> x = st.dscalar("x")
    >>> symgrad.pp(symgrad.grad(x ** 2, x))
    '((fill((x ** 2), 1.0) * 2) * (x ** (2 - 1)))'
    """
    from symgrad.tensor.basic import as_tensor_variable, constant
    from symgrad.tensor.math import second

    single = not isinstance(wrt, list | tuple)
    wrt_list = as_list(wrt)
    _check_wrt(wrt_list, "grad")
    outputs, cotangents = [], []
    if cost is not None:
        cost = as_tensor_variable(cost)
        if cost.type.ndim != 0:
            raise TypeError(
                f"grad: cost must be a scalar (0-d) expression, got {cost} of type {cost.type}. "
                "Reduce it first (cost.sum()), or use jacobian() for a non-scalar expression."
            )
        seed_dtype = cost.type.dtype if not _is_discrete(cost) else "float64"
        outputs.append(cost)
        cotangents.append(second(cost, constant(1.0, dtype=seed_dtype)))
    if known_grads:
        for var, g in known_grads.items():
            outputs.append(var)
            cotangents.append(as_tensor_variable(g))
    if not outputs:
        raise TypeError("grad needs a cost or known_grads")
    grads, connected = backprop(outputs, cotangents, wrt_list, consider_constant or ())
    result = _handle_disconnected(wrt_list, grads, connected, disconnected_inputs,
                                  return_disconnected)
    _mark_derivative(result, wrt_list)
    return result[0] if single else result


def Lop(f, wrt, eval_points, consider_constant=None, disconnected_inputs="raise"):
    """Vector times Jacobian: ``eval_points`` (shaped like ``f``) pulled back onto ``wrt``.

    The result has the shape of ``wrt``.
    """
    from symgrad.tensor.basic import as_tensor_variable

    f_list = as_list(f)
    v_list = [as_tensor_variable(v) for v in as_list(eval_points)]
    if len(f_list) != len(v_list):
        raise ValueError(f"Lop: {len(f_list)} expressions but {len(v_list)} eval_points")
    for k, (fi, vi) in enumerate(zip(f_list, v_list)):
        if fi.type.ndim != vi.type.ndim:
            raise ValueError(f"Lop: eval_points[{k}] must have the shape of f[{k}] "
                             f"({fi.type}), got {vi.type}")
    single = not isinstance(wrt, list | tuple)
    wrt_list = as_list(wrt)
    _check_wrt(wrt_list, "Lop")
    grads, connected = backprop(f_list, [_fit_to(v, fi) for fi, v in zip(f_list, v_list)],
                                wrt_list, consider_constant or ())
    result = _handle_disconnected(wrt_list, grads, connected, disconnected_inputs, "zero",
                                  what="f")
    _mark_derivative(result, wrt_list)
    return result[0] if single else result


def pushforward_graph(outputs: Sequence[Variable], wrt: Sequence[Variable],
                      tangents: Sequence[Variable]) -> list[Variable | None]:
    """The core of forward mode: tangents of ``outputs`` given tangents of ``wrt``."""
    with _building():
        return _pushforward_graph(outputs, wrt, tangents)


def _pushforward_graph(outputs, wrt, tangents):
    known = dict(zip(wrt, tangents))
    for node in toposort(list(outputs), inputs=list(known)):
        ins = [known.get(i) for i in node.inputs]
        if all(t is None for t in ins):
            continue
        outs = node.op.pushforward(node.inputs, node.outputs, ins)
        if len(outs) != len(node.outputs):
            raise ValueError(f"{node.op}.pushforward returned {len(outs)} tangents for "
                             f"{len(node.outputs)} outputs")
        for o, t in zip(node.outputs, outs):
            if isinstance(t, NotDifferentiable):
                raise_not_differentiable(t)
            if t is not None and not _is_discrete(o):
                known[o] = _fit_to(t, o)
    return [known.get(o) for o in outputs]


def Rop(f, wrt, eval_points, disconnected_outputs="zero"):
    """Jacobian times vector: the change of ``f`` when ``wrt`` moves along ``eval_points``.

    ``eval_points`` has the shape of ``wrt``; the result has the shape of ``f``.
    Runs forward mode through each op's pushforward rule.

    Unlike PyTensor, the result may be compiled with ``wrt`` among the inputs even
    when it does not depend on it (``Rop(dot(x, W), W, V)`` is ``dot(x, V)``): a
    derivative counts as using the point it is taken at.
    """
    from symgrad.tensor.basic import as_tensor_variable

    single = not isinstance(f, list | tuple)
    f_list = [as_tensor_variable(x) for x in as_list(f)]
    wrt_list = as_list(wrt)
    _check_wrt(wrt_list, "Rop")
    v_list = [as_tensor_variable(v) for v in as_list(eval_points)]
    if len(wrt_list) != len(v_list):
        raise ValueError(f"Rop: {len(wrt_list)} wrt variables but {len(v_list)} eval_points")
    for k, (w, v) in enumerate(zip(wrt_list, v_list)):
        if w.type.ndim != v.type.ndim:
            raise ValueError(f"Rop: eval_points[{k}] must have the shape of wrt[{k}] "
                             f"({w.type}), got {v.type}")
    plain = [_fit_to(v, w) for w, v in zip(wrt_list, v_list)]
    checked = [_shaped_like(v, w) for w, v in zip(wrt_list, plain)]
    tangents = pushforward_graph(f_list, wrt_list, checked)
    tangents = _drop_unneeded_checks(tangents, wrt_list, plain, checked)
    result = [t if t is not None else _zeros_like(fi) for fi, t in zip(f_list, tangents)]
    _mark_derivative(result, wrt_list)
    return result[0] if single else result


def _shaped_like(v, w):
    """``v`` checked at run time to have ``w``'s shape (a tangent at w must have it), so that
    the rewriter knows they are equal: no runtime broadcasting to undo in the result."""
    from symgrad.tensor.shape import SpecifyShape, shape_i

    if not hasattr(w.type, "shape") or w.type.ndim == 0:
        return v
    mask, lengths = [], []
    for k, vs in enumerate(v.type.shape):
        if vs is None:
            mask.append(True)
            lengths.append(shape_i(w, k))
        else:
            mask.append(False)
    if not any(mask):
        return v
    return SpecifyShape(tuple(mask))(v, *lengths)


def _drop_unneeded_checks(tangents, wrt, plain, checked):
    """Undo the shape checks of eval points whose wrt the tangents do not otherwise use (a
    linear f): the result need not read the point it was taken at (see Rop's docstring)."""
    from symgrad.graph.traversal import ancestors

    outs = [t for t in tangents if t is not None]
    triples = [(w, c, p) for w, c, p in zip(wrt, checked, plain) if c is not p]
    if not outs or not triples:
        return tangents
    seen = set(ancestors(outs, blockers=[c for _, c, _ in triples]))
    undo = {c: p for w, c, p in triples if c in seen and w not in seen}
    if not undo:
        return tangents
    return [None if t is None else clone_replace(t, undo) for t in tangents]


def pushforward_from_pullback(op: Op, inputs, outputs, tangents):
    """Forward mode from reverse mode (the double-pullback trick).

    The pullback ``u -> J^T u`` is linear in ``u``; the gradient of
    ``<J^T u, t>`` with respect to ``u`` is ``J t``.
    """
    placeholders = [o.type() for o in outputs]
    pulled = op.pullback(inputs, outputs, placeholders)
    terms = []
    for g, t in zip(pulled, tangents):
        if t is None or g is None:
            continue
        if isinstance(g, NotDifferentiable):
            raise_not_differentiable(g)
        terms.append((g * t).sum())
    if not terms:
        return [None] * len(outputs)
    total = _sum_terms(terms)
    jt, _ = backprop([total], [_one_like(total)], placeholders)
    zeros = {p: _zeros_like(o) for p, o in zip(placeholders, outputs)}
    return [None if t is None else clone_replace(t, zeros) for t in jt]


def _one_like(var):
    from symgrad.tensor.basic import constant
    from symgrad.tensor.math import second

    return second(var, constant(1.0, dtype=var.type.dtype))


def jacobian(expression, wrt, consider_constant=None, disconnected_inputs="raise",
             vectorize=True):
    """The Jacobian of ``expression`` (any ndim) with respect to ``wrt`` (a variable or list).

    Each result has shape ``expression.shape + wrt.shape``. It is built as one
    pullback batched over the rows of an identity (or one pushforward batched
    over the columns, when ``wrt`` is statically smaller than the expression),
    so its cost is a few batched operations rather than a loop.

    >>> import symgrad, symgrad.tensor as st
    >>> x = st.dvector("x")
    >>> symgrad.function([x], symgrad.gradient.jacobian(x ** 2, x))([4.0, 4.0])
    array([[8., 0.],
           [0., 8.]])
    """
    from symgrad.tensor import concatenate, reshape, shape
    from symgrad.tensor.basic import as_tensor_variable

    expression = as_tensor_variable(expression)
    single = not isinstance(wrt, list | tuple)
    wrt_list = as_list(wrt)
    _check_wrt(wrt_list, "jacobian")
    if not vectorize:
        return _jacobian_by_scan(expression, wrt, consider_constant, disconnected_inputs)
    if expression.type.ndim == 0:
        result = grad(expression, wrt_list, consider_constant=consider_constant,
                      disconnected_inputs=disconnected_inputs)
        return result[0] if single else result
    results = []
    for w in wrt_list:
        out_size = _static_size(expression)
        in_size = _static_size(w)
        if in_size is not None and (out_size is None or in_size < out_size):
            rows = _forward_jacobian_rows(expression, w, disconnected_inputs)
        else:
            rows = _reverse_jacobian_rows(expression, w, consider_constant, disconnected_inputs)
        target = concatenate([shape(expression), shape(w)]) if w.type.ndim else shape(expression)
        results.append(reshape(rows, target, ndim=expression.type.ndim + w.type.ndim))
    _mark_derivative(results, wrt_list)
    return results[0] if single else results


def _static_size(var) -> int | None:
    shape = var.type.shape
    if any(s is None for s in shape):
        return None
    return int(np.prod(shape, dtype=np.int64))


def _reverse_jacobian_rows(expression, w, consider_constant, disconnected_inputs):
    """J as (expression.size, *w.shape): the pullback of each basis vector, batched."""
    from symgrad.graph.vectorize import vectorize_graph
    from symgrad.tensor import eye, reshape

    flat = expression.flatten()
    u = flat.type()
    (row,) = _handle_disconnected(
        [w], *backprop([flat], [u], [w], consider_constant or ()),
        disconnected_inputs, "zero", what="the expression")
    n = flat.shape[0]
    basis = eye(n, dtype=flat.type.dtype)
    batched = vectorize_graph(row, {u: basis})
    if batched.type.ndim == row.type.ndim:  # the row does not depend on u
        from symgrad.tensor import alloc

        batched = alloc(batched, n, *[batched.shape[k] for k in range(batched.type.ndim)])
    return reshape(batched, _cat_shape(n, w), ndim=w.type.ndim + 1)


def _forward_jacobian_rows(expression, w, disconnected_inputs):
    """J with the wrt axis first, transposed so the result is (expression.size, *w.shape)."""
    from symgrad.graph.vectorize import vectorize_graph
    from symgrad.tensor import eye, reshape

    m = _static_size(w)
    t = w.type()
    (col,) = pushforward_graph([expression], [w], [t])
    if col is None:
        connected = backprop([expression], [expression.type()], [w])[1][0]
        (col,) = _handle_disconnected([w], [None], [connected], disconnected_inputs, "zero",
                                      what="the expression")
        col = _zeros_like(expression)
    basis = reshape(eye(m, dtype=w.type.dtype), _cat_shape(m, w), ndim=w.type.ndim + 1)
    batched = vectorize_graph(col, {t: basis})  # (m, *expression.shape)
    if batched.type.ndim == col.type.ndim:
        from symgrad.tensor import alloc

        batched = alloc(batched, m, *[batched.shape[k] for k in range(batched.type.ndim)])
    flat = reshape(batched, _cat_shape(m, None, -1), ndim=2)  # (m, out_size)
    return reshape(flat.T, _cat_shape(-1, w), ndim=w.type.ndim + 1)


def _cat_shape(first, w, last=None):
    from symgrad.tensor import as_tensor_variable, concatenate, shape

    parts = [as_tensor_variable([first]) if not isinstance(first, Variable)
             else first.reshape((1,))]
    if w is not None and w.type.ndim:
        parts.append(shape(w))
    if last is not None:
        parts.append(as_tensor_variable([last]))
    return concatenate(parts) if len(parts) > 1 else parts[0]


def _jacobian_by_scan(expression, wrt, consider_constant, disconnected_inputs):
    try:
        from symgrad.scan import scan
    except ImportError as exc:  # pragma: no cover - scan ships with the package
        raise NotImplementedError("jacobian(vectorize=False) needs scan") from exc
    from symgrad.tensor import arange

    single = not isinstance(wrt, list | tuple)
    wrt_list = as_list(wrt)
    flat = expression.flatten()

    def row(i, *ws):
        return grad(flat[i], list(ws), consider_constant=consider_constant,
                    disconnected_inputs=disconnected_inputs)

    rows, _ = scan(row, sequences=arange(flat.shape[0]), non_sequences=wrt_list,
                   return_list=True)
    results = [_reshape_rows(r, expression, w) for r, w in zip(rows, wrt_list)]
    return results[0] if single else results


def _reshape_rows(rows, expression, w):
    from symgrad.tensor import concatenate, reshape, shape

    target = concatenate([shape(expression), shape(w)]) if w.type.ndim else shape(expression)
    return reshape(rows, target, ndim=expression.type.ndim + w.type.ndim)


def hessian(cost, wrt, consider_constant=None, disconnected_inputs="raise", vectorize=True):
    """The Hessian of a scalar ``cost``: for each wrt, shape ``wrt.shape + wrt.shape``.

    ``wrt`` may be a scalar, vector or matrix (or a list mixing them). Computed
    forward-over-reverse: the pushforward of the gradient, batched over an identity.

    >>> import symgrad, symgrad.tensor as st
    >>> x = st.dvector("x")
    >>> symgrad.function([x], symgrad.gradient.hessian((x ** 2).sum(), x))([4.0, 4.0])
    array([[2., 0.],
           [0., 2.]])
    """
    from symgrad.tensor.basic import as_tensor_variable

    cost = as_tensor_variable(cost)
    if cost.type.ndim != 0:
        raise TypeError(f"hessian: cost must be a scalar (0-d) expression, got {cost} of type "
                        f"{cost.type}")
    single = not isinstance(wrt, list | tuple)
    wrt_list = as_list(wrt)
    _check_wrt(wrt_list, "hessian")
    results = []
    for w in wrt_list:
        g = grad(cost, w, consider_constant=consider_constant,
                 disconnected_inputs=disconnected_inputs)
        if not vectorize:
            results.append(jacobian(g, w, consider_constant=consider_constant,
                                    disconnected_inputs="ignore", vectorize=False))
            continue
        results.append(_hessian_forward(g, w))
    _mark_derivative(results, wrt_list)
    return results[0] if single else results


def _hessian_forward(g, w):
    from symgrad.graph.vectorize import vectorize_graph
    from symgrad.tensor import concatenate, eye, reshape, shape

    t = w.type()
    (col,) = pushforward_graph([g], [w], [t])
    if col is None:
        col = _zeros_like(g)
    if w.type.ndim == 0:
        from symgrad.tensor.basic import constant

        return clone_replace(col, {t: constant(1.0, dtype=w.type.dtype)})
    m = w.size
    basis = reshape(eye(m, dtype=w.type.dtype), _cat_shape(m, w), ndim=w.type.ndim + 1)
    batched = vectorize_graph(col, {t: basis})  # (m, *w.shape): row k is H e_k
    if batched.type.ndim == col.type.ndim:
        from symgrad.tensor import alloc

        batched = alloc(batched, m, *[batched.shape[k] for k in range(batched.type.ndim)])
    # H is symmetric, so H e_k is both row and column k.
    return reshape(batched, concatenate([shape(w), shape(w)]), ndim=2 * w.type.ndim)


def hessian_vector_product(cost, wrt, p, consider_constant=None):
    """H p for a scalar cost, forward-over-reverse (the Rop of the gradient)."""
    single = not isinstance(wrt, list | tuple)
    wrt_list = as_list(wrt)
    p_list = as_list(p)
    g = grad(cost, wrt_list, consider_constant=consider_constant)
    hv = Rop(g, wrt_list, p_list)
    return hv[0] if single else hv


# -- gradient modifiers -------------------------------------------------------------------------

class GradientModifier(Op):
    """Identity in the forward pass; changes what flows back.

    kind: 'stop' (disconnects), 'zero' (connected, zero), 'scale' (times
    ``factor``), 'clip' (clipped to [lo, hi]).
    """

    __props__ = ("kind", "factor", "lo", "hi")

    def __init__(self, kind, factor=1.0, lo=None, hi=None):
        self.kind, self.factor, self.lo, self.hi = kind, factor, lo, hi

    def __str__(self):
        return {"stop": "stop_gradient", "zero": "zero_grad", "scale": "grad_scale",
                "clip": "grad_clip"}[self.kind]

    def make_node(self, x):
        from symgrad.tensor.basic import as_tensor_variable

        x = as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def make_thunk_function(self, node):
        return lambda x: x

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = inputs[0]

    def connection_pattern(self, node):
        return [self.kind != "stop"]

    def pullback(self, inputs, outputs, output_grads):
        (gz,) = output_grads
        if self.kind in ("stop", "zero") or gz is None:
            return [None]
        if self.kind == "scale":
            return [gz * self.factor]
        from symgrad.tensor.math import clip

        return [clip(gz, self.lo, self.hi)]

    def pushforward(self, inputs, outputs, tangents):
        (t,) = tangents
        if t is None or self.kind in ("stop", "zero"):
            return [None]
        if self.kind == "scale":
            return [t * self.factor]
        return [t]

    def vectorize_node(self, node, x):
        return [self(x)]

    def infer_shape(self, node, input_shapes):
        return input_shapes


def stop_gradient(x):
    """``x`` in the forward pass; no derivative flows through it (disconnected)."""
    return GradientModifier("stop")(x)


disconnected_grad = stop_gradient


def zero_grad(x):
    """``x`` in the forward pass; its derivative is zero (but connected)."""
    return GradientModifier("zero")(x)


def grad_scale(x, multiplier):
    """``x`` in the forward pass; gradients flowing back are multiplied by ``multiplier``."""
    return GradientModifier("scale", factor=float(multiplier))(x)


def grad_clip(x, lower_bound, upper_bound):
    """``x`` in the forward pass; gradients flowing back are clipped to the bounds."""
    if lower_bound > upper_bound:
        raise ValueError(f"grad_clip: lower_bound {lower_bound} > upper_bound {upper_bound}")
    return GradientModifier("clip", lo=float(lower_bound), hi=float(upper_bound))(x)


# -- numeric verification ------------------------------------------------------------------------

_TOLERANCES = {"float64": (1e-7, 1e-4, 1e-4), "float32": (1e-3, 1e-2, 1e-2),
               "float16": (1e-1, 5e-1, 5e-1)}


def verify_grad(fun, pt, n_tests=2, rng=None, eps=None, abs_tol=None, rel_tol=None, mode=None,
                check_pushforward=True):
    """Check a function's pullback and pushforward against central finite differences.

    ``fun`` takes one symbolic tensor per entry of ``pt`` (numpy arrays) and
    returns a tensor. For random projections of the output and random
    directions in each input, the directional derivative from finite
    differences must match both ``<grad, direction>`` and ``<projection, Rop>``.
    On failure a GradientError gives the largest error, the input where it is,
    and the two values.

    >>> import numpy as np, symgrad.tensor as st
    >>> from symgrad.gradient import verify_grad
    >>> verify_grad(lambda x: st.tanh(x) * x, [np.array([0.1, -0.7])])
    """
    from symgrad.compile.function import function
    from symgrad.tensor.basic import constant
    from symgrad.tensor.type import TensorType

    if rng is None:
        rng = np.random.default_rng(42)
    elif isinstance(rng, int):
        rng = np.random.default_rng(rng)
    pt = [np.array(p) if not isinstance(p, np.ndarray) else p.copy() for p in pt]
    for k, p in enumerate(pt):
        if p.dtype.kind in "iub":
            raise TypeError(f"verify_grad: point {k} has integer dtype {p.dtype}; use floats")
    inputs = [TensorType(p.dtype, tuple(1 if s == 1 else None for s in p.shape))(f"input{k}")
              for k, p in enumerate(pt)]
    out = fun(*inputs)
    from symgrad.tensor.basic import as_tensor_variable

    out = as_tensor_variable(out)
    dtypes = [p.dtype.name for p in pt] + [out.type.dtype]
    worst = "float64"
    for d in dtypes:
        if d in ("float32", "float16", "complex64"):
            worst = "float32" if d != "float16" else "float16"
    default_eps, default_abs, default_rel = _TOLERANCES.get(worst, _TOLERANCES["float64"])
    eps = eps or default_eps
    abs_tol = abs_tol if abs_tol is not None else default_abs
    rel_tol = rel_tol if rel_tol is not None else default_rel

    f_value = function(inputs, out, mode=mode, on_unused_input="ignore")
    out_shape = np.shape(f_value(*pt))
    for test in range(n_tests):
        projection = rng.normal(size=out_shape).astype(out.type.dtype)
        proj_const = constant(projection, dtype=out.type.dtype)
        cost = (out * proj_const).sum()
        grads = grad(cost, inputs, disconnected_inputs="ignore")
        directions = [p.type() for p in inputs]
        outputs = list(grads)
        if check_pushforward:
            tangent = Rop(out, inputs, directions)
            outputs.append((tangent * proj_const).sum())
        f_derivs = function(inputs + directions, outputs, mode=mode, on_unused_input="ignore")
        for k, p in enumerate(pt):
            direction = rng.normal(size=p.shape).astype(p.dtype)
            dirs = [np.zeros_like(q) for q in pt]
            dirs[k] = direction
            plus = [q.copy() for q in pt]
            minus = [q.copy() for q in pt]
            plus[k] = (p + eps * direction).astype(p.dtype)
            minus[k] = (p - eps * direction).astype(p.dtype)
            numeric = (float(np.sum(np.asarray(f_value(*plus), dtype="float64") * projection))
                       - float(np.sum(np.asarray(f_value(*minus), dtype="float64")
                                      * projection))) / (2 * eps)
            values = f_derivs(*pt, *dirs)
            analytic_rev = float(np.sum(np.asarray(values[k], dtype="float64") * direction))
            checks = [("pullback", analytic_rev)]
            if check_pushforward:
                checks.append(("pushforward", float(values[-1])))
            for mode_name, analytic in checks:
                err = abs(analytic - numeric)
                scale = max(abs(analytic), abs(numeric), 1e-8)
                if err > abs_tol and err / scale > rel_tol:
                    raise GradientError(
                        f"verify_grad: the {mode_name} disagrees with finite differences for "
                        f"input {k} (shape {p.shape}, dtype {p.dtype}) in test {test}: "
                        f"analytic {analytic!r} vs numeric {numeric!r} (abs error {err:.3g}, "
                        f"rel error {err / scale:.3g}; tolerances abs {abs_tol}, rel {rel_tol})"
                    )
