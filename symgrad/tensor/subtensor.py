"""Indexing with numpy semantics: ``x[...]``, ``set_subtensor``, ``inc_subtensor``, ``take``.

An index is parsed into *entries*, one per position of the index tuple (after the
Ellipsis is expanded into full slices and trailing full slices are added):

    ("s", (start, stop, step))   a slice; each bound is None or an integer scalar variable
    ("i", var)                   an integer scalar (a Python int becomes a constant)
    ("a", var)                   an advanced index: an integer array (ndim >= 1) or a boolean mask
    ("n", None)                  numpy.newaxis
    ("e", None)                  a zero-length Ellipsis kept only because it separates
                                 advanced indices (numpy then puts their dims first)

Ops store the static structure in the hashable prop ``idx_list`` (``"i"``, ``"a"``, ``"n"``,
``"e"`` or ``("s", has_start, has_stop, has_step)``); every index value is an op input after
``x`` (and ``y`` for the inc/set ops), so symbolic and constant indices share one op.

Without advanced entries an index is *basic* (:class:`Subtensor`, a view; its pullback is
:class:`IncSubtensor`). With them it is *advanced* (:class:`AdvancedSubtensor`, a copy; its
pullback is :class:`AdvancedIncSubtensor`, ``np.add.at`` so repeated indices add up).
Integer scalars next to advanced indices are advanced too (numpy's rule), and numpy's rule
for where the broadcast advanced dims go is :func:`_layout`.

Batching (``vectorize_node``): a batched ``x`` with unbatched indices gets a leading full
slice; a batched integer index becomes an advanced index that pairs each batch row with its
own index (``x_b[arange(B), i_b]``, or ``x[i_b]`` when x is not batched), and the result is
transposed so that the batch axis comes first. Batched slice bounds or batched boolean
masks (ragged results) fall back to the generic loop (``Op.vectorize_node``).
"""

from __future__ import annotations

import numpy as np

from symgrad.graph.basic import Apply, Op, Variable
from symgrad.graph.vectorize import is_batched
from symgrad.tensor.basic import as_tensor_variable, constant
from symgrad.tensor.elemwise import DimShuffle, cast
from symgrad.tensor.type import TensorType, discrete_dtypes, int_dtypes
from symgrad.tensor.variable import TensorConstant

__all__ = [
    "getitem", "set_subtensor", "inc_subtensor", "take",
    "Subtensor", "AdvancedSubtensor", "IncSubtensor", "AdvancedIncSubtensor",
]

_FULL = ("s", (None, None, None))


# -- parsing a Python index into entries ------------------------------------------------------

def _is_tensor(v) -> bool:
    return isinstance(v, Variable) and hasattr(v.type, "dtype")


def _index_error_float(v, what="indices"):
    dtype = v.dtype if _is_tensor(v) else type(v).__name__
    return TypeError(f"{what} must be integers or booleans, got {v!r} of type {dtype}. "
                     "Cast a float index with .astype('int64') first.")


def _slice_bound(v):
    if v is None:
        return None
    if isinstance(v, bool | np.bool_ | int | np.integer):
        return constant(int(v), dtype="int64", weak=True)
    if not _is_tensor(v):
        v = as_tensor_variable(v) if not isinstance(v, float | complex) else v
        if not _is_tensor(v):
            raise TypeError(f"slice indices must be integers, got {v!r} of type {type(v).__name__}")
    if v.dtype not in int_dtypes or v.ndim != 0:
        raise TypeError(f"slice indices must be integer scalars, got {v} of type {v.type}")
    return v


def _index_variable(item):
    if _is_tensor(item):
        var = item
    elif isinstance(item, float | complex | np.floating | np.complexfloating):
        raise _index_error_float(item)
    else:
        if isinstance(item, list | tuple) and len(item) == 0:
            item = np.zeros((0,), dtype="int64")
        var = as_tensor_variable(item)
    if var.dtype not in int_dtypes and var.dtype != "bool":
        raise _index_error_float(var)
    return var


def _consumed(kind, val) -> int:
    if kind in ("s", "i"):
        return 1
    if kind == "a":
        return val.ndim if val.dtype == "bool" else 1
    return 0


