#!/usr/bin/env python3
"""Control-flow bodies, checked independently of the tool.

    python scripts/check_bodies.py --tool target/release/onnx-memsched [--ort] [--write-models DIR] [MODEL.onnx ...]

Builds two models whose bodies hold four parallel Relu -> Mul -> ReduceMean
chains written breadth-first (an If branch, a Loop body; written to DIR with
--write-models, else to a scratch folder), adds any MODEL given, runs the tool
on each with --report, and checks with nothing but `onnx` (and onnxruntime
with --ort):

* only node order changed, at every depth: each graph holds the same node
  records, every other field is equal, the file has the input's size;
* every body's written order peaks at its exact optimum, found by a DP over
  the sets of executed nodes (exact, independent of the tool's search), and
  the report's body peaks equal this script's evaluation of the input and
  written body orders;
* the model's peak equals this script's nested evaluation of the written
  top-level order, with the memory model of the README (If: the larger
  branch, its outputs shared with the node's; Loop: one iteration's peak
  plus the scan outputs on top of the node's outputs; Scan: one iteration's
  peak on top of the node's outputs);
* with --ort, onnxruntime's outputs for the input and written models are
  bit-identical (default order and PRIORITY_BASED), when the model has its
  weights.

Sizes come from onnx's shape inference (into bodies), with unknown dims an
error: the models checked must be fully static.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

from node_order import canonical_node

CHAINS = 4
SHAPE = [1, 16, 32, 32]  # 64 KiB of float32


def chains(prefix, x, out):
    """Four Relu -> Mul -> ReduceMean chains from `x`, summed into `out`,
    written breadth-first (every Relu, then every Mul, then every mean)."""
    nodes, inits = [], []
    relus = [helper.make_node("Relu", [x], [f"{prefix}r{i}"], name=f"{prefix}relu{i}") for i in range(CHAINS)]
    muls = []
    for i in range(CHAINS):
        inits.append(numpy_helper.from_array(np.array([1.0 + i], dtype=np.float32), f"{prefix}s{i}"))
        muls.append(helper.make_node("Mul", [f"{prefix}r{i}", f"{prefix}s{i}"], [f"{prefix}m{i}"], name=f"{prefix}mul{i}"))
    means = [
        helper.make_node("ReduceMean", [f"{prefix}m{i}"], [f"{prefix}a{i}"], name=f"{prefix}mean{i}", axes=[2, 3], keepdims=1)
        for i in range(CHAINS)
    ]
    total = helper.make_node("Sum", [f"{prefix}a{i}" for i in range(CHAINS)], [out], name=f"{prefix}sum")
    nodes = relus + muls + means + [total]
    return nodes, inits


def if_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)
    then_nodes, then_inits = chains("t_", "x", "then_out")
    then_g = helper.make_graph(then_nodes, "then", [], [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, [1, 16, 1, 1])], then_inits)
    else_g = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["else_out"], name="e_mean", axes=[2, 3], keepdims=1)],
        "else", [], [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, [1, 16, 1, 1])])
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mx"], name="mean_all", keepdims=0),
        helper.make_node("Greater", ["mx", "zero"], ["cond"], name="positive"),
        helper.make_node("If", ["cond"], ["branch"], name="choose", then_branch=then_g, else_branch=else_g),
        helper.make_node("Mul", ["x", "branch"], ["y"], name="scale"),
    ]
    g = helper.make_graph(nodes, "if_chains", [x], [y], [numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def loop_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)
    body_nodes, body_inits = chains("b_", "h_in", "s")
    body_nodes += [
        helper.make_node("Mul", ["h_in", "s"], ["h_out"], name="b_update"),
        helper.make_node("Identity", ["s"], ["scan_out"], name="b_scan"),
        helper.make_node("Identity", ["cond_in"], ["cond_out"], name="b_cond"),
    ]
    body = helper.make_graph(
        body_nodes, "body",
        [helper.make_tensor_value_info("iter", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_in", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, SHAPE),
         helper.make_tensor_value_info("scan_out", TensorProto.FLOAT, [1, 16, 1, 1])],
        body_inits)
    nodes = [
        helper.make_node("Relu", ["x"], ["h0"], name="stem"),
        helper.make_node("Loop", ["trip", "go", "h0"], ["h", "scans"], name="repeat", body=body),
        helper.make_node("ReduceMean", ["h"], ["hm"], name="head", axes=[2, 3], keepdims=1),
        helper.make_node("ReduceMean", ["scans"], ["ss"], name="scan_mean", axes=[0], keepdims=0),
        helper.make_node("Add", ["hm", "ss"], ["y"], name="out"),
    ]
    inits = [numpy_helper.from_array(np.array(3, dtype=np.int64), "trip"),
             numpy_helper.from_array(np.array(True), "go")]
    g = helper.make_graph(nodes, "loop_chains", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 1, 1])], inits)
    g.value_info.append(helper.make_tensor_value_info("scans", TensorProto.FLOAT, [3, 1, 16, 1, 1]))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


# ---------------------------------------------------------------- sizes

ELEM = {TensorProto.FLOAT: 4, TensorProto.DOUBLE: 8, TensorProto.INT64: 8, TensorProto.INT32: 4,
        TensorProto.BOOL: 1, TensorProto.UINT8: 1, TensorProto.INT8: 1, TensorProto.FLOAT16: 2}


def collect_types(graph, types):
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            dims = vi.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                types[vi.name] = (vi.type.tensor_type.elem_type, [d.dim_value for d in dims])
    for init in graph.initializer:
        types[init.name] = (init.data_type, list(init.dims))
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                collect_types(a.g, types)


def loop_outputs(graph, types, consts):
    """Loop outputs onnx's inference leaves unsized: a carried value has its
    initial value's size, a scan output the trip count times one iteration's."""
    consts = dict(consts)
    for init in graph.initializer:
        if init.data_type == TensorProto.INT64 and len(init.dims) == 0:
            consts[init.name] = int(numpy_helper.to_array(init))
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                loop_outputs(a.g, types, consts)
        if node.op_type != "Loop":
            continue
        body = next(a.g for a in node.attribute if a.name == "body")
        carried = len(node.input) - 2
        for i, out in enumerate(node.output):
            if not out or out in types:
                continue
            if i < carried and node.input[2 + i] in types:
                types[out] = types[node.input[2 + i]]
            elif i >= carried and node.input[0] in consts and body.output[1 + i].name in types:
                elem, shape = types[body.output[1 + i].name]
                types[out] = (elem, [consts[node.input[0]]] + shape)


def sizes_of(model):
    """Bytes of every tensor with a static shape, by onnx's inference (Loop
    outputs added, then inferred again so what follows them is sized)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    types = {}
    for _ in range(2):
        inferred = shape_inference.infer_shapes(m)
        types = {}
        collect_types(inferred.graph, types)
        loop_outputs(inferred.graph, types, {})
        known = {vi.name for vi in m.graph.value_info}
        for name, (elem, shape) in types.items():
            if name not in known:
                m.graph.value_info.append(helper.make_tensor_value_info(name, elem, shape))
    out = {}
    for name, (elem, shape) in types.items():
        n = 1
        for d in shape:
            n *= d
        out[name] = n * ELEM.get(elem, 4)
    return out


