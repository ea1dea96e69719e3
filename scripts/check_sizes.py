#!/usr/bin/env python3
"""Check the tool's tensor sizes against onnxruntime's real tensors.

Usage:
    python scripts/check_sizes.py --dump target/release/examples/sizes_dump [MODEL ...]

Without MODEL arguments, builds issue 11's cases (ConstantOfShape without
value, If with branches of different shapes, Pad with a 1-element
constant_value, Range, Shape with start, *Like ops, CastLike, Scan, Loop,
SequenceConstruct, a com.microsoft op under --input-shape, Unique with
--unknown-dim) in a temporary folder and checks those.

For each model: `sizes_dump MODEL [tool args]` gives the tool's bytes per
tensor; onnxruntime (ORT_DISABLE_ALL) runs the model with every top-level
node output added as a graph output, once per feed set, and gives each
tensor's real bytes (a sequence: the sum of its elements). A tensor passes
when the tool's bytes equal the largest real bytes over the feed sets (an If
output is the larger branch). Strings count 0 bytes by the tool's convention
and tensors the tool sized with --unknown-dim rest on that assumption: both
are listed, not compared. Prints one line per mismatch and a summary per
model; exits 1 if any tensor differs.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T, helper as h, numpy_helper as nh


def tool_sizes(dump, path, args):
    run = subprocess.run([dump, path, *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"sizes_dump failed: {run.stderr.strip()}")
    out = {}
    for line in run.stdout.splitlines():
        name, nbytes, source, _typ = line.split("\t")
        out[name] = (int(nbytes), source)
    return out


def real_bytes(v):
    if isinstance(v, list):
        return sum(real_bytes(x) for x in v)
    if v is None:
        return 0
    a = np.asarray(v)
    return 0 if a.dtype.kind in "OUS" else a.nbytes


def ort_sizes(path, feed_sets):
    m = onnx.load(path)
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in have:
                m.graph.output.append(onnx.ValueInfoProto(name=o))
                have.add(o)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    best = {}
    for feeds in feed_sets:
        for name, v in zip(names, sess.run(names, feeds)):
            best[name] = max(best.get(name, 0), real_bytes(v))
    return best


def random_feeds(path, dims):
    m = onnx.load(path, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    feeds = {}
    for i in m.graph.input:
        if i.name in inits:
            continue
        tt = i.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else dims.get(d.dim_param, 1) for d in tt.shape.dim]
        dt = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        feeds[i.name] = (np.random.rand(*shape) * 3).astype(dt)
    return [feeds]


def vi(name, t, shape):
    return h.make_tensor_value_info(name, t, shape)


def save(d, name, nodes, inputs, outputs, inits=(), value_info=(), opset=17, extra_opsets=()):
    g = h.make_graph(nodes, name, inputs, outputs, list(inits), value_info=list(value_info))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset), *extra_opsets])
    m.ir_version = 8
    p = os.path.join(d, name + ".onnx")
    onnx.save(m, p)
    return p


def cases(d):
    f = np.float32
    x = lambda *s: np.random.rand(*s).astype(f)
    out = []
    out.append((save(d, "constant_of_shape", [h.make_node("ConstantOfShape", ["shape"], ["z"]),
                                              h.make_node("Add", ["z", "x"], ["y"])],
                     [vi("x", T.FLOAT, [100, 300])], [vi("y", T.FLOAT, None)],
                     [nh.from_array(np.array([100, 300], np.int64), "shape")]), [], [{"x": x(100, 300)}]))
    then_g = h.make_graph([h.make_node("Relu", ["x"], ["t"])], "then", [], [vi("t", T.FLOAT, [1, 8])])
    else_g = h.make_graph([h.make_node("Concat", ["x", "x"], ["e"], axis=1)], "else", [], [vi("e", T.FLOAT, [1, 16])])
    out.append((save(d, "if_branches", [h.make_node("If", ["c"], ["out"], then_branch=then_g, else_branch=else_g),
                                        h.make_node("Relu", ["out"], ["y"])],
                     [vi("x", T.FLOAT, [1, 8]), vi("c", T.BOOL, [])], [vi("y", T.FLOAT, None)],
                     value_info=[vi("out", T.FLOAT, [1, 8])]),
                [], [{"x": x(1, 8), "c": np.array(True)}, {"x": x(1, 8), "c": np.array(False)}]))
    out.append((save(d, "pad_cv1", [h.make_node("Pad", ["x", "pads", "cv"], ["p"]), h.make_node("Relu", ["p"], ["y"])],
                     [vi("x", T.FLOAT, [1, 3, 4, 4])], [vi("y", T.FLOAT, None)],
                     [nh.from_array(np.array([0, 0, 1, 2, 0, 0, 1, 2], np.int64), "pads"),
                      nh.from_array(np.array([0.5], f), "cv")]), [], [{"x": x(1, 3, 4, 4)}]))
    out.append((save(d, "range_const", [h.make_node("Range", ["s", "l", "dl"], ["r"]), h.make_node("Neg", ["r"], ["y"])],
                     [], [vi("y", T.INT64, None)],
                     [nh.from_array(np.array(1, np.int64), "s"), nh.from_array(np.array(11, np.int64), "l"),
                      nh.from_array(np.array(3, np.int64), "dl")]), [], [{}]))
    out.append((save(d, "like_ops", [h.make_node("Shape", ["x"], ["sh"], start=1),
                                     h.make_node("EyeLike", ["sq"], ["eye"], dtype=T.INT32),
                                     h.make_node("RandomNormalLike", ["x"], ["rn"]),
                                     h.make_node("RandomUniformLike", ["x"], ["ru"], dtype=T.DOUBLE),
                                     h.make_node("CastLike", ["x", "i8"], ["cl"]), h.make_node("Neg", ["cl"], ["y"])],
                     [vi("x", T.FLOAT, [2, 5]), vi("sq", T.FLOAT, [3, 3]), vi("i8", T.INT8, [1])],
                     [vi("y", T.INT8, None), vi("sh", T.INT64, None)]),
                [], [{"x": x(2, 5), "sq": x(3, 3), "i8": np.array([1], np.int8)}]))
    body = h.make_graph([h.make_node("Add", ["s_in", "x_in"], ["s_out"]), h.make_node("Add", ["x_in", "x_in"], ["o"])],
                        "body", [vi("s_in", T.FLOAT, [2]), vi("x_in", T.FLOAT, [2])],
                        [vi("s_out", T.FLOAT, [2]), vi("o", T.FLOAT, [2])])
    out.append((save(d, "scan", [h.make_node("Scan", ["s0", "xs"], ["s_final", "os"], body=body, num_scan_inputs=1),
                                 h.make_node("Relu", ["os"], ["y"])],
                     [vi("s0", T.FLOAT, [2]), vi("xs", T.FLOAT, [5, 2])], [vi("s_final", T.FLOAT, None), vi("y", T.FLOAT, None)]),
                [], [{"s0": x(2), "xs": x(5, 2)}]))
    lbody = h.make_graph([h.make_node("Identity", ["c_in"], ["c_out"]), h.make_node("Relu", ["h"], ["h_out"]),
                          h.make_node("Neg", ["h"], ["scan"])], "lbody",
                         [vi("i", T.INT64, []), vi("c_in", T.BOOL, []), vi("h", T.FLOAT, [1, 8])],
                         [vi("c_out", T.BOOL, []), vi("h_out", T.FLOAT, [1, 8]), vi("scan", T.FLOAT, [1, 8])])
    out.append((save(d, "loop", [h.make_node("Loop", ["trip", "", "x"], ["h_final", "stacked"], body=lbody),
                                 h.make_node("Relu", ["stacked"], ["y"])],
                     [vi("x", T.FLOAT, [1, 8])], [vi("h_final", T.FLOAT, None), vi("y", T.FLOAT, None)],
                     [nh.from_array(np.array(3, np.int64), "trip")]), [], [{"x": x(1, 8)}]))
    out.append((save(d, "sequence", [h.make_node("SequenceConstruct", ["a", "b"], ["seq"]),
                                     h.make_node("SequenceLength", ["seq"], ["n"])],
                     [vi("a", T.FLOAT, [2, 3]), vi("b", T.FLOAT, [2, 3])], [vi("n", T.INT64, None)]),
                [], [{"a": x(2, 3), "b": x(2, 3)}]))
    out.append((save(d, "input_shape_binds", [h.make_node("Gelu", ["x"], ["g"], domain="com.microsoft"),
                                              h.make_node("Relu", ["g"], ["y"])],
                     [vi("x", T.FLOAT, ["batch", "seq_len", 4])], [vi("y", T.FLOAT, ["batch", "seq_len", 4])],
                     value_info=[vi("g", T.FLOAT, ["batch", "seq_len", 4])],
                     extra_opsets=[h.make_opsetid("com.microsoft", 1)]),
                ["--input-shape", "x=1x16x4"], [{"x": x(1, 16, 4)}]))
    out.append((save(d, "unique", [h.make_node("Unique", ["x"], ["u", "idx", "inv", "cnt"]),
                                   h.make_node("Neg", ["u"], ["y"])],
                     [vi("x", T.FLOAT, [3, 4])], [vi("y", T.FLOAT, None)]),
                ["--unknown-dim", "12"], [{"x": x(3, 4)}]))
    return out


def check(dump, path, args, feed_sets):
    tool = tool_sizes(dump, path, args)
    real = ort_sizes(path, feed_sets)
    bad = skipped = ok = 0
    for name, nbytes in sorted(real.items()):
        if name not in tool:
            continue
        tb, source = tool[name]
        if source == "UnknownDim":
            skipped += 1
            continue
        if tb == 0 and nbytes > 0 and name in tool and tool[name][0] == 0 and is_string(path, name):
            skipped += 1
            continue
        if tb != nbytes:
            print(f"  MISMATCH {os.path.basename(path)} `{name}`: tool {tb} B ({source}), onnxruntime {nbytes} B")
            bad += 1
        else:
            ok += 1
    print(f"{'ok  ' if bad == 0 else 'FAIL'} {os.path.basename(path)}: {ok} tensors equal, {bad} differ, "
          f"{skipped} not compared (strings, --unknown-dim)")
    return bad == 0


def is_string(path, name):
    m = onnx.shape_inference.infer_shapes(onnx.load(path, load_external_data=False))
    for v in list(m.graph.value_info) + list(m.graph.output):
        if v.name == name:
            return v.type.tensor_type.elem_type == T.STRING
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--dump", required=True, help="path of the built sizes_dump example")
    ap.add_argument("--dim", action="append", default=[], help="NAME=VALUE for feeds and the tool")
    args = ap.parse_args()
    np.random.seed(0)
    all_ok = True
    with tempfile.TemporaryDirectory() as d:
        if args.models:
            dims = {k: int(v) for k, v in (s.split("=") for s in args.dim)}
            tool_args = [a for s in args.dim for a in ("--dim", s)]
            todo = [(p, tool_args, random_feeds(p, dims)) for p in args.models]
        else:
            todo = cases(d)
        for path, tool_args, feeds in todo:
            try:
                all_ok &= check(args.dump, path, tool_args, feeds)
            except Exception as e:  # one model's failure must not hide the others
                print(f"FAIL {os.path.basename(path)}: {e}")
                all_ok = False
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