def _parse(x, index) -> list:
    """The entries for ``x[index]``, covering every dimension of x."""
    if not isinstance(index, tuple):
        index = (index,)
    entries = []
    for item in index:
        if item is None:
            entries.append(("n", None))
        elif item is Ellipsis:
            entries.append(("e", None))
        elif isinstance(item, slice):
            entries.append(("s", tuple(_slice_bound(v) for v in (item.start, item.stop, item.step))))
        elif isinstance(item, bool | np.bool_):
            entries.append(("a", constant(bool(item))))
        elif isinstance(item, int | np.integer):
            entries.append(("i", constant(int(item), dtype="int64", weak=True)))
        else:
            var = _index_variable(item)
            entries.append(("i" if var.ndim == 0 and var.dtype != "bool" else "a", var))
    used = sum(_consumed(k, v) for k, v in entries)
    if used > x.ndim:
        raise IndexError(f"too many indices for {x} of ndim {x.ndim}: the index uses {used} "
                         "dimensions")
    ellipses = [p for p, (k, _) in enumerate(entries) if k == "e"]
    if len(ellipses) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    fill = [_FULL] * (x.ndim - used)
    if ellipses:
        p = ellipses[0]
        has_adv = any(k == "a" for k, _ in entries)
        # A zero-length Ellipsis still separates advanced indices in numpy: keep it then.
        entries[p:p + 1] = fill if (fill or not has_adv) else [("e", None)]
    else:
        entries += fill
    return entries


def _complete(entries, ndim: int) -> list:
    """Entries with trailing full slices added up to ``ndim`` dims (for hand-built ops)."""
    used = sum(_consumed(k, v) for k, v in entries)
    return list(entries) + [_FULL] * max(0, ndim - used)


def _to_idx_list(entries):
    idx_list, inputs = [], []
    for kind, val in entries:
        if kind == "s":
            idx_list.append(("s",) + tuple(b is not None for b in val))
            inputs.extend(b for b in val if b is not None)
        else:
            idx_list.append(kind)
            if kind in ("i", "a"):
                inputs.append(val)
    return tuple(idx_list), inputs


def _from_idx_list(idx_list, inputs) -> list:
    inputs = list(inputs)
    expected = sum(sum(e[1:]) if isinstance(e, tuple) else e in ("i", "a") for e in idx_list)
    if expected != len(inputs):
        raise TypeError(f"index {_format_idx(idx_list)} takes {expected} index inputs, "
                        f"got {len(inputs)}")
    it = iter(inputs)
    entries = []
    for e in idx_list:
        if isinstance(e, tuple):
            entries.append(("s", tuple(next(it) if has else None for has in e[1:])))
        elif e in ("i", "a"):
            entries.append((e, next(it)))
        elif e in ("n", "e"):
            entries.append((e, None))
        else:
            raise ValueError(f"unknown index entry {e!r}")
    return entries


def _format_idx(idx_list) -> str:
    parts = []
    for e in idx_list:
        if isinstance(e, tuple):
            s = ("start" if e[1] else "") + ":" + ("stop" if e[2] else "")
            parts.append(s + (":step" if e[3] else ""))
        else:
            parts.append({"i": "int", "a": "array", "n": "newaxis", "e": "..."}[e])
    return ", ".join(parts)


# -- static facts ----------------------------------------------------------------------------

def _const_int(var):
    if isinstance(var, TensorConstant) and var.data.ndim == 0:
        return int(var.data)
    return None


def _slice_length(n, bounds):
    values = []
    for b in bounds:
        if b is None:
            values.append(None)
            continue
        c = _const_int(b)
        if c is None:
            return None
        values.append(c)
    if values[2] == 0:
        raise ValueError("slice step cannot be zero")
    if n is None:
        return None
    return len(range(*slice(*values).indices(n)))


def _adv_ndim(entries) -> int:
    """The ndim of the broadcast advanced indices (0 when the index is basic)."""
    if not any(k == "a" for k, _ in entries):
        return 0
    return max([1 if v.dtype == "bool" else v.ndim for k, v in entries if k == "a"] + [0])


