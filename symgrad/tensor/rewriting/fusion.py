"""The fusion pass: connected elementwise nodes become one FusedElemwise.

1. Elementwise nodes connected producer-to-consumer form components (union-find).
2. A component is *convex* when no path leaves it and comes back (through a
   non-elementwise node, e.g. a reduction of one of its values feeding another of
   its nodes). One pass in topological order finds the components that are not:
   each node carries the set of components some path to it has left.
3. A convex component becomes one fused node; its values used outside (or as graph
   outputs) are the fused node's outputs. A component that is not convex is fused
   as trees instead: a node absorbs the producer of an input whose only client it is.

Constants of one element are written into the program. A single elementwise node
is left alone (it already is one loop).
"""

from __future__ import annotations

from symgrad.graph.basic import Constant
from symgrad.rewrite.basic import global_rewriter
from symgrad.rewrite.engine import apply_replacements
from symgrad.tensor.elemwise import Elemwise
from symgrad.tensor.fusion import FusedElemwise, Program

_SET_CAP = 64  # beyond this many components on paths to a node, be conservative
_TOP = object()


def _fusable(node) -> bool:
    op = node.op
    return (type(op) is Elemwise and not op.inplace and len(node.outputs) == 1
            and hasattr(node.outputs[0].type, "dtype"))


def _embed(c):
    """The program arg for a one-element constant, or None to keep it an input."""
    data = c.data
    if getattr(data, "size", 0) != 1:
        return None
    value = data.reshape(()).item()
    if getattr(c, "weak", False):
        return ("w", value)
    return ("c", value, str(data.dtype))


def _build(members, outputs):
    """(Program, inputs) for ``members`` (in topological order) returning ``outputs``."""
    member_set = set(members)
    step_of = {}
    inputs: list = []
    input_pos: dict = {}
    steps = []
    for node in members:
        args = []
        for i in node.inputs:
            if i.owner in member_set:
                args.append(("s", step_of[i]))
                continue
            if isinstance(i, Constant):
                emb = _embed(i)
                if emb is not None:
                    args.append(emb)
                    continue
            if i not in input_pos:
                input_pos[i] = len(inputs)
                inputs.append(i)
            args.append(("i", input_pos[i]))
        step_of[node.outputs[0]] = len(steps)
        steps.append((node.op.scalar_op, args, node.outputs[0].type.dtype))
    return Program(len(inputs), steps, [step_of[o] for o in outputs]), inputs


def _components(nodes, fusable):
    parent = {n: n for n in fusable}

    def find(n):
        root = n
        while parent[root] is not root:
            root = parent[root]
        while parent[n] is not root:
            parent[n], n = root, parent[n]
        return root

    for n in fusable:
        for i in n.inputs:
            p = i.owner
            if p is not None and p in parent:
                a, b = find(n), find(p)
                if a is not b:
                    parent[a] = b
    return {n: find(n) for n in fusable}


def _non_convex(nodes, comp):
    """The components some path leaves and re-enters."""
    bad = set()
    left: dict = {}
    for n in nodes:
        k = comp.get(n)
        acc = None
        for i in n.inputs:
            p = i.owner
            if p is None:
                continue
            dp = left.get(p)
            kp = comp.get(p)
            if dp is None and (kp is None or kp is k):
                continue
            if acc is None:
                acc = set()
            if dp is _TOP or acc is _TOP:
                acc = _TOP
                continue
            if dp:
                acc |= dp
            if kp is not None and kp is not k:
                acc.add(kp)
        if acc is None:
            continue
        if acc is not _TOP and len(acc) > _SET_CAP:
            bad |= acc
            acc = _TOP
        if k is not None and (acc is _TOP or k in acc):
            bad.add(k)
        left[n] = acc
    return bad


