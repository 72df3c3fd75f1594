"""A walk through the derivatives tutorial: ``python -m symgrad.tour``.

Each step prints the expression, its graph (before and after compiling) and
its value, so you can see what symgrad builds and what it runs.
"""

from __future__ import annotations

import numpy as np

import symgrad
import symgrad.tensor as st
from symgrad import pp


def _show(title: str, expr, f, *args) -> None:
    print(f"== {title}")
    print(f"   expression : {pp(expr)}")
    print(f"   compiled   : {pp(f.maker.fgraph.outputs[0])}  "
          f"({len(f.maker.fgraph.apply_nodes)} nodes)")
    value = f(*args)
    print(f"   value at {', '.join(map(repr, args))}:")
    print("      " + np.array2string(np.asarray(value), prefix="      "))
    print()


def main() -> None:
    np.set_printoptions(precision=6, suppress=True)
    print(f"symgrad {symgrad.__version__}: the derivatives tutorial, step by step\n")

    x = st.dscalar("x")
    gy = symgrad.grad(x ** 2, x)
    _show("d(x**2)/dx", gy, symgrad.function([x], gy), 4.0)

    m = st.dmatrix("x")
    s = st.sum(1 / (1 + st.exp(-m)))
    gs = symgrad.grad(s, m)
    _show("gradient of the logistic sum", gs, symgrad.function([m], gs), [[0, 1], [-1, -2]])

    v = st.dvector("x")
    J = symgrad.gradient.jacobian(v ** 2, v)
    _show("Jacobian of x**2 (gradient.jacobian)", J, symgrad.function([v], J), [4, 4])

    try:
        Js, updates = symgrad.scan(lambda i, y, x: st.grad(y[i], x),
                                   sequences=st.arange((v ** 2).shape[0]),
                                   non_sequences=[v ** 2, v])
        _show("Jacobian of x**2 (the scan recipe)", Js,
              symgrad.function([v], Js, updates=updates), [4, 4])
    except NotImplementedError as exc:
        print(f"== the scan recipe: not available yet ({exc})\n")

    H = symgrad.gradient.hessian((v ** 2).sum(), v)
    _show("Hessian of sum(x**2)", H, symgrad.function([v], H), [4, 4])

    W, V = st.dmatrix("W"), st.dmatrix("V")
    xv = st.dvector("x")
    JV = symgrad.gradient.Rop(st.dot(xv, W), W, V)
    _show("R-operator: J(dot(x, W)) V", JV, symgrad.function([W, V, xv], JV),
          [[1, 1], [1, 1]], [[2, 2], [2, 2]], [0, 1])

    u = st.dvector("v")
    VJ = symgrad.gradient.Lop(st.dot(xv, W), W, u)
    _show("L-operator: v J(dot(x, W))", VJ, symgrad.function([u, xv], VJ), [2, 2], [0, 1])

    gy = symgrad.grad(st.sum(v ** 2), v)
    Hv = symgrad.gradient.Rop(gy, v, u)
    _show("Hessian times a vector (Rop of the gradient)", Hv,
          symgrad.function([v, u], Hv), [4, 4], [2, 2])

    print("Graph of the logistic gradient after compiling:")
    symgrad.dprint(symgrad.function([m], gs))


if __name__ == "__main__":
    main()
