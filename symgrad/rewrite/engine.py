"""The rewrite engine: a worklist over a FunctionGraph, to a fixed point.

Every node is visited once at the start (inputs before consumers); afterwards
only nodes that a change touched are visited again: nodes a rewrite created,
nodes whose inputs were replaced, and the other consumers of a replaced
variable. With nothing interacting, a run is linear in the size of the graph.
No function here recurses over the graph, so 100,000-deep chains are fine.

Merging (common subexpressions, equal constants), constant folding and
dead-code removal are passes of their own (``merge_pass``,
``constant_folding_pass``, ``dead_code_pass``); merging and folding also run
incrementally inside the worklist, so that rewrites see merged graphs.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter, deque

import numpy as np

from symgrad.config import config
from symgrad.graph.basic import Constant, Variable
from symgrad.rewrite.basic import node_key, resolve_track

__all__ = ["RewriteContext", "RewriteError", "RewriteCheckError", "run_local_rewrites",
           "merge_pass", "constant_folding_pass", "dead_code_pass", "fold_node",
           "apply_replacements"]


class RewriteError(RuntimeError):
    """A rewrite raised an exception or proposed an impossible replacement."""


class RewriteCheckError(TypeError):
    """``config.check_rewrites``: a rewrite left the graph with inconsistent types."""


class RewriteContext:
    """What the passes of one compilation share."""

    def __init__(self, fgraph, mode=None, n_explicit=None, mutable=None):
        self.fgraph = fgraph
        self.mode = mode
        self.n_explicit = len(fgraph.inputs) if n_explicit is None else n_explicit
        self.mutable = list(mutable) if mutable is not None else [False] * self.n_explicit
        self.disabled = frozenset(getattr(mode, "disabled_rewrites", ()) or ())
        self.check = bool(config.check_rewrites)
        self.stats: Counter = Counter()
        self.cache: dict = {}  # per-compilation analyses (e.g. the dims analysis)


# -- helpers ----------------------------------------------------------------------------------------

_SIG_CACHE: dict = {}


def _signature(c: Constant):
    entry = _SIG_CACHE.get(id(c))
    if entry is not None and entry[0] is c:
        return entry[1]
    try:
        sig = c.signature()
        hash(sig)
    except Exception:
        sig = ("id", id(c))
    if len(_SIG_CACHE) > 20000:
        _SIG_CACHE.clear()
    _SIG_CACHE[id(c)] = (c, sig)
    return sig


def _compatible(old, new) -> bool:
    return old.type == new.type or old.type.is_super(new.type)


def _no_fold(op) -> bool:
    return getattr(op, "constant_foldable", True) is False


_FOLD_MAX_SIZE = 1 << 14


def fold_node(node):
    """The outputs of ``node`` as constants when every input is a constant, else None."""
    op = node.op
    if _no_fold(op):
        return None
    for i in node.inputs:
        if not isinstance(i, Constant):
            return None
    for o in node.outputs:
        if not hasattr(o.type, "dtype"):
            return None
    try:
        fn = op.make_thunk_function(node)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fn(*[i.data for i in node.inputs])
    except Exception:
        return None  # leave the error for run time, where it names the op and shapes
    results = [result] if len(node.outputs) == 1 else list(result)
    from symgrad.tensor.basic import constant
    from symgrad.tensor.type import TensorType
    from symgrad.tensor.variable import TensorConstant

    in_size = sum(int(np.size(i.data)) for i in node.inputs)
    out = []
    for o, r in zip(node.outputs, results):
        arr = np.asarray(r)
        if arr.size > _FOLD_MAX_SIZE and arr.size > in_size:
            return None  # a broadcast or an allocation: keep it symbolic
        dtype = o.type.dtype
        if arr.dtype != _numpy_dtype(dtype):
            try:
                arr = arr.astype(dtype)
            except Exception:
                return None
        if arr.ndim != o.type.ndim:
            return None
        if arr.dtype == object or type(o.type) is not TensorType:
            c = constant(arr, dtype=dtype)
        else:  # what constant() makes of it, directly: a private read-only copy
            arr = np.array(arr)
            arr.setflags(write=False)
            c = TensorConstant(TensorType(dtype, arr.shape), arr)
        if not o.type.is_super(c.type):
            return None
        out.append(c)
    return out


_NUMPY_DTYPES: dict = {}


def _numpy_dtype(name: str):
    dt = _NUMPY_DTYPES.get(name)
    if dt is None:
        dt = _NUMPY_DTYPES[name] = np.dtype(name)
    return dt


class _OpCanon:
    """Equal ops map to one instance, hashed once per op object (hashing props is slow)."""

    def __init__(self):
        self.by_id: dict = {}
        self.table: dict = {}

    def __call__(self, op):
        e = self.by_id.get(id(op))
        if e is not None and e[0] is op:
            return e[1]
        try:
            canon = self.table.setdefault(op, op)
        except TypeError:  # an unhashable op: only identical objects merge
            canon = op
        self.by_id[id(op)] = (op, canon)
        return canon


def _merge_key(node, canon):
    return (id(canon(node.op)), tuple([id(i) for i in node.inputs]))


def apply_replacements(fgraph, node, result, name, context):
    """Validate a rewrite's answer and apply it; True when something changed."""
    if isinstance(result, dict):
        pairs = list(result.items())
    else:
        if len(result) != len(node.outputs):
            raise RewriteError(f"rewrite {name} returned {len(result)} replacements for "
                               f"{len(node.outputs)} outputs of {node.op}")
        pairs = list(zip(node.outputs, result))
    todo = []
    for old, new in pairs:
        if new is None or new is old:
            continue
        if not isinstance(new, Variable):
            raise RewriteError(f"rewrite {name} returned {new!r}, not a variable")
        if old not in fgraph.variables:
            continue
        if not _compatible(old, new):
            from symgrad.rewrite.pattern import fit_to

            fitted = fit_to(new, old)
            if fitted is None or not _compatible(old, fitted):
                message = (f"rewrite {name} proposed to replace {old} ({old.type}) by {new} "
                           f"({new.type}), which changes its type")
                if context is not None and context.check:
                    raise RewriteCheckError(message)
                return False
            new = fitted
        todo.append((old, new))
    if not todo:
        return False
    if context is not None and context.check:
        _check_no_cycle(todo, name)
    for old, new in todo:
        fgraph.replace(old, new, reason=name, check_type=False)
    return True


