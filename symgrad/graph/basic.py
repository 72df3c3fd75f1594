"""The IR core: Type, Variable, Constant, Apply and Op.

Nothing here knows about tensors. A graph is a set of Apply nodes linked by
Variables: each Variable is produced by at most one Apply (its ``owner``) and
may be consumed by many. Ops are values: two ops with equal parameters
(``__props__``) compare and hash equal, so identical nodes can be merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Type:
    """The static type of a Variable (e.g. a tensor's dtype and shape).

    Subclasses implement ``filter`` (convert a runtime value to this type, or
    raise TypeError) and define equality from their parameters.
    """

    variable_class: type[Variable]
    constant_class: type[Constant]

    def filter(self, value: Any, strict: bool = False, allow_downcast: bool | None = None):
        raise NotImplementedError

    def make_variable(self, name: str | None = None) -> Variable:
        return self.variable_class(self, None, None, name)

    def __call__(self, name: str | None = None) -> Variable:
        return self.make_variable(name)

    def is_super(self, other: Type) -> bool:
        """True when every value of ``other`` is a value of self."""
        return self == other


class _Tagged:
    """``tag``: free-form annotations, created on first use (most variables and nodes never
    need one); the class provides the ``_tag`` slot."""

    __slots__ = ()

    @property
    def tag(self) -> Tag:
        if self._tag is None:
            self._tag = Tag()
        return self._tag

    @tag.setter
    def tag(self, value: Tag) -> None:
        self._tag = value


class Variable(_Tagged):
    """A value in a graph: a graph input, or output ``index`` of ``owner``."""

    __slots__ = ("type", "owner", "index", "name", "_tag", "__weakref__")

    def __init__(self, type: Type, owner: Apply | None = None, index: int | None = None,
                 name: str | None = None):
        self.type = type
        self.owner = owner
        self.index = index
        self.name = name
        self._tag = None

    def clone(self) -> Variable:
        """A new Variable of the same type and name, with no owner."""
        new = type(self)(self.type, None, None, self.name)
        if self._tag is not None:
            new._tag = self._tag.copy()
        return new

    def get_parents(self) -> list[Apply]:
        return [self.owner] if self.owner is not None else []

    def __repr__(self) -> str:
        return self.name if self.name is not None else f"<{self.type}>"

    def __str__(self) -> str:
        return self.__repr__()


class Constant(Variable):
    """A Variable with a fixed value, never an output of an Apply."""

    __slots__ = ("data",)

    def __init__(self, type: Type, data: Any, name: str | None = None):
        super().__init__(type, None, None, name)
        self.data = data

    def clone(self) -> Constant:
        return self  # constants are immutable; sharing them is always safe

    def signature(self):
        """What makes two constants equal (used by merging)."""
        return (self.type, _data_signature(self.data))


def _data_signature(data):
    try:
        import numpy as np

        arr = np.asarray(data)
        return (arr.dtype.str, arr.shape, arr.tobytes())
    except Exception:  # pragma: no cover - non-array data
        return (type(data), id(data))


class Tag:
    """A free-form annotation bag attached to each Variable and Apply."""

    def copy(self) -> Tag:
        new = Tag()
        new.__dict__.update(self.__dict__)
        return new

    def __repr__(self) -> str:
        return f"Tag({self.__dict__})"


class Apply(_Tagged):
    """One application of ``op`` to ``inputs``, producing ``outputs``."""

    __slots__ = ("op", "inputs", "outputs", "_tag", "__weakref__")

    def __init__(self, op: Op, inputs: Sequence[Variable], outputs: Sequence[Variable]):
        self.op = op
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self._tag = None
        for i, out in enumerate(self.outputs):
            if out.owner is not None and out.owner is not self:
                raise ValueError(f"output {out} of {op} already has an owner")
            out.owner = self
            out.index = i
        for inp in self.inputs:
            if not isinstance(inp, Variable):
                raise TypeError(f"{op}: every input must be a Variable, got {type(inp).__name__}")

    @property
    def out(self) -> Variable:
        if len(self.outputs) != 1:
            raise ValueError(f"{self.op} has {len(self.outputs)} outputs; use .outputs")
        return self.outputs[0]

    @property
    def nin(self) -> int:
        return len(self.inputs)

    @property
    def nout(self) -> int:
        return len(self.outputs)

    def clone_with_new_inputs(self, inputs: Sequence[Variable], strict: bool = True) -> Apply:
        """Apply the same op to new inputs (types are re-inferred by make_node)."""
        node = self.op.make_node(*inputs)
        if strict:
            for old, new in zip(self.outputs, node.outputs):
                if old.type != new.type and not _compatible(old.type, new.type):
                    raise TypeError(
                        f"{self.op}: new inputs change output type {old.type} -> {new.type}"
                    )
        return node

    def __repr__(self) -> str:
        return f"{self.op}({', '.join(map(str, self.inputs))})"


def _compatible(old: Type, new: Type) -> bool:
    return old.is_super(new) or new.is_super(old)


class Op:
    """Base class of every operation; also the public extension API.

    A new op defines ``make_node`` (check inputs, build an Apply with typed
    outputs) and ``perform`` (compute with numpy). Derivative rules are
    optional methods:

    ``pullback(inputs, outputs, output_grads)``
        reverse mode. ``output_grads[i]`` is the cotangent of output i, or
        None when nothing flows into it. Returns one entry per input: a
        Variable of the input's shape, None for "does not depend", or a
        :class:`~symgrad.gradient.NotDifferentiable` marker. PyTensor's names
        ``L_op(inputs, outputs, output_grads)`` and ``grad(inputs, output_grads)``
        are honoured when a subclass defines them instead.
    ``pushforward(inputs, outputs, tangents)``
        forward mode; a tangent of None means zero. Returns one tangent per
        output (None for zero). Without one, it is derived from the pullback.
        PyTensor's ``R_op(inputs, eval_points)`` is honoured too.
    ``vectorize_node(node, *batched_inputs)``
        the batching rule: inputs whose ndim grew by one carry a new leading
        batch axis. Without one, a loop over the batch is used.

    Identity: list the parameters in ``__props__``; equal props mean equal ops.
    """

    __props__: tuple[str, ...] = ()
    default_output: int | None = None

    # -- identity -----------------------------------------------------------------
    def _props(self) -> tuple:
        return tuple(getattr(self, p) for p in self.__props__)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._props() == other._props()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._props()))

    def __str__(self) -> str:
        name = type(self).__name__
        if not self.__props__:
            return name
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self.__props__)
        return f"{name}{{{args}}}"

    __repr__ = __str__

    # -- building -----------------------------------------------------------------
    def make_node(self, *inputs: Variable) -> Apply:
        raise NotImplementedError(f"{type(self).__name__} must define make_node")

    def __call__(self, *inputs, **kwargs):
        node = self.make_node(*inputs, **kwargs)
        if self.default_output is not None:
            return node.outputs[self.default_output]
        if len(node.outputs) == 1:
            return node.outputs[0]
        return node.outputs

    # -- evaluation ---------------------------------------------------------------
    def perform(self, node: Apply, inputs: list, output_storage: list[list]) -> None:
        """Compute outputs from input values; store output i in output_storage[i][0].

        Ops that define ``make_thunk_function`` get this for free.
        """
        if type(self).make_thunk_function is Op.make_thunk_function:
            raise NotImplementedError(f"{type(self).__name__} defines neither perform nor "
                                      "make_thunk_function")
        result = self.make_thunk_function(node)(*inputs)
        if len(output_storage) == 1:
            output_storage[0][0] = result
        else:
            for store, value in zip(output_storage, result):
                store[0] = value

    def make_thunk_function(self, node: Apply):
        """A callable ``f(*input_values) -> output value (or tuple of values)``.

        Backends call this once per node at compile time. The default wraps
        ``perform``; built-in ops override it with a direct numpy call.
        """
        perform = self.perform
        nout = len(node.outputs)

        if nout == 1:
            def run(*values):
                storage = [[None]]
                perform(node, list(values), storage)
                return storage[0][0]
        else:
            def run(*values):
                storage = [[None] for _ in range(nout)]
                perform(node, list(values), storage)
                return tuple(s[0] for s in storage)
        return run

    # -- derivatives --------------------------------------------------------------
    def pullback(self, inputs, outputs, output_grads):
        cls = type(self)
        if cls.L_op is not Op.L_op:
            return self.L_op(inputs, outputs, output_grads)
        if cls.grad is not Op.grad:
            return self.grad(inputs, output_grads)
        from symgrad.gradient import NotDifferentiable

        return [NotDifferentiable(self, "it defines no pullback") for _ in inputs]

    def pushforward(self, inputs, outputs, tangents):
        cls = type(self)
        if cls.R_op is not Op.R_op:
            return self.R_op(inputs, tangents)
        from symgrad.gradient import pushforward_from_pullback

        return pushforward_from_pullback(self, inputs, outputs, tangents)

    # PyTensor-compatible hooks; subclasses may define these instead.
    def L_op(self, inputs, outputs, output_grads):  # pragma: no cover - hook
        raise NotImplementedError

    def grad(self, inputs, output_grads):  # pragma: no cover - hook
        raise NotImplementedError

    def R_op(self, inputs, eval_points):  # pragma: no cover - hook
        raise NotImplementedError

    def vectorize_node(self, node: Apply, *batched_inputs: Variable) -> list[Variable]:
        from symgrad.graph.vectorize import loop_over_batch

        return loop_over_batch(node, batched_inputs)

    # -- optional information --------------------------------------------------------
    def infer_shape(self, node: Apply, input_shapes):
        """Symbolic output shapes from symbolic input shapes; optional."""
        raise NotImplementedError


def as_list(x) -> list:
    if isinstance(x, list | tuple):
        return list(x)
    return [x]