def size(sizes, name):
    if name not in sizes:
        raise SystemExit(f"no static size for tensor `{name}` (this checker needs a fully static model)")
    return sizes[name]


# ---------------------------------------------------------------- the memory model, written afresh

def free_reads(graph):
    """Names a graph reads (at any depth) that it does not define."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    reads = []
    for node in graph.node:
        reads += [i for i in node.input if i]
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                reads += free_reads(a.g)
        defined |= set(node.output)
    reads += [o.name for o in graph.output]
    seen, out = set(), []
    for r in reads:
        if r not in defined and r not in seen:
            seen.add(r)
            out.append(r)
    return out


class Flat:
    """A graph as the memory model sees it: per node, the tensors it reads
    (declared and outer) and writes, and the extra of its bodies."""

    def __init__(self, graph, sizes, weights, counted_inputs):
        self.graph = graph
        self.sizes = sizes
        self.weights = weights | {t.name for t in graph.initializer}
        for n in graph.node:
            if n.op_type == "Constant":
                self.weights |= set(n.output)
        self.counted_inputs = counted_inputs  # inputs that count (the body's declared ones)
        self.reads, self.writes, self.extra = [], [], []
        for n in graph.node:
            r = [i for i in n.input if i]
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    r += free_reads(a.g)
            seen = []
            for t in r:
                if t not in seen:
                    seen.append(t)
            self.reads.append(seen)
            self.writes.append([o for o in n.output if o])
            self.extra.append(None)
        self.outputs = {o.name for o in graph.output}

    def bytes(self, t):
        if t in self.weights:
            return 0
        if t in self.inputs_all and t not in self.counted_inputs:
            return 0
        return size(self.sizes, t)

    @property
    def inputs_all(self):
        return {i.name for i in self.graph.input} | set(self.outer)

    def set_outer(self, outer):
        self.outer = outer

    def steps(self, order):
        """Memory at each step of `order` (positions in graph.node), and the start."""
        consumers = {}
        for v, r in enumerate(self.reads):
            for t in r:
                consumers[t] = consumers.get(t, 0) + 1
        sources = [i.name for i in self.graph.input] + list(self.outer)
        live = {t: self.bytes(t) for t in sources if t not in self.weights}
        for t in list(live):
            if consumers.get(t, 0) == 0 and t not in self.outputs:
                del live[t]
        start = sum(self.bytes(t) for t in sources if t not in self.weights)
        remaining = dict(consumers)
        steps = []
        for v in order:
            out = sum(self.bytes(t) for t in self.writes[v])
            steps.append(sum(live.values()) + out + self.extra[v])
            for t in self.writes[v]:
                live[t] = self.bytes(t)
            for t in self.reads[v]:
                remaining[t] -= 1
                if remaining[t] == 0 and t not in self.outputs:
                    live.pop(t, None)
            for t in self.writes[v]:
                if consumers.get(t, 0) == 0 and t not in self.outputs:
                    live.pop(t, None)
        return start, steps

    def peak(self, order):
        start, steps = self.steps(order)
        return max([start] + steps)

    def optimum(self):
        """The least peak over all topological orders: a DP over the sets of
        executed nodes (the live set depends only on that set)."""
        n = len(self.graph.node)
        if n > 20:
            return None
        producer = {}
        for v, w in enumerate(self.writes):
            for t in w:
                producer[t] = v
        preds = [0] * n
        for v, r in enumerate(self.reads):
            for t in r:
                if t in producer:
                    preds[v] |= 1 << producer[t]
        consumers_of = {}
        for v, r in enumerate(self.reads):
            for t in r:
                consumers_of.setdefault(t, []).append(v)
        sources = [i.name for i in self.graph.input] + list(self.outer)

        def live_bytes(mask):
            total = 0
            candidates = [t for t in sources if t not in self.weights]
            for v in range(n):
                if mask >> v & 1:
                    candidates += self.writes[v]
            for t in candidates:
                if t in self.outputs:
                    total += self.bytes(t)
                    continue
                cs = consumers_of.get(t, [])
                if any(not (mask >> c & 1) for c in cs):
                    total += self.bytes(t)
            return total

        start = sum(self.bytes(t) for t in sources if t not in self.weights)
        best = {0: start}
        for mask in range(1 << n):
            if mask not in best:
                continue
            base = live_bytes(mask)
            for v in range(n):
                if mask >> v & 1 or preds[v] & ~mask:
                    continue
                step = base + sum(self.bytes(t) for t in self.writes[v]) + self.extra[v]
                nxt = mask | 1 << v
                value = max(best[mask], step)
                if value < best.get(nxt, float("inf")):
                    best[nxt] = value
        return best[(1 << n) - 1]


def plan_graph(graph, sizes, weights, counted_inputs, outer, path, found):
    """Fills `extra` of `graph`'s control-flow nodes from their bodies (as
    written), records each body's figures in `found`, returns the Flat."""
    flat = Flat(graph, sizes, weights, counted_inputs)
    flat.set_outer(outer)
    for v, node in enumerate(graph.node):
        peaks = []
        for a in node.attribute:
            if a.type != onnx.AttributeProto.GRAPH:
                continue
            body = a.g
            body_path = path + [(v, a.name)]
            inner = plan_graph(body, sizes, flat.weights, {i.name for i in body.input}, free_reads(body), body_path, found)
            order = list(range(len(body.node)))
            p = inner.peak(order)
            found[tuple(body_path)] = {"peak": p, "optimum": inner.optimum(), "nodes": [n.name for n in body.node]}
            peaks.append(p)
        if not peaks:
            flat.extra[v] = 0
            continue
        outputs = sum(flat.bytes(t) for t in flat.writes[v])
        p = max(peaks)
        if node.op_type == "If":
            flat.extra[v] = max(0, p - outputs)
        elif node.op_type == "Loop":
            carried = max(0, len(node.input) - 2)
            scans = sum(flat.bytes(t) for t in node.output[carried:] if t)
            flat.extra[v] = p + scans
        else:
            flat.extra[v] = p
    return flat


