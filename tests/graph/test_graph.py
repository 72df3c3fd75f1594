"""The IR core: identity of ops, traversal, cloning, replacement, FunctionGraph."""

import numpy as np
import pytest

import symgrad
import symgrad.tensor as st
from symgrad.graph import (
    Apply,
    FunctionGraph,
    InconsistencyError,
    MissingInputError,
    Op,
    ancestors,
    apply_nodes_between,
    clone,
    clone_replace,
    graph_inputs,
    toposort,
)
from symgrad.tensor.elemwise import DimShuffle, Elemwise
from symgrad.tensor.math import exp, sin

DEEP = 100_000


def chain(n, x=None):
    x = x if x is not None else st.dscalar("x")
    y = x
    for _ in range(n):
        y = sin(y)
    return x, y


def test_op_identity_from_props():
    assert Elemwise(exp.scalar_op) == Elemwise(exp.scalar_op)
    assert hash(DimShuffle(2, (1, 0))) == hash(DimShuffle(2, (1, 0)))
    assert DimShuffle(2, (1, 0)) != DimShuffle(2, (0, 1))
    assert exp.op != sin.op


def test_variable_fields():
    x = st.dvector("x")
    y = st.exp(x)
    assert y.owner.op == exp.op and y.index == 0 and y.owner.inputs == [x]
    assert x.owner is None and x.name == "x"
    assert isinstance(y.owner, Apply)


def test_toposort_orders_producers_first():
    x = st.dvector("x")
    a = st.exp(x)
    b = a + x
    c = b * a
    order = toposort([c])
    position = {node: k for k, node in enumerate(order)}
    for node in order:
        for i in node.inputs:
            if i.owner is not None:
                assert position[i.owner] < position[node]
    assert len(order) == 3


def test_apply_nodes_between_and_ancestors():
    x, y = st.dscalars("x", "y")
    a = st.exp(x)
    b = st.sin(y)
    out = a + b
    between = apply_nodes_between([x], [out])
    assert [n.op for n in between] == [exp.op, out.owner.op]
    assert set(graph_inputs([out])) == {x, y}
    assert x in ancestors([out]) and b in ancestors([out])


def test_clone_replace_substitutes_and_keeps_original():
    x, z = st.dscalars("x", "z")
    y = st.exp(x) + 1
    y2 = clone_replace(y, {x: z})
    assert z in graph_inputs([y2]) and x not in graph_inputs([y2])
    assert x in graph_inputs([y])
    assert np.allclose(y2.eval({z: 0.0}), 2.0)


def test_clone_copies_nodes():
    x = st.dvector("x")
    y = st.exp(x)
    (x2,), (y2,) = clone([x], [y])
    assert x2 is not x and y2 is not y and y2.owner.inputs[0] is x2


def test_deep_chain_traversals():
    x, y = chain(DEEP)
    assert len(toposort([y])) == DEEP
    assert len(ancestors([y])) == DEEP + 1
    assert len(apply_nodes_between([x], [y])) == DEEP
    z = st.dscalar("z")
    y2 = clone_replace(y, {x: z})
    assert graph_inputs([y2]) == [z]
    (x3,), (y3,) = clone([x], [y])
    assert graph_inputs([y3]) == [x3]
    fg = FunctionGraph([x], [y])
    assert len(fg.apply_nodes) == DEEP
    symgrad.pp(y)  # printing must not recurse
    symgrad.dprint(y, file="str")


def test_function_graph_clients_and_replace():
    x = st.dvector("x")
    a = st.exp(x)
    out = a + a
    fg = FunctionGraph([x], [out])
    (fx,) = fg.inputs
    (fout,) = fg.outputs
    fa = fout.owner.inputs[0]
    assert len(fg.clients[fa]) == 2
    new = st.sin(fx)
    fg.replace(fa, new)
    assert fa not in fg.variables and fa.owner not in fg.apply_nodes
    assert len(fg.clients[new]) == 2
    assert {n.op for n in fg.apply_nodes} == {sin.op, out.owner.op}


def test_function_graph_toposort_follows_edits():
    x = st.dvector("x")
    fg = FunctionGraph([x], [st.exp(x) + 1])
    (fx,) = fg.inputs
    first = fg.toposort()
    assert [n.op for n in first] == [exp.op, fg.outputs[0].owner.op]
    first.clear()  # the caller's list: the graph's order is not affected
    assert len(fg.toposort()) == 2
    fa = fg.outputs[0].owner.inputs[0]
    fg.replace(fa, st.sin(st.sin(fx)))
    order = fg.toposort()
    assert [n.op for n in order[:2]] == [sin.op, sin.op] and len(order) == 3
    assert fa.owner not in order
    fg.change_input("output", 0, fx)
    assert fg.toposort() == []