def _layout(kinds, adv_ndim: int) -> list:
    """numpy's order of output dims: ("b", entry position) for a slice or newaxis, ("a", j)
    for the j-th dim of the broadcast advanced indices. Advanced indices (integer scalars
    count when an array is present) that are all adjacent put their dims where the first
    one is; otherwise their dims come first."""
    basic = [("b", p) for p, k in enumerate(kinds) if k in ("s", "n")]
    if "a" not in kinds:
        return basic
    block = [("a", j) for j in range(adv_ndim)]
    pos = [p for p, k in enumerate(kinds) if k in ("a", "i")]
    if pos == list(range(pos[0], pos[-1] + 1)):
        before = sum(1 for _, p in basic if p < pos[0])
        return basic[:before] + block + basic[before:]
    return block + basic


def _broadcast_index_shapes(shapes):
    ndim = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            text = " ".join("(" + ",".join("?" if d is None else str(d) for d in s) + ")"
                            for s in shapes)
            raise IndexError("shape mismatch: indexing arrays could not be broadcast together "
                             f"with shapes {text}")
        out.append(known.pop() if known else (1 if all(d == 1 for d in dims) else None))
    return tuple(out)


def _indexed_shape(x_type, entries) -> tuple:
    """Check ``entries`` against x's type; return the static shape of ``x[entries]``."""
    has_adv = any(k == "a" for k, _ in entries)
    axis = 0
    sizes, adv_shapes = {}, []
    for p, (kind, val) in enumerate(entries):
        if kind in ("s", "i") or (kind == "a" and val.dtype != "bool"):
            if axis >= x_type.ndim:
                raise IndexError(f"too many indices for a tensor of ndim {x_type.ndim}")
            n = x_type.shape[axis]
        if kind == "n":
            sizes[p] = 1
        elif kind == "s":
            for b in val:
                if b is not None and (b.dtype not in int_dtypes or b.ndim != 0):
                    raise TypeError(f"slice indices must be integer scalars, got {b} of type "
                                    f"{b.type}")
            sizes[p] = _slice_length(n, val)
            axis += 1
        elif kind == "i":
            if val.dtype not in int_dtypes or val.ndim != 0:
                raise _index_error_float(val)
            c = _const_int(val)
            if n is not None and c is not None and not -n <= c < n:
                raise IndexError(f"index {c} is out of bounds for axis {axis} with size {n}")
            adv_shapes.append(())
            axis += 1
        elif kind == "a":
            if val.dtype == "bool":
                if axis + val.ndim > x_type.ndim:
                    raise IndexError(f"too many indices for a tensor of ndim {x_type.ndim}: a "
                                     f"boolean index of ndim {val.ndim} at axis {axis}")
                for j, m in enumerate(val.type.shape):
                    n = x_type.shape[axis + j]
                    if m is not None and n is not None and m != n:
                        raise IndexError(
                            f"boolean index did not match indexed array along axis {axis + j}; "
                            f"size of axis is {n} but size of corresponding boolean axis is {m}")
                count = (int(np.count_nonzero(val.data)) if isinstance(val, TensorConstant)
                         else None)
                adv_shapes.append((count,))
                axis += val.ndim
            else:
                if val.dtype not in int_dtypes or val.ndim == 0:
                    raise _index_error_float(val)
                adv_shapes.append(val.type.shape)
                axis += 1
    if axis != x_type.ndim:
        raise IndexError(f"the index covers {axis} of the {x_type.ndim} dimensions")
    adv_shape = _broadcast_index_shapes(adv_shapes) if has_adv else ()
    layout = _layout([k for k, _ in entries], len(adv_shape))
    return tuple(sizes[t[1]] if t[0] == "b" else adv_shape[t[1]] for t in layout)


def _index_builder(idx_list, basic: bool):
    """A function turning index input values into numpy's index tuple."""
    plan = []
    for e in idx_list:
        if isinstance(e, tuple):
            plan.append(e[1:])
        else:
            plan.append(e)
    n_in = sum(sum(e) if isinstance(e, tuple) else e in ("i", "a") for e in plan)
    if n_in == 0:
        fixed = tuple(slice(None) if isinstance(e, tuple) else None if e == "n" else Ellipsis
                      for e in plan) + ((Ellipsis,) if basic else ())
        return lambda vals: fixed

    def build(vals):
        k = 0
        out = []
        for e in plan:
            if isinstance(e, tuple):
                bounds = []
                for has in e:
                    if has:
                        bounds.append(int(vals[k]))
                        k += 1
                    else:
                        bounds.append(None)
                out.append(slice(*bounds))
            elif e == "i" or e == "a":
                out.append(vals[k])
                k += 1
            elif e == "n":
                out.append(None)
            else:
                out.append(Ellipsis)
        if basic:
            out.append(Ellipsis)  # numpy then returns a 0-d view, not a scalar
        return tuple(out)
    return build