def evaluate(model):
    sizes = sizes_of(model)
    found = {}
    flat = plan_graph(model.graph, sizes, set(), {i.name for i in model.graph.input}, [], [], found)
    return flat, found


# ---------------------------------------------------------------- checks

def only_order_changed(a_path, b_path):
    a, b = onnx.load(a_path, load_external_data=False), onnx.load(b_path, load_external_data=False)
    if os.path.getsize(a_path) != os.path.getsize(b_path):
        return "the written file's size differs from the input's"
    if sorted(map(canonical_node, a.graph.node)) != sorted(map(canonical_node, b.graph.node)):
        return "something other than node order changed (the nodes differ)"
    for m in (a, b):
        del m.graph.node[:]
    if a.SerializeToString(deterministic=True) != b.SerializeToString(deterministic=True):
        return "something other than node order changed"
    return None


def run_ort(path, feeds, priority):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if priority:
        so.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


def feeds_for(model):
    rng = np.random.default_rng(7)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def check(tool, path, work, use_ort):
    name = os.path.basename(path)
    out = os.path.join(work, "out_" + name)
    report = os.path.join(work, name + ".json")
    r = subprocess.run([tool, "-q", path, out, "--report", report, "--time-limit", "20"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"the tool failed (exit {r.returncode}): {r.stderr.strip()}"
    rep = json.load(open(report))
    why = only_order_changed(path, out)
    if why:
        return why
    model_in = onnx.load(path, load_external_data=False)
    model_out = onnx.load(out, load_external_data=False)
    flat_in, bodies_in = evaluate(model_in)
    flat_out, bodies_out = evaluate(model_out)
    top_in = flat_in.peak(list(range(len(model_in.graph.node))))
    top_out = flat_out.peak(list(range(len(model_out.graph.node))))
    # The target's figures are file-order ones for the default target.
    if rep["runtimes"]["file-order"]["before"] != top_in:
        return f"input peak: the tool says {rep['runtimes']['file-order']['before']} B, this script {top_in} B"
    if rep["peak_bytes_after"] != top_out:
        return f"written peak: the tool says {rep['peak_bytes_after']} B, this script {top_out} B"
    reported = {tuple((s["node_index"], s["attribute"]) for s in b["path"]): b for b in rep["bodies"]}
    if set(reported) != set(bodies_in):
        return f"bodies reported {sorted(reported)} but the model has {sorted(bodies_in)}"
    notes = []
    for key, b in reported.items():
        # Paths name nodes by their input positions; in the written file a
        # body's node may sit elsewhere, so match by the body's node names.
        if b["peak_bytes_before"] != bodies_in[key]["peak"]:
            return f"body {b['body']}: input peak {b['peak_bytes_before']} B by the tool, {bodies_in[key]['peak']} B here"
        written = [w for w in bodies_out.values() if sorted(w["nodes"]) == sorted(bodies_in[key]["nodes"])]
        if len(written) != 1:
            return f"body {b['body']}: not found in the written file"
        w = written[0]
        if b["peak_bytes_after"] != w["peak"]:
            return f"body {b['body']}: written peak {b['peak_bytes_after']} B by the tool, {w['peak']} B here"
        if w["optimum"] is not None:
            if w["peak"] != w["optimum"]:
                return f"body {b['body']}: written peak {w['peak']} B, exact optimum {w['optimum']} B"
            notes.append(f"{b['body']} {bodies_in[key]['peak']} -> {w['peak']} B (optimum)")
    if use_ort:
        data = [t for t in model_in.graph.initializer if t.data_location == TensorProto.EXTERNAL]
        if data:
            notes.append("onnxruntime skipped (external weights)")
        else:
            feeds = feeds_for(model_in)
            for priority in (False, True):
                a = run_ort(path, feeds, priority)
                b = run_ort(out, feeds, priority)
                if any(x.tobytes() != y.tobytes() for x, y in zip(a, b)):
                    return f"onnxruntime's outputs differ ({'PRIORITY_BASED' if priority else 'default order'})"
            notes.append("onnxruntime bit-identical (default and PRIORITY_BASED)")
    print(f"ok   {name}: peak {top_in} -> {top_out} B; " + "; ".join(notes))
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--ort", action="store_true", help="also compare onnxruntime's outputs")
    ap.add_argument("--write-models", metavar="DIR", help="write the two built models there (and check them)")
    ap.add_argument("models", nargs="*")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        folder = args.write_models or work
        built = []
        for name, make in (("if_chains.onnx", if_model), ("loop_chains.onnx", loop_model)):
            path = os.path.join(folder, name)
            m = make()
            onnx.checker.check_model(m)
            onnx.save(m, path)
            built.append(path)
        failed = 0
        for path in built + args.models:
            why = check(args.tool, path, work, args.ort)
            if why:
                print(f"FAIL {os.path.basename(path)}: {why}")
                failed += 1
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