def test_function_graph_replace_checks_types():
    x = st.dvector("x")
    y = st.exp(x)
    fg = FunctionGraph([x], [y])
    with pytest.raises(InconsistencyError, match="cannot replace"):
        fg.replace(fg.outputs[0], st.dmatrix("m"))


def test_function_graph_missing_input_names_it():
    x, w = st.dvector("x"), st.dvector("w")
    with pytest.raises(MissingInputError, match="'?w'?"):
        FunctionGraph([x], [x + w])


def test_function_graph_copy_keeps_clients_constants_and_cuts_at_inputs():
    x = st.dvector("x")
    c = st.constant(np.array([2.0, 3.0]))
    h = st.exp(x) * c
    out = h + c
    fg = FunctionGraph([x], [out, h])
    assert fg.outputs[1].owner is fg.outputs[0].owner.inputs[0].owner  # h stays shared
    assert c in fg.variables and len(fg.clients[c]) == 2  # constants are not copied
    for var, clients in fg.clients.items():
        for node, k in clients:
            assert (fg.outputs[k] if node == "output" else node.inputs[k]) is var
    assert all(n.outputs[0] not in {out, h} for n in fg.apply_nodes)  # all copies
    # an intermediate given as an input: its producer is not copied
    fg2 = FunctionGraph([h], [out])
    assert len(fg2.apply_nodes) == 1 and fg2.inputs[0].owner is None


def test_function_graph_does_not_touch_original():
    x = st.dvector("x")
    y = st.exp(x)
    fg = FunctionGraph([x], [y])
    fg.replace(fg.outputs[0], st.sin(fg.inputs[0]))
    assert y.owner.op == exp.op


class AddOneAndDouble(Op):
    """A user-defined op with two outputs, used as an extension-API test."""

    def make_node(self, x):
        x = st.as_tensor_variable(x)
        return Apply(self, [x], [x.type(), x.type()])

    def perform(self, node, inputs, output_storage):
        (x,) = inputs
        output_storage[0][0] = x + 1
        output_storage[1][0] = x * 2

    def grad(self, inputs, output_grads):
        g1, g2 = output_grads
        total = None
        if g1 is not None:
            total = g1
        if g2 is not None:
            total = g2 * 2 if total is None else total + g2 * 2
        return [total]


def test_user_op_in_graphs_functions_and_grad():
    x = st.dvector("x")
    a, b = AddOneAndDouble()(x)
    f = symgrad.function([x], [a, b])
    r = f([1.0, 2.0])
    np.testing.assert_allclose(r[0], [2.0, 3.0])
    np.testing.assert_allclose(r[1], [2.0, 4.0])
    g = symgrad.grad((a * b).sum(), x)
    xv = np.array([1.0, 2.0])
    np.testing.assert_allclose(symgrad.function([x], g)(xv), (xv * 2) + (xv + 1) * 2)
    # its pushforward comes from the generic double-pullback fallback
    v = st.dvector("v")
    jv = symgrad.gradient.Rop(b, x, v)
    np.testing.assert_allclose(symgrad.function([x, v], jv)(xv, [1.0, 1.0]), [2.0, 2.0])


def test_user_op_without_derivative_says_so():
    class NoGrad(Op):
        def make_node(self, x):
            x = st.as_tensor_variable(x)
            return Apply(self, [x], [x.type()])

        def perform(self, node, inputs, output_storage):
            output_storage[0][0] = inputs[0] * 3

    x = st.dvector("x")
    y = NoGrad()(x)
    assert np.allclose(symgrad.function([x], y)([1.0]), [3.0])
    with pytest.raises(symgrad.gradient.NullTypeGradError, match="NoGrad"):
        symgrad.grad(y.sum(), x)


def test_perform_comes_from_make_thunk_function():
    class Twice(Op):
        def make_node(self, x):
            x = st.as_tensor_variable(x)
            return Apply(self, [x], [x.type()])

        def make_thunk_function(self, node):
            return lambda x: x * 2

    x = st.dvector("x")
    node = Twice()(x).owner
    storage = [[None]]
    node.op.perform(node, [np.array([1.0, 2.0])], storage)
    np.testing.assert_allclose(storage[0][0], [2.0, 4.0])

    class Nothing(Op):
        def make_node(self, x):
            x = st.as_tensor_variable(x)
            return Apply(self, [x], [x.type()])

    with pytest.raises(NotImplementedError, match="Nothing defines neither perform nor"):
        Nothing().perform(Nothing()(x).owner, [np.zeros(1)], [[None]])
