"""Every op class in symgrad has a pullback, a pushforward, a batching rule and a numeric test.

The table below gives, for each op class, one graph that contains it. For each
entry the test checks that the graph really contains the op, compares values
with numpy, runs verify_grad (pullback and pushforward against finite
differences), checks the batching rule against a row-by-row loop, and prints the
graph with pp and dprint. A new op class without an entry fails
``test_every_op_class_has_rules_and_an_entry``.
"""

import importlib
import pkgutil

import numpy as np
import pytest
from helpers import check_batching

import symgrad
import symgrad.tensor as st
from symgrad.gradient import grad, verify_grad
from symgrad.graph import Op, toposort

r = np.random.default_rng(7)
M = r.normal(size=(3, 4))
V = r.normal(size=4)
P = r.uniform(0.5, 1.5, size=(3, 4))


def _fused_exp_sin(x):
    from symgrad.tensor.fusion import FusedElemwise

    probe = st.dmatrix("probe")
    f = symgrad.function([probe], st.exp(probe) * st.sin(probe) + 1.0)
    nodes = [n for n in f.maker.fgraph.apply_nodes if isinstance(n.op, FusedElemwise)]
    assert nodes, "the fusion rewrite produced no FusedElemwise"
    return nodes[0].op(x)


def _scan_cumulative(x):
    out, _ = symgrad.scan(lambda row, acc: acc * 0.5 + st.tanh(row), sequences=x,
                          outputs_info=st.zeros_like(x[0]))
    return out


def _np_scan(x):
    acc, rows = np.zeros(x.shape[1]), []
    for row in x:
        acc = acc * 0.5 + np.tanh(row)
        rows.append(acc)
    return np.stack(rows)


def _stencil(x, y):
    # out = 0.5; out[:-1] += sin(x[1:] * y[:-1]); out[1:] += y[:-1]  (the numba backend's op)
    from symgrad.tensor.elemwise import SCALAR_OPS
    from symgrad.tensor.fusion import Program
    from symgrad.tensor.rewriting.stencil import StencilSum

    prog = Program(2, [(SCALAR_OPS["mul"], (("i", 0), ("i", 1)), "float64"),
                       (SCALAR_OPS["sin"], (("s", 0),), "float64")], [1])
    op = StencilSum(0, "float64", ("fill", 0.5), (
        (None, -1, prog, 0, (("slice", 0, 1, None), ("slice", 1, None, -1))),
        (1, None, None, 0, (("slice", 1, None, -1),))))
    return op(x, y)


def _np_stencil(x, y):
    out = np.full(x.shape, 0.5)
    out[:-1] += np.sin(x[1:] * y[:-1])
    out[1:] += y[:-1]
    return out