def _check_no_cycle(pairs, name):
    from symgrad.graph.traversal import ancestors

    for old, new in pairs:
        if old in set(ancestors([new])):
            raise RewriteCheckError(f"rewrite {name} replaces {old} by an expression that "
                                    "depends on it (a cycle)")


def _check_graph(fgraph, name, new_nodes, output_types):
    for node in new_nodes:
        if node not in fgraph.apply_nodes:
            continue
        try:
            fresh = node.op.make_node(*node.inputs)
        except Exception as exc:
            raise RewriteCheckError(f"after rewrite {name}: node {node.op} no longer accepts "
                                    f"its inputs: {exc}") from exc
        for old, new in zip(node.outputs, fresh.outputs):
            if not (old.type == new.type or old.type.is_super(new.type)
                    or new.type.is_super(old.type)):
                raise RewriteCheckError(
                    f"after rewrite {name}: {node.op} now gives {new.type} but its output "
                    f"was declared {old.type}")
    for k, (out, t) in enumerate(zip(fgraph.outputs, output_types)):
        if not (out.type == t or t.is_super(out.type)):
            raise RewriteCheckError(f"after rewrite {name}: output {k} changed type from {t} "
                                    f"to {out.type}")
    n = len(fgraph.toposort())
    if n != len(fgraph.apply_nodes):
        raise RewriteCheckError(f"after rewrite {name}: the graph has a cycle or dangling "
                                f"nodes ({n} reachable, {len(fgraph.apply_nodes)} recorded)")


