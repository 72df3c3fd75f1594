"""PyTensor's public import paths work after changing the package name."""

import numpy as np

import symgrad


def test_pytensor_style_imports():
    from symgrad import In, Out, config, dprint, function, grad, pp, shared  # noqa: F401
    from symgrad.compile import function as f2  # noqa: F401
    from symgrad.gradient import Lop, Rop, hessian, jacobian, verify_grad  # noqa: F401
    from symgrad.printing import debugprint, pprint  # noqa: F401
    from symgrad.tensor import (  # noqa: F401
        as_tensor_variable,
        constant,
        dmatrix,
        dscalars,
        fvector,
        imatrix,
        tensor,
        tensor3,
    )
    from symgrad.tensor.math import dot, exp, max, sigmoid, sum  # noqa: F401
    from symgrad.tensor.special import log_softmax, logsumexp, softmax  # noqa: F401

    assert symgrad.tensor.grad is symgrad.grad


def test_constructors_prefixes_and_plurals():
    import symgrad.tensor as st

    expected = {"b": "int8", "w": "int16", "i": "int32", "l": "int64", "f": "float32",
                "d": "float64", "c": "complex64", "z": "complex128"}
    kinds = {"scalar": 0, "vector": 1, "row": 2, "col": 2, "matrix": 2, "tensor3": 3,
             "tensor4": 4}
    for prefix, dtype in expected.items():
        for kind, ndim in kinds.items():
            var = getattr(st, prefix + kind)("v")
            assert var.dtype == dtype and var.ndim == ndim and var.name == "v"
    assert st.row().type.shape == (1, None) and st.col().type.shape == (None, 1)
    a, b = st.dscalars("a", "b")
    assert (a.name, b.name) == ("a", "b")
    assert len(st.fmatrices("p", "q")) == 2
    t7 = st.tensor("t", dtype="float32", shape=(None,) * 7)
    assert t7.ndim == 7


def test_config_floatX_and_change_flags():
    import symgrad.tensor as st

    assert symgrad.config.floatX == "float64"
    with symgrad.config.change_flags(floatX="float32"):
        assert st.vector().dtype == "float32"
        assert st.constant(0.1).dtype == "float32"
    assert st.vector().dtype == "float64"


def test_constant_dtype_does_not_depend_on_value():
    import symgrad.tensor as st

    assert st.constant(3.0).dtype == st.constant(0.1).dtype == "float64"
    assert st.constant(3).dtype == st.constant(300000).dtype == "int64"


def test_python_scalars_do_not_upcast():
    import symgrad.tensor as st

    m = st.fmatrix("m")
    assert (m * 2.5).dtype == "float32"
    assert (st.imatrix() + 1).dtype == "int32"
    out = (m * 2.5).eval({m: np.ones((2, 2), dtype="float32")})
    assert out.dtype == np.float32


def test_tensor_variable_methods():
    import symgrad.tensor as st

    x = st.dmatrix("x")
    v = np.arange(6.0).reshape(2, 3)
    checks = {
        x.T: v.T, x.sum(): v.sum(), x.sum(axis=0, keepdims=True): v.sum(0, keepdims=True),
        x.prod(axis=1): v.prod(1), x.mean(): v.mean(), x.var(axis=0): v.var(0),
        x.std(): v.std(), x.max(axis=1): v.max(1), x.min(): v.min(), x.argmax(axis=0): v.argmax(0),
        x.argmin(): v.argmin(), x.any(): v.any(), x.all(axis=1): v.all(1),
        x.dot(x.T): v @ v.T, x.reshape((3, 2)): v.reshape(3, 2), x.flatten(): v.ravel(),
        x.dimshuffle(1, "x", 0): v.T[:, None, :], x.transpose(1, 0): v.T,
        x[None].squeeze(): v, x.astype("int32"): v.astype("int32"), x.clip(1, 4): v.clip(1, 4),
        x.shape: np.array(v.shape), x.size: np.array(v.size), x[1, ::-1]: v[1, ::-1],
        x[x > 2]: v[v > 2], x[[1, 0]]: v[[1, 0]], x[..., None]: v[..., None],
        (x > 1) & (x < 4): (v > 1) & (v < 4), ~(x > 1): ~(v > 1),
        abs(-x): np.abs(-v), x // 2: v // 2, x % 4: v % 4, 2 ** x: 2 ** v,
    }
    for expr, want in checks.items():
        got = expr.eval({x: v}) if x in symgrad.graph.ancestors([expr]) else expr.eval()
        np.testing.assert_allclose(got, want, err_msg=symgrad.pp(expr))
    assert x.ndim == 2 and x.dtype == "float64"
