#!/usr/bin/env python3
"""Print the order in which onnxruntime really runs a model's nodes.

Usage:
    python scripts/ort_order.py MODEL.onnx [--json] [--compare PREDICTED.txt]
                                [--opt-level disable|basic|extended|all]
                                [--execution-order default|priority]
                                [--dim NAME=VALUE]... [--materialize-script PATH]

Runs MODEL once in onnxruntime on the CPU with default session options except
graph_optimization_level (ORT_DISABLE_ALL unless --opt-level says otherwise,
so that no node is fused or removed) and enable_profiling=True, on random
inputs (symbolic dimensions 1 unless --dim binds them), then reads the profile:
events of category "Node" whose name ends in "_kernel_time", in time order,
are the nodes run. Only top-level nodes are listed (nodes inside If/Loop/Scan
bodies run inside their parent); Constant nodes never appear (onnxruntime makes
them initializers at load).

Nodes of ops onnxruntime expands into their ONNX function body at load
(HardSwish, Mish, Swish, GroupNormalization on the CPU) run under new names;
each run of consecutive such nodes is listed as "<inlined>" (and --compare
maps the predicted names of those ops to it).

Output: one node name per line, or with --json a list of
{"name", "op_type", "index"} objects plus onnxruntime's own activation peak
(the largest "mem_in_use_peak" the profile reports, when present). A node
whose name is empty or shared with another node is called "#INDEX" (its
position in MODEL's graph.node): the model run is a copy with those names
set, exactly as `cargo run --example ort_predict` names them.

--compare PREDICTED.txt compares with a predicted order (one name per line, as
`ort_predict` prints): prints "match (N nodes)" and exits 0, or the first
difference with context, the names only one side has, and exits 1.

Weights: if MODEL's external-data files are missing (corpus models keep only
the graph), materialize.py regenerates them into a scratch folder first (found
with --materialize-script, else next to MODEL, in its parent folder, or in
/work/shared/corpus). Everything is written to a scratch folder that is
removed at the end (--keep-temp keeps it); MODEL is never modified.
Needs: pip install onnx numpy onnxruntime.
"""

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx

# Op types onnxruntime's CPU provider (1.32) has no kernel for: it replaces
# them at load by their ONNX function body, whose nodes get new names and
# indices after every node of the file (see schedule::ort::INLINED_OPS).
INLINED_OPS = {"HardSwish", "Mish", "Swish", "GroupNormalization"}
INLINED = "<inlined>"

OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def external_locations(model):
    """Relative locations of every external-data file the model refers to."""
    locations = set()

    def tensors(graph):
        yield from graph.initializer
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    yield attr.t
                elif attr.type == onnx.AttributeProto.TENSORS:
                    yield from attr.tensors
                elif attr.type == onnx.AttributeProto.GRAPH:
                    yield from tensors(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for g in attr.graphs:
                        yield from tensors(g)

    for t in tensors(model.graph):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for entry in t.external_data:
                if entry.key == "location":
                    locations.add(entry.value)
    return sorted(locations)


def find_materialize(model_path, explicit):
    if explicit:
        return explicit
    here = os.path.dirname(os.path.abspath(model_path))
    for folder in (here, os.path.dirname(here), "/work/shared/corpus"):
        candidate = os.path.join(folder, "materialize.py")
        if os.path.isfile(candidate):
            return candidate
    return None


def display_names(graph):
    """Name of each top-level node: its name, or #INDEX if empty or shared."""
    count = collections.Counter(n.name for n in graph.node)
    return [n.name if n.name and count[n.name] == 1 else f"#{i}" for i, n in enumerate(graph.node)]


def prepare(model_path, scratch, materialize_script):
    """A runnable model with display names set, and its names and op types.

    Runs the model where it is when its weights are there and its node names
    already are the display names; otherwise works in `scratch`."""
    model = onnx.load(model_path, load_external_data=False)
    names = display_names(model.graph)
    op_types = [n.op_type for n in model.graph.node]
    rename = any(node.name != name for node, name in zip(model.graph.node, names))
    src_dir = os.path.dirname(os.path.abspath(model_path))
    locations = external_locations(model)
    missing = [loc for loc in locations if not os.path.exists(os.path.join(src_dir, loc))]
    run_dir = None
    path = model_path
    if missing:
        script = find_materialize(model_path, materialize_script)
        if script is None:
            sys.exit(f"{model_path}: external data {missing} missing and no materialize.py found "
                     "(give --materialize-script)")
        run_dir = os.path.join(scratch, "data")
        os.makedirs(run_dir, exist_ok=True)
        subprocess.run([sys.executable, script, model_path, "--out-dir", run_dir], check=True,
                       stdout=subprocess.DEVNULL)
        path = os.path.join(run_dir, os.path.basename(model_path))
    if rename:
        if run_dir is None:
            # onnxruntime refuses external data behind symbolic or hard links:
            # copy it next to the renamed model.
            run_dir = scratch
            for loc in locations:
                target = os.path.join(run_dir, loc)
                os.makedirs(os.path.dirname(target) or run_dir, exist_ok=True)
                shutil.copyfile(os.path.join(src_dir, loc), target)
        for node, name in zip(model.graph.node, names):
            node.name = name
        path = os.path.join(run_dir, "renamed_" + os.path.basename(model_path))
        onnx.save(model, path)
    return path, names, op_types


def random_feed(session, dims, rng):
    type_map = {
        "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
        "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
        "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
    }
    feed = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) and d >= 0 else dims.get(d, 1) if isinstance(d, str) else 1
                 for d in inp.shape]
        dtype = type_map.get(inp.type)
        if dtype is None:
            sys.exit(f"input {inp.name}: type {inp.type} not supported by this script")
        if np.issubdtype(dtype, np.floating):
            feed[inp.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feed[inp.name] = rng.random(shape) < 0.5
        else:
            # Small non-negative integers are valid indices and token ids.
            feed[inp.name] = rng.integers(0, 2, size=shape).astype(dtype)
    return feed


def collapse_inlined(names):
    """Replaces runs of consecutive INLINED entries by one."""
    out = []
    for n in names:
        if not (n == INLINED and out and out[-1] == INLINED):
            out.append(n)
    return out


def run_order(path, names, op_types, opt_level, execution_order, dims, scratch):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[opt_level])
    if execution_order == "priority":
        so.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(scratch, "profile")
    session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    session.run(None, random_feed(session, dims, np.random.default_rng(0)))
    with open(session.end_profiling()) as f:
        events = json.load(f)
    suffix = "_kernel_time"
    top_level = set(names)
    # onnxruntime numbers the nodes it keeps (all but Constant) from 0 in file
    # order; nodes of expanded function bodies come after them.
    kept = sum(1 for t in op_types if t != "Constant")
    has_inlined = any(t in INLINED_OPS for t in op_types)
    seen = set()
    ran = []
    pieces = []
    peak = None
    for ev in sorted((e for e in events if e.get("cat") == "Node"), key=lambda e: e.get("ts", 0)):
        raw = ev.get("name", "")
        if not raw.endswith(suffix):
            continue
        name = ev.get("args", {}).get("node_name") or raw[: -len(suffix)]
        mem = ev.get("args", {}).get("mem_in_use_peak")
        if mem is not None:
            peak = max(peak or 0, int(mem))
        key = (name, ev.get("ts"))
        if key in seen:  # the profiler sometimes records an event twice
            continue
        seen.add(key)
        index = ev.get("args", {}).get("node_index")
        if (opt_level == "disable" and has_inlined and name not in top_level
                and index is not None and int(index) >= kept):
            pieces.append(name)
            name = INLINED
        ran.append(name)
    # Keep top-level nodes only; a subgraph node could share a top-level name,
    # so keep the first run of each name and report repeats.
    order, counted = [], collections.Counter()
    for name in collapse_inlined(ran):
        if name == INLINED:
            order.append(name)
        elif opt_level != "disable" or name in top_level:
            counted[name] += 1
            if counted[name] == 1:
                order.append(name)
    repeats = [n for n, c in counted.items() if c > 1]
    if repeats:
        print(f"note: {len(repeats)} names ran more than once (subgraph nodes sharing a top-level "
              f"name?): {repeats[:5]}", file=sys.stderr)
    if pieces:
        print(f"note: {len(pieces)} nodes of expanded function bodies ({', '.join(pieces[:4])}, ...) "
              f"are listed as {INLINED}, one per run of consecutive ones", file=sys.stderr)
    return order, peak