# -- the worklist -------------------------------------------------------------------------------------

class _Index:
    """Rewrites by head op: elementwise scalar-op name, op class, or any node."""

    def __init__(self, rewrites):
        rewrites = list(rewrites)
        self.by_key: dict = {}
        self.generic: list = []
        self.pending: dict = {}  # "module:Class" track of a module not imported yet -> rewrites
        for rw in rewrites:
            if not rw.tracks:
                self.generic.append(rw)
                continue
            for t in rw.tracks:
                key = resolve_track(t)
                if key is None:
                    self.generic.append(rw)
                elif isinstance(key, str):
                    self.pending.setdefault(key, []).append(rw)
                elif isinstance(key, tuple) or isinstance(key, type):
                    self.by_key.setdefault(key, []).append(rw)
        self._memo: dict = {}
        self._n_modules = len(sys.modules)
        self._position = {rw: k for k, rw in enumerate(rewrites)} if self.pending else None
        # input conditions (``LocalRewrite.inputs``): rewrite -> frozenset of index keys
        self._input_keys: dict = {}
        self._entries: dict = {}
        self._inputs_pending = False
        self._n_modules_inputs = len(sys.modules)

    def _resolve_pending(self):
        """Index the tracks whose modules were imported since (an op of a class can only
        exist once its module is; a rewrite may import one while the worklist runs)."""
        self._n_modules = len(sys.modules)
        for spec in list(self.pending):
            key = resolve_track(spec)
            if isinstance(key, str):
                continue
            if not isinstance(key, type):
                del self.pending[spec]  # the name is not an op class: never matches
            else:
                entries = self.by_key.setdefault(key, [])
                entries.extend(self.pending.pop(spec))
                entries.sort(key=self._position.__getitem__)  # registration order, as if eager

    def for_op(self, op):
        entry = self._memo.get(id(op))
        if entry is not None and entry[0] is op:
            return entry[1]
        if self.pending and len(sys.modules) != self._n_modules:
            self._resolve_pending()
        found = []
        key = node_key(op)
        if key is not None:
            found.extend(self.by_key.get(key, ()))
        for cls in type(op).__mro__:
            found.extend(self.by_key.get(cls, ()))
        found.extend(self.generic)
        seen = set()
        result = tuple(r for r in found if not (id(r) in seen or seen.add(id(r))))
        self._memo[id(op)] = (op, result)
        return result


    def _input_condition(self, rw):
        """The index keys one of which some input's owner must have (None: no condition)."""
        if not rw.inputs:
            return None
        keys = self._input_keys.get(rw)
        if keys is None:
            found = []
            for t in rw.inputs:
                key = resolve_track(t)
                if key is None:
                    return None  # "any node": no condition
                if isinstance(key, str):
                    self._inputs_pending = True  # its module is not imported (yet)
                found.append(key)
            keys = self._input_keys[rw] = frozenset(found)
        return keys

    def entries(self, op):
        """``for_op(op)`` as (rewrite, input condition or None) pairs."""
        if self._inputs_pending and len(sys.modules) != self._n_modules_inputs:
            # a module named by an input condition may have been imported since
            self._n_modules_inputs = len(sys.modules)
            self._inputs_pending = False
            self._input_keys.clear()
            self._entries.clear()
        # (what applies depends only on the op's class and scalar op: ops that rewrites make
        # are new objects, but of a few kinds)
        key = (type(op), node_key(op))
        result = self._entries.get(key)
        if result is None:
            result = tuple((rw, self._input_condition(rw)) for rw in self.for_op(op))
            self._entries[key] = result
        return result


_OP_KEYS: dict = {}
_NO_KEYS: frozenset = frozenset()


def _op_keys(op) -> frozenset:
    """The index keys ``op`` answers to: its classes, and its scalar op when elementwise."""
    key = node_key(op)
    entry = (type(op), key)
    keys = _OP_KEYS.get(entry)
    if keys is None:
        found = set(type(op).__mro__)
        if key is not None:
            found.add(key)
        keys = _OP_KEYS[entry] = frozenset(found)
    return keys