def _ds(var, order):
    order = tuple(order)
    if order == tuple(range(var.ndim)):
        return var
    return DimShuffle(var.ndim, order)(var)


def _zeros_like(x):
    import symgrad.tensor as st

    return st.zeros_like(x)


# -- batching helpers --------------------------------------------------------------------------

def _batch_plan(old_entries, new_entries, x_batched: bool):
    """The batched entries (for an x that carries the batch axis when ``x_batched``) and the
    permutation taking the batched result to (batch, *core result dims); None -> use the loop."""
    batched_idx = None
    for (kind, ov), (_, nv) in zip(old_entries, new_entries):
        if kind == "s":
            if any(o is not None and is_batched(o, n) for o, n in zip(ov, nv)):
                return None
        elif kind in ("i", "a") and is_batched(ov, nv):
            if nv.dtype == "bool":
                return None
            batched_idx = nv
    core_kinds = [k for k, _ in old_entries]
    k_core = _adv_ndim(old_entries)
    core_layout = _layout(core_kinds, k_core)
    if batched_idx is None:
        entries = [_FULL] + list(new_entries)

        def to_core(t):
            return "B" if t == ("b", 0) else (t[0], t[1] - 1) if t[0] == "b" else t
        layout = _layout([k for k, _ in entries], k_core)
    else:
        import symgrad.tensor as st

        entries = []
        for (kind, ov), (_, nv) in zip(old_entries, new_entries):
            if kind in ("i", "a") and is_batched(ov, nv):
                d = ov.ndim
                nv = _ds(nv, (0,) + ("x",) * (k_core - d) + tuple(range(1, d + 1)))
                entries.append(("a", nv))
            else:
                entries.append((kind, nv))
        shift = 0
        if x_batched:
            ar = st.arange(st.shape_i(batched_idx, 0))
            entries.insert(0, ("a", _ds(ar, (0,) + ("x",) * k_core)))
            shift = 1

        def to_core(t):
            if t[0] == "a":
                return "B" if t[1] == 0 else ("a", t[1] - 1)
            return ("b", t[1] - shift)
        layout = _layout([k for k, _ in entries], k_core + 1)
    mapped = [to_core(t) for t in layout]
    target = ["B"] + core_layout
    perm = [mapped.index(t) for t in target]
    return entries, perm, mapped, target


def _getitem_entries(x, entries):
    advanced = any(k in ("a", "e") for k, _ in entries)
    idx_list, inputs = _to_idx_list(entries)
    op = AdvancedSubtensor(idx_list) if advanced else Subtensor(idx_list)
    return op(x, *inputs)


# -- ops -----------------------------------------------------------------------------------------

class _IndexOp(Op):
    advanced = False

    def _entries(self, x, index_inputs):
        return _complete(_from_idx_list(self.idx_list, index_inputs), x.ndim)

    def __str__(self):
        extra = ""
        if getattr(self, "set_instead_of_inc", False):
            extra = ", set"
        if getattr(self, "inplace", False):
            extra += ", inplace"
        return f"{type(self).__name__}{{{_format_idx(self.idx_list)}{extra}}}"

    __repr__ = __str__