def _tree_clusters(members, fgraph):
    """Single-output clusters: a node absorbs the producer of an input it alone uses."""
    member_set = set(members)
    clients = fgraph.clients
    assigned: set = set()
    out = []
    for root in reversed(members):
        if root in assigned:
            continue
        cluster = {root}
        count: dict = {}
        work = [root]
        while work:
            n = work.pop()
            for inp in n.inputs:
                p = inp.owner
                if p is None or p in cluster or p in assigned or p not in member_set:
                    continue
                c = count.get(inp, 0) + 1
                count[inp] = c
                if c == len(clients[inp]):
                    cluster.add(p)
                    work.append(p)
        assigned |= cluster
        if len(cluster) >= 2:
            out.append((cluster, [root.outputs[0]]))
    return out


def _acyclic(nodes, clusters, fgraph):
    """Each cluster may be convex on its own and still depend on another cluster that
    depends on it (a cycle once both are fused). Demote the multi-output clusters on such
    cycles to tree fusion (which never forms them) until the cluster graph is acyclic."""
    if len(clusters) < 2:
        return clusters  # one convex cluster (or a tree) is no cycle
    while True:
        owner = {}
        for ci, c in enumerate(clusters):
            for n in c[0]:
                owner[n] = ci
        succ: dict = {}
        indeg: dict = {}
        supers = set()
        for n in nodes:
            kn = owner.get(n, n)
            supers.add(kn)
            for i in n.inputs:
                p = i.owner
                if p is None:
                    continue
                kp = owner.get(p, p)
                if kp is kn or kp == kn:
                    continue
                out = succ.setdefault(kp, set())
                if kn not in out:
                    out.add(kn)
                    indeg[kn] = indeg.get(kn, 0) + 1
        ready = [s for s in supers if not indeg.get(s)]
        done = 0
        while ready:
            s = ready.pop()
            done += 1
            for t in succ.get(s, ()):
                indeg[t] -= 1
                if not indeg[t]:
                    ready.append(t)
        if done == len(supers):
            return clusters
        stuck = {s for s in supers if indeg.get(s)}
        demote = [ci for ci in range(len(clusters))
                  if ci in stuck and len(clusters[ci]) > 2]
        if not demote:  # pragma: no cover - tree clusters cannot form cycles
            return []
        new = [c for ci, c in enumerate(clusters) if ci not in set(demote)]
        for ci in demote:
            new.extend(_tree_clusters(clusters[ci][2], fgraph))
        clusters = new


@global_rewriter(sets=("fuse",), name="elemwise_fusion")
def elemwise_fusion(fgraph, context):
    """Fuse connected elementwise ops into FusedElemwise nodes (several outputs allowed)."""
    nodes = fgraph.toposort()
    order = {n: k for k, n in enumerate(nodes)}
    fusable = [n for n in nodes if _fusable(n)]
    if len(fusable) < 2:
        return 0
    comp = _components(nodes, fusable)
    bad = _non_convex(nodes, comp)
    groups: dict = {}
    for n in fusable:
        groups.setdefault(comp[n], []).append(n)
    clients = fgraph.clients
    clusters = []
    for k, members in groups.items():
        if len(members) < 2:
            continue
        if k in bad:
            clusters.extend(_tree_clusters(members, fgraph))
            continue
        member_set = set(members)
        outputs = [n.outputs[0] for n in members
                   if any(c == "output" or c not in member_set
                          for c, _ in clients[n.outputs[0]])]
        clusters.append((member_set, outputs, members))
    clusters = _acyclic(nodes, clusters, fgraph)
    fused = 0
    for cluster, outputs, *_ in clusters:
        members = sorted(cluster, key=order.__getitem__)
        program, inputs = _build(members, outputs)
        if not inputs:
            continue
        new_outs = FusedElemwise(program).make_node(*inputs).outputs
        pairs = dict(zip(outputs, new_outs))
        if apply_replacements(fgraph, outputs[0].owner, pairs, "elemwise_fusion", context):
            fused += 1
    if context is not None:
        context.stats["elemwise_fusion"] += fused
    return fused