def compare(actual, predicted):
    if actual == predicted:
        print(f"match ({len(actual)} nodes)")
        return 0
    common = next((i for i, (a, p) in enumerate(zip(actual, predicted)) if a != p),
                  min(len(actual), len(predicted)))
    print(f"MISMATCH at position {common} (onnxruntime ran {len(actual)} nodes, predicted {len(predicted)})")
    lo, hi = max(0, common - 3), common + 4
    print("  onnxruntime:", actual[lo:hi])
    print("  predicted:  ", predicted[lo:hi])
    only_actual = sorted(set(actual) - set(predicted))
    only_pred = sorted(set(predicted) - set(actual))
    if only_actual:
        print(f"  only onnxruntime ({len(only_actual)}):", only_actual[:10])
    if only_pred:
        print(f"  only predicted ({len(only_pred)}):", only_pred[:10])
    same_set = [a for a in actual if a in set(predicted)]
    pred_common = [p for p in predicted if p in set(actual)]
    if same_set == pred_common:
        print("  the common nodes run in the predicted relative order")
    return 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--json", action="store_true", help="print JSON instead of one name per line")
    ap.add_argument("--compare", metavar="PREDICTED.txt", help="compare with a predicted order")
    ap.add_argument("--opt-level", choices=sorted(OPT_LEVELS), default="disable",
                    help="graph optimization level (default: disable, i.e. ORT_DISABLE_ALL)")
    ap.add_argument("--execution-order", choices=["default", "priority"], default="default",
                    help="session execution order (default: onnxruntime's default, the reverse DFS)")
    ap.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE",
                    help="value of a symbolic input dimension (default 1)")
    ap.add_argument("--materialize-script", help="path of materialize.py")
    ap.add_argument("--keep-temp", action="store_true", help="keep the scratch folder")
    args = ap.parse_args()
    dims = {}
    for d in args.dim:
        name, _, value = d.partition("=")
        try:
            dims[name] = int(value)
        except ValueError:
            ap.error(f"--dim {d}: expected NAME=INTEGER")

    scratch = tempfile.mkdtemp(prefix="ort_order_")
    try:
        path, names, op_types = prepare(args.model, scratch, args.materialize_script)
        order, peak = run_order(path, names, op_types, args.opt_level, args.execution_order, dims, scratch)
        if args.json:
            index = {n: i for i, n in enumerate(names)}
            print(json.dumps({
                "model": args.model,
                "opt_level": args.opt_level,
                "nodes": [{"name": n, "op_type": op_types[index[n]] if n in index else None,
                           "index": index.get(n)} for n in order],
                "mem_in_use_peak": peak,
            }, indent=1))
        elif not args.compare:
            for n in order:
                print(n)
        if args.compare:
            with open(args.compare) as f:
                predicted = [line.strip() for line in f if line.strip()]
            if args.opt_level == "disable" and INLINED in order:
                op_of = dict(zip(names, op_types))
                predicted = collapse_inlined(
                    [INLINED if op_of.get(p) in INLINED_OPS else p for p in predicted])
            status = compare(order, predicted)
            if peak is not None:
                print(f"onnxruntime mem_in_use_peak: {peak} bytes")
            sys.exit(status)
    finally:
        if args.keep_temp:
            print(f"scratch folder kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