class Subtensor(_IndexOp):
    """Basic indexing ``x[idx]`` (ints, slices, newaxis): a view of x.

    Inputs: x, then one integer scalar per symbolic int/slice bound in ``idx_list``.
    """

    __props__ = ("idx_list",)
    view_map = {0: [0]}

    def __init__(self, idx_list):
        self.idx_list = tuple(idx_list)
        if not self.advanced and any(e in ("a", "e") for e in self.idx_list):
            raise ValueError(f"{type(self).__name__} takes only basic indices; use "
                             "AdvancedSubtensor for arrays and masks")

    def make_node(self, x, *index_inputs):
        x = as_tensor_variable(x)
        index_inputs = [as_tensor_variable(i) for i in index_inputs]
        shape = _indexed_shape(x.type, self._entries(x, index_inputs))
        return Apply(self, [x, *index_inputs], [TensorType(x.dtype, shape)()])

    def make_thunk_function(self, node):
        build = _index_builder(self.idx_list, basic=not self.advanced)

        def run(x, *vals):
            return np.asarray(x)[build(vals)]
        return run


    def connection_pattern(self, node):
        return [True] + [False] * (len(node.inputs) - 1)

    def _inc_op(self, set_instead_of_inc=False):
        cls = AdvancedIncSubtensor if self.advanced else IncSubtensor
        return cls(self.idx_list, set_instead_of_inc=set_instead_of_inc)

    def pullback(self, inputs, outputs, output_grads):
        x, *idx = inputs
        (gz,) = output_grads
        rest = [None] * len(idx)
        if gz is None or x.dtype in discrete_dtypes:
            return [None] + rest
        return [self._inc_op()(_zeros_like(x), gz, *idx)] + rest

    def pushforward(self, inputs, outputs, tangents):
        t = tangents[0]
        return [None if t is None else self(t, *inputs[1:])]

    def vectorize_node(self, node, x, *idx):
        old_x = node.inputs[0]
        old = self._entries(old_x, node.inputs[1:])
        plan = _batch_plan(old, self._entries(old_x, idx), is_batched(old_x, x))
        if plan is None:
            return Op.vectorize_node(self, node, x, *idx)
        entries, perm, _, _ = plan
        return [_ds(_getitem_entries(x, entries), perm)]


class AdvancedSubtensor(Subtensor):
    """Advanced indexing (integer arrays, boolean masks, mixed with basic indices): a copy."""

    advanced = True
    view_map = {}


