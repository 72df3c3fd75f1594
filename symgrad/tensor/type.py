"""TensorType (dtype + static shape) and the tensor constructors (dscalar, fmatrix, ...)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from symgrad.config import config
from symgrad.graph.basic import Type

# PyTensor's one-letter dtype prefixes.
PREFIX_DTYPES = {
    "b": "int8", "w": "int16", "i": "int32", "l": "int64",
    "f": "float32", "d": "float64", "c": "complex64", "z": "complex128",
}
ALL_DTYPES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
)
_ALL_DTYPE_SET = frozenset(ALL_DTYPES)
float_dtypes = ("float16", "float32", "float64")
complex_dtypes = ("complex64", "complex128")
int_dtypes = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
discrete_dtypes = int_dtypes + ("bool",)
continuous_dtypes = float_dtypes + complex_dtypes


def normalize_dtype(dtype) -> str:
    if dtype is None or dtype == "floatX":
        return config.floatX
    if dtype.__class__ is str and dtype in _ALL_DTYPE_SET:
        return dtype
    try:
        name = np.dtype(dtype).name
    except TypeError as exc:
        raise TypeError(f"unknown dtype {dtype!r}; use one of {', '.join(ALL_DTYPES)}") from exc
    if name not in ALL_DTYPES:
        raise TypeError(f"unsupported dtype {name!r}; use one of {', '.join(ALL_DTYPES)}")
    return name


def _normalize_shape(shape) -> tuple[int | None, ...]:
    if shape.__class__ is tuple and all(s is None or s.__class__ is int and s >= 0 for s in shape):
        return shape
    out = []
    for s in shape:
        if s is None:
            out.append(None)
        elif isinstance(s, bool):  # PyTensor's broadcastable flags
            out.append(1 if s else None)
        else:
            s = int(s)
            if s < 0:
                raise ValueError(f"static shape entries must be >= 0 or None, got {s}")
            out.append(s)
    return tuple(out)


class TensorType(Type):
    """The type of a tensor: a dtype and a static shape.

    Each shape entry is an int (known length) or None (unknown); 1 marks a
    broadcastable dimension.

    >>> TensorType("float64", (None, 3))
    TensorType(float64, shape=(?, 3))
    """

    __slots__ = ("dtype", "shape", "_hash")

    def __init__(self, dtype="floatX", shape: Sequence[int | None] = (), *, broadcastable=None,
                 name=None):
        if broadcastable is not None:
            shape = tuple(1 if b else None for b in broadcastable)
        self.dtype = normalize_dtype(dtype)
        self.shape = _normalize_shape(shape)
        self._hash = hash((TensorType, self.dtype, self.shape))

    # -- PyTensor-compatible views ------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def broadcastable(self) -> tuple[bool, ...]:
        return tuple(s == 1 for s in self.shape)

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def clone(self, dtype=None, shape=None) -> TensorType:
        return TensorType(self.dtype if dtype is None else dtype,
                          self.shape if shape is None else shape)

    def __eq__(self, other) -> bool:
        return (type(other) is TensorType and self.dtype == other.dtype
                and self.shape == other.shape)

    def __hash__(self) -> int:
        return self._hash

    def is_super(self, other) -> bool:
        """Every value of ``other`` fits self (same dtype, self's shape no more specific)."""
        return (isinstance(other, TensorType) and self.dtype == other.dtype
                and self.ndim == other.ndim
                and all(s is None or s == o for s, o in zip(self.shape, other.shape)))

    def __repr__(self) -> str:
        shape = ", ".join("?" if s is None else str(s) for s in self.shape)
        if len(self.shape) == 1:
            shape += ","
        return f"TensorType({self.dtype}, shape=({shape}))"

    __str__ = __repr__

    def short(self) -> str:
        """A compact spelling used by dprint: ``float64[?,3]``."""
        if not self.shape:
            return f"{self.dtype}[]"
        return f"{self.dtype}[{','.join('?' if s is None else str(s) for s in self.shape)}]"

    # -- runtime values -------------------------------------------------------------------------
    def filter(self, value, strict: bool = False, allow_downcast: bool | None = None,
               name: str | None = None) -> np.ndarray:
        """Convert ``value`` to an ndarray of this type, or raise TypeError saying why.

        Conversions follow numpy's safe-casting rules; a lossy one is refused
        unless ``allow_downcast`` (Python floats may always become float32,
        as numpy's scalar rules allow).
        """
        label = f"input {name}" if name else "the value"
        if isinstance(value, np.ndarray) and value.dtype.name == self.dtype:
            arr = value
        else:
            if strict:
                raise TypeError(f"{label}: expected an ndarray of dtype {self.dtype}, "
                                f"got {type(value).__name__}")
            try:
                arr = np.asarray(value)
            except ValueError as exc:
                raise TypeError(f"{label}: cannot convert to an array ({exc})") from None
            if arr.dtype == object:
                raise TypeError(f"{label}: expected numbers of dtype {self.dtype}, "
                                f"got {type(value).__name__} that numpy cannot turn into numbers")
            if arr.dtype.name != self.dtype:
                arr = self._cast(value, arr, allow_downcast, label)
        if arr.ndim != self.ndim:
            raise TypeError(
                f"{label}: expected {self.ndim} dimensions ({self}), got an array of "
                f"{arr.ndim} dimensions with shape {arr.shape}"
            )
        for k, (want, got) in enumerate(zip(self.shape, arr.shape)):
            if want is not None and want != got:
                raise ValueError(
                    f"{label}: expected shape {self._shape_text()}, got {arr.shape} "
                    f"(dimension {k} must be {want})"
                )
        return arr

    def _shape_text(self) -> str:
        return "(" + ", ".join("?" if s is None else str(s) for s in self.shape) + ")"

    def _cast(self, value, arr: np.ndarray, allow_downcast, label: str) -> np.ndarray:
        target = self.numpy_dtype
        if np.can_cast(arr.dtype, target, casting="safe"):
            return arr.astype(target)
        python_number = isinstance(value, bool | int | float | complex) or (
            isinstance(value, list | tuple) and arr.dtype.kind in "biufc"
            and not any(isinstance(v, np.ndarray | np.generic) for v in _flat_items(value))
        )
        if allow_downcast or (allow_downcast is None and python_number
                              and _fits_exactly(arr, target)):
            return arr.astype(target)
        raise TypeError(
            f"{label}: expected dtype {self.dtype}, got {arr.dtype.name}; converting would lose "
            f"information. Cast it yourself (np.asarray(value, dtype='{self.dtype}')) or pass "
            f"allow_input_downcast=True to function()"
        )

    def value_zeros(self, shape):
        return np.zeros(shape, dtype=self.dtype)

    def make_variable(self, name: str | None = None):
        from symgrad.tensor.variable import TensorVariable

        return TensorVariable(self, None, None, name)


def _flat_items(value, limit: int = 64):
    stack = [value]
    count = 0
    while stack and count < limit:
        v = stack.pop()
        count += 1
        if isinstance(v, list | tuple):
            stack.extend(v)
        else:
            yield v


def _fits_exactly(arr: np.ndarray, target: np.dtype) -> bool:
    """Python numbers may be converted when nothing is lost (2 -> int8, 0.5 -> float32)."""
    if arr.dtype.kind == "f" and target.kind == "f":
        return True  # Python floats to float32: numpy's own rule for Python scalars
    if arr.dtype.kind in "biu" and target.kind in "biufc":
        if target.kind in "fc":
            return True
        if arr.size == 0:
            return True
        info = np.iinfo(target) if target.kind != "b" else None
        if info is None:
            return bool(np.all((arr == 0) | (arr == 1)))
        return bool(arr.min() >= info.min and arr.max() <= info.max)
    return False


# -- constructors ---------------------------------------------------------------------------------

def tensor(name: str | None = None, *, dtype=None, shape=None, broadcastable=None):
    """A symbolic tensor input.

    >>> x = tensor("x", dtype="float32", shape=(None, 3))
    >>> x.type
    TensorType(float32, shape=(?, 3))
    """
    if isinstance(name, Sequence) and not isinstance(name, str):
        raise TypeError("tensor(name, dtype=..., shape=...): name comes first and must be a str")
    if shape is None and broadcastable is None:
        raise TypeError("tensor() needs shape= (a tuple of ints or None)")
    if shape is not None and len(shape) > 7:
        raise ValueError(f"tensors have at most 7 dimensions here, got {len(shape)}")
    return TensorType(dtype, shape if shape is not None else (), broadcastable=broadcastable)(name)


_KIND_SHAPES = {
    "scalar": (), "vector": (None,), "row": (1, None), "col": (None, 1),
    "matrix": (None, None), "tensor3": (None,) * 3, "tensor4": (None,) * 4,
    "tensor5": (None,) * 5, "tensor6": (None,) * 6, "tensor7": (None,) * 7,
}


def _make_constructor(kind: str, fixed_dtype: str | None):
    default_shape = _KIND_SHAPES[kind]

    def constructor(name: str | None = None, dtype=None, shape=None):
        dt = fixed_dtype if fixed_dtype is not None else dtype
        sh = default_shape if shape is None else shape
        if len(sh) != len(default_shape):
            raise ValueError(f"{kind} needs a shape of length {len(default_shape)}, got {sh}")
        if kind in ("row", "col") and shape is not None:
            sh = tuple(1 if d == 1 else s for s, d in zip(sh, default_shape))
        return TensorType(dt, sh)(name)

    prefix = "" if fixed_dtype is None else next(
        p for p, d in PREFIX_DTYPES.items() if d == fixed_dtype)
    constructor.__name__ = prefix + kind
    constructor.__doc__ = (f"A symbolic {kind} of dtype "
                           f"{fixed_dtype or 'floatX (or dtype=...)'}.")
    return constructor


def _make_plural(single):
    def plural(*names, **kwargs):
        if len(names) == 1 and isinstance(names[0], int):
            return [single(**kwargs) for _ in range(names[0])]
        if len(names) == 1 and isinstance(names[0], str) and "," in names[0]:
            names = tuple(n.strip() for n in names[0].split(","))
        return [single(n, **kwargs) for n in names]

    name = single.__name__
    plural.__name__ = name[:-1] + "ces" if name.endswith("matrix") else name + "s"
    plural.__doc__ = f"Several {single.__name__} variables, one per name."
    return plural


def _constructor_table() -> dict:
    table = {}
    for kind in _KIND_SHAPES:
        table[kind] = _make_constructor(kind, None)
        for prefix, dtype in PREFIX_DTYPES.items():
            table[prefix + kind] = _make_constructor(kind, dtype)
    for name, fn in list(table.items()):
        plural = name[:-1] + "ces" if name.endswith("matrix") else name + "s"
        table[plural] = _make_plural(fn)
    return table


CONSTRUCTORS = _constructor_table()
globals().update(CONSTRUCTORS)