# op class name -> (builder, input values, numpy reference or None, differentiable)
TABLE = {
    "StencilSum": (_stencil, [M, P], _np_stencil, True),
    "Elemwise": (lambda x: st.exp(x) * 2, [M], lambda x: np.exp(x) * 2, True),
    "DimShuffle": (lambda x: x.dimshuffle(1, "x", 0), [M], lambda x: x.T[:, None, :], True),
    "SumTo": (lambda x, y: grad((x * y).sum(), x), [M[:, :1], M],
              lambda x, y: y.sum(axis=1, keepdims=True), True),
    "FusedElemwise": (_fused_exp_sin, [M], lambda x: np.exp(x) * np.sin(x) + 1, True),
    # wide clip bounds leave the derivative exact, so finite differences apply
    "GradientModifier": (lambda x: symgrad.gradient.grad_clip(x, -1e6, 1e6) * x, [M],
                         lambda x: x * x, True),
    "ReducedSize": (lambda x: st.mean(x, axis=0), [M], lambda x: x.mean(axis=0), True),
    "Sum": (lambda x: st.sum(x, axis=1), [M], lambda x: x.sum(axis=1), True),
    "Prod": (lambda x: st.prod(x, axis=0), [P], lambda x: x.prod(axis=0), True),
    "Max": (lambda x: st.max(x, axis=1), [M], lambda x: x.max(axis=1), True),
    "Min": (lambda x: st.min(x, axis=0), [M], lambda x: x.min(axis=0), True),
    "Argmax": (lambda x: st.argmax(x, axis=1), [M], lambda x: x.argmax(axis=1), False),
    "Argmin": (lambda x: st.argmin(x, axis=0), [M], lambda x: x.argmin(axis=0), False),
    "Any": (lambda x: st.any(x > 0, axis=1), [M], lambda x: (x > 0).any(axis=1), False),
    "All": (lambda x: st.all(x > 0, axis=0), [M], lambda x: (x > 0).all(axis=0), False),
    "LogSumExp": (lambda x: st.logsumexp(x, axis=1), [M],
                  lambda x: np.log(np.exp(x).sum(axis=1)), True),
    "Softmax": (lambda x: st.special.softmax(x, axis=-1), [M],
                lambda x: np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True), True),
    "LogSoftmax": (lambda x: st.special.log_softmax(x, axis=-1), [M],
                   lambda x: x - np.log(np.exp(x).sum(axis=-1, keepdims=True)), True),
    "Dot": (lambda a, b: st.dot(a, b), [M, V], lambda a, b: a @ b, True),
    "MatMul": (lambda a, b: st.matmul(a, b), [M, M.T], lambda a, b: a @ b, True),
    "TensorDot": (lambda a, b: st.tensordot(a, b, axes=[[0], [0]]), [M, M],
                  lambda a, b: np.tensordot(a, b, axes=[[0], [0]]), True),
    "Einsum": (lambda a, b: st.einsum("ij,ij->i", a, b), [M, P],
               lambda a, b: np.einsum("ij,ij->i", a, b), True),
    "CumOp": (lambda x: st.cumsum(x, axis=1), [M], lambda x: np.cumsum(x, axis=1), True),
    "LinearRecurrence": (lambda x: grad((st.cumprod(x, axis=1) * x).sum(), x), [P], None, True),
    "Shift": (lambda x: grad(st.cumprod(x, axis=1).sum(), x), [P], None, True),
    "Sort": (lambda x: st.sort(x, axis=1), [M], lambda x: np.sort(x, axis=1), True),
    "ArgSort": (lambda x: st.argsort(x, axis=0), [M], lambda x: np.argsort(x, axis=0, kind="stable"),
                False),
    "TakeAlongAxis": (lambda x: symgrad.gradient.Rop(st.sort(x, axis=1), x, x * 2), [M],
                      lambda x: np.sort(x, axis=1) * 2, True),
    "ScatterAlongAxis": (lambda x: grad((st.sort(x, axis=1) * x).sum(), x), [M], None, True),
    "Subtensor": (lambda x: x[1:, ::2], [M], lambda x: x[1:, ::2], True),
    "AdvancedSubtensor": (lambda x: x[[0, 2, 2]], [M], lambda x: x[[0, 2, 2]], True),
    "IncSubtensor": (lambda x, y: st.inc_subtensor(x[1:], y), [M, V],
                     lambda x, y: np.concatenate([x[:1], x[1:] + y]), True),
    "AdvancedIncSubtensor": (lambda x, y: st.inc_subtensor(x[[0, 0]], y), [M, V],
                             lambda x, y: x + np.array([2 * y, 0 * y, 0 * y]), True),
    "Shape": (lambda x: st.shape(x), [M], lambda x: np.array(x.shape), False),
    "Shape_i": (lambda x: st.shape_i(x, 1), [M], lambda x: np.array(x.shape[1]), False),
    "Reshape": (lambda x: st.reshape(x, (4, 3)), [M], lambda x: x.reshape(4, 3), True),
    "Join": (lambda a, b: st.concatenate([a, b], axis=0), [M, P],
             lambda a, b: np.concatenate([a, b]), True),
    "Split": (lambda x: st.split(x, [1, 2], 2, axis=0)[1], [M], lambda x: x[1:], True),
    "Alloc": (lambda v: st.alloc(v, 3, 4), [V], lambda v: np.broadcast_to(v, (3, 4)), True),
    "SpecifyShape": (lambda x: st.specify_shape(x, (3, 4)), [M], lambda x: x, True),
    "ARange": (lambda n: st.arange(st.cast(n, "int64")), [np.array(5.0)],
               lambda n: np.arange(5), False),
    "Eye": (lambda n: st.eye(st.cast(n, "int64")), [np.array(3.0)], lambda n: np.eye(3), False),
    "Repeat": (lambda x: st.repeat(x, np.array([1, 2, 0]), axis=0), [M],
               lambda x: np.repeat(x, [1, 2, 0], axis=0), True),
    "RepeatGrad": (lambda x: grad((st.repeat(x, np.array([1, 2, 0]), axis=0) ** 2).sum(), x),
                   [M], None, True),
    "Scan": (_scan_cumulative, [M], _np_scan, True),
}