class IncSubtensor(_IndexOp):
    """``x`` with ``x[idx]`` increased by (or, with ``set_instead_of_inc``, set to) ``y``.

    Inputs: x, y (broadcast to the shape of x[idx]), then the index inputs. Without
    ``inplace`` the result is a fresh copy; with it, input 0 is overwritten.
    """

    __props__ = ("idx_list", "set_instead_of_inc", "inplace")

    def __init__(self, idx_list, set_instead_of_inc=False, inplace=False):
        self.idx_list = tuple(idx_list)
        self.set_instead_of_inc = bool(set_instead_of_inc)
        self.inplace = bool(inplace)
        self.destroy_map = {0: [0]} if self.inplace else {}
        if not self.advanced and any(e in ("a", "e") for e in self.idx_list):
            raise ValueError(f"{type(self).__name__} takes only basic indices; use "
                             "AdvancedIncSubtensor for arrays and masks")

    def _sub_op(self):
        return (AdvancedSubtensor if self.advanced else Subtensor)(self.idx_list)

    def _with(self, **kw):
        args = {"set_instead_of_inc": self.set_instead_of_inc, "inplace": False} | kw
        return type(self)(self.idx_list, **args)

    def make_node(self, x, y, *index_inputs):
        x = as_tensor_variable(x)
        y = as_tensor_variable(y)
        if y.dtype != x.dtype:
            y = cast(y, x.dtype)
        index_inputs = [as_tensor_variable(i) for i in index_inputs]
        region = _indexed_shape(x.type, self._entries(x, index_inputs))
        what = "set_subtensor" if self.set_instead_of_inc else "inc_subtensor"
        if y.ndim > len(region) or any(
                a is not None and b is not None and a != 1 and a != b
                for a, b in zip(reversed(y.type.shape), reversed(region))):
            raise ValueError(f"{what}: y of shape {_fmt_shape(y.type.shape)} cannot broadcast to "
                             f"the indexed region of shape {_fmt_shape(region)}")
        return Apply(self, [x, y, *index_inputs], [x.type()])

    def make_thunk_function(self, node):
        build = _index_builder(self.idx_list, basic=not self.advanced)
        inplace, set_, adv = self.inplace, self.set_instead_of_inc, self.advanced

        def run(x, y, *vals):
            out = x if inplace else np.array(x)
            idx = build(vals)
            if set_:
                out[idx] = y
            elif adv:
                np.add.at(out, idx, y)
            else:
                out[idx] += y
            return out
        return run


    def connection_pattern(self, node):
        return [True, True] + [False] * (len(node.inputs) - 2)

    def pullback(self, inputs, outputs, output_grads):
        x, y, *idx = inputs
        (gz,) = output_grads
        rest = [None] * len(idx)
        if gz is None or x.dtype in discrete_dtypes:
            return [None, None] + rest
        if self.set_instead_of_inc:
            gx = self._with(inplace=False)(gz, constant(0, dtype=gz.dtype), *idx)
        else:
            gx = gz
        gy = self._sub_op()(gz, *idx)
        if self.set_instead_of_inc and self.advanced and _may_repeat(
                self._entries(x, idx), x.type.shape):
            gy = _last_write_only(gy, x, self.idx_list, idx)
        return [gx, _sum_to(gy, y)] + rest

    def pushforward(self, inputs, outputs, tangents):
        x, y, *idx = inputs
        tx, ty = tangents[0], tangents[1]
        if tx is None and ty is None:
            return [None]
        if ty is None:
            if not self.set_instead_of_inc:
                return [tx]
            ty = constant(0, dtype=x.dtype)
        if tx is None:
            tx = _zeros_like(x)
        return [self._with()(tx, ty, *idx)]

    def vectorize_node(self, node, x, y, *idx):
        import symgrad.tensor as st

        old_x, old_y, *old_idx = node.inputs
        xb, yb = is_batched(old_x, x), is_batched(old_y, y)
        old = self._entries(old_x, old_idx)
        plan = _batch_plan(old, self._entries(old_x, idx), True)
        if plan is None:
            return Op.vectorize_node(self, node, x, y, *idx)
        entries, _, mapped, target = plan
        if not xb:
            size = next(v for v, o in zip([y, *idx], [old_y, *old_idx]) if is_batched(o, v))
            x = st.alloc(x, st.shape_i(size, 0), *[st.shape_i(x, k) for k in range(x.ndim)])
        m = len(target) - 1
        if yb:
            y = _ds(y, (0,) + ("x",) * (m - old_y.ndim) + tuple(range(1, old_y.ndim + 1)))
        inv = [target.index(t) for t in mapped]
        if inv != list(range(m + 1)):
            y = _ds(y, ("x",) * (m + 1 - y.ndim) + tuple(range(y.ndim)))
            y = _ds(y, inv)
        advanced = any(k in ("a", "e") for k, _ in entries)
        idx_list, inputs = _to_idx_list(entries)
        cls = AdvancedIncSubtensor if advanced else IncSubtensor
        return [cls(idx_list, set_instead_of_inc=self.set_instead_of_inc)(x, y, *inputs)]


class AdvancedIncSubtensor(IncSubtensor):
    """IncSubtensor for advanced indices: repeated positions all add up (``np.add.at``);
    setting repeated positions keeps the last value (numpy's assignment)."""

    advanced = True


def _fmt_shape(shape) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + (
        ",)" if len(shape) == 1 else ")")


def _sum_to(g, y):
    """Sum the cotangent of the broadcast ``y`` back to y's shape."""
    from symgrad.tensor.elemwise import sum_to_shape

    if g.type.shape == y.type.shape and None not in y.type.shape:
        return g
    return sum_to_shape(g, y)


def _may_repeat(entries, x_shape) -> bool:
    """Whether an advanced index can name one position twice."""
    arrays = [v for k, v in entries if k == "a" and v.dtype != "bool"]
    if not arrays:
        return False
    if not all(isinstance(v, TensorConstant) for v in arrays):
        return True
    axes = []
    axis = 0
    for k, v in entries:
        if k == "a" and v.dtype != "bool":
            axes.append(axis)
        axis += _consumed(k, v)
    cols = []
    for v, ax in zip(np.broadcast_arrays(*[a.data for a in arrays]), axes):
        n = x_shape[ax]
        if n is None and (v < 0).any() and (v >= 0).any():
            return True
        cols.append((v % n if n else v).ravel())
    keys = np.stack(cols, axis=1) if cols else np.zeros((0, 0))
    return len(np.unique(keys, axis=0)) != len(keys)


