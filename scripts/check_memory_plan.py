#!/usr/bin/env python3
"""Check a memory plan (`onnx-memsched --memory-plan`) from scratch.

Usage:
    python scripts/check_memory_plan.py --tool target/release/onnx-memsched MODEL...
    python scripts/check_memory_plan.py --plan PLAN.json WRITTEN_MODEL.onnx

With --tool, runs `tool MODEL OUT --memory-plan P` for every model and checks
P against OUT. The check shares no code with the tool: it reads the written
model with `onnx`, recomputes every tensor's lifetime from the file's node
order by the README's memory model, sizes tensors with ONNX shape inference
(where it gives a static shape), and verifies that

  * every offset and size is a multiple of the alignment, and every size is
    the tensor's bytes rounded up to it (where shape inference knows them);
  * every activation tensor of nonzero known size has a place, with the
    lifetime recomputed here;
  * no two tensors live at a common step overlap in the arena (a tensor
    written in place over its input may share that input's bytes at the step
    that writes it, and only then);
  * every tensor lies inside `arena_bytes`, which is the largest end;
  * `arena_lower_bound_bytes` is the most aligned bytes live at one step;
  * the arena is no larger than TFLite Micro's greedy-by-size rule (largest
    first, each at the lowest offset that fits), computed here.

Prints one line per model and `N passed, M failed`.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import onnx
from onnx import TensorProto

ITEM_BITS = {
    TensorProto.FLOAT: 32, TensorProto.UINT8: 8, TensorProto.INT8: 8, TensorProto.UINT16: 16,
    TensorProto.INT16: 16, TensorProto.INT32: 32, TensorProto.INT64: 64, TensorProto.BOOL: 8,
    TensorProto.FLOAT16: 16, TensorProto.DOUBLE: 64, TensorProto.UINT32: 32, TensorProto.UINT64: 64,
    TensorProto.COMPLEX64: 64, TensorProto.COMPLEX128: 128, TensorProto.BFLOAT16: 16,
}


def subgraph_reads(node):
    """Names a node's subgraphs read from the outer scope."""
    reads = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for g in graphs:
            local = {i.name for i in g.input} | {t.name for t in g.initializer}
            for n in g.node:
                local |= set(n.output)
            for n in g.node:
                reads |= {x for x in list(n.input) + list(subgraph_reads(n)) if x and x not in local}
            reads |= {o.name for o in g.output if o.name not in local}
    return reads


def static_bytes(vtype):
    if not vtype.HasField("tensor_type"):
        return None
    tt = vtype.tensor_type
    if tt.elem_type not in ITEM_BITS or not tt.HasField("shape"):
        return None
    n = 1
    for d in tt.shape.dim:
        if not d.HasField("dim_value"):
            return None
        n *= d.dim_value
    return math.ceil(n * ITEM_BITS[tt.elem_type] / 8)