def _input_keys(node) -> frozenset:
    """The index keys of the owners of ``node``'s inputs."""
    keys = _NO_KEYS
    for i in node.inputs:
        owner = i.owner
        if owner is not None:
            k = _op_keys(owner.op)
            keys = k if keys is _NO_KEYS else keys | k
    return keys


_INDEXES: dict = {}


def _index_of(rewrites) -> _Index:
    """The index of these rewrites, built once per set of rewrites (every compilation
    runs the same few sets; the key holds the rewrite objects, so ids are never reused)."""
    key = tuple(rewrites)
    index = _INDEXES.get(key)
    if index is None:
        if len(_INDEXES) > 64:
            _INDEXES.clear()
        index = _INDEXES[key] = _Index(key)
    elif len(index._memo) > 50_000:
        index._memo.clear()  # (ops made by rewrites are new objects: keep the memo bounded)
    return index


def run_local_rewrites(fgraph, rewrites, context=None, merge=True, fold=True,
                       max_steps=None, initial=None) -> Counter:
    """Apply ``rewrites`` (LocalRewrite objects) to ``fgraph`` until nothing changes.

    ``initial``: when given, the first visit of each node tries only these rewrites (and
    no merging or folding): the graph is known to be a fixed point of the others, as
    after an earlier phase. Nodes a change touches get every rewrite.
    Returns a Counter of the rewrites applied (by name).
    """
    index = _index_of(rewrites)
    first_index = index if initial is None else _index_of(initial)
    untouched: set = set()
    stats = context.stats if context is not None else Counter()
    check = context is not None and context.check
    queue: deque = deque()
    queued: set = set()
    created: list = []

    def push(node):
        untouched.discard(node)
        if node not in queued:
            queued.add(node)
            queue.append(node)

    def listener(event, node, *args):
        if event == "import":
            push(node)
            if check:
                created.append(node)
        elif event == "change_input":
            if node != "output":
                push(node)
            old = args[1]
            clients = fgraph.clients.get(old)
            if clients and len(clients) <= 8:
                for c, _ in clients:
                    if c != "output":
                        push(c)

    if initial is None:
        for node in fgraph.toposort():
            queued.add(node)
            queue.append(node)
    else:
        # an untouched node is visited only when one of ``initial`` could apply to it (a
        # node that a change touches later is queued then, like any other)
        entries = first_index.entries
        for node in fgraph.toposort():
            untouched.add(node)
            if entries(node.op):
                queued.add(node)
                queue.append(node)
    output_types = [o.type for o in fgraph.outputs]
    op_canon = _OpCanon()
    merge_table: dict = {}
    const_table: dict = {}
    apply_nodes = fgraph.apply_nodes
    if max_steps is None:
        max_steps = 50 * (len(apply_nodes) + 20)
    steps = 0
    fgraph.listeners.append(listener)
    try:
        while queue:
            node = queue.popleft()
            queued.discard(node)
            if node not in apply_nodes:
                continue
            inputs = node.inputs
            first = node in untouched
            if first:
                untouched.discard(node)
            # 1. constant folding
            if fold and not first:
                all_const = True
                for i in inputs:
                    if not isinstance(i, Constant):
                        all_const = False
                        break
                if all_const:
                    consts = fold_node(node)
                    if consts is not None:
                        steps += 1
                        stats["constant_folding"] += 1
                        apply_replacements(fgraph, node, consts, "constant_folding", context)
                        continue
            # 2. merging
            if merge and not first:
                for k, i in enumerate(inputs):
                    if isinstance(i, Constant):
                        sig = _signature(i)
                        canon = const_table.get(sig)
                        if canon is None:
                            const_table[sig] = i
                        elif canon is not i:
                            fgraph.change_input(node, k, canon, reason="merge")
                key = _merge_key(node, op_canon)
                other = merge_table.get(key)
                if other is not None and other is not node and other in apply_nodes \
                        and _merge_key(other, op_canon) == key:
                    steps += 1
                    stats["merge"] += 1
                    for o_old, o_new in zip(node.outputs, other.outputs):
                        if o_old in fgraph.variables:
                            fgraph.replace(o_old, o_new, reason="merge", check_type=False)
                    continue
                if key is not None:
                    merge_table[key] = node
            # 3. local rewrites
            in_keys = None
            for rw, needs in (first_index if first else index).entries(node.op):
                if needs is not None:
                    if in_keys is None:
                        in_keys = _input_keys(node)
                    if needs.isdisjoint(in_keys):
                        continue
                try:
                    result = rw.fn(fgraph, node)
                except (RewriteError, RewriteCheckError):
                    raise
                except Exception as exc:
                    if check:
                        raise RewriteError(f"rewrite {rw.name} failed on {node.op}: "
                                           f"{type(exc).__name__}: {exc}") from exc
                    warnings.warn(f"rewrite {rw.name} failed on {node.op} and was skipped: "
                                  f"{type(exc).__name__}: {exc}", stacklevel=2)
                    continue
                if not result:
                    continue
                if check:
                    created.clear()
                if apply_replacements(fgraph, node, result, rw.name, context):
                    steps += 1
                    stats[rw.name] += 1
                    if check:
                        _check_graph(fgraph, rw.name, created, output_types)
                    if node in apply_nodes:
                        push(node)
                    break
            if steps > max_steps:
                warnings.warn(f"rewriting stopped after {steps} steps without reaching a fixed "
                              "point (rewrites undoing each other?); most applied: "
                              f"{stats.most_common(3)}", stacklevel=2)
                break
    finally:
        fgraph.listeners.remove(listener)
    return stats