def _last_write_only(gy, x, idx_list, idx):
    """Zero the cotangent of every element of y that a later repeat overwrote."""
    import symgrad.tensor as st

    region = AdvancedSubtensor(idx_list)(x, *idx)
    ids = st.arange(region.size).reshape(region.shape, ndim=region.ndim)
    start = st.zeros_like(x, dtype="int64")
    written = AdvancedIncSubtensor(idx_list, set_instead_of_inc=True)(start, ids, *idx)
    won = st.eq(AdvancedSubtensor(idx_list)(written, *idx), ids)
    return st.switch(won, gy, constant(0, dtype=gy.dtype))


# -- public functions --------------------------------------------------------------------------

def getitem(x, index):
    """``x[index]`` with numpy's semantics (basic and advanced indexing).

    >>> import numpy as np, symgrad.tensor as st
    >>> x = st.dmatrix("x")
    >>> x[1:, [0, 0]].eval({x: np.arange(6.0).reshape(2, 3)})
    array([[3., 3.]])
    """
    x = as_tensor_variable(x)
    return _getitem_entries(x, _parse(x, index))


def _inc_or_set(x_indexed, y, set_instead_of_inc, inplace, fname):
    owner = getattr(x_indexed, "owner", None)
    if owner is None or not isinstance(owner.op, Subtensor):
        got = ("a graph input" if owner is None else f"the output of {owner.op}") if isinstance(
            x_indexed, Variable) else type(x_indexed).__name__
        raise TypeError(f"{fname}: the first argument must be the result of indexing a tensor, "
                        f"as in {fname}(x[idx], y); got {x_indexed!r} ({got})")
    x, *idx = owner.inputs
    y = as_tensor_variable(y)
    if y.dtype != x.dtype:
        if not set_instead_of_inc and not np.can_cast(y.dtype, x.dtype, "same_kind"):
            raise TypeError(f"{fname}: cannot add y of dtype {y.dtype} into x of dtype {x.dtype} "
                            "(numpy's same_kind rule); cast y first")
        if isinstance(y, TensorConstant):
            with np.errstate(all="ignore"):
                y = constant(np.asarray(y.data).astype(x.dtype), dtype=x.dtype)
        else:
            y = cast(y, x.dtype)
    op = owner.op._inc_op(set_instead_of_inc)
    if inplace:
        op = type(op)(op.idx_list, set_instead_of_inc=set_instead_of_inc, inplace=True)
    return op(x, y, *idx)


def set_subtensor(x, y, inplace=False):
    """A copy of the indexed tensor with the indexed region set to ``y`` (broadcast):
    ``set_subtensor(x[idx], y)`` is numpy's ``x2 = x.copy(); x2[idx] = y``.

    >>> import numpy as np, symgrad.tensor as st
    >>> x = st.dvector("x")
    >>> st.set_subtensor(x[1:], 5.0).eval({x: np.zeros(3)})
    array([0., 5., 5.])
    """
    return _inc_or_set(x, y, True, inplace, "set_subtensor")


def inc_subtensor(x, y, inplace=False):
    """A copy of the indexed tensor with ``y`` added to the indexed region; with advanced
    indices every repeat adds (``np.add.at``).

    >>> import numpy as np, symgrad.tensor as st
    >>> x = st.dvector("x")
    >>> st.inc_subtensor(x[[0, 0, 2]], 1.0).eval({x: np.zeros(3)})
    array([2., 0., 1.])
    """
    return _inc_or_set(x, y, False, inplace, "inc_subtensor")


def take(x, indices, axis=None, mode="raise"):
    """numpy's ``take``: elements of ``x`` at ``indices`` along ``axis`` (flattened x when
    None). ``mode`` is 'raise', 'wrap' or 'clip'."""
    x = as_tensor_variable(x)
    if axis is None:
        x = x.flatten()
        axis = 0
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"take: axis {axis} is out of bounds for {x} of ndim {x.ndim}")
    axis %= x.ndim
    if mode not in ("raise", "wrap", "clip"):
        raise ValueError(f"take: mode must be 'raise', 'wrap' or 'clip', got {mode!r}")
    if mode != "raise":
        import symgrad.tensor as st

        indices = _index_variable(indices)
        n = st.shape_i(x, axis)
        indices = indices % n if mode == "wrap" else st.clip(indices, 0, n - 1)
    return getitem(x, (slice(None),) * axis + (indices,))