# Op classes that are abstract bases or generic machinery, with why.
NOT_USER_OPS = {
    "BatchLoop": "the generic batching fallback itself (a loop over another op)",
}
ABSTRACT_PREFIXES = ("_",)
ABSTRACT = {"Reduce"}
# Ops whose batched form is ragged in general, so the generic loop is their rule.
LOOP_BATCHED = {"ARange", "Eye"}


def all_op_classes():
    for info in pkgutil.walk_packages(symgrad.__path__, "symgrad."):
        if info.name.startswith("symgrad.backends.") or info.name == "symgrad.tour":
            continue
        importlib.import_module(info.name)
    seen, stack = set(), [Op]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen and sub.__module__.startswith("symgrad."):
                seen.add(sub)
                stack.append(sub)
    return sorted(seen, key=lambda c: c.__name__)


def test_every_op_class_has_rules_and_an_entry():
    problems = []
    for cls in all_op_classes():
        name = cls.__name__
        if name in NOT_USER_OPS or name in ABSTRACT or name.startswith(ABSTRACT_PREFIXES):
            continue
        if name not in TABLE:
            problems.append(f"{name}: no numeric test entry in tests/test_op_coverage.py")
        has_pullback = (cls.pullback is not Op.pullback or cls.L_op is not Op.L_op
                        or cls.grad is not Op.grad)
        has_pushforward = cls.pushforward is not Op.pushforward or cls.R_op is not Op.R_op
        has_batching = cls.vectorize_node is not Op.vectorize_node or name in LOOP_BATCHED
        for ok, what in ((has_pullback, "pullback"), (has_pushforward, "pushforward"),
                         (has_batching, "batching rule")):
            if not ok:
                problems.append(f"{name}: no {what}")
    assert not problems, "\n".join(problems)


def _contains(out, cls_name):
    outs = out if isinstance(out, list) else [out]
    return any(type(n.op).__name__ == cls_name for n in toposort(outs))


@pytest.mark.parametrize("name", sorted(TABLE))
def test_op_entry(name):
    build, values, reference, differentiable = TABLE[name]
    values = [np.asarray(v) for v in values]
    inputs = [st.tensor(f"x{k}", dtype=v.dtype, shape=(None,) * v.ndim)
              for k, v in enumerate(values)]
    out = build(*inputs)
    assert _contains(out, name), f"the example graph for {name} does not contain it"
    got = symgrad.function(inputs, out, mode="FAST_COMPILE", on_unused_input="ignore")(*values)
    if reference is not None:
        np.testing.assert_allclose(got, reference(*values), rtol=1e-10, atol=1e-12)
    fast = symgrad.function(inputs, out, on_unused_input="ignore")(*values)
    np.testing.assert_allclose(fast, got, rtol=1e-10, atol=1e-12)
    if differentiable:
        verify_grad(build, values, rng=np.random.default_rng(3))
    if name not in LOOP_BATCHED:
        check_batching(build, values, batch=2)
    assert symgrad.pp(out)
    assert symgrad.dprint(out, file="str")