def lifetimes(model):
    """name -> (first, last) by the memory model, for non-weight tensors."""
    g = model.graph
    weights = {t.name for t in g.initializer} | {t.name for t in g.sparse_initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            weights |= set(n.output)
    outputs = {o.name for o in g.output}
    steps = len(g.node)
    end = max(steps - 1, 0)
    first, last = {}, {}
    for i in g.input:
        if i.name not in weights:
            first[i.name] = 0
    for s, n in enumerate(g.node):
        for x in set(n.input) | subgraph_reads(n):
            if x in first:
                last[x] = max(last.get(x, s), s)
        for y in n.output:
            if y and y not in weights:
                first[y] = s
    for t in first:
        if t in outputs:
            last[t] = end
        last.setdefault(t, first[t])
    return {t: (first[t], last[t]) for t in first}, weights


def greedy_by_size(items):
    """TFLite Micro's rule on [(size, first, last)]: -> arena."""
    order = sorted(range(len(items)), key=lambda i: (-items[i][0], i))
    placed = []  # (offset, size, first, last)
    arena = 0
    for i in order:
        size, f, l = items[i]
        if size == 0:
            continue
        taken = sorted((o, o + s) for o, s, pf, pl in placed if pf <= l and f <= pl)
        cand = 0
        for start, stop in taken:
            if cand + size <= start:
                break
            cand = max(cand, stop)
        placed.append((cand, size, f, l))
        arena = max(arena, cand + size)
    return arena


def check(plan, model):
    errors = []
    align = plan["alignment"]
    inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    g = inferred.graph
    types = {vi.name: vi.type for vi in list(g.input) + list(g.value_info) + list(g.output)}
    life, _ = lifetimes(model)
    tensors = {t["name"]: t for t in plan["tensors"]}
    for name, (f, l) in life.items():
        b = static_bytes(types[name]) if name in types else None
        t = tensors.get(name)
        if t is None:
            if b:
                errors.append(f"tensor {name} ({b} B) has no place")
            continue
        if b is not None and t["size"] != -(-b // align) * align:
            errors.append(f"tensor {name}: size {t['size']} for {b} B at alignment {align}")
        if (t["first_step"], t["last_step"]) != (f, l):
            errors.append(f"tensor {name}: lifetime {t['first_step']}..{t['last_step']}, recomputed {f}..{l}")
    for name, t in tensors.items():
        if t.get("body"):
            # The working memory of a control-flow node's bodies while it
            # runs: one step, at a node that has a graph attribute.
            s = t["first_step"]
            node = model.graph.node[s] if 0 <= s < len(model.graph.node) else None
            if t["last_step"] != s or node is None or not any(a.type == onnx.AttributeProto.GRAPH for a in node.attribute):
                errors.append(f"body memory {name} at steps {s}..{t['last_step']} is not one control-flow node's step")
            continue
        if name not in life:
            errors.append(f"plan places {name}, which is not an activation of the model")
    arena = plan["arena_bytes"]
    ends = [t["offset"] + t["size"] for t in plan["tensors"]]
    if max(ends, default=0) != arena:
        errors.append(f"arena_bytes {arena} but the largest end is {max(ends, default=0)}")
    for t in plan["tensors"]:
        if t["offset"] % align or t["size"] % align:
            errors.append(f"tensor {t['name']} at {t['offset']} size {t['size']} not aligned to {align}")
    # Pairwise overlap per step by a sweep.
    steps = max((t["last_step"] for t in plan["tensors"]), default=-1) + 1
    live_bytes = [0] * max(steps, 1)
    by_step = [[] for _ in range(max(steps, 1))]
    for t in plan["tensors"]:
        for s in range(t["first_step"], t["last_step"] + 1):
            by_step[s].append(t)
    for s, ts in enumerate(by_step):
        # A tensor written in place shares its input's bytes: count them once.
        sharing = {t["inplace_of"] for t in ts if t.get("inplace_of") and t["first_step"] == s}
        live_bytes[s] = sum(t["size"] for t in ts if not (t["name"] in sharing))
        spans = sorted((t["offset"], t["offset"] + t["size"], t["name"], t.get("inplace_of")) for t in ts if t["size"])
        for a, b in zip(spans, spans[1:]):
            if a[1] > b[0]:
                pair_ok = (a[0], a[1]) == (b[0], b[1]) and (a[3] == b[2] or b[3] == a[2])
                if not pair_ok:
                    errors.append(f"step {s}: {a[2]} [{a[0]}, {a[1]}) overlaps {b[2]} [{b[0]}, {b[1]})")
    bound = max(live_bytes, default=0)
    if plan["arena_lower_bound_bytes"] != bound:
        errors.append(f"arena_lower_bound_bytes {plan['arena_lower_bound_bytes']}, recomputed {bound}")
    greedy = greedy_by_size([(t["size"], t["first_step"], t["last_step"]) for t in plan["tensors"]
                             if not t.get("inplace_of")])
    if not any(t.get("inplace_of") for t in plan["tensors"]) and arena > greedy:
        errors.append(f"arena {arena} above greedy-by-size {greedy}")
    return errors, bound, greedy


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--tool")
    ap.add_argument("--plan", help="check this plan against the one model given")
    ap.add_argument("--tool-arg", action="append", default=[])
    args = ap.parse_args()
    passed = failed = 0
    at_bound = 0
    for path in args.models:
        name = os.path.basename(path)
        with tempfile.TemporaryDirectory() as d:
            if args.plan:
                plan_path, written = args.plan, path
            else:
                written, plan_path = os.path.join(d, name), os.path.join(d, "plan.json")
                run = subprocess.run([args.tool, "-q", "--memory-plan", plan_path, *args.tool_arg, path, written],
                                     capture_output=True, text=True)
                if run.returncode != 0:
                    print(f"FAIL {name}: tool exited {run.returncode}: {run.stderr.strip()}")
                    failed += 1
                    continue
            plan = json.load(open(plan_path))
            model = onnx.load(written, load_external_data=False)
            errors, bound, greedy = check(plan, model)
        line = f"{name}: arena {plan['arena_bytes']}, bound {bound}, greedy-by-size {greedy}"
        if errors:
            print(f"FAIL {line}: " + "; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""))
            failed += 1
        else:
            at_bound += plan["arena_bytes"] == bound
            print(f"ok  {line}" + ("" if plan["arena_bytes"] == bound else
                                    f"  [gap {100 * (plan['arena_bytes'] - bound) / max(bound, 1):.2f}%]"))
            passed += 1
    print(f"arena at its bound on {at_bound} of {passed} checked models")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