# -- passes of their own ---------------------------------------------------------------------------

def merge_pass(fgraph, context=None) -> int:
    """Merge equal constants and identical nodes (same op, same inputs); returns merges done."""
    const_table: dict = {}
    table: dict = {}
    op_canon = _OpCanon()
    merged = 0
    for node in fgraph.toposort():
        if node not in fgraph.apply_nodes:
            continue
        for k, i in enumerate(node.inputs):
            if isinstance(i, Constant):
                sig = _signature(i)
                canon = const_table.setdefault(sig, i)
                if canon is not i:
                    fgraph.change_input(node, k, canon, reason="merge")
        key = _merge_key(node, op_canon)
        other = table.get(key)
        if other is not None and other in fgraph.apply_nodes:
            for o_old, o_new in zip(node.outputs, other.outputs):
                if o_old in fgraph.variables:
                    fgraph.replace(o_old, o_new, reason="merge", check_type=False)
            merged += 1
        else:
            table[key] = node
    # equal constants used directly as outputs
    for k, out in enumerate(fgraph.outputs):
        if isinstance(out, Constant):
            canon = const_table.setdefault(_signature(out), out)
            if canon is not out:
                fgraph.change_input("output", k, canon, reason="merge")
    if context is not None:
        context.stats["merge"] += merged
    return merged


def constant_folding_pass(fgraph, context=None) -> int:
    """Replace every node whose inputs are all constants by its value (repeatedly)."""
    stats = run_local_rewrites(fgraph, [], context=context, merge=False, fold=True)
    return stats.get("constant_folding", 0)


def dead_code_pass(fgraph, context=None) -> int:
    """Drop nodes the outputs do not need (the FunctionGraph prunes as it goes; this
    sweeps anything left behind)."""
    live = set(fgraph.toposort())
    dead = [n for n in fgraph.apply_nodes if n not in live]
    for node in dead:
        fgraph.apply_nodes.discard(node)
        for o in node.outputs:
            fgraph.variables.discard(o)
            fgraph.clients.pop(o, None)
        for k, i in enumerate(node.inputs):
            clients = fgraph.clients.get(i)
            if clients and (node, k) in clients:
                clients.remove((node, k))
    if context is not None:
        context.stats["dead_code"] += len(dead)
    return len(dead)
